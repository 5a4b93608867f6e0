//! Data types shared with the LSP front and the agent bridge.
//!
//! All types serialize as camelCase JSON so the LSP layer can forward them unchanged in
//! `airlock/proposal` notifications. Positions are 0-based line numbers; columns (only in
//! [`Highlight`]) are UTF-8 byte offsets inside a line, converted to UTF-16 at the LSP edge.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Short, stable proposal id such as `p-7`. Ids are never reused within one state dir.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProposalId(pub String);

impl ProposalId {
    pub(crate) fn from_number(n: u64) -> Self {
        ProposalId(format!("p-{n}"))
    }

    /// The numeric part of `p-N`, if the id has that shape.
    pub fn number(&self) -> Option<u64> {
        self.0.strip_prefix("p-")?.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ProposalId {
    fn from(s: &str) -> Self {
        ProposalId(s.to_owned())
    }
}

/// Where a proposal came from, for display and for routing the outcome back to the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    pub session: Option<String>,
    pub tool_call: Option<String>,
}

/// Lifecycle state of a whole proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProposalState {
    /// At least one hunk is still `pending` or `conflicted`.
    Pending,
    /// Every hunk is accepted or rejected (or it had no hunks at all).
    Resolved,
    /// A newer proposal for the same file replaced it (see `docs/proposals.md`, stacking).
    Superseded,
}

/// A change the agent wants to make to one file, split into hunks the user decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: ProposalId,
    /// Absolute, canonical path inside the workspace root.
    pub path: PathBuf,
    /// sha256 (hex) of the text the hunks' `old_start` lines refer to. After a partial
    /// resolution this is the text that resulted from it, not the agent's original base.
    pub base_hash: String,
    /// Editor document version of that text, when known.
    pub base_version: Option<i32>,
    pub is_new_file: bool,
    pub hunks: Vec<Hunk>,
    pub origin: Origin,
    /// Unix time in milliseconds.
    pub created_at: u64,
    pub state: ProposalState,
    /// The pending proposal for the same file that this one replaced.
    pub supersedes: Option<ProposalId>,
    /// The agent deleted the file (shadow workspace): the hunks remove every line, and
    /// accepting all of them removes the file instead of leaving it empty. Persisted with the
    /// proposal, so a deletion resolved after a restart still removes the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletes_file: bool,
}

impl Proposal {
    /// Hunks the user still has to decide on (`pending` or `conflicted`).
    pub fn open_hunks(&self) -> impl Iterator<Item = &Hunk> {
        self.hunks.iter().filter(|h| h.status.is_open())
    }
}

/// Decision state of one hunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HunkStatus {
    Pending,
    Accepted,
    Rejected,
    /// The user changed the lines this hunk replaces after it was proposed; it is not applied
    /// (the user's text wins) and stays visible until rejected or superseded.
    Conflicted,
}

impl HunkStatus {
    /// Whether the user still has to decide on the hunk.
    pub fn is_open(self) -> bool {
        matches!(self, HunkStatus::Pending | HunkStatus::Conflicted)
    }
}

impl fmt::Display for HunkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HunkStatus::Pending => "pending",
            HunkStatus::Accepted => "accepted",
            HunkStatus::Rejected => "rejected",
            HunkStatus::Conflicted => "conflicted",
        })
    }
}

/// One contiguous line change: replace `old_count` lines starting at `old_start` by `new_text`.
///
/// Line texts keep their terminators (`\n` or `\r\n`), so `old_text`/`new_text` concatenate
/// back to the exact file bytes; the last line of a file may have no terminator. A pure
/// insertion has `old_count == 0` and inserts before line `old_start`.
///
/// For `pending` hunks `old_start`/`old_count` index the proposal's current base
/// (`base_hash`). For `conflicted` hunks they locate the region of the base that overlaps
/// the user's edit, while `old_text` stays what the agent expected to replace. For
/// `accepted`/`rejected` hunks they are historical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    /// Unique within its proposal, numbered from 1 in file order.
    pub id: u32,
    pub old_start: u32,
    pub old_count: u32,
    pub old_text: String,
    pub new_text: String,
    pub status: HunkStatus,
    /// Why it was rejected (user's words) or why it conflicted.
    pub reason: Option<String>,
    /// The text the user accepted instead of `new_text`, when they edited it first.
    pub edited_text: Option<String>,
    /// Word-level changes inside the hunk's lines (bonus for clients that render them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<Highlight>,
}

impl Hunk {
    /// Number of lines in `new_text`.
    pub fn new_count(&self) -> u32 {
        count_lines(&self.new_text)
    }
}

pub(crate) fn count_lines(text: &str) -> u32 {
    u32::try_from(text.split_inclusive('\n').count()).unwrap_or(u32::MAX)
}

/// Which side of a hunk a [`Highlight`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Side {
    Old,
    New,
}

/// A changed word range inside one line of a hunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Highlight {
    pub side: Side,
    /// Line index relative to the hunk's `old_text` (side old) or `new_text` (side new).
    pub line: u32,
    /// Byte offsets inside that line (UTF-8), end exclusive.
    pub start: u32,
    pub end: u32,
}

/// Replace lines `start_line..end_line` (end exclusive) of the text the edit was computed
/// against by `new_text`.
///
/// In LSP terms the range is `(start_line, 0)..(end_line, 0)`, except when the range runs to
/// the end of a text that has no final newline: then the end is the end of the last line,
/// which [`LineEdit::end_point`] gives as (line, byte column).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineEdit {
    pub start_line: u32,
    pub end_line: u32,
    /// The text being replaced (exactly the lines `start_line..end_line`).
    pub old_text: String,
    pub new_text: String,
}

impl LineEdit {
    /// End of the replaced range as (line, UTF-8 byte column).
    pub fn end_point(&self) -> (u32, u32) {
        match self.old_text.rsplit_once('\n') {
            _ if self.old_text.is_empty() || self.old_text.ends_with('\n') => (self.end_line, 0),
            Some((_, last)) => (
                self.end_line.saturating_sub(1),
                u32::try_from(last.len()).unwrap_or(u32::MAX),
            ),
            None => (
                self.end_line.saturating_sub(1),
                u32::try_from(self.old_text.len()).unwrap_or(u32::MAX),
            ),
        }
    }
}
