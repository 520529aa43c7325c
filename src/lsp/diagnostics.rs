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
