//! An editor without the Airlock extension still sees the agent work and answers approvals:
//! `$/progress`, `window/logMessage`, `window/showMessageRequest`, `workspace/executeCommand`.

use airlock_e2e::{Env, Lsp};
use serde_json::json;

#[test]
fn plain_lsp_client_gets_progress_log_lines_and_message_request_approvals() -> anyhow::Result<()> {
    let env = Env::new();
    let script = "[[turn]]\n[[turn.step]]\nmessage = \"hello from the agent\"\n[[turn.step]]\nrun = \"echo\"\nargs = [\"approved-by-message-request\"]\n";
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, script)?;
    let mut lsp = Lsp::start(&env, &[])?;
    // No experimental.airlock: standard LSP only.
    lsp.initialize(
        &env.workspace_uri(),
        json!({"window": {"workDoneProgress": true}}),
        json!({"agent": {"script": path}}),
    )?;
    let result = lsp.request(
        "workspace/executeCommand",
        json!({"command": "airlock.prompt", "arguments": ["say hello"]}),
    )?;
    assert_eq!(result["stopReason"], "end_turn");

    lsp.wait_for("request:window/workDoneProgress/create", |_| true)?;
    let begin = lsp.wait_for("$/progress", |p| p["value"]["kind"] == "begin")?;
    let token = begin["token"].clone();
    lsp.wait_for("$/progress", |p| {
        p["token"] == token && p["value"]["kind"] == "end"
    })?;
    lsp.wait_for("window/logMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent: hello from the agent"))
    })?;

    // The command's approval came as a showMessageRequest; the harness picks the first action
    // ("Allow once"), so the command ran.
    let asked = lsp.wait_for("request:window/showMessageRequest", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("echo approved-by-message-request"))
    })?;
    assert!(
        asked["actions"].as_array().is_some_and(|a| a.len() == 5),
        "{asked}"
    );
    lsp.wait_for("window/logMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("approved-by-message-request: exit 0"))
    })?;
    assert!(
        !lsp.notifications.iter().any(|n| n["method"]
            .as_str()
            .is_some_and(|m| m.starts_with("airlock/"))),
        "no airlock/* without opt-in"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn prompting_with_no_agent_configured_says_how_to_configure_one() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), json!(null))?;
    let resp = lsp.request_raw("airlock/prompt", json!({"text": "hello"}))?;
    let message = resp["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("no agent is configured")
            && message.contains("agent.command")
            && message.contains("airlock demo"),
        "{resp}"
    );
    lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent.command"))
    })?;
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
