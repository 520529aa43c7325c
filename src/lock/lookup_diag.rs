//! The diagnostic for each way a `bake lock` lookup fails (SSM, nix, the installer download), labelled at every
//! spec node that asked. Pure: it only words the resolver's errors.

use super::BaseLock;
use super::ami::{self, ImageFacts, NotAl2023};
use super::resolve::LookupError;
use crate::diag::{Code, Diag};
use crate::source::Span;

/// Labels a diagnostic at every node that asked; the first is primary.
pub(super) fn at_all(mut diag: Diag, spans: &[Span], text: &str) -> Diag {
    for (n, span) in spans.iter().enumerate() {
        diag = diag.label(*span, if n == 0 { text } else { "also asks for it" });
    }
    diag
}

pub(super) fn parameter_diag(name: &str, region: &str, e: &LookupError, spans: &[Span]) -> Diag {
    let (code, message, help) = match e {
        LookupError::NotFound(msg) => (
            Code::LockParameterNotFound,
            format!("SSM has no parameter {name} in {region}"),
            format!(
                "AWS said: {}. Check the name against `aws ssm get-parameters-by-path --path /aws/service/ami-amazon-linux-latest --region {region}`",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::AccessDenied(msg) => (
            Code::LockAws,
            format!("access denied reading the SSM parameter {name}"),
            format!(
                "AWS said: {}. The credentials need `ssm:GetParameter` on it",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::NoCredentials(msg) => (
            Code::LockAws,
            format!("no AWS credentials to read the SSM parameter {name}"),
            format!(
                "{}. Configure credentials (environment, `aws configure`, `aws sso login`) or pass `--profile`",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::Timeout(secs) => (
            Code::LockAws,
            format!("reading the SSM parameter {name} timed out after {secs}s"),
            "check the network and `AWS_ENDPOINT_URL`, then run `bake lock` again".to_owned(),
        ),
        other => (
            Code::LockAws,
            format!("reading the SSM parameter {name} in {region} failed"),
            lookup_text(other),
        ),
    };
    at_all(Diag::error(code, message), spans, "the base AMI to lock").help(help)
}

/// EC2 could not say what the AMI a base parameter names is.
pub(super) fn image_diag(
    ami: &str,
    parameter: &str,
    region: &str,
    e: &LookupError,
    spans: &[Span],
) -> Diag {
    let (message, help) = match e {
        LookupError::NotFound(msg) => (
            format!("EC2 has no image {ami} in {region}, which {parameter} names"),
            format!(
                "AWS said: {}. The parameter may name an AMI that was deregistered; run `bake lock` again later, or pick another parameter",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::AccessDenied(msg) => (
            format!("access denied describing the base AMI {ami}"),
            format!(
                "AWS said: {}. The credentials need `ec2:DescribeImages`",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::NoCredentials(msg) => (
            format!("no AWS credentials to describe the base AMI {ami}"),
            format!(
                "{}. Configure credentials (environment, `aws configure`, `aws sso login`) or pass `--profile`",
                msg.trim_end_matches('.')
            ),
        ),
        LookupError::Timeout(secs) => (
            format!("describing the base AMI {ami} timed out after {secs}s"),
            "check the network and `AWS_ENDPOINT_URL`, then run `bake lock` again".to_owned(),
        ),
        other => (
            format!("describing the base AMI {ami} in {region} failed"),
            lookup_text(other),
        ),
    };
    at_all(
        Diag::error(Code::LockImage, message),
        spans,
        "the base AMI to lock",
    )
    .help(help)
}

/// The AMI a base parameter names is not an AL2023 AMI from Amazon for the image's architecture.
pub(super) fn not_al2023(
    base: &BaseLock,
    facts: &ImageFacts,
    arch: &str,
    span: Span,
) -> Option<Diag> {
    let (why, text) = ami::not_al2023(facts, arch)?;
    let help = match why {
        NotAl2023::Name | NotAl2023::Owner => format!(
            "bake builds on Amazon's AL2023 AMIs: the bootstrap pins dnf to the AL2023 release the AMI's name carries. Use a parameter under /aws/service/ami-amazon-linux-latest/ such as al2023-ami-kernel-6.12-{arch}"
        ),
        NotAl2023::Architecture => format!(
            "use the parameter of the {arch} AMIs (its name ends in -{arch}), or change `arch` to what the AMI is"
        ),
    };
    Some(
        Diag::error(
            Code::LockNotAl2023,
            format!(
                "the base AMI {} ({}) is not one bake can build on: {text}",
                base.ami, base.parameter
            ),
        )
        .label(span, "this parameter names it")
        .help(help),
    )
}

/// A warning when the locked AMI's deprecation time has passed at `now`.
pub fn deprecated(base: &BaseLock, now: i64, span: Span, spec_name: &str) -> Option<Diag> {
    let when = ami::deprecated_at(base, now)?;
    Some(
        Diag::warning(
            Code::LockAmiDeprecated,
            format!("the base AMI {} was deprecated on {when}", base.ami),
        )
        .label(span, format!("{} names it", base.parameter))
        .help(format!(
            "a deprecated AMI still launches and builds by id, but AWS no longer lists it and will stop publishing fixes for it; once the parameter names a newer AMI, run `bake lock {spec_name} --update base`"
        )),
    )
}

/// A warning when the locked AMI is older than the spec's `max-age`.
pub fn too_old(
    base: &BaseLock,
    now: i64,
    max_days: u32,
    span: Span,
    spec_name: &str,
) -> Option<Diag> {
    let age = ami::age_days(base, now)?;
    (age > i64::from(max_days)).then(|| {
        Diag::warning(
            Code::LockAmiAge,
            format!(
                "the locked base AMI {} is {age} days old, more than `max-age` ({max_days} days)",
                base.ami
            ),
        )
        .label(span, "its packages are those of its AL2023 release")
        .help(format!(
            "run `bake lock {spec_name} --update base` to move to the AMI the parameter names now (and deploy), or raise `max-age` on `base`"
        ))
    })
}

pub(super) fn flake_diag(shown: &str, e: &LookupError, spans: &[Span]) -> Diag {
    let (code, message, help) = match e {
        LookupError::NixMissing => (
            Code::LockNixMissing,
            "`nix` is not installed (or not on PATH): bake locks flakes with `nix flake metadata`".to_owned(),
            "install Nix: https://nixos.org/download (or `apt-get install nix-bin` on Debian and Ubuntu, or the Determinate installer https://install.determinate.systems/nix), then run `bake lock` again".to_owned(),
        ),
        LookupError::CheckoutMissing(_) => (
            Code::LockCheckout,
            format!("the flake checkout {shown} does not exist or is not a directory"),
            "`checkout=` is relative to the spec file; clone the flake's repository there".to_owned(),
        ),
        LookupError::NixFailed { status, stderr } => (
            Code::LockNix,
            format!("`nix flake metadata` failed on {shown} ({status})"),
            format!("nix said:\n{}", stderr.trim_end()),
        ),
        LookupError::Timeout(secs) => (
            Code::LockNix,
            format!("`nix flake metadata` on {shown} timed out after {secs}s"),
            "an input missing from the flake's `flake.lock` makes nix fetch it; run `nix flake lock` in the checkout and commit".to_owned(),
        ),
        other => (
            Code::LockNix,
            format!("cannot read the flake {shown}"),
            lookup_text(other),
        ),
    };
    at_all(Diag::error(code, message), spans, "the flake to lock").help(help)
}

pub(super) fn download_diag(url: &str, e: &LookupError, spans: &[Span]) -> Diag {
    let (message, help) = match e {
        LookupError::CurlMissing => (
            "`curl` is not installed (or not on PATH): `bake lock` downloads the Nix installer with it to record its SHA-256".to_owned(),
            "install curl (`apt-get install curl`, `dnf install curl-minimal`), or set BAKE_NIX_INSTALLER_MIRROR to a `file://` directory holding the installer binaries, then run `bake lock` again".to_owned(),
        ),
        LookupError::Timeout(secs) => (
            format!("downloading {url} timed out after {secs}s"),
            "check the network (or set BAKE_NIX_INSTALLER_MIRROR to a reachable copy), then run `bake lock` again".to_owned(),
        ),
        other => (
            format!("cannot download the Nix installer {url}"),
            format!(
                "{}. Check the installer version in the spec; a machine without access to the release host can set BAKE_NIX_INSTALLER_MIRROR to a base URL or `file://` directory with the same files",
                lookup_text(other).trim_end_matches('.')
            ),
        ),
    };
    at_all(
        Diag::error(Code::LockDownload, message),
        spans,
        "the installer to pin",
    )
    .help(help)
}

fn lookup_text(e: &LookupError) -> String {
    match e {
        LookupError::NotFound(m)
        | LookupError::AccessDenied(m)
        | LookupError::NoCredentials(m)
        | LookupError::Aws(m) => m.clone(),
        LookupError::CheckoutMissing(p) => format!("{} does not exist", p.display()),
        LookupError::NixMissing => "nix is not installed".to_owned(),
        LookupError::NixFailed { status, stderr } => format!("nix failed ({status}): {stderr}"),
        LookupError::Timeout(s) => format!("timed out after {s}s"),
        LookupError::Download(m) => m.clone(),
        LookupError::CurlMissing => "curl is not installed".to_owned(),
    }
}
