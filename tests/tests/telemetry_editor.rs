//! Telemetry to the editor, through the real binary and the embedded scripted agent:
//! - a stuck editor (stops reading the server's stdout) never blocks the agent, the events it
//!   missed are dropped and *counted* (every `seq` is either delivered or counted), and the
//!   server's memory stays bounded while the agent keeps producing events;
//! - only clients that opt in get `airlock/telemetry`;
//! - `airlock/status` follows the agent state and the pending proposal/hunk counts.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use airlock_e2e::{Env, Lsp, read_frame};
use serde_json::{Value, json};

fn write_script(env: &Env, body: &str) -> String {
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, body).expect("write script");
    path.display().to_string()
}

/// A script whose one turn reads `a.txt` `first` times, then `mid.txt`, then `a.txt`
/// `second` times, then `done.txt`.
fn reads_script(env: &Env, first: usize, second: usize) -> String {
    let mut s = String::from("[[turn]]\n");
    let mut read = |p: &str| s.push_str(&format!("[[turn.step]]\nread = \"{p}\"\n"));
    for _ in 0..first {
        read("a.txt");
    }
    read("mid.txt");
    for _ in 0..second {
        read("a.txt");
    }
    read("done.txt");
    write_script(env, &s)
}

/// An editor we control byte by byte: it can stop reading the server's stdout.
struct RawEditor {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl RawEditor {
    fn start(env: &Env) -> RawEditor {
        let mut child = env
            .command()
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn airlock serve");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        RawEditor {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, msg: &Value) {
        let body = serde_json::to_vec(msg).expect("json");
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.stdin.write_all(&frame).expect("write to server");
        self.stdin.flush().expect("flush");
    }

    /// Reads messages until `stop` says so; answers server requests with null.
    fn read_until(&mut self, mut stop: impl FnMut(&Value) -> bool) {
        loop {
            let msg = read_frame(&mut self.stdout)
                .expect("read frame")
                .expect("server closed stdout");
            if let (Some(id), Some(_)) = (msg.get("id"), msg.get("method")) {
                self.send(&json!({"jsonrpc": "2.0", "id": id, "result": null}));
            }
            if stop(&msg) {
                return;
            }
        }
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for RawEditor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn audit_text(env: &Env) -> String {
    let dir = env.state.join("airlock/audit");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect()
}

/// What the editor has been told: delivered seqs and the dropped counts.
#[derive(Default)]
struct Tally {
    seqs: BTreeSet<u64>,
    dropped: u64,
}

impl Tally {
    /// Counts a message if it is a telemetry batch; returns its events.
    fn count(&mut self, m: &Value) -> Vec<Value> {
        if m["method"] != "airlock/telemetry" {
            return Vec::new();
        }
        self.dropped += m["params"]["dropped"]
            .as_u64()
            .expect("dropped is a number");
        let events = m["params"]["events"].as_array().expect("events").clone();
        for e in &events {
            let seq = e["seq"].as_u64().expect("seq");
            assert!(self.seqs.insert(seq), "seq {seq} delivered twice");
        }
        events
    }
}

/// Waits until the audit log (written whatever the editor does) has a read of `path`;
/// returns how many records it holds then. Searches the raw text: parsing the whole log every
/// poll would compete with the server for the CPU.
fn wait_for_audit_read(env: &Env, path: &str) -> usize {
    let needle = format!("\"kind\":\"fs.read\",\"subject\":\"{path}\"");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let text = audit_text(env);
        if text.contains(&needle) {
            return text.lines().count();
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not get to {path} while the editor was stuck: it was blocked \
             ({} records in the audit log)",
            text.lines().count()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn is_read_of(e: &Value, path: &str) -> bool {
    e["kind"] == "fs.read" && e["subject"] == path
}

/// Reads before `mid.txt` (enough to fill the queue and the pipes) and after it.
const FIRST: usize = 5000;
const SECOND: usize = 2000;

#[test]
fn stuck_editor_makes_the_queue_drop_and_count_without_blocking_the_agent() {
    let env = Env::new();
    for f in ["a.txt", "mid.txt", "done.txt"] {
        env.write(f, "x\n");
    }
    // The first stretch fills every buffer on the way to the editor (pipes, queue); the second
    // is what a stuck editor must not make the server keep.
    let script = reads_script(&env, FIRST, SECOND);
    let mut ed = RawEditor::start(&env);
    ed.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": std::process::id(),
        "rootUri": env.workspace_uri(),
        "workspaceFolders": [{"uri": env.workspace_uri(), "name": "ws"}],
        "capabilities": {"experimental": {"airlock": {"telemetry": true, "proposals": false, "approvals": false}}},
        "initializationOptions": {"agent": {"script": script}},
    }}));
    ed.read_until(|m| m["id"] == 1);
    ed.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    ed.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "airlock/prompt", "params": {"text": "read a lot"}}));
    // Answer the server's own requests (configuration) until the agent is at work.
    let mut tally = Tally::default();
    ed.read_until(|m| tally.count(m).iter().any(|e| e["kind"] == "fs.read"));

    let delivered_before_stall = tally.seqs.len();
    // From here on the editor reads nothing. The agent must still get through its turn.
    wait_for_audit_read(&env, "mid.txt");
    let rss_mid = ed.rss_kb();
    let records = wait_for_audit_read(&env, "done.txt");
    let rss_done = ed.rss_kb();
    eprintln!(
        "stuck editor: {records} audit records; server RSS {rss_mid} kB when the queue was \
         full, {rss_done} kB after {SECOND} more reads"
    );

    // The editor reads again: the prompt's answer, then telemetry until done.txt's read shows.
    let mut saw_answer = false;
    let mut saw_done = false;
    ed.read_until(|m| {
        saw_answer |= m["id"] == 2;
        saw_done |= tally.count(m).iter().any(|e| is_read_of(e, "done.txt"));
        saw_done && saw_answer
    });
    let max_seq = *tally.seqs.last().expect("some events delivered");
    let delivered_after_stall = tally.seqs.len() - delivered_before_stall;
    let (delivered, dropped) = (tally.seqs.len() as u64, tally.dropped);
    eprintln!(
        "delivered {delivered} events ({delivered_after_stall} after the stall), {dropped} \
         dropped, last seq {max_seq}"
    );
    assert!(
        dropped > 0,
        "a stuck editor must make the bounded queue drop (delivered {delivered} of {max_seq})"
    );
    // Every event is accounted for: delivered, or counted as dropped.
    assert_eq!(
        delivered + dropped,
        max_seq,
        "delivered {delivered} + dropped {dropped} != last seq {max_seq}"
    );
    // Bounded: after the stall the editor gets at most the queue (4096) and what sat in pipes
    // and buffers (a few batches), not everything the agent did meanwhile.
    assert!(
        delivered_after_stall <= 4096 + 2048,
        "{delivered_after_stall} events delivered after the stall: the path to the editor is not bounded"
    );
    // Memory, as a gross guard only (the precise bound is the accounting above): the queue was
    // full at mid.txt, so the reads after it may not grow the server much. The agent's chat
    // lines (one per read) still go to the editor through the outbox, which is never dropped:
    // about 1.4 kB per read here, and the bulk of this number.
    let growth = rss_done.saturating_sub(rss_mid);
    assert!(
        growth < SECOND as u64 * 2,
        "RSS grew by {growth} kB over {SECOND} reads while the editor was stuck"
    );
}

#[test]
fn only_opted_in_clients_get_telemetry() {
    let env = Env::new();
    env.write("a.txt", "x\n");
    let script = write_script(&env, "[[turn]]\n[[turn.step]]\nread = \"a.txt\"\n");
    for (caps, wants) in [
        (json!({}), false),
        (
            json!({"experimental": {"airlock": {"telemetry": false}}}),
            false,
        ),
        (json!({"experimental": {"airlock": true}}), true),
    ] {
        let mut lsp = Lsp::start(&env, &[]).expect("start");
        lsp.initialize(
            &env.workspace_uri(),
            caps.clone(),
            json!({"agent": {"script": script}}),
        )
        .expect("initialize");
        lsp.request("airlock/prompt", json!({"text": "read"}))
            .expect("prompt");
        let got = lsp.wait_for_within("airlock/telemetry", Duration::from_secs(3), |p| {
            p["events"]
                .as_array()
                .is_some_and(|ev| ev.iter().any(|e| is_read_of(e, "a.txt")))
        });
        assert_eq!(got.is_ok(), wants, "capabilities {caps}");
        if let Ok(batch) = got {
            let ev = &batch["events"];
            // Events carry the documented fields.
            let read = ev
                .as_array()
                .and_then(|a| a.iter().find(|e| is_read_of(e, "a.txt")))
                .expect("read event");
            assert_eq!(read["decision"], "allow");
            assert!(read["tsMs"].as_u64().is_some() && read["session"].is_string());
        }
        assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    }
}

const BASE: &str = "fn one() {\n    1\n}\n\nfn two() {\n    2\n}\n\nfn three() {\n    3\n}\n";
const AGENT: &str =
    "fn one() {\n    100\n}\n\nfn two() {\n    200\n}\n\nfn three() {\n    300\n}\n";

#[test]
fn status_follows_agent_state_and_pending_counts() {
    let env = Env::new();
    env.write("src/lib.rs", BASE);
    let agent = serde_json::to_string(AGENT).expect("json");
    let mut lsp = Lsp::start_with_script(
        &env,
        &format!(
            "[[turn]]\n[[turn.step]]\nwait = 300\n[[turn.step]]\nwrite = \"src/lib.rs\"\ncontent = {agent}\n"
        ),
    )
    .expect("start");
    lsp.request("airlock/prompt", json!({"text": "change the numbers"}))
        .expect("prompt");
    // In order: the agent starts, works, and is idle again with one proposal of three hunks.
    for agent_state in ["starting", "working"] {
        lsp.wait_for("airlock/status", |p| p["agent"] == agent_state)
            .unwrap_or_else(|e| panic!("no status {agent_state}: {e:#}"));
    }
    let status = lsp
        .wait_for("airlock/status", |p| {
            p["agent"] == "idle" && p["pendingProposals"] == 1
        })
        .expect("idle with a pending proposal");
    assert_eq!(status["pendingHunks"], 3, "{status}");
    let created = lsp
        .wait_for("airlock/proposal", |p| p["event"] == "created")
        .expect("proposal");
    let id = created["proposal"]["id"].as_str().expect("id").to_owned();

    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "hunks": [1], "decision": "reject"}),
    )
    .expect("reject one hunk");
    let status = lsp
        .wait_for("airlock/status", |p| p["pendingHunks"] == 2)
        .expect("two hunks left");
    assert_eq!(status["pendingProposals"], 1, "{status}");

    lsp.request(
        "airlock/resolve",
        json!({"proposal": id, "decision": "accept"}),
    )
    .expect("accept the rest");
    let status = lsp
        .wait_for("airlock/status", |p| {
            p["pendingProposals"] == 0 && p["agent"] == "idle"
        })
        .expect("nothing pending");
    assert_eq!(
        (status["pendingHunks"].clone(), status["agent"].clone()),
        (json!(0), json!("idle")),
        "{}",
        lsp.dump()
    );
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
}
