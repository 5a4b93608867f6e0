//! The client side facing a misbehaving agent: invalid JSON, oversized messages, unknown
//! methods, foreign sessions, bad parameters, silence and early death. The peer is a tiny
//! Python fake agent — the only way to produce bad input on purpose; every happy path is tested
//! against the real scripted agent in `acp_bridge.rs`.
#![allow(clippy::unwrap_used)]

mod acp_support;

use std::collections::BTreeMap;
use std::time::Duration;

use acp_support::{Answers, Harness, Seen, Workspace, within};
use airlock_acp::{AcpError, AgentClient, AgentConfig, ClientOptions, StopReason};

const FAKE_AGENT: &str = r#"
import json, sys
mode = sys.argv[1]

def send(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method is None:
        sys.stderr.write("client answered " + json.dumps(msg, sort_keys=True) + "\n")
        sys.stderr.flush()
        continue
    if method == "initialize":
        if mode == "die-in-handshake":
            sys.stderr.write("fatal: no API key\n")
            sys.exit(3)
        if mode == "silent":
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": 1, "agentCapabilities": {}}})
    elif method == "session/new":
        send({"jsonrpc": "2.0", "id": mid, "result": {"sessionId": "s1"}})
    elif method == "session/prompt":
        if mode == "die-in-prompt":
            sys.stdout.write("{\"jsonrpc\": \"2.0\", \"method\": \"session/up")
            sys.stdout.flush()
            sys.exit(9)
        sys.stdout.write("this is not json\n")
        sys.stdout.write("x" * (2 * 1024 * 1024) + "\n")
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "s1", "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "y" * (2 * 1024 * 1024)}}}}) + "\n")
        send({"jsonrpc": "2.0", "id": "a1", "method": "bogus/method", "params": {}})
        send({"jsonrpc": "2.0", "id": "a2", "method": "fs/read_text_file", "params": {"sessionId": "other", "path": "/etc/passwd"}})
        send({"jsonrpc": "2.0", "id": "a3", "method": "fs/read_text_file", "params": {"sessionId": "s1"}})
        send({"jsonrpc": "2.0", "method": "weird/notification", "params": {}})
        send({"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "s1", "update": {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "still alive"}}}})
        send({"jsonrpc": "2.0", "id": mid, "result": {"stopReason": "end_turn"}})
"#;

fn fake_agent(ws: &Workspace, mode: &str) -> AgentConfig {
    let script = ws.write("fake_agent.py", FAKE_AGENT);
    AgentConfig {
        command: vec!["python3".into(), script.display().to_string(), mode.into()],
        env: BTreeMap::new(),
        cwd: ws.root(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_become_protocol_errors_and_the_connection_survives() {
    let ws = Workspace::new();
    let options = ClientOptions {
        max_message_bytes: 1024 * 1024,
        ..ClientOptions::default()
    };
    let h = Harness::start_with(
        &fake_agent(&ws, "misbehave"),
        &ws.root(),
        Answers::new(ws.root()),
        options,
    )
    .await;
    let reason = within("prompt", h.client.prompt("go")).await.unwrap();
    assert_eq!(reason, StopReason::EndTurn);
    h.wait_for("the live message", |s| {
        s.iter()
            .any(|s| matches!(s, Seen::Update(u) if u.text.as_deref() == Some("still alive")))
    })
    .await;
    let errors = h.protocol_errors();
    let expect = [
        "invalid JSON",
        "message of 2097152 bytes exceeds the 1048576-byte limit",
        "exceeds the 1048576-byte limit",
        "agent called unknown method `bogus/method`",
        "names session Some(\"other\")",
        "invalid fs/read_text_file parameters: missing field `path`",
        "agent sent unknown notification `weird/notification`",
    ];
    for needle in expect {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no protocol error with {needle:?} in {errors:?}"
        );
    }
    assert_eq!(errors.len(), 7, "{errors:?}");
    // No request reached the server: all were refused by the bridge.
    assert!(h.requests().is_empty(), "{:?}", h.requests());
    // The agent got a JSON-RPC error for each bad request (it logs them to stderr).
    within("shutdown", h.client.shutdown()).await;
    h.wait_exited().await;
    let Some(Seen::Exited { stderr_tail, .. }) = h.seen().pop() else {
        panic!("no Exited event")
    };
    for (id, code) in [("a1", -32601), ("a2", -32602), ("a3", -32602)] {
        assert!(
            stderr_tail
                .lines()
                .any(|l| l.contains(&format!("\"id\": \"{id}\""))
                    && l.contains(&format!("\"code\": {code}"))),
            "agent did not get error {code} for {id}:\n{stderr_tail}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dying_mid_prompt_fails_the_prompt_and_reports_exit() {
    let ws = Workspace::new();
    let h = Harness::start(
        &fake_agent(&ws, "die-in-prompt"),
        &ws.root(),
        Answers::new(ws.root()),
    )
    .await;
    let result = within("prompt", h.client.prompt("go")).await;
    assert!(matches!(result, Err(AcpError::Closed)), "{result:?}");
    h.wait_exited().await;
    let seen = h.seen();
    assert!(
        matches!(seen.last(), Some(Seen::Exited { code: Some(9), .. })),
        "{seen:?}"
    );
    // The half-written last line is reported, not passed on.
    assert!(
        h.protocol_errors()
            .iter()
            .any(|e| e.contains("invalid JSON")),
        "{:?}",
        h.protocol_errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_dying_in_the_handshake_is_a_clear_error() {
    let ws = Workspace::new();
    let error = AgentClient::spawn(
        &fake_agent(&ws, "die-in-handshake"),
        &ws.root(),
        ClientOptions::default(),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("failed the ACP handshake at initialize"),
        "{text}"
    );
    assert!(text.contains("fatal: no API key"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_times_out_and_is_killed() {
    let ws = Workspace::new();
    let options = ClientOptions {
        handshake_timeout: Duration::from_millis(500),
        exit_grace: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    let started = std::time::Instant::now();
    let error = AgentClient::spawn(&fake_agent(&ws, "silent"), &ws.root(), options)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no answer within 500ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The silent agent was stopped, not left behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let marker = format!("{}\0silent", ws.root().join("fake_agent.py").display());
        if !process_with_cmdline(&marker) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "silent agent still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when a live process's NUL-separated command line contains `needle`.
fn process_with_cmdline(needle: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
    })
}
