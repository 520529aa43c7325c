//! `bake fmt` and the editor's formatting: canonical layout for a spec, comments kept.
//!
//! The layout is kdl's `KdlDocument::autoformat()` (four-space indentation, one node per line, single spaces
//! between entries, `;` turned into line breaks), with repairs for what autoformat gets wrong in kdl 6.7:
//!
//! - it drops a line comment after a node (`tags a=1 // why`), a comment between a node's entries and its `{`,
//!   and slashdashed arguments (`rpms "git" /- "jq"`): bake keeps them where they were;
//! - it rewrites every value (`"web"` becomes `web`): bake keeps values as the author wrote them, so the only
//!   changes are whitespace;
//! - it removes blank lines between nodes and mis-indents comments before a `}`: bake keeps one blank line where
//!   there was at least one, and indents comments like the nodes around them.
//!
//! - it loses what follows a children block's `}` on the same line (`} // why`, `} /* x */`, and with it the line
//!   break, so the blank line after goes too): bake reads it back from the text.
//!
//! Lines inside a multi-line `/* ... */` comment are re-indented (trimmed); their text is kept. Every KDL line
//! break (CR, NEL, FF, U+2028 ...) becomes `\n`, or `\r\n` in a file that uses CRLF throughout.
//!
//! Then it checks its own work against the user's text, not against kdl's reading of it: the result must parse to
//! the same nodes and values, and keep every character of the original but whitespace, line breaks, `;` between
//! nodes and the `\` of line continuations (`spec::lex::significant`), in the same order. If not (a layout this
//! module does not know), formatting fails, naming what would be lost, and the file is left alone.

use std::fmt;

use kdl::{KdlDocument, KdlNode};

use crate::diag::Diag;
use crate::source::SourceFile;
use crate::spec::lex::{self, Kind};
use crate::spec::stack::{self, Failure};

const INDENT: &str = "    ";

#[derive(Debug)]
pub enum FmtError {
    /// The file is not valid KDL; these are its syntax diagnostics. Nothing was formatted.
    Syntax(Vec<Diag>),
    /// The formatted text would not keep the document or its comments intact; the file must be left alone.
    Unsafe(String),
}

impl fmt::Display for FmtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FmtError::Syntax(diags) => {
                write!(f, "the file is not valid KDL ({} problems)", diags.len())
            }
            FmtError::Unsafe(why) => write!(
                f,
                "formatting would {why}; the file is left as it is (please report this layout as a bake bug)"
            ),
        }
    }
}

impl std::error::Error for FmtError {}

/// The canonical text of a spec. `format(format(x)) == format(x)`.
pub fn format(file: &SourceFile) -> Result<String, FmtError> {
    let text = lf_newlines(&file.text);
    let original = match stack::parse(&text) {
        Ok(doc) => doc,
        Err(Failure::Refused(d)) => return Err(FmtError::Syntax(vec![d])),
        Err(Failure::Syntax(_)) => return Err(syntax_error(file)),
    };
    let mut original = original;
    restore_lost_terminators(&mut original, &text);
    // What kdl kept of the text must be all of it; otherwise nothing below could keep it.
    lost(&file.text, &original.to_string())?;
    let mut doc = original.clone();
    let mut notes = Notes::default();
    collect(&doc, &mut notes);
    keep_values(&mut doc);
    doc.autoformat();
    let mut nodes = notes.nodes.into_iter();
    let mut docs = notes.docs.into_iter();
    repair(&mut doc, 0, &mut nodes, &mut docs);
    let out = doc.to_string();

    let Ok(again) = stack::parse(&out) else {
        return Err(FmtError::Unsafe("produce text that does not parse".into()));
    };
    if !same_document(&original, &again) {
        return Err(FmtError::Unsafe(
            "change the document's nodes or values".into(),
        ));
    }
    lost(&file.text, &out)?;
    let crlf = file.text.contains("\r\n")
        && file.text.matches('\n').count() == file.text.matches("\r\n").count();
    Ok(if crlf { out.replace('\n', "\r\n") } else { out })
}

/// The text with every KDL line break (`\r\n`, `\r`, NEL, VT, FF, U+2028, U+2029) turned into `\n`: the same
/// document (multi-line strings' values already have `\n`), in the one form the layout code below knows.
fn lf_newlines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        match lex::newline_at(text, i) {
            Some(n) => {
                out.push('\n');
                i += n;
            }
            None => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// kdl 6.7 drops what follows a children block's `}` when spaces come first (`} // why`, `} /* x */ ;`): the node's
/// span ends after the spaces and comments, and the terminator after it is consumed by nothing. Both are put back
/// from the text into the node's format.
fn restore_lost_terminators(doc: &mut KdlDocument, text: &str) {
    for node in doc.nodes_mut() {
        if let Some(children) = node.children_mut() {
            restore_lost_terminators(children, text);
        } else {
            continue;
        }
        let (start, end) = (
            node.span().offset(),
            node.span().offset() + node.span().len(),
        );
        let Some(f) = node.format_mut() else { continue };
        if !f.terminator.is_empty() || end > text.len() {
            continue;
        }
        // After the last token of the node (its `}`, or that of slashdashed children) only spaces and comments.
        let last = lex::tokenize(&text[start..end])
            .iter()
            .rfind(|t| t.kind != Kind::End)
            .map_or(end, |t| start + t.end);
        f.before_terminator.push_str(&text[last..end]);
        f.terminator = terminator_at(text, end).to_owned();
    }
}

/// KDL's `node-terminator` at `i`: `;`, a line break, or a `//` comment with its line break; empty if none.
fn terminator_at(text: &str, i: usize) -> &str {
    let rest = &text[i..];
    if rest.starts_with(';') {
        return &rest[..1];
    }
    if let Some(n) = lex::newline_at(text, i) {
        return &rest[..n];
    }
    if rest.starts_with("//") {
        let end = (i..text.len())
            .find(|&j| text.is_char_boundary(j) && lex::newline_at(text, j).is_some())
            .map_or(text.len(), |j| j + lex::newline_at(text, j).unwrap_or(0));
        return &text[i..end];
    }
    ""
}

/// Fails when `out` does not keep every character of `original` that formatting must keep, naming the first one.
fn lost(original: &str, out: &str) -> Result<(), FmtError> {
    let a = lex::significant(original);
    let b = lex::significant(out);
    let Some(i) = (0..a.len()).find(|&i| b.get(i).map(|x| x.1) != Some(a[i].1)) else {
        if b.len() == a.len() {
            return Ok(());
        }
        return Err(FmtError::Unsafe("add text that was not there".into()));
    };
    let offset = a[i].0;
    let file = SourceFile::new("", original);
    let (line, column) = file.line_col(offset);
    let rest = &original[offset..];
    let end = (0..rest.len())
        .find(|&j| rest.is_char_boundary(j) && lex::newline_at(rest, j).is_some())
        .unwrap_or(rest.len());
    let snippet: String = rest[..end].trim_end().chars().take(40).collect();
    Err(FmtError::Unsafe(format!(
        "lose or move `{snippet}` (line {line}, column {column})"
    )))
}

/// The syntax diagnostics, exactly as `bake check` reports them.
fn syntax_error(file: &SourceFile) -> FmtError {
    let (_, diags) = crate::spec::parse(file);
    FmtError::Syntax(diags.into_iter().filter(Diag::is_error).collect())
}

/// What autoformat throws away, recorded per node and per children block in document order.
#[derive(Default)]
struct Notes {
    nodes: Vec<NodeNote>,
    /// The `trailing` of the top document and of each children block (comments before `}`), in pre-order.
    docs: Vec<String>,
}

struct NodeNote {
    leading: String,
    /// Whether the first line of `leading` continues the previous line (first node of a block, or after `;`).
    leading_continues_line: bool,
    first_in_block: bool,
    before_children: String,
    before_terminator: String,
    terminator: String,
    /// How the node's name and its properties' names were written (`"my-node"`, `"bake:fleet"=…`): autoformat
    /// rewrites identifiers in their plainest form, which would change characters the user wrote.
    name_repr: Option<String>,
    entry_name_reprs: Vec<Option<String>>,
}

fn collect(doc: &KdlDocument, notes: &mut Notes) {
    notes
        .docs
        .push(doc.format().map(|f| f.trailing.clone()).unwrap_or_default());
    let mut previous_terminator: Option<String> = None;
    for node in doc.nodes() {
        let f = node.format().cloned().unwrap_or_default();
        notes.nodes.push(NodeNote {
            leading: f.leading.clone(),
            leading_continues_line: previous_terminator
                .as_ref()
                .is_none_or(|t| !t.ends_with('\n') && !t.ends_with('\r')),
            first_in_block: previous_terminator.is_none(),
            before_children: f.before_children.clone(),
            before_terminator: f.before_terminator.clone(),
            terminator: f.terminator.clone(),
            name_repr: node.name().repr().map(str::to_owned),
            entry_name_reprs: node
                .entries()
                .iter()
                .map(|e| e.name().and_then(|n| n.repr()).map(str::to_owned))
                .collect(),
        });
        previous_terminator = Some(f.terminator);
        if let Some(children) = node.children() {
            collect(children, notes);
        }
    }
}

fn keep_values(doc: &mut KdlDocument) {
    for node in doc.nodes_mut() {
        for entry in node.entries_mut() {
            entry.keep_format();
        }
        if let Some(children) = node.children_mut() {
            keep_values(children);
        }
    }
}

fn repair(
    doc: &mut KdlDocument,
    level: usize,
    nodes: &mut impl Iterator<Item = NodeNote>,
    docs: &mut impl Iterator<Item = String>,
) {
    let trailing = docs.next().unwrap_or_default();
    let has_nodes = !doc.nodes().is_empty();
    for node in doc.nodes_mut() {
        let Some(note) = nodes.next() else { return };
        repair_node(node, level, &note);
        if let Some(children) = node.children_mut() {
            repair(children, level + 1, nodes, docs);
        }
    }
    if let Some(f) = doc.format_mut() {
        if level == 0 {
            f.trailing = trailing_lines(&trailing, 0);
            if !has_nodes {
                let lines: Vec<&str> = f.leading.split('\n').collect();
                f.leading = comment_lines(&lines, first_indent(&lines), "", false);
                f.trailing = f.trailing.trim_start_matches('\n').to_owned();
            }
        } else {
            f.trailing = trailing_lines(&trailing, level);
            f.trailing.push_str(&INDENT.repeat(level - 1));
        }
    }
}

/// The comment lines of a decor string, re-indented: `base` (the author's indentation at this place) is replaced
/// by `indent`, deeper lines keep their extra indentation (a slashdashed block, a multi-line comment). Runs of
/// blank lines become one; blank lines at the end go; one at the start stays only if `blank_first`.
fn comment_lines(lines: &[&str], base: &str, indent: &str, blank_first: bool) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            blank = true;
            continue;
        }
        if blank && (blank_first || !out.is_empty()) {
            out.push('\n');
        }
        blank = false;
        out.push_str(indent);
        out.push_str(line.strip_prefix(base).unwrap_or_else(|| line.trim_start()));
        out.push('\n');
    }
    out
}

/// The indentation of the first non-blank line.
fn first_indent<'a>(lines: &[&'a str]) -> &'a str {
    lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .map_or("", |l| &l[..l.len() - l.trim_start().len()])
}

/// The trailing decor of a document (comments after its last node), at `level`.
fn trailing_lines(trailing: &str, level: usize) -> String {
    let lines: Vec<&str> = trailing.split('\n').collect();
    comment_lines(&lines, first_indent(&lines), &INDENT.repeat(level), true)
}

fn repair_node(node: &mut KdlNode, level: usize, note: &NodeNote) {
    if let Some(repr) = &note.name_repr {
        node.name_mut().set_repr(repr.clone());
    }
    for (entry, repr) in node.entries_mut().iter_mut().zip(&note.entry_name_reprs) {
        if let (Some(repr), Some(name)) = (repr, entry.name_mut()) {
            name.set_repr(repr.clone());
        }
    }
    for entry in node.entries_mut() {
        if let Some(f) = entry.format_mut() {
            let t = f.leading.trim();
            let after_escape = t.strip_prefix('\\').map(str::trim_start);
            f.leading = match after_escape {
                // A line continuation with a comment must keep its line break.
                Some(rest) if rest.starts_with("//") => continue,
                Some("") => " ".to_owned(),
                _ if t.is_empty() => " ".to_owned(),
                _ => format!(" {t} "),
            };
        }
    }
    let indent = INDENT.repeat(level);
    let Some(f) = node.format_mut() else { return };
    f.leading = leading(note, &indent);
    let before_children = note.before_children.trim();
    f.before_children = if before_children.is_empty() {
        " ".to_owned()
    } else {
        format!(" {before_children} ")
    };
    let before_terminator = note.before_terminator.trim();
    f.before_terminator = if before_terminator.is_empty() {
        String::new()
    } else {
        format!(" {before_terminator}")
    };
    let comment = note.terminator.trim();
    f.terminator = if comment.starts_with("//") {
        format!(" {comment}\n")
    } else {
        "\n".to_owned()
    };
}

/// A node's leading comments, one per line at the node's indentation, a single blank line kept before it (or
/// between comments) where the author left one.
fn leading(note: &NodeNote, indent: &str) -> String {
    let mut lines: Vec<&str> = note.leading.split('\n').collect();
    // What stands right before the node name on its line: the author's indentation, maybe `/* c */`.
    let last = lines.pop().unwrap_or_default();
    let base = &last[..last.len() - last.trim_start().len()];
    let inline = last.trim();
    let mut out = String::new();
    if note.leading_continues_line && !lines.is_empty() {
        // The rest of the previous line (after `{` or `;`): a comment there moves to its own line.
        let rest = lines.remove(0).trim();
        if !rest.is_empty() {
            out.push_str(indent);
            out.push_str(rest);
            out.push('\n');
        }
    }
    let blank_first = !note.first_in_block || !out.is_empty();
    let mut comments = comment_lines(&lines, base, indent, blank_first);
    let has_comment = lines.iter().any(|l| !l.trim().is_empty());
    if lines.last().is_some_and(|l| l.trim().is_empty()) && (has_comment || blank_first) {
        comments.push('\n');
    }
    out.push_str(&comments);
    out.push_str(indent);
    if !inline.is_empty() {
        out.push_str(inline);
        out.push(' ');
    }
    out
}

/// Whether two documents have the same nodes, entries, values and type annotations (formatting aside).
fn same_document(a: &KdlDocument, b: &KdlDocument) -> bool {
    a.nodes().len() == b.nodes().len()
        && a.nodes().iter().zip(b.nodes()).all(|(x, y)| {
            x.name().value() == y.name().value()
                && x.ty().map(|t| t.value()) == y.ty().map(|t| t.value())
                && x.entries().len() == y.entries().len()
                && x.entries().iter().zip(y.entries()).all(|(e, f)| {
                    e.name().map(|n| n.value()) == f.name().map(|n| n.value())
                        && e.ty().map(|t| t.value()) == f.ty().map(|t| t.value())
                        && e.value() == f.value()
                })
                && match (x.children(), y.children()) {
                    (None, None) => true,
                    (Some(c), Some(d)) => same_document(c, d),
                    _ => false,
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> String {
        format(&SourceFile::new("t.kdl", text)).unwrap()
    }

    #[test]
    fn keeps_every_comment_and_the_authors_values() {
        let input = "// lead\n// second\n\nstack \"web\"   region=\"us-east-1\" { // open\n  tags a=1   // trailing\n\n\n  /* block */ tags b=2;  tags c=3\n  rpms \"git\" /- \"jq\" \"curl\" /* mid */ \"x\" /- y=1\n        // before close\n\n}\nimage \"w\" /* i */ { base x=1 }\n\n// end\n";
        let expected = "// lead\n// second\n\nstack \"web\" region=\"us-east-1\" {\n    // open\n    tags a=1 // trailing\n\n    /* block */ tags b=2\n    tags c=3\n    rpms \"git\" /- \"jq\" \"curl\" /* mid */ \"x\" /- y=1\n    // before close\n}\nimage \"w\" /* i */ {\n    base x=1\n}\n\n// end\n";
        let out = fmt(input);
        assert_eq!(out, expected, "\n{out}");
        assert_eq!(fmt(&out), out);
    }

    #[test]
    fn comment_only_and_empty_documents() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("  // only\n\n"), "// only\n");
        assert_eq!(fmt(&fmt("  // only\n\n")), "// only\n");
    }

    #[test]
    fn refuses_text_that_does_not_parse() {
        let err = format(&SourceFile::new("t.kdl", "stack \"web\" {\n")).unwrap_err();
        assert!(matches!(err, FmtError::Syntax(d) if !d.is_empty()));
    }
}
