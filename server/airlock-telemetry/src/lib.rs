//! One event bus for every agent action, and its three sinks: the editor, the audit log, OTLP.
//!
//! Guarantees:
//! - every event gets a unique, strictly increasing `seq` and a timestamp, assigned in one place
//!   ([`Bus::emit`]), so the audit log, the editor and OTLP see the same order;
//! - privacy filters run once, before any sink sees the event ([`redact`]): content fields only
//!   with [`Bus::set_content`], secret-looking values always redacted;
//! - emitting never blocks on a consumer: the editor queue is bounded and counts what it drops
//!   ([`EditorQueue`]), the OTLP exporter has a bounded queue of its own ([`otlp`]), the audit
//!   log is an append to a local file;
//! - the audit log is hash-chained and rotated ([`audit`]); when it cannot be written (disk
//!   full, directory unwritable) the server goes on, the failure is logged and reported once as
//!   an `audit.error` event to the other sinks, and the lost records are counted;
//! - nothing here panics on I/O errors.

pub mod audit;
mod event;
pub mod otlp;
mod queue;
pub mod redact;

pub use event::{Event, EventKind};
pub use queue::{Batch, EditorQueue};

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Capacity of the editor queue created with the bus.
pub const EDITOR_QUEUE: usize = 4096;

/// Cloneable handle to the bus. Cheap to clone; all clones share the sequence counter and sinks.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    seq: u64,
    session: String,
    content: bool,
    audit: Option<audit::AuditLog>,
    /// True while the audit log is failing and the failure has been reported.
    audit_failing: bool,
    audit_errors_reported: u64,
    editor: Option<EditorQueue>,
    otlp: Option<otlp::OtlpExporter>,
    subscribers: Vec<SyncSender<Event>>,
}

/// Counters for status displays, tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Events emitted (the last `seq`).
    pub emitted: u64,
    /// Records the audit log could not write.
    pub audit_lost: u64,
    /// Times an audit failure was reported (once per failing stretch).
    pub audit_errors_reported: u64,
    /// Events the editor queue dropped because the editor did not keep up.
    pub editor_dropped: u64,
}

impl Bus {
    /// A bus with an editor queue of [`EDITOR_QUEUE`] events (so events emitted before the
    /// editor attaches are kept for it) and no other sinks.
    pub fn new(session: impl Into<String>) -> Bus {
        Bus {
            inner: Arc::new(Mutex::new(Inner {
                seq: 0,
                session: session.into(),
                content: false,
                audit: None,
                audit_failing: false,
                audit_errors_reported: 0,
                editor: Some(EditorQueue::new(EDITOR_QUEUE)),
                otlp: None,
                subscribers: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether content fields (prompt text, command output) are kept. Off by default.
    pub fn set_content(&self, content: bool) {
        self.lock().content = content;
    }

    /// Attaches the audit log and starts the thread that writes its batches every
    /// [`audit::FLUSH_EVERY`]; the thread ends with the bus.
    pub fn attach_audit(&self, log: audit::AuditLog) {
        self.lock().audit = Some(log);
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("airlock-audit".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(audit::FLUSH_EVERY);
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    Bus { inner }.flush_audit();
                }
            });
        if let Err(err) = spawned {
            // Batches are still written when full and at exit.
            tracing::error!("cannot start the audit flush thread: {err}");
        }
    }

    /// Writes the audit records waiting in the current batch.
    pub fn flush_audit(&self) {
        let mut inner = self.lock();
        if let Some(log) = inner.audit.as_mut() {
            let result = log.flush();
            audit_result(&mut inner, result);
        }
    }

    /// Opens the audit log in `dir` and attaches it. If it cannot be opened the server goes on
    /// without it; the failure is logged and reported once as an `audit.error` event.
    pub fn open_audit(&self, dir: &Path, options: audit::AuditOptions) {
        match audit::AuditLog::open(dir, options) {
            Ok(log) => self.attach_audit(log),
            Err(err) => {
                let mut inner = self.lock();
                inner.audit_failing = true;
                report_audit_error(&mut inner, &err);
            }
        }
    }

    /// Attaches the OTLP exporter configured by the environment. `Ok(false)`: export is off
    /// (no endpoint). `Err`: a configuration it cannot honour; export stays off and the caller
    /// says so.
    pub fn attach_otlp_from_env(&self) -> Result<bool, otlp::OtlpError> {
        match otlp::OtlpExporter::from_env()? {
            Some(exporter) => {
                self.lock().otlp = Some(exporter);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn attach_otlp(&self, exporter: otlp::OtlpExporter) {
        self.lock().otlp = Some(exporter);
    }

    /// The editor queue (created with the bus). `None` after [`Bus::detach_editor`].
    pub fn editor_queue(&self) -> Option<EditorQueue> {
        self.lock().editor.clone()
    }

    pub fn attach_editor(&self, queue: EditorQueue) {
        self.lock().editor = Some(queue);
    }

    /// Stops feeding the editor queue (a client that did not opt in to telemetry).
    pub fn detach_editor(&self) {
        self.lock().editor = None;
    }

    /// Every event emitted from now on is also sent to the returned receiver, which holds at
    /// most `capacity` events; when it is full, events are dropped for this subscriber only.
    pub fn subscribe(&self, capacity: usize) -> Receiver<Event> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        self.lock().subscribers.push(tx);
        rx
    }

    pub fn stats(&self) -> BusStats {
        let inner = self.lock();
        BusStats {
            emitted: inner.seq,
            audit_lost: inner.audit.as_ref().map_or(0, audit::AuditLog::lost),
            audit_errors_reported: inner.audit_errors_reported,
            editor_dropped: inner.editor.as_ref().map_or(0, EditorQueue::total_dropped),
        }
    }

    /// Writes the waiting audit batch, sends what the OTLP exporter has queued and stops it
    /// (server exit).
    pub fn shutdown(&self) {
        self.flush_audit();
        let otlp = self.lock().otlp.take();
        if let Some(otlp) = otlp {
            // Flushes what is queued, bounded in time: a Collector that is down cannot hold
            // the exit up for long.
            otlp.shutdown();
        }
    }

    /// Numbers, timestamps, filters and fans out one event. Returns the event as recorded.
    pub fn emit(&self, mut event: Event) -> Event {
        let mut inner = self.lock();
        inner.seq += 1;
        event.seq = inner.seq;
        event.ts_ms = now_ms();
        if event.session.is_empty() {
            event.session.clone_from(&inner.session);
        }
        redact::apply(&mut event, inner.content);
        if let Some(log) = inner.audit.as_mut() {
            let result = log.append(&event);
            audit_result(&mut inner, result);
        }
        fan_out(&mut inner, &event);
        event
    }
}

/// Sends to every sink but the audit log.
fn fan_out(inner: &mut Inner, event: &Event) {
    if let Some(editor) = &inner.editor {
        editor.push(event.clone());
    }
    if let Some(otlp) = &inner.otlp {
        otlp.export(event);
    }
    inner
        .subscribers
        .retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
}

fn audit_result(inner: &mut Inner, result: Result<(), audit::AuditError>) {
    match result {
        Ok(()) => {
            // Only a write that happened ends a failing stretch, not an event merely queued.
            if inner.audit.as_ref().is_some_and(|l| l.pending() == 0) {
                inner.audit_failing = false;
            }
        }
        Err(err) if !inner.audit_failing => {
            inner.audit_failing = true;
            report_audit_error(inner, &err);
        }
        Err(_) => {}
    }
}

/// Logs the failure and tells the other sinks, once per failing stretch.
fn report_audit_error(inner: &mut Inner, err: &audit::AuditError) {
    tracing::error!("audit log: {err}; the server goes on, lost records are counted");
    inner.audit_errors_reported += 1;
    inner.seq += 1;
    let mut event =
        Event::new(EventKind::AuditError, "audit log not written").field("error", err.to_string());
    event.seq = inner.seq;
    event.ts_ms = now_ms();
    event.session.clone_from(&inner.session);
    fan_out(inner, &event);
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn seq_is_assigned_in_order_and_filters_apply_to_every_sink() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::new("s-test");
        bus.open_audit(dir.path(), audit::AuditOptions::default());
        let sub = bus.subscribe(16);
        bus.emit(Event::new(EventKind::Prompt, "3 chars").field("text", "hi!"));
        bus.emit(Event::new(
            EventKind::CommandStarted,
            "curl -u bob:hunter2 http://x",
        ));
        bus.set_content(true);
        bus.emit(Event::new(EventKind::Prompt, "3 chars").field("text", "yo!"));
        let got: Vec<Event> = sub.try_iter().collect();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(got.iter().all(|e| e.session == "s-test"));
        assert!(!got[0].fields.contains_key("text"));
        assert_eq!(got[1].subject, "curl -u bob:[REDACTED] http://x");
        assert_eq!(got[2].fields["text"], "yo!");
        // The audit log holds the same, filtered events.
        bus.flush_audit();
        let files = audit::list_files(dir.path()).unwrap();
        let logged: Vec<Event> = audit::read_records(&files)
            .into_iter()
            .filter_map(|(_, _, r)| r.unwrap().event)
            .collect();
        assert_eq!(logged, got);
        let batch = bus
            .editor_queue()
            .unwrap()
            .take_batch(10, std::time::Duration::from_millis(1));
        assert_eq!(batch.events, got);
    }

    #[test]
    fn unwritable_audit_dir_is_reported_once_and_the_bus_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("audit");
        std::fs::write(&blocker, "a file where the directory should be").unwrap();
        let bus = Bus::new("s");
        let sub = bus.subscribe(64);
        bus.open_audit(&blocker, audit::AuditOptions::default());
        for _ in 0..5 {
            bus.emit(Event::new(EventKind::FsRead, "x"));
        }
        let kinds: Vec<EventKind> = sub.try_iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| **k == EventKind::AuditError)
                .count(),
            1
        );
        assert_eq!(kinds.iter().filter(|k| **k == EventKind::FsRead).count(), 5);
        assert_eq!(bus.stats().audit_errors_reported, 1);
    }

    #[test]
    fn full_subscriber_drops_instead_of_growing() {
        let bus = Bus::new("s");
        let sub = bus.subscribe(2);
        for _ in 0..10 {
            bus.emit(Event::new(EventKind::FsRead, "x"));
        }
        assert_eq!(sub.try_iter().count(), 2);
        assert_eq!(bus.stats().emitted, 10);
    }
}
