//! Proposals in the editor: diagnostics, code lenses, code actions, `airlock.*` commands and
//! `airlock/resolve`.
//!
//! Guarantees: every open hunk of a pending proposal is visible in any LSP editor (a diagnostic
//! with source `airlock`, code lenses and code actions); an accepted hunk reaches an open
//! document only through `workspace/applyEdit` (version-checked, so text typed meanwhile is never
//! overwritten) and a closed file only through an atomic write; a decision is recorded
//! (`Store::commit`) only after its text has landed, so a refused or failed apply changes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use airlock_proposals::{self as ap, HunkStatus, ProposalId};
use airlock_telemetry::{Event, EventKind};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::*;

use crate::documents::position_of;
use crate::ext;
use crate::main_loop::{DiagnosticSource, State};

const ANNOTATION: &str = "airlock-proposal";

pub type ResolveReply = oneshot::Receiver<jsonrpc::Result<Value>>;

/// Opens the store for the workspace and shows what was pending before a restart.
pub fn restore(state: &mut State) {
    let Some(root) = state.root.clone() else {
        return;
    };
    // Not fsynced: state survives a killed server (atomic rename), and the agent→editor path
    // stays within its latency budget; a power loss can at worst drop the newest pending
    // previews, never tear a file or touch the workspace (docs/proposals.md).
    let options = ap::StoreOptions {
        durable: false,
        ..Default::default()
    };
    match ap::Store::open_with(&state.config.state_dir.join("proposals"), &root, options) {
        Ok(store) => {
            for warning in store.load_warnings() {
                tracing::warn!("proposal store: {warning}");
                if let Some(out) = state.out() {
                    out.log(MessageType::WARNING, format!("airlock: {warning}"));
                }
            }
            let paths: Vec<PathBuf> = store.list().iter().map(|p| p.path.clone()).collect();
            let restored: Vec<ap::Proposal> = store.list().into_iter().cloned().collect();
            state.proposals = Some(store);
            for proposal in &restored {
                // Clients that opted in rebuild their view from these, as after a fresh proposal.
                notify_proposal(state, proposal, ext::ProposalEvent::Created);
            }
            for path in paths {
                publish_path(state, &path);
            }
            crate::handlers::agent::send_status(state);
        }
        Err(err) => {
            tracing::error!("cannot open the proposal store: {err}");
            if let Some(out) = state.out() {
                out.show(
                    MessageType::ERROR,
                    format!("airlock: cannot open the proposal store: {err}"),
                );
            }
        }
    }
}

/// The file as the user sees it now: the open buffer (with its version), else the disk.
/// `None` text means the file does not exist.
pub fn current_text(
    state: &State,
    path: &Path,
) -> Result<(Option<String>, Option<i32>), ap::ProposalError> {
    if let Some((_, doc)) = state.docs.find_by_path(path) {
        // An editor shows a file that doesn't exist yet as one empty line ("\n" in Neovim):
        // that is still the empty text a new-file proposal starts from.
        let text = if doc.text == "\n" && !path.exists() {
            String::new()
        } else {
            doc.text.clone()
        };
        return Ok((Some(text), Some(doc.version)));
    }
    let limits = state
        .proposals
        .as_ref()
        .map(|s| s.limits())
        .unwrap_or_default();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
        _ => ap::read_text(path, &limits).map(|t| (Some(t), None)),
    }
}

/// Turns an agent's whole-file write into a proposal and shows it. Errors are written for the
/// agent. The proposal is on its way to disk when this returns: acknowledge it to the agent
/// only from [`when_persisted`].
///
/// Order, for the agent-write → editor latency (docs/benchmarks.md): the `airlock/proposal`
/// notification goes out first, then diagnostics and status; the text read here is reused for
/// all of them, and the store persists on its own thread.
///
/// `deletes_file`: the change stands for deleting the file (the shadow saw it removed);
/// `new_text` is then empty and accepting every hunk removes the file.
pub fn propose(
    state: &mut State,
    path: &Path,
    new_text: String,
    origin: ap::Origin,
    deletes_file: bool,
) -> Result<ap::Proposal, String> {
    let store = state
        .proposals
        .as_ref()
        .ok_or("no workspace is open in the editor, so edits cannot be reviewed")?;
    let path = store.resolve_path(path).map_err(|e| e.to_string())?;
    if let Some(policy) = crate::handlers::policy_file::current(state) {
        let decision = policy.decide_write(&path);
        if decision.verdict == airlock_policy::Verdict::Deny {
            let (rule, layer) = crate::handlers::policy_file::describe(&decision);
            let rel = relative(state, &path);
            state.emit(
                Event::new(EventKind::FsWriteDenied, rel.clone())
                    .decision("deny")
                    .rule(Some(rule.clone()), Some(layer.clone())),
            );
            return Err(format!(
                "writing {rel} is denied by policy rule {rule} ({layer} layer)"
            ));
        }
    }
    let t0 = std::time::Instant::now();
    let cpu0 = thread_cpu();
    let (base, version) = current_text(state, &path).map_err(|e| e.to_string())?;
    let t_read = t0.elapsed();
    let cpu_read = thread_cpu();
    let is_new_file = base.is_none();
    let base = base.unwrap_or_default();
    let input = ap::ProposeInput {
        is_new_file,
        // The store keeps its own copy; ours is the text diagnostics are placed on below.
        base_text: base.clone(),
        base_version: version,
        path: path.clone(),
        new_text,
        origin,
    };
    let store = state.proposals.as_mut().ok_or("proposal store closed")?;
    let mut proposal = store.propose(input).map_err(|e| e.to_string())?;
    if deletes_file && !proposal.hunks.is_empty() {
        proposal = store
            .mark_deletion(&proposal.id)
            .map_err(|e| e.to_string())?;
    }
    let t_store = t0.elapsed();
    let cpu_store = thread_cpu();
    // Also without hunks: a write back to the current text withdraws the pending proposal,
    // which the client learns from `supersedes`.
    notify_proposal_on(state, &proposal, ext::ProposalEvent::Created, &base);
    let t_notify = t0.elapsed();
    let cpu_notify = thread_cpu();
    state.emit(
        Event::new(EventKind::ProposalCreated, relative(state, &path))
            .field("proposal", proposal.id.as_str())
            .field("hunks", proposal.hunks.len())
            .field("newFile", proposal.is_new_file),
    );
    let t_emit = t0.elapsed();
    let cpu_emit = thread_cpu();
    publish_path_on(state, &path, base);
    let t_publish = t0.elapsed();
    let cpu_publish = thread_cpu();
    crate::handlers::agent::send_status(state);
    // Wall times are cumulative from the start; CPU times (this thread's) are per stage, for
    // comparisons on a loaded machine (benches/proposal_latency.py --stages).
    let us =
        |a: std::time::Duration, b: std::time::Duration| b.saturating_sub(a).as_micros() as u64;
    tracing::debug!(
        ?t_read,
        ?t_store,
        ?t_notify,
        ?t_emit,
        ?t_publish,
        cpu_read_us = us(cpu0, cpu_read),
        cpu_store_us = us(cpu_read, cpu_store),
        cpu_notify_us = us(cpu_store, cpu_notify),
        cpu_emit_us = us(cpu_notify, cpu_emit),
        cpu_publish_us = us(cpu_emit, cpu_publish),
        "propose timings"
    );
    Ok(proposal)
}

/// Runs `done` once every proposal change made so far is on disk (at once without a store).
/// `done` runs on the store's writer thread and must not block. A failure is also shown to
/// the user: the proposal is visible but would not survive a restart.
pub fn when_persisted(state: &State, done: impl FnOnce(Result<(), String>) + Send + 'static) {
    let Some(store) = state.proposals.as_ref() else {
        done(Ok(()));
        return;
    };
    let handle = state.handle.clone();
    store.on_persisted(move |result| {
        if let Err(err) = &result {
            let message = format!("airlock: {err}");
            handle.notify(move |state| {
                tracing::error!("{message}");
                if let Some(out) = state.out() {
                    out.show(MessageType::ERROR, message);
                }
            });
        }
        done(result.map_err(|e| e.to_string()));
    });
}

/// CPU time this thread has used (for the timings log).
fn thread_cpu() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

pub fn relative(state: &State, path: &Path) -> String {
    state
        .root
        .as_deref()
        .and_then(|r| path.strip_prefix(r).ok())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn notify_proposal(state: &mut State, proposal: &ap::Proposal, event: ext::ProposalEvent) {
    if !(state.opt_in.enabled && state.opt_in.proposals) {
        return;
    }
    match current_text(state, &proposal.path) {
        Ok((Some(text), _)) => notify_proposal_on(state, proposal, event, &text),
        _ => send_proposal(state, proposal, event, None),
    }
}

/// [`notify_proposal`] with the file's current text already at hand. Records the hunk
/// positions it announces, so `publish_path` only announces them again when they move.
fn notify_proposal_on(
    state: &mut State,
    proposal: &ap::Proposal,
    event: ext::ProposalEvent,
    text: &str,
) {
    if !(state.opt_in.enabled && state.opt_in.proposals) {
        return;
    }
    // Where each open hunk is in the buffer *now* (the user may have edited since).
    let views = state
        .proposals
        .as_ref()
        .and_then(|store| store.view(&proposal.id, text).ok());
    if let Some(views) = &views
        && proposal.state == ap::ProposalState::Pending
    {
        let shown: Vec<ap::HunkView> = views
            .iter()
            .filter(|v| v.status != HunkStatus::Accepted)
            .cloned()
            .collect();
        state.announced_views.insert(proposal.id.clone(), shown);
    }
    send_proposal(state, proposal, event, views);
}

fn send_proposal(
    state: &State,
    proposal: &ap::Proposal,
    event: ext::ProposalEvent,
    views: Option<Vec<ap::HunkView>>,
) {
    let (Some(out), Some(uri)) = (state.out(), Uri::from_file_path(&proposal.path)) else {
        return;
    };
    let mut value = serde_json::to_value(proposal).unwrap_or(Value::Null);
    if let Some(views) = views {
        value["view"] = serde_json::to_value(&views).unwrap_or(Value::Null);
    }
    out.notify::<ext::ProposalNotification>(ext::ProposalParams {
        event,
        uri: uri.as_str().to_owned(),
        proposal: value,
    });
}

pub fn publish(state: &mut State, uri: &Uri) {
    if let Some(path) = uri.to_file_path() {
        publish_path(state, &path);
    }
}

/// Like [`publish`], but only for files with a pending proposal (cheap on every keystroke).
pub fn publish_if_pending(state: &mut State, uri: &Uri) {
    let Some(path) = uri.to_file_path() else {
        return;
    };
    if state
        .proposals
        .as_ref()
        .is_some_and(|s| s.pending_for(&path).is_some())
    {
        publish_path(state, &path);
    }
}

/// One open hunk as it sits in the current text.
struct Placed {
    hunk: ap::Hunk,
    view: ap::HunkView,
    total: usize,
}

fn placed_hunks(state: &State, path: &Path) -> Option<(ProposalId, String, Vec<Placed>)> {
    let store = state.proposals.as_ref()?;
    store.pending_for(path)?;
    let (text, _) = current_text(state, path).ok()?;
    placed_hunks_on(state, path, text.unwrap_or_default())
}

/// [`placed_hunks`] on a text already read.
fn placed_hunks_on(
    state: &State,
    path: &Path,
    text: String,
) -> Option<(ProposalId, String, Vec<Placed>)> {
    let store = state.proposals.as_ref()?;
    let proposal = store.pending_for(path)?;
    let views = store.view(&proposal.id, &text).ok()?;
    let total = proposal.hunks.len();
    let placed = views
        .into_iter()
        .filter_map(|view| {
            let hunk = proposal.hunks.iter().find(|h| h.id == view.id)?.clone();
            Some(Placed { hunk, view, total })
        })
        .collect();
    Some((proposal.id.clone(), text, placed))
}

/// Re-publishes diagnostics for `path`, and records hunks the user applied by hand (e.g. through
/// the "Preview proposal" edit) as accepted.
pub fn publish_path(state: &mut State, path: &Path) {
    let placed = placed_hunks(state, path);
    publish_placed(state, path, placed);
}

/// [`publish_path`] when the file's current text is at hand (the open buffer, else the disk).
fn publish_path_on(state: &mut State, path: &Path, text: String) {
    let placed = placed_hunks_on(state, path, text);
    publish_placed(state, path, placed);
}

fn publish_placed(
    state: &mut State,
    path: &Path,
    placed: Option<(ProposalId, String, Vec<Placed>)>,
) {
    let Some(uri) = Uri::from_file_path(path) else {
        return;
    };
    let version = state.docs.find_by_path(path).map(|(_, d)| d.version);
    let Some((id, text, placed)) = placed else {
        state.set_diagnostics(uri, DiagnosticSource::Proposals, Vec::new(), version);
        return;
    };
    let applied: Vec<u32> = placed
        .iter()
        .filter(|p| p.view.status == HunkStatus::Accepted)
        .map(|p| p.hunk.id)
        .collect();
    // Hunks already in the text were applied by the user (e.g. the "Preview proposal" edit):
    // record them, unless our own accepted text is on its way to the editor right now.
    if !applied.is_empty()
        && !state.resolving.contains(&id)
        && record_applied_by_hand(state, &id, applied, text.clone(), version)
    {
        return publish_path(state, path);
    }
    let placed: Vec<Placed> = placed
        .into_iter()
        .filter(|p| p.view.status != HunkStatus::Accepted)
        .collect();
    let views: Vec<ap::HunkView> = placed.iter().map(|p| p.view.clone()).collect();
    if state.announced_views.get(&id) != Some(&views) {
        state.announced_views.insert(id.clone(), views);
        if let Some(proposal) = state.proposals.as_ref().and_then(|s| s.get(&id)).cloned() {
            notify_proposal_on(state, &proposal, ext::ProposalEvent::Updated, &text);
        }
    }
    let lines = LineStarts::new(&text, state.encoding);
    let diagnostics = placed
        .iter()
        .map(|p| Diagnostic {
            range: lines.range(p.view.start_line, p.view.end_line),
            severity: Some(if p.view.status == HunkStatus::Conflicted {
                DiagnosticSeverity::WARNING
            } else {
                DiagnosticSeverity::INFORMATION
            }),
            code: Some(NumberOrString::String(format!("{id}#{}", p.hunk.id))),
            source: Some("airlock".into()),
            message: hunk_message(&id, p),
            data: Some(json!({"proposal": id.as_str(), "hunk": p.hunk.id})),
            ..Default::default()
        })
        .collect();
    state.set_diagnostics(uri, DiagnosticSource::Proposals, diagnostics, version);
}

fn record_applied_by_hand(
    state: &mut State,
    id: &ProposalId,
    hunks: Vec<u32>,
    text: String,
    version: Option<i32>,
) -> bool {
    let Some(store) = state.proposals.as_mut() else {
        return false;
    };
    let input = ap::ResolveInput {
        id: id.clone(),
        hunks: Some(hunks),
        decision: ap::Decision::Accept,
        reason: None,
        edited_text: None,
        current_text: text,
        current_version: version,
    };
    match store.plan(input) {
        Ok(resolution) if resolution.edits.is_empty() => finish(state, &resolution).is_ok(),
        Ok(_) => {
            tracing::warn!(
                "hunks of {id} looked applied but planning produced edits; left pending"
            );
            false
        }
        Err(err) => {
            tracing::warn!("cannot record hand-applied hunks of {id}: {err}");
            false
        }
    }
}

fn hunk_message(id: &ProposalId, p: &Placed) -> String {
    let preview = |text: &str, sign: char| -> String {
        let mut lines: Vec<String> = text
            .lines()
            .take(3)
            .map(|l| format!("{sign} {l}"))
            .collect();
        let n = text.lines().count();
        if n > 3 {
            lines.push(format!("{sign} … ({} more lines)", n - 3));
        }
        lines.join("\n")
    };
    let status = match p.view.status {
        HunkStatus::Conflicted => {
            " — CONFLICT: you changed these lines since; reject it or ask the agent again"
        }
        _ => "",
    };
    let mut message = format!(
        "Agent proposal {id}, hunk {} of {}{status}",
        p.hunk.id, p.total
    );
    for (text, sign) in [(&p.hunk.old_text, '-'), (&p.hunk.new_text, '+')] {
        if !text.is_empty() {
            message.push('\n');
            message.push_str(&preview(text, sign));
        }
    }
    message
}

/// Positions of line starts in one text, computed in one pass (a file's hunks are placed
/// with one scan rather than one per hunk).
struct LineStarts {
    /// Number of `\n` in the text: lines `0..=newlines` start at character 0.
    newlines: u32,
    /// The end of the text, where any line beyond it is clamped.
    end: Position,
}

impl LineStarts {
    fn new(text: &str, enc: crate::documents::Encoding) -> LineStarts {
        let newlines =
            u32::try_from(text.bytes().filter(|&b| b == b'\n').count()).unwrap_or(u32::MAX);
        LineStarts {
            newlines,
            end: position_of(text, text.len(), enc),
        }
    }

    fn start(&self, line: u32) -> Position {
        if line <= self.newlines {
            Position { line, character: 0 }
        } else {
            self.end
        }
    }

    /// Range covering lines `start..end` (end exclusive), valid even at EOF.
    fn range(&self, start: u32, end: u32) -> Range {
        Range {
            start: self.start(start),
            end: self.start(end),
        }
    }
}

/// Range covering lines `start..end` (end exclusive) of `text`, valid even at EOF.
fn line_range(text: &str, start: u32, end: u32, enc: crate::documents::Encoding) -> Range {
    LineStarts::new(text, enc).range(start, end)
}

pub fn code_lens(state: &mut State, params: CodeLensParams) -> Option<Vec<CodeLens>> {
    let path = params.text_document.uri.to_file_path()?.into_owned();
    let (id, text, placed) = placed_hunks(state, &path)?;
    let lines = LineStarts::new(&text, state.encoding);
    let mut lenses = Vec::new();
    for (i, p) in placed.iter().enumerate() {
        let range = lines.range(p.view.start_line, p.view.start_line);
        let args = json!([id.as_str(), [p.hunk.id]]);
        let conflict = if p.view.status == HunkStatus::Conflicted {
            " (conflict)"
        } else {
            ""
        };
        lenses.push(lens(
            range,
            &format!("✔ Accept hunk {}{conflict}", p.hunk.id),
            crate::commands::ACCEPT,
            args.clone(),
        ));
        lenses.push(lens(range, "✘ Reject", crate::commands::REJECT, args));
        if i == 0 && placed.len() > 1 {
            let all = json!([id.as_str()]);
            lenses.push(lens(
                range,
                &format!("Accept all {}", placed.len()),
                crate::commands::ACCEPT_ALL,
                all.clone(),
            ));
            lenses.push(lens(range, "Reject all", crate::commands::REJECT_ALL, all));
        }
    }
    Some(lenses)
}

fn lens(range: Range, title: &str, command: &str, args: Value) -> CodeLens {
    CodeLens {
        range,
        command: Some(cmd(title, command, args)),
        data: None,
    }
}

fn cmd(title: &str, command: &str, args: Value) -> Command {
    Command {
        title: title.to_owned(),
        command: command.to_owned(),
        arguments: args.as_array().cloned(),
    }
}

pub fn code_action(state: &mut State, params: CodeActionParams) -> Option<CodeActionResponse> {
    let uri = params.text_document.uri;
    let path = uri.to_file_path()?.into_owned();
    let (id, text, placed) = placed_hunks(state, &path)?;
    let (first, last) = (params.range.start.line, params.range.end.line);
    let mut actions = Vec::new();
    for p in &placed {
        // A hunk is "here" if the request range touches its lines (insertions: its line).
        let (s, e) = (
            p.view.start_line,
            p.view.end_line.max(p.view.start_line + 1),
        );
        if first < e && last >= s {
            let args = json!([id.as_str(), [p.hunk.id]]);
            actions.push(action(
                &format!("Accept hunk {} of {}", p.hunk.id, p.total),
                crate::commands::ACCEPT,
                args.clone(),
                true,
            ));
            actions.push(action(
                &format!("Reject hunk {} of {}", p.hunk.id, p.total),
                crate::commands::REJECT,
                args,
                false,
            ));
        }
    }
    let all = json!([id.as_str()]);
    actions.push(action(
        "Accept all in file",
        crate::commands::ACCEPT_ALL,
        all.clone(),
        false,
    ));
    actions.push(action(
        "Reject all in file",
        crate::commands::REJECT_ALL,
        all,
        false,
    ));
    if let Some(preview) = preview_edit(state, &uri, &path, &id, &text) {
        actions.push(CodeActionOrCommand::CodeAction(CodeAction {
            title: format!("Preview proposal {id}"),
            kind: Some(CodeActionKind::SOURCE),
            edit: Some(preview),
            ..Default::default()
        }));
    }
    Some(actions)
}

fn action(title: &str, command: &str, args: Value, preferred: bool) -> CodeActionOrCommand {
    CodeActionOrCommand::CodeAction(CodeAction {
        title: title.to_owned(),
        kind: Some(CodeActionKind::QUICKFIX),
        command: Some(cmd(title, command, args)),
        is_preferred: preferred.then_some(true),
        ..Default::default()
    })
}

/// The whole proposal as one WorkspaceEdit whose edits need the user's confirmation.
fn preview_edit(
    state: &State,
    uri: &Uri,
    path: &Path,
    id: &ProposalId,
    text: &str,
) -> Option<WorkspaceEdit> {
    let store = state.proposals.as_ref()?;
    let target = store.agent_view(path, text)?;
    let edits = ap::line_edits(text, &target)
        .iter()
        .map(|e| {
            OneOf::Right(AnnotatedTextEdit {
                text_edit: text_edit(text, e, state.encoding),
                annotation_id: ANNOTATION.to_owned(),
            })
        })
        .collect();
    let version = state.docs.find_by_path(path).map(|(_, d)| d.version);
    let mut annotations = HashMap::new();
    annotations.insert(
        ANNOTATION.to_owned(),
        ChangeAnnotation {
            label: format!("Agent proposal {id}"),
            needs_confirmation: Some(true),
            description: Some("Applying records the hunks as accepted.".into()),
        },
    );
    Some(WorkspaceEdit {
        document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier {
                uri: uri.clone(),
                version,
            },
            edits,
        }])),
        change_annotations: Some(annotations),
        ..Default::default()
    })
}

fn text_edit(text: &str, e: &ap::LineEdit, enc: crate::documents::Encoding) -> TextEdit {
    TextEdit {
        range: line_range(text, e.start_line, e.end_line, enc),
        new_text: e.new_text.clone(),
    }
}

/// `airlock/resolve`: the opted-in client's accept/reject, possibly with edited text.
pub fn resolve(state: &mut State, params: ext::ResolveParams) -> ResolveReply {
    let decision = match params.decision {
        ext::Decision::Accept => ap::Decision::Accept,
        ext::Decision::Reject => ap::Decision::Reject,
    };
    start_resolve(
        state,
        ProposalId(params.proposal),
        params.hunks,
        decision,
        params.reason,
        params.edited_text,
    )
}

/// Parses `[proposalId | fileUri, hunkIds?, reason?]` from an `airlock.*` command.
pub fn from_command(
    state: &mut State,
    args: &[Value],
    decision: ap::Decision,
    all: bool,
) -> ResolveReply {
    let target = args.first().and_then(Value::as_str).unwrap_or_default();
    let id = if target.starts_with("file:") {
        target
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.to_file_path().map(|p| p.into_owned()))
            .and_then(|p| {
                state
                    .proposals
                    .as_ref()?
                    .pending_for(&p)
                    .map(|p| p.id.clone())
            })
    } else {
        Some(ProposalId(target.to_owned()))
    };
    let Some(id) = id else {
        return ready(Err(jsonrpc::Error::invalid_params(format!(
            "no pending proposal for {target:?}"
        ))));
    };
    let hunks = if all {
        None
    } else {
        match args.get(1) {
            None | Some(Value::Null) => None,
            Some(v) => match serde_json::from_value::<Vec<u32>>(v.clone()) {
                Ok(h) => Some(h),
                Err(_) => {
                    return ready(Err(jsonrpc::Error::invalid_params(
                        "hunk ids must be an array of numbers",
                    )));
                }
            },
        }
    };
    let reason = args.get(2).and_then(Value::as_str).map(str::to_owned);
    start_resolve(state, id, hunks, decision, reason, None)
}

fn ready(result: jsonrpc::Result<Value>) -> ResolveReply {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(result);
    rx
}

fn invalid(err: impl std::fmt::Display) -> jsonrpc::Error {
    jsonrpc::Error::invalid_params(err.to_string())
}

/// Plans the decision, lands the new text (editor buffer or disk), then records it.
pub fn start_resolve(
    state: &mut State,
    id: ProposalId,
    hunks: Option<Vec<u32>>,
    decision: ap::Decision,
    reason: Option<String>,
    edited_text: Option<String>,
) -> ResolveReply {
    let (tx, rx) = oneshot::channel();
    let Some(store) = state.proposals.as_ref() else {
        let _ = tx.send(Err(invalid("no workspace is open")));
        return rx;
    };
    let Some(path) = store.get(&id).map(|p| p.path.clone()) else {
        let _ = tx.send(Err(invalid(ap::ProposalError::UnknownProposal { id })));
        return rx;
    };
    let (text, version) = match current_text(state, &path) {
        Ok(t) => t,
        Err(e) => {
            let _ = tx.send(Err(invalid(e)));
            return rx;
        }
    };
    let input = ap::ResolveInput {
        id,
        hunks,
        decision,
        reason,
        edited_text,
        current_text: text.clone().unwrap_or_default(),
        current_version: version,
    };
    let resolution = match state.proposals.as_ref().map(|s| s.plan(input)) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            let _ = tx.send(Err(invalid(e)));
            return rx;
        }
        None => return rx,
    };
    let Some(new_text) = resolution
        .new_text
        .clone()
        .filter(|_| !resolution.edits.is_empty())
    else {
        let _ = tx.send(finish(state, &resolution));
        return rx;
    };
    match state.docs.find_by_path(&path) {
        Some((uri, doc)) => {
            let current = text.unwrap_or_default();
            let edits = if doc.text == current {
                resolution
                    .edits
                    .iter()
                    .map(|e| OneOf::Left(text_edit(&current, e, state.encoding)))
                    .collect()
            } else {
                // The buffer stands for an empty new file ("\n"): replace all of it.
                let end = position_of(&doc.text, doc.text.len(), state.encoding);
                let range = Range {
                    start: Position::default(),
                    end,
                };
                vec![OneOf::Left(TextEdit {
                    range,
                    new_text: new_text.clone(),
                })]
            };
            let edit = WorkspaceEdit {
                document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier {
                        uri: uri.clone(),
                        version: Some(doc.version),
                    },
                    edits,
                }])),
                ..Default::default()
            };
            let resolving = resolution.proposal.id.clone();
            state.resolving.insert(resolving.clone());
            state.request_client(
                move |client| async move { client.apply_edit(edit).await },
                move |state, result| {
                    state.resolving.remove(&resolving);
                    let reply = match result {
                        Ok(r) if r.applied => finish(state, &resolution),
                        Ok(r) => Err(jsonrpc::Error::invalid_request_with(format!(
                            "the editor did not apply the change ({}); nothing was recorded, try again",
                            r.failure_reason.unwrap_or_else(|| "no reason given".into())
                        ))),
                        Err(e) => Err(jsonrpc::Error::invalid_request_with(format!(
                            "workspace/applyEdit failed ({}); nothing was recorded",
                            e.message
                        ))),
                    };
                    let _ = tx.send(reply);
                },
            );
        }
        None => {
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    ap::write_atomic(&path, new_text.as_bytes()).map_err(|e| e.to_string())
                });
            let reply = match written {
                Ok(()) => finish(state, &resolution),
                Err(e) => Err(jsonrpc::Error::invalid_request_with(format!(
                    "cannot write {}: {e}; nothing was recorded",
                    path.display()
                ))),
            };
            let _ = tx.send(reply);
        }
    }
    rx
}

trait ErrorExt {
    fn invalid_request_with(message: String) -> jsonrpc::Error;
}

impl ErrorExt for jsonrpc::Error {
    fn invalid_request_with(message: String) -> jsonrpc::Error {
        jsonrpc::Error {
            code: jsonrpc::ErrorCode::InvalidRequest,
            message: message.into(),
            data: None,
        }
    }
}

/// Records a resolution whose text has landed, then tells everyone: events, the agent, the editor.
fn finish(state: &mut State, resolution: &ap::Resolution) -> jsonrpc::Result<Value> {
    let store = state
        .proposals
        .as_mut()
        .ok_or_else(jsonrpc::Error::internal_error)?;
    store.commit(resolution).map_err(invalid)?;
    let outcome = &resolution.outcome;
    for hunk in &outcome.hunks {
        let (decision, reason) = match &hunk.result {
            ap::HunkResult::Accepted => ("accepted", None),
            ap::HunkResult::Edited { .. } => ("edited", None),
            ap::HunkResult::Rejected { reason } => ("rejected", reason.clone()),
            ap::HunkResult::Conflicted { reason } => ("conflicted", Some(reason.clone())),
        };
        let mut event = Event::new(EventKind::ProposalResolved, outcome.relative_path.clone())
            .decision(decision)
            .field("proposal", outcome.proposal.as_str())
            .field("hunk", hunk.id);
        if let Some(reason) = reason {
            event = event.field("reason", reason);
        }
        state.emit(event);
    }
    crate::handlers::agent::queue_outcome(state, outcome.summary());
    crate::handlers::shadow::on_resolved(state, &resolution.proposal);
    let event = if resolution.proposal.state == ap::ProposalState::Pending {
        ext::ProposalEvent::Updated
    } else {
        ext::ProposalEvent::Resolved
    };
    notify_proposal(state, &resolution.proposal, event);
    publish_path(state, &resolution.proposal.path);
    crate::handlers::agent::send_status(state);
    serde_json::to_value(outcome)
        .map(|mut v| {
            v["summary"] = Value::String(outcome.summary());
            v
        })
        .map_err(|_| jsonrpc::Error::internal_error())
}

/// Counts for `airlock/status`: (pending proposals, open hunks).
pub fn pending_counts(state: &State) -> (usize, usize) {
    state.proposals.as_ref().map_or((0, 0), |store| {
        let list = store.list();
        (
            list.len(),
            list.iter().map(|p| p.open_hunks().count()).sum(),
        )
    })
}
