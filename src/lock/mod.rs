//! Stage 3: `Plan` + `Lock` → `Resolved`.
//!
//! Input: the plan and the lock file's content. Output: per image, the exact AMI and flake revisions to build
//! from — or a diagnostic at the spec node whose lock entry is missing or stale. This module never resolves
//! anything itself: only `bake lock` asks the outside world.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

pub mod file;
// `bake lock`'s lookups: SSM, `nix flake metadata`, git and the lock file. The rest of the lock stage is pure.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod live;
pub mod nix;
pub mod report;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod resolve;
pub mod time;

use crate::check::plan::{
    BuildPlan, FlakePlan, ImageSource, Installer, Plan, StackPlan, SystemManagerSource,
};
use crate::diag::{Code, Diag, Diags};
use crate::spec::grammar::{Grammar, check_safe, is_git_rev};
pub use file::{BaseLock, FlakeLock, ImageLock, InputLock, InstallerLock, Lock, LockParseError};

/// Whether a base entry was resolved for the spec's current parameter, region and account.
pub fn base_matches(base: &BaseLock, build: &BuildPlan, stack: &StackPlan) -> bool {
    base.parameter == build.base_parameter.value
        && base.region == stack.region
        && (stack.account.is_none() || base.account == stack.account)
}

/// Whether a flake entry was resolved for the spec's current flake URL and ref.
pub fn flake_matches(flake: &FlakeLock, spec: &FlakePlan) -> bool {
    flake.url == spec.url && flake.git_ref == spec.git_ref
}

/// Whether the installer entry records the spec's installer.
pub fn installer_matches(installer: &InstallerLock, spec: &Installer) -> bool {
    installer.kind == spec.kind.as_str() && installer.version == spec.version
}

/// Whether a base entry holds a well-formed value (a hand-edited lock may not).
pub fn base_is_valid(base: &BaseLock) -> bool {
    Grammar::AmiId.check(&base.ami).is_ok()
}

/// Whether a flake entry holds a well-formed revision.
pub fn flake_is_valid(flake: &FlakeLock) -> bool {
    is_git_rev(&flake.rev)
}

/// The installer entry for the spec's installer: nothing to look up, it is derived from the spec.
pub fn installer_lock(spec: &Installer) -> InstallerLock {
    InstallerLock {
        kind: spec.kind.as_str().to_owned(),
        version: spec.version.clone(),
        url: spec.url(),
    }
}

/// What a built image is built from, after the lock answered every question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub base_ami: String,
    /// `git+https://…?ref=…&rev=<40-hex>#output`, the exact flake the build applies.
    pub flake_ref: String,
    pub flake_rev: String,
    /// The pinned flake reference of the system-manager CLI, e.g. `github:numtide/system-manager/<rev>`.
    pub system_manager_ref: String,
    pub nixpkgs_rev: Option<String>,
}

/// Checks the lock against the plan. The result has one entry per plan image: `None` for pinned images.
pub fn verify(
    plan: &Plan,
    lock: &Lock,
    spec_path: &str,
) -> Result<Vec<Option<Resolved>>, Vec<Diag>> {
    let mut diags = Diags::default();
    let fix = format!("run `bake lock {spec_path}` to resolve it");
    let mut out = Vec::new();
    for image in &plan.images {
        let ImageSource::Built(build) = &image.source else {
            out.push(None);
            continue;
        };
        let name = &image.name.value;
        let Some(entry) = lock.images.get(name) else {
            diags.push(
                Diag::error(
                    Code::LockMissing,
                    format!("the lock has no entry for image `{name}`"),
                )
                .label(
                    image.name.span,
                    "its base AMI and flake revision are not resolved yet",
                )
                .help(fix.clone()),
            );
            out.push(None);
            continue;
        };
        let base = &entry.base;
        if !base_matches(base, build, &plan.stack) {
            diags.push(
                Diag::error(
                    Code::LockStale,
                    format!(
                        "the lock's base AMI for image `{name}` was resolved for other settings"
                    ),
                )
                .label(
                    build.base_parameter.span,
                    format!("locked from {} in {}", base.parameter, base.region),
                )
                .help(format!(
                    "the spec's parameter, region or account changed; {fix}"
                )),
            );
        }
        let flake = &entry.flake;
        if !flake_matches(flake, &build.flake) {
            let locked_ref = flake
                .git_ref
                .as_deref()
                .map_or(String::new(), |r| format!(" (ref {r})"));
            diags.push(
                Diag::error(
                    Code::LockStale,
                    format!("the lock's flake for image `{name}` is another flake"),
                )
                .label(
                    build.flake.span,
                    format!("locked: {}{locked_ref}", flake.url),
                )
                .help(format!("the spec's flake URL or ref changed; {fix}")),
            );
        }
        let installer = &entry.installer;
        if !installer_matches(installer, &build.installer) {
            diags.push(
                Diag::error(
                    Code::LockStale,
                    format!("the lock's Nix installer for image `{name}` differs from the spec"),
                )
                .label(
                    build.installer_span,
                    format!("locked: {} {}", installer.kind, installer.version),
                )
                .help(fix.clone()),
            );
        }
        let mut invalid = |field: &str, why: &str| {
            diags.push(
                Diag::error(
                    Code::LockInvalid,
                    format!("the lock's `images.{name}.{field}` {why}"),
                )
                .label(image.name.span, "for this image")
                .help(format!(
                    "the lock file was edited by hand or is damaged; {fix}"
                )),
            );
        };
        if !base_is_valid(base) {
            invalid("base.ami", "is not an AMI id");
        }
        if !flake_is_valid(flake) {
            invalid("flake.rev", "is not a full git commit hash");
        }
        let system_manager_ref = match &build.system_manager {
            SystemManagerSource::Rev(rev) => format!("github:numtide/system-manager/{rev}"),
            SystemManagerSource::Input(input) => match flake.inputs.get(input) {
                Some(i) => {
                    if !is_git_rev(&i.rev)
                        || check_safe(&i.url).is_err()
                        || i.url.contains(['\'', '"', ' ', '\\'])
                    {
                        invalid(
                            &format!("flake.inputs.{input}"),
                            "is not a pinned flake reference",
                        );
                    }
                    i.url.clone()
                }
                None => {
                    let known: Vec<&str> = flake.inputs.keys().map(String::as_str).collect();
                    diags.push(
                        Diag::error(Code::LockMissing, format!("the flake has no input `{input}` to take system-manager from"))
                            .label(build.system_manager_span, "system-manager's revision comes from this input")
                            .help(format!(
                                "the locked flake's inputs are: {}. Name the right one with `system-manager input=\"...\"`, or pin `system-manager rev=\"<commit>\"`",
                                if known.is_empty() { "(none)".to_owned() } else { known.join(", ") }
                            )),
                    );
                    String::new()
                }
            },
        };
        out.push(Some(Resolved {
            base_ami: base.ami.clone(),
            flake_ref: locked_flake_ref(
                &build.flake.url,
                build.flake.git_ref.as_deref(),
                &flake.rev,
                &build.flake.output,
            ),
            flake_rev: flake.rev.clone(),
            system_manager_ref,
            nixpkgs_rev: flake.inputs.get("nixpkgs").map(|i| i.rev.clone()),
        }));
    }
    if diags.has_errors() {
        let mut d = diags.into_vec();
        crate::diag::sort(&mut d);
        Err(d)
    } else {
        Ok(out)
    }
}

/// The flake reference pinned to a revision, with the output attribute.
pub fn locked_flake_ref(url: &str, git_ref: Option<&str>, rev: &str, output: &str) -> String {
    if let Some(repo) = url.strip_prefix("github:") {
        return format!("github:{repo}/{rev}#{output}");
    }
    match git_ref {
        Some(r) => format!("{url}?ref={r}&rev={rev}#{output}"),
        None => format!("{url}?rev={rev}#{output}"),
    }
}

#[cfg(test)]
mod tests {
    use super::locked_flake_ref;

    #[test]
    fn flake_refs_have_query_before_fragment() {
        let rev = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            locked_flake_ref(
                "git+https://github.com/acme/infra.git",
                Some("main"),
                rev,
                "systemConfigs.web"
            ),
            format!("git+https://github.com/acme/infra.git?ref=main&rev={rev}#systemConfigs.web")
        );
        assert_eq!(
            locked_flake_ref("git+https://h/r.git", None, rev, "x"),
            format!("git+https://h/r.git?rev={rev}#x")
        );
        assert_eq!(
            locked_flake_ref("github:acme/infra", Some("main"), rev, "x"),
            format!("github:acme/infra/{rev}#x")
        );
    }
}
