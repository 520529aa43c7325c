//! Value grammars: what AWS, Nix and the shell accept for each kind of string in a spec.
//!
//! Every string in a spec passes `check_safe` first (no control characters, no `{{`), then the grammar of its
//! field. Values that reach a script are quoted by `emit` as well; the grammar is the first line of defence.

use super::fetch_grammar;

/// The kinds of strings a spec holds. Each has a checker and a description for docs and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// Free text (descriptions, tag values, paths); only the safety rules apply.
    Text,
    StackName,
    /// Image and fleet names: they become parts of AWS names and logical ids.
    Name,
    Region,
    AccountId,
    SsmParameter,
    AmiId,
    InstanceType,
    SubnetId,
    SecurityGroupId,
    FlakeUrl,
    GitRef,
    GitRev,
    FlakeAttr,
    FlakeInput,
    RpmName,
    Version,
    Duration,
    /// A whole number of days, `90d` (1 to 3650).
    Days,
    PolicyArn,
    TagKey,
    SystemdUnit,
    /// A command line for bash on the instance (quoted by `emit`, never spliced).
    ShellCommand,
    /// An AWS Organizations OU id (`ou-…`) or root id (`r-…`): a stack set's deployment target.
    OrganizationalUnitId,
    /// An IAM role ARN (a stack set's administration role).
    RoleArn,
    /// An IAM role name (a stack set's execution role).
    RoleName,
    /// A Nix binary cache URL (`s3://bucket?region=…`, `https://…`, `file:///…`); see `closure::url`.
    CacheUrl,
    /// A Nix public signing key, `name:base64`.
    NixPublicKey,
    /// `fetch`: a git host, `host` or `host:port` (see `fetch_grammar`).
    Host,
    /// `fetch`: a Secrets Manager secret name or ARN.
    SecretId,
    /// `fetch`: an SSM SecureString parameter name.
    SecureParameter,
    /// `fetch`: one pinned `known_hosts` line.
    KnownHost,
    /// `fetch`: an HTTP(S) proxy URL.
    ProxyUrl,
    /// `fetch`: a comma-separated no-proxy list.
    NoProxy,
    /// `fetch`: the user name git sends with a token.
    GitUser,
}

impl Grammar {
    /// A short description used in docs and in "expected ..." messages.
    pub fn describe(self) -> &'static str {
        match self {
            Grammar::Text => "text",
            Grammar::StackName => {
                "a stack name: a letter, then letters, digits and `-` (at most 100)"
            }
            Grammar::Name => {
                "a name: a lower-case letter, then lower-case letters, digits and single `-` (at most 32)"
            }
            Grammar::Region => "an AWS region such as `us-east-1`",
            Grammar::AccountId => "a 12-digit AWS account id",
            Grammar::SsmParameter => {
                "an SSM parameter name such as `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64`"
            }
            Grammar::AmiId => "an AMI id such as `ami-0123456789abcdef0`",
            Grammar::InstanceType => "an EC2 instance type such as `m7i.large`",
            Grammar::SubnetId => "a subnet id such as `subnet-0123456789abcdef0`",
            Grammar::SecurityGroupId => "a security group id such as `sg-0123456789abcdef0`",
            Grammar::FlakeUrl => {
                "a git flake URL without query or fragment: `git+https://host/repo.git`, `git+ssh://...` or `github:owner/repo`"
            }
            Grammar::GitRef => "a git branch or tag name such as `main` or `refs/tags/v1`",
            Grammar::GitRev => "a full git commit hash (40 hex digits)",
            Grammar::FlakeAttr => "a flake output attribute path such as `systemConfigs.web`",
            Grammar::FlakeInput => "a flake input name such as `system-manager`",
            Grammar::RpmName => "an RPM package name such as `git` or `python3.11`",
            Grammar::Version => "a version `X.Y.Z` such as `3.1.1`",
            Grammar::Duration => "an ISO-8601 duration such as `PT10M` or `PT1H30M`",
            Grammar::Days => "a number of days from 1 to 3650 such as `90d`",
            Grammar::PolicyArn => {
                "an IAM managed policy ARN such as `arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy`"
            }
            Grammar::TagKey => "a tag key: 1 to 128 characters, not starting with `aws:`",
            Grammar::SystemdUnit => {
                "a systemd unit name such as `nginx.service` or `multi-user.target`"
            }
            Grammar::ShellCommand => {
                "a one-line shell command such as `curl -fsS http://localhost/health` (no `${`: user data passes through Fn::Sub)"
            }
            Grammar::OrganizationalUnitId => {
                "an Organizations OU id such as `ou-ab12-cdefgh34` or a root id such as `r-ab12`"
            }
            Grammar::RoleArn => {
                "an IAM role ARN such as `arn:aws:iam::123456789012:role/AWSCloudFormationStackSetAdministrationRole`"
            }
            Grammar::RoleName => "an IAM role name: 1 to 64 letters, digits and `+=,.@_-`",
            Grammar::CacheUrl => {
                "a Nix binary cache URL: `s3://bucket?region=us-east-1`, `https://host/path` or `file:///dir`"
            }
            Grammar::NixPublicKey => {
                "a Nix public key `name:base64`, as `nix key convert-secret-to-public` prints it"
            }
            Grammar::Host => "a host name such as `github.com` or `git.acme.internal:8443`",
            Grammar::SecretId => {
                "a Secrets Manager secret name such as `bake/git-token`, or its full ARN"
            }
            Grammar::SecureParameter => {
                "an SSM SecureString parameter name such as `/bake/github-token`"
            }
            Grammar::KnownHost => {
                "a known_hosts line `host key-type key` as `ssh-keyscan` prints it, such as `github.com ssh-ed25519 AAAAC3Nza...`"
            }
            Grammar::ProxyUrl => "a proxy URL such as `http://proxy.acme.internal:3128`",
            Grammar::NoProxy => {
                "comma-separated hosts, `.domain` suffixes, IPv4 addresses or CIDR blocks, such as `.acme.internal,10.0.0.0/8`"
            }
            Grammar::GitUser => "a user name such as `x-access-token` or `oauth2`",
        }
    }

    /// Checks a value. The error says what is wrong with it, in words that fit after "this value ".
    pub fn check(self, s: &str) -> Result<(), String> {
        check_safe(s)?;
        match self {
            Grammar::Text => Ok(()),
            Grammar::StackName => {
                let ok = s.len() <= 100
                    && s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                expect(ok)
            }
            Grammar::Name => {
                let ok = (1..=32).contains(&s.len())
                    && s.starts_with(|c: char| c.is_ascii_lowercase())
                    && !s.ends_with('-')
                    && !s.contains("--")
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                expect(ok)
            }
            Grammar::Region => {
                let parts: Vec<&str> = s.split('-').collect();
                let ok = parts.len() >= 3
                    && parts[0].len() == 2
                    && parts[..parts.len() - 1]
                        .iter()
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
                    && parts[parts.len() - 1].parse::<u8>().is_ok();
                expect(ok)
            }
            Grammar::AccountId => expect(s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())),
            Grammar::SsmParameter => {
                if !s.starts_with('/') {
                    return Err("does not start with `/`".into());
                }
                let ok = s.len() <= 2048
                    && !s.contains("//")
                    && !s.ends_with('/')
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
                expect(ok)
            }
            Grammar::AmiId => expect(aws_id(s, "ami-")),
            Grammar::SubnetId => expect(aws_id(s, "subnet-")),
            Grammar::SecurityGroupId => expect(aws_id(s, "sg-")),
            Grammar::InstanceType => {
                let ok = match s.split_once('.') {
                    Some((family, size)) => {
                        family.starts_with(|c: char| c.is_ascii_lowercase())
                            && family
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                            && !size.is_empty()
                            && size
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    }
                    None => false,
                };
                expect(ok)
            }
            Grammar::FlakeUrl => check_flake_url(s),
            Grammar::GitRef => {
                let ok = !s.is_empty()
                    && !s.starts_with(['-', '/', '.'])
                    && !s.ends_with(['/', '.'])
                    && !s.ends_with(".lock")
                    && !s.contains("..")
                    && !s.contains("//")
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
                expect(ok)
            }
            Grammar::GitRev => expect(is_git_rev(s)),
            Grammar::FlakeAttr => {
                let ok = !s.is_empty() && s.split('.').all(is_nix_identifier);
                expect(ok)
            }
            Grammar::FlakeInput => expect(is_nix_identifier(s)),
            Grammar::RpmName => {
                let ok = s.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && s.len() <= 200
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
                expect(ok)
            }
            Grammar::Version => {
                let parts: Vec<&str> = s.split('.').collect();
                let ok = parts.len() == 3
                    && parts.iter().all(|p| {
                        !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit())
                    });
                expect(ok)
            }
            Grammar::Duration => parse_duration(s).map(|_| ()),
            Grammar::Days => parse_days(s).map(|_| ()),
            Grammar::PolicyArn => {
                let ok = s
                    .strip_prefix("arn:")
                    .and_then(|r| r.split_once(":iam::"))
                    .is_some_and(|(partition, rest)| {
                        partition.starts_with("aws")
                            && partition
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c == '-')
                            && rest.split_once(":policy/").is_some_and(|(account, path)| {
                                (account == "aws"
                                    || (account.len() == 12
                                        && account.bytes().all(|b| b.is_ascii_digit())))
                                    && !path.is_empty()
                                    && path.chars().all(|c| {
                                        c.is_ascii_alphanumeric() || "+=,.@/_-".contains(c)
                                    })
                            })
                    });
                expect(ok)
            }
            Grammar::TagKey => {
                if s.to_ascii_lowercase().starts_with("aws:") {
                    return Err("starts with `aws:`, which AWS reserves".into());
                }
                expect((1..=128).contains(&s.chars().count()))
            }
            Grammar::SystemdUnit => {
                let ok = s.rsplit_once('.').is_some_and(|(stem, ext)| {
                    !stem.is_empty()
                        && !stem.starts_with('-')
                        && stem
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "@._:-".contains(c))
                        && ["service", "target", "socket", "timer", "mount", "path"].contains(&ext)
                });
                expect(ok)
            }
            Grammar::ShellCommand => check_shell_command(s),
            Grammar::OrganizationalUnitId => expect(is_ou_id(s)),
            Grammar::RoleArn => expect(is_role_arn(s)),
            Grammar::RoleName => expect(is_role_name(s)),
            Grammar::CacheUrl => crate::closure::url::parse_cache_url(s).map(drop),
            Grammar::NixPublicKey => crate::closure::url::check_public_key(s),
            Grammar::Host => fetch_grammar::check_host(s),
            Grammar::SecretId => fetch_grammar::check_secret_id(s),
            Grammar::SecureParameter => Grammar::SsmParameter.check(s),
            Grammar::KnownHost => fetch_grammar::check_known_host(s),
            Grammar::ProxyUrl => fetch_grammar::check_proxy_url(s),
            Grammar::NoProxy => fetch_grammar::check_no_proxy(s),
            Grammar::GitUser => fetch_grammar::check_git_user(s),
        }
    }
}

/// A one-line command for bash. It is quoted whole into user data, which CloudFormation's `Fn::Sub` reads first,
/// so `${` would be substituted (or break the template) before the shell sees it.
fn check_shell_command(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 1024 {
        return Err("is longer than 1024 bytes".into());
    }
    if s.contains("${") {
        return Err("contains `${`, which CloudFormation's Fn::Sub would substitute in the user data; write `$VAR` instead of `${VAR}`".into());
    }
    Ok(())
}

/// An SRI SHA-256 hash as Nix writes `narHash`: `sha256-` and 44 characters of base64.
pub fn is_nar_hash(s: &str) -> bool {
    s.strip_prefix("sha256-").is_some_and(|b64| {
        b64.len() == 44
            && b64.ends_with('=')
            && b64[..43]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

/// A SHA-256 digest in lower-case hex, as `sha256sum` prints it.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// CloudFormation's `OrganizationalUnitId`: `^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$`.
fn is_ou_id(s: &str) -> bool {
    let part = |p: &str, min: usize| {
        (min..=32).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(rest) = s.strip_prefix("ou-") {
        rest.split_once('-')
            .is_some_and(|(root, ou)| part(root, 4) && part(ou, 8))
    } else {
        s.strip_prefix("r-").is_some_and(|root| part(root, 4))
    }
}

/// IAM's role name characters (`[\w+=,.@-]`, 1 to 64).
fn is_role_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// `arn:<partition>:iam::<12 digits>:role/<optional path/><name>`, within CloudFormation's 20 to 2048 bytes.
fn is_role_arn(s: &str) -> bool {
    (20..=2048).contains(&s.len())
        && s.strip_prefix("arn:")
            .and_then(|r| r.split_once(":iam::"))
            .is_some_and(|(partition, rest)| {
                partition.starts_with("aws")
                    && partition
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-')
                    && rest.split_once(":role/").is_some_and(|(account, path)| {
                        account.len() == 12
                            && account.bytes().all(|b| b.is_ascii_digit())
                            && path.rsplit('/').next().is_some_and(is_role_name)
                            && path
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
                    })
            })
}

fn expect(ok: bool) -> Result<(), String> {
    if ok { Ok(()) } else { Err(String::new()) }
}

/// Rules for every string, whatever its field: nothing that could break out of a script line or be
/// interpolated by SSM or AWSTOE.
pub fn check_safe(s: &str) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character U+{:04X}; generated scripts and documents take single-line values",
            u32::from(c)
        ));
    }
    if s.contains("{{") || s.contains("}}") {
        return Err("contains `{{` or `}}`, which SSM documents and AWSTOE components interpolate as parameters".into());
    }
    Ok(())
}

fn aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub fn is_git_rev(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_nix_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_'-".contains(c))
}

fn check_flake_url(s: &str) -> Result<(), String> {
    if s.contains(['?', '#']) {
        return Err(
            "has a query or fragment; give `ref=` and `output=` as properties instead".into(),
        );
    }
    if s.contains(char::is_whitespace) || s.contains(['\'', '"', '\\', '`', '$']) {
        return Err("has characters that are not allowed in a URL".into());
    }
    if let Some(rest) = s.strip_prefix("github:") {
        let parts: Vec<&str> = rest.split('/').collect();
        let ok = parts.len() == 2
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            });
        return if ok {
            Ok(())
        } else {
            Err("is not `github:owner/repo`".into())
        };
    }
    for scheme in ["git+https://", "git+ssh://", "git+http://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            let host = rest.split('/').next().unwrap_or_default();
            if host.is_empty() || rest.len() <= host.len() + 1 {
                return Err("has no host or no repository path".into());
            }
            return Ok(());
        }
    }
    if s.ends_with(':') && s.starts_with("git+") {
        return Err("ends at `:`; an unquoted `//` starts a KDL comment, so the rest of the URL was dropped".into());
    }
    Err(String::new())
}

/// Parses `PT#H#M#S` into seconds. Only the time part is accepted: CloudFormation's fields are all below a day or
/// a few.
/// `90d` → 90 (1 to 3650 days).
pub fn parse_days(s: &str) -> Result<u32, String> {
    let n = s
        .strip_suffix('d')
        .filter(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| "is not a number of days such as `90d`".to_owned())?;
    match n.parse::<u32>() {
        Ok(d) if (1..=3650).contains(&d) => Ok(d),
        _ => Err("is not between 1 and 3650 days".to_owned()),
    }
}

pub fn parse_duration(s: &str) -> Result<u64, String> {
    let Some(rest) = s.strip_prefix("PT") else {
        return Err("is not an ISO-8601 duration starting with `PT`".into());
    };
    if rest.is_empty() {
        return Err("has no hours, minutes or seconds".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit = 0;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'H' => (1, 3600),
            'M' => (2, 60),
            'S' => (3, 1),
            _ => return Err(format!("has `{c}`, which is not H, M or S")),
        };
        if number.is_empty() || rank <= last_unit || number.len() > 6 {
            return Err("is not of the form `PT#H#M#S`".into());
        }
        last_unit = rank;
        let n: u64 = number
            .parse()
            .map_err(|_| "has a number out of range".to_owned())?;
        total += n * factor;
        number.clear();
    }
    if !number.is_empty() {
        return Err("ends with a number without a unit".into());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT10M"), Ok(600));
        assert_eq!(parse_duration("PT1H30M5S"), Ok(5405));
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("PT").is_err());
        assert!(parse_duration("PT5M1H").is_err());
        assert!(parse_duration("PT5").is_err());
        assert!(parse_duration("P1D").is_err());
    }

    #[test]
    fn safety_rules_apply_to_every_grammar() {
        for g in [
            Grammar::Text,
            Grammar::RpmName,
            Grammar::FlakeUrl,
            Grammar::TagKey,
        ] {
            assert!(g.check("a\nb").is_err(), "{g:?}");
            assert!(g.check("x{{y").is_err(), "{g:?}");
        }
    }

    #[test]
    fn ids_and_names() {
        assert!(Grammar::AmiId.check("ami-0123456789abcdef0").is_ok());
        assert!(Grammar::AmiId.check("ami-12345678").is_ok());
        assert!(Grammar::AmiId.check("ami-0abc").is_err());
        assert!(Grammar::SubnetId.check("subnet-0123456789abcdef0").is_ok());
        assert!(Grammar::InstanceType.check("m7i-flex.large").is_ok());
        assert!(Grammar::InstanceType.check("m7i").is_err());
        assert!(Grammar::Name.check("web-2").is_ok());
        assert!(Grammar::Name.check("Web").is_err());
        assert!(Grammar::Name.check("a--b").is_err());
        assert!(Grammar::Region.check("us-east-1").is_ok());
        assert!(Grammar::Region.check("us-gov-west-1").is_ok());
        assert!(Grammar::Region.check("useast1").is_err());
        assert!(
            Grammar::OrganizationalUnitId
                .check("ou-ab12-cdefgh34")
                .is_ok()
        );
        assert!(Grammar::OrganizationalUnitId.check("r-ab12").is_ok());
        assert!(
            Grammar::OrganizationalUnitId
                .check("ou-ab1-cdefgh34")
                .is_err()
        );
        assert!(
            Grammar::OrganizationalUnitId
                .check("ou-ab12-cdefgh3")
                .is_err()
        );
        assert!(
            Grammar::OrganizationalUnitId
                .check("OU-ab12-cdefgh34")
                .is_err()
        );
        assert!(
            Grammar::RoleArn
                .check("arn:aws:iam::123456789012:role/AWSCloudFormationStackSetAdministrationRole")
                .is_ok()
        );
        assert!(
            Grammar::RoleArn
                .check("arn:aws:iam::12345678901:role/x")
                .is_err()
        );
        assert!(
            Grammar::RoleArn
                .check("arn:aws:iam::123456789012:policy/x")
                .is_err()
        );
        assert!(
            Grammar::RoleName
                .check("AWSCloudFormationStackSetExecutionRole")
                .is_ok()
        );
        assert!(Grammar::RoleName.check("bad name").is_err());
        assert!(Grammar::RpmName.check("--setopt=x").is_err());
        assert!(Grammar::RpmName.check("python3.11").is_ok());
        assert!(Grammar::GitRef.check("refs/tags/v1").is_ok());
        assert!(Grammar::GitRef.check("-x").is_err());
        assert!(Grammar::GitRef.check("a..b").is_err());
        assert!(Grammar::FlakeAttr.check("systemConfigs.web").is_ok());
        assert!(Grammar::FlakeAttr.check("systemConfigs..web").is_err());
        assert!(
            Grammar::PolicyArn
                .check("arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy")
                .is_ok()
        );
        assert!(
            Grammar::PolicyArn
                .check("arn:aws:iam::123456789012:policy/team/x")
                .is_ok()
        );
        assert!(Grammar::PolicyArn.check("arn:aws:s3:::bucket").is_err());
        assert!(Grammar::SystemdUnit.check("web@1.service").is_ok());
        assert!(Grammar::SystemdUnit.check("web").is_err());
        assert!(Grammar::TagKey.check("aws:x").is_err());
        assert!(
            Grammar::ShellCommand
                .check("curl -fsS 'http://localhost/health' && test -s /run/x")
                .is_ok()
        );
        let sub = Grammar::ShellCommand
            .check("test -n \"${HOME}\"")
            .unwrap_err();
        assert!(sub.contains("Fn::Sub"), "{sub}");
        assert!(Grammar::ShellCommand.check(" ").is_err());
        assert!(Grammar::ShellCommand.check("a\nb").is_err());
    }

    #[test]
    fn hashes() {
        assert!(is_nar_hash(
            "sha256-Pq7Rs8Tu9Vw0Xy1Za2Bc3De4Fg5Hi6Jk7Lm8No9Pq0R="
        ));
        assert!(!is_nar_hash("sha256-x"));
        assert!(!is_nar_hash(
            "sha256-Pq7Rs8Tu9Vw0Xy1Za2Bc3De4Fg5Hi6Jk7Lm8No9Pq0'="
        ));
        assert!(is_sha256_hex(&"ab".repeat(32)));
        assert!(!is_sha256_hex(&"AB".repeat(32)));
    }

    #[test]
    fn flake_urls() {
        assert!(
            Grammar::FlakeUrl
                .check("git+https://github.com/acme/infra.git")
                .is_ok()
        );
        assert!(Grammar::FlakeUrl.check("github:acme/infra").is_ok());
        let cut = Grammar::FlakeUrl.check("git+https:").unwrap_err();
        assert!(cut.contains("comment"), "{cut}");
        assert!(Grammar::FlakeUrl.check("git+https://h/r?ref=main").is_err());
        assert!(
            Grammar::FlakeUrl
                .check("git+https://h/r';rm -rf /")
                .is_err()
        );
        assert!(Grammar::FlakeUrl.check("https://h/r").is_err());
    }
}
