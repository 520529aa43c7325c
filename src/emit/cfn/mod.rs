//! The CloudFormation template, built as JSON values. Its shape is data with many conditional parts, which
//! serde_json expresses safely (no hand-placed commas, automatic escaping); the scripts inside it come from the
//! handlebars templates.

mod common;
mod fetch;
mod fleet;
mod image;
mod retention;
mod stackset;

pub use stackset::MAP as STACKSET_MAP;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use super::ImageScripts;
use crate::check::pascal;
use crate::check::plan::{FleetPlan, ImagePlan, ImageSource, Plan};
use crate::lock::Resolved;
use crate::lock::nixos::NixosLock;
use common::obj;
use fleet::fleet_resources;
use image::{ami_record, built_image, nixos_image};

pub(crate) fn image_id(image: &ImagePlan, suffix: &str) -> String {
    format!("Image{}{suffix}", pascal(&image.name.value))
}

pub(crate) fn fleet_id(fleet: &FleetPlan, suffix: &str) -> String {
    format!("Fleet{}{suffix}", pascal(&fleet.name.value))
}

/// The logical id of a fleet's auto-scaling group, which instances name when they signal.
pub(crate) fn fleet_group_id(fleet: &FleetPlan) -> String {
    fleet_id(fleet, "Group")
}

/// The stack's tags with bake's on top: a key bake sets replaces the user's, so no key appears twice. (`check`
/// reserves `bake:` keys, so in practice only `Name` is replaced.)
pub(crate) fn merge_tags(
    user: &[(String, String)],
    ours: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = user
        .iter()
        .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    for (k, v) in ours {
        if let Some(slot) = out.iter_mut().find(|(o, _)| o == k) {
            slot.1.clone_from(v);
        } else {
            out.push((k.clone(), v.clone()));
        }
    }
    out
}

/// The tag value naming one image of one stack: what the lifecycle policy selects and what an AMI search
/// filters on (`aws ec2 describe-images --owners self --filters Name=tag:bake:lineage,Values=<stack>/<image>`).
pub(crate) fn lineage(plan: &Plan, image: &ImagePlan) -> String {
    format!("{}/{}", plan.stack.name, image.name.value)
}

/// The SSM parameter holding the AMI an image's fleets run; its history lists the AMI of every deploy.
pub(crate) fn ami_parameter_name(plan: &Plan, image: &ImagePlan) -> String {
    format!("/bake/{}/{}/ami", plan.stack.name, image.name.value)
}

/// The launch lifecycle hook an instance-refresh fleet's instances complete once they are ready.
pub(crate) const READY_HOOK: &str = "bake-ready";

/// The name bake gives an instance-refresh fleet's group (for `Fn::Sub`), so that its instances can name the
/// group when they complete the launch hook without the launch template referring to the group.
pub(crate) fn fleet_group_name_sub(fleet: &FleetPlan) -> String {
    format!("${{AWS::StackName}}-{}", fleet.name.value)
}

#[cfg(test)]
pub(crate) fn template(
    plan: &Plan,
    resolved: &[Option<Resolved>],
    scripts: &[Option<ImageScripts>],
    user_data: &[Option<String>],
) -> Value {
    template_with_nixos(plan, resolved, scripts, user_data, &[])
}

/// The template; `nixos` holds, per plan image, the lock entry of a NixOS image (whose AMI its fleets run).
pub(crate) fn template_with_nixos(
    plan: &Plan,
    resolved: &[Option<Resolved>],
    scripts: &[Option<ImageScripts>],
    user_data: &[Option<String>],
    nixos: &[Option<&NixosLock>],
) -> Value {
    let mut resources = Map::new();
    let mut outputs = Map::new();
    let mut metadata_images = Map::new();
    // Each built image's own resources (Image Builder's, the SSM document, roles), made apart and then added in
    // image order: most of a large template's work, and independent per image.
    let items: Vec<_> = plan.images.iter().zip(resolved).zip(scripts).collect();
    let built = super::on_two_threads(&items, |((image, resolved), scripts)| {
        match (&image.source, resolved, scripts) {
            (ImageSource::Built(build), Some(r), Some(s)) => {
                let mut own = Map::new();
                built_image(plan, image, build, r, s, &mut own);
                own
            }
            _ => Map::new(),
        }
    });
    for (i, (((image, resolved), scripts), own)) in items.into_iter().zip(built).enumerate() {
        if let (ImageSource::Nixos(_), Some(Some(entry))) = (&image.source, nixos.get(i)) {
            nixos_image(
                plan,
                image,
                entry,
                &mut resources,
                &mut outputs,
                &mut metadata_images,
            );
            continue;
        }
        match (&image.source, resolved, scripts) {
            (ImageSource::Built(build), Some(r), Some(_)) => {
                resources.extend(own);
                outputs.insert(
                    image_id(image, "AmiId"),
                    json!({
                        "Description": format!("The AMI built for image {}", image.name.value),
                        "Value": {"Fn::GetAtt": [image_id(image, ""), "ImageId"]}
                    }),
                );
                let mut meta = json!({"base-ami": r.base_ami, "base-ami-name": r.base_ami_name, "flake-rev": r.flake_rev, "system-manager": r.system_manager_ref});
                if build.delete_old_amis {
                    meta["keep-amis"] = json!(build.keep_amis);
                }
                metadata_images.insert(image.name.value.clone(), meta);
                ami_record(
                    plan,
                    image,
                    json!({"Fn::GetAtt": [image_id(image, ""), "ImageId"]}),
                    &mut resources,
                    &mut outputs,
                );
            }
            (ImageSource::Pinned { ami }, _, _) => {
                let value = stackset::ami(plan, image, ami);
                outputs.insert(
                    image_id(image, "AmiId"),
                    json!({"Description": format!("The pinned AMI of image {}", image.name.value), "Value": value}),
                );
                let mut meta = json!({"pinned-ami": ami});
                if let Some(p) = &image.promoted {
                    meta["promoted-from"] = json!(p.from);
                    meta["tested-since"] = json!(p.tested_since);
                }
                metadata_images.insert(image.name.value.clone(), meta);
                ami_record(plan, image, value, &mut resources, &mut outputs);
            }
            _ => {}
        }
    }
    for (fleet, user_data) in plan.fleets.iter().zip(user_data) {
        // The SSM document converges running instances from the same cache.
        let cache_objects = resolved
            .get(fleet.image)
            .and_then(Option::as_ref)
            .and_then(|r| r.closure.as_ref())
            .map_or(&[][..], |c| c.read_objects.as_slice());
        let nixos_ami = nixos
            .get(fleet.image)
            .and_then(|e| e.and_then(|e| e.amis.get(&plan.stack.region)))
            .map(String::as_str);
        fleet_resources(
            plan,
            fleet,
            user_data.as_deref(),
            cache_objects,
            nixos_ami,
            &mut resources,
        );
        outputs.insert(
            fleet_id(fleet, "GroupName"),
            json!({
                "Description": format!("The auto-scaling group of fleet {}", fleet.name.value),
                "Value": {"Ref": fleet_group_id(fleet)}
            }),
        );
    }
    // Built by moving the maps in: `json!` would serialize each one into a copy (most of emit's time).
    let mut bake = obj(json!({"format": 1}));
    bake.insert("images".into(), Value::Object(metadata_images));
    if let Some(set) = &plan.stack_set {
        bake.insert("stack-set".into(), stackset::metadata(set));
    }
    let mut metadata = Map::new();
    metadata.insert("bake".into(), Value::Object(bake));
    let mut template = obj(json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("bake stack {}: generated from its spec by bake; edit the spec, not this template", plan.stack.name),
    }));
    template.insert("Metadata".into(), Value::Object(metadata));
    if let Some(set) = &plan.stack_set {
        template.insert("Mappings".into(), stackset::mappings(plan, set));
    }
    template.insert("Resources".into(), Value::Object(resources));
    template.insert("Outputs".into(), Value::Object(outputs));
    Value::Object(template)
}
