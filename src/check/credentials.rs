//! A built image's `fetch` node: where the build instance gets the credentials for a private flake (Secrets
//! Manager or SSM SecureString, never the secret itself) and the proxy it fetches through.
//!
//! Checked here: each token names exactly one source, hosts appear once, a deploy key's pinned `known_hosts` line
//! names its host, a `git+http://` flake (plaintext) is a warning — and an error when a token is configured for
//! its host — and a `git+ssh://` flake without a deploy key for its host is a warning. Whether a token or key is
//! used by any of the flake's *inputs* needs the lock: [`unused_credentials`] runs after `lock::verify`.

use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};
use crate::spec::Item;
use crate::spec::fetch_grammar::known_host_names;

/// Where one secret lives. The spec's text, as written: `bake lock` resolves it to an ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretSource {
    /// A Secrets Manager secret name or ARN.
    SecretsManager(String),
    /// An SSM SecureString parameter name.
    Parameter(String),
}

impl SecretSource {
    /// The key of this source in the lock's `credentials` map: `secretsmanager:<id>` or `ssm:<name>`.
    pub fn lock_key(&self) -> String {
        match self {
            SecretSource::SecretsManager(id) => format!("secretsmanager:{id}"),
            SecretSource::Parameter(name) => format!("ssm:{name}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SecretSource::SecretsManager(id) => format!("the Secrets Manager secret {id}"),
            SecretSource::Parameter(name) => format!("the SSM parameter {name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TokenPlan {
    pub host: String,
    pub source: SecretSource,
    pub user: String,
    /// The `token` node.
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct SshKeyPlan {
    pub host: String,
    /// A Secrets Manager secret name or ARN.
    pub secret: String,
    pub known_host: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ProxyPlan {
    pub url: String,
    /// The spec's entries followed by what must never go through a proxy (metadata service, localhost).
    pub no_proxy: Vec<String>,
}

/// What the build instance is given to fetch the flake.
#[derive(Debug, Clone, Default)]
pub struct FetchPlan {
    pub tokens: Vec<TokenPlan>,
    pub ssh_keys: Vec<SshKeyPlan>,
    pub proxy: Option<ProxyPlan>,
    /// The `fetch` node.
    pub span: Option<Span>,
}

impl FetchPlan {
    /// Every secret the build reads, in spec order, deduplicated.
    pub fn sources(&self) -> Vec<(SecretSource, Span)> {
        let mut out: Vec<(SecretSource, Span)> = Vec::new();
        let all = self
            .tokens
            .iter()
            .map(|t| (t.source.clone(), t.span))
            .chain(
                self.ssh_keys
                    .iter()
                    .map(|k| (SecretSource::SecretsManager(k.secret.clone()), k.span)),
            );
        for (s, span) in all {
            if !out.iter().any(|(o, _)| *o == s) {
                out.push((s, span));
            }
        }
        out
    }

    pub fn has_secrets(&self) -> bool {
        !self.tokens.is_empty() || !self.ssh_keys.is_empty()
    }
}

/// Never sent to a proxy: the instance metadata service (the AWS CLI's credentials and region), the ECS/EKS
/// credential endpoint, and the loopback.
pub const ALWAYS_NO_PROXY: &[&str] =
    &["169.254.169.254", "169.254.170.2", "localhost", "127.0.0.1"];

/// The host (with `:port` when given) a flake URL is fetched from, and whether over ssh / plaintext http.
pub fn url_host(url: &str) -> Option<(String, Scheme)> {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    if url.starts_with("github:") {
        return Some(("github.com".to_owned(), Scheme::Https));
    }
    if url.starts_with("gitlab:") {
        return Some(("gitlab.com".to_owned(), Scheme::Https));
    }
    if url.starts_with("sourcehut:") {
        return Some(("git.sr.ht".to_owned(), Scheme::Https));
    }
    let (scheme, rest) = url.strip_prefix("git+").unwrap_or(url).split_once("://")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "ssh" => Scheme::Ssh,
        "http" => Scheme::Http,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), scheme))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Ssh,
    Http,
}

pub(super) fn fetch_plan(
    image: &Item,
    flake_url: Option<&Spanned<String>>,
    diags: &mut Diags,
) -> Option<FetchPlan> {
    let fetch = image.child("fetch");
    let mut plan = FetchPlan {
        span: fetch.map(|f| f.name_span),
        ..FetchPlan::default()
    };
    let mut ok = true;
    if let Some(fetch) = fetch {
        let mut seen: Vec<(&str, String, Span)> = Vec::new();
        let mut once = |kind: &'static str, host: &str, span: Span, diags: &mut Diags| {
            if let Some((_, _, first)) = seen.iter().find(|(k, h, _)| *k == kind && h == host) {
                diags.push(
                    Diag::error(
                        Code::Duplicate,
                        format!("two `{kind}` nodes for host {host}"),
                    )
                    .label(span, "given again here")
                    .label(*first, "first given here")
                    .help(format!("the build uses one {kind} per host; remove one")),
                );
                return false;
            }
            seen.push((kind, host.to_owned(), span));
            true
        };
        for t in fetch.children_named("token") {
            let Some(host) = t.arg_str(0) else {
                ok = false;
                continue;
            };
            let source = match (t.str("secret"), t.str("parameter")) {
                (Some(s), None) => Some(SecretSource::SecretsManager(s.value)),
                (None, Some(p)) => Some(SecretSource::Parameter(p.value)),
                (Some(s), Some(p)) => {
                    diags.push(
                        Diag::error(
                            Code::FetchSource,
                            format!("the token for {} names two sources", host.value),
                        )
                        .label(s.span, "a Secrets Manager secret")
                        .label(p.span, "an SSM parameter")
                        .help("keep one of `secret` and `parameter`"),
                    );
                    None
                }
                (None, None) => {
                    // A value that failed its grammar was already reported; only a token with neither is new.
                    if !t.has("secret") && !t.has("parameter") {
                        diags.push(
                            Diag::error(
                                Code::FetchSource,
                                format!("the token for {} names no source", host.value),
                            )
                            .label(t.name_span, "where does the build read this token?")
                            .help("add `secret=\"<Secrets Manager secret name>\"` or `parameter=\"/<SSM SecureString name>\"`"),
                        );
                    }
                    None
                }
            };
            let user = t.str_or_default("user").map(|u| u.value);
            if !once("token", &host.value, t.name_span, diags) {
                ok = false;
                continue;
            }
            match (source, user) {
                (Some(source), Some(user)) => plan.tokens.push(TokenPlan {
                    host: host.value,
                    source,
                    user,
                    span: t.name_span,
                }),
                _ => ok = false,
            }
        }
        for k in fetch.children_named("ssh-key") {
            let (Some(host), Some(secret), Some(known)) =
                (k.arg_str(0), k.str("secret"), k.str("known-host"))
            else {
                ok = false;
                continue;
            };
            if !once("ssh-key", &host.value, k.name_span, diags) {
                ok = false;
                continue;
            }
            let names = known_host_names(&known.value).unwrap_or_default();
            if !names.contains(&host.value) {
                let pinned = if host.value.contains(':') {
                    let (h, p) = host.value.rsplit_once(':').unwrap_or_default();
                    format!("[{h}]:{p}")
                } else {
                    host.value.clone()
                };
                diags.push(
                    Diag::error(
                        Code::FetchKnownHost,
                        format!("the pinned host key is not for {}", host.value),
                    )
                    .label(known.span, format!("names {}", names.join(", ")))
                    .label(host.span, "the deploy key's host")
                    .help(format!(
                        "ssh checks the host key of the host it connects to; pin the line `ssh-keyscan -t ed25519 {}` prints (its first field is `{pinned}`)",
                        host.value.split(':').next().unwrap_or_default()
                    )),
                );
                ok = false;
                continue;
            }
            plan.ssh_keys.push(SshKeyPlan {
                host: host.value,
                secret: secret.value,
                known_host: known.value,
                span: k.name_span,
            });
        }
        if let Some(p) = fetch.child("proxy") {
            match p.arg_str(0) {
                Some(url) => {
                    let mut no_proxy: Vec<String> = p
                        .str("no-proxy")
                        .map(|n| n.value.split(',').map(str::to_owned).collect())
                        .unwrap_or_default();
                    for always in ALWAYS_NO_PROXY {
                        if !no_proxy.iter().any(|n| n == always) {
                            no_proxy.push((*always).to_owned());
                        }
                    }
                    plan.proxy = Some(ProxyPlan {
                        url: url.value,
                        no_proxy,
                    });
                }
                None => ok = false,
            }
        }
    }
    if let Some(url) = flake_url
        && let Some((host, scheme)) = url_host(&url.value)
    {
        // An image with a prebuilt closure never fetches the flake on the build instance (`bake lock` and
        // `bake build` do, with the machine's own keys): no deploy key is missing there.
        let on_instance = image.child("closure").is_none();
        flake_url_diags(url, &host, scheme, on_instance, &plan, diags);
    }
    ok.then_some(plan)
}

fn flake_url_diags(
    url: &Spanned<String>,
    host: &str,
    scheme: Scheme,
    on_instance: bool,
    plan: &FetchPlan,
    diags: &mut Diags,
) {
    match scheme {
        Scheme::Http => {
            let https = url.value.replacen("git+http://", "git+https://", 1);
            match plan.tokens.iter().find(|t| t.host == host) {
                Some(t) => diags.push(
                    Diag::error(
                        Code::PlaintextGit,
                        "a token would be sent over plaintext HTTP",
                    )
                    .label(url.span, "fetched over `git+http://`")
                    .label(t.span, "the token for this host")
                    .help(format!("use `{https}`: bake gives git the token only over HTTPS")),
                ),
                None => diags.push(
                    Diag::warning(
                        Code::PlaintextGit,
                        "the flake is fetched over plaintext HTTP",
                    )
                    .label(url.span, "`git+http://`")
                    .help(format!(
                        "anyone on the path reads the repository; the locked narHash still stops a changed tree. Use `{https}`"
                    )),
                ),
            }
        }
        Scheme::Ssh if on_instance && !plan.ssh_keys.iter().any(|k| k.host == host) => diags.push(
            Diag::warning(
                Code::SshWithoutKey,
                format!("the flake is fetched over ssh from {host}, with no deploy key"),
            )
            .label(url.span, "`git+ssh://`")
            .help(format!(
                "the build instance has no ssh key of its own; add to the image:\n    fetch {{ ssh-key \"{host}\" secret=\"<secret with the private key>\" known-host=\"<ssh-keyscan -t ed25519 {} output>\" }}",
                host.split(':').next().unwrap_or_default()
            )),
        ),
        _ => {}
    }
}

/// Tokens and deploy keys no fetch uses: hosts that neither the flake URL nor any of its locked inputs fetches
/// from (a typo, or a leftover), and deploy keys for hosts fetched only over HTTPS. Warnings, from the plan and
/// the URLs the lock holds.
pub fn unused_credentials(
    image: &str,
    plan: &FetchPlan,
    flake_url: &str,
    input_urls: &[&str],
) -> Vec<Diag> {
    let fetched: Vec<(String, Scheme)> = std::iter::once(flake_url)
        .chain(input_urls.iter().copied())
        .filter_map(url_host)
        .collect();
    let mut out = Vec::new();
    for t in &plan.tokens {
        if !fetched
            .iter()
            .any(|(h, s)| *h == t.host && *s != Scheme::Ssh)
        {
            out.push(
                Diag::warning(
                    Code::FetchUnused,
                    format!(
                        "image `{image}` has a token for {}, which neither its flake nor a locked input fetches from over HTTPS",
                        t.host
                    ),
                )
                .label(t.span, "never used")
                .help(unused_help(&fetched)),
            );
        }
    }
    for k in &plan.ssh_keys {
        if !fetched
            .iter()
            .any(|(h, s)| *h == k.host && *s == Scheme::Ssh)
        {
            out.push(
                Diag::warning(
                    Code::FetchUnused,
                    format!(
                        "image `{image}` has an ssh deploy key for {}, which neither its flake nor a locked input fetches from over `git+ssh://`",
                        k.host
                    ),
                )
                .label(k.span, "never used")
                .help(unused_help(&fetched)),
            );
        }
    }
    out
}

fn unused_help(fetched: &[(String, Scheme)]) -> String {
    let mut hosts: Vec<String> = fetched
        .iter()
        .map(|(h, s)| match s {
            Scheme::Ssh => format!("{h} (ssh)"),
            Scheme::Http => format!("{h} (http)"),
            Scheme::Https => h.clone(),
        })
        .collect();
    hosts.sort();
    hosts.dedup();
    format!(
        "the build fetches from: {}. Remove it, or correct its host; the build role may read every secret the spec names",
        hosts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_flake_urls() {
        assert_eq!(
            url_host("git+https://git.acme.internal:8443/infra.git?ref=main"),
            Some(("git.acme.internal:8443".into(), Scheme::Https))
        );
        assert_eq!(
            url_host("git+ssh://git@GitHub.com/acme/infra"),
            Some(("github.com".into(), Scheme::Ssh))
        );
        assert_eq!(
            url_host("github:NixOS/nixpkgs/abc"),
            Some(("github.com".into(), Scheme::Https))
        );
        assert_eq!(url_host("git+http://h/r"), Some(("h".into(), Scheme::Http)));
        assert_eq!(url_host("path:/x"), None);
    }

    fn plan() -> FetchPlan {
        let span = crate::source::span(0, 0);
        FetchPlan {
            tokens: vec![TokenPlan {
                host: "github.com".into(),
                source: SecretSource::Parameter("/t".into()),
                user: "x-access-token".into(),
                span,
            }],
            ssh_keys: vec![SshKeyPlan {
                host: "ssh.acme.internal".into(),
                secret: "k".into(),
                known_host: String::new(),
                span,
            }],
            proxy: None,
            span: None,
        }
    }

    #[test]
    fn credentials_no_fetch_uses_are_warned_about() {
        let flake = "git+https://git.acme.internal/infra.git";
        // Used: a github: input and a git+ssh input.
        let used = unused_credentials(
            "api",
            &plan(),
            flake,
            &[
                "github:acme/tools/abc",
                "git+ssh://git@ssh.acme.internal/lib.git?rev=abc",
            ],
        );
        assert!(used.is_empty(), "{used:?}");
        // Neither is used by a flake with only https inputs on other hosts; the ssh host over https is no use.
        let unused = unused_credentials(
            "api",
            &plan(),
            flake,
            &["git+https://ssh.acme.internal/lib.git?rev=abc"],
        );
        assert_eq!(unused.len(), 2, "{unused:?}");
        assert!(
            unused
                .iter()
                .all(|d| d.code == Code::FetchUnused && !d.is_error())
        );
        assert!(unused[0].message.contains("token for github.com"));
        assert!(
            unused[1]
                .message
                .contains("deploy key for ssh.acme.internal")
        );
    }
}
