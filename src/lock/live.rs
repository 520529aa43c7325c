//! The live [`Resolver`]: SSM through the AWS SDK's standard configuration chain, and the real `nix` binary.

use std::path::Path;
use std::process::Stdio;

use std::time::Duration;

use aws_sdk_ssm::primitives::DateTimeFormat;

use crate::aws::{self, Classified, Endpoint, Kind};

use super::resolve::{LookupError, ParameterValue, Resolver};

/// Asks AWS and nix. Built once per `bake lock`.
pub struct LiveResolver {
    ssm: aws_sdk_ssm::Client,
    endpoint: Endpoint,
}

/// The arguments bake passes to nix before the checkout path.
pub const NIX_METADATA_ARGS: &[&str] = &[
    "--extra-experimental-features",
    "nix-command flakes",
    "flake",
    "metadata",
    "--json",
];

impl LiveResolver {
    /// The standard AWS chain (environment, profiles, SSO, `AWS_ENDPOINT_URL` ...), in the given region, with an
    /// optional named profile, on the configuration every bake client shares (`crate::aws`): each call bounded by
    /// `timeout`, retries with backoff. Nothing is contacted until a lookup runs.
    pub async fn new(region: &str, profile: Option<&str>, timeout: Duration) -> Self {
        let settings = aws::Settings {
            profile: profile.map(str::to_owned),
            region: region.to_owned(),
            timeout,
        };
        let conf = aws::config(&settings).await;
        LiveResolver {
            ssm: aws_sdk_ssm::Client::new(&conf),
            endpoint: Endpoint::new("SSM", &conf, &settings),
        }
    }
}

/// A failure's sentence without its "; next step" part.
fn what_happened(sentence: &str) -> String {
    sentence.split("; ").next().unwrap_or(sentence).to_owned()
}

impl Resolver for LiveResolver {
    async fn parameter(&self, name: &str) -> Result<ParameterValue, LookupError> {
        let out =
            self.ssm
                .get_parameter()
                .name(name)
                .send()
                .await
                .map_err(|e| match aws::classify(&e, &self.endpoint) {
                    Classified::Service { code, message } if code == "ParameterNotFound" => {
                        LookupError::ParameterNotFound(if message.is_empty() {
                            code
                        } else {
                            message
                        })
                    }
                    Classified::Service { code, message } => {
                        LookupError::Aws(format!("{code}: {message}"))
                    }
                    // The diagnostic adds its own next step: keep only what happened.
                    Classified::Failure(f) => match f.kind {
                        Kind::Credentials => LookupError::NoCredentials(what_happened(&f.sentence)),
                        Kind::AccessDenied => LookupError::AccessDenied(what_happened(&f.sentence)),
                        Kind::Timeout => LookupError::Timeout(self.endpoint.timeout.as_secs()),
                        _ => LookupError::Aws(f.sentence),
                    },
                })?;
        let p = out
            .parameter()
            .ok_or_else(|| LookupError::Aws("GetParameter returned no parameter".to_owned()))?;
        Ok(ParameterValue {
            value: p.value().unwrap_or_default().to_owned(),
            version: p.version(),
            last_modified: p
                .last_modified_date()
                .and_then(|d| d.fmt(DateTimeFormat::DateTime).ok())
                .unwrap_or_default(),
        })
    }

    async fn flake_metadata(&self, checkout: &Path) -> Result<String, LookupError> {
        let dir = std::fs::canonicalize(checkout)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or_else(|| LookupError::CheckoutMissing(checkout.to_path_buf()))?;
        let out = tokio::process::Command::new("nix")
            .args(NIX_METADATA_ARGS)
            .arg(&dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LookupError::NixMissing,
                _ => LookupError::NixFailed {
                    status: "could not start".to_owned(),
                    stderr: e.to_string(),
                },
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            return Err(LookupError::NixFailed {
                status: out.status.to_string(),
                stderr: lines[lines.len().saturating_sub(30)..].join("\n"),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn git_remotes(&self, checkout: &Path) -> Vec<String> {
        // Best effort: without git, or outside a repository, there is nothing to compare.
        let Ok(out) = tokio::process::Command::new("git")
            .arg("-C")
            .arg(checkout)
            .args(["remote", "-v"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
        else {
            return Vec::new();
        };
        if !out.status.success() {
            return Vec::new();
        }
        let mut urls: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with("(fetch)"))
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        urls.dedup();
        urls
    }
}
