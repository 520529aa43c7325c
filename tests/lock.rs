//! `bake lock` end to end: the real binary against a real moto server (SSM public parameters) and the real `nix`
//! on throw-away git flakes.
//!
//! Peers: `BAKE_TEST_MOTO_URL` names a running moto server (`moto_server -H 127.0.0.1 -p 5000`); `nix` must be on
//! PATH. A test whose peer is absent is reported as ignored with the reason, unless `BAKE_TEST_REQUIRE_PEERS=1`
//! (CI), where it fails (tests/common/peers.rs). Tests never reset moto: they only read the public parameters it
//! ships.

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::git;
use common::peers::{Peer, Suite, moto_url};

#[path = "support/http.rs"]
mod http;
use http::{forward, read_request};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "lock_resolves_parameter_and_flake_then_compile_uses_them",
        &[Peer::Moto, Peer::Nix],
        lock_resolves_parameter_and_flake_then_compile_uses_them,
    );
    suite.test(
        "update_prints_what_moved_and_touches_only_what_was_asked",
        &[Peer::Moto, Peer::Nix],
        update_prints_what_moved_and_touches_only_what_was_asked,
    );
    suite.test(
        "failures_are_all_reported_and_the_lock_stays_byte_identical",
        &[Peer::Moto, Peer::Nix],
        failures_are_all_reported_and_the_lock_stays_byte_identical,
    );
    suite.test(
        "an_unreadable_lock_is_an_error_unless_updating",
        &[Peer::Moto, Peer::Nix],
        an_unreadable_lock_is_an_error_unless_updating,
    );
    suite.test(
        "a_base_change_needs_only_ssm",
        &[Peer::Moto],
        a_base_change_needs_only_ssm,
    );
    suite.test(
        "a_server_that_never_answers_times_out",
        &[],
        a_server_that_never_answers_times_out,
    );
    suite.test(
        "killing_bake_mid_lookup_leaves_the_old_lock",
        &[],
        killing_bake_mid_lookup_leaves_the_old_lock,
    );
    suite.test(
        "a_dirty_checkout_is_refused",
        &[Peer::Nix],
        a_dirty_checkout_is_refused,
    );
    suite.test(
        "a_checkout_on_another_branch_warns",
        &[Peer::Nix],
        a_checkout_on_another_branch_warns,
    );
    suite.test(
        "a_checkout_of_another_repository_warns",
        &[Peer::Nix],
        a_checkout_of_another_repository_warns,
    );
    suite.test(
        "missing_nix_says_how_to_install_it",
        &[],
        missing_nix_says_how_to_install_it,
    );
    suite.test(
        "a_missing_checkout_directory_is_reported",
        &[],
        a_missing_checkout_directory_is_reported,
    );
    suite.test(
        "a_flake_without_checkout_cannot_be_locked",
        &[],
        a_flake_without_checkout_cannot_be_locked,
    );
    suite.test(
        "no_credentials_is_a_clear_error",
        &[],
        no_credentials_is_a_clear_error,
    );
    suite.test(
        "unused_entries_are_pruned_without_lookups",
        &[],
        unused_entries_are_pruned_without_lookups,
    );
    suite.test(
        "check_reports_missing_and_stale_entries_without_writing",
        &[],
        check_reports_missing_and_stale_entries_without_writing,
    );
    suite.test(
        "status_shows_age_and_flags_old_and_stale_entries",
        &[],
        status_shows_age_and_flags_old_and_stale_entries,
    );
    suite.test("usage_errors", &[], usage_errors);
    suite.test(
        "every_lock_code_is_documented",
        &[],
        every_lock_code_is_documented,
    );
    suite.test(
        "installers_are_hashed_over_http_following_redirects",
        &[Peer::Curl],
        installers_are_hashed_over_http_following_redirects,
    );
    suite.test(
        "a_version_one_lock_asks_for_bake_lock_which_adds_the_installer_hash",
        &[Peer::Curl, Peer::Moto],
        a_version_one_lock_asks_for_bake_lock_which_adds_the_installer_hash,
    );
    suite.test(
        "a_version_two_lock_is_upgraded_without_moving_anything",
        &[Peer::Moto],
        a_version_two_lock_is_upgraded_without_moving_anything,
    );
    suite.test(
        "a_parameter_bump_is_described_in_release_terms",
        &[Peer::Moto, Peer::Curl],
        a_parameter_bump_is_described_in_release_terms,
    );
    suite.test(
        "an_ami_that_is_not_al2023_is_refused_at_base",
        &[Peer::Moto, Peer::Curl],
        an_ami_that_is_not_al2023_is_refused_at_base,
    );
    suite.test(
        "deprecation_and_age_warnings_with_a_fixed_clock",
        &[Peer::Moto],
        deprecation_and_age_warnings_with_a_fixed_clock,
    );
    suite.test("max_age_must_be_days", &[], max_age_must_be_days);
    suite.test(
        "a_hand_edited_release_never_reaches_the_script",
        &[],
        a_hand_edited_release_never_reaches_the_script,
    );
    suite.run()
}

const NOW: &str = "2026-11-27T08:00:00Z";
const PARAM: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64";
const NIXPKGS_1: &str = "8f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
const NIXPKGS_2: &str = "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b";
const SYSTEM_MANAGER: &str = "48d47346e0c6ad05b6c869ea92649c47723d1cfc";
/// A revision for hand-written locks; no checkout has it.
const OLD_REV: &str = "5f0c6e0d2a8b4c1e9f3a7d6b2c8e4f1a0b9d3c7e";
/// What the fixtures' installer mirror serves as the x86_64 installer binary (`bake lock` hashes it).
const FAKE_INSTALLER: &str = "#!/bin/sh\necho 'not really nix-installer x86_64-linux'\n";

fn fake_installer_sha256() -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(FAKE_INSTALLER.as_bytes()))
}

/// A temporary directory holding a spec and (optionally) a git flake checkout in `infra/`.
struct Fixture {
    dir: tempfile::TempDir,
}

const FLAKE_NIX: &str = r#"{
  description = "bake lock test flake";
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.system-manager.url = "github:numtide/system-manager";
  inputs.system-manager.inputs.nixpkgs.follows = "nixpkgs";
  outputs = { self, nixpkgs, system-manager }: { };
}
"#;

/// A hand-written `flake.lock` (v7) with github inputs; `system-manager` follows the root's `nixpkgs`. Nix never
/// fetches them for `flake metadata`, so the hashes need only be well-formed.
fn flake_lock(nixpkgs: &str) -> String {
    format!(
        r#"{{
  "nodes": {{
    "nixpkgs": {{
      "locked": {{"lastModified": 1795000000, "narHash": "sha256-Z1y2X3w4V5u6T7s8R9q0P1o2N3m4L5k6J7i8H9g0F1e=", "owner": "NixOS", "repo": "nixpkgs", "rev": "{nixpkgs}", "type": "github"}},
      "original": {{"owner": "NixOS", "ref": "nixos-unstable", "repo": "nixpkgs", "type": "github"}}
    }},
    "root": {{"inputs": {{"nixpkgs": "nixpkgs", "system-manager": "system-manager"}}}},
    "system-manager": {{
      "inputs": {{"nixpkgs": ["nixpkgs"]}},
      "locked": {{"lastModified": 1784505600, "narHash": "sha256-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v=", "owner": "numtide", "repo": "system-manager", "rev": "{SYSTEM_MANAGER}", "type": "github"}},
      "original": {{"owner": "numtide", "repo": "system-manager", "type": "github"}}
    }}
  }},
  "root": "root",
  "version": 7
}}
"#
    )
}

fn spec(param: &str, checkout: Option<&str>, extra: &str) -> String {
    let checkout = checkout.map_or(String::new(), |c| format!(" checkout=\"{c}\""));
    format!(
        r#"stack "web" region="us-east-1"

image "web" {{
    base ssm="{param}"
    nix installer="determinate" version="3.1.1"
    flake "git+https://github.com/acme/infra.git" ref="main" output="systemConfigs.web"{checkout}
    build "m7i.large"
}}
{extra}
fleet "web" image="web" instance-type="m7i.large" {{
    subnets "subnet-0a1b2c3d4e5f60718"
    size min=1 max=2
    rollout "rolling" max-batch=1 min-in-service=0
}}
"#
    )
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        // The release host is out of reach in tests: `bake lock` reads the installer from a local mirror.
        f.write("mirror/nix-installer-x86_64-linux", FAKE_INSTALLER);
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// `infra/`: a git repository with the flake, committed at a fixed date by a fixed identity.
    fn flake(&self, nixpkgs: &str) {
        let infra = self.path("infra");
        std::fs::create_dir_all(&infra).unwrap();
        git(&infra, &["init", "-q"], "2026-11-20T10:00:00Z");
        self.commit(nixpkgs, "2026-11-20T10:00:00Z");
    }

    fn commit(&self, nixpkgs: &str, date: &str) {
        self.write("infra/flake.nix", FLAKE_NIX);
        self.write("infra/flake.lock", &flake_lock(nixpkgs));
        let infra = self.path("infra");
        git(&infra, &["add", "-A"], date);
        git(&infra, &["commit", "-q", "-m", "update"], date);
    }

    fn head(&self) -> String {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(self.path("infra"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The real binary in the fixture directory, with a fixed clock and no AWS settings from the caller.
    fn bake(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bake"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("BAKE_NOW", NOW)
            .env("NO_COLOR", "1")
            .env(
                "BAKE_NIX_INSTALLER_MIRROR",
                format!("file://{}", self.path("mirror").display()),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", self.path("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path("no-aws-credentials"),
            )
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION");
        cmd
    }

    /// `bake` pointed at moto with moto's fake credentials.
    fn bake_moto(&self, url: &str, args: &[&str]) -> Command {
        let mut cmd = self.bake(args);
        cmd.env("AWS_ENDPOINT_URL", url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        cmd
    }

    /// A scenario's starting point: a fresh directory whose `web.kdl` holds `spec`.
    fn with_spec(spec: &str) -> Fixture {
        let f = Fixture::new();
        f.write("web.kdl", spec);
        f
    }

    /// Adds the flake checkout `infra/` (nixpkgs at `NIXPKGS_1`, committed).
    fn with_flake(self) -> Fixture {
        self.flake(NIXPKGS_1);
        self
    }

    /// Adds `web.lock.json`.
    fn with_lock(self, lock: &str) -> Fixture {
        self.write("web.lock.json", lock);
        self
    }

    /// Runs `bake ARGS` offline (no AWS settings from the caller).
    fn run(&self, args: &[&str]) -> Ran {
        self.ran(&mut self.bake(args))
    }

    /// Runs `bake ARGS` against moto.
    fn run_moto(&self, url: &str, args: &[&str]) -> Ran {
        self.ran(&mut self.bake_moto(url, args))
    }

    /// Runs a command made by [`Fixture::bake`], with the fixture's path hidden in its output.
    fn ran(&self, cmd: &mut Command) -> Ran {
        let out = cmd.output().expect("bake runs");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: self.clean(&out.stdout),
            stderr: self.clean(&out.stderr),
        }
    }

    /// Replaces the fixture's path in output, so snapshots are the same on every machine.
    fn clean(&self, text: &[u8]) -> String {
        let text = String::from_utf8_lossy(text);
        let dir = self.dir.path().to_string_lossy();
        let canonical = std::fs::canonicalize(self.dir.path())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        text.replace(&canonical, "[TMP]").replace(&*dir, "[TMP]")
    }
}

/// What a `bake` run printed and how it exited, with `[TMP]` for the fixture's directory.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Asserts the exit code (showing stderr when it differs) and returns stderr.
    fn exits(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{}", self.stderr);
        &self.stderr
    }
}

/// The lock an earlier `bake lock` wrote for `spec(PARAM, …)`: resolved now, at `OLD_REV`.
fn current_lock() -> String {
    hand_lock(NOW, OLD_REV, "")
}

/// A lock for `spec(PARAM, ...)` as an earlier `bake lock` would have written it, with a revision of our choosing;
/// its base AMI is an older AL2023 release (2023.9.20251014) than the one moto's parameter names now.
fn hand_lock(resolved_at: &str, rev: &str, extra_images: &str) -> String {
    let sha256 = fake_installer_sha256();
    format!(
        r#"{{
  "version": 3,
  "images": {{
    {extra_images}"web": {{
      "base": {{
        "parameter": "{PARAM}",
        "region": "us-east-1",
        "ami": "ami-00000000000000001",
        "parameter-version": 120,
        "parameter-modified": "2026-06-01T12:00:00Z",
        "ami-name": "al2023-ami-2023.9.20251014.0-kernel-6.12-x86_64",
        "release": "2023.9.20251014",
        "kernel": "6.12",
        "architecture": "x86_64",
        "ami-owner": "137112412989",
        "ami-created": "2025-10-14T22:10:05Z",
        "resolved-at": "{resolved_at}"
      }},
      "flake": {{
        "url": "git+https://github.com/acme/infra.git",
        "ref": "main",
        "rev": "{rev}",
        "nar-hash": "sha256-q3Kx1mZ2s9Qm4a8b0Yc5d6E7f8G9h0I1j2K3l4M5n6o=",
        "last-modified": 1795000000,
        "resolved-at": "{resolved_at}",
        "inputs": {{
          "nixpkgs": {{
            "url": "github:NixOS/nixpkgs/{NIXPKGS_1}",
            "rev": "{NIXPKGS_1}",
            "last-modified": 1795000000
          }},
          "system-manager": {{
            "url": "github:numtide/system-manager/{SYSTEM_MANAGER}",
            "rev": "{SYSTEM_MANAGER}"
          }}
        }}
      }},
      "installer": {{
        "kind": "determinate",
        "version": "3.1.1",
        "url": "https://install.determinate.systems/nix/tag/v3.1.1/nix-installer-x86_64-linux",
        "sha256": "{sha256}"
      }}
    }}
  }}
}}
"#
    )
}

const OLD_ENTRY: &str = r#""old": {
      "base": {"parameter": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64", "region": "us-east-1",
               "ami": "ami-0123456789abcdef0", "parameter-version": 1, "parameter-modified": "2026-01-01T00:00:00Z",
               "ami-name": "al2023-ami-2023.9.20251014.0-kernel-6.1-x86_64", "release": "2023.9.20251014", "kernel": "6.1",
               "architecture": "x86_64", "resolved-at": "2026-01-01T00:00:00Z"},
      "flake": {"url": "git+https://github.com/acme/old.git", "rev": "5f0c6e0d2a8b4c1e9f3a7d6b2c8e4f1a0b9d3c7e", "nar-hash": "sha256-x", "last-modified": 1, "resolved-at": "2026-01-01T00:00:00Z", "inputs": {}},
      "installer": {"kind": "determinate", "version": "3.1.1", "url": "https://install.determinate.systems/nix/tag/v3.1.1"}
    },
    "#;

// ---- with moto and nix ---------------------------------------------------------------------------------------------

fn lock_resolves_parameter_and_flake_then_compile_uses_them() {
    let url = moto_url();
    let f = Fixture::with_spec(&spec(PARAM, Some("infra"), "")).with_flake();
    let out = f.run_moto(&url, &["lock", "web.kdl", "--timeout", "60"]);
    insta::assert_snapshot!("lock_first_run", out.exits(0));
    let lock = f.read("web.lock.json");
    assert!(
        lock.contains(&format!("\"rev\": \"{}\"", f.head())),
        "{lock}"
    );
    // moto's CreationDate is the time its EC2 backend loaded.
    insta::with_settings!({filters => vec![(r#""ami-created": "[^"]+""#, r#""ami-created": "[MOTO]""#)]}, {
        insta::assert_snapshot!("lock_first_run_file", lock);
    });
    let json: serde_json::Value = serde_json::from_str(&lock).unwrap();
    let base = &json["images"]["web"]["base"];
    assert_eq!(json["version"], 3);
    assert_eq!(base["ami-name"], MOTO_AMI_NAME);
    assert_eq!(base["release"], MOTO_RELEASE);
    assert_eq!(
        (&base["kernel"], &base["architecture"]),
        (&"6.12".into(), &"x86_64".into())
    );

    // Nothing to do: the file is left alone.
    let out = f.run_moto(&url, &["lock", "web.kdl"]);
    assert_eq!(out.exits(0), "web.lock.json: up to date\n");
    f.run(&["lock", "web.kdl", "--check"]).exits(0);

    // compile --locked builds exactly what the lock pins.
    f.run(&["compile", "web.kdl", "--locked", "-o", "out"])
        .exits(0);
    let template = f.read("out/template.json");
    assert!(template.contains("ami-0ac48d91c7d16772c"), "{template}");
    let lock: serde_json::Value = serde_json::from_str(&f.read("web.lock.json")).unwrap();
    let nar_hash = lock["images"]["web"]["flake"]["nar-hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let encoded = nar_hash
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let flake_ref = format!(
        "git+https://github.com/acme/infra.git?ref=main&rev={}&narHash={encoded}#systemConfigs.web",
        f.head()
    );
    assert!(
        f.read("out/web.bootstrap.sh").contains(&flake_ref),
        "{flake_ref}"
    );
    // Real nix takes the locked reference with its percent-encoded narHash (here for the local clone). Debian's
    // Nix 2.8 does not check a top-level flake's narHash; the Nix the build instance runs (2.27 and later) refuses
    // a tree that does not match ("NAR hash mismatch in input", libexpr's mountInput), which this cannot show.
    let local = format!(
        "git+file://{}?ref=main&rev={}&narHash={encoded}",
        f.path("infra").display(),
        f.head()
    );
    let out = Command::new("nix")
        .args(bake::lock::live::NIX_METADATA_ARGS)
        .arg(&local)
        .env("HOME", f.path("home"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{local}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["locked"]["narHash"], nar_hash.as_str());
    assert!(
        f.read("out/web.bootstrap.sh")
            .contains(&format!("github:numtide/system-manager/{SYSTEM_MANAGER}"))
    );
}

fn update_prints_what_moved_and_touches_only_what_was_asked() {
    let url = moto_url();
    // An older lock: another AMI and flake revision, resolved weeks ago.
    let f = Fixture::with_spec(&spec(PARAM, Some("infra"), ""))
        .with_flake()
        .with_lock(&hand_lock("2026-10-01T00:00:00Z", OLD_REV, OLD_ENTRY));
    f.commit(NIXPKGS_2, "2026-11-25T10:00:00Z");

    // `--update base` re-resolves only the AMI; the flake entry stays as it was, the unused entry goes.
    let out = f.run_moto(&url, &["lock", "web.kdl", "--update", "base"]);
    insta::assert_snapshot!("update_base", out.exits(0));
    let lock = f.read("web.lock.json");
    assert!(
        lock.contains(OLD_REV) && !lock.contains("\"old\""),
        "{lock}"
    );

    // `--update flake` moves the revision and shows the inputs that moved.
    let out = f.run_moto(&url, &["lock", "web.kdl", "--update", "flake"]);
    let stderr = out.exits(0).replace(&f.head()[..12], "[HEAD]");
    insta::assert_snapshot!("update_flake", stderr);
    assert!(f.read("web.lock.json").contains(&f.head()));

    // `--update` with nothing new: everything re-checked, nothing moved.
    let out = f.run_moto(&url, &["lock", "web.kdl", "--update"]);
    let stderr = out.exits(0).replace(&f.head()[..12], "[HEAD]");
    insta::assert_snapshot!("update_all_unchanged", stderr);
}

fn failures_are_all_reported_and_the_lock_stays_byte_identical() {
    let url = moto_url();
    // A wrong parameter name and a dirty checkout: both reported at once, nothing written.
    let before = current_lock();
    let f = Fixture::with_spec(&spec(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-9.9-x86_64",
        Some("infra"),
        "",
    ))
    .with_flake()
    .with_lock(&before);
    f.write("infra/flake.nix", &format!("{FLAKE_NIX}# uncommitted\n"));
    let out = f.run_moto(&url, &["lock", "web.kdl", "--update"]);
    let stderr = out.exits(3);
    assert!(
        stderr.contains("bake::lock::parameter_not_found"),
        "{stderr}"
    );
    assert!(stderr.contains("bake::lock::dirty"), "{stderr}");
    insta::assert_snapshot!("failures_not_found_and_dirty", stderr);
    assert_eq!(f.read("web.lock.json"), before);
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bake-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn an_unreadable_lock_is_an_error_unless_updating() {
    let url = moto_url();
    let f = Fixture::with_spec(&spec(PARAM, Some("infra"), ""))
        .with_flake()
        .with_lock("{\"version\": 1, \"images\": {\n");
    let out = f.run_moto(&url, &["lock", "web.kdl"]);
    assert!(out.exits(1).contains("bake::lock::invalid"));
    f.run_moto(&url, &["lock", "web.kdl", "--update"]).exits(0);
    assert!(
        bake::lock::Lock::from_json(&f.read("web.lock.json")).is_ok(),
        "replaced by a valid lock"
    );
}

// ---- with moto only ------------------------------------------------------------------------------------------------

fn a_base_change_needs_only_ssm() {
    let url = moto_url();
    // No checkout at all: the flake entry is still valid, so nix is not asked.
    let f = Fixture::with_spec(&spec(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-minimal-kernel-6.12-x86_64",
        None,
        "",
    ))
    .with_lock(&current_lock());
    let out = f.run_moto(&url, &["lock", "web.kdl"]);
    insta::assert_snapshot!("base_parameter_changed", out.exits(0));
    let lock = bake::lock::Lock::from_json(&f.read("web.lock.json")).unwrap();
    let base = &lock.images["web"].base;
    assert!(
        base.parameter
            .ends_with("al2023-ami-minimal-kernel-6.12-x86_64")
    );
    assert!(base.ami.starts_with("ami-") && base.ami != "ami-00000000000000001");
    assert!(base.parameter_version > 0);
    assert!(
        bake::lock::time::parse_rfc3339(&base.parameter_modified).is_some(),
        "{}",
        base.parameter_modified
    );
    assert_eq!(base.resolved_at, NOW);
    assert_eq!(lock.images["web"].flake.rev, OLD_REV);
}

// ---- against a local listener that never answers -------------------------------------------------------------------

/// A spec whose base parameter differs from the lock's, so `bake lock` must ask SSM.
fn a_lookup_is_needed() -> Fixture {
    Fixture::with_spec(&spec(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64",
        None,
        "",
    ))
    .with_lock(&current_lock())
}

fn a_server_that_never_answers_times_out() {
    // A listener that accepts connections (in the kernel's backlog) but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = a_lookup_is_needed();
    let started = std::time::Instant::now();
    let out = f.run_moto(&url, &["lock", "web.kdl", "--timeout", "2"]);
    let stderr = out.exits(3);
    assert!(stderr.contains("timed out after 2s"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    drop(listener);
}

fn killing_bake_mid_lookup_leaves_the_old_lock() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let f = a_lookup_is_needed();
    let mut child = f
        .bake_moto(&url, &["lock", "web.kdl", "--timeout", "60"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        child.try_wait().unwrap().is_none(),
        "bake is waiting for SSM"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.read("web.lock.json"), current_lock());
    let names: Vec<String> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".bake-")), "{names:?}");
    drop(listener);
}

// ---- with nix only ---------------------------------------------------------------------------------------------

/// The spec with its checkout `infra/` and a current lock: what the nix-only scenarios start from.
fn a_locked_checkout() -> Fixture {
    Fixture::with_spec(&spec(PARAM, Some("infra"), ""))
        .with_flake()
        .with_lock(&current_lock())
}

fn a_dirty_checkout_is_refused() {
    let f = a_locked_checkout();
    f.write("infra/extra.nix", "{ }\n");
    git(
        &f.path("infra"),
        &["add", "extra.nix"],
        "2026-11-21T10:00:00Z",
    );
    let out = f.run(&["lock", "web.kdl", "--update", "flake"]);
    insta::assert_snapshot!("dirty_checkout", out.exits(3));
    assert_eq!(f.read("web.lock.json"), current_lock());
}

fn a_checkout_on_another_branch_warns() {
    let f = a_locked_checkout();
    git(
        &f.path("infra"),
        &["checkout", "-q", "-b", "feature"],
        "2026-11-20T10:00:00Z",
    );
    let out = f.run(&["lock", "web.kdl", "--update", "flake"]);
    let stderr = out.exits(0); // a warning
    assert!(stderr.contains("bake::lock::checkout_ref"), "{stderr}");
    assert!(stderr.contains("is on `feature`"), "{stderr}");
}

fn a_checkout_of_another_repository_warns() {
    let f = a_locked_checkout();
    let infra = f.path("infra");
    let date = "2026-11-20T10:00:00Z";
    // The same repository over ssh: no warning.
    git(
        &infra,
        &["remote", "add", "origin", "git@github.com:acme/infra.git"],
        date,
    );
    let out = f.run(&["lock", "web.kdl", "--update", "flake"]);
    let stderr = out.exits(0);
    assert!(!stderr.contains("checkout_remote"), "{stderr}");
    // A fork: the locked commit may not exist at the spec's URL.
    git(
        &infra,
        &[
            "remote",
            "set-url",
            "origin",
            "https://github.com/someone/fork.git",
        ],
        date,
    );
    let out = f.run(&["lock", "web.kdl", "--update", "flake"]);
    insta::assert_snapshot!("checkout_of_another_repository", out.exits(0));
}

// ---- no peers needed -------------------------------------------------------------------------------------------

fn missing_nix_says_how_to_install_it() {
    let f = Fixture::with_spec(&spec(PARAM, Some("infra"), "")).with_lock(&current_lock());
    std::fs::create_dir_all(f.path("infra")).unwrap();
    std::fs::create_dir_all(f.path("empty-bin")).unwrap();
    let out = f.ran(
        f.bake(&["lock", "web.kdl", "--update", "flake"])
            .env("PATH", f.path("empty-bin")),
    );
    insta::assert_snapshot!("nix_missing", out.exits(3));
    assert_eq!(f.read("web.lock.json"), current_lock());
}

fn a_missing_checkout_directory_is_reported() {
    let f = Fixture::with_spec(&spec(PARAM, Some("../nowhere"), ""));
    let out = f.run(&["lock", "web.kdl", "--update", "flake"]);
    let stderr = out.exits(3);
    assert!(stderr.contains("bake::lock::checkout"), "{stderr}");
}

fn a_flake_without_checkout_cannot_be_locked() {
    let f = Fixture::with_spec(&spec(PARAM, None, ""));
    let out = f.run(&["lock", "web.kdl"]);
    insta::assert_snapshot!("needs_checkout", out.exits(1));
    assert!(!f.path("web.lock.json").exists());
}

fn no_credentials_is_a_clear_error() {
    let f = Fixture::with_spec(&spec(PARAM, None, "")).with_lock(&current_lock());
    let out = f.ran(
        f.bake(&["lock", "web.kdl", "--update", "base"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    );
    let stderr = out.exits(3);
    assert!(stderr.contains("bake::lock::aws"), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
}

fn unused_entries_are_pruned_without_lookups() {
    let f =
        Fixture::with_spec(&spec(PARAM, None, "")).with_lock(&hand_lock(NOW, OLD_REV, OLD_ENTRY));
    let out = f.run(&["lock", "web.kdl", "--check"]);
    insta::assert_snapshot!("check_unused_entry", out.exits(1));
    let out = f.run(&["lock", "web.kdl"]);
    insta::assert_snapshot!("prune_unused_entry", out.exits(0));
    assert_eq!(f.read("web.lock.json"), current_lock());
}

fn check_reports_missing_and_stale_entries_without_writing() {
    // A second built image with no entry, and the first one's installer and parameter changed.
    let extra = r#"
image "api" {
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-arm64"
    nix installer="determinate" version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.api" checkout="infra"
}
"#;
    let text = spec(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64",
        Some("infra"),
        extra,
    )
    .replacen("version=\"3.1.1\"", "version=\"3.2.0\"", 1);
    let f = Fixture::with_spec(&text).with_lock(&current_lock());
    let out = f.run(&["lock", "web.kdl", "--check"]);
    insta::assert_snapshot!("check_missing_and_stale", out.exits(1));
    assert_eq!(f.read("web.lock.json"), current_lock());

    // A missing lock file fails the check too.
    std::fs::remove_file(f.path("web.lock.json")).unwrap();
    f.run(&["lock", "web.kdl", "--check"]).exits(1);
    assert!(!f.path("web.lock.json").exists());
}

fn status_shows_age_and_flags_old_and_stale_entries() {
    let extra = r#"
image "legacy" {
    base ami="ami-0123456789abcdef0"
}
image "api" {
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix installer="determinate" version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.api" checkout="infra"
}
"#;
    // The installer changed since the lock was written: STALE.
    let text =
        spec(PARAM, Some("infra"), extra).replacen("version=\"3.1.1\"", "version=\"3.2.0\"", 1);
    let f =
        Fixture::with_spec(&text).with_lock(&hand_lock("2026-10-01T12:00:00Z", OLD_REV, OLD_ENTRY));
    let out = f.run(&["lock", "web.kdl", "--status", "--max-age", "30"]);
    out.exits(0);
    insta::assert_snapshot!("status", out.stdout);
    let out = f.run(&["lock", "web.kdl", "--status", "--max-age", "90"]);
    assert!(
        !out.stdout.contains("OLD: more than 90 days"),
        "{}",
        out.stdout
    );
}

fn usage_errors() {
    let f = Fixture::with_spec(&spec(
        PARAM,
        Some("infra"),
        "image \"legacy\" {\n    base ami=\"ami-0123456789abcdef0\"\n}\n",
    ));
    for (args, needle) in [
        (
            &["lock", "web.kdl", "--update", "nope"][..],
            "no built image `nope`; use `base`, `flake` or one of: web",
        ),
        (
            &["lock", "web.kdl", "--update", "legacy"][..],
            "image `legacy` is pinned",
        ),
        (
            &["lock", "web.kdl", "--region", "eu-west-1"][..],
            "AMI ids are per region",
        ),
        (
            &["lock", "web.kdl", "--check", "--update"][..],
            "cannot be used with",
        ),
    ] {
        let out = f.run(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert!(!f.path("web.lock.json").exists());
}

fn every_lock_code_is_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/lock.md")).unwrap();
    for code in bake::diag::Code::ALL {
        let name = code.as_str();
        if name.starts_with("bake::lock::") {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/lock.md lacks {name}"
            );
        }
    }
}

// ---- the installer hash (no moto, no nix) --------------------------------------------------------------------------

/// A tiny HTTP server on 127.0.0.1: `/releases/<file>` redirects to `/files/<file>`, which serves
/// `FAKE_INSTALLER`; anything else is a 404. Answers `count` requests, then stops.
fn installer_server(count: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(count) {
            let mut stream = stream.unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            // Drain the headers.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let response = if let Some(file) = path.strip_prefix("/releases/") {
                format!(
                    "HTTP/1.1 302 Found\r\nLocation: /files/{file}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
            } else if path == "/files/nix-installer-x86_64-linux" {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{FAKE_INSTALLER}",
                    FAKE_INSTALLER.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            };
            stream.write_all(response.as_bytes()).unwrap();
            seen.push(path);
        }
        seen
    });
    (base, handle)
}

fn installers_are_hashed_over_http_following_redirects() {
    let (base, server) = installer_server(4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt
        .block_on(bake::lock::live::sha256_of(&format!(
            "{base}/releases/nix-installer-x86_64-linux"
        )))
        .unwrap();
    assert_eq!(got, fake_installer_sha256());
    let missing = rt
        .block_on(bake::lock::live::sha256_of(&format!(
            "{base}/releases/nix-installer-riscv64-linux"
        )))
        .unwrap_err();
    assert!(format!("{missing:?}").contains("404"), "{missing:?}");
    assert_eq!(
        server.join().unwrap(),
        [
            "/releases/nix-installer-x86_64-linux",
            "/files/nix-installer-x86_64-linux",
            "/releases/nix-installer-riscv64-linux",
            "/files/nix-installer-riscv64-linux"
        ]
    );
}

fn a_version_one_lock_asks_for_bake_lock_which_adds_the_installer_hash() {
    let f = Fixture::new();
    f.write("web.kdl", &spec(PARAM, Some("infra"), ""));
    // A lock as bake wrote it before installer hashes: format 1, the script URL, no sha256.
    let v1 = pre_v3_lock(1, MOTO_AMI)
        .replace("/v3.1.1/nix-installer-x86_64-linux\",", "/v3.1.1\"")
        .replace(
            &format!("        \"sha256\": \"{}\"\n", fake_installer_sha256()),
            "",
        );
    assert!(!v1.contains("sha256\""), "{v1}");
    f.write("web.lock.json", &v1);

    let stderr = f
        .run(&["compile", "web.kdl", "-o", "out"])
        .exits(1)
        .to_owned();
    assert!(
        stderr.contains("no SHA-256 of the Nix installer"),
        "{stderr}"
    );
    assert!(stderr.contains("run `bake lock web.kdl`"), "{stderr}");
    assert!(!f.path("out").exists(), "nothing written");
    f.run(&["lock", "web.kdl", "--check"]).exits(1);

    // The installer hash is added and the base AMI described (EC2 only: SSM and nix are not asked).
    let (base, server) = installer_server(2);
    f.ran(
        f.bake_moto(&moto_url(), &["lock", "web.kdl"])
            .env("BAKE_NIX_INSTALLER_MIRROR", format!("{base}/releases")),
    )
    .exits(0);
    server.join().unwrap();
    let lock: serde_json::Value = serde_json::from_str(&f.read("web.lock.json")).unwrap();
    let old: serde_json::Value = serde_json::from_str(&v1).unwrap();
    assert_eq!(lock["version"], 3);
    let (new_base, old_base) = (
        &lock["images"]["web"]["base"],
        &old["images"]["web"]["base"],
    );
    for key in [
        "parameter",
        "ami",
        "parameter-version",
        "parameter-modified",
        "resolved-at",
    ] {
        assert_eq!(new_base[key], old_base[key], "{key}");
    }
    assert_eq!(new_base["release"], MOTO_RELEASE);
    assert_eq!(
        lock["images"]["web"]["flake"],
        old["images"]["web"]["flake"]
    );
    let installer = &lock["images"]["web"]["installer"];
    assert_eq!(
        installer["url"],
        "https://install.determinate.systems/nix/tag/v3.1.1/nix-installer-x86_64-linux"
    );
    assert_eq!(installer["sha256"], fake_installer_sha256());
    f.run(&["compile", "web.kdl", "-o", "out"]).exits(0);
    let script = f.read("out/web.bootstrap.sh");
    assert!(script.contains(&format!("NIX_INSTALLER_SHA256={}", fake_installer_sha256())));
}

// ---- what the base AMI is (lock format 3) --------------------------------------------------------------------------

/// moto's us-east-1 value of `al2023-ami-kernel-6.12-x86_64` and the release its name carries.
const MOTO_AMI: &str = "ami-0ac48d91c7d16772c";
const MOTO_AMI_NAME: &str = "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64";
const MOTO_RELEASE: &str = "2023.12.20260930";

/// `hand_lock` as bake wrote it before lock format 3 (no description of the base AMI), for `ami`.
fn pre_v3_lock(version: u32, ami: &str) -> String {
    const DESCRIBED: [&str; 6] = [
        "\"ami-name\"",
        "\"release\"",
        "\"kernel\"",
        "\"architecture\"",
        "\"ami-owner\"",
        "\"ami-created\"",
    ];
    hand_lock(NOW, OLD_REV, "")
        .replace("\"version\": 3", &format!("\"version\": {version}"))
        .replace("ami-00000000000000001", ami)
        .lines()
        .filter(|l| !DESCRIBED.iter().any(|k| l.trim_start().starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A moto call through curl: moto routes by the credential scope and does not check the signature.
fn moto_call(url: &str, service: &str, target: Option<&str>, body: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "30", "-X", "POST"]).args([
        "-H",
        &format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
        ),
    ]);
    if let Some(t) = target {
        cmd.args(["-H", &format!("X-Amz-Target: {t}")])
            .args(["-H", "Content-Type: application/x-amz-json-1.1"]);
    }
    let out = cmd
        .args(["--data", body, &format!("{url}/")])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Registers an image in moto (which keeps only its name; the owner is moto's account) and returns its id.
fn register_image(url: &str, name: &str) -> String {
    let body = moto_call(
        url,
        "ec2",
        None,
        &format!("Action=RegisterImage&Version=2016-11-15&Name={name}&Architecture=x86_64"),
    );
    let start = body.find("<imageId>").expect("RegisterImage answered") + "<imageId>".len();
    body[start..start + body[start..].find('<').unwrap()].to_owned()
}

/// Creates or overwrites an SSM parameter naming an AMI.
fn put_parameter(url: &str, name: &str, ami: &str) {
    let body = moto_call(
        url,
        "ssm",
        Some("AmazonSSM.PutParameter"),
        &format!(r#"{{"Name":"{name}","Value":"{ami}","Type":"String","Overwrite":true}}"#),
    );
    assert!(body.contains("\"Version\""), "{body}");
}

/// A parameter name no other test run uses (tests never reset moto).
fn unique_parameter(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // Fixed width, so snapshots wrap the same way on every run.
    format!(
        "/bake-test/{test}-{:07}-{nanos:09}/al2023-x86_64",
        std::process::id()
    )
}

/// What Amazon's DescribeImages gives for its AMIs and moto's RegisterImage cannot keep.
const AMAZON_OWNED: &[(&str, &str)] = &[
    ("imageOwnerId", "137112412989"),
    ("imageOwnerAlias", "amazon"),
    ("architecture", "x86_64"),
];

/// A thin HTTP proxy on 127.0.0.1 in front of moto. moto has no deprecation times (EnableImageDeprecation is an
/// HTTP 500), a creation date that is the time its backend loaded, and RegisterImage keeps only the name: for the
/// listed AMI ids, the proxy sets these elements in DescribeImages answers. Everything else passes unchanged.
fn describe_images_proxy(moto: &str, images: Vec<(String, Vec<(&'static str, String)>)>) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = moto
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let images = std::sync::Arc::new(images);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut client) = stream else { continue };
            let (upstream, images) = (upstream.clone(), images.clone());
            std::thread::spawn(move || {
                let timeout = Some(std::time::Duration::from_secs(30));
                client.set_read_timeout(timeout).ok();
                let Some((head, body)) = read_request(&mut client) else {
                    return;
                };
                let Some(answer) = forward(&upstream, &head, &body) else {
                    return;
                };
                let answer = String::from_utf8_lossy(&answer).into_owned();
                let (head, mut text) = answer
                    .split_once("\r\n\r\n")
                    .map(|(h, b)| (h.to_owned(), b.to_owned()))
                    .unwrap_or_default();
                if String::from_utf8_lossy(&body).contains("Action=DescribeImages") {
                    for (ami, set) in images.iter() {
                        let marker = format!("<imageId>{ami}</imageId>");
                        if !text.contains(&marker) {
                            continue;
                        }
                        for (tag, value) in set {
                            let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
                            match (text.find(&open), text.find(&close)) {
                                (Some(a), Some(b)) => {
                                    text.replace_range(a + open.len()..b, value);
                                }
                                _ => {
                                    text = text
                                        .replace(&marker, &format!("{marker}{open}{value}{close}"))
                                }
                            }
                        }
                    }
                }
                let head: Vec<&str> = head
                    .lines()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        !l.starts_with("content-length:") && !l.starts_with("connection:")
                    })
                    .collect();
                let response = format!(
                    "{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    head.join("\r\n"),
                    text.len()
                );
                client.write_all(response.as_bytes()).ok();
            });
        }
    });
    url
}

/// Text with every run of whitespace as one space: the renderer wraps long messages.
fn flat(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

fn lock_json(f: &Fixture) -> serde_json::Value {
    serde_json::from_str(&f.read("web.lock.json")).unwrap()
}

fn a_version_two_lock_is_upgraded_without_moving_anything() {
    let url = moto_url();
    let v2 = pre_v3_lock(2, MOTO_AMI);
    let f = Fixture::with_spec(&spec(PARAM, None, "")).with_lock(&v2);

    // compile says what to run, and writes nothing.
    let stderr = flat(f.run(&["compile", "web.kdl", "-o", "out"]).exits(1));
    assert!(stderr.contains("bake::lock::missing"), "{stderr}");
    assert!(
        stderr.contains("the lock is format version 2, which does not record what a base AMI is; run `bake lock web.kdl` to upgrade it to version 3"),
        "{stderr}"
    );
    assert!(!f.path("out").exists(), "nothing written");
    f.run(&["lock", "web.kdl", "--check"]).exits(1);

    // `bake lock` asks EC2 about the locked AMI only: the parameter's version stays the one the lock had (120;
    // moto's parameter is at another version), the flake and installer stay byte for byte.
    let out = f.run_moto(&url, &["lock", "web.kdl"]);
    insta::assert_snapshot!("upgrade_version_two", out.exits(0));
    let (old, new): (serde_json::Value, _) = (serde_json::from_str(&v2).unwrap(), lock_json(&f));
    assert_eq!(new["version"], 3);
    let base = &new["images"]["web"]["base"];
    assert_eq!(base["ami"], MOTO_AMI);
    assert_eq!(base["parameter-version"], 120);
    assert_eq!(
        base["resolved-at"],
        old["images"]["web"]["base"]["resolved-at"]
    );
    assert_eq!(base["ami-name"], MOTO_AMI_NAME);
    assert_eq!(base["release"], MOTO_RELEASE);
    assert_eq!(base["kernel"], "6.12");
    assert_eq!(base["architecture"], "x86_64");
    assert_eq!(base["ami-owner"], "137112412989");
    assert!(
        bake::lock::time::parse_rfc3339(base["ami-created"].as_str().unwrap()).is_some(),
        "{base}"
    );
    assert!(
        base.get("ami-deprecation").is_none(),
        "moto sets none: {base}"
    );
    assert_eq!(new["images"]["web"]["flake"], old["images"]["web"]["flake"]);
    assert_eq!(
        new["images"]["web"]["installer"],
        old["images"]["web"]["installer"]
    );

    // Now it compiles, and every dnf call installs from the locked release's repository.
    f.run(&["compile", "web.kdl", "-o", "out"]).exits(0);
    let script = f.read("out/web.bootstrap.sh");
    let dnf: Vec<&str> = script
        .lines()
        .filter(|l| l.trim_start().starts_with("dnf "))
        .collect();
    assert!(!dnf.is_empty(), "{script}");
    for line in dnf {
        assert!(
            line.starts_with(&format!("dnf --releasever={MOTO_RELEASE} ")),
            "{line}"
        );
    }
    // A second run has nothing to do.
    assert_eq!(
        f.run_moto(&url, &["lock", "web.kdl"]).exits(0),
        "web.lock.json: up to date\n"
    );
}

fn a_parameter_bump_is_described_in_release_terms() {
    let moto = moto_url();
    let param = unique_parameter("bump");
    put_parameter(&moto, &param, MOTO_AMI);
    // A release 27 days newer than moto's, registered in moto; the proxy answers for it as Amazon would.
    let newer = register_image(&moto, "al2023-ami-2023.12.20261027.0-kernel-6.12-x86_64");
    let set = AMAZON_OWNED
        .iter()
        .map(|&(t, v)| (t, v.to_owned()))
        .collect();
    let url = describe_images_proxy(&moto, vec![(newer.clone(), set)]);

    let text = spec(&param, None, "").replace(
        &format!("base ssm=\"{param}\""),
        &format!("base ssm=\"{param}\" arch=\"x86_64\""),
    );
    let f = Fixture::with_spec(&text).with_lock(&pre_v3_lock(2, MOTO_AMI).replace(PARAM, &param));
    f.run_moto(&url, &["lock", "web.kdl"]).exits(0);
    assert_eq!(
        lock_json(&f)["images"]["web"]["base"]["release"],
        MOTO_RELEASE
    );
    f.run(&["compile", "web.kdl", "-o", "before"]).exits(0);

    // AWS publishes a new AMI: the parameter moves.
    put_parameter(&moto, &param, &newer);
    let out = f.run_moto(&url, &["lock", "web.kdl", "--update", "base"]);
    let stderr = out
        .exits(0)
        .replace(&param, "[PARAM]")
        .replace(&newer, "[NEWER]");
    assert!(
        stderr.contains(&format!(
            "AL2023 {MOTO_RELEASE} → 2023.12.20261027 (kernel 6.12, x86_64), 27 days newer"
        )),
        "{stderr}"
    );
    // moto dates the parameter's new version today.
    insta::with_settings!({filters => vec![(r"version 2 \(\d{4}-\d\d-\d\d\)", "version 2 ([TODAY])")]}, {
        insta::assert_snapshot!("update_base_release_change", stderr);
    });
    let base = &lock_json(&f)["images"]["web"]["base"];
    assert_eq!(base["ami"], newer.as_str());
    assert_eq!(base["release"], "2023.12.20261027");
    assert_eq!(base["ami-owner"], "137112412989");
    f.run(&["compile", "web.kdl", "-o", "after"]).exits(0);

    // `bake plan` explains the image's changes from the deployed and the new template's metadata.
    let template = |dir: &str| -> serde_json::Value {
        serde_json::from_str(&f.read(&format!("{dir}/template.json"))).unwrap()
    };
    let (plan, _) = bake::check_source(&common::read(&f.path("web.kdl")));
    let change = bake::deploy::cfn::ResourceChange {
        action: "Modify".into(),
        logical_id: "ImageWeb".into(),
        resource_type: "AWS::ImageBuilder::Image".into(),
        replacement: Some("True".into()),
        properties: vec!["ImageRecipeArn".into()],
    };
    let planned = bake::deploy::changeset::annotate(
        &plan.unwrap(),
        Some(&template("before")),
        Some(&template("after")),
        &[change],
    );
    assert!(
        planned[0].reasons.contains(&format!(
            "base AMI {MOTO_AMI} → {newer}: AL2023 {MOTO_RELEASE} → 2023.12.20261027 (kernel 6.12, x86_64), 27 days newer"
        )),
        "{:?}",
        planned[0].reasons
    );
}

fn an_ami_that_is_not_al2023_is_refused_at_base() {
    let moto = moto_url();
    // moto's own AMIs: Amazon Linux 1 (Amazon-owned, not AL2023) and AL2023 for arm64; and an image moto's
    // account registered under an AL2023 name.
    let copy = register_image(&moto, "al2023-ami-2023.12.20260930.0-kernel-6.12-x86_64");
    for (ami, needle) in [
        (
            "ami-0d33050d9d05e2b67",
            "its name `amzn-ami-hvm-2018.03.0.20231218.0-x86_64-ebs` is not an AL2023 AMI name",
        ),
        (
            "ami-08a311a6aaa3cd94a",
            "it is an arm64 AMI (its name says arm64), but the image is built for x86_64",
        ),
        (
            copy.as_str(),
            "it is owned by account 123456789012, not by Amazon",
        ),
    ] {
        let param = unique_parameter("not-al2023");
        put_parameter(&moto, &param, ami);
        let text = spec(&param, None, "").replace(
            &format!("base ssm=\"{param}\""),
            &format!("base ssm=\"{param}\" arch=\"x86_64\""),
        );
        let f =
            Fixture::with_spec(&text).with_lock(&pre_v3_lock(2, MOTO_AMI).replace(PARAM, &param));
        let before = f.read("web.lock.json");
        let out = f.run_moto(&moto, &["lock", "web.kdl", "--update", "base"]);
        let stderr = flat(out.exits(1));
        assert!(stderr.contains("bake::lock::not_al2023"), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(stderr.contains("this parameter names it"), "{stderr}");
        assert!(stderr.contains("web.lock.json: not written"), "{stderr}");
        assert_eq!(f.read("web.lock.json"), before);
        if ami == copy {
            insta::assert_snapshot!(
                "not_al2023_owner",
                out.stderr
                    .replace(&param, "[PARAM]")
                    .replace(&copy, "[COPY]")
            );
        }
    }
}

fn deprecation_and_age_warnings_with_a_fixed_clock() {
    let moto = moto_url();
    // moto gives no DeprecationTime and its own load time as CreationDate: the proxy sets AWS-like ones.
    let set = vec![
        ("creationDate", "2026-09-30T23:28:27.000Z".to_owned()),
        ("deprecationTime", "2026-11-20T00:00:00.000Z".to_owned()),
    ];
    let url = describe_images_proxy(&moto, vec![(MOTO_AMI.to_owned(), set)]);
    let f = Fixture::with_spec(&spec(PARAM, None, "")).with_lock(&pre_v3_lock(2, MOTO_AMI));
    // The lock is upgraded at NOW (2026-11-27), a week after the AMI's deprecation.
    let out = f.run_moto(&url, &["lock", "web.kdl"]);
    let stderr = flat(out.exits(0));
    assert!(stderr.contains("bake::lock::ami_deprecated"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the base AMI {MOTO_AMI} was deprecated on 2026-11-20"
        )),
        "{stderr}"
    );
    let base = &lock_json(&f)["images"]["web"]["base"];
    assert_eq!(base["ami-deprecation"], "2026-11-20T00:00:00Z");
    assert_eq!(base["ami-created"], "2026-09-30T23:28:27Z");

    // On 2026-11-01 the AMI is 31 days old and not deprecated yet: no warning.
    let status = |now: &str, f: &Fixture| {
        f.ran(
            f.bake(&["lock", "web.kdl", "--status"])
                .env("BAKE_NOW", now),
        )
    };
    let early = status("2026-11-01T00:00:00Z", &f);
    early.exits(0);
    assert!(early.stderr.is_empty(), "{}", early.stderr);
    assert!(
        early
            .stdout
            .contains("(31 days old), deprecated from 2026-11-20"),
        "{}",
        early.stdout
    );
    // On 2027-01-15 it is deprecated and 106 days old, over the default max-age of 90 days.
    let late = status("2027-01-15T00:00:00Z", &f);
    late.exits(0);
    insta::assert_snapshot!(
        "status_deprecated_and_old",
        format!("{}{}", late.stdout, late.stderr)
    );
    assert!(
        late.stderr.contains("bake::lock::ami_age"),
        "{}",
        late.stderr
    );
    assert!(
        late.stderr.contains("bake::lock::ami_deprecated"),
        "{}",
        late.stderr
    );
    // The spec may allow more.
    f.write(
        "web.kdl",
        &spec(PARAM, None, "").replace(
            &format!("base ssm=\"{PARAM}\""),
            &format!("base ssm=\"{PARAM}\" max-age=\"120d\""),
        ),
    );
    let relaxed = status("2027-01-15T00:00:00Z", &f);
    relaxed.exits(0);
    assert!(!relaxed.stderr.contains("ami_age"), "{}", relaxed.stderr);
    assert!(
        !relaxed.stdout.contains("OLD: more than max-age"),
        "{}",
        relaxed.stdout
    );
}

fn max_age_must_be_days() {
    for (value, needle) in [
        ("90", "a number of days such as `90d`"),
        ("0d", "between 1 and 3650 days"),
        ("PT90H", "a number of days such as `90d`"),
    ] {
        let f = Fixture::with_spec(&spec(PARAM, None, "").replace(
            &format!("base ssm=\"{PARAM}\""),
            &format!("base ssm=\"{PARAM}\" max-age=\"{value}\""),
        ));
        let out = f.run(&["check", "web.kdl"]);
        let stderr = out.exits(1);
        assert!(stderr.contains("max-age"), "{value}: {stderr}");
        assert!(stderr.contains(needle), "{value}: {stderr}");
    }
}

fn a_hand_edited_release_never_reaches_the_script() {
    for (field, value, needle) in [
        (
            "release",
            "2023.9.20251014 --nogpgcheck",
            "`images.web.base.release` is not an AL2023 release",
        ),
        (
            "kernel",
            "6.12;reboot",
            "`images.web.base.kernel` is not a kernel version",
        ),
        (
            "architecture",
            "riscv64",
            "`images.web.base.architecture` is not `x86_64` or `arm64`",
        ),
    ] {
        let original = match field {
            "release" => "2023.9.20251014",
            "kernel" => "6.12",
            _ => "x86_64",
        };
        let lock = current_lock().replace(
            &format!("\"{field}\": \"{original}\""),
            &format!("\"{field}\": \"{value}\""),
        );
        assert_ne!(lock, current_lock(), "{field}");
        let f = Fixture::with_spec(&spec(PARAM, None, "")).with_lock(&lock);
        let stderr = flat(f.run(&["compile", "web.kdl", "-o", "out"]).exits(1));
        assert!(stderr.contains("bake::lock::invalid"), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!f.path("out").exists());
    }
}
