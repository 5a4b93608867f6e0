//! Agent terminals (`terminal/*`).
//!
//! Guarantees: the policy decides every command before anything runs (deny → an error naming the
//! rule; ask → the user is asked; allow → runs); what runs, runs in the same sandbox as
//! `airlock exec` (prepared once per policy); output is kept up to the agent's
//! `outputByteLimit` (the oldest bytes are dropped, as ACP asks) and the command is killed when
//! the terminal is released or the server exits.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use airlock_acp::{AgentError, AgentRequest, Reply, TerminalExit, TerminalOutput};
use airlock_policy::Verdict;
use airlock_sandbox::{CommandSpec, ExecReport, Sandbox, SandboxConfig, Stdio};
use airlock_telemetry::{Event, EventKind};

use crate::handlers::{approvals, policy_file};
use crate::main_loop::State;

/// Default cap on what a terminal keeps when the agent gives no `outputByteLimit`.
const DEFAULT_OUTPUT_LIMIT: usize = 1024 * 1024;
/// Wall-clock limit for one agent command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Terminals {
    sandbox: Option<Arc<Sandbox>>,
    /// The egress proxy, started with the sandbox when the policy allows some domain. It
    /// outlives policy changes (its decisions read `net_policy`), so a command that is running
    /// when a rule is added — e.g. by an approval's "always" — keeps its way out.
    proxy: Option<airlock_proxy::Proxy>,
    /// The policy the proxy decides by: the one in force.
    net_policy: Arc<RwLock<Option<Arc<airlock_policy::Policy>>>>,
    next_id: u64,
    running: HashMap<String, Terminal>,
}

struct Terminal {
    output: Arc<Mutex<Output>>,
    /// Process group of the command (it runs in its own session).
    pgid: i32,
    exited: Arc<AtomicBool>,
    exit: Option<TerminalExit>,
    waiters: Vec<Reply<Result<TerminalExit, AgentError>>>,
}

#[derive(Default)]
struct Output {
    text: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl Output {
    fn push(&mut self, bytes: &[u8]) {
        self.text.extend_from_slice(bytes);
        if self.text.len() > self.limit {
            let mut cut = self.text.len() - self.limit;
            // Never split a UTF-8 character: drop up to the next char boundary.
            while cut < self.text.len() && (self.text[cut] & 0xC0) == 0x80 {
                cut += 1;
            }
            self.text.drain(..cut);
            self.truncated = true;
        }
    }
}

/// Forgets the prepared sandbox (the policy changed), so the next command uses the new rules;
/// the proxy decides by the new policy from its next connection on.
pub fn policy_changed(state: &mut State) {
    state.terminals.sandbox = None;
    *state
        .terminals
        .net_policy
        .write()
        .unwrap_or_else(|p| p.into_inner()) = policy_file::current(state);
}

/// Starts the egress proxy for agent terminals. `ask` verdicts go to the user through the
/// approval channel: the proxy's connection thread hands the question to the state task
/// (never blocking it) and waits for the answer at most the configured timeout.
fn start_proxy(state: &State) -> Result<airlock_proxy::Proxy, String> {
    let bus = state.bus.clone();
    let events: Arc<airlock_proxy::EventFn> = Arc::new(move |a: airlock_proxy::Attempt| {
        bus.emit(
            Event::new(EventKind::NetAttempt, format!("{}:{}", a.host, a.port))
                .decision(a.verdict.as_str())
                .field("decision", a.verdict.as_str())
                .field("rule", a.rule.clone().unwrap_or_default())
                .field("layer", a.layer.as_str())
                .field("by", a.by.as_str())
                .field("via", a.via.as_str())
                .field("bytes_up", a.bytes_up)
                .field("bytes_down", a.bytes_down)
                .field("duration_ms", a.duration.as_secs_f64() * 1e3),
        );
    });
    let slot = state.terminals.net_policy.clone();
    let decide: Arc<airlock_proxy::DecideFn> = Arc::new(move |host: &str, port: u16| {
        let policy = slot.read().unwrap_or_else(|p| p.into_inner()).clone();
        match policy {
            Some(p) => p.decide_domain(host, Some(port)),
            None => airlock_policy::Decision {
                verdict: Verdict::Deny,
                rule: Some("builtin: no policy".into()),
                layer: airlock_policy::Layer::Builtin,
                source: None,
            },
        }
    });
    let handle = state.handle.clone();
    let ask: Arc<airlock_proxy::AskFn> = Arc::new(move |host: &str, port: u16, d| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (host, d) = (host.to_owned(), d.clone());
        handle.notify(move |state| approvals::ask_network(state, host, port, d, tx));
        rx
    });
    let mut config = airlock_proxy::ProxyConfig::new(decide, events);
    config.ask = Some(ask);
    config.ask_timeout = state.settings.approvals.network_timeout();
    config.resolver = state.config.proxy_resolver.clone();
    airlock_proxy::Proxy::start(config).map_err(|e| e.to_string())
}

fn sandbox(state: &mut State) -> Result<Arc<Sandbox>, String> {
    if let Some(s) = &state.terminals.sandbox {
        return Ok(s.clone());
    }
    let root = state.root.clone().ok_or("no workspace is open")?;
    let policy = policy_file::current(state).ok_or("no policy")?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let extra_read = home
        .iter()
        .flat_map(|h| [h.join(".cargo"), h.join(".rustup")])
        .collect();
    // Network only through the proxy, and only when some domain may be allowed (or asked
    // about: `network.default = "ask"`).
    *state
        .terminals
        .net_policy
        .write()
        .unwrap_or_else(|p| p.into_inner()) = Some(policy.clone());
    let proxy = if airlock_proxy::policy_needs_proxy(&policy, &[]) {
        match state.terminals.proxy.take() {
            Some(p) => Some(p),
            None => Some(start_proxy(state)?),
        }
    } else {
        None
    };
    let config = SandboxConfig {
        allow_tcp_connect_ports: proxy.iter().map(|p| p.port()).collect(),
        workspace: root,
        extra_read,
        deny_read_globs: policy.deny_read_globs(),
        protected: policy.protected_paths(),
        limits: airlock_sandbox::Limits {
            timeout: Some(COMMAND_TIMEOUT),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut proxy = proxy;
    let prepared = match Sandbox::prepare(config.clone()) {
        // A kernel without Landlock TCP rules (ABI 4) cannot open only the proxy's port:
        // commands still run, with no network at all (seccomp blocks sockets there).
        Err(e) if proxy.is_some() => {
            tracing::warn!("agent terminals: no network, the proxy cannot be used: {e}");
            proxy = None;
            Sandbox::prepare(SandboxConfig {
                allow_tcp_connect_ports: Vec::new(),
                ..config
            })
        }
        other => other,
    };
    let sandbox = Arc::new(prepared.map_err(|e| e.to_string())?);
    let kernel = format!("{:?}", sandbox.kernel());
    state.emit(Event::new(EventKind::SandboxLevel, "agent terminals").field("kernel", kernel));
    state.terminals.sandbox = Some(sandbox.clone());
    state.terminals.proxy = proxy;
    Ok(sandbox)
}

pub fn on_request(state: &mut State, request: AgentRequest) {
    match request {
        AgentRequest::CreateTerminal {
            command,
            args,
            env,
            cwd,
            output_byte_limit,
            respond,
        } => create(
            state,
            command,
            args,
            env.into_iter().collect(),
            cwd,
            output_byte_limit,
            respond,
        ),
        AgentRequest::TerminalOutput {
            terminal_id,
            respond,
        } => {
            let reply = state.terminals.running.get(&terminal_id).map(|t| {
                let out = t.output.lock().unwrap_or_else(|p| p.into_inner());
                TerminalOutput {
                    output: String::from_utf8_lossy(&out.text).into_owned(),
                    truncated: out.truncated,
                    exit: t.exit.clone(),
                }
            });
            let _ = respond.send(reply.ok_or_else(|| unknown(&terminal_id)));
        }
        AgentRequest::WaitForTerminalExit {
            terminal_id,
            respond,
        } => match state.terminals.running.get_mut(&terminal_id) {
            Some(t) => match &t.exit {
                Some(exit) => {
                    let _ = respond.send(Ok(exit.clone()));
                }
                None => t.waiters.push(respond),
            },
            None => {
                let _ = respond.send(Err(unknown(&terminal_id)));
            }
        },
        AgentRequest::KillTerminal {
            terminal_id,
            respond,
        } => {
            let reply = state
                .terminals
                .running
                .get(&terminal_id)
                .map(kill)
                .ok_or_else(|| unknown(&terminal_id));
            let _ = respond.send(reply);
        }
        AgentRequest::ReleaseTerminal {
            terminal_id,
            respond,
        } => {
            let reply = state
                .terminals
                .running
                .remove(&terminal_id)
                .map(|t| kill(&t))
                .ok_or_else(|| unknown(&terminal_id));
            let _ = respond.send(reply);
        }
        other => tracing::error!("not a terminal request: {}", other.method()),
    }
}

fn unknown(id: &str) -> AgentError {
    AgentError::not_found(format!("no terminal {id} (released already?)"))
}

fn kill(t: &Terminal) {
    if !t.exited.load(Ordering::SeqCst) {
        // SAFETY: signalling a process group we started; `exited` guards against pid reuse.
        unsafe { libc::kill(-t.pgid, libc::SIGKILL) };
    }
}

/// Kills every running command (server exit).
pub fn kill_all(state: &mut State) {
    for (_, t) in state.terminals.running.drain() {
        kill(&t);
    }
}

fn create(
    state: &mut State,
    command: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    limit: Option<u64>,
    respond: Reply<Result<String, AgentError>>,
) {
    // A command with no args but spaces is a shell command line: run it through `sh -c`,
    // and let the policy split and decide every part of it.
    let (argv, line) = if args.is_empty() && command.contains(char::is_whitespace) {
        (
            vec!["sh".into(), "-c".into(), command.clone()],
            command.clone(),
        )
    } else {
        let mut argv = vec![command.clone()];
        argv.extend(args);
        let line = argv.join(" ");
        (argv, line)
    };
    let decision = if argv[0] == "sh" && argv.len() == 3 && argv[1] == "-c" && argv[2] == line {
        policy_file::decide_line(state, &line, cwd.as_deref())
    } else {
        policy_file::decide_argv(state, &argv, cwd.as_deref())
    };
    let (rule, layer) = policy_file::describe(&decision);
    match decision.verdict {
        Verdict::Deny => {
            state.emit(
                Event::new(EventKind::CommandDenied, line.clone())
                    .decision("deny")
                    .rule(Some(rule.clone()), Some(layer.clone())),
            );
            let _ = respond.send(Err(AgentError::denied(format!(
                "`{line}` is denied by policy rule {rule} ({layer} layer)"
            ))));
        }
        Verdict::Allow => {
            let _ = respond.send(spawn(
                state,
                argv,
                line,
                env,
                cwd,
                limit,
                Some((rule, layer)),
            ));
        }
        Verdict::Ask => {
            let q = approvals::Question {
                kind: "command".into(),
                subject: line.clone(),
                rule: Some(rule),
                layer: Some(layer),
                always: approvals::AlwaysRule::new(airlock_policy::RuleCategory::Command, &line),
            };
            approvals::ask(state, q, move |state, choice| {
                if !choice.allowed() {
                    state.emit(
                        Event::new(EventKind::CommandDenied, line.clone())
                            .decision("deny")
                            .field("by", "user"),
                    );
                    let _ =
                        respond.send(Err(AgentError::denied(format!("the user denied `{line}`"))));
                } else {
                    let _ = respond.send(spawn(state, argv, line, env, cwd, limit, None));
                }
            });
        }
    }
}

fn spawn(
    state: &mut State,
    argv: Vec<String>,
    line: String,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    limit: Option<u64>,
    rule: Option<(String, String)>,
) -> Result<String, AgentError> {
    let sandbox =
        sandbox(state).map_err(|e| AgentError::denied(format!("cannot run `{line}`: {e}")))?;
    let mut env = env;
    // After the agent's own variables, so the proxy settings win.
    if let Some(p) = &state.terminals.proxy {
        env.extend(p.env());
    }
    let mut argv = argv.into_iter();
    let program = argv.next().unwrap_or_default();
    let spec = CommandSpec {
        program,
        args: argv.collect(),
        cwd,
        env_extra: env,
        stdin: Stdio::Null,
        stdout: Stdio::Pipe,
        stderr: Stdio::Pipe,
        new_session: true,
        ..Default::default()
    };
    let mut child = sandbox
        .spawn(&spec)
        .map_err(|e| AgentError::invalid_params(e.to_string()))?;
    state.terminals.next_id += 1;
    let id = format!("term-{}", state.terminals.next_id);
    let (r, l) = rule.unzip();
    state.emit(
        Event::new(EventKind::CommandStarted, line.clone())
            .decision("allow")
            .rule(r, l)
            .field("terminal", id.clone()),
    );
    let output = Arc::new(Mutex::new(Output {
        limit: limit.map_or(DEFAULT_OUTPUT_LIMIT, |l| l as usize),
        ..Default::default()
    }));
    let readers: Vec<_> = [child.stdout.take(), child.stderr.take()]
        .into_iter()
        .flatten()
        .map(|fd| read_into(fd, output.clone()))
        .collect();
    let exited = Arc::new(AtomicBool::new(false));
    let pgid = child.pid() as i32;
    let handle = state.handle.clone();
    let (tid, flag) = (id.clone(), exited.clone());
    std::thread::spawn(move || {
        let report = child.wait();
        flag.store(true, Ordering::SeqCst);
        for r in readers {
            let _ = r.join();
        }
        handle.notify(move |state| finished(state, &tid, &line, report));
    });
    state.terminals.running.insert(
        id.clone(),
        Terminal {
            output,
            pgid,
            exited,
            exit: None,
            waiters: Vec::new(),
        },
    );
    Ok(id)
}

fn read_into(fd: OwnedFd, output: Arc<Mutex<Output>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(fd);
        let mut buf = [0u8; 8192];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            output
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(&buf[..n]);
        }
    })
}

fn finished(
    state: &mut State,
    id: &str,
    line: &str,
    report: Result<ExecReport, airlock_sandbox::SandboxError>,
) {
    let exit = match &report {
        Ok(r) => match r.status {
            airlock_sandbox::ExitStatusKind::Exited(c) => TerminalExit {
                exit_code: Some(c as u32),
                signal: None,
            },
            airlock_sandbox::ExitStatusKind::Signaled(s) => TerminalExit {
                exit_code: None,
                signal: Some(signal_name(s)),
            },
        },
        Err(_) => TerminalExit {
            exit_code: Some(125),
            signal: None,
        },
    };
    let mut event = Event::new(EventKind::CommandFinished, line.to_owned()).field("terminal", id);
    if let Ok(r) = &report {
        event = event
            .duration(r.wall)
            .field("exitCode", r.status.code())
            .field(
                "signal",
                match r.status {
                    airlock_sandbox::ExitStatusKind::Signaled(s) => signal_name(s),
                    airlock_sandbox::ExitStatusKind::Exited(_) => String::new(),
                },
            )
            .field("userCpuMs", r.user_cpu.as_millis() as u64)
            .field("sysCpuMs", r.sys_cpu.as_millis() as u64)
            .field("maxRssKb", r.max_rss_kb)
            .field("bytesOut", r.bytes_out)
            .field("killedBy", r.killed_by.map(|k| k.as_str()).unwrap_or(""))
            .field("violations", r.violations.clone());
    }
    state.emit(event);
    if let Some(t) = state.terminals.running.get_mut(id) {
        t.exit = Some(exit.clone());
        for waiter in t.waiters.drain(..) {
            let _ = waiter.send(Ok(exit.clone()));
        }
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGXCPU => "SIGXCPU".into(),
        other => format!("signal {other}"),
    }
}
