//! Agent terminals in `airlock serve` reach allowed domains only through the egress proxy;
//! each attempt is a `net.attempt` event in the audit log. Loopback only.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            h.fetch_add(1, Ordering::SeqCst);
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut b = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&b[..n]),
                }
            }
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nhello-terminal",
            );
        }
    });
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
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(lsp.shutdown()?, 0);
    assert!(
        files_containing(&env.state, "net.attempt") > 0,
        "net.attempt events in the audit log"
    );
    Ok(())
}
