//! The spec corpus: every shipped example compiles and its artifacts are snapshotted; every broken spec in
//! `tests/specs/err/` reports its problems, snapshotted as the user sees them.

use std::path::Path;

use bake::diag::render::{self, Style};

mod common;
use common::{compile, read};

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

/// The shipped examples are what users copy: each checks without a warning (a warning there is a false alarm in
/// bake or a bad example; `cache.kdl` once drew a missing-deploy-key warning for a flake its build instance
/// never fetches).
#[test]
fn examples_check_without_warnings() {
    insta::glob!("../specs", "*.kdl", |path| {
        let file = read(path);
        let (plan, diags) = bake::check_source(&file);
        assert!(plan.is_some(), "{} should check clean", path.display());
        assert!(
            diags.is_empty(),
            "{}:\n{}",
            path.display(),
            render::human(&file, &diags, Style::PLAIN)
        );
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
