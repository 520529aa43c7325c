//! Environments: each environment of `specs/environments.kdl` compiles to its own snapshotted artifacts, a
//! promoted environment runs the lock's AMI and builds nothing, and what is wrong with an environment is a
//! spanned diagnostic with its own code.

use std::path::{Path, PathBuf};
use std::process::Command;

use bake::diag::render::{self, Style};
use bake::diag::{Code, Diag};
use bake::environments::Want;
use bake::lock::Lock;
use bake::source::SourceFile;
use serde_json::Value;

mod common;
use common::read;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/environments.kdl")
}

fn example_lock() -> Lock {
    let path = bake::cli::default_lock_path(&example());
    Lock::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn compile_env(
    file: &SourceFile,
    env: Option<&str>,
    lock: &Lock,
) -> Result<bake::pipeline::Compiled, Vec<Diag>> {
    let (checked, diags) = bake::check_source_env(file, Want::Env(env));
    let Some(checked) = checked else {
        return Err(diags);
    };
    match bake::pipeline::build_env(file, checked, diags, lock) {
        Ok(c) => Ok(c),
        Err(bake::pipeline::Failed::Diags(d)) => Err(d),
        Err(other) => panic!("{other:?}"),
    }
}

fn template(c: &bake::pipeline::Compiled) -> Value {
    serde_json::from_str(c.template()).unwrap()
}

fn resource_types(t: &Value) -> Vec<String> {
    t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .map(|r| r["Type"].as_str().unwrap().to_owned())
        .collect()
}

fn codes(diags: &[Diag]) -> Vec<&'static str> {
    diags.iter().map(|d| d.code.as_str()).collect()
}

#[test]
fn each_environment_compiles_to_its_own_snapshots() {
    let file = read(&example());
    let lock = example_lock();
    for env in ["staging", "prod"] {
        let compiled = compile_env(&file, Some(env), &lock)
            .unwrap_or_else(|d| panic!("{}", render::human(&file, &d, Style::PLAIN)));
        for (name, content) in &compiled.artifacts.files {
            insta::with_settings!({ snapshot_suffix => format!("{env}-{name}"), omit_expression => true }, {
                insta::assert_snapshot!(content);
            });
        }
    }
}

#[test]
fn a_promoted_environment_runs_the_locks_ami_and_builds_nothing() {
    let file = read(&example());
    let lock = example_lock();
    let promoted = &lock.environments["prod"].images["shop"];
    let staging = compile_env(&file, Some("staging"), &lock).unwrap();
    let prod = compile_env(&file, Some("prod"), &lock).unwrap();
    let (st, pt) = (template(&staging), template(&prod));
    assert!(
        resource_types(&st)
            .iter()
            .any(|t| t.starts_with("AWS::ImageBuilder::"))
    );
    let prod_types = resource_types(&pt);
    assert!(
        !prod_types
            .iter()
            .any(|t| t.starts_with("AWS::ImageBuilder::")),
        "{prod_types:?}"
    );
    // Prod runs through its stack set: the stack's region maps the promoted AMI, eu-west-1 its copy there.
    let data = &pt["Resources"]["FleetShopLaunchTemplate"]["Properties"]["LaunchTemplateData"];
    assert_eq!(data["ImageId"]["Fn::FindInMap"][2], "ImageShopAmi");
    let regions = &pt["Mappings"]["BakeRegions"];
    assert_eq!(
        regions["us-east-1"]["ImageShopAmi"],
        Value::String(promoted.ami.clone())
    );
    assert_eq!(
        regions["eu-west-1"]["ImageShopAmi"],
        "ami-0d4c3b2a1f0e9d8c7"
    );
    let set = prod.plan.stack_set.as_ref().unwrap();
    assert_eq!(set.regions, ["us-east-1", "eu-west-1"]);
    assert!(staging.plan.stack_set.is_none());
    assert_eq!(data["InstanceType"], "m7i.large");
    assert_eq!(
        st["Resources"]["FleetShopLaunchTemplate"]["Properties"]["LaunchTemplateData"]["InstanceType"],
        "t3.medium"
    );
    let group = &pt["Resources"]["FleetShopGroup"]["Properties"];
    assert_eq!(group["MinSize"], "3");
    assert_eq!(group["MaxSize"], "12");
    assert_eq!(group["DesiredCapacity"], "4");
    let meta = &pt["Metadata"]["bake"]["images"]["shop"];
    assert_eq!(meta["promoted-from"], "staging");
    assert_eq!(
        meta["tested-since"],
        Value::String(promoted.tested_since.clone())
    );
    assert_eq!(prod.plan.stack.name, "shop-production");
    assert_eq!(staging.plan.stack.name, "shop-staging");
    assert_eq!(prod.plan.stack.account.as_deref(), Some("222222222222"));
    // The lock the prod artifacts record is the entry they used, and nothing of staging's build.
    let used = Lock::from_json(prod.artifacts.get("lock.json").unwrap()).unwrap();
    assert!(used.images.is_empty(), "{used:?}");
    assert_eq!(used.environments["prod"].images["shop"], *promoted);
    // No script for a promoted image: nothing is built.
    assert!(
        !prod
            .artifacts
            .files
            .iter()
            .any(|(n, _)| n.contains("bootstrap") || n.contains("component")),
        "{:?}",
        prod.artifacts
            .files
            .iter()
            .map(|f| &f.0)
            .collect::<Vec<_>>()
    );
    // Without `--env`, the default environment (staging).
    let default = compile_env(&file, None, &lock).unwrap();
    assert_eq!(default.artifacts.files, staging.artifacts.files);
}

#[test]
fn a_promoted_environment_needs_its_lock_entry() {
    let file = read(&example());
    let mut lock = example_lock();
    lock.environments.clear();
    let d = compile_env(&file, Some("prod"), &lock).unwrap_err();
    assert_eq!(codes(&d), ["bake::env::not_promoted"], "{d:?}");
    let text = render::human(&file, &d, Style::PLAIN);
    assert!(
        text.contains("bake promote <spec> --from staging --to prod"),
        "{text}"
    );
    assert!(text.contains("images-from \"staging\""), "{text}");
    // An entry for another region, or promoted from another environment, is stale.
    let mut lock = example_lock();
    lock.environments
        .get_mut("prod")
        .unwrap()
        .images
        .get_mut("shop")
        .unwrap()
        .region = "eu-west-1".into();
    let d = compile_env(&file, Some("prod"), &lock).unwrap_err();
    assert_eq!(codes(&d), ["bake::env::not_promoted"]);
    assert!(d[0].message.contains("eu-west-1"), "{}", d[0].message);
    let mut lock = example_lock();
    lock.environments
        .get_mut("prod")
        .unwrap()
        .images
        .get_mut("shop")
        .unwrap()
        .from = "qa".into();
    let d = compile_env(&file, Some("prod"), &lock).unwrap_err();
    assert!(d[0].message.contains("from `qa`"), "{}", d[0].message);
    // A value that is not an AMI id never reaches the template.
    let mut lock = example_lock();
    lock.environments
        .get_mut("prod")
        .unwrap()
        .images
        .get_mut("shop")
        .unwrap()
        .ami = "ami-0c5e8f1a2b3d4c6e7\"}".into();
    let d = compile_env(&file, Some("prod"), &lock).unwrap_err();
    assert_eq!(codes(&d), ["bake::lock::invalid"]);
}

#[test]
fn the_environment_to_use_is_named_or_the_default() {
    let file = read(&example());
    let (_, d) = bake::check_source_env(&file, Want::Env(Some("prdo")));
    assert_eq!(codes(&d), ["bake::env::unknown"]);
    assert_eq!(d[0].help.as_deref(), Some("did you mean `--env prod`?"));
    // Without a default, `--env` is required.
    let text = file.text.replace(" default=#true", "");
    let f = SourceFile::new("t.kdl", text);
    let (checked, d) = bake::check_source_env(&f, Want::Env(None));
    assert!(checked.is_none());
    assert_eq!(codes(&d), ["bake::env::required"]);
    // `bake check` and the editor still check it clean.
    let (plan, d) = bake::check_source(&f);
    assert!(plan.is_some() && d.is_empty(), "{d:?}");
    // A spec without environments takes no `--env`.
    let web = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/web.kdl"));
    let (_, d) = bake::check_source_env(&web, Want::Env(Some("prod")));
    assert_eq!(codes(&d), ["bake::env::unknown"]);
    let (checked, d) = bake::check_source_env(&web, Want::Env(None));
    assert!(checked.is_some_and(|c| c.env.is_none()) && d.is_empty());
}

/// Spec text with one environment appended to the shipped example.
fn with(extra: &str) -> SourceFile {
    let text = std::fs::read_to_string(example()).unwrap();
    SourceFile::new("t.kdl", format!("{text}\n{extra}\n"))
}

fn problem(extra: &str) -> Vec<Diag> {
    let f = with(extra);
    let (plan, d) = bake::check_source(&f);
    assert!(plan.is_none(), "{extra}");
    d
}

#[test]
fn overrides_are_typed_and_point_at_the_environment() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "environment \"qa\" { fleet \"shop\" desired=\"two\" }",
            "bake::spec::wrong_type",
            "\"two\"",
        ),
        (
            "environment \"qa\" { fleet \"shop\" instance-type=\"m7i large\" }",
            "bake::spec::invalid_value",
            "\"m7i large\"",
        ),
        (
            "environment \"qa\" { fleet \"shop\" max-size=3 }",
            "bake::spec::unknown_property",
            "max-size",
        ),
        (
            "environment \"qa\" { fleet \"shp\" min=1 }",
            "bake::env::unknown_fleet",
            "\"shp\"",
        ),
        (
            "environment \"qa\" { images-from \"stagin\" }",
            "bake::env::unknown",
            "\"stagin\"",
        ),
        (
            "environment \"qa\" { images-from \"qa\" }",
            "bake::env::promotion_cycle",
            "\"qa\"",
        ),
        (
            "environment \"qa\" { region \"us-east-1\" \"eu-west-1\" }",
            "bake::env::several_targets",
            "region",
        ),
        (
            "environment \"qa\" { account \"x\" }",
            "bake::spec::invalid_value",
            "\"x\"",
        ),
        (
            "environment \"qa\" default=#true",
            "bake::env::default",
            "environment",
        ),
        (
            "environment \"staging\"",
            "bake::spec::duplicate",
            "\"staging\"",
        ),
        // Checked like the fleet: an arm64 instance type for an x86_64 image, and sizes out of order.
        (
            "environment \"qa\" { fleet \"shop\" instance-type=\"m7g.large\" }",
            "bake::check::architecture",
            "\"m7g.large\"",
        ),
        // An environment's stack set is checked there: its type errors, regions and per-region values.
        (
            "environment \"qa\" { images-from \"staging\"; stack-set permission-model=\"SELF_MANAGED\" { accounts \"222222222222\"; regions \"us-east-1\"; preferences max-concurrent-count=\"two\" } }",
            "bake::spec::wrong_type",
            "\"two\"",
        ),
        (
            "environment \"qa\" { images-from \"staging\"; stack-set permission-model=\"SELF_MANAGED\" { accounts \"222222222222\"; regions \"us-east-1\" \"eu-wst-1\" } }",
            "bake::stackset::region",
            "\"eu-wst-1\"",
        ),
        (
            "environment \"qa\" { images-from \"staging\"; stack-set permission-model=\"SELF_MANAGED\" { accounts \"222222222222\"; regions \"us-east-1\" \"eu-west-1\"; region \"eu-west-1\" { subnets \"subnet-0b1c2d3e4f5a60728\" fleet=\"shop\"; security-groups \"sg-0b1c2d3e4f5a60728\" fleet=\"shop\" } } }",
            "bake::stackset::region_value",
            "\"eu-west-1\"",
        ),
        (
            "environment \"qa\" { fleet \"shop\" min=5 max=2 }",
            "bake::check::size_order",
            "",
        ),
    ];
    for (extra, code, at) in cases {
        let f = with(extra);
        let d = problem(extra);
        let start = f.text.len() - extra.len() - 1;
        let hit = d
            .iter()
            .find(|d| d.code.as_str() == *code && d.offset() >= start)
            .unwrap_or_else(|| panic!("{extra}: no {code} in the environment: {d:?}"));
        let offset = hit.offset();
        if !at.is_empty() {
            assert!(
                f.text[offset..].starts_with(at),
                "{extra}: {code} points at {:?}",
                &f.text[offset..(offset + 20).min(f.text.len())]
            );
        }
    }
    let d = problem("environment \"qa\" { region \"us-east-1\" \"eu-west-1\" }");
    assert!(
        d.iter()
            .any(|d| d.help.as_deref().is_some_and(|h| h.contains("stack-set"))),
        "{d:?}"
    );
    // With a stack set, the set names the target accounts: the environment's one account is where it is
    // administered, and several there would silently mean the first; an environment that builds its images
    // cannot run them through one.
    let d = problem(
        "environment \"qa\" { account \"222222222222\" \"333333333333\"; stack-set permission-model=\"SELF_MANAGED\" { accounts \"222222222222\" \"333333333333\"; regions \"us-east-1\" } }",
    );
    assert!(
        d.iter()
            .any(|d| d.code.as_str() == "bake::env::several_targets"
                && d.help
                    .as_deref()
                    .is_some_and(|h| h.contains("in the `stack-set`"))),
        "{d:?}"
    );
    let d = problem(
        "environment \"qa\" { account \"222222222222\"; stack-set permission-model=\"SELF_MANAGED\" { accounts \"222222222222\" \"333333333333\"; regions \"us-east-1\" } }",
    );
    assert!(
        !d.iter()
            .any(|d| d.code.as_str() == "bake::env::several_targets"),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|d| d.code.as_str() == "bake::stackset::built_image"),
        "{d:?}"
    );
}

#[test]
fn a_cycle_of_promotions_is_reported() {
    let d =
        problem("environment \"a\" { images-from \"b\" }\nenvironment \"b\" { images-from \"a\" }");
    let cycles: Vec<&Diag> = d
        .iter()
        .filter(|d| d.code == Code::EnvPromotionCycle)
        .collect();
    assert_eq!(cycles.len(), 2, "{d:?}");
    assert!(
        cycles[0].message.contains("a → b → a"),
        "{}",
        cycles[0].message
    );
}

#[test]
fn compile_env_writes_its_own_directory_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let spec = example();
    let run = |out: &Path, env: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_bake"))
            .args(["compile"])
            .arg(&spec)
            .arg("-o")
            .arg(out)
            .args(["--env", env])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&dir.path().join("a"), "prod");
    run(&dir.path().join("b"), "prod");
    run(&dir.path().join("a"), "staging");
    for name in ["template.json", "lock.json"] {
        let a = std::fs::read(dir.path().join("a/prod").join(name)).unwrap();
        let b = std::fs::read(dir.path().join("b/prod").join(name)).unwrap();
        assert_eq!(a, b, "{name}");
    }
    assert!(dir.path().join("a/staging/template.json").exists());
    assert!(!dir.path().join("a/template.json").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_bake"))
        .arg("compile")
        .arg(&spec)
        .arg("-o")
        .arg(dir.path().join("c"))
        .args(["--env", "production"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bake::env::unknown"), "{err}");
    assert!(!dir.path().join("c").exists());
}

#[test]
fn bake_lock_keeps_the_promotions_and_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("environments.kdl");
    std::fs::copy(example(), &spec).unwrap();
    let lock_path = dir.path().join("environments.lock.json");
    std::fs::copy(bake::cli::default_lock_path(&example()), &lock_path).unwrap();
    let before = std::fs::read(&lock_path).unwrap();
    let bake = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bake"))
            .args(args)
            .current_dir(dir.path())
            .env("BAKE_NOW", "2026-12-01T12:00:00Z")
            .output()
            .unwrap()
    };
    // Nothing to resolve for staging: the lock stays byte for byte, promotions included.
    let o = bake(&["lock", "environments.kdl"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("up to date"), "{err}");
    assert_eq!(std::fs::read(&lock_path).unwrap(), before);
    let o = bake(&["lock", "environments.kdl", "--check", "--env", "prod"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without prod's promotion, `--check --env prod` fails and says how to promote.
    let mut lock = example_lock();
    lock.environments.clear();
    std::fs::write(&lock_path, lock.to_json()).unwrap();
    let o = bake(&["lock", "environments.kdl", "--check", "--env", "prod"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bake::env::not_promoted"), "{err}");
    // A promoted environment has nothing for `bake lock` to resolve.
    let o = bake(&["lock", "environments.kdl", "--env", "prod"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("nothing to resolve"),
        "{err}"
    );
}
