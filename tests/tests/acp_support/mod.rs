//! Shared by the `acp_*` tests: starts the real `airlock agent mock` (or a misbehaving fake
//! agent) through the real client side, and plays the server's part — answering requests from
//! the real workspace on disk and recording everything the agent reported.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_acp::{
    AcpError, AgentClient, AgentConfig, AgentError, AgentEvent, AgentEvents, AgentRequest,
    AgentUpdate, ClientOptions, PermissionOutcome, StopReason, TerminalExit, TerminalOutput,
    UpdateKind,
};

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn airlock_bin() -> PathBuf {
    airlock_e2e::airlock_bin()
}

/// Awaits `fut`, failing the test (instead of hanging) after [`TIMEOUT`].
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// A temp workspace with a script file.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn root(&self) -> PathBuf {
        // The mock agent joins relative script paths to the session cwd; use the canonical
        // form so paths in requests compare equal.
        self.dir.path().canonicalize().unwrap()
    }
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
    pub fn mock_config(&self, script: &str) -> AgentConfig {
        let script_path = self.write(".script.toml", script);
        AgentConfig {
            command: vec![
                airlock_bin().display().to_string(),
                "agent".into(),
                "mock".into(),
                "--script".into(),
                script_path.display().to_string(),
            ],
            env: BTreeMap::new(),
            cwd: self.root(),
        }
    }
}

/// What the fake server saw, in order.
#[derive(Debug, Clone)]
pub enum Seen {
    Update(Box<AgentUpdate>),
    /// Method plus a short description of the arguments.
    Request(String, String),
    ProtocolError(String),
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: String,
    },
}

pub type WriteAnswer = Box<dyn FnMut(&Path, &str) -> Result<(), AgentError> + Send>;
/// `None`: the user never decides (the reply is held).
pub type PermissionAnswer =
    Box<dyn FnMut(&[airlock_acp::PermissionOption]) -> Option<PermissionOutcome> + Send>;

/// How the fake server answers; the default serves reads from disk, records writes without
/// applying them, runs terminal commands for real and allows every permission once.
pub struct Answers {
    pub root: PathBuf,
    pub write: WriteAnswer,
    pub permission: PermissionAnswer,
    /// Requests whose reply is held (never answered) by the fake server, by method name.
    pub hold: Vec<&'static str>,
    /// Requests whose reply is dropped unanswered, by method name.
    pub drop: Vec<&'static str>,
    /// Commands whose `terminal/wait_for_exit` is answered only once the terminal is killed
    /// (stand-ins for long-running commands).
    pub slow_commands: Vec<&'static str>,
    /// Answer reads of missing files with empty content (what Gemini CLI needs to create files).
    pub missing_as_empty: bool,
}

impl Answers {
    pub fn new(root: PathBuf) -> Answers {
        Answers {
            root,
            write: Box::new(|_, _| Ok(())),
            permission: Box::new(|options| {
                options
                    .iter()
                    .find(|o| o.kind == airlock_acp::PermissionKind::AllowOnce)
                    .map(|o| PermissionOutcome::Selected(o.id.clone()))
            }),
            hold: Vec::new(),
            drop: Vec::new(),
            slow_commands: Vec::new(),
            missing_as_empty: false,
        }
    }
}

struct Term {
    slow: bool,
    child: Option<std::process::Child>,
    output: String,
    exit: Option<TerminalExit>,
}

impl Term {
    /// Waits for the command (killing it first when `kill` names the signal) and keeps its
    /// output and exit status.
    fn finish(&mut self, kill: Option<&str>) -> TerminalExit {
        if let Some(mut child) = self.child.take() {
            if kill.is_some() {
                let _ = child.kill();
            }
            let out = child.wait_with_output().unwrap();
            self.output = String::from_utf8_lossy(&out.stdout).into_owned();
            self.output.push_str(&String::from_utf8_lossy(&out.stderr));
            self.exit = Some(TerminalExit {
                exit_code: out.status.code().map(|c| c as u32),
                signal: kill
                    .filter(|_| out.status.code().is_none())
                    .map(str::to_owned),
            });
        }
        self.exit.clone().unwrap_or_default()
    }
}

pub struct Harness {
    pub client: AgentClient,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub writes: Arc<Mutex<Vec<(PathBuf, String)>>>,
    exited: tokio::sync::watch::Receiver<bool>,
}

impl Harness {
    pub async fn start(config: &AgentConfig, root: &Path, answers: Answers) -> Harness {
        Self::start_with(config, root, answers, ClientOptions::default()).await
    }

    /// The scripted agent on `script` in `ws`, with the default answers.
    pub async fn mock(ws: &Workspace, script: &str) -> Harness {
        Self::mock_answering(ws, script, Answers::new(ws.root())).await
    }

    /// The scripted agent on `script` in `ws`, answered by `answers`.
    pub async fn mock_answering(ws: &Workspace, script: &str, answers: Answers) -> Harness {
        Self::start(&ws.mock_config(script), &ws.root(), answers).await
    }

    pub async fn start_with(
        config: &AgentConfig,
        root: &Path,
        answers: Answers,
        options: ClientOptions,
    ) -> Harness {
        let (client, events) = within("agent start", AgentClient::spawn(config, root, options))
            .await
            .expect("agent starts and completes the handshake");
        Self::attach(client, events, answers)
    }

    /// Plays the server for a client started by the test itself.
    pub fn attach(client: AgentClient, events: AgentEvents, answers: Answers) -> Harness {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (exited_tx, exited) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(
            events,
            answers,
            seen.clone(),
            writes.clone(),
            exited_tx,
        ));
        Harness {
            client,
            seen,
            writes,
            exited,
        }
    }

    /// Sends a prompt and waits for the turn to end (failing the test on an error).
    pub async fn prompt(&self, text: &str) -> StopReason {
        within("prompt", self.client.prompt(text)).await.unwrap()
    }

    /// Sends a prompt on its own task, for turns the test interacts with while they run.
    pub fn spawn_prompt(
        &self,
        text: &str,
    ) -> tokio::task::JoinHandle<Result<StopReason, AcpError>> {
        spawn_prompt(&self.client, text)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The text of every agent message chunk so far.
    pub fn messages(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Update(update) if update.kind == UpdateKind::AgentMessageChunk => update.text,
                _ => None,
            })
            .collect()
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Request(m, d) => Some((m, d)),
                _ => None,
            })
            .collect()
    }

    pub fn protocol_errors(&self) -> Vec<String> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::ProtocolError(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Waits until the event stream ended with `Exited`.
    pub async fn wait_exited(&self) {
        let mut exited = self.exited.clone();
        within("agent exit", exited.wait_for(|e| *e)).await.unwrap();
    }

    /// Waits until the agent sent a message starting with `prefix`.
    pub async fn wait_for_message(&self, prefix: &str) {
        self.wait_for(prefix, |s| {
            s.iter().any(|s| {
                matches!(s, Seen::Update(u) if u.kind == UpdateKind::AgentMessageChunk
                    && u.text.as_deref().is_some_and(|t| t.starts_with(prefix)))
            })
        })
        .await;
    }

    /// Waits until `pred` holds for what was seen.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Seen]) -> bool) {
        within(what, async {
            loop {
                if pred(&self.seen()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// Sends a prompt on its own task (see [`Harness::spawn_prompt`]).
pub fn spawn_prompt(
    client: &AgentClient,
    text: &str,
) -> tokio::task::JoinHandle<Result<StopReason, AcpError>> {
    let client = client.clone();
    let text = text.to_owned();
    tokio::spawn(async move { client.prompt(&text).await })
}

async fn serve(
    mut events: AgentEvents,
    mut answers: Answers,
    seen: Arc<Mutex<Vec<Seen>>>,
    writes: Arc<Mutex<Vec<(PathBuf, String)>>>,
    exited: tokio::sync::watch::Sender<bool>,
) {
    let mut terminals: BTreeMap<String, Term> = BTreeMap::new();
    let mut held = Vec::new();
    let mut waiting: BTreeMap<String, airlock_acp::Reply<Result<TerminalExit, AgentError>>> =
        BTreeMap::new();
    let mut next_terminal = 0;
    while let Some(event) = events.recv().await {
        let request = match event {
            AgentEvent::Update(update) => {
                seen.lock().unwrap().push(Seen::Update(Box::new(update)));
                continue;
            }
            AgentEvent::ProtocolError(error) => {
                seen.lock().unwrap().push(Seen::ProtocolError(error));
                continue;
            }
            AgentEvent::Exited {
                code,
                signal,
                stderr_tail,
            } => {
                seen.lock().unwrap().push(Seen::Exited {
                    code,
                    signal,
                    stderr_tail,
                });
                let _ = exited.send(true);
                continue;
            }
            AgentEvent::Request(request) => request,
        };
        let method = request.method();
        let describe = match &request {
            AgentRequest::ReadTextFile {
                path, line, limit, ..
            } => {
                format!("{} line={line:?} limit={limit:?}", path.display())
            }
            AgentRequest::WriteTextFile { path, content, .. } => {
                format!("{} ({} bytes)", path.display(), content.len())
            }
            AgentRequest::RequestPermission {
                tool_call, options, ..
            } => format!(
                "{:?} options={:?}",
                tool_call.title,
                options.iter().map(|o| o.id.as_str()).collect::<Vec<_>>()
            ),
            AgentRequest::CreateTerminal { command, args, .. } => {
                format!("{command} {}", args.join(" "))
            }
            AgentRequest::TerminalOutput { terminal_id, .. }
            | AgentRequest::WaitForTerminalExit { terminal_id, .. }
            | AgentRequest::KillTerminal { terminal_id, .. }
            | AgentRequest::ReleaseTerminal { terminal_id, .. } => terminal_id.clone(),
        };
        seen.lock()
            .unwrap()
            .push(Seen::Request(method.to_owned(), describe));
        if answers.drop.contains(&method) {
            drop(request);
            continue;
        }
        if answers.hold.contains(&method) {
            held.push(request);
            continue;
        }
        match request {
            AgentRequest::ReadTextFile {
                path,
                line,
                limit,
                respond,
            } => {
                let missing_as_empty = answers.missing_as_empty && !path.exists();
                let result = if missing_as_empty {
                    Ok(String::new())
                } else {
                    std::fs::read_to_string(&path)
                        .map(|text| {
                            let skip = line.map_or(0, |l| l.saturating_sub(1) as usize);
                            let take = limit.map_or(usize::MAX, |l| l as usize);
                            if line.is_none() && limit.is_none() {
                                text
                            } else {
                                text.split_inclusive('\n').skip(skip).take(take).collect()
                            }
                        })
                        .map_err(|e| AgentError::not_found(format!("{}: {e}", path.display())))
                };
                respond.send(result);
            }
            AgentRequest::WriteTextFile {
                path,
                content,
                respond,
            } => {
                let result = (answers.write)(&path, &content);
                writes.lock().unwrap().push((path, content));
                respond.send(result);
            }
            AgentRequest::RequestPermission {
                options, respond, ..
            } => match (answers.permission)(&options) {
                Some(outcome) => {
                    respond.send(outcome);
                }
                None => held.push(AgentRequest::RequestPermission {
                    tool_call: Default::default(),
                    options,
                    respond,
                }),
            },
            AgentRequest::CreateTerminal {
                command,
                args,
                cwd,
                respond,
                ..
            } => {
                let child = std::process::Command::new(&command)
                    .args(&args)
                    .current_dir(cwd.unwrap_or_else(|| answers.root.clone()))
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn();
                match child {
                    Ok(child) => {
                        next_terminal += 1;
                        let id = format!("term-{next_terminal}");
                        terminals.insert(
                            id.clone(),
                            Term {
                                slow: answers.slow_commands.contains(&command.as_str()),
                                child: Some(child),
                                output: String::new(),
                                exit: None,
                            },
                        );
                        respond.send(Ok(id));
                    }
                    Err(e) => {
                        respond.send(Err(AgentError::not_found(format!("{command}: {e}"))));
                    }
                }
            }
            AgentRequest::TerminalOutput {
                terminal_id,
                respond,
            } => {
                respond.send(match terminals.get(&terminal_id) {
                    Some(t) => Ok(TerminalOutput {
                        output: t.output.clone(),
                        truncated: false,
                        exit: t.exit.clone(),
                    }),
                    None => Err(AgentError::not_found(format!("no terminal {terminal_id}"))),
                });
            }
            AgentRequest::WaitForTerminalExit {
                terminal_id,
                respond,
            } if terminals.get(&terminal_id).is_some_and(|t| t.slow) => {
                waiting.insert(terminal_id, respond);
            }
            AgentRequest::WaitForTerminalExit {
                terminal_id,
                respond,
            } => {
                respond.send(match terminals.get_mut(&terminal_id) {
                    Some(t) => Ok(t.finish(None)),
                    None => Err(AgentError::not_found(format!("no terminal {terminal_id}"))),
                });
            }
            AgentRequest::KillTerminal {
                terminal_id,
                respond,
            } => match terminals.get_mut(&terminal_id) {
                Some(term) => {
                    let exit = term.finish(Some("SIGKILL"));
                    if let Some(wait) = waiting.remove(&terminal_id) {
                        wait.send(Ok(exit));
                    }
                    respond.send(Ok(()));
                }
                None => {
                    respond.send(Err(AgentError::not_found(format!(
                        "no terminal {terminal_id}"
                    ))));
                }
            },
            AgentRequest::ReleaseTerminal {
                terminal_id,
                respond,
            } => {
                respond.send(match terminals.remove(&terminal_id) {
                    Some(_) => Ok(()),
                    None => Err(AgentError::not_found(format!("no terminal {terminal_id}"))),
                });
            }
        }
    }
    drop(held);
}
