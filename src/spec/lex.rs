//! A forgiving scanner for KDL text: the few tokens that matter (words, strings, `=`, `{`, `}`, line ends) and
//! the comments, on text that may not parse. The editor finds the cursor's place with it, splits a spec into
//! top-level pieces with it, `bake fmt` checks with it that no character was lost, and `spec::parse` uses it to
//! refuse absurdly deep nesting.
//!
//! On valid KDL it must see exactly what kdl sees, so it uses KDL v2's own definitions, copied from kdl 6.7's
//! parser: the eight line breaks (`NEWLINES`), the eighteen spaces (`SPACES`), the disallowed code points, the
//! identifier characters, line continuations (`\` then spaces or `/* */`, then a line break, a `//` comment or
//! the end), whitespace escapes in strings (`\` then spaces and line breaks), nested block comments, raw and
//! multi-line strings. `tests` checks every code point's class against kdl itself and compares the nesting it
//! counts with the depth of kdl's tree on generated documents.

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

/// KDL v2's line breaks (kdl 6.7 `NEWLINES`); CRLF counts as one.
pub const NEWLINES: [&str; 8] = [
    "\r\n", "\r", "\n", "\u{85}", "\u{0B}", "\u{0C}", "\u{2028}", "\u{2029}",
];

/// KDL v2's whitespace (kdl 6.7 `UNICODE_SPACES`).
pub const SPACES: [char; 18] = [
    '\u{0009}', '\u{0020}', '\u{00A0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}',
    '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}', '\u{202F}',
    '\u{205F}', '\u{3000}',
];

/// A character that starts a KDL line break.
pub fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\r' | '\n' | '\u{85}' | '\u{0B}' | '\u{0C}' | '\u{2028}' | '\u{2029}'
    )
}

pub fn is_space(c: char) -> bool {
    SPACES.contains(&c)
}

/// Code points KDL forbids anywhere in a document (kdl 6.7 `is_disallowed_unicode`; the BOM is allowed only as the
/// first character).
pub fn is_disallowed(c: char) -> bool {
    matches!(c,
        '\u{0000}'..='\u{0008}'
        | '\u{000E}'..='\u{001F}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

/// A character of a bare identifier or number.
pub fn is_identifier_char(c: char) -> bool {
    !(is_space(c)
        || is_newline(c)
        || is_disallowed(c)
        || matches!(
            c,
            '\\' | '/' | '(' | ')' | '{' | '}' | '[' | ']' | ';' | '"' | '#' | '='
        ))
}

/// The length in bytes of the line break at `i`, if one starts there.
pub fn newline_at(text: &str, i: usize) -> Option<usize> {
    let rest = text.get(i..)?;
    if rest.starts_with("\r\n") {
        return Some(2);
    }
    rest.chars()
        .next()
        .filter(|&c| is_newline(c))
        .map(char::len_utf8)
}

/// Splits a spec into tokens. Never fails: anything unknown becomes a one-character word.
pub fn tokenize(text: &str) -> Vec<Token> {
    scan(text).tokens
}

/// Whether a byte offset is inside a comment (where completion offers nothing).
pub fn in_comment(text: &str, offset: usize) -> bool {
    scan(text)
        .comments
        .iter()
        .any(|&(start, end, line)| start < offset && (offset < end || (offset == end && line)))
}

/// Everything the scanner found.
#[derive(Debug, Default)]
pub struct Scan {
    pub tokens: Vec<Token>,
    /// Comments: start, end (before the line break of a `//` comment), whether it is a `//` comment.
    pub comments: Vec<(usize, usize, bool)>,
    /// Where each `/-` starts.
    pub slashdashes: Vec<usize>,
    /// Where each line continuation's `\` is.
    pub continuations: Vec<usize>,
}

struct Scanner<'a> {
    text: &'a str,
    i: usize,
    out: Scan,
    /// Inside a type annotation `( )`: its words and strings are not tokens.
    in_type: bool,
}

/// Tokens, comments, slashdashes and line continuations of a text.
pub fn scan(text: &str) -> Scan {
    let mut s = Scanner {
        text,
        i: 0,
        out: Scan::default(),
        in_type: false,
    };
    // A byte-order mark is allowed as the first character only.
    if text.starts_with('\u{FEFF}') {
        s.i = '\u{FEFF}'.len_utf8();
    }
    s.run();
    s.out
}

impl Scanner<'_> {
    fn at(&self, s: &str) -> bool {
        self.text[self.i..].starts_with(s)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.i..].chars().next()
    }

    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        let suppressed = self.in_type && matches!(kind, Kind::Word | Kind::Str { .. });
        if !suppressed {
            self.out.tokens.push(Token { kind, start, end });
        }
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.i;
            if let Some(n) = newline_at(self.text, self.i) {
                self.in_type = false;
                self.i += n;
                self.push(Kind::End, start, self.i);
                continue;
            }
            match c {
                ';' => {
                    self.i += 1;
                    self.push(Kind::End, start, self.i);
                }
                _ if is_space(c) => self.i += c.len_utf8(),
                '/' if self.at("//") => self.line_comment(),
                '/' if self.at("/*") => self.block_comment(),
                '/' if self.at("/-") => {
                    self.out.slashdashes.push(start);
                    self.i += 2;
                }
                '\\' => self.continuation(),
                '=' => {
                    self.i += 1;
                    self.push(Kind::Eq, start, self.i);
                }
                '{' => {
                    self.i += 1;
                    self.push(Kind::Open, start, self.i);
                }
                '}' => {
                    self.i += 1;
                    self.push(Kind::Close, start, self.i);
                }
                '(' => {
                    self.i += 1;
                    self.in_type = true;
                }
                ')' if self.in_type => {
                    self.i += 1;
                    self.in_type = false;
                }
                '"' => {
                    let closed = self.quoted();
                    self.push(Kind::Str { closed }, start, self.i);
                }
                '#' if self.text[self.i..].trim_start_matches('#').starts_with('"') => {
                    let closed = self.raw();
                    self.push(Kind::Str { closed }, start, self.i);
                }
                _ => {
                    // A word; a keyword (`#true`) starts with `#`. Anything else is one unexpected character.
                    self.i += c.len_utf8();
                    if is_identifier_char(c) || c == '#' {
                        while let Some(d) = self.peek().filter(|&d| is_identifier_char(d)) {
                            self.i += d.len_utf8();
                        }
                    }
                    self.push(Kind::Word, start, self.i);
                }
            }
        }
    }

    /// `// ...` up to (not including) the line break.
    fn line_comment(&mut self) {
        let start = self.i;
        while let Some(c) = self.peek() {
            if newline_at(self.text, self.i).is_some() {
                break;
            }
            self.i += c.len_utf8();
        }
        self.out.comments.push((start, self.i, true));
    }

    /// `/* ... */`, nested as KDL nests them; runs to the end of the text when unclosed.
    fn block_comment(&mut self) {
        let start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            if self.at("*/") {
                self.i += 2;
                depth -= 1;
                if depth == 0 {
                    break;
                }
            } else if self.at("/*") {
                self.i += 2;
                depth += 1;
            } else {
                self.i += c.len_utf8();
            }
        }
        self.out.comments.push((start, self.i, false));
    }

    /// KDL's `escline`: `\`, spaces or block comments, then a line break, a `//` comment (with its line break) or
    /// the end of the text. Anything else makes the `\` an unexpected character.
    fn continuation(&mut self) {
        let start = self.i;
        let comments = self.out.comments.len();
        self.i += 1;
        self.skip_ws();
        if self.at("//") {
            self.line_comment();
        }
        if let Some(n) = newline_at(self.text, self.i) {
            self.i += n;
        } else if self.i < self.text.len() {
            self.out.comments.truncate(comments);
            self.i = start + 1;
            self.push(Kind::Word, start, self.i);
            return;
        }
        self.out.continuations.push(start);
    }

    /// Spaces and block comments.
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if is_space(c) {
                self.i += c.len_utf8();
            } else if self.at("/*") {
                self.block_comment();
            } else {
                break;
            }
        }
    }

    /// After `\` in a quoted string: a whitespace escape (spaces and line breaks) or one escaped character.
    fn escape(&mut self) {
        self.i += 1;
        let mut ws = false;
        while let Some(c) = self.peek() {
            if let Some(n) = newline_at(self.text, self.i) {
                self.i += n;
            } else if is_space(c) {
                self.i += c.len_utf8();
            } else {
                break;
            }
            ws = true;
        }
        if !ws {
            self.i += self.peek().map_or(0, char::len_utf8);
        }
    }

    /// A `"..."` or `"""..."""` string; whether it was closed. A single-line string ends, unclosed, at a line break.
    fn quoted(&mut self) -> bool {
        let multi = self.at("\"\"\"");
        self.i += if multi { 3 } else { 1 };
        while let Some(c) = self.peek() {
            match c {
                '\\' => self.escape(),
                '"' if !multi => {
                    self.i += 1;
                    return true;
                }
                '"' if self.at("\"\"\"") => {
                    self.i += 3;
                    return true;
                }
                _ if !multi && newline_at(self.text, self.i).is_some() => return false,
                _ => self.i += c.len_utf8(),
            }
        }
        false
    }

    /// A raw string `#"..."#` or `#"""..."""#` (any number of `#`, no escapes); whether it was closed. It is
    /// multi-line when `"""` is followed by a line break, as in kdl.
    fn raw(&mut self) -> bool {
        let hashes = self.text[self.i..].len() - self.text[self.i..].trim_start_matches('#').len();
        self.i += hashes;
        let multi = self.at("\"\"\"") && newline_at(self.text, self.i + 3).is_some();
        self.i += if multi { 3 } else { 1 };
        let close = format!(
            "{}{}",
            if multi { "\"\"\"" } else { "\"" },
            "#".repeat(hashes)
        );
        while let Some(c) = self.peek() {
            if self.at(&close) {
                self.i += close.len();
                return true;
            }
            if !multi && newline_at(self.text, self.i).is_some() {
                return false;
            }
            self.i += c.len_utf8();
        }
        false
    }
}

/// Where the first `{` deeper than `limit` is, if any.
pub fn deeper_than(text: &str, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    for t in tokenize(text) {
        match t.kind {
            Kind::Open => {
                depth += 1;
                if depth > limit {
                    return Some(t.start);
                }
            }
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// How deeply `{ }` blocks nest, as kdl nests them in valid KDL.
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

/// The characters of a text that formatting must keep, with their byte offsets: everything but whitespace and line
/// breaks (wherever they are: re-indenting a multi-line comment changes its whitespace), `;` between nodes and the
/// `\` of line continuations (formatting turns both into line breaks).
pub fn significant(text: &str) -> Vec<(usize, char)> {
    let scan = scan(text);
    let mut dropped: Vec<usize> = scan
        .tokens
        .iter()
        .filter(|t| t.kind == Kind::End && text[t.start..].starts_with(';'))
        .map(|t| t.start)
        .chain(scan.continuations.iter().copied())
        .collect();
    dropped.sort_unstable();
    let mut dropped = dropped.into_iter().peekable();
    text.char_indices()
        .filter(|&(i, c)| {
            while dropped.next_if(|&d| d < i).is_some() {}
            if dropped.peek() == Some(&i) {
                return false;
            }
            !(is_space(c) || is_newline(c) || c.is_whitespace())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kdl::KdlDocument;

    fn parses(text: &str) -> Option<KdlDocument> {
        KdlDocument::parse(text).ok()
    }

    /// Every code point's class, asked of kdl itself: a line break ends a line continuation, a space separates
    /// entries, an identifier character continues a bare name, a disallowed one is refused even in a string.
    #[test]
    fn every_code_point_is_classified_as_kdl_classifies_it() {
        let mut checked = 0;
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            // Above the BMP's special blocks every code point is an ordinary character; a sample suffices.
            if c as u32 > 0x3100 && c as u32 != 0xFEFF && !(c as u32).is_multiple_of(61) {
                continue;
            }
            checked += 1;
            let one_entry = |t: &str| {
                parses(t).is_some_and(|d| d.nodes().len() == 1 && d.nodes()[0].entries().len() == 1)
            };
            assert_eq!(
                one_entry(&format!("a \\{c}b")),
                is_newline(c),
                "newline {:?}",
                c
            );
            assert_eq!(one_entry(&format!("a{c}b")), is_space(c), "space {:?}", c);
            let name = parses(&format!("a{c}")).is_some_and(|d| {
                d.nodes().len() == 1 && d.nodes()[0].name().value() == format!("a{c}")
            });
            assert_eq!(name, is_identifier_char(c), "identifier {:?}", c);
            let in_string = parses(&format!("a \"{c}\"")).is_some();
            let special = matches!(c, '"' | '\\') || is_newline(c);
            assert_eq!(
                !in_string && !special,
                is_disallowed(c),
                "disallowed {:?}",
                c
            );
        }
        assert!(checked > 12_000);
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as usize
        }
    }

    /// Pieces of KDL that change how braces are read: every line break and space, escapes, each string form,
    /// comments, slashdash, type annotations.
    const FRAGMENTS: &[&str] = &[
        "a",
        "b1",
        " ",
        "\t",
        "\u{A0}",
        "{",
        "}",
        "{ ",
        " }",
        "\n",
        "\r\n",
        "\r",
        "\u{85}",
        "\u{0B}",
        "\u{0C}",
        "\u{2028}",
        "\u{2029}",
        "\\",
        " \\\n",
        " \\\u{0C}",
        " \\\u{2028}",
        " \\ // c\n",
        "\"",
        "\"x\"",
        "\"\\\"\"",
        "\"\\\r\n\"",
        "\"\\\u{85} \"",
        "\"{\"",
        "\"}\"",
        "#\"",
        "\"#",
        "#\"{\"#",
        "##\"}\"#\"##",
        "\"\"\"\n",
        "\n\"\"\"",
        "\"\"\"\n{\n\"\"\"",
        "#\"\"\"\n}\n\"\"\"#",
        "/*",
        "*/",
        "/* { */",
        "/* /* } */ */",
        "//",
        "// {\n",
        "/-",
        "/- ",
        ";",
        "=",
        "k=",
        "(",
        ")",
        "(t)",
        "(\"{\")",
        "1",
        "#true",
        "x ",
    ];

    fn generate(rng: &mut Rng) -> String {
        let n = 1 + rng.next() % 24;
        (0..n)
            .map(|_| FRAGMENTS[rng.next() % FRAGMENTS.len()])
            .collect()
    }

    /// On every generated text kdl accepts, the nesting the scanner counts is the depth of kdl's tree (at least
    /// that when a `/-` comments out a block, which kdl parses and drops); and whatever kdl makes of a text, the
    /// parse stays within its stack (an overflow would abort this test).
    #[test]
    fn nesting_agrees_with_kdl_on_generated_documents() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut compared = 0;
        let texts: Vec<String> = (0..60_000).map(|_| generate(&mut rng)).collect();
        for text in &texts {
            let parsed = crate::spec::stack::with_stack(text, || KdlDocument::parse(text)).unwrap();
            if let Ok(doc) = parsed {
                let tree = crate::spec::stack::depth(&doc);
                if scan(text).slashdashes.is_empty() {
                    assert_eq!(max_depth(text), tree, "{text:?}");
                    compared += 1;
                } else {
                    assert!(max_depth(text) >= tree, "{text:?}");
                }
            }
        }
        assert!(compared > 3_000, "only {compared} documents parsed");
    }

    #[test]
    fn line_continuations_and_string_escapes_do_not_hide_braces() {
        for nl in NEWLINES {
            assert_eq!(
                max_depth(&format!("a \\{nl}{{b \\{nl}{{c}}}}")),
                2,
                "{nl:?}"
            );
            assert_eq!(max_depth(&format!("a \"\\{nl}\" {{b {{c}}}}")), 2, "{nl:?}");
        }
        assert_eq!(
            max_depth("a #\"{\"# \"\"\"\n{\n\"\"\" /* { /* { */ */ // {\n"),
            0
        );
    }
}
