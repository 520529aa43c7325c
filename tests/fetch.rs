//! Private flakes fetched on the build instance (`fetch`, docs/private-flakes.md), against real peers:
//!
//! - `bake lock` against moto's Secrets Manager and SSM: it records the secrets' full ARNs, never a value; a
//!   missing secret and a `String` (not `SecureString`) parameter are clear errors that leave the lock untouched.
//! - the compiled template's build role may read exactly those ARNs (parsed from `template.json`);
//! - no secret value reaches an artifact, the lock, or bake's output;
//! - the generated credential part of the bootstrap, run by bash in a sandbox: the real AWS CLI reads the secrets
//!   from moto, the real `git credential fill` and `ssh -G` see exactly what Nix's fetches would, and afterwards
//!   no file under the sandbox holds a secret and the script printed none — also when the build fails.
//!
//! Only `nix` is a stand-in (the Nix daemon and a real fetch cannot run here): a small script that checks, by
//! hash, that the secrets reached it in the environment the bootstrap gives Nix.
//!
//! Each test uses its own secret names (moto is shared by the tests of this binary and never reset).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest;

mod common;
use common::peers::{Peer, Suite, moto_url};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "lock_records_the_arns_and_the_build_role_reads_exactly_them",
        &[Peer::Moto],
        lock_records_the_arns_and_the_build_role_reads_exactly_them,
    );
    suite.test(
        "a_missing_secret_and_a_plain_parameter_are_clear_errors",
        &[Peer::Moto],
        a_missing_secret_and_a_plain_parameter_are_clear_errors,
    );
    suite.test(
        "the_credential_script_leaves_no_copy_behind",
        &[Peer::Moto, Peer::AwsCli, Peer::Git, Peer::Ssh],
        the_credential_script_leaves_no_copy_behind,
    );
    suite.test(
        "a_failed_build_still_removes_every_copy",
        &[Peer::Moto, Peer::AwsCli, Peer::Git, Peer::Ssh],
        a_failed_build_still_removes_every_copy,
    );
    suite.test(
        "the_compiled_credential_script_is_shellcheck_clean",
        &[Peer::Shellcheck],
        the_compiled_credential_script_is_shellcheck_clean,
    );
    suite.test(
        "compile_warns_about_credentials_nothing_fetches_with",
        &[],
        compile_warns_about_credentials_nothing_fetches_with,
    );
    suite.test(
        "a_proxy_alone_reads_no_secret_and_grants_nothing",
        &[Peer::Shellcheck],
        a_proxy_alone_reads_no_secret_and_grants_nothing,
    );
    suite.run()
}

const REGION: &str = "us-east-1";
const NOW: &str = "2026-12-01T08:00:00Z";
const PARAM: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64";
const KNOWN_HOST: &str = "ssh.acme.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// Secret values no test may find anywhere but in moto: unique per test, long enough never to occur by chance.
struct Secrets {
    git_token: String,
    github_token: String,
    deploy_key: String,
}

impl Secrets {
    fn new(tag: &str) -> Secrets {
        let salt = format!("{tag}-{}", std::process::id());
        let h = |what: &str| format!("{:x}", sha2::Sha256::digest(format!("{salt}-{what}")));
        Secrets {
            git_token: format!("glpat-{}", &h("git")[..40]),
            github_token: format!("github_pat_{}", &h("github")[..40]),
            // A multi-line value, as an OpenSSH private key is.
            deploy_key: format!(
                "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
                &h("key1"),
                &h("key2")
            ),
        }
    }

    /// Every string that would betray a secret: the values and each line of the key.
    fn needles(&self) -> Vec<String> {
        let mut out = vec![self.git_token.clone(), self.github_token.clone()];
        out.extend(
            self.deploy_key
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
        out
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(moto_url())
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

/// Creates a Secrets Manager secret in moto and returns its ARN.
fn create_secret(name: &str, value: &str) -> String {
    runtime().block_on(async {
        let sm = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
        sm.create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .arn()
            .unwrap()
            .to_owned()
    })
}

/// Creates an SSM parameter in moto and returns the ARN AWS gives it.
fn put_parameter(name: &str, kind: &str, value: &str) -> String {
    runtime().block_on(async {
        let ssm = aws_sdk_ssm::Client::new(&sdk_config().await);
        ssm.put_parameter()
            .name(name)
            .r#type(kind.into())
            .value(value)
            .send()
            .await
            .unwrap();
    });
    format!("arn:aws:ssm:{REGION}:123456789012:parameter{name}")
}

/// A spec whose image fetches a private flake with a token (Secrets Manager), a token (SSM) and a deploy key.
fn spec(git_secret: &str, github_parameter: &str, key_secret: &str) -> String {
    format!(
        r#"stack "corp" region="{REGION}"
image "api" {{
    base ssm="{PARAM}"
    nix installer="determinate" version="3.1.1"
    flake "git+https://git.acme.internal/platform/infra.git" ref="main" output="systemConfigs.api" checkout="infra"
    fetch {{
        token "git.acme.internal" secret="{git_secret}"
        token "github.com" parameter="{github_parameter}"
        ssh-key "ssh.acme.internal" secret="{key_secret}" known-host="{KNOWN_HOST}"
        proxy "http://proxy.acme.internal:3128" no-proxy=".acme.internal"
    }}
}}
"#
    )
}

/// A lock whose base, flake and installer entries answer `spec` (so `bake lock` asks only for the secrets), with
/// the given credential entries.
fn lock(credentials: Value) -> String {
    let rev = "5f0c6e0d2a8b4c1e9f3a7d6b2c8e4f1a0b9d3c7e";
    let mut lock = serde_json::json!({
        "version": 3,
        "images": {"api": {
            "base": {
                "parameter": PARAM, "region": REGION, "ami": "ami-0ac48d91c7d16772c",
                "parameter-version": 146, "parameter-modified": "2026-09-30T23:28:25.726Z",
                "ami-name": "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64", "release": "2023.12.20260930",
                "kernel": "6.12", "architecture": "x86_64", "ami-owner": "137112412989",
                "ami-created": "2026-09-30T20:00:00Z", "resolved-at": NOW
            },
            "flake": {
                "url": "git+https://git.acme.internal/platform/infra.git", "ref": "main", "rev": rev,
                "nar-hash": "sha256-q3Kx1mZ2s9Qm4a8b0Yc5d6E7f8G9h0I1j2K3l4M5n6o=", "last-modified": 1795756213,
                "resolved-at": NOW,
                "inputs": {
                    "lib": {"url": format!("git+ssh://git@ssh.acme.internal/platform/lib.git?rev={rev}"), "rev": rev},
                    "system-manager": {
                        "url": "github:numtide/system-manager/48d47346e0c6ad05b6c869ea92649c47723d1cfc",
                        "rev": "48d47346e0c6ad05b6c869ea92649c47723d1cfc"
                    },
                    "tools": {"url": format!("github:acme/tools/{rev}"), "rev": rev}
                }
            },
            "installer": {
                "kind": "determinate", "version": "3.1.1",
                "url": "https://install.determinate.systems/nix/tag/v3.1.1/nix-installer-x86_64-linux",
                "sha256": "63a18eb4b0f745544f3d6c644526c4651637907ff79009d3f139fa565405aa62"
            }
        }}
    });
    if !credentials.is_null() {
        lock["images"]["api"]["credentials"] = credentials;
    }
    let mut s = serde_json::to_string_pretty(&lock).unwrap();
    s.push('\n');
    s
}

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap()
    }

    /// The real `bake`, pointed at moto with moto's credentials and nothing from the user's AWS setup.
    fn bake(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bake"))
            .args(args)
            .current_dir(self.dir.path())
            .env("BAKE_NOW", NOW)
            .env("NO_COLOR", "1")
            // compile needs no moto (and never calls AWS): a closed loopback port then.
            .env(
                "AWS_ENDPOINT_URL",
                std::env::var("BAKE_TEST_MOTO_URL").unwrap_or_else(|_| "http://127.0.0.1:9".into()),
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .output()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, content: &str, secrets: &Secrets) {
    for n in secrets.needles() {
        assert!(!content.contains(&n), "{what} holds a secret value");
    }
}

/// Every `Resource` of every statement of the inline policies of the template's IAM roles that allow `action`.
fn resources_allowed(template: &Value, action: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, r) in template["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        for policy in r["Properties"]["Policies"].as_array().into_iter().flatten() {
            for st in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                let actions: Vec<&str> = match &st["Action"] {
                    Value::String(a) => vec![a.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                if actions.iter().any(|a| *a == action || a.ends_with('*')) {
                    assert_eq!(st["Effect"], "Allow");
                    for res in st["Resource"].as_array().unwrap() {
                        out.insert(res.as_str().unwrap().to_owned());
                    }
                }
            }
        }
    }
    out
}

fn lock_records_the_arns_and_the_build_role_reads_exactly_them() {
    let secrets = Secrets::new("lock");
    let id = std::process::id();
    let git_name = format!("bake-test-{id}/git-token");
    let key_name = format!("bake-test-{id}/deploy-key");
    let param_name = format!("/bake-test-{id}/github-token");
    let git_arn = create_secret(&git_name, &secrets.git_token);
    let key_arn = create_secret(&key_name, &secrets.deploy_key);
    let param_arn = put_parameter(&param_name, "SecureString", &secrets.github_token);
    // Secrets Manager appends a random suffix: the ARN is not derivable from the name.
    assert!(git_arn.starts_with(&format!("arn:aws:secretsmanager:{REGION}:")));
    assert_ne!(git_arn.rsplit_once(':').unwrap().1, git_name);

    let d = Dir::new();
    d.write("api.kdl", &spec(&git_name, &param_name, &key_name));
    d.write("api.lock.json", &lock(Value::Null));
    let out = d.bake(&["lock", "api.kdl"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret("bake lock's output", &text(&out), &secrets);
    // The report names each secret resolved, by ARN.
    assert!(
        text(&out).contains(&format!("  secret secretsmanager:{git_name}: {git_arn}\n")),
        "{}",
        text(&out)
    );
    let locked = d.read("api.lock.json");
    assert_no_secret("the lock", &locked, &secrets);
    let lock: Value = serde_json::from_str(&locked).unwrap();
    let creds = &lock["images"]["api"]["credentials"];
    assert_eq!(
        creds.as_object().unwrap().len(),
        3,
        "one entry per secret: {creds}"
    );
    assert_eq!(creds[format!("secretsmanager:{git_name}")]["arn"], git_arn);
    assert_eq!(creds[format!("secretsmanager:{key_name}")]["arn"], key_arn);
    assert_eq!(creds[format!("ssm:{param_name}")]["arn"], param_arn);
    // The entries already there (base, flake, installer) are untouched: bake lock asked only for the secrets.
    let before: Value = serde_json::from_str(&self::lock(Value::Null)).unwrap();
    for part in ["base", "flake", "installer"] {
        assert_eq!(lock["images"]["api"][part], before["images"]["api"][part]);
    }
    // A second run has nothing to resolve and leaves the lock byte for byte.
    let again = d.bake(&["lock", "api.kdl"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(d.read("api.lock.json"), locked);

    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret("bake compile's output", &text(&out), &secrets);
    for entry in std::fs::read_dir(d.path("out")).unwrap() {
        let path = entry.unwrap().path();
        let content = std::fs::read_to_string(&path).unwrap();
        assert_no_secret(&path.display().to_string(), &content, &secrets);
    }
    let template: Value = serde_json::from_str(&d.read("out/template.json")).unwrap();
    assert_eq!(
        resources_allowed(&template, "secretsmanager:GetSecretValue"),
        BTreeSet::from([git_arn.clone(), key_arn.clone()])
    );
    assert_eq!(
        resources_allowed(&template, "ssm:GetParameter"),
        BTreeSet::from([param_arn.clone()])
    );
    // The script reads each secret by the ARN the role may read.
    let script = d.read("out/api.bootstrap.sh");
    for arn in [&git_arn, &key_arn, &param_arn] {
        assert!(
            script.contains(arn.as_str()),
            "the script does not read {arn}"
        );
    }
}

fn a_missing_secret_and_a_plain_parameter_are_clear_errors() {
    let id = std::process::id();
    let key_name = format!("bake-test-{id}/errors-key");
    create_secret(&key_name, "not a key");
    let plain = format!("/bake-test-{id}/plain-token");
    put_parameter(&plain, "String", "plaintext-token-value");
    let missing = format!("bake-test-{id}/no-such-secret");

    let d = Dir::new();
    d.write("api.kdl", &spec(&missing, &plain, &key_name));
    let before = lock(Value::Null);
    d.write("api.lock.json", &before);
    let out = d.bake(&["lock", "api.kdl"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("bake::lock::secret"), "{all}");
    assert!(
        all.contains(&format!("Secrets Manager has no secret {missing}")),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "the SSM parameter {plain} is a String, not a SecureString"
        )),
        "{all}"
    );
    assert!(all.contains("--type SecureString"), "{all}");
    assert!(!all.contains("plaintext-token-value"), "{all}");
    assert_eq!(d.read("api.lock.json"), before, "the lock changed");

    // compile refuses a lock without the ARNs: the build role could not be given exactly those secrets.
    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the lock has no ARN for"),
        "{}",
        text(&out)
    );
    assert!(!d.path("out").exists());
}

/// The credential part of a compiled bootstrap: from its begin marker to its end marker.
fn credential_part(script: &str) -> String {
    let begin = script.find("# bake: fetch credentials (begin)").unwrap();
    let end = script.find("# bake: fetch credentials (end)").unwrap();
    script[begin..end].to_owned()
}

/// The stand-in for `nix`: checks that the secrets reach it the way the bootstrap hands them to Nix and git,
/// comparing hashes (it never writes a secret), and records `ok` lines in `$SANDBOX/nix.log`.
const FAKE_NIX: &str = r#"#!/bin/bash
set -euo pipefail
log="$SANDBOX/nix.log"
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
# Nix's access-tokens for github:/gitlab: fetches.
[ "$(sha "$NIX_CONFIG")" = "$WANT_NIX_CONFIG" ] && echo 'ok access-tokens' >>"$log"
# What git gives Nix's git+https fetches: the real `git credential fill` asks the bootstrap's helper.
for host in git.acme.internal github.com; do
  answer="$(printf 'protocol=https\nhost=%s\n\n' "$host" | GIT_TERMINAL_PROMPT=0 git credential fill)"
  password="$(printf '%s\n' "$answer" | sed -n 's/^password=//p')"
  user="$(printf '%s\n' "$answer" | sed -n 's/^username=//p')"
  want="WANT_$(echo "$host" | tr '.' '_')"
  [ "$(sha "$password")" = "${!want}" ] && [ "$user" = x-access-token ] && echo "ok git $host" >>"$log"
done
# What git+ssh fetches run: real ssh prints the configuration it would use.
config="$($GIT_SSH_COMMAND -G git@ssh.acme.internal)"
key="$(printf '%s\n' "$config" | sed -n 's/^identityfile //p')"
[ "$(sha "$(cat "$key")")" = "$WANT_KEY" ] && echo 'ok ssh key' >>"$log"
[ "$(stat -c %a "$key")" = 600 ] && echo 'ok ssh key mode' >>"$log"
printf '%s\n' "$config" | grep -qx 'stricthostkeychecking true' && echo 'ok strict' >>"$log"
printf '%s\n' "$config" | grep -qx 'identitiesonly yes' && echo 'ok identities-only' >>"$log"
printf '%s\n' "$config" | grep -qx 'batchmode yes' && echo 'ok batch' >>"$log"
known="$(printf '%s\n' "$config" | sed -n 's/^userknownhostsfile //p')"
[ "$(cat "$known")" = "$WANT_KNOWN_HOST" ] && echo 'ok known-host' >>"$log"
# The proxy, for this process and for the daemon's runtime drop-in.
[ "$https_proxy" = http://proxy.acme.internal:3128 ] && echo 'ok proxy' >>"$log"
grep -q 'https_proxy=http://proxy.acme.internal:3128' "$SANDBOX/run/systemd/system/nix-daemon.service.d/bake-proxy.conf" \
  && echo 'ok daemon proxy' >>"$log"
exit "${NIX_EXIT:-0}"
"#;

const CHECKS: &[&str] = &[
    "ok access-tokens",
    "ok git git.acme.internal",
    "ok git github.com",
    "ok ssh key",
    "ok ssh key mode",
    "ok strict",
    "ok identities-only",
    "ok batch",
    "ok known-host",
    "ok proxy",
    "ok daemon proxy",
];

fn sha(s: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(s.as_bytes()))
}

/// Every file under `dir` (following no symlinks), with its bytes.
fn files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            files(&entry.path(), out);
        } else if ty.is_file() {
            out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// Compiles the spec against secrets created in moto, then runs the credential part as the bootstrap does
/// (`bake_fetch_secrets`, the fetch, `bake_forget_secrets`, exit) in a sandbox, with the real AWS CLI, git and
/// ssh, and the stand-in nix exiting with `nix_exit`. Returns the sandbox (for inspection) and bash's output.
fn run_sandboxed(tag: &str, nix_exit: i32) -> (Dir, Output, Secrets) {
    let secrets = Secrets::new(tag);
    let id = std::process::id();
    let git_name = format!("bake-test-{id}/{tag}/git-token");
    let key_name = format!("bake-test-{id}/{tag}/deploy-key");
    let param_name = format!("/bake-test-{id}/{tag}/github-token");
    let git_arn = create_secret(&git_name, &secrets.git_token);
    let key_arn = create_secret(&key_name, &secrets.deploy_key);
    let param_arn = put_parameter(&param_name, "SecureString", &secrets.github_token);
    let d = Dir::new();
    d.write("api.kdl", &spec(&git_name, &param_name, &key_name));
    let entry = |arn: &str| serde_json::json!({"arn": arn, "resolved-at": NOW});
    d.write(
        "api.lock.json",
        &lock(serde_json::json!({
            format!("secretsmanager:{git_name}"): entry(&git_arn),
            format!("secretsmanager:{key_name}"): entry(&key_arn),
            format!("ssm:{param_name}"): entry(&param_arn),
        })),
    );
    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    assert!(out.status.success(), "{}", text(&out));
    let part = credential_part(&d.read("out/api.bootstrap.sh"));
    assert_eq!(part.matches("\nBAKE_RUN=/run\n").count(), 1, "{part}");

    let sandbox = d.path("sandbox");
    for dir in ["run", "var-tmp", "home", "bin"] {
        std::fs::create_dir_all(sandbox.join(dir)).unwrap();
    }
    let part = part.replace(
        "\nBAKE_RUN=/run\n",
        &format!("\nBAKE_RUN={}\n", sandbox.join("run").display()),
    );
    d.write("sandbox/bin/nix", FAKE_NIX);
    // No systemd here: a stand-in that only records what the script asks of it.
    d.write(
        "sandbox/bin/systemctl",
        "#!/bin/sh\necho \"systemctl $*\" >>\"$SANDBOX/systemctl.log\"\n[ \"$1\" != is-active ]\n",
    );
    // The real AWS CLI, told where moto is: AWS CLI v2 before 2.13 (Debian bookworm ships 2.9.19) ignores
    // AWS_ENDPOINT_URL and would ask the real AWS. This passes the same URL as `--endpoint-url`, nothing else.
    let real_aws = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("aws"))
                .find(|a| a.is_file())
        })
        .expect("the AWS CLI peer was checked");
    d.write(
        "sandbox/bin/aws",
        &format!(
            "#!/bin/sh\nexec '{}' --endpoint-url \"$AWS_ENDPOINT_URL\" \"$@\"\n",
            real_aws.display()
        ),
    );
    for tool in ["nix", "systemctl", "aws"] {
        Command::new("chmod")
            .arg("+x")
            .arg(sandbox.join("bin").join(tool))
            .status()
            .unwrap();
    }
    let driver = format!(
        "set -euo pipefail\nBAKE_TMP=\"$(mktemp -d \"$SANDBOX/var-tmp/run.XXXXXXXX\")\"\n{part}\nbake_fetch_secrets\nnix build 'git+https://git.acme.internal/platform/infra.git'\nbake_forget_secrets\necho 'bake: done'\n"
    );
    let path = format!(
        "{}:{}",
        sandbox.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&driver)
        .env_clear()
        .env("PATH", path)
        .env("HOME", sandbox.join("home"))
        .env("SANDBOX", &sandbox)
        .env("NIX_EXIT", nix_exit.to_string())
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", sandbox.join("home/no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            sandbox.join("home/no-aws-credentials"),
        )
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env(
            "WANT_NIX_CONFIG",
            sha(&format!(
                "access-tokens = git.acme.internal={} github.com={}",
                secrets.git_token, secrets.github_token
            )),
        )
        .env("WANT_git_acme_internal", sha(&secrets.git_token))
        .env("WANT_github_com", sha(&secrets.github_token))
        .env("WANT_KEY", sha(secrets.deploy_key.trim_end()))
        .env("WANT_KNOWN_HOST", KNOWN_HOST)
        .output()
        .unwrap();
    (d, out, secrets)
}

/// What must hold after any run: no secret in the output or in any file of the sandbox, nothing left in the
/// tmpfs, no proxy drop-in.
fn assert_no_trace(d: &Dir, out: &Output, secrets: &Secrets) {
    assert_no_secret("the script's output", &text(out), secrets);
    let sandbox = d.path("sandbox");
    let mut all = Vec::new();
    files(&sandbox, &mut all);
    for (path, bytes) in &all {
        let content = String::from_utf8_lossy(bytes);
        assert_no_secret(&path.display().to_string(), &content, secrets);
    }
    let left: Vec<String> = std::fs::read_dir(sandbox.join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bake-fetch."))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        !sandbox
            .join("run/systemd/system/nix-daemon.service.d/bake-proxy.conf")
            .exists(),
        "the proxy drop-in is still there"
    );
}

fn the_credential_script_leaves_no_copy_behind() {
    let (d, out, secrets) = run_sandboxed("clean", 0);
    assert!(out.status.success(), "{}", text(&out));
    // The secrets did reach Nix, git and ssh while the build ran ...
    let log = d.read("sandbox/nix.log");
    for check in CHECKS {
        assert!(
            log.lines().any(|l| l == *check),
            "missing `{check}`:\n{log}"
        );
    }
    // ... and are gone afterwards, with the proxy settings (the daemon was reloaded without its drop-in).
    assert_no_trace(&d, &out, &secrets);
    let systemctl = d.read("sandbox/systemctl.log");
    assert_eq!(
        systemctl.matches("systemctl daemon-reload").count(),
        2,
        "{systemctl}"
    );
}

fn a_failed_build_still_removes_every_copy() {
    let (d, out, secrets) = run_sandboxed("failed", 1);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("bake: done"));
    // It failed after reading the secrets, not before.
    assert!(d.read("sandbox/nix.log").contains("ok ssh key"));
    assert_no_trace(&d, &out, &secrets);
}

fn the_compiled_credential_script_is_shellcheck_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = common::compile(&root.join("specs/private.kdl"));
    for (name, content) in &artifacts.files {
        if !name.ends_with(".bootstrap.sh") {
            continue;
        }
        let out = Command::new("shellcheck")
            .args(["--shell=bash", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(content.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "{name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Nothing traces the commands that handle secrets.
        assert!(
            !content.contains("set -x") && !content.contains("xtrace"),
            "{name}"
        );
    }
}

fn shellcheck(script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("shellcheck")
        .args(["--shell=bash", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn a_proxy_alone_reads_no_secret_and_grants_nothing() {
    let d = Dir::new();
    let text = spec("x", "/x", "x");
    let start = text.find("        token").unwrap();
    let end = text.find("        proxy").unwrap();
    d.write("api.kdl", &format!("{}{}", &text[..start], &text[end..]));
    d.write("api.lock.json", &lock(Value::Null));
    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let script = d.read("out/api.bootstrap.sh");
    assert!(
        script.contains("export http_proxy=\"$BAKE_PROXY\""),
        "{script}"
    );
    assert!(script.contains(
        "BAKE_NO_PROXY='.acme.internal,169.254.169.254,169.254.170.2,localhost,127.0.0.1'"
    ));
    assert!(!script.contains("aws secretsmanager") && !script.contains("aws ssm"));
    let check = shellcheck(&script);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let template: Value = serde_json::from_str(&d.read("out/template.json")).unwrap();
    for (id, r) in template["Resources"].as_object().unwrap() {
        assert!(r["Properties"]["Policies"].is_null(), "{id} has a policy");
    }

    // A deploy key alone: no token machinery, still shellcheck-clean, and only that secret is readable.
    let key_only = format!(
        "{}{}",
        &text[..start],
        &text[text.find("        ssh-key").unwrap()..]
    );
    d.write("api.kdl", &key_only);
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbC123";
    d.write(
        "api.lock.json",
        &lock(serde_json::json!({"secretsmanager:x": {"arn": arn, "resolved-at": NOW}})),
    );
    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    assert!(out.status.success(), "{}", text_of(&out));
    let script = d.read("out/api.bootstrap.sh");
    assert!(!script.contains("NIX_CONFIG=") && script.contains("GIT_SSH_COMMAND="));
    let check = shellcheck(&script);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let template: Value = serde_json::from_str(&d.read("out/template.json")).unwrap();
    assert_eq!(
        resources_allowed(&template, "secretsmanager:GetSecretValue"),
        BTreeSet::from([arn.to_owned()])
    );
    assert!(resources_allowed(&template, "ssm:GetParameter").is_empty());
}

fn text_of(out: &Output) -> String {
    text(out)
}

fn compile_warns_about_credentials_nothing_fetches_with() {
    let d = Dir::new();
    // A token for a host nothing fetches from; the deploy key's host is used by the `lib` input.
    let spec = spec("bake/git-token", "/bake/github-token", "bake/deploy-key")
        .replace("token \"github.com\"", "token \"gitlab.com\"");
    d.write("api.kdl", &spec);
    let entry = |arn: &str| serde_json::json!({"arn": arn, "resolved-at": NOW});
    let mut lock: Value = serde_json::from_str(&lock(serde_json::json!({
        "secretsmanager:bake/git-token": entry("arn:aws:secretsmanager:us-east-1:123456789012:secret:bake/git-token-AbC123"),
        "secretsmanager:bake/deploy-key": entry("arn:aws:secretsmanager:us-east-1:123456789012:secret:bake/deploy-key-AbC123"),
        "ssm:/bake/github-token": entry("arn:aws:ssm:us-east-1:123456789012:parameter/bake/github-token"),
    })))
    .unwrap();
    // An input fetched over plaintext HTTP.
    lock["images"]["api"]["flake"]["inputs"]["old"] = serde_json::json!({
        "url": "git+http://git.old.internal/lib.git?rev=5f0c6e0d2a8b4c1e9f3a7d6b2c8e4f1a0b9d3c7e",
        "rev": "5f0c6e0d2a8b4c1e9f3a7d6b2c8e4f1a0b9d3c7e"
    });
    d.write(
        "api.lock.json",
        &serde_json::to_string_pretty(&lock).unwrap(),
    );
    let out = d.bake(&["compile", "api.kdl", "-o", "out"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("bake::check::fetch_unused"), "{all}");
    assert!(
        all.contains(
            // miette wraps the message after about 100 columns
            "has a token for gitlab.com, which neither its flake nor a locked input fetches"
        ),
        "{all}"
    );
    assert_eq!(all.matches("bake::check::fetch_unused").count(), 1, "{all}");
    assert!(all.contains("bake::check::plaintext_git"), "{all}");
    assert!(
        all.contains("input `old` is fetched over plaintext HTTP"),
        "{all}"
    );
}
