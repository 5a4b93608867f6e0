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
