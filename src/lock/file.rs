//! The context lock: every outside value a build depends on, as JSON beside the spec (`web.kdl` → `web.lock.json`).
//!
//! bake reads it back, so it is serde, never a template. Maps are `BTreeMap`s: the key order is stable and the file
//! does not churn.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lock format this bake writes. Version 2 added the installer's `sha256` (and its `url` names the binary for
/// the image's architecture instead of the `curl | sh` script).
pub const FORMAT_VERSION: u32 = 2;
/// The oldest format this bake still reads: a version-1 lock parses, and `verify` asks for `bake lock` because its
/// installer entries have no hash.
pub const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// Built images by name. Pinned images need no entry.
    pub images: BTreeMap<String, ImageLock>,
    /// NixOS images by name, as `bake image` built and registered them (src/lock/nixos.rs). Absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nixos: BTreeMap<String, super::nixos::NixosLock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageLock {
    pub base: BaseLock,
    pub flake: FlakeLock,
    pub installer: InstallerLock,
}

/// The base AMI, resolved from an SSM public parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BaseLock {
    pub parameter: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub ami: String,
    pub parameter_version: i64,
    /// When the parameter last changed (RFC 3339, UTC).
    pub parameter_modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// When `bake lock` asked (RFC 3339, UTC).
    pub resolved_at: String,
}

/// The flake, resolved with `nix flake metadata` on a clean checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FlakeLock {
    /// The URL as the spec gives it (what the build instance fetches).
    pub url: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    pub rev: String,
    pub nar_hash: String,
    pub last_modified: i64,
    pub resolved_at: String,
    /// The flake's direct inputs, as its `flake.lock` pins them (after following `follows`).
    pub inputs: BTreeMap<String, InputLock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InputLock {
    /// A flake reference pinned to the revision, e.g. `github:NixOS/nixpkgs/<rev>`.
    pub url: String,
    pub rev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nar_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallerLock {
    pub kind: String,
    pub version: String,
    /// The installer binary for the image's architecture, from a versioned release URL.
    pub url: String,
    /// The SHA-256 of that binary (lower-case hex), as `bake lock` downloaded it. The build runs the installer
    /// only if the file it downloads has this hash. Absent in version-1 locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Lock {
    pub fn new() -> Self {
        Lock {
            version: FORMAT_VERSION,
            images: BTreeMap::new(),
            nixos: BTreeMap::new(),
        }
    }

    /// The lock as written to disk: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a lock file. The error is a message with a 1-based line and column when serde knows one.
    pub fn from_json(text: &str) -> Result<Lock, LockParseError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        if let Ok(VersionOnly { version: Some(v) }) = serde_json::from_str::<VersionOnly>(text)
            && !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&v)
        {
            return Err(LockParseError {
                message: format!(
                    "lock format version {v} is not supported (this bake reads versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}); a newer bake wrote it, or it is damaged"
                ),
                line: 0,
                column: 0,
            });
        }
        serde_json::from_str(text).map_err(|e| LockParseError {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockParseError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_locks_still_parse_and_newer_ones_are_refused() {
        let v1 = r#"{"version":1,"images":{}}"#;
        assert_eq!(Lock::from_json(v1).unwrap().version, 1);
        let v3 = r#"{"version":3,"images":{}}"#;
        let e = Lock::from_json(v3).unwrap_err();
        assert!(e.message.contains("version 3"), "{}", e.message);
        assert_eq!(Lock::new().version, FORMAT_VERSION);
    }
}
