//! A connection the policy says to `ask` about (`network.default = "ask"`) is held by the egress
//! proxy while `airlock serve` asks the user through `airlock/approval` (kind `network`).
//! Checked from outside: the loopback server records what reached it. Names point at 127.0.0.1
//! through the test-only resolver override (`AIRLOCK_TEST_RESOLVE`, docs/network.md).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_e2e::http::HttpServer;
use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

#[test]
fn ask_for_a_domain_goes_to_the_user_and_the_answer_holds() -> anyhow::Result<()> {
    let server = HttpServer::start(|path| format!("reached {path}"))?;
    let port = server.port;
    let env = Env::new();
    std::fs::create_dir_all(env.config.join("airlock"))?;
    // `127.0.0.1` is allowed exactly so the rebinding guard lets the test names through once
    // the user said yes; every name itself is `ask`.
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[commands]\nallow = [\"curl\"]\n[network]\ndefault = \"ask\"\nallow = [\"127.0.0.1\"]\n",
    )?;
    let curl = |name: &str, path: &str, extra: &str| {
        format!(
            "[[turn.step]]\nrun = \"curl\"\nargs = [{extra}\"-sS\", \"http://{name}:{port}/{path}\"]\n"
        )
    };
    let script = [
        "[[turn]]\n".to_owned(),
        curl("yes.test", "yes", ""),
        curl("no.test", "no", ""),
        curl("slow.test", "slow", ""),
        curl("again.test", "again-1", ""),
        // Through CONNECT this time (`-p`): the session's answer covers it too.
        curl("again.test", "again-2", "\"-p\", "),
        // "Always": a network rule in the user policy decides the next connection.
        curl("keep.test", "keep-1", ""),
        curl("keep.test", "keep-2", ""),
    ]
    .concat();
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, script)?;
    let mut cmd = env.command();
    cmd.arg("serve").env(
        "AIRLOCK_TEST_RESOLVE",
        "yes.test=127.0.0.1,no.test=127.0.0.1,slow.test=127.0.0.1,again.test=127.0.0.1,keep.test=127.0.0.1",
    );
    let mut lsp = Lsp::spawn(cmd)?;
    lsp.initialize(
        &env.workspace_uri(),
        json!({"experimental": {"airlock": true}}),
        json!({"agent": {"script": path}, "approvals": {"network_timeout_secs": 2}}),
    )?;
    let asked: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let a = asked.clone();
    lsp.set_responder(Box::new(move |method, params, editor| match method {
        "airlock/approval" if params["kind"] == "network" => {
            let subject = params["subject"].as_str().unwrap_or_default().to_owned();
            *a.lock().unwrap().entry(subject.clone()).or_default() += 1;
            match subject.split(':').next().unwrap_or_default() {
                "yes.test" => json!({"choice": "allow_once"}),
                "no.test" => json!({"choice": "deny"}),
                "again.test" => json!({"choice": "allow_session"}),
                "keep.test" => json!({"choice": "allow_always"}),
                _ => airlock_e2e::no_reply(),
            }
        }
        _ => airlock_e2e::default_responder()(method, params, editor),
    }));
    let stop = lsp.request("airlock/prompt", json!({"text": "go"}))?;
    assert_eq!(stop["stopReason"], "end_turn");
    let question = lsp.wait_for("request:airlock/approval", |_| true)?;
    assert_eq!(question["kind"], "network");
    assert_eq!(question["subject"], format!("yes.test:{port}"));
    assert_eq!(
        question["alwaysRule"],
        format!("network.allow \"yes.test:{port}\"")
    );
    assert!(
        question["rule"]
            .as_str()
            .is_some_and(|r| r.contains("network.default")),
        "{question}"
    );
    lsp.drain_for(Duration::from_millis(300));
    let dump = lsp.dump();
    assert!(
        dump.contains("reached /yes"),
        "allowed: the answer reaches the agent\n{dump}"
    );
    assert!(
        dump.contains("(ask: denied by the user)"),
        "denied: the 403 body names the decision\n{dump}"
    );
    assert!(
        dump.contains("(ask: no answer within 2 s, denied)"),
        "unanswered: denied after the timeout\n{dump}"
    );
    assert!(dump.contains("reached /again-2"), "{dump}");
    // Checked from outside: only the allowed requests arrived.
    assert_eq!(
        server.paths(),
        ["/yes", "/again-1", "/again-2", "/keep-1", "/keep-2"]
    );
    assert_eq!(
        std::fs::read_to_string(env.config.join("airlock/policy.toml"))?,
        format!(
            "version = 1\n[commands]\nallow = [\"curl\"]\n[network]\ndefault = \"ask\"\nallow = [\"127.0.0.1\", \"keep.test:{port}\"]\n"
        )
    );
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked.get(&format!("again.test:{port}")),
        Some(&1),
        "the session's answer covers the second connection: {asked:?}"
    );
    assert_eq!(
        asked.get(&format!("keep.test:{port}")),
        Some(&1),
        "{asked:?}"
    );
    assert_eq!(asked.len(), 5, "{asked:?}");
    // Every attempt is a net.attempt event that says who decided.
    let mut by: HashMap<String, Vec<(String, String)>> = HashMap::new();
    assert_eq!(lsp.shutdown()?, 0);
    let mut audit = String::new();
    for e in walk(&env.state) {
        audit.push_str(&std::fs::read_to_string(e).unwrap_or_default());
    }
    for line in audit.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let e = if v["event"].is_object() {
            &v["event"]
        } else {
            &v
        };
        if e["kind"] == "net.attempt" {
            let host = e["subject"].as_str().unwrap_or_default();
            let host = host.split(':').next().unwrap_or_default().to_owned();
            let pair = (
                e["fields"]["decision"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["fields"]["by"].as_str().unwrap_or_default().to_owned(),
            );
            let list = by.entry(host).or_default();
            if !list.contains(&pair) {
                list.push(pair);
            }
        }
    }
    let p = |d: &str, b: &str| (d.to_owned(), b.to_owned());
    assert_eq!(
        by.get("yes.test"),
        Some(&vec![p("allow", "user")]),
        "{by:?}"
    );
    assert_eq!(by.get("no.test"), Some(&vec![p("deny", "user")]), "{by:?}");
    assert_eq!(
        by.get("slow.test"),
        Some(&vec![p("deny", "timeout")]),
        "{by:?}"
    );
    assert_eq!(
        by.get("again.test"),
        Some(&vec![p("allow", "user"), p("allow", "session")]),
        "{by:?}"
    );
    assert_eq!(
        by.get("keep.test"),
        Some(&vec![p("allow", "user"), p("allow", "policy")]),
        "{by:?}"
    );
    Ok(())
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// An editor without the extension is asked with `window/showMessageRequest`.
#[test]
fn plain_editor_is_asked_about_a_connection_with_a_message_request() -> anyhow::Result<()> {
    let server = HttpServer::start(|path| format!("reached {path}"))?;
    let port = server.port;
    let env = Env::new();
    std::fs::create_dir_all(env.config.join("airlock"))?;
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[commands]\nallow = [\"curl\"]\n[network]\ndefault = \"ask\"\nallow = [\"127.0.0.1\"]\n",
    )?;
    let script = format!(
        "[[turn]]\n[[turn.step]]\nrun = \"curl\"\nargs = [\"-sS\", \"http://plain.test:{port}/plain\"]\n"
    );
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, script)?;
    let mut cmd = env.command();
    cmd.arg("serve")
        .env("AIRLOCK_TEST_RESOLVE", "plain.test=127.0.0.1");
    let mut lsp = Lsp::spawn(cmd)?;
    lsp.initialize(
        &env.workspace_uri(),
        json!({}),
        json!({"agent": {"script": path}}),
    )?;
    lsp.set_responder(Box::new(move |method, params, editor| match method {
        "window/showMessageRequest"
            if params["message"]
                .as_str()
                .is_some_and(|m| m.contains("connect to")) =>
        {
            json!({"title": "Allow for this session"})
        }
        _ => airlock_e2e::default_responder()(method, params, editor),
    }));
    lsp.request(
        "workspace/executeCommand",
        json!({"command": "airlock.prompt", "arguments": ["go"]}),
    )?;
    let asked = lsp.wait_for("request:window/showMessageRequest", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("connect to"))
    })?;
    let message = asked["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("connect to `plain.test:{port}`"))
            && message.contains(&format!("network.allow \"plain.test:{port}\"")),
        "{message}"
    );
    lsp.wait_for("window/logMessage", |p| {
        p["message"]
            .as_str()
            .is_some_and(|m| m.contains("reached /plain"))
    })?;
    assert_eq!(server.paths(), ["/plain"]);
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}
