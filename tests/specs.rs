//! The spec corpus: every shipped example compiles and its artifacts are snapshotted; every broken spec in
//! `tests/specs/err/` reports its problems, snapshotted as the user sees them.

use std::path::Path;

use bake::diag::render::{self, Style};
use bake::lock::Lock;
use bake::source::SourceFile;

fn read(path: &Path) -> SourceFile {
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

#[test]
fn examples_compile_and_match_snapshots() {
    insta::glob!("../specs", "*.kdl", |path| {
        let artifacts = compile(path);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for (name, content) in &artifacts.files {
            insta::with_settings!({ snapshot_suffix => format!("{stem}-{name}"), omit_expression => true }, {
                insta::assert_snapshot!(content);
            });
        }
    });
}

#[test]
fn broken_specs_report_every_problem() {
    insta::glob!("specs/err", "*.kdl", |path| {
        let file = read(path);
        let (plan, diags) = bake::check_source(&file);
        assert!(plan.is_none(), "{} should not check clean", path.display());
        assert!(diags.iter().any(|d| d.is_error()));
        // Source order: the first label of each diagnostic never goes backwards.
        let offsets: Vec<usize> = diags.iter().map(bake::diag::Diag::offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
        insta::with_settings!({ omit_expression => true }, {
            insta::assert_snapshot!(render::human(&file, &diags, Style::PLAIN));
        });
    });
}

#[test]
fn compile_is_deterministic() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "kdl") {
            assert_eq!(compile(&path), compile(&path), "{}", path.display());
        }
    }
}
