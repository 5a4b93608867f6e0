//! The LSP core over real stdio: initialize, capabilities, shutdown/exit codes, bad input.

use std::time::Duration;

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

#[test]
fn initialize_reports_server_info_and_real_capabilities() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    let caps = json!({"general": {"positionEncodings": ["utf-16"]}, "experimental": {"airlock": {"version": 1}}});
    let result = lsp.initialize(&env.workspace_uri(), caps, Value::Null)?;
    assert_eq!(result["serverInfo"]["name"], "airlock");
    assert_eq!(result["serverInfo"]["version"], env!("CARGO_PKG_VERSION"));
    let c = &result["capabilities"];
    assert_eq!(c["positionEncoding"], "utf-16");
    assert_eq!(c["textDocumentSync"]["change"], 2, "incremental sync");
    let commands: Vec<&str> = c["executeCommandProvider"]["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for cmd in [
        "airlock.accept",
        "airlock.reject",
        "airlock.acceptAll",
        "airlock.rejectAll",
    ] {
        assert!(commands.contains(&cmd), "{cmd} missing from {commands:?}");
    }
    let ext = &c["experimental"]["airlock"];
    assert_eq!(ext["version"], 1);
    assert!(
        ext["requests"]
            .as_array()
            .expect("requests")
            .contains(&json!("airlock/resolve"))
    );
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn utf8_is_negotiated_when_offered() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    let caps = json!({"general": {"positionEncodings": ["utf-8", "utf-16"]}});
    let result = lsp.initialize(&env.workspace_uri(), caps, Value::Null)?;
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-8");
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn exit_without_shutdown_is_exit_code_1() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;
    lsp.notify("exit", Value::Null)?;
    assert_eq!(lsp.wait_exit()?, 1);
    Ok(())
}

#[test]
fn end_of_input_without_shutdown_is_exit_code_1() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;
    assert_eq!(lsp.wait_exit()?, 1);
    Ok(())
}

#[test]
fn requests_before_initialize_get_server_not_initialized() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    let resp = lsp.request_raw(
        "textDocument/codeLens",
        json!({"textDocument": {"uri": env.uri("a.txt")}}),
    )?;
    assert_eq!(resp["error"]["code"], -32002, "{resp}");
    Ok(())
}

#[test]
fn malformed_input_gets_protocol_errors_and_the_server_survives() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;

    // Unknown request method: MethodNotFound.
    let resp = lsp.request_raw("no/such/method", json!({}))?;
    assert_eq!(resp["error"]["code"], -32601, "{resp}");

    // Invalid JSON in a well-framed message: ParseError reply, then business as usual.
    lsp.send_raw(b"Content-Length: 9\r\n\r\n{not json")?;
    let err = lsp.wait_for_parse_error()?;
    assert_eq!(err["error"]["code"], -32700, "{err}");

    // Wrong params for a known request: InvalidParams.
    let resp = lsp.request_raw("textDocument/codeLens", json!({"nope": 1}))?;
    assert_eq!(resp["error"]["code"], -32602, "{resp}");

    // Still alive and well-behaved.
    assert_eq!(lsp.shutdown()?, 0);
    Ok(())
}

#[test]
fn garbage_framing_does_not_hang_or_panic() -> anyhow::Result<()> {
    let env = Env::new();
    let mut lsp = Lsp::start(&env, &[])?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;
    lsp.send_raw(b"Content-Length: banana\r\n\r\n{}")?;
    lsp.send_raw(b"Content-Length: 2\r\n\r\n{}")?;
    lsp.send_raw(b"Content-Length: 36\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":42}")?;
    let invalid = lsp.wait_response_raw(7)?;
    assert_eq!(invalid["error"]["code"], -32600, "{invalid}");
    lsp.drain_for(Duration::from_millis(300));
    // The codec resynchronises on the next header; a real request still gets an answer.
    let resp = lsp.request_raw("no/such/method", json!({}))?;
    assert_eq!(resp["error"]["code"], -32601, "{resp}");
    let transcript = lsp.dump();
    assert!(!transcript.contains("panicked"), "{transcript}");
    Ok(())
}

#[test]
fn logs_go_to_the_state_dir_never_stdout() -> anyhow::Result<()> {
    let env = Env::new();
    let mut cmd = env.command();
    cmd.arg("serve").env("AIRLOCK_LOG", "debug");
    let mut lsp = Lsp::spawn(cmd)?;
    lsp.initialize(&env.workspace_uri(), json!({}), Value::Null)?;
    assert_eq!(lsp.shutdown()?, 0);
    let logs: Vec<_> =
        std::fs::read_dir(env.state.join("airlock/logs"))?.collect::<Result<_, _>>()?;
    assert_eq!(logs.len(), 1, "one log file expected");
    let text = std::fs::read_to_string(logs[0].path())?;
    assert!(
        text.contains("initialize"),
        "log lacks the initialize line: {text}"
    );
    Ok(())
}
