//! Stage 3: `Plan` + `Lock` → `Resolved`.
//!
//! Input: the plan and the lock file's content. Output: per image, the exact AMI and flake revisions to build
//! from — or a diagnostic at the spec node whose lock entry is missing or stale. This module never resolves
//! anything itself: only `bake lock` asks the outside world.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

pub mod ami;
pub mod environments;
pub mod file;
pub mod lookup_diag;
pub mod needs;
pub mod update;
// `bake lock`'s lookups: SSM, `nix flake metadata`, git and the lock file. The rest of the lock stage is pure.
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod live;
pub mod nix;
pub mod nixos;
pub mod report;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod resolve;
pub mod secrets;
pub mod time;

use crate::check::image::fetches_with_git;
use crate::check::plan::{
    Arch, BuildPlan, FlakePlan, ImageSource, Installer, Plan, StackPlan, SystemManagerSource,
};
use crate::diag::{Code, Diag, Diags};
use crate::spec::grammar::{Grammar, check_safe, is_git_rev, is_nar_hash, is_sha256_hex};
pub use environments::{EnvironmentLock, PromotedLock};
pub use file::{
    BaseLock, ClosureLock, FlakeLock, ImageLock, InputLock, InstallerLock, Lock, LockParseError,
    SecretLock,
};

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

/// Whether the installer entry records the spec's installer, for the image's architecture.
pub fn installer_matches(installer: &InstallerLock, spec: &Installer, arch: Arch) -> bool {
    installer.kind == spec.kind.as_str()
        && installer.version == spec.version
        && installer.url == spec.binary_url(arch)
}

/// Whether the installer entry holds the binary's hash (version-1 locks have none).
pub fn installer_is_valid(installer: &InstallerLock) -> bool {
    installer.sha256.as_deref().is_some_and(is_sha256_hex)
}

/// Whether a base entry holds a well-formed value (a hand-edited lock may not).
pub fn base_is_valid(base: &BaseLock) -> bool {
    Grammar::AmiId.check(&base.ami).is_ok()
}

/// Whether a flake entry holds a well-formed revision and NAR hash.
pub fn flake_is_valid(flake: &FlakeLock) -> bool {
    is_git_rev(&flake.rev) && is_nar_hash(&flake.nar_hash)
}

/// The installer entry for the spec's installer on an architecture, with the hash `bake lock` computed.
pub fn installer_lock(spec: &Installer, arch: Arch, sha256: String) -> InstallerLock {
    InstallerLock {
        kind: spec.kind.as_str().to_owned(),
        version: spec.version.clone(),
        url: spec.binary_url(arch),
        sha256: Some(sha256),
    }
}

/// What a built image is built from, after the lock answered every question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub base_ami: String,
    /// The AL2023 release the base AMI is locked to (`2023.12.20260930`): the bootstrap's dnf `--releasever`.
    pub base_release: String,
    /// The base AMI's name (`al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64`), which says all of that.
    pub base_ami_name: String,
    /// `git+https://…?ref=…&rev=<40-hex>&narHash=…#output`, the exact flake the build applies: Nix checks the
    /// fetched tree against the NAR hash, so a rewritten branch or a tampered mirror fails the build.
    pub flake_ref: String,
    pub flake_rev: String,
    /// The pinned flake reference of the system-manager CLI, e.g. `github:numtide/system-manager/<rev>`, with
    /// `narHash=` when the flake's lock records one.
    pub system_manager_ref: String,
    pub nixpkgs_rev: Option<String>,
    /// System flake registry entries, `(id, pinned reference)`: `nixpkgs` from the flake's locked input of that
    /// name (when it has one) and `system-manager` at the CLI's revision. Pinned by revision: `nix registry add`
    /// does not keep a `narHash`.
    pub registry: Vec<(String, String)>,
    /// The installer binary for the image's architecture and its SHA-256 (hex).
    pub installer_url: String,
    pub installer_sha256: String,
    /// Whether Nix on the build instance runs `git`: a `git+` flake or a direct input the flake's lock fetches
    /// with git.
    pub needs_git: bool,
    /// The prebuilt closure the image ships instead of building the flake (images with a `closure` node).
    pub closure: Option<crate::closure::ResolvedClosure>,
    /// The secrets the image's `fetch` reads, with the ARNs the lock records (`lock::secrets`).
    pub secrets: Vec<secrets::ResolvedSecret>,
}

/// Checks the lock against the plan. The result has one entry per plan image: `None` for pinned images.
pub fn verify(
    plan: &Plan,
    lock: &Lock,
    spec_path: &str,
) -> Result<Vec<Option<Resolved>>, Vec<Diag>> {
    verify_with(plan, lock, spec_path, true)
}

/// `verify` without the prebuilt closures: what `bake build` builds them from (`closure` is then `None`).
pub fn verify_without_closures(
    plan: &Plan,
    lock: &Lock,
    spec_path: &str,
) -> Result<Vec<Option<Resolved>>, Vec<Diag>> {
    verify_with(plan, lock, spec_path, false)
}

fn verify_with(
    plan: &Plan,
    lock: &Lock,
    spec_path: &str,
    closures: bool,
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
        let same_release = installer.kind == build.installer.kind.as_str()
            && installer.version == build.installer.version;
        if !same_release {
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
        } else if installer.sha256.is_none() {
            diags.push(
                Diag::error(
                    Code::LockMissing,
                    format!("the lock has no SHA-256 of the Nix installer for image `{name}`"),
                )
                .label(
                    build.installer_span,
                    "the build runs the installer only if its hash matches the lock",
                )
                .help(format!(
                    "the lock predates installer hashes (lock format version 1); {fix}"
                )),
            );
        } else if !installer_matches(installer, &build.installer, build.arch) {
            diags.push(
                Diag::error(
                    Code::LockStale,
                    format!("the lock's Nix installer for image `{name}` is another binary"),
                )
                .label(
                    build.installer_span,
                    format!(
                        "the {} build needs {}",
                        build.arch.as_str(),
                        build.installer.binary_url(build.arch)
                    ),
                )
                .help(format!("the image's architecture changed; {fix}")),
            );
        }
        let undescribed =
            base.release.is_none() || base.kernel.is_none() || base.architecture.is_none();
        if undescribed && base_matches(base, build, &plan.stack) {
            let why = if lock.version < file::FORMAT_VERSION {
                format!(
                    "the lock is format version {}, which does not record what a base AMI is; run `bake lock {spec_path}` to upgrade it to version {}: it asks EC2 about the locked AMI {} and moves nothing",
                    lock.version,
                    file::FORMAT_VERSION,
                    base.ami
                )
            } else {
                format!("the entry lacks the AMI's release, kernel or architecture; {fix}")
            };
            diags.push(
                Diag::error(
                    Code::LockMissing,
                    format!("the lock does not say which AL2023 release image `{name}` builds on"),
                )
                .label(
                    build.base_parameter.span,
                    "the bootstrap pins dnf to the base AMI's release",
                )
                .help(why),
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
        if base.release.as_deref().is_some_and(|r| !ami::is_release(r)) {
            invalid(
                "base.release",
                "is not an AL2023 release such as `2023.12.20260930`",
            );
        }
        if base.kernel.as_deref().is_some_and(|k| !ami::is_kernel(k)) {
            invalid("base.kernel", "is not a kernel version such as `6.12`");
        }
        if base
            .architecture
            .as_deref()
            .is_some_and(|a| !matches!(a, "x86_64" | "arm64"))
        {
            invalid("base.architecture", "is not `x86_64` or `arm64`");
        }
        if !is_git_rev(&flake.rev) {
            invalid("flake.rev", "is not a full git commit hash");
        }
        if !is_nar_hash(&flake.nar_hash) {
            invalid("flake.nar-hash", "is not a Nix `sha256-` NAR hash");
        }
        if installer.sha256.is_some() && !installer_is_valid(installer) {
            invalid("installer.sha256", "is not a SHA-256 in hex");
        }
        for (input, i) in &flake.inputs {
            if i.nar_hash.as_deref().is_some_and(|h| !is_nar_hash(h)) {
                invalid(
                    &format!("flake.inputs.{input}.nar-hash"),
                    "is not a Nix `sha256-` NAR hash",
                );
            }
        }
        let mut system_manager_url = String::new();
        let system_manager_ref = match &build.system_manager {
            SystemManagerSource::Rev(rev) => {
                system_manager_url = format!("github:numtide/system-manager/{rev}");
                system_manager_url.clone()
            }
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
                    system_manager_url = i.url.clone();
                    pinned_input_ref(i)
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
        let nixpkgs = flake.inputs.get("nixpkgs").filter(|i| {
            is_git_rev(&i.rev)
                && check_safe(&i.url).is_ok()
                && !i.url.contains(['\'', '"', ' ', '\\'])
        });
        let closure = build.closure.as_ref().filter(|_| closures).and_then(|c| {
            let want = crate::closure::verify::Expected {
                image: name,
                flake,
                output: &build.flake.output,
                system_manager: &system_manager_ref,
                spec_path,
            };
            crate::closure::verify::verify(entry.closure.as_ref(), c, &want, &mut diags)
        });
        let fetch_secrets = secrets::verify(
            name,
            image.name.span,
            build,
            &entry.credentials,
            &plan.stack,
            &fix,
        )
        .unwrap_or_else(|d| {
            diags.extend(d);
            Vec::new()
        });
        out.push(Some(Resolved {
            secrets: fetch_secrets,
            base_ami: base.ami.clone(),
            base_release: base.release.clone().unwrap_or_default(),
            base_ami_name: base.ami_name.clone().unwrap_or_default(),
            flake_ref: locked_flake_ref(
                &build.flake.url,
                build.flake.git_ref.as_deref(),
                &flake.rev,
                Some(&flake.nar_hash),
                &build.flake.output,
            ),
            flake_rev: flake.rev.clone(),
            system_manager_ref,
            nixpkgs_rev: nixpkgs.map(|i| i.rev.clone()),
            registry: nixpkgs
                .map(|i| ("nixpkgs".to_owned(), i.url.clone()))
                .into_iter()
                .chain([("system-manager".to_owned(), system_manager_url)])
                .collect(),
            installer_url: installer.url.clone(),
            installer_sha256: installer.sha256.clone().unwrap_or_default(),
            // With a prebuilt closure the build instance fetches neither the flake nor its inputs.
            needs_git: build.closure.is_none()
                && (fetches_with_git(&build.flake.url)
                    || flake.inputs.values().any(|i| fetches_with_git(&i.url))),
            closure,
        }));
    }
    diags.extend(nixos::verify(plan, lock, spec_path));
    if diags.has_errors() {
        let mut d = diags.into_vec();
        crate::diag::sort(&mut d);
        Err(d)
    } else {
        Ok(out)
    }
}

/// The flake reference pinned to a revision (and, when known, to the NAR hash of its tree), with the output
/// attribute.
pub fn locked_flake_ref(
    url: &str,
    git_ref: Option<&str>,
    rev: &str,
    nar_hash: Option<&str>,
    output: &str,
) -> String {
    let hash = nar_hash.map_or(String::new(), |h| format!("narHash={}", query_value(h)));
    if let Some(repo) = url.strip_prefix("github:") {
        let query = if hash.is_empty() {
            String::new()
        } else {
            format!("?{hash}")
        };
        return format!("github:{repo}/{rev}{query}#{output}");
    }
    let mut params = Vec::new();
    if let Some(r) = git_ref {
        params.push(format!("ref={r}"));
    }
    params.push(format!("rev={rev}"));
    if !hash.is_empty() {
        params.push(hash);
    }
    format!("{url}?{}#{output}", params.join("&"))
}

/// A locked input's reference with its `narHash=` when the flake's lock records one.
pub fn pinned_input_ref(input: &InputLock) -> String {
    match &input.nar_hash {
        Some(h) if is_nar_hash(h) => {
            let sep = if input.url.contains('?') { '&' } else { '?' };
            format!("{}{sep}narHash={}", input.url, query_value(h))
        }
        _ => input.url.clone(),
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters (a NAR hash's `+`, `/` and `=`).
fn query_value(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
                None,
                "systemConfigs.web"
            ),
            format!("git+https://github.com/acme/infra.git?ref=main&rev={rev}#systemConfigs.web")
        );
        assert_eq!(
            locked_flake_ref("git+https://h/r.git", None, rev, None, "x"),
            format!("git+https://h/r.git?rev={rev}#x")
        );
        assert_eq!(
            locked_flake_ref("github:acme/infra", Some("main"), rev, None, "x"),
            format!("github:acme/infra/{rev}#x")
        );
    }

    #[test]
    fn locked_refs_carry_the_nar_hash_percent_encoded() {
        let rev = "0123456789abcdef0123456789abcdef01234567";
        let hash = "sha256-q3Kx1mZ2s9Qm4a8b0Yc5d6E7f8G+h0I1j2K3l4M5n6o=";
        let enc = "sha256-q3Kx1mZ2s9Qm4a8b0Yc5d6E7f8G%2Bh0I1j2K3l4M5n6o%3D";
        assert_eq!(
            locked_flake_ref("git+https://h/r.git", Some("main"), rev, Some(hash), "x"),
            format!("git+https://h/r.git?ref=main&rev={rev}&narHash={enc}#x")
        );
        assert_eq!(
            locked_flake_ref("github:acme/infra", None, rev, Some(hash), "x"),
            format!("github:acme/infra/{rev}?narHash={enc}#x")
        );
        let input = |url: &str| super::InputLock {
            url: url.to_owned(),
            rev: rev.to_owned(),
            nar_hash: Some(hash.to_owned()),
            last_modified: None,
        };
        assert_eq!(
            super::pinned_input_ref(&input(&format!("github:NixOS/nixpkgs/{rev}"))),
            format!("github:NixOS/nixpkgs/{rev}?narHash={enc}")
        );
        assert_eq!(
            super::pinned_input_ref(&input(&format!("github:o/r/{rev}?dir=sub"))),
            format!("github:o/r/{rev}?dir=sub&narHash={enc}")
        );
    }
}
