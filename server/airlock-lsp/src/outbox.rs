//! Ordered, non-blocking delivery of notifications to the editor.
//!
//! The main loop must never wait on the editor, so it queues messages here; one task sends them
//! in queue order. Telemetry has its own bounded queue (see `airlock_telemetry::EditorQueue`);
//! everything here is state the editor needs (diagnostics, proposals), so it is not dropped.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::{Diagnostic, MessageType, Uri};

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Job>,
}

impl Outbox {
    pub fn start(client: Client) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                job(client.clone()).await;
            }
        });
        Outbox { tx }
    }

    fn push(&self, job: Job) {
        // The receiver only goes away when the server is exiting; nothing to deliver to then.
        let _ = self.tx.send(job);
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
        self.push(Box::new(move |client| {
            Box::pin(async move { client.log_message(typ, message).await })
        }));
    }

    pub fn show(&self, typ: MessageType, message: String) {
        self.push(Box::new(move |client| {
            Box::pin(async move { client.show_message(typ, message).await })
        }));
    }
}
