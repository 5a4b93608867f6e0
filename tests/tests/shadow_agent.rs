//! `agent.isolation = "shadow"` with an agent that edits the disk itself (a small Python ACP
//! agent that never calls `fs/*`, like Claude Code or Codex): its writes — plain, temp file +
//! rename, with and without a tool-call diff — land in the shadow, never in the real workspace,
//! and become proposals; accept writes the exact content to the real file; a rejection is
//! reverted in the shadow (the agent reads the old text back); the user's own edits show up in
//! the shadow. Run in each shadow mode: overlay (this kernel), copy bind-mounted over the
//! workspace (`AIRLOCK_TEST_NO_OVERLAY=1`) and copy at its own path (`AIRLOCK_TEST_NO_USERNS=1`).
//! Every claim is checked from outside: the real files, the shadow dirs, the proposals.

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

const AGENT: &str = include_str!("shadow_support/disk_agent.py");

/// The system's Python: version-manager shims (pyenv) live in `$HOME`, which the sandbox hides.
fn python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn start(env: &Env, test_env: &[(&str, &str)]) -> anyhow::Result<Lsp> {
    let mut cmd = env.command();
    cmd.arg("serve").args(["--isolation", "shadow"]);
    for (k, v) in test_env {
        cmd.env(k, v);
    }
    let mut lsp = Lsp::spawn(cmd)?;
    lsp.initialize(
        &env.workspace_uri(),
        json!({"experimental": {"airlock": true}}),
        json!({"agent": {"command": [python(), "-c", AGENT]}}),
    )?;
    Ok(lsp)
}

fn prompt(lsp: &mut Lsp, actions: Value) -> anyhow::Result<()> {
    let stop = lsp.request(
        "airlock/prompt",
        json!({"text": format!("please\nDO {actions}\n")}),
    )?;
    anyhow::ensure!(stop["stopReason"] == "end_turn", "{stop}");
    Ok(())
}

fn said(lsp: &mut Lsp, needle: &str) -> anyhow::Result<String> {
    let update = lsp.wait_for("airlock/agentUpdate", |p| p.to_string().contains(needle))?;
    Ok(update["update"]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// `airlock/proposal` created notifications not yet consumed, for other files than `uris`,
/// that were not withdrawn (resolved) since.
fn created_other_than(lsp: &Lsp, uris: &[String]) -> Vec<Value> {
    let proposal =
        |n: &Value, event: &str| n["method"] == "airlock/proposal" && n["params"]["event"] == event;
    let resolved: Vec<Value> = lsp
        .notifications
        .iter()
        .filter(|n| proposal(n, "resolved"))
        .map(|n| n["params"]["proposal"]["id"].clone())
        .collect();
    lsp.notifications
        .iter()
        .filter(|n| {
            proposal(n, "created")
                && !uris.iter().any(|u| n["params"]["uri"] == u.as_str())
                && !resolved.contains(&n["params"]["proposal"]["id"])
        })
        .cloned()
        .collect()
}

/// A file of the shadow, read from the server's state dir (overlay upper dir or copy).
fn shadow_file(env: &Env, rel: &str) -> String {
    let base = env.state.join("airlock/shadow");
    for ws in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        for layer in ["upper", "copy"] {
            if let Ok(text) = std::fs::read_to_string(ws.path().join(layer).join(rel)) {
                return text;
            }
        }
    }
    panic!("{rel} is not in the shadow under {}", base.display())
}

fn shadow_mode(lsp: &mut Lsp) -> anyhow::Result<String> {
    let batch = lsp.wait_for("airlock/telemetry", |p| {
        p.to_string().contains("\"sandbox.level\"") && p.to_string().contains("agent process")
    })?;
    let events = batch["events"].as_array().cloned().unwrap_or_default();
    let level = events
        .iter()
        .find(|e| e["kind"] == "sandbox.level" && e["subject"] == "agent process")
        .ok_or_else(|| anyhow::anyhow!("no sandbox.level in {batch}"))?;
    anyhow::ensure!(level["fields"]["isolation"] == "shadow", "{level}");
    Ok(level["fields"]["shadow"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn run(test_env: &[(&str, &str)], expected_mode: &str) -> anyhow::Result<()> {
    let env = Env::new();
    env.write("src/lib.txt", "one\ntwo\nthree\n");
    env.write("README.txt", "readme v1\n");
    env.write("old.txt", "bye\n");
    env.write("a.txt", "alpha\n");
    env.write("target/debug/out.txt", "build output\n");
    let mut lsp = start(&env, test_env)?;
    let notes = env.workspace.join("NOTES.md");
    let upper_probe = env.state.join("evil.txt");

    prompt(
        &mut lsp,
        json!([
            {"write": "NOTES.md", "content": "# Notes\n\n- shadow\n", "diff": true},
            // The pause lets a sweep see the temp file before the rename.
            {"rename_write": "src/lib.txt", "content": "one\nTWO\nthree\n", "pause_ms": 80},
            {"write_abs": upper_probe, "content": "x"},
            {"write": "target/debug/out.txt", "content": "tampered\n"},
            {"delete": "old.txt"},
            {"rename": "a.txt", "to": "b.txt"},
        ]),
    )?;
    assert_eq!(shadow_mode(&mut lsp)?, expected_mode);

    // The real workspace is untouched; the edits are proposals.
    assert!(!notes.exists(), "nothing may reach disk before accept");
    assert_eq!(env.read("src/lib.txt"), "one\ntwo\nthree\n");
    assert_eq!(env.read("target/debug/out.txt"), "build output\n");
    assert!(!upper_probe.exists(), "the agent wrote outside its shadow");
    let denied = said(&mut lsp, "evil.txt")?;
    assert!(denied.starts_with("DENIED"), "{denied}");
    // Attributed to the tool call whose update carried the diff (if the watcher saw the write
    // before that update arrived, the attributed proposal supersedes the first one).
    let created_notes = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created"
            && p["uri"] == env.uri("NOTES.md")
            && p["proposal"]["origin"]["toolCall"] == "call-0"
    })?;
    assert_eq!(created_notes["proposal"]["isNewFile"], true);
    let created_lib = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created" && p["uri"] == env.uri("src/lib.txt")
    })?;
    // One proposal per edited file; a temp file caught before its rename was withdrawn.
    lsp.drain_for(std::time::Duration::from_millis(200));
    assert!(!env.workspace.join("src").read_dir()?.any(|e| {
        e.map(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .unwrap_or(false)
    }));
    let created = |lsp: &mut Lsp, rel: &str| {
        let uri = env.uri(rel);
        lsp.wait_for("airlock/proposal", |p| {
            p["event"] == "created" && p["uri"] == uri
        })
    };
    // A deletion is previewed as removing every line; a rename as a deletion and a new file.
    let deleted = created(&mut lsp, "old.txt")?;
    assert_eq!(deleted["proposal"]["isNewFile"], false);
    let renamed_from = created(&mut lsp, "a.txt")?;
    let renamed_to = created(&mut lsp, "b.txt")?;
    assert_eq!(renamed_to["proposal"]["isNewFile"], true);
    assert!(env.workspace.join("old.txt").exists() && env.workspace.join("a.txt").exists());
    assert!(!env.workspace.join("b.txt").exists());
    let extra = created_other_than(
        &lsp,
        &["NOTES.md", "src/lib.txt", "old.txt", "a.txt", "b.txt"].map(|r| env.uri(r)),
    );
    assert!(extra.is_empty(), "unexpected proposals: {extra:?}");

    // Accept the new file: exact content on disk.
    let id = created_notes["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert_eq!(env.read("NOTES.md"), "# Notes\n\n- shadow\n");
    // Reject the edit: the real file keeps its text and the shadow gets it back.
    let id = created_lib["proposal"]["id"].as_str().unwrap_or_default();
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "reject", "reason": "keep two"}),
    )?;
    assert_eq!(env.read("src/lib.txt"), "one\ntwo\nthree\n");
    // Reverted in the shadow at once (seen from outside: the upper dir or the copy).
    assert_eq!(shadow_file(&env, "src/lib.txt"), "one\ntwo\nthree\n");
    assert_eq!(shadow_file(&env, "NOTES.md"), "# Notes\n\n- shadow\n");
    // Accepting a deletion removes the file; rejecting one brings it back in the shadow.
    for (proposal, decision) in [
        (&deleted, "accept"),
        (&renamed_from, "reject"),
        (&renamed_to, "accept"),
    ] {
        let id = proposal["proposal"]["id"].as_str().unwrap_or_default();
        lsp.request(
            "airlock/resolve",
            json!({"proposal": id, "decision": decision}),
        )?;
    }
    assert!(!env.workspace.join("old.txt").exists(), "accepted deletion");
    assert_eq!(env.read("a.txt"), "alpha\n");
    assert_eq!(env.read("b.txt"), "alpha\n");
    assert_eq!(shadow_file(&env, "a.txt"), "alpha\n");

    // From here on, only what the second turn causes counts.
    lsp.notifications.clear();
    // The user edits an untouched file: the agent must see the new text.
    env.write("README.txt", "readme v2\n");
    prompt(
        &mut lsp,
        json!([{"read": "src/lib.txt"}, {"read": "NOTES.md"}, {"read": "README.txt"}, {"read": "a.txt"}, {"read": "old.txt"}]),
    )?;
    assert_eq!(
        said(&mut lsp, "READ src/lib.txt")?,
        "READ src/lib.txt: one\ntwo\nthree\n"
    );
    assert_eq!(
        said(&mut lsp, "READ NOTES.md")?,
        "READ NOTES.md: # Notes\n\n- shadow\n"
    );
    assert_eq!(
        said(&mut lsp, "READ README.txt")?,
        "READ README.txt: readme v2\n"
    );
    assert_eq!(said(&mut lsp, "READ a.txt")?, "READ a.txt: alpha\n");
    assert_eq!(said(&mut lsp, "READ old.txt")?, "READ old.txt: <missing>");
    // Nothing was proposed back from the reverts and re-syncs.
    lsp.drain_for(std::time::Duration::from_millis(200));
    let extra = created_other_than(&lsp, &[]);
    assert!(extra.is_empty(), "unexpected proposals: {extra:?}");
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn overlay_shadow_turns_disk_writes_into_proposals() -> anyhow::Result<()> {
    run(&[], "overlay")
}

#[test]
fn copy_shadow_bind_mounted_when_overlay_is_unavailable() -> anyhow::Result<()> {
    run(&[("AIRLOCK_TEST_NO_OVERLAY", "1")], "copy-bind")
}

#[test]
fn copy_shadow_at_its_own_path_without_user_namespaces() -> anyhow::Result<()> {
    run(&[("AIRLOCK_TEST_NO_USERNS", "1")], "copy")
}

/// A deletion still pending when the server stops is a deletion after the restart: accepting
/// it removes the file (the flag is persisted with the proposal), not leaves it empty.
#[test]
fn deletion_pending_across_a_restart_removes_the_file_on_accept() -> anyhow::Result<()> {
    let env = Env::new();
    env.write("old.txt", "bye\n");
    let mut lsp = start(&env, &[])?;
    prompt(&mut lsp, json!([{"delete": "old.txt"}]))?;
    let created = lsp.wait_for("airlock/proposal", |p| {
        p["event"] == "created" && p["uri"] == env.uri("old.txt")
    })?;
    let id = created["proposal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(created["proposal"]["deletesFile"], true, "{created}");
    assert_eq!(
        env.read("old.txt"),
        "bye\n",
        "nothing may reach disk before accept"
    );
    assert_eq!(lsp.shutdown()?, 0);

    // A new server (a fresh shadow, no agent started yet) restores the pending deletion.
    let mut lsp = start(&env, &[])?;
    lsp.wait_for("airlock/proposal", |p| p["proposal"]["id"] == id.as_str())?;
    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )?;
    assert!(
        !env.workspace.join("old.txt").exists(),
        "an accepted deletion removes the file, also after a restart"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
