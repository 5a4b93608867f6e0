//! Everything the client side sends to an agent, and everything it accepts from the scripted
//! agent, validates against the ACP v1 JSON schema (a copy lives in
//! server/airlock-acp/schema/acp-v1.json). The traffic is recorded on the wire by the client's
//! traffic tap while a script exercises every method, success and error answers included.
//!
//! The same for ACP v2 (server/airlock-acp/schema/acp-v2.json) with a v2 agent that edits the
//! disk itself (tests/tests/shadow_support/disk_agent.py --v2): the negotiation, a prompt
//! acknowledged and ended by a `state_update`, tool calls with v2 diffs, a permission request
//! and its answer, and a cancel. The initialize offer of v2 must also be a valid v1 request
//! (a v1-only agent answers it).
#![allow(clippy::unwrap_used)]

mod acp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acp_support::{Answers, Harness, Workspace, within};
use airlock_acp::{AgentError, ClientOptions, Direction, PromptPart, StopReason};
use serde_json::{Value, json};

fn schema() -> Value {
    schema_file("acp-v1.json")
}

fn schema_file(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../server/airlock-acp/schema")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A validator for one definition of the schema (`$defs/NAME`), sharing its `$defs`.
fn validator_for_def(schema: &Value, name: &str) -> jsonschema::Validator {
    assert!(
        schema["$defs"].get(name).is_some(),
        "schema has no $defs/{name}"
    );
    let sub = json!({ "$ref": format!("#/$defs/{name}"), "$defs": schema["$defs"].clone() });
    jsonschema::validator_for(&sub).unwrap()
}

fn request_def(method: &str) -> &'static str {
    match method {
        "initialize" => "InitializeRequest",
        "session/new" => "NewSessionRequest",
        "session/prompt" => "PromptRequest",
        "fs/read_text_file" => "ReadTextFileRequest",
        "fs/write_text_file" => "WriteTextFileRequest",
        "session/request_permission" => "RequestPermissionRequest",
        "terminal/create" => "CreateTerminalRequest",
        "terminal/output" => "TerminalOutputRequest",
        "terminal/wait_for_exit" => "WaitForTerminalExitRequest",
        "terminal/kill" => "KillTerminalRequest",
        "terminal/release" => "ReleaseTerminalRequest",
        other => panic!("no schema mapping for request {other}"),
    }
}

fn response_def(method: &str) -> String {
    let request = request_def(method);
    format!(
        "{}Response",
        request.strip_suffix("Request").unwrap_or(request)
    )
}

fn notification_def(method: &str) -> &'static str {
    match method {
        "session/update" => "SessionNotification",
        "session/cancel" => "CancelNotification",
        "$/cancel_request" => "CancelRequestNotification",
        other => panic!("no schema mapping for notification {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_traffic_validates_against_the_acp_schema() {
    let ws = Workspace::new();
    ws.write("src/lib.rs", "fn one() {}\nfn two() {}\n");
    let config = ws.mock_config(
        r#"
[[turn]]
[[turn.step]]
thought = "plan first"
[[turn.step]]
plan = ["read", { content = "edit", status = "in_progress", priority = "high" }]
[[turn.step]]
tool_call = "c1"
title = "Search"
kind = "search"
locations = ["src/lib.rs"]
raw_input = { q = "fn" }
content = "searching"
[[turn.step]]
tool_update = "c1"
status = "completed"
[[turn.step]]
read = "src/lib.rs"
line = 1
limit = 1
[[turn.step]]
read = "missing.rs"
[[turn.step]]
write = "src/lib.rs"
announce = true
replace = [{ search = "one", with = "uno" }]
[[turn.step]]
write = "denied.rs"
content = "x"
[[turn.step]]
permission = "Edit"
kind = "edit"
diff = { path = "src/lib.rs", old_text = "a", new_text = "b" }
[[turn.step]]
run = "sh"
args = ["-c", "echo hi"]
env = { A = "1" }
output_byte_limit = 1000
[[turn.step]]
run = "sleep 30"
kill_after_ms = 50
[[turn.step]]
message = "done"
[[turn]]
[[turn.step]]
message = "waiting"
[[turn.step]]
wait = 60000
"#,
    );
    let recorded: Arc<Mutex<Vec<(Direction, String)>>> = Arc::default();
    let tap = {
        let recorded = recorded.clone();
        Arc::new(move |direction: Direction, line: &str| {
            recorded.lock().unwrap().push((direction, line.to_owned()));
        })
    };
    let options = ClientOptions {
        traffic_tap: Some(tap),
        ..ClientOptions::default()
    };
    let mut answers = Answers::new(ws.root());
    answers.slow_commands = vec!["sleep"];
    answers.write = Box::new(|path, _| {
        if path.ends_with("denied.rs") {
            Err(AgentError::denied("denied by rule files.protect[0]"))
        } else {
            Ok(())
        }
    });
    let h = Harness::start_with(&config, &ws.root(), answers, options).await;
    assert_eq!(
        within(
            "turn 1",
            h.client.prompt_with(&[
                PromptPart::Text("go".into()),
                PromptPart::ResourceLink {
                    name: "lib.rs".into(),
                    uri: format!("file://{}", ws.root().join("src/lib.rs").display()),
                },
            ])
        )
        .await
        .unwrap(),
        StopReason::EndTurn
    );
    // Turn 2 waits; cancel it so session/cancel and a `cancelled` stop reason are on the wire.
    let prompt = h.spawn_prompt("wait");
    // Cancel once the turn runs: a cancel that overtook the prompt would not apply to it.
    h.wait_for_message("waiting").await;
    h.client.cancel().unwrap();
    assert_eq!(
        within("turn 2", prompt).await.unwrap().unwrap(),
        StopReason::Cancelled
    );
    h.client.shutdown().await;

    let schema = schema();
    let root = jsonschema::validator_for(&schema).unwrap();
    // The validators are strict enough to catch a broken message.
    assert!(
        !validator_for_def(&schema, "ReadTextFileRequest").is_valid(&json!({"sessionId": "s"}))
    );
    assert!(!root.is_valid(&json!({"jsonrpc": "1.0", "id": 1, "method": "initialize"})));
    let mut validators: BTreeMap<String, jsonschema::Validator> = BTreeMap::new();
    let mut validate = |def: &str, value: &Value, context: &str| {
        let validator = validators
            .entry(def.to_owned())
            .or_insert_with(|| validator_for_def(&schema, def));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{context} does not match $defs/{def}: {errors:?}\n{value}"
        );
    };
    // Request ids are per sender: (direction of the request, id) → method.
    let mut pending: BTreeMap<(bool, String), String> = BTreeMap::new();
    let mut covered = BTreeSet::new();
    let lines = recorded.lock().unwrap().clone();
    assert!(
        lines.len() > 40,
        "too little traffic recorded: {}",
        lines.len()
    );
    for (direction, line) in &lines {
        let outgoing = *direction == Direction::Outgoing;
        let side = if outgoing { "client" } else { "agent" };
        let message: Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = root.iter_errors(&message).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{side} message fails the ACP schema: {errors:?}\n{line}"
        );
        let id = message.get("id").map(Value::to_string);
        match (message.get("method").and_then(Value::as_str), id) {
            (Some(method), Some(id)) => {
                validate(
                    request_def(method),
                    &message["params"],
                    &format!("{side} request {method}"),
                );
                pending.insert((outgoing, id), method.to_owned());
                covered.insert(format!("{side} → {method}"));
            }
            (Some(method), None) => {
                validate(
                    notification_def(method),
                    &message["params"],
                    &format!("{side} notification {method}"),
                );
                covered.insert(format!("{side} → {method}"));
            }
            (None, Some(id)) => {
                let method = pending
                    .remove(&(!outgoing, id.clone()))
                    .unwrap_or_else(|| panic!("{side} answered unknown request id {id}: {line}"));
                if let Some(error) = message.get("error") {
                    validate("Error", error, &format!("{side} error for {method}"));
                    covered.insert(format!("{side} → error for {method}"));
                } else {
                    validate(
                        &response_def(&method),
                        &message["result"],
                        &format!("{side} result for {method}"),
                    );
                    covered.insert(format!("{side} → result for {method}"));
                }
            }
            (None, None) => panic!("neither request, notification nor response: {line}"),
        }
    }
    let expected = [
        "client → initialize",
        "client → session/new",
        "client → session/prompt",
        "client → session/cancel",
        "agent → result for initialize",
        "agent → result for session/new",
        "agent → result for session/prompt",
        "agent → session/update",
        "agent → fs/read_text_file",
        "agent → fs/write_text_file",
        "agent → session/request_permission",
        "agent → terminal/create",
        "agent → terminal/output",
        "agent → terminal/wait_for_exit",
        "agent → terminal/kill",
        "agent → terminal/release",
        "client → result for fs/read_text_file",
        "client → error for fs/read_text_file",
        "client → result for fs/write_text_file",
        "client → error for fs/write_text_file",
        "client → result for session/request_permission",
        "client → result for terminal/create",
        "client → result for terminal/output",
        "client → result for terminal/wait_for_exit",
        "client → result for terminal/kill",
        "client → result for terminal/release",
    ];
    let missing: Vec<_> = expected.iter().filter(|e| !covered.contains(**e)).collect();
    assert!(
        missing.is_empty(),
        "traffic did not cover {missing:?}; covered {covered:?}"
    );
    // The kill really interrupted the long command, as the agent reported.
    assert!(
        h.messages()
            .iter()
            .any(|m| m == "run sleep 30: killed by SIGKILL"),
        "{:?}",
        h.messages()
    );
}

const DISK_AGENT: &str = include_str!("shadow_support/disk_agent.py");

fn v2_request_def(method: &str) -> &'static str {
    match method {
        "initialize" => "InitializeRequest",
        "session/new" => "NewSessionRequest",
        "session/prompt" => "PromptRequest",
        "session/request_permission" => "RequestPermissionRequest",
        other => panic!("no v2 schema mapping for request {other}"),
    }
}

fn v2_notification_def(method: &str) -> &'static str {
    match method {
        "session/update" => "UpdateSessionNotification",
        "session/cancel" => "CancelSessionNotification",
        other => panic!("no v2 schema mapping for notification {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_traffic_validates_against_the_acp_v2_schema() {
    let ws = Workspace::new();
    ws.write("src/lib.txt", "one\n");
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let config = airlock_acp::AgentConfig {
        command: [python, "-c", DISK_AGENT, "--v2"]
            .map(String::from)
            .to_vec(),
        env: BTreeMap::new(),
        cwd: ws.root(),
    };
    let recorded: Arc<Mutex<Vec<(Direction, String)>>> = Arc::default();
    let tap = {
        let recorded = recorded.clone();
        Arc::new(move |direction: Direction, line: &str| {
            recorded.lock().unwrap().push((direction, line.to_owned()));
        })
    };
    let options = ClientOptions {
        traffic_tap: Some(tap),
        offer_protocol_v2: true,
        client_fs_and_terminal: false,
        ..ClientOptions::default()
    };
    let h = Harness::start_with(&config, &ws.root(), Answers::new(ws.root()), options).await;
    assert_eq!(h.client.protocol_version(), 2);
    assert_eq!(
        h.client.agent_info().map(|i| i.name.as_str()),
        Some("disk-agent")
    );
    let actions = json!([
        {"write": "NOTES.md", "content": "new\n", "diff": true},
        {"write": "src/lib.txt", "content": "uno\n", "diff": true},
        {"ask": "Edit src/lib.txt?"},
    ]);
    assert_eq!(
        within(
            "v2 turn",
            h.client.prompt_with(&[
                PromptPart::Text(format!("go\nDO {actions}\n")),
                PromptPart::ResourceLink {
                    name: "lib.txt".into(),
                    uri: format!("file://{}", ws.root().join("src/lib.txt").display()),
                },
            ])
        )
        .await
        .unwrap(),
        StopReason::EndTurn
    );
    // The prompt's answer is only an acknowledgement: the turn ended at the idle state update,
    // which the agent sends after the permission round trip.
    assert!(
        recorded
            .lock()
            .unwrap()
            .iter()
            .any(|(_, line)| line.contains("state_update") && line.contains("\"idle\"")),
        "the prompt returned before the agent reported idle"
    );
    // The harness drains the event queue on its own task: let it catch up.
    h.wait_for("the turn's last message", |seen| {
        seen.iter()
            .any(|s| matches!(s, acp_support::Seen::Update(u) if u.text.as_deref() == Some("done")))
    })
    .await;
    let messages = h.messages();
    assert_eq!(
        messages.last().map(String::as_str),
        Some("done"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m == r#"PERMISSION {"outcome": {"outcome": "selected", "optionId": "yes"}}"#),
        "{messages:?}"
    );
    // The v2 diffs arrive as file changes with their patch.
    let changes: Vec<(String, PathBuf, bool)> = h
        .seen()
        .into_iter()
        .filter_map(|s| match s {
            acp_support::Seen::Update(u) => u.tool_call,
            _ => None,
        })
        .flat_map(|call| call.content)
        .filter_map(|c| match c {
            airlock_acp::ToolContent::Changes { changes, patch } => Some(
                changes
                    .into_iter()
                    .map(|c| (c.operation, c.path, patch.is_some()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        changes,
        vec![
            ("add".to_owned(), ws.root().join("NOTES.md"), true),
            ("modify".to_owned(), ws.root().join("src/lib.txt"), true),
        ]
    );
    h.client.cancel().unwrap();
    h.client.shutdown().await;

    let v1_schema = schema();
    let schema = schema_file("acp-v2.json");
    let root = jsonschema::validator_for(&schema).unwrap();
    // Strict enough to catch a v1 message where v2 is spoken.
    assert!(
        !validator_for_def(&schema, "PromptResponse").is_valid(&json!({"stopReason": "end_turn"}))
    );
    assert!(
        !validator_for_def(&schema, "InitializeRequest")
            .is_valid(&json!({"protocolVersion": 2, "clientInfo": {"name": "a", "version": "1"}}))
    );
    let mut validators: BTreeMap<String, jsonschema::Validator> = BTreeMap::new();
    let mut validate = |def: &str, value: &Value, context: &str| {
        let validator = validators
            .entry(def.to_owned())
            .or_insert_with(|| validator_for_def(&schema, def));
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{context} does not match v2 $defs/{def}: {errors:?}\n{value}"
        );
    };
    let mut pending: BTreeMap<(bool, String), String> = BTreeMap::new();
    let mut covered = BTreeSet::new();
    let lines = recorded.lock().unwrap().clone();
    for (direction, line) in &lines {
        let outgoing = *direction == Direction::Outgoing;
        let side = if outgoing { "client" } else { "agent" };
        let message: Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = root.iter_errors(&message).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{side} message fails the ACP v2 schema: {errors:?}\n{line}"
        );
        let id = message.get("id").map(Value::to_string);
        match (message.get("method").and_then(Value::as_str), id) {
            (Some(method), Some(id)) => {
                validate(
                    v2_request_def(method),
                    &message["params"],
                    &format!("{side} request {method}"),
                );
                if method == "initialize" {
                    // A v1-only agent reads the same offer as a v1 request.
                    let v1 = validator_for_def(&v1_schema, "InitializeRequest");
                    assert!(v1.is_valid(&message["params"]), "{line}");
                    assert_eq!(message["params"]["protocolVersion"], 2);
                }
                pending.insert((outgoing, id), method.to_owned());
                covered.insert(format!("{side} → {method}"));
            }
            (Some(method), None) => {
                validate(
                    v2_notification_def(method),
                    &message["params"],
                    &format!("{side} notification {method}"),
                );
                covered.insert(format!("{side} → {method}"));
                if let Some(tag) = message["params"]["update"]["sessionUpdate"].as_str() {
                    covered.insert(format!("{side} → {method} {tag}"));
                }
            }
            (None, Some(id)) => {
                let method = pending
                    .remove(&(!outgoing, id.clone()))
                    .unwrap_or_else(|| panic!("{side} answered unknown request id {id}: {line}"));
                let request = v2_request_def(&method);
                let response = format!(
                    "{}Response",
                    request.strip_suffix("Request").unwrap_or(request)
                );
                validate(
                    &response,
                    &message["result"],
                    &format!("{side} result for {method}"),
                );
                covered.insert(format!("{side} → result for {method}"));
            }
            (None, None) => panic!("neither request, notification nor response: {line}"),
        }
    }
    let expected = [
        "client → initialize",
        "client → session/new",
        "client → session/prompt",
        "client → session/cancel",
        "agent → result for initialize",
        "agent → result for session/new",
        "agent → result for session/prompt",
        "agent → session/update agent_message_chunk",
        "agent → session/update tool_call_update",
        "agent → session/update state_update",
        "agent → session/request_permission",
        "client → result for session/request_permission",
    ];
    let missing: Vec<_> = expected.iter().filter(|e| !covered.contains(**e)).collect();
    assert!(
        missing.is_empty(),
        "traffic did not cover {missing:?}; covered {covered:?}"
    );
}
