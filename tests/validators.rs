//! The emitted artifacts against real validators: cfn-lint for every template, shellcheck for every script,
//! and typed structures for the SSM Command document and the AWSTOE component (no offline validator exists).
//!
//! cfn-lint (1.58 or later) and shellcheck are installed by `scripts/peers.sh install`. Without them (or with an
//! older cfn-lint) these tests are reported as ignored, with the reason; with `BAKE_TEST_REQUIRE_PEERS=1` (set in
//! CI) they fail instead (tests/common/peers.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

mod common;
use common::peers::{Peer, Suite};
use common::{compile, examples};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "templates_pass_cfn_lint_with_no_findings",
        &[Peer::CfnLint],
        templates_pass_cfn_lint_with_no_findings,
    );
    suite.test(
        "every_environments_template_passes_cfn_lint",
        &[Peer::CfnLint],
        every_environments_template_passes_cfn_lint,
    );
    suite.test(
        "cfn_lint_catches_a_broken_template",
        &[Peer::CfnLint],
        cfn_lint_catches_a_broken_template,
    );
    suite.test(
        "scripts_pass_shellcheck",
        &[Peer::Shellcheck],
        scripts_pass_shellcheck,
    );
    suite.test(
        "documents_have_the_ssm_and_awstoe_shapes",
        &[],
        documents_have_the_ssm_and_awstoe_shapes,
    );
    suite.test(
        "peer_versions_are_read_and_compared",
        &[],
        peer_versions_are_read_and_compared,
    );
    suite.run()
}

/// The version check that turns a too-old cfn-lint into a skip, on the outputs the real tools print.
fn peer_versions_are_read_and_compared() {
    use common::peers::{CFN_LINT_MIN, parse_version};
    assert_eq!(parse_version("cfn-lint 1.51.0\n"), Some((1, 51, 0)));
    assert_eq!(
        parse_version("NVIM v0.7.2\nBuild type: Release"),
        Some((0, 7, 2))
    );
    assert_eq!(parse_version("nix (Nix) 2.8.0"), Some((2, 8, 0)));
    assert_eq!(
        parse_version("ShellCheck - shell script analysis tool\nversion: 0.9.0"),
        Some((0, 9, 0))
    );
    assert_eq!(parse_version("3.3.30"), Some((3, 3, 30)));
    assert_eq!(parse_version("no digits here"), None);
    assert!((1, 51, 0) < CFN_LINT_MIN && (1, 58, 0) >= CFN_LINT_MIN && (1, 60, 1) > CFN_LINT_MIN);
}

fn write_artifacts(dir: &Path) -> Vec<(PathBuf, bake::emit::Artifacts)> {
    examples()
        .into_iter()
        .map(|spec| {
            let artifacts = compile(&spec);
            let out = dir.join(spec.file_stem().unwrap());
            for (name, content) in &artifacts.files {
                std::fs::create_dir_all(&out).unwrap();
                std::fs::write(out.join(name), content).unwrap();
            }
            (out, artifacts)
        })
        .collect()
}

/// `bake compile --env` for each environment of `specs/environments.kdl` (the corpus above compiles the default
/// one only): the promoted environment's template, without Image Builder resources, lints clean too.
fn every_environments_template_passes_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/environments.kdl");
    let mut templates = Vec::new();
    for env in ["staging", "prod"] {
        let out = Command::new(env!("CARGO_BIN_EXE_bake"))
            .arg("compile")
            .arg(&spec)
            .arg("-o")
            .arg(dir.path())
            .args(["--env", env])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        templates.push(dir.path().join(env).join("template.json"));
    }
    let output = Command::new("cfn-lint")
        .arg("--format")
        .arg("parseable")
        .args(&templates)
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "cfn-lint found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn templates_pass_cfn_lint_with_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    let outs = write_artifacts(dir.path());
    let templates: Vec<PathBuf> = outs.iter().map(|(o, _)| o.join("template.json")).collect();
    assert_eq!(templates.len(), examples().len());
    // No rule is ignored: errors, warnings and informational findings all fail.
    let output = Command::new("cfn-lint")
        .arg("--format")
        .arg("parseable")
        .args(&templates)
        .output()
        .unwrap();
    let version = Command::new("cfn-lint").arg("--version").output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "{} (.ci/run installs 1.58.0) found problems:\n{}{}",
        String::from_utf8_lossy(&version.stdout).trim(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn cfn_lint_catches_a_broken_template() {
    // The check above can fail: a template with a known error is reported.
    let dir = tempfile::tempdir().unwrap();
    let outs = write_artifacts(dir.path());
    // The first example with an Image Builder recipe (a NixOS example has none).
    let path = outs
        .iter()
        .map(|(out, _)| out.join("template.json"))
        .find(|p| std::fs::read_to_string(p).unwrap().contains("\"Linux\""))
        .unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"Linux\"", "\"Linux2\"");
    std::fs::write(&path, text).unwrap();
    let output = Command::new("cfn-lint").arg(&path).output().unwrap();
    assert!(!output.status.success());
}

fn scripts_pass_shellcheck() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (out, artifacts) in write_artifacts(dir.path()) {
        for (name, content) in &artifacts.files {
            if !name.ends_with(".sh") {
                continue;
            }
            // User data reaches the instance after Fn::Sub; check what the instance runs.
            let script = content
                .replace("${AWS::StackName}", "web")
                .replace("${AWS::Region}", "us-east-1");
            let path = out.join(format!("checked-{name}"));
            std::fs::write(&path, script).unwrap();
            let output = Command::new("shellcheck")
                .args(["-s", "bash", "-S", "style"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "shellcheck on {name}:\n{}",
                String::from_utf8_lossy(&output.stdout)
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} scripts checked");
}

/// SSM Command document, schema 2.2, as much of it as bake emits (unknown fields are errors).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SsmDocument {
    schema_version: String,
    description: String,
    main_steps: Vec<SsmStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SsmStep {
    action: String,
    name: String,
    precondition: BTreeMap<String, Vec<String>>,
    inputs: SsmInputs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SsmInputs {
    timeout_seconds: String,
    run_command: Vec<String>,
}

/// AWSTOE component document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Component {
    name: String,
    description: String,
    schema_version: f64,
    phases: Vec<Phase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Phase {
    name: String,
    steps: Vec<ToeStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ToeStep {
    name: String,
    action: String,
    timeout_seconds: i64,
    on_failure: String,
    max_attempts: u32,
    inputs: ToeInputs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToeInputs {
    commands: Vec<String>,
}

fn documents_have_the_ssm_and_awstoe_shapes() {
    let mut seen = 0;
    for spec in examples() {
        let artifacts = compile(&spec);
        let template: serde_json::Value =
            serde_json::from_str(artifacts.get("template.json").unwrap()).unwrap();
        for (id, resource) in template["Resources"].as_object().unwrap() {
            match resource["Type"].as_str().unwrap() {
                "AWS::SSM::Document" => {
                    let doc: SsmDocument =
                        serde_json::from_value(resource["Properties"]["Content"].clone())
                            .unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(doc.schema_version, "2.2");
                    assert!(!doc.description.is_empty());
                    let step = &doc.main_steps[0];
                    assert_eq!(step.action, "aws:runShellScript");
                    assert_eq!(step.name, "bootstrap");
                    assert_eq!(step.precondition["StringEquals"], ["platformType", "Linux"]);
                    let timeout: u64 = step.inputs.timeout_seconds.parse().unwrap();
                    assert!(
                        (5..=172_800).contains(&timeout),
                        "SSM silently resets {timeout}"
                    );
                    assert_eq!(step.inputs.run_command[0], "#!/bin/bash");
                    let script = step.inputs.run_command.join("\n");
                    check_bootstrap(&script);
                    seen += 1;
                }
                "AWS::ImageBuilder::Component" => {
                    let data = resource["Properties"]["Data"].as_str().unwrap();
                    assert!(data.chars().count() <= 16_000);
                    let doc: Component =
                        serde_json::from_str(data).unwrap_or_else(|e| panic!("{id}: {e}"));
                    assert_eq!(doc.schema_version, 1.0);
                    assert!(!doc.name.is_empty() && !doc.description.is_empty());
                    assert_eq!(doc.phases.len(), 1);
                    assert_eq!(doc.phases[0].name, "build");
                    let step = &doc.phases[0].steps[0];
                    assert_eq!(
                        (step.name.as_str(), step.action.as_str()),
                        ("Bootstrap", "ExecuteBash")
                    );
                    assert_eq!((step.on_failure.as_str(), step.max_attempts), ("Abort", 1));
                    assert!(step.timeout_seconds > 0);
                    check_bootstrap(&step.inputs.commands.join("\n"));
                    seen += 1;
                }
                _ => {}
            }
        }
    }
    assert!(
        seen >= 6,
        "expected documents and components of three built images, saw {seen}"
    );
}

/// The pitfalls of DOMAIN.md §0 and §9, asserted on the script SSM and AWSTOE run.
fn check_bootstrap(script: &str) {
    let home = script.find("export HOME=/root").expect("HOME is set");
    let source = script
        .find(". /nix/var/nix/profiles/default/etc/profile.d/nix-daemon.sh")
        .unwrap();
    assert!(
        home < source,
        "HOME must be set before nix-daemon.sh is sourced"
    );
    assert!(script.contains("set -euo pipefail"));
    assert!(script.contains("install --no-confirm"));
    assert!(!script.contains("sudo"), "SSM already runs as root");
    assert!(
        !script.contains("{{"),
        "SSM and AWSTOE would interpolate it"
    );
    // A prebuilt closure: the exact store path, its NAR hash and only the cache's key; no flake is fetched.
    if let Some(path) = script
        .lines()
        .find(|l| l.starts_with("STORE_PATH=/nix/store/"))
    {
        assert!(!script.lines().any(|l| l.starts_with("FLAKE=")), "{path}");
        assert!(script.contains("NAR_HASH=sha256:"));
        assert!(script.contains("--option trusted-public-keys \"$BAKE_CACHE_KEY\""));
        assert!(script.contains("store verify --recursive --sigs-needed 1"));
        assert!(script.contains("--store-path \"$STORE_PATH\""));
        assert!(!script.contains("--flake"));
        return;
    }
    let flake = script.lines().find(|l| l.starts_with("FLAKE=")).unwrap();
    let url = &shlex::split(flake.trim_start_matches("FLAKE=")).unwrap()[0];
    assert!(
        url.starts_with("github:") || url.contains("rev="),
        "pinned to a revision: {url}"
    );
    if let Some(query) = url.find('?') {
        assert!(
            url.find('#').is_some_and(|fragment| query < fragment),
            "query before fragment: {url}"
        );
    }
    assert!(script.contains("dnf --releasever=2023.12.20260930 install --assumeyes --"));
}
