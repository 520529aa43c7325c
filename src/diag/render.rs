//! Rendering diagnostics: graphical for people, JSON for CI and scripts.
//!
//! Both take time linear in the text plus the diagnostics: the text's line breaks are indexed once, so finding a
//! label's line is a binary search (miette's own `SourceCode` for `str` counts lines from the start of the file
//! for every label, and a spec with thousands of errors took minutes). The terminal gets the first
//! `TERMINAL_LIMIT` diagnostics and a count of the rest; JSON has all of them.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, MietteError, MietteSpanContents, Severity,
    SourceCode, SourceSpan, SpanContents,
};
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

/// How many diagnostics the terminal shows; the rest are counted.
pub const TERMINAL_LIMIT: usize = 100;

/// A file's text with its line breaks indexed, read the way miette reads a `str`.
struct Indexed {
    name: String,
    text: Arc<str>,
    /// The last byte of each line break (`\r\n`, `\r` or `\n`, as miette counts lines).
    breaks: Vec<usize>,
}

impl Indexed {
    fn new(file: &SourceFile) -> Self {
        let b = file.text.as_bytes();
        let breaks = (0..b.len())
            .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
            .collect();
        Self {
            name: file.name(),
            text: file.text.clone(),
            breaks,
        }
    }
}

impl SourceCode for Indexed {
    /// miette's reading of the whole text, applied to the text from `context_lines_before` lines above the span:
    /// the same contents, line and column, found without scanning what comes before.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let line = self.breaks.partition_point(|&b| b < span.offset());
        // One line more than needed: a span at the very start of the window would read differently (miette treats
        // an empty span at offset 0 as one byte long).
        let first = line.saturating_sub(context_lines_before + 1);
        let start = if first == 0 {
            0
        } else {
            self.breaks[first - 1] + 1
        };
        let window: &'a str = &self.text[start..];
        let inner = SourceSpan::new((span.offset().saturating_sub(start)).into(), span.len());
        let c = window.read_span(&inner, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            c.data(),
            SourceSpan::new((c.span().offset() + start).into(), c.span().len()),
            c.line() + first,
            c.column(),
            c.line_count() + first,
        )))
    }
}

/// A diagnostic with the file it points into, so the frame names the file.
struct InFile<'a> {
    diag: &'a Diag,
    source: &'a Indexed,
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
        Some(self.source)
    }
}

/// Renders the diagnostics with their source frames (the first `TERMINAL_LIMIT`, then a count of the rest),
/// followed by a one-line summary of all of them.
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
    let source = Indexed::new(file);
    let mut out = String::new();
    for diag in diags.iter().take(TERMINAL_LIMIT) {
        let in_file = InFile {
            diag,
            source: &source,
        };
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, &in_file);
        out.push('\n');
    }
    if let Some(rest) = diags.len().checked_sub(TERMINAL_LIMIT).filter(|&n| n > 0) {
        let what = if rest == 1 { "problem" } else { "problems" };
        out.push_str(&format!(
            "… and {rest} more {what}; `--format json` lists all\n\n"
        ));
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
    let lines = Lines::new(&file.text);
    let items: Vec<Value> = diags
        .iter()
        .map(|d| {
            let labels: Vec<Value> = d
                .labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let (line, column) = lines.line_col(l.span.offset());
                    let (end_line, end_column) = lines.line_col(l.span.offset() + l.span.len());
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

/// `SourceFile::line_col` with the line starts indexed once.
struct Lines<'a> {
    text: &'a str,
    /// Byte offsets of the `\n`s.
    newlines: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            newlines: text.match_indices('\n').map(|(i, _)| i).collect(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.newlines.partition_point(|&n| n < offset);
        let line_start = if line == 0 {
            0
        } else {
            self.newlines[line - 1] + 1
        };
        (line + 1, self.text[line_start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;
    use crate::source::span;

    /// The indexed source gives miette exactly what the whole text gives it, for labels anywhere (first and last
    /// line, line breaks of each kind, empty and multi-line spans) and any number of context lines.
    #[test]
    fn indexed_source_reads_what_the_text_reads() {
        let text = "a\nbb\r\nccc\rdddd\n\n\u{e9}e \u{fc}\r\n\r\nlast";
        let file = SourceFile::new("t.kdl", text);
        let indexed = Indexed::new(&file);
        let named = miette::NamedSource::new(file.name(), text.to_owned());
        for offset in 0..=text.len() {
            if !text.is_char_boundary(offset) {
                continue;
            }
            for len in [0, 1, 3, 9] {
                let len = len.min(text.len() - offset);
                for ctx in [0, 1, 2] {
                    let s = SourceSpan::new(offset.into(), len);
                    let a = named.read_span(&s, ctx, ctx);
                    let b = indexed.read_span(&s, ctx, ctx);
                    match (a, b) {
                        (Ok(a), Ok(b)) => {
                            let got = (a.data(), a.span(), a.line(), a.column(), a.line_count());
                            let want = (b.data(), b.span(), b.line(), b.column(), b.line_count());
                            assert_eq!(got, want, "offset {offset} len {len} ctx {ctx}");
                            assert_eq!(a.name(), b.name());
                        }
                        (Err(_), Err(_)) => {}
                        (a, b) => panic!(
                            "offset {offset} len {len}: {:?} vs {:?}",
                            a.is_ok(),
                            b.is_ok()
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn lines_agree_with_the_source_file() {
        let file = SourceFile::new("t.kdl", "gr\u{f6}\u{df}e 1\n\u{fc}ber x=1\r\n\nz");
        let lines = Lines::new(&file.text);
        for offset in 0..=file.text.len() + 2 {
            assert_eq!(lines.line_col(offset), file.line_col(offset), "{offset}");
        }
    }

    fn errors(n: usize) -> (SourceFile, Vec<Diag>) {
        let text: String = (0..n).map(|i| format!("node{i} 1\n")).collect();
        let file = SourceFile::new("t.kdl", text);
        let mut offset = 0;
        let diags = (0..n)
            .map(|i| {
                let d = Diag::error(Code::UnknownNode, format!("unknown node `node{i}`"))
                    .label(span(offset, 4 + i.to_string().len()), "here");
                offset += format!("node{i} 1\n").len();
                d
            })
            .collect();
        (file, diags)
    }

    #[test]
    fn the_terminal_shows_the_first_hundred_and_counts_the_rest() {
        let (file, diags) = errors(250);
        let out = human(&file, &diags, Style::PLAIN);
        assert!(out.contains("unknown node `node99`"));
        assert!(!out.contains("unknown node `node100`"));
        assert_eq!(
            out.matches("bake::spec::unknown_node").count(),
            TERMINAL_LIMIT
        );
        assert!(
            out.contains("… and 150 more problems; `--format json` lists all"),
            "{out}"
        );
        assert!(out.ends_with("t.kdl: 250 errors\n"));
        assert_eq!(
            json(&file, &diags)["diagnostics"].as_array().unwrap().len(),
            250
        );

        let (file, diags) = errors(TERMINAL_LIMIT);
        let out = human(&file, &diags, Style::PLAIN);
        assert_eq!(
            out.matches("bake::spec::unknown_node").count(),
            TERMINAL_LIMIT
        );
        assert!(!out.contains("more problem"));
    }
}
