//! bake's `Diag`s as LSP diagnostics: the same problems `bake check` prints, at the same places.

use lsp_types::{
    Diagnostic, DiagnosticRelatedInformation, DiagnosticSeverity, Location, NumberOrString, Uri,
};

use super::convert::LineIndex;
use super::incremental::Chunks;
use crate::diag::{Diag, Severity};
use crate::source::SourceFile;

/// Parses and checks a document (never the network) and converts every diagnostic. Top-level nodes whose text is
/// unchanged since the last call are not parsed again; text that does not parse piecewise is parsed whole, so
/// syntax errors are kdl's own.
pub fn diagnose(uri: &Uri, file: &SourceFile, chunks: &mut Chunks) -> Vec<Diagnostic> {
    let index = LineIndex::new(&file.text);
    // Checked before the piecewise parse too: kdl's parser recurses once per level.
    if let Some(d) = crate::spec::too_deep(&file.text) {
        return vec![to_lsp(uri, &file.text, &index, &d)];
    }
    let (_, diags) = match chunks.parse(&file.text) {
        Some(doc) => crate::check_document(&doc),
        None => crate::check_source(file),
    };
    diags
        .iter()
        .map(|d| to_lsp(uri, &file.text, &index, d))
        .collect()
}

/// One `Diag`: the primary label is the range; its text and the help are appended to the message; the other
/// labels become related information.
pub fn to_lsp(uri: &Uri, text: &str, index: &LineIndex, d: &Diag) -> Diagnostic {
    let (range, primary_text) = match d.labels.first() {
        Some(l) => (
            index.range(text, l.span.offset(), l.span.len()),
            l.text.as_str(),
        ),
        None => (index.range(text, 0, 0), ""),
    };
    let mut message = d.message.clone();
    if !primary_text.is_empty() && primary_text != "here" {
        message.push('\n');
        message.push_str(primary_text);
    }
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .skip(1)
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(
                uri.clone(),
                index.range(text, l.span.offset(), l.span.len()),
            ),
            message: if l.text.is_empty() {
                "related".to_owned()
            } else {
                l.text.clone()
            },
        })
        .collect();
    Diagnostic {
        range,
        severity: Some(severity(d.severity)),
        code: Some(NumberOrString::String(d.code.as_str().to_owned())),
        source: Some("bake".to_owned()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Diagnostic::default()
    }
}

fn severity(s: Severity) -> DiagnosticSeverity {
    match s {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Advice => DiagnosticSeverity::HINT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `bake check` reports, converted the same way.
    fn full(uri: &Uri, file: &SourceFile) -> Vec<Diagnostic> {
        let index = LineIndex::new(&file.text);
        let (_, diags) = crate::check_source(file);
        diags
            .iter()
            .map(|d| to_lsp(uri, &file.text, &index, d))
            .collect()
    }

    /// Text a user types or pastes, including what KDL treats specially: every line break, a byte-order mark,
    /// slashdash, braces, quotes, escapes, comment openers.
    const TYPED: &[&str] = &[
        "\u{FEFF}",
        "\u{FEFF}stack \"x\"\n",
        "\n",
        "\r\n",
        "\r",
        "\u{85}",
        "\u{0C}",
        "\u{0B}",
        "\u{2028}",
        "\u{2029}",
        "/-",
        "/- ",
        "{",
        "}",
        "\"",
        "\"\"\"\n",
        "#\"",
        "\\",
        " \\\n",
        "/*",
        "*/",
        "//",
        ";",
        "=",
        "(",
        ")",
        " x",
        "\n\n",
        "image \"w\" {\n",
        "\u{A0}",
        "\t",
    ];

    /// Editor diagnostics equal `bake check`'s after any edit: random insertions and deletions on every spec of
    /// the corpus, with the previous text in the cache as in the editor.
    #[test]
    fn editor_diagnostics_equal_bake_checks_after_generated_edits() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let uri: Uri = "file:///t.kdl".parse().unwrap();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as usize
        };
        let mut compared = 0;
        for d in ["specs", "tests/specs/err"] {
            for entry in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
                if entry.path().extension().is_none_or(|x| x != "kdl") {
                    continue;
                }
                let original = std::fs::read_to_string(entry.path()).unwrap();
                let mut chunks = Chunks::default();
                let mut text = original.clone();
                for step in 0..60 {
                    if step % 20 == 0 {
                        text = original.clone();
                    }
                    let mut at = rand() % (text.len() + 1);
                    while !text.is_char_boundary(at) {
                        at -= 1;
                    }
                    // Half the edits at the start of a line, where pieces start.
                    if rand() % 2 == 0 {
                        at = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    }
                    if rand() % 4 == 0 {
                        let mut end = (at + 1 + rand() % 12).min(text.len());
                        while !text.is_char_boundary(end) {
                            end += 1;
                        }
                        text.replace_range(at..end, "");
                    } else {
                        text.insert_str(at, TYPED[rand() % TYPED.len()]);
                    }
                    let file = SourceFile::new("t.kdl", text.as_str());
                    let editor = diagnose(&uri, &file, &mut chunks);
                    assert_eq!(editor, full(&uri, &file), "{text:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 500, "{compared}");
    }
}
