//! The values of a prebuilt closure, as grammars: binary cache URLs, Nix public keys, store paths and NAR hashes.
//!
//! Pure (no files, network or environment): `spec::grammar` checks spec values with it, `lock::verify` the lock's,
//! and `emit` derives the build role's S3 resources and the script's values from it.

/// Where a binary cache lives, as the spec names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheUrl {
    /// `s3://bucket?region=…`: Nix's S3 binary cache store, at the root of the bucket.
    S3 { bucket: String, region: String },
    /// `https://host/path` (or plaintext `http://`): an HTTP binary cache.
    Http { url: String, tls: bool },
    /// `file:///absolute/dir`: a binary cache in a local directory (tests, or a cache mounted on the instance).
    File { path: String },
}

impl CacheUrl {
    /// The S3 objects the build instance reads for this cache (`bucket/key-pattern`, the part of the ARN after
    /// `arn:<partition>:s3:::`): exactly the three kinds of files a binary cache holds (`nix-cache-info`,
    /// `<hash>.narinfo`, `nar/…`). Empty for caches outside S3.
    pub fn read_objects(&self) -> Vec<String> {
        match self {
            CacheUrl::S3 { bucket, .. } => vec![
                format!("{bucket}/nix-cache-info"),
                format!("{bucket}/*.narinfo"),
                format!("{bucket}/nar/*"),
            ],
            _ => Vec::new(),
        }
    }
}

/// Parses a cache URL, or says in a phrase what is wrong with it.
pub fn parse_cache_url(s: &str) -> Result<CacheUrl, String> {
    if s.contains(char::is_whitespace)
        || s.contains(['\'', '"', '\\', '`', '$', ';', '|', '<', '>'])
    {
        return Err("has characters that are not allowed in a cache URL".into());
    }
    if s.contains('#') {
        return Err("has a `#` fragment, which a binary cache URL does not take".into());
    }
    if let Some(rest) = s.strip_prefix("s3://") {
        return parse_s3(rest);
    }
    let (tls, rest) = match (s.strip_prefix("https://"), s.strip_prefix("http://")) {
        (Some(r), _) => (true, r),
        (_, Some(r)) => (false, r),
        _ => {
            if let Some(path) = s.strip_prefix("file://") {
                return parse_file(path);
            }
            let scheme = s.split_once("://").map_or("", |(sch, _)| sch);
            return Err(if scheme.is_empty() {
                "is not a URL: give `s3://bucket?region=…`, `https://…` or `file:///…`".into()
            } else {
                format!(
                    "has the scheme `{scheme}://`; the build instance substitutes from `s3://`, `https://` (or `http://`) and `file://` binary caches"
                )
            });
        }
    };
    if rest.contains('?') {
        return Err("has a query; an HTTP binary cache URL takes none".into());
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.contains('@') {
        return Err(
            "has credentials before `@`; the spec names where a cache is, never a secret".into(),
        );
    }
    let (name, port) = host.split_once(':').unwrap_or((host, ""));
    let name_ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !name_ok {
        return Err("has no valid host name".into());
    }
    if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err("has an invalid port".into());
    }
    if !path.chars().all(path_char) || path.contains("//") || path.split('/').any(|p| p == "..") {
        return Err("has a path with characters that are not allowed".into());
    }
    Ok(CacheUrl::Http {
        url: s.trim_end_matches('/').to_owned(),
        tls,
    })
}

fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~/%+=,".contains(c)
}

fn parse_file(path: &str) -> Result<CacheUrl, String> {
    if !path.starts_with('/') {
        return Err("is not `file:///absolute/path`".into());
    }
    if path.contains('?') {
        return Err("has a query; a `file://` cache URL takes none".into());
    }
    if !path.chars().all(path_char) || path.contains("//") || path.split('/').any(|p| p == "..") {
        return Err("has a path with characters that are not allowed".into());
    }
    Ok(CacheUrl::File {
        path: path.trim_end_matches('/').to_owned(),
    })
}

fn parse_s3(rest: &str) -> Result<CacheUrl, String> {
    let (bucket_and_path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some((bucket, path)) = bucket_and_path.split_once('/')
        && !path.is_empty()
    {
        return Err(format!(
            "has the key prefix `/{path}`: Nix's S3 store reads a cache at the root of its bucket (it takes everything after `s3://` as the bucket name), so give the cache a bucket of its own: `s3://{bucket}?region=…`"
        ));
    }
    let bucket = bucket_and_path.trim_end_matches('/');
    check_bucket(bucket)?;
    let mut region = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("region", r)) if region.is_none() => region = Some(r),
            Some(("region", _)) => return Err("gives `region` twice".into()),
            Some((key, _)) => {
                return Err(format!(
                    "has the parameter `{key}`; bake's S3 caches take only `region` (the build instance reads with its instance role, on AWS's endpoint)"
                ));
            }
            None => return Err(format!("has the parameter `{pair}` without a value")),
        }
    }
    let Some(region) = region else {
        return Err(format!(
            "has no region: Nix reads S3 in us-east-1 unless told otherwise; write `s3://{bucket}?region=<the bucket's region>`"
        ));
    };
    if crate::spec::grammar::Grammar::Region.check(region).is_err() {
        return Err(format!("has `region={region}`, which is not an AWS region"));
    }
    Ok(CacheUrl::S3 {
        bucket: bucket.to_owned(),
        region: region.to_owned(),
    })
}

/// S3's rules for general-purpose bucket names.
fn check_bucket(b: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !b.contains("..")
        && !b.split('.').all(|p| p.parse::<u8>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has the bucket name `{b}`, which S3 does not allow (3 to 63 lower-case letters, digits, `.` and `-`)"
        ))
    }
}

/// Checks a Nix public key `name:base64`, as `nix key convert-secret-to-public` prints it.
pub fn check_public_key(s: &str) -> Result<(), String> {
    let Some((name, key)) = s.split_once(':') else {
        return Err("is not `name:base64`, as `nix key convert-secret-to-public` prints it".into());
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(
            "has a key name with characters other than letters, digits, `.`, `_` and `-`".into(),
        );
    }
    match base64_decode(key) {
        Some(bytes) if bytes.len() == 32 => Ok(()),
        Some(bytes) if bytes.len() == 64 => Err(
            "is a SECRET key (64 bytes): put only the public key in the spec (`nix key convert-secret-to-public < secret-key`), remove the secret from the repository and make a new one"
                .into(),
        ),
        Some(bytes) => Err(format!(
            "holds {} bytes; an Ed25519 public key has 32",
            bytes.len()
        )),
        None => Err("is not `name:base64` (the part after `:` is not base64)".into()),
    }
}

/// The key's name (what Nix writes before `:` in a signature).
pub fn key_name(public_key: &str) -> &str {
    public_key.split_once(':').map_or(public_key, |(n, _)| n)
}

/// A store path under `/nix/store`: 32 characters of Nix's base32, `-`, a name.
pub fn is_store_path(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("/nix/store/") else {
        return false;
    };
    let (hash, name) = rest.split_at(rest.len().min(32));
    hash.len() == 32
        && hash.bytes().all(|b| NIX32.contains(&b))
        && name.len() >= 2
        && name.starts_with('-')
        && !name[1..].starts_with('.')
        && name[1..].len() <= 211
        && name[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
}

/// The part of a store path a binary cache names its `.narinfo` after.
pub fn store_hash(path: &str) -> &str {
    path.strip_prefix("/nix/store/")
        .and_then(|r| r.get(..32))
        .unwrap_or("")
}

const NIX32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// `sha256-<base64>` (what `nix path-info --json` prints) → `sha256:<nix32>` (what `nix-store --query --hash`
/// prints on every Nix version), or `None` for anything else.
pub fn sri_to_nix32(sri: &str) -> Option<String> {
    let bytes = base64_decode(sri.strip_prefix("sha256-")?)?;
    if bytes.len() != 32 {
        return None;
    }
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    let mut out = String::from("sha256:");
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = u16::from(bytes[i]) >> j;
        let hi = bytes.get(i + 1).map_or(0, |&x| u16::from(x) << (8 - j));
        out.push(char::from(NIX32[usize::from((lo | hi) & 0x1f)]));
    }
    Some(out)
}

/// Standard base64 with padding; `None` when it is not.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 || bytes[..bytes.len() - pad].contains(&b'=') {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        let mut real = 0;
        for &c in chunk {
            n <<= 6;
            if c != b'=' {
                n |= value(c)?;
                real += 1;
            }
        }
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..real - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-1:udk6HauTOF0y3eprFrBrTgyZddy+fvhxo0hO+nuNUVE=";

    #[test]
    fn s3_caches_name_a_bucket_and_its_region() {
        assert_eq!(
            parse_cache_url("s3://acme-nix-cache?region=eu-west-1"),
            Ok(CacheUrl::S3 {
                bucket: "acme-nix-cache".into(),
                region: "eu-west-1".into()
            })
        );
        let e = parse_cache_url("s3://acme-nix-cache").unwrap_err();
        assert!(e.contains("no region"), "{e}");
        let e = parse_cache_url("s3://acme/team/cache?region=us-east-1").unwrap_err();
        assert!(e.contains("key prefix `/team/cache`"), "{e}");
        let e = parse_cache_url("s3://acme?region=us-east-1&profile=ci").unwrap_err();
        assert!(e.contains("`profile`"), "{e}");
        assert!(parse_cache_url("s3://Acme?region=us-east-1").is_err());
        assert!(parse_cache_url("s3://ab?region=us-east-1").is_err());
        assert!(parse_cache_url("s3://acme?region=moon").is_err());
    }

    #[test]
    fn s3_caches_give_the_build_role_only_cache_files() {
        let c = parse_cache_url("s3://acme-nix-cache?region=eu-west-1").unwrap();
        assert_eq!(
            c.read_objects(),
            [
                "acme-nix-cache/nix-cache-info",
                "acme-nix-cache/*.narinfo",
                "acme-nix-cache/nar/*"
            ]
        );
        assert!(
            parse_cache_url("https://cache.example.com")
                .unwrap()
                .read_objects()
                .is_empty()
        );
    }

    #[test]
    fn other_schemes_and_hostile_urls_are_refused() {
        for bad in [
            "ssh://cache.example.com",
            "daemon",
            "cache.example.com",
            "https://user:pw@cache.example.com",
            "https://cache.example.com/';rm -rf /",
            "https://cache.example.com/$(id)",
            "https://cache.example.com?priority=1",
            "https://-x.example.com",
            "https://cache.example.com:0",
            "file://relative/dir",
            "file:///srv/../etc",
            "s3://acme?region=us-east-1#x",
        ] {
            assert!(parse_cache_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_cache_url("http://10.0.0.5:8080/cache"),
            Ok(CacheUrl::Http { tls: false, .. })
        ));
        assert!(matches!(
            parse_cache_url("file:///srv/nix-cache/"),
            Ok(CacheUrl::File { path }) if path == "/srv/nix-cache"
        ));
    }

    #[test]
    fn public_keys_are_name_colon_32_bytes() {
        assert_eq!(check_public_key(KEY), Ok(()));
        assert_eq!(key_name(KEY), "test-1");
        assert!(check_public_key("test-1").is_err());
        assert!(check_public_key(":udk6HauTOF0y3eprFrBrTgyZddy+fvhxo0hO+nuNUVE=").is_err());
        assert!(check_public_key("te st:udk6HauTOF0y3eprFrBrTgyZddy+fvhxo0hO+nuNUVE=").is_err());
        assert!(check_public_key("test-1:udk6HauTOF0y3eprFrBrTgyZddy+fvhxo0hO+nuNUV").is_err());
        let secret = format!("test-1:{}", "A".repeat(86) + "==");
        let e = check_public_key(&secret).unwrap_err();
        assert!(e.contains("SECRET"), "{e}");
    }

    #[test]
    fn store_paths_have_a_nix32_hash_and_a_name() {
        assert!(is_store_path(
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-toplevel"
        ));
        assert_eq!(
            store_hash("/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-toplevel"),
            "f39n8s2lwpi2csb98yd1n72qj9rdn2cg"
        );
        for bad in [
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg",
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2ce-x",
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-x y",
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-x';id'",
            "/tmp/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-x",
            "/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-.hidden",
        ] {
            assert!(!is_store_path(bad), "{bad}");
        }
    }

    #[test]
    fn nar_hashes_convert_to_what_nix_store_prints() {
        // `nix hash to-base32 sha256-8AVw…` on Nix 2.8 printed this (and `nix-store --query --hash` agrees).
        assert_eq!(
            sri_to_nix32("sha256-8AVw8mAbZuoA1BBJ5Gd3Fs2LaDgOu63XPe1x3DkoJ2U=").as_deref(),
            Some("sha256:0r9750wxqwgd7pbsvfqf71l8pk8nfxky8j8hsh0flrhvc3r701gh")
        );
        assert_eq!(sri_to_nix32("sha256-AAAA"), None);
        assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("a=Gk"), None);
    }
}
