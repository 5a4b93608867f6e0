//! Ordered, non-blocking delivery of notifications to the editor.
//!
//! The main loop must never wait on the editor, so it queues messages here; one task sends them
//! in queue order. Telemetry has its own bounded queue (see `airlock_telemetry::EditorQueue`).
//! State the editor needs (diagnostics, proposals, status) is never dropped; chatter (agent
//! output, log lines, progress) is dropped once [`CHATTER_LIMIT`] messages are waiting, so a
//! stuck editor cannot make the server's memory grow without bound. Drops are counted and
//! reported in one log line when the editor catches up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{Diagnostic, MessageType, Uri};

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Messages waiting beyond which chatter is dropped.
pub const CHATTER_LIMIT: usize = 4096;

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Job>,
    waiting: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
}

impl Outbox {
    pub fn start(client: Client) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (w, d) = (waiting.clone(), dropped.clone());
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job(client.clone()).await;
                if w.fetch_sub(1, Ordering::SeqCst) == 1 {
                    let lost = d.swap(0, Ordering::SeqCst);
                    if lost > 0 {
                        let message = format!(
                            "airlock: the editor fell behind; {lost} agent output/log messages were dropped"
                        );
                        client.log_message(MessageType::WARNING, message).await;
                    }
                }
            }
        });
        Outbox {
            tx,
            waiting,
            dropped,
        }
    }

    fn push(&self, job: Job) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // The receiver only goes away when the server is exiting; nothing to deliver to then.
        let _ = self.tx.send(job);
    }

    /// Queues a message the editor can do without, unless too many are already waiting.
    fn push_chatter(&self, job: Job) {
        if self.waiting.load(Ordering::SeqCst) >= CHATTER_LIMIT {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return;
        }
        self.push(job);
    }

    /// Like [`Outbox::notify`], for chatter (agent output, progress): dropped when backed up.
    pub fn notify_chatter<N>(&self, params: N::Params)
    where
        N: Notification,
        N::Params: Send + 'static,
    {
        self.push_chatter(Box::new(move |client| {
            Box::pin(async move { client.send_notification::<N>(params).await })
        }));
    }

    pub fn notify<N>(&self, params: N::Params)
    where
        N: Notification,
        N::Params: Send + 'static,
    {
        self.push(Box::new(move |client| {
            Box::pin(async move { client.send_notification::<N>(params).await })
        }));
    }

    pub fn publish_diagnostics(
        &self,
        uri: Uri,
        diagnostics: Vec<Diagnostic>,
        version: Option<i32>,
    ) {
        self.push(Box::new(move |client| {
            Box::pin(async move { client.publish_diagnostics(uri, diagnostics, version).await })
        }));
    }

    pub fn log(&self, typ: MessageType, message: String) {
        self.push_chatter(Box::new(move |client| {
            Box::pin(async move { client.log_message(typ, message).await })
        }));
    }

    pub fn show(&self, typ: MessageType, message: String) {
        self.push(Box::new(move |client| {
            Box::pin(async move { client.show_message(typ, message).await })
        }));
    }
}
