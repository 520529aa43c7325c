//! The editor's piecewise parse: the input is split in two at its first NUL byte (an earlier and a later version
//! of a document, as in the editor, where the earlier one is in the cache); the diagnostics of the later one
//! must equal `bake check`'s.
#![no_main]

use bake::lsp::convert::LineIndex;
use bake::lsp::diagnostics::{diagnose, to_lsp};
use bake::lsp::incremental::Chunks;
use bake::source::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (before, after) = text.split_once('\0').unwrap_or((text, text));
    let uri: lsp_types::Uri = "file:///fuzz.kdl".parse().unwrap();
    let mut chunks = Chunks::default();
    let _ = diagnose(&uri, &SourceFile::new("fuzz.kdl", before), &mut chunks);
    let file = SourceFile::new("fuzz.kdl", after);
    let editor = diagnose(&uri, &file, &mut chunks);
    let index = LineIndex::new(&file.text);
    let (_, diags) = bake::check_source(&file);
    let full: Vec<_> = diags
        .iter()
        .map(|d| to_lsp(&uri, &file.text, &index, d))
        .collect();
    assert_eq!(editor, full);
});
