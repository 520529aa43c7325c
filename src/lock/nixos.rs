//! The lock's NixOS entries (`"nixos"`): what `bake image` built and registered for each NixOS image — the flake
//! revision, the image's store path and NAR hash, the snapshot and the AMI per region — and the pure checks
//! `compile`/`deploy` run on them. Only `bake image` writes these entries (`bake lock` keeps them as they are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::check::plan::{ImagePlan, ImageSource, NixosPlan, Plan};
use crate::diag::{Code, Diag};
use crate::spec::grammar::{Grammar, is_git_rev};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NixosLock {
    /// The flake URL as the spec gives it.
    pub url: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    pub output: String,
    /// The flake's git revision, as `nix flake metadata` read it from the checkout (or the URL).
    pub rev: String,
    /// The image derivation's output path, e.g. `/nix/store/<hash>-nixos-amazon-image-…`.
    pub store_path: String,
    /// The NAR hash of that path (`nix path-info --json`), SRI form `sha256-…`.
    pub nar_hash: String,
    /// From `image-info.json`'s `system`: `x86_64` or `arm64`.
    pub architecture: String,
    /// The snapshot's size in GiB.
    pub volume_gib: u32,
    /// The registration settings the AMI was made with (`registration_key`): another key is another AMI.
    pub settings: String,
    /// The AMI's name (derived from the store path and settings); `bake image` finds an AMI it made by it.
    pub ami_name: String,
    /// The snapshot in the stack's region.
    pub snapshot: String,
    /// The AMI id by region: the stack's region and every `copy-to` region.
    pub amis: BTreeMap<String, String>,
    /// When `bake image` registered it (RFC 3339, UTC).
    pub built_at: String,
}

/// The settings an AMI is registered with, as a short key: a change to any of them needs a new AMI.
pub fn registration_key(n: &NixosPlan) -> String {
    let text = format!(
        "volume-gib={:?};encrypted={};kms-key={};tpm={}",
        n.volume_gib,
        n.encrypted,
        n.kms_key.as_deref().unwrap_or(""),
        n.tpm
    );
    let digest = Sha256::digest(text.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The AMI name for a store path: `bake/<stack>/<image>/<store hash>-<settings key>` (AMI names take `/`).
pub fn ami_name(stack: &str, image: &str, store_path: &str, settings: &str) -> String {
    let base = store_path.rsplit('/').next().unwrap_or(store_path);
    let hash = base.split('-').next().unwrap_or(base);
    format!("bake/{stack}/{image}/{hash}-{settings}")
}

/// The NixOS images of a plan: (index, image, its NixOS plan).
pub fn nixos_images(plan: &Plan) -> impl Iterator<Item = (usize, &ImagePlan, &NixosPlan)> {
    plan.images
        .iter()
        .enumerate()
        .filter_map(|(i, image)| match &image.source {
            ImageSource::Nixos(n) => Some((i, image, &**n)),
            _ => None,
        })
}

/// Whether an entry was built from the spec's flake and output.
pub fn flake_matches(entry: &NixosLock, n: &NixosPlan) -> bool {
    entry.url == n.flake.url && entry.git_ref == n.flake.git_ref && entry.output == n.flake.output
}

/// The regions an image needs an AMI in: the stack's, then `copy-to`'s.
pub fn regions(plan: &Plan, n: &NixosPlan) -> Vec<String> {
    let mut out = vec![plan.stack.region.clone()];
    for r in &n.copy_to {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    out
}

/// Why an entry does not serve the spec, in words that fit after "the lock's AMI for image `x` ".
pub fn stale_reason(plan: &Plan, entry: &NixosLock, n: &NixosPlan) -> Option<String> {
    if !flake_matches(entry, n) {
        return Some(format!("was built from {}#{}", entry.url, entry.output));
    }
    if entry.settings != registration_key(n) {
        return Some("was registered with other volume, encryption or TPM settings".into());
    }
    if !is_git_rev(&entry.rev) || !entry.store_path.starts_with("/nix/store/") {
        return Some("has no valid revision or store path".into());
    }
    for region in regions(plan, n) {
        match entry.amis.get(&region) {
            None => return Some(format!("has no AMI in {region}")),
            Some(ami) if Grammar::AmiId.check(ami).is_err() => {
                return Some(format!("holds `{ami}` for {region}, which is no AMI id"));
            }
            Some(_) => {}
        }
    }
    None
}

/// The AMI a NixOS image runs in the stack's region, from a verified lock.
pub fn ami<'a>(plan: &Plan, lock: &'a crate::lock::Lock, image: &ImagePlan) -> Option<&'a str> {
    lock.nixos
        .get(&image.name.value)?
        .amis
        .get(&plan.stack.region)
        .map(String::as_str)
}

/// Checks the NixOS entries against the plan: an image without an entry, or with one for another flake, output,
/// settings or regions, is an error at the `nixos` node that asks for `bake image`.
pub fn verify(plan: &Plan, lock: &crate::lock::Lock, spec_path: &str) -> Vec<Diag> {
    let mut diags = Vec::new();
    for (_, image, n) in nixos_images(plan) {
        let name = &image.name.value;
        let fix = format!("run `bake image {spec_path} {name}` to build and register it");
        match lock.nixos.get(name) {
            None => diags.push(
                Diag::error(
                    Code::LockMissing,
                    format!("the lock has no AMI for NixOS image `{name}`"),
                )
                .label(image.name.span, "not built and registered yet")
                .help(fix),
            ),
            Some(entry) => {
                architecture_matches(plan, name, entry, &mut diags);
                if let Some(why) = stale_reason(plan, entry, n) {
                    diags.push(
                        Diag::error(
                            Code::LockStale,
                            format!("the lock's AMI for NixOS image `{name}` {why}"),
                        )
                        .label(n.flake.span, "the spec asks for this")
                        .help(fix),
                    );
                }
            }
        }
    }
    diags
}

/// The fleets of a NixOS image against the architecture its image-info.json gave (only known from the lock).
fn architecture_matches(plan: &Plan, name: &str, entry: &NixosLock, diags: &mut Vec<Diag>) {
    let Some(built) = crate::check::plan::Arch::parse(&entry.architecture) else {
        return;
    };
    for fleet in &plan.fleets {
        if plan.images[fleet.image].name.value != name {
            continue;
        }
        if let Some(arch) = crate::check::instance_arch(&fleet.instance_type)
            && arch != built
        {
            diags.push(
                Diag::error(
                    Code::Architecture,
                    format!(
                        "fleet `{}` runs {} ({}) instances, and NixOS image `{name}` is built for {}",
                        fleet.name.value,
                        fleet.instance_type,
                        arch.as_str(),
                        built.as_str()
                    ),
                )
                .label(fleet.name.span, "this fleet")
                .help(format!(
                    "pick an {} instance type, or build the image for {} (its `system` in image-info.json)",
                    built.as_str(),
                    arch.as_str()
                )),
            );
        }
    }
}

/// The NixOS entries `bake lock` keeps: those of images the spec still has as NixOS images.
pub fn kept(plan: &Plan, old: &crate::lock::Lock) -> BTreeMap<String, NixosLock> {
    nixos_images(plan)
        .filter_map(|(_, image, _)| {
            old.nixos
                .get(&image.name.value)
                .map(|e| (image.name.value.clone(), e.clone()))
        })
        .collect()
}

/// One line for `bake lock --status` and `bake image --plan`: what the lock holds for a NixOS image.
pub fn status_line(lock: &crate::lock::Lock, name: &str) -> String {
    match lock.nixos.get(name) {
        None => "NixOS image, not built yet (run `bake image`)".to_owned(),
        Some(e) => {
            let amis: Vec<String> = e.amis.iter().map(|(r, a)| format!("{a} in {r}")).collect();
            format!(
                "NixOS image at {} ({}), {}, built {}",
                crate::lock::update::short(&e.rev),
                e.store_path,
                amis.join(", "),
                e.built_at
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Lock;
    use crate::source::SourceFile;

    const SPEC: &str = include_str!("../../specs/nixos.kdl");
    const LOCK: &str = include_str!("../../specs/nixos.lock.json");

    fn codes(spec: &str, lock: &Lock) -> Vec<Code> {
        let (plan, diags) = crate::check_source(&SourceFile::new("nixos.kdl", spec.to_owned()));
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        verify(&plan, lock, "nixos.kdl")
            .iter()
            .map(|d| d.code)
            .collect()
    }

    #[test]
    fn the_example_lock_serves_its_spec_and_changes_make_it_stale() {
        let lock = Lock::from_json(LOCK).unwrap();
        assert_eq!(codes(SPEC, &lock), []);
        assert_eq!(codes(SPEC, &Lock::new()), [Code::LockMissing]);
        // Another output, another region, other registration settings: each needs `bake image`.
        for (from, to) in [
            ("images.amazon\"", "images.other\""),
            (
                "copy-to \"eu-west-1\"",
                "copy-to \"eu-west-1\" \"us-west-2\"",
            ),
            ("tpm=#true", "tpm=#false"),
        ] {
            assert!(SPEC.contains(from), "{from}");
            assert_eq!(
                codes(&SPEC.replace(from, to), &lock),
                [Code::LockStale],
                "{to}"
            );
        }
        // The image is x86_64 (image-info.json's system): a Graviton fleet cannot run it.
        assert_eq!(
            codes(&SPEC.replace("m7i.large", "m7g.large"), &lock),
            [Code::Architecture]
        );
        // A hand-edited AMI id is refused, not emitted.
        let bad = LOCK.replace("ami-0a7c3e5f9b1d2e4f6", "ami-nope");
        assert_eq!(
            codes(SPEC, &Lock::from_json(&bad).unwrap()),
            [Code::LockStale]
        );
    }

    #[test]
    fn ami_names_follow_the_store_path_and_settings() {
        let a = ami_name(
            "web",
            "web",
            "/nix/store/0c9kpz1v7pz9n9jfyi0wn3b3pnjnsm0n-nixos-image",
            "0a1b2c3d",
        );
        assert_eq!(a, "bake/web/web/0c9kpz1v7pz9n9jfyi0wn3b3pnjnsm0n-0a1b2c3d");
        let b = ami_name(
            "web",
            "web",
            "/nix/store/1c9kpz1v7pz9n9jfyi0wn3b3pnjnsm0n-nixos-image",
            "0a1b2c3d",
        );
        assert_ne!(a, b);
    }
}
