//! The lock's prebuilt closure against the spec: missing, stale or malformed entries are diagnostics at the
//! `closure` node; a good entry becomes what the bootstrap script substitutes. Pure, like the rest of `verify`.

use super::ResolvedClosure;
use super::url::{is_store_path, sri_to_nix32};
use crate::check::plan::ClosurePlan;
use crate::diag::{Code, Diag, Diags};
use crate::lock::file::{ClosureLock, FlakeLock};

/// What the closure entry must have been built from: the locked flake's revision and output, and the
/// system-manager CLI reference.
pub struct Expected<'a> {
    pub image: &'a str,
    pub flake: &'a FlakeLock,
    pub output: &'a str,
    pub system_manager: &'a str,
    pub spec_path: &'a str,
}

/// Whether an entry was built for these inputs and names this cache and key.
pub fn matches(entry: &ClosureLock, plan: &ClosurePlan, want: &Expected<'_>) -> bool {
    stale_parts(entry, plan, want).is_empty()
}

fn stale_parts(entry: &ClosureLock, plan: &ClosurePlan, want: &Expected<'_>) -> Vec<&'static str> {
    let mut parts = Vec::new();
    if entry.flake_rev != want.flake.rev {
        parts.push("flake revision");
    }
    if entry.output != want.output {
        parts.push("output");
    }
    if entry.system_manager != want.system_manager {
        parts.push("system-manager");
    }
    if entry.cache != plan.cache {
        parts.push("cache");
    }
    if entry.public_key != plan.public_key {
        parts.push("public key");
    }
    parts
}

pub fn verify(
    entry: Option<&ClosureLock>,
    plan: &ClosurePlan,
    want: &Expected<'_>,
    diags: &mut Diags,
) -> Option<ResolvedClosure> {
    let name = want.image;
    let fix = format!(
        "run `bake build {} {name} --signing-key <file>` where the flake is reachable (CI); it builds, signs, pushes and records the closure",
        want.spec_path
    );
    let Some(entry) = entry else {
        diags.push(
            Diag::error(
                Code::ClosureMissing,
                format!("the lock has no prebuilt closure for image `{name}`"),
            )
            .label(plan.span, "the image ships a closure from this cache")
            .help(fix),
        );
        return None;
    };
    let stale = stale_parts(entry, plan, want);
    if !stale.is_empty() {
        diags.push(
            Diag::error(
                Code::ClosureStale,
                format!(
                    "the lock's prebuilt closure for image `{name}` was built for another {}",
                    stale.join(", ")
                ),
            )
            .label(
                plan.span,
                format!(
                    "locked: {} built from {}",
                    entry.store_path,
                    short(&entry.flake_rev)
                ),
            )
            .help(fix),
        );
        return None;
    }
    let nar_hash = sri_to_nix32(&entry.nar_hash);
    let valid = is_store_path(&entry.store_path)
        && is_store_path(&entry.system_manager_path)
        && nar_hash.is_some();
    if !valid {
        diags.push(
            Diag::error(
                Code::LockInvalid,
                format!("the lock's `images.{name}.closure` does not hold store paths and a `sha256-` NAR hash"),
            )
            .label(plan.span, "for this image")
            .help(format!("the lock file was edited by hand or is damaged; {fix}")),
        );
        return None;
    }
    Some(ResolvedClosure {
        cache: plan.cache.clone(),
        public_key: plan.public_key.clone(),
        store_path: entry.store_path.clone(),
        nar_hash: nar_hash.unwrap_or_default(),
        system_manager_path: entry.system_manager_path.clone(),
        read_objects: plan.cache_url.read_objects(),
    })
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}
