//! What every AWS client of bake shares: how the SDK is configured (region, profile, timeouts, retries) and how
//! its failures become one sentence with the next step. `deploy::cfn` (CloudFormation) and `lock::live` (SSM)
//! both build their clients from [`config`] and sort their errors with [`classify`].

use std::error::Error;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Where to find credentials, which region to use and how long to wait; the rest comes from the standard AWS
/// chain (environment, `~/.aws/config`, `AWS_ENDPOINT_URL`, ...).
#[derive(Debug, Clone)]
pub struct Settings {
    pub profile: Option<String>,
    pub region: String,
    /// The longest one call may take, the SDK's retries included.
    pub timeout: Duration,
}

/// The SDK's own configuration for every client: connect, read, attempt and operation timeouts, and the
/// standard retry mode (exponential backoff with jitter, 3 attempts, throttling included).
pub async fn config(settings: &Settings) -> SdkConfig {
    let total = settings.timeout.max(Duration::from_millis(100));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(total.min(Duration::from_secs(10)))
        .read_timeout(total)
        .operation_attempt_timeout(total)
        .operation_timeout(total)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(10));
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(p) = &settings.profile {
        loader = loader.profile_name(p);
    }
    loader.load().await
}

/// Whether `region` is shaped like an AWS region name (`eu-west-1`, `us-gov-west-1`, `cn-north-1`). A name that
/// is not would only fail later as an endpoint that cannot be found.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].len() <= 2
        && !parts[parts.len() - 1].is_empty()
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// The service a call went to, for the messages: "CloudFormation in eu-west-1 (at http://127.0.0.1:5000)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub service: &'static str,
    pub region: String,
    /// `AWS_ENDPOINT_URL` or the profile's `endpoint_url`, when set.
    pub url: Option<String>,
    pub timeout: Duration,
    /// `--profile`, when given.
    pub profile: Option<String>,
}

impl Endpoint {
    pub fn new(service: &'static str, config: &SdkConfig, settings: &Settings) -> Endpoint {
        Endpoint {
            service,
            region: config
                .region()
                .map_or_else(String::new, |r| r.as_ref().to_owned()),
            url: config.endpoint_url().map(str::to_owned),
            timeout: settings.timeout,
            profile: settings.profile.clone(),
        }
    }

    fn name(&self) -> String {
        match &self.url {
            Some(url) => format!("{} in {} (at {url})", self.service, self.region),
            None => format!("{} in {}", self.service, self.region),
        }
    }
}

/// What kind of trouble a failed call met; each has its own next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No credentials found, or AWS rejected them (expired, unknown key, bad signature).
    Credentials,
    /// The credentials work but may not do this.
    AccessDenied,
    /// Rate-limited, even after the SDK's retries.
    Throttled,
    /// No answer within the timeout.
    Timeout,
    /// No connection: refused, DNS, TLS, unreachable.
    Network,
    /// Something answered, but not the service: a proxy's HTML page, an unparseable body.
    BadAnswer,
    /// Anything else the SDK reported.
    Other,
}

/// A failed call that the caller cannot act on itself: one sentence with the next step, and the SDK's full
/// report for `--verbose`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub sentence: String,
    pub detail: String,
}

impl Failure {
    pub fn new(kind: Kind, sentence: impl Into<String>) -> Failure {
        let sentence = sentence.into();
        Failure {
            kind,
            detail: sentence.clone(),
            sentence,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sentence)
    }
}

/// A failed call, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// The service answered with an error code the caller may understand (`ValidationError`,
    /// `ParameterNotFound`, a resource's error ...).
    Service {
        code: String,
        message: String,
    },
    Failure(Failure),
}

const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "AuthFailure",
    "RequestExpired",
];

const CREDENTIALS_NEXT: &str = "configure credentials with `aws configure` or `aws sso login`, \
     or pass `--profile NAME`";

/// Sorts an SDK error: a service error with a code the caller handles, or a [`Failure`] with one sentence
/// naming the endpoint and the next step.
pub fn classify<E>(e: &SdkError<E, HttpResponse>, endpoint: &Endpoint) -> Classified
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let detail = DisplayErrorContext(e).to_string();
    let name = endpoint.name();
    let failure = |kind: Kind, sentence: String| {
        Classified::Failure(Failure {
            kind,
            sentence,
            detail: detail.clone(),
        })
    };
    if let Some(c) = credentials_error(e) {
        let why = match c {
            CredentialsError::CredentialsNotLoaded(_) => match &endpoint.profile {
                Some(p) => format!("none were found for profile `{p}`"),
                None => "none were found".to_owned(),
            },
            CredentialsError::ProviderTimedOut(_) => "the credential provider timed out".to_owned(),
            other => short_chain(other),
        };
        return failure(
            Kind::Credentials,
            format!("no usable AWS credentials for {name} ({why}); {CREDENTIALS_NEXT}"),
        );
    }
    match e {
        SdkError::ServiceError(se) => {
            let message = se.err().message().unwrap_or_default().to_owned();
            match se.err().code() {
                Some(code) if CREDENTIAL_CODES.contains(&code) => failure(
                    Kind::Credentials,
                    format!(
                        "{name} rejected the credentials ({code}: {}); they may have expired: {CREDENTIALS_NEXT}",
                        message.trim_end_matches('.')
                    ),
                ),
                Some(code) if code.contains("AccessDenied") || code == "UnauthorizedOperation" => {
                    failure(
                        Kind::AccessDenied,
                        format!(
                            "{name} denied access ({code}: {}); the credentials' IAM policy must allow this call, \
                             or pass another `--profile`",
                            message.trim_end_matches('.')
                        ),
                    )
                }
                Some(code) if code.contains("Throttl") || code == "RequestLimitExceeded" => {
                    failure(
                        Kind::Throttled,
                        format!(
                            "{name} throttled bake's calls even after retries ({code}: {}); wait a minute and run it again",
                            message.trim_end_matches('.')
                        ),
                    )
                }
                Some(code) => Classified::Service {
                    code: code.to_owned(),
                    message,
                },
                None => failure(Kind::BadAnswer, bad_answer(&name, se.raw())),
            }
        }
        SdkError::ResponseError(re) => failure(Kind::BadAnswer, bad_answer(&name, re.raw())),
        SdkError::TimeoutError(_) => failure(Kind::Timeout, timed_out(&name, endpoint.timeout)),
        SdkError::DispatchFailure(d) if d.is_timeout() || chain_has_timeout(e) => {
            failure(Kind::Timeout, timed_out(&name, endpoint.timeout))
        }
        SdkError::DispatchFailure(_) => {
            let why = network_reason(e);
            let next = if endpoint.url.is_some() {
                "check that it is running, or unset AWS_ENDPOINT_URL"
            } else {
                "check the network, proxy (HTTPS_PROXY) or VPC endpoint, and that the region exists"
            };
            failure(Kind::Network, format!("cannot reach {name}: {why}; {next}"))
        }
        SdkError::ConstructionFailure(_) => failure(
            Kind::Other,
            format!(
                "cannot build a request to {name} ({}); check the region and the AWS configuration (`--profile`, ~/.aws/config)",
                short_chain(e)
            ),
        ),
        _ => failure(Kind::Other, format!("{name} failed: {}", short_chain(e))),
    }
}

fn timed_out(name: &str, timeout: Duration) -> String {
    format!(
        "{name} did not answer within {} s; check network/proxy/VPC endpoint, or raise --timeout",
        timeout.as_secs_f64().ceil()
    )
}

/// "answered HTTP 403 with `<html>…`": what came back, sanitised to printable text and cut short.
fn bad_answer(name: &str, raw: &HttpResponse) -> String {
    let status = raw.status().as_u16();
    let body = raw.body().bytes().unwrap_or_default();
    let mut text = String::new();
    for c in String::from_utf8_lossy(&body[..body.len().min(200)]).chars() {
        let c = if c.is_control() { ' ' } else { c };
        if !(c == ' ' && text.ends_with(' ')) {
            text.push(c);
        }
    }
    let mut text: String = text.trim().chars().take(80).collect();
    if body.len() > 80 {
        text.push('…');
    }
    let body = if text.is_empty() {
        "an empty body".to_owned()
    } else {
        format!("\"{text}\"")
    };
    format!(
        "no readable answer from {name}: HTTP {status} with {body}; a proxy or firewall in between? \
         check HTTPS_PROXY, the VPC endpoint or AWS_ENDPOINT_URL"
    )
}

fn sources<'a>(e: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(e), |e| (*e).source())
}

fn credentials_error<E: Error + 'static>(
    e: &SdkError<E, HttpResponse>,
) -> Option<&CredentialsError> {
    sources(e).find_map(|s| s.downcast_ref::<CredentialsError>())
}

fn chain_has_timeout<E: Error + 'static>(e: &SdkError<E, HttpResponse>) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

fn network_reason<E: Error + 'static>(e: &SdkError<E, HttpResponse>) -> String {
    for s in sources(e) {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let what = match io.kind() {
                ConnectionRefused => "connection refused",
                ConnectionReset => "connection reset",
                ConnectionAborted => "connection aborted",
                NotConnected | HostUnreachable | NetworkUnreachable => "network unreachable",
                _ => continue,
            };
            return what.to_owned();
        }
        let text = s.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return "the host name does not resolve (DNS)".to_owned();
        }
    }
    short_chain(e)
}

/// An error and its sources, `: `-separated, without the SDK's debug dump.
pub fn short_chain(e: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in sources(e) {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names() {
        for ok in [
            "eu-west-1",
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in [
            "eu-west",
            "euwest1",
            "EU-WEST-1",
            "eu-west-1a",
            "e-west-1",
            "",
            "eu--1",
            "eu-west-123",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }
}
