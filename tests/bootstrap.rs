//! What the build instance and the fleet's instances run: the bootstrap script, the SSM document's script and the
//! readiness check, asserted against the pitfalls of DOMAIN.md (§0, §14) and, for readiness, run by real bash
//! against a stand-in `systemctl` that reports the unit states a broken instance has.

use std::path::Path;
use std::process::Command;

mod common;
use common::compile;
use common::peers::{Peer, Suite};

/// How the examples' bootstrap installs RPMs: from the locked base AMI's AL2023 release (specs/*.lock.json).
const DNF_INSTALL: &str = "dnf --releasever=2023.12.20260930 install --assumeyes --";

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "a_git_flake_installs_git_on_the_build_instance",
        &[],
        a_git_flake_installs_git_on_the_build_instance,
    );
    suite.test(
        "the_flake_and_the_installer_are_pinned_by_content",
        &[],
        the_flake_and_the_installer_are_pinned_by_content,
    );
    suite.test(
        "the_system_registry_pins_the_locked_nixpkgs_and_system_manager",
        &[],
        the_system_registry_pins_the_locked_nixpkgs_and_system_manager,
    );
    suite.test(
        "the_registry_pin_can_be_switched_off",
        &[],
        the_registry_pin_can_be_switched_off,
    );
    suite.test(
        "rerunning_converges_to_the_locked_system_manager",
        &[],
        rerunning_converges_to_the_locked_system_manager,
    );
    suite.test(
        "nix_builds_on_disk_not_in_the_tmpfs",
        &[],
        nix_builds_on_disk_not_in_the_tmpfs,
    );
    suite.test(
        "full_packages_replace_the_minimal_ones_in_their_own_transaction",
        &[],
        full_packages_replace_the_minimal_ones_in_their_own_transaction,
    );
    suite.test(
        "a_failed_service_keeps_the_instance_from_signalling_success",
        &[],
        a_failed_service_keeps_the_instance_from_signalling_success,
    );
    suite.test(
        "the_ready_command_must_pass_too",
        &[],
        the_ready_command_must_pass_too,
    );
    suite.test(
        "waiting_gives_up_at_the_deadline",
        &[],
        waiting_gives_up_at_the_deadline,
    );
    suite.test(
        "user_data_signals_with_the_shared_readiness_check",
        &[],
        user_data_signals_with_the_shared_readiness_check,
    );
    suite.test(
        "a_ready_instance_continues_its_launch_hook",
        &[],
        a_ready_instance_continues_its_launch_hook,
    );
    suite.test(
        "a_failed_hook_call_is_retried",
        &[],
        a_failed_hook_call_is_retried,
    );
    suite.test(
        "an_instance_with_a_failed_unit_abandons_its_launch_hook",
        &[],
        an_instance_with_a_failed_unit_abandons_its_launch_hook,
    );
    suite.test(
        "real_nix_writes_the_registry_pins_the_script_gives",
        &[Peer::Nix],
        real_nix_writes_the_registry_pins_the_script_gives,
    );
    suite.test(
        "a_github_flake_needs_git_only_for_inputs_its_lock_fetches_with_git",
        &[],
        a_github_flake_needs_git_only_for_inputs_its_lock_fetches_with_git,
    );
    suite.run()
}

fn example(name: &str) -> bake::emit::Artifacts {
    compile(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("specs")
            .join(name),
    )
}

/// The lines of the SSM document's script.
fn ssm_script(artifacts: &bake::emit::Artifacts, image: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(artifacts.get(&format!("{image}.ssm.json")).unwrap()).unwrap();
    let lines: Vec<&str> = doc["mainSteps"][0]["inputs"]["runCommand"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    lines.join("\n")
}

/// The value a script assigns to `NAME=` (shell-unquoted).
fn assigned(script: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    let line = script
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {name}= in\n{script}"));
    shlex::split(&line[prefix.len()..]).unwrap().remove(0)
}

fn position(script: &str, needle: &str) -> usize {
    script
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in\n{script}"))
}

fn a_git_flake_installs_git_on_the_build_instance() {
    // platform.kdl's worker lists no RPMs of its own, but its flake is `git+https`: Nix runs `git` to fetch it.
    let artifacts = example("platform.kdl");
    for script in [
        artifacts.get("worker.bootstrap.sh").unwrap().to_owned(),
        ssm_script(&artifacts, "worker"),
    ] {
        let install = script
            .lines()
            .find(|l| l.starts_with(DNF_INSTALL) && !l.contains("--allowerasing"))
            .expect("an RPM install line");
        let words = shlex::split(install).unwrap();
        assert!(words.iter().any(|w| w == "git"), "{install}");
        // Before anything runs Nix.
        assert!(position(&script, install) < position(&script, "bake: installing Nix"));
    }
}

fn the_flake_and_the_installer_are_pinned_by_content() {
    let artifacts = example("web.kdl");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/web.lock.json"))
            .unwrap(),
    )
    .unwrap();
    let entry = &lock["images"]["web"];
    let script = artifacts.get("web.bootstrap.sh").unwrap();

    // narHash= in the locked reference: Nix verifies the fetched tree against the lock.
    let flake = assigned(script, "FLAKE");
    let nar = entry["flake"]["nar-hash"].as_str().unwrap();
    let encoded = nar
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    assert!(flake.contains(&format!("&narHash={encoded}#")), "{flake}");
    assert!(flake.contains(&format!("rev={}", entry["flake"]["rev"].as_str().unwrap())));

    // The installer binary for the image's architecture, from a versioned URL, checked before it runs.
    let url = assigned(script, "NIX_INSTALLER_URL");
    assert_eq!(url, entry["installer"]["url"].as_str().unwrap());
    assert!(url.ends_with("/v3.1.1/nix-installer-x86_64-linux"), "{url}");
    assert_eq!(
        assigned(script, "NIX_INSTALLER_SHA256"),
        entry["installer"]["sha256"].as_str().unwrap()
    );
    assert!(
        !script.contains("| sh -") && !script.contains("| bash"),
        "no curl | sh"
    );
    let check = position(script, "sha256sum --check --strict");
    let run = position(script, "\"$BAKE_TMP/nix-installer\" install --no-confirm");
    assert!(check < run, "the hash is checked before the installer runs");
    // Determinate's installer reports diagnostics unless the endpoint is empty.
    assert!(script.contains("install --no-confirm --diagnostic-endpoint=\n"));
}

fn the_system_registry_pins_the_locked_nixpkgs_and_system_manager() {
    let artifacts = example("platform.kdl");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/platform.lock.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let script = artifacts.get("web.bootstrap.sh").unwrap();
    let inputs = &lock["images"]["web"]["flake"]["inputs"];
    let pins: Vec<Vec<String>> = script
        .lines()
        .filter(|l| l.starts_with("nix_cmd registry add "))
        .map(|l| shlex::split(l).unwrap())
        .collect();
    let want = |id: &str| {
        [
            "nix_cmd",
            "registry",
            "add",
            "--registry",
            "/etc/nix/registry.json",
            id,
            inputs[id]["url"].as_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    assert_eq!(pins, [want("nixpkgs"), want("system-manager")]);
    assert!(
        inputs["nixpkgs"]["url"]
            .as_str()
            .unwrap()
            .ends_with(inputs["nixpkgs"]["rev"].as_str().unwrap())
    );
    // After the CLI exists, before the flake is applied.
    assert!(position(script, "registry add") > position(script, "nix_cmd build"));
    assert!(
        position(script, "registry add") < position(script, "system-manager pre-populate --flake")
    );
}

fn the_registry_pin_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let spec = std::fs::read_to_string(root.join("web.kdl"))
        .unwrap()
        .replace("version=\"3.1.1\"", "version=\"3.1.1\" pin-registry=#false");
    std::fs::write(dir.path().join("web.kdl"), spec).unwrap();
    std::fs::copy(root.join("web.lock.json"), dir.path().join("web.lock.json")).unwrap();
    let artifacts = compile(&dir.path().join("web.kdl"));
    let script = artifacts.get("web.bootstrap.sh").unwrap();
    assert!(!script.contains("registry add"), "{script}");
}

fn rerunning_converges_to_the_locked_system_manager() {
    let artifacts = example("web.kdl");
    let component = artifacts.get("web.bootstrap.sh").unwrap();
    let ssm = ssm_script(&artifacts, "web");
    for script in [component, ssm.as_str()] {
        // No "already installed" shortcut: the locked CLI is built every run and run from that build.
        assert!(
            !script.contains(".nix-profile/bin/system-manager"),
            "{script}"
        );
        assert!(!script.contains("profile install"));
        let build = position(
            script,
            "nix_cmd build --out-link /nix/var/nix/gcroots/bake-system-manager \"$SYSTEM_MANAGER\"",
        );
        let run = position(
            script,
            "/nix/var/nix/gcroots/bake-system-manager/bin/system-manager ",
        );
        assert!(build < run);
        assert!(assigned(script, "SYSTEM_MANAGER").starts_with("github:numtide/system-manager/"));
    }
    // The image is prepared (services start on boot); the SSM document is for running instances: it activates.
    assert!(component.contains("system-manager pre-populate --flake \"$FLAKE\""));
    assert!(!component.contains(" switch "));
    assert!(ssm.contains("system-manager switch --flake \"$FLAKE\""));
    assert!(!ssm.contains("pre-populate"));
}

fn nix_builds_on_disk_not_in_the_tmpfs() {
    let artifacts = example("web.kdl");
    for script in [
        artifacts.get("web.bootstrap.sh").unwrap().to_owned(),
        ssm_script(&artifacts, "web"),
    ] {
        let tmp = position(&script, "export TMPDIR=\"$BAKE_TMP\"");
        assert!(script.contains("BAKE_TMP=\"$(mktemp -d /var/tmp/bake/run.XXXXXXXX)\""));
        // The daemon does the builds: its environment gets TMPDIR on disk before Nix is installed or used.
        let dropin = position(&script, "Environment=TMPDIR=/var/tmp");
        let install = position(&script, "bake: installing Nix");
        let build = position(&script, "nix_cmd build");
        assert!(tmp < install && dropin < install && dropin < build);
        let bare_tmp = script
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| {
                l.match_indices("/tmp")
                    .any(|(i, _)| !l[..i].ends_with("/var"))
            });
        assert!(!bare_tmp, "nothing in the /tmp tmpfs");
    }
}

fn full_packages_replace_the_minimal_ones_in_their_own_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let spec = std::fs::read_to_string(root.join("web.kdl"))
        .unwrap()
        .replace(
            "rpms \"git\" \"jq\"",
            "rpms \"git\" \"jq\" \"curl-full\" \"gnupg2-full\"",
        );
    std::fs::write(dir.path().join("web.kdl"), spec).unwrap();
    std::fs::copy(root.join("web.lock.json"), dir.path().join("web.lock.json")).unwrap();
    let artifacts = compile(&dir.path().join("web.kdl"));
    let script = artifacts.get("web.bootstrap.sh").unwrap();
    let lines: Vec<&str> = script.lines().filter(|l| l.starts_with("dnf ")).collect();
    assert_eq!(
        lines,
        [
            "dnf --releasever=2023.12.20260930 install --assumeyes --allowerasing -- curl-full libcurl-full gnupg2-full",
            "dnf --releasever=2023.12.20260930 install --assumeyes -- git jq aws-cfn-bootstrap",
        ]
    );
}

/// A stand-in for `systemctl`: unit states come from files under `$FAKE_SYSTEMD` (`active/<unit>`,
/// `failed/<unit>`), `list-dependencies` prints `$FAKE_SYSTEMD/deps` the way systemd prints it without a terminal.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/bash
verb=$1; shift
quiet=0
if [ "$1" = --quiet ]; then quiet=1; shift; fi
state=inactive
[ -e "$FAKE_SYSTEMD/active/$1" ] && state=active
[ -e "$FAKE_SYSTEMD/failed/$1" ] && state=failed
case "$verb" in
  is-active) [ "$quiet" = 1 ] || echo "$state"; [ "$state" = active ] ;;
  is-failed) [ "$quiet" = 1 ] || echo "$state"; [ "$state" = failed ] ;;
  list-dependencies) cat "$FAKE_SYSTEMD/deps" ;;
  *) exit 1 ;;
esac
"#;

struct Instance {
    dir: tempfile::TempDir,
}

impl Instance {
    fn new(active: &[&str], failed: &[&str]) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["bin", "state/active", "state/failed"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let fake = d.join("bin/systemctl");
        std::fs::write(&fake, FAKE_SYSTEMCTL).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        for u in active {
            std::fs::write(d.join("state/active").join(u), "").unwrap();
        }
        for u in failed {
            std::fs::write(d.join("state/failed").join(u), "").unwrap();
        }
        // What `systemctl list-dependencies --plain --no-legend system-manager.target` prints.
        std::fs::write(
            d.join("state/deps"),
            "system-manager.target\n● nginx.service\n● worker.service\n  system-manager-path.service\n",
        )
        .unwrap();
        Instance { dir }
    }

    /// Runs `bake_ready` (or another call) from the readiness check; returns its status and `bake_reason`.
    fn ready(&self, ready_unit: &str, ready_command: Option<&str>, call: &str) -> (i32, String) {
        let script = bake::emit::readiness_script(ready_unit, ready_command).unwrap();
        let path = self.dir.path().join("readiness.sh");
        std::fs::write(&path, script).unwrap();
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". \"$1\"; {call}; rc=$?; printf '%s|%s' \"$rc\" \"$bake_reason\""
            ))
            .arg("bash")
            .arg(&path)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.dir.path().join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("FAKE_SYSTEMD", self.dir.path().join("state"))
            .env("HEALTH_FILE", self.dir.path().join("healthy"))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (rc, reason) = text
            .split_once('|')
            .unwrap_or_else(|| panic!("{text} {:?}", out.stderr));
        (rc.parse().unwrap(), reason.to_owned())
    }
}

fn a_failed_service_keeps_the_instance_from_signalling_success() {
    // system-manager.target is active even though a unit it wants failed: that is what systemd does.
    let broken = Instance::new(
        &[
            "system-manager.target",
            "nginx.service",
            "system-manager-path.service",
        ],
        &["worker.service"],
    );
    let (rc, reason) = broken.ready("system-manager.target", None, "bake_ready");
    assert_ne!(rc, 0, "a failed managed unit is not ready");
    assert!(reason.contains("worker.service"), "{reason}");
    // The named unit alone being active is not enough either.
    let (rc, _) = broken.ready("nginx.service", None, "bake_ready");
    assert_ne!(rc, 0);

    let healthy = Instance::new(
        &[
            "system-manager.target",
            "nginx.service",
            "worker.service",
            "system-manager-path.service",
        ],
        &[],
    );
    assert_eq!(
        healthy.ready("nginx.service", None, "bake_ready"),
        (0, String::new())
    );

    // The named unit must be active.
    let starting = Instance::new(&["system-manager.target"], &[]);
    let (rc, reason) = starting.ready("nginx.service", None, "bake_ready");
    assert_ne!(rc, 0);
    assert!(reason.contains("nginx.service is inactive"), "{reason}");
}

fn the_ready_command_must_pass_too() {
    let healthy = Instance::new(
        &[
            "system-manager.target",
            "nginx.service",
            "worker.service",
            "system-manager-path.service",
        ],
        &[],
    );
    let check = Some("test -e \"$HEALTH_FILE\"");
    let (rc, reason) = healthy.ready("nginx.service", check, "bake_ready");
    assert_ne!(rc, 0);
    assert_eq!(reason, "the ready command failed");
    std::fs::write(healthy.dir.path().join("healthy"), "").unwrap();
    assert_eq!(healthy.ready("nginx.service", check, "bake_ready").0, 0);
}

fn waiting_gives_up_at_the_deadline() {
    let broken = Instance::new(
        &["system-manager.target", "nginx.service"],
        &["worker.service"],
    );
    let started = std::time::Instant::now();
    let (rc, reason) = broken.ready("nginx.service", None, "bake_wait_ready 0");
    assert_ne!(rc, 0);
    assert!(reason.contains("worker.service"));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

fn user_data_signals_with_the_shared_readiness_check() {
    let artifacts = example("platform.kdl");
    let user_data = artifacts.get("web.user-data.sh").unwrap();
    let check = bake::emit::readiness_script("nginx.service", None).unwrap();
    assert!(user_data.contains(&check), "{user_data}");
    let wait = position(user_data, "if ! bake_wait_ready ");
    let signal = position(user_data, "/opt/aws/bin/cfn-signal --exit-code \"$status\"");
    assert!(wait < signal);
}

/// Stand-ins for what instance-refresh user data calls besides `systemctl`: each records its arguments, one a line,
/// under `$FAKE_LOG/<name>` with a `--` line after each call. `curl` answers as IMDSv2 does.
const FAKE_CURL: &str = r#"#!/bin/bash
{ printf '%s\n' "$@"; echo --; } >>"$FAKE_LOG/curl"
case "$*" in
  *--request\ PUT*latest/api/token*) printf 'imds-token-1' ;;
  *"X-aws-ec2-metadata-token: imds-token-1"*latest/meta-data/instance-id*) printf 'i-0123456789abcdef0' ;;
  *) exit 22 ;;
esac
"#;
/// `aws` fails its first `$FAKE_AWS_FAILURES` calls, as a throttled or unreachable endpoint would.
const FAKE_RECORDER: &str = r#"#!/bin/bash
log="$FAKE_LOG/$(basename "$0")"
{ printf '%s\n' "$@"; echo --; } >>"$log"
if [ "$(basename "$0")" = aws ] && [ "$(grep -c -x -- -- "$log")" -le "${FAKE_AWS_FAILURES:-0}" ]; then
  echo 'An error occurred (Throttling)' >&2
  exit 255
fi
"#;

impl Instance {
    /// Runs the batch fleet's user data from specs/platform.kdl as the instance would after `Fn::Sub` (stack
    /// `platform`, region `eu-west-1`), with `wait` in place of its wait for readiness. Returns the exit status,
    /// stderr, and the calls each stand-in recorded.
    fn run_refresh_user_data(
        &self,
        wait: Option<u64>,
        aws_failures: u32,
    ) -> (i32, String, Vec<Vec<String>>, String) {
        let artifacts = example("platform.kdl");
        let mut script = artifacts
            .get("batch.user-data.sh")
            .expect("the instance-refresh fleet has user data")
            .replace("${AWS::StackName}", "platform")
            .replace("${AWS::Region}", "eu-west-1");
        if let Some(secs) = wait {
            let at = position(&script, "bake_wait_ready 1080;");
            script.replace_range(
                at..at + "bake_wait_ready 1080".len(),
                &format!("bake_wait_ready {secs}"),
            );
        }
        let d = self.dir.path();
        std::fs::create_dir_all(d.join("log")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [
            ("curl", FAKE_CURL),
            ("aws", FAKE_RECORDER),
            ("logger", FAKE_RECORDER),
        ] {
            let path = d.join("bin").join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = d.join("user-data.sh");
        std::fs::write(&path, &script).unwrap();
        let out = Command::new("bash")
            .arg(&path)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    d.join("bin").display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("FAKE_SYSTEMD", d.join("state"))
            .env("FAKE_LOG", d.join("log"))
            .env("FAKE_AWS_FAILURES", aws_failures.to_string())
            .output()
            .unwrap();
        let calls = |name: &str| -> Vec<Vec<String>> {
            let text = std::fs::read_to_string(d.join("log").join(name)).unwrap_or_default();
            text.split_terminator("--\n")
                .map(|call| call.lines().map(str::to_owned).collect())
                .collect()
        };
        let curl = calls("curl");
        assert_eq!(curl.len(), 2, "a token, then the instance id: {curl:?}");
        assert!(curl[0].contains(&"PUT".to_owned()), "{curl:?}");
        assert!(curl[0].contains(&"X-aws-ec2-metadata-token-ttl-seconds: 300".to_owned()));
        assert!(curl[1].contains(&"X-aws-ec2-metadata-token: imds-token-1".to_owned()));
        for call in &curl {
            assert!(
                call.contains(&"--max-time".to_owned()) && call.contains(&"--retry".to_owned())
            );
        }
        let logged = calls("logger").concat().join(" ");
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
            calls("aws"),
            logged,
        )
    }
}

/// The `complete-lifecycle-action` call the user data makes for the batch fleet of stack `platform`.
fn complete_lifecycle_action(result: &str) -> Vec<String> {
    [
        "autoscaling",
        "complete-lifecycle-action",
        "--region",
        "eu-west-1",
        "--auto-scaling-group-name",
        "platform-batch",
        "--lifecycle-hook-name",
        "bake-ready",
        "--instance-id",
        "i-0123456789abcdef0",
        "--lifecycle-action-result",
        result,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn a_ready_instance_continues_its_launch_hook() {
    let healthy = Instance::new(
        &[
            "system-manager.target",
            "batch.service",
            "nginx.service",
            "worker.service",
            "system-manager-path.service",
        ],
        &[],
    );
    // Ready at once: the script's own wait never sleeps.
    let (rc, stderr, aws, _) = healthy.run_refresh_user_data(None, 0);
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(aws, vec![complete_lifecycle_action("CONTINUE")], "{stderr}");
}

fn a_failed_hook_call_is_retried() {
    let healthy = Instance::new(
        &[
            "system-manager.target",
            "batch.service",
            "nginx.service",
            "worker.service",
            "system-manager-path.service",
        ],
        &[],
    );
    // One failure: a second try (after 5 seconds) completes the hook.
    let (rc, stderr, aws, _) = healthy.run_refresh_user_data(None, 1);
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(
        aws,
        vec![complete_lifecycle_action("CONTINUE"); 2],
        "{stderr}"
    );
}

fn an_instance_with_a_failed_unit_abandons_its_launch_hook() {
    let broken = Instance::new(
        &["system-manager.target", "batch.service", "nginx.service"],
        &["worker.service"],
    );
    let (rc, stderr, aws, logged) = broken.run_refresh_user_data(Some(0), 0);
    assert_ne!(rc, 0, "a broken instance's user data fails");
    assert_eq!(aws, vec![complete_lifecycle_action("ABANDON")], "{stderr}");
    // The reason reaches the journal and cloud-init's output log.
    assert!(logged.contains("failed units: worker.service"), "{logged}");
    assert!(stderr.contains("failed units: worker.service"), "{stderr}");
}

fn real_nix_writes_the_registry_pins_the_script_gives() {
    let artifacts = example("platform.kdl");
    let script = artifacts.get("worker.bootstrap.sh").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.json");
    for line in script
        .lines()
        .filter(|l| l.starts_with("nix_cmd registry add "))
    {
        let mut words = shlex::split(line).unwrap();
        // `nix_cmd` is nix with flakes on; the system registry file is the test's own.
        words[0] = "nix".to_owned();
        words[4] = registry.display().to_string();
        let out = Command::new(&words[0])
            .args(["--extra-experimental-features", "nix-command flakes"])
            .args(&words[1..])
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&registry).unwrap()).unwrap();
    let pins: Vec<(String, String)> = written["flakes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"]["id"].as_str().unwrap().to_owned(),
                e["to"]["rev"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/platform.lock.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rev = |id: &str| {
        lock["images"]["worker"]["flake"]["inputs"][id]["rev"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        pins,
        [
            ("nixpkgs".to_owned(), rev("nixpkgs")),
            ("system-manager".to_owned(), rev("system-manager")),
        ]
    );
}

fn a_github_flake_needs_git_only_for_inputs_its_lock_fetches_with_git() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
    let spec = std::fs::read_to_string(root.join("web.kdl"))
        .unwrap()
        .replace(
            "\"git+https://github.com/acme/infra.git\"",
            "\"github:acme/infra\"",
        )
        .replace("rpms \"git\" \"jq\"", "rpms \"jq\"");
    let lock = std::fs::read_to_string(root.join("web.lock.json"))
        .unwrap()
        .replace(
            "\"git+https://github.com/acme/infra.git\"",
            "\"github:acme/infra\"",
        );
    let rpms = |lock: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("web.kdl"), &spec).unwrap();
        std::fs::write(dir.path().join("web.lock.json"), lock).unwrap();
        let artifacts = compile(&dir.path().join("web.kdl"));
        let script = artifacts.get("web.bootstrap.sh").unwrap().to_owned();
        let line = script
            .lines()
            .find(|l| l.starts_with(DNF_INSTALL))
            .unwrap()
            .to_owned();
        shlex::split(&line).unwrap()[5..].to_vec()
    };
    // A tarball fetch: no git.
    assert_eq!(rpms(&lock), ["jq", "aws-cfn-bootstrap"]);
    // An input the flake's lock pins as `git+…` is fetched with git on the build instance.
    let rev = "8f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
    let git_input = lock.replace(
        &format!("\"url\": \"github:NixOS/nixpkgs/{rev}\""),
        &format!("\"url\": \"git+https://git.example.com/nixpkgs.git?rev={rev}\""),
    );
    assert_ne!(git_input, lock);
    assert_eq!(rpms(&git_input), ["jq", "aws-cfn-bootstrap", "git"]);
}
