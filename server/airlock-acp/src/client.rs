//! The client side of ACP: spawns an agent process and drives it for `airlock serve`.
//!
//! Guarantees:
//! - Handlers never wait on the server inside the SDK's dispatch loop for longer than it takes to
//!   queue an [`AgentEvent`]: every agent request is answered from a spawned task that waits on
//!   the request's [`Reply`], so a write waiting for the user's accept never stalls the stream of
//!   updates (STYLE.md, "Pitfalls").
//! - Every agent request gets exactly one answer: the server's, or an internal error when the
//!   server drops the [`Reply`], or `cancelled` for permission requests pending at [`AgentClient::cancel`].
//! - Malformed input (invalid JSON, oversized messages, unknown methods, bad parameters, a foreign
//!   session id) becomes [`AgentEvent::ProtocolError`]; the connection stays up.
//! - [`AgentEvent::Exited`] is sent exactly once, last, whatever ended the agent; afterwards every
//!   method fails with [`AcpError::Closed`] instead of hanging.
//! - The agent's stderr goes to `tracing` (target `airlock_acp::agent_stderr`), line by line.
//! - Protocol version: `initialize` offers 2 when [`ClientOptions::offer_protocol_v2`] is set,
//!   else 1; the agent's answer must be 1 or 2 and at most the offer, otherwise the handshake
//!   fails with an error naming both sides. With v2, [`AgentClient::prompt`] returns when the
//!   agent reports `idle` (v2 only acknowledges the prompt), with every update of the turn
//!   queued, as with v1.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agent_client_protocol::v1::schema as acp;
use agent_client_protocol::{
    Agent, Builder, Client, ConnectionTo, Dispatch, Lines, Responder, UntypedMessage,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

use crate::transport::{self, IssueReporter, TrafficTap};
use crate::types::{
    AgentEvent, AgentInfo, AgentRequest, PermissionOutcome, Reply, StopReason, TerminalExit,
};
use crate::wire;

/// How to start the agent: from the user's config, the editor's `initializationOptions` or
/// `--agent` — never from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Program and arguments, e.g. `["airlock", "agent", "mock"]`.
    pub command: Vec<String>,
    /// Extra environment variables for the agent (added to what the command inherits).
    pub env: BTreeMap<String, String>,
    /// Working directory of the agent process (usually the workspace root).
    pub cwd: PathBuf,
}

impl AgentConfig {
    /// The command this config describes, for callers that wrap it (sandboxing) before
    /// handing it to [`AgentClient::spawn_command`].
    pub fn to_command(&self) -> Result<Command, AcpError> {
        let (program, args) = self.command.split_first().ok_or(AcpError::EmptyCommand)?;
        let mut command = Command::new(program);
        command.args(args).envs(&self.env).current_dir(&self.cwd);
        Ok(command)
    }
}

/// Knobs of the client side; [`Default`] is what `airlock serve` should use.
#[derive(Clone)]
pub struct ClientOptions {
    /// Sent as `clientInfo` in `initialize`.
    pub client_name: String,
    pub client_version: String,
    /// Largest JSON-RPC message accepted from the agent; longer ones are dropped and reported.
    pub max_message_bytes: usize,
    /// Events queued before the agent is slowed down (backpressure through its stdout pipe).
    pub event_capacity: usize,
    /// Time allowed for `initialize` + `session/new`.
    pub handshake_timeout: Duration,
    /// After [`AgentClient::shutdown`] closes the agent's stdin, how long it may take to exit
    /// before it is killed.
    pub exit_grace: Duration,
    /// Sees every JSON-RPC line exchanged with the agent (tests, protocol debugging).
    pub traffic_tap: Option<TrafficTap>,
    /// Advertise the client's `fs` and `terminal` capabilities in `initialize` (default). Off
    /// for a shadow workspace: the agent then writes files and runs commands itself.
    pub client_fs_and_terminal: bool,
    /// Offer ACP protocol version 2 in `initialize` (else 1). Only for a shadow workspace: a
    /// v2 agent writes files and runs commands itself, with no `fs/*` or `terminal/*` to
    /// route through Airlock. The agent answers with the version it speaks
    /// ([`AgentClient::protocol_version`]).
    pub offer_protocol_v2: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_name: String::from("airlock"),
            client_version: String::from(env!("CARGO_PKG_VERSION")),
            max_message_bytes: 64 * 1024 * 1024,
            event_capacity: 1024,
            handshake_timeout: Duration::from_secs(30),
            exit_grace: Duration::from_secs(2),
            client_fs_and_terminal: true,
            offer_protocol_v2: false,
            traffic_tap: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("client_name", &self.client_name)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("event_capacity", &self.event_capacity)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("traffic_tap", &self.traffic_tap.is_some())
            .finish()
    }
}

/// Errors of the client side.
#[derive(Debug, thiserror::Error)]
pub enum AcpError {
    #[error(
        "no agent command configured: set `agent.command` in ~/.config/airlock/config.toml, \
         the editor's initializationOptions, or pass --agent"
    )]
    EmptyCommand,
    #[error("could not start agent `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("agent `{program}` failed the ACP handshake at {step}: {message}{}", stderr_suffix(.stderr_tail))]
    Handshake {
        program: String,
        step: &'static str,
        message: String,
        stderr_tail: String,
    },
    #[error("agent answered {method} with error {code}: {message}")]
    Rpc {
        method: &'static str,
        code: i32,
        message: String,
    },
    #[error("the agent connection is closed (the agent exited or was shut down)")]
    Closed,
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\nagent stderr (last lines):\n{tail}")
    }
}

const STDERR_TAIL_LINES: usize = 20;
const STDERR_LINE_MAX: usize = 4096;
/// ACP v2's error code for an `initialize` whose version the agent cannot speak.
const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// State shared by the dispatch handler, the forwarding tasks and the handle.
struct Shared {
    events: mpsc::Sender<AgentEvent>,
    session_id: OnceLock<String>,
    /// Bumped by `cancel()`: permission requests still waiting answer `cancelled`.
    cancel_generation: watch::Sender<u64>,
    /// The negotiated ACP protocol version, set once `initialize` is answered.
    version: OnceLock<u16>,
    /// v2 only: the agent's foreground work as its `state_update`s report it.
    turn: watch::Sender<TurnProgress>,
}

/// v2 turn tracking: a prompt's turn ends at the first `idle` after it was sent that ends
/// foreground work (one following `running`, or one carrying a stop reason).
#[derive(Debug, Clone, Default)]
struct TurnProgress {
    running: bool,
    /// How many times foreground work ended.
    ended: u64,
    last_stop: Option<StopReason>,
}

impl Shared {
    fn is_v2(&self) -> bool {
        self.version.get().is_some_and(|v| *v >= 2)
    }

    async fn emit(&self, event: AgentEvent) {
        // A closed receiver means the server stopped listening: nothing left to tell.
        let _ = self.events.send(event).await;
    }

    async fn protocol_error(&self, message: String) {
        tracing::warn!(target: "airlock_acp", "agent protocol error: {message}");
        self.emit(AgentEvent::ProtocolError(message)).await;
    }
}

/// One piece of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptPart {
    Text(String),
    /// A file the prompt refers to, e.g. `file:///work/src/lib.rs` named `lib.rs`.
    ResourceLink {
        name: String,
        uri: String,
    },
}

/// A running agent with one ACP session on the workspace. Cheap to clone; dropping the last
/// clone shuts the agent down.
#[derive(Clone)]
pub struct AgentClient {
    inner: Arc<Inner>,
}

struct Inner {
    cx: ConnectionTo<Agent>,
    shared: Arc<Shared>,
    session_id: String,
    agent_info: Option<AgentInfo>,
    protocol_version: u16,
    pid: Option<u32>,
    shutdown: watch::Sender<bool>,
    exited: watch::Receiver<bool>,
}

/// The receiving end of everything the agent reports; drain it continuously from the server's
/// main loop (a full queue slows the agent down, it never drops events).
pub type AgentEvents = mpsc::Receiver<AgentEvent>;

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient")
            .field("session_id", &self.inner.session_id)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl AgentClient {
    /// Starts `config`'s command, then `initialize` (advertising fs read/write and terminals)
    /// and `session/new` on `workspace_root`. The agent gets its own process group, killed as a
    /// whole on shutdown.
    pub async fn spawn(
        config: &AgentConfig,
        workspace_root: &Path,
        options: ClientOptions,
    ) -> Result<(AgentClient, AgentEvents), AcpError> {
        let mut command = config.to_command()?;
        command.process_group(0);
        Self::spawn_command(command, workspace_root, options).await
    }

    /// Like [`spawn`](Self::spawn) with a command the caller built (e.g. wrapped in the
    /// sandbox). Its stdin/stdout/stderr are replaced by pipes; it is killed when the client is
    /// dropped.
    pub async fn spawn_command(
        mut command: Command,
        workspace_root: &Path,
        options: ClientOptions,
    ) -> Result<(AgentClient, AgentEvents), AcpError> {
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| AcpError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id();
        let own_group = pid.is_some_and(is_group_leader);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(AcpError::Spawn {
                program,
                source: std::io::Error::other("stdio pipes were not created"),
            });
        };
        tracing::info!(target: "airlock_acp", pid, %program, "agent started");

        let (events_tx, events_rx) = mpsc::channel(options.event_capacity.max(1));
        let (cancel_generation, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            events: events_tx,
            session_id: OnceLock::new(),
            cancel_generation,
            version: OnceLock::new(),
            turn: watch::channel(TurnProgress::default()).0,
        });

        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = tokio::spawn(log_stderr(stderr, pid, stderr_tail.clone()));

        let report: IssueReporter = {
            let shared = shared.clone();
            Arc::new(move |issue| {
                let shared = shared.clone();
                Box::pin(async move { shared.protocol_error(issue.to_string()).await })
            })
        };
        // The writer task ends by itself once the connection drops the sink.
        let (outgoing, _writer) = transport::outgoing_lines(stdin, options.traffic_tap.clone());
        let lines = Lines::new(
            outgoing,
            transport::incoming_lines(
                stdout,
                options.max_message_bytes,
                options.traffic_tap.clone(),
                report,
            ),
        );

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = oneshot::channel();
        let handler_shared = shared.clone();
        let mut main_shutdown = shutdown_rx.clone();
        let connection = tokio::spawn(async move {
            // A version-neutral connection: the SDK's `Client.v1()` rewrites every `initialize`
            // to version 1, and its v2 client (unstable feature) must be chosen before
            // connecting. Airlock negotiates itself (`wire::v2`) on this one connection and
            // checks both versions' traffic against their schemas in tests.
            Builder::new(Client)
                .name("airlock")
                .on_receive_dispatch(
                    async move |dispatch: Dispatch, cx: ConnectionTo<Agent>| {
                        dispatch_from_agent(&handler_shared, dispatch, &cx).await
                    },
                    agent_client_protocol::on_receive_dispatch!(),
                )
                .connect_with(lines, async move |cx: ConnectionTo<Agent>| {
                    let _ = ready_tx.send(cx.clone());
                    tokio::select! {
                        () = cx.incoming_closed() => {}
                        () = stop_requested(&mut main_shutdown) => {}
                    }
                    Ok(())
                })
                .await
        });

        let (exited_tx, exited_rx) = watch::channel(false);
        tokio::spawn(watch_process(WatchArgs {
            child,
            own_group,
            connection,
            stderr_task,
            stderr_tail: stderr_tail.clone(),
            shared: shared.clone(),
            shutdown: shutdown_rx,
            exit_grace: options.exit_grace,
            exited: exited_tx,
        }));

        let handshake_error = |step: &'static str, message: String| AcpError::Handshake {
            program: program.clone(),
            step,
            message,
            stderr_tail: tail_text(&stderr_tail),
        };
        let Ok(cx) = ready_rx.await else {
            let _ = shutdown_tx.send(true);
            return Err(handshake_error(
                "connect",
                String::from("the connection ended at once"),
            ));
        };

        let step = Mutex::new("initialize");
        let handshake = async {
            let offer = if options.offer_protocol_v2 {
                wire::v2::LATEST
            } else {
                1
            };
            let params = wire::v2::initialize_params(
                offer,
                &options.client_name,
                &options.client_version,
                options.client_fs_and_terminal,
            );
            let request = UntypedMessage::new("initialize", params)
                .map_err(|e| ("initialize", e.message.clone()))?;
            let result = cx.send_request(request).block_task().await.map_err(|e| {
                if e.code.value() == UNSUPPORTED_PROTOCOL_VERSION {
                    (
                        "initialize",
                        wire::v2::unsupported_version(e.data.as_ref(), offer),
                    )
                } else {
                    ("initialize", e.message.clone())
                }
            })?;
            let init = wire::v2::negotiated(&result, offer).map_err(|m| ("initialize", m))?;
            let _ = shared.version.set(init.version);
            if let Ok(mut step) = step.lock() {
                *step = "session/new";
            }
            // Agents send updates (e.g. available commands) right after answering
            // session/new. An ordered callback records the session id on the dispatch loop
            // before the next message is dispatched, so those updates are not taken for a
            // foreign session's.
            let (session_tx, session_rx) = oneshot::channel();
            let record = shared.clone();
            cx.prepare_request(acp::NewSessionRequest::new(workspace_root.to_path_buf()))
                .on_receiving_result(move |result| {
                    if let Ok(response) = &result {
                        let _ = record.session_id.set(response.session_id.0.to_string());
                    }
                    let _ = session_tx.send(result);
                    futures::future::ready(Ok(()))
                })
                .map_err(|e| ("session/new", e.message.clone()))?;
            let session = session_rx
                .await
                .map_err(|_| ("session/new", String::from("the connection closed")))?
                .map_err(|e| ("session/new", e.message.clone()))?;
            Ok((init, session))
        };
        let outcome = tokio::time::timeout(options.handshake_timeout, handshake).await;
        let (init, session) = match outcome {
            Ok(Ok(done)) => done,
            failed => {
                let (step, message) = match failed {
                    Ok(Err(failure)) => failure,
                    _ => (
                        step.lock().map_or("initialize", |s| *s),
                        format!("no answer within {:?}", options.handshake_timeout),
                    ),
                };
                // Stop the agent and let its last stderr lines arrive: they usually say why.
                let _ = shutdown_tx.send(true);
                let mut exited = exited_rx.clone();
                let settle = options.exit_grace + Duration::from_secs(1);
                let _ = tokio::time::timeout(settle, exited.wait_for(|gone| *gone)).await;
                return Err(handshake_error(step, message));
            }
        };
        let session_id = session.session_id.0.to_string();
        let agent_info = init.agent_info;
        let protocol_version = init.version;
        tracing::info!(target: "airlock_acp", pid, session = %session_id, agent = ?agent_info, protocol_version, "agent session ready");

        let client = AgentClient {
            inner: Arc::new(Inner {
                cx,
                shared,
                session_id,
                agent_info,
                protocol_version,
                pid,
                shutdown: shutdown_tx,
                exited: exited_rx,
            }),
        };
        Ok((client, events_rx))
    }

    /// The ACP session id of the workspace session.
    pub fn session_id(&self) -> &str {
        &self.inner.session_id
    }

    /// What the agent said about itself in `initialize`.
    pub fn agent_info(&self) -> Option<&AgentInfo> {
        self.inner.agent_info.as_ref()
    }

    /// The ACP protocol version the agent answered in `initialize` (1 or 2).
    pub fn protocol_version(&self) -> u16 {
        self.inner.protocol_version
    }

    /// Process id of the agent (of the wrapper, when the command was wrapped).
    pub fn pid(&self) -> Option<u32> {
        self.inner.pid
    }

    /// False once the agent process has exited.
    pub fn is_running(&self) -> bool {
        !*self.inner.exited.borrow()
    }

    /// Runs one prompt turn and returns how it ended. Updates and requests of the turn arrive
    /// on the event channel meanwhile. Run it in its own task: it lasts as long as the turn.
    pub async fn prompt(&self, text: &str) -> Result<StopReason, AcpError> {
        self.prompt_with(&[PromptPart::Text(text.to_owned())]).await
    }

    /// Like [`prompt`](Self::prompt) with context: text plus links to files (e.g. the editor's
    /// open document). Resource links are part of every ACP agent's baseline.
    pub async fn prompt_with(&self, parts: &[PromptPart]) -> Result<StopReason, AcpError> {
        if !self.is_running() {
            return Err(AcpError::Closed);
        }
        let blocks = parts
            .iter()
            .map(|part| match part {
                PromptPart::Text(text) => acp::ContentBlock::Text(acp::TextContent::new(text)),
                PromptPart::ResourceLink { name, uri } => {
                    acp::ContentBlock::ResourceLink(acp::ResourceLink::new(name, uri))
                }
            })
            .collect();
        let request = acp::PromptRequest::new(self.inner.session_id.clone(), blocks);
        if self.inner.protocol_version >= 2 {
            return self.prompt_v2(request).await;
        }
        let response = self
            .inner
            .cx
            .send_request(request)
            .block_task()
            .await
            .map_err(|e| rpc_error("session/prompt", &e))?;
        Ok(wire::stop_reason(&response.stop_reason))
    }

    /// ACP v2: `session/prompt` is only acknowledged (`messageId`); the turn ends with the
    /// agent's `state_update` to `idle`. The prompt's parameters have the same shape in both
    /// versions (text and resource-link blocks).
    async fn prompt_v2(&self, request: acp::PromptRequest) -> Result<StopReason, AcpError> {
        let mut turn = self.inner.shared.turn.subscribe();
        let before = turn.borrow_and_update().ended;
        let message =
            UntypedMessage::new("session/prompt", request).map_err(|e| AcpError::Rpc {
                method: "session/prompt",
                code: e.code.value(),
                message: e.message.clone(),
            })?;
        self.inner
            .cx
            .send_request(message)
            .block_task()
            .await
            .map_err(|e| rpc_error("session/prompt", &e))?;
        let mut exited = self.inner.exited.clone();
        tokio::select! {
            ended = turn.wait_for(|t| t.ended > before) => match ended {
                Ok(t) => Ok(t.last_stop.clone().unwrap_or(StopReason::EndTurn)),
                Err(_) => Err(AcpError::Closed),
            },
            _ = exited.wait_for(|gone| *gone) => Err(AcpError::Closed),
        }
    }

    /// Asks the agent to stop the current turn (`session/cancel`); permission requests still
    /// waiting for the user are answered `cancelled`, as ACP requires. The pending
    /// [`prompt`](Self::prompt) then returns [`StopReason::Cancelled`].
    pub fn cancel(&self) -> Result<(), AcpError> {
        if !self.is_running() {
            return Err(AcpError::Closed);
        }
        // Order matters: `session/cancel` must be queued on the wire before the `cancelled`
        // answers to pending permission requests. The agent handles its incoming messages in
        // order, so it then knows the turn is cancelled when it reads those answers; the other
        // way round it may take a `cancelled` permission for the user's refusal of one tool,
        // carry on with the turn and end it `end_turn` (ACP: the client sends the
        // notification, then answers what is pending).
        let sent = self
            .inner
            .cx
            .send_notification(acp::CancelNotification::new(self.inner.session_id.clone()));
        // Answered even when the notification could not be sent: nobody waits on them anymore.
        self.inner.shared.cancel_generation.send_modify(|g| *g += 1);
        sent.map_err(|e| rpc_error("session/cancel", &e))
    }

    /// Closes the connection, gives the agent `exit_grace` to exit, then kills its process
    /// group. Returns once it is gone ([`AgentEvent::Exited`] has been queued).
    pub async fn shutdown(&self) {
        let _ = self.inner.shutdown.send(true);
        let mut exited = self.inner.exited.clone();
        let _ = exited.wait_for(|gone| *gone).await;
    }
}

/// Resolves once shutdown is requested or every handle is gone (the guard `wait_for` returns
/// is not `Send`, so it must not live across an await in a select).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn rpc_error(method: &'static str, error: &agent_client_protocol::Error) -> AcpError {
    if agent_client_protocol::is_incoming_transport_closed(error)
        || agent_client_protocol::is_connection_terminated(error)
    {
        AcpError::Closed
    } else {
        AcpError::Rpc {
            method,
            code: error.code.value(),
            message: error.message.clone(),
        }
    }
}

fn is_group_leader(pid: u32) -> bool {
    // `spawn` asks for a process group of its own; a command built by the caller may or may
    // not have one (a sandbox wrapper may call setsid), so look rather than assume.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the `(comm)`: state ppid pgrp …
            let rest = stat.rsplit_once(')')?.1;
            rest.split_whitespace().nth(2)?.parse::<u32>().ok()
        })
        .is_some_and(|pgrp| pgrp == pid)
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

async fn log_stderr(
    stderr: tokio::process::ChildStderr,
    pid: Option<u32>,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        if line.len() > STDERR_LINE_MAX {
            let cut = (0..=STDERR_LINE_MAX)
                .rev()
                .find(|i| line.is_char_boundary(*i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        tracing::info!(target: "airlock_acp::agent_stderr", pid, "{line}");
        if let Ok(mut lines) = tail.lock() {
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

struct WatchArgs {
    child: tokio::process::Child,
    own_group: bool,
    connection: tokio::task::JoinHandle<Result<(), agent_client_protocol::Error>>,
    stderr_task: tokio::task::JoinHandle<()>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    exit_grace: Duration,
    exited: watch::Sender<bool>,
}

fn kill(child: &mut tokio::process::Child, own_group: bool) {
    if let (true, Some(pid)) = (own_group, child.id())
        && let Ok(pid) = i32::try_from(pid)
    {
        // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses the
        // process group the agent leads (checked in `is_group_leader`).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
}

/// Owns the child: reports its end exactly once, after the connection has delivered everything
/// the agent wrote before exiting.
async fn watch_process(args: WatchArgs) {
    let WatchArgs {
        mut child,
        own_group,
        mut connection,
        stderr_task,
        stderr_tail,
        shared,
        mut shutdown,
        exit_grace,
        exited,
    } = args;
    let mut connection_result = None;
    let status = tokio::select! {
        status = child.wait() => {
            // Let the connection drain what the agent wrote before it died.
            if let Ok(result) = tokio::time::timeout(Duration::from_secs(1), &mut connection).await {
                connection_result = Some(result);
            }
            status
        }
        result = &mut connection => {
            connection_result = Some(result);
            match tokio::time::timeout(exit_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => { kill(&mut child, own_group); child.wait().await }
            }
        }
        () = stop_requested(&mut shutdown) => {
            // The connection's foreground ends on the same signal and closes the agent's stdin.
            match tokio::time::timeout(exit_grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => { kill(&mut child, own_group); child.wait().await }
            }
        }
    };
    if own_group {
        // Whatever the agent left running in its group goes with it.
        kill(&mut child, own_group);
    }
    // A leftover process outside the group may still hold the agent's stdout open; nothing it
    // writes may follow `Exited`, and pending prompts must fail rather than wait for it.
    connection.abort();
    if let Some(Ok(Err(error))) = connection_result
        && !agent_client_protocol::is_incoming_transport_closed(&error)
    {
        shared
            .protocol_error(format!("agent connection failed: {}", error.message))
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), stderr_task).await;
    let (code, signal) = match &status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            (status.code(), status.signal())
        }
        Err(_) => (None, None),
    };
    tracing::info!(target: "airlock_acp", ?code, ?signal, "agent exited");
    shared
        .emit(AgentEvent::Exited {
            code,
            signal,
            stderr_tail: tail_text(&stderr_tail),
        })
        .await;
    let _ = exited.send(true);
}

/// Routes one incoming message. Runs on the SDK's dispatch loop: it only parses and queues.
async fn dispatch_from_agent(
    shared: &Arc<Shared>,
    dispatch: Dispatch,
    cx: &ConnectionTo<Agent>,
) -> Result<(), agent_client_protocol::Error> {
    match dispatch {
        Dispatch::Response(result, router) => router.route_with_result(result),
        Dispatch::Notification(message) => {
            on_notification(shared, message).await;
            Ok(())
        }
        Dispatch::Request(message, responder) => {
            on_request(shared, message, responder, cx).await;
            Ok(())
        }
    }
}

async fn on_notification(shared: &Shared, message: UntypedMessage) {
    match message.method.as_str() {
        "session/update" if shared.is_v2() => on_update_v2(shared, message.params).await,
        "session/update" => {
            use serde::Deserialize;
            let notification = match acp::SessionNotification::deserialize(&message.params) {
                Ok(n) => n,
                Err(error) => {
                    shared
                        .protocol_error(format!("invalid session/update from agent: {error}"))
                        .await;
                    return;
                }
            };
            if Some(notification.session_id.0.as_ref())
                != shared.session_id.get().map(String::as_str)
            {
                shared
                    .protocol_error(format!(
                        "session/update for unknown session {:?}",
                        notification.session_id.0
                    ))
                    .await;
                return;
            }
            shared
                .emit(AgentEvent::Update(wire::update(
                    &notification.update,
                    message.params.get("update").cloned().unwrap_or_default(),
                )))
                .await;
        }
        // `$/…` notifications are optional protocol-level messages; ignoring them is allowed.
        method if method.starts_with("$/") => {}
        method => {
            shared
                .protocol_error(format!("agent sent unknown notification `{method}`"))
                .await;
        }
    }
}

async fn on_update_v2(shared: &Shared, params: Value) {
    let session = params.get("sessionId").and_then(Value::as_str);
    if session != shared.session_id.get().map(String::as_str) {
        shared
            .protocol_error(format!("session/update for unknown session {session:?}"))
            .await;
        return;
    }
    let raw = params.get("update").cloned().unwrap_or_default();
    let (update, state) = match wire::v2::update(raw) {
        Ok(parsed) => parsed,
        Err(error) => {
            shared
                .protocol_error(format!("invalid session/update from agent: {error}"))
                .await;
            return;
        }
    };
    // The update is queued before the turn is marked ended: a prompt returns only once every
    // update of its turn is on the event channel.
    shared.emit(AgentEvent::Update(update)).await;
    match state {
        Some(wire::v2::TurnState::Running) => shared.turn.send_modify(|t| t.running = true),
        Some(wire::v2::TurnState::Idle(stop)) => shared.turn.send_modify(|t| {
            // A repeated idle snapshot is not a new completion (ACP v2).
            if t.running || stop.is_some() {
                t.running = false;
                t.ended += 1;
                t.last_stop = stop;
            }
        }),
        None => {}
    }
}

type JsonResponder = Responder<Value>;

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, String> {
    serde_json::from_value(params).map_err(|e| e.to_string())
}

fn to_json<T: serde::Serialize>(value: T) -> Result<Value, agent_client_protocol::Error> {
    serde_json::to_value(value).map_err(agent_client_protocol::Error::into_internal_error)
}

fn answer_error(responder: JsonResponder, error: agent_client_protocol::Error) {
    if let Err(e) = responder.respond_with_error(error) {
        tracing::debug!(target: "airlock_acp", "could not answer agent: {}", e.message);
    }
}

/// Answers the agent from a spawned task once the server replied on `rx`.
fn forward<T: Send + 'static>(
    cx: &ConnectionTo<Agent>,
    responder: JsonResponder,
    rx: oneshot::Receiver<T>,
    method: &'static str,
    convert: impl FnOnce(T) -> Result<Value, agent_client_protocol::Error> + Send + 'static,
) {
    let spawned = cx.spawn(async move {
        let answer = match rx.await {
            Ok(value) => convert(value),
            Err(_) => Err(agent_client_protocol::Error::new(
                agent_client_protocol::ErrorCode::INTERNAL_ERROR,
                format!("airlock dropped the {method} request without answering"),
            )),
        };
        if let Err(e) = responder.respond_with_result(answer) {
            tracing::debug!(target: "airlock_acp", "could not answer agent {method}: {}", e.message);
        }
        // Never fail: an error here would tear the whole connection down.
        Ok(())
    });
    if let Err(e) = spawned {
        tracing::debug!(target: "airlock_acp", "connection closing, {method} not answered: {}", e.message);
    }
}

fn empty_ok<R: serde::Serialize>(
    make: impl FnOnce() -> R + Send + 'static,
) -> impl FnOnce(Result<(), crate::types::AgentError>) -> Result<Value, agent_client_protocol::Error>
+ Send
+ 'static {
    move |result| match result {
        Ok(()) => to_json(make()),
        Err(e) => Err(wire::error(&e)),
    }
}

async fn on_request(
    shared: &Arc<Shared>,
    message: UntypedMessage,
    responder: JsonResponder,
    cx: &ConnectionTo<Agent>,
) {
    let UntypedMessage { method, params } = message;
    let session_of = |params: &Value| {
        params
            .get("sessionId")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    // v2 moved files and commands to the agent: only permission requests come to the client.
    let known = if shared.is_v2() {
        method == "session/request_permission"
    } else {
        matches!(
            method.as_str(),
            "fs/read_text_file"
                | "fs/write_text_file"
                | "session/request_permission"
                | "terminal/create"
                | "terminal/output"
                | "terminal/wait_for_exit"
                | "terminal/kill"
                | "terminal/release"
        )
    };
    if !known {
        shared
            .protocol_error(format!("agent called unknown method `{method}`"))
            .await;
        answer_error(
            responder,
            agent_client_protocol::Error::method_not_found().data(Value::String(method)),
        );
        return;
    }
    if session_of(&params).as_deref() != shared.session_id.get().map(String::as_str) {
        let message = format!(
            "{method} names session {:?}, not this connection's session",
            session_of(&params)
        );
        shared.protocol_error(message.clone()).await;
        answer_error(
            responder,
            agent_client_protocol::Error::new(
                agent_client_protocol::ErrorCode::INVALID_PARAMS,
                message,
            ),
        );
        return;
    }
    macro_rules! parse_or_reject {
        ($ty:ty) => {
            match parse::<$ty>(params) {
                Ok(request) => request,
                Err(error) => {
                    let message = format!("invalid {method} parameters: {error}");
                    shared.protocol_error(message.clone()).await;
                    answer_error(
                        responder,
                        agent_client_protocol::Error::new(
                            agent_client_protocol::ErrorCode::INVALID_PARAMS,
                            message,
                        ),
                    );
                    return;
                }
            }
        };
    }
    match method.as_str() {
        "fs/read_text_file" => {
            let request = parse_or_reject!(acp::ReadTextFileRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::ReadTextFile {
                    path: request.path,
                    line: request.line,
                    limit: request.limit,
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "fs/read_text_file",
                |result| match result {
                    Ok(content) => to_json(acp::ReadTextFileResponse::new(content)),
                    Err(e) => Err(wire::error(&e)),
                },
            );
        }
        "fs/write_text_file" => {
            let request = parse_or_reject!(acp::WriteTextFileRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::WriteTextFile {
                    path: request.path,
                    content: request.content,
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "fs/write_text_file",
                empty_ok(acp::WriteTextFileResponse::new),
            );
        }
        "session/request_permission" => {
            let (tool_call, options) = if shared.is_v2() {
                match wire::v2::permission_request(&params) {
                    Ok(parsed) => parsed,
                    Err(error) => {
                        let message = format!("invalid {method} parameters: {error}");
                        shared.protocol_error(message.clone()).await;
                        answer_error(
                            responder,
                            agent_client_protocol::Error::new(
                                agent_client_protocol::ErrorCode::INVALID_PARAMS,
                                message,
                            ),
                        );
                        return;
                    }
                }
            } else {
                let request = parse_or_reject!(acp::RequestPermissionRequest);
                (
                    wire::tool_call_update(&request.tool_call),
                    request
                        .options
                        .iter()
                        .map(wire::permission_option)
                        .collect(),
                )
            };
            let (respond, rx) = Reply::pair();
            let mut cancelled = shared.cancel_generation.subscribe();
            shared
                .emit(AgentEvent::Request(AgentRequest::RequestPermission {
                    tool_call,
                    options,
                    respond,
                }))
                .await;
            // A cancel that arrives while the user still decides answers `cancelled` at once.
            let (tx, decided) = oneshot::channel();
            tokio::spawn(async move {
                let outcome = tokio::select! {
                    outcome = rx => outcome.ok(),
                    _ = cancelled.changed() => Some(PermissionOutcome::Cancelled),
                };
                if let Some(outcome) = outcome {
                    let _ = tx.send(outcome);
                }
            });
            forward(
                cx,
                responder,
                decided,
                "session/request_permission",
                |outcome| {
                    let outcome = match outcome {
                        PermissionOutcome::Selected(id) => acp::RequestPermissionOutcome::Selected(
                            acp::SelectedPermissionOutcome::new(id),
                        ),
                        PermissionOutcome::Cancelled => acp::RequestPermissionOutcome::Cancelled,
                    };
                    to_json(acp::RequestPermissionResponse::new(outcome))
                },
            );
        }
        "terminal/create" => {
            let request = parse_or_reject!(acp::CreateTerminalRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::CreateTerminal {
                    command: request.command,
                    args: request.args,
                    env: request.env.into_iter().map(|v| (v.name, v.value)).collect(),
                    cwd: request.cwd,
                    output_byte_limit: request.output_byte_limit,
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "terminal/create",
                |result| match result {
                    Ok(id) => to_json(acp::CreateTerminalResponse::new(acp::TerminalId::new(id))),
                    Err(e) => Err(wire::error(&e)),
                },
            );
        }
        "terminal/output" => {
            let request = parse_or_reject!(acp::TerminalOutputRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::TerminalOutput {
                    terminal_id: request.terminal_id.0.to_string(),
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "terminal/output",
                |result| match result {
                    Ok(out) => to_json(
                        acp::TerminalOutputResponse::new(out.output, out.truncated)
                            .exit_status(out.exit.map(exit_status)),
                    ),
                    Err(e) => Err(wire::error(&e)),
                },
            );
        }
        "terminal/wait_for_exit" => {
            let request = parse_or_reject!(acp::WaitForTerminalExitRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::WaitForTerminalExit {
                    terminal_id: request.terminal_id.0.to_string(),
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "terminal/wait_for_exit",
                |result| match result {
                    Ok(exit) => to_json(acp::WaitForTerminalExitResponse::new(exit_status(exit))),
                    Err(e) => Err(wire::error(&e)),
                },
            );
        }
        "terminal/kill" => {
            let request = parse_or_reject!(acp::KillTerminalRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::KillTerminal {
                    terminal_id: request.terminal_id.0.to_string(),
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "terminal/kill",
                empty_ok(acp::KillTerminalResponse::new),
            );
        }
        _ => {
            let request = parse_or_reject!(acp::ReleaseTerminalRequest);
            let (respond, rx) = Reply::pair();
            shared
                .emit(AgentEvent::Request(AgentRequest::ReleaseTerminal {
                    terminal_id: request.terminal_id.0.to_string(),
                    respond,
                }))
                .await;
            forward(
                cx,
                responder,
                rx,
                "terminal/release",
                empty_ok(acp::ReleaseTerminalResponse::new),
            );
        }
    }
}

fn exit_status(exit: TerminalExit) -> acp::TerminalExitStatus {
    acp::TerminalExitStatus::new()
        .exit_code(exit.exit_code)
        .signal(exit.signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// The server spawns these on its multi-threaded runtime.
    #[test]
    fn client_futures_are_send() {
        let config = AgentConfig {
            command: vec![String::from("true")],
            env: BTreeMap::new(),
            cwd: PathBuf::from("/"),
        };
        let root = PathBuf::from("/");
        assert_send(&AgentClient::spawn(
            &config,
            &root,
            ClientOptions::default(),
        ));
        fn check(client: &AgentClient) {
            assert_send(&client.prompt("x"));
            assert_send(&client.prompt_with(&[]));
            assert_send(&client.shutdown());
        }
        let _ = check;
    }
}
