//! A real third-party agent through the whole server: Gemini CLI (npm `@google/gemini-cli`,
//! installed by `scripts/install-gemini.sh`) in ACP mode, offline with a recorded model. Its
//! edit must arrive as a proposal, nothing may be written before accept, and the accepted
//! content must be exact. Recipe for users: README, "A real agent, offline".

use airlock_e2e::gemini::{self, model_turn};
use airlock_e2e::{Env, Lsp};
use serde_json::json;

const NOTES: &str = "# Notes\n\n- written by the agent\n";

fn recorded_model() -> String {
    format!(
        "{}\n{}\n",
        model_turn(
            json!([{"text": "I'll add a notes file.\n"}, {"functionCall": {"name": "write_file", "args": {"file_path": "NOTES.md", "content": NOTES}}}])
        ),
        model_turn(json!([{"text": "Created NOTES.md."}]))
    )
}

#[test]
fn gemini_cli_edit_becomes_a_proposal_and_lands_exactly_on_accept() -> anyhow::Result<()> {
    let Some(gemini) = gemini::gemini_js_or_skip() else {
        return Ok(());
    };
    let env = Env::new();
    let agent_home = env.dir.path().join("gemini-home");
    gemini::write_settings(&agent_home)?;
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
    let mut lsp = Lsp::start_editor(&env, options)?;
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
