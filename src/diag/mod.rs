//! Diagnostics: one `Diag` type for every stage, rendered for terminals, JSON and editors.
//!
//! A `Diag` carries only spans; the source is attached when it is rendered, so one file's diagnostics share it.

mod code;
pub mod render;

use std::fmt;

pub use code::{Code, Lookup};
pub use miette::Severity;

use crate::source::Span;

/// One problem found in a spec, with the places it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one; the others show related places.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

impl Diag {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Error, message)
    }

    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(code, Severity::Warning, message)
    }

    fn new(code: Code, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    #[must_use]
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Where the diagnostic points first; used to report in source order.
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |l| l.span.offset())
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl miette::Diagnostic for Diag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_deref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().enumerate().map(|(i, l)| {
            let text = (!l.text.is_empty()).then(|| l.text.clone());
            if i == 0 {
                miette::LabeledSpan::new_primary_with_span(text, l.span)
            } else {
                miette::LabeledSpan::new_with_span(text, l.span)
            }
        })))
    }
}

/// Diagnostics collected by a stage. Stages push every problem they find and go on.
#[derive(Debug, Default)]
pub struct Diags(Vec<Diag>);

impl Diags {
    pub fn push(&mut self, d: Diag) {
        self.0.push(d);
    }

    pub fn extend(&mut self, ds: impl IntoIterator<Item = Diag>) {
        self.0.extend(ds);
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diag::is_error)
    }

    pub fn into_vec(self) -> Vec<Diag> {
        self.0
    }
}

/// Sorts diagnostics into source order (stable, so equal offsets keep the order they were found in).
pub fn sort(diags: &mut [Diag]) {
    diags.sort_by_key(Diag::offset);
}

pub fn has_errors(diags: &[Diag]) -> bool {
    diags.iter().any(Diag::is_error)
}
