//! Stage 1: spec text → `Tree`.
//!
//! Input: a `SourceFile`. Output: the nodes that fit the schema, and every syntax and shape problem.
//! This stage never looks at meaning (sizes, references, architectures): that is `check`.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

pub mod fetch_grammar;
pub mod grammar;
pub mod lex;
pub mod pieces;
pub mod schema;
mod shape;
pub mod stack;
pub mod suggest;
pub mod tree;

use kdl::KdlDocument;

use crate::diag::{Code, Diag, Diags};
use crate::source::SourceFile;
pub use tree::{Item, Tree, Value};

/// Parses a spec. Returns `None` for the tree when the text is not KDL at all (the syntax layer failed).
pub fn parse(file: &SourceFile) -> (Option<Tree>, Vec<Diag>) {
    // A large spec's pieces parse on two threads; anything unusual is parsed whole, for kdl's own report.
    let parsed = pieces::parse(&file.text).map_or_else(|| stack::parse(&file.text), Ok);
    match parsed {
        Ok(doc) => {
            let (tree, diags) = shape(&doc);
            // kdl keeps every node's formatting: freeing a large spec's document is a tenth of its parse.
            if file.text.len() >= pieces::PARALLEL_MIN {
                crate::drop_later(doc);
            }
            (Some(tree), diags)
        }
        Err(stack::Failure::Syntax(err)) => (None, syntax_diags(file, &err)),
        Err(stack::Failure::Refused(d)) => (None, vec![d]),
    }
}

/// The shape check of a document that is already parsed (the editor parses incrementally).
pub fn shape(doc: &KdlDocument) -> (Tree, Vec<Diag>) {
    let mut diags = Diags::default();
    let items = shape::check_document(doc, &mut diags);
    (Tree { items }, diags.into_vec())
}

/// Text nested deeper than any spec could be is refused before kdl parses it (`stack` keeps kdl's recursion within
/// its stack; this keeps what comes after it — checks, formatting, dropping the tree — shallow).
pub fn too_deep(text: &str) -> Option<Diag> {
    lex::deeper_than(text, lex::MAX_DEPTH).map(depth_diag)
}

fn depth_diag(offset: usize) -> Diag {
    Diag::error(
        Code::Syntax,
        format!(
            "`{{ }}` blocks nest more than {} levels deep; bake does not parse this",
            lex::MAX_DEPTH
        ),
    )
    .label(crate::source::span(offset, 1), "this block is too deep")
    .help("a bake spec nests three levels (fleet > rollout > checkpoints)")
}

/// Maps kdl's syntax errors into bake's, with hints for the mistakes KDL v2 makes easy.
fn syntax_diags(file: &SourceFile, err: &kdl::KdlError) -> Vec<Diag> {
    let len = file.text.len();
    let mut out: Vec<Diag> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for d in &err.diagnostics {
        let offset = d.span.offset().min(len);
        let span = crate::source::span(offset, d.span.len().min(len - offset));
        let message = d
            .message
            .clone()
            .unwrap_or_else(|| "invalid KDL".to_owned());
        let text = &file.text[span.offset()..span.offset() + span.len()];
        let word = text
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
            .next()
            .unwrap_or("");
        let help = match word {
            "true" | "false" | "null" | "inf" | "nan" => Some(format!("KDL v2 writes `{word}` as `#{word}`")),
            _ if message.contains("identifier") || message.contains("end of document") => Some(
                "strings containing `/`, `:`, `=`, spaces or other punctuation must be quoted: \"...\"".to_owned(),
            ),
            _ => d.help.clone(),
        };
        // Recovery after one error often yields a second diagnostic on the same spot; keep the first.
        if !seen.insert(span.offset()) {
            continue;
        }
        let label = d.label.clone().unwrap_or_else(|| "here".to_owned());
        let mut diag = Diag::error(Code::Syntax, message).label(span, label);
        if let Some(h) = help {
            diag = diag.help(h);
        }
        out.push(diag);
    }
    if out.is_empty() {
        out.push(Diag::error(Code::Syntax, "invalid KDL").label(crate::source::span(0, 0), "here"));
    }
    out
}
