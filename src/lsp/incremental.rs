//! Incremental parsing for the editor: a spec is parsed one top-level node at a time, and a node whose text did not
//! change since the last keystroke is not parsed again.
//!
//! kdl 6.7's parser takes ~15 ms (release) for a 1,000-line spec, more than the 10 ms the editor has per edit; an
//! edit changes one top-level node, and re-parsing only that one takes well under a millisecond. The result is the
//! document a full parse gives (same nodes, values and spans; `tests` compares them), or `None` when a piece
//! does not parse on its own, and then the caller parses the whole text to get kdl's own error report.
//!
//! A piece is parsed as a document of its own, so it is only accepted where that cannot differ from the whole:
//! pieces end at line breaks at the top level (outside blocks, strings and comments, by KDL's own definitions in
//! `spec::lex`) that do not follow a `/-` (which comments out what comes after the line break), and a later piece
//! may not start with a byte-order mark (a document may; the middle of one may not). Otherwise `None`.
//!
//! The pieces are parsed on one thread with a stack sized for the whole text (`spec::stack`).
//!
//! `lsp::diagnostics` hands the result to `crate::check_document`, the same checks `bake check` runs.

use std::collections::HashMap;

use kdl::KdlDocument;

use crate::source::span;
use crate::spec::pieces::shifted;
pub use crate::spec::pieces::split;
use crate::spec::stack;

/// The parsed top-level pieces of the previous version of a document, by their text.
#[derive(Default)]
pub struct Chunks {
    cache: HashMap<String, Option<KdlDocument>>,
}

impl Chunks {
    /// Parses `text` piece by piece, reusing the pieces parsed last time. `None` if a piece does not parse.
    pub fn parse(&mut self, text: &str) -> Option<KdlDocument> {
        if crate::spec::too_deep(text).is_some() {
            return None;
        }
        stack::with_stack(text, || self.parse_pieces(text)).ok()?
    }

    fn parse_pieces(&mut self, text: &str) -> Option<KdlDocument> {
        let mut cache = HashMap::new();
        let mut doc = KdlDocument::new();
        let mut ok = true;
        for (start, end) in split(text) {
            let piece = &text[start..end];
            let parsed = self
                .cache
                .remove(piece)
                .unwrap_or_else(|| stack::checked(KdlDocument::parse(piece)).ok());
            if start > 0 && piece.starts_with('\u{FEFF}') {
                ok = false;
            }
            match &parsed {
                Some(p) => doc
                    .nodes_mut()
                    .extend(p.nodes().iter().map(|n| shifted(n.clone(), start))),
                None => ok = false,
            }
            cache.insert(piece.to_owned(), parsed);
        }
        self.cache = cache;
        doc.set_span(span(0, text.len()));
        ok.then_some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every span of a document, in order: what diagnostics are built from.
    fn spans(doc: &KdlDocument, out: &mut Vec<(String, usize, usize)>) {
        for n in doc.nodes() {
            let mut push =
                |what: String, s: miette::SourceSpan| out.push((what, s.offset(), s.len()));
            push(format!("node {}", n.name().value()), n.span());
            push("name".into(), n.name().span());
            if let Some(ty) = n.ty() {
                push("ty".into(), ty.span());
            }
            for e in n.entries() {
                push(
                    format!("entry {:?} {}", e.name().map(|x| x.value()), e.value()),
                    e.span(),
                );
                if let Some(name) = e.name() {
                    push("key".into(), name.span());
                }
                if let Some(ty) = e.ty() {
                    push("ety".into(), ty.span());
                }
            }
            if let Some(c) = n.children() {
                push("children".into(), c.span());
                spans(c, out);
            }
        }
    }

    fn all(doc: &KdlDocument) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        spans(doc, &mut out);
        out
    }

    #[test]
    fn piecewise_parsing_gives_the_full_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts: Vec<String> = ["specs", "tests/specs/err"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(dir.join(d))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter(|e| e.path().extension().is_some_and(|x| x == "kdl"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        texts.push("a; b\n/* x\n y */ c (t)1 k=(u)\"ü\" {\n  d\n}\n\n// end".into());
        texts.push("a \\\n  1\nb \"\"\"\n  x\n  \"\"\"\n".into());
        let mut chunks = Chunks::default();
        for text in &texts {
            match KdlDocument::parse(text) {
                Ok(full) => {
                    let piecewise = chunks.parse(text).expect("pieces of valid KDL parse");
                    assert_eq!(all(&piecewise), all(&full), "{text}");
                    // Again, from the cache.
                    assert_eq!(all(&chunks.parse(text).unwrap()), all(&full));
                }
                Err(_) => assert!(chunks.parse(text).is_none(), "{text}"),
            }
        }
    }

    /// Edits as a user makes them — a line deleted, a line duplicated, a `{`, `}`, `"` or `/-` typed at the start of
    /// a line — on every spec in the corpus: whenever the pieces parse, they give exactly what a full parse gives,
    /// and whenever the whole text does not parse, neither do the pieces.
    #[test]
    fn piecewise_parsing_agrees_with_the_full_parse_after_edits() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut chunks = Chunks::default();
        let mut compared = 0;
        for d in ["specs", "tests/specs/err"] {
            for entry in std::fs::read_dir(dir.join(d)).unwrap().flatten() {
                if entry.path().extension().is_none_or(|x| x != "kdl") {
                    continue;
                }
                let text = std::fs::read_to_string(entry.path()).unwrap();
                let lines: Vec<&str> = text.split_inclusive('\n').collect();
                for i in 0..lines.len() {
                    let mut edits = vec![
                        [&lines[..i], &lines[i + 1..]].concat().concat(),
                        [&lines[..=i], &lines[i..]].concat().concat(),
                    ];
                    for typed in ["{", "}", "\"", "/-"] {
                        let mut edited = lines.clone();
                        let line = format!("{typed}{}", lines[i]);
                        edited[i] = &line;
                        edits.push(edited.concat());
                    }
                    for edit in edits {
                        // The previous text stays in the cache, as in the editor.
                        chunks.parse(&text);
                        match (KdlDocument::parse(&edit), chunks.parse(&edit)) {
                            (Ok(full), Some(piecewise)) => {
                                assert_eq!(all(&piecewise), all(&full), "{edit}");
                                compared += 1;
                            }
                            (Err(_), Some(_)) => {
                                panic!("pieces parse but the text does not:\n{edit}")
                            }
                            (_, None) => {}
                        }
                    }
                }
            }
        }
        assert!(compared > 500, "only {compared} edits compared");
    }
}
