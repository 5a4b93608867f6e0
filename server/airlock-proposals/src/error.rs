//! The one error type of this crate.
//!
//! Every message is written for the person (or agent) who has to act on it: it names the
//! path, the limit or the id involved and says what to do instead. The agent bridge forwards
//! `to_string()` verbatim to the agent.

use std::path::PathBuf;

use crate::types::{HunkStatus, ProposalId};

/// Errors returned by the proposal engine.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    #[error(
        "refusing to propose a change to {path}: it resolves to {resolved}, which is outside the workspace root {root}; only files inside the workspace can be edited"
    )]
    OutsideWorkspace {
        path: PathBuf,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error(
        "refusing path {path}: it contains '..' below a directory that does not exist yet, so it cannot be checked against the workspace root; use a plain path"
    )]
    UnresolvablePath { path: PathBuf },
    #[error(
        "refusing {path}: it looks like a binary file (NUL byte at offset {offset}); Airlock only proposes changes to text files"
    )]
    Binary { path: PathBuf, offset: usize },
    #[error(
        "refusing {path}: it is not valid UTF-8 (invalid byte at offset {offset}); Airlock only proposes changes to UTF-8 text files"
    )]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error(
        "refusing {path}: {size} bytes is larger than the limit of {limit} bytes for a proposal; split the change or raise the limit"
    )]
    TooLarge {
        path: PathBuf,
        size: usize,
        limit: usize,
    },
    #[error(
        "{path} already exists, so it cannot be proposed as a new file; propose a change with its current content as the base"
    )]
    NewFileExists { path: PathBuf },
    #[error("refusing {path}: it is a directory, not a file")]
    NotAFile { path: PathBuf },
    #[error("a new-file proposal for {path} must have an empty base text (got {len} bytes)")]
    NewFileWithBase { path: PathBuf, len: usize },
    #[error("no pending proposal with id {id} (it may have been resolved or superseded already)")]
    UnknownProposal { id: ProposalId },
    #[error("proposal {id} adds text, so it cannot stand for deleting its file")]
    NotADeletion { id: ProposalId },
    #[error("proposal {id} has no hunk {hunk}")]
    UnknownHunk { id: ProposalId, hunk: u32 },
    #[error("hunk {hunk} of proposal {id} is already {status}; it cannot be decided again")]
    HunkClosed {
        id: ProposalId,
        hunk: u32,
        status: HunkStatus,
    },
    #[error(
        "edited text for proposal {id} must apply to exactly one hunk or to the whole file (no hunk ids), got {count} hunk ids"
    )]
    EditNeedsOneHunk { id: ProposalId, count: usize },
    #[error("edited text for proposal {id} can only be accepted, not rejected")]
    EditWithReject { id: ProposalId },
    #[error(
        "cannot accept the edited text for {path}: the file was changed meanwhile in lines {first_line}..{end_line} that the edit also changes; review the proposal again"
    )]
    EditConflict {
        path: PathBuf,
        first_line: usize,
        end_line: usize,
    },
    #[error(
        "proposal {id} changed since this decision was prepared (another decision was recorded first, or it was superseded); prepare the decision again"
    )]
    Stale { id: ProposalId },
    #[error(
        "another Airlock server already holds the proposals of this workspace ({dir}); close the other editor window's Airlock or wait for it to exit"
    )]
    Locked { dir: PathBuf },
    #[error("I/O error while trying to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot save the proposal state in {dir}: {message}; the proposal is shown but would not survive a restart of the server (check free space and permissions there)"
    )]
    Persist { dir: PathBuf, message: String },
    #[error("cannot encode proposal state for {path}: {source}")]
    Encode {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl ProposalError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ProposalError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ProposalError> = std::result::Result<T, E>;
