//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod peers;

use std::path::{Path, PathBuf};
use std::process::Command;

use bake::diag::render::{self, Style};
use bake::lock::Lock;
use bake::source::SourceFile;

/// The example specs shipped in `specs/`, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
            .collect();
    out.sort();
    out
}

pub fn read(path: &Path) -> SourceFile {
    let text = std::fs::read_to_string(path).unwrap();
    // Snapshots name files relative to the repository, as a user would type them.
    let name = path
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .to_path_buf();
    SourceFile::new(name, text)
}

/// Compiles a spec with its lock, as `bake compile` does, returning the artifacts.
pub fn compile(path: &Path) -> bake::emit::Artifacts {
    let file = read(path);
    let (plan, diags) = bake::check_source(&file);
    let plan = plan.unwrap_or_else(|| panic!("{}", render::human(&file, &diags, Style::PLAIN)));
    let lock_path = bake::cli::default_lock_path(path);
    let lock = Lock::from_json(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    let resolved = bake::lock::verify(&plan, &lock, &file.name())
        .unwrap_or_else(|d| panic!("{}", render::human(&file, &d, Style::PLAIN)));
    bake::emit::emit(&plan, &resolved, &lock).unwrap()
}

/// git in `dir` as a test fixture needs it: a fixed author and `date`, no signing, no system or user config.
pub fn git(dir: &Path, args: &[&str], date: &str) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bake",
            "-c",
            "user.email=bake@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
