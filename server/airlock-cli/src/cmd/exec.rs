//! `airlock exec`: run one command in the sandbox, scoped to a workspace.
//!
//! Kept off the async runtime and away from heavy initialisation: it loads the policy (for the
//! deny-read and protect lists), prepares one [`Sandbox`] and waits for the command. The exit
//! code is the command's (128+N for signal N); 125 means the sandbox could not be set up,
//! 126/127 not executable / not found, like a shell.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use airlock_sandbox::{CommandSpec, ExecReport, Limits, Sandbox, SandboxConfig, Stdio, WeakerMode};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Weaker modes (only when this kernel can't enforce a protection; see `airlock doctor`):
  no-landlock       run without Landlock filesystem/network rules (kernel < 5.13)
  no-signal-scope   allow signals to your processes outside the sandbox (Landlock ABI < 6)
  unix-sockets      allow unix sockets; host pathname sockets become reachable (Landlock ABI < 9)

Exit codes: the command's own; 128+N if killed by signal N; 125 sandbox setup failed;
126 not executable; 127 not found.")]
pub struct Args {
    /// Workspace root: the only read-write directory (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Also allow writing below PATH (repeatable).
    #[arg(long = "allow-write", value_name = "PATH")]
    pub allow_write: Vec<PathBuf>,
    /// Also allow reading and executing below PATH (repeatable).
    #[arg(long = "allow-read", value_name = "PATH")]
    pub allow_read: Vec<PathBuf>,
    /// Don't grant the default toolchain paths (~/.cargo, ~/.rustup, ~/.gitconfig, ~/.config/git).
    #[arg(long)]
    pub no_default_read: bool,
    /// Don't load the policy: take the deny-read and protect lists from `--deny-read` and
    /// `--protect` (`airlock serve` passes the policy it has in force, which may be the last
    /// good one while the file on disk is broken). Without `--deny-read`: the default `.env*`.
    #[arg(long)]
    pub no_policy: bool,
    /// With `--no-policy`: a deny-read glob, relative to the workspace (repeatable; policy
    /// pattern syntax). In order, the last matching one decides; `!GLOB` keeps its matches
    /// readable (an exception, like `files.allow_read`).
    #[arg(long = "deny-read", value_name = "GLOB", requires = "no_policy")]
    pub deny_read: Vec<String>,
    /// With `--no-policy`: a protected path, relative to the workspace (repeatable).
    #[arg(long = "protect", value_name = "PATH", requires = "no_policy")]
    pub protect: Vec<String>,
    /// Kill the command and all its descendants after SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Kill the command once stdout+stderr exceed BYTES (output is then relayed and counted).
    #[arg(long, value_name = "BYTES")]
    pub max_output: Option<u64>,
    /// RLIMIT_CPU in seconds.
    #[arg(long, value_name = "SECS")]
    pub cpu: Option<u64>,
    /// RLIMIT_AS (address space) in bytes.
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<u64>,
    /// RLIMIT_NOFILE.
    #[arg(long, value_name = "N")]
    pub nofile: Option<u64>,
    /// Set an environment variable inside the sandbox (the rest is scrubbed to an allowlist).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Pass variable NAME from airlock's own environment into the sandbox (repeatable). Unlike
    /// `--env`, the value never appears on a command line (`/proc/*/cmdline` is world-readable).
    /// An unset NAME is skipped.
    #[arg(long = "pass-env", value_name = "NAME")]
    pub pass_env: Vec<String>,
    /// Make the workspace read-only too (deny-read files stay unreadable); the private TMPDIR
    /// and `--allow-write` paths stay writable. `airlock serve` runs the agent process this way.
    #[arg(long)]
    pub read_only_workspace: bool,
    /// Shadow workspace (overlay): run the command in a private user+mount namespace where an
    /// overlayfs covers the workspace path — the real workspace is its read-only lower layer,
    /// every write lands in DIR (outside the workspace). `airlock serve` runs the agent this way
    /// with `agent.isolation = "shadow"`. Needs `--shadow-work`.
    #[arg(long, value_name = "DIR", requires = "shadow_work", conflicts_with_all = ["read_only_workspace", "shadow_copy"])]
    pub shadow_upper: Option<PathBuf>,
    /// overlayfs work dir for `--shadow-upper` (empty, on the same filesystem as it).
    #[arg(long, value_name = "DIR", requires = "shadow_upper")]
    pub shadow_work: Option<PathBuf>,
    /// Shadow workspace (copy): bind-mount DIR, a copy of the workspace, over the workspace
    /// path in a private user+mount namespace.
    #[arg(long, value_name = "DIR", conflicts_with = "read_only_workspace")]
    pub shadow_copy: Option<PathBuf>,
    /// Run the command in a new session (no controlling terminal), so that signals to the
    /// caller's process group don't reach the sandbox's supervisor: it then outlives a killed
    /// `airlock exec` just long enough to notice and kill every descendant.
    #[arg(long)]
    pub new_session: bool,
    /// Allow network access to NAME (`host`, `*.suffix`, optional `:PORT`) for this command,
    /// on top of the policy's `network.allow` (repeatable). A policy `deny`/`ask` rule still
    /// wins; `ask` is denied here (no one to ask). Network goes through Airlock's loopback
    /// proxy (HTTP_PROXY/HTTPS_PROXY/ALL_PROXY); see docs/network.md.
    #[arg(long = "allow-domain", value_name = "NAME[:PORT]")]
    pub allow_domain: Vec<String>,
    /// Give up a protection this kernel can't enforce (repeatable; see below).
    #[arg(long = "weaker-mode", value_name = "MODE", value_delimiter = ',')]
    pub weaker_mode: Vec<String>,
    /// Write the resource report (wall, cpu, max RSS, bytes out, limit hit, violations; with the
    /// network proxy, `network`: every connection attempt) as JSON.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Print the resource report to stderr when the command ends.
    #[arg(long, short)]
    pub verbose: bool,
    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        required = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(Failure::Sandbox(e)) => {
            eprintln!("airlock: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
        Err(Failure::Other(e)) => {
            eprintln!("airlock: error: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

enum Failure {
    Sandbox(airlock_sandbox::SandboxError),
    Other(anyhow::Error),
}

impl From<airlock_sandbox::SandboxError> for Failure {
    fn from(e: airlock_sandbox::SandboxError) -> Self {
        Failure::Sandbox(e)
    }
}
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

fn run_inner(args: Args) -> Result<ExitCode, Failure> {
    let cwd = std::env::current_dir()
        .map_err(|e| anyhow::anyhow!("cannot read the current directory: {e}"))?;
    let workspace = args.workspace.clone().unwrap_or_else(|| cwd.clone());
    let workspace = std::fs::canonicalize(&workspace)
        .map_err(|e| anyhow::anyhow!("workspace {}: {e}", workspace.display()))?;
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    // Before anything starts a thread (the proxy does): unshare(CLONE_NEWUSER) needs a
    // single-threaded process.
    let shadow = match (&args.shadow_upper, &args.shadow_work, &args.shadow_copy) {
        (Some(upper), Some(work), _) => Some(airlock_sandbox::shadow::ShadowMount::Overlay {
            upper: absolute(upper),
            work: absolute(work),
        }),
        (_, _, Some(copy)) => Some(airlock_sandbox::shadow::ShadowMount::CopyBind {
            copy: absolute(copy),
        }),
        _ => None,
    };
    if let Some(mount) = &shadow {
        airlock_sandbox::shadow::enter(&workspace, mount)?;
        // The old cwd still points below the mount, at the real directory.
        let _ = std::env::set_current_dir(&workspace);
    }
    let run_dir = if cwd.starts_with(&workspace) {
        cwd
    } else {
        workspace.clone()
    };

    let mut weaker = WeakerMode::default();
    for w in &args.weaker_mode {
        weaker.enable(w.trim())?;
    }
    let (deny_read_globs, protected, policy) = if args.no_policy {
        let mut deny = args.deny_read.clone();
        if deny.is_empty() {
            deny = airlock_sandbox::DEFAULT_DENY_READ
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        (
            deny,
            args.protect.clone(),
            airlock_policy::Policy::strict_default(&workspace),
        )
    } else {
        policy_lists(&workspace)?
    };

    let mut extra_read = Vec::new();
    if !args.no_default_read {
        extra_read = default_read_paths();
    }
    extra_read.extend(args.allow_read.iter().map(|p| absolute(p)));
    let extra_write: Vec<PathBuf> = args.allow_write.iter().map(|p| absolute(p)).collect();

    let timeout = match args.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            return Err(
                anyhow::anyhow!("--timeout must be a positive number of seconds, got {t}").into(),
            );
        }
        None => None,
    };
    let config = SandboxConfig {
        workspace,
        workspace_read_only: args.read_only_workspace,
        extra_read,
        extra_write,
        deny_read_globs,
        protected,
        allow_tcp_connect_ports: Vec::new(),
        limits: Limits {
            timeout,
            output_cap: args.max_output,
            cpu_secs: args.cpu,
            address_space: args.memory,
            open_files: args.nofile,
            ..Limits::default()
        },
        weaker,
        tmp_base: None,
    };
    let mut extra_domains = Vec::new();
    for d in &args.allow_domain {
        extra_domains.push(
            airlock_proxy::HostRule::parse(d)
                .map_err(|e| anyhow::anyhow!("--allow-domain: {e}"))?,
        );
    }
    // No domain can be allowed: no proxy, and the sandbox keeps every TCP port closed.
    let net_log: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let proxy = if airlock_proxy::policy_needs_proxy(&policy, &extra_domains) {
        let log = net_log.clone();
        let decide = airlock_proxy::policy_decider(std::sync::Arc::new(policy), extra_domains);
        let events: std::sync::Arc<airlock_proxy::EventFn> = std::sync::Arc::new(move |a| {
            eprintln!("airlock: net {}", airlock_proxy::format_attempt(&a));
            if let Ok(mut l) = log.lock() {
                l.push(attempt_json(&a));
            }
        });
        let mut pc = airlock_proxy::ProxyConfig::new(decide, events);
        // Test-only (docs/network.md): fixed answers so tests can point names at 127.0.0.1.
        if let Ok(spec) = std::env::var("AIRLOCK_TEST_RESOLVE") {
            pc.resolver = airlock_proxy::Resolver::parse_overrides(&spec)
                .map_err(|e| anyhow::anyhow!("AIRLOCK_TEST_RESOLVE: {e}"))?;
        }
        let p =
            airlock_proxy::Proxy::start(pc).map_err(|e| anyhow::anyhow!("network proxy: {e}"))?;
        Some(p)
    } else {
        None
    };
    let mut config = config;
    if let Some(p) = &proxy {
        config.allow_tcp_connect_ports = vec![p.port()];
    }
    let sandbox = Sandbox::prepare(config)?;

    let mut env_extra = proxy.as_ref().map(|p| p.env()).unwrap_or_default();
    for kv in &args.env {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(anyhow::anyhow!("--env expects KEY=VALUE, got `{kv}`").into());
        };
        env_extra.push((k.to_string(), v.to_string()));
    }
    for name in &args.pass_env {
        if name.is_empty() || name.contains('=') {
            return Err(anyhow::anyhow!("--pass-env expects a variable name, got `{name}`").into());
        }
        if let Some(v) = std::env::var_os(name) {
            let v = v
                .into_string()
                .map_err(|_| anyhow::anyhow!("--pass-env {name}: the value is not UTF-8"))?;
            env_extra.push((name.clone(), v));
        }
    }
    // Relay (and count) output only when a cap asks for it: an inherited TTY stays a TTY.
    let relay = args.max_output.is_some();
    let out = |fd: i32| -> Result<Stdio, Failure> {
        if !relay {
            return Ok(Stdio::Inherit);
        }
        let dup = match fd {
            1 => std::io::stdout().as_fd().try_clone_to_owned(),
            _ => std::io::stderr().as_fd().try_clone_to_owned(),
        };
        let dup: OwnedFd = dup.map_err(|e| anyhow::anyhow!("cannot duplicate fd {fd}: {e}"))?;
        Ok(Stdio::Fd(dup))
    };
    let mut argv = args.command.into_iter();
    let program = argv.next().unwrap_or_default();
    let spec = CommandSpec {
        program,
        args: argv.collect(),
        cwd: Some(run_dir),
        env_extra,
        stdin: Stdio::Inherit,
        stdout: out(1)?,
        stderr: out(2)?,
        timeout: None,
        output_cap: None,
        new_session: args.new_session,
    };

    // Like system(3): while the command runs, the terminal's Ctrl-C is the command's business.
    airlock_sandbox::ignore_terminal_signals();
    let child = sandbox.spawn(&spec)?;
    let report = child.wait()?;
    drop(sandbox);
    if let Some(p) = proxy {
        p.shutdown(Duration::from_secs(2));
    }

    for v in &report.violations {
        eprintln!("airlock: {v}");
    }
    if args.verbose {
        eprintln!("airlock: {}", summary(&report));
    }
    if let Some(path) = &args.report_json {
        let mut json = report_json(&report);
        // Connections still open 2 s after the command ended are not in the list.
        let net = net_log.lock().map(|l| l.clone()).unwrap_or_default();
        if let (Some(i), false) = (json.rfind('}'), net.is_empty()) {
            let list = serde_json::Value::Array(net).to_string();
            json.replace_range(i..i, &format!(",\"network\":{list}"));
        }
        std::fs::write(path, json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let code = report.status.code().clamp(0, 255) as u8;
    Ok(ExitCode::from(code))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Toolchains users expect to work, read-only: cargo/rustup and git's global config.
fn default_read_paths() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(home) = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
    {
        for rel in [".cargo", ".rustup", ".gitconfig", ".config/git"] {
            v.push(home.join(rel));
        }
    }
    for var in ["CARGO_HOME", "RUSTUP_HOME"] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            v.push(PathBuf::from(p));
        }
    }
    v
}

/// Deny-read and protect lists from the layered policy. A policy that fails to load stops
/// the command (fail closed); no policy at all means the built-in defaults.
fn policy_lists(
    workspace: &Path,
) -> Result<(Vec<String>, Vec<String>, airlock_policy::Policy), Failure> {
    let dirs = match crate::dirs::Dirs::from_env() {
        Ok(d) => d,
        Err(_) => {
            let deny = airlock_sandbox::DEFAULT_DENY_READ
                .iter()
                .map(|s| s.to_string())
                .collect();
            return Ok((
                deny,
                Vec::new(),
                airlock_policy::Policy::strict_default(workspace),
            ));
        }
    };
    let paths = airlock_policy::PolicyPaths {
        workspace_root: workspace.to_path_buf(),
        user_policy: dirs.user_policy(),
        managed_policy: dirs.managed_policy.clone(),
        trust_store: dirs.state.join("trust.json"),
    };
    let loaded =
        airlock_policy::load(&paths).map_err(|e| anyhow::anyhow!("cannot load the policy: {e}"))?;
    let mut deny = loaded.policy.deny_read_globs();
    if deny.is_empty() {
        deny = airlock_sandbox::DEFAULT_DENY_READ
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    let protect = loaded.policy.protected_paths();
    Ok((deny, protect, loaded.policy))
}

/// One proxy attempt for `--report-json`'s `network` list.
fn attempt_json(a: &airlock_proxy::Attempt) -> serde_json::Value {
    serde_json::json!({
        "host": a.host,
        "port": a.port,
        "via": a.via.as_str(),
        "decision": a.verdict.as_str(),
        "rule": a.rule,
        "layer": a.layer.as_str(),
        "addr": a.addr.map(|x| x.to_string()),
        "bytes_up": a.bytes_up,
        "bytes_down": a.bytes_down,
        "duration_ms": a.duration.as_secs_f64() * 1e3,
        "error": a.error,
    })
}

fn summary(r: &ExecReport) -> String {
    let out = if r.output_counted {
        format!("{} bytes out", r.bytes_out)
    } else {
        "output not counted".into()
    };
    let killed = r
        .killed_by
        .map(|l| format!(", killed by {}", l.as_str()))
        .unwrap_or_default();
    format!(
        "exit {} | wall {:.3}s | user {:.3}s sys {:.3}s | max RSS {} KiB | {out}{killed}",
        r.status.code(),
        r.wall.as_secs_f64(),
        r.user_cpu.as_secs_f64(),
        r.sys_cpu.as_secs_f64(),
        r.max_rss_kb
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn report_json(r: &ExecReport) -> String {
    let (kind, value) = match r.status {
        airlock_sandbox::ExitStatusKind::Exited(c) => ("exited", c),
        airlock_sandbox::ExitStatusKind::Signaled(s) => ("signaled", s),
    };
    let mut buf = Vec::new();
    let violations: Vec<String> = r.violations.iter().map(|v| json_str(v)).collect();
    let _ = writeln!(
        buf,
        "{{\"status\":{{\"kind\":\"{kind}\",\"value\":{value}}},\"exit_code\":{},\"wall_ms\":{:.3},\"user_cpu_ms\":{:.3},\"sys_cpu_ms\":{:.3},\"max_rss_kb\":{},\"bytes_out\":{},\"output_counted\":{},\"killed_by\":{},\"violations\":[{}]}}",
        r.status.code(),
        r.wall.as_secs_f64() * 1e3,
        r.user_cpu.as_secs_f64() * 1e3,
        r.sys_cpu.as_secs_f64() * 1e3,
        r.max_rss_kb,
        r.bytes_out,
        r.output_counted,
        r.killed_by
            .map(|l| json_str(l.as_str()))
            .unwrap_or_else(|| "null".into()),
        violations.join(",")
    );
    String::from_utf8_lossy(&buf).into_owned()
}
