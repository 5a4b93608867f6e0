//! Shared fixture for the sandbox suites: temp dirs reachable by the unprivileged test user,
//! the mode × user matrix, and helpers that run the real `airlock` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const TEST_USER: &str = "airlock-test";

/// Kernel feature set the sandbox is made to use (through the test-only knobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything this kernel has (Landlock ABI 7, user namespaces).
    Default,
    /// User namespaces unavailable (Ubuntu's AppArmor restriction): fallbacks for protected
    /// paths and deny-read.
    NoUserns,
    /// Landlock ABI 3 (Linux 6.2): no TCP rules (seccomp blocks IP sockets), no scopes.
    Abi3,
    /// Landlock ABI 1 (Linux 5.13) and no user namespaces: the weakest supported setup.
    Abi1NoUserns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Current,
    /// `airlock-test` via setpriv (only when the suite runs as root).
    Unprivileged,
}

#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub mode: Mode,
    pub user: User,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:?} as {:?}]", self.mode, self.user)
    }
}

impl Mode {
    pub fn has_userns(self) -> bool {
        matches!(self, Mode::Default | Mode::Abi3)
    }
    pub fn has_signal_scope(self) -> bool {
        matches!(self, Mode::Default | Mode::NoUserns)
    }

    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Mode::Default => vec![],
            Mode::NoUserns => vec![("AIRLOCK_TEST_NO_USERNS", "1")],
            Mode::Abi3 => vec![("AIRLOCK_TEST_LANDLOCK_ABI", "3")],
            Mode::Abi1NoUserns => vec![
                ("AIRLOCK_TEST_LANDLOCK_ABI", "1"),
                ("AIRLOCK_TEST_NO_USERNS", "1"),
            ],
        }
    }
    pub fn flags(self) -> Vec<&'static str> {
        match self {
            Mode::Default | Mode::NoUserns => vec![],
            Mode::Abi3 | Mode::Abi1NoUserns => vec!["--weaker-mode", "no-signal-scope"],
        }
    }
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Creates the unprivileged test user once (root only).
fn ensure_user() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        if !is_root() {
            return false;
        }
        let exists = || {
            Command::new("id")
                .arg(TEST_USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if exists() {
            return true;
        }
        // Test binaries run in parallel (nextest): another one may create the user first.
        let _ = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", TEST_USER])
            .status();
        assert!(
            exists(),
            "running as root but could not create the test user {TEST_USER}"
        );
        true
    })
}

pub fn cases(modes: &[Mode]) -> Vec<Case> {
    let mut users = vec![User::Current];
    if ensure_user() {
        users.push(User::Unprivileged);
    }
    let mut v = Vec::new();
    for &user in &users {
        for &mode in modes {
            v.push(Case { mode, user });
        }
    }
    v
}

pub const ALL_MODES: &[Mode] = &[
    Mode::Default,
    Mode::NoUserns,
    Mode::Abi3,
    Mode::Abi1NoUserns,
];

pub fn for_each_case(f: impl Fn(Case)) {
    for case in cases(ALL_MODES) {
        f(case);
    }
}

pub fn airlock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("airlock")
}

pub struct RunResult {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

pub struct Fixture {
    pub case: Case,
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub ws: PathBuf,
    pub home: PathBuf,
    pub out: PathBuf,
}

impl Fixture {
    pub fn new(case: Case) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir_in("/tmp")
            .unwrap();
        let root = dir.path().to_path_buf();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ws = root.join("ws");
        let home = root.join("home");
        let out = root.join("out");
        for d in [&ws, &home, &out, &root.join("xdg")] {
            std::fs::create_dir_all(d).unwrap();
        }
        Fixture {
            case,
            _dir: dir,
            root,
            ws,
            home,
            out,
        }
    }

    /// Hands every file of the fixture to the user the case runs as.
    pub fn chown_all(&self) {
        if self.case.user == User::Unprivileged {
            let st = Command::new("chown")
                .args(["-R", &format!("{TEST_USER}:{TEST_USER}")])
                .arg(&self.root)
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    pub fn tag(&self) -> String {
        self.root
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    pub fn base_command(&self, program: &Path) -> Command {
        let mut c = if self.case.user == User::Unprivileged {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid",
                TEST_USER,
                "--regid",
                TEST_USER,
                "--clear-groups",
                "--",
            ])
            .arg(program);
            c
        } else {
            Command::new(program)
        };
        c.current_dir(&self.ws)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.root.join("xdg"))
            .env("XDG_STATE_HOME", self.root.join("xdg"))
            .env(
                "AIRLOCK_MANAGED_POLICY",
                self.root.join("no-managed-policy.toml"),
            )
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("CARGO_HOME")
            .env_remove("RUSTUP_HOME")
            .env_remove("AIRLOCK_TEST_NO_USERNS")
            .env_remove("AIRLOCK_TEST_LANDLOCK_ABI")
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
        for (k, v) in self.case.mode.env() {
            c.env(k, v);
        }
        c
    }

    /// `airlock exec [mode flags] [flags] -- argv…` in the workspace.
    pub fn exec_argv(&self, flags: &[&str], argv: &[&str]) -> RunResult {
        let mut c = self.base_command(&airlock_bin());
        c.arg("exec")
            .arg("--workspace")
            .arg(&self.ws)
            .args(self.case.mode.flags())
            .args(flags)
            .arg("--")
            .args(argv);
        run(c)
    }

    /// `airlock exec -- sh -c SCRIPT` with extra (secret) environment variables.
    pub fn exec(&self, env: &[(&str, &str)], script: &str) -> RunResult {
        let mut c = self.base_command(&airlock_bin());
        c.arg("exec")
            .arg("--workspace")
            .arg(&self.ws)
            .args(self.case.mode.flags())
            .args(["--", "sh", "-c", script]);
        for (k, v) in env {
            c.env(k, v);
        }
        run(c)
    }

    /// Runs `PRELUDE; exec airlock exec … -- sh -c SCRIPT` through a shell (to inherit fds).
    pub fn exec_wrapped(&self, prelude: &str, script: &str) -> RunResult {
        let mut c = self.base_command(Path::new("/bin/sh"));
        c.arg("-c")
            .arg(format!("{prelude}; exec \"$@\""))
            .arg("sh")
            .arg(airlock_bin());
        c.arg("exec")
            .arg("--workspace")
            .arg(&self.ws)
            .args(self.case.mode.flags())
            .args(["--", "sh", "-c", script]);
        run(c)
    }

    /// The same script without the sandbox (controls that prove an attack would work).
    pub fn run_unsandboxed(&self, script: &str) -> RunResult {
        let mut c = self.base_command(Path::new("/bin/sh"));
        c.args(["-c", script]);
        run(c)
    }

    /// A host process owned by the case's user (victim for signal/ptrace attempts).
    pub fn spawn_as_case_user(&self, script: &str) -> Child {
        let mut c = self.base_command(Path::new("/bin/sh"));
        c.args(["-c", &format!("exec {script}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = c.spawn().unwrap();
        // Let setpriv exec into the target program.
        std::thread::sleep(Duration::from_millis(100));
        child
    }
}

pub fn run(mut c: Command) -> RunResult {
    let start = Instant::now();
    let out = c.stdin(Stdio::null()).output().expect("run airlock");
    RunResult {
        code: out.status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&out.status).unwrap_or(0)
        }),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall: start.elapsed(),
    }
}

pub fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode()
}

/// Pids whose command line contains `tag` (excluding this test process).
pub fn processes_matching(tag: &str) -> Vec<u32> {
    let me = std::process::id();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(tag) {
            v.push(pid);
        }
    }
    v
}

/// Runs a command as the case's user outside the sandbox (fixture setup such as `git init`).
pub fn as_user(case: Case, dir: &Path, args: &[&str]) {
    let mut c = if case.user == User::Unprivileged {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            TEST_USER,
            "--regid",
            TEST_USER,
            "--clear-groups",
            "--",
        ]);
        c.args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    let out = c.current_dir(dir).env("HOME", dir).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
