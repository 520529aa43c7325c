//! Prebuilt closures end to end: `bake lock` (moto's SSM), then `bake build` with the real `nix` on a throw-away
//! flake (plain derivations with `builder = "/bin/sh"`, no nixpkgs: it builds offline), signed with a key from
//! `nix key generate-secret`, pushed to a `file://` cache or to moto's S3, substituted into a second, empty store
//! and verified against the public key; the wrong key is refused, and `bake build --check` finds a path missing
//! from the cache or one without the key's signature.
//!
//! Debian's Nix has no S3 store (`don't know how to open Nix store 's3://…'`), so the S3 form is checked the way
//! bake works there: bake uploads the `file://` staging cache with aws-sdk-s3, and the test downloads the bucket's
//! objects into a directory that the real Nix then substitutes from.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::git;
use common::peers::{Peer, Suite, moto_url};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "build_pushes_to_a_file_cache_that_an_empty_store_substitutes_from",
        &[Peer::Moto, Peer::Nix],
        build_pushes_to_a_file_cache_that_an_empty_store_substitutes_from,
    );
    suite.test(
        "check_finds_missing_and_unsigned_paths",
        &[Peer::Moto, Peer::Nix],
        check_finds_missing_and_unsigned_paths,
    );
    suite.test(
        "a_signing_key_of_another_public_key_is_refused",
        &[Peer::Moto, Peer::Nix],
        a_signing_key_of_another_public_key_is_refused,
    );
    suite.test(
        "s3_caches_are_uploaded_once_and_substitute",
        &[Peer::Moto, Peer::Nix, Peer::Curl],
        s3_caches_are_uploaded_once_and_substitute,
    );
    suite.test(
        "the_bootstrap_partial_substitutes_with_real_nix_and_refuses_a_wrong_key",
        &[Peer::Moto, Peer::Nix],
        the_bootstrap_partial_substitutes_with_real_nix_and_refuses_a_wrong_key,
    );
    suite.run()
}

const NOW: &str = "2026-12-01T09:00:00Z";
const DATE: &str = "2026-11-20T10:00:00Z";

/// The system-manager stand-in: a package whose `bin/system-manager` prints its arguments.
const SM_FLAKE: &str = r#"{
  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      name = "system-manager"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "/bin/mkdir -p $out/bin; printf '#!/bin/sh\necho system-manager \"$@\"\n' > $out/bin/system-manager" ];
    };
  };
}
"#;

/// The configuration: a toplevel that references a dependency, so the closure has more than one path.
fn infra_flake(marker: &str) -> String {
    format!(
        r#"{{
  inputs.system-manager.url = "git+file://@SM@";
  outputs = {{ self, system-manager }}: let
    dep = derivation {{ name = "bake-dep"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo {marker} > $out" ]; }};
  in {{
    systemConfigs.web = derivation {{
      name = "toplevel"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "echo ${{dep}} > $out" ];
    }};
  }};
}}
"#
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    public_key: String,
}

/// `nix` with flakes, offline: no substituter is asked.
fn nix(args: &[&str]) -> Output {
    Command::new("nix")
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(args)
        .env("NIX_CONFIG", "substituters =")
        .output()
        .expect("nix runs")
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Fixture {
    /// A directory with `sm/` and `infra/` (committed flakes), a signing key pair, an installer mirror and
    /// `web.kdl` whose image ships a closure from `cache` (`@DIR@` is replaced by the fixture directory).
    fn new(cache: &str, marker: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let sm = root.join("sm");
        std::fs::create_dir_all(&sm).unwrap();
        std::fs::write(sm.join("flake.nix"), SM_FLAKE).unwrap();
        git(&sm, &["init", "-q"], DATE);
        git(&sm, &["add", "-A"], DATE);
        git(&sm, &["commit", "-q", "-m", "sm"], DATE);
        let infra = root.join("infra");
        std::fs::create_dir_all(&infra).unwrap();
        std::fs::write(
            infra.join("flake.nix"),
            infra_flake(marker).replace("@SM@", &sm.display().to_string()),
        )
        .unwrap();
        git(&infra, &["init", "-q"], DATE);
        git(&infra, &["add", "-A"], DATE);
        ok(
            &nix(&["flake", "lock", &infra.display().to_string()]),
            "nix flake lock",
        );
        git(&infra, &["add", "-A"], DATE);
        git(&infra, &["commit", "-q", "-m", "infra"], DATE);
        std::fs::create_dir_all(root.join("mirror")).unwrap();
        std::fs::write(root.join("mirror/nix-installer-x86_64-linux"), "installer").unwrap();
        let secret = ok(
            &nix(&["key", "generate-secret", "--key-name", "bake-test-1"]),
            "key",
        );
        std::fs::write(root.join("secret.key"), &secret).unwrap();
        let public_key = public_of(&root.join("secret.key"));
        let f = Fixture { dir, public_key };
        f.write_spec(cache);
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write_spec(&self, cache: &str) {
        let cache = cache.replace("@DIR@", &self.dir.path().display().to_string());
        let spec = format!(
            r#"stack "web" region="us-east-1"
image "web" {{
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix installer="determinate" version="3.1.1"
    flake "git+https://git.example.com/acme/infra.git" ref="main" output="systemConfigs.web" checkout="infra"
    closure cache="{cache}" public-key="{}"
}}
"#,
            self.public_key
        );
        std::fs::write(self.path("web.kdl"), spec).unwrap();
    }

    /// The real binary in the fixture directory against moto, offline for nix.
    fn bake(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_bake"))
            .args(args)
            .current_dir(self.dir.path())
            .env("BAKE_NOW", NOW)
            .env("NO_COLOR", "1")
            .env("NIX_CONFIG", "substituters =")
            .env(
                "BAKE_NIX_INSTALLER_MIRROR",
                format!("file://{}", self.path("mirror").display()),
            )
            .env("BAKE_CACHE_DIR", self.path("staging"))
            .env_remove(bake_key_env())
            .env("AWS_ENDPOINT_URL", moto_url())
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

    fn lock_text(&self) -> String {
        std::fs::read_to_string(self.path("web.lock.json")).unwrap()
    }

    fn closure(&self) -> serde_json::Value {
        let lock: serde_json::Value = serde_json::from_str(&self.lock_text()).unwrap();
        lock["images"]["web"]["closure"].clone()
    }

    /// `bake lock`, then `bake build` with the fixture's key.
    fn lock_and_build(&self) -> Output {
        ok(&self.bake(&["lock", "web.kdl"]), "bake lock");
        self.bake(&["build", "web.kdl", "--signing-key", "secret.key"])
    }
}

fn bake_key_env() -> &'static str {
    "BAKE_SIGNING_KEY_FILE"
}

fn public_of(secret: &Path) -> String {
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "key",
            "convert-secret-to-public",
        ])
        .stdin(std::fs::File::open(secret).unwrap())
        .output()
        .unwrap();
    ok(&out, "convert-secret-to-public").trim().to_owned()
}

/// Copies `path` from a `file://` cache into a fresh store under `dir`, trusting only `key`.
fn substitute(cache: &str, dir: &Path, key: &str, path: &str) -> Output {
    nix(&[
        "copy",
        "--from",
        cache,
        "--to",
        &dir.display().to_string(),
        "--option",
        "trusted-public-keys",
        key,
        path,
    ])
}

fn build_pushes_to_a_file_cache_that_an_empty_store_substitutes_from() {
    let f = Fixture::new("file://@DIR@/cache", "file-cache");
    let out = f.lock_and_build();
    let err = ok(&out, "bake build");
    let c = f.closure();
    let top = c["store-path"].as_str().unwrap().to_owned();
    let cli = c["system-manager-path"].as_str().unwrap().to_owned();
    assert!(
        top.starts_with("/nix/store/") && top.ends_with("-toplevel"),
        "{c}"
    );
    assert!(cli.ends_with("-system-manager"), "{c}");
    assert!(
        err.contains(&top) || stderr(&out).contains(&top),
        "{}",
        stderr(&out)
    );
    assert_eq!(c["public-key"], f.public_key.as_str());
    assert_eq!(c["output"], "systemConfigs.web");
    assert_eq!(c["built-at"], NOW);
    // The NAR hash is the one nix reports for the path.
    let info = ok(&nix(&["path-info", "--json", &top]), "path-info");
    assert!(info.contains(c["nar-hash"].as_str().unwrap()), "{info}");
    // Every path of both closures is in the cache: the toplevel, its dependency and the CLI.
    let narinfos: Vec<String> = std::fs::read_dir(f.path("cache"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".narinfo"))
        .collect();
    assert_eq!(narinfos.len(), 3, "{narinfos:?}");

    // A second, empty store gets it from the cache, trusting only the public key ...
    let cache = format!("file://{}", f.path("cache").display());
    ok(
        &substitute(&cache, &f.path("store2"), &f.public_key, &top),
        "substitute with the right key",
    );
    let copied =
        std::fs::read_to_string(f.path("store2").join(top.trim_start_matches('/'))).unwrap();
    assert!(copied.contains("-bake-dep"), "{copied}");
    ok(
        &nix(&[
            "store",
            "verify",
            "--store",
            &f.path("store2").display().to_string(),
            "--recursive",
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            &f.public_key,
            &top,
        ]),
        "verify in the second store",
    );
    // ... and refuses it under any other key.
    let other = ok(
        &nix(&["key", "generate-secret", "--key-name", "other-1"]),
        "key",
    );
    std::fs::write(f.path("other.key"), other).unwrap();
    let other_pub = public_of(&f.path("other.key"));
    let refused = substitute(&cache, &f.path("store3"), &other_pub, &top);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("lacks a valid signature"),
        "{}",
        stderr(&refused)
    );

    // The cache has it, signed: the check agrees.
    let checked = f.bake(&["build", "web.kdl", "--check"]);
    ok(&checked, "bake build --check");
    ok(
        &f.bake(&["lock", "web.kdl", "--check"]),
        "bake lock --check",
    );

    // compile substitutes exactly that path and never builds.
    ok(
        &f.bake(&["compile", "web.kdl", "-o", "out"]),
        "bake compile",
    );
    let script = std::fs::read_to_string(f.path("out/web.bootstrap.sh")).unwrap();
    assert!(script.contains(&format!("STORE_PATH={top}")), "{script}");
    assert!(
        script.contains("pre-populate --store-path \"$STORE_PATH\""),
        "{script}"
    );
    assert!(
        !script.contains("--flake"),
        "the image must not fetch the flake:\n{script}"
    );
    assert!(!script.contains("git.example.com"), "{script}");

    // An unchanged flake: nothing to do, the lock is byte-identical.
    let before = f.lock_text();
    let again = f.bake(&["build", "web.kdl", "--signing-key", "secret.key"]);
    ok(&again, "second bake build");
    assert!(stderr(&again).contains("up to date"), "{}", stderr(&again));
    assert_eq!(f.lock_text(), before);

    // A new flake commit, locked: the closure is stale until `bake build` runs again, and compile says so.
    let infra = f.path("infra");
    let nix_file = std::fs::read_to_string(infra.join("flake.nix")).unwrap();
    std::fs::write(
        infra.join("flake.nix"),
        nix_file.replace("echo file-cache", "echo file-cache-2"),
    )
    .unwrap();
    git(&infra, &["commit", "-q", "-am", "change"], DATE);
    ok(
        &f.bake(&["lock", "web.kdl", "--update", "flake"]),
        "bake lock --update flake",
    );
    assert_eq!(
        f.closure()["store-path"],
        top.as_str(),
        "bake lock keeps the closure entry"
    );
    let out = f.bake(&["compile", "web.kdl", "-o", "out2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bake::lock::closure_stale"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("flake revision"), "{}", stderr(&out));
    ok(
        &f.bake(&["build", "web.kdl", "--signing-key", "secret.key"]),
        "rebuild",
    );
    assert_ne!(f.closure()["store-path"], top.as_str(), "a new toplevel");
    ok(
        &f.bake(&["compile", "web.kdl", "-o", "out2"]),
        "compile after the rebuild",
    );
}

fn check_finds_missing_and_unsigned_paths() {
    let f = Fixture::new("file://@DIR@/cache", "check");
    ok(&f.lock_and_build(), "bake build");
    let c = f.closure();
    let top = c["store-path"].as_str().unwrap();
    let hash = &top["/nix/store/".len()..][..32];
    let narinfo = f.path("cache").join(format!("{hash}.narinfo"));
    let text = std::fs::read_to_string(&narinfo).unwrap();

    // Unsigned: the narinfo without its signature.
    let unsigned: String = text
        .lines()
        .filter(|l| !l.starts_with("Sig:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&narinfo, unsigned).unwrap();
    let out = f.bake(&["build", "web.kdl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bake::lock::closure_unsigned"),
        "{}",
        stderr(&out)
    );
    let out = f.bake(&["lock", "web.kdl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bake::lock::closure_unsigned"),
        "{}",
        stderr(&out)
    );

    // Missing: no narinfo at all.
    std::fs::remove_file(&narinfo).unwrap();
    let out = f.bake(&["build", "web.kdl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bake::lock::closure_not_cached"), "{err}");
    assert!(
        err.contains("bake build web.kdl web"),
        "the next step is named: {err}"
    );

    // `bake build` puts it back (nix copy sees it missing), and signs it again.
    ok(
        &f.bake(&["build", "web.kdl", "--signing-key", "secret.key"]),
        "rebuild",
    );
    ok(
        &f.bake(&["build", "web.kdl", "--check"]),
        "check after the rebuild",
    );
}

fn a_signing_key_of_another_public_key_is_refused() {
    let f = Fixture::new("file://@DIR@/cache", "wrong-key");
    ok(&f.bake(&["lock", "web.kdl"]), "bake lock");
    let before = f.lock_text();
    // No key at all: a usage error that names the flag and the variable.
    let out = f.bake(&["build", "web.kdl"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--signing-key") && stderr(&out).contains("BAKE_SIGNING_KEY_FILE")
    );
    // The key of another public key: refused before anything is built or pushed.
    let other = ok(
        &nix(&["key", "generate-secret", "--key-name", "other-1"]),
        "key",
    );
    std::fs::write(f.path("other.key"), &other).unwrap();
    let out = f.bake(&["build", "web.kdl", "--signing-key", "other.key"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("belongs to the public key `other-1:"), "{err}");
    assert!(
        !err.contains(other.trim()),
        "the secret key is never printed: {err}"
    );
    assert!(!f.path("cache").exists(), "nothing was pushed");
    assert_eq!(f.lock_text(), before);
    // compile without a closure in the lock: the spanned diagnostic with the next step.
    let out = f.bake(&["compile", "web.kdl", "-o", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bake::lock::closure_missing"),
        "{}",
        stderr(&out)
    );
    assert!(!f.path("out").exists());
}

/// `curl` against moto's S3 (path style), signed like any S3 client; the body, or into `out`.
fn s3(method: &str, path: &str, out: Option<&Path>) -> String {
    let got = Command::new("curl")
        .args([
            "-sS",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            "test:test",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            &format!("{}/{path}", moto_url()),
        ])
        .output()
        .unwrap();
    let mut body = got.stdout;
    let tail = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&body[tail..]).trim().to_owned();
    body.truncate(tail);
    assert!(
        status.starts_with('2'),
        "curl {method} {path}: HTTP {status}: {}",
        String::from_utf8_lossy(&body)
    );
    match out {
        Some(o) => {
            std::fs::write(o, &body).unwrap();
            String::new()
        }
        None => String::from_utf8_lossy(&body).into_owned(),
    }
}

fn s3_keys(bucket: &str) -> Vec<String> {
    let xml = s3("GET", &format!("{bucket}?list-type=2"), None);
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

fn s3_caches_are_uploaded_once_and_substitute() {
    // A bucket and store paths of this run only: moto and the Nix store keep what earlier runs left.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let bucket = &format!("bake-closure-{run}");
    s3("PUT", bucket, None);
    let f = Fixture::new(
        &format!("s3://{bucket}?region=us-east-1"),
        &format!("s3-{run}"),
    );
    let out = f.lock_and_build();
    let err = ok(&out, "bake build");
    let _ = err;
    assert!(
        stderr(&out).contains("uploaded 7 file(s), 0 already there"),
        "{}",
        stderr(&out)
    );
    let keys = s3_keys(bucket);
    assert!(keys.contains(&"nix-cache-info".to_owned()), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(".narinfo")).count(),
        3,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with("nar/")).count(),
        3,
        "{keys:?}"
    );

    // The bucket is a binary cache the real Nix substitutes from (downloaded, as Debian's Nix has no s3://).
    let mirror = f.path("from-s3");
    std::fs::create_dir_all(mirror.join("nar")).unwrap();
    for k in &keys {
        s3("GET", &format!("{bucket}/{k}"), Some(&mirror.join(k)));
    }
    let top = f.closure()["store-path"].as_str().unwrap().to_owned();
    ok(
        &substitute(
            &format!("file://{}", mirror.display()),
            &f.path("store2"),
            &f.public_key,
            &top,
        ),
        "substitute from the bucket's files",
    );

    // Unchanged: nothing uploaded; also from a fresh staging directory (a new CI runner).
    let again = f.bake(&["build", "web.kdl", "--signing-key", "secret.key"]);
    assert!(
        stderr(&again).contains("uploaded 0 file(s), 7 already there"),
        "{}",
        stderr(&again)
    );
    std::fs::remove_dir_all(f.path("staging")).unwrap();
    let fresh = f.bake(&["build", "web.kdl", "--signing-key", "secret.key"]);
    assert!(
        stderr(&fresh).contains("uploaded 0 file(s)"),
        "{}",
        stderr(&fresh)
    );
    ok(
        &f.bake(&["build", "web.kdl", "--check"]),
        "check against S3",
    );

    // A narinfo gone from the bucket: found by the check.
    let dep = keys.iter().find(|k| k.ends_with(".narinfo")).unwrap();
    s3("DELETE", &format!("{bucket}/{dep}"), None);
    let out = f.bake(&["build", "web.kdl", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bake::lock::closure_not_cached"),
        "{}",
        stderr(&out)
    );
}

/// Runs the closure part of the compiled bootstrap script with bash against the real Nix: `nix_cmd` points at a
/// store under the fixture directory instead of the daemon's.
fn the_bootstrap_partial_substitutes_with_real_nix_and_refuses_a_wrong_key() {
    let f = Fixture::new("file://@DIR@/cache", "script");
    ok(&f.lock_and_build(), "bake build");
    ok(
        &f.bake(&["compile", "web.kdl", "-o", "out"]),
        "bake compile",
    );
    let script = std::fs::read_to_string(f.path("out/web.bootstrap.sh")).unwrap();
    let start = script
        .find("# The prebuilt closure")
        .expect("the closure partial");
    let end = script[start..].find("nix_cmd build --out-link").unwrap() + start;
    let part = &script[start..end];
    let store = f.path("store");
    let run = |part: &str| {
        let prelude = format!(
            "set -euo pipefail\nnix_cmd() {{ NIX_CONFIG='substituters =' nix --extra-experimental-features 'nix-command flakes' --store {} \"$@\"; }}\n",
            store.display()
        );
        let body = part.replace(
            "/nix/var/nix/profiles/default/bin/nix-store --query",
            &format!("nix-store --store {} --query", store.display()),
        );
        Command::new("bash")
            .arg("-c")
            .arg(format!("{prelude}{body}"))
            .output()
            .unwrap()
    };
    let out = run(part);
    assert!(out.status.success(), "{}\n{part}", stderr(&out));
    let top = f.closure()["store-path"].as_str().unwrap().to_owned();
    assert!(store.join(top.trim_start_matches('/')).exists());

    // The same script with another key, into another empty store: refused.
    let other = ok(
        &nix(&["key", "generate-secret", "--key-name", "other-1"]),
        "key",
    );
    std::fs::write(f.path("other.key"), &other).unwrap();
    let other_pub = public_of(&f.path("other.key"));
    let wrong = part.replace(&f.public_key, &other_pub);
    std::fs::remove_dir_all(&store).unwrap();
    let out = run(&wrong);
    assert!(
        !out.status.success(),
        "a path signed by another key was accepted"
    );
    assert!(
        stderr(&out).contains("lacks a valid signature"),
        "{}",
        stderr(&out)
    );
    assert!(!store.join(top.trim_start_matches('/')).exists());
}
