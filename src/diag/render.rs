//! Rendering diagnostics: graphical for people, JSON for CI and scripts.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, NamedSource, Severity};
use serde_json::{Value, json};

use super::Diag;
use crate::source::SourceFile;

/// How to draw the graphical report.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: usize,
}

impl Style {
    /// The style of snapshots and pipes: no colour, no links, a fixed width.
    pub const PLAIN: Style = Style {
        color: false,
        width: 100,
    };
}

/// A diagnostic with the file it points into, so the frame names the file.
struct InFile<'a> {
    diag: &'a Diag,
    source: NamedSource<std::sync::Arc<str>>,
}

impl fmt::Debug for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for InFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.diag, f)
    }
}

impl std::error::Error for InFile<'_> {}

impl Diagnostic for InFile<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.diag.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.diag.labels()
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }
}

/// Renders every diagnostic with its source frame, followed by a one-line summary.
pub fn human(file: &SourceFile, diags: &[Diag], style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(style.width)
        .without_syntax_highlighting();
    let mut out = String::new();
    for diag in diags {
        let in_file = InFile {
            diag,
            source: NamedSource::new(file.name(), file.text.clone()),
        };
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &in_file);
        out.push('\n');
    }
    out.push_str(&summary(file, diags));
    out.push('\n');
    out
}

/// `specs/web.kdl: 2 errors, 1 warning`.
pub fn summary(file: &SourceFile, diags: &[Diag]) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let mut parts = Vec::new();
    if errors > 0 {
        parts.push(plural(errors, "error"));
    }
    if warnings > 0 {
        parts.push(plural(warnings, "warning"));
    }
    if parts.is_empty() {
        parts.push("no problems".to_owned());
    }
    format!("{}: {}", file.name(), parts.join(", "))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The JSON form of a file's diagnostics: stable keys, 1-based lines and columns, byte offsets.
pub fn json(file: &SourceFile, diags: &[Diag]) -> Value {
    let items: Vec<Value> = diags
        .iter()
        .map(|d| {
            let labels: Vec<Value> = d
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let (line, column) = file.line_col(l.span.offset());
                    let (end_line, end_column) = file.line_col(l.span.offset() + l.span.len());
                    json!({
                        "primary": i == 0,
                        "label": l.text,
                        "offset": l.span.offset(),
                        "length": l.span.len(),
                        "line": line,
                        "column": column,
                        "end_line": end_line,
                        "end_column": end_column,
                    })
                })
                .collect();
            json!({
                "file": file.name(),
                "severity": if d.is_error() { "error" } else { "warning" },
                "code": d.code.as_str(),
                "message": d.message,
                "help": d.help,
                "labels": labels,
            })
        })
        .collect();
    json!({
        "file": file.name(),
        "errors": diags.iter().filter(|d| d.is_error()).count(),
        "warnings": diags.iter().filter(|d| !d.is_error()).count(),
        "diagnostics": items,
    })
}
