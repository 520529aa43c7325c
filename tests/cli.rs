//! The real binary: exit codes, output files, formats.

use std::path::Path;
use std::process::{Command, Output};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bake(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_exit_codes() {
    let root = Path::new(ROOT);
    assert_eq!(
        bake(&["check", "specs/web.kdl"], root).status.code(),
        Some(0)
    );
    let broken = bake(&["check", "tests/specs/err/size-order.kdl"], root);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("bake::check::size_order"),
        "{}",
        stderr(&broken)
    );
    let missing = bake(&["check", "specs/nope.kdl"], root);
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("cannot read specs/nope.kdl"));
    assert_eq!(bake(&["check"], root).status.code(), Some(2));
    assert_eq!(bake(&["frobnicate"], root).status.code(), Some(2));
}

#[test]
fn check_json_lists_every_diagnostic_with_positions() {
    let out = bake(
        &[
            "check",
            "--format",
            "json",
            "tests/specs/err/rolling-constraints.kdl",
        ],
        Path::new(ROOT),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"], 6);
    let first = &v["diagnostics"][0];
    assert_eq!(first["code"], "bake::check::min_in_service");
    assert_eq!(first["labels"][0]["line"], 11);
    assert_eq!(first["labels"][0]["primary"], true);
    assert_eq!(first["labels"].as_array().unwrap().len(), 2);
}

#[test]
fn compile_writes_every_artifact_and_is_byte_identical_from_any_directory() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let spec = Path::new(ROOT).join("specs/platform.kdl");
    let spec = spec.to_str().unwrap();
    let out_a = a.path().join("out");
    let first = bake(
        &["compile", spec, "-o", out_a.to_str().unwrap()],
        Path::new(ROOT),
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    // Another working directory, a relative output path.
    let second = bake(&["compile", spec, "-o", "out"], b.path());
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let mut names: Vec<String> = std::fs::read_dir(&out_a)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "batch.user-data.sh",
            "lock.json",
            "template.json",
            "web.bootstrap.sh",
            "web.ssm.json",
            "web.user-data.sh",
            "worker.bootstrap.sh",
            "worker.ssm.json",
            "worker.user-data.sh"
        ]
    );
    for name in names {
        assert_eq!(
            std::fs::read(out_a.join(&name)).unwrap(),
            std::fs::read(b.path().join("out").join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn compile_without_a_lock_entry_names_the_fix_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(ROOT).join("specs/web.kdl"),
        dir.path().join("web.kdl"),
    )
    .unwrap();
    let out = bake(&["compile", "web.kdl", "-o", "out"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bake::lock::missing") && err.contains("run `bake lock web.kdl`"),
        "{err}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be written on failure"
    );
}

#[test]
fn compile_detects_a_stale_lock_from_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(Path::new(ROOT).join("specs/web.kdl"))
        .unwrap()
        .replace(
            "al2023-ami-kernel-6.12-x86_64",
            "al2023-ami-kernel-6.18-x86_64",
        )
        .replace("ref=\"main\"", "ref=\"release\"");
    std::fs::write(dir.path().join("web.kdl"), spec).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("specs/web.lock.json"),
        dir.path().join("web.lock.json"),
    )
    .unwrap();
    let out = bake(&["compile", "web.kdl"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.matches("bake::lock::stale").count(), 2, "{err}");
    assert!(
        err.contains(
            "locked from /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
        ),
        "{err}"
    );
    assert!(!dir.path().join("bake.out").exists());
}

#[test]
fn a_damaged_lock_is_reported_against_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(ROOT).join("specs/web.kdl"),
        dir.path().join("web.kdl"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web.lock.json"),
        "{\"version\": 1, \"images\": {\"web\": 3}}",
    )
    .unwrap();
    let out = bake(&["compile", "web.kdl"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bake::lock::invalid") && err.contains("web.lock.json"),
        "{err}"
    );
}

#[test]
fn explain_prints_a_code() {
    let out = bake(&["explain", "check::size_order"], Path::new(ROOT));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("min <= desired <= max"));
    assert_eq!(
        bake(&["explain", "nope"], Path::new(ROOT)).status.code(),
        Some(2)
    );
}

#[test]
fn recompiling_leaves_unchanged_artifacts_alone_and_replaces_changed_ones() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    for f in ["web.kdl", "web.lock.json"] {
        std::fs::copy(Path::new(ROOT).join("specs").join(f), dir.path().join(f)).unwrap();
    }
    let inode = |name: &str| {
        std::fs::metadata(dir.path().join("out").join(name))
            .unwrap()
            .ino()
    };
    let compile = || {
        let out = bake(&["compile", "web.kdl", "-o", "out"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    compile();
    let (template, script) = (inode("template.json"), inode("web.bootstrap.sh"));
    // An edit that changes the template but not the bootstrap script.
    let spec = std::fs::read_to_string(dir.path().join("web.kdl")).unwrap();
    let edited = spec.replacen("max=6", "max=7", 1);
    assert_ne!(spec, edited, "the example has max=6");
    std::fs::write(dir.path().join("web.kdl"), edited).unwrap();
    compile();
    assert_eq!(
        inode("web.bootstrap.sh"),
        script,
        "an unchanged file is not rewritten"
    );
    assert_ne!(
        inode("template.json"),
        template,
        "a changed file is replaced (renamed over)"
    );
    let text = std::fs::read_to_string(dir.path().join("out/template.json")).unwrap();
    assert!(text.contains("\"MaxSize\": \"7\""), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".bake-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn explain_takes_a_code_in_any_form_a_user_types() {
    let root = Path::new(ROOT);
    for typed in [
        "bake::spec::unknown_property",
        "spec::unknown_property",
        "bake::unknown_property",
        "unknown_property",
        "unknown-property",
    ] {
        let out = bake(&["explain", typed], root);
        assert_eq!(out.status.code(), Some(0), "{typed}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("bake::spec::unknown_property\n\n")
                && stdout.contains("does not take"),
            "{typed}: {stdout}"
        );
    }
    // A near miss is refused with the code it probably meant.
    let out = bake(&["explain", "unknown_propery"], root);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `bake::spec::unknown_property`?"),
        "{}",
        stderr(&out)
    );
    // A short name two stages share names both.
    let out = bake(&["explain", "missing"], root);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("give the whole code"), "{err}");
    assert!(err.matches("::missing`").count() >= 2, "{err}");
}

#[test]
fn absurd_nesting_is_a_diagnostic_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let deep = format!(
        "stack \"web\" region=\"us-east-1\"\n{}{}",
        "a {".repeat(20_000),
        "}".repeat(20_000)
    );
    std::fs::write(dir.path().join("deep.kdl"), deep).unwrap();
    for args in [
        &["check", "deep.kdl"][..],
        &["compile", "deep.kdl"],
        &["fmt", "--check", "deep.kdl"],
    ] {
        let out = bake(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("nest more than 256 levels"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
