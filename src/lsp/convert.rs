//! Byte offsets (what spans hold) ↔ LSP positions (line, UTF-16 code unit).
//!
//! LSP counts columns in UTF-16 code units by default; a spec with `ü` or `😀` before a problem has byte, char and
//! UTF-16 columns that all differ. Everything here clamps instead of panicking: a client may send a position past
//! the end of a line or in the middle of a surrogate pair.

use lsp_types::{Position, Range};

/// The start of every line of a text, so conversions are a binary search plus a scan of one line.
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset of the first character of each line; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line_starts.push(i + 1),
                // A lone CR ends a line too (LSP: "\n", "\r\n" and "\r").
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Self { line_starts }
    }

    /// The byte offset ↔ position conversion, in both directions. `offset` is clamped to the text and moved back
    /// to a character boundary; a position past the end of its line maps to the line's end.
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_boundary(text, offset.min(text.len()));
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let character: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(to_u32(line), to_u32(character))
    }

    /// The byte offset of a position (see [`LineIndex::position`]).
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let line = position.line as usize;
        let Some(&start) = self.line_starts.get(line) else {
            return text.len();
        };
        let end = self.line_end(text, line);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    pub fn range(&self, text: &str, offset: usize, len: usize) -> Range {
        Range::new(
            self.position(text, offset),
            self.position(text, offset.saturating_add(len)),
        )
    }

    /// The byte offset where a line's content ends (before its line break).
    fn line_end(&self, text: &str, line: usize) -> usize {
        let next = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(text.len());
        let content = &text[self.line_starts[line]..next];
        let trimmed = content
            .strip_suffix("\r\n")
            .or_else(|| content.strip_suffix('\n'))
            .or_else(|| content.strip_suffix('\r'))
            .unwrap_or(content);
        self.line_starts[line] + trimmed.len()
    }
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character boundary maps to a position and back to itself, and the columns are UTF-16 units.
    #[test]
    fn offsets_and_utf16_positions_round_trip_with_multibyte_text() {
        // ü: 2 bytes, 1 unit; 😀: 4 bytes, 2 units; 中: 3 bytes, 1 unit.
        let text = "tags owner=\"Jürgen\" x=1\r\nemoji \"😀\" 中 y=2\rz\n";
        let idx = LineIndex::new(text);
        let at = |needle: &str| text.find(needle).unwrap();

        assert_eq!(idx.position(text, 0), Position::new(0, 0));
        // `x` comes after `Jürgen"` : 20 chars before it on line 0, all 1 unit.
        assert_eq!(idx.position(text, at("x=1")), Position::new(0, 20));
        // Byte column of `中` is 13, char column 10, UTF-16 column 11.
        assert_eq!(idx.position(text, at("中")), Position::new(1, 11));
        assert_eq!(idx.position(text, at("y=2")), Position::new(1, 13));
        // A lone CR ends a line.
        assert_eq!(idx.position(text, at("z")), Position::new(2, 0));
        assert_eq!(idx.position(text, text.len()), Position::new(3, 0));

        for (offset, _) in text.char_indices() {
            let pos = idx.position(text, offset);
            let back = idx.offset(text, pos);
            // CR LF is one line break: the LF has the same position as the end of line 0.
            if text[offset..].starts_with('\n') && text[..offset].ends_with('\r') {
                continue;
            }
            assert_eq!(back, offset, "offset {offset} -> {pos:?} -> {back}");
        }

        // Inside a multi-byte character: clamp back to its start.
        assert_eq!(
            idx.position(text, at("😀") + 2),
            idx.position(text, at("😀"))
        );
        // In the middle of the surrogate pair: the character after it.
        assert_eq!(idx.offset(text, Position::new(1, 8)), at("😀") + 4);
        // Past the end of a line, or past the last line: clamp.
        assert_eq!(idx.offset(text, Position::new(0, 999)), at("\r\n"));
        assert_eq!(idx.offset(text, Position::new(99, 0)), text.len());
        assert_eq!(idx.position(text, 10_000), Position::new(3, 0));
    }
}
