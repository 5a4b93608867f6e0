//! End-to-end harness: runs the real `airlock` binary and speaks LSP over its stdio the way an
//! editor does.
//!
//! - [`Env`] gives every test private XDG dirs and a workspace dir, so nothing touches `$HOME`.
//! - [`Lsp`] frames JSON-RPC, matches responses to requests, records every notification, and
//!   answers server→client requests (`workspace/applyEdit` is applied to its own copy of open
//!   documents, approvals are answered by a per-test policy) — as an editor would.
//! - Every wait has a timeout; a test fails with the transcript instead of hanging.

pub mod gemini;
pub mod http;

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Path of the `airlock` binary under test: `$AIRLOCK_BIN`, else next to the test executable.
pub fn airlock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/airlock
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test exe has no parent dirs");
    let bin = dir.join("airlock");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p airlock-cli) or set AIRLOCK_BIN",
        bin.display()
    );
    bin
}

/// Private directories for one test: XDG config/state, a fake HOME and a workspace.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
    pub managed_policy: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let mut dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir()
            .expect("tempdir");
        // Debugging aid: AIRLOCK_E2E_KEEP=1 keeps the dirs (and debug logs) of every test.
        if std::env::var_os("AIRLOCK_E2E_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let root = dir.path().canonicalize().expect("canonicalize tempdir");
        let env = Env {
            workspace: root.join("ws"),
            home: root.join("home"),
            config: root.join("config"),
            state: root.join("state"),
            managed_policy: root.join("managed/policy.toml"),
            dir,
        };
        for d in [&env.workspace, &env.home, &env.config, &env.state] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        env
    }

    /// A `Command` for the binary with this env's directories.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(airlock_bin());
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("XDG_STATE_HOME", &self.state)
            .env("AIRLOCK_MANAGED_POLICY", &self.managed_policy)
            .env(
                "AIRLOCK_LOG",
                if std::env::var_os("AIRLOCK_E2E_KEEP").is_some() {
                    "debug"
                } else {
                    "info"
                },
            );
        cmd
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.workspace.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.workspace.join(rel)).expect("read")
    }

    pub fn uri(&self, rel: &str) -> String {
        format!("file://{}", self.workspace.join(rel).display())
    }

    pub fn workspace_uri(&self) -> String {
        format!("file://{}", self.workspace.display())
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// How the fake editor answers a server→client request.
pub type Responder = Box<dyn FnMut(&str, &Value, &mut Editor) -> Value + Send>;

/// The editor side's own state: open documents as the editor sees them.
#[derive(Default)]
pub struct Editor {
    pub docs: HashMap<String, (i32, String)>,
    pub applied_edits: Vec<Value>,
    /// Documents changed by an applied edit; the harness reports them with `didChange`, as an
    /// editor does.
    changed: Vec<String>,
}

impl Editor {
    /// Applies a WorkspaceEdit to the open documents (UTF-16 positions, ASCII-safe), as a real
    /// editor does for `workspace/applyEdit`. Returns false if it touches a closed document.
    pub fn apply(&mut self, edit: &Value) -> bool {
        self.applied_edits.push(edit.clone());
        let mut per_uri: Vec<(String, Vec<Value>)> = Vec::new();
        if let Some(changes) = edit.get("changes").and_then(Value::as_object) {
            for (uri, edits) in changes {
                per_uri.push((uri.clone(), edits.as_array().cloned().unwrap_or_default()));
            }
        }
        if let Some(dc) = edit.get("documentChanges").and_then(Value::as_array) {
            for change in dc {
                let uri = change["textDocument"]["uri"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                per_uri.push((uri, change["edits"].as_array().cloned().unwrap_or_default()));
            }
        }
        for (uri, mut edits) in per_uri {
            let Some((version, text)) = self.docs.get_mut(&uri) else {
                return false;
            };
            // Apply from the end so earlier offsets stay valid.
            edits.sort_by_key(|e| {
                let s = &e["range"]["start"];
                std::cmp::Reverse((s["line"].as_u64(), s["character"].as_u64()))
            });
            for e in edits {
                let start = offset(text, &e["range"]["start"]);
                let end = offset(text, &e["range"]["end"]);
                text.replace_range(start..end, e["newText"].as_str().unwrap_or_default());
            }
            *version += 1;
            self.changed.push(uri);
        }
        true
    }
}

fn offset(text: &str, pos: &Value) -> usize {
    let line = pos["line"].as_u64().unwrap_or(0) as usize;
    let ch = pos["character"].as_u64().unwrap_or(0) as usize;
    let mut start = 0;
    for _ in 0..line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let mut units = 0;
    for (i, c) in text[start..line_end].char_indices() {
        if units >= ch {
            return start + i;
        }
        units += c.len_utf16();
    }
    line_end
}

enum Incoming {
    Message(Value),
    Closed,
}

pub struct Lsp {
    pub child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Incoming>,
    next_id: i64,
    pub notifications: VecDeque<Value>,
    pub transcript: Arc<Mutex<Vec<String>>>,
    pub editor: Editor,
    responder: Responder,
    pending_responses: HashMap<i64, Value>,
}

/// What a [`Responder`] returns to leave a server request unanswered (an editor whose user
/// never clicks): the harness sends no response at all.
/// A scripted turn that reads `notes.txt` and proposes a new `new.txt` (the telemetry tests'
/// turn: one `fs.read` and one proposal).
pub const READ_THEN_WRITE_SCRIPT: &str = "[[turn]]\n[[turn.step]]\nread = \"notes.txt\"\n[[turn.step]]\nwrite = \"new.txt\"\ncontent = \"hello\\n\"\n";

/// `options` with `agent.script` pointing at `script` (TOML text), written into `env`'s dir.
pub fn with_script(env: &Env, script: &str, mut options: Value) -> Result<Value> {
    let path = env.dir.path().join("script.toml");
    std::fs::write(&path, script).context("write the agent script")?;
    if !options.is_object() {
        bail!("initializationOptions must be an object, got {options}");
    }
    options["agent"]["script"] = json!(path);
    Ok(options)
}

pub fn no_reply() -> Value {
    json!({"airlock-e2e": "no reply"})
}

/// Default answers: apply edits, pick the first message action, allow once.
pub fn default_responder() -> Responder {
    Box::new(|method, params, editor| match method {
        "workspace/applyEdit" => json!({"applied": editor.apply(&params["edit"])}),
        "window/showMessageRequest" => params["actions"].get(0).cloned().unwrap_or(Value::Null),
        "airlock/approval" => json!({"choice": "allow_once"}),
        "workspace/configuration" => json!(
            params["items"]
                .as_array()
                .map(|a| vec![Value::Null; a.len()])
        ),
        _ => Value::Null,
    })
}

impl Lsp {
    /// Starts `airlock serve` with `env`'s directories and extra args.
    pub fn start(env: &Env, args: &[&str]) -> Result<Lsp> {
        let mut cmd = env.command();
        cmd.arg("serve").args(args);
        Lsp::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Result<Lsp> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn airlock serve")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let t = transcript.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                match read_frame(&mut reader) {
                    Ok(Some(msg)) => {
                        t.lock()
                            .expect("lock")
                            .push(format!("{} <- {msg}", stamp()));
                        if tx.send(Incoming::Message(msg)).is_err() {
                            return;
                        }
                    }
                    Ok(None) | Err(_) => {
                        let _ = tx.send(Incoming::Closed);
                        return;
                    }
                }
            }
        });
        let t = transcript.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                t.lock()
                    .expect("lock")
                    .push(format!("{} stderr: {line}", stamp()));
            }
        });
        Ok(Lsp {
            child,
            stdin: Some(stdin),
            rx,
            next_id: 1,
            notifications: VecDeque::new(),
            transcript,
            editor: Editor::default(),
            responder: default_responder(),
            pending_responses: HashMap::new(),
        })
    }

    pub fn set_responder(&mut self, responder: Responder) {
        self.responder = responder;
    }

    pub fn dump(&self) -> String {
        let t = self.transcript.lock().expect("lock");
        let start = t.len().saturating_sub(400);
        t[start..].join("\n")
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    pub fn send(&mut self, msg: &Value) -> Result<()> {
        self.transcript
            .lock()
            .expect("lock")
            .push(format!("{} -> {msg}", stamp()));
        let body = serde_json::to_vec(msg)?;
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.send_raw(&frame)
    }

    pub fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
    }

    /// Sends a request and returns its raw response (`result` or `error` inside).
    pub fn request_raw(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))?;
        self.wait_response(id, TIMEOUT)
    }

    /// Sends a request and returns its `result`, failing on an error response.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let resp = self.request_raw(method, params)?;
        if let Some(err) = resp.get("error") {
            bail!("{method} failed: {err}");
        }
        Ok(resp.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Waits for the response with this id to a request sent with [`Lsp::send_raw`].
    pub fn wait_response_raw(&mut self, id: i64) -> Result<Value> {
        self.wait_response(id, TIMEOUT)
    }

    fn wait_response(&mut self, id: i64, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(resp) = self.pending_responses.remove(&id) {
                return Ok(resp);
            }
            self.pump_one(deadline)
                .with_context(|| format!("waiting for response {id}\n{}", self.dump()))?;
        }
    }

    /// Reads one incoming message and dispatches it; errors on timeout or closed stream.
    fn pump_one(&mut self, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match self.rx.recv_timeout(left) {
            Ok(Incoming::Message(m)) => m,
            Ok(Incoming::Closed) => bail!("server closed its stdout"),
            Err(RecvTimeoutError::Timeout) => bail!("timed out"),
            Err(RecvTimeoutError::Disconnected) => bail!("server output reader ended"),
        };
        match (msg.get("id"), msg.get("method")) {
            (Some(id), Some(method)) => {
                let method = method.as_str().unwrap_or_default().to_owned();
                let result = (self.responder)(&method, &msg["params"], &mut self.editor);
                if result != no_reply() {
                    self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}))?;
                }
                for uri in std::mem::take(&mut self.editor.changed) {
                    let (version, text) = self.editor.docs[&uri].clone();
                    self.notify(
                        "textDocument/didChange",
                        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
                    )?;
                }
                self.notifications.push_back(
                    json!({"method": format!("request:{method}"), "params": msg["params"]}),
                );
            }
            (Some(id), None) => {
                let id = id.as_i64().unwrap_or(-1);
                self.pending_responses.insert(id, msg);
            }
            (None, Some(_)) => self.notifications.push_back(msg),
            (None, None) => bail!("message with neither id nor method: {msg}"),
        }
        Ok(())
    }

    /// Waits for a notification (or server request, as `request:METHOD`) matching `pred`,
    /// removing only that one from the queue (earlier unmatched ones stay).
    pub fn wait_for(&mut self, method: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        self.wait_for_within(method, TIMEOUT, pred)
    }

    pub fn wait_for_within(
        &mut self,
        method: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pos) = self
                .notifications
                .iter()
                .position(|n| n["method"] == method && pred(&n["params"]))
            {
                let n = self.notifications.remove(pos).expect("index valid");
                return Ok(n["params"].clone());
            }
            self.pump_one(deadline)
                .with_context(|| format!("waiting for {method}\n{}", self.dump()))?;
        }
    }

    /// Waits for a response without a request id (a ParseError reply to unparseable input).
    pub fn wait_for_parse_error(&mut self) -> Result<Value> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(resp) = self.pending_responses.remove(&-1) {
                return Ok(resp);
            }
            self.pump_one(deadline)
                .with_context(|| format!("waiting for a parse error\n{}", self.dump()))?;
        }
    }

    /// Lets pending messages arrive for `d` (for "nothing else happens" checks).
    pub fn drain_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while self.pump_one(deadline).is_ok() {}
    }

    /// Starts the server as an editor with the Airlock extension would (`experimental.airlock`,
    /// `applyEdit`), with the embedded scripted agent running `script` (TOML text).
    pub fn start_with_script(env: &Env, script: &str) -> Result<Lsp> {
        Lsp::start_with_script_options(env, script, json!({}))
    }

    /// [`Lsp::start_with_script`] with more `initializationOptions` (`agent.script` is added
    /// to them).
    pub fn start_with_script_options(env: &Env, script: &str, options: Value) -> Result<Lsp> {
        Lsp::start_editor(env, with_script(env, script, options)?)
    }

    /// Starts `airlock serve` and initializes it as an editor with the Airlock extension would,
    /// with `options` as `initializationOptions`.
    pub fn start_editor(env: &Env, options: Value) -> Result<Lsp> {
        let mut cmd = env.command();
        cmd.arg("serve");
        Lsp::spawn_editor(cmd, env, options)
    }

    /// [`Lsp::start_editor`] for a server command of the test's own (extra variables).
    pub fn spawn_editor(cmd: Command, env: &Env, options: Value) -> Result<Lsp> {
        let mut lsp = Lsp::spawn(cmd)?;
        lsp.initialize(
            &env.workspace_uri(),
            json!({"experimental": {"airlock": true}, "workspace": {"applyEdit": true}}),
            options,
        )?;
        Ok(lsp)
    }

    /// `initialize` + `initialized` with the given client capabilities and options.
    pub fn initialize(
        &mut self,
        root_uri: &str,
        capabilities: Value,
        options: Value,
    ) -> Result<Value> {
        let result = self.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": "ws"}],
                "capabilities": capabilities,
                "initializationOptions": options,
            }),
        )?;
        self.notify("initialized", json!({}))?;
        Ok(result)
    }

    pub fn open(&mut self, uri: &str, text: &str) -> Result<()> {
        self.editor
            .docs
            .insert(uri.to_owned(), (1, text.to_owned()));
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "plaintext", "version": 1, "text": text}}),
        )
    }

    /// Replaces the whole text of an open document, as the editor would after typing.
    pub fn change_full(&mut self, uri: &str, text: &str) -> Result<()> {
        let entry = self
            .editor
            .docs
            .entry(uri.to_owned())
            .or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = text.to_owned();
        let version = entry.0;
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        )
    }

    pub fn doc_text(&self, uri: &str) -> Option<String> {
        self.editor.docs.get(uri).map(|d| d.1.clone())
    }

    /// `shutdown` + `exit`; returns the process exit code.
    pub fn shutdown(mut self) -> Result<i32> {
        self.request("shutdown", Value::Null)?;
        self.notify("exit", Value::Null)?;
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> Result<i32> {
        self.stdin.take();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return status
                    .code()
                    .ok_or_else(|| anyhow!("killed by signal: {status:?}"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("server did not exit\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds since the first call, for transcript lines.
fn stamp() -> String {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    format!(
        "{:>6}ms",
        START.get_or_init(Instant::now).elapsed().as_millis()
    )
}

/// Reads one `Content-Length` framed message; `Ok(None)` at end of stream.
pub fn read_frame(reader: &mut impl BufRead) -> Result<Option<Value>> {
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
    let length = length.context("frame without Content-Length")?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(serde_json::from_slice(&body)?))
}
