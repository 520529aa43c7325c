//! `bake check` on any text: never a panic or a stack overflow, and syntax errors only when kdl refuses it too.
#![no_main]

use bake::source::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let file = SourceFile::new("fuzz.kdl", text);
    let (plan, diags) = bake::check_source(&file);
    assert!(plan.is_none() || diags.iter().all(|d| !d.is_error()));
    // Rendering never fails either, and the terminal shows at most 100 of them.
    let out = bake::diag::render::human(&file, &diags, bake::diag::render::Style::PLAIN);
    assert!(out.ends_with('\n'));
    let _ = bake::diag::render::json(&file, &diags);
});
