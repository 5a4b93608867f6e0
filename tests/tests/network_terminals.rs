//! Agent terminals in `airlock serve` reach allowed domains only through the egress proxy;
//! each attempt is a `net.attempt` event in the audit log. Loopback only.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use airlock_e2e::http::HttpServer;
use airlock_e2e::{Env, Lsp};
use serde_json::json;

fn files_containing(dir: &std::path::Path, needle: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            n += files_containing(&p, needle);
        } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains(needle)) {
            n += 1;
        }
    }
    n
}

#[test]
fn agent_terminal_reaches_an_allowed_address_through_the_proxy() -> anyhow::Result<()> {
    let server = HttpServer::start(|_| "hello-terminal".to_owned())?;
    let port = server.port;
    let env = Env::new();
    std::fs::create_dir_all(env.config.join("airlock"))?;
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[commands]\nallow = [\"curl\"]\n[network]\nallow = [\"127.0.0.1\"]\n",
    )?;
    let script = format!(
        r#"
[[turn]]
[[turn.step]]
run = "curl"
args = ["-sS", "http://127.0.0.1:{port}/"]
[[turn.step]]
run = "curl"
args = ["-sS", "http://denied.invalid:{port}/"]
[[turn.step]]
run = "curl"
args = ["-sS", "--noproxy", "*", "http://127.0.0.1:{port}/direct"]
"#
    );
    let mut lsp = Lsp::start_with_script(&env, &script)?;
    let stop = lsp.request("airlock/prompt", json!({"text": "go"}))?;
    assert_eq!(stop["stopReason"], "end_turn");
    lsp.drain_for(Duration::from_millis(500));
    let dump = lsp.dump();
    assert!(dump.contains("hello-terminal"), "{dump}");
    assert!(
        dump.contains("builtin: network defaults to deny"),
        "the 403 body should reach the agent: {dump}"
    );
    // One through the proxy; the --noproxy one never arrives (checked from outside).
    assert_eq!(server.hits(), 1);
    assert_eq!(lsp.shutdown()?, 0);
    assert!(
        files_containing(&env.state, "net.attempt") > 0,
        "net.attempt events in the audit log"
    );
    Ok(())
}
