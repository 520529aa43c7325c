//! The lock's per-environment part: which AMI each promoted image runs in an environment, where it came from and
//! since when the source environment ran it. Only `bake promote` writes it; `bake lock` keeps it as it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One environment's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnvironmentLock {
    /// Promoted images by name.
    pub images: BTreeMap<String, PromotedLock>,
}

/// An AMI another environment ran, moved forward into this one by `bake promote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PromotedLock {
    /// The AMI this environment runs: the source's own id when shared or in the same account and region, the
    /// copy's id when copied to another region.
    pub ami: String,
    /// The environment it was promoted from.
    pub from: String,
    /// The AMI the source environment runs (what its `/bake/<stack>/<image>/ami` parameter held).
    pub source_ami: String,
    pub source_region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_account: Option<String>,
    /// The region and account this entry is for: an entry for another region or account is stale.
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `same` (same account and region), `shared` (launch permission for the account) or `copied` (CopyImage to
    /// the region).
    pub delivery: String,
    /// Since when the source environment has run this AMI (the parameter's last change, RFC 3339, UTC).
    pub tested_since: String,
    /// When `bake promote` moved it (RFC 3339, UTC).
    pub promoted_at: String,
}
