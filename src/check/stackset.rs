//! The `stack-set` node: permission model, deployment targets, regions and their order, operation preferences,
//! and the values that differ per region (AMI, subnet and security group ids are regional).
//!
//! It takes the node itself (not the tree's top level), the stack's region and the images and fleets that passed
//! their own checks, so the node can move (into an environment) without changing this file. Every target region
//! must have each pinned image's AMI and each fleet's subnets (and security groups, when the fleet has them): a
//! missing one is a diagnostic here, not a stack instance that fails in that region an hour into the rollout.

use std::collections::BTreeMap;

use super::plan::{FleetPlan, ImagePlan, ImageSource};
use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};
use crate::spec::Item;
use crate::spec::schema::stackset::DEFAULT_EXECUTION_ROLE;
use crate::spec::suggest::closest;

/// A stack set, checked: everything `emit` and `deploy::stackset` need, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSetPlan {
    pub permission: Permission,
    /// `SELF` or `DELEGATED_ADMIN`.
    pub call_as: String,
    /// Target regions in deployment order (`RegionOrder`).
    pub regions: Vec<String>,
    pub preferences: Preferences,
    /// For each region of `regions`, in that order: the regional ids the template maps.
    pub values: Vec<RegionValues>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    SelfManaged {
        accounts: Vec<String>,
        /// `None`: CloudFormation's default administration role of the calling account.
        administration_role: Option<String>,
        execution_role: String,
    },
    ServiceManaged {
        organizational_units: Vec<String>,
        auto_deployment: bool,
        retain_stacks_on_account_removal: bool,
    },
}

impl Permission {
    /// `SELF_MANAGED` or `SERVICE_MANAGED`, as the API spells it.
    pub fn model(&self) -> &'static str {
        match self {
            Permission::SelfManaged { .. } => "SELF_MANAGED",
            Permission::ServiceManaged { .. } => "SERVICE_MANAGED",
        }
    }

    /// The deployment targets: account ids (self-managed) or OU ids (service-managed).
    pub fn targets(&self) -> &[String] {
        match self {
            Permission::SelfManaged { accounts, .. } => accounts,
            Permission::ServiceManaged {
                organizational_units,
                ..
            } => organizational_units,
        }
    }
}

/// A count or a percentage (CloudFormation takes one of the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    Count(i32),
    Percentage(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    /// `SEQUENTIAL` or `PARALLEL`.
    pub region_concurrency: String,
    pub max_concurrent: Option<Amount>,
    pub failure_tolerance: Option<Amount>,
    /// `STRICT_FAILURE_TOLERANCE` or `SOFT_FAILURE_TOLERANCE`.
    pub concurrency_mode: String,
}

/// One region's ids, by image and fleet name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionValues {
    pub region: String,
    pub amis: BTreeMap<String, String>,
    pub subnets: BTreeMap<String, Vec<String>>,
    pub security_groups: BTreeMap<String, Vec<String>>,
}

/// The regions bake knows, by partition (botocore's `endpoints.json`, 2026). A stack set stays in one partition.
pub const PARTITIONS: &[(&str, &[&str])] = &[
    (
        "aws",
        &[
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "mx-central-1",
            "sa-east-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ],
    ),
    ("aws-cn", &["cn-north-1", "cn-northwest-1"]),
    ("aws-us-gov", &["us-gov-east-1", "us-gov-west-1"]),
    ("aws-iso", &["us-iso-east-1", "us-iso-west-1"]),
    ("aws-iso-b", &["us-isob-east-1"]),
    ("aws-iso-e", &["eu-isoe-west-1"]),
];

/// The partition of a known region.
pub fn partition_of(region: &str) -> Option<&'static str> {
    PARTITIONS
        .iter()
        .find(|(_, regions)| regions.contains(&region))
        .map(|(p, _)| *p)
}

/// What the check needs to know about the rest of the spec.
pub(super) struct Context<'a> {
    /// The stack's region: the stack set's administration region, whose values come from `image` and `fleet`.
    pub stack_region: Option<&'a str>,
    /// Every image and fleet name the spec defines (also those with errors of their own).
    pub image_names: Vec<&'a str>,
    pub fleet_names: Vec<&'a str>,
    /// The images and fleets that passed their checks.
    pub images: Vec<&'a ImagePlan>,
    pub fleets: Vec<&'a FleetPlan>,
    /// A promoted environment's stack set: the images its fleets run, each of which will be a pinned AMI (the
    /// lock's, in the stack's region), so each other region needs its AMI, built or not as written.
    pub promoted: Option<Vec<&'a str>>,
}

impl Context<'_> {
    /// Whether the template pins this image's AMI (so every region needs one).
    fn pinned(&self, image: &ImagePlan) -> bool {
        match image.source {
            ImageSource::Pinned { .. } => true,
            _ => self
                .promoted
                .as_ref()
                .is_some_and(|names| names.contains(&image.name.value.as_str())),
        }
    }
}

/// Checks a `stack-set` node. `None` when it has errors (all of them reported).
pub(super) fn stack_set(item: &Item, cx: &Context<'_>, diags: &mut Diags) -> Option<StackSetPlan> {
    let errors_before = diags.has_errors();
    let mut ok = true;
    let permission = permission(item, diags);
    let call_as = item.str_or_default("call-as")?;
    if call_as.value == "DELEGATED_ADMIN"
        && item
            .str("permission-model")
            .is_some_and(|m| m.value == "SELF_MANAGED")
    {
        diags.push(
            Diag::error(
                Code::StackSetPermissions,
                "a self-managed stack set is called as `SELF`",
            )
            .label(call_as.span, "delegated administrators exist only for service-managed stack sets")
            .help("use `permission-model=\"SERVICE_MANAGED\"` with a delegated administrator account, or drop `call-as`"),
        );
        ok = false;
    }
    let regions = regions(item, cx.stack_region, diags);
    let preferences = preferences(item, diags);
    let values = regions
        .as_ref()
        .and_then(|r| region_values(item, r, cx, diags));
    if !ok || (diags.has_errors() && !errors_before) {
        return None;
    }
    Some(StackSetPlan {
        permission: permission?,
        call_as: call_as.value,
        regions: regions?.into_iter().map(|r| r.value).collect(),
        preferences: preferences?,
        values: values?,
    })
}

fn permission(item: &Item, diags: &mut Diags) -> Option<Permission> {
    let model = item.str("permission-model")?;
    let self_managed = model.value == "SELF_MANAGED";
    // Settings of the other model, and the targets of the other model.
    let (foreign_props, own_targets, foreign_targets): (&[&str], &str, &str) = if self_managed {
        (
            &["auto-deployment", "retain-stacks-on-account-removal"],
            "accounts",
            "organizational-units",
        )
    } else {
        (
            &["administration-role", "execution-role"],
            "organizational-units",
            "accounts",
        )
    };
    let mut ok = true;
    for name in foreign_props {
        if let Some((_, v)) = item.props.iter().find(|(n, _)| n == name) {
            diags.push(
                Diag::error(
                    Code::StackSetPermissions,
                    format!("`{name}` does not apply to a {} stack set", model.value),
                )
                .label(v.span, format!("not used with {}", model.value))
                .label(model.span, "the permission model")
                .help(format!("remove `{name}`, or change `permission-model`")),
            );
            ok = false;
        }
    }
    if let Some(other) = item.child(foreign_targets) {
        diags.push(
            Diag::error(
                Code::StackSetPermissions,
                format!("a {} stack set deploys to `{own_targets}`, not `{foreign_targets}`", model.value),
            )
            .label(other.name_span, format!("not a target of {}", model.value))
            .label(model.span, "the permission model")
            .help(if self_managed {
                "self-managed stack sets name accounts; deploying to organizational units needs `permission-model=\"SERVICE_MANAGED\"` (Organizations trusted access)"
            } else {
                "service-managed stack sets deploy to organizational units (`organizational-units \"ou-…\"`); naming accounts needs `permission-model=\"SELF_MANAGED\"`"
            }),
        );
        ok = false;
    }
    let targets = match item.child(own_targets) {
        None => {
            diags.push(
                Diag::error(
                    Code::StackSetTargets,
                    format!("the stack set has no `{own_targets}` to deploy to"),
                )
                .label(item.name_span, format!("needs `{own_targets}`"))
                .help(if self_managed {
                    "add `accounts \"111111111111\" …`: the accounts that get a stack instance in each region"
                } else {
                    "add `organizational-units \"ou-…\"`: the OUs whose accounts get a stack instance in each region"
                }),
            );
            return None;
        }
        Some(node) => unique(node.arg_strs(), "target", diags)?,
    };
    if !ok {
        return None;
    }
    let targets: Vec<String> = targets.into_iter().map(|t| t.value).collect();
    Some(if self_managed {
        Permission::SelfManaged {
            accounts: targets,
            administration_role: item.str("administration-role").map(|r| r.value),
            execution_role: item
                .str("execution-role")
                .map_or_else(|| DEFAULT_EXECUTION_ROLE.to_owned(), |r| r.value),
        }
    } else {
        Permission::ServiceManaged {
            organizational_units: targets,
            auto_deployment: item.bool_or_default("auto-deployment")?.value,
            retain_stacks_on_account_removal: item
                .bool_or_default("retain-stacks-on-account-removal")?
                .value,
        }
    })
}

/// Values given once each; the second of a pair is blamed.
fn unique(
    values: Vec<Spanned<String>>,
    what: &str,
    diags: &mut Diags,
) -> Option<Vec<Spanned<String>>> {
    let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
    let mut ok = true;
    for v in &values {
        if let Some(first) = seen.insert(&v.value, v.span) {
            diags.push(
                Diag::error(
                    Code::StackSetTargets,
                    format!("{what} `{}` is given twice", v.value),
                )
                .label(v.span, "again here")
                .label(first, "first here")
                .help("give each once"),
            );
            ok = false;
        }
    }
    ok.then_some(values)
}

fn regions(
    item: &Item,
    stack_region: Option<&str>,
    diags: &mut Diags,
) -> Option<Vec<Spanned<String>>> {
    // `regions` is required: the shape check reported its absence.
    let regions = unique(item.child("regions")?.arg_strs(), "region", diags)?;
    let home = stack_region.and_then(partition_of);
    let mut ok = true;
    for r in &regions {
        match partition_of(&r.value) {
            None => {
                let known = PARTITIONS.iter().flat_map(|(_, rs)| rs.iter().copied());
                let mut d = Diag::error(
                    Code::StackSetRegion,
                    format!("`{}` is not an AWS region", r.value),
                )
                .label(r.span, "unknown region");
                d = match closest(&r.value, known) {
                    Some(c) => d.help(format!("did you mean `{c}`?")),
                    None => d.help("use a region name such as `us-east-1` or `eu-west-1`"),
                };
                diags.push(d);
                ok = false;
            }
            Some(p) if home.is_some_and(|h| h != p) => {
                diags.push(
                    Diag::error(
                        Code::StackSetRegion,
                        format!(
                            "region `{}` is in partition {p}, the stack's region `{}` in {}",
                            r.value,
                            stack_region.unwrap_or_default(),
                            home.unwrap_or_default()
                        ),
                    )
                    .label(r.span, format!("partition {p}"))
                    .help("a stack set deploys within its administration region's partition; use one spec per partition"),
                );
                ok = false;
            }
            Some(_) => {}
        }
    }
    ok.then_some(regions)
}

fn preferences(item: &Item, diags: &mut Diags) -> Option<Preferences> {
    let Some(p) = item.child("preferences") else {
        return Some(Preferences {
            region_concurrency: "SEQUENTIAL".into(),
            max_concurrent: None,
            failure_tolerance: None,
            concurrency_mode: "STRICT_FAILURE_TOLERANCE".into(),
        });
    };
    let mut ok = true;
    let mut pair = |count: &str, percentage: &str| -> Option<Amount> {
        match (p.int(count), p.int(percentage)) {
            (Some(c), Some(pc)) => {
                diags.push(
                    Diag::error(
                        Code::StackSetPreferences,
                        format!("`{count}` and `{percentage}` exclude each other"),
                    )
                    .label(c.span, "a count")
                    .label(pc.span, "and a percentage")
                    .help(format!(
                        "CloudFormation takes one of them; keep `{count}` or `{percentage}`"
                    )),
                );
                ok = false;
                None
            }
            // The schema bounds both to i32's range.
            (Some(c), None) => i32::try_from(c.value).ok().map(Amount::Count),
            (None, Some(pc)) => i32::try_from(pc.value).ok().map(Amount::Percentage),
            (None, None) => None,
        }
    };
    let max_concurrent = pair("max-concurrent-count", "max-concurrent-percentage");
    let failure_tolerance = pair("failure-tolerance-count", "failure-tolerance-percentage");
    let mode = p.str_or_default("concurrency-mode")?;
    if mode.value == "STRICT_FAILURE_TOLERANCE"
        && let Some(max) = p.int("max-concurrent-count")
    {
        let tolerance = p.int("failure-tolerance-count").map_or(0, |t| t.value);
        if p.int("failure-tolerance-percentage").is_none() && max.value > tolerance + 1 {
            diags.push(
                Diag::warning(
                    Code::StackSetPreferences,
                    format!(
                        "at most {} account(s) per region run at once: with STRICT_FAILURE_TOLERANCE the concurrency is capped at failure-tolerance-count + 1",
                        tolerance + 1
                    ),
                )
                .label(max.span, format!("{} has no effect beyond {}", max.value, tolerance + 1))
                .help("raise `failure-tolerance-count`, or set `concurrency-mode=\"SOFT_FAILURE_TOLERANCE\"` to run at this concurrency whatever fails"),
            );
        }
    }
    ok.then(|| Preferences {
        region_concurrency: p
            .str_or_default("region-concurrency")
            .map_or_else(|| "SEQUENTIAL".into(), |r| r.value),
        max_concurrent,
        failure_tolerance,
        concurrency_mode: mode.value,
    })
}

/// Each target region's ids: from its `region` block, or for the stack's region from the `image` and `fleet`
/// nodes. Everything a region lacks is reported at that region in `regions`.
fn region_values(
    item: &Item,
    regions: &[Spanned<String>],
    cx: &Context<'_>,
    diags: &mut Diags,
) -> Option<Vec<RegionValues>> {
    let mut ok = true;
    let mut blocks: BTreeMap<String, RegionValues> = BTreeMap::new();
    for block in item.children_named("region") {
        let Some(name) = block.arg_str(0) else {
            ok = false;
            continue;
        };
        if Some(name.value.as_str()) == cx.stack_region {
            diags.push(
                Diag::error(
                    Code::StackSetRegion,
                    format!("`{}` is the stack's region: its values come from the `image` and `fleet` nodes", name.value),
                )
                .label(name.span, "the stack's own region")
                .help("give the stack region's AMI as `base ami=…` and its subnets in the fleet; `region` blocks are for the other regions"),
            );
            ok = false;
            continue;
        }
        if !regions.iter().any(|r| r.value == name.value) {
            diags.push(
                Diag::error(
                    Code::StackSetRegion,
                    format!("`{}` is not one of the stack set's regions", name.value),
                )
                .label(name.span, "not in `regions`")
                .help(format!(
                    "add \"{}\" to `regions`, or remove this block",
                    name.value
                )),
            );
            ok = false;
            continue;
        }
        if blocks.contains_key(&name.value) {
            diags.push(
                Diag::error(
                    Code::Duplicate,
                    format!("region `{}` has two `region` blocks", name.value),
                )
                .label(name.span, "again here")
                .help("merge them into one"),
            );
            ok = false;
            continue;
        }
        let mut values = RegionValues {
            region: name.value.clone(),
            ..RegionValues::default()
        };
        ok &= block_values(block, cx, &mut values, diags);
        blocks.insert(name.value, values);
    }
    let mut out = Vec::new();
    for region in regions {
        let values = if Some(region.value.as_str()) == cx.stack_region {
            home_values(&region.value, cx)
        } else {
            blocks
                .remove(&region.value)
                .unwrap_or_else(|| RegionValues {
                    region: region.value.clone(),
                    ..RegionValues::default()
                })
        };
        ok &= complete(region, &values, cx, diags);
        out.push(values);
    }
    ok.then_some(out)
}

/// The stack region's values: each pinned image's `base ami`, each fleet's subnets and security groups.
fn home_values(region: &str, cx: &Context<'_>) -> RegionValues {
    let mut v = RegionValues {
        region: region.to_owned(),
        ..RegionValues::default()
    };
    for image in &cx.images {
        if let ImageSource::Pinned { ami } = &image.source {
            v.amis.insert(image.name.value.clone(), ami.clone());
        }
    }
    for fleet in &cx.fleets {
        v.subnets
            .insert(fleet.name.value.clone(), fleet.subnets.clone());
        if !fleet.security_groups.is_empty() {
            v.security_groups
                .insert(fleet.name.value.clone(), fleet.security_groups.clone());
        }
    }
    v
}

/// Reads one `region` block; false when it had errors.
fn block_values(
    block: &Item,
    cx: &Context<'_>,
    values: &mut RegionValues,
    diags: &mut Diags,
) -> bool {
    let mut ok = true;
    for child in &block.children {
        let (kind, key) = match child.name() {
            "image" => ("image", child.arg_str(0)),
            _ => ("fleet", child.str("fleet")),
        };
        let Some(key) = key else {
            ok = false;
            continue;
        };
        let names = if kind == "image" {
            &cx.image_names
        } else {
            &cx.fleet_names
        };
        if !names.contains(&key.value.as_str()) {
            let mut d = Diag::error(
                Code::StackSetRegionValue,
                format!("the spec has no {kind} `{}`", key.value),
            )
            .label(key.span, format!("unknown {kind}"));
            if let Some(c) = closest(&key.value, names.iter().copied()) {
                d = d.help(format!("did you mean `{c}`?"));
            }
            diags.push(d);
            ok = false;
            continue;
        }
        let map_has = match child.name() {
            "image" => values.amis.contains_key(&key.value),
            "subnets" => values.subnets.contains_key(&key.value),
            _ => values.security_groups.contains_key(&key.value),
        };
        if map_has {
            diags.push(
                Diag::error(
                    Code::Duplicate,
                    format!(
                        "`{}` for {kind} `{}` is given twice in region `{}`",
                        child.name(),
                        key.value,
                        values.region
                    ),
                )
                .label(child.name_span, "again here")
                .help("give it once per region"),
            );
            ok = false;
            continue;
        }
        match child.name() {
            "image" => {
                let image = cx.images.iter().find(|i| i.name.value == key.value);
                if let Some(ImagePlan {
                    source: ImageSource::Built(_),
                    ..
                }) = image
                    && cx.promoted.is_none()
                {
                    // Reported once for the image by `built_images`.
                    continue;
                }
                if let Some(ami) = child.str("ami") {
                    values.amis.insert(key.value, ami.value);
                } else {
                    ok = false;
                }
            }
            "subnets" => {
                let ids = child.arg_strs().into_iter().map(|s| s.value).collect();
                values.subnets.insert(key.value, ids);
            }
            _ => {
                let ids = child.arg_strs().into_iter().map(|s| s.value).collect();
                values.security_groups.insert(key.value, ids);
            }
        }
    }
    ok
}

/// Whether a region has every value the template needs there; reports each missing one at the region.
fn complete(
    region: &Spanned<String>,
    values: &RegionValues,
    cx: &Context<'_>,
    diags: &mut Diags,
) -> bool {
    // (message, help) for each value the region lacks.
    let mut missing: Vec<(String, String)> = Vec::new();
    let add = |what: &str, line: &str| {
        (
            format!("region `{}` needs {what}", region.value),
            format!(
                "add `{line}` to the stack set's `region \"{}\" {{ … }}` block; ids are regional (copy the AMI with `aws ec2 copy-image` and share it with the target accounts)",
                region.value
            ),
        )
    };
    for image in &cx.images {
        // The stack's region runs a promoted image's AMI from the lock (`environments::promotion`).
        let from_lock = !matches!(image.source, ImageSource::Pinned { .. })
            && cx.stack_region == Some(region.value.as_str());
        if cx.pinned(image) && !from_lock && !values.amis.contains_key(&image.name.value) {
            missing.push(add(
                &format!("an AMI id for image `{}`", image.name.value),
                &format!("image \"{}\" ami=\"ami-…\"", image.name.value),
            ));
        }
    }
    for fleet in &cx.fleets {
        let name = &fleet.name.value;
        if !values.subnets.contains_key(name) {
            missing.push(add(
                &format!("subnets for fleet `{name}`"),
                &format!("subnets \"subnet-…\" fleet=\"{name}\""),
            ));
        }
        let wants_groups = !fleet.security_groups.is_empty();
        let has_groups = values.security_groups.contains_key(name);
        if wants_groups && !has_groups {
            missing.push(add(
                &format!("security groups for fleet `{name}`"),
                &format!("security-groups \"sg-…\" fleet=\"{name}\""),
            ));
        } else if has_groups && !wants_groups {
            missing.push((
                format!(
                    "fleet `{name}` has security groups in region `{}` but none in the stack's region",
                    region.value
                ),
                format!(
                    "give the `fleet \"{name}\"` node its `security-groups` too (every region runs the same template), or remove them from this region"
                ),
            ));
        }
    }
    for (message, help) in &missing {
        diags.push(
            Diag::error(Code::StackSetRegionValue, message.clone())
                .label(region.span, "a stack instance here would lack it")
                .help(help.clone()),
        );
    }
    missing.is_empty()
}

/// Images built by Image Builder cannot be part of a stack set: reported once per image, at its `base`.
pub(super) fn built_images(item: &Item, images: &[&ImagePlan], diags: &mut Diags) {
    for image in images {
        if let ImageSource::Built(build) = &image.source {
            diags.push(
                Diag::error(
                    Code::StackSetBuiltImage,
                    format!(
                        "image `{}` is built by Image Builder; a stack set deploys pinned AMIs only",
                        image.name.value
                    ),
                )
                .label(build.base_parameter.span, "built from this parameter")
                .label(item.name_span, "deployed through this stack set")
                .help("bake and test the image in a single-region stack (staging), then pin that AMI: `base ami=\"ami-…\"` here and `region \"…\" { image \"…\" ami=\"ami-…\" }` for each other region (docs/stacksets.md)"),
            );
        }
    }
}
