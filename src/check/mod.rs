//! Stage 2: `Tree` → `Plan`.
//!
//! Input: the shape-checked tree. Output: a plan, when no error was found, and every semantic problem: sizes,
//! rollout constraints, references, architectures, names AWS would reject, reproducibility warnings.
//! This stage never reads files, the lock or the network.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

mod arch;
mod fleet;
pub mod image;
pub mod plan;
mod retention;
pub mod rollback;
mod tags;

use std::collections::BTreeMap;

use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};
use crate::spec::grammar::parse_duration;
use crate::spec::schema::code_list;
use crate::spec::suggest::closest;
use crate::spec::{Item, Tree};
pub use arch::instance_arch;
use plan::{
    Arch, BuildPlan, FlakePlan, FleetPlan, ImagePlan, ImageSource, Installer, InstallerKind, Plan,
    Rollout, Signals, StackPlan, SystemManagerSource,
};

/// The AL2023 public parameter tree.
pub const AL2023_PREFIX: &str = "/aws/service/ami-amazon-linux-latest/";

const PAUSE_MAX_SECS: u64 = 3600;
const SIGNAL_TIMEOUT_MAX_SECS: u64 = 12 * 3600;
const BUILD_TIMEOUT_MAX_SECS: u64 = 48 * 3600;
const CHECKPOINT_DELAY_MAX_SECS: u64 = 48 * 3600;
/// Image Builder names are at most 128 characters; bake's longest suffix is `-bootstrap`.
const IMAGE_BUILDER_NAME_MAX: usize = 128;
const LONGEST_SUFFIX: &str = "-bootstrap";

/// Checks a spec's meaning. The plan is `Some` only when no error was found (warnings allowed). A tree that had
/// shape errors may yield no plan and no further diagnostics: the shape errors already explain why.
pub fn check(tree: &Tree) -> (Option<Plan>, Vec<Diag>) {
    let mut diags = Diags::default();
    let stack = tree.first("stack").and_then(stack_plan);
    let images = images(tree, stack.as_ref(), &mut diags);
    let fleets = fleets(tree, &images, &mut diags);
    warn_unused_images(tree, &images, &mut diags);
    tags::check(tree, &mut diags);
    let images = add_signal_rpms(images, &fleets);
    let images: Option<Vec<ImagePlan>> = images.into_iter().map(|(_, i)| i).collect();
    let fleets: Option<Vec<FleetPlan>> = fleets.into_iter().collect();
    let plan = match (stack, images, fleets) {
        (Some(stack), Some(images), Some(fleets)) => Some(Plan {
            stack,
            images,
            fleets,
        }),
        _ => None,
    };
    let mut diags = diags.into_vec();
    crate::diag::sort(&mut diags);
    let plan = if crate::diag::has_errors(&diags) {
        None
    } else {
        plan
    };
    (plan, diags)
}

fn stack_plan(item: &Item) -> Option<StackPlan> {
    Some(StackPlan {
        name: item.arg_str(0)?.value,
        region: item.str("region")?.value,
        account: item.str("account").map(|a| a.value),
        tags: item
            .child("tags")
            .map(|t| {
                t.free_props
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.value.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The CloudFormation logical-id stem of a name: `web-2` → `Web2`.
pub fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

/// Names must be unique, and distinct after the transformations AWS applies.
fn unique_names<'a>(kind: &str, items: impl Iterator<Item = &'a Item>, diags: &mut Diags) {
    let mut seen: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    for item in items {
        let Some(name) = item.arg_str(0) else {
            continue;
        };
        let key = pascal(&name.value);
        if let Some(first) = seen.get(&key) {
            if first.value == name.value {
                diags.push(
                    Diag::error(
                        Code::Duplicate,
                        format!("two {kind}s are named `{}`", name.value),
                    )
                    .label(name.span, "defined again here")
                    .label(first.span, "first defined here")
                    .help(format!("{kind} names must be unique in a spec")),
                );
            } else {
                diags.push(
                    Diag::error(
                        Code::NameCollision,
                        format!(
                            "{kind} names `{}` and `{}` collide",
                            first.value, name.value
                        ),
                    )
                    .label(
                        name.span,
                        format!("becomes `{key}` in CloudFormation logical ids"),
                    )
                    .label(first.span, "so does this one"),
                );
            }
        } else {
            seen.insert(key, name);
        }
    }
}

type NamedImage = (Option<Spanned<String>>, Option<ImagePlan>);

fn images(tree: &Tree, stack: Option<&StackPlan>, diags: &mut Diags) -> Vec<NamedImage> {
    unique_names("image", tree.all("image"), diags);
    let stack_name = stack.map(|s| s.name.clone());
    tree.all("image")
        .map(|item| {
            let name = item.arg_str(0);
            if let (Some(name), Some(stack_name)) = (&name, &stack_name) {
                let total = stack_name.len() + 1 + name.value.len() + LONGEST_SUFFIX.len();
                if total > IMAGE_BUILDER_NAME_MAX {
                    diags.push(
                        Diag::error(Code::NameTooLong, format!("image name `{}` is too long for this stack", name.value))
                            .label(name.span, format!("`{stack_name}-{}{LONGEST_SUFFIX}` has {total} characters", name.value))
                            .help(format!("Image Builder names have at most {IMAGE_BUILDER_NAME_MAX} characters; shorten the stack or image name")),
                    );
                }
            }
            let plan = image_plan(item, name.clone(), diags);
            (name, plan)
        })
        .collect()
}

fn image_plan(item: &Item, name: Option<Spanned<String>>, diags: &mut Diags) -> Option<ImagePlan> {
    let base = item.child("base")?;
    let ssm = base.str("ssm");
    let ami = base.str("ami");
    let arch_prop = base.str("arch");
    let mut arch = arch_prop.as_ref().and_then(|a| Arch::parse(&a.value));
    let source = match (ssm, ami) {
        (Some(_), Some(ami)) => {
            diags.push(
                Diag::error(Code::NotAllowed, "`base` takes `ssm` or `ami`, not both")
                    .label(ami.span, "pinned AMI")
                    .label(base.str("ssm").map_or(base.name_span, |s| s.span), "SSM parameter")
                    .help("use `ssm` to build from the latest AL2023 AMI, or `ami` to run an existing AMI without a build"),
            );
            return None;
        }
        (None, None) => {
            diags.push(
                Diag::error(Code::Missing, "`base` needs `ssm` or `ami`")
                    .label(base.name_span, "no base AMI given")
                    .help(format!(
                        "for example:\n    base ssm=\"{AL2023_PREFIX}al2023-ami-kernel-6.12-x86_64\"\nor, to run an existing AMI without a build:\n    base ami=\"ami-0123456789abcdef0\" arch=\"x86_64\""
                    )),
            );
            return None;
        }
        (None, Some(ami)) => {
            for child in [
                "nix",
                "flake",
                "system-manager",
                "rpms",
                "build",
                "delete-old-amis",
                "image-tests",
            ] {
                for c in item.children_named(child) {
                    diags.push(
                        Diag::error(
                            Code::PinnedImageBuild,
                            format!("`{child}` has no effect on a pinned AMI"),
                        )
                        .label(c.name_span, "this is for built images")
                        .label(
                            ami.span,
                            "the image is pinned to this AMI, so it is not built",
                        )
                        .help(format!(
                            "remove `{child}`, or build the image from `base ssm=...`"
                        )),
                    );
                }
            }
            Some(ImageSource::Pinned { ami: ami.value })
        }
        (Some(param), None) => {
            if let Some(from_name) = parameter_arch(&param.value) {
                if let (Some(given), Some(span)) = (arch, arch_prop.as_ref().map(|a| a.span))
                    && given != from_name
                {
                    diags.push(
                        Diag::error(Code::Architecture, "`arch` contradicts the SSM parameter")
                            .label(span, format!("says {}", given.as_str()))
                            .label(param.span, format!("names an {} AMI", from_name.as_str()))
                            .help("remove `arch`: bake reads it from the parameter name"),
                    );
                }
                arch = Some(from_name);
            }
            check_parameter(&param, diags);
            build_plan(item, param, arch, arch_prop.is_some(), diags)
                .map(|b| ImageSource::Built(Box::new(b)))
        }
    };
    if let (Some(arch), Some(build)) = (arch, item.child("build")) {
        for t in build.arg_strs() {
            check_arch(&t, arch, base.name_span, "the build instance", diags);
        }
    }
    Some(ImagePlan {
        name: name?,
        arch,
        source: source?,
        base_span: base.name_span,
    })
}

/// The architecture an AL2023 parameter name ends in.
fn parameter_arch(param: &str) -> Option<Arch> {
    if param.ends_with("-x86_64") {
        Some(Arch::X86_64)
    } else if param.ends_with("-arm64") {
        Some(Arch::Arm64)
    } else {
        None
    }
}

fn check_parameter(param: &Spanned<String>, diags: &mut Diags) {
    let Some(leaf) = param.value.strip_prefix(AL2023_PREFIX) else {
        diags.push(
            Diag::warning(Code::NotAl2023, "the base parameter is not an Amazon Linux 2023 public parameter")
                .label(param.span, "bake cannot tell what this AMI is")
                .help(format!("bake's bootstrap assumes AL2023 (dnf, systemd). The public parameters are under {AL2023_PREFIX}, e.g. al2023-ami-kernel-6.12-x86_64")),
        );
        return;
    };
    if !leaf.starts_with("al2023-ami-") {
        diags.push(
            Diag::error(Code::NotAl2023, "the base parameter names an AMI that is not Amazon Linux 2023")
                .label(param.span, "not an al2023-ami-* parameter")
                .help("bake bakes Amazon Linux 2023; use e.g. /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"),
        );
        return;
    }
    if leaf.contains("kernel-default") {
        let pinned = leaf.replace("kernel-default", "kernel-6.12");
        diags.push(
            Diag::warning(
                Code::MovingLineage,
                "`kernel-default` moves to new kernels over time",
            )
            .label(
                param.span,
                "this lineage changes kernel when AL2023 updates its default",
            )
            .help(format!(
                "pin a kernel for reproducible images: {AL2023_PREFIX}{pinned}"
            )),
        );
    }
}

fn check_arch(
    instance_type: &Spanned<String>,
    image_arch: Arch,
    image_span: Span,
    what: &str,
    diags: &mut Diags,
) {
    let Some(type_arch) = instance_arch(&instance_type.value) else {
        return;
    };
    if type_arch != image_arch {
        let suggestion = match image_arch {
            Arch::Arm64 => "a Graviton type such as m7g.large",
            Arch::X86_64 => "an x86_64 type such as m7i.large",
        };
        diags.push(
            Diag::error(
                Code::Architecture,
                format!(
                    "{what} type `{}` is {}, the image is {}",
                    instance_type.value,
                    type_arch.as_str(),
                    image_arch.as_str()
                ),
            )
            .label(
                instance_type.span,
                format!("{} instance type", type_arch.as_str()),
            )
            .label(image_span, format!("{} image", image_arch.as_str()))
            .help(format!(
                "use {suggestion}, or an image of the other architecture"
            )),
        );
    }
}

fn build_plan(
    item: &Item,
    base_parameter: Spanned<String>,
    arch: Option<Arch>,
    arch_given: bool,
    diags: &mut Diags,
) -> Option<BuildPlan> {
    let nix = item.child("nix");
    let flake = item.child("flake");
    for (node, example) in [
        (nix, "nix installer=\"determinate\" version=\"3.1.1\""),
        (
            flake,
            "flake \"git+https://github.com/acme/infra.git\" ref=\"main\" output=\"systemConfigs.web\"",
        ),
    ] {
        if node.is_none() {
            let name = if example.starts_with("nix") {
                "nix"
            } else {
                "flake"
            };
            diags.push(
                Diag::error(Code::Missing, format!("a built image needs `{name}`"))
                    .label(item.name_span, format!("no `{name}` in this image"))
                    .help(format!("add, for example:\n    {example}")),
            );
        }
    }
    let (rpms, minimal_replacements) = image::rpms(
        item,
        flake.and_then(|f| f.arg_str(0)).map(|u| u.value).as_deref(),
        diags,
    );
    if arch.is_none() && !arch_given {
        diags.push(image::unknown_arch(&base_parameter));
    }
    let build = item.child("build");
    let mut instance_types = Vec::new();
    let mut subnet = None;
    let mut security_group = None;
    let mut volume_gib = 30;
    let mut volume_type = "gp3".to_owned();
    let mut timeout_secs = 7200;
    if let Some(b) = build {
        instance_types = b.arg_strs().into_iter().map(|s| s.value).collect();
        let sn = b.str("subnet");
        security_group = b.str("security-group").map(|s| s.value);
        if let (Some(sn), None) = (&sn, &security_group) {
            diags.push(
                Diag::error(Code::SubnetNeedsSecurityGroup, "a build subnet needs a security group")
                    .label(sn.span, "subnet given")
                    .label(b.name_span, "no `security-group`")
                    .help("Image Builder requires security groups with a subnet; add security-group=\"sg-...\" (outbound HTTPS allowed)"),
            );
        }
        subnet = sn.map(|s| s.value);
        volume_gib = b
            .int_or_default("volume-gib")
            .map_or(30, |v| u32::try_from(v.value).unwrap_or(30));
        if let Some(t) = b.str_or_default("volume-type") {
            volume_type = t.value;
        }
        if let Some(t) = b.str_or_default("timeout") {
            timeout_secs = duration_within(&t, BUILD_TIMEOUT_MAX_SECS, "build `timeout`", diags)?;
        }
    }
    let (nix, flake) = (nix?, flake?);
    let installer = Installer {
        kind: match nix.str_or_default("installer")?.value.as_str() {
            "upstream" => InstallerKind::Upstream,
            _ => InstallerKind::Determinate,
        },
        version: nix.str("version")?.value,
    };
    let sm = item.child("system-manager");
    let system_manager = match sm.and_then(|s| s.str("rev")) {
        Some(rev) => {
            if let Some(input) = sm.and_then(|s| s.str("input")) {
                diags.push(
                    Diag::error(
                        Code::NotAllowed,
                        "`system-manager` takes `input` or `rev`, not both",
                    )
                    .label(rev.span, "pinned revision")
                    .label(input.span, "flake input"),
                );
            }
            SystemManagerSource::Rev(rev.value)
        }
        None => SystemManagerSource::Input(
            sm.and_then(|s| s.str_or_default("input"))
                .map_or_else(|| "system-manager".to_owned(), |s| s.value),
        ),
    };
    Some(BuildPlan {
        base_parameter,
        arch: arch?,
        installer,
        installer_span: nix.name_span,
        flake: FlakePlan {
            url: flake.arg_str(0)?.value,
            git_ref: flake.str("ref").map(|r| r.value),
            output: flake.str("output")?.value,
            checkout: flake.str("checkout").map(|c| c.value),
            span: flake.name_span,
        },
        system_manager,
        system_manager_span: sm.map_or(flake.name_span, |s| s.name_span),
        rpms,
        minimal_replacements,
        pin_registry: nix.bool_or_default("pin-registry").is_none_or(|b| b.value),
        instance_types,
        subnet,
        security_group,
        volume_gib,
        volume_type,
        timeout_secs,
        delete_old_amis: item
            .child("delete-old-amis")
            .and_then(|d| d.arg_bool(0))
            .is_some_and(|b| b.value),
        keep_amis: retention::keep_amis(item, diags),
        image_tests: item
            .child("image-tests")
            .and_then(|d| d.arg_bool(0))
            .is_some_and(|b| b.value),
    })
}

fn duration_within(
    value: &Spanned<String>,
    max_secs: u64,
    what: &str,
    diags: &mut Diags,
) -> Option<u64> {
    // The grammar already accepted the text, so it parses.
    let secs = parse_duration(&value.value).ok()?;
    if secs == 0 || secs > max_secs {
        diags.push(
            Diag::error(Code::Duration, format!("{what} is out of range"))
                .label(value.span, format!("{secs} seconds"))
                .help(format!(
                    "CloudFormation accepts 1 to {max_secs} seconds ({}) here",
                    human_secs(max_secs)
                )),
        );
        return None;
    }
    Some(secs)
}

fn human_secs(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("PT{}H", secs / 3600)
    } else {
        format!("PT{secs}S")
    }
}

fn fleets(tree: &Tree, images: &[NamedImage], diags: &mut Diags) -> Vec<Option<FleetPlan>> {
    unique_names("fleet", tree.all("fleet"), diags);
    tree.all("fleet")
        .map(|item| fleet_plan(item, images, diags))
        .collect()
}

fn fleet_plan(item: &Item, images: &[NamedImage], diags: &mut Diags) -> Option<FleetPlan> {
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
        check_arch(t, arch, img.name.span, "the fleet's instance", diags);
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
        .and_then(|r| rollout_plan(r, max.as_ref(), running, diags));

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

fn rollout_plan(
    item: &Item,
    max: Option<&Spanned<i128>>,
    running: Option<&Spanned<i128>>,
    diags: &mut Diags,
) -> Option<Rollout> {
    let strategy = item.arg_str(0)?;
    match strategy.value.as_str() {
        "rolling" => rolling(item, max, running, diags),
        "replacing" => {
            let Some(timeout) = item.str("signal-timeout") else {
                diags.push(
                    Diag::error(Code::Missing, "a `replacing` rollout needs `signal-timeout`")
                        .label(strategy.span, "the new group must signal before it replaces the old one")
                        .help("add e.g. signal-timeout=\"PT15M\": how long CloudFormation waits for the new instances"),
                );
                return None;
            };
            Some(Rollout::Replacing {
                signals: signals(item, &timeout, diags)?,
            })
        }
        _ => refresh(item, diags),
    }
}

fn signals(item: &Item, timeout: &Spanned<String>, diags: &mut Diags) -> Option<Signals> {
    let timeout_secs =
        duration_within(timeout, SIGNAL_TIMEOUT_MAX_SECS, "`signal-timeout`", diags)?;
    Some(Signals {
        timeout: timeout.value.clone(),
        timeout_secs,
        ready_unit: item.str_or_default("ready-unit")?.value,
        ready_command: item.str("ready-command").map(|c| c.value),
        min_success_percent: item
            .int("min-success-percent")
            .and_then(|p| u32::try_from(p.value).ok()),
    })
}

fn rolling(
    item: &Item,
    max: Option<&Spanned<i128>>,
    running: Option<&Spanned<i128>>,
    diags: &mut Diags,
) -> Option<Rollout> {
    let mut ok = true;
    let min_in_service = item.int_or_default("min-in-service")?;
    if let Some(max) = max
        && min_in_service.value >= max.value
    {
        ok = false;
        diags.push(
            Diag::error(
                Code::MinInService,
                "`min-in-service` must be below the group's `max`",
            )
            .label(
                min_in_service.span,
                format!("min-in-service is {}", min_in_service.value),
            )
            .label(max.span, format!("max is {}", max.value))
            .help("CloudFormation needs room above min-in-service to launch new instances"),
        );
    } else if let Some(running) = running
        && min_in_service.value > running.value
    {
        ok = false;
        diags.push(
            Diag::error(
                Code::MinInService,
                "`min-in-service` is above the group's desired size",
            )
            .label(
                min_in_service.span,
                format!("min-in-service is {}", min_in_service.value),
            )
            .label(running.span, format!("the group runs {}", running.value))
            .help("the update would wait for instances that never exist; lower min-in-service"),
        );
    }
    let pause = item.str("pause");
    if let Some(p) = &pause {
        ok &= duration_within(p, PAUSE_MAX_SECS, "`pause`", diags).is_some();
    }
    let wait = item.bool_or_default("wait-for-signals")?;
    let signals = if wait.value {
        match &pause {
            None => {
                diags.push(
                    Diag::error(Code::SignalsNeedPause, "`wait-for-signals` needs a `pause`")
                        .label(wait.span, "instances signal")
                        .label(item.name_span, "no `pause` given")
                        .help("with signals, `pause` is how long CloudFormation waits for each batch; add e.g. pause=\"PT10M\" (at most PT1H)"),
                );
                None
            }
            Some(p) => {
                let timeout = item.str("signal-timeout").unwrap_or_else(|| p.clone());
                signals(item, &timeout, diags)
            }
        }
    } else {
        for name in [
            "min-success-percent",
            "signal-timeout",
            "ready-unit",
            "ready-command",
        ] {
            if let Some(span) = item
                .props
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.span)
            {
                ok = false;
                diags.push(
                    Diag::error(
                        Code::SuccessPercentNeedsSignals,
                        format!("`{name}` needs `wait-for-signals=#true`"),
                    )
                    .label(span, "only used when instances signal")
                    .help("add wait-for-signals=#true and a pause, or remove this property"),
                );
            }
        }
        None
    };
    if wait.value && signals.is_none() {
        return None;
    }
    let suspend = fleet::suspended_processes(item);
    ok.then(|| Rollout::Rolling {
        max_batch: item
            .int_or_default("max-batch")
            .and_then(|v| u32::try_from(v.value).ok())
            .unwrap_or(1),
        min_in_service: u32::try_from(min_in_service.value).unwrap_or(0),
        pause: pause.map(|p| p.value),
        signals,
        suspend,
    })
}

fn refresh(item: &Item, diags: &mut Diags) -> Option<Rollout> {
    let mut ok = true;
    let min_healthy = item.int_or_default("min-healthy")?;
    let max_healthy = item.int_or_default("max-healthy")?;
    if min_healthy.value >= max_healthy.value || max_healthy.value - min_healthy.value > 100 {
        ok = false;
        diags.push(
            Diag::error(
                Code::HealthyPercent,
                "`min-healthy` and `max-healthy` leave the refresh no room",
            )
            .label(
                min_healthy.span,
                format!("min-healthy is {}", min_healthy.value),
            )
            .label(
                max_healthy.span,
                format!("max-healthy is {}", max_healthy.value),
            )
            .help("EC2 Auto Scaling needs min-healthy < max-healthy, at most 100 apart"),
        );
    }
    let warmup_secs = match item.str("warmup") {
        Some(w) => Some(duration_within(
            &w,
            CHECKPOINT_DELAY_MAX_SECS,
            "`warmup`",
            diags,
        )?),
        None => None,
    };
    let checkpoints_node = item.child("checkpoints");
    let checkpoints = checkpoints_node.map(Item::arg_ints).unwrap_or_default();
    for pair in checkpoints.windows(2) {
        if pair[1].value <= pair[0].value {
            ok = false;
            diags.push(
                Diag::error(Code::Checkpoints, "checkpoints must rise")
                    .label(pair[1].span, format!("{} comes after {}", pair[1].value, pair[0].value))
                    .label(pair[0].span, "previous checkpoint")
                    .help("list checkpoint percentages in increasing order, e.g. `checkpoints 25 50 100`"),
            );
        }
    }
    let checkpoint_delay_secs = match item.str("checkpoint-delay") {
        Some(d) => {
            if checkpoints.is_empty() {
                ok = false;
                diags.push(
                    Diag::error(Code::Checkpoints, "`checkpoint-delay` needs `checkpoints`")
                        .label(d.span, "there is no checkpoint to wait at")
                        .help("add a child node, e.g. `rollout \"instance-refresh\" checkpoint-delay=\"PT10M\" { checkpoints 50 100 }`"),
                );
            }
            Some(duration_within(
                &d,
                CHECKPOINT_DELAY_MAX_SECS,
                "`checkpoint-delay`",
                diags,
            )?)
        }
        None => None,
    };
    let ready = fleet::refresh_readiness(item, diags);
    let ready = ready?;
    ok.then(|| Rollout::InstanceRefresh {
        min_healthy: u32::try_from(min_healthy.value).unwrap_or(90),
        max_healthy: u32::try_from(max_healthy.value).unwrap_or(100),
        warmup_secs,
        checkpoints: checkpoints
            .iter()
            .filter_map(|c| u32::try_from(c.value).ok())
            .collect(),
        checkpoint_delay_secs,
        skip_matching: item
            .bool_or_default("skip-matching")
            .is_none_or(|b| b.value),
        ready,
    })
}

/// Warns about images no fleet names. Reads the fleets' `image=` from the tree, so a fleet with other errors
/// still counts as a user.
fn warn_unused_images(tree: &Tree, images: &[NamedImage], diags: &mut Diags) {
    let used: Vec<String> = tree
        .all("fleet")
        .filter_map(|f| f.str("image"))
        .map(|s| s.value)
        .collect();
    if tree.all("fleet").next().is_none() {
        return;
    }
    for (name, _) in images {
        let Some(name) = name else { continue };
        if !used.contains(&name.value) {
            diags.push(
                Diag::warning(
                    Code::UnusedImage,
                    format!("no fleet uses image `{}`", name.value),
                )
                .label(name.span, "built on every deploy, but nothing runs it")
                .help("remove the image, or point a fleet's `image=` at it"),
            );
        }
    }
}

/// Images whose fleets signal CloudFormation need cfn-signal, which AL2023 ships in `aws-cfn-bootstrap`.
fn add_signal_rpms(mut images: Vec<NamedImage>, fleets: &[Option<FleetPlan>]) -> Vec<NamedImage> {
    for fleet in fleets.iter().flatten() {
        if fleet.rollout.signals().is_none() {
            continue;
        }
        if let Some((
            _,
            Some(ImagePlan {
                source: ImageSource::Built(build),
                ..
            }),
        )) = images.get_mut(fleet.image)
            && !build.rpms.iter().any(|r| r == "aws-cfn-bootstrap")
        {
            build.rpms.push("aws-cfn-bootstrap".to_owned());
        }
    }
    images
}
