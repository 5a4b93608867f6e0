//! Airlock's own view of what the agent asks and tells: plain data, no JSON-RPC.
//!
//! The server's main loop only sees these types. Each agent→client request carries a
//! [`Reply`]: the server answers whenever it is ready (after policy, after the user decided),
//! and the bridge forwards the answer to the agent. A [`Reply`] dropped without an answer is
//! turned into an internal error for the agent, so no request is ever left hanging.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio::sync::oneshot;

/// The one-shot channel through which the server answers an agent request.
#[derive(Debug)]
pub struct Reply<T>(oneshot::Sender<T>);

impl<T> Reply<T> {
    pub(crate) fn pair() -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Reply(tx), rx)
    }

    /// Answers the request. Returns `false` when nobody waits any more (the agent exited or
    /// the connection closed): there is nothing else to do in that case.
    pub fn send(self, value: T) -> bool {
        self.0.send(value).is_ok()
    }

    /// True when the agent connection no longer waits for this answer.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Why the server refused an agent request; becomes a JSON-RPC error for the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentError {
    pub kind: AgentErrorKind,
    /// Shown to the agent (and so to the model): say what was refused and why, e.g. the rule.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentErrorKind {
    /// The file or terminal does not exist (JSON-RPC `-32002`).
    NotFound,
    /// The request is malformed, e.g. a relative path (`-32602`).
    InvalidParams,
    /// Policy or the user refused it (`-31001`, an Airlock code outside the reserved ranges).
    Denied,
    /// Anything else (`-32603`).
    Internal,
}

/// The JSON-RPC error code Airlock uses when policy or the user refuses a request.
pub const DENIED_ERROR_CODE: i32 = -31001;

impl AgentError {
    pub fn new(kind: AgentErrorKind, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(AgentErrorKind::NotFound, message)
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(AgentErrorKind::InvalidParams, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(AgentErrorKind::Denied, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(AgentErrorKind::Internal, message)
    }
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The kind of a tool call, as ACP names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Read,
    Edit,
    Delete,
    Move,
    Search,
    Execute,
    Think,
    Fetch,
    SwitchMode,
    Other,
}

/// A file location a tool call touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLocation {
    pub path: PathBuf,
    pub line: Option<u32>,
}

/// Content attached to a tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolContent {
    Text(String),
    /// A proposed edit: `old_text` is `None` for a new file.
    Diff {
        path: PathBuf,
        old_text: Option<String>,
        new_text: String,
    },
    /// An ACP v2 diff: the files a tool call changed (`changes`, authoritative for paths and
    /// operations) and, when the agent sent one, the renderable `git_patch` text. Unlike
    /// [`ToolContent::Diff`] it carries no whole-file text: the file content itself is read
    /// from where the agent wrote it (the shadow workspace).
    Changes {
        changes: Vec<FileChange>,
        patch: Option<String>,
    },
    /// Live output of a terminal the agent created.
    Terminal {
        terminal_id: String,
    },
    /// Images, audio, resources: forwarded as they came.
    Other(serde_json::Value),
}

/// One file-level change of an ACP v2 diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// `add`, `delete`, `modify`, `move`, `copy`, or a newer operation's name.
    pub operation: String,
    /// The path after the operation (absolute, as the agent sent it).
    pub path: PathBuf,
    /// The path before a `move` or `copy`.
    pub old_path: Option<PathBuf>,
}

/// A tool call as announced or updated by the agent, or as shown in a permission request.
/// Fields the agent did not send are `None`/empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCallInfo {
    pub id: String,
    pub title: Option<String>,
    pub kind: Option<ToolKind>,
    /// `pending`, `in_progress`, `completed` or `failed`.
    pub status: Option<String>,
    pub raw_input: Option<serde_json::Value>,
    pub locations: Vec<ToolLocation>,
    pub content: Vec<ToolContent>,
}

/// What a permission option means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionKind {
    AllowOnce,
    AllowAlways,
    RejectOnce,
    RejectAlways,
}

/// One choice the agent offers in `session/request_permission`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionOption {
    /// Send this id back in [`PermissionOutcome::Selected`].
    pub id: String,
    pub name: String,
    pub kind: PermissionKind,
}

/// The answer to a permission request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionOutcome {
    /// The id of one of the offered [`PermissionOption`]s.
    Selected(String),
    /// The turn was cancelled (ACP requires this answer for requests pending at `cancel`).
    Cancelled,
}

/// How a terminal's command ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminalExit {
    pub exit_code: Option<u32>,
    /// Signal name, e.g. `SIGKILL`.
    pub signal: Option<String>,
}

/// The answer to `terminal/output`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminalOutput {
    pub output: String,
    /// True when output was dropped from the start to stay within the byte limit.
    pub truncated: bool,
    /// Set once the command has exited.
    pub exit: Option<TerminalExit>,
}

/// A request from the agent that the server must answer through its `respond` [`Reply`].
#[derive(Debug)]
pub enum AgentRequest {
    /// `fs/read_text_file`. `line` is 1-based; `limit` is a line count. The path is as the
    /// agent sent it (ACP requires absolute paths; check it is inside the workspace).
    ReadTextFile {
        path: PathBuf,
        line: Option<u32>,
        limit: Option<u32>,
        respond: Reply<Result<String, AgentError>>,
    },
    /// `fs/write_text_file` with the whole new content of the file.
    WriteTextFile {
        path: PathBuf,
        content: String,
        respond: Reply<Result<(), AgentError>>,
    },
    /// `session/request_permission`.
    RequestPermission {
        tool_call: ToolCallInfo,
        options: Vec<PermissionOption>,
        respond: Reply<PermissionOutcome>,
    },
    /// `terminal/create`: start `command` with `args`; answer with a terminal id of your choice.
    CreateTerminal {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
        output_byte_limit: Option<u64>,
        respond: Reply<Result<String, AgentError>>,
    },
    /// `terminal/output`: output so far, without waiting.
    TerminalOutput {
        terminal_id: String,
        respond: Reply<Result<TerminalOutput, AgentError>>,
    },
    /// `terminal/wait_for_exit`: answer once the command has exited.
    WaitForTerminalExit {
        terminal_id: String,
        respond: Reply<Result<TerminalExit, AgentError>>,
    },
    /// `terminal/kill`: kill the command, keep the terminal (and its output) until release.
    KillTerminal {
        terminal_id: String,
        respond: Reply<Result<(), AgentError>>,
    },
    /// `terminal/release`: kill the command if still running and forget the terminal.
    ReleaseTerminal {
        terminal_id: String,
        respond: Reply<Result<(), AgentError>>,
    },
}

impl AgentRequest {
    /// The ACP method name, for logs and telemetry.
    pub fn method(&self) -> &'static str {
        match self {
            AgentRequest::ReadTextFile { .. } => "fs/read_text_file",
            AgentRequest::WriteTextFile { .. } => "fs/write_text_file",
            AgentRequest::RequestPermission { .. } => "session/request_permission",
            AgentRequest::CreateTerminal { .. } => "terminal/create",
            AgentRequest::TerminalOutput { .. } => "terminal/output",
            AgentRequest::WaitForTerminalExit { .. } => "terminal/wait_for_exit",
            AgentRequest::KillTerminal { .. } => "terminal/kill",
            AgentRequest::ReleaseTerminal { .. } => "terminal/release",
        }
    }
}

/// What a `session/update` carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateKind {
    AgentMessageChunk,
    AgentThoughtChunk,
    UserMessageChunk,
    ToolCall,
    ToolCallUpdate,
    Plan,
    /// Any other update (available commands, mode changes, usage, …): its `sessionUpdate` tag.
    Other(String),
}

/// One `session/update` from the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentUpdate {
    pub kind: UpdateKind,
    /// The text of a message/thought chunk, or a one-line summary of a plan.
    pub text: Option<String>,
    /// For tool calls and their updates.
    pub tool_call: Option<ToolCallInfo>,
    /// The `update` object exactly as the agent sent it (camelCase ACP JSON), for forwarding
    /// to editors that opted in to `airlock/agentUpdate`.
    pub raw: serde_json::Value,
}

/// Everything the agent connection reports to the server, in the order it happened.
#[derive(Debug)]
pub enum AgentEvent {
    Update(AgentUpdate),
    Request(AgentRequest),
    /// The agent sent something the bridge could not use (invalid JSON, a message over the
    /// size limit, an unknown method, bad parameters). The connection stays up.
    ProtocolError(String),
    /// The agent process is gone (crash, exit, or killed by `shutdown`); always the last event.
    Exited {
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// Signal number, when it was killed by one.
        signal: Option<i32>,
        /// The last lines the agent wrote to stderr (all of it also went to the log).
        stderr_tail: String,
    },
}

/// Why a prompt turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    MaxTurnRequests,
    Refusal,
    Cancelled,
    Other(String),
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::MaxTurnRequests => "max_turn_requests",
            StopReason::Refusal => "refusal",
            StopReason::Cancelled => "cancelled",
            StopReason::Other(other) => other,
        };
        f.write_str(s)
    }
}

/// Name and version the agent reported in `initialize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
    pub title: Option<String>,
}
