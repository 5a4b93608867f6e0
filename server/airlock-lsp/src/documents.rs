//! Open documents: the editor's view of each file, kept in sync incrementally.
//!
//! Guarantees: the text stored for a URI is exactly what the editor has in its buffer after
//! applying every `didChange` in order (the main loop feeds changes in arrival order); positions
//! are interpreted in the negotiated encoding (UTF-16 by default, UTF-8 or UTF-32 when the client
//! offers them). A change that does not fit the document is rejected rather than guessed.

use std::collections::HashMap;

use tower_lsp_server::ls_types::{Position, PositionEncodingKind, Range, Uri};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
    Utf32,
}

impl Encoding {
    /// Picks the cheapest encoding the client supports; LSP mandates UTF-16 as the fallback.
    pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Encoding {
        let offered = offered.unwrap_or_default();
        if offered.contains(&PositionEncodingKind::UTF8) {
            Encoding::Utf8
        } else if offered.contains(&PositionEncodingKind::UTF32) {
            Encoding::Utf32
        } else {
            Encoding::Utf16
        }
    }

    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Encoding::Utf8 => PositionEncodingKind::UTF8,
            Encoding::Utf16 => PositionEncodingKind::UTF16,
            Encoding::Utf32 => PositionEncodingKind::UTF32,
        }
    }

    fn units(self, c: char) -> usize {
        match self {
            Encoding::Utf8 => c.len_utf8(),
            Encoding::Utf16 => c.len_utf16(),
            Encoding::Utf32 => 1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Document {
    pub version: i32,
    pub text: String,
    pub language_id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DocError {
    #[error("document {0} is not open")]
    NotOpen(String),
    #[error("position {line}:{character} is outside the document")]
    BadPosition { line: u32, character: u32 },
}

#[derive(Debug, Default)]
pub struct Documents {
    docs: HashMap<Uri, Document>,
}

impl Documents {
    pub fn open(&mut self, uri: Uri, version: i32, text: String, language_id: String) {
        self.docs.insert(
            uri,
            Document {
                version,
                text,
                language_id,
            },
        );
    }

    pub fn close(&mut self, uri: &Uri) -> Option<Document> {
        self.docs.remove(uri)
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri)
    }

    pub fn uris(&self) -> impl Iterator<Item = &Uri> {
        self.docs.keys()
    }

    /// The open document for a file path. Editors spell URIs differently (percent-encoding,
    /// `localhost`), so match on the decoded path rather than the URI string.
    pub fn find_by_path(&self, path: &std::path::Path) -> Option<(&Uri, &Document)> {
        self.docs
            .iter()
            .find(|(uri, _)| uri.to_file_path().is_some_and(|p| p == path))
    }

    /// Applies one `didChange` (all its content changes, in order).
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: Vec<(Option<Range>, String)>,
        enc: Encoding,
    ) -> Result<(), DocError> {
        let doc = self
            .docs
            .get_mut(uri)
            .ok_or_else(|| DocError::NotOpen(uri.as_str().to_owned()))?;
        // Apply to a copy so a bad change in the middle leaves the document as it was.
        let mut text = doc.text.clone();
        for (range, new_text) in changes {
            match range {
                None => text = new_text,
                Some(range) => {
                    let start = offset_of(&text, range.start, enc)?;
                    let end = offset_of(&text, range.end, enc)?;
                    if start > end {
                        return Err(DocError::BadPosition {
                            line: range.end.line,
                            character: range.end.character,
                        });
                    }
                    text.replace_range(start..end, &new_text);
                }
            }
        }
        doc.text = text;
        doc.version = version;
        Ok(())
    }
}

/// Byte offset of an LSP position. A character past the end of a line clamps to the line end,
/// as the LSP spec asks; a line past the end of the text is an error, except the line right after
/// the last one (position at EOF).
pub fn offset_of(text: &str, pos: Position, enc: Encoding) -> Result<usize, DocError> {
    let bad = || DocError::BadPosition {
        line: pos.line,
        character: pos.character,
    };
    let mut line_start = 0usize;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return Err(bad()),
        }
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut units = 0usize;
    for (i, c) in line.char_indices() {
        if units >= pos.character as usize {
            return Ok(line_start + i);
        }
        units += enc.units(c);
    }
    Ok(line_start + line.len())
}

/// The LSP position of a byte offset (which must be on a char boundary).
pub fn position_of(text: &str, offset: usize, enc: Encoding) -> Position {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character = text[line_start..offset]
        .chars()
        .map(|c| enc.units(c))
        .sum::<usize>() as u32;
    Position { line, character }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn utf16_positions_count_surrogate_pairs() {
        let text = "a😀b\nсимвол\n";
        assert_eq!(offset_of(text, pos(0, 3), Encoding::Utf16).unwrap(), 5); // after the emoji
        assert_eq!(offset_of(text, pos(0, 2), Encoding::Utf32).unwrap(), 5);
        assert_eq!(offset_of(text, pos(1, 2), Encoding::Utf16).unwrap(), 7 + 4);
        assert_eq!(position_of(text, 5, Encoding::Utf16), pos(0, 3));
        assert_eq!(
            offset_of(text, pos(2, 0), Encoding::Utf16).unwrap(),
            text.len()
        );
        assert!(offset_of(text, pos(5, 0), Encoding::Utf16).is_err());
    }

    #[test]
    fn incremental_changes_apply_in_order_and_bad_ones_change_nothing() {
        let uri: Uri = "file:///w/a.txt".parse().unwrap();
        let mut docs = Documents::default();
        docs.open(uri.clone(), 1, "hello\nworld\n".into(), "text".into());
        let r = |a: (u32, u32), b: (u32, u32)| {
            Some(Range {
                start: pos(a.0, a.1),
                end: pos(b.0, b.1),
            })
        };
        docs.change(
            &uri,
            2,
            vec![
                (r((0, 0), (0, 5)), "bye".into()),
                (r((1, 5), (1, 5)), "!".into()),
            ],
            Encoding::Utf16,
        )
        .unwrap();
        assert_eq!(docs.get(&uri).unwrap().text, "bye\nworld!\n");
        let err = docs.change(
            &uri,
            3,
            vec![
                (r((0, 0), (0, 1)), "X".into()),
                (r((9, 0), (9, 0)), "?".into()),
            ],
            Encoding::Utf16,
        );
        assert!(err.is_err());
        assert_eq!(docs.get(&uri).unwrap().text, "bye\nworld!\n");
        assert_eq!(docs.get(&uri).unwrap().version, 2);
    }
}
