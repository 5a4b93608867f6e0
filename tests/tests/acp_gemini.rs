//! A real third-party agent through the client side: Google's Gemini CLI (npm
//! `@google/gemini-cli@0.61.0`, installed by `scripts/install-gemini.sh` into .cache/gemini) in
//! ACP mode, fully offline — a recorded model (`--fake-responses`), a dummy API key and a
//! throw-away HOME. Its edits must arrive as `fs/write_text_file` requests with the exact
//! content, after a permission request carrying the diff; nothing is written to disk by the
//! bridge. Skipped, loudly, only when Gemini CLI is not installed.
#![allow(clippy::unwrap_used)]

mod acp_support;

use acp_support::{Answers, Harness, Seen, Workspace, within};
use airlock_acp::{AgentClient, ClientOptions, StopReason, ToolContent};
use airlock_e2e::gemini::{self, model_turn};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_cli_edits_arrive_as_write_requests_with_exact_content() {
    let Some(gemini) = gemini::gemini_js() else {
        eprintln!(
            "\n\n*** SKIPPED acp_gemini: Gemini CLI is not installed. Run `bash scripts/install-gemini.sh` \
             (npm, into .cache/gemini) or set AIRLOCK_GEMINI_JS. ***\n"
        );
        return;
    };
    let ws = Workspace::new();
    let root = ws.root();
    let lib = ws.write("src/lib.rs", "pub fn old_name() -> u32 {\n    1\n}\n");
    let notes = root.join("NOTES.md");
    let responses = [
        model_turn(json!([
            {"text": "I'll rename the function.\n"},
            {"functionCall": {"name": "replace", "args": {
                "file_path": lib.display().to_string(),
                "old_string": "pub fn old_name()",
                "new_string": "pub fn new_name()",
                "instruction": "Rename old_name to new_name",
                "allow_multiple": false
            }}}
        ])),
        model_turn(json!([
            {"functionCall": {"name": "write_file", "args": {
                "file_path": notes.display().to_string(),
                "content": "# Notes\n\n- renamed old_name → new_name\n"
            }}}
        ])),
        model_turn(json!([{"text": "Done: renamed and noted."}])),
    ];
    let fake = ws.write(".fake_responses.jsonl", &(responses.join("\n") + "\n"));

    // A private HOME with settings that keep Gemini offline and the model fixed.
    let home = root.join(".agent-home");
    gemini::write_settings(&home).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&gemini)
        .args(["--acp", "--fake-responses"])
        .arg(&fake)
        .current_dir(&root)
        .env("HOME", &home)
        .env("GEMINI_CLI_HOME", &home)
        .env("GEMINI_API_KEY", "fake-key")
        .env("GEMINI_CLI_NO_RELAUNCH", "true")
        .env("NO_COLOR", "1");
    for var in [
        "GOOGLE_API_KEY",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_GCA",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_GEMINI_BASE_URL",
        "GEMINI_SANDBOX",
    ] {
        command.env_remove(var);
    }
    let (client, events) = within(
        "Gemini CLI start",
        AgentClient::spawn_command(command, &root, ClientOptions::default()),
    )
    .await
    .expect("Gemini CLI completes the ACP handshake");
    let mut answers = Answers::new(root.clone());
    answers.missing_as_empty = true;
    let h = Harness::attach(client, events, answers);

    let reason = within(
        "Gemini turn",
        h.client.prompt("Rename old_name to new_name and note it"),
    )
    .await
    .unwrap();
    assert_eq!(reason, StopReason::EndTurn);
    h.wait_for("final message", |seen| {
        seen.iter().any(|s| matches!(s, Seen::Update(u) if u.text.as_deref().is_some_and(|t| t.contains("Done"))))
    })
    .await;

    let writes = h.writes.lock().unwrap().clone();
    assert_eq!(
        writes,
        vec![
            (
                lib.clone(),
                "pub fn new_name() -> u32 {\n    1\n}\n".to_owned()
            ),
            (
                notes.clone(),
                "# Notes\n\n- renamed old_name → new_name\n".to_owned()
            ),
        ],
        "requests: {:?}\nprotocol errors: {:?}",
        h.requests(),
        h.protocol_errors()
    );
    // The bridge wrote nothing: edits are only proposals until accepted.
    assert_eq!(
        std::fs::read_to_string(&lib).unwrap(),
        "pub fn old_name() -> u32 {\n    1\n}\n"
    );
    assert!(!notes.exists());
    // Each edit asked for permission first, showing the diff.
    let methods: Vec<String> = h.requests().into_iter().map(|(m, _)| m).collect();
    let first_permission = methods
        .iter()
        .position(|m| m == "session/request_permission");
    let first_write = methods.iter().position(|m| m == "fs/write_text_file");
    assert!(
        first_permission.unwrap() < first_write.unwrap(),
        "{methods:?}"
    );
    let diffs: Vec<ToolContent> = h
        .seen()
        .into_iter()
        .filter_map(|s| match s {
            Seen::Update(u) => u.tool_call,
            _ => None,
        })
        .flat_map(|t| t.content)
        .filter(|c| matches!(c, ToolContent::Diff { .. }))
        .collect();
    assert!(
        diffs.iter().any(
            |d| matches!(d, ToolContent::Diff { new_text, .. } if new_text.contains("new_name"))
        ),
        "no diff in tool calls: {:?}",
        h.seen()
    );
    assert!(h.protocol_errors().is_empty(), "{:?}", h.protocol_errors());
    h.client.shutdown().await;
}
