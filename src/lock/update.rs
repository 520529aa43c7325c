//! The new lock from the lookups' answers: entries made from flake metadata, the merge with the old lock, and
//! what changed. Pure: the answers are handed in.

use std::collections::BTreeMap;

use super::needs::built;
use super::nix::FlakeMetadata;
use super::{BaseLock, FlakeLock, ImageLock, InstallerLock, Lock};
use crate::check::plan::Plan;
use crate::diag::{Code, Diag};

/// What changed for one image, old → new (`None` old: added).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    pub image: String,
    pub base: Option<(Option<BaseLock>, BaseLock)>,
    pub flake: Option<(Option<FlakeLock>, FlakeLock)>,
    pub installer: Option<(Option<InstallerLock>, InstallerLock)>,
    /// `fetch` secrets resolved anew: their lock key and ARN (`lock::secrets`).
    pub credentials: Vec<(String, String)>,
}

/// The new lock: untouched entries stay byte for byte, resolved parts replace theirs, images the spec no longer
/// builds go; and what changed, per image.
pub(super) fn assemble(
    plan: &Plan,
    old_lock: &Lock,
    bases: &BTreeMap<usize, BaseLock>,
    flakes: &BTreeMap<usize, FlakeLock>,
    installers: &BTreeMap<usize, InstallerLock>,
) -> (Lock, Vec<ImageChange>) {
    let mut lock = Lock::new();
    // Promotions are `bake promote`'s; `bake lock` keeps them as they are.
    lock.environments = old_lock.environments.clone();
    // `bake image` owns the NixOS entries: `bake lock` keeps those the spec still has.
    lock.nixos = super::nixos::kept(plan, old_lock);
    let mut changes = Vec::new();
    for (i, name, build) in built(plan) {
        let old = old_lock.images.get(name);
        let (Some(base), Some(flake), Some(installer)) = (
            bases.get(&i).or(old.map(|e| &e.base)),
            flakes.get(&i).or(old.map(|e| &e.flake)),
            installers.get(&i).or(old.map(|e| &e.installer)).cloned(),
        ) else {
            continue; // unreachable: a missing entry needs every part
        };
        let _ = build;
        let change = ImageChange {
            image: name.to_owned(),
            base: bases
                .get(&i)
                .map(|b| (old.map(|e| e.base.clone()), b.clone())),
            flake: flakes
                .get(&i)
                .map(|f| (old.map(|e| e.flake.clone()), f.clone())),
            installer: (old.map(|e| &e.installer) != Some(&installer))
                .then(|| (old.map(|e| e.installer.clone()), installer.clone())),
            credentials: Vec::new(),
        };
        if change.base.is_some() || change.flake.is_some() || change.installer.is_some() {
            changes.push(change);
        }
        lock.images.insert(
            name.to_owned(),
            ImageLock {
                base: base.clone(),
                flake: flake.clone(),
                installer,
                // `bake build` writes it; `verify` finds it stale when the flake it was built from changes.
                closure: old.and_then(|e| e.closure.clone()),
                credentials: old.map(|e| e.credentials.clone()).unwrap_or_default(),
            },
        );
    }
    (lock, changes)
}

/// The first 12 characters of a revision, for messages.
pub fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

pub(super) type MakeFlake = Box<dyn Fn(&str, Option<String>) -> FlakeLock>;
pub(super) type NixDiag = Box<dyn Fn(&str) -> Diag>;

/// A flake entry maker from clean metadata, or the diagnostic for metadata bake cannot lock.
pub(super) fn flake_entry(meta: &FlakeMetadata, now: &str) -> Result<MakeFlake, NixDiag> {
    let Some(rev) = meta.revision.clone() else {
        let dirty = meta.dirty_revision.clone();
        return Err(Box::new(move |shown: &str| {
            Diag::error(
                Code::LockDirty,
                format!("the flake checkout {shown} has uncommitted changes"),
            )
            .help(format!(
                "nix reports no revision for a dirty git tree{}, and the build instance can only fetch commits. Commit (and push) or stash the changes, then run `bake lock` again",
                dirty.as_deref().map_or(String::new(), |d| format!(" (it is {d})"))
            ))
        }));
    };
    let (Some(nar_hash), Some(last_modified)) = (meta.nar_hash.clone(), meta.last_modified) else {
        return Err(Box::new(|shown: &str| {
            Diag::error(
                Code::LockNix,
                format!("nix reported no narHash or lastModified for {shown}"),
            )
            .help("the output of `nix flake metadata --json` lacks fields bake records; is this nix too old or too new?")
        }));
    };
    let inputs = meta.inputs.clone();
    let now = now.to_owned();
    Ok(Box::new(move |url: &str, git_ref: Option<String>| {
        FlakeLock {
            url: url.to_owned(),
            git_ref,
            rev: rev.clone(),
            nar_hash: nar_hash.clone(),
            last_modified,
            resolved_at: now.clone(),
            inputs: inputs.clone(),
        }
    }))
}
