//! The store's background writer: state files are written off the caller's path, in batches.
//!
//! The store changes its in-memory state at once and queues what the state dir must become
//! (write this file, remove that one, append to the history log); one thread applies the queue.
//! Callers that must not acknowledge something before it is on disk (the agent's write call)
//! wait with [`Writer::on_persisted`] or [`Writer::flush`].
//!
//! Guarantees (what makes coalescing safe against `kill -9` at any moment):
//! - Every file is replaced atomically (temp + rename, `fsio::write_atomic_with`), so no state
//!   file is ever torn.
//! - Several queued operations on one path collapse into the newest one (a later write wins,
//!   a removal cancels a queued write and the other way round).
//! - In a batch, **all writes happen before any removal**: base texts first, then proposal
//!   files (which name their base by hash), then `meta.json` (the id high-water mark); removals
//!   follow in the order they were queued. A crash in the middle of a batch therefore leaves a
//!   state where every proposal file finds its base text, the ids on disk are covered by the
//!   high-water mark, and a proposal that a newer one superseded is only gone once the newer
//!   one is on disk (while both are there, `Store::open` keeps the newer one). Reordering
//!   removals first would lose a pending proposal whose successor was not written yet.
//! - A callback registered with `on_persisted` runs only after everything queued before it is
//!   on disk (with fsync when the store is durable), or with the error that kept it off disk.
//! - A batch that fails is put back under any newer operations and retried with the next
//!   change or wait; nothing queued is dropped silently.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{ProposalError, Result};
use crate::fsio::{sync_dir, write_atomic_with};

/// `resolved.jsonl` is rotated to `resolved.jsonl.1` beyond this size.
const RESOLVED_LOG_MAX: u64 = 1024 * 1024;

/// What a file should contain; serialized on the writer thread, off the caller's path.
pub(crate) enum Content {
    /// A base text, stored as is (content-addressed: the file name is its hash).
    Text(String),
    /// Any JSON document (proposal record, meta).
    Json(Box<dyn erased::Json>),
}

/// Write order inside a batch (see the module doc): bases, then proposals, then meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    Base = 0,
    Proposal = 1,
    Meta = 2,
}

type Waiter = Box<dyn FnOnce(Result<()>) + Send>;

#[derive(Default)]
struct Queue {
    writes: BTreeMap<(Class, PathBuf), Content>,
    removes: Vec<PathBuf>,
    log: Vec<u8>,
    waiters: Vec<Waiter>,
    /// Set after a failed batch; cleared by the next enqueue or waiter, so a permanent error
    /// is retried on activity rather than in a busy loop.
    blocked: bool,
    shutdown: bool,
}

impl Queue {
    fn has_work(&self) -> bool {
        !self.waiters.is_empty()
            || (!self.blocked
                && (!self.writes.is_empty() || !self.removes.is_empty() || !self.log.is_empty()))
    }

    fn write(&mut self, class: Class, path: PathBuf, content: Content) {
        self.removes.retain(|p| *p != path);
        self.writes.insert((class, path), content);
    }

    fn remove(&mut self, path: PathBuf) {
        self.writes.retain(|(_, p), _| *p != path);
        if !self.removes.contains(&path) {
            self.removes.push(path);
        }
    }

    /// Puts a failed batch's leftovers back, *under* what was queued since (newer wins).
    fn restore(&mut self, batch: Batch) {
        for ((class, path), content) in batch.writes {
            let newer = self.removes.contains(&path) || self.writes.keys().any(|(_, p)| *p == path);
            if !newer {
                self.writes.insert((class, path), content);
            }
        }
        let mut removes: Vec<PathBuf> = batch
            .removes
            .into_iter()
            .filter(|p| !self.writes.keys().any(|(_, w)| w == p) && !self.removes.contains(p))
            .collect();
        removes.append(&mut self.removes);
        self.removes = removes;
        let mut log = batch.log;
        log.append(&mut self.log);
        self.log = log;
        self.blocked = true;
    }
}

struct Batch {
    writes: BTreeMap<(Class, PathBuf), Content>,
    removes: Vec<PathBuf>,
    log: Vec<u8>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: bool,
    log_path: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic on the writer thread while holding the lock leaves a usable queue (every
        // field is valid at every point), so a poisoned lock is taken over.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The background writer of one store. Dropping it writes what is queued, then stops.
pub(crate) struct Writer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("durable", &self.shared.durable)
            .finish_non_exhaustive()
    }
}

impl Writer {
    pub(crate) fn start(durable: bool, log_path: PathBuf) -> Result<Writer> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            durable,
            log_path: log_path.clone(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("airlock-proposals-writer".into())
            .spawn(move || run(&s))
            .map_err(|e| ProposalError::io("start the state writer for", log_path, e))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    fn with_queue(&self, f: impl FnOnce(&mut Queue)) {
        let mut q = self.shared.lock();
        f(&mut q);
        q.blocked = false;
        drop(q);
        self.shared.wake.notify_one();
    }

    pub(crate) fn write(&self, class: Class, path: PathBuf, content: Content) {
        self.with_queue(|q| q.write(class, path, content));
    }

    pub(crate) fn remove(&self, path: PathBuf) {
        self.with_queue(|q| q.remove(path));
    }

    /// Appends a line to the history log (`resolved.jsonl`): not fsynced, may lose its tail.
    pub(crate) fn log(&self, line: &[u8]) {
        self.with_queue(|q| {
            q.log.extend_from_slice(line);
            q.log.push(b'\n');
        });
    }

    /// Runs `done` on the writer thread once everything queued so far is on disk, or with
    /// the error that kept it off. `done` must not block.
    pub(crate) fn on_persisted(&self, done: impl FnOnce(Result<()>) + Send + 'static) {
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            // Only a panic ends the thread early; don't leave the caller waiting forever.
            done(Err(self.stopped()));
            return;
        }
        self.with_queue(|q| q.waiters.push(Box::new(done)));
    }

    fn stopped(&self) -> ProposalError {
        ProposalError::Persist {
            dir: self
                .shared
                .log_path
                .parent()
                .unwrap_or(Path::new(""))
                .to_owned(),
            message: "the state writer stopped".into(),
        }
    }

    /// Blocks until everything queued so far is on disk.
    pub(crate) fn flush(&self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.on_persisted(move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or_else(|_| Err(self.stopped()))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared) {
    loop {
        let (batch, waiters) = {
            let mut q = shared.lock();
            while !q.has_work() && !q.shutdown {
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.shutdown && !q.has_work() {
                if q.blocked {
                    // Last try for what failed before; nobody is left to tell.
                    q.blocked = false;
                    continue;
                }
                return;
            }
            let batch = Batch {
                writes: std::mem::take(&mut q.writes),
                removes: std::mem::take(&mut q.removes),
                log: std::mem::take(&mut q.log),
            };
            (batch, std::mem::take(&mut q.waiters))
        };
        let mut batch = batch;
        let result = match apply(shared, &mut batch) {
            Ok(()) => Ok(()),
            Err(err) => {
                let mut q = shared.lock();
                q.restore(batch);
                if q.shutdown {
                    // Don't retry forever on the way out.
                    q.writes.clear();
                    q.removes.clear();
                    q.log.clear();
                }
                Err(err)
            }
        };
        for w in waiters {
            w(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(ProposalError::Persist {
                    dir: shared.log_path.parent().unwrap_or(Path::new("")).to_owned(),
                    message: e.to_string(),
                }),
            });
        }
    }
}

/// Applies one batch; on failure returns the error and leaves what is undone in `batch`.
fn apply(shared: &Shared, batch: &mut Batch) -> Result<()> {
    while let Some(((class, path), content)) = batch.writes.pop_first() {
        let written = match &content {
            Content::Text(t) => write_atomic_with(&path, t.as_bytes(), shared.durable),
            Content::Json(j) => j
                .to_json()
                .map_err(|source| ProposalError::Encode {
                    path: path.clone(),
                    source,
                })
                .and_then(|bytes| write_atomic_with(&path, &bytes, shared.durable)),
        };
        if let Err(e) = written {
            batch.writes.insert((class, path), content);
            return Err(e);
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    while !batch.removes.is_empty() {
        let path = &batch.removes[0];
        match std::fs::remove_file(path) {
            Ok(()) => {
                if let Some(d) = path.parent()
                    && !dirs.iter().any(|x| x == d)
                {
                    dirs.push(d.to_owned());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ProposalError::io("remove", path, e)),
        }
        batch.removes.remove(0);
    }
    if shared.durable {
        for d in &dirs {
            sync_dir(d)?;
        }
    }
    let log = std::mem::take(&mut batch.log);
    if !log.is_empty() {
        // History for humans: losing its tail in a crash is acceptable, and a torn last line
        // is skipped by readers; so no fsync and no retry.
        let path = &shared.log_path;
        if std::fs::metadata(path).is_ok_and(|m| m.len() > RESOLVED_LOG_MAX) {
            let _ = std::fs::rename(path, path.with_extension("jsonl.1"));
        }
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(&log));
    }
    Ok(())
}

/// Object-safe JSON serialization, so records are encoded on the writer thread.
pub(crate) mod erased {
    pub(crate) trait Json: Send {
        fn to_json(&self) -> serde_json::Result<Vec<u8>>;
    }

    impl<T: serde::Serialize + Send> Json for T {
        fn to_json(&self) -> serde_json::Result<Vec<u8>> {
            serde_json::to_vec(self)
        }
    }
}

impl Content {
    pub(crate) fn json(value: impl serde::Serialize + Send + 'static) -> Content {
        Content::Json(Box::new(value))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn queue_paths(q: &Queue) -> (Vec<PathBuf>, Vec<PathBuf>) {
        (
            q.writes.keys().map(|(_, p)| p.clone()).collect(),
            q.removes.clone(),
        )
    }

    #[test]
    fn newest_operation_on_a_path_wins() {
        let mut q = Queue::default();
        let (a, b) = (PathBuf::from("/s/a"), PathBuf::from("/s/b"));
        q.write(Class::Proposal, a.clone(), Content::Text("1".into()));
        q.remove(b.clone());
        q.write(Class::Base, b.clone(), Content::Text("2".into()));
        q.remove(a.clone());
        assert_eq!(queue_paths(&q), (vec![b.clone()], vec![a.clone()]));
    }

    #[test]
    fn writes_before_removes_and_in_class_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("old"), "x").unwrap();
        let w = Writer::start(false, d.join("log")).unwrap();
        w.remove(d.join("old"));
        w.write(Class::Meta, d.join("meta"), Content::json(1u32));
        w.write(Class::Base, d.join("base"), Content::Text("t".into()));
        w.log(b"{}");
        w.flush().unwrap();
        assert!(!d.join("old").exists());
        assert_eq!(std::fs::read_to_string(d.join("meta")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(d.join("base")).unwrap(), "t");
        assert_eq!(std::fs::read_to_string(d.join("log")).unwrap(), "{}\n");
    }

    #[test]
    fn a_failed_batch_is_reported_and_retried() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let w = Writer::start(false, d.join("log")).unwrap();
        let target = d.join("sub").join("f");
        w.write(Class::Proposal, target.clone(), Content::Text("v".into()));
        let err = w.flush().unwrap_err();
        assert!(matches!(err, ProposalError::Persist { .. }), "{err}");
        std::fs::create_dir(d.join("sub")).unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "v");
    }
}
