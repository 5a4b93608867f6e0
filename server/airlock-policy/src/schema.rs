//! The JSON Schema of a policy file, generated from the types below, and the tests that keep
//! `schemas/policy.schema.json` and the validator in `file.rs` in step with them.
//!
//! Regenerate the checked-in schema with
//! `AIRLOCK_UPDATE_SCHEMA=1 cargo test -p airlock-policy schema`.
#![allow(dead_code, clippy::unwrap_used)]

use schemars::JsonSchema;

/// Verdict of a default.
#[derive(JsonSchema)]
#[schemars(rename = "Verdict")]
enum VerdictSchema {
    #[schemars(rename = "allow")]
    Allow,
    #[schemars(rename = "ask")]
    Ask,
    #[schemars(rename = "deny")]
    Deny,
}

/// Airlock policy file (`.airlock/policy.toml`, `~/.config/airlock/policy.toml`,
/// `/etc/airlock/policy.toml`). For every decision, the strictest matching rule of all layers
/// wins (deny > ask > allow). See docs/policy.md.
#[derive(JsonSchema)]
#[schemars(title = "Airlock policy", deny_unknown_fields)]
struct PolicyFileSchema {
    /// Format version. Must be 1.
    #[schemars(range(min = 1, max = 1))]
    version: u32,
    /// Managed policy only: keys that lower layers may not set (a table, or `table.key`).
    #[schemars(default)]
    lock: Vec<LockKey>,
    files: Option<FilesSchema>,
    commands: Option<CommandsSchema>,
    network: Option<NetworkSchema>,
}

/// Rules about paths: gitignore-style globs relative to the workspace root.
#[derive(JsonSchema)]
#[schemars(rename = "Files", deny_unknown_fields)]
struct FilesSchema {
    /// The agent may not read matching paths. Built in when nothing matches: `.env*`.
    #[schemars(default)]
    deny_read: Vec<String>,
    /// Reads allowed even where the built-in default denies them (e.g. `.env.example`).
    /// Loosening: ignored in an untrusted workspace policy.
    #[schemars(default)]
    allow_read: Vec<String>,
    /// Never writable by the agent or its commands (added to the built-in protected paths).
    #[schemars(default)]
    protect: Vec<String>,
    /// Writes always need review.
    #[schemars(default)]
    ask_write: Vec<String>,
}

/// Rules about commands: argv prefixes ("cargo test" matches `cargo test --all`).
#[derive(JsonSchema)]
#[schemars(rename = "Commands", deny_unknown_fields)]
struct CommandsSchema {
    /// Verdict when no rule matches (built-in: ask).
    default: Option<VerdictSchema>,
    /// Run without asking. Loosening: ignored in an untrusted workspace policy.
    #[schemars(default)]
    allow: Vec<String>,
    /// Need approval each time.
    #[schemars(default)]
    ask: Vec<String>,
    /// Never run.
    #[schemars(default)]
    deny: Vec<String>,
}

/// Rules about network hosts: `host`, `*.suffix`, `*`, each with an optional `:port`.
#[derive(JsonSchema)]
#[schemars(rename = "Network", deny_unknown_fields)]
struct NetworkSchema {
    /// Verdict when no rule matches (built-in: deny).
    default: Option<VerdictSchema>,
    /// Reachable hosts. Loosening: ignored in an untrusted workspace policy.
    #[schemars(default)]
    allow: Vec<String>,
    /// Never reachable.
    #[schemars(default)]
    deny: Vec<String>,
}

/// A lockable key.
#[derive(JsonSchema)]
enum LockKey {
    #[schemars(rename = "files")]
    Files,
    #[schemars(rename = "files.deny_read")]
    FilesDenyRead,
    #[schemars(rename = "files.allow_read")]
    FilesAllowRead,
    #[schemars(rename = "files.protect")]
    FilesProtect,
    #[schemars(rename = "files.ask_write")]
    FilesAskWrite,
    #[schemars(rename = "commands")]
    Commands,
    #[schemars(rename = "commands.default")]
    CommandsDefault,
    #[schemars(rename = "commands.allow")]
    CommandsAllow,
    #[schemars(rename = "commands.ask")]
    CommandsAsk,
    #[schemars(rename = "commands.deny")]
    CommandsDeny,
    #[schemars(rename = "network")]
    Network,
    #[schemars(rename = "network.default")]
    NetworkDefault,
    #[schemars(rename = "network.allow")]
    NetworkAllow,
    #[schemars(rename = "network.deny")]
    NetworkDeny,
}

fn generated() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(PolicyFileSchema)).unwrap();
    drop_null(&mut schema);
    schema["$id"] = "https://airlock.invalid/schemas/policy.schema.json".into();
    schema
}

/// TOML has no null (an absent key is how to leave something unset), so `Option` fields are
/// turned from `anyOf: [T, null]` into plain `T`.
fn drop_null(v: &mut serde_json::Value) {
    if let Some(obj) = v.as_object_mut() {
        if let Some(serde_json::Value::Array(any)) = obj.get("anyOf") {
            let rest: Vec<serde_json::Value> = any
                .iter()
                .filter(|s| s.get("type").and_then(|t| t.as_str()) != Some("null"))
                .cloned()
                .collect();
            if rest.len() == 1 {
                obj.remove("anyOf");
                if let Some(serde_json::Value::Object(inner)) = rest.into_iter().next() {
                    obj.extend(inner);
                }
            }
        }
        for child in obj.values_mut() {
            drop_null(child);
        }
    } else if let Some(arr) = v.as_array_mut() {
        arr.iter_mut().for_each(drop_null);
    }
}

fn checked_in_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/policy.schema.json")
}

/// Objects with sorted keys, so the file is the same whether or not another crate in the build
/// turns on serde_json's `preserve_order`.
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<(String, serde_json::Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted_keys(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sorted_keys).collect())
        }
        other => other,
    }
}

#[test]
fn checked_in_schema_matches_the_types() {
    let want = sorted_keys(generated());
    let path = checked_in_path();
    if std::env::var_os("AIRLOCK_UPDATE_SCHEMA").is_some() {
        let text = serde_json::to_string_pretty(&want).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
    }
    let have: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date; regenerate with AIRLOCK_UPDATE_SCHEMA=1 cargo test -p airlock-policy schema",
        path.display()
    );
}

fn keys(schema: &serde_json::Value, pointer: &str) -> Vec<String> {
    let mut k: Vec<String> = schema
        .pointer(pointer)
        .and_then(|v| v.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[test]
fn validator_accepts_exactly_the_schema_keys() {
    let s = generated();
    assert_eq!(keys(&s, "/properties"), sorted(crate::file::TOP_KEYS));
    assert_eq!(
        keys(&s, "/$defs/Files/properties"),
        sorted(crate::file::FILES_KEYS)
    );
    assert_eq!(
        keys(&s, "/$defs/Commands/properties"),
        sorted(crate::file::COMMANDS_KEYS)
    );
    assert_eq!(
        keys(&s, "/$defs/Network/properties"),
        sorted(crate::file::NETWORK_KEYS)
    );
    let mut lock: Vec<String> = s
        .pointer("/$defs/LockKey/enum")
        .and_then(|v| v.as_array())
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    lock.sort();
    let mut want = crate::file::lockable_keys();
    want.sort();
    assert_eq!(lock, want);
    assert_eq!(
        s["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "draft 2020-12"
    );
}

/// Every ```toml example in docs/policy.md is a valid policy (the docs cannot drift from the
/// validator either).
#[test]
fn documented_examples_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut n = 0;
    for block in doc.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        if text.starts_with("# invalid") {
            assert!(
                crate::file::parse(text).is_err(),
                "should be invalid:\n{text}"
            );
            continue;
        }
        if let Err(e) = crate::file::parse(text) {
            panic!("docs/policy.md example is invalid: {e:?}\n{text}");
        }
        n += 1;
    }
    assert!(n >= 3, "docs/policy.md should carry examples");
}
