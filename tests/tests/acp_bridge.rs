//! The client side of the agent bridge against the real scripted agent (`airlock agent mock`):
//! prompts, streamed updates, every kind of agent request, cancel, crash and script errors.
#![allow(clippy::unwrap_used)]

mod acp_support;

use std::time::Duration;

use acp_support::{Answers, Harness, Seen, Workspace, within};
use airlock_acp::{
    AcpError, AgentClient, AgentError, ClientOptions, PermissionKind, StopReason, ToolContent,
    ToolKind, UpdateKind,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_streams_updates_in_order() {
    let ws = Workspace::new();
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
thought = "thinking"
[[turn.step]]
plan = ["first", { content = "second", status = "completed", priority = "high" }]
[[turn.step]]
tool_call = "t1"
title = "Looking around"
kind = "search"
status = "in_progress"
locations = ["src/a.rs"]
raw_input = { query = "fn main" }
[[turn.step]]
tool_update = "t1"
status = "completed"
content = "found it"
[[turn.step]]
message = "hello"
repeat = 3
"#,
    )
    .await;
    assert_eq!(h.client.agent_info().unwrap().name, "airlock-mock");
    let reason = h.prompt("go").await;
    assert_eq!(reason, StopReason::EndTurn);
    // The bridge queues every update before the prompt's answer is routed; the fake server
    // task may still be draining them, so wait until it has.
    h.wait_for("updates", |s| s.len() >= 7).await;
    let seen = h.seen();
    let kinds: Vec<_> = seen
        .iter()
        .map(|s| match s {
            Seen::Update(u) => u.kind.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            UpdateKind::AgentThoughtChunk,
            UpdateKind::Plan,
            UpdateKind::ToolCall,
            UpdateKind::ToolCallUpdate,
            UpdateKind::AgentMessageChunk,
            UpdateKind::AgentMessageChunk,
            UpdateKind::AgentMessageChunk,
        ]
    );
    let Seen::Update(plan) = &seen[1] else {
        unreachable!()
    };
    assert_eq!(
        plan.text.as_deref(),
        Some("[pending] first; [completed] second")
    );
    assert_eq!(plan.raw["sessionUpdate"], "plan");
    let Seen::Update(call) = &seen[2] else {
        unreachable!()
    };
    let info = call.tool_call.as_ref().unwrap();
    assert_eq!(info.id, "t1");
    assert_eq!(info.kind, Some(ToolKind::Search));
    assert_eq!(info.status.as_deref(), Some("in_progress"));
    assert_eq!(info.raw_input.as_ref().unwrap()["query"], "fn main");
    assert_eq!(info.locations[0].path, ws.root().join("src/a.rs"));
    let Seen::Update(update) = &seen[3] else {
        unreachable!()
    };
    let info = update.tool_call.as_ref().unwrap();
    assert_eq!(info.status.as_deref(), Some("completed"));
    assert_eq!(info.content, vec![ToolContent::Text("found it".into())]);
    assert_eq!(h.messages(), vec!["hello"; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_are_chosen_by_match_then_in_order() {
    let ws = Workspace::new();
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
message = "one"
[[turn]]
match = "Explain"
[[turn.step]]
message = "explained"
[[turn]]
[[turn.step]]
message = "two"
"#,
    )
    .await;
    for prompt in ["a", "please EXPLAIN this", "b", "c"] {
        h.prompt(prompt).await;
    }
    h.wait_for("4 messages", |s| s.len() >= 4).await;
    assert_eq!(
        h.messages(),
        vec![
            "one",
            "explained",
            "two",
            "airlock-mock: the script has no turn left for this prompt"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_request_is_answered_and_reported() {
    let ws = Workspace::new();
    ws.write("src/lib.rs", "line 1\nline 2\nline 3\n");
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
read = "src/lib.rs"
expect = "line 2"
echo = true
[[turn.step]]
read = "src/lib.rs"
line = 2
limit = 1
echo = true
[[turn.step]]
read = "missing.txt"
[[turn.step]]
read = "src/lib.rs"
expect = "not there"
[[turn.step]]
message = "not reached"
"#,
    )
    .await;
    let reason = h.prompt("read").await;
    assert_eq!(reason, StopReason::EndTurn);
    h.wait_for("messages", |s| s.len() >= 10).await;
    let lib = ws.root().join("src/lib.rs");
    let requests = h.requests();
    assert_eq!(
        requests[1],
        (
            "fs/read_text_file".to_owned(),
            format!("{} line=Some(2) limit=Some(1)", lib.display())
        )
    );
    let messages = h.messages();
    assert_eq!(messages[0], "read src/lib.rs: 21 bytes");
    assert_eq!(messages[1], "line 1\nline 2\nline 3\n");
    assert_eq!(messages[2], "read src/lib.rs: 7 bytes");
    assert_eq!(messages[3], "line 2\n");
    assert!(
        messages[4].starts_with("read missing.txt: error -32002: "),
        "{}",
        messages[4]
    );
    assert_eq!(
        messages.last().unwrap(),
        "read src/lib.rs: expected text not found: \"not there\" (script line 14); ending the turn"
    );
    assert!(!messages.iter().any(|m| m == "not reached"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_arrives_with_full_content_and_outcome_is_reported() {
    let ws = Workspace::new();
    let original = "fn a() {\n    1\n}\n\nfn b() {\n    2\n}\n";
    ws.write("src/lib.rs", original);
    let script = r#"
[[turn]]
[[turn.step]]
write = "src/lib.rs"
announce = true
replace = [{ search = "    1", with = "    10" }, { search = "    2", with = "    20" }]
[[turn.step]]
write = "src/new.rs"
content = "pub struct New;\n"
[[turn.step]]
write = "src/lib.rs"
replace = [{ search = "nowhere", with = "x" }]
"#;
    let mut answers = Answers::new(ws.root());
    answers.write = Box::new(|path, _| {
        if path.ends_with("new.rs") {
            Err(AgentError::denied("rejected by user: no new files"))
        } else {
            Ok(())
        }
    });
    let h = Harness::mock_answering(&ws, script, answers).await;
    h.prompt("edit").await;
    h.wait_for("outcome messages", |s| {
        s.iter()
            .filter(|s| matches!(s, Seen::Update(u) if u.kind == UpdateKind::AgentMessageChunk))
            .count()
            >= 4
    })
    .await;
    let writes = h.writes.lock().unwrap().clone();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0].0, ws.root().join("src/lib.rs"));
    assert_eq!(writes[0].1, "fn a() {\n    10\n}\n\nfn b() {\n    20\n}\n");
    assert_eq!(
        writes[1],
        (ws.root().join("src/new.rs"), "pub struct New;\n".to_owned())
    );
    // Nothing touched the disk: the client side only reports.
    assert_eq!(
        std::fs::read_to_string(ws.root().join("src/lib.rs")).unwrap(),
        original
    );
    let messages = h.messages();
    assert_eq!(
        messages,
        vec![
            "read src/lib.rs: 35 bytes".to_owned(),
            "write src/lib.rs: ok".to_owned(),
            "write src/new.rs: error -31001: rejected by user: no new files".to_owned(),
            "write src/lib.rs: search text not found: \"nowhere\" (script line 10); nothing written".to_owned(),
        ]
    );
    // The announced edit carries the diff the server can show.
    let diff = h.seen().into_iter().find_map(|s| match s {
        Seen::Update(u) if u.kind == UpdateKind::ToolCall => u.tool_call,
        _ => None,
    });
    let diff = diff.unwrap();
    assert_eq!(diff.kind, Some(ToolKind::Edit));
    assert!(matches!(
        &diff.content[0],
        ToolContent::Diff { old_text: Some(old), new_text, .. } if old == original && new_text.contains("    20")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_requests_run_in_order_and_exit_code_is_reported() {
    let ws = Workspace::new();
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
run = "sh"
args = ["-c", "echo out-$((20 + 22)); exit 3"]
[[turn.step]]
run = "definitely-not-a-command-xyz"
"#,
    )
    .await;
    h.prompt("run").await;
    h.wait_for_message("run definitely").await;
    let methods: Vec<String> = h.requests().into_iter().map(|(m, _)| m).collect();
    assert_eq!(
        methods,
        vec![
            "terminal/create",
            "terminal/wait_for_exit",
            "terminal/output",
            "terminal/release",
            "terminal/create"
        ]
    );
    let messages = h.messages();
    assert_eq!(
        messages[0],
        "run sh -c echo out-$((20 + 22)); exit 3: exit 3"
    );
    assert_eq!(messages[1], "output:\nout-42\n");
    assert!(
        messages[2].starts_with("run definitely-not-a-command-xyz: error -32002:"),
        "{}",
        messages[2]
    );
    // The run is shown as an execute tool call embedding the terminal, then marked failed.
    let calls: Vec<_> = h
        .seen()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Update(u) if u.tool_call.is_some() => u.tool_call,
            _ => None,
        })
        .collect();
    assert_eq!(calls[0].kind, Some(ToolKind::Execute));
    assert_eq!(
        calls[0].content,
        vec![ToolContent::Terminal {
            terminal_id: "term-1".into()
        }]
    );
    assert_eq!(calls[1].status.as_deref(), Some("failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_options_and_choice_round_trip() {
    let ws = Workspace::new();
    let script = r#"
[[turn]]
[[turn.step]]
permission = "Edit src/lib.rs"
kind = "edit"
locations = ["src/lib.rs"]
diff = { path = "src/lib.rs", old_text = "a", new_text = "b" }
raw_input = { file = "src/lib.rs" }
[[turn.step]]
permission = "Delete everything"
kind = "delete"
options = ["allow_once", "reject_always"]
stop_if_rejected = true
[[turn.step]]
message = "not reached"
"#;
    let mut answers = Answers::new(ws.root());
    let mut count = 0;
    answers.permission = Box::new(move |options| {
        count += 1;
        let kind = if count == 1 {
            PermissionKind::AllowAlways
        } else {
            PermissionKind::RejectAlways
        };
        options
            .iter()
            .find(|o| o.kind == kind)
            .map(|o| airlock_acp::PermissionOutcome::Selected(o.id.clone()))
    });
    let h = Harness::mock_answering(&ws, script, answers).await;
    let reason = h.prompt("go").await;
    assert_eq!(reason, StopReason::EndTurn);
    h.wait_for("2 messages", |s| s.len() >= 4).await;
    let requests = h.requests();
    assert_eq!(
        requests[0].1,
        "Some(\"Edit src/lib.rs\") options=[\"allow_once\", \"allow_always\", \"reject_once\"]"
    );
    assert_eq!(
        requests[1].1,
        "Some(\"Delete everything\") options=[\"allow_once\", \"reject_always\"]"
    );
    assert_eq!(
        h.messages(),
        vec![
            "permission Edit src/lib.rs: allow_always",
            "permission Delete everything: reject_always"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permission_request_carries_tool_call_details() {
    let ws = Workspace::new();
    let config = ws.mock_config(
        r#"
[[turn]]
[[turn.step]]
permission = "Edit src/lib.rs"
tool_call_id = "edit-1"
kind = "edit"
locations = ["src/lib.rs"]
diff = { path = "src/lib.rs", old_text = "a", new_text = "b" }
raw_input = { file = "src/lib.rs" }
"#,
    );
    let root = ws.root();
    let (client, mut events) = within(
        "start",
        AgentClient::spawn(&config, &root, ClientOptions::default()),
    )
    .await
    .unwrap();
    let prompt = acp_support::spawn_prompt(&client, "go");
    let request = within("permission request", async {
        loop {
            if let Some(airlock_acp::AgentEvent::Request(r)) = events.recv().await {
                return r;
            }
        }
    })
    .await;
    let airlock_acp::AgentRequest::RequestPermission {
        tool_call,
        options,
        respond,
    } = request
    else {
        panic!("expected a permission request, got {request:?}")
    };
    assert_eq!(tool_call.id, "edit-1");
    assert_eq!(tool_call.title.as_deref(), Some("Edit src/lib.rs"));
    assert_eq!(tool_call.kind, Some(ToolKind::Edit));
    assert_eq!(tool_call.raw_input.as_ref().unwrap()["file"], "src/lib.rs");
    assert_eq!(tool_call.locations[0].path, root.join("src/lib.rs"));
    assert_eq!(
        tool_call.content,
        vec![ToolContent::Diff {
            path: root.join("src/lib.rs"),
            old_text: Some("a".into()),
            new_text: "b".into()
        }]
    );
    assert_eq!(
        options.iter().map(|o| o.kind).collect::<Vec<_>>(),
        vec![
            PermissionKind::AllowOnce,
            PermissionKind::AllowAlways,
            PermissionKind::RejectOnce
        ]
    );
    assert!(respond.send(airlock_acp::PermissionOutcome::Selected(
        "allow_once".into()
    )));
    let reason = within("prompt", prompt).await.unwrap().unwrap();
    assert_eq!(reason, StopReason::EndTurn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_waiting_turn() {
    let ws = Workspace::new();
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
message = "starting"
[[turn.step]]
wait = 60000
[[turn.step]]
message = "not reached"
[[turn]]
[[turn.step]]
message = "next turn works"
"#,
    )
    .await;
    let prompt = h.spawn_prompt("go");
    h.wait_for("first message", |s| !s.is_empty()).await;
    let started = std::time::Instant::now();
    h.client.cancel().unwrap();
    let reason = within("cancelled prompt", prompt).await.unwrap().unwrap();
    assert_eq!(reason, StopReason::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        within("next", h.client.prompt("again")).await.unwrap(),
        StopReason::EndTurn
    );
    h.wait_for("next message", |s| s.len() >= 2).await;
    assert_eq!(h.messages(), vec!["starting", "next turn works"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_answers_a_pending_permission_as_cancelled() {
    let ws = Workspace::new();
    let script = r#"
[[turn]]
[[turn.step]]
permission = "Run tests"
[[turn.step]]
message = "not reached"
"#;
    let mut answers = Answers::new(ws.root());
    // The "user" never decides.
    answers.permission = Box::new(|_| None);
    let h = Harness::mock_answering(&ws, script, answers).await;
    let prompt = h.spawn_prompt("go");
    h.wait_for("permission request", |s| !s.is_empty()).await;
    h.client.cancel().unwrap();
    let reason = within("cancelled prompt", prompt).await.unwrap().unwrap();
    assert_eq!(reason, StopReason::Cancelled);
    h.wait_for("report", |s| s.len() >= 2).await;
    assert_eq!(h.messages(), vec!["permission Run tests: cancelled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_reply_becomes_an_error_for_the_agent() {
    let ws = Workspace::new();
    ws.write("a.txt", "a");
    let script = "[[turn]]\n[[turn.step]]\nread = \"a.txt\"\n";
    let mut answers = Answers::new(ws.root());
    answers.drop = vec!["fs/read_text_file"];
    let h = Harness::mock_answering(&ws, script, answers).await;
    h.prompt("go").await;
    h.wait_for("report", |s| s.len() >= 2).await;
    assert_eq!(
        h.messages(),
        vec![
            "read a.txt: error -32603: airlock dropped the fs/read_text_file request without answering"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_turn_fails_the_prompt_and_reports_exit() {
    let ws = Workspace::new();
    let h = Harness::mock(
        &ws,
        r#"
[[turn]]
[[turn.step]]
message = "about to crash"
[[turn.step]]
stderr = "panic: scripted failure"
[[turn.step]]
crash = 7
"#,
    )
    .await;
    let result = within("prompt", h.client.prompt("go")).await;
    assert!(matches!(result, Err(AcpError::Closed)), "{result:?}");
    h.wait_exited().await;
    let seen = h.seen();
    let Some(Seen::Exited {
        code, stderr_tail, ..
    }) = seen.last()
    else {
        panic!("Exited must be the last event: {seen:?}")
    };
    assert_eq!(*code, Some(7));
    assert!(
        stderr_tail.contains("panic: scripted failure"),
        "{stderr_tail}"
    );
    assert_eq!(h.messages(), vec!["about to crash"]);
    assert!(!h.client.is_running());
    // Requests after exit fail at once instead of hanging.
    assert!(matches!(
        within("prompt after exit", h.client.prompt("again")).await,
        Err(AcpError::Closed)
    ));
    assert!(matches!(h.client.cancel(), Err(AcpError::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_the_agent_cleanly() {
    let ws = Workspace::new();
    let h = Harness::mock(&ws, "[[turn]]\n[[turn.step]]\nmessage = \"hi\"\n").await;
    let pid = h.client.pid().unwrap();
    within("shutdown", h.client.shutdown()).await;
    h.wait_exited().await;
    let seen = h.seen();
    // stdin EOF makes the mock exit by itself with 0 (no kill needed).
    assert!(
        matches!(seen.last(), Some(Seen::Exited { code: Some(0), .. })),
        "{seen:?}"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_errors_name_file_and_line() {
    let ws = Workspace::new();
    let config = ws.mock_config(
        "[[turn]]\n[[turn.step]]\nmessage = \"ok\"\n\n[[turn.step]]\nrun = \"ls\"\necho = true\n",
    );
    let script = ws.root().join(".script.toml");
    let output = std::process::Command::new(acp_support::airlock_bin())
        .args(["agent", "mock", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:5: `echo` does not apply to a `run` step",
            script.display()
        )),
        "{stderr}"
    );
    // Through the client, the handshake error carries the agent's stderr.
    let error = AgentClient::spawn(&config, &ws.root(), ClientOptions::default())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("failed the ACP handshake"), "{text}");
    assert!(text.contains(":5: `echo` does not apply"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_valid_messages_pass_through() {
    let ws = Workspace::new();
    let big = "x".repeat(8 * 1024 * 1024);
    let h = Harness::mock(
        &ws,
        &format!("[[turn]]\n[[turn.step]]\nwrite = \"big.txt\"\ncontent = \"{big}\"\n"),
    )
    .await;
    h.prompt("go").await;
    h.wait_for("report", |s| s.len() >= 2).await;
    assert_eq!(h.messages(), vec!["write big.txt: ok"]);
    assert_eq!(h.writes.lock().unwrap()[0].1.len(), big.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_agent_gives_a_clear_error() {
    let ws = Workspace::new();
    let config = airlock_acp::AgentConfig {
        command: vec!["/nonexistent/agent-binary".into()],
        env: Default::default(),
        cwd: ws.root(),
    };
    let error = AgentClient::spawn(&config, &ws.root(), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("could not start agent `/nonexistent/agent-binary`"),
        "{error}"
    );
    let empty = airlock_acp::AgentConfig {
        command: vec![],
        ..config
    };
    let error = AgentClient::spawn(&empty, &ws.root(), ClientOptions::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("agent.command"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_script_works_on_the_demo_sample() {
    // `airlock demo` relies on this pairing: the default script's edits must apply to the
    // sample project shipped in server/airlock-acp/demo/sample.
    let ws = Workspace::new();
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../server/airlock-acp/demo/sample/src/lib.rs");
    let original = std::fs::read_to_string(sample).unwrap();
    ws.write("src/lib.rs", &original);
    let config = airlock_acp::AgentConfig {
        command: vec![
            acp_support::airlock_bin().display().to_string(),
            "agent".into(),
            "mock".into(),
        ],
        env: Default::default(),
        cwd: ws.root(),
    };
    let h = Harness::start(&config, &ws.root(), Answers::new(ws.root())).await;
    let reason = within("demo turn", h.client.prompt("polish the library"))
        .await
        .unwrap();
    assert_eq!(reason, StopReason::EndTurn);
    h.wait_for_message("Done.").await;
    let writes = h.writes.lock().unwrap().clone();
    assert_eq!(writes.len(), 1, "{:?}", h.messages());
    let (path, content) = &writes[0];
    assert_eq!(path, &ws.root().join("src/lib.rs"));
    assert!(content.contains("a.wrapping_add(b)"), "{content}");
    assert!(content.contains("format!(\"Hello, {name}!\")"), "{content}");
    assert_eq!(content.lines().count(), original.lines().count());
    let commands: Vec<String> = h
        .requests()
        .into_iter()
        .filter(|(m, _)| m == "terminal/create")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        commands,
        vec![
            "wc -l src/lib.rs",
            "curl http://127.0.0.1:9/",
            "bash -c exec 3<>/dev/tcp/127.0.0.1/9 && echo connected"
        ]
    );
    assert!(h.messages().contains(&"write src/lib.rs: ok".to_owned()));
}
