//! The audit log as a user meets it: written by the real server under
//! `$XDG_STATE_HOME/airlock/audit`, chained across server runs, checked by `airlock audit
//! verify` (which names the file and line of a tampered record and exits 1), read with
//! `airlock audit show`; prompt text only with `telemetry.content`, secrets redacted either way;
//! an unwritable audit directory reported once while the server goes on working.

use std::path::PathBuf;
use std::process::Output;

use airlock_e2e::{Env, Lsp};
use serde_json::{Value, json};

const SECRET: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

/// One server run with one prompt; returns the notifications it sent.
fn session(env: &Env, content: bool) -> Lsp {
    let mut lsp = Lsp::start_with_script_options(
        env,
        airlock_e2e::READ_THEN_WRITE_SCRIPT,
        json!({"telemetry": {"content": content}}),
    )
    .expect("start");
    lsp.request(
        "airlock/prompt",
        json!({"text": format!("note this, GITHUB_TOKEN={SECRET} is mine")}),
    )
    .expect("prompt");
    lsp
}

fn audit_dir(env: &Env) -> PathBuf {
    env.state.join("airlock/audit")
}

fn audit_files(env: &Env) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(audit_dir(env))
        .expect("audit dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

fn airlock(env: &Env, args: &[&str]) -> Output {
    env.command().args(args).output().expect("run airlock")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verify_show_and_tampering() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    for _ in 0..2 {
        // Two server runs: the second continues the first one's chain.
        let lsp = session(&env, false);
        assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    }
    let out = airlock(&env, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));

    // Content is off: the prompt text is not in the log at all.
    let text: String = audit_files(&env)
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    assert!(
        !text.contains("note this") && !text.contains(SECRET),
        "{text}"
    );

    // show: human table filtered by family, and JSON lines filtered by kind.
    let out = airlock(&env, &["audit", "show", "--kind", "fs"]);
    assert!(out.status.success());
    let table = stdout(&out);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(
        table
            .lines()
            .all(|l| l.contains("fs.read") && l.contains("notes.txt"))
    );
    let out = airlock(
        &env,
        &["audit", "show", "--json", "--kind", "server.started"],
    );
    let started: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(started.len(), 2);
    assert_ne!(started[0]["session"], started[1]["session"]);
    let out = airlock(&env, &["audit", "show", "--kind", "nope.nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown event kind"));

    // Tamper with the first fs.read record: verify names that file and the next line.
    let file = audit_files(&env).remove(0);
    let original = std::fs::read_to_string(&file).expect("read");
    let line = original
        .lines()
        .position(|l| l.contains("\"fs.read\""))
        .expect("an fs.read record")
        + 1;
    std::fs::write(&file, original.replacen("notes.txt", "other.txt", 1)).expect("write");
    let out = airlock(&env, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let want = format!("{}:{}:", file.display(), line + 1);
    assert!(
        stdout(&out).contains(&want),
        "want {want} in {}",
        stdout(&out)
    );

    // Records cut off the end at a record boundary are found too.
    std::fs::write(&file, &original).expect("restore");
    assert!(airlock(&env, &["audit", "verify"]).status.success());
    let last = audit_files(&env).pop().expect("newest file");
    let text = std::fs::read_to_string(&last).expect("read");
    let kept: Vec<&str> = text.lines().collect();
    std::fs::write(&last, format!("{}\n", kept[..kept.len() - 1].join("\n"))).expect("cut");
    let out = airlock(&env, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("cut off the end"), "{}", stdout(&out));
    // Verifying that file alone (no head): its records are intact.
    let out = airlock(&env, &["audit", "verify", &last.display().to_string()]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn content_opt_in_keeps_prompt_text_but_redacts_secrets() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    let mut lsp = session(&env, true);
    let prompt = lsp
        .wait_for("airlock/telemetry", |p| {
            p["events"]
                .as_array()
                .is_some_and(|ev| ev.iter().any(|e| e["kind"] == "prompt"))
        })
        .expect("telemetry with the prompt");
    let event = prompt["events"]
        .as_array()
        .and_then(|ev| ev.iter().find(|e| e["kind"] == "prompt"))
        .cloned()
        .expect("prompt event");
    assert_eq!(
        event["fields"]["text"],
        "note this, GITHUB_TOKEN=[REDACTED] is mine"
    );
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    let text: String = audit_files(&env)
        .iter()
        .map(|f| std::fs::read_to_string(f).expect("read"))
        .collect();
    assert!(text.contains("GITHUB_TOKEN=[REDACTED]"), "{text}");
    assert!(!text.contains(SECRET));
}

#[test]
fn unwritable_audit_dir_is_reported_once_and_the_server_goes_on() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    std::fs::create_dir_all(env.state.join("airlock")).expect("mkdir");
    std::fs::write(audit_dir(&env), "a file where the directory should be").expect("block");
    let mut lsp = session(&env, false);
    // The prompt above worked; a second one does too.
    lsp.request("airlock/prompt", json!({"text": "again"}))
        .expect("second prompt");
    let shown = lsp
        .wait_for("window/showMessage", |p| {
            p["message"]
                .as_str()
                .is_some_and(|m| m.contains("audit log cannot be written"))
        })
        .expect("the user is told");
    assert!(
        shown["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit"))
    );
    lsp.drain_for(std::time::Duration::from_millis(800));
    let again = lsp.notifications.iter().any(|n| {
        n["method"] == "window/showMessage"
            && n["params"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("audit log cannot be written"))
    });
    assert!(!again, "reported more than once");
    let errors = lsp
        .notifications
        .iter()
        .filter(|n| n["method"] == "airlock/telemetry")
        .flat_map(|n| {
            n["params"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|e| e["kind"] == "audit.error")
        .count();
    assert_eq!(errors, 1, "audit.error events");
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
}

#[test]
fn two_servers_at_once_extend_one_verifiable_chain() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    // Two editor windows: both servers run and write at the same time.
    let mut a = session(&env, false);
    let mut b = session(&env, false);
    for lsp in [&mut a, &mut b] {
        lsp.request("airlock/prompt", json!({"text": "again"}))
            .expect("prompt");
    }
    assert_eq!(a.shutdown().expect("shutdown a"), 0);
    assert_eq!(b.shutdown().expect("shutdown b"), 0);
    let out = airlock(&env, &["audit", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = airlock(
        &env,
        &["audit", "show", "--json", "--kind", "server.started"],
    );
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
}
