//! kdl's parser, run where it cannot overflow the stack.
//!
//! kdl 6.7's parser is recursive in more places than `{ }` nesting: once per nested block, once per piece of a
//! `/* */` comment (every `*` and `/` in it), and once per stray character it skips at the top level while
//! recovering from an error (`}}}}`). On the 8 MiB main thread a few thousand of any of these overflow the stack,
//! which kills the process (the editor's server too; a panic handler cannot catch it), and error recovery nests
//! blocks the lexer rightly reads as strings (`a b"{a b"{`), so no count of real braces bounds it.
//!
//! So the parse runs only where the stack is large enough for the text: every recursion consumes at least one
//! character, so the sum of a per-character cost bounds the stack it can use. That is the calling thread when its
//! remaining stack holds the bound (a small spec on the main thread's 8 MiB: starting a thread costs more than
//! parsing it), and otherwise a thread of its own with a stack of that size. The costs are twice what kdl uses per
//! level (measured with kdl 6.7.1 at opt-level 3: 7.2 KiB per `{`, 2.8 KiB per nested `/*`, 0.6 KiB per comment
//! piece or skipped character). `tests` parses the worst cases at their bound. Only the pages that are used are
//! ever touched; a text whose bound passes `MAX_STACK` (about half a megabyte of spec) is refused.

use kdl::{KdlDocument, KdlError};

use crate::diag::{Code, Diag};

/// Stack every parse gets, before the per-character costs.
const BASE: usize = 1 << 20;
const PER_OPEN: usize = 16 << 10;
const PER_COMMENT_CHAR: usize = 4 << 10;
const PER_BYTE: usize = 1 << 10;
/// The largest stack bake asks for.
pub const MAX_STACK: usize = 512 << 20;

/// An upper bound of the stack kdl's parser may use on `text`.
pub fn bound(text: &str) -> usize {
    text.bytes().fold(BASE, |n, b| {
        n + match b {
            b'{' => PER_OPEN,
            b'/' | b'*' => PER_COMMENT_CHAR,
            _ => PER_BYTE,
        }
    })
}

/// Why a text was not parsed.
#[derive(Debug)]
pub enum Failure {
    /// kdl's own syntax errors.
    Syntax(KdlError),
    /// bake refused to parse it (too deep, too large); the diagnostic says why.
    Refused(Diag),
}

/// Runs `f` (which parses `text`, or pieces of it) with a stack big enough for kdl's parser on `text`: here when
/// this thread has that much left, otherwise on a thread of its own.
pub fn with_stack<R: Send>(text: &str, f: impl FnOnce() -> R + Send) -> Result<R, Diag> {
    let size = bound(text);
    if size > MAX_STACK {
        return Err(Diag::error(
            Code::Syntax,
            format!(
                "the spec is too large for bake to parse ({} KB)",
                text.len() / 1000
            ),
        )
        .label(crate::source::span(0, 0), "here")
        .help("a bake spec is a few kilobytes; split it into several specs"));
    }
    // Starting a thread costs more than parsing a small spec: when this thread's own stack has the room, parse here.
    if stacker::remaining_stack().is_some_and(|left| left >= size) {
        return Ok(f());
    }
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("kdl-parse".into())
            .stack_size(size)
            .spawn_scoped(s, f);
        match handle {
            Ok(h) => h.join().map_err(|p| std::panic::resume_unwind(p)),
            Err(e) => Err(Diag::error(
                Code::Syntax,
                format!("bake could not start its parser: {e}"),
            )
            .label(crate::source::span(0, 0), "here")
            .help("free some memory and try again")),
        }
    })
}

/// Parses KDL text: refused when nested deeper than `lex::MAX_DEPTH` or too large, never a stack overflow.
pub fn parse(text: &str) -> Result<KdlDocument, Failure> {
    if let Some(d) = super::too_deep(text) {
        return Err(Failure::Refused(d));
    }
    with_stack(text, || checked(KdlDocument::parse(text))).map_err(Failure::Refused)?
}

/// Checks a parsed document's depth (on the big stack, where dropping a deep one is safe): the lexer's guard is
/// meant to agree with kdl, and this holds even if it did not.
pub fn checked(parsed: Result<KdlDocument, KdlError>) -> Result<KdlDocument, Failure> {
    let doc = parsed.map_err(Failure::Syntax)?;
    if depth(&doc) > super::lex::MAX_DEPTH {
        return Err(Failure::Refused(super::depth_diag(0)));
    }
    Ok(doc)
}

/// How deeply a document's children blocks nest, without recursion.
pub fn depth(doc: &KdlDocument) -> usize {
    let mut max = 0;
    let mut todo = vec![(doc, 0usize)];
    while let Some((d, level)) = todo.pop() {
        for node in d.nodes() {
            if let Some(children) = node.children() {
                max = max.max(level + 1);
                todo.push((children, level + 1));
            }
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inputs that make each of kdl's recursions deepest per character, at a size that overflows the main
    /// thread's stack many times over, parse on the stack their bound gives.
    #[test]
    fn the_worst_recursions_fit_their_bound() {
        let n = 20_000;
        let texts = [
            "}".repeat(n * 5),
            format!("/*{}*/", "*".repeat(n * 5)),
            format!("{}{}", "/*".repeat(n), "*/".repeat(n)),
            "a b\"{".repeat(n),
            "a (".repeat(n),
            "a{}".repeat(n),
            format!("{}{}", "a {".repeat(n), "}".repeat(n)),
        ];
        for text in &texts {
            assert!(
                bound(text) < MAX_STACK,
                "{} bytes: {}",
                text.len(),
                bound(text)
            );
            // Too deep or a syntax error, never an overflow (which would abort this test binary).
            match parse(text) {
                Ok(doc) => assert!(depth(&doc) <= super::super::lex::MAX_DEPTH),
                Err(Failure::Syntax(_) | Failure::Refused(_)) => {}
            }
            // Past the depth guard, too: kdl itself, on the bound's stack.
            let parsed = with_stack(text, || checked(KdlDocument::parse(text)).is_ok());
            assert!(parsed.is_ok());
        }
    }

    #[test]
    fn a_text_past_the_largest_stack_is_refused() {
        let text = "a\n".repeat(MAX_STACK / PER_BYTE / 2 + 1);
        assert!(
            matches!(parse(&text), Err(Failure::Refused(d)) if d.message.contains("too large"))
        );
    }
}
