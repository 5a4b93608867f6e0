//! Agent terminals through the real server: policy decides, the sandbox runs, the agent hears.

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

fn agent_says(lsp: &mut Lsp, needle: &str) -> anyhow::Result<String> {
    let update = lsp.wait_for("airlock/agentUpdate", |p| p.to_string().contains(needle))?;
    Ok(update["update"]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn start(env: &Env, script: &str) -> anyhow::Result<Lsp> {
    std::fs::create_dir_all(env.config.join("airlock"))?;
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[commands]\nallow = [\"wc\", \"touch\"]\ndeny = [\"curl\"]\n",
    )?;
    Lsp::start_with_script(env, script)
}

#[test]
fn allowed_command_runs_in_the_sandbox_and_denied_one_names_its_rule() -> anyhow::Result<()> {
    let env = Env::new();
    env.write("src/lib.rs", "a\nb\nc\n");
    let outside = env.dir.path().join("outside-marker");
    let script = format!(
        r#"
[[turn]]
[[turn.step]]
run = "wc"
args = ["-l", "src/lib.rs"]
[[turn.step]]
run = "curl"
args = ["http://127.0.0.1:9/"]
[[turn.step]]
run = "touch"
args = [{outside}]
"#,
        outside = serde_json::to_string(&outside.display().to_string())?
    );
    let mut lsp = start(&env, &script)?;
    let stop = lsp.request("airlock/prompt", json!({"text": "go"}))?;
    assert_eq!(stop["stopReason"], "end_turn");
    let wc = agent_says(&mut lsp, "src/lib.rs")?;
    assert!(
        lsp.dump().contains("3 src/lib.rs"),
        "wc output should reach the agent: {wc}"
    );
    let denied = agent_says(&mut lsp, "curl")?;
    assert!(
        denied.contains("denied") && denied.contains("commands.deny"),
        "{denied}"
    );
    // Allowed by policy, but the sandbox keeps it inside the workspace: checked from outside.
    agent_says(&mut lsp, "touch")?;
    assert!(
        !outside.exists(),
        "a sandboxed command wrote outside the workspace"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn ask_goes_to_the_user_and_deny_is_respected() -> anyhow::Result<()> {
    let env = Env::new();
    let script = r#"
[[turn]]
[[turn.step]]
run = "echo"
args = ["asked-and-allowed"]
[[turn.step]]
run = "mkdir"
args = ["made-by-denied-command"]
"#;
    let mut lsp = start(&env, script)?;
    lsp.set_responder(Box::new(move |method, params, editor| match method {
        "airlock/approval" => {
            let subject = params["subject"].as_str().unwrap_or_default();
            let choice = if subject.starts_with("echo") {
                "allow_once"
            } else {
                "deny"
            };
            json!({"choice": choice})
        }
        _ => airlock_e2e::default_responder()(method, params, editor),
    }));
    lsp.request("airlock/prompt", json!({"text": "go"}))?;
    let approval = lsp.wait_for("request:airlock/approval", |p| {
        p["subject"].as_str().is_some_and(|s| s.starts_with("echo"))
    })?;
    assert_eq!(approval["kind"], "command");
    assert!(
        approval["rule"].as_str().is_some_and(|r| r.contains("ask")),
        "{approval}"
    );
    agent_says(&mut lsp, "asked-and-allowed")?;
    let refused = agent_says(&mut lsp, "run mkdir")?;
    assert!(refused.contains("denied"), "{refused}");
    assert!(
        !env.workspace.join("made-by-denied-command").exists(),
        "a denied command must not run"
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn agent_crash_is_reported_and_the_next_prompt_restarts_it() -> anyhow::Result<()> {
    let env = Env::new();
    let script = r#"
[[turn]]
match = "crash"
[[turn.step]]
message = "about to crash"
[[turn.step]]
crash = 3

[[turn]]
[[turn.step]]
message = "fresh agent here"
"#;
    let mut lsp = start(&env, script)?;
    let resp = lsp.request_raw("airlock/prompt", json!({"text": "crash please"}))?;
    assert!(
        resp.get("error").is_some(),
        "a crashed turn is an error: {resp}"
    );
    let shown = lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent exited"))
    })?;
    assert!(
        shown["message"]
            .as_str()
            .is_some_and(|m| m.contains("exit code 3")),
        "{shown}"
    );
    // A new agent process answers the next prompt.
    let stop = lsp.request("airlock/prompt", json!({"text": "again"}))?;
    assert_eq!(stop["stopReason"], Value::String("end_turn".into()));
    agent_says(&mut lsp, "fresh agent here")?;
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

fn agent_pid(lsp: &mut Lsp) -> anyhow::Result<i64> {
    let batch = lsp.wait_for("airlock/telemetry", |p| {
        p.to_string().contains("agent.started")
    })?;
    batch["events"]
        .as_array()
        .and_then(|events| events.iter().find(|e| e["kind"] == "agent.started"))
        .and_then(|e| e["fields"]["pid"].as_i64())
        .ok_or_else(|| anyhow::anyhow!("no pid in {batch}"))
}

/// True once the process is gone (or only a zombie waiting for its new parent to reap it).
fn gone_within(pid: i64, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|rest| rest.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn no_agent_outlives_the_server_after_shutdown_or_kill_9() -> anyhow::Result<()> {
    for kill in [false, true] {
        let env = Env::new();
        let mut lsp = start(&env, "[[turn]]\n[[turn.step]]\nmessage = \"up\"\n")?;
        lsp.request("airlock/prompt", json!({"text": "start"}))?;
        let pid = agent_pid(&mut lsp)?;
        assert!(
            !gone_within(pid, std::time::Duration::from_millis(1)),
            "agent should be running"
        );
        if kill {
            lsp.child.kill()?;
            let _ = lsp.child.wait();
        } else {
            assert_eq!(lsp.shutdown()?, 0);
        }
        assert!(
            gone_within(pid, std::time::Duration::from_secs(5)),
            "agent {pid} outlived the server (kill -9: {kill})"
        );
    }
    Ok(())
}
