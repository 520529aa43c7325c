//! What a built image's build needs: the Nix installer, the flake, system-manager, and the Image Builder build
//! instance (types, subnet, security group, volume, timeout).

use super::duration_within;
use super::plan::{Arch, BuildPlan, FlakePlan, Installer, InstallerKind, SystemManagerSource};
use super::retention;
use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Item;

const BUILD_TIMEOUT_MAX_SECS: u64 = 48 * 3600;

pub(super) fn build_plan(
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
    let closure = super::closure::closure_plan(item, diags);
    // With a prebuilt closure the build instance never fetches the flake, so it needs no git for it.
    let (rpms, minimal_replacements) = super::image::rpms(
        item,
        flake
            .filter(|_| closure.is_none())
            .and_then(|f| f.arg_str(0))
            .map(|u| u.value)
            .as_deref(),
        diags,
    );
    if arch.is_none() && !arch_given {
        diags.push(super::image::unknown_arch(&base_parameter));
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
    let fetch =
        super::credentials::fetch_plan(item, flake.and_then(|f| f.arg_str(0)).as_ref(), diags);
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
    let fetch = fetch?;
    // A prebuilt closure is substituted from the cache: nothing reads the repository, so a secret to read it with
    // would only be access for nothing (the proxy still serves the cache).
    if let Some(closure) = &closure
        && let Some((_, span)) = fetch.sources().first()
    {
        diags.push(
            Diag::error(
                Code::ClosureCredentials,
                "an image with a prebuilt `closure` reads no repository, so it needs no `fetch` credentials",
            )
            .label(*span, "the build role would read this secret for nothing")
            .label(closure.span, "the closure comes from the binary cache")
            .help("remove the `token` and `ssh-key` lines (a `proxy` may stay: the cache is fetched through it)"),
        );
    }
    Some(BuildPlan {
        base_parameter,
        base_max_age_days: item
            .child("base")
            .and_then(|b| b.str_or_default("max-age"))
            .and_then(|d| crate::spec::grammar::parse_days(&d.value).ok())
            .unwrap_or(90),
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
        closure,
        fetch,
    })
}
