//! Each `fleet` node: the image it runs (which must exist), its instance type against the image's architecture,
//! and its size bounds (min <= desired <= max). Its rollout is checked in `rollout`, what AWS does when the spec
//! says nothing in `fleet`.

use super::image::NamedImage;
use super::plan::FleetPlan;
use super::{arch, fleet, names, rollout};
use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::schema::code_list;
use crate::spec::suggest::closest;
use crate::spec::{Item, Tree};

pub(super) fn fleets(
    tree: &Tree,
    images: &[NamedImage],
    diags: &mut Diags,
) -> Vec<Option<FleetPlan>> {
    names::unique_names("fleet", tree.all("fleet"), diags);
    tree.all("fleet")
        .map(|item| fleet_plan(item, images, diags))
        .collect()
}

pub(super) fn fleet_plan(
    item: &Item,
    images: &[NamedImage],
    diags: &mut Diags,
) -> Option<FleetPlan> {
    let image_ref = item.str("image");
    let image = image_ref.as_ref().and_then(|r| {
        let found = images
            .iter()
            .position(|(name, _)| name.as_ref().is_some_and(|n| n.value == r.value));
        if found.is_none() {
            let names: Vec<&str> = images
                .iter()
                .filter_map(|(n, _)| n.as_ref().map(|n| n.value.as_str()))
                .collect();
            let mut d = Diag::error(
                Code::UnknownImage,
                format!("no image is named `{}`", r.value),
            );
            d = match closest(&r.value, names.iter().copied()) {
                Some(c) => d.label(r.span, format!("did you mean `{c}`?")),
                None => d.label(r.span, "not defined in this spec"),
            };
            diags.push(d.help(if names.is_empty() {
                "define an `image` node with this name".to_owned()
            } else {
                format!("images in this spec: {}", code_list(names.iter().copied()))
            }));
        }
        found
    });
    let instance_type = item.str("instance-type");
    if let (Some(index), Some(t)) = (image, &instance_type)
        && let Some(Some(img)) = images.get(index).map(|(_, p)| p.as_ref())
        && let Some(arch) = img.arch
    {
        arch::check_arch(t, arch, img.name.span, "the fleet's instance", diags);
    }
    if let Some(Some(img)) = image.and_then(|i| images.get(i)).map(|(_, p)| p.as_ref()) {
        super::nixos::fleet_readiness(item, img, diags);
    }

    let size = item.child("size");
    let (min, max, desired) = size.map_or((None, None, None), |s| {
        (s.int("min"), s.int("max"), s.int("desired"))
    });
    if let (Some(min), Some(max)) = (&min, &max)
        && min.value > max.value
    {
        diags.push(
            Diag::error(Code::SizeOrder, "`min` is larger than `max`")
                .label(min.span, format!("min is {}", min.value))
                .label(max.span, format!("max is {}", max.value))
                .help("a group needs min <= desired <= max"),
        );
    }
    if let Some(desired) = &desired {
        for (bound, ok, word) in [(&min, true, "min"), (&max, false, "max")] {
            if let Some(b) = bound {
                let bad = if ok {
                    desired.value < b.value
                } else {
                    desired.value > b.value
                };
                if bad {
                    diags.push(
                        Diag::error(
                            Code::SizeOrder,
                            format!(
                                "`desired` is {} `{word}`",
                                if ok { "below" } else { "above" }
                            ),
                        )
                        .label(desired.span, format!("desired is {}", desired.value))
                        .label(b.span, format!("{word} is {}", b.value))
                        .help("a group needs min <= desired <= max"),
                    );
                }
            }
        }
    }
    // The size the group runs at: what min-in-service is measured against.
    let running = desired.as_ref().or(min.as_ref());
    fleet::warn_default_security_group(item, diags);
    let rollout = item
        .child("rollout")
        .and_then(|r| rollout::rollout_plan(r, max.as_ref(), running, diags));

    let to_u32 = |v: Option<Spanned<i128>>| v.and_then(|v| u32::try_from(v.value).ok());
    Some(FleetPlan {
        name: item.arg_str(0)?,
        image: image?,
        instance_type: instance_type?.value,
        subnets: item
            .child("subnets")
            .map(|s| s.arg_strs().into_iter().map(|s| s.value).collect())?,
        security_groups: item
            .child("security-groups")
            .map(|s| s.arg_strs().into_iter().map(|s| s.value).collect())
            .unwrap_or_default(),
        min: to_u32(min)?,
        max: to_u32(max)?,
        desired: to_u32(desired),
        policies: item
            .children_named("policies")
            .flat_map(|p| p.arg_strs().into_iter().map(|s| s.value))
            .collect(),
        rollout: rollout?,
        imds_hop_limit: item
            .int_or_default("imds-hop-limit")
            .and_then(|h| u32::try_from(h.value).ok())
            .unwrap_or(1),
    })
}
