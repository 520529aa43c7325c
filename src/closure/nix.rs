//! The `nix` commands of `bake build` and its check, each bounded in time. Output is parsed tolerantly: Nix 2.8
//! prints `path-info --json` as an array, newer Nix as an object keyed by store path.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// Runs the `nix` on PATH with the experimental features bake needs.
#[derive(Debug, Clone)]
pub struct Nix {
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NixError {
    Missing,
    TimedOut { what: String, secs: u64 },
    Failed { what: String, stderr: String },
    BadOutput { what: String, why: String },
}

impl std::fmt::Display for NixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NixError::Missing => f.write_str(
                "`nix` is not on PATH; install Nix (Debian `nix-bin`, the Determinate installer or nixos.org) on the machine that runs `bake build`",
            ),
            NixError::TimedOut { what, secs } => write!(
                f,
                "`nix {what}` did not finish within {secs} s; raise `--timeout` for large closures"
            ),
            NixError::Failed { what, stderr } => {
                write!(f, "`nix {what}` failed; nix said:\n{stderr}")
            }
            NixError::BadOutput { what, why } => {
                write!(f, "`nix {what}` printed something bake cannot read ({why})")
            }
        }
    }
}

/// One store path as `nix path-info --json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    pub path: String,
    pub nar_hash: String,
    pub signatures: Vec<String>,
}

impl Nix {
    /// Runs nix with `args` (and `stdin`, when given); stdout on success. `what` names the command in messages.
    async fn run(
        &self,
        what: &str,
        args: &[OsString],
        stdin: Option<Vec<u8>>,
    ) -> Result<String, NixError> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("nix");
        cmd.args(["--extra-experimental-features", "nix-command flakes"])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NixError::Missing,
            _ => NixError::Failed {
                what: what.to_owned(),
                stderr: e.to_string(),
            },
        })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // The secret key goes to nix on a pipe, never on its command line.
            let _ = pipe.write_all(&data).await;
            drop(pipe);
        }
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                return Err(NixError::TimedOut {
                    what: what.to_owned(),
                    secs: self.timeout.as_secs(),
                });
            }
            Ok(Err(e)) => {
                return Err(NixError::Failed {
                    what: what.to_owned(),
                    stderr: e.to_string(),
                });
            }
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.starts_with("warning: error: unable to download"))
                .collect();
            return Err(NixError::Failed {
                what: what.to_owned(),
                stderr: lines[lines.len().saturating_sub(30)..].join("\n"),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Builds installables (or fetches them from the machine's substituters) and returns each one's `out` path,
    /// in order. One `nix build` per installable: Nix 2.8 does not print the results of several in the order
    /// given.
    pub async fn build(&self, installables: &[&str]) -> Result<Vec<String>, NixError> {
        let mut outs = Vec::new();
        for i in installables {
            outs.extend(self.build_one(i).await?);
        }
        Ok(outs)
    }

    async fn build_one(&self, installable: &str) -> Result<Vec<String>, NixError> {
        let installables = [installable];
        let mut args: Vec<OsString> = vec!["build".into(), "--no-link".into(), "--json".into()];
        args.extend(installables.iter().map(OsString::from));
        let what = "build";
        let out = self.run(what, &args, None).await?;
        let bad = |why: &str| NixError::BadOutput {
            what: what.to_owned(),
            why: why.to_owned(),
        };
        let v: Value = serde_json::from_str(&out).map_err(|e| bad(&e.to_string()))?;
        let items = v.as_array().ok_or_else(|| bad("not a JSON array"))?;
        if items.len() != installables.len() {
            return Err(bad("not one result per installable"));
        }
        items
            .iter()
            .map(|i| {
                i.pointer("/outputs/out")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a result without an `out` output"))
            })
            .collect()
    }

    /// The public key of a secret key file (`nix key convert-secret-to-public`).
    pub async fn public_key_of(&self, secret_key_file: &Path) -> Result<String, NixError> {
        let secret = std::fs::read(secret_key_file).map_err(|e| NixError::Failed {
            what: "key convert-secret-to-public".to_owned(),
            stderr: format!(
                "cannot read the signing key {}: {e}",
                secret_key_file.display()
            ),
        })?;
        let out = self
            .run(
                "key convert-secret-to-public",
                &["key".into(), "convert-secret-to-public".into()],
                Some(secret),
            )
            .await
            .map_err(|e| match e {
                // nix echoes nothing of the key, but keep its message short and about the file.
                NixError::Failed { what, .. } => NixError::Failed {
                    what,
                    stderr: format!(
                        "{} is not a Nix secret key (make one with `nix key generate-secret --key-name NAME`)",
                        secret_key_file.display()
                    ),
                },
                other => other,
            })?;
        Ok(out.trim().to_owned())
    }

    /// Signs paths and their closures in `store` (the local store when `None`) with a secret key file.
    pub async fn sign(
        &self,
        store: Option<&str>,
        key_file: &Path,
        paths: &[&str],
    ) -> Result<(), NixError> {
        let mut args: Vec<OsString> = vec!["store".into(), "sign".into()];
        if let Some(s) = store {
            args.extend(["--store".into(), s.into()]);
        }
        args.extend(["--key-file".into(), key_file.into(), "--recursive".into()]);
        args.extend(paths.iter().map(OsString::from));
        self.run("store sign", &args, None).await.map(drop)
    }

    /// `nix copy --to DEST paths…`: the closures, skipping what the destination has.
    pub async fn copy_to(&self, dest: &str, paths: &[&str]) -> Result<(), NixError> {
        let mut args: Vec<OsString> = vec!["copy".into(), "--to".into(), dest.into()];
        args.extend(paths.iter().map(OsString::from));
        self.run("copy", &args, None).await.map(drop)
    }

    /// `nix path-info --json` of paths (with `recursive`, their closures) in a store (local when `None`).
    pub async fn path_info(
        &self,
        store: Option<&str>,
        paths: &[&str],
        recursive: bool,
    ) -> Result<Vec<PathInfo>, NixError> {
        let mut args: Vec<OsString> = vec!["path-info".into(), "--json".into()];
        if let Some(s) = store {
            args.extend(["--store".into(), s.into()]);
        }
        if recursive {
            args.push("--recursive".into());
        }
        args.extend(paths.iter().map(OsString::from));
        let what = "path-info";
        let out = self.run(what, &args, None).await?;
        parse_path_info(&out).ok_or_else(|| NixError::BadOutput {
            what: what.to_owned(),
            why: "no path, narHash or signatures".to_owned(),
        })
    }

    /// Whether every path of the closures in `store` carries a signature by `public_key` (narinfo only, no
    /// contents): `Err` with nix's words otherwise.
    pub async fn verify_signatures(
        &self,
        store: &str,
        public_key: &str,
        paths: &[&str],
    ) -> Result<(), NixError> {
        let mut args: Vec<OsString> = vec![
            "store".into(),
            "verify".into(),
            "--store".into(),
            store.into(),
            "--no-contents".into(),
            "--recursive".into(),
            "--sigs-needed".into(),
            "1".into(),
            "--option".into(),
            "trusted-public-keys".into(),
            public_key.into(),
        ];
        args.extend(paths.iter().map(OsString::from));
        self.run("store verify", &args, None).await.map(drop)
    }
}

/// Reads `path-info --json` in either layout.
pub fn parse_path_info(text: &str) -> Option<Vec<PathInfo>> {
    let v: Value = serde_json::from_str(text).ok()?;
    let one = |path: &str, o: &Value| -> Option<PathInfo> {
        Some(PathInfo {
            path: path.to_owned(),
            nar_hash: o.get("narHash")?.as_str()?.to_owned(),
            signatures: o
                .get("signatures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    };
    match &v {
        Value::Array(items) => items
            .iter()
            .map(|o| one(o.get("path")?.as_str()?, o))
            .collect(),
        Value::Object(map) => map.iter().map(|(p, o)| one(p, o)).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_info_reads_both_layouts() {
        let old = r#"[{"path":"/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-toplevel","narHash":"sha256-8AVw8mAbZuoA1BBJ5Gd3Fs2LaDgOu63XPe1x3DkoJ2U=","signatures":["k-1:abc"]}]"#;
        let new = r#"{"/nix/store/f39n8s2lwpi2csb98yd1n72qj9rdn2cg-toplevel":{"narHash":"sha256-8AVw8mAbZuoA1BBJ5Gd3Fs2LaDgOu63XPe1x3DkoJ2U=","signatures":["k-1:abc"]}}"#;
        let a = parse_path_info(old).unwrap();
        assert_eq!(a, parse_path_info(new).unwrap());
        assert_eq!(a[0].signatures, ["k-1:abc"]);
        assert_eq!(parse_path_info(r#"[{"path":"/nix/store/x"}]"#), None);
    }
}
