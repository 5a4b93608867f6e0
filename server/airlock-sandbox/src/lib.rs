//! airlock-sandbox: run a command so that it can only touch its workspace.
//!
//! Guarantees (each enforced by the kernel, not by the sandboxed program's cooperation):
//! - **Filesystem** (Landlock): read+execute on system dirs and configured toolchain dirs,
//!   read-write on the workspace, the `extra_write` paths and a private per-command TMPDIR
//!   (on tmpfs, removed afterwards). Nothing else is readable, in particular not `$HOME`.
//!   Deny-read globs (`.env*` by default) are unreadable inside the workspace. With
//!   [`SandboxConfig::workspace_read_only`] the workspace is read-only too (Landlock grants
//!   it read rights only and, where user namespaces work, its mount stays read-only): the
//!   server runs the agent process itself this way, so its edits can only arrive as proposals.
//! - **Protected paths** (`.git/hooks/`, `.git/config`, `.airlock/`, …) can't be changed:
//!   read-only bind mounts in a private user+mount namespace where user namespaces work, and
//!   an integrity snapshot that is checked and restored after every descendant died (always,
//!   except when Landlock keeps the whole workspace read-only: then nothing can have changed,
//!   and a restore would only undo the user's own edits made on the host meanwhile).
//! - **Network**: TCP bind/connect denied by Landlock (ABI ≥ 4; seccomp blocks IPv4/IPv6
//!   sockets entirely below that), UDP/raw/other socket families denied by seccomp, abstract
//!   unix sockets and signals scoped to the sandbox (Landlock ABI ≥ 6).
//! - **Hygiene**: no_new_privs, capabilities dropped, seccomp denylist, environment scrubbed
//!   to an allowlist, fds above 2 closed, every descendant killed when the command ends
//!   (a subreaper supervisor), rlimits, timeout and output cap.
//! - **Fail closed**: if the kernel enforces less than a rule needs, [`Sandbox::prepare`]
//!   returns an error naming what is missing and the [`WeakerMode`] flag that opts out of it.
//!
//! The prepared [`Sandbox`] is built once (directory handles opened, seccomp compiled) and
//! spawns many commands cheaply; the CLI (`airlock exec`) and the server's agent terminals use
//! the same code path.

mod env;
mod install;
mod landlock_rules;
mod probe;
mod protect;
mod seccomp;
pub mod shadow;
mod spawn;
mod sys;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

pub use env::{ENV_ALLOWLIST, is_secret_name, scrub_env};
pub use install::install_dirs;
pub use probe::{KernelSupport, Protection, probe};
pub use protect::{BUILTIN_PROTECTED, DEFAULT_DENY_READ};
pub use spawn::{Sandbox, SandboxedChild};

/// Ignores SIGINT and SIGQUIT in the calling process, as `system(3)` does while a foreground
/// command runs: Ctrl-C then reaches only the command (whose dispositions are reset).
pub fn ignore_terminal_signals() {
    // SAFETY: setting a disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
}

/// What the sandbox is allowed to touch. Paths must be absolute.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Read-write root (read-only with `workspace_read_only`); the command's cwd must be inside it.
    pub workspace: PathBuf,
    /// Grant the workspace read rights only (deny-read files stay unreadable). The private
    /// TMPDIR and `extra_write` stay writable. Used for the agent process (`airlock exec
    /// --read-only-workspace`).
    pub workspace_read_only: bool,
    /// Extra read+execute paths (toolchains: `~/.cargo`, `~/.rustup`, …). Missing ones are skipped.
    pub extra_read: Vec<PathBuf>,
    /// Extra read-write paths outside the workspace. Missing ones are skipped.
    pub extra_write: Vec<PathBuf>,
    /// Deny-read rules relative to the workspace, with the policy's pattern semantics
    /// (`airlock_glob`): `.env*` at any depth, `/secret` only at the root, `dir/` the whole
    /// directory. Ordered, gitignore-style: the last matching pattern decides and `!pattern`
    /// is an exception that keeps its matches readable (`Policy::deny_read_globs` gives the
    /// policy's rules in this form, `allow_read` included).
    pub deny_read_globs: Vec<String>,
    /// Extra protected paths relative to the workspace (added to [`BUILTIN_PROTECTED`]).
    /// Literal paths and `dir/**` are supported; other globs protect their existing matches.
    pub protected: Vec<String>,
    /// Hook for the network proxy: TCP connect to these ports stays allowed. Landlock rules are
    /// per port (not per address), see docs/security.md.
    pub allow_tcp_connect_ports: Vec<u16>,
    pub limits: Limits,
    /// What the user explicitly opted out of.
    pub weaker: WeakerMode,
    /// Base directory for per-command TMPDIRs (tmpfs: `$XDG_RUNTIME_DIR` or `/dev/shm`).
    /// `None` picks `$XDG_RUNTIME_DIR` if it is set and a directory, else `/dev/shm`.
    pub tmp_base: Option<PathBuf>,
}

/// Resource limits. `None` means "not limited".
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Default wall-clock timeout (a [`CommandSpec::timeout`] overrides it).
    pub timeout: Option<Duration>,
    /// Default cap on stdout+stderr bytes when they are piped (a [`CommandSpec::output_cap`] overrides it).
    pub output_cap: Option<u64>,
    /// RLIMIT_CPU in seconds.
    pub cpu_secs: Option<u64>,
    /// RLIMIT_AS in bytes.
    pub address_space: Option<u64>,
    /// RLIMIT_FSIZE in bytes.
    pub file_size: Option<u64>,
    /// RLIMIT_NOFILE.
    pub open_files: Option<u64>,
    /// RLIMIT_NPROC (counts every process of the user, not only the sandbox's).
    pub processes: Option<u64>,
}

/// Protections the user explicitly gave up because this kernel can't enforce them.
/// Every field is off by default: without the opt-in, [`Sandbox::prepare`] refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeakerMode {
    /// `--weaker-mode no-landlock`: run without Landlock (kernel lacks it). The filesystem is then
    /// only protected by Unix permissions; seccomp and process hygiene still apply. Implies
    /// `no-signal-scope`.
    pub no_landlock: bool,
    /// `--weaker-mode no-signal-scope`: Landlock ABI < 6, so signals to the user's processes
    /// outside the sandbox are not blocked.
    pub no_signal_scope: bool,
    /// `--weaker-mode unix-sockets`: allow `socket(AF_UNIX)`. Landlock < ABI 9 can't restrict
    /// connecting to pathname sockets, so the host's sockets (docker, ssh-agent, D-Bus) become
    /// reachable; abstract sockets stay scoped on ABI ≥ 6.
    pub unix_sockets: bool,
}

impl WeakerMode {
    /// Flag names accepted by `--weaker-mode`, with what each gives up.
    pub const FLAGS: &'static [(&'static str, &'static str)] = &[
        (
            "no-landlock",
            "run without Landlock filesystem/network rules (kernel < 5.13 or Landlock disabled)",
        ),
        (
            "no-signal-scope",
            "allow signals to your processes outside the sandbox (Landlock ABI < 6)",
        ),
        (
            "unix-sockets",
            "allow unix sockets; host pathname sockets become reachable (Landlock ABI < 9)",
        ),
    ];

    /// Sets one flag by its `--weaker-mode` name.
    pub fn enable(&mut self, name: &str) -> Result<(), SandboxError> {
        match name {
            "no-landlock" => self.no_landlock = true,
            "no-signal-scope" => self.no_signal_scope = true,
            "unix-sockets" => self.unix_sockets = true,
            other => {
                return Err(SandboxError::Config(format!(
                    "unknown weaker mode `{other}` (known: no-landlock, no-signal-scope, unix-sockets)"
                )));
            }
        }
        Ok(())
    }

    /// The flag names that are set.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.no_landlock {
            v.push("no-landlock");
        }
        if self.no_signal_scope {
            v.push("no-signal-scope");
        }
        if self.unix_sockets {
            v.push("unix-sockets");
        }
        v
    }
}

/// Where a standard stream of the command goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// Share the caller's stream (a TTY stays a TTY).
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe; the caller's end is in [`SandboxedChild`]. Output pipes are relayed so that
    /// bytes are counted and the output cap is enforced.
    Pipe,
    /// Relay the command's output into this fd, counting bytes (output streams only; for
    /// stdin the fd is given to the command as is).
    Fd(OwnedFd),
}

/// One command to run in a prepared [`Sandbox`].
#[derive(Debug, Default)]
pub struct CommandSpec {
    /// Program name (looked up in the sandbox's `PATH`) or path.
    pub program: String,
    pub args: Vec<String>,
    /// Working directory, inside the workspace. `None` means the workspace root.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables set after scrubbing (the caller chose them explicitly).
    pub env_extra: Vec<(String, String)>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Overrides [`Limits::timeout`].
    pub timeout: Option<Duration>,
    /// Overrides [`Limits::output_cap`].
    pub output_cap: Option<u64>,
    /// Start a new session (no controlling terminal). The server's terminals want this; an
    /// interactive `airlock exec` keeps the caller's terminal instead.
    pub new_session: bool,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatusKind {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatusKind {
    /// Shell convention: the exit code, or `128 + N` for signal N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatusKind::Exited(c) => c,
            ExitStatusKind::Signaled(s) => 128 + s,
        }
    }
}

/// The limit that ended the command, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Timeout,
    OutputCap,
    CpuTime,
    /// [`SandboxedChild::kill`] was called.
    Killed,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Timeout => "timeout",
            Limit::OutputCap => "output_cap",
            Limit::CpuTime => "cpu_time",
            Limit::Killed => "killed",
        }
    }
}

/// Resource use and outcome of one command (the whole process tree).
#[derive(Debug, Clone)]
pub struct ExecReport {
    pub status: ExitStatusKind,
    pub wall: Duration,
    pub user_cpu: Duration,
    pub sys_cpu: Duration,
    /// Largest resident set of any process of the tree, in KiB.
    pub max_rss_kb: u64,
    /// Bytes written to stdout+stderr; only counted for relayed streams (`Pipe`/`Fd`).
    pub bytes_out: u64,
    /// Whether `bytes_out` was counted (false when the output went straight to an inherited stream).
    pub output_counted: bool,
    pub killed_by: Option<Limit>,
    /// Protected paths that were changed by the command and restored.
    pub violations: Vec<String>,
}

/// Why the sandbox could not run the command. The CLI maps these to exit codes 125/126/127.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel lacks a feature a rule needs; names the feature and the opt-in flag.
    #[error("{what} is not available on this kernel ({detail}); refusing to run{hint}")]
    Unsupported {
        what: String,
        detail: String,
        hint: String,
    },
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("{context}: {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox setup failed in the child at step `{step}`: {source}")]
    Setup {
        step: &'static str,
        source: std::io::Error,
    },
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: cannot execute: {source}")]
    NotExecutable {
        program: String,
        source: std::io::Error,
    },
    #[error("landlock: {0}")]
    Landlock(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
}

impl SandboxError {
    /// Shell-like exit code for the CLI: 127 not found, 126 not executable, 125 setup failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            SandboxError::NotFound { .. } => 127,
            SandboxError::NotExecutable { .. } => 126,
            _ => 125,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        SandboxError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
