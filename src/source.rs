//! Source files and spans: the one place that knows a spec is text with byte offsets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use miette::SourceSpan as Span;

/// A spec file as bake read it. The text is shared, so diagnostics can point into it cheaply.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it; used in messages, never re-read.
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// The name shown in diagnostics (`specs/web.kdl`).
    pub fn name(&self) -> String {
        display_path(&self.path)
    }

    /// 1-based line and column (in characters) of a byte offset, for JSON output and editors.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Forward slashes on every platform, so messages and snapshots are the same everywhere.
pub fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// A value together with the place in the spec it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// A span from a byte offset and a length.
pub fn span(offset: usize, len: usize) -> Span {
    Span::from((offset, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let f = SourceFile::new("x.kdl", "größe 1\nüber x=1");
        assert_eq!(f.line_col(0), (1, 1));
        // "größe " is 8 bytes and 6 characters.
        assert_eq!(f.line_col(8), (1, 7));
        let second = f.text.find("x=").unwrap();
        assert_eq!(f.line_col(second), (2, 6));
    }
}
