//! Hash-chained, rotated JSONL audit log.
//!
//! Layout of the audit directory:
//! - `audit-NNNNNN-YYYY-MM-DD.jsonl`: the records, oldest file first (`NNNNNN` orders them; the
//!   date is the UTC day the file was started). A new file is started when the UTC day changes
//!   or the current one would exceed [`AuditOptions::max_file_bytes`].
//! - `head`: where the chain ends (file, line, record number, hash), rewritten after every record.
//!
//! Each line is `{"n": N, "prev": "<sha256 hex of the previous line>", "event": {...}}`, with
//! `n` counting records from 1 across all files. The very first record chains from [`GENESIS`];
//! the first record of every later file chains from the last line of the file before it, so the
//! chain runs across rotation. A file that is rotated away ends with a seal line
//! `{"n", "prev", "seal": {"records": K, "next": "<next file name>"}}`.
//!
//! What [`verify_dir`] guarantees to detect, naming the file and line: a modified, deleted,
//! inserted or reordered record (the chain breaks at the next line); a deleted or reordered file
//! (the chain, `n` or the seal's `next` does not fit); records cut off at the end of a rotated
//! file (no seal); records cut off at the end of the newest file, even at a record boundary
//! (fewer lines than `head` says, or a different hash there); a partially written line.
//! What it cannot detect: someone who rewrites the log *and* recomputes every hash and the head.
//! The chain has no secret; it shows accidents and naive edits. For evidence against a
//! determined local attacker, export the events off the machine (OTLP).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Event, EventKind};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The audit directory's name inside the state directory.
pub const DIR_NAME: &str = "audit";
pub const HEAD_FILE: &str = "head";
/// Events written together (see [`AuditLog::append`]).
pub const BATCH: usize = 64;
/// How often the bus writes a batch that is not full.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
/// The head is rewritten in place, padded to this size, so a write never leaves old bytes behind.
const HEAD_SIZE: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log in {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the audit log {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the audit log {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Start a new file before one grows past this size.
    pub max_file_bytes: u64,
    /// Start a new file when the UTC day changes.
    pub daily: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            max_file_bytes: 16 * 1024 * 1024,
            daily: true,
        }
    }
}

/// One line of an audit file, as read back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub n: u64,
    pub prev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub records: u64,
    pub next: String,
}

#[derive(Serialize)]
struct RecordOut<'a> {
    n: u64,
    prev: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seal: Option<&'a Seal>,
}

/// Where the chain ends; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub file: String,
    pub line: u64,
    pub n: u64,
    pub hash: String,
}

/// Appends records to the audit directory, rotating and keeping the chain and the head.
pub struct AuditLog {
    dir: PathBuf,
    options: AuditOptions,
    head_file: File,
    file: File,
    file_name: String,
    file_index: u64,
    file_day: u64,
    /// Bytes of the current file, staged ones included.
    file_len: u64,
    /// Bytes of the current file actually written (where to cut back to after a failed write).
    written_len: u64,
    file_lines: u64,
    /// Lines serialized for the current file but not yet written (one `write` per batch).
    staged: Vec<u8>,
    /// Events accepted by [`AuditLog::append`] and not yet written.
    pending: Vec<Event>,
    n: u64,
    prev: String,
    /// The record number the head was at when we last read or wrote it. A head beyond both
    /// this and our own position means another process appended.
    head_n: u64,
    /// Records that could not be written since the last successful write: (count, first seq, last seq).
    lost: Option<(u64, u64, u64)>,
    total_lost: u64,
}

impl AuditLog {
    /// Opens the audit directory (creating it), continuing the chain from its newest record.
    /// A newest file that ends in a partial line (a crash mid-write) is left as it is for
    /// `verify` to report, and writing continues in a new file.
    pub fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        let open_err = |path: &Path| {
            let path = path.to_owned();
            move |source| AuditError::Open { path, source }
        };
        std::fs::create_dir_all(dir).map_err(open_err(dir))?;
        let files = list_files(dir)?;
        let (mut n, mut prev, mut next_index) = (0, GENESIS.to_owned(), 1);
        let mut reuse: Option<(PathBuf, u64, u64, u64)> = None; // path, index, len, lines
        if let Some(last) = files.last() {
            let text = std::fs::read(last).map_err(|source| AuditError::Read {
                path: last.clone(),
                source,
            })?;
            let index = file_index(last).unwrap_or(0);
            next_index = index + 1;
            let complete = text.is_empty() || text.ends_with(b"\n");
            let lines: Vec<&[u8]> = text
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let whole = if complete {
                &lines[..]
            } else {
                &lines[..lines.len().saturating_sub(1)]
            };
            if let Some(line) = whole.last() {
                prev = sha256_hex(line);
                let rec: Option<Record> = serde_json::from_slice(line).ok();
                n = rec.as_ref().map_or(0, |r| r.n);
                let sealed = rec.is_some_and(|r| r.seal.is_some());
                if complete && !sealed {
                    reuse = Some((last.clone(), index, text.len() as u64, lines.len() as u64));
                }
            } else if complete {
                reuse = Some((last.clone(), index, 0, 0));
            }
            if n == 0 && !whole.is_empty() {
                // The newest line is not a record we understand: start over in a new file
                // rather than append to something verify will reject anyway.
                tracing::warn!(file = %last.display(), "audit log ends in an unreadable record");
            }
        }
        let head_path = dir.join(HEAD_FILE);
        let head_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&head_path)
            .map_err(open_err(&head_path))?;
        let today = utc_day(crate::now_ms());
        let (file, file_name, file_index, file_day, file_len, file_lines) = match reuse {
            Some((path, index, len, lines))
                if file_day_of(&path) == Some(today) || !options.daily =>
            {
                let file = OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(open_err(&path))?;
                let name = file_name_of(&path);
                let day = file_day_of(&path).unwrap_or(today);
                (file, name, index, day, len, lines)
            }
            _ => {
                let name = audit_file_name(next_index, today);
                let path = dir.join(&name);
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(open_err(&path))?;
                (file, name, next_index, today, 0, 0)
            }
        };
        Ok(AuditLog {
            dir: dir.to_owned(),
            options,
            head_file,
            file,
            file_name,
            file_index,
            file_day,
            file_len,
            written_len: file_len,
            file_lines,
            staged: Vec::new(),
            pending: Vec::new(),
            n,
            prev,
            // A head written before a crash may point past the last whole record; that is
            // damage for verify to report, not another writer to follow.
            head_n: read_head(dir).ok().flatten().map_or(0, |h| h.n),
            lost: None,
            total_lost: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file currently written to.
    pub fn current_file(&self) -> PathBuf {
        self.dir.join(&self.file_name)
    }

    /// Records that could not be written since the log was opened.
    pub fn lost(&self) -> u64 {
        self.total_lost
    }

    /// Queues one event; it is written with the next batch: when [`BATCH`] events are waiting
    /// (then the error of that write is returned here), on [`AuditLog::flush`] (the bus calls
    /// it every [`FLUSH_EVERY`]) and on drop. One lock/write/head cycle per batch instead of per
    /// record is what makes the log fast; a crash loses at most the waiting batch.
    pub fn append(&mut self, event: &Event) -> Result<(), AuditError> {
        self.pending.push(event.clone());
        if self.pending.len() >= BATCH {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Events accepted but not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes the waiting events. On failure they are counted as lost; the next successful
    /// write first records an `audit.gap` saying how many, so the log itself shows the hole.
    ///
    /// Several servers (one per editor window) may share the directory: each batch is written
    /// holding the head file's lock, after catching up with what the others wrote (from the
    /// head), so all of them extend one chain.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        if let Err(source) = self.head_file.lock() {
            batch.iter().for_each(|e| self.count_lost(e.seq));
            return Err(AuditError::Write {
                path: self.dir.join(HEAD_FILE),
                source,
            });
        }
        let result = self.write_batch(&batch);
        if result.is_err() {
            batch.iter().for_each(|e| self.count_lost(e.seq));
            self.staged.clear();
            // The head still says where the last good write ended: continue from there.
            self.head_n = 0;
            let _ = self.catch_up_to(true);
        }
        let _ = self.head_file.unlock();
        result
    }

    fn write_batch(&mut self, batch: &[Event]) -> Result<(), AuditError> {
        self.catch_up()?;
        if let Some((count, first, last)) = self.lost {
            let mut gap = Event::new(EventKind::AuditGap, format!("{count} records lost"))
                .field("lost", count)
                .field("firstSeq", first)
                .field("lastSeq", last);
            gap.ts_ms = crate::now_ms();
            if let Some(e) = batch.first() {
                gap.session.clone_from(&e.session);
            }
            self.write_record(Some(&gap), None)?;
        }
        for event in batch {
            self.write_record(Some(event), None)?;
        }
        self.write_staged()?;
        self.write_head()?;
        self.lost = None;
        Ok(())
    }

    fn write_staged(&mut self) -> Result<(), AuditError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        // One write call per batch: with O_APPEND it is never interleaved with another writer.
        let result = self.file.write_all(&self.staged);
        let len = self.staged.len() as u64;
        self.staged.clear();
        match result {
            Ok(()) => {
                self.written_len += len;
                Ok(())
            }
            Err(source) => {
                // A partial line (disk full) would break the chain for every later record.
                let _ = self.file.set_len(self.written_len);
                Err(AuditError::Write {
                    path: self.current_file(),
                    source,
                })
            }
        }
    }

    /// Adopts the end of the chain from the head when another process wrote past us.
    fn catch_up(&mut self) -> Result<(), AuditError> {
        self.catch_up_to(false)
    }

    /// With `force`, adopts the head even if it is behind us (after a failed write).
    fn catch_up_to(&mut self, force: bool) -> Result<(), AuditError> {
        let mut buf = [0u8; HEAD_SIZE];
        let read = self
            .head_file
            .read_at(&mut buf, 0)
            .map_err(|source| AuditError::Read {
                path: self.dir.join(HEAD_FILE),
                source,
            })?;
        let Ok(head) = serde_json::from_slice::<Head>(buf[..read].trim_ascii()) else {
            // Empty (nothing written yet) or damaged: keep our own state; verify reports damage.
            return Ok(());
        };
        if !force && head.n <= self.n.max(self.head_n) {
            return Ok(());
        }
        self.head_n = head.n;
        if head.file != self.file_name {
            let path = self.dir.join(&head.file);
            self.file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|source| AuditError::Open {
                    path: path.clone(),
                    source,
                })?;
            self.file_index = file_index(&path).unwrap_or(self.file_index + 1);
            self.file_day = file_day_of(&path).unwrap_or(self.file_day);
            self.file_name = head.file;
        }
        self.file_len = self
            .file
            .metadata()
            .map_err(|source| AuditError::Read {
                path: self.current_file(),
                source,
            })?
            .len();
        self.written_len = self.file_len;
        self.file_lines = head.line;
        self.n = head.n;
        self.prev = head.hash;
        Ok(())
    }

    fn count_lost(&mut self, seq: u64) {
        self.total_lost += 1;
        self.lost = Some(match self.lost {
            Some((count, first, _)) => (count + 1, first, seq),
            None => (1, seq, seq),
        });
    }

    fn write_record(
        &mut self,
        event: Option<&Event>,
        seal: Option<&Seal>,
    ) -> Result<(), AuditError> {
        let mut line = self.serialize(event, seal)?;
        if event.is_some() && self.should_rotate(line.len() as u64 + 1) {
            self.rotate()?;
            line = self.serialize(event, seal)?;
        }
        let hash = sha256_hex(line.as_bytes());
        line.push('\n');
        self.staged.extend_from_slice(line.as_bytes());
        self.file_len += line.len() as u64;
        self.file_lines += 1;
        self.n += 1;
        self.prev = hash;
        Ok(())
    }

    fn serialize(&self, event: Option<&Event>, seal: Option<&Seal>) -> Result<String, AuditError> {
        serde_json::to_string(&RecordOut {
            n: self.n + 1,
            prev: &self.prev,
            event,
            seal,
        })
        .map_err(|e| AuditError::Write {
            path: self.current_file(),
            source: e.into(),
        })
    }

    fn should_rotate(&self, line_len: u64) -> bool {
        if self.file_lines == 0 {
            return false;
        }
        self.file_len + line_len > self.options.max_file_bytes
            || (self.options.daily && utc_day(crate::now_ms()) != self.file_day)
    }

    /// Seals the current file and starts the next one, so the chain continues across files.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let day = utc_day(crate::now_ms());
        let next_name = audit_file_name(self.file_index + 1, day);
        let next_path = self.dir.join(&next_name);
        // Create the next file first: a crash after the seal then never leaves a seal that
        // points at nothing.
        let next = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&next_path)
            .map_err(|source| AuditError::Open {
                path: next_path.clone(),
                source,
            })?;
        let seal = Seal {
            records: self.file_lines + 1,
            next: next_name.clone(),
        };
        self.write_record(None, Some(&seal))?;
        self.write_staged()?;
        self.file = next;
        self.file_name = next_name;
        self.file_index += 1;
        self.file_day = day;
        self.file_len = 0;
        self.written_len = 0;
        self.file_lines = 0;
        Ok(())
    }

    fn write_head(&mut self) -> Result<(), AuditError> {
        self.head_n = self.n;
        let head = Head {
            file: self.file_name.clone(),
            line: self.file_lines,
            n: self.n,
            hash: self.prev.clone(),
        };
        let mut buf = serde_json::to_vec(&head).unwrap_or_default();
        buf.resize(HEAD_SIZE.max(buf.len()), b' ');
        if let Some(last) = buf.last_mut() {
            *last = b'\n';
        }
        self.head_file
            .write_all_at(&buf, 0)
            .map_err(|source| AuditError::Write {
                path: self.dir.join(HEAD_FILE),
                source,
            })
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            tracing::error!("audit log: {err}");
        }
    }
}

/// `audit-000001-2026-11-24.jsonl`
fn audit_file_name(index: u64, day: u64) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("audit-{index:06}-{y:04}-{m:02}-{d:02}.jsonl")
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_index(path: &Path) -> Option<u64> {
    let name = file_name_of(path);
    name.strip_prefix("audit-")?.get(..6)?.parse().ok()
}

fn file_day_of(path: &Path) -> Option<u64> {
    let name = file_name_of(path);
    let date = name.strip_prefix("audit-")?.get(7..17)?;
    let mut parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    u64::try_from(days_from_civil(y, m, d)).ok()
}

/// The audit files of `dir`, oldest first. A missing directory has no files.
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(AuditError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| file_name_of(p).ends_with(".jsonl"))
        .filter_map(|p| file_index(&p).map(|i| (i, p)))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

pub fn read_head(dir: &Path) -> Result<Option<Head>, String> {
    let path = dir.join(HEAD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Ok(None),
        Ok(text) => serde_json::from_str(text.trim())
            .map(Some)
            .map_err(|e| format!("{}: unreadable head: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A problem found by verification: the file and 1-based line it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    pub file: PathBuf,
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub files: usize,
    /// Lines checked, seals included.
    pub records: u64,
    /// Record numbers covered (`n` of the first and last line).
    pub first_n: u64,
    pub last_n: u64,
    /// True when the head was checked (whole-directory verification).
    pub head_checked: bool,
}

/// Verifies every file of the audit directory in order, and the head.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, VerifyError> {
    let files = list_files(dir).map_err(|e| VerifyError {
        file: dir.to_owned(),
        line: 0,
        message: e.to_string(),
    })?;
    let head = read_head(dir).map_err(|message| VerifyError {
        file: dir.join(HEAD_FILE),
        line: 1,
        message,
    })?;
    if files.is_empty() && head.is_none() {
        return Ok(VerifyReport::default());
    }
    let mut report = verify_files(&files, true)?;
    let Some(head) = head else {
        return Err(VerifyError {
            file: dir.join(HEAD_FILE),
            line: 0,
            message: "the head is missing, so a cut-off end of the log cannot be ruled out".into(),
        });
    };
    let path = dir.join(&head.file);
    if !files.contains(&path) {
        return Err(VerifyError {
            file: path,
            line: 0,
            message: format!(
                "the newest file is missing: the head says the log ends in it at record {}",
                head.n
            ),
        });
    }
    let text = std::fs::read(&path).map_err(|e| VerifyError {
        file: path.clone(),
        line: 0,
        message: e.to_string(),
    })?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let at = usize::try_from(head.line).unwrap_or(usize::MAX);
    match at.checked_sub(1).and_then(|i| lines.get(i)) {
        None => {
            return Err(VerifyError {
                file: path,
                line: lines.len() as u64 + 1,
                message: format!(
                    "records were cut off the end: the head says this file has {} records (up \
                     to record {}), it has {}",
                    head.line,
                    head.n,
                    lines.len()
                ),
            });
        }
        Some(line) if sha256_hex(line) != head.hash => {
            return Err(VerifyError {
                file: path,
                line: head.line,
                message: "this is not the record the head ends at: the end of the log was cut \
                          off and replaced"
                    .into(),
            });
        }
        Some(_) => {}
    }
    report.head_checked = true;
    Ok(report)
}

/// Verifies the given files as one consecutive piece of the chain. With `from_genesis` the
/// first record must be record 1; otherwise the first file may start anywhere in the chain
/// (checking a single rotated file), and only the links from there on are checked.
pub fn verify_files(files: &[PathBuf], from_genesis: bool) -> Result<VerifyReport, VerifyError> {
    let mut report = VerifyReport {
        files: files.len(),
        ..VerifyReport::default()
    };
    let mut prev: Option<String> = None;
    let mut expected_n: Option<u64> = None;
    for (fi, path) in files.iter().enumerate() {
        let err = |line: u64, message: String| VerifyError {
            file: path.clone(),
            line,
            message,
        };
        let text = std::fs::read(path).map_err(|e| err(0, e.to_string()))?;
        let next_name = files.get(fi + 1).map(|p| file_name_of(p));
        let mut sealed = false;
        let mut line_no = 0u64;
        for raw in text.split_inclusive(|b| *b == b'\n') {
            line_no += 1;
            let Some(line) = raw.strip_suffix(b"\n") else {
                return Err(err(
                    line_no,
                    "the last record is incomplete (the file was cut off mid-record)".into(),
                ));
            };
            if sealed {
                return Err(err(line_no, "a record follows the file's seal".into()));
            }
            if line.is_empty() {
                return Err(err(line_no, "empty line in the audit log".into()));
            }
            let record: Record = serde_json::from_slice(line)
                .map_err(|e| err(line_no, format!("not a valid audit record: {e}")))?;
            match (&prev, expected_n) {
                (None, _) => {
                    if from_genesis && (record.n != 1 || record.prev != GENESIS) {
                        return Err(err(
                            line_no,
                            format!(
                                "the log does not start at its first record (this is record \
                                 {}): earlier records or files were deleted",
                                record.n
                            ),
                        ));
                    }
                    report.first_n = record.n;
                }
                (Some(p), Some(n)) => {
                    if record.prev != *p {
                        let what = if line_no == 1 {
                            "this file does not continue the previous file (a file was \
                             deleted, replaced or reordered, or the previous one was modified)"
                        } else {
                            "hash chain broken: the previous line was modified, or a record \
                             was deleted, inserted or reordered here"
                        };
                        return Err(err(line_no, what.into()));
                    }
                    if record.n != n {
                        return Err(err(
                            line_no,
                            format!("record number {} where {n} was expected", record.n),
                        ));
                    }
                }
                (Some(_), None) => {}
            }
            match (&record.event, &record.seal) {
                (Some(_), None) => {}
                (None, Some(seal)) => {
                    if seal.records != line_no {
                        return Err(err(
                            line_no,
                            format!(
                                "the seal counts {} records but it is line {line_no}",
                                seal.records
                            ),
                        ));
                    }
                    if let Some(next) = &next_name
                        && *next != seal.next
                    {
                        return Err(err(
                            line_no,
                            format!(
                                "the seal says the next file is {}, but the next one here is {next}",
                                seal.next
                            ),
                        ));
                    }
                    sealed = true;
                }
                _ => {
                    return Err(err(
                        line_no,
                        "a record must hold exactly one of `event` or `seal`".into(),
                    ));
                }
            }
            prev = Some(sha256_hex(line));
            expected_n = Some(record.n + 1);
            report.last_n = record.n;
            report.records += 1;
        }
        if let Some(next) = &next_name
            && !sealed
        {
            return Err(err(
                line_no + 1,
                format!(
                    "the file ends without its seal although {next} follows: records were cut \
                     off the end of this file"
                ),
            ));
        }
    }
    Ok(report)
}

/// Every record of `files` in order, with its file and 1-based line. Unreadable lines are
/// returned as errors in place, so a viewer can show the rest of the log.
pub fn read_records(files: &[PathBuf]) -> Vec<(PathBuf, u64, Result<Record, String>)> {
    let mut out = Vec::new();
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                out.push((path.clone(), 0, Err(e.to_string())));
                continue;
            }
        };
        for (i, line) in text.lines().enumerate() {
            let parsed = serde_json::from_str::<Record>(line).map_err(|e| e.to_string());
            out.push((path.clone(), i as u64 + 1, parsed));
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

/// Days since 1970-01-01 (UTC) of a unix time in milliseconds.
pub fn utc_day(ms: u64) -> u64 {
    ms / 86_400_000
}

/// (year, month, day) of a day number since 1970-01-01; Howard Hinnant's algorithm.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number since 1970-01-01 of a civil date; the inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-24T06:31:02.123Z`
pub fn format_utc(ms: u64) -> String {
    let (y, mo, d) = civil_from_days((ms / 86_400_000) as i64);
    let rem = ms % 86_400_000;
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(i: u64) -> Event {
        let mut e = Event::new(EventKind::FsRead, format!("file{i}"));
        e.seq = i;
        e
    }

    fn write_log(dir: &Path, n: u64, options: AuditOptions) {
        let mut w = AuditLog::open(dir, options).unwrap();
        for i in 1..=n {
            w.append(&event(i)).unwrap();
        }
    }

    fn small_files() -> AuditOptions {
        AuditOptions {
            max_file_bytes: 400,
            daily: true,
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2026, 11, 24), 20_781);
        for day in [0, 59, 60, 365, 11_016, 20_416, 50_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m as i64, d as i64), day);
        }
        assert_eq!(format_utc(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
    }

    #[test]
    fn intact_log_verifies_and_reopen_continues_chain() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 3, AuditOptions::default());
        let mut w = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
        w.append(&event(4)).unwrap();
        // Batched: nothing is written before a flush (or a full batch, or drop).
        assert_eq!(verify_dir(dir.path()).unwrap().last_n, 3);
        w.flush().unwrap();
        let report = verify_dir(dir.path()).unwrap();
        assert_eq!((report.files, report.records, report.last_n), (1, 4, 4));
        assert!(report.head_checked);
    }

    #[test]
    fn rotation_chains_across_files_and_seals_them() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 20, small_files());
        let files = list_files(dir.path()).unwrap();
        assert!(files.len() >= 4, "{files:?}");
        let report = verify_dir(dir.path()).unwrap();
        // Every file but the last has a seal line in addition to its events.
        assert_eq!(report.records, 20 + files.len() as u64 - 1);
        // A reopened log keeps rotating and chaining.
        write_log(dir.path(), 5, small_files());
        verify_dir(dir.path()).unwrap();
        // A single rotated file verifies on its own (from the middle of the chain).
        verify_files(&files[1..2], false).unwrap();
        assert!(verify_files(&files[1..2], true).is_err());
    }

    fn lines_of(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        if !lines.is_empty() {
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn tampering_within_a_file_is_detected_at_the_right_line() {
        let check = |edit: &dyn Fn(&mut Vec<String>), want_line: u64| {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), 5, AuditOptions::default());
            let file = list_files(dir.path()).unwrap().remove(0);
            let mut lines = lines_of(&file);
            edit(&mut lines);
            write_lines(&file, &lines);
            let err = verify_dir(dir.path()).unwrap_err();
            assert_eq!((err.file.clone(), err.line), (file, want_line), "{err}");
        };
        check(&|l| l[1] = l[1].replace("file2", "fileX"), 3); // modified
        check(&|l| drop(l.remove(2)), 3); // deleted
        check(&|l| l.swap(1, 2), 2); // reordered
        check(&|l| l.truncate(4), 5); // cut at a record boundary: head says 5
        check(&|l| l.truncate(0), 1);
    }

    #[test]
    fn two_writers_on_one_directory_extend_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AuditLog::open(dir.path(), small_files()).unwrap();
        let mut b = AuditLog::open(dir.path(), small_files()).unwrap();
        for i in 1..=30 {
            // Interleaved, with rotation happening under either writer.
            let w = if i % 3 == 0 { &mut b } else { &mut a };
            w.append(&event(i)).unwrap();
            w.flush().unwrap();
        }
        let report = verify_dir(dir.path()).unwrap();
        let files = list_files(dir.path()).unwrap();
        assert_eq!(report.records, 30 + files.len() as u64 - 1);
    }

    #[test]
    fn partial_last_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 3, AuditOptions::default());
        let file = list_files(dir.path()).unwrap().remove(0);
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, &text[..text.len() - 5]).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        // The writer does not append to the damaged file, so the damage stays visible.
        let mut w = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
        w.append(&event(9)).unwrap();
        w.flush().unwrap();
        assert_ne!(w.current_file(), file);
        assert_eq!(verify_dir(dir.path()).unwrap_err().line, 3);
    }

    #[test]
    fn tampering_across_files_is_detected() {
        let setup = || {
            let dir = tempfile::tempdir().unwrap();
            write_log(dir.path(), 20, small_files());
            let files = list_files(dir.path()).unwrap();
            (dir, files)
        };
        // A middle file deleted.
        let (dir, files) = setup();
        std::fs::remove_file(&files[1]).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_eq!(err.file, files[0], "{err}");
        // The oldest file deleted.
        let (dir, files) = setup();
        std::fs::remove_file(&files[0]).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_eq!((err.file.clone(), err.line), (files[1].clone(), 1), "{err}");
        // The newest file deleted: the head names it.
        let (dir, files) = setup();
        let newest = files.last().unwrap();
        std::fs::remove_file(newest).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_eq!(&err.file, newest, "{err}");
        // A rotated file's last event cut off together with its seal.
        let (dir, files) = setup();
        let mut lines = lines_of(&files[1]);
        lines.truncate(lines.len() - 2);
        write_lines(&files[1], &lines);
        let err = verify_dir(dir.path()).unwrap_err();
        assert_eq!(
            (err.file.clone(), err.line),
            (files[1].clone(), lines.len() as u64 + 1)
        );
        // Two files swapped by name.
        let (dir, files) = setup();
        let tmp = dir.path().join("tmp");
        std::fs::rename(&files[1], &tmp).unwrap();
        std::fs::rename(&files[2], &files[1]).unwrap();
        std::fs::rename(&tmp, &files[2]).unwrap();
        assert!(verify_dir(dir.path()).is_err());
    }

    #[test]
    fn unwritable_file_counts_lost_records_and_marks_the_gap() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = AuditLog::open(dir.path(), AuditOptions::default()).unwrap();
        w.append(&event(1)).unwrap();
        w.flush().unwrap();
        // Swap the open file for /dev/full: every write now fails with ENOSPC.
        let good = std::mem::replace(
            &mut w.file,
            OpenOptions::new().append(true).open("/dev/full").unwrap(),
        );
        for i in 2..=4 {
            w.append(&event(i)).unwrap();
        }
        assert!(w.flush().is_err());
        assert_eq!(w.lost(), 3);
        w.file = good;
        w.append(&event(5)).unwrap();
        w.flush().unwrap();
        let records: Vec<Record> = read_records(&list_files(dir.path()).unwrap())
            .into_iter()
            .map(|(_, _, r)| r.unwrap())
            .collect();
        let kinds: Vec<EventKind> = records
            .iter()
            .map(|r| r.event.as_ref().unwrap().kind)
            .collect();
        assert_eq!(
            kinds,
            [EventKind::FsRead, EventKind::AuditGap, EventKind::FsRead]
        );
        let gap = records[1].event.as_ref().unwrap();
        assert_eq!(gap.fields["lost"], 3);
        assert_eq!(
            (
                gap.fields["firstSeq"].as_u64(),
                gap.fields["lastSeq"].as_u64()
            ),
            (Some(2), Some(4))
        );
        verify_dir(dir.path()).unwrap();
    }
}
