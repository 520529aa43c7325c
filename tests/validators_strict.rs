//! The example templates against the stricter validators: cfn-lint with its optional (informational) rules and
//! the checkov security scanner. Each finding is fixed in bake or listed below with the reason it does not apply.
//!
//! `.ci/run` installs both. Without them a local run skips with a message; with `BAKE_TEST_REQUIRE_PEERS=1` (set
//! in CI) a missing tool fails the test. checkov runs with its downloads off and a proxy on a closed loopback
//! port, so it cannot reach the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::examples;
use common::peers::{Peer, Suite};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "examples_pass_cfn_lint_with_optional_rules",
        &[Peer::CfnLint],
        examples_pass_cfn_lint_with_optional_rules,
    );
    suite.test(
        "examples_pass_checkov",
        &[Peer::Checkov],
        examples_pass_checkov,
    );
    suite.test(
        "a_stack_name_tag_gives_no_duplicate_tag_keys",
        &[Peer::CfnLint],
        a_stack_name_tag_gives_no_duplicate_tag_keys,
    );
    suite.test(
        "the_strict_validators_catch_what_they_claim_to",
        &[Peer::CfnLint, Peer::Checkov],
        the_strict_validators_catch_what_they_claim_to,
    );
    suite.run()
}

/// cfn-lint rules ignored, with why. Empty: every template is clean with `--include-checks I`.
const CFN_LINT_IGNORED: &[(&str, &str)] = &[];

/// checkov checks ignored, with why. Empty: every template passes every CloudFormation check.
const CHECKOV_IGNORED: &[(&str, &str)] = &[];

/// Environment that keeps checkov off the network: no guideline download, every proxied request to a closed port.
fn offline() -> [(&'static str, &'static str); 5] {
    [
        ("BC_SKIP_MAPPING", "TRUE"),
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("https_proxy", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ]
}

/// Compiles a spec with its lock (as `bake compile` does) and writes the template into `dir`.
fn write_template(spec_text: &str, spec_path: &Path, dir: &Path) -> PathBuf {
    let file = bake::source::SourceFile::new(spec_path, spec_text);
    let (plan, diags) = bake::check_source(&file);
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    let lock_path = bake::cli::default_lock_path(spec_path);
    let lock = bake::lock::Lock::from_json(&std::fs::read_to_string(lock_path).unwrap()).unwrap();
    let resolved = bake::lock::verify(&plan, &lock, &file.name()).unwrap();
    let artifacts = bake::emit::emit(&plan, &resolved, &lock).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("template.json");
    std::fs::write(&path, artifacts.get("template.json").unwrap()).unwrap();
    path
}

fn example_templates(dir: &Path) -> Vec<PathBuf> {
    examples()
        .iter()
        .map(|spec| {
            let stem = spec.file_stem().unwrap().to_string_lossy().into_owned();
            write_template(
                &std::fs::read_to_string(spec).unwrap(),
                spec,
                &dir.join(stem),
            )
        })
        .collect()
}

/// cfn-lint's findings as (rule, path, message), optional rules included.
fn cfn_lint(template: &Path) -> Vec<(String, String, String)> {
    let out = Command::new("cfn-lint")
        .args(["--include-checks", "I", "--format", "json"])
        .arg(template)
        .output()
        .unwrap();
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cfn-lint printed no JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["Rule"]["Id"].as_str().unwrap_or_default().to_owned(),
                f["Location"]["Path"].to_string(),
                f["Message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(rule, _, _)| !CFN_LINT_IGNORED.iter().any(|(r, _)| r == rule))
        .collect()
}

/// One checkov run over several templates (it starts slowly, so the examples share a run).
fn run_checkov(templates: &[PathBuf]) -> Output {
    let mut cmd = Command::new("checkov");
    cmd.args([
        "--framework",
        "cloudformation",
        "--skip-download",
        "--quiet",
    ])
    .args(["-o", "json"]);
    for t in templates {
        cmd.arg("-f").arg(t);
    }
    cmd.envs(offline()).output().unwrap()
}

/// checkov's failed checks as (check id, resource, file), and how many checks passed.
fn checkov(templates: &[PathBuf]) -> (Vec<(String, String, String)>, u64) {
    let out = run_checkov(templates);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // One framework gives an object; `--quiet` with no failures may give the summary only.
    let report = match report {
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    };
    let failed = report["results"]["failed_checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["check_id"].as_str().unwrap_or_default().to_owned(),
                        c["resource"].as_str().unwrap_or_default().to_owned(),
                        c["file_path"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .filter(|(id, _, _)| !CHECKOV_IGNORED.iter().any(|(i, _)| i == id))
                .collect()
        })
        .unwrap_or_default();
    let parsing_errors = report["summary"]["parsing_errors"].as_u64().unwrap_or(0);
    assert_eq!(parsing_errors, 0, "checkov could not parse {templates:?}");
    let passed = report["summary"]["passed"].as_u64().unwrap_or(0);
    (failed, passed)
}

fn examples_pass_cfn_lint_with_optional_rules() {
    let dir = tempfile::tempdir().unwrap();
    let templates = example_templates(dir.path());
    assert_eq!(templates.len(), examples().len());
    for t in &templates {
        let findings = cfn_lint(t);
        assert!(findings.is_empty(), "{}: {findings:#?}", t.display());
    }
}

fn examples_pass_checkov() {
    let dir = tempfile::tempdir().unwrap();
    let templates = example_templates(dir.path());
    let (failed, passed) = checkov(&templates);
    assert!(failed.is_empty(), "{failed:#?}");
    // The scan looked at every template: IAM, launch template and encryption checks ran.
    assert!(
        passed >= 5 * templates.len() as u64,
        "only {passed} checks passed"
    );
}

fn a_stack_name_tag_gives_no_duplicate_tag_keys() {
    // The review's E3024: a stack `Name` tag and bake's own `Name` on the auto-scaling group.
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/platform.kdl");
    let text = std::fs::read_to_string(&spec).unwrap().replace(
        r#"tags team="platform""#,
        r#"tags Name="platform" team="platform""#,
    );
    assert!(text.contains(r#"Name="platform""#));
    let dir = tempfile::tempdir().unwrap();
    let t = write_template(&text, &spec, dir.path());
    let findings = cfn_lint(&t);
    assert!(findings.is_empty(), "{findings:#?}");
}

fn the_strict_validators_catch_what_they_claim_to() {
    // The checks above can fail: a duplicate tag key and IMDSv1 are reported.
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/web.kdl");
    let t = write_template(&std::fs::read_to_string(&spec).unwrap(), &spec, dir.path());
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    let group_tags = v["Resources"]["FleetWebGroup"]["Properties"]["Tags"]
        .as_array_mut()
        .unwrap();
    let dup = group_tags[0].clone();
    group_tags.push(dup);
    v["Resources"]["FleetWebLaunchTemplate"]["Properties"]["LaunchTemplateData"]["MetadataOptions"]
        ["HttpTokens"] = Value::String("optional".into());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    let findings = cfn_lint(&bad);
    assert!(
        findings.iter().any(|(rule, _, _)| rule == "E3024"),
        "{findings:#?}"
    );
    let (failed, _) = checkov(&[bad]);
    assert!(
        failed.iter().any(|(id, _, _)| id == "CKV_AWS_79"),
        "{failed:#?}"
    );
}
