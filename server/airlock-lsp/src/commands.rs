//! `workspace/executeCommand` names. Arguments: `[proposalId, hunkIds?, reason?]`.

pub const ACCEPT: &str = "airlock.accept";
pub const REJECT: &str = "airlock.reject";
pub const ACCEPT_ALL: &str = "airlock.acceptAll";
pub const REJECT_ALL: &str = "airlock.rejectAll";
pub const PROMPT: &str = "airlock.prompt";
pub const CANCEL: &str = "airlock.cancel";

pub const ALL: &[&str] = &[ACCEPT, REJECT, ACCEPT_ALL, REJECT_ALL, PROMPT, CANCEL];
