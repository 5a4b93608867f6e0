//! `airlock demo`: the whole product in one command, with no API key and no setup.
//!
//! It copies a small sample project to a temp dir, starts `airlock serve` with the embedded
//! scripted agent (real ACP over stdio) and drives it exactly as an editor would (real LSP over
//! stdio): prompt → streamed agent output → the proposal's diff → accept one hunk, reject the
//! other with a reason → allowed command in the sandbox → denied command with its rule → blocked
//! network attempt → denied secret read → telemetry summary. Every directory it uses (config,
//! state, workspace) is temporary; the user's own config and state are never touched.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

// One sample project for the demo and the scripted agent's built-in script.
const SAMPLE_LIB: &str = include_str!("../../../airlock-acp/demo/sample/src/lib.rs");
const SAMPLE_CARGO: &str = include_str!("../../demo/sample/Cargo.toml");
const SAMPLE_ENV: &str = include_str!("../../demo/sample/env");
const POLICY: &str = include_str!("../../demo/policy.toml");
const SCRIPT: &str = include_str!("../../demo/script.toml");
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Decide each hunk yourself (a/r) instead of the scripted accept-one-reject-one.
    #[arg(long)]
    pub interactive: bool,
    /// Keep the temp dir (workspace, logs, audit) and print its path.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let ui = Ui {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let tmp = tempdir()?;
    let result = walkthrough(&ui, &tmp, args.interactive);
    if args.keep {
        ui.note(&format!("kept {}", tmp.display()));
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!(
        "airlock-demo-{}-{}",
        std::process::id(),
        airlock_telemetry::now_ms()
    ));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    base.canonicalize().context("canonicalize the demo dir")
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

fn walkthrough(ui: &Ui, tmp: &Path, interactive: bool) -> anyhow::Result<()> {
    let ws = tmp.join("sample");
    write(&ws.join("src/lib.rs"), SAMPLE_LIB)?;
    write(&ws.join("Cargo.toml"), SAMPLE_CARGO)?;
    write(&ws.join(".env"), SAMPLE_ENV)?;
    write(&tmp.join("config/airlock/policy.toml"), POLICY)?;
    // A real service on the host's loopback: the agent's sandboxed command will try to reach it.
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("bind a loopback listener")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    write(
        &tmp.join("script.toml"),
        &SCRIPT.replace("{PORT}", &port.to_string()),
    )?;

    ui.title("Airlock demo: a scripted ACP agent works in a sample project, through Airlock");
    ui.note(&format!(
        "workspace {}  (temp; your own config and state are not touched)",
        ws.display()
    ));

    let exe = std::env::current_exe().context("cannot find the airlock binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .env("XDG_CONFIG_HOME", tmp.join("config"))
        .env("XDG_STATE_HOME", tmp.join("state"))
        .env("AIRLOCK_MANAGED_POLICY", tmp.join("managed-policy.toml"));
    let mut lsp = Client::start(cmd)?;
    let root = format!("file://{}", ws.display());
    lsp.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": root,
            "workspaceFolders": [{"uri": root, "name": "sample"}],
            "capabilities": {"experimental": {"airlock": true}, "workspace": {"applyEdit": true}},
            "initializationOptions": {"agent": {"script": tmp.join("script.toml")}},
        }),
        ui,
    )?;
    lsp.notify("initialized", json!({}))?;

    ui.step(
        1,
        "You ask the agent: \"Make src/lib.rs safer and friendlier\"",
    );
    lsp.request(
        "airlock/prompt",
        json!({"text": "Make src/lib.rs safer and friendlier"}),
        ui,
    )?;
    let proposal = lsp
        .take("airlock/proposal")
        .context("the agent made no proposal")?;
    let proposal = &proposal["proposal"];
    let id = proposal["id"].as_str().unwrap_or_default().to_owned();

    ui.step(
        2,
        &format!("The agent's edit became proposal {id}; nothing is on disk yet"),
    );
    let hunks = proposal["hunks"].as_array().cloned().unwrap_or_default();
    for h in &hunks {
        ui.hunk(h);
    }
    let on_disk = std::fs::read_to_string(ws.join("src/lib.rs"))?;
    ui.ok(&format!(
        "src/lib.rs on disk is unchanged: {}",
        if on_disk == SAMPLE_LIB { "yes" } else { "NO" }
    ));
    if on_disk != SAMPLE_LIB {
        bail!("the proposal reached the disk before it was accepted");
    }

    ui.step(3, "You review it hunk by hunk");
    for h in &hunks {
        let hunk = h["id"].as_u64().unwrap_or(0);
        let greeting = h["oldText"].as_str().is_some_and(|t| t.contains("Hello"));
        let (accept, reason) = if interactive {
            ask_decision(hunk)?
        } else if !greeting {
            (true, None)
        } else {
            (false, Some("keep the greeting as it is".to_owned()))
        };
        let outcome = if accept {
            // As any LSP editor does it: the code action's command.
            lsp.request(
                "workspace/executeCommand",
                json!({"command": "airlock.accept", "arguments": [id, [hunk]]}),
                ui,
            )?
        } else {
            lsp.request(
                "airlock/resolve",
                json!({"proposal": id, "hunks": [hunk], "decision": "reject", "reason": reason}),
                ui,
            )?
        };
        match (accept, &reason) {
            (true, _) => ui.ok(&format!(
                "accepted hunk {hunk}: written atomically to src/lib.rs"
            )),
            (false, Some(r)) => ui.warn(&format!("rejected hunk {hunk}: \"{r}\"")),
            (false, None) => ui.warn(&format!("rejected hunk {hunk}")),
        }
        if let Some(summary) = outcome["summary"].as_str() {
            ui.note(&format!("the agent will be told: {summary}"));
        }
    }
    let after = std::fs::read_to_string(ws.join("src/lib.rs"))?;
    for line in after
        .lines()
        .filter(|l| l.contains("wrapping_add") || l.contains("Hello"))
    {
        ui.note(&format!("src/lib.rs now: {}", line.trim()));
    }

    ui.step(
        4,
        "You ask: \"Now check the project\" (the agent runs commands)",
    );
    lsp.request(
        "airlock/prompt",
        json!({"text": "Now check the project"}),
        ui,
    )?;

    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ui.ok(&format!(
            "network: the host's listener on 127.0.0.1:{port} received no connection"
        )),
        Ok(_) => bail!("a sandboxed command reached the host's loopback listener"),
        Err(e) => bail!("checking the loopback listener: {e}"),
    }
    // Telemetry is batched; let the last batch arrive (read while a no-op request runs).
    std::thread::sleep(Duration::from_millis(500));
    lsp.request("airlock/cancel", Value::Null, ui)?;

    ui.step(
        5,
        "Telemetry: every action was an event (also in the audit log)",
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for batch in lsp.all("airlock/telemetry") {
        for e in batch["events"].as_array().into_iter().flatten() {
            let kind = e["kind"].as_str().unwrap_or("?");
            let decision = e["decision"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            *counts.entry(format!("{kind}{decision}")).or_default() += 1;
        }
    }
    for (kind, n) in &counts {
        ui.note(&format!("{n:>3} × {kind}"));
    }
    lsp.request("shutdown", Value::Null, ui)?;
    lsp.notify("exit", Value::Null)?;
    let status = lsp.wait()?;
    ui.title(&format!(
        "Demo finished (server exit code {status}). Try it in your editor: see README.md"
    ));
    Ok(())
}

fn ask_decision(hunk: u64) -> anyhow::Result<(bool, Option<String>)> {
    let stdin = std::io::stdin();
    loop {
        print!("  hunk {hunk}: [a]ccept or [r]eject? ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            bail!("stdin closed");
        }
        match line.trim() {
            "a" | "A" => return Ok((true, None)),
            "r" | "R" => {
                print!("  reason (optional): ");
                std::io::stdout().flush()?;
                let mut reason = String::new();
                stdin.lock().read_line(&mut reason)?;
                let reason = reason.trim().to_owned();
                return Ok((false, (!reason.is_empty()).then_some(reason)));
            }
            _ => println!("  please type a or r"),
        }
    }
}

/// Terminal output with optional ANSI colors.
struct Ui {
    color: bool,
}

impl Ui {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn title(&self, text: &str) {
        println!("\n{}", self.paint("1", text));
    }
    fn step(&self, n: usize, text: &str) {
        println!(
            "\n{} {}",
            self.paint("1;36", &format!("[{n}]")),
            self.paint("1", text)
        );
    }
    fn note(&self, text: &str) {
        println!("    {}", self.paint("2", text));
    }
    fn ok(&self, text: &str) {
        println!("    {} {text}", self.paint("32", "✔"));
    }
    fn warn(&self, text: &str) {
        println!("    {} {text}", self.paint("33", "✘"));
    }
    fn agent(&self, text: &str) {
        for line in text.lines() {
            println!("    {} {line}", self.paint("35", "agent │"));
        }
    }
    fn hunk(&self, h: &Value) {
        let start = h["oldStart"].as_u64().unwrap_or(0) + 1;
        println!(
            "    {}",
            self.paint("36", &format!("@@ hunk {} at line {start} @@", h["id"]))
        );
        for line in h["oldText"].as_str().unwrap_or_default().lines() {
            println!("    {}", self.paint("31", &format!("- {line}")));
        }
        for line in h["newText"].as_str().unwrap_or_default().lines() {
            println!("    {}", self.paint("32", &format!("+ {line}")));
        }
    }
    /// Shows what the server streams while a request is in flight.
    fn show(&self, msg: &Value) {
        let params = &msg["params"];
        match msg["method"].as_str() {
            Some("airlock/agentUpdate") => {
                let u = &params["update"];
                match u["sessionUpdate"].as_str() {
                    Some("agent_message_chunk") => {
                        self.agent(u["content"]["text"].as_str().unwrap_or_default())
                    }
                    Some("agent_thought_chunk") => self.note(&format!(
                        "(thinking) {}",
                        u["content"]["text"].as_str().unwrap_or_default()
                    )),
                    Some("plan") => {
                        for e in u["entries"].as_array().into_iter().flatten() {
                            self.note(&format!(
                                "plan [{}] {}",
                                e["status"].as_str().unwrap_or(""),
                                e["content"].as_str().unwrap_or("")
                            ));
                        }
                    }
                    Some("tool_call") => self.note(&format!(
                        "tool: {}",
                        u["title"].as_str().unwrap_or_default()
                    )),
                    _ => {}
                }
            }
            Some("airlock/telemetry") => {
                let events = params["events"].as_array().into_iter().flatten();
                for e in events.filter(|e| e["kind"] == "command.finished") {
                    self.ok(&format!(
                        "sandbox: `{}` exited {} after {:.1} ms, max RSS {} KiB",
                        e["subject"].as_str().unwrap_or_default(),
                        e["fields"]["exitCode"],
                        e["durationMs"].as_f64().unwrap_or(0.0),
                        e["fields"]["maxRssKb"]
                    ));
                }
            }
            Some("window/showMessage") => self.warn(params["message"].as_str().unwrap_or_default()),
            _ => {}
        }
    }
}

enum Incoming {
    Message(Value),
    Closed,
}

/// A minimal LSP client over the server's stdio: requests, notifications, and the
/// server→client requests a demo needs (applyEdit, approvals).
struct Client {
    child: Child,
    stdin: ChildStdin,
    rx: Receiver<Incoming>,
    next_id: i64,
    seen: Vec<Value>,
}

impl Client {
    fn start(mut cmd: Command) -> anyhow::Result<Client> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `airlock serve`")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Ok(Some(msg)) = read_frame(&mut reader) {
                if tx.send(Incoming::Message(msg)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Incoming::Closed);
        });
        Ok(Client {
            child,
            stdin,
            rx,
            next_id: 1,
            seen: Vec::new(),
        })
    }

    fn send(&mut self, msg: &Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(msg)?;
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len())?;
        self.stdin.write_all(&body)?;
        self.stdin.flush()?;
        Ok(())
    }

    fn notify(&mut self, method: &str, params: Value) -> anyhow::Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    fn request(&mut self, method: &str, params: Value, ui: &Ui) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let msg = match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Incoming::Message(m)) => m,
                Ok(Incoming::Closed) => bail!("the server exited during {method}"),
                Err(RecvTimeoutError::Timeout) => bail!("no answer to {method} within {TIMEOUT:?}"),
                Err(RecvTimeoutError::Disconnected) => bail!("the server's output ended"),
            };
            match (
                msg.get("id").and_then(Value::as_i64),
                msg.get("method").and_then(Value::as_str),
            ) {
                (Some(rid), None) if rid == id => {
                    if let Some(err) = msg.get("error") {
                        return Err(anyhow!("{method} failed: {}", err["message"]));
                    }
                    return Ok(msg["result"].clone());
                }
                (_, Some(server_method)) if msg.get("id").is_some() => {
                    // The demo's "user" allows what the policy asks about, once.
                    let result = match server_method {
                        "airlock/approval" => {
                            ui.note(&format!(
                                "approval asked for `{}`: allowing once",
                                msg["params"]["subject"].as_str().unwrap_or("")
                            ));
                            json!({"choice": "allow_once"})
                        }
                        "window/showMessageRequest" => msg["params"]["actions"][0].clone(),
                        _ => Value::Null,
                    };
                    self.send(&json!({"jsonrpc": "2.0", "id": msg["id"], "result": result}))?;
                }
                _ => {
                    ui.show(&msg);
                    self.seen.push(msg);
                }
            }
        }
    }

    /// The first notification of `method` seen so far.
    fn take(&mut self, method: &str) -> Option<Value> {
        let pos = self.seen.iter().position(|m| m["method"] == method)?;
        Some(self.seen.remove(pos)["params"].clone())
    }

    fn all(&self, method: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|m| m["method"] == method)
            .map(|m| m["params"].clone())
            .collect()
    }

    fn wait(&mut self) -> anyhow::Result<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the server did not exit after `exit`");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_frame(reader: &mut impl BufRead) -> anyhow::Result<Option<Value>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            length = Some(v.trim().parse::<usize>()?);
        }
    }
    let mut body = vec![0; length.context("frame without Content-Length")?];
    reader.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}
