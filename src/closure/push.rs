//! `bake build` for one image: build the configuration and the system-manager CLI with the real `nix`, sign both
//! closures with the team's key, copy them to the binary cache and return the lock entry.

use std::path::{Path, PathBuf};

use super::nix::Nix;
use super::s3::Bucket;
use super::url::{CacheUrl, store_hash};
use crate::check::plan::ClosurePlan;
use crate::lock::file::ClosureLock;

/// What to build for one image and where it goes.
pub struct Target<'a> {
    pub image: &'a str,
    /// The locked flake reference with `#output`.
    pub installable: String,
    /// The pinned system-manager CLI reference (`Resolved::system_manager_ref`).
    pub system_manager: &'a str,
    pub closure: &'a ClosurePlan,
    pub flake_rev: &'a str,
    pub output: &'a str,
}

/// Settings shared by every image of one run.
pub struct Options {
    /// The secret signing key (read by nix only; bake never prints or stores it).
    pub key_file: PathBuf,
    /// Where S3 caches are staged as `file://` caches, one directory per bucket; kept between runs so that an
    /// unchanged closure is neither compressed nor uploaded again.
    pub work_dir: PathBuf,
    pub profile: Option<String>,
    pub timeout: std::time::Duration,
}

/// What one image's push did.
#[derive(Debug)]
pub struct Pushed {
    pub lock: ClosureLock,
    /// Files uploaded to S3 (S3 caches only).
    pub uploaded: usize,
    /// Files of the closure S3 already held.
    pub present: usize,
}

pub async fn push(t: &Target<'_>, nix: &Nix, opts: &Options, now: &str) -> Result<Pushed, String> {
    let public = nix
        .public_key_of(&opts.key_file)
        .await
        .map_err(|e| e.to_string())?;
    if public != t.closure.public_key {
        return Err(format!(
            "the signing key {} belongs to the public key `{public}`, but image `{}` trusts `{}`; pass the secret key of that public key, or put the new public key in the spec (docs/binary-cache.md: rotating the key)",
            opts.key_file.display(),
            t.image,
            t.closure.public_key
        ));
    }
    let built = nix
        .build(&[&t.installable, t.system_manager])
        .await
        .map_err(|e| format!("cannot build image `{}`: {e}", t.image))?;
    let (top, cli) = (built[0].as_str(), built[1].as_str());
    let roots = [top, cli];
    nix.sign(None, &opts.key_file, &roots)
        .await
        .map_err(|e| format!("cannot sign the closure of image `{}`: {e}", t.image))?;
    let info = nix
        .path_info(None, &[top], false)
        .await
        .map_err(|e| e.to_string())?;
    let nar_hash = info
        .first()
        .map(|i| i.nar_hash.clone())
        .ok_or_else(|| format!("`nix path-info` gave no NAR hash for {top}"))?;
    let (uploaded, present) = match &t.closure.cache_url {
        CacheUrl::S3 { bucket, region } => {
            push_s3(nix, opts, bucket, region, &roots, &t.closure.public_key).await?
        }
        CacheUrl::File { .. } => {
            let url = &t.closure.cache;
            copy(nix, url, &roots).await?;
            // Paths the cache had already keep their old signatures; add this key's (after a rotation).
            nix.sign(Some(url), &opts.key_file, &roots)
                .await
                .map_err(|e| e.to_string())?;
            verify(nix, url, &t.closure.public_key, &roots).await?;
            (0, 0)
        }
        CacheUrl::Http { .. } => {
            copy(nix, &t.closure.cache, &roots).await?;
            (0, 0)
        }
    };
    Ok(Pushed {
        lock: ClosureLock {
            cache: t.closure.cache.clone(),
            public_key: t.closure.public_key.clone(),
            flake_rev: t.flake_rev.to_owned(),
            output: t.output.to_owned(),
            store_path: top.to_owned(),
            nar_hash,
            system_manager: t.system_manager.to_owned(),
            system_manager_path: cli.to_owned(),
            built_at: now.to_owned(),
        },
        uploaded,
        present,
    })
}

async fn copy(nix: &Nix, url: &str, roots: &[&str]) -> Result<(), String> {
    nix.copy_to(url, roots)
        .await
        .map_err(|e| format!("cannot copy to the binary cache {url}: {e}"))
}

async fn verify(nix: &Nix, store: &str, key: &str, roots: &[&str]) -> Result<(), String> {
    nix.verify_signatures(store, key, roots).await.map_err(|e| {
        format!("after the copy, {store} still holds paths without a signature by `{key}`: {e}")
    })
}

/// Stages the closures in a local `file://` cache (re-using what S3 already has), signs them there and uploads
/// the files the bucket lacks. Returns (uploaded, already present).
async fn push_s3(
    nix: &Nix,
    opts: &Options,
    bucket: &str,
    region: &str,
    roots: &[&str],
    public_key: &str,
) -> Result<(usize, usize), String> {
    let stage = opts.work_dir.join(bucket);
    std::fs::create_dir_all(stage.join("nar")).map_err(|e| {
        format!(
            "cannot create the staging cache {}: {e}; pass `--work-dir` or set BAKE_CACHE_DIR",
            stage.display()
        )
    })?;
    let stage_url = format!("file://{}", stage.display());
    let s3 = Bucket::new(bucket, region, opts.profile.as_deref(), opts.timeout).await;
    let existing = s3.list().await.map_err(|e| e.to_string())?;
    let closure = nix
        .path_info(None, roots, true)
        .await
        .map_err(|e| e.to_string())?;
    // A path S3 has but this staging cache lacks (a fresh CI runner): fetch its small .narinfo, so that
    // `nix copy` treats it as present instead of compressing it again.
    for p in &closure {
        let key = format!("{}.narinfo", store_hash(&p.path));
        let local = stage.join(&key);
        if existing.contains_key(&key)
            && !local.exists()
            && let Some(bytes) = s3.get(&key).await.map_err(|e| e.to_string())?
        {
            crate::fsio::write_atomic(&local, &String::from_utf8_lossy(&bytes))
                .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
        }
    }
    copy(nix, &stage_url, roots).await?;
    nix.sign(Some(&stage_url), &opts.key_file, roots)
        .await
        .map_err(|e| e.to_string())?;
    verify(nix, &stage_url, public_key, roots).await?;
    let mut files = Vec::new();
    for p in &closure {
        let key = format!("{}.narinfo", store_hash(&p.path));
        let local = stage.join(&key);
        let text = std::fs::read_to_string(&local)
            .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
        let nar = narinfo_field(&text, "URL")
            .ok_or_else(|| format!("{} has no `URL:` line", local.display()))?;
        if !safe_cache_key(nar) {
            return Err(format!(
                "{} names the NAR file `{nar}`, which is not a cache file",
                local.display()
            ));
        }
        let nar_file = stage.join(nar);
        if nar_file.exists() {
            files.push((nar.to_owned(), nar_file));
        } else if !existing.contains_key(nar) {
            return Err(format!(
                "s3://{bucket}/{key} names {nar}, which neither the bucket nor the staging cache holds; delete that .narinfo from the bucket and run `bake build` again"
            ));
        }
        files.push((key, local));
    }
    files.push(("nix-cache-info".to_owned(), stage.join("nix-cache-info")));
    let total = files.len();
    let uploaded = s3
        .upload(&files, &existing)
        .await
        .map_err(|e| e.to_string())?;
    Ok((uploaded, total - uploaded))
}

/// A `Key: value` line of a `.narinfo`.
pub fn narinfo_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(": "))
        .map(str::trim)
}

/// A relative key inside a cache (`nar/…`): no `..`, no absolute path, plain characters.
pub fn safe_cache_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('/')
        && !key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c))
}

/// The default staging directory: `$XDG_CACHE_HOME/bake/binary-cache` or `~/.cache/bake/binary-cache`.
pub fn default_work_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Path::new(&x).join("bake/binary-cache");
    }
    std::env::var_os("HOME")
        .map_or_else(|| PathBuf::from(".bake-cache"), PathBuf::from)
        .join(".cache/bake/binary-cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narinfo_fields_and_cache_keys() {
        let t = "StorePath: /nix/store/x-y\nURL: nar/abc.nar.xz\nReferences: a b\n";
        assert_eq!(narinfo_field(t, "URL"), Some("nar/abc.nar.xz"));
        assert_eq!(narinfo_field(t, "References"), Some("a b"));
        assert_eq!(narinfo_field(t, "Sig"), None);
        assert!(safe_cache_key("nar/abc.nar.xz"));
        for bad in [
            "../x",
            "/etc/passwd",
            "nar/../../x",
            "nar//x",
            "nar/a b",
            "",
        ] {
            assert!(!safe_cache_key(bad), "{bad}");
        }
    }
}
