//! ACP protocol version negotiation through the real `airlock serve`, with a small Python agent
//! (tests/tests/shadow_support/disk_agent.py) that edits the disk itself:
//! - in shadow mode Airlock offers v2; a v2 agent gets it (checked in the `initialize` params the
//!   agent echoes and in the `agent.started` telemetry), its direct write becomes a proposal
//!   attributed to the tool call whose v2 diff (`changes` + `git_patch`) named the path, the real
//!   file is untouched until accept, and the turn ends at the agent's `state_update` to idle
//!   (the prompt is only acknowledged) — with the overlay and with a copy at its own path;
//! - a v1-only agent offered v2 answers 1 and still works (its writes become proposals);
//! - outside shadow mode Airlock offers only v1, and a v2-only agent fails with an error to the
//!   editor naming both versions and the setting that makes v2 work.

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

const AGENT: &str = include_str!("shadow_support/disk_agent.py");

fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn start(env: &Env, isolation: &str, v2: bool) -> anyhow::Result<Lsp> {
    start_with(env, isolation, v2, &[])
}

fn start_with(
    env: &Env,
    isolation: &str,
    v2: bool,
    test_env: &[(&str, &str)],
) -> anyhow::Result<Lsp> {
    let mut cmd = env.command();
    cmd.arg("serve").args(["--isolation", isolation]);
    for (k, v) in test_env {
        cmd.env(k, v);
    }
    let mut lsp = Lsp::spawn(cmd)?;
    let mut agent = vec![python(), "-c", AGENT];
    if v2 {
        agent.push("--v2");
    }
    lsp.initialize(
        &env.workspace_uri(),
        json!({"experimental": {"airlock": true}}),
        json!({"agent": {"command": agent}}),
    )?;
    Ok(lsp)
}

fn prompt(lsp: &mut Lsp, actions: Value) -> anyhow::Result<Value> {
    lsp.request_raw(
        "airlock/prompt",
        json!({"text": format!("please\nDO {actions}\n")}),
    )
}

fn said(lsp: &mut Lsp, prefix: &str) -> anyhow::Result<String> {
    let update = lsp.wait_for("airlock/agentUpdate", |p| {
        p["update"]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with(prefix))
    })?;
    Ok(update["update"]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// The `initialize` params the agent received, as it echoed them.
fn init_params(lsp: &mut Lsp) -> anyhow::Result<Value> {
    let text = said(lsp, "INIT ")?;
    Ok(serde_json::from_str(text.trim_start_matches("INIT "))?)
}

fn started_protocol(lsp: &mut Lsp) -> anyhow::Result<Value> {
    let batch = lsp.wait_for("airlock/telemetry", |p| {
        p.to_string().contains("\"agent.started\"")
    })?;
    let events = batch["events"].as_array().cloned().unwrap_or_default();
    let started = events
        .iter()
        .find(|e| e["kind"] == "agent.started")
        .ok_or_else(|| anyhow::anyhow!("no agent.started in {batch}"))?;
    Ok(started["fields"]["protocol"].clone())
}

#[test]
fn v2_agent_in_shadow_mode_writes_become_proposals() -> anyhow::Result<()> {
    v2_agent_in_shadow(&[])
}

/// Without user namespaces the shadow is a copy at its own path: the paths in the agent's v2
/// diffs are the copy's and must be mapped back to attribute the proposals.
#[test]
fn v2_agent_in_a_copy_shadow_at_its_own_path() -> anyhow::Result<()> {
    v2_agent_in_shadow(&[("AIRLOCK_TEST_NO_USERNS", "1")])
}

fn v2_agent_in_shadow(test_env: &[(&str, &str)]) -> anyhow::Result<()> {
    let env = Env::new();
    env.write("src/lib.txt", "one\ntwo\nthree\n");
    let mut lsp = start_with(&env, "shadow", true, test_env)?;
    let notes = env.workspace.join("NOTES.md");

    let answer = prompt(
        &mut lsp,
        json!([
            {"init": true},
            {"write": "NOTES.md", "content": "# Notes\n\n- v2\n", "diff": true},
            {"write": "src/lib.txt", "content": "one\nTWO\nthree\n", "diff": true},
        ]),
    )?;
    // The turn ended at the agent's idle state update, with its stop reason.
    assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");

    // Negotiated: Airlock offered 2 with v2's fields (and v1's, for a v1-only agent).
    let init = init_params(&mut lsp)?;
    assert_eq!(init["protocolVersion"], 2, "{init}");
    assert_eq!(init["info"]["name"], "airlock", "{init}");
    assert!(init["capabilities"].is_object(), "{init}");
    assert_eq!(
        init["clientCapabilities"]["fs"]["writeTextFile"], false,
        "{init}"
    );
    assert_eq!(started_protocol(&mut lsp)?, 2);

    // The v2 diff was forwarded as the agent sent it.
    let diff = lsp.wait_for("airlock/agentUpdate", |p| {
        p["update"]["sessionUpdate"] == "tool_call_update"
            && p["update"]["toolCallId"] == "call-2"
            && p["update"]["content"][0]["type"] == "diff"
    })?;
    let change = &diff["update"]["content"][0]["changes"][0];
    assert_eq!(change["operation"], "modify", "{diff}");
    assert!(
        diff["update"]["content"][0]["patch"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("+TWO")),
        "{diff}"
    );

    // Nothing reached the real workspace; both writes are proposals attributed to the tool
    // calls whose diffs named them.
    assert!(!notes.exists(), "nothing may reach disk before accept");
    assert_eq!(env.read("src/lib.txt"), "one\ntwo\nthree\n");
    // call-0 is the init action; the NOTES.md write is call-1, src/lib.txt call-2.
    let created_notes = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created"
            && p["uri"] == env.uri("NOTES.md")
            && p["proposal"]["origin"]["toolCall"] == "call-1"
    })?;
    assert_eq!(created_notes["proposal"]["isNewFile"], true);
    let created_lib = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created"
            && p["uri"] == env.uri("src/lib.txt")
            && p["proposal"]["origin"]["toolCall"] == "call-2"
    })?;

    // Accept: the exact content reaches the real file; reject leaves it as it was.
    let id = created_notes["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert_eq!(env.read("NOTES.md"), "# Notes\n\n- v2\n");
    let id = created_lib["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "reject", "reason": "keep two"}),
    )?;
    assert_eq!(env.read("src/lib.txt"), "one\ntwo\nthree\n");

    // A second turn ends too (turn tracking is per prompt), and the agent sees the revert.
    lsp.notifications.clear();
    let answer = prompt(&mut lsp, json!([{"read": "src/lib.txt"}]))?;
    assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
    assert_eq!(
        said(&mut lsp, "READ src/lib.txt")?,
        "READ src/lib.txt: one\ntwo\nthree\n"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn v1_agent_offered_v2_answers_1_and_still_works() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = start(&env, "shadow", false)?;
    let answer = prompt(
        &mut lsp,
        json!([
            {"init": true},
            {"write": "NOTES.md", "content": "v1\n", "diff": true},
        ]),
    )?;
    assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
    let init = init_params(&mut lsp)?;
    assert_eq!(init["protocolVersion"], 2, "offered the newest: {init}");
    // The v1 fields a v1 agent reads are in the same request.
    assert_eq!(init["clientInfo"]["name"], "airlock", "{init}");
    assert_eq!(started_protocol(&mut lsp)?, 1);
    let created = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created"
            && p["uri"] == env.uri("NOTES.md")
            && p["proposal"]["origin"]["toolCall"] == "call-1"
    })?;
    assert!(!env.workspace.join("NOTES.md").exists());
    let id = created["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert_eq!(env.read("NOTES.md"), "v1\n");
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn v2_only_agent_outside_shadow_mode_fails_naming_both_versions() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = start(&env, "sandboxed", true)?;
    let answer = prompt(&mut lsp, json!([{"write": "x.txt", "content": "x"}]))?;
    let message = answer["error"]["message"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the prompt must fail: {answer}"))?;
    for needle in [
        "version(s) 2",
        "Airlock offered 1",
        "agent.isolation = \"shadow\"",
    ] {
        assert!(message.contains(needle), "{needle:?} missing in {message}");
    }
    assert!(!env.workspace.join("x.txt").exists());
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
