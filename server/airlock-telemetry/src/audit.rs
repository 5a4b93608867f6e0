//! Hash-chained JSONL audit log.
//!
//! Each line is `{"prev": "<sha256 hex of the previous line>", "event": {...}}`; the first line of
//! a file chains from [`GENESIS`]. Verification recomputes the chain and names the first line that
//! does not fit, which catches modified, deleted, reordered and partially written records.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Event;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write audit log {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct Record<P, E> {
    prev: P,
    event: E,
}

pub struct AuditWriter {
    path: PathBuf,
    file: File,
    prev: String,
}

impl AuditWriter {
    /// Opens (or creates) `path` for appending, continuing the chain from its last line.
    pub fn open(path: &Path) -> Result<AuditWriter, AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let prev = match File::open(path) {
            Ok(f) => BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.is_empty())
                .last()
                .map(|l| sha256_hex(l.as_bytes()))
                .unwrap_or_else(|| GENESIS.to_owned()),
            Err(_) => GENESIS.to_owned(),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(open_err)?;
        Ok(AuditWriter {
            path: path.to_owned(),
            file,
            prev,
        })
    }

    pub fn append(&mut self, event: &Event) -> Result<(), AuditError> {
        let line = serde_json::to_string(&Record {
            prev: &self.prev,
            event,
        })
        .map_err(|e| AuditError::Write {
            path: self.path.clone(),
            source: e.into(),
        })?;
        let mut buf = line.clone().into_bytes();
        buf.push(b'\n');
        // One write call per record: with O_APPEND a record is never interleaved or split.
        self.file
            .write_all(&buf)
            .map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.prev = sha256_hex(line.as_bytes());
        Ok(())
    }
}

/// A problem found by [`verify`], with the 1-based line it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub line: usize,
    pub message: String,
}

/// Checks the chain of one log file.
pub fn verify(text: &str) -> Result<usize, VerifyError> {
    let mut prev = GENESIS.to_owned();
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            return Err(VerifyError {
                line: n,
                message: "empty line in the audit log".into(),
            });
        }
        let record: Record<String, serde_json::Value> =
            serde_json::from_str(line).map_err(|e| VerifyError {
                line: n,
                message: format!("not a valid audit record: {e}"),
            })?;
        if record.prev != prev {
            return Err(VerifyError {
                line: n,
                message: "hash chain broken: this record does not follow the previous one \
                          (a record was modified, deleted or reordered)"
                    .into(),
            });
        }
        prev = sha256_hex(line.as_bytes());
        count += 1;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(VerifyError {
            line: count.max(1),
            message: "the last record is incomplete (file truncated)".into(),
        });
    }
    Ok(count)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::EventKind;

    fn write_log(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut w = AuditWriter::open(&path).unwrap();
        for i in 1..=n {
            let mut e = Event::new(EventKind::FsRead, format!("file{i}"));
            e.seq = i;
            w.append(&e).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn intact_log_verifies_and_reopen_continues_chain() {
        let (_d, path) = write_log(3);
        let mut w = AuditWriter::open(&path).unwrap();
        w.append(&Event::new(EventKind::Prompt, "again")).unwrap();
        assert_eq!(verify(&std::fs::read_to_string(&path).unwrap()), Ok(4));
    }

    #[test]
    fn tampering_is_detected_at_the_right_line() {
        let (_d, path) = write_log(4);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let modified = text.replace("file2", "fileX");
        assert_eq!(verify(&modified).unwrap_err().line, 3);

        let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
        assert_eq!(verify(&deleted).unwrap_err().line, 2);

        let reordered = format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]);
        assert_eq!(verify(&reordered).unwrap_err().line, 2);

        let truncated = &text[..text.len() - 5];
        assert!(verify(truncated).is_err());
    }
}
