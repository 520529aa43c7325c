//! Is the lock's closure in the cache, signed by the key? What `bake build --check` and `bake lock --check` ask,
//! so that a missing or unsigned path shows up before an image build fails on it an hour later.
//!
//! Caches Nix can read (`file://`, `https://`) are asked with `nix path-info` and `nix store verify
//! --no-contents`. For `s3://` caches bake reads the `.narinfo` files itself (Debian's Nix has no S3 store),
//! following their `References`, into a temporary `file://` cache that `nix store verify` then checks.

use std::collections::{BTreeSet, VecDeque};

use super::nix::{Nix, NixError};
use super::push::{narinfo_field, safe_cache_key};
use super::s3::Bucket;
use super::url::{CacheUrl, is_store_path, store_hash};
use crate::check::plan::ClosurePlan;
use crate::diag::{Code, Diag};
use crate::lock::file::ClosureLock;

/// At most this many store paths are followed in one closure.
const MAX_PATHS: usize = 200_000;

/// What the cache says about a locked closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Cached,
    /// A path of the closure has no `.narinfo` (or its NAR file is gone).
    NotCached {
        path: String,
    },
    /// Present, but not signed by the key: nix's words.
    Unsigned {
        detail: String,
    },
}

impl Finding {
    /// The diagnostic at the `closure` node, or `None` when all is well.
    pub fn diag(&self, image: &str, plan: &ClosurePlan, spec_path: &str) -> Option<Diag> {
        let fix =
            format!("run `bake build {spec_path} {image} --signing-key <file>` to push it again");
        match self {
            Finding::Cached => None,
            Finding::NotCached { path } => Some(
                Diag::error(
                    Code::ClosureNotCached,
                    format!("the binary cache lacks the closure of image `{image}`"),
                )
                .label(plan.span, format!("{} has no {path}", plan.cache))
                .help(format!(
                    "the image build would fail substituting it; {fix}, or check the cache URL and that these credentials may read it"
                )),
            ),
            Finding::Unsigned { detail } => Some(
                Diag::error(
                    Code::ClosureUnsigned,
                    format!(
                        "the binary cache holds the closure of image `{image}` without a signature by its public key"
                    ),
                )
                .label(plan.span, format!("the build instance trusts only {}", plan.public_key))
                .help(format!("{fix} with the secret key of this public key. nix said: {detail}")),
            ),
        }
    }
}

/// Checks one locked closure (toplevel and system-manager CLI) against its cache.
pub async fn check(
    entry: &ClosureLock,
    plan: &ClosurePlan,
    nix: &Nix,
    profile: Option<&str>,
    timeout: std::time::Duration,
) -> Result<Finding, String> {
    let roots = [
        entry.store_path.as_str(),
        entry.system_manager_path.as_str(),
    ];
    if !roots.iter().all(|p| is_store_path(p)) {
        return Err("the lock's closure does not hold store paths; run `bake build` again".into());
    }
    match &plan.cache_url {
        CacheUrl::S3 { bucket, region } => {
            let s3 = Bucket::new(bucket, region, profile, timeout).await;
            let dir = tempfile::tempdir()
                .map_err(|e| format!("cannot make a temporary directory: {e}"))?;
            if let Some(missing) = mirror_narinfos(&s3, &roots, dir.path()).await? {
                return Ok(Finding::NotCached { path: missing });
            }
            let url = format!("file://{}", dir.path().display());
            signed(nix, &url, &plan.public_key, &roots).await
        }
        _ => {
            for root in roots {
                match nix.path_info(Some(&plan.cache), &[root], false).await {
                    Ok(infos) if !infos.is_empty() => {}
                    Ok(_) => {
                        return Ok(Finding::NotCached {
                            path: root.to_owned(),
                        });
                    }
                    Err(NixError::Failed { stderr, .. }) if stderr.contains("is not valid") => {
                        return Ok(Finding::NotCached {
                            path: root.to_owned(),
                        });
                    }
                    // Newer Nix prints `null` for a path it does not have.
                    Err(NixError::BadOutput { .. }) => {
                        return Ok(Finding::NotCached {
                            path: root.to_owned(),
                        });
                    }
                    Err(e) => {
                        return Err(format!("cannot read the binary cache {}: {e}", plan.cache));
                    }
                }
            }
            signed(nix, &plan.cache, &plan.public_key, &roots).await
        }
    }
}

async fn signed(nix: &Nix, store: &str, key: &str, roots: &[&str]) -> Result<Finding, String> {
    match nix.verify_signatures(store, key, roots).await {
        Ok(()) => Ok(Finding::Cached),
        Err(NixError::Failed { stderr, .. }) if stderr.contains("is not valid") => {
            Ok(Finding::NotCached {
                path: stderr
                    .split('\'')
                    .nth(1)
                    .unwrap_or("a path of the closure")
                    .to_owned(),
            })
        }
        Err(NixError::Failed { stderr, .. }) => Ok(Finding::Unsigned {
            detail: stderr
                .lines()
                .filter(|l| l.contains("untrusted") || l.contains("error"))
                .collect::<Vec<_>>()
                .join("; "),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// Copies the `.narinfo` of every path of the closures from S3 into `dir` (a `file://` cache), following
/// `References`, and checks that each names a NAR file the bucket holds. Returns the first missing path.
async fn mirror_narinfos(
    s3: &Bucket,
    roots: &[&str],
    dir: &std::path::Path,
) -> Result<Option<String>, String> {
    let keys = s3.list().await.map_err(|e| e.to_string())?;
    let info = s3.get("nix-cache-info").await.map_err(|e| e.to_string())?;
    let info = info.map_or_else(
        || "StoreDir: /nix/store\n".to_owned(),
        |b| String::from_utf8_lossy(&b).into_owned(),
    );
    write(&dir.join("nix-cache-info"), &info)?;
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if seen.len() > MAX_PATHS {
            return Err(format!(
                "the closure has more than {MAX_PATHS} paths; bake does not check it"
            ));
        }
        let key = format!("{}.narinfo", store_hash(&path));
        let Some(bytes) = s3.get(&key).await.map_err(|e| e.to_string())? else {
            return Ok(Some(path));
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match narinfo_field(&text, "URL") {
            Some(nar) if safe_cache_key(nar) && keys.contains_key(nar) => {}
            _ => return Ok(Some(format!("the NAR file of {path}"))),
        }
        for r in narinfo_field(&text, "References")
            .unwrap_or("")
            .split_whitespace()
        {
            let p = format!("/nix/store/{r}");
            if is_store_path(&p) {
                queue.push_back(p);
            }
        }
        write(&dir.join(&key), &text)?;
    }
    Ok(None)
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
