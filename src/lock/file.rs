//! The context lock: every outside value a build depends on, as JSON beside the spec (`web.kdl` → `web.lock.json`).
//!
//! bake reads it back, so it is serde, never a template. Maps are `BTreeMap`s: the key order is stable and the file
//! does not churn.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lock format this bake writes. Version 2 added the installer's `sha256` (and its `url` names the binary for
/// the image's architecture instead of the `curl | sh` script). Version 3 describes each base AMI (name, AL2023
/// release, kernel, architecture, owner, creation and deprecation dates; `lock::ami`): the bootstrap pins dnf to
/// that release.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format this bake still reads: version-1 and -2 locks parse, `verify` asks for `bake lock` (their
/// bases are not described, version 1 has no installer hash), and `bake lock` upgrades them without moving an AMI.
pub const OLDEST_READABLE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// Built images by name. Pinned images need no entry.
    pub images: BTreeMap<String, ImageLock>,
    /// Per environment: the AMIs `bake promote` moved into it (`lock::environments`). Absent without promotions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environments: BTreeMap<String, super::environments::EnvironmentLock>,
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
    /// The secrets the image's `fetch` names, by source (`secretsmanager:<id>`, `ssm:<name>`): their ARNs, never
    /// their values (`lock::secrets`). Absent when the image fetches without credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credentials: BTreeMap<String, SecretLock>,
    /// The prebuilt closure `bake build` pushed to the image's binary cache (images with a `closure` node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<ClosureLock>,
}

/// A system-manager configuration built, signed and copied to a binary cache by `bake build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClosureLock {
    /// The cache URL as the spec gives it.
    pub cache: String,
    /// The public key the closure is signed for (`name:base64`).
    pub public_key: String,
    /// The flake revision and output it was built from: another revision or output makes the entry stale.
    pub flake_rev: String,
    pub output: String,
    /// The toplevel store path of the configuration and its NAR hash (SRI, as `nix path-info --json` prints it).
    pub store_path: String,
    pub nar_hash: String,
    /// The pinned system-manager CLI reference it was built with, and the CLI's store path in the same cache.
    pub system_manager: String,
    pub system_manager_path: String,
    /// When `bake build` pushed it (RFC 3339, UTC).
    pub built_at: String,
}

/// Where a build reads one secret: the full ARN the build role may read, resolved by `bake lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SecretLock {
    /// `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>` or `arn:aws:ssm:<region>:<account>:parameter/<name>`.
    pub arn: String,
    /// The KMS key that encrypts the secret when it is not the AWS-managed default (`aws/secretsmanager`,
    /// `alias/aws/ssm`): the build role then also needs `kms:Decrypt` on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    pub resolved_at: String,
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
    /// The AMI's name, as EC2 `DescribeImages` gives it (from version 3 on, like the fields below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_name: Option<String>,
    /// The AL2023 release the AMI is locked to, from its name (`2023.12.20260930`): dnf's `releasever`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The kernel lineage, from the name (`6.12`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The AMI's owner account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_owner: Option<String>,
    /// When the AMI was created (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_created: Option<String>,
    /// When AWS deprecates (or deprecated) the AMI, if it set a time (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_deprecation: Option<String>,
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
            environments: BTreeMap::new(),
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
    fn older_locks_still_parse_and_newer_ones_are_refused() {
        for v in 1..=3 {
            let old = format!(r#"{{"version":{v},"images":{{}}}}"#);
            assert_eq!(Lock::from_json(&old).unwrap().version, v);
        }
        let v4 = r#"{"version":4,"images":{}}"#;
        let e = Lock::from_json(v4).unwrap_err();
        assert!(e.message.contains("version 4"), "{}", e.message);
        assert_eq!(Lock::new().version, FORMAT_VERSION);
    }
}
