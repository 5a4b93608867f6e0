//! The policy in force, and editor support for `.airlock/policy.toml`.
//!
//! Guarantees: an invalid policy never loosens anything — the last good policy (or the strict
//! default) stays in force and the error is shown with its location; saving any layer's file
//! reloads it (`policy.loaded` / `policy.error` events); loosening rules of an untrusted
//! workspace policy are flagged in the editor where they are written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock_acp::{ToolCallInfo, ToolKind};
use airlock_policy::{self as policy, Decision, Policy, PolicyPaths, Verdict};
use airlock_telemetry::{Event, EventKind};
use tower_lsp_server::ls_types::*;

use crate::documents::{offset_of, position_of};
use crate::handlers::approvals::AlwaysRule;
use crate::main_loop::{DiagnosticSource, State};

#[derive(Default)]
pub struct PolicyState {
    pub policy: Option<Arc<Policy>>,
    pub workspace_trusted: bool,
}

fn paths(state: &State) -> Option<PolicyPaths> {
    Some(PolicyPaths {
        workspace_root: state.root.clone()?,
        user_policy: state.config.user_policy.clone(),
        managed_policy: state.config.managed_policy.clone(),
        trust_store: state.config.state_dir.join("trust.json"),
    })
}

/// The policy in force: the last good one, else the strict default.
pub fn current(state: &State) -> Option<Arc<Policy>> {
    // Shared, not cloned: a policy holds compiled glob sets, and this runs on every agent request.
    state.policy.policy.clone().or_else(|| {
        state
            .root
            .as_deref()
            .map(|root| Arc::new(Policy::strict_default(root)))
    })
}

pub fn load_policy(state: &mut State) {
    let Some(paths) = paths(state) else { return };
    match policy::load(&paths) {
        Ok(loaded) => {
            let layers: Vec<String> = loaded.sources.iter().map(|s| format!("{:?}", s)).collect();
            state.emit(
                Event::new(
                    EventKind::PolicyLoaded,
                    paths.workspace_policy().display().to_string(),
                )
                .field("layers", layers)
                .field("workspaceTrusted", loaded.workspace_trusted),
            );
            for w in &loaded.warnings {
                state.emit(
                    Event::new(
                        EventKind::PolicyWarning,
                        format!("{}:{}:{}", w.path.display(), w.line, w.col),
                    )
                    .field("message", w.message.clone()),
                );
            }
            state.policy = PolicyState {
                policy: Some(Arc::new(loaded.policy)),
                workspace_trusted: loaded.workspace_trusted,
            };
            crate::handlers::terminals::policy_changed(state);
        }
        Err(err) => {
            let had_policy = state.policy.policy.is_some();
            if !had_policy {
                state.policy.policy = Some(Arc::new(Policy::strict_default(&paths.workspace_root)));
            }
            let message = err.lines().join("\n");
            tracing::error!("policy error: {message}");
            state.emit(
                Event::new(EventKind::PolicyError, err.path().display().to_string())
                    .field("message", message.clone()),
            );
            if let Some(out) = state.out() {
                let kept = if had_policy {
                    "the last valid policy"
                } else {
                    "the strict default policy"
                };
                out.show(
                    MessageType::ERROR,
                    format!("airlock: invalid policy, {kept} stays in force:\n{message}"),
                );
            }
        }
    }
    if let Some(uri) = Uri::from_file_path(paths.workspace_policy()) {
        on_change(state, &uri);
    }
}

fn is_policy_file(state: &State, path: &Path) -> bool {
    paths(state).is_some_and(|p| {
        path == p.workspace_policy() || path == p.user_policy || path == p.managed_policy
    })
}

fn path_of(uri: &Uri) -> Option<PathBuf> {
    uri.to_file_path().map(|p| p.into_owned())
}

/// Live diagnostics while a policy file is edited.
pub fn on_change(state: &mut State, uri: &Uri) {
    let Some(path) = path_of(uri) else { return };
    if !is_policy_file(state, &path) {
        return;
    }
    let Some(doc) = state.docs.get(uri) else {
        return;
    };
    let text = doc.text.clone();
    let version = doc.version;
    let mut found = policy::diagnostics(&text);
    let is_workspace_layer = paths(state).is_some_and(|p| p.workspace_policy() == path);
    if is_workspace_layer && !state.policy.workspace_trusted {
        found.extend(policy::loosening_diagnostics(&text));
    }
    let enc = state.encoding;
    let diagnostics = found
        .into_iter()
        .map(|d| Diagnostic {
            range: Range {
                start: position_of(&text, d.range.start, enc),
                end: position_of(&text, d.range.end, enc),
            },
            severity: Some(match d.severity {
                policy::DiagnosticSeverity::Error => DiagnosticSeverity::ERROR,
                policy::DiagnosticSeverity::Warning => DiagnosticSeverity::WARNING,
            }),
            source: Some("airlock".into()),
            message: d.message,
            ..Default::default()
        })
        .collect();
    state.set_diagnostics(
        uri.clone(),
        DiagnosticSource::Policy,
        diagnostics,
        Some(version),
    );
}

pub fn on_save(state: &mut State, uri: &Uri) {
    if path_of(uri).is_some_and(|p| is_policy_file(state, &p)) {
        load_policy(state);
    }
}

fn policy_text_at(state: &State, uri: &Uri, pos: Position) -> Option<(String, usize)> {
    let path = path_of(uri)?;
    if !is_policy_file(state, &path) {
        return None;
    }
    let doc = state.docs.get(uri)?;
    let offset = offset_of(&doc.text, pos, state.encoding).ok()?;
    Some((doc.text.clone(), offset))
}

pub fn hover(state: &mut State, params: HoverParams) -> Option<Hover> {
    let p = params.text_document_position_params;
    let (text, offset) = policy_text_at(state, &p.text_document.uri, p.position)?;
    let explanation = policy::hover(&text, offset)?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: explanation,
        }),
        range: None,
    })
}

pub fn completion(state: &mut State, params: CompletionParams) -> Option<CompletionResponse> {
    let p = params.text_document_position;
    let (text, offset) = policy_text_at(state, &p.text_document.uri, p.position)?;
    let items = policy::completions(&text, offset)
        .into_iter()
        .map(|c| CompletionItem {
            label: c.label,
            detail: Some(c.detail),
            kind: Some(CompletionItemKind::PROPERTY),
            ..Default::default()
        })
        .collect();
    Some(CompletionResponse::Array(items))
}

/// `Some((rule, layer))` when the policy denies the agent reading `path`.
pub fn read_denied(state: &State, path: &Path) -> Option<(String, String)> {
    let decision = current(state)?.decide_read(path);
    (decision.verdict == Verdict::Deny).then(|| describe(&decision))
}

pub fn describe(d: &Decision) -> (String, String) {
    let rule = match (&d.rule, &d.source) {
        (Some(r), Some(s)) => format!("{r} ({s})"),
        (Some(r), None) => r.clone(),
        (None, _) => "default".into(),
    };
    (rule, d.layer.as_str().to_owned())
}

/// The policy's decision on a command given as argv (agent terminal), run in `cwd` (relative
/// redirections and paths are judged from there; default: the workspace root).
pub fn decide_argv(state: &State, argv: &[String], cwd: Option<&Path>) -> Decision {
    match (current(state), state.root.as_deref()) {
        (Some(policy), Some(root)) => deciding(policy.decide_argv_in(argv, cwd.unwrap_or(root))),
        _ => no_workspace(),
    }
}

/// The policy's decision on a shell command line (split into parts; the strictest decides).
pub fn decide_line(state: &State, line: &str, cwd: Option<&Path>) -> Decision {
    match (current(state), state.root.as_deref()) {
        (Some(policy), Some(root)) => deciding(policy.decide_command_in(line, cwd.unwrap_or(root))),
        _ => no_workspace(),
    }
}

fn deciding(d: policy::CommandDecision) -> Decision {
    d.deciding_part()
        .map(|p| p.decision.clone())
        .unwrap_or(Decision {
            verdict: d.verdict,
            rule: None,
            layer: policy::Layer::Builtin,
            source: None,
        })
}

fn no_workspace() -> Decision {
    Decision {
        verdict: Verdict::Ask,
        rule: Some("no workspace".into()),
        layer: policy::Layer::Builtin,
        source: None,
    }
}

/// Where "always" writes its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTarget {
    /// `~/.config/airlock/policy.toml`: applies at once, to every workspace.
    User,
    /// `.airlock/policy.toml`: applies at once only if the file was trusted (trust moves to
    /// the new content, see `airlock_policy::add_workspace_rule`); otherwise after
    /// `airlock policy trust`.
    Workspace,
}

/// "Always allow" from an approval: the rule is written (comments and layout of the file
/// kept, atomically), the policy reloaded, and a `policy.rule_added` event emitted. Failures
/// are shown to the user; the approval itself still holds for this session.
pub fn allow_always(state: &mut State, rule: &AlwaysRule, target: RuleTarget) {
    let described = rule.describe();
    let written = match target {
        RuleTarget::User => {
            let path = state.config.user_policy.clone();
            policy::add_rule(&path, rule.category, Verdict::Allow, &rule.pattern)
                .map(|()| (path, true))
        }
        RuleTarget::Workspace => match paths(state) {
            None => Err(policy::AddRuleError::Edit {
                path: PathBuf::from(".airlock/policy.toml"),
                message: "no workspace is open".into(),
            }),
            Some(paths) => {
                policy::add_workspace_rule(&paths, rule.category, Verdict::Allow, &rule.pattern)
                    .map(|w| (w.path, w.trusted))
            }
        },
    };
    let (path, trusted) = match written {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("could not save {described}: {e}");
            if let Some(out) = state.out() {
                out.show(
                    MessageType::WARNING,
                    format!(
                        "airlock: could not save the rule {described}: {e}\nIt is allowed for \
                         this session only."
                    ),
                );
            }
            return;
        }
    };
    tracing::info!("added {described} to {}", path.display());
    state.emit(
        Event::new(EventKind::PolicyRuleAdded, described.clone())
            .field(
                "target",
                match target {
                    RuleTarget::User => "user",
                    RuleTarget::Workspace => "workspace",
                },
            )
            .field("path", path.display().to_string())
            .field("trusted", trusted),
    );
    load_policy(state);
    if !trusted && let Some(out) = state.out() {
        out.show(
            MessageType::WARNING,
            format!(
                "airlock: added {described} to {}. This workspace policy is not trusted, so the \
                 rule takes effect after `airlock policy trust` (allowed for this session \
                 meanwhile).",
                path.display()
            ),
        );
    }
}

/// What the policy can say about a permission request.
#[derive(Debug, Default)]
pub struct JudgedToolCall {
    /// What the question is about: the command line, URL or path (else the tool's title).
    pub subject: Option<String>,
    /// The policy's decision, when a rule can judge the call.
    pub decision: Option<Decision>,
    /// The rule "always" would write; `None` when no rule kind can express the call.
    pub always: Option<AlwaysRule>,
}

/// Maps a permission request to the rule kind the tool call implies:
///
/// - `execute` with `rawInput.command` → a command rule; the policy decides like a terminal
///   command (defaults included);
/// - `fetch` with `rawInput.url` (http/https) → a network rule `host:port`; only a rule of a
///   policy file decides (the built-in network default is a question, not a refusal);
/// - `read` of one path in the workspace → `files.allow_read` `/that/path`; a `deny` (any
///   layer) refuses, an allow from a policy file allows, otherwise the user is asked;
/// - anything else (edits are previews anyway, searches, …) → no rule: the user decides and
///   "always" lasts for this session.
pub fn judge_tool_call(state: &State, call: &ToolCallInfo) -> JudgedToolCall {
    let input = |k: &str| {
        call.raw_input
            .as_ref()
            .and_then(|i| i.get(k))
            .and_then(|v| v.as_str())
    };
    match call.kind {
        Some(ToolKind::Execute) => {
            if let Some(command) = input("command") {
                return JudgedToolCall {
                    subject: Some(command.to_owned()),
                    decision: Some(decide_line(state, command, None)),
                    always: AlwaysRule::new(policy::RuleCategory::Command, command),
                };
            }
        }
        Some(ToolKind::Fetch) => {
            if let Some(url) = input("url")
                && let Some(target) = url_target(url)
            {
                let decision = current(state)
                    .map(|p| {
                        let (host, port) = target.rsplit_once(':').unwrap_or((&target, ""));
                        p.decide_domain(host, port.parse().ok())
                    })
                    .filter(|d| d.layer != policy::Layer::Builtin);
                return JudgedToolCall {
                    subject: Some(url.to_owned()),
                    decision,
                    always: AlwaysRule::new(policy::RuleCategory::Network, &target),
                };
            }
        }
        Some(ToolKind::Read) => {
            if let [loc] = call.locations.as_slice()
                && let Some(policy) = current(state)
            {
                let d = policy.decide_read(&loc.path);
                let decides = d.verdict == Verdict::Deny
                    || (d.verdict == Verdict::Allow && d.layer != policy::Layer::Builtin);
                let always = state
                    .root
                    .as_deref()
                    .and_then(|root| loc.path.strip_prefix(root).ok())
                    .and_then(|rel| rel.to_str())
                    .filter(|rel| {
                        !rel.is_empty() && !rel.contains(['*', '?', '[', ']', '{', '}', '!', '\\'])
                    })
                    .and_then(|rel| {
                        AlwaysRule::new(policy::RuleCategory::Read, &format!("/{rel}"))
                    });
                return JudgedToolCall {
                    subject: Some(loc.path.display().to_string()),
                    decision: decides.then_some(d),
                    always,
                };
            }
        }
        _ => {}
    }
    JudgedToolCall::default()
}

/// `host:port` of an `http(s)://` URL, the host normalized as the proxy does; `None` for
/// anything else.
fn url_target(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, tail) = v6.split_once(']')?;
            (h, tail.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port: u16 = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    let host = airlock_proxy::normalize_host(host).ok()?;
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_targets() {
        let t = |u: &str| super::url_target(u);
        assert_eq!(t("https://Docs.Rs/serde").as_deref(), Some("docs.rs:443"));
        assert_eq!(
            t("http://u:p@x.test:8080/a?b").as_deref(),
            Some("x.test:8080")
        );
        assert_eq!(t("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(t("http://x.test").as_deref(), Some("x.test:80"));
        assert_eq!(t("ftp://x.test/"), None);
        assert_eq!(t("https://x.test:99999/"), None);
        assert_eq!(t("not a url"), None);
    }
}
