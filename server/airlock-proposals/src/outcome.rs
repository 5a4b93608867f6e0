//! What the agent is told after the user decides.
//!
//! Guarantee: [`Outcome::summary`] mentions every hunk decided in the call, quotes the
//! user's rejection reasons verbatim, and says what to do about conflicts, so the agent
//! never has to guess what happened to its edit.

use std::fmt::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::types::{Origin, ProposalId};

/// The result of one resolve call, for the agent bridge (and the `proposal.resolved` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub proposal: ProposalId,
    pub path: PathBuf,
    /// `path` relative to the workspace root, for messages.
    pub relative_path: String,
    pub origin: Origin,
    pub total_hunks: u32,
    /// Hunks whose state this call decided or changed, in file order.
    pub hunks: Vec<HunkOutcome>,
    /// Hunks still waiting for the user (pending or conflicted).
    pub still_open: u32,
    /// Unified diff from the agent's proposed text to what the user accepted, when the user
    /// edited it.
    pub edit_diff: Option<String>,
    /// The user edited the whole previewed file rather than one hunk.
    pub whole_file_edited: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HunkOutcome {
    pub id: u32,
    pub result: HunkResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HunkResult {
    Accepted,
    Rejected {
        reason: Option<String>,
    },
    /// Accepted with the user's text instead of the agent's.
    Edited {
        text: String,
    },
    /// Not applied because the user changed those lines.
    Conflicted {
        reason: String,
    },
}

impl Outcome {
    /// One or two sentences for the agent, e.g. "User accepted 2 of 3 hunks in src/lib.rs;
    /// rejected hunk 3: 'keep the old name'." followed by the edit diff, if any.
    pub fn summary(&self) -> String {
        let mut accepted = Vec::new();
        let mut edited = Vec::new();
        let mut rejected_plain = Vec::new();
        let mut rejected_reasons = Vec::new();
        let mut conflicted = Vec::new();
        for h in &self.hunks {
            match &h.result {
                HunkResult::Accepted => accepted.push(h.id),
                HunkResult::Edited { .. } => edited.push(h.id),
                HunkResult::Rejected { reason: None } => rejected_plain.push(h.id),
                HunkResult::Rejected {
                    reason: Some(reason),
                } => rejected_reasons.push((h.id, reason.as_str())),
                HunkResult::Conflicted { .. } => conflicted.push(h.id),
            }
        }
        // (head, tail): the path is inserted between the first clause's head and tail, so a quoted
        // reason comes after it.
        let mut clauses: Vec<(String, String)> = Vec::new();
        let taken = accepted.len() + edited.len();
        if taken > 0 {
            let what = if taken == 1 && self.total_hunks == 1 {
                "accepted your change".to_owned()
            } else {
                format!(
                    "accepted {taken} of {} {}",
                    self.total_hunks,
                    plural(self.total_hunks as usize, "hunk")
                )
            };
            clauses.push((what, String::new()));
        }
        if !edited.is_empty() {
            clauses.push((
                format!(
                    "edited {} {} before accepting",
                    plural(edited.len(), "hunk"),
                    ids(&edited)
                ),
                String::new(),
            ));
        }
        if !rejected_plain.is_empty() {
            clauses.push((
                format!(
                    "rejected {} {}",
                    plural(rejected_plain.len(), "hunk"),
                    ids(&rejected_plain)
                ),
                String::new(),
            ));
        }
        for (id, reason) in &rejected_reasons {
            clauses.push((format!("rejected hunk {id}"), format!(": '{reason}'")));
        }
        let mut out = String::new();
        if clauses.is_empty() && conflicted.is_empty() {
            let _ = write!(out, "No change to {}", self.relative_path);
        } else if clauses.is_empty() {
            let _ = write!(out, "Nothing was applied to {}", self.relative_path);
        } else {
            let (head, tail) = &clauses[0];
            let _ = write!(out, "User {head} in {}{tail}", self.relative_path);
            for (head, tail) in &clauses[1..] {
                let _ = write!(out, "; {head}{tail}");
            }
        }
        if !conflicted.is_empty() {
            let _ = write!(
                out,
                "; {} {} {} not applied because the user changed those lines meanwhile (re-read the file before proposing again)",
                plural(conflicted.len(), "hunk"),
                ids(&conflicted),
                if conflicted.len() == 1 { "was" } else { "were" }
            );
        }
        if self.still_open > 0 {
            let _ = write!(
                out,
                "; {} {} still awaiting review",
                self.still_open,
                plural(self.still_open as usize, "hunk")
            );
        }
        out.push('.');
        if let Some(diff) = &self.edit_diff {
            out.push_str(" The user's version differs from yours:\n");
            out.push_str(diff);
        }
        out
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_owned()
    } else {
        format!("{word}s")
    }
}

fn ids(ids: &[u32]) -> String {
    ids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
