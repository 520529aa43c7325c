//! A bake killed mid-write (kill -9 during `bake lock`) leaves a `.bake-XXXXXX.tmp` beside its target; the next
//! run that writes there removes it, and a run that fails leaves none. The real binary, a real directory.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn temporaries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".bake-") && n.ends_with(".tmp"))
        .collect();
    v.sort();
    v
}

fn compile(out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(["compile", "specs/rollback.kdl", "--out"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_stale_temporary_is_removed_by_the_next_run() {
    let out = tempfile::tempdir().unwrap();
    let stale = out.path().join(".bake-k9Lx2Q.tmp");
    std::fs::write(&stale, "{\"half\": ").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    let run = compile(out.path());
    assert!(run.status.success(), "{run:?}");
    assert_eq!(temporaries(out.path()), Vec::<String>::new());
    assert!(out.path().join("template.json").is_file());
    assert!(out.path().join("lock.json").is_file());
}

#[test]
fn a_failed_run_leaves_no_temporary() {
    let out = tempfile::tempdir().unwrap();
    // Every artifact's name is taken by a non-empty directory: each rename fails after its temporary is written.
    let first = compile(out.path());
    assert!(first.status.success(), "{first:?}");
    let blocked = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let name = entry.unwrap().file_name();
        let dir = blocked.path().join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("keep"), "").unwrap();
    }
    let run = compile(blocked.path());
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    assert_eq!(temporaries(blocked.path()), Vec::<String>::new());
}
