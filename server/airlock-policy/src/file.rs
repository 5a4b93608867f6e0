//! Parsing and validating one policy file's text.
//!
//! Guarantees: every problem in the text is reported (not just the first), each with a byte
//! span and a 1-based line and column; unknown keys come with a "did you mean" suggestion;
//! nothing here panics on any input. A file that validates contains only well-formed globs,
//! command prefixes and domain patterns, so compiling them later cannot fail.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::Verdict;

/// Policy files larger than this are rejected: a policy is a short, human-written file.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The only format version this build understands.
pub const VERSION: i64 = 1;

/// One problem in a policy file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// Byte range in the text.
    pub span: Range<usize>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// A string entry of the file with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub span: Range<usize>,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FilesTable {
    pub deny_read: Vec<Entry>,
    pub allow_read: Vec<Entry>,
    pub protect: Vec<Entry>,
    pub ask_write: Vec<Entry>,
}

#[derive(Debug, Clone, Default)]
pub struct CommandsTable {
    pub default: Option<(Verdict, Entry)>,
    pub allow: Vec<Entry>,
    pub ask: Vec<Entry>,
    pub deny: Vec<Entry>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkTable {
    pub default: Option<(Verdict, Entry)>,
    pub allow: Vec<Entry>,
    pub deny: Vec<Entry>,
}

/// A validated policy file.
#[derive(Debug, Clone, Default)]
pub struct PolicyFile {
    pub files: FilesTable,
    pub commands: CommandsTable,
    pub network: NetworkTable,
    pub lock: Vec<Entry>,
}

pub const TOP_KEYS: &[&str] = &["version", "lock", "files", "commands", "network"];
pub const FILES_KEYS: &[&str] = &["deny_read", "allow_read", "protect", "ask_write"];
pub const COMMANDS_KEYS: &[&str] = &["default", "allow", "ask", "deny"];
pub const NETWORK_KEYS: &[&str] = &["default", "allow", "deny"];

/// Every value `lock` accepts: a whole table or one of its keys.
pub fn lockable_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (table, sub) in [
        ("files", FILES_KEYS),
        ("commands", COMMANDS_KEYS),
        ("network", NETWORK_KEYS),
    ] {
        keys.push(table.to_owned());
        keys.extend(sub.iter().map(|k| format!("{table}.{k}")));
    }
    keys
}

/// Maps byte offsets to 1-based line/column.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, col + 1)
    }
}

struct Ctx<'a> {
    index: LineIndex<'a>,
    errors: Vec<FileError>,
}

impl Ctx<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = self.index.line_col(span.start);
        self.errors.push(FileError {
            span,
            line,
            col,
            message: message.into(),
        });
    }

    fn entry(&self, value: &str, span: Range<usize>) -> Entry {
        let (line, _) = self.index.line_col(span.start);
        Entry {
            value: value.to_owned(),
            span,
            line,
        }
    }
}

/// Checks a policy file's text; `Ok` carries the validated file.
pub fn check_text(text: &str) -> Result<(), Vec<FileError>> {
    parse(text).map(|_| ())
}

/// Parses and validates a policy file's text, reporting every problem found.
pub fn parse(text: &str) -> Result<PolicyFile, Vec<FileError>> {
    let mut ctx = Ctx {
        index: LineIndex::new(text),
        errors: Vec::new(),
    };
    if text.len() > MAX_POLICY_BYTES {
        ctx.error(
            0..0,
            format!(
                "policy file is {} bytes; the limit is {MAX_POLICY_BYTES}",
                text.len()
            ),
        );
        return Err(ctx.errors);
    }
    let (doc, parse_errors) = DeTable::parse_recoverable(text);
    for err in &parse_errors {
        let span = err.span().unwrap_or(0..0);
        ctx.error(span, format!("TOML syntax: {}", first_line(err.message())));
    }
    if !parse_errors.is_empty() {
        // Recovered values after a syntax error are guesses; validating them would only add
        // confusing follow-on errors.
        return Err(sorted(ctx.errors));
    }
    let mut file = PolicyFile::default();
    let root = doc.get_ref();
    let mut version_seen = false;
    for (key, value) in root.iter() {
        match key.get_ref().as_ref_str() {
            "version" => {
                version_seen = true;
                match value.get_ref() {
                    DeValue::Integer(i) if i.as_str() == "1" && i.radix() == 10 => {}
                    DeValue::Integer(i) => ctx.error(
                        value.span(),
                        format!(
                            "unsupported policy version {}; this airlock understands version {VERSION}",
                            i.as_str()
                        ),
                    ),
                    other => ctx.error(
                        value.span(),
                        format!("`version` must be the integer 1, found {}", other.type_str()),
                    ),
                }
            }
            "lock" => {
                let lockable = lockable_keys();
                for entry in strings(&mut ctx, "lock", value) {
                    if lockable.contains(&entry.value) {
                        file.lock.push(entry);
                    } else {
                        let hint = did_you_mean(&entry.value, lockable.iter().map(String::as_str));
                        ctx.error(
                            entry.span.clone(),
                            format!("`{}` cannot be locked{hint}", entry.value),
                        );
                    }
                }
            }
            "files" => {
                let Some(table) = table(&mut ctx, "files", value) else {
                    continue;
                };
                for (k, v) in table.iter() {
                    let name = k.get_ref().as_ref_str();
                    let list = match name {
                        "deny_read" => &mut file.files.deny_read,
                        "allow_read" => &mut file.files.allow_read,
                        "protect" => &mut file.files.protect,
                        "ask_write" => &mut file.files.ask_write,
                        _ => {
                            unknown_key(&mut ctx, "files", k, FILES_KEYS);
                            continue;
                        }
                    };
                    for entry in strings(&mut ctx, &format!("files.{name}"), v) {
                        match crate::glob::validate(&entry.value) {
                            Ok(()) => list.push(entry),
                            Err(msg) => ctx.error(entry.span.clone(), msg),
                        }
                    }
                }
            }
            "commands" => {
                let Some(table) = table(&mut ctx, "commands", value) else {
                    continue;
                };
                for (k, v) in table.iter() {
                    let name = k.get_ref().as_ref_str();
                    let list = match name {
                        "default" => {
                            file.commands.default = verdict(&mut ctx, "commands.default", v);
                            continue;
                        }
                        "allow" => &mut file.commands.allow,
                        "ask" => &mut file.commands.ask,
                        "deny" => &mut file.commands.deny,
                        _ => {
                            unknown_key(&mut ctx, "commands", k, COMMANDS_KEYS);
                            continue;
                        }
                    };
                    for entry in strings(&mut ctx, &format!("commands.{name}"), v) {
                        match crate::eval::validate_command_rule(&entry.value) {
                            Ok(()) => list.push(entry),
                            Err(msg) => ctx.error(entry.span.clone(), msg),
                        }
                    }
                }
            }
            "network" => {
                let Some(table) = table(&mut ctx, "network", value) else {
                    continue;
                };
                for (k, v) in table.iter() {
                    let name = k.get_ref().as_ref_str();
                    let list = match name {
                        "default" => {
                            file.network.default = verdict(&mut ctx, "network.default", v);
                            continue;
                        }
                        "allow" => &mut file.network.allow,
                        "deny" => &mut file.network.deny,
                        _ => {
                            unknown_key(&mut ctx, "network", k, NETWORK_KEYS);
                            continue;
                        }
                    };
                    for entry in strings(&mut ctx, &format!("network.{name}"), v) {
                        match crate::eval::DomainRule::parse(&entry.value) {
                            Ok(_) => list.push(entry),
                            Err(msg) => ctx.error(entry.span.clone(), msg),
                        }
                    }
                }
            }
            _ => unknown_key(&mut ctx, "the top level", key, TOP_KEYS),
        }
    }
    if !version_seen {
        ctx.error(
            0..0,
            "missing `version = 1` (the first line of every policy file)",
        );
    }
    if ctx.errors.is_empty() {
        Ok(file)
    } else {
        Err(sorted(ctx.errors))
    }
}

fn sorted(mut errors: Vec<FileError>) -> Vec<FileError> {
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    errors
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

trait AsRefStr {
    fn as_ref_str(&self) -> &str;
}

impl AsRefStr for std::borrow::Cow<'_, str> {
    fn as_ref_str(&self) -> &str {
        self
    }
}

fn table<'a, 'i>(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: &'a Spanned<DeValue<'i>>,
) -> Option<&'a DeTable<'i>> {
    match value.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            ctx.error(
                value.span(),
                format!(
                    "`{name}` must be a table (`[{name}]`), found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn strings(ctx: &mut Ctx<'_>, name: &str, value: &Spanned<DeValue<'_>>) -> Vec<Entry> {
    let DeValue::Array(items) = value.get_ref() else {
        ctx.error(
            value.span(),
            format!(
                "`{name}` must be an array of strings, found {}",
                value.get_ref().type_str()
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::String(s) if s.trim().is_empty() => {
                ctx.error(item.span(), format!("empty entry in `{name}`"));
            }
            DeValue::String(s) => out.push(ctx.entry(s, item.span())),
            other => ctx.error(
                item.span(),
                format!(
                    "entries of `{name}` must be strings, found {}",
                    other.type_str()
                ),
            ),
        }
    }
    out
}

fn verdict(
    ctx: &mut Ctx<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<(Verdict, Entry)> {
    match value.get_ref() {
        DeValue::String(s) => match Verdict::parse(s) {
            Some(v) => Some((v, ctx.entry(s, value.span()))),
            None => {
                let hint = did_you_mean(s, ["allow", "ask", "deny"].into_iter());
                ctx.error(
                    value.span(),
                    format!("`{name}` must be \"allow\", \"ask\" or \"deny\", found \"{s}\"{hint}"),
                );
                None
            }
        },
        other => {
            ctx.error(
                value.span(),
                format!(
                    "`{name}` must be \"allow\", \"ask\" or \"deny\", found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn unknown_key(
    ctx: &mut Ctx<'_>,
    place: &str,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    known: &[&str],
) {
    let name = key.get_ref().as_ref_str();
    let hint = did_you_mean(name, known.iter().copied());
    let expected = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    ctx.error(
        key.span(),
        format!("unknown key `{name}` in {place}{hint} (expected one of {expected})"),
    );
}

/// `"; did you mean `x`?"` for the closest candidate within a small edit distance, else `""`.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let best = candidates
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, c)) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn design_sketch_is_valid() {
        let text = r#"version = 1
[files]
deny_read  = [".env", ".env.*", "secrets/**"]
protect    = [".github/workflows/**"]
[commands]
default = "ask"
allow   = ["cargo build", "cargo test", "git status", "git diff"]
ask     = ["git push"]
deny    = ["sudo", "curl"]
[network]
default = "deny"
allow   = ["crates.io", "*.crates.io", "registry.npmjs.org"]
"#;
        let file = parse(text).unwrap();
        assert_eq!(file.commands.allow.len(), 4);
        assert_eq!(file.commands.allow[0].line, 7);
        assert_eq!(file.network.default.as_ref().unwrap().0, Verdict::Deny);
    }

    #[test]
    fn unknown_keys_suggest() {
        let e = errors("version = 1\n[files]\ndeny_raed = [\"a\"]\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("3:1: unknown key `deny_raed`"), "{e:?}");
        assert!(e[0].contains("did you mean `deny_read`?"), "{e:?}");
        let e = errors("version = 1\n[comands]\n");
        assert!(e[0].contains("did you mean `commands`?"), "{e:?}");
    }

    #[test]
    fn all_errors_are_reported_with_positions() {
        let e = errors(
            "version = 2\n[commands]\ndefault = \"maybe\"\nallow = [\"ls\", 3]\n[network]\nallow = \"x\"\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("1:11: unsupported policy version 2"),
            "{e:?}"
        );
        assert!(e[1].starts_with("3:11:"), "{e:?}");
        assert!(e[2].starts_with("4:16: entries of `commands.allow` must be strings"));
        assert!(e[3].starts_with("6:9: `network.allow` must be an array"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = errors("version = 1\n[files\n");
        assert!(!e.is_empty());
        assert!(e[0].starts_with("2:"), "{e:?}");
        assert!(e[0].contains("TOML syntax"), "{e:?}");
    }

    #[test]
    fn missing_version_and_bad_lock() {
        let e = errors("lock = [\"comands.allow\"]\n");
        assert!(
            e.iter()
                .any(|m| m.contains("did you mean `commands.allow`?")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.contains("missing `version = 1`")));
    }

    #[test]
    fn columns_count_characters() {
        let idx = LineIndex::new("é = 1\nab");
        assert_eq!(idx.line_col(2), (1, 2));
        assert_eq!(idx.line_col(8), (2, 2));
    }
}
