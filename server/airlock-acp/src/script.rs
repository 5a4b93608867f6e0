//! The script format of the embedded agent (`airlock agent mock --script FILE`), documented in
//! `docs/agent-script.md`.
//!
//! Guarantees: a script that loads is fully validated — every step has exactly one action and
//! only the fields that action uses — and every error names the file and the line of the step
//! (or of the TOML syntax error) at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::types::{PermissionKind, StopReason, ToolKind};

/// The script used when `--script` is absent (the `airlock demo` walkthrough).
pub const DEFAULT_SCRIPT: &str = include_str!("../scripts/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("{file}: cannot read the script: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },
}

/// A parsed, validated script.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub name: Option<String>,
    pub turns: Vec<Turn>,
}

/// One answer to a `session/prompt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Case-insensitive substring of the prompt that selects this turn; `None`: the turn is
    /// used in order by prompts that match no `match` turn.
    pub matches: Option<String>,
    /// 1-based line of the `[[turn]]` header.
    pub line: usize,
    pub steps: Vec<ScriptStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStep {
    /// 1-based line of the step, quoted in the agent's reports.
    pub line: usize,
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    pub content: String,
    /// `pending`, `in_progress` or `completed`.
    pub status: String,
    /// `high`, `medium` or `low`.
    pub priority: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiffSpec {
    pub path: PathBuf,
    pub old_text: Option<String>,
    pub new_text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    pub search: String,
    pub with: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteContent {
    Inline(String),
    /// Applied in order to the file's content (as last read in this session, or read first).
    Replace(Vec<Replacement>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Message {
        text: String,
        repeat: u32,
    },
    Thought {
        text: String,
        repeat: u32,
    },
    Plan(Vec<PlanItem>),
    ToolCall {
        id: String,
        title: String,
        kind: ToolKind,
        status: String,
        locations: Vec<PathBuf>,
        content: Option<String>,
        diff: Option<DiffSpec>,
        raw_input: Option<serde_json::Value>,
    },
    ToolUpdate {
        id: String,
        title: Option<String>,
        status: Option<String>,
        content: Option<String>,
    },
    Read {
        path: PathBuf,
        line: Option<u32>,
        limit: Option<u32>,
        expect: Option<String>,
        echo: bool,
    },
    Write {
        path: PathBuf,
        content: WriteContent,
        announce: bool,
    },
    Run {
        command: String,
        args: Vec<String>,
        cwd: Option<PathBuf>,
        env: BTreeMap<String, String>,
        output_byte_limit: Option<u64>,
        kill_after_ms: Option<u64>,
    },
    Permission {
        title: String,
        tool_call_id: Option<String>,
        kind: ToolKind,
        options: Vec<PermissionKind>,
        locations: Vec<PathBuf>,
        diff: Option<DiffSpec>,
        raw_input: Option<serde_json::Value>,
        stop_if_rejected: bool,
    },
    Wait(u64),
    End(StopReason),
    Crash(i32),
    Stderr(String),
    /// Test aid: write `content` to `path` with plain file I/O, bypassing ACP (as agents with
    /// built-in file tools do), and say whether it worked. The server's agent sandbox must
    /// make this fail inside the workspace.
    WriteDisk {
        path: PathBuf,
        content: String,
    },
    /// Test aid: read `path` with plain file I/O, bypassing ACP, and say how many bytes came
    /// back (never the content) or the error.
    ReadDisk(PathBuf),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    name: Option<String>,
    #[serde(default)]
    turn: Vec<Spanned<RawTurn>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    #[serde(rename = "match")]
    matches: Option<String>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawPlanItem {
    Text(String),
    Full {
        content: String,
        status: Option<String>,
        priority: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDiff {
    path: PathBuf,
    old_text: Option<String>,
    new_text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplacement {
    search: String,
    with: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStep {
    // Actions: exactly one.
    message: Option<String>,
    thought: Option<String>,
    plan: Option<Vec<RawPlanItem>>,
    tool_call: Option<String>,
    tool_update: Option<String>,
    read: Option<PathBuf>,
    write: Option<PathBuf>,
    run: Option<String>,
    permission: Option<String>,
    wait: Option<u64>,
    end: Option<String>,
    crash: Option<i32>,
    stderr: Option<String>,
    write_disk: Option<PathBuf>,
    read_disk: Option<PathBuf>,
    // Modifiers.
    repeat: Option<u32>,
    title: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    locations: Option<Vec<PathBuf>>,
    content: Option<String>,
    diff: Option<RawDiff>,
    raw_input: Option<toml::Value>,
    line: Option<u32>,
    limit: Option<u32>,
    expect: Option<String>,
    echo: Option<bool>,
    replace: Option<Vec<RawReplacement>>,
    announce: Option<bool>,
    args: Option<Vec<String>>,
    cwd: Option<PathBuf>,
    env: Option<BTreeMap<String, String>>,
    output_byte_limit: Option<u64>,
    kill_after_ms: Option<u64>,
    tool_call_id: Option<String>,
    options: Option<Vec<String>>,
    stop_if_rejected: Option<bool>,
}

/// Reads and validates a script file.
pub fn load(path: &Path) -> Result<Script, ScriptError> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Io {
        file: file.clone(),
        source,
    })?;
    parse(&source, &file)
}

/// The built-in default script.
pub fn default_script() -> Result<Script, ScriptError> {
    parse(DEFAULT_SCRIPT, "<built-in default script>")
}

/// Byte offsets of line starts, so that naming the line of each step stays linear in the
/// script's length (a rescan per step made long scripts quadratic).
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(source: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// Parses and validates script text; `file` names it in errors.
pub fn parse(source: &str, file: &str) -> Result<Script, ScriptError> {
    let lines = LineIndex::new(source);
    let raw: RawScript = toml::from_str(source).map_err(|e| ScriptError::Invalid {
        file: file.to_owned(),
        line: e.span().map_or(1, |s| lines.line_of(s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut turns = Vec::new();
    for spanned_turn in raw.turn {
        let turn_line = lines.line_of(spanned_turn.span().start);
        let turn = spanned_turn.into_inner();
        if turn.step.is_empty() {
            return Err(ScriptError::Invalid {
                file: file.to_owned(),
                line: turn_line,
                message: String::from("turn has no steps (add `[[turn.step]]` tables)"),
            });
        }
        let mut steps = Vec::new();
        for spanned in turn.step {
            let line = lines.line_of(spanned.span().start);
            let step = validate(spanned.into_inner()).map_err(|message| ScriptError::Invalid {
                file: file.to_owned(),
                line,
                message,
            })?;
            steps.push(ScriptStep { line, step });
        }
        turns.push(Turn {
            matches: turn.matches.map(|m| m.to_lowercase()),
            line: turn_line,
            steps,
        });
    }
    if turns.is_empty() {
        return Err(ScriptError::Invalid {
            file: file.to_owned(),
            line: 1,
            message: String::from("script has no turns (add `[[turn]]` tables)"),
        });
    }
    Ok(Script {
        name: raw.name,
        turns,
    })
}

const ACTIONS: &str = "message, thought, plan, tool_call, tool_update, read, write, run, \
                       permission, wait, end, crash, stderr, write_disk, read_disk";

fn parse_kind(kind: Option<&str>, default: ToolKind) -> Result<ToolKind, String> {
    Ok(match kind {
        None => default,
        Some("read") => ToolKind::Read,
        Some("edit") => ToolKind::Edit,
        Some("delete") => ToolKind::Delete,
        Some("move") => ToolKind::Move,
        Some("search") => ToolKind::Search,
        Some("execute") => ToolKind::Execute,
        Some("think") => ToolKind::Think,
        Some("fetch") => ToolKind::Fetch,
        Some("switch_mode") => ToolKind::SwitchMode,
        Some("other") => ToolKind::Other,
        Some(other) => {
            return Err(format!(
                "unknown tool kind {other:?} (expected read, edit, delete, move, search, \
                 execute, think, fetch, switch_mode or other)"
            ));
        }
    })
}

fn check_one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown {what} {value:?} (expected one of: {})",
            allowed.join(", ")
        ))
    }
}

const TOOL_STATUSES: &[&str] = &["pending", "in_progress", "completed", "failed"];

fn toml_to_json(value: toml::Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| format!("raw_input cannot be expressed as JSON: {e}"))
}

fn diff(raw: Option<RawDiff>) -> Option<DiffSpec> {
    raw.map(|d| DiffSpec {
        path: d.path,
        old_text: d.old_text,
        new_text: d.new_text,
    })
}

/// Names of the modifier fields that are set, for "does not apply" errors.
fn set_modifiers(s: &RawStep) -> Vec<&'static str> {
    let mut set = Vec::new();
    macro_rules! check {
        ($($field:ident),*) => { $( if s.$field.is_some() { set.push(stringify!($field)); } )* };
    }
    check!(
        repeat,
        title,
        kind,
        status,
        locations,
        content,
        diff,
        raw_input,
        line,
        limit,
        expect,
        echo,
        replace,
        announce,
        args,
        cwd,
        env,
        output_byte_limit,
        kill_after_ms,
        tool_call_id,
        options,
        stop_if_rejected
    );
    set
}

fn validate(mut s: RawStep) -> Result<Step, String> {
    let mut actions = Vec::new();
    macro_rules! action {
        ($($field:ident),*) => { $( if s.$field.is_some() { actions.push(stringify!($field)); } )* };
    }
    action!(
        message,
        thought,
        plan,
        tool_call,
        tool_update,
        read,
        write,
        run,
        permission,
        wait,
        end,
        crash,
        stderr,
        write_disk,
        read_disk
    );
    let action = match actions.as_slice() {
        [one] => *one,
        [] => {
            return Err(format!(
                "step has no action; give exactly one of: {ACTIONS}"
            ));
        }
        many => {
            return Err(format!(
                "step has several actions ({}); split it into one step per action",
                many.join(", ")
            ));
        }
    };
    let allowed: &[&str] = match action {
        "message" | "thought" => &["repeat"],
        "tool_call" => &[
            "title",
            "kind",
            "status",
            "locations",
            "content",
            "diff",
            "raw_input",
        ],
        "tool_update" => &["title", "status", "content"],
        "read" => &["line", "limit", "expect", "echo"],
        "write" => &["content", "replace", "announce"],
        "write_disk" => &["content"],
        "run" => &["args", "cwd", "env", "output_byte_limit", "kill_after_ms"],
        "permission" => &[
            "kind",
            "tool_call_id",
            "options",
            "locations",
            "diff",
            "raw_input",
            "stop_if_rejected",
        ],
        _ => &[],
    };
    if let Some(extra) = set_modifiers(&s).into_iter().find(|m| !allowed.contains(m)) {
        return Err(format!("`{extra}` does not apply to a `{action}` step"));
    }
    let raw_input = s.raw_input.take().map(toml_to_json).transpose()?;
    let step = match action {
        "message" => Step::Message {
            text: s.message.unwrap_or_default(),
            repeat: s.repeat.unwrap_or(1),
        },
        "thought" => Step::Thought {
            text: s.thought.unwrap_or_default(),
            repeat: s.repeat.unwrap_or(1),
        },
        "plan" => {
            let mut items = Vec::new();
            for item in s.plan.unwrap_or_default() {
                let item = match item {
                    RawPlanItem::Text(content) => PlanItem {
                        content,
                        status: String::from("pending"),
                        priority: String::from("medium"),
                    },
                    RawPlanItem::Full {
                        content,
                        status,
                        priority,
                    } => PlanItem {
                        content,
                        status: status.unwrap_or_else(|| String::from("pending")),
                        priority: priority.unwrap_or_else(|| String::from("medium")),
                    },
                };
                check_one_of(
                    "plan status",
                    &item.status,
                    &["pending", "in_progress", "completed"],
                )?;
                check_one_of("plan priority", &item.priority, &["high", "medium", "low"])?;
                items.push(item);
            }
            Step::Plan(items)
        }
        "tool_call" => {
            let status = s.status.unwrap_or_else(|| String::from("pending"));
            check_one_of("tool call status", &status, TOOL_STATUSES)?;
            let id = s.tool_call.unwrap_or_default();
            Step::ToolCall {
                title: s.title.unwrap_or_else(|| id.clone()),
                id,
                kind: parse_kind(s.kind.as_deref(), ToolKind::Other)?,
                status,
                locations: s.locations.unwrap_or_default(),
                content: s.content,
                diff: diff(s.diff),
                raw_input,
            }
        }
        "tool_update" => {
            if let Some(status) = &s.status {
                check_one_of("tool call status", status, TOOL_STATUSES)?;
            }
            Step::ToolUpdate {
                id: s.tool_update.unwrap_or_default(),
                title: s.title,
                status: s.status,
                content: s.content,
            }
        }
        "read" => Step::Read {
            path: s.read.unwrap_or_default(),
            line: s.line,
            limit: s.limit,
            expect: s.expect,
            echo: s.echo.unwrap_or(false),
        },
        "write" => {
            let content = match (s.content, s.replace) {
                (Some(text), None) => WriteContent::Inline(text),
                (None, Some(list)) if !list.is_empty() => WriteContent::Replace(
                    list.into_iter()
                        .map(|r| Replacement {
                            search: r.search,
                            with: r.with,
                        })
                        .collect(),
                ),
                (None, Some(_)) => return Err(String::from("`replace` is empty")),
                (Some(_), Some(_)) => {
                    return Err(String::from(
                        "a `write` step takes either `content` or `replace`, not both",
                    ));
                }
                (None, None) => {
                    return Err(String::from(
                        "a `write` step needs `content` (the whole file) or `replace` \
                         (a list of {search, with})",
                    ));
                }
            };
            Step::Write {
                path: s.write.unwrap_or_default(),
                content,
                announce: s.announce.unwrap_or(false),
            }
        }
        "run" => {
            let run = s.run.unwrap_or_default();
            let (command, args) = match s.args {
                Some(args) => (run, args),
                None => {
                    let mut words = run.split_whitespace().map(str::to_owned);
                    let command = words.next().unwrap_or_default();
                    (command, words.collect())
                }
            };
            if command.is_empty() {
                return Err(String::from("`run` needs a command"));
            }
            Step::Run {
                command,
                args,
                cwd: s.cwd,
                env: s.env.unwrap_or_default(),
                output_byte_limit: s.output_byte_limit,
                kill_after_ms: s.kill_after_ms,
            }
        }
        "permission" => {
            let options = match s.options {
                None => vec![
                    PermissionKind::AllowOnce,
                    PermissionKind::AllowAlways,
                    PermissionKind::RejectOnce,
                ],
                Some(list) => list
                    .iter()
                    .map(|o| match o.as_str() {
                        "allow_once" => Ok(PermissionKind::AllowOnce),
                        "allow_always" => Ok(PermissionKind::AllowAlways),
                        "reject_once" => Ok(PermissionKind::RejectOnce),
                        "reject_always" => Ok(PermissionKind::RejectAlways),
                        other => Err(format!(
                            "unknown permission option {other:?} (expected allow_once, \
                             allow_always, reject_once or reject_always)"
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            };
            if options.is_empty() {
                return Err(String::from("`options` is empty"));
            }
            Step::Permission {
                title: s.permission.unwrap_or_default(),
                tool_call_id: s.tool_call_id,
                kind: parse_kind(s.kind.as_deref(), ToolKind::Other)?,
                options,
                locations: s.locations.unwrap_or_default(),
                diff: diff(s.diff),
                raw_input,
                stop_if_rejected: s.stop_if_rejected.unwrap_or(false),
            }
        }
        "wait" => Step::Wait(s.wait.unwrap_or_default()),
        "end" => {
            let reason = s.end.unwrap_or_default();
            Step::End(match reason.as_str() {
                "end_turn" => StopReason::EndTurn,
                "max_tokens" => StopReason::MaxTokens,
                "max_turn_requests" => StopReason::MaxTurnRequests,
                "refusal" => StopReason::Refusal,
                "cancelled" => StopReason::Cancelled,
                other => {
                    return Err(format!(
                        "unknown stop reason {other:?} (expected end_turn, max_tokens, \
                         max_turn_requests, refusal or cancelled)"
                    ));
                }
            })
        }
        "crash" => Step::Crash(s.crash.unwrap_or(1)),
        "write_disk" => Step::WriteDisk {
            path: s.write_disk.unwrap_or_default(),
            content: s.content.unwrap_or_default(),
        },
        "read_disk" => Step::ReadDisk(s.read_disk.unwrap_or_default()),
        _ => Step::Stderr(s.stderr.unwrap_or_default()),
    };
    Ok(step)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn error_of(source: &str) -> String {
        parse(source, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn line_index_names_1_based_lines() {
        let lines = LineIndex::new("a\nbc\n\nd");
        let got: Vec<usize> = [0, 1, 2, 4, 5, 6, 100]
            .iter()
            .map(|&o| lines.line_of(o))
            .collect();
        assert_eq!(got, [1, 1, 2, 2, 3, 4, 4]);
    }

    #[test]
    fn default_script_is_valid() {
        let script = default_script().unwrap();
        assert!(!script.turns.is_empty());
    }

    #[test]
    fn parses_every_action() {
        let script = parse(
            r#"
[[turn]]
match = "Fix"
[[turn.step]]
message = "hi"
repeat = 2
[[turn.step]]
plan = ["a", { content = "b", status = "completed", priority = "high" }]
[[turn.step]]
read = "src/lib.rs"
expect = "fn"
[[turn.step]]
write = "src/lib.rs"
replace = [{ search = "a", with = "b" }]
[[turn.step]]
run = "cargo test --quiet"
[[turn.step]]
permission = "Run it"
options = ["allow_once", "reject_once"]
stop_if_rejected = true
[[turn.step]]
end = "refusal"
"#,
            "t.toml",
        )
        .unwrap();
        let turn = &script.turns[0];
        assert_eq!(turn.matches.as_deref(), Some("fix"));
        assert_eq!(turn.steps.len(), 7);
        assert_eq!(turn.steps[0].line, 4);
        assert_eq!(
            turn.steps[4].step,
            Step::Run {
                command: "cargo".into(),
                args: vec!["test".into(), "--quiet".into()],
                cwd: None,
                env: BTreeMap::new(),
                output_byte_limit: None,
                kill_after_ms: None
            }
        );
        assert_eq!(turn.steps[6].step, Step::End(StopReason::Refusal));
    }

    #[test]
    fn errors_name_file_and_line() {
        let src = "[[turn]]\n[[turn.step]]\nmessage = \"a\"\n\n[[turn.step]]\nread = \"x\"\nwrite = \"y\"\n";
        assert_eq!(
            error_of(src),
            "t.toml:5: step has several actions (read, write); split it into one step per action"
        );
        let src = "[[turn]]\n[[turn.step]]\nread = \"x\"\necho = true\nrepeat = 3\n";
        assert_eq!(
            error_of(src),
            "t.toml:2: `repeat` does not apply to a `read` step"
        );
        let src = "[[turn]]\n[[turn.step]]\nend = \"done\"\n";
        assert!(error_of(src).starts_with("t.toml:2: unknown stop reason \"done\""));
        let src = "[[turn]]\n[[turn.step]]\nmesage = \"typo\"\n";
        let err = error_of(src);
        assert!(err.starts_with("t.toml:3: unknown field `mesage`"), "{err}");
        let src = "[[turn]]\n[[turn.step]]\nmessage = \"unterminated\n";
        assert!(error_of(src).starts_with("t.toml:3: "), "{}", error_of(src));
        assert_eq!(
            error_of(""),
            "t.toml:1: script has no turns (add `[[turn]]` tables)"
        );
        assert_eq!(
            error_of("[[turn]]\nmatch = \"x\"\n"),
            "t.toml:1: turn has no steps (add `[[turn.step]]` tables)"
        );
    }
}
