//! Which lock entries the spec needs: missing, stale and invalid ones (the same comparisons `verify` uses), what
//! `--update` selects, and the entries of images the spec no longer builds. Pure: no lookup happens here.

use std::collections::BTreeSet;

use super::{
    Lock, base_is_valid, base_matches, flake_is_valid, flake_matches, installer_is_valid,
    installer_matches,
};
use crate::check::plan::{BuildPlan, ImageSource, Plan};

/// What `--update` asks to re-resolve. The default selects nothing: only missing and stale entries are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub all: bool,
    pub bases: bool,
    pub flakes: bool,
    pub images: BTreeSet<String>,
}

impl Selection {
    /// `--update` with no values selects everything; `base`, `flake` and image names select parts.
    pub fn parse(values: &[String], plan: &Plan) -> Result<Selection, String> {
        let mut sel = Selection::default();
        if values.is_empty() {
            sel.all = true;
        }
        for v in values {
            match v.as_str() {
                "base" => sel.bases = true,
                "flake" => sel.flakes = true,
                name => match plan.images.iter().find(|i| i.name.value == name) {
                    Some(image) if matches!(image.source, ImageSource::Pinned { .. }) => {
                        return Err(format!(
                            "image `{name}` is pinned to an AMI id; it has no lock entry to update"
                        ));
                    }
                    Some(image) if matches!(image.source, ImageSource::Nixos(_)) => {
                        return Err(format!(
                            "image `{name}` is a NixOS image; `bake image` builds and records it, not `bake lock`"
                        ));
                    }
                    Some(_) => {
                        sel.images.insert(name.to_owned());
                    }
                    None => {
                        let built: Vec<&str> = plan
                            .images
                            .iter()
                            .filter(|i| matches!(i.source, ImageSource::Built(_)))
                            .map(|i| i.name.value.as_str())
                            .collect();
                        return Err(format!(
                            "`--update {name}`: the spec has no built image `{name}`; use `base`, `flake` or one of: {}",
                            if built.is_empty() {
                                "(no built images)".to_owned()
                            } else {
                                built.join(", ")
                            }
                        ));
                    }
                },
            }
        }
        Ok(sel)
    }

    fn base(&self, image: &str) -> bool {
        self.all || self.bases || self.images.contains(image)
    }

    fn flake(&self, image: &str) -> bool {
        self.all || self.flakes || self.images.contains(image)
    }
}

/// Why an entry is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Missing,
    /// Resolved for other spec values.
    Stale,
    /// Holds a malformed value.
    Invalid,
    /// Asked for with `--update`.
    Requested,
    /// A base entry that does not say what its AMI is (a version-1 or -2 lock): only EC2 is asked, about the
    /// locked AMI, so upgrading the lock moves nothing.
    Undescribed,
}

/// The parts of one built image that must be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// Index into `Plan::images`.
    pub image: usize,
    pub base: Option<Why>,
    pub flake: Option<Why>,
    /// The installer binary's hash: missing (a version-1 lock), for another installer, or malformed.
    pub installer: Option<Why>,
}

/// Built images of the plan, with their index.
pub(super) fn built(plan: &Plan) -> impl Iterator<Item = (usize, &str, &BuildPlan)> {
    plan.images
        .iter()
        .enumerate()
        .filter_map(|(i, image)| match &image.source {
            ImageSource::Built(b) => Some((i, image.name.value.as_str(), &**b)),
            ImageSource::Pinned { .. } | ImageSource::Nixos(_) => None,
        })
}

/// What must be looked up: missing, stale and invalid entries, and whatever `selection` asks for.
pub fn needs(plan: &Plan, old: &Lock, selection: &Selection) -> Vec<Need> {
    let mut out = Vec::new();
    for (i, name, build) in built(plan) {
        let entry = old.images.get(name);
        let base = match entry.map(|e| &e.base) {
            None => Some(Why::Missing),
            Some(b) if !base_matches(b, build, &plan.stack) => Some(Why::Stale),
            Some(b) if !base_is_valid(b) => Some(Why::Invalid),
            Some(_) if selection.base(name) => Some(Why::Requested),
            Some(b) if !super::ami::is_described(b) => Some(Why::Undescribed),
            Some(_) => None,
        };
        let flake = match entry.map(|e| &e.flake) {
            None => Some(Why::Missing),
            Some(f) if !flake_matches(f, &build.flake) => Some(Why::Stale),
            Some(f) if !flake_is_valid(f) => Some(Why::Invalid),
            Some(_) if selection.flake(name) => Some(Why::Requested),
            Some(_) => None,
        };
        let installer = match entry.map(|e| &e.installer) {
            None => Some(Why::Missing),
            Some(i) if !installer_matches(i, &build.installer, build.arch) => Some(Why::Stale),
            Some(i) if i.sha256.is_none() => Some(Why::Missing),
            Some(i) if !installer_is_valid(i) => Some(Why::Invalid),
            Some(_) => None,
        };
        if base.is_some() || flake.is_some() || installer.is_some() {
            out.push(Need {
                image: i,
                base,
                flake,
                installer,
            });
        }
    }
    out
}

/// Lock entries for images the spec no longer builds (removed, renamed or now pinned), in name order.
pub fn pruned(plan: &Plan, old: &Lock) -> Vec<String> {
    let keep: BTreeSet<&str> = built(plan).map(|(_, name, _)| name).collect();
    old.images
        .keys()
        .filter(|k| !keep.contains(k.as_str()))
        .cloned()
        .collect()
}
