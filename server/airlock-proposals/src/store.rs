//! The proposal store: create, stack, resolve, rebase and persist proposals.
//!
//! Guarantees:
//! - Every state change is made in memory at once and queued to the store's background writer
//!   (`persist.rs`); it is on disk once [`Store::flush`] returns or a callback registered with
//!   [`Store::on_persisted`] after the change runs. Callers acknowledge a change to anyone
//!   outside (e.g. the agent's write call) only then, so a `kill -9` at any moment loses no
//!   proposal anyone was told is recorded, and leaves no torn state file (atomic writes, in an
//!   order that keeps every prefix of a batch loadable).
//! - Base texts are stored once per content (`bases/<sha256>`), so a proposal record only
//!   holds its hunks; a base file is removed once no pending proposal refers to it.
//! - `resolve` never produces text that overwrites a line the user changed after the proposal
//!   was made: such hunks become `conflicted` instead.
//! - At most one pending proposal exists per file: a new one supersedes the previous one (see
//!   `docs/proposals.md`, "Stacking").
//!
//! The store is a plain value with `&mut self` methods; the LSP layer owns it in its single
//! state task, so no locking is needed here.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diff::{Placement, changes, place, splice};
use crate::error::{ProposalError, Result};
use crate::fsio::TEMP_MARKER;
use crate::outcome::{HunkOutcome, HunkResult, Outcome};
use crate::path::resolve_in_workspace;
use crate::persist::{Class, Content, Writer};
use crate::text::{Limits, check_text, hash_text, split_lines};
use crate::types::{
    Hunk, HunkStatus, LineEdit, Origin, Proposal, ProposalId, ProposalState, count_lines,
};

/// Version of the on-disk format; bumped on incompatible changes. Format 1 kept the base text
/// inside each proposal file; format 2 names it by hash in `bases/`. Both are read.
const FORMAT: u32 = 2;
/// How many resolved proposals `get` still knows about.
const RESOLVED_KEPT: usize = 256;

/// What the agent bridge passes to [`Store::propose`].
#[derive(Debug, Clone)]
pub struct ProposeInput {
    /// Absolute, or relative to the workspace root.
    pub path: PathBuf,
    /// Current content: the open buffer if the editor has the file open, else the disk.
    /// Empty for a new file.
    pub base_text: String,
    /// Editor version of `base_text`, when it came from an open buffer.
    pub base_version: Option<i32>,
    pub is_new_file: bool,
    /// The full content the agent wants the file to have.
    pub new_text: String,
    pub origin: Origin,
}

/// The user's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    Accept,
    Reject,
}

/// What the LSP layer passes to [`Store::resolve`].
#[derive(Debug, Clone)]
pub struct ResolveInput {
    pub id: ProposalId,
    /// Hunk ids to decide; `None` means every open hunk of the proposal.
    pub hunks: Option<Vec<u32>>,
    pub decision: Decision,
    /// The user's reason (shown to the agent), mostly for rejections.
    pub reason: Option<String>,
    /// The user's edited version of the proposed text: of the single hunk in `hunks`, or,
    /// with `hunks: None`, of the whole file as previewed (base + all pending hunks).
    pub edited_text: Option<String>,
    /// The file's content now (open buffer, else disk).
    pub current_text: String,
    pub current_version: Option<i32>,
}

/// Result of [`Store::resolve`].
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The proposal after the decision (state `Resolved` when nothing is left open).
    pub proposal: Proposal,
    /// The file's new full content, when anything was accepted.
    pub new_text: Option<String>,
    /// Line edits turning `current_text` into `new_text`, sorted, non-overlapping.
    pub edits: Vec<LineEdit>,
    pub outcome: Outcome,
    commit: Commit,
}

/// What [`Store::commit`] needs to record a planned resolution.
#[derive(Debug, Clone)]
struct Commit {
    key: u64,
    /// The record's revision the plan was computed from.
    revision: u64,
    record: Record,
}

/// Where one open hunk is in a text the user may have edited since the proposal was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HunkView {
    pub id: u32,
    /// `Pending` (still applies), `Conflicted` (the user changed its lines) or `Accepted`
    /// (the text already contains exactly its result).
    pub status: HunkStatus,
    /// Lines `start_line..end_line` of the given text (end exclusive; equal for insertions).
    pub start_line: u32,
    pub end_line: u32,
}

#[derive(Debug, Clone)]
struct Record {
    proposal: Proposal,
    /// The text the pending hunks' line numbers refer to.
    base_text: String,
    /// Bumped by every commit, so a plan made before another commit is refused.
    revision: u64,
}

/// A proposal file (`proposals/p-N.json`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    format: u32,
    proposal: Proposal,
    /// Format 1 only: the base text inline. Format 2 finds it in `bases/<base hash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_text: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    format: u32,
    next_id: u64,
}

/// Options for [`Store::open_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    pub limits: Limits,
    /// fsync every state write (default). Without it, state survives a killed server
    /// (`kill -9`) but not a power loss; it saves a few milliseconds per persisted change on
    /// slow disks (see docs/benchmarks.md).
    pub durable: bool,
    /// How long `open` waits for another server of the same workspace to let go of the
    /// state before failing with [`ProposalError::Locked`] (default 2 s).
    pub lock_wait: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            limits: Limits::default(),
            durable: true,
            lock_wait: std::time::Duration::from_secs(2),
        }
    }
}

/// Pending proposals of one workspace, persisted under a state dir.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    dir: PathBuf,
    bases_dir: PathBuf,
    meta_path: PathBuf,
    /// Declared before `_lock`: dropping the store first writes what is queued, then unlocks.
    writer: Writer,
    /// Held for the store's lifetime (flock); released by the OS if the process dies.
    _lock: std::fs::File,
    limits: Limits,
    pending: BTreeMap<u64, Record>,
    /// How many pending records use each base text (by hash); a base file exists (or is
    /// queued) exactly for the hashes in here.
    base_refs: HashMap<String, usize>,
    resolved: VecDeque<Proposal>,
    next_id: u64,
    warnings: Vec<String>,
}

impl Store {
    /// Opens (creating if needed) the store for the workspace at `workspace_root`, loading
    /// its persisted pending proposals. State lives in `state_dir/<workspace_key(root)>/`,
    /// so one state dir serves many workspaces. Fails with [`ProposalError::Locked`] while
    /// another live store (another server process) has the same workspace open.
    pub fn open(state_dir: &Path, workspace_root: &Path) -> Result<Store> {
        Self::open_with(state_dir, workspace_root, StoreOptions::default())
    }

    /// [`Store::open`] with non-default options.
    pub fn open_with(
        state_dir: &Path,
        workspace_root: &Path,
        options: StoreOptions,
    ) -> Result<Store> {
        let StoreOptions {
            limits, durable, ..
        } = options;
        let root = std::fs::canonicalize(workspace_root)
            .map_err(|e| ProposalError::io("resolve workspace root", workspace_root, e))?;
        // Namespaced by workspace so that servers for different workspaces can share one
        // state dir; the lock keeps two servers of the same workspace from interleaving.
        let base = state_dir.join(workspace_key(&root));
        let dir = base.join("proposals");
        let bases_dir = base.join("bases");
        for d in [&dir, &bases_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| ProposalError::io("create state directory", d, e))?;
        }
        let lock = crate::fsio::lock_exclusive(&base.join("lock"), options.lock_wait)?;
        let writer = Writer::start(durable, base.join("resolved.jsonl"))?;
        let mut store = Store {
            root,
            meta_path: base.join("meta.json"),
            dir,
            bases_dir,
            writer,
            _lock: lock,
            limits,
            pending: BTreeMap::new(),
            base_refs: HashMap::new(),
            resolved: VecDeque::new(),
            next_id: 1,
            warnings: Vec::new(),
        };
        store.load()?;
        Ok(store)
    }

    fn load(&mut self) -> Result<()> {
        match std::fs::read(&self.meta_path) {
            Ok(bytes) => match serde_json::from_slice::<Meta>(&bytes) {
                Ok(meta) => self.next_id = self.next_id.max(meta.next_id),
                Err(e) => self.warnings.push(format!(
                    "ignoring unreadable {}: {e}",
                    self.meta_path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ProposalError::io("read", &self.meta_path, e)),
        }
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| ProposalError::io("list state directory", &self.dir, e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| ProposalError::io("list state directory", &self.dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(TEMP_MARKER) {
                // A write that was interrupted before its rename; the previous version of
                // the file (if any) is intact.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| ProposalError::io("read", &path, e))
                .map(|bytes| serde_json::from_slice::<Persisted>(&bytes));
            let parsed = match parsed? {
                Ok(p) if p.format == 1 || p.format == FORMAT => {
                    let base = match p.base_text {
                        Some(text) => Ok(text),
                        None => self.read_base(&p.proposal.base_hash),
                    };
                    base.map(|base_text| Record {
                        proposal: p.proposal,
                        base_text,
                        revision: 0,
                    })
                }
                Ok(p) => {
                    self.warnings.push(format!(
                        "skipping {}: unknown format {}",
                        path.display(),
                        p.format
                    ));
                    continue;
                }
                Err(e) => Err(e.to_string()),
            };
            let record = match parsed {
                Ok(record) => record,
                Err(e) => {
                    // Cannot come from our own atomic writes; keep the bytes for a human.
                    let aside = path.with_extension("json.corrupt");
                    let _ = std::fs::rename(&path, &aside);
                    self.warnings.push(format!(
                        "moved unreadable proposal file {} to {}: {e}",
                        path.display(),
                        aside.display()
                    ));
                    continue;
                }
            };
            let Some(n) = record.proposal.id.number() else {
                self.warnings
                    .push(format!("skipping {}: bad proposal id", path.display()));
                continue;
            };
            self.next_id = self.next_id.max(n + 1);
            if record.proposal.path.starts_with(&self.root) {
                self.pending.insert(n, record);
            }
        }
        // Bases: count the users; rewrite any that a format-1 file kept inline; delete the
        // ones nobody uses (left by a crash between a proposal's removal and its base's).
        for rec in self.pending.values() {
            *self
                .base_refs
                .entry(rec.proposal.base_hash.clone())
                .or_default() += 1;
        }
        for rec in self.pending.values() {
            let file = self.bases_dir.join(&rec.proposal.base_hash);
            if !file.exists() {
                self.writer
                    .write(Class::Base, file, Content::Text(rec.base_text.clone()));
            }
        }
        let entries = std::fs::read_dir(&self.bases_dir)
            .map_err(|e| ProposalError::io("list state directory", &self.bases_dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !self.base_refs.contains_key(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // A crash between writing a new proposal and deleting the one it supersedes leaves
        // both; finish the supersede.
        let mut newest: BTreeMap<PathBuf, u64> = BTreeMap::new();
        let mut stale = Vec::new();
        for (&n, rec) in &self.pending {
            if let Some(old) = newest.insert(rec.proposal.path.clone(), n) {
                stale.push((old, n));
            }
        }
        for (old, new) in stale {
            if let Some(mut rec) = self.pending.remove(&old) {
                rec.proposal.state = ProposalState::Superseded;
                if let Some(newer) = self.pending.get_mut(&new) {
                    newer
                        .proposal
                        .supersedes
                        .get_or_insert(rec.proposal.id.clone());
                }
                let hash = rec.proposal.base_hash.clone();
                self.retire(rec.proposal, &hash);
            }
        }
        Ok(())
    }

    /// A base text by hash, checked against it (a mismatch or a missing file cannot come from
    /// our own writes, which put the base on disk before any proposal naming it).
    fn read_base(&self, hash: &str) -> std::result::Result<String, String> {
        let file = self.bases_dir.join(hash);
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("its base text {} is unreadable: {e}", file.display()))?;
        if hash_text(&text) != hash {
            return Err(format!(
                "its base text {} does not match its hash",
                file.display()
            ));
        }
        Ok(text)
    }

    /// Queues everything written so far; `done` runs (on the writer thread, so it must not
    /// block) once it is on disk, or with the error that kept it off. Acknowledge a change
    /// to the outside world only from here.
    pub fn on_persisted(&self, done: impl FnOnce(Result<()>) + Send + 'static) {
        self.writer.on_persisted(done);
    }

    /// Blocks until every change made so far is on disk.
    pub fn flush(&self) -> Result<()> {
        self.writer.flush()
    }

    /// Problems found while loading (unreadable files moved aside), for the log.
    pub fn load_warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The canonical workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Canonical path of `path` if it may be edited (inside the root after resolving
    /// symlinks and `..`), else the error to show the agent.
    pub fn resolve_path(&self, path: &Path) -> Result<PathBuf> {
        resolve_in_workspace(&self.root, path)
    }

    /// Creates a proposal turning `base_text` into `new_text`. It supersedes the pending
    /// proposal for the same file, if any (reported in `supersedes`). When the texts are
    /// equal the returned proposal has no hunks, is `Resolved` and is not stored.
    pub fn propose(&mut self, input: ProposeInput) -> Result<Proposal> {
        let path = self.resolve_path(&input.path)?;
        check_text(&path, &input.base_text, &self.limits)?;
        check_text(&path, &input.new_text, &self.limits)?;
        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Err(ProposalError::NotAFile { path });
        }
        if input.is_new_file {
            if !input.base_text.is_empty() {
                return Err(ProposalError::NewFileWithBase {
                    path,
                    len: input.base_text.len(),
                });
            }
            if std::fs::symlink_metadata(&path).is_ok() {
                return Err(ProposalError::NewFileExists { path });
            }
        }
        let hunks = crate::diff::diff(&input.base_text, &input.new_text);
        let previous = self
            .pending
            .iter()
            .find(|(_, r)| r.proposal.path == path)
            .map(|(&n, _)| n);
        let n = self.next_id;
        let mut proposal = Proposal {
            id: ProposalId::from_number(n),
            path,
            base_hash: hash_text(&input.base_text),
            base_version: input.base_version,
            is_new_file: input.is_new_file,
            hunks,
            origin: input.origin,
            created_at: now_ms(),
            state: ProposalState::Pending,
            supersedes: previous
                .and_then(|p| self.pending.get(&p))
                .map(|r| r.proposal.id.clone()),
            deletes_file: false,
        };
        if proposal.hunks.is_empty() {
            proposal.state = ProposalState::Resolved;
        } else {
            let record = Record {
                proposal: proposal.clone(),
                base_text: input.base_text,
                revision: 0,
            };
            self.add_base_ref(&record);
            self.persist(n, &record);
            self.pending.insert(n, record);
        }
        self.next_id = n + 1;
        if let Some(old) = previous.and_then(|p| self.pending.remove(&p)) {
            let mut old = old.proposal;
            old.state = ProposalState::Superseded;
            let hash = old.base_hash.clone();
            self.retire(old, &hash);
        }
        Ok(proposal)
    }

    /// Marks a pending proposal as the deletion of its file ([`Proposal::deletes_file`]);
    /// refused unless every hunk removes lines and adds none.
    pub fn mark_deletion(&mut self, id: &ProposalId) -> Result<Proposal> {
        let key = self.key(id)?;
        let record = self
            .pending
            .get_mut(&key)
            .ok_or_else(|| ProposalError::UnknownProposal { id: id.clone() })?;
        if record.proposal.hunks.iter().any(|h| !h.new_text.is_empty()) {
            return Err(ProposalError::NotADeletion { id: id.clone() });
        }
        record.proposal.deletes_file = true;
        let proposal = record.proposal.clone();
        if let Some(record) = self.pending.get(&key) {
            self.persist(key, record);
        }
        Ok(proposal)
    }

    /// All pending proposals, oldest first.
    pub fn list(&self) -> Vec<&Proposal> {
        self.pending.values().map(|r| &r.proposal).collect()
    }

    /// A pending proposal, or one resolved recently in this process.
    pub fn get(&self, id: &ProposalId) -> Option<&Proposal> {
        id.number()
            .and_then(|n| self.pending.get(&n))
            .map(|r| &r.proposal)
            .or_else(|| self.resolved.iter().rev().find(|p| &p.id == id))
    }

    /// The pending proposal for a file (there is at most one). `path` is resolved like in
    /// `propose`; a path outside the workspace has none.
    pub fn pending_for(&self, path: &Path) -> Option<&Proposal> {
        let path = self.resolve_path(path).ok()?;
        self.pending
            .values()
            .find(|r| r.proposal.path == path)
            .map(|r| &r.proposal)
    }

    /// Where each open hunk of a pending proposal is in `current_text`, and whether it still
    /// applies. For diagnostics and code lenses while the user edits the buffer; changes
    /// nothing.
    pub fn view(&self, id: &ProposalId, current_text: &str) -> Result<Vec<HunkView>> {
        let rec = self.record(id)?;
        let base_lines = split_lines(&rec.base_text);
        let cur_lines = split_lines(current_text);
        let user = if rec.base_text == current_text {
            Vec::new()
        } else {
            changes(&base_lines, &cur_lines)
        };
        Ok(rec
            .proposal
            .open_hunks()
            .map(|h| {
                let placement = place_hunk(&user, &base_lines, &cur_lines, h);
                let (start, end) = placement.range(h.old_count as usize);
                let status = match (h.status, placement) {
                    (HunkStatus::Conflicted, _) | (_, Placement::Conflict { .. }) => {
                        HunkStatus::Conflicted
                    }
                    (_, Placement::AlreadyApplied { .. }) => HunkStatus::Accepted,
                    _ => HunkStatus::Pending,
                };
                HunkView {
                    id: h.id,
                    status,
                    start_line: to_u32(start),
                    end_line: to_u32(end),
                }
            })
            .collect())
    }

    /// `current_text` with every still-applicable pending hunk for `path` applied: what the
    /// agent expects the file to contain after its own writes (serve this for its reads).
    /// `None` when the file has no pending proposal.
    pub fn agent_view(&self, path: &Path, current_text: &str) -> Option<String> {
        let proposal = self.pending_for(path)?;
        let rec = self.record(&proposal.id).ok()?;
        let base_lines = split_lines(&rec.base_text);
        let cur_lines = split_lines(current_text);
        let user = changes(&base_lines, &cur_lines);
        let mut edits = Vec::new();
        for h in rec.proposal.open_hunks() {
            if h.status != HunkStatus::Pending {
                continue;
            }
            if let Placement::Clean { start } = place_hunk(&user, &base_lines, &cur_lines, h) {
                edits.push((start, start + h.old_count as usize, h.new_text.as_str()));
            }
        }
        Some(splice(&cur_lines, &edits))
    }

    /// Applies the user's decision and records it: [`Store::plan`] then [`Store::commit`].
    /// Use the two steps instead when the new text must reach the editor first.
    pub fn resolve(&mut self, input: ResolveInput) -> Result<Resolution> {
        let resolution = self.plan(input)?;
        self.commit(&resolution)?;
        Ok(resolution)
    }

    /// Computes the user's decision without recording it. See `docs/proposals.md` for the
    /// rules; in short: decided hunks are rebased onto `current_text`, and a hunk whose lines
    /// the user changed is never applied but becomes `conflicted`.
    ///
    /// Crash- and failure-safe order for the caller: `plan`, apply `edits`/`new_text` to the
    /// editor or disk, then `commit`. If the apply fails, drop the resolution: nothing was
    /// recorded. If the process dies after the apply, the next `plan` finds the hunks already
    /// in the text and counts them as accepted.
    pub fn plan(&self, input: ResolveInput) -> Result<Resolution> {
        let key = self.key(&input.id)?;
        let rec = self
            .pending
            .get(&key)
            .ok_or_else(|| ProposalError::UnknownProposal {
                id: input.id.clone(),
            })?;
        let path = rec.proposal.path.clone();
        check_text(&path, &input.current_text, &self.limits)?;
        if let Some(t) = &input.edited_text {
            check_text(&path, t, &self.limits)?;
            if input.decision == Decision::Reject {
                return Err(ProposalError::EditWithReject { id: input.id });
            }
            if let Some(ids) = &input.hunks
                && ids.len() != 1
            {
                return Err(ProposalError::EditNeedsOneHunk {
                    id: input.id,
                    count: ids.len(),
                });
            }
        }
        let selected = select(&rec.proposal, &input)?;
        let mut rec = rec.clone();
        let resolved = if input.edited_text.is_some() && input.hunks.is_none() {
            resolve_whole_file(&mut rec, &input)?
        } else {
            resolve_hunks(&mut rec, &input, &selected)
        };
        let Resolved {
            new_text,
            edits,
            results,
            edit_diff,
        } = resolved;

        let still_open = rec.proposal.open_hunks().count();
        if still_open == 0 {
            rec.proposal.state = ProposalState::Resolved;
        }
        let outcome = Outcome {
            proposal: rec.proposal.id.clone(),
            path: rec.proposal.path.clone(),
            relative_path: rec
                .proposal
                .path
                .strip_prefix(&self.root)
                .unwrap_or(&rec.proposal.path)
                .display()
                .to_string(),
            origin: rec.proposal.origin.clone(),
            total_hunks: to_u32(rec.proposal.hunks.len()),
            hunks: results,
            still_open: to_u32(still_open),
            edit_diff,
            whole_file_edited: input.edited_text.is_some() && input.hunks.is_none(),
        };
        let revision = rec.revision;
        Ok(Resolution {
            proposal: rec.proposal.clone(),
            new_text,
            edits,
            outcome,
            commit: Commit {
                key,
                revision,
                record: rec,
            },
        })
    }

    /// Records a planned resolution (queued for disk, see [`Store::on_persisted`]; an applied
    /// text whose commit is lost in a crash is recognised as applied later). Succeeds without doing
    /// anything if the same decisions were already recorded meanwhile; fails with
    /// [`ProposalError::Stale`] if the proposal changed otherwise since the plan (another
    /// decision was committed, or it was superseded).
    pub fn commit(&mut self, resolution: &Resolution) -> Result<()> {
        let Commit {
            key,
            revision,
            record,
        } = &resolution.commit;
        match self.pending.get(key) {
            Some(current) if current.revision == *revision => {}
            current => {
                // Idempotent: if what this plan decides is already recorded (e.g. the applied
                // edit came back as a change and was recorded as "already applied" first),
                // there is nothing left to do.
                let now = current.map(|r| &r.proposal).or_else(|| {
                    self.resolved
                        .iter()
                        .rev()
                        .find(|p| p.id == record.proposal.id)
                });
                if now.is_some_and(|now| same_decisions(now, &record.proposal)) {
                    return Ok(());
                }
                return Err(ProposalError::Stale {
                    id: record.proposal.id.clone(),
                });
            }
        }
        let mut record = record.clone();
        record.revision = revision + 1;
        let old_hash = self
            .pending
            .get(key)
            .map(|r| r.proposal.base_hash.clone())
            .unwrap_or_default();
        if record.proposal.state == ProposalState::Resolved {
            self.pending.remove(key);
            self.retire(record.proposal, &old_hash);
        } else {
            // New base first, so a base shared by both versions is never removed.
            self.add_base_ref(&record);
            self.drop_base_ref(&old_hash);
            self.persist(*key, &record);
            self.pending.insert(*key, record);
        }
        Ok(())
    }

    fn key(&self, id: &ProposalId) -> Result<u64> {
        id.number()
            .filter(|n| self.pending.contains_key(n))
            .ok_or_else(|| ProposalError::UnknownProposal { id: id.clone() })
    }

    fn record(&self, id: &ProposalId) -> Result<&Record> {
        let key = self.key(id)?;
        self.pending
            .get(&key)
            .ok_or_else(|| ProposalError::UnknownProposal { id: id.clone() })
    }

    /// Queues the proposal file of a pending record (its base is queued by `add_base_ref`).
    fn persist(&self, n: u64, rec: &Record) {
        let body = Persisted {
            format: FORMAT,
            proposal: rec.proposal.clone(),
            base_text: None,
        };
        self.writer.write(
            Class::Proposal,
            self.dir.join(format!("p-{n}.json")),
            Content::json(body),
        );
    }

    fn add_base_ref(&mut self, rec: &Record) {
        let count = self
            .base_refs
            .entry(rec.proposal.base_hash.clone())
            .or_default();
        *count += 1;
        if *count == 1 {
            self.writer.write(
                Class::Base,
                self.bases_dir.join(&rec.proposal.base_hash),
                Content::Text(rec.base_text.clone()),
            );
        }
    }

    fn drop_base_ref(&mut self, hash: &str) {
        if let Some(count) = self.base_refs.get_mut(hash) {
            *count -= 1;
            if *count == 0 {
                self.base_refs.remove(hash);
                self.writer.remove(self.bases_dir.join(hash));
            }
        }
    }

    /// Moves a proposal out of the pending set on disk: remember the id high-water mark (so
    /// the id is never reused; the writer puts it on disk before any removal), log it, then
    /// delete its file and, if no other proposal uses it, its base (`base_hash`: the base of
    /// the record as it was pending).
    fn retire(&mut self, proposal: Proposal, base_hash: &str) {
        self.writer.write(
            Class::Meta,
            self.meta_path.clone(),
            Content::json(Meta {
                format: FORMAT,
                next_id: self.next_id,
            }),
        );
        if let Ok(line) = serde_json::to_vec(&proposal) {
            self.writer.log(&line);
        }
        if let Some(n) = proposal.id.number() {
            self.writer.remove(self.dir.join(format!("p-{n}.json")));
        }
        self.drop_base_ref(base_hash);
        if self.resolved.len() == RESOLVED_KEPT {
            self.resolved.pop_front();
        }
        self.resolved.push_back(proposal);
    }
}

/// Stable short key for a workspace root, for naming its state dir.
pub fn workspace_key(root: &Path) -> String {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hash = hash_text(&canonical.to_string_lossy());
    format!("{name}-{}", &hash[..12])
}

/// Whether every hunk has the same status in both versions of a proposal.
fn same_decisions(now: &Proposal, planned: &Proposal) -> bool {
    now.hunks.len() == planned.hunks.len()
        && now
            .hunks
            .iter()
            .zip(&planned.hunks)
            .all(|(a, b)| a.id == b.id && a.status == b.status)
}

fn select(proposal: &Proposal, input: &ResolveInput) -> Result<Vec<u32>> {
    let Some(ids) = &input.hunks else {
        return Ok(proposal.open_hunks().map(|h| h.id).collect());
    };
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let hunk = proposal.hunks.iter().find(|h| h.id == id).ok_or_else(|| {
            ProposalError::UnknownHunk {
                id: proposal.id.clone(),
                hunk: id,
            }
        })?;
        if !hunk.status.is_open() {
            return Err(ProposalError::HunkClosed {
                id: proposal.id.clone(),
                hunk: id,
                status: hunk.status,
            });
        }
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

fn place_hunk(
    user: &[crate::diff::Change],
    base: &[&str],
    current: &[&str],
    h: &Hunk,
) -> Placement {
    let s = (h.old_start as usize).min(base.len());
    let e = (s + h.old_count as usize).min(base.len());
    place(user, base, current, s, e, &h.new_text)
}

struct Resolved {
    new_text: Option<String>,
    edits: Vec<LineEdit>,
    results: Vec<HunkOutcome>,
    edit_diff: Option<String>,
}

/// Per-hunk accept/reject (optionally with the user's text for one hunk).
fn resolve_hunks(rec: &mut Record, input: &ResolveInput, selected: &[u32]) -> Resolved {
    let current = input.current_text.as_str();
    let base_lines = split_lines(&rec.base_text);
    let cur_lines = split_lines(current);
    let user = if rec.base_text == current {
        Vec::new()
    } else {
        changes(&base_lines, &cur_lines)
    };
    let mut applied: Vec<(usize, usize, String)> = Vec::new();
    // Open hunks left after this call, with their range in `current`.
    let mut remaining: Vec<(usize, usize, usize)> = Vec::new();
    let mut results = Vec::new();
    let mut edit_diff = None;
    for (idx, h) in rec.proposal.hunks.iter_mut().enumerate() {
        if !h.status.is_open() {
            continue;
        }
        let placement = place_hunk(&user, &base_lines, &cur_lines, h);
        let (start, end) = placement.range(h.old_count as usize);
        let chosen = selected.contains(&h.id);
        let result = match (chosen, input.decision, placement) {
            (true, Decision::Reject, _) => {
                h.status = HunkStatus::Rejected;
                h.reason.clone_from(&input.reason);
                Some(HunkResult::Rejected {
                    reason: input.reason.clone(),
                })
            }
            (_, _, Placement::AlreadyApplied { .. }) => {
                h.status = HunkStatus::Accepted;
                h.reason = Some("the file already contained this change".to_owned());
                Some(HunkResult::Accepted)
            }
            (true, Decision::Accept, Placement::Clean { start })
                if h.status == HunkStatus::Pending =>
            {
                h.status = HunkStatus::Accepted;
                let text = match &input.edited_text {
                    Some(edited) if *edited != h.new_text => {
                        edit_diff = Some(unified(&h.new_text, edited, h.id));
                        h.edited_text = Some(edited.clone());
                        HunkResult::Edited {
                            text: edited.clone(),
                        }
                    }
                    _ => HunkResult::Accepted,
                };
                let new = h.edited_text.as_deref().unwrap_or(&h.new_text).to_owned();
                applied.push((start, start + h.old_count as usize, new));
                Some(text)
            }
            (chosen, _, Placement::Conflict { start, end }) => {
                let newly = h.status != HunkStatus::Conflicted;
                h.status = HunkStatus::Conflicted;
                let reason = format!(
                    "the user changed lines {}-{} after this was proposed, so it was not applied",
                    start + 1,
                    end.max(start + 1)
                );
                h.reason = Some(reason.clone());
                remaining.push((idx, start, end));
                (chosen || newly).then_some(HunkResult::Conflicted { reason })
            }
            // Selected conflicted hunk whose lines are untouched again: still needs a
            // fresh look, so it stays conflicted (only rejection or a new proposal clears it).
            (true, Decision::Accept, Placement::Clean { .. }) => {
                remaining.push((idx, start, end));
                Some(HunkResult::Conflicted {
                    reason: h.reason.clone().unwrap_or_else(|| {
                        "the user changed these lines after this was proposed".to_owned()
                    }),
                })
            }
            (false, _, Placement::Clean { .. }) => {
                remaining.push((idx, start, end));
                None
            }
        };
        if let Some(result) = result {
            results.push(HunkOutcome { id: h.id, result });
        }
    }
    applied.sort_by_key(|a| a.0);
    let edits: Vec<LineEdit> = applied
        .iter()
        .map(|(s, e, text)| LineEdit {
            start_line: to_u32(*s),
            end_line: to_u32(*e),
            old_text: cur_lines[*s..*e].concat(),
            new_text: text.clone(),
        })
        .collect();
    let new_text = (!applied.is_empty()).then(|| {
        let refs: Vec<(usize, usize, &str)> = applied
            .iter()
            .map(|(s, e, t)| (*s, *e, t.as_str()))
            .collect();
        splice(&cur_lines, &refs)
    });
    // Re-express the open hunks on the resulting text so the next call starts from it.
    for (idx, start, end) in remaining {
        let delta: isize = applied
            .iter()
            .filter(|(s, e, _)| *e <= start && *s <= start)
            .map(|(s, e, t)| count_lines(t) as isize - (e - s) as isize)
            .sum();
        let h = &mut rec.proposal.hunks[idx];
        h.old_start = to_u32(start.saturating_add_signed(delta));
        h.old_count = to_u32(end - start);
    }
    rec.base_text = new_text.clone().unwrap_or_else(|| current.to_owned());
    rec.proposal.base_hash = hash_text(&rec.base_text);
    rec.proposal.base_version = if applied.is_empty() {
        input.current_version
    } else {
        None
    };
    Resolved {
        new_text,
        edits,
        results,
        edit_diff,
    }
}

/// Accept of the whole previewed file as edited by the user.
fn resolve_whole_file(rec: &mut Record, input: &ResolveInput) -> Result<Resolved> {
    let edited = input.edited_text.as_deref().unwrap_or_default();
    let current = input.current_text.as_str();
    let base_lines = split_lines(&rec.base_text);
    let cur_lines = split_lines(current);
    let edited_lines = split_lines(edited);
    let user = changes(&base_lines, &cur_lines);
    // The user's final version is a change of the base; apply it 3-way onto `current` and
    // refuse (rather than half-apply) if it collides with other edits made meanwhile.
    let mut applied = Vec::new();
    for c in changes(&base_lines, &edited_lines) {
        let text = edited_lines[c.new_start..c.new_end].concat();
        match place(
            &user,
            &base_lines,
            &cur_lines,
            c.old_start,
            c.old_end,
            &text,
        ) {
            Placement::Clean { start } => {
                applied.push((start, start + (c.old_end - c.old_start), text));
            }
            Placement::AlreadyApplied { .. } => {}
            Placement::Conflict { start, end } => {
                return Err(ProposalError::EditConflict {
                    path: rec.proposal.path.clone(),
                    first_line: start + 1,
                    end_line: end.max(start + 1),
                });
            }
        }
    }
    let refs: Vec<(usize, usize, &str)> = applied
        .iter()
        .map(|(s, e, t)| (*s, *e, t.as_str()))
        .collect();
    let new_text = splice(&cur_lines, &refs);

    // Tell the agent, per hunk, whether the user kept its text.
    let pending: Vec<Hunk> = rec
        .proposal
        .hunks
        .iter()
        .filter(|h| h.status == HunkStatus::Pending)
        .cloned()
        .collect();
    let proposed = crate::diff::apply_hunks(&rec.base_text, &pending);
    let proposed_lines = split_lines(&proposed);
    let user_edit = changes(&proposed_lines, &edited_lines);
    let mut shift: isize = 0;
    let mut results = Vec::new();
    for h in &mut rec.proposal.hunks {
        match h.status {
            HunkStatus::Pending => {
                let s = (h.old_start as usize).saturating_add_signed(shift);
                let e = s + h.new_count() as usize;
                shift += h.new_count() as isize - h.old_count as isize;
                h.status = HunkStatus::Accepted;
                match place(
                    &user_edit,
                    &proposed_lines,
                    &edited_lines,
                    s,
                    e,
                    &h.new_text,
                ) {
                    Placement::Clean { .. } => results.push(HunkOutcome {
                        id: h.id,
                        result: HunkResult::Accepted,
                    }),
                    Placement::AlreadyApplied { start, end }
                    | Placement::Conflict { start, end } => {
                        let text = edited_lines[start..end].concat();
                        h.edited_text = Some(text.clone());
                        results.push(HunkOutcome {
                            id: h.id,
                            result: HunkResult::Edited { text },
                        });
                    }
                }
            }
            HunkStatus::Conflicted => {
                h.status = HunkStatus::Rejected;
                let reason = "replaced by the user's edit of the whole file".to_owned();
                h.reason = Some(reason.clone());
                results.push(HunkOutcome {
                    id: h.id,
                    result: HunkResult::Rejected {
                        reason: Some(reason),
                    },
                });
            }
            HunkStatus::Accepted | HunkStatus::Rejected => {}
        }
    }
    let edit_diff = (proposed != edited).then(|| unified(&proposed, edited, 0));
    let edits = crate::diff::line_edits(current, &new_text);
    rec.base_text = new_text.clone();
    rec.proposal.base_hash = hash_text(&new_text);
    rec.proposal.base_version = None;
    Ok(Resolved {
        new_text: Some(new_text),
        edits,
        results,
        edit_diff,
    })
}

/// Unified diff from the agent's text to the user's (hunk 0 = whole file).
fn unified(agent: &str, user: &str, hunk: u32) -> String {
    let (a, b) = if hunk == 0 {
        ("proposed".to_owned(), "accepted".to_owned())
    } else {
        (
            format!("proposed hunk {hunk}"),
            format!("accepted hunk {hunk}"),
        )
    };
    similar::TextDiff::from_lines(agent, user)
        .unified_diff()
        .context_radius(2)
        .header(&a, &b)
        .to_string()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
