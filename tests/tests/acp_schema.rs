//! Everything the client side sends to an agent, and everything it accepts from the scripted
//! agent, validates against the ACP v1 JSON schema (a copy lives in
//! server/airlock-acp/schema/acp-v1.json). The traffic is recorded on the wire by the client's
//! traffic tap while a script exercises every method, success and error answers included.
#![allow(clippy::unwrap_used)]

mod acp_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acp_support::{Answers, Harness, Workspace, within};
use airlock_acp::{AgentError, ClientOptions, Direction, PromptPart, StopReason};
use serde_json::{Value, json};

fn schema() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/airlock-acp/schema/acp-v1.json");
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
