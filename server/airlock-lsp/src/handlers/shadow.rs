//! `agent.isolation = "shadow"`: the agent process writes to disk itself, into a shadow
//! workspace, and what it writes becomes proposals (docs/security.md, "Shadow workspace").
//!
//! The shadow is built by `airlock exec` (`airlock_sandbox::shadow`): an overlayfs over the
//! workspace path (`overlay`), a copy bind-mounted there (`copy-bind`), or, without user
//! namespaces, a copy the agent runs in at its own path (`copy`). This module:
//! - picks the mode and prepares the directories (in the server's state dir, outside the
//!   workspace), and turns the sandboxed agent command into a shadow one;
//! - watches the shadow (inotify on the upper dir or the copy) and sweeps it after each burst of
//!   changes, at every tool-call completion and at the end of each turn — a sweep, not the event
//!   stream, decides what changed, so temp-file-then-rename edits are seen as edits of the
//!   target;
//! - turns each changed file into a proposal in the same store as `fs/write_text_file` ones,
//!   attributed to the tool call whose `session/update` carried a diff for that path;
//! - after a proposal is resolved, writes the file's resulting text (accepted parts and all)
//!   back into the shadow, so the agent sees the outcome; before each prompt, copies the user's
//!   own edits into the shadow for files the agent touched (overlay) or for every file (copies).
//!
//! Guarantees: nothing here writes the real workspace (only the proposal apply path does); a
//! shadow change is proposed once per distinct content; the user's newer text is never proposed
//! away (a file is only proposed when the *shadow* changed since the last sweep).
//!
//! Writes into an overlay while it is mounted go *through the mount*
//! (`/proc/<agent pid>/root/<workspace>/…`), never into the upper dir behind its back: overlayfs
//! leaves changes to its layers while mounted undefined. With no agent running nothing is
//! mounted and the upper dir is written directly.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_sandbox::shadow::{self as sh, Entry, Stamp};
use tower_lsp_server::ls_types::MessageType;

use crate::handlers::proposals;
use crate::main_loop::State;
use crate::shadow_watch::{self, Dirty};

/// Top-level dirs whose changes are never proposed: git's own files change with every command
/// the agent runs, and build output and dependencies are not edits (in an overlay the agent may
/// build into them; a copy leaves them out or links them read-only).
const NOT_PROPOSED: &[&str] = &[".git", "target", "node_modules"];

/// How the shadow is built.
pub use airlock_sandbox::shadow::ShadowKind as Mode;

#[derive(Default)]
pub struct ShadowState {
    active: Option<Active>,
}

impl ShadowState {
    /// The mode in use, once an agent was started in shadow mode.
    pub fn mode(&self) -> Option<Mode> {
        self.active.as_ref().map(|a| a.mode)
    }
}

struct Active {
    mode: Mode,
    /// The real workspace.
    root: PathBuf,
    /// overlay: the upper dir; copies: the copy.
    layer: PathBuf,
    /// Where the agent sees the workspace (the copy in `copy` mode, else `root`).
    agent_root: PathBuf,
    /// The agent process (`airlock exec`, which holds the overlay's mount namespace).
    pid: Option<u32>,
    /// copies: fingerprints of the copy and of the real files when they were last in sync.
    copy_base: BTreeMap<PathBuf, Stamp>,
    real_base: BTreeMap<PathBuf, Stamp>,
    /// Shadow content (hash) of each path as of the last sweep that looked at it.
    seen: HashMap<PathBuf, u64>,
    /// Shadow content (hash) last turned into a proposal, per path.
    proposed: HashMap<PathBuf, u64>,
    /// Real path → the tool call whose update carried a diff for it.
    tool_calls: HashMap<PathBuf, String>,
    watcher_stop: Option<Arc<AtomicBool>>,
    sweep_scheduled: Arc<AtomicBool>,
    /// What the watcher saw change since the last sweep.
    dirty: Arc<std::sync::Mutex<Dirty>>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(stop) = &self.watcher_stop {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

fn hash_entry(e: &Entry) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match e {
        Entry::File(b) => {
            0u8.hash(&mut h);
            b.hash(&mut h);
        }
        Entry::Missing => 1u8.hash(&mut h),
        Entry::Other => 2u8.hash(&mut h),
    }
    h.finish()
}

/// Whether the shadow for `root` is ready (prepared in this server run).
pub fn ready(state: &State, root: &Path) -> bool {
    state.shadow.active.as_ref().is_some_and(|a| a.root == root)
}

/// Prepares the shadow for `root` on a blocking thread (a copy of a big workspace takes
/// seconds; the state task must not wait for it), then runs `then` on the state task.
pub fn prepare(
    state: &mut State,
    root: PathBuf,
    then: impl FnOnce(&mut State, Result<(), String>) + Send + 'static,
) {
    let dir = state
        .config
        .state_dir
        .join("shadow")
        .join(airlock_proposals::workspace_key(&root));
    let handle = state.handle.clone();
    tokio::task::spawn_blocking(move || {
        let built = build(&root, &dir);
        handle.notify(move |state| match built {
            Ok(active) => {
                state.shadow.active = Some(active);
                then(state, Ok(()));
            }
            Err(e) => then(state, Err(e)),
        });
    });
}

/// Picks the mode and builds the shadow's directories (and the copy, in the copy modes).
fn build(root: &Path, dir: &Path) -> Result<Active, String> {
    // A shadow left by an earlier server run is stale: the agent starts from the real files.
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| format!("cannot clear the old shadow {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the shadow dir {}: {e}", dir.display()))?;
    // The copy holds the workspace's files (deny-read ones too) and the agent's writes: only
    // the user may look.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict the shadow dir {}: {e}", dir.display()))?;
    let started = std::time::Instant::now();
    let mode = match sh::pick(&dir.join("probe")) {
        // overlayfs can't take these paths in its options: fall back to a copy.
        Mode::Overlay if !sh::overlay_path_ok(root) || !sh::overlay_path_ok(dir) => Mode::CopyBind,
        mode => mode,
    };
    let (layer, copy_base, real_base) = match mode {
        Mode::Overlay => {
            let upper = dir.join("upper");
            for d in [&upper, &dir.join("work")] {
                std::fs::create_dir_all(d)
                    .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            }
            (upper, BTreeMap::new(), BTreeMap::new())
        }
        Mode::CopyBind | Mode::Copy => {
            let copy = dir.join("copy");
            let stats = sh::create_copy(root, &copy)
                .map_err(|e| format!("cannot copy the workspace for the shadow: {e}"))?;
            tracing::info!(?stats, "shadow copy created");
            if mode == Mode::Copy {
                // The skipped dirs stay readable through links to the real ones (the
                // sandbox grants them read-only, see `wrap`).
                for d in sh::COPY_SKIPPED_DIRS {
                    if root.join(d).is_dir() {
                        let _ = std::os::unix::fs::symlink(root.join(d), copy.join(d));
                    }
                }
            }
            let copy_base = sh::stamps(&copy);
            let real_base = sh::stamps(root);
            (copy, copy_base, real_base)
        }
    };
    tracing::info!(mode = mode.as_str(), elapsed = ?started.elapsed(), "shadow prepared");
    let agent_root = if mode == Mode::Copy {
        layer.clone()
    } else {
        root.to_path_buf()
    };
    Ok(Active {
        mode,
        root: root.to_path_buf(),
        layer,
        agent_root,
        pid: None,
        copy_base,
        real_base,
        seen: HashMap::new(),
        proposed: HashMap::new(),
        tool_calls: HashMap::new(),
        watcher_stop: None,
        sweep_scheduled: Arc::new(AtomicBool::new(false)),
        dirty: Default::default(),
    })
}

/// Rewrites the sandboxed agent command (`airlock exec … --read-only-workspace … -- AGENT`) to
/// run over the shadow prepared by [`prepare`]. Returns the command and the directory the agent
/// starts in (and opens its session at).
pub fn wrap(
    state: &mut State,
    root: &Path,
    mut command: Vec<String>,
) -> Result<(Vec<String>, PathBuf), String> {
    if !ready(state, root) {
        return Err("internal: the shadow workspace was not prepared".into());
    }
    let Some(active) = state.shadow.active.as_ref() else {
        return Err("shadow state missing".into());
    };
    let Some(at) = command.iter().position(|a| a == "--read-only-workspace") else {
        return Err("internal: the agent command has no --read-only-workspace to replace".into());
    };
    let dir = active
        .layer
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let flags: Vec<String> = match active.mode {
        Mode::Overlay => vec![
            "--shadow-upper".into(),
            active.layer.display().to_string(),
            "--shadow-work".into(),
            dir.join("work").display().to_string(),
        ],
        Mode::CopyBind => vec!["--shadow-copy".into(), active.layer.display().to_string()],
        Mode::Copy => {
            // The copy is the agent's workspace; the real skipped dirs are readable only.
            if let Some(ws) = command.iter().position(|a| a == "--workspace") {
                command[ws + 1] = active.layer.display().to_string();
            }
            let mut f = Vec::new();
            for d in sh::COPY_SKIPPED_DIRS {
                if root.join(d).is_dir() {
                    f.push("--allow-read".into());
                    f.push(root.join(d).display().to_string());
                }
            }
            f
        }
    };
    command.splice(at..=at, flags);
    Ok((command, active.agent_root.clone()))
}

/// The agent process started: remember its pid (for writes through the overlay) and watch.
pub fn on_started(state: &mut State, pid: Option<u32>) {
    let handle = state.handle.clone();
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    active.pid = pid;
    if active.watcher_stop.is_none() {
        let stop = Arc::new(AtomicBool::new(false));
        let scheduled = active.sweep_scheduled.clone();
        // A burst of events schedules one sweep on the state task.
        let fire = move || {
            if !scheduled.swap(true, Ordering::Relaxed) {
                handle.notify(sweep_dirty);
            }
        };
        let watched = shadow_watch::watch(
            active.layer.clone(),
            NOT_PROPOSED,
            active.dirty.clone(),
            stop.clone(),
            fire,
        );
        match watched {
            Ok(()) => active.watcher_stop = Some(stop),
            Err(e) => tracing::warn!(
                "cannot watch the shadow ({e}); its changes are picked up at tool-call ends and turn ends"
            ),
        }
    }
}

/// The agent is gone: nothing is mounted any more.
pub fn on_exited(state: &mut State) {
    if let Some(active) = state.shadow.active.as_mut() {
        active.pid = None;
    }
}

/// Tool-call updates: a diff names the path a tool call edits (attribution); a finished tool
/// call triggers a sweep (its writes, renames included, are complete).
pub fn on_update(state: &mut State, update: &airlock_acp::AgentUpdate) {
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    let Some(call) = &update.tool_call else {
        return;
    };
    // The paths a tool call's diffs name: v1's whole-file diff, v2's `changes` (both sides of
    // a move or copy). They only attribute; the proposal's text always comes from what the
    // shadow holds, so a diff for a path that did not change there proposes nothing.
    let mut paths = Vec::new();
    for content in &call.content {
        match content {
            airlock_acp::ToolContent::Diff { path, .. } => paths.push(path.clone()),
            airlock_acp::ToolContent::Changes { changes, .. } => {
                for change in changes {
                    paths.push(change.path.clone());
                    paths.extend(change.old_path.clone());
                }
            }
            _ => {}
        }
    }
    let mut named = Vec::new();
    for path in paths {
        let real = to_real(active, &path);
        active.tool_calls.insert(real.clone(), call.id.clone());
        named.push(real);
    }
    for real in named {
        attribute_late(state, &real, &call.id);
    }
    if matches!(call.status.as_deref(), Some("completed" | "failed")) {
        sweep(state);
    }
}

/// The watcher can see a write before the `session/update` announcing it arrives (they travel
/// separately): a pending proposal made from the shadow without a tool call is then proposed
/// again, attributed (it supersedes the first one), if the shadow still has what it proposed.
fn attribute_late(state: &mut State, real: &Path, tool_call: &str) {
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let Ok(rel) = real.strip_prefix(&active.root).map(Path::to_path_buf) else {
        return;
    };
    let Some(&proposed) = active.proposed.get(&rel) else {
        return;
    };
    let unattributed = state
        .proposals
        .as_ref()
        .and_then(|s| s.pending_for(real))
        .is_some_and(|p| p.origin.tool_call.is_none());
    if !unattributed {
        return;
    }
    let entry = shadow_entry(active, &rel);
    if hash_entry(&entry) != proposed {
        return;
    }
    let Entry::File(bytes) = entry else {
        return;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return;
    };
    let origin = airlock_proposals::Origin {
        session: Some(state.session.clone()),
        tool_call: Some(tool_call.to_owned()),
    };
    if let Err(e) = proposals::propose(state, real, text, origin, false) {
        tracing::debug!("late attribution of {}: {e}", real.display());
    }
}

/// The agent's path for a file → the real path.
fn to_real(active: &Active, path: &Path) -> PathBuf {
    match path.strip_prefix(&active.agent_root) {
        Ok(rel) => active.root.join(rel),
        Err(_) => path.to_path_buf(),
    }
}

/// What the shadow now has at each path that may differ from the real workspace.
fn changed_entries(active: &Active) -> BTreeMap<PathBuf, Entry> {
    match active.mode {
        Mode::Overlay => {
            let mut out = sh::overlay_changes(&active.layer, &active.root, NOT_PROPOSED);
            // A file that never existed below and was renamed or removed away leaves no trace
            // in the upper dir (no whiteout): what the agent sees there is the lower layer.
            for rel in active.seen.keys() {
                if !out.contains_key(rel) {
                    out.insert(rel.clone(), sh::read_entry(&active.root.join(rel)));
                }
            }
            out
        }
        Mode::CopyBind | Mode::Copy => {
            let now = sh::stamps(&active.layer);
            let mut out = BTreeMap::new();
            for (rel, stamp) in &now {
                if active.copy_base.get(rel) != Some(stamp) {
                    out.insert(rel.clone(), sh::read_entry(&active.layer.join(rel)));
                }
            }
            // Gone since the baseline, or since a sweep saw it (a temp file renamed away).
            for rel in active.copy_base.keys().chain(active.seen.keys()) {
                if !now.contains_key(rel) {
                    out.insert(rel.clone(), Entry::Missing);
                }
            }
            out
        }
    }
}

/// Looks at the whole shadow and proposes every file whose shadow content changed since the
/// last sweep (turn ends, tool-call ends; the watcher's sweeps when its events say to).
pub fn sweep(state: &mut State) {
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    active.sweep_scheduled.store(false, Ordering::Relaxed);
    if let Ok(mut d) = active.dirty.lock() {
        *d = Dirty::default();
    }
    let changes = changed_entries(active);
    process(state, changes);
}

/// The watcher's sweep: only the paths its events named, where that is enough (a copy of a big
/// workspace costs a walk of every file otherwise; an overlay's upper dir holds only changes, so
/// it is always walked whole).
fn sweep_dirty(state: &mut State) {
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    let dirty = active
        .dirty
        .lock()
        .map(|mut d| std::mem::take(&mut *d))
        .unwrap_or(Dirty {
            full: true,
            ..Dirty::default()
        });
    if active.mode == Mode::Overlay || dirty.full {
        return sweep(state);
    }
    active.sweep_scheduled.store(false, Ordering::Relaxed);
    let mut changes = BTreeMap::new();
    for rel in dirty.paths {
        if rel
            .components()
            .next()
            .is_some_and(|c| NOT_PROPOSED.iter().any(|d| c.as_os_str() == *d))
        {
            continue;
        }
        let path = active.layer.join(&rel);
        match Stamp::of(&path) {
            Some(stamp) if active.copy_base.get(&rel) != Some(&stamp) => {
                changes.insert(rel, sh::read_entry(&path));
            }
            Some(_) => {}
            None if active.copy_base.contains_key(&rel) || active.seen.contains_key(&rel) => {
                changes.insert(rel, Entry::Missing);
            }
            None => {}
        }
    }
    process(state, changes);
}

/// Proposes the entries whose content differs from what the last sweep saw.
fn process(state: &mut State, changes: BTreeMap<PathBuf, Entry>) {
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    let mut fresh = Vec::new();
    for (rel, entry) in changes {
        let h = hash_entry(&entry);
        if active.seen.get(&rel) == Some(&h) {
            continue;
        }
        active.seen.insert(rel.clone(), h);
        fresh.push((rel, entry, h));
    }
    for (rel, entry, h) in fresh {
        propose_change(state, &rel, entry, h);
    }
}

fn propose_change(state: &mut State, rel: &Path, entry: Entry, h: u64) {
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let real = active.root.join(rel);
    let tool_call = active.tool_calls.get(&real).cloned();
    let shown = rel.display().to_string();
    let text = match entry {
        // An empty new file (often a temp file caught between create and write) has no hunk
        // to preview; its content, once written, is proposed.
        Entry::File(bytes) if bytes.is_empty() && !real.exists() => return,
        Entry::File(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return note(
                    state,
                    format!(
                        "the agent wrote {shown}, which is not UTF-8 text; it is not previewed"
                    ),
                );
            }
        },
        Entry::Missing => {
            // A deletion is previewed as removing every line; accepting all of it removes
            // the file (see `on_resolved`).
            match proposals::current_text(state, &real) {
                Ok((Some(t), _)) if !t.is_empty() => {}
                Ok((Some(_), _)) => {
                    return note(
                        state,
                        format!(
                            "the agent deleted the empty file {shown} in its shadow; delete it yourself if you agree"
                        ),
                    );
                }
                Ok((None, _)) => return withdraw(state, rel, &real),
                Err(_) => return,
            }
            let origin = airlock_proposals::Origin {
                session: Some(state.session.clone()),
                tool_call,
            };
            match proposals::propose(state, &real, String::new(), origin, true) {
                Ok(_) => {
                    if let Some(active) = state.shadow.active.as_mut() {
                        active.proposed.insert(rel.to_path_buf(), h);
                    }
                }
                Err(e) => note(
                    state,
                    format!("the agent's deletion of {shown} cannot be previewed: {e}"),
                ),
            }
            return;
        }
        Entry::Other => return,
    };
    let current = proposals::current_text(state, &real)
        .ok()
        .and_then(|(t, _)| t);
    if current.as_deref() == Some(text.as_str()) {
        return;
    }
    let origin = airlock_proposals::Origin {
        session: Some(state.session.clone()),
        tool_call,
    };
    match proposals::propose(state, &real, text, origin, false) {
        Ok(_) => {
            if let Some(active) = state.shadow.active.as_mut() {
                active.proposed.insert(rel.to_path_buf(), h);
            }
        }
        Err(e) => note(
            state,
            format!("the agent's change to {shown} cannot be previewed: {e}"),
        ),
    }
}

/// A file the agent created and removed again (a temp file caught by a sweep before its
/// rename): its new-file proposal is withdrawn (rejected with a reason saying so).
fn withdraw(state: &mut State, rel: &Path, real: &Path) {
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    if active.proposed.remove(rel).is_none() {
        return;
    }
    let Some(id) = state
        .proposals
        .as_ref()
        .and_then(|s| s.pending_for(real))
        .filter(|p| p.is_new_file)
        .map(|p| p.id.as_str().to_owned())
    else {
        return;
    };
    // The reply only reports the outcome, which the editor learns from `airlock/proposal`.
    drop(proposals::resolve(
        state,
        crate::ext::ResolveParams {
            proposal: id,
            hunks: None,
            decision: crate::ext::Decision::Reject,
            reason: Some("withdrawn: the agent removed the file again".into()),
            edited_text: None,
        },
    ));
}

fn note(state: &State, message: String) {
    tracing::warn!("{message}");
    if let Some(out) = state.out() {
        out.log(MessageType::WARNING, format!("airlock: {message}"));
    }
}

/// After a proposal from the shadow is resolved: the shadow gets the file's resulting text, so
/// the agent sees what was accepted and what was rejected. Skipped if the agent wrote the file
/// again since (its newer content is proposed on its own).
pub fn on_resolved(state: &mut State, proposal: &airlock_proposals::Proposal) {
    if proposal.state != airlock_proposals::ProposalState::Resolved {
        return;
    }
    // Before the shadow checks: a deletion resolved after a restart (no shadow yet) still
    // removes the file.
    if proposal.deletes_file {
        finish_deletion(state, proposal, &proposal.path);
    }
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let Ok(rel) = proposal
        .path
        .strip_prefix(&active.root)
        .map(Path::to_path_buf)
    else {
        return;
    };
    let Some(&proposed) = active.proposed.get(&rel) else {
        return;
    };
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let now = shadow_entry(active, &rel);
    if hash_entry(&now) != proposed {
        return;
    }
    sync_from_real(state, &rel);
    if let Some(active) = state.shadow.active.as_mut() {
        active.proposed.remove(&rel);
    }
}

/// A deletion proposal was resolved: if every hunk was accepted and the file is now empty on
/// disk (the apply path emptied it) and not open in the editor, remove it.
fn finish_deletion(state: &mut State, proposal: &airlock_proposals::Proposal, real: &Path) {
    let all_accepted = proposal
        .hunks
        .iter()
        .all(|h| h.status == airlock_proposals::HunkStatus::Accepted);
    if !all_accepted {
        return;
    }
    let shown = proposals::relative(state, real);
    if state.docs.find_by_path(real).is_some() {
        return note(
            state,
            format!(
                "{shown} was emptied as the agent deleted it; it is open in the editor, so delete the file yourself"
            ),
        );
    }
    let empty = std::fs::metadata(real).is_ok_and(|m| m.is_file() && m.len() == 0);
    if !empty {
        return;
    }
    match std::fs::remove_file(real) {
        Ok(()) => tracing::info!(path = %shown, "deleted on accept of the agent's deletion"),
        Err(e) => note(state, format!("cannot delete {shown}: {e}")),
    }
}

/// Before each prompt: the user's edits reach the shadow, so the agent works on current text.
pub fn before_prompt(state: &mut State) {
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let pending: std::collections::HashSet<PathBuf> = state
        .proposals
        .as_ref()
        .map(|s| s.list().iter().map(|p| p.path.clone()).collect())
        .unwrap_or_default();
    let mut to_sync: Vec<PathBuf> = Vec::new();
    // Files the agent touched (in the upper dir / changed in the copy), with nothing pending
    // and not changed by the agent since the last sweep.
    for (rel, entry) in changed_entries(active) {
        if pending.contains(&active.root.join(&rel)) {
            continue;
        }
        if matches!(entry, Entry::File(_)) && active.seen.get(&rel) == Some(&hash_entry(&entry)) {
            to_sync.push(rel);
        }
    }
    if matches!(active.mode, Mode::Copy | Mode::CopyBind) {
        // Untouched files of a copy: follow the real ones (overlay does this by itself).
        let real_now = sh::stamps(&active.root);
        let copy_now = sh::stamps(&active.layer);
        let mut untouched = Vec::new();
        for (rel, stamp) in &real_now {
            if active.real_base.get(rel) != Some(stamp)
                && copy_now.get(rel) == active.copy_base.get(rel)
            {
                untouched.push(rel.clone());
            }
        }
        for rel in active.real_base.keys() {
            if !real_now.contains_key(rel) && copy_now.get(rel) == active.copy_base.get(rel) {
                untouched.push(rel.clone());
            }
        }
        to_sync.extend(untouched);
    }
    for rel in to_sync {
        sync_from_real(state, &rel);
    }
}

/// What the shadow has at `rel`, read from the server's side.
fn shadow_entry(active: &Active, rel: &Path) -> Entry {
    match active.mode {
        Mode::Overlay => {
            match sh::overlay_changes(&active.layer, &active.root, NOT_PROPOSED).remove(rel) {
                Some(e) => e,
                None => sh::read_entry(&active.root.join(rel)),
            }
        }
        Mode::CopyBind | Mode::Copy => sh::read_entry(&active.layer.join(rel)),
    }
}

/// Makes the shadow's `rel` equal to the user's current text (buffer, else disk; removed if the
/// file is gone), and records that as seen so it is not proposed back.
fn sync_from_real(state: &mut State, rel: &Path) {
    let Some(active) = state.shadow.active.as_ref() else {
        return;
    };
    let real = active.root.join(rel);
    let text = match proposals::current_text(state, &real) {
        Ok((t, _)) => t,
        Err(_) => return,
    };
    let now = shadow_entry(active, rel);
    let wanted = match &text {
        Some(t) => Entry::File(t.as_bytes().to_vec()),
        None => Entry::Missing,
    };
    if now == wanted {
        return;
    }
    let result = write_shadow(active, rel, text.as_deref());
    let Some(active) = state.shadow.active.as_mut() else {
        return;
    };
    match result {
        Ok(()) => {
            active.seen.insert(rel.to_path_buf(), hash_entry(&wanted));
            if matches!(active.mode, Mode::CopyBind | Mode::Copy) {
                if let Some(s) = Stamp::of(&active.layer.join(rel)) {
                    active.copy_base.insert(rel.to_path_buf(), s);
                } else {
                    active.copy_base.remove(rel);
                }
                if let Some(s) = Stamp::of(&real) {
                    active.real_base.insert(rel.to_path_buf(), s);
                } else {
                    active.real_base.remove(rel);
                }
            }
        }
        Err(e) => {
            let message = format!("cannot update {} in the agent's shadow: {e}", rel.display());
            note(state, message);
        }
    }
}

/// Writes (or removes) one file of the shadow, atomically (temp file + rename in its dir).
fn write_shadow(active: &Active, rel: &Path, text: Option<&str>) -> std::io::Result<()> {
    let base = match (active.mode, active.pid) {
        // Through the mount, in the agent's namespace (see the module doc).
        (Mode::Overlay, Some(pid)) => {
            let via = PathBuf::from(format!("/proc/{pid}/root")).join(
                active
                    .root
                    .strip_prefix("/")
                    .unwrap_or(active.root.as_path()),
            );
            if !via.is_dir() {
                // Writing the upper dir behind the mounted overlay's back is undefined.
                return Err(std::io::Error::other(format!(
                    "cannot reach the agent's mount namespace at {}",
                    via.display()
                )));
            }
            via
        }
        _ => active.layer.clone(),
    };
    let target = base.join(rel);
    tracing::debug!(target = %target.display(), "writing into the shadow");
    match text {
        None => match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Some(text) => {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = target.with_file_name(format!(".{name}.airlock-tmp"));
            std::fs::write(&tmp, text)?;
            if let Ok(meta) = std::fs::metadata(active.root.join(rel)) {
                let _ = std::fs::set_permissions(&tmp, meta.permissions());
            }
            std::fs::rename(&tmp, &target)
        }
    }
}
