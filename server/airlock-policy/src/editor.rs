//! Editor support for an open policy file: diagnostics, hover, completion, and adding a rule.

use std::ops::Range;
use std::path::Path;

use crate::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticSeverity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    pub range: Range<usize>,
    pub message: String,
    pub severity: DiagnosticSeverity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleCategory {
    Read,
    Write,
    Command,
    Network,
}

pub fn diagnostics(text: &str) -> Vec<PolicyDiagnostic> {
    let _ = text;
    Vec::new()
}

pub fn loosening_diagnostics(text: &str) -> Vec<PolicyDiagnostic> {
    let _ = text;
    Vec::new()
}

pub fn hover(text: &str, offset: usize) -> Option<String> {
    let _ = (text, offset);
    None
}

pub fn completions(text: &str, offset: usize) -> Vec<Completion> {
    let _ = (text, offset);
    Vec::new()
}

pub fn add_rule(
    file: &Path,
    category: RuleCategory,
    verdict: Verdict,
    pattern: &str,
) -> std::io::Result<()> {
    let _ = (file, category, verdict, pattern);
    Ok(())
}
