//! airlock-proposals: the pure engine behind Airlock's reviewable agent edits.
//!
//! An agent's write becomes a [`Proposal`]: the file's base text diffed into line [`Hunk`]s
//! that the user accepts or rejects one by one. This crate owns everything about that —
//! guards (binary, non-UTF-8, size, workspace escape), diffing, stacking, 3-way rebase onto
//! the user's newer text, conflict detection, persistence and atomic file writes — and knows
//! nothing about LSP or JSON-RPC: it speaks 0-based line numbers, UTF-8 strings and absolute
//! paths. The LSP front converts positions (UTF-16) and URIs at its edge.
//!
//! Entry points: [`Store::open`], [`Store::propose`], [`Store::resolve`], [`Store::view`],
//! [`write_atomic`]. Rules and on-disk format: `docs/proposals.md`.

mod diff;
mod error;
mod fsio;
mod outcome;
mod path;
mod persist;
mod store;
mod text;
mod types;

pub use diff::{apply_hunks, diff, line_edits};
pub use error::{ProposalError, Result};
pub use fsio::{TEMP_MARKER, sync_dir, write_atomic};
pub use outcome::{HunkOutcome, HunkResult, Outcome};
pub use path::resolve_in_workspace;
pub use store::{
    Decision, HunkView, ProposeInput, Resolution, ResolveInput, Store, StoreOptions, workspace_key,
};
pub use text::{Limits, check_text, hash_text, read_text, text_from_bytes};
pub use types::{
    Highlight, Hunk, HunkStatus, LineEdit, Origin, Proposal, ProposalId, ProposalState, Side,
};
