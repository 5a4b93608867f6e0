//! The embedded scripted agent behind `airlock agent mock`: a real ACP agent on stdio whose
//! "model" is a script ([`crate::script`], documented in `docs/agent-script.md`).
//!
//! Guarantees:
//! - It speaks only ACP v1 and only uses client methods the client advertised in `initialize`
//!   (a step that needs a missing capability is reported, not sent).
//! - Every answer of the client (content read, write outcome, exit code, permission choice,
//!   error) is reported back as an `agent_message_chunk`, in the formats listed in the docs, so
//!   tests and the demo can see what happened.
//! - Turns run outside the SDK dispatch loop (a spawned task per prompt), so the agent keeps
//!   reading `session/cancel` while it waits for the client. A cancelled turn ends with stop
//!   reason `cancelled` at the next step boundary or during a `wait`.
//! - stdin EOF ends the agent cleanly (exit 0); a `crash` step exits at once with its code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_client_protocol::schema::ProtocolVersion;
use agent_client_protocol::v1::{self, schema as acp};
use agent_client_protocol::{Agent, Client, JsonRpcRequest, Lines};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use crate::script::{DiffSpec, PlanItem, Script, ScriptStep, Step, WriteContent};
use crate::transport::{self, IssueReporter};
use crate::types::StopReason;
use crate::wire;

/// How the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockExit {
    /// The client closed stdin.
    Eof,
    /// A `crash` step ran: exit the process with this code, without answering anything.
    Crash(i32),
}

#[derive(Debug, thiserror::Error)]
#[error("ACP connection failed: {0}")]
pub struct MockError(String);

#[derive(Default, Clone, Copy)]
struct Capabilities {
    read: bool,
    write: bool,
    terminal: bool,
}

struct SessionState {
    cwd: PathBuf,
    cancel: watch::Sender<bool>,
    /// Content of each file as last read or written in this session (for `replace`).
    files: HashMap<PathBuf, String>,
}

struct State {
    script: Script,
    next_sequential: usize,
    capabilities: Capabilities,
    sessions: HashMap<String, SessionState>,
    session_counter: u64,
}

impl State {
    /// The first `match` turn contained in the prompt, else the next turn without `match`.
    fn pick_turn(&mut self, prompt: &str) -> Option<Vec<ScriptStep>> {
        let prompt = prompt.to_lowercase();
        if let Some(turn) = self
            .script
            .turns
            .iter()
            .find(|t| t.matches.as_deref().is_some_and(|m| prompt.contains(m)))
        {
            return Some(turn.steps.clone());
        }
        let sequential: Vec<_> = self
            .script
            .turns
            .iter()
            .filter(|t| t.matches.is_none())
            .collect();
        let turn = sequential.get(self.next_sequential)?;
        self.next_sequential += 1;
        Some(turn.steps.clone())
    }
}

/// Runs the agent on this process's stdin/stdout until EOF or a `crash` step.
pub async fn run_stdio(script: Script) -> Result<MockExit, MockError> {
    serve(script, tokio::io::stdin(), tokio::io::stdout()).await
}

/// Runs the agent over any byte streams (stdio in production).
pub async fn serve<R, W>(script: Script, incoming: R, outgoing: W) -> Result<MockExit, MockError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let report: IssueReporter = Arc::new(|issue| {
        eprintln!("airlock-mock: ignoring client message: {issue}");
        Box::pin(async {})
    });
    let (outgoing, writer) = transport::outgoing_lines(outgoing, None);
    let lines = Lines::new(
        outgoing,
        transport::incoming_lines(incoming, 64 * 1024 * 1024, None, report),
    );
    let state = Arc::new(Mutex::new(State {
        script,
        next_sequential: 0,
        capabilities: Capabilities::default(),
        sessions: HashMap::new(),
        session_counter: 0,
    }));
    let (crash_tx, mut crash_rx) = mpsc::unbounded_channel::<i32>();

    let init_state = state.clone();
    let new_state = state.clone();
    let prompt_state = state.clone();
    let cancel_state = state.clone();
    let connection = Agent
        .v1()
        .name("airlock-mock")
        .on_receive_request(
            async move |request: acp::InitializeRequest,
                        responder: v1::Responder<acp::InitializeResponse>,
                        _cx: v1::ConnectionTo<Client>| {
                if let Ok(mut state) = init_state.lock() {
                    let caps = &request.client_capabilities;
                    state.capabilities = Capabilities {
                        read: caps.fs.read_text_file,
                        write: caps.fs.write_text_file,
                        terminal: caps.terminal,
                    };
                }
                responder.respond(
                    acp::InitializeResponse::new(ProtocolVersion::V1)
                        .agent_capabilities(acp::AgentCapabilities::new())
                        .agent_info(
                            acp::Implementation::new("airlock-mock", env!("CARGO_PKG_VERSION"))
                                .title("Airlock scripted agent".to_owned()),
                        ),
                )
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: acp::NewSessionRequest,
                        responder: v1::Responder<acp::NewSessionResponse>,
                        _cx: v1::ConnectionTo<Client>| {
                if !request.cwd.is_absolute() {
                    return responder.respond_with_error(agent_client_protocol::Error::new(
                        agent_client_protocol::ErrorCode::INVALID_PARAMS,
                        format!("cwd must be absolute, got {}", request.cwd.display()),
                    ));
                }
                let id = {
                    let Ok(mut state) = new_state.lock() else {
                        return responder.respond_with_internal_error("state poisoned");
                    };
                    state.session_counter += 1;
                    let id = format!("mock-session-{}", state.session_counter);
                    let (cancel, _) = watch::channel(false);
                    state.sessions.insert(
                        id.clone(),
                        SessionState {
                            cwd: request.cwd,
                            cancel,
                            files: HashMap::new(),
                        },
                    );
                    id
                };
                responder.respond(acp::NewSessionResponse::new(id))
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_request(
            async move |request: acp::PromptRequest,
                        responder: v1::Responder<acp::PromptResponse>,
                        cx: v1::ConnectionTo<Client>| {
                let session_id = request.session_id.0.to_string();
                let prompt: String = request
                    .prompt
                    .iter()
                    .filter_map(wire::block_text)
                    .collect::<Vec<_>>()
                    .join("\n");
                let picked = {
                    let Ok(mut state) = prompt_state.lock() else {
                        return responder.respond_with_internal_error("state poisoned");
                    };
                    let capabilities = state.capabilities;
                    let steps = state.pick_turn(&prompt);
                    match state.sessions.get(&session_id) {
                        None => None,
                        Some(session) => {
                            session.cancel.send_replace(false);
                            Some((
                                steps,
                                session.cwd.clone(),
                                session.cancel.subscribe(),
                                capabilities,
                            ))
                        }
                    }
                };
                let Some((steps, cwd, cancel, capabilities)) = picked else {
                    return responder.respond_with_error(
                        acp::Error::session_not_found(request.session_id.clone()).into(),
                    );
                };
                let turn = TurnRunner {
                    cx: cx.clone(),
                    session_id: request.session_id,
                    cwd,
                    cancel,
                    capabilities,
                    state: prompt_state.clone(),
                    crash: crash_tx.clone(),
                };
                cx.spawn(async move {
                    let reason = match steps {
                        Some(steps) => turn.run(steps).await,
                        None => {
                            turn.say("airlock-mock: the script has no turn left for this prompt");
                            Some(StopReason::EndTurn)
                        }
                    };
                    // `None`: a crash step ran; the process is exiting without an answer.
                    if let Some(reason) = reason {
                        let _ = responder
                            .respond(acp::PromptResponse::new(wire::to_acp_stop_reason(&reason)));
                    }
                    Ok(())
                })
            },
            agent_client_protocol::on_receive_request!(),
        )
        .on_receive_notification(
            async move |notification: acp::CancelNotification, _cx: v1::ConnectionTo<Client>| {
                if let Ok(state) = cancel_state.lock()
                    && let Some(session) = state.sessions.get(notification.session_id.0.as_ref())
                {
                    session.cancel.send_replace(true);
                }
                Ok(())
            },
            agent_client_protocol::on_receive_notification!(),
        )
        .connect_to(lines);

    let exit = tokio::select! {
        result = connection => result
            .map(|()| MockExit::Eof)
            .map_err(|e| MockError(e.message.clone()))?,
        Some(code) = crash_rx.recv() => return Ok(MockExit::Crash(code)),
    };
    // The connection dropped its sink: let the writer put out what is still queued.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    Ok(exit)
}

struct TurnRunner {
    cx: v1::ConnectionTo<Client>,
    session_id: acp::SessionId,
    cwd: PathBuf,
    cancel: watch::Receiver<bool>,
    capabilities: Capabilities,
    state: Arc<Mutex<State>>,
    crash: mpsc::UnboundedSender<i32>,
}

fn text_block(text: &str) -> acp::ContentBlock {
    acp::ContentBlock::Text(acp::TextContent::new(text))
}

fn describe_error(error: &agent_client_protocol::Error) -> String {
    format!("error {}: {}", error.code.value(), error.message)
}

fn acp_diff(diff: &DiffSpec, cwd: &Path) -> acp::ToolCallContent {
    acp::ToolCallContent::Diff(
        acp::Diff::new(cwd.join(&diff.path), diff.new_text.clone()).old_text(diff.old_text.clone()),
    )
}

fn tool_status(status: &str) -> acp::ToolCallStatus {
    match status {
        "in_progress" => acp::ToolCallStatus::InProgress,
        "completed" => acp::ToolCallStatus::Completed,
        "failed" => acp::ToolCallStatus::Failed,
        _ => acp::ToolCallStatus::Pending,
    }
}

fn plan_entry(item: &PlanItem) -> acp::PlanEntry {
    let priority = match item.priority.as_str() {
        "high" => acp::PlanEntryPriority::High,
        "low" => acp::PlanEntryPriority::Low,
        _ => acp::PlanEntryPriority::Medium,
    };
    let status = match item.status.as_str() {
        "in_progress" => acp::PlanEntryStatus::InProgress,
        "completed" => acp::PlanEntryStatus::Completed,
        _ => acp::PlanEntryStatus::Pending,
    };
    acp::PlanEntry::new(item.content.clone(), priority, status)
}

/// What a step asks of the turn after it ran.
enum Flow {
    Next,
    Stop(StopReason),
    Crash,
}

impl TurnRunner {
    fn notify(&self, update: acp::SessionUpdate) {
        // Fails only when the connection is gone; the turn then ends on its next request.
        let _ = self.cx.send_notification(acp::SessionNotification::new(
            self.session_id.clone(),
            update,
        ));
    }

    fn say(&self, text: &str) {
        self.notify(acp::SessionUpdate::AgentMessageChunk(
            acp::ContentChunk::new(text_block(text)),
        ));
    }

    async fn request<R: JsonRpcRequest>(
        &self,
        request: R,
    ) -> Result<R::Response, agent_client_protocol::Error> {
        self.cx.send_request(request).block_task().await
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        self.cwd.join(path)
    }

    /// Runs the steps; `None` when a crash step ran.
    async fn run(mut self, steps: Vec<ScriptStep>) -> Option<StopReason> {
        for ScriptStep { line, step } in steps {
            if self.cancelled() {
                return Some(StopReason::Cancelled);
            }
            match self.step(line, step).await {
                Flow::Next => {}
                Flow::Stop(reason) => return Some(reason),
                Flow::Crash => return None,
            }
        }
        Some(if self.cancelled() {
            StopReason::Cancelled
        } else {
            StopReason::EndTurn
        })
    }

    async fn step(&mut self, line: usize, step: Step) -> Flow {
        match step {
            Step::Message { text, repeat } => {
                for _ in 0..repeat {
                    self.say(&text);
                }
            }
            Step::Thought { text, repeat } => {
                for _ in 0..repeat {
                    self.notify(acp::SessionUpdate::AgentThoughtChunk(
                        acp::ContentChunk::new(text_block(&text)),
                    ));
                }
            }
            Step::Plan(items) => {
                self.notify(acp::SessionUpdate::Plan(acp::Plan::new(
                    items.iter().map(plan_entry).collect(),
                )));
            }
            Step::ToolCall {
                id,
                title,
                kind,
                status,
                locations,
                content,
                diff,
                raw_input,
            } => {
                let mut items: Vec<acp::ToolCallContent> = Vec::new();
                if let Some(text) = content {
                    items.push(acp::ToolCallContent::Content(acp::Content::new(
                        text_block(&text),
                    )));
                }
                if let Some(diff) = &diff {
                    items.push(acp_diff(diff, &self.cwd));
                }
                let call = acp::ToolCall::new(id, title)
                    .kind(wire::to_acp_tool_kind(kind))
                    .status(tool_status(&status))
                    .content(items)
                    .locations(
                        locations
                            .iter()
                            .map(|p| acp::ToolCallLocation::new(self.absolute(p)))
                            .collect(),
                    )
                    .raw_input(raw_input);
                self.notify(acp::SessionUpdate::ToolCall(call));
            }
            Step::ToolUpdate {
                id,
                title,
                status,
                content,
            } => {
                let fields = acp::ToolCallUpdateFields::new()
                    .title(title)
                    .status(status.as_deref().map(tool_status))
                    .content(content.map(|text| {
                        vec![acp::ToolCallContent::Content(acp::Content::new(
                            text_block(&text),
                        ))]
                    }));
                self.notify(acp::SessionUpdate::ToolCallUpdate(
                    acp::ToolCallUpdate::new(id, fields),
                ));
            }
            Step::Read {
                path,
                line: from,
                limit,
                expect,
                echo,
            } => {
                let Some(content) = self.read(&path, from, limit).await else {
                    return Flow::Next;
                };
                if let Some(expect) = expect
                    && !content.contains(&expect)
                {
                    self.say(&format!(
                        "read {}: expected text not found: {expect:?} (script line {line}); ending the turn",
                        path.display()
                    ));
                    return Flow::Stop(StopReason::EndTurn);
                }
                if echo {
                    self.say(&content);
                }
            }
            Step::Write {
                path,
                content,
                announce,
            } => self.write(line, &path, content, announce).await,
            Step::Run {
                command,
                args,
                cwd,
                env,
                output_byte_limit,
                kill_after_ms,
            } => {
                self.run_command(RunSpec {
                    line,
                    command,
                    args,
                    cwd,
                    env,
                    output_byte_limit,
                    kill_after_ms,
                })
                .await;
            }
            Step::Permission {
                title,
                tool_call_id,
                kind,
                options,
                locations,
                diff,
                raw_input,
                stop_if_rejected,
            } => {
                let id = tool_call_id.unwrap_or_else(|| format!("permission-line-{line}"));
                let mut content = Vec::new();
                if let Some(diff) = &diff {
                    content.push(acp_diff(diff, &self.cwd));
                }
                let fields = acp::ToolCallUpdateFields::new()
                    .title(title.clone())
                    .kind(wire::to_acp_tool_kind(kind))
                    .status(acp::ToolCallStatus::Pending)
                    .locations(
                        locations
                            .iter()
                            .map(|p| acp::ToolCallLocation::new(self.absolute(p)))
                            .collect::<Vec<_>>(),
                    )
                    .content(content)
                    .raw_input(raw_input);
                let offered: Vec<acp::PermissionOption> = options
                    .iter()
                    .map(|kind| {
                        let (id, name) = match kind {
                            crate::types::PermissionKind::AllowOnce => ("allow_once", "Allow once"),
                            crate::types::PermissionKind::AllowAlways => {
                                ("allow_always", "Allow always")
                            }
                            crate::types::PermissionKind::RejectOnce => ("reject_once", "Reject"),
                            crate::types::PermissionKind::RejectAlways => {
                                ("reject_always", "Reject always")
                            }
                        };
                        acp::PermissionOption::new(
                            acp::PermissionOptionId::new(id),
                            name,
                            wire::to_acp_permission_kind(*kind),
                        )
                    })
                    .collect();
                let request = acp::RequestPermissionRequest::new(
                    self.session_id.clone(),
                    acp::ToolCallUpdate::new(id, fields),
                    offered,
                );
                match self.request(request).await {
                    Ok(response) => match response.outcome {
                        acp::RequestPermissionOutcome::Selected(selected) => {
                            let choice = selected.option_id.0.to_string();
                            self.say(&format!("permission {title}: {choice}"));
                            if stop_if_rejected && choice.starts_with("reject") {
                                return Flow::Stop(StopReason::EndTurn);
                            }
                        }
                        _ => {
                            self.say(&format!("permission {title}: cancelled"));
                            if stop_if_rejected || self.cancelled() {
                                return Flow::Stop(StopReason::Cancelled);
                            }
                        }
                    },
                    Err(error) => {
                        self.say(&format!("permission {title}: {}", describe_error(&error)));
                        if stop_if_rejected {
                            return Flow::Stop(StopReason::EndTurn);
                        }
                    }
                }
            }
            Step::Wait(ms) => {
                let sleep = tokio::time::sleep(Duration::from_millis(ms));
                tokio::select! {
                    () = sleep => {}
                    _ = self.cancel.wait_for(|c| *c) => return Flow::Stop(StopReason::Cancelled),
                }
            }
            Step::End(reason) => return Flow::Stop(reason),
            Step::Crash(code) => {
                // Let the SDK's writer flush what earlier steps queued, so a test sees every
                // update sent before the crash; the SDK has no flush call to await instead.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = self.crash.send(code);
                return Flow::Crash;
            }
            Step::Stderr(text) => eprintln!("{text}"),
            Step::WriteDisk { path, content } => {
                let path = self.absolute(&path);
                match std::fs::write(&path, content) {
                    Ok(()) => self.say(&format!("write_disk {}: written", path.display())),
                    Err(e) => self.say(&format!("write_disk {}: failed: {e}", path.display())),
                }
            }
            Step::ReadDisk(path) => {
                let path = self.absolute(&path);
                match std::fs::read(&path) {
                    Ok(bytes) => self.say(&format!(
                        "read_disk {}: read {} bytes",
                        path.display(),
                        bytes.len()
                    )),
                    Err(e) => self.say(&format!("read_disk {}: failed: {e}", path.display())),
                }
            }
        }
        Flow::Next
    }

    async fn read(&self, path: &Path, line: Option<u32>, limit: Option<u32>) -> Option<String> {
        if !self.capabilities.read {
            self.say(&format!(
                "read {}: client did not advertise fs.readTextFile",
                path.display()
            ));
            return None;
        }
        let absolute = self.absolute(path);
        let request = acp::ReadTextFileRequest::new(self.session_id.clone(), absolute.clone())
            .line(line)
            .limit(limit);
        match self.request(request).await {
            Ok(response) => {
                self.say(&format!(
                    "read {}: {} bytes",
                    path.display(),
                    response.content.len()
                ));
                if line.is_none() && limit.is_none() {
                    self.remember(absolute, response.content.clone());
                }
                Some(response.content)
            }
            Err(error) => {
                self.say(&format!(
                    "read {}: {}",
                    path.display(),
                    describe_error(&error)
                ));
                None
            }
        }
    }

    fn remember(&self, path: PathBuf, content: String) {
        if let Ok(mut state) = self.state.lock()
            && let Some(session) = state.sessions.get_mut(self.session_id.0.as_ref())
        {
            session.files.insert(path, content);
        }
    }

    fn remembered(&self, path: &Path) -> Option<String> {
        let state = self.state.lock().ok()?;
        state
            .sessions
            .get(self.session_id.0.as_ref())?
            .files
            .get(path)
            .cloned()
    }

    async fn write(&self, line: usize, path: &Path, content: WriteContent, announce: bool) {
        let shown = path.display();
        if !self.capabilities.write {
            self.say(&format!(
                "write {shown}: client did not advertise fs.writeTextFile"
            ));
            return;
        }
        let absolute = self.absolute(path);
        let old = match self.remembered(&absolute) {
            Some(old) => Some(old),
            None if matches!(content, WriteContent::Replace(_)) => {
                match self.read(path, None, None).await {
                    Some(old) => Some(old),
                    None => return,
                }
            }
            None => None,
        };
        let new = match content {
            WriteContent::Inline(text) => text,
            WriteContent::Replace(replacements) => {
                let mut text = old.clone().unwrap_or_default();
                for replacement in replacements {
                    let Some(at) = text.find(&replacement.search) else {
                        self.say(&format!(
                            "write {shown}: search text not found: {:?} (script line {line}); nothing written",
                            replacement.search
                        ));
                        return;
                    };
                    text.replace_range(at..at + replacement.search.len(), &replacement.with);
                }
                text
            }
        };
        let call_id = format!("write-line-{line}");
        if announce {
            let diff = acp::Diff::new(absolute.clone(), new.clone()).old_text(old.clone());
            self.notify(acp::SessionUpdate::ToolCall(
                acp::ToolCall::new(call_id.clone(), format!("Edit {shown}"))
                    .kind(acp::ToolKind::Edit)
                    .status(acp::ToolCallStatus::InProgress)
                    .locations(vec![acp::ToolCallLocation::new(absolute.clone())])
                    .content(vec![acp::ToolCallContent::Diff(diff)]),
            ));
        }
        let request =
            acp::WriteTextFileRequest::new(self.session_id.clone(), absolute.clone(), new.clone());
        let result = self.request(request).await;
        let status = match &result {
            Ok(_) => {
                self.say(&format!("write {shown}: ok"));
                self.remember(absolute, new);
                acp::ToolCallStatus::Completed
            }
            Err(error) => {
                self.say(&format!("write {shown}: {}", describe_error(error)));
                acp::ToolCallStatus::Failed
            }
        };
        if announce {
            self.notify(acp::SessionUpdate::ToolCallUpdate(
                acp::ToolCallUpdate::new(call_id, acp::ToolCallUpdateFields::new().status(status)),
            ));
        }
    }

    async fn run_command(&self, spec: RunSpec) {
        let RunSpec {
            line,
            command,
            args,
            cwd,
            env,
            output_byte_limit,
            kill_after_ms,
        } = spec;
        let shown = std::iter::once(command.as_str())
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        if !self.capabilities.terminal {
            self.say(&format!(
                "run {shown}: client did not advertise terminal support"
            ));
            return;
        }
        let sid = self.session_id.clone();
        let request = acp::CreateTerminalRequest::new(sid.clone(), command)
            .args(args)
            .env(
                env.into_iter()
                    .map(|(k, v)| acp::EnvVariable::new(k, v))
                    .collect(),
            )
            .cwd(Some(
                cwd.map_or_else(|| self.cwd.clone(), |c| self.absolute(&c)),
            ))
            .output_byte_limit(output_byte_limit);
        let terminal = match self.request(request).await {
            Ok(response) => response.terminal_id,
            Err(error) => {
                self.say(&format!("run {shown}: {}", describe_error(&error)));
                return;
            }
        };
        let call_id = format!("run-line-{line}");
        self.notify(acp::SessionUpdate::ToolCall(
            acp::ToolCall::new(call_id.clone(), format!("Run {shown}"))
                .kind(acp::ToolKind::Execute)
                .status(acp::ToolCallStatus::InProgress)
                .content(vec![acp::ToolCallContent::Terminal(acp::Terminal::new(
                    terminal.clone(),
                ))]),
        ));
        let wait = self.request(acp::WaitForTerminalExitRequest::new(
            sid.clone(),
            terminal.clone(),
        ));
        let waited = match kill_after_ms {
            None => wait.await,
            Some(ms) => {
                tokio::pin!(wait);
                tokio::select! {
                    result = &mut wait => result,
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {
                        if let Err(error) = self
                            .request(acp::KillTerminalRequest::new(sid.clone(), terminal.clone()))
                            .await
                        {
                            self.say(&format!("run {shown}: kill {}", describe_error(&error)));
                        }
                        wait.await
                    }
                }
            }
        };
        let output = self
            .request(acp::TerminalOutputRequest::new(
                sid.clone(),
                terminal.clone(),
            ))
            .await;
        let released = self
            .request(acp::ReleaseTerminalRequest::new(sid, terminal))
            .await;
        let (summary, ok) = match &waited {
            Ok(response) => {
                let status = &response.exit_status;
                match (status.exit_code, &status.signal) {
                    (Some(code), _) => (format!("exit {code}"), code == 0),
                    (None, Some(signal)) => (format!("killed by {signal}"), false),
                    (None, None) => (String::from("exit unknown"), false),
                }
            }
            Err(error) => (format!("wait_for_exit {}", describe_error(error)), false),
        };
        self.say(&format!("run {shown}: {summary}"));
        match &output {
            Ok(out) => {
                let truncated = if out.truncated { " (truncated)" } else { "" };
                self.say(&format!("output{truncated}:\n{}", out.output));
            }
            Err(error) => self.say(&format!("run {shown}: output {}", describe_error(error))),
        }
        if let Err(error) = &released {
            self.say(&format!("run {shown}: release {}", describe_error(error)));
        }
        self.notify(acp::SessionUpdate::ToolCallUpdate(
            acp::ToolCallUpdate::new(
                call_id,
                acp::ToolCallUpdateFields::new().status(if ok {
                    acp::ToolCallStatus::Completed
                } else {
                    acp::ToolCallStatus::Failed
                }),
            ),
        ));
    }
}

struct RunSpec {
    line: usize,
    command: String,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: std::collections::BTreeMap<String, String>,
    output_byte_limit: Option<u64>,
    kill_after_ms: Option<u64>,
}
