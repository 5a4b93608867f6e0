//! The agent: `airlock/prompt`, `airlock/cancel`, the agent's lifecycle and its requests
//! (`fs/*`, `session/request_permission`, `terminal/*`); the telemetry pump; `airlock/status`.
//!
//! Guarantees: the agent command comes only from the user's config, the editor's
//! initializationOptions or `--agent`; every agent request is answered (possibly with an error
//! that says why), never dropped; the agent's writes only ever become proposals; an agent crash
//! is reported and the next prompt starts a new one; pending proposals survive it.
//!
//! How the agent learns what happened to its edits: `fs/write_text_file` returns as soon as the
//! proposal is recorded on disk (so a turn never waits on the user), and the outcomes decided since are
//! sent at the start of the agent's next prompt (see `docs/lsp-extensions.md`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_acp::{
    self as acp, AgentClient, AgentConfig, AgentError, AgentEvent, AgentRequest, ClientOptions,
};
use airlock_telemetry::{Event, EventKind};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::*;

use crate::ext;
use crate::handlers::proposals;
use crate::main_loop::{State, Task};

pub type PromptReply = oneshot::Receiver<jsonrpc::Result<ext::PromptResult>>;
type PromptSender = oneshot::Sender<jsonrpc::Result<ext::PromptResult>>;

#[derive(Default)]
pub struct AgentState {
    phase: Phase,
    /// Bumped on every start, so events of a dead agent are ignored.
    generation: u64,
    /// Prompts waiting for the agent to start.
    queued: Vec<(String, PromptSender)>,
    /// Outcome summaries not yet told to the agent.
    outcomes: Vec<String>,
    busy: bool,
    /// The client can show `$/progress` (it said `window.workDoneProgress`).
    pub progress_supported: bool,
    /// The progress token of the running turn, once the client created it.
    progress: Option<ProgressToken>,
    turns: u64,
    /// Where a finished turn reports, behind the agent's events (see `start`).
    turn_end: Option<mpsc::UnboundedSender<Task>>,
}

#[derive(Default)]
enum Phase {
    #[default]
    Stopped,
    Starting,
    Running(Arc<AgentClient>),
    Failed,
}

impl AgentState {
    fn label(&self) -> String {
        match (&self.phase, self.busy) {
            (Phase::Stopped, _) => "stopped".into(),
            (Phase::Starting, _) => "starting".into(),
            (Phase::Running(_), true) => "working".into(),
            (Phase::Running(_), false) => "idle".into(),
            (Phase::Failed, _) => "failed".into(),
        }
    }
}

fn internal(message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: message.into().into(),
        data: None,
    }
}

/// The agent command: `--agent`, else the settings, else the embedded scripted agent.
const NO_AGENT: &str = "no agent is configured. Set `agent.command` (e.g. [\"gemini\", \"--acp\"]) in \
~/.config/airlock/config.toml or in your editor's Airlock settings (initializationOptions), or \
start the server with `airlock serve --agent \"PROGRAM ARGS\"`. To try Airlock without an agent \
or API key, run `airlock demo`, or set `agent.script` to a script for the embedded scripted agent \
(docs/agent-script.md).";

fn agent_config(state: &mut State) -> Result<AgentConfig, String> {
    let root = state
        .root
        .clone()
        .ok_or("the editor opened no workspace folder; Airlock needs one to scope the agent")?;
    let settings = state.settings.agent.clone();
    let command = match (&state.config.agent_override, settings.command.is_empty()) {
        (Some(cmd), _) if !cmd.is_empty() => cmd.clone(),
        (_, false) => settings.command.clone(),
        _ if settings.script.is_none() => {
            return Err(NO_AGENT.to_owned());
        }
        _ => {
            let exe = std::env::current_exe()
                .map_err(|e| format!("cannot find the airlock binary: {e}"))?;
            // Rebuilt or upgraded while running: the old path is gone, our own image is not.
            let exe = if exe.exists() {
                exe
            } else {
                std::path::PathBuf::from("/proc/self/exe")
            };
            let mut cmd = vec![exe.display().to_string(), "agent".into(), "mock".into()];
            if let Some(script) = &settings.script {
                cmd.extend(["--script".into(), script.clone()]);
            }
            cmd
        }
    };
    let isolation = isolation(state);
    let isolation = isolation.as_str();
    match isolation {
        "none" => {
            let message = format!(
                "the agent process runs WITHOUT the sandbox (agent.isolation = \"none\"): `{}` can read your home directory, write anywhere you can and reach the network; only its ACP requests go through Airlock",
                command.join(" ")
            );
            tracing::warn!("{message}");
            if let Some(out) = state.out() {
                out.show(MessageType::WARNING, format!("airlock: {message}"));
            }
            state.emit(
                Event::new(EventKind::SandboxLevel, "agent process").field("isolation", "none"),
            );
            Ok(AgentConfig {
                command,
                env: settings.env.clone().into_iter().collect(),
                cwd: root,
            })
        }
        "sandboxed" | "shadow" => {
            let kernel = airlock_sandbox::probe();
            let missing = if !kernel.seccomp {
                Some("seccomp (CONFIG_SECCOMP_FILTER)".to_string())
            } else if kernel.landlock_abi < 6 {
                Some(format!(
                    "Landlock ABI 6 (Linux 6.12; this kernel {} offers ABI {})",
                    kernel.kernel_release, kernel.landlock_abi
                ))
            } else {
                None
            };
            if let Some(missing) = missing {
                return Err(format!(
                    "cannot sandbox the agent process: this kernel lacks {missing}. The agent was not started. To run it without the sandbox (it can then read your home directory and write anywhere you can), set `isolation = \"none\"` under [agent] in ~/.config/airlock/config.toml or `agent.isolation` in initializationOptions"
                ));
            }
            let (command, env) = sandboxed_agent(state, &root, command)?;
            let mut event = Event::new(EventKind::SandboxLevel, "agent process")
                .field("isolation", isolation)
                .field("kernel", format!("{kernel:?}"));
            // Shadow: the agent writes to disk itself, over a copy-on-write view (shadow.rs).
            let (command, cwd) = if isolation == "shadow" {
                let (command, cwd) = crate::handlers::shadow::wrap(state, &root, command)?;
                if let Some(mode) = state.shadow.mode() {
                    event = event.field("shadow", mode.as_str());
                }
                (command, cwd)
            } else {
                (command, root)
            };
            state.emit(event);
            Ok(AgentConfig { command, env, cwd })
        }
        other => Err(format!(
            "unknown agent.isolation {other:?}: use \"sandboxed\" (the default), \"shadow\" or \"none\""
        )),
    }
}

/// `--isolation`, else the settings, else `sandboxed`.
fn isolation(state: &State) -> String {
    state
        .config
        .isolation_override
        .clone()
        .or_else(|| state.settings.agent.isolation.clone())
        .unwrap_or_else(|| "sandboxed".into())
}

/// Variables `airlock exec` reads itself (to find the policy and toolchains): the agent's
/// values for these go to the sandbox with `--env` (paths, not secrets) so that exec keeps
/// the server's view of the policy.
const EXEC_OWN_VARS: &[&str] = &[
    "HOME",
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "AIRLOCK_MANAGED_POLICY",
    "CARGO_HOME",
    "RUSTUP_HOME",
];

/// Wraps the agent command in `airlock exec` with a read-only workspace (docs/security.md,
/// "The agent process"). Returns the command and the environment of the exec process: the
/// agent's `env` is handed over by name (`--pass-env`), so secret values such as API keys
/// never appear in `/proc/*/cmdline`.
fn sandboxed_agent(
    state: &State,
    root: &Path,
    agent: Vec<String>,
) -> Result<(Vec<String>, std::collections::BTreeMap<String, String>), String> {
    let settings = &state.settings.agent;
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the airlock binary: {e}"))?;
    let exe = if exe.exists() {
        exe
    } else {
        std::path::PathBuf::from("/proc/self/exe")
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(std::path::PathBuf::from);
    let mut cmd = vec![
        exe.display().to_string(),
        "exec".into(),
        "--workspace".into(),
        root.display().to_string(),
        "--read-only-workspace".into(),
        // The supervisor leaves the agent's process group: when the server kills that group,
        // the supervisor survives exec just long enough to kill every descendant.
        "--new-session".into(),
        // The policy in force, not the file: a broken edit must not stop the agent, and the
        // agent must see the same deny-read rules as the server enforces.
        "--no-policy".into(),
    ];
    if let Some(policy) = crate::handlers::policy_file::current(state) {
        for glob in policy.deny_read_globs() {
            cmd.extend(["--deny-read".into(), glob]);
        }
        for path in policy.protected_paths() {
            cmd.extend(["--protect".into(), path]);
        }
    }
    let path_var = settings
        .env
        .get("PATH")
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    for dir in airlock_sandbox::install_dirs(&agent, &path_var, home.as_deref(), root) {
        cmd.extend(["--allow-read".into(), dir.display().to_string()]);
    }
    for w in &settings.writable {
        let path = match (w.strip_prefix('~'), &home) {
            (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => {
                h.join(rest.trim_start_matches('/'))
            }
            _ => std::path::PathBuf::from(w),
        };
        if !path.is_absolute() {
            return Err(format!(
                "agent.writable {w:?} must be an absolute path or start with `~/`"
            ));
        }
        cmd.extend(["--allow-write".into(), path.display().to_string()]);
    }
    // The agent's own model API, and nothing else, through exec's egress proxy (docs/network.md).
    for domain in &settings.allow_domains {
        cmd.extend(["--allow-domain".into(), domain.clone()]);
    }
    let mut env = std::collections::BTreeMap::new();
    for (k, v) in &settings.env {
        if EXEC_OWN_VARS.contains(&k.as_str()) {
            cmd.extend(["--env".into(), format!("{k}={v}")]);
        } else {
            cmd.extend(["--pass-env".into(), k.clone()]);
            env.insert(k.clone(), v.clone());
        }
    }
    cmd.push("--".into());
    cmd.extend(agent);
    Ok((cmd, env))
}

pub fn prompt(state: &mut State, params: ext::PromptParams) -> PromptReply {
    let (tx, rx) = oneshot::channel();
    let mut event = Event::new(EventKind::Prompt, format!("{} chars", params.text.len()));
    if state.settings.telemetry.content {
        event = event.field("text", params.text.clone());
    }
    state.emit(event);
    let mut text = params.text;
    if !params.uris.is_empty() {
        text.push_str("\n\nFiles in context: ");
        text.push_str(&params.uris.join(", "));
    }
    if let Some(selection) = params.selection {
        text.push_str(&format!("\n\nSelection: {selection}"));
    }
    // The agent may have died before its exit event reached us.
    if matches!(&state.agent.phase, Phase::Running(c) if !c.is_running()) {
        state.agent.phase = Phase::Stopped;
    }
    match &state.agent.phase {
        Phase::Running(client) => {
            let client = client.clone();
            run_prompt(state, client, text, tx);
        }
        Phase::Starting => state.agent.queued.push((text, tx)),
        Phase::Stopped | Phase::Failed => {
            state.agent.queued.push((text, tx));
            start(state);
        }
    }
    rx
}

fn run_prompt(state: &mut State, client: Arc<AgentClient>, text: String, tx: PromptSender) {
    crate::handlers::shadow::before_prompt(state);
    let outcomes = std::mem::take(&mut state.agent.outcomes);
    let text = if outcomes.is_empty() {
        text
    } else {
        format!(
            "[airlock] Since your last turn the user reviewed your edits:\n- {}\n\n{text}",
            outcomes.join("\n- ")
        )
    };
    state.agent.busy = true;
    send_status(state);
    begin_progress(state);
    let handle = state.handle.clone();
    let turn_end = state.agent.turn_end.clone();
    let started = Instant::now();
    tokio::spawn(async move {
        let result = client.prompt(&text).await;
        let finish = move |state: &mut State| {
            // The turn's writes become proposals before the turn is reported finished.
            crate::handlers::shadow::sweep(state);
            state.agent.busy = false;
            send_status(state);
            end_progress(state);
            let reply = match result {
                Ok(stop) => {
                    tracing::info!(%stop, elapsed = ?started.elapsed(), "prompt finished");
                    state.emit(
                        Event::new(EventKind::PromptFinished, stop.to_string())
                            .duration(started.elapsed()),
                    );
                    Ok(ext::PromptResult {
                        stop_reason: stop.to_string(),
                    })
                }
                Err(e) => Err(internal(format!("the agent turn failed: {e}"))),
            };
            let _ = tx.send(reply);
        };
        // Through the event forwarder, so the turn ends after the updates the agent sent before
        // answering reach the editor. Once the forwarder is gone (agent exited), directly.
        let finish: Task = Box::new(finish);
        let unsent = match turn_end {
            Some(t) => t.send(finish).err().map(|e| e.0),
            None => Some(finish),
        };
        if let Some(finish) = unsent {
            handle.notify(finish);
        }
    });
}

/// `$/progress` for editors without the extension: begin/report/end around each agent turn.
fn begin_progress(state: &mut State) {
    if !state.agent.progress_supported {
        return;
    }
    state.agent.turns += 1;
    let token = ProgressToken::String(format!("airlock-turn-{}", state.agent.turns));
    let create = WorkDoneProgressCreateParams {
        token: token.clone(),
    };
    state.request_client(
        move |client| async move {
            client
                .send_request::<request::WorkDoneProgressCreate>(create)
                .await
        },
        move |state, result| {
            if result.is_err() {
                return;
            }
            let begin = WorkDoneProgress::Begin(WorkDoneProgressBegin {
                title: "Agent".into(),
                message: Some("working…".into()),
                ..Default::default()
            });
            send_progress(state, token.clone(), begin);
            if state.agent.busy {
                state.agent.progress = Some(token);
            } else {
                // The turn ended before the editor created the token: close it right away.
                let end = WorkDoneProgressEnd {
                    message: Some("done".into()),
                };
                send_progress(state, token, WorkDoneProgress::End(end));
            }
        },
    );
}

fn report_progress(state: &State, text: &str) {
    let Some(token) = state.agent.progress.clone() else {
        return;
    };
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let message: String = line.chars().take(100).collect();
    send_progress(
        state,
        token,
        WorkDoneProgress::Report(WorkDoneProgressReport {
            message: Some(message),
            ..Default::default()
        }),
    );
}

fn end_progress(state: &mut State) {
    if let Some(token) = state.agent.progress.take() {
        send_progress(
            state,
            token,
            WorkDoneProgress::End(WorkDoneProgressEnd {
                message: Some("done".into()),
            }),
        );
    }
}

fn send_progress(state: &State, token: ProgressToken, value: WorkDoneProgress) {
    let Some(out) = state.out() else { return };
    // Begin and end must pair up; only the reports in between may be dropped.
    let report = matches!(value, WorkDoneProgress::Report(_));
    let params = ProgressParams {
        token,
        value: ProgressParamsValue::WorkDone(value),
    };
    if report {
        out.notify_chatter::<notification::Progress>(params);
    } else {
        out.notify::<notification::Progress>(params);
    }
}

fn start(state: &mut State) {
    // The shadow workspace is prepared off the state task first (shadow.rs); prompts queue.
    if isolation(state) == "shadow"
        && let Some(root) = state.root.clone()
        && !crate::handlers::shadow::ready(state, &root)
    {
        state.agent.phase = Phase::Starting;
        send_status(state);
        crate::handlers::shadow::prepare(state, root, |state, result| {
            if state.shutting_down {
                return;
            }
            match result {
                Ok(()) => start(state),
                Err(message) => {
                    state.agent.phase = Phase::Failed;
                    fail_queued(
                        state,
                        format!("cannot prepare the shadow workspace: {message}"),
                    );
                }
            }
        });
        return;
    }
    let config = match agent_config(state) {
        Ok(c) => c,
        Err(message) => return fail_queued(state, message),
    };
    state.agent.generation += 1;
    let generation = state.agent.generation;
    state.agent.phase = Phase::Starting;
    send_status(state);
    let handle = state.handle.clone();
    let root = config.cwd.clone();
    // In shadow mode the agent must write and run commands itself, inside its shadow; that is
    // also the only mode where an ACP v2 agent (which always does) may run: v2 is offered
    // there alone, elsewhere a v2-only agent fails `initialize` with an error naming both
    // versions and the setting (docs/security.md, "ACP v2 agents").
    let options = ClientOptions {
        client_fs_and_terminal: state.shadow.mode().is_none(),
        offer_protocol_v2: state.shadow.mode().is_some(),
        ..ClientOptions::default()
    };
    tracing::info!(command = ?config.command, "starting agent");
    tokio::spawn(async move {
        let spawned = match agent_command(&config) {
            Ok(command) => AgentClient::spawn_command(command, &root, options).await,
            Err(e) => Err(e),
        };
        match spawned {
            Ok((client, mut events)) => {
                let client = Arc::new(client);
                let c = client.clone();
                // The agent's own program, also when it is wrapped in `airlock exec … --`.
                let program = config
                    .command
                    .iter()
                    .skip_while(|a| a.as_str() != "--")
                    .nth(1)
                    .or(config.command.first())
                    .cloned()
                    .unwrap_or_default();
                let (turn_end, mut turn_ends) = mpsc::unbounded_channel::<Task>();
                handle.notify(move |state| on_started(state, generation, c, program, turn_end));
                // Agent events first: an update sent before the turn's answer is shown before it.
                loop {
                    tokio::select! {
                        biased;
                        event = events.recv() => match event {
                            Some(event) => handle.notify(move |state| on_event(state, generation, event)),
                            None => break,
                        },
                        Some(finish) = turn_ends.recv() => {
                            // The SDK may route the turn's answer before the dispatch of the
                            // updates sent just before it; give those a moment to arrive.
                            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                            while let Ok(event) = events.try_recv() {
                                handle.notify(move |state| on_event(state, generation, event));
                            }
                            handle.notify(finish)
                        }
                    }
                }
                turn_ends.close();
                while let Ok(finish) = turn_ends.try_recv() {
                    handle.notify(finish);
                }
            }
            Err(e) => {
                let message = format!("cannot start the agent `{}`: {e}", config.command.join(" "));
                handle.notify(move |state| {
                    state.emit(Event::new(EventKind::AgentFailed, message.clone()));
                    state.agent.phase = Phase::Failed;
                    fail_queued(state, message);
                });
            }
        }
    });
}

/// The agent's process: its own process group (killed as a whole on shutdown), and killed by
/// the kernel if the server dies without shutting it down (`kill -9` of the server).
fn agent_command(config: &AgentConfig) -> Result<tokio::process::Command, airlock_acp::AcpError> {
    let mut command = config.to_command()?;
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec here.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(command)
}

fn on_started(
    state: &mut State,
    generation: u64,
    client: Arc<AgentClient>,
    program: String,
    turn_end: mpsc::UnboundedSender<Task>,
) {
    if generation != state.agent.generation || state.shutting_down {
        return;
    }
    let info = client
        .agent_info()
        .map(|i| format!("{} {}", i.name, i.version))
        .unwrap_or_default();
    let isolation = match state.shadow.mode() {
        Some(mode) => format!("shadow ({})", mode.as_str()),
        None => state
            .settings
            .agent
            .isolation
            .clone()
            .unwrap_or_else(|| "sandboxed".into()),
    };
    state.emit(
        Event::new(EventKind::AgentStarted, program)
            .field("agent", info)
            .field("pid", client.pid().unwrap_or(0))
            .field("protocol", client.protocol_version())
            .field("isolation", isolation),
    );
    crate::handlers::shadow::on_started(state, client.pid());
    state.agent.phase = Phase::Running(client.clone());
    state.agent.turn_end = Some(turn_end);
    for (text, tx) in std::mem::take(&mut state.agent.queued) {
        run_prompt(state, client.clone(), text, tx);
    }
    send_status(state);
}

fn fail_queued(state: &mut State, message: String) {
    tracing::error!("{message}");
    if let Some(out) = state.out() {
        out.show(MessageType::ERROR, format!("airlock: {message}"));
    }
    for (_, tx) in std::mem::take(&mut state.agent.queued) {
        let _ = tx.send(Err(internal(message.clone())));
    }
    send_status(state);
}

pub fn cancel(state: &mut State) -> jsonrpc::Result<Value> {
    match &state.agent.phase {
        Phase::Running(client) => client
            .cancel()
            .map(|()| json!({"cancelled": true}))
            .map_err(|e| internal(e.to_string())),
        _ => Ok(json!({"cancelled": false, "reason": "no agent turn is running"})),
    }
}

/// Kills the agent (shutdown, exit). Its process group dies with it.
pub fn stop(state: &mut State) {
    if let Phase::Running(client) = std::mem::take(&mut state.agent.phase) {
        state.agent.generation += 1;
        tokio::spawn(async move { client.shutdown().await });
    }
}

pub fn queue_outcome(state: &mut State, summary: String) {
    state.agent.outcomes.push(summary);
}

fn on_event(state: &mut State, generation: u64, event: AgentEvent) {
    if generation != state.agent.generation {
        // A request from an agent we already replaced: answer so nothing waits forever.
        if let AgentEvent::Request(request) = event {
            refuse(request, "this agent session has ended");
        }
        return;
    }
    match event {
        AgentEvent::Update(update) => on_update(state, update),
        AgentEvent::Request(request) => on_request(state, request),
        AgentEvent::ProtocolError(message) => {
            tracing::warn!("agent protocol error: {message}");
            if let Some(out) = state.out() {
                out.log(
                    MessageType::WARNING,
                    format!("airlock: the agent sent something invalid: {message}"),
                );
            }
        }
        AgentEvent::Exited {
            code,
            signal,
            stderr_tail,
        } => {
            let how = match (code, signal) {
                (Some(c), _) => format!("exit code {c}"),
                (_, Some(s)) => format!("signal {s}"),
                _ => "unknown status".into(),
            };
            state.emit(
                Event::new(EventKind::AgentExited, how.clone())
                    .field("stderr", stderr_tail.clone()),
            );
            crate::handlers::shadow::on_exited(state);
            let expected = state.shutting_down || matches!(state.agent.phase, Phase::Stopped);
            state.agent.phase = Phase::Stopped;
            state.agent.busy = false;
            if !expected && let Some(out) = state.out() {
                let tail = stderr_tail
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ");
                out.show(
                    MessageType::WARNING,
                    format!("airlock: the agent exited ({how}); pending proposals are kept and the next prompt restarts it. {tail}"),
                );
            }
            send_status(state);
        }
    }
}

fn on_update(state: &mut State, update: acp::AgentUpdate) {
    crate::handlers::shadow::on_update(state, &update);
    if state.opt_in.enabled
        && let Some(out) = state.out()
    {
        out.notify_chatter::<ext::AgentUpdate>(json!({ "update": update.raw }));
    }
    // Every editor sees the agent talk in its log, even without the extension.
    let line = match (&update.kind, &update.text, &update.tool_call) {
        (acp::UpdateKind::AgentMessageChunk, Some(text), _) => Some(text.clone()),
        (acp::UpdateKind::ToolCall, _, Some(call)) => {
            Some(format!("[tool] {}", call.title.clone().unwrap_or_default()))
        }
        (acp::UpdateKind::Plan, Some(text), _) => Some(format!("[plan] {text}")),
        _ => None,
    };
    if let Some(line) = line {
        report_progress(state, &line);
        if let Some(out) = state.out() {
            out.log(MessageType::INFO, format!("agent: {line}"));
        }
    }
}

fn refuse(request: AgentRequest, why: &str) {
    let err = || AgentError::internal(why);
    match request {
        AgentRequest::ReadTextFile { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::WriteTextFile { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::RequestPermission { respond, .. } => {
            let _ = respond.send(acp::PermissionOutcome::Cancelled);
        }
        AgentRequest::CreateTerminal { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::TerminalOutput { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::WaitForTerminalExit { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::KillTerminal { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
        AgentRequest::ReleaseTerminal { respond, .. } => {
            let _ = respond.send(Err(err()));
        }
    }
}

fn on_request(state: &mut State, request: AgentRequest) {
    match request {
        AgentRequest::ReadTextFile {
            path,
            line,
            limit,
            respond,
        } => {
            let _ = respond.send(read_for_agent(state, &path, line, limit));
        }
        AgentRequest::WriteTextFile {
            path,
            content,
            respond,
        } => {
            let origin = airlock_proposals::Origin {
                session: Some(state.session.clone()),
                tool_call: None,
            };
            let started = Instant::now();
            match proposals::propose(state, &path, content, origin, false) {
                Err(e) => {
                    let _ = respond.send(Err(AgentError::denied(e)));
                }
                // The editor already sees the proposal; the agent is told it is recorded only
                // once it is on disk, so an acknowledged write survives `kill -9`.
                Ok(_) => proposals::when_persisted(state, move |result| {
                    tracing::debug!(
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "fs/write_text_file persisted"
                    );
                    let _ = respond.send(result.map_err(AgentError::denied));
                }),
            }
            tracing::debug!(
                elapsed_us = started.elapsed().as_micros() as u64,
                "fs/write_text_file handled"
            );
        }
        AgentRequest::RequestPermission {
            tool_call,
            options,
            respond,
        } => {
            crate::handlers::approvals::ask_permission(state, tool_call, options, respond);
        }
        other => crate::handlers::terminals::on_request(state, other),
    }
}

/// `fs/read_text_file`: inside the workspace, policy-checked, the editor's unsaved text, with the
/// agent's own pending edits applied (so it sees what it wrote), `line`/`limit` honoured.
fn read_for_agent(
    state: &mut State,
    path: &Path,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<String, AgentError> {
    let Some(root) = state.root.clone() else {
        return Err(AgentError::denied("no workspace is open"));
    };
    let resolved = match airlock_proposals::resolve_in_workspace(&root, path) {
        Ok(p) => p,
        Err(e) => {
            state.emit(
                Event::new(EventKind::FsReadDenied, path.display().to_string())
                    .decision("deny")
                    .field("reason", e.to_string()),
            );
            return Err(AgentError::denied(e.to_string()));
        }
    };
    let rel = proposals::relative(state, &resolved);
    if let Some((rule, layer)) = crate::handlers::policy_file::read_denied(state, &resolved) {
        state.emit(
            Event::new(EventKind::FsReadDenied, rel.clone())
                .decision("deny")
                .rule(Some(rule.clone()), Some(layer)),
        );
        return Err(AgentError::denied(format!(
            "reading {rel} is denied by policy rule {rule}"
        )));
    }
    let (text, _) = proposals::current_text(state, &resolved)
        .map_err(|e| AgentError::invalid_params(e.to_string()))?;
    let Some(text) = text else {
        // A file that doesn't exist yet reads as empty: agents such as Gemini CLI read before
        // creating a file and fail on an error. The proposal still knows the file is new (it
        // checks the disk itself), so nothing is lost.
        state.emit(
            Event::new(EventKind::FsRead, rel)
                .decision("allow")
                .field("missing", true),
        );
        return Ok(String::new());
    };
    let text = state
        .proposals
        .as_ref()
        .and_then(|s| s.agent_view(&resolved, &text))
        .unwrap_or(text);
    state.emit(Event::new(EventKind::FsRead, rel).decision("allow"));
    Ok(slice_lines(&text, line, limit))
}

/// ACP's `line` is 1-based; `limit` is a number of lines.
fn slice_lines(text: &str, line: Option<u32>, limit: Option<u32>) -> String {
    if line.is_none() && limit.is_none() {
        return text.to_owned();
    }
    let skip = line.map_or(0, |l| l.saturating_sub(1) as usize);
    let take = limit.map_or(usize::MAX, |l| l as usize);
    text.split_inclusive('\n').skip(skip).take(take).collect()
}

pub fn send_status(state: &State) {
    if !state.opt_in.enabled {
        return;
    }
    let (pending_proposals, pending_hunks) = proposals::pending_counts(state);
    if let Some(out) = state.out() {
        out.notify::<ext::Status>(ext::StatusParams {
            agent: state.agent.label(),
            pending_proposals,
            pending_hunks,
        });
    }
}

/// Moves telemetry from the bus's bounded queue to the editor, in batches (at most
/// [`TELEMETRY_BATCH`] events, or what arrived within [`TELEMETRY_LINGER`]), if the client opted
/// in. Every client, opted in or not, is told once when the audit log cannot be written.
///
/// Each batch is sent straight through the LSP client and its delivery awaited, not queued in
/// the outbox: while the editor does not read its input this thread waits, the bus's bounded
/// queue fills and drops the oldest events (reported as `dropped` in the next batch), and
/// nothing else grows. The agent and the main loop never wait on it.
pub fn start_telemetry_pump(state: &mut State) {
    state.bus.set_content(state.settings.telemetry.content);
    let wants_events = state.opt_in.enabled && state.opt_in.telemetry;
    let (Some(queue), Some(client), Some(out)) = (
        state.bus.editor_queue(),
        state.client.clone(),
        state.out().cloned(),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Handle::current();
    // A plain thread: the queue blocks on a condvar, which must never stall the async runtime.
    let spawned = std::thread::Builder::new()
        .name("airlock-telemetry".into())
        .spawn(move || {
            loop {
                let batch = queue.take_batch_linger(
                    TELEMETRY_BATCH,
                    Duration::from_millis(500),
                    TELEMETRY_LINGER,
                );
                if let Some(e) = batch.events.iter().find(|e| e.kind == EventKind::AuditError) {
                    let why = e.fields.get("error").and_then(Value::as_str).unwrap_or("");
                    out.show(
                        MessageType::WARNING,
                        format!("airlock: the audit log cannot be written ({why}); Airlock goes on without it and counts the lost records"),
                    );
                }
                if !wants_events || (batch.events.is_empty() && batch.dropped == 0) {
                    continue;
                }
                runtime.block_on(client.send_notification::<ext::Telemetry>(
                    ext::TelemetryParams {
                        events: batch.events,
                        dropped: batch.dropped,
                    },
                ));
            }
        });
    if let Err(err) = spawned {
        tracing::error!("cannot start the telemetry thread: {err}");
    }
}

const TELEMETRY_BATCH: usize = 256;
const TELEMETRY_LINGER: Duration = Duration::from_millis(50);
