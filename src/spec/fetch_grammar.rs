//! The grammars of the `fetch` node's values: hosts, Secrets Manager secret ids, SSM parameter names, pinned
//! `known_hosts` lines, proxy URLs and no-proxy lists. Each value ends up in the bootstrap script (quoted by
//! `emit` as well) or in an IAM policy, so each grammar is the narrow set AWS, git, OpenSSH and curl accept.

/// `host` or `host:port`: DNS labels of lower-case letters, digits and inner `-`, or an IPv4 address.
pub fn check_host(s: &str) -> Result<(), String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|n| n > 0)
    {
        return Err("has a port that is not a number from 1 to 65535".into());
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(
            "has upper-case letters; write the host in lower case, as git and Nix compare it"
                .into(),
        );
    }
    if !is_dns_name(host) {
        return Err(String::new());
    }
    Ok(())
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A Secrets Manager secret: its name (`team/git-token`) or its full ARN (with the 6-character suffix).
pub fn check_secret_id(s: &str) -> Result<(), String> {
    if let Some(rest) = s.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0].starts_with("aws")
            && parts[0]
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
            && parts[1] == "secretsmanager"
            && crate::aws::is_region_name(parts[2])
            && parts[3].len() == 12
            && parts[3].bytes().all(|b| b.is_ascii_digit())
            && parts[4] == "secret"
            && parts[5].rsplit_once('-').is_some_and(|(name, suffix)| {
                is_secret_name(name)
                    && suffix.len() == 6
                    && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        return if ok {
            Ok(())
        } else {
            Err("is not a Secrets Manager secret ARN `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>`".into())
        };
    }
    if !is_secret_name(s) {
        return Err(String::new());
    }
    Ok(())
}

/// Secrets Manager's name rule: 1 to 512 of letters, digits and `/_+=.@-`.
fn is_secret_name(s: &str) -> bool {
    (1..=512).contains(&s.len())
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

/// The key types OpenSSH pins in `known_hosts`.
pub const KNOWN_HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One `known_hosts` line, as `ssh-keyscan HOST` prints it: `host[,host…] key-type base64-key`. No markers
/// (`@cert-authority`, `@revoked`), no hashed hosts, no comment: bake compares the host with the key's.
pub fn check_known_host(s: &str) -> Result<(), String> {
    if s.starts_with('@') {
        return Err("has a marker (`@cert-authority`, `@revoked`); pin the host key itself".into());
    }
    if s.starts_with('|') {
        return Err(
            "has a hashed host name; pin the line `ssh-keyscan` prints without `-H`".into(),
        );
    }
    let fields: Vec<&str> = s.split(' ').collect();
    if fields.len() != 3 {
        return Err(
            "is not `host key-type key` separated by single spaces (without a comment)".into(),
        );
    }
    if known_host_names(s).is_none() {
        return Err("has a host that is not `name` or `[name]:port`".into());
    }
    if !KNOWN_HOST_KEY_TYPES.contains(&fields[1]) {
        return Err(format!(
            "has the key type `{}`; OpenSSH host keys are {}",
            fields[1],
            KNOWN_HOST_KEY_TYPES.join(", ")
        ));
    }
    let key = fields[2];
    let ok = key.len() >= 16
        && key.len() <= 4096
        && key.trim_end_matches('=').len() + 2 >= key.len()
        && key
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !ok {
        return Err("has a key that is not base64".into());
    }
    Ok(())
}

/// The hosts a `known_hosts` line names, as `host` or `host:port` (from `[host]:port`); `None` if one is not a
/// host name.
pub fn known_host_names(line: &str) -> Option<Vec<String>> {
    let hosts = line.split(' ').next()?;
    hosts
        .split(',')
        .map(|h| {
            let name = match h.strip_prefix('[') {
                Some(rest) => {
                    let (host, port) = rest.split_once("]:")?;
                    format!("{host}:{port}")
                }
                None => h.to_owned(),
            };
            check_host(&name).ok().map(|()| name)
        })
        .collect()
}

/// A proxy URL: `http://host:port` or `https://host:port`, without credentials, path, query or fragment.
pub fn check_proxy_url(s: &str) -> Result<(), String> {
    let Some(rest) = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
    else {
        return Err("is not an `http://` or `https://` proxy URL".into());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err("has credentials; they would be written into the image's build script and logs. Use a proxy that admits the build subnet, or put its credentials in the instance's environment yourself".into());
    }
    if rest.contains(['/', '?', '#']) {
        return Err("has a path, query or fragment; a proxy URL is `http://host:port`".into());
    }
    check_host(rest)
}

/// A no-proxy list: comma-separated host names, `.domain` suffixes, IPv4 addresses or CIDR blocks.
pub fn check_no_proxy(s: &str) -> Result<(), String> {
    for entry in s.split(',') {
        let ok = if let Some((ip, bits)) = entry.split_once('/') {
            is_ipv4(ip) && bits.parse::<u8>().is_ok_and(|b| b <= 32)
        } else {
            let host = entry.strip_prefix('.').unwrap_or(entry);
            check_host(host).is_ok()
        };
        if !ok {
            return Err(format!(
                "has the entry `{entry}`, which is not a host, `.domain`, IPv4 address or CIDR block (entries are separated by `,` without spaces)"
            ));
        }
    }
    Ok(())
}

fn is_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

/// The user name git sends with a token: letters, digits and `._-`, at most 64.
pub fn check_git_user(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(()) } else { Err(String::new()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert!(check_host("github.com").is_ok());
        assert!(check_host("git.acme.internal:8443").is_ok());
        assert!(check_host("10.0.0.1").is_ok());
        assert!(check_host("GitHub.com").is_err());
        assert!(check_host("git.acme:0").is_err());
        assert!(check_host("-x.com").is_err());
        assert!(check_host("a..b").is_err());
        assert!(check_host("h/x").is_err());
        assert!(check_host("h;rm").is_err());
        assert!(check_host("").is_err());
    }

    #[test]
    fn secret_ids() {
        assert!(check_secret_id("bake/git-token").is_ok());
        assert!(check_secret_id("team+x=y.z@w_v").is_ok());
        assert!(
            check_secret_id("arn:aws:secretsmanager:eu-west-1:123456789012:secret:bake/key-AbC123")
                .is_ok()
        );
        assert!(
            check_secret_id("arn:aws:secretsmanager:eu-west-1:123456789012:secret:bake/key")
                .is_err()
        );
        assert!(check_secret_id("arn:aws:ssm:eu-west-1:123456789012:parameter/x").is_err());
        assert!(check_secret_id("a b").is_err());
        assert!(check_secret_id("a'b").is_err());
        assert!(check_secret_id("$(id)").is_err());
        assert!(check_secret_id(&"a".repeat(513)).is_err());
    }

    #[test]
    fn known_hosts_lines() {
        let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert!(check_known_host(&format!("github.com ssh-ed25519 {key}")).is_ok());
        assert!(check_known_host(&format!("[git.acme]:2222,git.acme ssh-ed25519 {key}")).is_ok());
        assert_eq!(
            known_host_names(&format!("[git.acme]:2222,git.acme ssh-ed25519 {key}")),
            Some(vec!["git.acme:2222".to_owned(), "git.acme".to_owned()])
        );
        assert!(check_known_host(&format!("@revoked github.com ssh-ed25519 {key}")).is_err());
        assert!(check_known_host(&format!("|1|abc= ssh-ed25519 {key}")).is_err());
        assert!(check_known_host(&format!("github.com ssh-dss {key}")).is_err());
        assert!(check_known_host(&format!("github.com ssh-ed25519 {key} comment")).is_err());
        assert!(check_known_host("github.com ssh-ed25519 not$base64aaaaaaaaaaaa").is_err());
        assert!(check_known_host(&format!("git'hub ssh-ed25519 {key}")).is_err());
    }

    #[test]
    fn proxies() {
        assert!(check_proxy_url("http://proxy.acme.internal:3128").is_ok());
        assert!(check_proxy_url("https://10.0.0.5:8443/").is_ok());
        assert!(check_proxy_url("http://user:pw@proxy:3128").is_err());
        assert!(check_proxy_url("socks5://proxy:1080").is_err());
        assert!(check_proxy_url("http://proxy:3128/x").is_err());
        assert!(check_proxy_url("http://proxy:3128;id").is_err());
        assert!(check_no_proxy("localhost,.acme.internal,10.0.0.0/8,169.254.169.254").is_ok());
        assert!(check_no_proxy("a, b").is_err());
        assert!(check_no_proxy("*").is_err());
        assert!(check_no_proxy("10.0.0.0/33").is_err());
        assert!(check_git_user("x-access-token").is_ok());
        assert!(check_git_user("a:b").is_err());
    }
}
