//! The agent process itself runs in the sandbox (read-only workspace): what it does with
//! plain file I/O, bypassing ACP, is checked from outside — files on disk, and the process's
//! kernel state in `/proc`. Its `fs/write_text_file` edits still become proposals.
//! `agent.isolation = "none"` is the explicit, reported opt-out.

use std::path::Path;
use std::time::{Duration, Instant};

use airlock_e2e::{Env, Lsp, with_script};
use serde_json::{Value, json};

const SECRET_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY----- not-a-real-key";
const DOTENV: &str = "API_TOKEN=hunter2-do-not-leak\n";

fn q(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap_or_default()
}

fn script(env: &Env, writable: &Path) -> String {
    format!(
        r#"
[[turn]]
[[turn.step]]
write_disk = "src/lib.rs"
content = "overwritten behind Airlock's back\n"
[[turn.step]]
write_disk = "dropped.txt"
content = "x"
[[turn.step]]
read_disk = {ssh}
[[turn.step]]
read_disk = ".env"
[[turn.step]]
read_disk = "secrets/db.key"
[[turn.step]]
read_disk = "src/lib.rs"
[[turn.step]]
write_disk = {state}
content = "agent state"
[[turn.step]]
write = "src/lib.rs"
content = "pub fn proposed() {{}}\n"
[[turn.step]]
wait = 30000
"#,
        ssh = q(&env.home.join(".ssh/id_ed25519")),
        state = q(&writable.join("state.json")),
    )
}

fn setup(env: &Env, isolation: Option<&str>) -> anyhow::Result<(Lsp, std::path::PathBuf)> {
    env.write("src/lib.rs", "pub fn original() {}\n");
    env.write(".env", DOTENV);
    env.write("secrets/db.key", "db-password-do-not-leak\n");
    // A deny-read rule of the user's policy (not only the built-in `.env*`) binds the agent.
    std::fs::create_dir_all(env.config.join("airlock"))?;
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[files]\ndeny_read = [\"secrets/**\"]\n",
    )?;
    std::fs::create_dir_all(env.home.join(".ssh"))?;
    std::fs::write(env.home.join(".ssh/id_ed25519"), SECRET_KEY)?;
    let writable = env.dir.path().join("agent-state");
    std::fs::create_dir_all(&writable)?;
    let mut agent = json!({"writable": [writable]});
    if let Some(i) = isolation {
        agent["isolation"] = json!(i);
    }
    let lsp =
        Lsp::start_with_script_options(env, &script(env, &writable), json!({ "agent": agent }))?;
    Ok((lsp, writable))
}

/// Starts the turn without waiting for its end: the script keeps the agent alive (`wait`)
/// so its process can be inspected.
fn send_prompt(lsp: &mut Lsp) -> anyhow::Result<()> {
    lsp.send(&json!({"jsonrpc": "2.0", "id": 9000, "method": "airlock/prompt", "params": {"text": "go"}}))
}

/// The agent's message about `prefix` (e.g. `read_disk /x/.env`).
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

fn sandbox_level(lsp: &mut Lsp) -> anyhow::Result<Value> {
    let batch = lsp.wait_for("airlock/telemetry", |p| {
        p.to_string().contains("\"sandbox.level\"") && p.to_string().contains("agent process")
    })?;
    batch["events"]
        .as_array()
        .and_then(|events| {
            events
                .iter()
                .find(|e| e["kind"] == "sandbox.level" && e["subject"] == "agent process")
        })
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no sandbox.level event in {batch}"))
}

/// Pids of the scripted agent started with `script` (the process behind `airlock exec`).
fn mock_agents(script: &Path) -> Vec<u32> {
    let needle = script.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.windows(2).any(|w| w[0] == "agent" && w[1] == "mock")
            && args.iter().any(|a| a == &needle)
            && !args.iter().any(|a| a == "exec")
        {
            pids.push(pid);
        }
    }
    pids
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_owned())
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn agent_process_cannot_write_the_workspace_or_read_secrets_but_its_edits_become_proposals()
-> anyhow::Result<()> {
    let env = Env::new();
    let (mut lsp, writable) = setup(&env, None)?;
    send_prompt(&mut lsp)?;

    let level = sandbox_level(&mut lsp)?;
    assert_eq!(level["fields"]["isolation"], "sandboxed", "{level}");

    let ws = &env.workspace;
    let w = said(
        &mut lsp,
        &format!("write_disk {}", ws.join("src/lib.rs").display()),
    )?;
    assert!(w.contains("failed"), "{w}");
    let w = said(
        &mut lsp,
        &format!("write_disk {}", ws.join("dropped.txt").display()),
    )?;
    assert!(w.contains("failed"), "{w}");
    let r = said(
        &mut lsp,
        &format!("read_disk {}", env.home.join(".ssh").display()),
    )?;
    assert!(r.contains("failed"), "~/.ssh must be unreadable: {r}");
    // A deny-read file is unreadable or shows up empty (an empty file is mounted over it).
    let r = said(
        &mut lsp,
        &format!("read_disk {}", ws.join(".env").display()),
    )?;
    assert!(
        r.contains("failed") || r.ends_with("read 0 bytes"),
        ".env must be unreadable: {r}"
    );
    let r = said(
        &mut lsp,
        &format!("read_disk {}", ws.join("secrets/db.key").display()),
    )?;
    assert!(
        r.contains("failed") || r.ends_with("read 0 bytes"),
        "a policy deny_read file must be unreadable: {r}"
    );
    let r = said(
        &mut lsp,
        &format!("read_disk {}", ws.join("src/lib.rs").display()),
    )?;
    assert!(
        r.ends_with(&format!("read {} bytes", "pub fn original() {}\n".len())),
        "the workspace must stay readable: {r}"
    );
    let w = said(&mut lsp, &format!("write_disk {}", writable.display()))?;
    assert!(
        w.ends_with("written"),
        "agent.writable must be writable: {w}"
    );

    // The ACP write is a proposal; the disk is unchanged (checked from outside).
    let created = lsp.wait_for("airlock/proposal", |p| p["event"] == "created")?;
    assert_eq!(created["uri"], env.uri("src/lib.rs"));
    assert_eq!(env.read("src/lib.rs"), "pub fn original() {}\n");
    assert!(!ws.join("dropped.txt").exists());
    assert_eq!(
        std::fs::read_to_string(writable.join("state.json"))?,
        "agent state"
    );
    let dump = lsp.dump();
    assert!(
        !dump.contains("hunter2") && !dump.contains("OPENSSH") && !dump.contains("db-password")
    );

    // The agent process itself (not only `airlock exec`) carries the kernel restrictions,
    // and dies with the server even when the server is killed with SIGKILL.
    let script = env.dir.path().join("script.toml");
    let pids = mock_agents(&script);
    assert_eq!(pids.len(), 1, "expected one scripted agent, found {pids:?}");
    let pid = pids[0];
    assert_eq!(status_field(pid, "NoNewPrivs:").as_deref(), Some("1"));
    assert_eq!(status_field(pid, "Seccomp:").as_deref(), Some("2"));
    lsp.child.kill()?;
    let _ = lsp.child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(pid),
        "the sandboxed agent {pid} outlived the killed server"
    );
    Ok(())
}

#[test]
fn isolation_none_is_the_explicit_reported_opt_out() -> anyhow::Result<()> {
    let env = Env::new();
    let (mut lsp, _writable) = setup(&env, Some("none"))?;
    send_prompt(&mut lsp)?;
    let level = sandbox_level(&mut lsp)?;
    assert_eq!(level["fields"]["isolation"], "none", "{level}");
    lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("WITHOUT the sandbox"))
    })?;
    // Unsandboxed, the same direct write does reach the disk: the opt-out is real, and the
    // sandboxed test above fails for the sandbox's reason, not the script's.
    let w = said(
        &mut lsp,
        &format!("write_disk {}", env.workspace.join("src/lib.rs").display()),
    )?;
    assert!(w.ends_with("written"), "{w}");
    assert_eq!(
        env.read("src/lib.rs"),
        "overwritten behind Airlock's back\n"
    );
    let script = env.dir.path().join("script.toml");
    for pid in mock_agents(&script) {
        assert_eq!(status_field(pid, "Seccomp:").as_deref(), Some("0"));
    }
    lsp.child.kill()?;
    let _ = lsp.child.wait();
    Ok(())
}

#[test]
fn unknown_isolation_value_is_refused_with_the_choices() -> anyhow::Result<()> {
    let env = Env::new();
    let (mut lsp, _writable) = setup(&env, Some("container"))?;
    let reply = lsp.request_raw("airlock/prompt", json!({"text": "go"}))?;
    let text = reply.to_string();
    assert!(
        text.contains("agent.isolation") && text.contains("\\\"none\\\""),
        "{reply}"
    );
    assert_eq!(env.read("src/lib.rs"), "pub fn original() {}\n");
    lsp.child.kill()?;
    let _ = lsp.child.wait();
    Ok(())
}

#[test]
fn without_landlock_the_agent_does_not_start_and_the_editor_learns_how_to_opt_out()
-> anyhow::Result<()> {
    let env = Env::new();
    env.write("src/lib.rs", "pub fn original() {}\n");
    let options = with_script(
        &env,
        "[[turn]]\n[[turn.step]]\nwrite_disk = \"src/lib.rs\"\ncontent = \"x\"\n",
        json!({}),
    )?;
    let mut cmd = env.command();
    cmd.arg("serve").env("AIRLOCK_TEST_LANDLOCK_ABI", "0");
    let mut lsp = Lsp::spawn_editor(cmd, &env, options)?;
    let reply = lsp.request_raw("airlock/prompt", json!({"text": "go"}))?;
    let text = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("Landlock") && text.contains("isolation = \"none\""),
        "{reply}"
    );
    lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("Landlock"))
    })?;
    assert!(
        mock_agents(&env.dir.path().join("script.toml")).is_empty(),
        "the agent must not start"
    );
    assert_eq!(env.read("src/lib.rs"), "pub fn original() {}\n");
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
