//! Building a NixOS image with the real `nix build`: the flake's revision (`nix flake metadata --json`), the
//! output's store path (`nix build --json --no-link`; Nix 2.8 has no `--print-out-paths`), its NAR hash
//! (`nix path-info --json`) and what the image module wrote in `nix-support/image-info.json`: boot mode, format,
//! label, system and the image file. Anything but a raw UEFI image is refused: the EBS direct APIs copy bytes,
//! so a VHD or qcow2 would give an AMI that does not boot (NixOS/amis#123).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::check::plan::Arch;

const NIX_FEATURES: &[&str] = &["--extra-experimental-features", "nix-command flakes"];

/// What `nix-support/image-info.json` says about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub boot_mode: String,
    pub format: String,
    pub label: Option<String>,
    pub system: String,
    pub file: PathBuf,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Built {
    pub store_path: String,
    pub nar_hash: String,
    pub info: ImageInfo,
    pub arch: Arch,
    /// The image file's size in bytes.
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    NixMissing,
    /// nix failed: which command, its exit status and the end of its stderr.
    Nix {
        what: String,
        stderr: String,
    },
    Timeout {
        what: String,
        secs: u64,
    },
    /// The flake has uncommitted changes: it has no revision to record.
    Dirty(String),
    /// The image is not raw (or not UEFI): the format (or boot mode) it has.
    NotRaw(String),
    /// The output is not what the image module produces.
    BadOutput(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::NixMissing => f.write_str(
                "`nix` is not on PATH; install Nix (Debian `nix-bin`, nixos.org/download or the Determinate installer) to build NixOS images",
            ),
            BuildError::Nix { what, stderr } => write!(f, "`{what}` failed: {stderr}"),
            BuildError::Timeout { what, secs } => write!(
                f,
                "`{what}` did not finish within {secs} s; raise `--build-timeout` or look at what the build waits for"
            ),
            BuildError::Dirty(path) => write!(
                f,
                "the flake checkout {path} has uncommitted changes, so it has no revision to record; commit or stash them"
            ),
            BuildError::NotRaw(what) => write!(f, "{what}"),
            BuildError::BadOutput(what) => write!(f, "{what}"),
        }
    }
}

/// Runs nix with a deadline; the process is killed when the deadline passes or bake stops.
async fn nix(args: &[&str], what: &str, timeout: Duration) -> Result<String, BuildError> {
    let child = tokio::process::Command::new("nix")
        .args(NIX_FEATURES)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, child).await {
        Err(_) => {
            return Err(BuildError::Timeout {
                what: what.to_owned(),
                secs: timeout.as_secs(),
            });
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::NixMissing);
        }
        Ok(Err(e)) => {
            return Err(BuildError::Nix {
                what: what.to_owned(),
                stderr: format!("could not start nix: {e}"),
            });
        }
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(BuildError::Nix {
            what: what.to_owned(),
            stderr: lines[lines.len().saturating_sub(20)..].join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The flake reference `bake image` builds: the checkout's directory, or the URL at the spec's ref.
pub fn flake_ref(url: &str, git_ref: Option<&str>, checkout: Option<&Path>) -> String {
    if let Some(dir) = checkout {
        return dir.display().to_string();
    }
    match git_ref {
        None => url.to_owned(),
        Some(r) if url.starts_with("github:") => format!("{url}/{r}"),
        Some(r) => format!("{url}?ref={r}"),
    }
}

/// The revision of the flake (`nix flake metadata --json`).
pub async fn flake_rev(flake: &str, timeout: Duration) -> Result<String, BuildError> {
    let what = format!("nix flake metadata {flake}");
    let json = nix(&["flake", "metadata", "--json", flake], &what, timeout).await?;
    let meta = crate::lock::nix::parse_metadata(&json).map_err(|e| BuildError::Nix {
        what: what.clone(),
        stderr: e,
    })?;
    meta.revision
        .ok_or_else(|| BuildError::Dirty(flake.to_owned()))
}

/// `nix build` of `flake#output`, then its NAR hash and image-info.json.
pub async fn build(flake: &str, output: &str, timeout: Duration) -> Result<Built, BuildError> {
    let installable = format!("{flake}#{output}");
    let what = format!("nix build {installable}");
    let json = nix(
        &["build", "--json", "--no-link", &installable],
        &what,
        timeout,
    )
    .await?;
    let store_path = out_path(&json).ok_or_else(|| {
        BuildError::BadOutput(format!(
            "`{what}` printed no output path in its --json result"
        ))
    })?;
    let info_path = Path::new(&store_path).join("nix-support/image-info.json");
    let info_text = std::fs::read_to_string(&info_path).map_err(|_| {
        BuildError::NotRaw(format!(
            "{store_path} has no nix-support/image-info.json, so bake cannot tell it is a raw disk image; build the repart image output (`system.build.images.amazon`)"
        ))
    })?;
    let info = parse_image_info(&info_text).map_err(BuildError::BadOutput)?;
    let arch = check_image(&info)?;
    let meta = std::fs::metadata(&info.file).map_err(|e| {
        BuildError::BadOutput(format!(
            "image-info.json names {}, which cannot be read: {e}",
            info.file.display()
        ))
    })?;
    if !meta.is_file() || meta.len() == 0 {
        return Err(BuildError::BadOutput(format!(
            "image-info.json names {}, which is not a non-empty file",
            info.file.display()
        )));
    }
    let nar_hash = nar_hash(&store_path, timeout).await?;
    Ok(Built {
        store_path,
        nar_hash,
        arch,
        size: meta.len(),
        info,
    })
}

/// The first output path of `nix build --json`: `[{"drvPath": …, "outputs": {"out": "/nix/store/…"}}]`.
pub fn out_path(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let outputs = v.as_array()?.first()?.get("outputs")?.as_object()?;
    outputs
        .get("out")
        .or_else(|| outputs.values().next())?
        .as_str()
        .filter(|p| p.starts_with("/nix/store/"))
        .map(str::to_owned)
}

/// The NAR hash of a store path (`nix path-info --json`), in SRI form.
async fn nar_hash(store_path: &str, timeout: Duration) -> Result<String, BuildError> {
    let what = format!("nix path-info --json {store_path}");
    let json = nix(&["path-info", "--json", store_path], &what, timeout).await?;
    let v: Value = serde_json::from_str(&json).map_err(|e| BuildError::Nix {
        what: what.clone(),
        stderr: format!("printed invalid JSON: {e}"),
    })?;
    // 2.8 prints a list of objects; newer Nix an object keyed by path.
    let entry = v
        .as_array()
        .and_then(|a| a.first())
        .or_else(|| v.as_object().and_then(|o| o.values().next()));
    let hash = entry
        .and_then(|e| e.get("narHash"))
        .and_then(Value::as_str)
        .ok_or_else(|| BuildError::Nix {
            what: what.clone(),
            stderr: "printed no narHash".to_owned(),
        })?;
    Ok(hash.to_owned())
}

/// Parses image-info.json.
pub fn parse_image_info(text: &str) -> Result<ImageInfo, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("nix-support/image-info.json is not JSON: {e}"))?;
    let field = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("nix-support/image-info.json has no string `{name}`"))
    };
    Ok(ImageInfo {
        boot_mode: field("boot_mode")?,
        format: field("format")?,
        label: v.get("label").and_then(Value::as_str).map(str::to_owned),
        system: field("system")?,
        file: PathBuf::from(field("file")?),
    })
}

/// A raw UEFI image for a system EC2 runs: its architecture.
pub fn check_image(info: &ImageInfo) -> Result<Arch, BuildError> {
    if info.format != "raw" {
        return Err(BuildError::NotRaw(format!(
            "the image is `{}`, not a raw disk image: the EBS direct APIs copy its bytes as they are, so the AMI would not boot; build the raw repart image (`system.build.images.amazon` of NixOS 25.05 or later, or NixOS/amis' amazon-image.nix)",
            info.format
        )));
    }
    if info.boot_mode != "uefi" {
        return Err(BuildError::NotRaw(format!(
            "the image boots with `{}`, and bake registers UEFI AMIs only; build the repart image, which boots with systemd-boot (UEFI)",
            info.boot_mode
        )));
    }
    match info.system.as_str() {
        "x86_64-linux" => Ok(Arch::X86_64),
        "aarch64-linux" => Ok(Arch::Arm64),
        other => Err(BuildError::BadOutput(format!(
            "the image is for `{other}`; EC2 runs x86_64-linux and aarch64-linux"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(format: &str, boot: &str, system: &str) -> ImageInfo {
        parse_image_info(&format!(
            r#"{{"boot_mode":"{boot}","format":"{format}","label":"25.05","system":"{system}","file":"/nix/store/x-image/image.raw"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn only_raw_uefi_images_for_ec2_systems_pass() {
        assert_eq!(
            check_image(&info("raw", "uefi", "x86_64-linux")),
            Ok(Arch::X86_64)
        );
        assert_eq!(
            check_image(&info("raw", "uefi", "aarch64-linux")),
            Ok(Arch::Arm64)
        );
        for (format, boot, system) in [
            ("vpc", "uefi", "x86_64-linux"),
            ("qcow2", "uefi", "x86_64-linux"),
            ("raw", "legacy-bios", "x86_64-linux"),
            ("raw", "uefi", "riscv64-linux"),
        ] {
            assert!(
                check_image(&info(format, boot, system)).is_err(),
                "{format} {boot} {system}"
            );
        }
        match check_image(&info("vpc", "uefi", "x86_64-linux")) {
            Err(BuildError::NotRaw(m)) => assert!(m.contains("`vpc`"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn image_info_needs_its_fields() {
        let e = parse_image_info(r#"{"format":"raw"}"#).unwrap_err();
        assert!(e.contains("boot_mode"), "{e}");
    }

    #[test]
    fn out_path_reads_nix_build_json() {
        let json = r#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/b-img"}}]"#;
        assert_eq!(out_path(json).as_deref(), Some("/nix/store/b-img"));
        assert_eq!(out_path("[]"), None);
    }

    #[test]
    fn flake_refs_pin_the_ref_or_use_the_checkout() {
        assert_eq!(
            flake_ref("git+https://h/r.git", Some("main"), None),
            "git+https://h/r.git?ref=main"
        );
        assert_eq!(flake_ref("github:o/r", Some("v1"), None), "github:o/r/v1");
        assert_eq!(
            flake_ref("github:o/r", None, Some(Path::new("/src/r"))),
            "/src/r"
        );
    }
}
