//! One event bus for every agent action.
//!
//! Guarantees:
//! - every event gets a unique, strictly increasing `seq` and a timestamp, assigned in one place
//!   ([`Bus::emit`]), so the audit log and the editor see the same order;
//! - emitting never blocks on a consumer: the editor queue is bounded and counts what it drops
//!   ([`EditorQueue`]), the audit log is an append to a local file;
//! - the audit log is hash-chained: each record carries the SHA-256 of the previous line
//!   ([`audit`]), so a modified, deleted, reordered or truncated record is detectable.

pub mod audit;
mod event;
mod queue;

pub use event::{Event, EventKind};
pub use queue::EditorQueue;

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Cloneable handle to the bus. Cheap to clone; all clones share the sequence counter and sinks.
#[derive(Clone, Default)]
pub struct Bus {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    seq: u64,
    session: String,
    audit: Option<audit::AuditWriter>,
    editor: Option<EditorQueue>,
    subscribers: Vec<std::sync::mpsc::Sender<Event>>,
}

impl Bus {
    /// A bus with no sinks: events are numbered and dropped. Sinks are attached later.
    pub fn new(session: impl Into<String>) -> Bus {
        let bus = Bus::default();
        bus.lock().session = session.into();
        bus
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the counters inconsistent, so recover.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn attach_audit(&self, writer: audit::AuditWriter) {
        self.lock().audit = Some(writer);
    }

    pub fn attach_editor(&self, queue: EditorQueue) {
        self.lock().editor = Some(queue);
    }

    /// Every event emitted from now on is also sent to the returned receiver.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<Event> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Numbers, timestamps and fans out one event. Returns the event as recorded.
    pub fn emit(&self, mut event: Event) -> Event {
        let mut inner = self.lock();
        inner.seq += 1;
        event.seq = inner.seq;
        event.ts_ms = now_ms();
        if event.session.is_empty() {
            event.session.clone_from(&inner.session);
        }
        if let Some(audit) = inner.audit.as_mut()
            && let Err(err) = audit.append(&event)
        {
            tracing::error!("audit log write failed: {err}");
        }
        if let Some(editor) = &inner.editor {
            editor.push(event.clone());
        }
        inner
            .subscribers
            .retain(|tx| tx.send(event.clone()).is_ok());
        event
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
