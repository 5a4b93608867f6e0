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
            crate::handlers::terminals::policy_changed(state);
            state.policy = PolicyState {
                policy: Some(Arc::new(loaded.policy)),
                workspace_trusted: loaded.workspace_trusted,
            };
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

/// "Always allow" from an approval: written to the user policy layer, then reloaded.
pub fn allow_always(state: &mut State, command_line: &str) {
    let path = state.config.user_policy.clone();
    match policy::add_rule(
        &path,
        policy::RuleCategory::Command,
        Verdict::Allow,
        command_line,
    ) {
        Ok(()) => {
            tracing::info!(
                "added `{command_line}` to commands.allow in {}",
                path.display()
            );
            load_policy(state);
        }
        Err(e) => {
            if let Some(out) = state.out() {
                out.show(
                    MessageType::WARNING,
                    format!("airlock: could not save the rule: {e}"),
                );
            }
        }
    }
}

/// For a permission request that runs a shell command, what the policy says about it; `None`
/// for other tool calls (edits are previewed anyway, so the user decides those).
pub fn decide_tool_call(state: &State, call: &ToolCallInfo) -> Option<Decision> {
    if call.kind != Some(ToolKind::Execute) {
        return None;
    }
    let command = call.raw_input.as_ref()?.get("command")?.as_str()?;
    Some(decide_line(state, command, None))
}
