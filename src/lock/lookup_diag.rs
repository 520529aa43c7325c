//! The diagnostic for each way a `bake lock` lookup fails (SSM, nix, the installer download), labelled at every
//! spec node that asked. Pure: it only words the resolver's errors.

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
        LookupError::ParameterNotFound(msg) => (
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
        LookupError::ParameterNotFound(m)
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
