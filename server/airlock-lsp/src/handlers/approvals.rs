//! Asking the user: `session/request_permission` from the agent, and "ask" decisions of the
//! policy (commands, connections through the egress proxy).
//!
//! Clients that opted in get `airlock/approval`; any other LSP editor gets
//! `window/showMessageRequest` with the same choices: allow once, for this session, always
//! (a rule in the user policy), always in the workspace policy (offered when the question can
//! be written as a rule), deny. Guarantees:
//!
//! - "Allow for this session" (and either "always") is remembered here for `kind:subject`;
//!   later questions with the same key are answered from memory (`by: session`).
//! - "Always" writes the question's rule ([`AlwaysRule`]) through the policy module and
//!   reloads the policy; a question no rule kind can express is remembered for the session and
//!   the user is told so.
//! - Concurrent network questions for the same `host:port` share one dialog.
//! - Nothing here waits: the question goes out on its own task and the answer comes back as
//!   another closure on the state task.

use std::collections::{HashMap, HashSet};

use airlock_acp::{PermissionKind, PermissionOption, PermissionOutcome, Reply, ToolCallInfo};
use airlock_policy::RuleCategory;
use airlock_telemetry::{Event, EventKind};
use tower_lsp_server::ls_types::*;

use crate::ext;
use crate::handlers::policy_file;
use crate::main_loop::State;

pub const ALLOW_ONCE: &str = "allow_once";
pub const ALLOW_SESSION: &str = "allow_session";
pub const ALLOW_ALWAYS: &str = "allow_always";
pub const ALLOW_ALWAYS_WORKSPACE: &str = "allow_always_workspace";
pub const DENY: &str = "deny";
const CHOICES: [&str; 5] = [
    ALLOW_ONCE,
    ALLOW_SESSION,
    ALLOW_ALWAYS,
    ALLOW_ALWAYS_WORKSPACE,
    DENY,
];

type Then = Box<dyn FnOnce(&mut State, Answer) + Send>;

#[derive(Default)]
pub struct Approvals {
    /// Subjects (`kind:subject`) the user allowed for the rest of this session.
    session_allowed: HashSet<String>,
    /// Network questions on their way to the user, by `kind:subject`: later connections to the
    /// same target wait for the same answer instead of opening another dialog.
    pending: HashMap<String, Vec<Then>>,
}

/// A rule "always" writes: `allow` of this category with this pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlwaysRule {
    pub category: RuleCategory,
    pub pattern: String,
}

impl AlwaysRule {
    /// `Some` only when the pattern is a valid rule of that category.
    pub fn new(category: RuleCategory, pattern: &str) -> Option<AlwaysRule> {
        let pattern = pattern.trim();
        airlock_policy::validate_rule(category, pattern).ok()?;
        airlock_policy::rule_key(category, airlock_policy::Verdict::Allow)?;
        Some(AlwaysRule {
            category,
            pattern: pattern.to_owned(),
        })
    }

    /// As shown to the user and in events: `commands.allow "cargo test"`.
    pub fn describe(&self) -> String {
        let (table, key) = airlock_policy::rule_key(self.category, airlock_policy::Verdict::Allow)
            .unwrap_or(("?", "?"));
        format!("{table}.{key} \"{}\"", self.pattern)
    }
}

/// The question put to the user.
pub struct Question {
    /// `command`, `network` or `tool`.
    pub kind: String,
    pub subject: String,
    pub rule: Option<String>,
    pub layer: Option<String>,
    /// What "always" writes; `None` when no rule kind can express the question ("always" is
    /// then remembered for this session only, and the user is told).
    pub always: Option<AlwaysRule>,
}

/// The user's answer (or the session's memory of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// One of the choices; [`ALLOW_SESSION`] when answered from memory.
    pub choice: &'static str,
    /// Answered from this session's memory, without asking.
    pub remembered: bool,
}

impl Answer {
    pub fn allowed(&self) -> bool {
        self.choice != DENY
    }

    pub fn always(&self) -> bool {
        self.choice == ALLOW_ALWAYS || self.choice == ALLOW_ALWAYS_WORKSPACE
    }
}

fn label(choice: &str) -> &'static str {
    match choice {
        ALLOW_ONCE => "Allow once",
        ALLOW_SESSION => "Allow for this session",
        ALLOW_ALWAYS => "Always allow (user policy)",
        ALLOW_ALWAYS_WORKSPACE => "Always allow (workspace policy)",
        _ => "Deny",
    }
}

fn offered(q: &Question, has_workspace: bool) -> Vec<&'static str> {
    CHOICES
        .into_iter()
        .filter(|c| *c != ALLOW_ALWAYS_WORKSPACE || (q.always.is_some() && has_workspace))
        .collect()
}

/// Asks the user (or answers from this session's memory) and calls `then` with the answer.
pub fn ask(state: &mut State, q: Question, then: impl FnOnce(&mut State, Answer) + Send + 'static) {
    let key = format!("{}:{}", q.kind, q.subject);
    if state.approvals.session_allowed.contains(&key) {
        state.emit(
            Event::new(EventKind::ApprovalDecided, q.subject)
                .decision("allow")
                .field("kind", q.kind)
                .field("by", "session"),
        );
        let answer = Answer {
            choice: ALLOW_SESSION,
            remembered: true,
        };
        return then(state, answer);
    }
    if q.kind == "network" {
        if let Some(waiting) = state.approvals.pending.get_mut(&key) {
            waiting.push(Box::new(then));
            return;
        }
        state.approvals.pending.insert(key.clone(), Vec::new());
    }
    state.emit(
        Event::new(EventKind::ApprovalRequested, q.subject.clone())
            .rule(q.rule.clone(), q.layer.clone())
            .field("kind", q.kind.clone())
            .field(
                "always",
                q.always
                    .as_ref()
                    .map(AlwaysRule::describe)
                    .unwrap_or_default(),
            ),
    );
    let options = offered(&q, state.root.is_some());
    let (subject, kind, always) = (q.subject.clone(), q.kind.clone(), q.always.clone());
    let valid = options.clone();
    let finish = move |state: &mut State, choice: Option<String>| {
        let choice: &'static str = valid
            .iter()
            .copied()
            .find(|c| Some(*c) == choice.as_deref())
            .unwrap_or(DENY);
        let answer = Answer {
            choice,
            remembered: false,
        };
        if answer.allowed() && choice != ALLOW_ONCE {
            state.approvals.session_allowed.insert(key.clone());
        }
        state.emit(
            Event::new(EventKind::ApprovalDecided, subject.clone())
                .decision(if answer.allowed() { "allow" } else { "deny" })
                .field("kind", kind.clone())
                .field("by", "user")
                .field("choice", choice),
        );
        if answer.always() {
            match &always {
                Some(rule) => {
                    let target = if choice == ALLOW_ALWAYS_WORKSPACE {
                        policy_file::RuleTarget::Workspace
                    } else {
                        policy_file::RuleTarget::User
                    };
                    policy_file::allow_always(state, rule, target);
                }
                None => {
                    if let Some(out) = state.out() {
                        out.show(
                            MessageType::INFO,
                            format!(
                                "airlock: no policy rule can express {kind} `{subject}`, so \
                                 \"always\" is remembered for this session only"
                            ),
                        );
                    }
                }
            }
        }
        let waiting = state.approvals.pending.remove(&key).unwrap_or_default();
        then(state, answer);
        for w in waiting {
            w(state, answer);
        }
    };
    let always_rule = q.always.as_ref().map(AlwaysRule::describe);
    if state.opt_in.enabled && state.opt_in.approvals {
        let params = ext::ApprovalParams {
            kind: q.kind,
            subject: q.subject,
            rule: q.rule,
            layer: q.layer,
            always_rule,
            options: options.iter().map(|c| (*c).to_owned()).collect(),
        };
        state.request_client(
            move |client| async move { client.send_request::<ext::Approval>(params).await },
            move |state, result| finish(state, result.ok().map(|r| r.choice)),
        );
    } else {
        let rule = q.rule.map(|r| format!(" (rule {r})")).unwrap_or_default();
        let what = match q.kind.as_str() {
            "network" => format!("connect to `{}`", q.subject),
            "tool" => format!("use the tool `{}`", q.subject),
            _ => format!("run `{}`", q.subject),
        };
        let always = always_rule
            .map(|r| format!(" \"Always\" adds {r}."))
            .unwrap_or_default();
        let titles: Vec<MessageActionItem> = options
            .iter()
            .map(|c| MessageActionItem {
                title: label(c).into(),
                properties: Default::default(),
            })
            .collect();
        let message = format!("Airlock: the agent wants to {what}{rule}. Allow it?{always}");
        state.request_client(
            move |client| async move {
                client
                    .show_message_request(MessageType::WARNING, message, Some(titles))
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

/// A connection through the egress proxy that the policy says to `ask` about. Called on the
/// state task (the proxy's thread only sent the question); the answer goes back on `reply`,
/// which the proxy waits on with its own timeout.
pub fn ask_network(
    state: &mut State,
    host: String,
    port: u16,
    decision: airlock_policy::Decision,
    reply: std::sync::mpsc::Sender<airlock_proxy::AskAnswer>,
) {
    let (rule, layer) = policy_file::describe(&decision);
    let subject = format!("{host}:{port}");
    let q = Question {
        kind: "network".into(),
        always: AlwaysRule::new(RuleCategory::Network, &subject),
        subject,
        rule: Some(rule),
        layer: Some(layer),
    };
    ask(state, q, move |_state, answer| {
        // The proxy may have given up waiting (timeout): then nobody listens, which is fine —
        // the choice is still remembered (session, always) for the next connection.
        let _ = reply.send(airlock_proxy::AskAnswer {
            allow: answer.allowed(),
            by: if answer.remembered {
                airlock_proxy::DecidedBy::Session
            } else {
                airlock_proxy::DecidedBy::User
            },
        });
    });
}

/// `session/request_permission`: policy first (for tool calls a rule can judge: commands,
/// fetches, reads), else the user.
pub fn ask_permission(
    state: &mut State,
    call: ToolCallInfo,
    options: Vec<PermissionOption>,
    respond: Reply<PermissionOutcome>,
) {
    let judged = policy_file::judge_tool_call(state, &call);
    let subject = judged
        .subject
        .clone()
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
    if let Some(decision) = judged.decision {
        let (r, layer) = policy_file::describe(&decision);
        if decision.verdict != airlock_policy::Verdict::Ask {
            let allow = decision.verdict == airlock_policy::Verdict::Allow;
            state.emit(
                Event::new(EventKind::ApprovalDecided, subject)
                    .decision(decision.verdict.as_str())
                    .rule(Some(r), Some(layer))
                    .field("kind", "tool")
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
        always: judged.always,
    };
    ask(state, q, move |_state, answer| {
        let outcome = pick(&options, answer.allowed(), answer.always());
        let _ = respond.send(outcome);
    });
}
