//! A real agent that writes to disk itself, offline: Gemini CLI (npm `@google/gemini-cli`,
//! installed by `scripts/install-gemini.sh`) with a recorded model, run with
//! `agent.isolation = "shadow"`. Airlock does not advertise its `fs`/`terminal` capabilities in
//! that mode, so Gemini edits the disk in-process — into the shadow. The real workspace must stay
//! untouched until accept, accept must write the exact content, and a rejected edit must be
//! reverted in the shadow.

use std::path::PathBuf;

use airlock_e2e::{Env, Lsp};
use serde_json::json;

fn gemini_js() -> Option<PathBuf> {
    let path = std::env::var_os("AIRLOCK_GEMINI_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/gemini/node_modules/@google/gemini-cli/bundle/gemini.js")
        });
    path.exists().then_some(path)
}

const NOTES: &str = "# Notes\n\n- written to disk by the agent\n";
const LIB: &str = "pub fn old_name() -> u32 {\n    1\n}\n";

fn recorded_model(lib: &std::path::Path) -> String {
    let turn = |parts: serde_json::Value| {
        json!({"method": "generateContentStream", "response": [{
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
        }]})
        .to_string()
    };
    [
        turn(json!([
            {"text": "I'll add a notes file.\n"},
            {"functionCall": {"name": "write_file", "args": {"file_path": "NOTES.md", "content": NOTES}}}
        ])),
        turn(json!([
            {"functionCall": {"name": "replace", "args": {
                "file_path": lib.display().to_string(),
                "old_string": "pub fn old_name()",
                "new_string": "pub fn new_name()",
                "instruction": "Rename old_name to new_name",
                "allow_multiple": false
            }}}
        ])),
        turn(json!([{"text": "Done."}])),
    ]
    .join("\n")
        + "\n"
}

/// The shadow's copy of a file, read from the server's state dir (overlay upper dir or copy).
fn shadow_file(env: &Env, rel: &str) -> Option<String> {
    let base = env.state.join("airlock/shadow");
    for ws in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        for layer in ["upper", "copy"] {
            if let Ok(text) = std::fs::read_to_string(ws.path().join(layer).join(rel)) {
                return Some(text);
            }
        }
    }
    None
}

#[test]
fn gemini_cli_writing_to_disk_is_previewed_through_the_shadow() -> anyhow::Result<()> {
    let Some(gemini) = gemini_js() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Gemini CLI is not installed: run scripts/install-gemini.sh"
        );
        eprintln!("SKIPPED: Gemini CLI not installed (bash scripts/install-gemini.sh)");
        return Ok(());
    };
    let env = Env::new();
    let lib = env.write("src/lib.rs", LIB);
    let agent_home = env.dir.path().join("gemini-home");
    std::fs::create_dir_all(agent_home.join(".gemini"))?;
    std::fs::write(
        agent_home.join(".gemini/settings.json"),
        json!({
            "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "telemetry": {"enabled": false},
            "privacy": {"usageStatisticsEnabled": false},
            "ide": {"enabled": false, "hasSeenNudge": true},
            "model": {"name": "gemini-2.5-flash"},
            "sandbox": false
        })
        .to_string(),
    )?;
    let responses = env.dir.path().join("responses.jsonl");
    std::fs::write(&responses, recorded_model(&lib))?;
    let options = json!({"agent": {
        "isolation": "shadow",
        "command": ["node", gemini, "--acp", "--fake-responses", responses],
        "writable": [agent_home],
        "env": {
            "HOME": agent_home, "GEMINI_CLI_HOME": agent_home, "GEMINI_API_KEY": "fake-key",
            "GEMINI_CLI_NO_RELAUNCH": "true", "NO_COLOR": "1"
        }
    }});
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(
        &env.workspace_uri(),
        json!({"experimental": {"airlock": true}}),
        options,
    )?;
    let stop = lsp.request(
        "airlock/prompt",
        json!({"text": "Add notes, rename old_name"}),
    )?;
    assert_eq!(stop["stopReason"], "end_turn");

    // Each edit is attributed to Gemini's tool call (its update carries the diff); a proposal
    // made from the shadow before that update arrived is superseded by the attributed one.
    let attributed = |uri: String| {
        move |p: &serde_json::Value| {
            p["event"] == "created"
                && p["uri"] == uri.as_str()
                && p["proposal"]["origin"]["toolCall"].is_string()
        }
    };
    let notes = lsp.wait_for("airlock/proposal", attributed(env.uri("NOTES.md")))?;
    assert_eq!(notes["proposal"]["isNewFile"], true);
    let renamed = lsp.wait_for("airlock/proposal", attributed(env.uri("src/lib.rs")))?;
    // Gemini wrote both files itself (no fs/write_text_file was possible), into the shadow only.
    assert!(
        !env.workspace.join("NOTES.md").exists(),
        "nothing may reach the real workspace before accept"
    );
    assert_eq!(env.read("src/lib.rs"), LIB);
    assert_eq!(shadow_file(&env, "NOTES.md").as_deref(), Some(NOTES));
    assert_eq!(
        shadow_file(&env, "src/lib.rs").as_deref(),
        Some("pub fn new_name() -> u32 {\n    1\n}\n")
    );

    let id = notes["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert_eq!(env.read("NOTES.md"), NOTES);
    let id = renamed["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "reject", "reason": "keep the name"}),
    )?;
    assert_eq!(env.read("src/lib.rs"), LIB);
    assert_eq!(shadow_file(&env, "src/lib.rs").as_deref(), Some(LIB));
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
