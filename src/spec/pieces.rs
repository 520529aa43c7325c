//! Top-level pieces of a spec: where a text can be cut so that each piece parses on its own exactly as it parses
//! in the whole, by KDL's own definitions in `spec::lex`. The editor parses only the pieces an edit changed
//! (`lsp::incremental`); `bake check` and `compile` parse a large spec's pieces on two threads ([`parse`]).
//!
//! Pieces end at line breaks at the top level (outside blocks, strings and comments) that do not follow a `/-`
//! (which comments out what comes after the line break), and a later piece may not start with a byte-order mark
//! (a document may; the middle of one may not). `lsp::incremental`'s tests and the `lsp_incremental` fuzz target
//! check that pieces give the document a full parse gives whenever they all parse.

use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode};

use crate::source::span;
use crate::spec::lex::{self, Kind};
use crate::spec::stack;

/// Below this size one thread parses the whole text: starting threads would cost more than they save.
pub const PARALLEL_MIN: usize = 4 << 10;

/// Parses a large text's pieces on two threads, each half of its bytes on its own stack (`spec::stack`). `None`
/// when the text is small, cannot be cut, or anything in it does not parse, is too deep or too large: the caller
/// then parses the whole text, for kdl's own report. The nodes and their spans are a full parse's; the
/// document's own formatting (leading and trailing whitespace) is not kept, so `bake fmt` does not use this.
pub fn parse(text: &str) -> Option<KdlDocument> {
    if text.len() < PARALLEL_MIN || crate::spec::too_deep(text).is_some() {
        return None;
    }
    let pieces = split(text);
    let half = pieces.iter().position(|&(_, end)| end >= text.len() / 2)? + 1;
    if half >= pieces.len() {
        return None;
    }
    let (first, second) = pieces.split_at(half);
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| parse_run(text, second));
        let a = parse_run(text, first);
        (a, b.join())
    });
    let mut nodes = a?;
    nodes.extend(b.unwrap_or_else(|p| std::panic::resume_unwind(p))?);
    let mut doc = KdlDocument::new();
    *doc.nodes_mut() = nodes;
    doc.set_span(span(0, text.len()));
    Some(doc)
}

/// The nodes of consecutive pieces, each parsed as a document of its own on a stack sized for all of them.
fn parse_run(text: &str, pieces: &[(usize, usize)]) -> Option<Vec<KdlNode>> {
    let (start, end) = (pieces.first()?.0, pieces.last()?.1);
    stack::with_stack(&text[start..end], || {
        let mut nodes = Vec::new();
        for &(start, end) in pieces {
            let piece = &text[start..end];
            if start > 0 && piece.starts_with('\u{FEFF}') {
                return None;
            }
            let mut doc = stack::checked(KdlDocument::parse(piece)).ok()?;
            nodes.extend(
                std::mem::take(doc.nodes_mut())
                    .into_iter()
                    .map(|n| shifted(n, start)),
            );
        }
        Some(nodes)
    })
    .ok()?
}

/// Byte ranges of the top-level pieces: each ends after a line break outside any `{ }`, string or comment, and not
/// after a `/-`.
pub fn split(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let scan = lex::scan(text);
    let mut slashdashes = scan.slashdashes.iter().peekable();
    // A `/-` not yet followed by a token: it comments out what comes after the line breaks.
    let mut pending_slashdash = false;
    for t in scan.tokens {
        while slashdashes.next_if(|&&sd| sd < t.start).is_some() {
            pending_slashdash = true;
        }
        if t.kind != Kind::End {
            pending_slashdash = false;
        }
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            Kind::End if depth == 0 && text.as_bytes()[t.start] != b';' && !pending_slashdash => {
                if t.end - start > 0 {
                    out.push((start, t.end));
                }
                start = t.end;
            }
            _ => {}
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

fn shift_id(id: &mut KdlIdentifier, by: usize) {
    let s = id.span();
    id.set_span(span(s.offset() + by, s.len()));
}

fn shift_entry(e: &mut KdlEntry, by: usize) {
    let s = e.span();
    e.set_span(span(s.offset() + by, s.len()));
    if let Some(name) = e.name_mut() {
        shift_id(name, by);
    }
    if let Some(ty) = e.ty_mut() {
        shift_id(ty, by);
    }
}

pub fn shifted(mut node: KdlNode, by: usize) -> KdlNode {
    shift_node(&mut node, by);
    node
}

fn shift_node(node: &mut KdlNode, by: usize) {
    let s = node.span();
    node.set_span(span(s.offset() + by, s.len()));
    shift_id(node.name_mut(), by);
    if let Some(ty) = node.ty_mut() {
        shift_id(ty, by);
    }
    for e in node.entries_mut() {
        shift_entry(e, by);
    }
    if let Some(children) = node.children_mut() {
        let s = children.span();
        children.set_span(span(s.offset() + by, s.len()));
        for child in children.nodes_mut() {
            shift_node(child, by);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span and value of a document, in order: what the checks and diagnostics are built from.
    fn all(doc: &KdlDocument, out: &mut Vec<String>) {
        for n in doc.nodes() {
            out.push(format!(
                "node {} {:?} {:?}",
                n.name().value(),
                n.span(),
                n.name().span()
            ));
            if let Some(ty) = n.ty() {
                out.push(format!("ty {:?}", ty.span()));
            }
            for e in n.entries() {
                out.push(format!(
                    "entry {:?} {} {:?} {:?} {:?}",
                    e.name().map(|x| (x.value(), x.span())),
                    e.value(),
                    e.ty().map(|t| t.span()),
                    e.span(),
                    e.ty().map(|t| t.value())
                ));
            }
            if let Some(c) = n.children() {
                out.push(format!("children {:?}", c.span()));
                all(c, out);
            }
        }
    }

    fn spans(doc: &KdlDocument) -> Vec<String> {
        let mut out = Vec::new();
        all(doc, &mut out);
        out
    }

    /// Large texts made of the shipped examples and the error fixtures: the two-thread parse gives exactly the
    /// full parse's nodes and spans, and never a document for a text that does not parse.
    #[test]
    #[allow(clippy::disallowed_methods)] // the test reads its fixtures; the module does not
    fn two_threads_give_the_full_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for d in ["specs", "tests/specs/err"] {
            for entry in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
                if entry.path().extension().is_some_and(|x| x == "kdl") {
                    let text = std::fs::read_to_string(entry.path()).unwrap();
                    // Repeated past the size where two threads are used, the second copy mid-text.
                    let n = PARALLEL_MIN / text.len().max(1) + 2;
                    texts.push(format!("{text}\n").repeat(n));
                    texts.push(
                        format!("{text}\n")
                            .repeat(n)
                            .replacen('\n', "\n\u{FEFF}", n),
                    );
                }
            }
        }
        let mut compared = 0;
        for text in &texts {
            match (KdlDocument::parse(text), parse(text)) {
                (Ok(full), Some(two)) => {
                    assert_eq!(spans(&two), spans(&full), "{text}");
                    compared += 1;
                }
                (Err(_), Some(_)) => panic!("two threads parse what kdl does not:\n{text}"),
                (_, None) => {}
            }
        }
        assert!(compared >= 3, "only {compared} texts compared");
    }

    #[test]
    fn small_texts_are_left_to_the_full_parse() {
        assert!(parse("a 1\nb 2\n").is_none());
        let big = "a 1\n".repeat(PARALLEL_MIN);
        let doc = parse(&big).expect("a large valid text parses on two threads");
        assert_eq!(doc.nodes().len(), PARALLEL_MIN);
        assert_eq!(doc.nodes()[PARALLEL_MIN - 1].span().offset(), big.len() - 4);
    }
}
