//! Editor support for an open policy file: diagnostics, hover, completion, and "allow always"
//! (appending a rule while preserving the file's formatting).
//!
//! Guarantees: positions are byte ranges into the text given (the LSP layer converts to its
//! position encoding); none of these functions panics on any text or offset; [`add_rule`]
//! never writes a file that would not validate, and writes atomically.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::file::{self, COMMANDS_KEYS, FILES_KEYS, NETWORK_KEYS};
use crate::{PolicyError, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticSeverity {
    Error,
    Warning,
}

/// A problem to show in the editor, at a byte range of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDiagnostic {
    pub range: Range<usize>,
    /// 1-based line and character column of `range.start` (for plain-text consumers).
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub severity: DiagnosticSeverity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub detail: String,
}

/// What a rule added by [`add_rule`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleCategory {
    Read,
    Write,
    Command,
    Network,
}

/// Every error in the text, plus warnings for entries written twice.
pub fn diagnostics(text: &str) -> Vec<PolicyDiagnostic> {
    match file::parse(text) {
        Err(errors) => errors
            .into_iter()
            .map(|e| PolicyDiagnostic {
                range: e.span,
                line: e.line,
                col: e.col,
                message: e.message,
                severity: DiagnosticSeverity::Error,
            })
            .collect(),
        Ok(f) => {
            let index = file::LineIndex::new(text);
            let mut out = Vec::new();
            for (key, list) in [
                ("files.deny_read", &f.files.deny_read),
                ("files.allow_read", &f.files.allow_read),
                ("files.protect", &f.files.protect),
                ("files.ask_write", &f.files.ask_write),
                ("commands.allow", &f.commands.allow),
                ("commands.ask", &f.commands.ask),
                ("commands.deny", &f.commands.deny),
                ("network.allow", &f.network.allow),
                ("network.deny", &f.network.deny),
                ("lock", &f.lock),
            ] {
                for (i, e) in list.iter().enumerate() {
                    if list[..i].iter().any(|p| p.value == e.value) {
                        let (line, col) = index.line_col(e.span.start);
                        out.push(PolicyDiagnostic {
                            range: e.span.clone(),
                            line,
                            col,
                            message: format!("\"{}\" is already in `{key}`", e.value),
                            severity: DiagnosticSeverity::Warning,
                        });
                    }
                }
            }
            out
        }
    }
}

/// Warnings for the entries an untrusted workspace policy has that are ignored until trusted.
/// The LSP layer shows these for `.airlock/policy.toml` when `Loaded::workspace_trusted` is
/// false.
pub fn loosening_diagnostics(text: &str) -> Vec<PolicyDiagnostic> {
    crate::load::loosening_warnings(text, Path::new(""))
        .into_iter()
        .map(|w| PolicyDiagnostic {
            range: w.span,
            line: w.line,
            col: w.col,
            message: w.message,
            severity: DiagnosticSeverity::Warning,
        })
        .collect()
}

fn key_doc(key: &str) -> Option<&'static str> {
    Some(match key {
        "version" => "Format version of this policy file. Must be `1`.",
        "lock" => {
            "Managed policy only: keys that lower layers (user, workspace) may not set, e.g. \
             `\"commands.allow\"` or a whole table `\"network\"`. Their entries for a locked key \
             are ignored with a warning. Ignored (with a warning) outside the managed policy."
        }
        "files" => {
            "Rules about paths: gitignore-style globs relative to the workspace root, matched \
             against the path as written and after resolving symlinks and `..`."
        }
        "files.deny_read" => {
            "The agent may not read matching paths (and they are hidden from its commands where \
             the sandbox can). Built in when no rule matches: `.env*`."
        }
        "files.allow_read" => {
            "Reads of matching paths are allowed even where the built-in default denies them \
             (e.g. `.env.example`). Loosening: ignored in an untrusted workspace policy. A \
             `deny_read` rule in any layer still wins."
        }
        "files.protect" => {
            "Matching paths are never writable by the agent or its commands (added to the \
             built-in `.git/hooks/`, `.git/config`, `.airlock/`, `.envrc`, `.vscode/`, `.idea/`)."
        }
        "files.ask_write" => {
            "Writes to matching paths always need review, also for commands' redirections. \
             Agent edits go through proposals anyway; this makes it explicit and stronger."
        }
        "commands" => {
            "Rules about commands the agent runs. Each rule is an argv prefix: \"cargo test\" \
             matches `cargo test --all`, not `cargo testx`. Compound commands are split and every \
             part is decided; the strictest part wins."
        }
        "commands.default" => {
            "Verdict for a command no rule matches (built-in: \"ask\"). \"allow\" is loosening and \
             ignored in an untrusted workspace policy."
        }
        "commands.allow" => {
            "Commands that run without asking. Loosening: ignored in an untrusted workspace \
             policy. A bare program name does not match look-alikes (`./cargo`, `/tmp/cargo`)."
        }
        "commands.ask" => "Commands that need the user's approval each time.",
        "commands.deny" => "Commands that never run.",
        "network" => {
            "Rules about hosts the agent's commands may connect to: `host`, `*.suffix` \
             (subdomains only), `*`, each with an optional `:port`."
        }
        "network.default" => {
            "Verdict for a host no rule matches (built-in: \"deny\"). Anything looser is ignored \
             in an untrusted workspace policy."
        }
        "network.allow" => {
            "Hosts the agent's commands may reach. Loosening: ignored in an untrusted workspace \
             policy."
        }
        "network.deny" => "Hosts that are never reachable, whatever other layers allow.",
        _ => return None,
    })
}

fn value_doc(key: &str, value: &str) -> Option<String> {
    match key {
        "files.deny_read" | "files.allow_read" | "files.protect" | "files.ask_write" => {
            Some(format!("Matches {}.", crate::glob::describe(value)))
        }
        "commands.allow" | "commands.ask" | "commands.deny" => {
            Some(format!("Matches {}.", crate::eval::describe_command(value)))
        }
        "network.allow" | "network.deny" => {
            Some(format!("Matches {}.", crate::eval::describe_domain(value)))
        }
        "commands.default" | "network.default" => Some(match value {
            "allow" => "allow: runs without asking".to_owned(),
            "ask" => "ask: the user approves each time".to_owned(),
            "deny" => "deny: never".to_owned(),
            other => format!("`{other}` is not a verdict (allow, ask, deny)"),
        }),
        "lock" => key_doc(value).map(|d| format!("Locks `{value}`: {d}")),
        _ => None,
    }
}

/// Markdown explaining the key or rule under `offset`, if any.
pub fn hover(text: &str, offset: usize) -> Option<String> {
    let (doc, _) = DeTable::parse_recoverable(text);
    let contains =
        |span: Range<usize>| span.start <= offset && offset < span.end.max(span.start + 1);
    for (key, value) in doc.get_ref().iter() {
        let name: &str = key.get_ref();
        if contains(key.span()) {
            return key_doc(name).map(|d| format!("**{name}**: {d}"));
        }
        match value.get_ref() {
            DeValue::Table(table) => {
                for (k, v) in table.iter() {
                    let full = format!("{name}.{}", k.get_ref());
                    if contains(k.span()) {
                        return key_doc(&full).map(|d| format!("**{full}**: {d}"));
                    }
                    if let Some(s) = hover_value(&full, v, offset) {
                        return Some(s);
                    }
                }
            }
            _ => {
                if let Some(s) = hover_value(name, value, offset) {
                    return Some(s);
                }
            }
        }
    }
    None
}

fn hover_value(key: &str, value: &toml::Spanned<DeValue<'_>>, offset: usize) -> Option<String> {
    let span = value.span();
    if !(span.start <= offset && offset < span.end) {
        return None;
    }
    match value.get_ref() {
        DeValue::String(s) => value_doc(key, s).map(|d| format!("`{s}` ({key}): {d}")),
        DeValue::Array(items) => items.iter().find_map(|item| {
            let sp = item.span();
            match item.get_ref() {
                DeValue::String(s) if sp.start <= offset && offset < sp.end => {
                    value_doc(key, s).map(|d| format!("`{s}` ({key}): {d}"))
                }
                _ => None,
            }
        }),
        _ => None,
    }
}

/// Keys (or values) that fit at `offset`.
pub fn completions(text: &str, offset: usize) -> Vec<Completion> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    let table = before[..line_start]
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .map(|t| t.trim().to_owned())
        })
        .unwrap_or_default();
    let doc = |key: &str| key_doc(key).unwrap_or("").to_owned();
    let items = |keys: Vec<String>| -> Vec<Completion> {
        keys.into_iter()
            .map(|k| Completion {
                detail: doc(&k),
                label: k.rsplit('.').next().unwrap_or(&k).to_owned(),
            })
            .collect()
    };
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        return ["files", "commands", "network"]
            .iter()
            .map(|t| Completion {
                label: (*t).to_owned(),
                detail: doc(t),
            })
            .collect();
    }
    if let Some((key, _)) = line.split_once('=') {
        let key = key.trim();
        if key == "default" && (table == "commands" || table == "network") {
            return ["allow", "ask", "deny"]
                .iter()
                .map(|v| Completion {
                    label: format!("\"{v}\""),
                    detail: value_doc("commands.default", v).unwrap_or_default(),
                })
                .collect();
        }
        if key == "lock" && table.is_empty() {
            return file::lockable_keys()
                .into_iter()
                .map(|k| Completion {
                    label: format!("\"{k}\""),
                    detail: doc(&k),
                })
                .collect();
        }
        return Vec::new();
    }
    let sub: &[&str] = match table.as_str() {
        "files" => FILES_KEYS,
        "commands" => COMMANDS_KEYS,
        "network" => NETWORK_KEYS,
        "" => {
            return items(vec!["version".into(), "lock".into()])
                .into_iter()
                .chain(["files", "commands", "network"].iter().map(|t| Completion {
                    label: format!("[{t}]"),
                    detail: doc(t),
                }))
                .collect();
        }
        _ => return Vec::new(),
    };
    items(sub.iter().map(|k| format!("{table}.{k}")).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum AddRuleError {
    #[error("a {category:?} rule cannot be \"{verdict}\"")]
    Unsupported {
        category: RuleCategory,
        verdict: Verdict,
    },
    #[error("invalid rule: {0}")]
    InvalidPattern(String),
    #[error("{}: cannot edit the policy file: {message}", path.display())]
    Edit { path: PathBuf, message: String },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{}: cannot write the policy file: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
}

/// The `table.key` a rule of this category and verdict goes to.
pub fn rule_key(category: RuleCategory, verdict: Verdict) -> Option<(&'static str, &'static str)> {
    use RuleCategory::*;
    use Verdict::*;
    Some(match (category, verdict) {
        (Read, Allow) => ("files", "allow_read"),
        (Read, Deny) => ("files", "deny_read"),
        (Write, Ask) => ("files", "ask_write"),
        (Write, Deny) => ("files", "protect"),
        (Command, Allow) => ("commands", "allow"),
        (Command, Ask) => ("commands", "ask"),
        (Command, Deny) => ("commands", "deny"),
        (Network, Allow) => ("network", "allow"),
        (Network, Deny) => ("network", "deny"),
        _ => return None,
    })
}

/// Appends a rule to a policy file (created with `version = 1` if missing), keeping its
/// comments and layout. Does nothing if the rule is already there.
pub fn add_rule(
    path: &Path,
    category: RuleCategory,
    verdict: Verdict,
    pattern: &str,
) -> Result<(), AddRuleError> {
    let text = crate::load::read_policy_text(path)?;
    if let Some(new_text) = with_rule(text.as_deref(), path, category, verdict, pattern)? {
        write_policy(path, &new_text)?;
    }
    Ok(())
}

/// Whether `pattern` is a valid rule of this category (a glob, an argv prefix without shell
/// syntax, a host pattern); the error says why not.
pub fn validate_rule(category: RuleCategory, pattern: &str) -> Result<(), String> {
    match category {
        RuleCategory::Read | RuleCategory::Write => crate::glob::validate(pattern),
        RuleCategory::Command => crate::eval::validate_command_rule(pattern),
        RuleCategory::Network => crate::eval::DomainRule::parse(pattern).map(|_| ()),
    }
}

/// What [`add_workspace_rule`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceRule {
    /// The workspace policy file.
    pub path: PathBuf,
    /// `false` when the rule was there already (nothing written).
    pub added: bool,
    /// Whether the file is trusted now, i.e. whether its loosening rules (like this one) apply.
    pub trusted: bool,
}

/// Appends a rule to the workspace policy (`.airlock/policy.toml`) because the user chose it in
/// an approval, keeping comments and layout.
///
/// Trust: a workspace policy's loosening rules apply only while its exact content is trusted.
/// If the file as read here was trusted (or did not exist), the trust is moved to the new
/// content: the only difference between the trusted text and the new one is the rule the user
/// just chose, so nothing the user has not approved becomes trusted. The old content is read
/// once, and the new content is derived from exactly that text. Otherwise the file stays
/// untrusted and the new rule applies after `airlock policy trust`.
pub fn add_workspace_rule(
    paths: &crate::PolicyPaths,
    category: RuleCategory,
    verdict: Verdict,
    pattern: &str,
) -> Result<WorkspaceRule, AddRuleError> {
    let path = paths.workspace_policy();
    let old = crate::load::read_policy_text(&path)?;
    let was_trusted = match &old {
        None => true,
        // An unreadable or corrupt trust store trusts nothing.
        Some(text) => crate::trust::is_trusted(
            &paths.trust_store,
            &path,
            &crate::trust::file_sha256(text.as_bytes()),
        )
        .unwrap_or(false),
    };
    let Some(new_text) = with_rule(old.as_deref(), &path, category, verdict, pattern)? else {
        return Ok(WorkspaceRule {
            path,
            added: false,
            trusted: was_trusted && old.is_some(),
        });
    };
    write_policy(&path, &new_text)?;
    if was_trusted {
        crate::trust::pin(
            &paths.trust_store,
            &path,
            &crate::trust::file_sha256(new_text.as_bytes()),
        )?;
    }
    Ok(WorkspaceRule {
        path,
        added: true,
        trusted: was_trusted,
    })
}

/// `text` (a policy file's content, `None` when the file does not exist) with one more rule,
/// or `None` when the rule is there already. Refuses to build on an invalid file and never
/// returns a text that would not validate.
pub fn with_rule(
    text: Option<&str>,
    path: &Path,
    category: RuleCategory,
    verdict: Verdict,
    pattern: &str,
) -> Result<Option<String>, AddRuleError> {
    let (table, key) =
        rule_key(category, verdict).ok_or(AddRuleError::Unsupported { category, verdict })?;
    let pattern = pattern.trim();
    validate_rule(category, pattern).map_err(AddRuleError::InvalidPattern)?;
    let text = text.unwrap_or("version = 1\n");
    // Never build on an invalid file: the user has to fix it first.
    file::parse(text).map_err(|errors| PolicyError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    let edit_err = |message: String| AddRuleError::Edit {
        path: path.to_path_buf(),
        message,
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| edit_err(format!("{e}")))?;
    let t = doc
        .entry(table)
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| edit_err(format!("`{table}` is not a table")))?;
    let item = t.entry(key).or_insert_with(|| {
        toml_edit::Item::Value(toml_edit::Value::Array(toml_edit::Array::new()))
    });
    let array = item
        .as_array_mut()
        .ok_or_else(|| edit_err(format!("`{table}.{key}` is not an array")))?;
    if array.iter().any(|v| v.as_str() == Some(pattern)) {
        return Ok(None);
    }
    array.push(pattern);
    let new_text = doc.to_string();
    file::parse(&new_text).map_err(|errors| PolicyError::Invalid {
        path: path.to_path_buf(),
        errors,
    })?;
    Ok(Some(new_text))
}

fn write_policy(path: &Path, text: &str) -> Result<(), AddRuleError> {
    crate::atomic::write(path, text.as_bytes()).map_err(|source| AddRuleError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TEXT: &str = "version = 1\n# keep me\n[commands]\nallow = [\"cargo test\"] # tests\ndeny = [\"curl\", \"curl\"]\n[files]\nprotect = [\"secrets/\"]\n[network]\nallow = [\"*.crates.io:443\"]\n";

    #[test]
    fn diagnostics_have_ranges() {
        let text = "version = 1\n[commands]\nalow = []\n";
        let d = diagnostics(text);
        assert_eq!(d.len(), 1);
        assert_eq!(&text[d[0].range.clone()], "alow");
        assert_eq!((d[0].line, d[0].col), (3, 1));
        assert_eq!(d[0].severity, DiagnosticSeverity::Error);
        let d = diagnostics(TEXT);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].severity, DiagnosticSeverity::Warning);
        assert!(d[0].message.contains("already"));
    }

    #[test]
    fn loosening_is_flagged() {
        let d = loosening_diagnostics(TEXT);
        let texts: Vec<&str> = d.iter().map(|d| &TEXT[d.range.clone()]).collect();
        assert_eq!(texts, ["\"cargo test\"", "\"*.crates.io:443\""]);
    }

    #[test]
    fn hover_explains_keys_and_rules() {
        let at = |needle: &str| TEXT.find(needle).unwrap() + 1;
        assert!(
            hover(TEXT, at("allow ="))
                .unwrap()
                .contains("**commands.allow**")
        );
        let h = hover(TEXT, at("cargo test")).unwrap();
        assert!(h.contains("`cargo testx` does not match"), "{h}");
        let h = hover(TEXT, at("secrets/")).unwrap();
        assert!(h.contains("at any depth"), "{h}");
        let h = hover(TEXT, at("*.crates")).unwrap();
        assert!(h.contains("any subdomain of `crates.io`"), "{h}");
        assert!(hover(TEXT, at("# keep")).is_none());
        assert!(
            hover(TEXT, at("commands]"))
                .unwrap()
                .starts_with("**commands**")
        );
        assert!(hover(TEXT, at("version")).unwrap().contains("Must be `1`"));
        let h = hover("version = 1\n[commands]\ndefault = \"ask\"\n", 34).unwrap();
        assert!(h.contains("the user approves"), "{h}");
        let h = hover("version = 1\nlock = [\"network\"]\n", 22).unwrap();
        assert!(h.starts_with("`network` (lock): Locks `network`"), "{h}");
        assert!(hover(TEXT, usize::MAX).is_none());
        assert!(hover("[[[", 1).is_none());
    }

    #[test]
    fn completion_by_context() {
        let labels = |text: &str| -> Vec<String> {
            completions(text, text.len())
                .into_iter()
                .map(|c| c.label)
                .collect()
        };
        assert_eq!(labels("version = 1\n[files]\n"), FILES_KEYS);
        assert_eq!(labels("version = 1\n[network]\nde"), NETWORK_KEYS);
        assert_eq!(
            labels("[commands]\ndefault = "),
            ["\"allow\"", "\"ask\"", "\"deny\""]
        );
        assert!(labels("").contains(&"[commands]".to_owned()));
        assert!(labels("lock = [").contains(&"\"network.allow\"".to_owned()));
        assert!(completions("é", 1).len() > 1);
    }

    #[test]
    fn add_rule_preserves_formatting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, TEXT).unwrap();
        add_rule(&path, RuleCategory::Command, Verdict::Allow, "git status").unwrap();
        add_rule(&path, RuleCategory::Command, Verdict::Allow, "git status").unwrap();
        add_rule(&path, RuleCategory::Read, Verdict::Deny, "*.pem").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# keep me\n"), "{text}");
        assert!(
            text.contains("allow = [\"cargo test\", \"git status\"] # tests\n"),
            "{text}"
        );
        assert!(text.contains("deny_read = [\"*.pem\"]"), "{text}");
        assert_eq!(text.matches("git status").count(), 1);
        // Created when missing.
        let new = dir.path().join("sub/new.toml");
        add_rule(&new, RuleCategory::Network, Verdict::Allow, "crates.io").unwrap();
        let parsed = crate::file::parse(&std::fs::read_to_string(&new).unwrap()).unwrap();
        assert_eq!(parsed.network.allow[0].value, "crates.io");
        // Refusals.
        assert!(add_rule(&path, RuleCategory::Network, Verdict::Ask, "x.com").is_err());
        assert!(add_rule(&path, RuleCategory::Command, Verdict::Deny, "rm; ls").is_err());
        std::fs::write(&path, "version = 1\nbogus = 1\n").unwrap();
        assert!(add_rule(&path, RuleCategory::Command, Verdict::Deny, "rm").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "version = 1\nbogus = 1\n"
        );
    }

    #[test]
    fn workspace_rule_moves_trust_only_from_trusted_content() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::PolicyPaths {
            workspace_root: dir.path().join("ws"),
            user_policy: dir.path().join("user.toml"),
            managed_policy: dir.path().join("managed.toml"),
            trust_store: dir.path().join("trust.json"),
        };
        let file = paths.workspace_policy();
        let trusted_now = || {
            let text = std::fs::read(&file).unwrap();
            crate::trust::is_trusted(&paths.trust_store, &file, &crate::trust::file_sha256(&text))
                .unwrap()
        };
        // Untrusted file: the rule is written, trust is not granted.
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "version = 1 # mine\n").unwrap();
        let r = add_workspace_rule(&paths, RuleCategory::Command, Verdict::Allow, "make").unwrap();
        assert_eq!((r.added, r.trusted), (true, false));
        assert!(!trusted_now());
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "version = 1 # mine\n\n[commands]\nallow = [\"make\"]\n"
        );
        // Trusted file: trust follows the user's own edit.
        crate::trust_workspace(&paths).unwrap();
        let r = add_workspace_rule(&paths, RuleCategory::Network, Verdict::Allow, "x.test:443")
            .unwrap();
        assert_eq!((r.added, r.trusted), (true, true));
        assert!(trusted_now());
        let loaded = crate::load(&paths).unwrap();
        assert!(loaded.workspace_trusted);
        assert_eq!(
            loaded.policy.decide_domain("x.test", Some(443)).verdict,
            Verdict::Allow
        );
        // Again: nothing to write.
        let r = add_workspace_rule(&paths, RuleCategory::Network, Verdict::Allow, "x.test:443")
            .unwrap();
        assert_eq!((r.added, r.trusted), (false, true));
        // Changed behind our back: no longer trusted, and adding a rule does not re-trust it.
        std::fs::write(&file, "version = 1\n[network]\nallow = [\"*\"]\n").unwrap();
        let r = add_workspace_rule(&paths, RuleCategory::Command, Verdict::Allow, "ls").unwrap();
        assert!(!r.trusted);
        assert!(!trusted_now());
        // Missing file: created with only the user's rule, and trusted.
        std::fs::remove_file(&file).unwrap();
        let r = add_workspace_rule(&paths, RuleCategory::Command, Verdict::Allow, "ls").unwrap();
        assert!(r.trusted && trusted_now());
    }
}
