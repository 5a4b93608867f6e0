//! "Always" in an approval writes a policy rule — to the user policy, or to the workspace file
//! when the user picks it — through the real server, for tool permissions and commands, over
//! `airlock/approval` and `window/showMessageRequest`. The workspace file keeps its comments,
//! stays valid, and loosens only if it was trusted before.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

fn agent_says(lsp: &mut Lsp, needle: &str) -> anyhow::Result<String> {
    let update = lsp.wait_for("airlock/agentUpdate", |p| p.to_string().contains(needle))?;
    Ok(update["update"]["content"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Answers every `airlock/approval` with `choice` and records the questions.
fn answering(lsp: &mut Lsp, choice: &'static str) -> Arc<Mutex<Vec<Value>>> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a = asked.clone();
    lsp.set_responder(Box::new(move |method, params, editor| match method {
        "airlock/approval" => {
            a.lock().unwrap().push(params.clone());
            json!({"choice": choice})
        }
        _ => airlock_e2e::default_responder()(method, params, editor),
    }));
    asked
}

/// Waits until telemetry has carried an event of each `(kind, text in it)` pair.
fn telemetry_has_all(lsp: &mut Lsp, wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(kind, needle)| {
                !seen
                    .iter()
                    .any(|e| e["kind"] == *kind && e.to_string().contains(needle))
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let batch = lsp
            .wait_for("airlock/telemetry", |_| true)
            .map_err(|e| e.context(format!("events never seen: {missing:?}")))?;
        seen.extend(batch["events"].as_array().cloned().unwrap_or_default());
    }
}

fn telemetry_has(lsp: &mut Lsp, kind: &str, needle: &str) -> anyhow::Result<()> {
    telemetry_has_all(lsp, &[(kind, needle)])
}

const PERMISSIONS: &str = r#"
[[turn.step]]
permission = "Run tests"
kind = "execute"
raw_input = { command = "cargo test --all" }
[[turn.step]]
permission = "Fetch docs"
kind = "fetch"
raw_input = { url = "https://Docs.Example.com/guide" }
[[turn.step]]
permission = "Think hard"
kind = "think"
"#;

#[test]
fn always_for_tool_permissions_writes_the_user_policy() -> anyhow::Result<()> {
    let env = Env::new();
    let user_policy = env.config.join("airlock/policy.toml");
    std::fs::create_dir_all(user_policy.parent().unwrap())?;
    std::fs::write(
        &user_policy,
        "# my rules\nversion = 1\n\n[commands]\ndeny = [\"sudo\"] # never\n",
    )?;
    let script = format!("[[turn]]\n{PERMISSIONS}\n[[turn]]\n{PERMISSIONS}");
    let mut lsp = Lsp::start_with_script(&env, &script)?;
    let asked = answering(&mut lsp, "allow_always");
    lsp.request("airlock/prompt", json!({"text": "first"}))?;
    for title in ["Run tests", "Fetch docs", "Think hard"] {
        let said = agent_says(&mut lsp, &format!("permission {title}"))?;
        assert_eq!(said, format!("permission {title}: allow_always"));
    }
    {
        let asked = asked.lock().unwrap();
        let view: Vec<(String, Value, Value)> = asked
            .iter()
            .map(|p| {
                (
                    p["subject"].as_str().unwrap_or_default().to_owned(),
                    p["alwaysRule"].clone(),
                    p["options"].clone(),
                )
            })
            .collect();
        let five = json!([
            "allow_once",
            "allow_session",
            "allow_always",
            "allow_always_workspace",
            "deny"
        ]);
        assert_eq!(
            view,
            [
                (
                    "cargo test --all".to_owned(),
                    json!("commands.allow \"cargo test --all\""),
                    five.clone()
                ),
                (
                    "https://Docs.Example.com/guide".to_owned(),
                    json!("network.allow \"docs.example.com:443\""),
                    five
                ),
                (
                    "Think hard".to_owned(),
                    Value::Null,
                    json!(["allow_once", "allow_session", "allow_always", "deny"])
                ),
            ]
        );
    }
    // The rules are in the user policy, comments and layout kept.
    assert_eq!(
        std::fs::read_to_string(&user_policy)?,
        "# my rules\nversion = 1\n\n[commands]\ndeny = [\"sudo\"] # never\nallow = [\"cargo test --all\"]\n\n[network]\nallow = [\"docs.example.com:443\"]\n"
    );
    // A tool call no rule can express: the user is told, and it lasts for this session.
    lsp.wait_for("window/showMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("no policy rule can express") && m.contains("Think hard"))
    })?;
    telemetry_has_all(
        &mut lsp,
        &[
            (
                "policy.rule_added",
                "commands.allow \\\"cargo test --all\\\"",
            ),
            (
                "policy.rule_added",
                "network.allow \\\"docs.example.com:443\\\"",
            ),
        ],
    )?;

    // Next turn: the policy decides the first two, the session's memory the third; nobody is
    // asked.
    lsp.request("airlock/prompt", json!({"text": "second"}))?;
    for title in ["Run tests", "Fetch docs", "Think hard"] {
        let said = agent_says(&mut lsp, &format!("permission {title}"))?;
        assert_eq!(said, format!("permission {title}: allow_once"));
    }
    assert_eq!(asked.lock().unwrap().len(), 3, "asked again after always");
    telemetry_has_all(
        &mut lsp,
        &[
            ("approval.decided", "\"by\":\"policy\""),
            ("approval.decided", "\"by\":\"session\""),
        ],
    )?;
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

const WORKSPACE_POLICY: &str = "# project rules (keep this comment)\nversion = 1\n\n[commands]\ndeny = [\"cargo publish\"]   # releases are manual\n";
const LINT: &str = "[[turn]]\n[[turn.step]]\npermission = \"Lint\"\nkind = \"execute\"\nraw_input = { command = \"make lint\" }\n";

fn explain(env: &Env, command: &str) -> anyhow::Result<Value> {
    let out = env
        .command()
        .args(["policy", "explain", "--json", "--workspace"])
        .arg(&env.workspace)
        .args(["--command", command])
        .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Server 1: the user answers "always, in the workspace policy". Returns the file afterwards.
fn always_in_workspace(env: &Env) -> anyhow::Result<(String, Lsp)> {
    let mut lsp = Lsp::start_with_script(env, LINT)?;
    let asked = answering(&mut lsp, "allow_always_workspace");
    lsp.request("airlock/prompt", json!({"text": "lint"}))?;
    assert_eq!(
        agent_says(&mut lsp, "permission Lint")?,
        "permission Lint: allow_always"
    );
    assert!(
        asked.lock().unwrap()[0]["options"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("allow_always_workspace")))
    );
    telemetry_has(&mut lsp, "policy.rule_added", "\"target\":\"workspace\"")?;
    let text = std::fs::read_to_string(env.workspace.join(".airlock/policy.toml"))?;
    Ok((text, lsp))
}

const LINT_ADDED: &str = "# project rules (keep this comment)\nversion = 1\n\n[commands]\ndeny = [\"cargo publish\"]   # releases are manual\nallow = [\"make lint\"]\n";

/// Server 2: is the user asked again? Returns the agent's answer and how many were asked.
fn next_session(env: &Env) -> anyhow::Result<(String, usize)> {
    let mut lsp = Lsp::start_with_script(env, LINT)?;
    let asked = answering(&mut lsp, "deny");
    lsp.request("airlock/prompt", json!({"text": "lint"}))?;
    let said = agent_says(&mut lsp, "permission Lint")?;
    let n = asked.lock().unwrap().len();
    assert_eq!(lsp.shutdown()?, 0);
    Ok((said, n))
}

#[test]
fn always_in_a_trusted_workspace_policy_applies_next_time_without_asking() -> anyhow::Result<()> {
    let env = Env::new();
    env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    let trust = env
        .command()
        .args(["policy", "trust", "--workspace"])
        .arg(&env.workspace)
        .output()?;
    assert!(trust.status.success(), "{trust:?}");
    let (text, lsp) = always_in_workspace(&env)?;
    assert_eq!(text, LINT_ADDED);
    assert_eq!(lsp.shutdown()?, 0);
    // Still there once the agent process (which sees the workspace read-only) has exited.
    assert_eq!(
        std::fs::read_to_string(env.workspace.join(".airlock/policy.toml"))?,
        LINT_ADDED
    );
    // Still a valid policy, and still trusted: the rule applies.
    let check = env
        .command()
        .args(["policy", "check"])
        .arg(env.workspace.join(".airlock/policy.toml"))
        .output()?;
    assert!(check.status.success(), "{check:?}");
    let e = explain(&env, "make lint")?;
    assert_eq!(e["decision"], "allow", "{e}");
    assert_eq!(e["parts"][0]["layer"], "workspace", "{e}");
    let (said, asked) = next_session(&env)?;
    assert_eq!((said.as_str(), asked), ("permission Lint: allow_once", 0));
    Ok(())
}

#[test]
fn always_in_an_untrusted_workspace_policy_does_not_loosen() -> anyhow::Result<()> {
    let env = Env::new();
    env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    let (text, mut lsp) = always_in_workspace(&env)?;
    lsp.wait_for("window/showMessage", |p| {
        p["message"].as_str().is_some_and(|m| {
            m.contains("commands.allow \"make lint\"") && m.contains("airlock policy trust")
        })
    })?;
    assert_eq!(text, LINT_ADDED, "the user's rule is written");
    assert_eq!(lsp.shutdown()?, 0);
    assert_eq!(
        std::fs::read_to_string(env.workspace.join(".airlock/policy.toml"))?,
        LINT_ADDED
    );
    let e = explain(&env, "make lint")?;
    assert_eq!(
        e["decision"], "ask",
        "an untrusted file must not loosen: {e}"
    );
    let (said, asked) = next_session(&env)?;
    assert_eq!((said.as_str(), asked), ("permission Lint: reject_once", 1));
    Ok(())
}

#[test]
fn plain_editor_picks_always_from_a_message_request() -> anyhow::Result<()> {
    let env = Env::new();
    let script = "[[turn]]\n[[turn.step]]\nrun = \"echo\"\nargs = [\"plain-always\"]\n[[turn.step]]\nrun = \"echo\"\nargs = [\"plain-always\"]\n";
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, script)?;
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(
        &env.workspace_uri(),
        json!({}),
        json!({"agent": {"script": path}}),
    )?;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a = asked.clone();
    lsp.set_responder(Box::new(move |method, params, editor| match method {
        "window/showMessageRequest" => {
            a.lock().unwrap().push(params.clone());
            json!({"title": "Always allow (workspace policy)"})
        }
        _ => airlock_e2e::default_responder()(method, params, editor),
    }));
    lsp.request(
        "workspace/executeCommand",
        json!({"command": "airlock.prompt", "arguments": ["go"]}),
    )?;
    lsp.wait_for("window/logMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("plain-always: exit 0"))
    })?;
    lsp.drain_for(std::time::Duration::from_millis(300));
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked.len(),
        1,
        "the second run is allowed by the new rule: {asked:?}"
    );
    let titles: Vec<&str> = asked[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Allow once",
            "Allow for this session",
            "Always allow (user policy)",
            "Always allow (workspace policy)",
            "Deny"
        ]
    );
    assert!(
        asked[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("commands.allow \"echo plain-always\"")),
        "{asked:?}"
    );
    // No workspace policy existed: it is created with only the user's rule, and trusted.
    assert_eq!(
        std::fs::read_to_string(env.workspace.join(".airlock/policy.toml"))?,
        "version = 1\n\n[commands]\nallow = [\"echo plain-always\"]\n"
    );
    assert_eq!(explain(&env, "echo plain-always")?["decision"], "allow");
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
