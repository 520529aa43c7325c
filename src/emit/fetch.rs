//! What the bootstrap's credential part (`templates/fetch-credentials.sh.hbs`) is rendered from: the ARNs the
//! lock records for the secrets a `fetch` names, the hosts they are for, pinned host keys and the proxy. Never a
//! secret value: bake does not know one. Every string here passed a grammar in `spec` (hosts, secret ids,
//! known_hosts lines, proxy URLs) or is an ARN `lock::secrets` checked, and the template quotes each with `{{shell}}`.

use serde::Serialize;

use crate::check::credentials::{FetchPlan, SecretSource};
use crate::lock::secrets::ResolvedSecret;

#[derive(Debug, Clone, Serialize)]
pub(super) struct FetchContext {
    /// The region the AWS CLI asks (the stack's: bake lock resolved the secrets there).
    region: String,
    proxy: Option<ProxyContext>,
    tokens: Vec<TokenContext>,
    ssh_keys: Vec<SshKeyContext>,
    /// Whether any secret is read (a proxy alone reads none).
    secrets: bool,
    /// `GIT_CONFIG_COUNT`: one credential helper per token.
    git_config_count: usize,
}

#[derive(Debug, Clone, Serialize)]
struct ProxyContext {
    url: String,
    no_proxy: String,
}

#[derive(Debug, Clone, Serialize)]
struct TokenContext {
    host: String,
    user: String,
    /// `secretsmanager` or `ssm`.
    service: &'static str,
    /// The secret's ARN (Secrets Manager) or the parameter's ARN (SSM `GetParameter` takes either).
    id: String,
}

#[derive(Debug, Clone, Serialize)]
struct SshKeyContext {
    /// The `Host` pattern of the ssh configuration: the host without a port.
    host: String,
    id: String,
    known_host: String,
}

fn arn_of<'a>(secrets: &'a [ResolvedSecret], source: &SecretSource) -> Option<&'a str> {
    secrets
        .iter()
        .find(|s| s.source == *source)
        .map(|s| s.arn.as_str())
}

fn arn(secrets: &[ResolvedSecret], source: &SecretSource) -> Result<String, String> {
    arn_of(secrets, source)
        .map(str::to_owned)
        .ok_or_else(|| format!("{} reached emit without an ARN", source.describe()))
}

/// Whether an image with this `fetch` needs the credential part of the bootstrap (`templates/fetch-credentials`).
pub(super) fn needed(plan: &FetchPlan) -> bool {
    plan.has_secrets() || plan.proxy.is_some()
}

/// The context, or `None` when the image fetches without credentials or proxy. An error is a bake bug: `verify`
/// resolved every source.
pub(super) fn context(
    region: &str,
    plan: &FetchPlan,
    secrets: &[ResolvedSecret],
) -> Result<Option<FetchContext>, String> {
    if !needed(plan) {
        return Ok(None);
    }
    let tokens: Vec<TokenContext> = plan
        .tokens
        .iter()
        .map(|t| {
            Ok(TokenContext {
                host: t.host.clone(),
                user: t.user.clone(),
                service: match t.source {
                    SecretSource::SecretsManager(_) => "secretsmanager",
                    SecretSource::Parameter(_) => "ssm",
                },
                id: arn(secrets, &t.source)?,
            })
        })
        .collect::<Result<_, String>>()?;
    let ssh_keys: Vec<SshKeyContext> = plan
        .ssh_keys
        .iter()
        .map(|k| {
            Ok(SshKeyContext {
                host: k.host.split(':').next().unwrap_or(&k.host).to_owned(),
                id: arn(secrets, &SecretSource::SecretsManager(k.secret.clone()))?,
                known_host: k.known_host.clone(),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Some(FetchContext {
        region: region.to_owned(),
        proxy: plan.proxy.as_ref().map(|p| ProxyContext {
            url: p.url.clone(),
            no_proxy: p.no_proxy.join(","),
        }),
        secrets: !tokens.is_empty() || !ssh_keys.is_empty(),
        git_config_count: tokens.len(),
        tokens,
        ssh_keys,
    }))
}
