//! Prebuilt closures: `bake build` builds an image's system-manager configuration with the real `nix` where the
//! flake is reachable, signs it with the team's key, pushes it to the image's binary cache and records it in the
//! lock; the bootstrap then substitutes exactly that store path, trusting only the cache's public key.
//!
//! `url` (value grammars) and `verify` (the lock entry against the spec) are pure; `nix` (the nix commands),
//! `s3` (the S3 upload bake does because Debian's Nix has no S3 store), `push` (build, sign, copy) and `check`
//! (is the locked path in the cache, signed by the key) reach the outside world.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure parts: see clippy.toml

pub mod url;
pub mod verify;

#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod check;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod nix;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod push;
#[allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod s3;

/// A prebuilt closure the lock records and the spec still asks for: what the bootstrap script substitutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedClosure {
    /// The cache URL as the spec gives it.
    pub cache: String,
    pub public_key: String,
    pub store_path: String,
    /// The toplevel's NAR hash as `nix-store --query --hash` prints it (`sha256:<nix32>`).
    pub nar_hash: String,
    pub system_manager_path: String,
    /// The S3 objects the build role may read (empty for caches outside S3).
    pub read_objects: Vec<String>,
}

/// The inline IAM policy that lets an instance read a prebuilt closure's S3 cache files: `s3:GetObject` on
/// exactly the bucket's `nix-cache-info`, `*.narinfo` and `nar/*`, nothing else. Nix's S3 store needs no
/// `s3:ListBucket` to substitute: it GETs the `.narinfo` of the paths it wants (bake pushes every path of the
/// closure, so none is missing) and treats a 403 on HEAD as "absent".
pub fn cache_read_policy(objects: &[String]) -> serde_json::Value {
    serde_json::json!({
        "PolicyName": "bake-binary-cache-read",
        "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "ReadThePrebuiltClosure",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": objects
                    .iter()
                    .map(|o| serde_json::json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:s3:::{o}")}))
                    .collect::<Vec<_>>(),
            }]
        }
    })
}
