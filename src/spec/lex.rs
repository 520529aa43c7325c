//! A forgiving scanner for KDL text: the few tokens that matter (words, strings, `=`, `{`, `}`, line ends) and
//! the comments, on text that may not parse. The editor finds the cursor's place with it, and `spec::parse` uses it
//! to refuse absurdly deep nesting before kdl's recursive parser could overflow the stack.

/// What a token is; comments and whitespace are not tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare word: identifier string, number, `#true` ...
    Word,
    /// A quoted or raw string; `closed` is false when it runs to the end of the line or text.
    Str {
        closed: bool,
    },
    Eq,
    Open,
    Close,
    /// A newline or `;`: the end of a statement.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The token's value: strings without their quotes (escapes are left alone).
    pub fn value<'a>(&self, text: &'a str) -> &'a str {
        let raw = &text[self.start..self.end];
        match self.kind {
            Kind::Str { .. } => {
                let s = raw.trim_start_matches('#');
                let s = s
                    .strip_prefix("\"\"\"")
                    .or_else(|| s.strip_prefix('"'))
                    .unwrap_or(s);
                let s = s.trim_end_matches('#');
                s.strip_suffix("\"\"\"")
                    .or_else(|| s.strip_suffix('"'))
                    .unwrap_or(s)
            }
            _ => raw,
        }
    }

    pub fn is_value(&self) -> bool {
        matches!(self.kind, Kind::Word | Kind::Str { .. })
    }
}

/// Splits a spec into tokens. Never fails: anything unknown becomes a one-character word.
pub fn tokenize(text: &str) -> Vec<Token> {
    scan(text).0
}

/// Whether a byte offset is inside a comment (where completion offers nothing).
pub fn in_comment(text: &str, offset: usize) -> bool {
    scan(text)
        .1
        .iter()
        .any(|&(start, end, line)| start < offset && (offset < end || (offset == end && line)))
}

/// Tokens, and the byte ranges of comments.
fn scan(text: &str) -> (Vec<Token>, Vec<(usize, usize, bool)>) {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    let push = |out: &mut Vec<Token>, kind, start, end| out.push(Token { kind, start, end });
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' | b'\r' | b';' => {
                push(&mut out, Kind::End, i, i + 1);
                i += 1;
            }
            b' ' | b'\t' => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = line_end(b, i);
                comments.push((i, end, true));
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = block_comment_end(b, i);
                comments.push((i, end, false));
                i = end;
            }
            // Slashdash: the commented-out part is scanned like the rest; good enough for completion.
            b'/' if b.get(i + 1) == Some(&b'-') => i += 2,
            // A line continuation: skip to after the next line break.
            b'\\' => {
                let end = line_end(b, i);
                i = end + usize::from(end < b.len());
                if b.get(i - 1) == Some(&b'\r') && b.get(i) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'=' => {
                push(&mut out, Kind::Eq, i, i + 1);
                i += 1;
            }
            b'{' => {
                push(&mut out, Kind::Open, i, i + 1);
                i += 1;
            }
            b'}' => {
                push(&mut out, Kind::Close, i, i + 1);
                i += 1;
            }
            // A type annotation: skipped.
            b'(' => {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b')' || x == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'"' => {
                let (end, closed) = quoted_end(b, i);
                push(&mut out, Kind::Str { closed }, i, end);
                i = end;
            }
            b'#' if matches!(b.get(i + 1), Some(b'#' | b'"')) => {
                let (end, closed) = raw_end(b, i);
                push(&mut out, Kind::Str { closed }, i, end);
                i = end;
            }
            _ => {
                let start = i;
                let mut j = i;
                while j < b.len() && !is_word_break(b, j) {
                    j += 1;
                }
                if j == start {
                    // An unexpected character: step over it whole.
                    j = start + text[start..].chars().next().map_or(1, char::len_utf8);
                }
                push(&mut out, Kind::Word, start, j);
                i = j;
            }
        }
    }
    (out, comments)
}

/// How deeply `{ }` blocks nest. The KDL parser recurses per level, so the editor and `bake fmt` refuse absurd
/// depths instead of overflowing the stack.
pub fn max_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut max = 0;
    for t in tokenize(text) {
        match t.kind {
            Kind::Open => {
                depth += 1;
                max = max.max(depth);
            }
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The deepest nesting bake parses; real specs nest three levels.
pub const MAX_DEPTH: usize = 256;

fn is_word_break(b: &[u8], j: usize) -> bool {
    match b[j] {
        b' ' | b'\t' | b'\n' | b'\r' | b';' | b'=' | b'{' | b'}' | b'(' | b')' | b'"' | b'\\' => {
            true
        }
        b'/' => matches!(b.get(j + 1), Some(b'/' | b'*' | b'-')),
        _ => false,
    }
}

fn line_end(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|&x| x == b'\n' || x == b'\r')
        .map_or(b.len(), |p| i + p)
}

fn block_comment_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end of a `"..."` or `"""..."""` string starting at `i`, and whether it was closed.
fn quoted_end(b: &[u8], i: usize) -> (usize, bool) {
    if b[i..].starts_with(b"\"\"\"") {
        return match find(b, i + 3, b"\"\"\"") {
            Some(p) => (p + 3, true),
            None => (b.len(), false),
        };
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return (j + 1, true),
            b'\n' | b'\r' => return (j, false),
            _ => j += 1,
        }
    }
    (b.len(), false)
}

/// The end of a raw string `#"..."#` (any number of `#`) starting at `i`.
fn raw_end(b: &[u8], i: usize) -> (usize, bool) {
    let hashes = b[i..].iter().take_while(|&&x| x == b'#').count();
    let open = i + hashes;
    if b.get(open) != Some(&b'"') {
        return (open, false);
    }
    let quotes: &[u8] = if b[open..].starts_with(b"\"\"\"") {
        b"\"\"\""
    } else {
        b"\""
    };
    let mut close = quotes.to_vec();
    close.extend(std::iter::repeat_n(b'#', hashes));
    match find(b, open + quotes.len(), &close) {
        Some(p) => (p + close.len(), true),
        None => (b.len(), false),
    }
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}
