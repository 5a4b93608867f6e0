//! The only module that converts between ACP's schema types and Airlock's own types
//! ([`crate::types`]). Everything outside this module and the connection code works on plain data.

use agent_client_protocol::v1::schema as acp;

use crate::types::{
    AgentError, AgentErrorKind, AgentUpdate, DENIED_ERROR_CODE, PermissionKind, PermissionOption,
    StopReason, ToolCallInfo, ToolContent, ToolKind, ToolLocation, UpdateKind,
};

pub(crate) fn tool_kind(kind: &acp::ToolKind) -> ToolKind {
    match kind {
        acp::ToolKind::Read => ToolKind::Read,
        acp::ToolKind::Edit => ToolKind::Edit,
        acp::ToolKind::Delete => ToolKind::Delete,
        acp::ToolKind::Move => ToolKind::Move,
        acp::ToolKind::Search => ToolKind::Search,
        acp::ToolKind::Execute => ToolKind::Execute,
        acp::ToolKind::Think => ToolKind::Think,
        acp::ToolKind::Fetch => ToolKind::Fetch,
        acp::ToolKind::SwitchMode => ToolKind::SwitchMode,
        _ => ToolKind::Other,
    }
}

pub(crate) fn to_acp_tool_kind(kind: ToolKind) -> acp::ToolKind {
    match kind {
        ToolKind::Read => acp::ToolKind::Read,
        ToolKind::Edit => acp::ToolKind::Edit,
        ToolKind::Delete => acp::ToolKind::Delete,
        ToolKind::Move => acp::ToolKind::Move,
        ToolKind::Search => acp::ToolKind::Search,
        ToolKind::Execute => acp::ToolKind::Execute,
        ToolKind::Think => acp::ToolKind::Think,
        ToolKind::Fetch => acp::ToolKind::Fetch,
        ToolKind::SwitchMode => acp::ToolKind::SwitchMode,
        ToolKind::Other => acp::ToolKind::Other,
    }
}

/// The snake_case name ACP uses on the wire for a serde enum value.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("unknown"),
    }
}

pub(crate) fn block_text(block: &acp::ContentBlock) -> Option<&str> {
    match block {
        acp::ContentBlock::Text(text) => Some(&text.text),
        _ => None,
    }
}

fn tool_content(content: &acp::ToolCallContent) -> ToolContent {
    match content {
        acp::ToolCallContent::Content(c) => match block_text(&c.content) {
            Some(text) => ToolContent::Text(text.to_owned()),
            None => ToolContent::Other(serde_json::to_value(&c.content).unwrap_or_default()),
        },
        acp::ToolCallContent::Diff(diff) => ToolContent::Diff {
            path: diff.path.clone(),
            old_text: diff.old_text.clone(),
            new_text: diff.new_text.clone(),
        },
        acp::ToolCallContent::Terminal(t) => ToolContent::Terminal {
            terminal_id: t.terminal_id.0.to_string(),
        },
        other => ToolContent::Other(serde_json::to_value(other).unwrap_or_default()),
    }
}

fn locations(locations: &[acp::ToolCallLocation]) -> Vec<ToolLocation> {
    locations
        .iter()
        .map(|l| ToolLocation {
            path: l.path.clone(),
            line: l.line,
        })
        .collect()
}

pub(crate) fn tool_call(call: &acp::ToolCall) -> ToolCallInfo {
    ToolCallInfo {
        id: call.tool_call_id.0.to_string(),
        title: Some(call.title.clone()),
        kind: Some(tool_kind(&call.kind)),
        status: Some(wire_name(&call.status)),
        raw_input: call.raw_input.clone(),
        locations: locations(&call.locations),
        content: call.content.iter().map(tool_content).collect(),
    }
}

pub(crate) fn tool_call_update(update: &acp::ToolCallUpdate) -> ToolCallInfo {
    let fields = &update.fields;
    ToolCallInfo {
        id: update.tool_call_id.0.to_string(),
        title: fields.title.clone(),
        kind: fields.kind.as_ref().map(tool_kind),
        status: fields.status.as_ref().map(wire_name),
        raw_input: fields.raw_input.clone(),
        locations: fields
            .locations
            .as_deref()
            .map(locations)
            .unwrap_or_default(),
        content: fields
            .content
            .as_deref()
            .map(|c| c.iter().map(tool_content).collect())
            .unwrap_or_default(),
    }
}

/// `raw` is the `update` object as it came on the wire (kept verbatim for forwarding).
pub(crate) fn update(update: &acp::SessionUpdate, raw: serde_json::Value) -> AgentUpdate {
    let chunk_text = |chunk: &acp::ContentChunk| block_text(&chunk.content).map(str::to_owned);
    let (kind, text, tool) = match update {
        acp::SessionUpdate::AgentMessageChunk(c) => {
            (UpdateKind::AgentMessageChunk, chunk_text(c), None)
        }
        acp::SessionUpdate::AgentThoughtChunk(c) => {
            (UpdateKind::AgentThoughtChunk, chunk_text(c), None)
        }
        acp::SessionUpdate::UserMessageChunk(c) => {
            (UpdateKind::UserMessageChunk, chunk_text(c), None)
        }
        acp::SessionUpdate::ToolCall(call) => {
            let info = tool_call(call);
            (UpdateKind::ToolCall, info.title.clone(), Some(info))
        }
        acp::SessionUpdate::ToolCallUpdate(u) => {
            let info = tool_call_update(u);
            (UpdateKind::ToolCallUpdate, info.title.clone(), Some(info))
        }
        acp::SessionUpdate::Plan(plan) => {
            let summary = plan
                .entries
                .iter()
                .map(|e| format!("[{}] {}", wire_name(&e.status), e.content))
                .collect::<Vec<_>>()
                .join("; ");
            (UpdateKind::Plan, Some(summary), None)
        }
        _ => {
            let tag = raw
                .get("sessionUpdate")
                .and_then(|t| t.as_str())
                .unwrap_or("unknown")
                .to_owned();
            (UpdateKind::Other(tag), None, None)
        }
    };
    AgentUpdate {
        kind,
        text,
        tool_call: tool,
        raw,
    }
}

pub(crate) fn permission_option(option: &acp::PermissionOption) -> PermissionOption {
    let kind = match option.kind {
        acp::PermissionOptionKind::AllowOnce => PermissionKind::AllowOnce,
        acp::PermissionOptionKind::AllowAlways => PermissionKind::AllowAlways,
        acp::PermissionOptionKind::RejectAlways => PermissionKind::RejectAlways,
        // RejectOnce, and any kind a newer agent invents: treat as the mildest refusal.
        _ => PermissionKind::RejectOnce,
    };
    PermissionOption {
        id: option.option_id.0.to_string(),
        name: option.name.clone(),
        kind,
    }
}

pub(crate) fn to_acp_permission_kind(kind: PermissionKind) -> acp::PermissionOptionKind {
    match kind {
        PermissionKind::AllowOnce => acp::PermissionOptionKind::AllowOnce,
        PermissionKind::AllowAlways => acp::PermissionOptionKind::AllowAlways,
        PermissionKind::RejectOnce => acp::PermissionOptionKind::RejectOnce,
        PermissionKind::RejectAlways => acp::PermissionOptionKind::RejectAlways,
    }
}

pub(crate) fn stop_reason(reason: &acp::StopReason) -> StopReason {
    match reason {
        acp::StopReason::EndTurn => StopReason::EndTurn,
        acp::StopReason::MaxTokens => StopReason::MaxTokens,
        acp::StopReason::MaxTurnRequests => StopReason::MaxTurnRequests,
        acp::StopReason::Refusal => StopReason::Refusal,
        acp::StopReason::Cancelled => StopReason::Cancelled,
        other => StopReason::Other(wire_name(other)),
    }
}

pub(crate) fn to_acp_stop_reason(reason: &StopReason) -> acp::StopReason {
    match reason {
        StopReason::EndTurn | StopReason::Other(_) => acp::StopReason::EndTurn,
        StopReason::MaxTokens => acp::StopReason::MaxTokens,
        StopReason::MaxTurnRequests => acp::StopReason::MaxTurnRequests,
        StopReason::Refusal => acp::StopReason::Refusal,
        StopReason::Cancelled => acp::StopReason::Cancelled,
    }
}

pub(crate) fn error(error: &AgentError) -> agent_client_protocol::Error {
    let code = match error.kind {
        AgentErrorKind::NotFound => agent_client_protocol::ErrorCode::RESOURCE_NOT_FOUND,
        AgentErrorKind::InvalidParams => agent_client_protocol::ErrorCode::INVALID_PARAMS,
        AgentErrorKind::Denied => agent_client_protocol::ErrorCode::new(DENIED_ERROR_CODE),
        AgentErrorKind::Internal => agent_client_protocol::ErrorCode::INTERNAL_ERROR,
    };
    agent_client_protocol::Error::new(code, error.message.clone())
}

/// Protocol version negotiation (both versions) and ACP v2's messages.
///
/// The `agent-client-protocol` 5.0 crate has v2 types only behind its `unstable_protocol_v2`
/// feature, with a separate connection type whose version is fixed before connecting. Airlock
/// needs to learn the version from the agent's `initialize` answer on one connection, and uses
/// little of v2 (initialize, prompt acknowledgement, `session/update`, permission requests), so
/// that surface is read and written here as JSON, checked against the v2 schema by
/// `tests/tests/acp_schema.rs`.
pub(crate) mod v2 {
    use std::path::PathBuf;

    use serde_json::{Value, json};

    use crate::types::{
        AgentInfo, AgentUpdate, FileChange, PermissionKind, PermissionOption, StopReason,
        ToolCallInfo, ToolContent, ToolKind, ToolLocation, UpdateKind,
    };

    /// The newest protocol version Airlock speaks.
    pub(crate) const LATEST: u16 = 2;

    /// `initialize` parameters offering `offer` (1 or 2).
    ///
    /// An offer of 2 also carries v1's `clientInfo`/`clientCapabilities`: both schemas allow
    /// unknown properties, and an agent that only speaks v1 answers 1 and reads those, so it
    /// gets its capabilities without a second `initialize` or a respawn.
    pub(crate) fn initialize_params(offer: u16, name: &str, version: &str, own: bool) -> Value {
        let mut params = json!({
            "protocolVersion": offer,
            "clientCapabilities": {
                "fs": {"readTextFile": own, "writeTextFile": own},
                "terminal": own,
            },
            "clientInfo": {"name": name, "version": version},
        });
        if offer >= 2 {
            params["info"] = json!({"name": name, "version": version});
            // v2 has no client fs/terminal: nothing to advertise.
            params["capabilities"] = json!({});
        }
        params
    }

    /// What the agent's `initialize` answer settled.
    #[derive(Debug)]
    pub(crate) struct Negotiated {
        pub version: u16,
        pub agent_info: Option<AgentInfo>,
    }

    fn versions_text(offer: u16) -> String {
        if offer >= 2 {
            String::from("1 and 2")
        } else {
            String::from(
                "1 (2 only with agent.isolation = \"shadow\": v2 agents write files themselves)",
            )
        }
    }

    /// Reads the `initialize` result; the version must be one Airlock offered or below.
    pub(crate) fn negotiated(result: &Value, offer: u16) -> Result<Negotiated, String> {
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("the initialize answer has no protocolVersion: {result}"))?;
        let version = u16::try_from(version)
            .ok()
            .filter(|v| (1..=offer).contains(v))
            .ok_or_else(|| {
                format!(
                    "the agent speaks ACP protocol version {version}; Airlock offered {offer} and supports {}",
                    versions_text(offer)
                )
            })?;
        let info_key = if version >= 2 { "info" } else { "agentInfo" };
        let agent_info = result.get(info_key).and_then(|info| {
            Some(AgentInfo {
                name: info.get("name")?.as_str()?.to_owned(),
                version: info.get("version")?.as_str()?.to_owned(),
                title: info.get("title").and_then(Value::as_str).map(str::to_owned),
            })
        });
        Ok(Negotiated {
            version,
            agent_info,
        })
    }

    /// The message for an `initialize` that failed with ACP's "unsupported protocol version"
    /// error (-32022, v2): names what the agent supports and what Airlock offered.
    pub(crate) fn unsupported_version(data: Option<&Value>, offer: u16) -> String {
        let supported = data
            .and_then(|d| d.get("supported"))
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| String::from("(not said)"));
        format!(
            "the agent supports ACP protocol version(s) {supported}; Airlock offered {offer} and supports {}",
            versions_text(offer)
        )
    }

    /// The progress of the agent's foreground work, from `state_update`.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum TurnState {
        Running,
        Idle(Option<StopReason>),
    }

    fn text_of(block: &Value) -> Option<String> {
        (block.get("type")?.as_str()? == "text")
            .then(|| block.get("text")?.as_str().map(str::to_owned))
            .flatten()
    }

    fn tool_kind(kind: &str) -> ToolKind {
        match kind {
            "read" => ToolKind::Read,
            "edit" => ToolKind::Edit,
            "delete" => ToolKind::Delete,
            "move" => ToolKind::Move,
            "search" => ToolKind::Search,
            "execute" => ToolKind::Execute,
            "think" => ToolKind::Think,
            "fetch" => ToolKind::Fetch,
            "switch_mode" => ToolKind::SwitchMode,
            _ => ToolKind::Other,
        }
    }

    fn path_of(value: Option<&Value>) -> Option<PathBuf> {
        value.and_then(Value::as_str).map(PathBuf::from)
    }

    fn tool_content(content: &Value) -> ToolContent {
        match content.get("type").and_then(Value::as_str) {
            Some("content") => match content.get("content").and_then(text_of) {
                Some(text) => ToolContent::Text(text),
                None => ToolContent::Other(content.clone()),
            },
            Some("diff") => {
                let changes = content
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            // ACP: receivers skip invalid items.
                            .filter_map(|c| {
                                Some(FileChange {
                                    operation: c.get("operation")?.as_str()?.to_owned(),
                                    path: path_of(c.get("path"))?,
                                    old_path: path_of(c.get("oldPath")),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let patch = content
                    .get("patch")
                    .and_then(|p| p.get("text"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                ToolContent::Changes { changes, patch }
            }
            Some("terminal") => match content.get("terminalId").and_then(Value::as_str) {
                Some(id) => ToolContent::Terminal {
                    terminal_id: id.to_owned(),
                },
                None => ToolContent::Other(content.clone()),
            },
            _ => ToolContent::Other(content.clone()),
        }
    }

    /// A v2 `ToolCallUpdate` (an upsert: absent fields are left as they were).
    pub(crate) fn tool_call(call: &Value) -> Option<ToolCallInfo> {
        let string = |key: &str| call.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(ToolCallInfo {
            id: string("toolCallId")?,
            title: string("title"),
            kind: call.get("kind").and_then(Value::as_str).map(tool_kind),
            status: string("status"),
            raw_input: call.get("rawInput").cloned(),
            locations: call
                .get("locations")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|l| {
                            Some(ToolLocation {
                                path: path_of(l.get("path"))?,
                                line: l
                                    .get("line")
                                    .and_then(Value::as_u64)
                                    .and_then(|n| u32::try_from(n).ok()),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            content: call
                .get("content")
                .and_then(Value::as_array)
                .map(|c| c.iter().map(tool_content).collect())
                .unwrap_or_default(),
        })
    }

    pub(crate) fn stop_reason(reason: &str) -> StopReason {
        match reason {
            "end_turn" => StopReason::EndTurn,
            "max_tokens" => StopReason::MaxTokens,
            "max_turn_requests" => StopReason::MaxTurnRequests,
            "refusal" => StopReason::Refusal,
            "cancelled" => StopReason::Cancelled,
            other => StopReason::Other(other.to_owned()),
        }
    }

    /// A v2 `session/update`'s `update` object: what to forward, and the turn state it reports.
    pub(crate) fn update(raw: Value) -> Result<(AgentUpdate, Option<TurnState>), String> {
        let tag = raw
            .get("sessionUpdate")
            .and_then(Value::as_str)
            .ok_or("the update has no sessionUpdate tag")?
            .to_owned();
        let chunk = || raw.get("content").and_then(text_of);
        let mut state = None;
        let (kind, text, tool) = match tag.as_str() {
            "agent_message_chunk" => (UpdateKind::AgentMessageChunk, chunk(), None),
            "agent_thought_chunk" => (UpdateKind::AgentThoughtChunk, chunk(), None),
            "user_message_chunk" => (UpdateKind::UserMessageChunk, chunk(), None),
            "tool_call_update" => {
                let info = tool_call(&raw).ok_or("tool_call_update without a toolCallId")?;
                (UpdateKind::ToolCallUpdate, info.title.clone(), Some(info))
            }
            "state_update" => {
                state = match raw.get("state").and_then(Value::as_str) {
                    Some("running" | "requires_action") => Some(TurnState::Running),
                    Some("idle") => Some(TurnState::Idle(
                        raw.get("stopReason")
                            .and_then(Value::as_str)
                            .map(stop_reason),
                    )),
                    _ => None,
                };
                (UpdateKind::Other(tag.clone()), None, None)
            }
            _ => (UpdateKind::Other(tag.clone()), None, None),
        };
        Ok((
            AgentUpdate {
                kind,
                text,
                tool_call: tool,
                raw,
            },
            state,
        ))
    }

    /// A v2 `session/request_permission`: the tool call it is about (its `subject`, or one
    /// made of the prompt's title) and the options.
    pub(crate) fn permission_request(
        params: &Value,
    ) -> Result<(ToolCallInfo, Vec<PermissionOption>), String> {
        let options = params
            .get("options")
            .and_then(Value::as_array)
            .filter(|o| !o.is_empty())
            .ok_or("session/request_permission needs at least one option")?
            .iter()
            .map(|o| {
                let field = |k: &str| {
                    o.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or(format!("permission option without {k}: {o}"))
                };
                let kind = match field("kind")?.as_str() {
                    "allow_once" => PermissionKind::AllowOnce,
                    "allow_always" => PermissionKind::AllowAlways,
                    "reject_always" => PermissionKind::RejectAlways,
                    _ => PermissionKind::RejectOnce,
                };
                Ok(PermissionOption {
                    id: field("optionId")?,
                    name: field("name")?,
                    kind,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let title = params
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let subject = params.get("subject");
        let mut call = match subject.and_then(|s| s.get("type")).and_then(Value::as_str) {
            Some("tool_call") => subject
                .and_then(|s| s.get("toolCall"))
                .and_then(tool_call)
                .ok_or("permission subject tool_call without a valid toolCall")?,
            Some("command") => ToolCallInfo {
                kind: Some(ToolKind::Execute),
                raw_input: subject.cloned(),
                ..ToolCallInfo::default()
            },
            _ => ToolCallInfo::default(),
        };
        if call.title.is_none() {
            call.title = title;
        }
        Ok((call, options))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::v2;
    use crate::types::{StopReason, ToolContent};
    use serde_json::json;

    #[test]
    fn negotiation_takes_an_offered_version_and_names_both_otherwise() {
        let v2_answer = json!({"protocolVersion": 2, "info": {"name": "a", "version": "9"}});
        let n = v2::negotiated(&v2_answer, 2).unwrap();
        assert_eq!(n.version, 2);
        assert_eq!(n.agent_info.unwrap().version, "9");
        let v1_answer = json!({"protocolVersion": 1, "agentInfo": {"name": "b", "version": "1"}});
        let n = v2::negotiated(&v1_answer, 2).unwrap();
        assert_eq!((n.version, n.agent_info.unwrap().name.as_str()), (1, "b"));
        // Above the offer (a broken agent) or unknown: refused, naming both sides.
        let e = v2::negotiated(&v2_answer, 1).unwrap_err();
        assert!(e.contains("version 2") && e.contains("offered 1"), "{e}");
        assert!(e.contains("agent.isolation = \"shadow\""), "{e}");
        let e = v2::negotiated(&json!({"protocolVersion": 7}), 2).unwrap_err();
        assert!(
            e.contains("version 7") && e.contains("supports 1 and 2"),
            "{e}"
        );
        assert!(v2::negotiated(&json!({}), 2).is_err());
        let e = v2::unsupported_version(Some(&json!({"requested": 1, "supported": [2, 3]})), 1);
        assert!(
            e.contains("version(s) 2, 3") && e.contains("offered 1"),
            "{e}"
        );
    }

    #[test]
    fn offer_of_2_carries_both_field_sets() {
        let p = v2::initialize_params(2, "airlock", "0.1", false);
        assert_eq!(p["protocolVersion"], 2);
        assert_eq!(p["info"]["name"], "airlock");
        assert_eq!(p["clientInfo"]["name"], "airlock");
        assert_eq!(p["clientCapabilities"]["fs"]["writeTextFile"], false);
        let p = v2::initialize_params(1, "airlock", "0.1", true);
        assert!(p.get("info").is_none() && p.get("capabilities").is_none());
        assert_eq!(p["clientCapabilities"]["terminal"], true);
    }

    #[test]
    fn v2_updates_map_to_plain_data() {
        let (u, state) = v2::update(json!({
            "sessionUpdate": "tool_call_update", "toolCallId": "c1", "title": "Move",
            "status": "completed",
            "content": [{"type": "diff", "changes": [
                {"operation": "move", "oldPath": "/w/a", "path": "/w/b"},
                {"operation": "modify"},
            ]}],
        }))
        .unwrap();
        assert_eq!(state, None);
        let call = u.tool_call.unwrap();
        assert_eq!(call.status.as_deref(), Some("completed"));
        let ToolContent::Changes { changes, patch } = &call.content[0] else {
            panic!("{:?}", call.content)
        };
        // The change without a path is skipped, as ACP asks of receivers.
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].old_path.as_deref(), Some("/w/a".as_ref()));
        assert_eq!(patch, &None);
        let idle = |v| v2::update(v).unwrap().1;
        assert_eq!(
            idle(
                json!({"sessionUpdate": "state_update", "state": "idle", "stopReason": "cancelled"})
            ),
            Some(v2::TurnState::Idle(Some(StopReason::Cancelled)))
        );
        assert_eq!(
            idle(json!({"sessionUpdate": "state_update", "state": "requires_action"})),
            Some(v2::TurnState::Running)
        );
        assert!(v2::update(json!({"content": {}})).is_err());
    }

    #[test]
    fn v2_permission_requests_need_options() {
        let (call, options) = v2::permission_request(&json!({
            "sessionId": "s", "title": "Run ls?",
            "subject": {"type": "command", "command": "ls"},
            "options": [{"optionId": "y", "name": "Yes", "kind": "allow_once"}],
        }))
        .unwrap();
        assert_eq!(call.title.as_deref(), Some("Run ls?"));
        assert_eq!(options[0].id, "y");
        assert!(v2::permission_request(&json!({"sessionId": "s", "options": []})).is_err());
    }
}
