//! The event record: one flat, serializable shape for every kind of action.

use serde::{Deserialize, Serialize};

/// What happened. Serialized as dotted names (`proposal.created`), the names used in the audit
/// log, in `airlock/telemetry` and as OpenTelemetry event names. The names are a stable
/// interface: add kinds, never rename one (old audit logs must stay readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The server started; subject: its version.
    #[serde(rename = "server.started")]
    ServerStarted,
    /// The server is exiting; subject: why (`shutdown`, `end of input`).
    #[serde(rename = "server.stopped")]
    ServerStopped,
    /// The agent process answered `initialize`; subject: the program; fields: `agent`, `pid`.
    #[serde(rename = "agent.started")]
    AgentStarted,
    /// The agent could not be started; subject: the command; fields: `reason`.
    #[serde(rename = "agent.failed")]
    AgentFailed,
    /// The agent process ended; subject: `exit code N` or `signal N`.
    #[serde(rename = "agent.exited")]
    AgentExited,
    /// A prompt was sent to the agent; subject: its length; `text` only with `telemetry.content`.
    #[serde(rename = "prompt")]
    Prompt,
    /// An agent turn ended; subject: the stop reason; `durationMs`.
    #[serde(rename = "prompt.finished")]
    PromptFinished,
    /// The agent read a file; subject: workspace-relative path.
    #[serde(rename = "fs.read")]
    FsRead,
    /// A read was refused (policy or outside the workspace); `rule`, `layer` or `reason`.
    #[serde(rename = "fs.read_denied")]
    FsReadDenied,
    /// A write was refused before becoming a proposal; `rule`, `layer` or `reason`.
    #[serde(rename = "fs.write_denied")]
    FsWriteDenied,
    /// An agent write became a proposal; fields: `proposal`, `hunks`, `newFile`.
    #[serde(rename = "proposal.created")]
    ProposalCreated,
    /// One hunk was decided; decision: accepted/edited/rejected/conflicted; fields: `proposal`, `hunk`.
    #[serde(rename = "proposal.resolved")]
    ProposalResolved,
    /// A command started in the sandbox; subject: the command line.
    #[serde(rename = "command.started")]
    CommandStarted,
    /// A command ended; `durationMs` is the wall time; fields: `exitCode`, `userCpuMs`, `sysCpuMs`,
    /// `maxRssKb`, `bytesOut`, `killedBy`.
    #[serde(rename = "command.finished")]
    CommandFinished,
    /// A command was refused by policy or by the user; `rule`, `layer`.
    #[serde(rename = "command.denied")]
    CommandDenied,
    /// A network connection was attempted; subject: `host:port`; decision allow/deny.
    #[serde(rename = "net.attempt")]
    NetAttempt,
    /// The user was asked; fields: `kind`; `rule`, `layer` of the `ask` rule.
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    /// An approval was decided; fields: `by` (user/policy/session), `choice`.
    #[serde(rename = "approval.decided")]
    ApprovalDecided,
    /// The policy layers were (re)loaded; fields: the layers in force.
    #[serde(rename = "policy.loaded")]
    PolicyLoaded,
    /// A policy file is invalid; subject: the file; fields: `error`.
    #[serde(rename = "policy.error")]
    PolicyError,
    /// A policy file loaded with a warning (e.g. an untrusted workspace layer).
    #[serde(rename = "policy.warning")]
    PolicyWarning,
    /// An approval's "always" wrote a rule; subject: the rule (`commands.allow "cargo test"`);
    /// fields: `target` (user/workspace), `path`, `trusted` (whether it applies now).
    #[serde(rename = "policy.rule_added")]
    PolicyRuleAdded,
    /// The sandbox protections in force; subject: what is sandboxed; fields: `kernel`.
    #[serde(rename = "sandbox.level")]
    SandboxLevel,
    /// The audit log could not be written; sent once (to the editor and OTLP), with `error`.
    #[serde(rename = "audit.error")]
    AuditError,
    /// Written into the audit log when writing works again; fields: `lost`, `firstSeq`, `lastSeq`.
    #[serde(rename = "audit.gap")]
    AuditGap,
}

impl EventKind {
    /// Every kind, in documentation order (`docs/telemetry.md` is checked against it).
    pub const ALL: &'static [EventKind] = &[
        EventKind::ServerStarted,
        EventKind::ServerStopped,
        EventKind::AgentStarted,
        EventKind::AgentFailed,
        EventKind::AgentExited,
        EventKind::Prompt,
        EventKind::PromptFinished,
        EventKind::FsRead,
        EventKind::FsReadDenied,
        EventKind::FsWriteDenied,
        EventKind::ProposalCreated,
        EventKind::ProposalResolved,
        EventKind::CommandStarted,
        EventKind::CommandFinished,
        EventKind::CommandDenied,
        EventKind::NetAttempt,
        EventKind::ApprovalRequested,
        EventKind::ApprovalDecided,
        EventKind::PolicyLoaded,
        EventKind::PolicyError,
        EventKind::PolicyWarning,
        EventKind::PolicyRuleAdded,
        EventKind::SandboxLevel,
        EventKind::AuditError,
        EventKind::AuditGap,
    ];

    pub fn as_str(self) -> &'static str {
        // Must agree with the serde renames above; a unit test checks every variant.
        match self {
            EventKind::ServerStarted => "server.started",
            EventKind::ServerStopped => "server.stopped",
            EventKind::AgentStarted => "agent.started",
            EventKind::AgentFailed => "agent.failed",
            EventKind::AgentExited => "agent.exited",
            EventKind::Prompt => "prompt",
            EventKind::PromptFinished => "prompt.finished",
            EventKind::FsRead => "fs.read",
            EventKind::FsReadDenied => "fs.read_denied",
            EventKind::FsWriteDenied => "fs.write_denied",
            EventKind::ProposalCreated => "proposal.created",
            EventKind::ProposalResolved => "proposal.resolved",
            EventKind::CommandStarted => "command.started",
            EventKind::CommandFinished => "command.finished",
            EventKind::CommandDenied => "command.denied",
            EventKind::NetAttempt => "net.attempt",
            EventKind::ApprovalRequested => "approval.requested",
            EventKind::ApprovalDecided => "approval.decided",
            EventKind::PolicyLoaded => "policy.loaded",
            EventKind::PolicyError => "policy.error",
            EventKind::PolicyWarning => "policy.warning",
            EventKind::PolicyRuleAdded => "policy.rule_added",
            EventKind::SandboxLevel => "sandbox.level",
            EventKind::AuditError => "audit.error",
            EventKind::AuditGap => "audit.gap",
        }
    }

    /// Parses a dotted name (`fs.read`); `None` for unknown names.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded action. `seq`, `ts_ms` and `session` are filled in by the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub seq: u64,
    pub ts_ms: u64,
    pub session: String,
    pub kind: EventKind,
    /// What the action was about: a path, a command line, a domain, a proposal id.
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// Kind-specific details (exit code, resources, hunk counts, …).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    pub fn new(kind: EventKind, subject: impl Into<String>) -> Event {
        Event {
            seq: 0,
            ts_ms: 0,
            session: String::new(),
            kind,
            subject: subject.into(),
            decision: None,
            rule: None,
            layer: None,
            duration_ms: None,
            fields: serde_json::Map::new(),
        }
    }

    pub fn decision(mut self, decision: impl Into<String>) -> Event {
        self.decision = Some(decision.into());
        self
    }

    pub fn rule(mut self, rule: Option<String>, layer: Option<String>) -> Event {
        self.rule = rule;
        self.layer = layer;
        self
    }

    pub fn duration(mut self, d: std::time::Duration) -> Event {
        self.duration_ms = Some(d.as_secs_f64() * 1000.0);
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<serde_json::Value>) -> Event {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde_name_and_parses_back() {
        for &kind in EventKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::json!(kind.as_str()))
            );
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("fs.nope"), None);
    }

    /// docs/telemetry.md has a row for every kind, so a new kind cannot go undocumented.
    #[test]
    fn every_kind_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/telemetry.md"
        ))
        .expect("docs/telemetry.md");
        for kind in EventKind::ALL {
            let row = format!("| `{}` |", kind.as_str());
            assert!(doc.contains(&row), "docs/telemetry.md has no row {row}");
        }
    }

    /// `ALL` is written by hand; a kind missing from it would be missing from the docs too.
    #[test]
    fn all_lists_every_variant_once() {
        let names: std::collections::BTreeSet<&str> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        // Exhaustive match: adding a variant without listing it here fails to compile.
        for &kind in EventKind::ALL {
            match kind {
                EventKind::ServerStarted => {}
                EventKind::ServerStopped => {}
                EventKind::AgentStarted => {}
                EventKind::AgentFailed => {}
                EventKind::AgentExited => {}
                EventKind::Prompt => {}
                EventKind::PromptFinished => {}
                EventKind::FsRead => {}
                EventKind::FsReadDenied => {}
                EventKind::FsWriteDenied => {}
                EventKind::ProposalCreated => {}
                EventKind::ProposalResolved => {}
                EventKind::CommandStarted => {}
                EventKind::CommandFinished => {}
                EventKind::CommandDenied => {}
                EventKind::NetAttempt => {}
                EventKind::ApprovalRequested => {}
                EventKind::ApprovalDecided => {}
                EventKind::PolicyLoaded => {}
                EventKind::PolicyError => {}
                EventKind::PolicyWarning => {}
                EventKind::PolicyRuleAdded => {}
                EventKind::SandboxLevel => {}
                EventKind::AuditError => {}
                EventKind::AuditGap => {}
            }
        }
        assert_eq!(EventKind::ALL.len(), 25);
    }
}
