//! The secrets a build reads (`fetch` tokens and deploy keys) in the lock: which need resolving, how an answer
//! becomes an entry, and whether the lock's entries answer the spec. Pure: `bake lock`'s lookups
//! (Secrets Manager `DescribeSecret`, SSM `DescribeParameters`) run in `resolve` through the `Resolver`.
//!
//! The lock records each secret's full ARN (and its customer-managed KMS key, if any) — never its value — so the
//! build role's policy can name exactly that secret: a Secrets Manager ARN ends in a random 6-character suffix
//! that only AWS knows.

use std::collections::BTreeMap;

use super::SecretLock;
use super::resolve::{LookupError, ParameterInfo, SecretInfo};
use crate::check::credentials::SecretSource;
use crate::check::plan::{BuildPlan, StackPlan};
use crate::diag::{Code, Diag};
use crate::source::Span;
use crate::spec::fetch_grammar::check_secret_id;

/// A secret the build reads, with the ARN the lock holds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSecret {
    pub source: SecretSource,
    pub arn: String,
    pub kms_key: Option<String>,
}

/// Whether a lock entry holds a well-formed ARN for the spec's source in the stack's region.
pub fn entry_matches(source: &SecretSource, entry: &SecretLock, stack: &StackPlan) -> bool {
    match source {
        SecretSource::SecretsManager(id) => {
            let arn_ok = check_secret_id(&entry.arn).is_ok() && entry.arn.starts_with("arn:");
            // The build reads it in the stack's region (an ARN may name another account, not another region).
            let same = if id.starts_with("arn:") {
                entry.arn == *id && arn_field(&entry.arn, 3) == Some(stack.region.as_str())
            } else {
                // `...:secret:<name>-<6 characters>` in the stack's region (and account, when the spec names it).
                entry
                    .arn
                    .rsplit_once(":secret:")
                    .and_then(|(_, rest)| rest.rsplit_once('-'))
                    .is_some_and(|(name, _)| name == id)
                    && arn_field(&entry.arn, 3) == Some(stack.region.as_str())
                    && stack
                        .account
                        .as_deref()
                        .is_none_or(|a| arn_field(&entry.arn, 4) == Some(a))
            };
            arn_ok && same
        }
        SecretSource::Parameter(name) => {
            let fields: Vec<&str> = entry.arn.splitn(6, ':').collect();
            fields.len() == 6
                && fields[0] == "arn"
                && fields[1].starts_with("aws")
                && fields[2] == "ssm"
                && fields[3] == stack.region
                && fields[4].len() == 12
                && fields[4].bytes().all(|b| b.is_ascii_digit())
                && stack.account.as_deref().is_none_or(|a| fields[4] == a)
                && fields[5] == format!("parameter{name}")
        }
    }
}

fn arn_field(arn: &str, n: usize) -> Option<&str> {
    arn.split(':').nth(n)
}

/// The KMS key of an answer, when it is a customer-managed one the role needs `kms:Decrypt` on.
fn customer_key(key: Option<&str>) -> Option<String> {
    key.filter(|k| {
        !k.is_empty() && !k.ends_with("alias/aws/ssm") && !k.ends_with("alias/aws/secretsmanager")
    })
    .map(str::to_owned)
}

/// The lock entry for a Secrets Manager answer, or the diagnostic when it is no usable secret.
pub fn secret_entry(
    id: &str,
    answer: Result<SecretInfo, LookupError>,
    spans: &[Span],
    now: &str,
) -> Result<SecretLock, (Diag, bool)> {
    match answer {
        Ok(info) if info.deleted => Err((
            at_all(
                Diag::error(
                    Code::LockSecret,
                    format!("the Secrets Manager secret {id} is scheduled for deletion"),
                ),
                spans,
            )
            .help("the build could not read it; restore it (`aws secretsmanager restore-secret`) or name another secret"),
            false,
        )),
        Ok(info) if check_secret_id(&info.arn).is_ok() && info.arn.starts_with("arn:") => {
            Ok(SecretLock {
                arn: info.arn,
                kms_key: customer_key(info.kms_key.as_deref()),
                resolved_at: now.to_owned(),
            })
        }
        Ok(info) => Err((
            at_all(
                Diag::error(
                    Code::LockSecret,
                    format!(
                        "Secrets Manager answered for {id} with `{}`, which is not a secret ARN",
                        info.arn
                    ),
                ),
                spans,
            )
            .help("check `AWS_ENDPOINT_URL` and the region, then run `bake lock` again"),
            true,
        )),
        Err(LookupError::NotFound(msg)) => Err((
            at_all(
                Diag::error(
                    Code::LockSecret,
                    format!("Secrets Manager has no secret {id}"),
                ),
                spans,
            )
            .help(format!(
                "AWS said: {}. Create it (`aws secretsmanager create-secret --name {id} --secret-string file://token`) in the stack's region, or correct the name",
                msg.trim_end_matches('.')
            )),
            false,
        )),
        Err(e) => Err((
            at_all(
                Diag::error(
                    Code::LockAws,
                    format!("describing the Secrets Manager secret {id} failed"),
                ),
                spans,
            )
            .help(format!(
                "{}. `bake lock` needs `secretsmanager:DescribeSecret` on it (never GetSecretValue)",
                lookup_sentence(&e)
            )),
            true,
        )),
    }
}

/// The lock entry for an SSM answer: only a SecureString parameter holds a token.
pub fn parameter_entry(
    name: &str,
    answer: Result<ParameterInfo, LookupError>,
    spans: &[Span],
    now: &str,
) -> Result<SecretLock, (Diag, bool)> {
    match answer {
        Ok(info) if info.kind != "SecureString" => Err((
            at_all(
                Diag::error(
                    Code::LockSecret,
                    format!(
                        "the SSM parameter {name} is a {}, not a SecureString",
                        info.kind
                    ),
                ),
                spans,
            )
            .help(format!(
                "a token belongs in an encrypted parameter: `aws ssm put-parameter --name {name} --type SecureString --overwrite --value file://token` (then rotate the token: it was stored in plaintext)"
            )),
            false,
        )),
        Ok(info) => Ok(SecretLock {
            arn: info.arn,
            kms_key: customer_key(info.kms_key.as_deref()),
            resolved_at: now.to_owned(),
        }),
        Err(LookupError::NotFound(msg)) => Err((
            at_all(
                Diag::error(
                    Code::LockSecret,
                    format!("SSM has no parameter {name}"),
                ),
                spans,
            )
            .help(format!(
                "AWS said: {}. Create it as a SecureString in the stack's region, or correct the name",
                msg.trim_end_matches('.')
            )),
            false,
        )),
        Err(e) => Err((
            at_all(
                Diag::error(
                    Code::LockAws,
                    format!("describing the SSM parameter {name} failed"),
                ),
                spans,
            )
            .help(format!(
                "{}. `bake lock` needs `ssm:DescribeParameters` (and `ssm:GetParameter` for its ARN; it never decrypts)",
                lookup_sentence(&e)
            )),
            true,
        )),
    }
}

fn lookup_sentence(e: &LookupError) -> String {
    match e {
        LookupError::Timeout(s) => format!("No answer within {s}s"),
        LookupError::NotFound(m)
        | LookupError::AccessDenied(m)
        | LookupError::NoCredentials(m)
        | LookupError::Aws(m) => m.trim_end_matches('.').to_owned(),
        other => format!("{other:?}"),
    }
}

fn at_all(mut d: Diag, spans: &[Span]) -> Diag {
    for (n, s) in spans.iter().enumerate() {
        d = d.label(
            *s,
            if n == 0 {
                "read by the build"
            } else {
                "also reads it"
            },
        );
    }
    d
}

/// The sources of one image that `bake lock` must resolve: those without a matching entry, or all with `all`.
pub fn needed(
    build: &BuildPlan,
    old: Option<&BTreeMap<String, SecretLock>>,
    stack: &StackPlan,
    all: bool,
) -> Vec<(SecretSource, Span)> {
    build
        .fetch
        .sources()
        .into_iter()
        .filter(|(source, _)| {
            all || !old
                .and_then(|m| m.get(&source.lock_key()))
                .is_some_and(|e| entry_matches(source, e, stack))
        })
        .collect()
}

/// The secrets of one image as the lock answers them, or a diagnostic per missing or stale entry.
pub fn verify(
    image: &str,
    image_span: Span,
    build: &BuildPlan,
    credentials: &BTreeMap<String, SecretLock>,
    stack: &StackPlan,
    fix: &str,
) -> Result<Vec<ResolvedSecret>, Vec<Diag>> {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for (source, span) in build.fetch.sources() {
        match credentials.get(&source.lock_key()) {
            Some(e) if entry_matches(&source, e, stack) => out.push(ResolvedSecret {
                source,
                arn: e.arn.clone(),
                kms_key: e.kms_key.clone(),
            }),
            Some(e) => diags.push(
                Diag::error(
                    Code::LockStale,
                    format!(
                        "the lock's ARN for {} (image `{image}`) is for another secret or region",
                        source.describe()
                    ),
                )
                .label(span, format!("locked: {}", e.arn))
                .help(fix.to_owned()),
            ),
            None => diags.push(
                Diag::error(
                    Code::LockMissing,
                    format!(
                        "the lock has no ARN for {} (image `{image}`)",
                        source.describe()
                    ),
                )
                .label(
                    span,
                    "the build role may read only the ARN the lock records",
                )
                .label(image_span, "for this image")
                .help(fix.to_owned()),
            ),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Warnings that need the flake's locked inputs: tokens and deploy keys no fetch uses, and inputs fetched over
/// plaintext `git+http://`. `pipeline` adds them to compile's warnings.
pub fn lock_warnings(plan: &crate::check::plan::Plan, lock: &super::Lock) -> Vec<Diag> {
    use crate::check::credentials::{Scheme, unused_credentials, url_host};
    let mut out = Vec::new();
    for (_, name, build) in super::needs::built(plan) {
        let Some(entry) = lock.images.get(name) else {
            continue;
        };
        if entry.flake.url != build.flake.url {
            continue; // stale: verify reports it
        }
        let inputs: Vec<&str> = entry
            .flake
            .inputs
            .values()
            .map(|i| i.url.as_str())
            .collect();
        if build.fetch.has_secrets() {
            out.extend(unused_credentials(
                name,
                &build.fetch,
                &build.flake.url,
                &inputs,
            ));
        }
        for (input, i) in &entry.flake.inputs {
            if let Some((host, Scheme::Http)) = url_host(&i.url) {
                out.push(
                    Diag::warning(
                        Code::PlaintextGit,
                        format!("the flake's input `{input}` is fetched over plaintext HTTP from {host}"),
                    )
                    .label(build.flake.span, format!("image `{name}`'s flake locks it as {}", i.url))
                    .help("anyone on the path reads that repository (its locked narHash still stops a changed tree); change the input's URL in flake.nix to `git+https://` and run `nix flake lock`, then `bake lock --update flake`"),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(account: Option<&str>) -> StackPlan {
        StackPlan {
            name: "s".into(),
            region: "eu-west-1".into(),
            account: account.map(str::to_owned),
            tags: Vec::new(),
        }
    }

    fn lock(arn: &str) -> SecretLock {
        SecretLock {
            arn: arn.into(),
            kms_key: None,
            resolved_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn entries_match_their_source_region_and_account() {
        let sm = SecretSource::SecretsManager("bake/tok".into());
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bake/tok-AbC123";
        assert!(entry_matches(&sm, &lock(arn), &stack(None)));
        assert!(entry_matches(&sm, &lock(arn), &stack(Some("123456789012"))));
        assert!(!entry_matches(
            &sm,
            &lock(arn),
            &stack(Some("210987654321"))
        ));
        assert!(!entry_matches(
            &SecretSource::SecretsManager("bake/other".into()),
            &lock(arn),
            &stack(None)
        ));
        assert!(!entry_matches(
            &sm,
            &lock("arn:aws:secretsmanager:us-east-1:123456789012:secret:bake/tok-AbC123"),
            &stack(None)
        ));
        assert!(!entry_matches(&sm, &lock("bake/tok"), &stack(None)));
        let other_account =
            "arn:aws:secretsmanager:eu-west-1:210987654321:secret:shared/tok-AbC123";
        let by_arn = SecretSource::SecretsManager(other_account.into());
        assert!(entry_matches(
            &by_arn,
            &lock(other_account),
            &stack(Some("123456789012"))
        ));
        let other_region = "arn:aws:secretsmanager:us-east-1:210987654321:secret:shared/tok-AbC123";
        assert!(!entry_matches(
            &SecretSource::SecretsManager(other_region.into()),
            &lock(other_region),
            &stack(None)
        ));
        let p = SecretSource::Parameter("/bake/tok".into());
        assert!(entry_matches(
            &p,
            &lock("arn:aws:ssm:eu-west-1:123456789012:parameter/bake/tok"),
            &stack(None)
        ));
        assert!(!entry_matches(
            &p,
            &lock("arn:aws:ssm:eu-west-1:123456789012:parameter/bake/tok2"),
            &stack(None)
        ));
        assert!(!entry_matches(
            &p,
            &lock("arn:aws:ssm:eu-west-1:123456789012:parameter/bake/tok\"}"),
            &stack(None)
        ));
    }

    #[test]
    fn default_keys_need_no_grant() {
        assert_eq!(customer_key(Some("alias/aws/ssm")), None);
        assert_eq!(
            customer_key(Some(
                "arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager"
            )),
            None
        );
        assert_eq!(
            customer_key(Some("arn:aws:kms:eu-west-1:123456789012:key/abcd")),
            Some("arn:aws:kms:eu-west-1:123456789012:key/abcd".into())
        );
    }
}
