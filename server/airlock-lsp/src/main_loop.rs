//! The one task that owns all server state, and the handle LSP handlers use to reach it.
//!
//! Guarantees: closures sent through a [`Handle`] run one at a time, in the order they were sent;
//! nothing in here awaits the editor or the agent (those waits happen on spawned tasks that
//! report back with another closure).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use airlock_telemetry::{Bus, Event, EventKind};
use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::{Diagnostic, Uri};

use crate::ServeConfig;
use crate::documents::{Documents, Encoding};
use crate::ext::ClientOptIn;
use crate::outbox::Outbox;
use crate::settings::Settings;

pub type Task = Box<dyn FnOnce(&mut State) + Send>;

/// How long a request to the editor (applyEdit, approval) may take before we give up on it.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Task>,
}

impl Handle {
    /// Runs `f` on the state task; returns immediately.
    pub fn notify(&self, f: impl FnOnce(&mut State) + Send + 'static) {
        let _ = self.tx.send(Box::new(f));
    }

    /// Runs `f` on the state task and waits for its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> R + Send + 'static,
    ) -> jsonrpc::Result<R> {
        let (tx, rx) = oneshot::channel();
        self.notify(move |state| {
            let _ = tx.send(f(state));
        });
        rx.await.map_err(|_| jsonrpc::Error::internal_error())
    }

    pub fn attach_client(&self, client: Client) {
        self.notify(move |state| {
            state.out = Some(Outbox::start(client.clone()));
            state.client = Some(client);
        });
    }
}

pub struct State {
    pub config: ServeConfig,
    pub handle: Handle,
    pub client: Option<Client>,
    out: Option<Outbox>,
    pub docs: Documents,
    pub encoding: Encoding,
    pub opt_in: ClientOptIn,
    pub root: Option<PathBuf>,
    pub settings: Settings,
    pub bus: Bus,
    /// Identifies this server run in events and proposal origins.
    pub session: String,
    pub shutting_down: bool,
    pub proposals: Option<airlock_proposals::Store>,
    pub agent: crate::handlers::agent::AgentState,
    pub terminals: crate::handlers::terminals::Terminals,
    pub approvals: crate::handlers::approvals::Approvals,
    pub shadow: crate::handlers::shadow::ShadowState,
    pub policy: crate::handlers::policy_file::PolicyState,
    /// Proposals whose accepted text is on its way to the editor (`workspace/applyEdit` sent,
    /// not answered yet): their hunks may already be in the buffer without being hand-applied.
    pub resolving: std::collections::HashSet<airlock_proposals::ProposalId>,
    /// The hunk positions last announced per proposal, to announce only real changes.
    pub announced_views: HashMap<airlock_proposals::ProposalId, Vec<airlock_proposals::HunkView>>,
    /// Diagnostics per file and per producer; the editor gets their union (see `set_diagnostics`).
    diagnostics: HashMap<Uri, [Vec<Diagnostic>; 2]>,
}

/// Who produced a set of diagnostics. LSP replaces a file's diagnostics wholesale, so every
/// producer's set is kept and the union is published.
#[derive(Clone, Copy)]
pub enum DiagnosticSource {
    Policy = 0,
    Proposals = 1,
}

impl State {
    /// The outbox exists from the first message on (the client is attached before serving).
    pub fn out(&self) -> Option<&Outbox> {
        self.out.as_ref()
    }

    /// Replaces one producer's diagnostics for `uri` and publishes the union.
    pub fn set_diagnostics(
        &mut self,
        uri: Uri,
        source: DiagnosticSource,
        diagnostics: Vec<Diagnostic>,
        version: Option<i32>,
    ) {
        if diagnostics.is_empty() && !self.diagnostics.contains_key(&uri) {
            return; // nothing was shown, nothing to clear
        }
        let sets = self.diagnostics.entry(uri.clone()).or_default();
        sets[source as usize] = diagnostics;
        let all: Vec<Diagnostic> = sets.iter().flatten().cloned().collect();
        if all.is_empty() {
            self.diagnostics.remove(&uri);
        }
        if let Some(out) = self.out() {
            out.publish_diagnostics(uri, all, version);
        }
    }

    pub fn emit(&self, event: Event) {
        self.bus.emit(event);
    }

    /// Sends a request to the editor on its own task; `then` runs on the state task with the
    /// answer (or the error / timeout).
    pub fn request_client<F, R>(
        &self,
        make: impl FnOnce(Client) -> F + Send + 'static,
        then: impl FnOnce(&mut State, jsonrpc::Result<R>) + Send + 'static,
    ) where
        F: Future<Output = jsonrpc::Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let Some(client) = self.client.clone() else {
            return;
        };
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(CLIENT_REQUEST_TIMEOUT, make(client)).await {
                Ok(r) => r,
                Err(_) => Err(jsonrpc::Error {
                    code: jsonrpc::ErrorCode::RequestCancelled,
                    message: "the editor did not answer in time".into(),
                    data: None,
                }),
            };
            handle.notify(move |state| then(state, result));
        });
    }
}

pub struct StateTask {
    join: tokio::task::JoinHandle<()>,
    handle: Handle,
}

impl StateTask {
    /// Stops the state task after everything queued before has run.
    pub async fn shutdown(self) {
        self.handle.notify(|state| state.shutting_down = true);
        drop(self.handle);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.join).await;
    }
}

pub fn start(config: ServeConfig) -> (Handle, StateTask) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
    let handle = Handle { tx };
    let session = format!("s-{}-{}", std::process::id(), airlock_telemetry::now_ms());
    let bus = Bus::new(session.clone());
    // Telemetry sinks that need no editor: the audit log and, if configured, OTLP. Neither can
    // stop the server; failures are logged (and the audit one reported as an event).
    bus.open_audit(
        &config.state_dir.join(airlock_telemetry::audit::DIR_NAME),
        Default::default(),
    );
    match bus.attach_otlp_from_env() {
        Ok(true) => tracing::info!("exporting telemetry over OTLP"),
        Ok(false) => {}
        Err(err) => tracing::warn!("{err}; OTLP export is off"),
    }
    let mut state = State {
        settings: config.user_settings.clone(),
        config,
        handle: handle.clone(),
        client: None,
        out: None,
        docs: Documents::default(),
        encoding: Encoding::Utf16,
        opt_in: ClientOptIn::default(),
        root: None,
        bus,
        session,
        shutting_down: false,
        proposals: None,
        agent: Default::default(),
        terminals: Default::default(),
        approvals: Default::default(),
        shadow: Default::default(),
        policy: Default::default(),
        diagnostics: HashMap::new(),
        resolving: Default::default(),
        announced_views: HashMap::new(),
    };
    state.emit(Event::new(
        EventKind::ServerStarted,
        env!("CARGO_PKG_VERSION"),
    ));
    let join = tokio::spawn(async move {
        while let Some(task) = rx.recv().await {
            task(&mut state);
            if state.shutting_down {
                crate::handlers::lifecycle::on_exit(&mut state);
                state.emit(Event::new(EventKind::ServerStopped, "exit"));
                state.bus.shutdown();
                break;
            }
        }
    });
    (handle.clone(), StateTask { join, handle })
}
