//! Asking the user: `session/request_permission` from the agent, and "ask" decisions of the
//! policy (commands, domains).
//!
//! Clients that opted in get `airlock/approval` (allow once / for this session / always / deny);
//! any other LSP editor gets `window/showMessageRequest` with the same choices. "Allow for this
//! session" is remembered here; "always" is written to the user policy by the policy module.

use std::collections::HashSet;

use airlock_acp::{PermissionKind, PermissionOption, PermissionOutcome, Reply, ToolCallInfo};
use airlock_telemetry::{Event, EventKind};
use tower_lsp_server::ls_types::*;

use crate::ext;
use crate::main_loop::State;

pub const ALLOW_ONCE: &str = "allow_once";
pub const ALLOW_SESSION: &str = "allow_session";
pub const ALLOW_ALWAYS: &str = "allow_always";
pub const DENY: &str = "deny";
const CHOICES: [&str; 4] = [ALLOW_ONCE, ALLOW_SESSION, ALLOW_ALWAYS, DENY];

#[derive(Default)]
pub struct Approvals {
    /// Subjects (`kind:subject`) the user allowed for the rest of this session.
    session_allowed: HashSet<String>,
}

/// The question put to the user.
pub struct Question {
    pub kind: String,
    pub subject: String,
    pub rule: Option<String>,
    pub layer: Option<String>,
}

fn label(choice: &str) -> &'static str {
    match choice {
        ALLOW_ONCE => "Allow once",
        ALLOW_SESSION => "Allow for this session",
        ALLOW_ALWAYS => "Always allow",
        _ => "Deny",
    }
}

/// Asks the user (or answers from this session's memory) and calls `then` with the choice.
pub fn ask(
    state: &mut State,
    q: Question,
    then: impl FnOnce(&mut State, &'static str) + Send + 'static,
) {
    let key = format!("{}:{}", q.kind, q.subject);
    if state.approvals.session_allowed.contains(&key) {
        state.emit(
            Event::new(EventKind::ApprovalDecided, q.subject)
                .decision("allow")
                .field("by", "session"),
        );
        return then(state, ALLOW_SESSION);
    }
    state.emit(
        Event::new(EventKind::ApprovalRequested, q.subject.clone())
            .rule(q.rule.clone(), q.layer.clone())
            .field("kind", q.kind.clone()),
    );
    let subject = q.subject.clone();
    let finish = move |state: &mut State, choice: Option<String>| {
        let choice: &'static str = CHOICES
            .into_iter()
            .find(|c| Some(*c) == choice.as_deref())
            .unwrap_or(DENY);
        if choice == ALLOW_SESSION || choice == ALLOW_ALWAYS {
            state.approvals.session_allowed.insert(key);
        }
        let decision = if choice == DENY { "deny" } else { "allow" };
        state.emit(
            Event::new(EventKind::ApprovalDecided, subject)
                .decision(decision)
                .field("by", "user")
                .field("choice", choice),
        );
        then(state, choice);
    };
    if state.opt_in.enabled && state.opt_in.approvals {
        let params = ext::ApprovalParams {
            kind: q.kind,
            subject: q.subject,
            rule: q.rule,
            layer: q.layer,
            options: CHOICES.iter().map(|c| (*c).to_owned()).collect(),
        };
        state.request_client(
            move |client| async move { client.send_request::<ext::Approval>(params).await },
            move |state, result| finish(state, result.ok().map(|r| r.choice)),
        );
    } else {
        let rule = q.rule.map(|r| format!(" (rule {r})")).unwrap_or_default();
        let params = ShowMessageRequestParams {
            typ: MessageType::WARNING,
            message: format!(
                "Airlock: the agent wants to run {} `{}`{rule}. Allow it?",
                q.kind, q.subject
            ),
            actions: Some(
                CHOICES
                    .iter()
                    .map(|c| MessageActionItem {
                        title: label(c).into(),
                        properties: Default::default(),
                    })
                    .collect(),
            ),
        };
        state.request_client(
            move |client| async move {
                client
                    .show_message_request(params.typ, params.message, params.actions)
                    .await
            },
            move |state, result| {
                let title = result.ok().flatten().map(|a| a.title);
                let choice = CHOICES
                    .into_iter()
                    .find(|c| Some(label(c)) == title.as_deref())
                    .map(str::to_owned);
                finish(state, choice)
            },
        );
    }
}

/// `session/request_permission`: policy first (for tool calls that run a command), else the user.
pub fn ask_permission(
    state: &mut State,
    call: ToolCallInfo,
    options: Vec<PermissionOption>,
    respond: Reply<PermissionOutcome>,
) {
    let subject = call
        .raw_input
        .as_ref()
        .and_then(|i| i.get("command"))
        .and_then(|c| c.as_str())
        .map(str::to_owned)
        .or(call.title.clone())
        .unwrap_or_else(|| call.id.clone());
    let pick =
        move |options: &[PermissionOption], allow: bool, always: bool| -> PermissionOutcome {
            let wanted: &[PermissionKind] = match (allow, always) {
                (true, true) => &[PermissionKind::AllowAlways, PermissionKind::AllowOnce],
                (true, false) => &[PermissionKind::AllowOnce, PermissionKind::AllowAlways],
                (false, _) => &[PermissionKind::RejectOnce, PermissionKind::RejectAlways],
            };
            wanted
                .iter()
                .find_map(|k| options.iter().find(|o| o.kind == *k))
                .map_or(PermissionOutcome::Cancelled, |o| {
                    PermissionOutcome::Selected(o.id.clone())
                })
        };
    let mut rule = (None, None);
    if let Some(decision) = crate::handlers::policy_file::decide_tool_call(state, &call) {
        let (r, layer) = crate::handlers::policy_file::describe(&decision);
        if decision.verdict != airlock_policy::Verdict::Ask {
            let allow = decision.verdict == airlock_policy::Verdict::Allow;
            state.emit(
                Event::new(EventKind::ApprovalDecided, subject)
                    .decision(decision.verdict.as_str())
                    .rule(Some(r), Some(layer))
                    .field("by", "policy"),
            );
            let _ = respond.send(pick(&options, allow, false));
            return;
        }
        rule = (Some(r), Some(layer));
    }
    let q = Question {
        kind: "tool".into(),
        subject,
        rule: rule.0,
        layer: rule.1,
    };
    ask(state, q, move |_state, choice| {
        let outcome = pick(&options, choice != DENY, choice == ALLOW_ALWAYS);
        let _ = respond.send(outcome);
    });
}
