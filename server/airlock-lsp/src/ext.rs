//! Every `airlock/*` LSP extension in one place: method names and their parameter types.
//!
//! This file and `docs/lsp-extensions.md` describe the same surface; a test in the e2e suite
//! checks that every method named here is documented there.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::request::Request;

/// What the server announces in `InitializeResult.capabilities.experimental.airlock`.
pub fn server_capability() -> Value {
    serde_json::json!({
        "version": 1,
        "requests": [Prompt::METHOD, Cancel::METHOD, Resolve::METHOD],
        "notifications": [ProposalNotification::METHOD, AgentUpdate::METHOD, Telemetry::METHOD, Status::METHOD],
        "serverRequests": [Approval::METHOD],
        "commands": crate::commands::ALL,
    })
}

/// The client's opt-in, read from `capabilities.experimental.airlock` in `initialize`.
/// `true` or any object opts in; fields narrow what the client wants.
#[derive(Debug, Clone, Default)]
pub struct ClientOptIn {
    pub enabled: bool,
    pub telemetry: bool,
    pub approvals: bool,
    pub proposals: bool,
}

impl ClientOptIn {
    pub fn from_experimental(experimental: Option<&Value>) -> ClientOptIn {
        let Some(v) = experimental.and_then(|e| e.get("airlock")) else {
            return ClientOptIn::default();
        };
        let flag = |name: &str| v.get(name).and_then(Value::as_bool).unwrap_or(true);
        match v {
            Value::Bool(true) => ClientOptIn {
                enabled: true,
                telemetry: true,
                approvals: true,
                proposals: true,
            },
            Value::Object(_) => ClientOptIn {
                enabled: true,
                telemetry: flag("telemetry"),
                approvals: flag("approvals"),
                proposals: flag("proposals"),
            },
            _ => ClientOptIn::default(),
        }
    }
}

/// `airlock/prompt` (client → server): start an agent turn.
pub enum Prompt {}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptParams {
    pub text: String,
    #[serde(default)]
    pub uris: Vec<String>,
    #[serde(default)]
    pub selection: Option<Value>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptResult {
    pub stop_reason: String,
}
impl Request for Prompt {
    type Params = PromptParams;
    type Result = PromptResult;
    const METHOD: &'static str = "airlock/prompt";
}

/// `airlock/cancel` (client → server): cancel the running agent turn.
pub enum Cancel {}
impl Request for Cancel {
    type Params = Option<Value>;
    type Result = Value;
    const METHOD: &'static str = "airlock/cancel";
}

/// `airlock/resolve` (client → server): accept or reject hunks of a proposal.
pub enum Resolve {}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveParams {
    pub proposal: String,
    #[serde(default)]
    pub hunks: Option<Vec<u32>>,
    pub decision: Decision,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub edited_text: Option<String>,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Accept,
    Reject,
}
impl Request for Resolve {
    type Params = ResolveParams;
    type Result = Value;
    const METHOD: &'static str = "airlock/resolve";
}

/// `airlock/proposal` (server → client): a proposal was created, updated or resolved.
pub enum ProposalNotification {}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProposalParams {
    pub event: ProposalEvent,
    pub uri: String,
    pub proposal: Value,
}
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProposalEvent {
    Created,
    Updated,
    Resolved,
}
impl Notification for ProposalNotification {
    type Params = ProposalParams;
    const METHOD: &'static str = "airlock/proposal";
}

/// `airlock/agentUpdate` (server → client): one ACP `session/update`, forwarded as is.
pub enum AgentUpdate {}
impl Notification for AgentUpdate {
    type Params = Value;
    const METHOD: &'static str = "airlock/agentUpdate";
}

/// `airlock/telemetry` (server → client): a batch of events and how many were dropped.
pub enum Telemetry {}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryParams {
    pub events: Vec<airlock_telemetry::Event>,
    pub dropped: u64,
}
impl Notification for Telemetry {
    type Params = TelemetryParams;
    const METHOD: &'static str = "airlock/telemetry";
}

/// `airlock/status` (server → client): agent state and pending counts.
pub enum Status {}
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    pub agent: String,
    pub pending_proposals: usize,
    pub pending_hunks: usize,
}
impl Notification for Status {
    type Params = StatusParams;
    const METHOD: &'static str = "airlock/status";
}

/// `airlock/approval` (server → client request): ask the user to allow an action.
pub enum Approval {}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalParams {
    pub kind: String,
    pub subject: String,
    pub rule: Option<String>,
    pub layer: Option<String>,
    /// The rule "always" writes, e.g. `commands.allow "cargo test"`; `null` when no rule can
    /// express the question (then "always" lasts for this session).
    pub always_rule: Option<String>,
    pub options: Vec<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalResult {
    pub choice: String,
}
impl Request for Approval {
    type Params = ApprovalParams;
    type Result = ApprovalResult;
    const METHOD: &'static str = "airlock/approval";
}
