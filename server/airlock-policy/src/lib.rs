//! Airlock's policy engine: what a coding agent may read, write, run and reach.
//!
//! The crate is a pure library: it reads policy files and the trust store when asked to
//! ([`load`], [`trust_workspace`]), and otherwise only computes. It guarantees:
//!
//! - **Strictest wins.** For every decision, all matching rules of all layers (built-in,
//!   workspace, user, managed) are considered and the strictest verdict (`deny` > `ask` >
//!   `allow`) is returned, with the rule, layer and `file:line` that decided it.
//! - **Invalid never loosens.** [`load`] returns an error for any invalid file; the caller keeps
//!   the last good [`Policy`] or [`Policy::strict_default`].
//! - **Untrusted workspaces only tighten.** Loosening entries of a workspace policy whose sha256
//!   is not in the trust store are ignored and reported as [`Warning`]s.
//! - **Commands are split, never trusted whole.** [`Policy::decide_command`] parses the command
//!   line with a real shell parser and decides every part; anything not understood is `ask`.

mod atomic;
mod editor;
mod eval;
mod file;
mod load;
mod shell;
mod trust;

// Path patterns live in their own crate so the sandbox hides exactly what the policy denies.
use airlock_glob as glob;

#[cfg(test)]
mod schema;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use editor::{
    AddRuleError, Completion, DiagnosticSeverity, PolicyDiagnostic, RuleCategory, WorkspaceRule,
    add_rule, add_workspace_rule, completions, diagnostics, hover, loosening_diagnostics, rule_key,
    validate_rule, with_rule,
};
pub use eval::{DomainRule, Policy, builtin_protected_paths};
pub use file::{FileError, MAX_POLICY_BYTES, check_text};
pub use load::{
    LayerSource, Loaded, PolicyError, PolicyPaths, Warning, WarningKind, check_file, load,
};
pub use trust::{TrustError, file_sha256, is_trusted, trust_workspace};

/// The outcome of a decision. Ordered by strictness: `Allow < Ask < Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Ask,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Ask => "ask",
            Verdict::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "allow" => Some(Verdict::Allow),
            "ask" => Some(Verdict::Ask),
            "deny" => Some(Verdict::Deny),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule came from. Ordered by precedence: a higher layer wins a tie in strictness
/// (only for reporting which rule decided; the verdict is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Builtin,
    Workspace,
    User,
    Managed,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Builtin => "builtin",
            Layer::Workspace => "workspace",
            Layer::User => "user",
            Layer::Managed => "managed",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision and what made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// The deciding rule as written, e.g. `commands.allow "cargo test"`, or a built-in
    /// explanation such as `builtin: commands default to ask`.
    pub rule: Option<String>,
    pub layer: Layer,
    /// `file:line` of the deciding rule; `None` for built-in rules.
    pub source: Option<String>,
}

impl Decision {
    pub(crate) fn builtin(verdict: Verdict, rule: impl Into<String>) -> Decision {
        Decision {
            verdict,
            rule: Some(rule.into()),
            layer: Layer::Builtin,
            source: None,
        }
    }
}

/// One part of a (possibly compound) command and its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandPart {
    pub text: String,
    pub decision: Decision,
}

/// The decision for a whole command line: the strictest of its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandDecision {
    pub verdict: Verdict,
    pub parts: Vec<CommandPart>,
}

impl CommandDecision {
    /// The part that decided the overall verdict (the first part with the strictest verdict).
    pub fn deciding_part(&self) -> Option<&CommandPart> {
        self.parts
            .iter()
            .find(|p| p.decision.verdict == self.verdict)
    }
}

#[cfg(test)]
mod tests {
    /// The LSP shares one policy between tasks behind an `Arc`.
    #[test]
    fn policy_is_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<crate::Policy>();
        assert_send_sync::<crate::Loaded>();
    }

    #[test]
    fn verdicts_order_by_strictness_and_serialize_lowercase() {
        use crate::Verdict::*;
        assert!(Allow < Ask && Ask < Deny);
        assert_eq!(serde_json::to_string(&Ask).expect("json"), "\"ask\"");
        assert_eq!(
            serde_json::to_string(&crate::Layer::Managed).expect("json"),
            "\"managed\""
        );
    }
}
