//! A real third-party agent through the whole server: Gemini CLI (npm `@google/gemini-cli`,
//! installed by `scripts/install-gemini.sh`) in ACP mode, offline with a recorded model. Its
//! edit must arrive as a proposal, nothing may be written before accept, and the accepted
//! content must be exact. Recipe for users: README, "A real agent, offline".

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

const NOTES: &str = "# Notes\n\n- written by the agent\n";

fn recorded_model() -> String {
    let turn = |parts: serde_json::Value| {
        json!({"method": "generateContentStream", "response": [{
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
        }]})
        .to_string()
    };
    format!(
        "{}\n{}\n",
        turn(
            json!([{"text": "I'll add a notes file.\n"}, {"functionCall": {"name": "write_file", "args": {"file_path": "NOTES.md", "content": NOTES}}}])
        ),
        turn(json!([{"text": "Created NOTES.md."}]))
    )
}

#[test]
fn gemini_cli_edit_becomes_a_proposal_and_lands_exactly_on_accept() -> anyhow::Result<()> {
    let Some(gemini) = gemini_js() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Gemini CLI is not installed: run scripts/install-gemini.sh"
        );
        eprintln!("SKIPPED: Gemini CLI not installed (bash scripts/install-gemini.sh)");
        return Ok(());
    };
    let env = Env::new();
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
    std::fs::write(&responses, recorded_model())?;
    let options = json!({"agent": {
        "command": ["node", gemini, "--acp", "--fake-responses", responses],
        // The agent process is sandboxed (read-only workspace): its HOME is the one place
        // besides its TMPDIR it may write.
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
    let stop = lsp.request("airlock/prompt", json!({"text": "Add a notes file"}))?;
    assert_eq!(stop["stopReason"], "end_turn");

    let created = lsp.wait_for("airlock/proposal", |p| p["event"] == "created")?;
    assert_eq!(created["uri"], env.uri("NOTES.md"));
    assert_eq!(created["proposal"]["isNewFile"], true);
    assert!(
        !env.workspace.join("NOTES.md").exists(),
        "nothing may reach disk before accept"
    );

    let id = created["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert_eq!(env.read("NOTES.md"), NOTES);
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
