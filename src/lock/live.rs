//! The live [`Resolver`]: SSM and EC2 through the AWS SDK's standard configuration chain, and the real `nix` binary.

use std::path::Path;
use std::process::Stdio;

use std::time::Duration;

use aws_sdk_ssm::primitives::DateTimeFormat;

use crate::aws::{self, Classified, Endpoint, Kind};

use super::ami::ImageFacts;
use super::resolve::{LookupError, ParameterInfo, ParameterValue, Resolver, SecretInfo};

/// Asks AWS and nix, and downloads installers with curl. Built once per `bake lock`.
pub struct LiveResolver {
    ssm: aws_sdk_ssm::Client,
    endpoint: Endpoint,
    ec2: aws_sdk_ec2::Client,
    ec2_endpoint: Endpoint,
    /// Secrets Manager, for the ARNs of the secrets a build's `fetch` names (DescribeSecret only).
    secrets: aws_sdk_secretsmanager::Client,
    secrets_endpoint: Endpoint,
    /// `BAKE_NIX_INSTALLER_MIRROR`: a base URL or `file://` directory that holds the installer binaries under their
    /// release file names, read instead of the release host.
    installer_mirror: Option<String>,
}

/// EC2's timestamps (`2026-09-30T23:28:25.000Z`) in the lock's form, whole seconds in UTC; `None` if unreadable.
fn utc_seconds(t: &str) -> Option<String> {
    super::time::parse_rfc3339(t).map(super::time::rfc3339)
}

/// The environment variable naming an installer mirror for `bake lock`.
pub const INSTALLER_MIRROR_ENV: &str = "BAKE_NIX_INSTALLER_MIRROR";

/// Installer binaries are about 20 MB; anything far larger is not one.
const DOWNLOAD_MAX_BYTES: u64 = 512 * 1024 * 1024;

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
            ec2: aws_sdk_ec2::Client::new(&conf),
            ec2_endpoint: Endpoint::new("EC2", &conf, &settings),
            secrets: aws_sdk_secretsmanager::Client::new(&conf),
            secrets_endpoint: Endpoint::new("Secrets Manager", &conf, &settings),
            installer_mirror: None,
        }
    }

    /// Reads installers from a mirror instead of their release URLs (the lock still records the release URL).
    pub fn with_installer_mirror(mut self, mirror: Option<String>) -> Self {
        self.installer_mirror = mirror.filter(|m| !m.is_empty());
        self
    }

    /// Where to read a release URL from: the mirror's file of the same name, or the URL itself.
    fn source(&self, url: &str) -> String {
        match &self.installer_mirror {
            Some(m) => {
                let file = url.rsplit('/').next().unwrap_or(url);
                format!("{}/{file}", m.trim_end_matches('/'))
            }
            None => url.to_owned(),
        }
    }
}

/// The SHA-256 of a file at a `file://`, `http://` or `https://` URL. `file://` is read in process; HTTP goes
/// through curl, following at most 10 redirects on the same kind of scheme, with a size cap (the caller bounds the
/// time).
pub async fn sha256_of(url: &str) -> Result<String, LookupError> {
    use sha2::{Digest, Sha256};
    if let Some(path) = url.strip_prefix("file://") {
        let bytes = tokio::task::spawn_blocking({
            let path = path.to_owned();
            move || std::fs::read(path)
        })
        .await
        .map_err(|e| LookupError::Download(e.to_string()))?
        .map_err(|e| LookupError::Download(format!("cannot read {path}: {e}")))?;
        return Ok(format!("{:x}", Sha256::digest(&bytes)));
    }
    let redirects = if url.starts_with("https://") {
        "=https"
    } else if url.starts_with("http://") {
        "=http,https"
    } else {
        return Err(LookupError::Download(format!(
            "{url} is not a file://, http:// or https:// URL"
        )));
    };
    let out = tokio::process::Command::new("curl")
        .args(["--fail", "--location", "--silent", "--show-error"])
        .args(["--proto", redirects, "--proto-redir", redirects])
        .args(["--max-redirs", "10"])
        .args(["--max-filesize", &DOWNLOAD_MAX_BYTES.to_string()])
        .arg("--")
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LookupError::CurlMissing,
            _ => LookupError::Download(format!("cannot start curl: {e}")),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(LookupError::Download(format!(
            "curl said: {}",
            stderr.trim()
        )));
    }
    Ok(format!("{:x}", Sha256::digest(&out.stdout)))
}

/// A failure's sentence without its "; next step" part.
fn what_happened(sentence: &str) -> String {
    sentence.split("; ").next().unwrap_or(sentence).to_owned()
}

/// A failed SDK call as a lookup error; `not_found` names the service codes that mean "no such thing".
fn lookup_error<E>(
    e: &aws_sdk_ssm::error::SdkError<E, aws_sdk_ssm::config::http::HttpResponse>,
    endpoint: &Endpoint,
    not_found: &[&str],
) -> LookupError
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    match aws::classify(e, endpoint) {
        Classified::Service { code, message } if not_found.contains(&code.as_str()) => {
            LookupError::NotFound(if message.is_empty() { code } else { message })
        }
        Classified::Service { code, message } => LookupError::Aws(format!("{code}: {message}")),
        // The diagnostic adds its own next step: keep only what happened.
        Classified::Failure(f) => match f.kind {
            Kind::Credentials => LookupError::NoCredentials(what_happened(&f.sentence)),
            Kind::AccessDenied => LookupError::AccessDenied(what_happened(&f.sentence)),
            Kind::Timeout => LookupError::Timeout(endpoint.timeout.as_secs()),
            _ => LookupError::Aws(f.sentence),
        },
    }
}

impl Resolver for LiveResolver {
    async fn parameter(&self, name: &str) -> Result<ParameterValue, LookupError> {
        let out = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| lookup_error(&e, &self.endpoint, &["ParameterNotFound"]))?;
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

    async fn image(&self, ami: &str) -> Result<ImageFacts, LookupError> {
        let out = self
            .ec2
            .describe_images()
            .image_ids(ami)
            .include_deprecated(true)
            .send()
            .await
            .map_err(|e| {
                lookup_error(
                    &e,
                    &self.ec2_endpoint,
                    &["InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"],
                )
            })?;
        let Some(image) = out.images().iter().find(|i| i.image_id() == Some(ami)) else {
            return Err(LookupError::NotFound(format!(
                "DescribeImages returned no image {ami}"
            )));
        };
        Ok(ImageFacts {
            name: image.name().unwrap_or_default().to_owned(),
            owner_id: image.owner_id().unwrap_or_default().to_owned(),
            owner_alias: image.image_owner_alias().map(str::to_owned),
            architecture: image
                .architecture()
                .map_or(String::new(), |a| a.as_str().to_owned()),
            creation_date: image.creation_date().and_then(utc_seconds),
            deprecation_time: image.deprecation_time().and_then(utc_seconds),
            state: image
                .state()
                .map_or(String::new(), |s| s.as_str().to_owned()),
        })
    }

    async fn secret(&self, id: &str) -> Result<SecretInfo, LookupError> {
        let out = self
            .secrets
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| {
                lookup_error(&e, &self.secrets_endpoint, &["ResourceNotFoundException"])
            })?;
        Ok(SecretInfo {
            arn: out.arn().unwrap_or_default().to_owned(),
            kms_key: out.kms_key_id().map(str::to_owned),
            deleted: out.deleted_date().is_some(),
        })
    }

    async fn secure_parameter(&self, name: &str) -> Result<ParameterInfo, LookupError> {
        use aws_sdk_ssm::types::ParameterStringFilter;
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(name)
            .build()
            .map_err(|e| LookupError::Aws(e.to_string()))?;
        let out = self
            .ssm
            .describe_parameters()
            .parameter_filters(filter)
            .send()
            .await
            .map_err(|e| lookup_error(&e, &self.endpoint, &["ParameterNotFound"]))?;
        let Some(p) = out.parameters().iter().find(|p| p.name() == Some(name)) else {
            return Err(LookupError::NotFound(format!(
                "Parameter {name} not found."
            )));
        };
        let kind = p
            .r#type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        let arn = match p.arn() {
            Some(arn) => arn.to_owned(),
            // moto's DescribeParameters has no ARN; GetParameter without decryption has (a SecureString's value
            // stays ciphertext, and bake drops it unread).
            None => self
                .ssm
                .get_parameter()
                .name(name)
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| lookup_error(&e, &self.endpoint, &["ParameterNotFound"]))?
                .parameter()
                .and_then(|p| p.arn())
                .unwrap_or_default()
                .to_owned(),
        };
        Ok(ParameterInfo {
            arn,
            kind,
            kms_key: p.key_id().map(str::to_owned),
        })
    }

    async fn sha256(&self, url: &str) -> Result<String, LookupError> {
        sha256_of(&self.source(url)).await
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
