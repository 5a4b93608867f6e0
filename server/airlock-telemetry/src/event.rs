//! The event record: one flat, serializable shape for every kind of action.

use serde::{Deserialize, Serialize};

/// What happened. Serialized as dotted names (`proposal.created`), the names used in the audit
/// log, in `airlock/telemetry` and as OpenTelemetry event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "server.started")]
    ServerStarted,
    #[serde(rename = "agent.started")]
    AgentStarted,
    #[serde(rename = "agent.exited")]
    AgentExited,
    #[serde(rename = "prompt")]
    Prompt,
    #[serde(rename = "fs.read")]
    FsRead,
    #[serde(rename = "fs.read_denied")]
    FsReadDenied,
    #[serde(rename = "proposal.created")]
    ProposalCreated,
    #[serde(rename = "proposal.resolved")]
    ProposalResolved,
    #[serde(rename = "command.started")]
    CommandStarted,
    #[serde(rename = "command.finished")]
    CommandFinished,
    #[serde(rename = "command.denied")]
    CommandDenied,
    #[serde(rename = "net.attempt")]
    NetAttempt,
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    #[serde(rename = "approval.decided")]
    ApprovalDecided,
    #[serde(rename = "policy.loaded")]
    PolicyLoaded,
    #[serde(rename = "policy.error")]
    PolicyError,
    #[serde(rename = "policy.warning")]
    PolicyWarning,
    #[serde(rename = "sandbox.level")]
    SandboxLevel,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        // Must agree with the serde renames above; a unit test checks every variant.
        match self {
            EventKind::ServerStarted => "server.started",
            EventKind::AgentStarted => "agent.started",
            EventKind::AgentExited => "agent.exited",
            EventKind::Prompt => "prompt",
            EventKind::FsRead => "fs.read",
            EventKind::FsReadDenied => "fs.read_denied",
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
            EventKind::SandboxLevel => "sandbox.level",
        }
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
    fn as_str_matches_serde_name() {
        use EventKind::*;
        for kind in [
            ServerStarted,
            AgentStarted,
            AgentExited,
            Prompt,
            FsRead,
            FsReadDenied,
            ProposalCreated,
            ProposalResolved,
            CommandStarted,
            CommandFinished,
            CommandDenied,
            NetAttempt,
            ApprovalRequested,
            ApprovalDecided,
            PolicyLoaded,
            PolicyError,
            PolicyWarning,
            SandboxLevel,
        ] {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::json!(kind.as_str()))
            );
        }
    }
}
