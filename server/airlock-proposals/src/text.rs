//! Text guards and hashing.
//!
//! Guarantees: a text accepted by [`check_text`] is at most `Limits::max_bytes` long and has
//! no NUL byte; [`text_from_bytes`] additionally refuses invalid UTF-8 instead of replacing
//! it, so a proposal can never silently corrupt a file it does not understand.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{ProposalError, Result};

/// Size limits for proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest base or proposed text, in bytes.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Refuses texts that are too large or look binary.
pub fn check_text(path: &Path, text: &str, limits: &Limits) -> Result<()> {
    if text.len() > limits.max_bytes {
        return Err(ProposalError::TooLarge {
            path: path.to_owned(),
            size: text.len(),
            limit: limits.max_bytes,
        });
    }
    if let Some(offset) = text.bytes().position(|b| b == 0) {
        return Err(ProposalError::Binary {
            path: path.to_owned(),
            offset,
        });
    }
    Ok(())
}

/// Decodes file bytes for a proposal: refuses binary, non-UTF-8 and too-large content.
pub fn text_from_bytes(path: &Path, bytes: Vec<u8>, limits: &Limits) -> Result<String> {
    if bytes.len() > limits.max_bytes {
        return Err(ProposalError::TooLarge {
            path: path.to_owned(),
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    // NUL first: a binary file is usually also invalid UTF-8, and "binary" is the better hint.
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(ProposalError::Binary {
            path: path.to_owned(),
            offset,
        });
    }
    String::from_utf8(bytes).map_err(|e| ProposalError::NotUtf8 {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Reads a file from disk through [`text_from_bytes`]; checks the size before reading.
pub fn read_text(path: &Path, limits: &Limits) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| ProposalError::io("stat", path, e))?;
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    if size > limits.max_bytes {
        return Err(ProposalError::TooLarge {
            path: path.to_owned(),
            size,
            limit: limits.max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| ProposalError::io("read", path, e))?;
    text_from_bytes(path, bytes, limits)
}

/// sha256 of the text, lower-case hex.
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// Splits into lines that keep their terminator; `""` has no lines.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_nul_non_utf8_and_large() {
        let p = Path::new("/w/f");
        let l = Limits { max_bytes: 8 };
        assert!(matches!(
            text_from_bytes(p, b"ab\0c".to_vec(), &l),
            Err(ProposalError::Binary { offset: 2, .. })
        ));
        assert!(matches!(
            text_from_bytes(p, vec![b'a', 0xff, b'b'], &l),
            Err(ProposalError::NotUtf8 { offset: 1, .. })
        ));
        assert!(matches!(
            text_from_bytes(p, b"123456789".to_vec(), &l),
            Err(ProposalError::TooLarge {
                size: 9,
                limit: 8,
                ..
            })
        ));
        assert_eq!(
            text_from_bytes(p, "é\n".as_bytes().to_vec(), &l).unwrap(),
            "é\n"
        );
        assert!(check_text(p, "a\0", &l).is_err());
        assert!(check_text(p, "123456789", &l).is_err());
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_text(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn split_keeps_terminators() {
        assert_eq!(split_lines(""), Vec::<&str>::new());
        assert_eq!(split_lines("a\r\nb"), vec!["a\r\n", "b"]);
        assert_eq!(split_lines("a\n"), vec!["a\n"]);
    }
}
