//! The prepared sandbox and the spawn path.
//!
//! Process layout per command:
//! ```text
//! caller (server or CLI) ── clone(CLONE_VM) ──> supervisor (subreaper)
//!                                   ── clone(CLONE_VM|CLONE_VFORK) ──> command ── exec
//! ```
//! Neither child copies the caller's memory (a fork of a large server copies its page tables,
//! which was most of a spawn's cost): both run on stacks of their own inside the caller's
//! address space until the command execs. They therefore make raw system calls only
//! (`crate::sys`: no allocation, no locks, no `errno`), the caller blocks every signal around
//! the clone so none of its handlers can run in them, and the supervisor copies what it needs
//! from the plan before the command execs (after that the caller frees the plan). The
//! supervisor reaps every orphaned descendant, enforces the timeout and, when the command ends
//! or a kill is requested, SIGKILLs every remaining descendant (setsid/double-forked daemons
//! included: they are re-parented to the supervisor). It then reports the command's status
//! and the tree's resource use on a pipe. Everything the children need is prepared before the
//! clone.

use std::ffi::{CString, OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use landlock::{AccessFs, BitFlags};

use crate::landlock_rules::{self, LandlockPlan};
use crate::probe::{self, KernelSupport};
use crate::protect::{self, ProtectSpec, Scan, Snapshot};
use crate::seccomp::{self, Filter, SeccompNeeds};
use crate::sys;
use crate::{
    CommandSpec, ExecReport, ExitStatusKind, Limit, SandboxConfig, SandboxError, Stdio, env,
};

/// A sandbox prepared once (ruleset handles opened, seccomp compiled, workspace scanned) and
/// used for any number of commands. `Send + Sync`: spawn from any thread.
pub struct Sandbox {
    config: SandboxConfig,
    kernel: KernelSupport,
    landlock: Option<LandlockPlan>,
    filter: Filter,
    protect: ProtectSpec,
    scan: Scan,
    tmp_base: PathBuf,
    empty_file: PathBuf,
    empty_dir: PathBuf,
    env_base: Vec<(OsString, OsString)>,
    counter: AtomicU64,
    /// Whether read-granted system/toolchain rules cover the workspace (then the per-entry
    /// deny-read fallback can't work).
    workspace_under_read_rule: bool,
    /// Ruleset for the user-namespace path, built on first use: workspace + TMPDIR base. Each
    /// command's mount namespace shows only its own TMPDIR at the base path, so one ruleset
    /// serves every command and no rule is added per spawn.
    shared_ruleset: OnceLock<Result<OwnedFd, String>>,
}

/// A running sandboxed command. Dropping it without [`SandboxedChild::wait`] kills the tree,
/// waits for it and restores protected paths.
pub struct SandboxedChild {
    supervisor: libc::pid_t,
    pid: u32,
    status_fd: OwnedFd,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    relays: Vec<JoinHandle<()>>,
    bytes_out: Arc<AtomicU64>,
    output_counted: bool,
    kill_reason: Arc<AtomicU8>,
    start: Instant,
    snapshot: Option<Snapshot>,
    tmpdir: PathBuf,
    waited: bool,
    /// The children's stacks: reused or freed only once the supervisor is reaped.
    stacks: Option<ChildStacks>,
}

const REASON_NONE: u8 = 0;
const REASON_OUTPUT: u8 = 1;
const REASON_KILL: u8 = 2;

impl Sandbox {
    /// Checks the kernel (fail closed), opens directory handles, compiles seccomp, scans the
    /// workspace for deny-read files and protected globs, creates the TMPDIR base.
    pub fn prepare(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let mut config = config;
        if !config.workspace.is_absolute() {
            return Err(SandboxError::Config(format!(
                "workspace must be absolute: {}",
                config.workspace.display()
            )));
        }
        config.workspace = std::fs::canonicalize(&config.workspace)
            .map_err(|e| SandboxError::io("cannot open workspace", &config.workspace, e))?;
        if !config.workspace.is_dir() {
            return Err(SandboxError::Config(format!(
                "workspace is not a directory: {}",
                config.workspace.display()
            )));
        }
        let kernel = probe::probe_landlock_only();
        let abi = kernel.landlock_abi;
        let weaker = config.weaker;
        if !kernel.seccomp {
            return Err(SandboxError::Unsupported {
                what: "seccomp".into(),
                detail: "prctl(PR_GET_SECCOMP) failed; needs CONFIG_SECCOMP_FILTER".into(),
                hint: " (there is no weaker mode without seccomp)".into(),
            });
        }
        if abi < 1 && !weaker.no_landlock {
            return Err(SandboxError::Unsupported {
                what: "Landlock".into(),
                detail: format!(
                    "kernel {} reports no Landlock ABI; needs Linux >= 5.13 with `landlock` in the lsm= boot parameter",
                    kernel.kernel_release
                ),
                hint: "; pass `--weaker-mode no-landlock` to run with seccomp and process hygiene only".into(),
            });
        }
        if !config.allow_tcp_connect_ports.is_empty() && abi < 4 {
            return Err(SandboxError::Unsupported {
                what: "Landlock TCP rules (ABI 4, Linux 6.7)".into(),
                detail: format!(
                    "Landlock ABI is {abi}; allowing TCP ports {:?} needs them",
                    config.allow_tcp_connect_ports
                ),
                hint: "; run without allowed ports (all TCP is then blocked by seccomp)".into(),
            });
        }
        if abi < 6 && !(weaker.no_signal_scope || weaker.no_landlock) {
            return Err(SandboxError::Unsupported {
                what: "Landlock signal scoping (ABI 6, Linux 6.12)".into(),
                detail: format!("Landlock ABI is {abi}"),
                hint: "; pass `--weaker-mode no-signal-scope` to allow signals to your processes outside the sandbox".into(),
            });
        }
        let needs = SeccompNeeds {
            block_inet: abi < 4,
            block_truncate: abi < 3,
            block_unix: !(abi >= 9 || weaker.unix_sockets),
        };
        let filter = seccomp::compile(needs)?;

        let mut workspace_under_read_rule = false;
        let landlock = if abi >= 1 {
            let mut plan = LandlockPlan::new(abi, &config.allow_tcp_connect_ports);
            plan.add_system()?;
            let all = plan.all();
            for p in &config.extra_read {
                plan.add_read(p)?;
            }
            for p in &config.extra_write {
                plan.add(p, all)?;
            }
            let ws = &config.workspace;
            workspace_under_read_rule = landlock_rules::SYSTEM_READ
                .iter()
                .any(|s| ws.starts_with(s))
                || config
                    .extra_read
                    .iter()
                    .chain(&config.extra_write)
                    .any(|p| ws.starts_with(p));
            Some(plan)
        } else {
            None
        };

        let deny: Vec<String> = config.deny_read_globs.clone();
        let protect = protect::protect_spec(&config.protected)?;
        let scan = protect::scan(&config.workspace, &deny, &protect)?;

        let tmp_base = make_tmp_base(config.tmp_base.as_deref())?;
        let empty_file = tmp_base.join("empty");
        let empty_dir = tmp_base.join("emptydir");
        std::fs::write(&empty_file, b"")
            .map_err(|e| SandboxError::io("cannot create", &empty_file, e))?;
        std::fs::set_permissions(&empty_file, std::fs::Permissions::from_mode(0o444))
            .map_err(|e| SandboxError::io("cannot chmod", &empty_file, e))?;
        // `mnt/tmp` is where each command's private TMPDIR appears in its mount namespace;
        // the shared Landlock rule is on `mnt` (Landlock skips the mount point itself).
        let mnt_tmp = tmp_base.join("mnt/tmp");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&mnt_tmp)
            .map_err(|e| SandboxError::io("cannot create", &mnt_tmp, e))?;
        std::fs::DirBuilder::new()
            .mode(0o555)
            .create(&empty_dir)
            .map_err(|e| SandboxError::io("cannot create", &empty_dir, e))?;

        Ok(Sandbox {
            env_base: env::scrub_env(std::env::vars_os()),
            config,
            kernel,
            landlock,
            filter,
            protect,
            scan,
            tmp_base,
            empty_file,
            empty_dir,
            counter: AtomicU64::new(0),
            shared_ruleset: OnceLock::new(),
            workspace_under_read_rule,
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// What the kernel offered when the sandbox was prepared (user namespaces not probed).
    pub fn kernel(&self) -> &KernelSupport {
        &self.kernel
    }

    /// Deny-read matches found in the workspace when it was prepared (absolute paths).
    pub fn denied_paths(&self) -> Vec<PathBuf> {
        self.scan.denied.iter().map(|(p, _)| p.clone()).collect()
    }

    /// Starts `cmd`. Blocks until the command has exec'd (or failed to).
    pub fn spawn(&self, cmd: &CommandSpec) -> Result<SandboxedChild, SandboxError> {
        let userns = probe::userns_allowed();
        match self.spawn_inner(cmd, userns) {
            // User namespaces are tried for real instead of probed (a probe costs a fork):
            // if setting one up fails before anything ran, remember it and use the fallback.
            Err(SandboxError::Setup { step, .. }) if userns && NAMESPACE_STEPS.contains(&step) => {
                probe::mark_userns_unusable();
                self.spawn_inner(cmd, false)
            }
            other => other,
        }
    }

    fn spawn_inner(&self, cmd: &CommandSpec, userns: bool) -> Result<SandboxedChild, SandboxError> {
        let ws = &self.config.workspace;
        let cwd = match &cmd.cwd {
            None => ws.clone(),
            Some(c) => {
                let c = if c.is_absolute() {
                    c.clone()
                } else {
                    ws.join(c)
                };
                let c = std::fs::canonicalize(&c)
                    .map_err(|e| SandboxError::io("cannot open working directory", &c, e))?;
                if !c.starts_with(ws) {
                    return Err(SandboxError::Config(format!(
                        "working directory {} is outside the workspace {}",
                        c.display(),
                        ws.display()
                    )));
                }
                c
            }
        };

        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmpdir = self.tmp_base.join(format!("cmd-{n}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmpdir)
            .map_err(|e| SandboxError::io("cannot create TMPDIR", &tmpdir, e))?;
        let guard = TmpGuard(Some(tmpdir.clone()));

        // Protected paths: snapshot (always) and, where user namespaces work, bind mounts.
        let snapshot = Snapshot::take(ws, &self.protect, &self.scan.protected_glob_matches)?;
        let denied_now: Vec<&(PathBuf, bool)> = self
            .scan
            .denied
            .iter()
            .filter(|(p, _)| std::fs::symlink_metadata(p).is_ok())
            .collect();
        // The namespace is always wanted where it works: besides protected paths and deny-read
        // binds it makes everything outside the writable roots read-only for chmod & co.

        let mounts = if userns {
            self.mount_plan(&snapshot, &denied_now)?
        } else {
            Vec::new()
        };

        // Landlock: static handles + workspace + TMPDIR.
        let ws_access = match &self.landlock {
            Some(plan) if self.config.workspace_read_only => plan.read_exec(),
            Some(plan) => plan.all(),
            None => BitFlags::empty(),
        };
        let mut shared_fd: RawFd = -1;
        let ruleset = match &self.landlock {
            None => None,
            Some(plan) if userns => {
                let r = self.shared_ruleset.get_or_init(|| {
                    let ws_fd = landlock_rules::open_path(ws)
                        .map_err(|e| format!("{}: {e}", ws.display()))?;
                    let mnt = self.tmp_base.join("mnt");
                    let base_fd = landlock_rules::open_path(&mnt)
                        .map_err(|e| format!("{}: {e}", mnt.display()))?;
                    let all = plan.all();
                    plan.build(&[(ws_fd.as_fd(), ws_access), (base_fd.as_fd(), all)])
                        .map_err(|e| e.to_string())
                });
                match r {
                    Ok(fd) => shared_fd = fd.as_raw_fd(),
                    Err(e) => return Err(SandboxError::Landlock(e.clone())),
                }
                None
            }
            Some(plan) => {
                let all = plan.all();
                let tmp_fd = landlock_rules::open_path(&tmpdir)
                    .map_err(|e| SandboxError::io("cannot open", &tmpdir, e))?;
                let mut owned: Vec<(OwnedFd, BitFlags<AccessFs>)> = Vec::new();
                if !userns && !denied_now.is_empty() {
                    if self.workspace_under_read_rule {
                        return Err(SandboxError::Unsupported {
                            what: "deny-read inside this workspace".into(),
                            detail: format!(
                                "user namespaces are unavailable and {} lies under a read-only allowed directory, so Landlock can't hide {}",
                                ws.display(),
                                denied_now[0].0.display()
                            ),
                            hint: "; move the workspace or remove the deny-read files".into(),
                        });
                    }
                    per_entry_rules(plan, ws, ws_access, &denied_now, &mut owned)?;
                } else {
                    let fd = landlock_rules::open_path(ws)
                        .map_err(|e| SandboxError::io("cannot open", ws, e))?;
                    owned.push((fd, ws_access));
                }
                owned.push((tmp_fd, all));
                let borrowed: Vec<(BorrowedFd<'_>, BitFlags<AccessFs>)> =
                    owned.iter().map(|(f, a)| (f.as_fd(), *a)).collect();
                Some(plan.build(&borrowed)?)
            }
        };

        // Environment.
        let mut envs: Vec<(OsString, OsString)> = self.env_base.clone();
        // In a mount namespace the private TMPDIR is mounted over the base path.
        let tmp_os = if userns {
            self.tmp_base.join("mnt/tmp").into_os_string()
        } else {
            tmpdir.clone().into_os_string()
        };
        for k in ["TMPDIR", "TMP", "TEMP"] {
            envs.retain(|(n, _)| n != k);
            envs.push((k.into(), tmp_os.clone()));
        }
        for (k, v) in &cmd.env_extra {
            envs.retain(|(n, _)| n != OsStr::new(k));
            envs.push((k.into(), v.into()));
        }
        if !envs.iter().any(|(k, _)| k == "PATH") {
            envs.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
        }
        let path_var = envs
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let program = resolve_program(&cmd.program, &path_var, &cwd)?;

        let c = |s: &OsStr| {
            CString::new(s.as_bytes())
                .map_err(|_| SandboxError::Config(format!("NUL byte in {s:?}")))
        };
        let prog_c = c(program.as_os_str())?;
        let mut argv_c = vec![c(OsStr::new(&cmd.program))?];
        for a in &cmd.args {
            argv_c.push(c(OsStr::new(a))?);
        }
        let mut env_c = Vec::new();
        for (k, v) in &envs {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            env_c.push(c(&kv)?);
        }
        let cwd_c = c(cwd.as_os_str())?;

        // Standard streams.
        let cap = cmd.output_cap.or(self.config.limits.output_cap);
        let kill_reason = Arc::new(AtomicU8::new(REASON_NONE));
        let bytes_out = Arc::new(AtomicU64::new(0));
        let (stdin_child, stdin_parent) = stdin_fds(&cmd.stdin)?;
        let (stdout_child, stdout_parent, stdout_relay) = output_fds(&cmd.stdout)?;
        let (stderr_child, stderr_parent, stderr_relay) = output_fds(&cmd.stderr)?;
        let output_counted = stdout_relay.is_some() || stderr_relay.is_some();

        let (err_r, err_w) = pipe()?;
        let (status_r, status_w) = pipe()?;

        let uid = unsafe { libc::geteuid() };
        let gid = unsafe { libc::getegid() };
        let timeout = cmd.timeout.or(self.config.limits.timeout);
        let stacks = ChildStacks::get()?;
        let plan = ChildPlan {
            program: prog_c,
            argv_ptrs: ptrs(&argv_c),
            envp_ptrs: ptrs(&env_c),
            cwd: cwd_c,
            stdio: [
                stdin_child.as_ref().map_or(-1, |f| f.as_raw_fd()),
                stdout_child.as_ref().map_or(-1, |f| f.as_raw_fd()),
                stderr_child.as_ref().map_or(-1, |f| f.as_raw_fd()),
            ],
            userns: if userns {
                // A read-only workspace simply stays on the read-only mount.
                let mut writable = Vec::new();
                if !self.config.workspace_read_only {
                    writable.push(c(ws.as_os_str())?);
                }
                for p in &self.config.extra_write {
                    if let Ok(p) = std::fs::canonicalize(p) {
                        writable.push(c(p.as_os_str())?);
                    }
                }
                Some(UsernsPlan {
                    uid_map: CString::new(format!("{uid} {uid} 1\n")).unwrap_or_default(),
                    gid_map: CString::new(format!("{gid} {gid} 1\n")).unwrap_or_default(),
                    try_mount_ns_alone: uid == 0,
                    writable,
                    tmp_over: (
                        c(tmpdir.as_os_str())?,
                        c(self.tmp_base.join("mnt/tmp").as_os_str())?,
                    ),
                })
            } else {
                None
            },
            mounts,
            ruleset: ruleset.as_ref().map_or(shared_fd, |f| f.as_raw_fd()),
            filter: &self.filter.program,
            rlimits: rlimits(&self.config.limits),
            err_w: err_w.as_raw_fd(),
            status_w: status_w.as_raw_fd(),
            new_session: cmd.new_session,
            parent: unsafe { libc::getpid() },
            timeout_us: timeout.map_or(0, |t| t.as_micros().clamp(1, i64::MAX as u128) as i64),
            command_stack: stacks.command_top(),
        };
        let start = Instant::now();

        // SAFETY: the supervisor runs `supervisor_entry` on its own stack, making raw system
        // calls on `plan` (alive until the command exec'd: we wait for that below) and its
        // own stack. Every signal is blocked around the clone so that it starts with all of
        // them blocked and no handler of ours ever runs in it.
        let (pid, clone_err) = unsafe {
            let mut old: sys::KSigset = 0;
            sys::sigprocmask_old(libc::SIG_SETMASK, &!0, &mut old);
            let pid = libc::clone(
                supervisor_entry,
                stacks.supervisor_top(),
                libc::CLONE_VM | libc::SIGCHLD,
                &plan as *const ChildPlan<'_> as *mut libc::c_void,
            );
            let err = std::io::Error::last_os_error();
            sys::sigprocmask(libc::SIG_SETMASK, &old);
            (pid, err)
        };
        if pid < 0 {
            return Err(SandboxError::Setup {
                step: "fork",
                source: clone_err,
            });
        }
        drop(err_w);
        drop(status_w);
        drop(stdin_child);
        drop(stdout_child);
        drop(stderr_child);
        drop(ruleset);

        let mut child = SandboxedChild {
            supervisor: pid,
            pid: 0,
            status_fd: status_r,
            stdin: stdin_parent,
            stdout: None,
            stderr: None,
            relays: Vec::new(),
            bytes_out: bytes_out.clone(),
            output_counted,
            kill_reason: kill_reason.clone(),
            start,
            // With a workspace that Landlock keeps read-only (and nothing writable inside it)
            // the command cannot change a protected path, so there is nothing to restore — and
            // restoring would undo the user's own edits made on the host while it ran: the
            // agent process runs for a whole session, during which the user (or an approval's
            // "always") may well change `.airlock/policy.toml` or `.git/config`.
            snapshot: (!self.workspace_locked()).then_some(snapshot),
            tmpdir: guard.take(),
            waited: false,
            stacks: Some(stacks),
        };

        // Wait until the command exec'd: the error pipe closes on exec (O_CLOEXEC). End of
        // file also means that the command no longer runs on its stack in our memory (it
        // exec'd or exited, and the supervisor closed its copy), which `finish` relies on.
        let mut buf = [0u8; 8];
        let got = read_full(err_r.as_raw_fd(), &mut buf);
        if got == 8 {
            // The command failed before exec: wait for it to be gone too.
            read_full(err_r.as_raw_fd(), &mut [0u8; 1]);
            let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let source = std::io::Error::from_raw_os_error(errno);
            let report = child.finish();
            drop(report);
            return Err(match step {
                STEP_EXEC if errno == libc::ENOENT => SandboxError::NotFound {
                    program: cmd.program.clone(),
                },
                STEP_EXEC => SandboxError::NotExecutable {
                    program: cmd.program.clone(),
                    source,
                },
                s => SandboxError::Setup {
                    step: step_name(s),
                    source,
                },
            });
        }
        let mut pidbuf = [0u8; 4];
        if read_full(child.status_fd.as_raw_fd(), &mut pidbuf) == 4 {
            child.pid = u32::from_ne_bytes(pidbuf);
        }

        if let Some((src, dst)) = stdout_relay {
            child.relays.push(relay(
                src,
                dst,
                bytes_out.clone(),
                cap,
                kill_reason.clone(),
                pid,
            ));
        }
        if let Some((src, dst)) = stderr_relay {
            child
                .relays
                .push(relay(src, dst, bytes_out, cap, kill_reason, pid));
        }
        child.stdout = stdout_parent;
        child.stderr = stderr_parent;
        Ok(child)
    }

    /// Whether the kernel keeps the whole workspace read-only for commands: Landlock is in
    /// force, the workspace is granted read rights only, and no writable path lies inside it.
    fn workspace_locked(&self) -> bool {
        let ws = &self.config.workspace;
        self.config.workspace_read_only
            && self.landlock.is_some()
            && !self.config.extra_write.iter().any(|p| p.starts_with(ws))
    }

    fn mount_plan(
        &self,
        snapshot: &Snapshot,
        denied: &[&(PathBuf, bool)],
    ) -> Result<Vec<MountOp>, SandboxError> {
        let ws = &self.config.workspace;
        let ws_flags = locked_flags(ws)?;
        let tmp_flags = locked_flags(&self.tmp_base)?;
        let mut ops = Vec::new();
        let mut ancestors: Vec<PathBuf> = Vec::new();
        let existing: Vec<&Path> = snapshot.existing().collect();
        for rel in &existing {
            for a in protect::between(rel) {
                if !ancestors.contains(&a) && !existing.contains(&a.as_path()) {
                    ancestors.push(a);
                }
            }
        }
        ancestors.sort_by_key(|a| a.components().count());
        let cs = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| SandboxError::Config(format!("NUL in {}", p.display())))
        };
        for a in &ancestors {
            let p = cs(&ws.join(a))?;
            ops.push(MountOp {
                src: p.clone(),
                dst: p,
                remount: None,
            });
        }
        let mut prot: Vec<&Path> = existing.clone();
        prot.sort_by_key(|a| a.components().count());
        for rel in prot {
            let p = cs(&ws.join(rel))?;
            ops.push(MountOp {
                src: p.clone(),
                dst: p,
                remount: Some(ws_flags),
            });
        }
        for (path, is_dir) in denied {
            let src = if *is_dir {
                &self.empty_dir
            } else {
                &self.empty_file
            };
            ops.push(MountOp {
                src: cs(src)?,
                dst: cs(path)?,
                remount: Some(tmp_flags),
            });
        }
        Ok(ops)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp_base);
    }
}

/// Removes the TMPDIR unless handed over to the child handle.
struct TmpGuard(Option<PathBuf>);
impl TmpGuard {
    fn take(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}
impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Grants the workspace entry by entry, skipping deny-read matches: directories on the way to
/// a denied path get every right except reading and executing files, everything else gets
/// full rights (all within `grant`: read rights only for a read-only workspace). New files
/// created later directly in those directories are write-only until the next command.
fn per_entry_rules(
    plan: &LandlockPlan,
    ws: &Path,
    grant: BitFlags<AccessFs>,
    denied: &[&(PathBuf, bool)],
    out: &mut Vec<(OwnedFd, BitFlags<AccessFs>)>,
) -> Result<(), SandboxError> {
    let all = plan.all() & grant;
    let file_rights = AccessFs::from_file(plan.abi);
    let no_read = all & !(AccessFs::ReadFile | AccessFs::Execute);
    let mut on_path: Vec<PathBuf> = vec![ws.to_path_buf()];
    for (d, _) in denied {
        let mut cur = d.parent();
        while let Some(p) = cur {
            if !p.starts_with(ws) {
                break;
            }
            if !on_path.iter().any(|x| x == p) {
                on_path.push(p.to_path_buf());
            }
            cur = p.parent();
        }
    }
    for dir in &on_path {
        let fd =
            landlock_rules::open_path(dir).map_err(|e| SandboxError::io("cannot open", dir, e))?;
        out.push((fd, no_read));
        let entries =
            std::fs::read_dir(dir).map_err(|e| SandboxError::io("cannot list", dir, e))?;
        for entry in entries.flatten() {
            let p = entry.path();
            if on_path.contains(&p) || denied.iter().any(|(d, _)| *d == p) {
                continue;
            }
            // Never follow a symlink here: `link -> .env` would grant the denied file itself.
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            let Ok(fd) = landlock_rules::open_path_nofollow(&p) else {
                continue;
            };
            out.push((
                fd,
                if meta.is_dir() {
                    all
                } else {
                    all & file_rights
                },
            ));
        }
    }
    Ok(())
}

fn make_tmp_base(configured: Option<&Path>) -> Result<PathBuf, SandboxError> {
    let parent = match configured {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .unwrap_or_else(|| PathBuf::from("/dev/shm")),
    };
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..16u32 {
        let p = parent.join(format!("airlock-{pid}-{nanos:x}-{attempt}"));
        // mkdir fails on an existing name (including a planted symlink), so the dir is ours.
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(SandboxError::io("cannot create the TMPDIR base", &p, e)),
        }
    }
    Err(SandboxError::Config(format!(
        "cannot create a TMPDIR base under {}",
        parent.display()
    )))
}

fn resolve_program(program: &str, path_var: &OsStr, cwd: &Path) -> Result<PathBuf, SandboxError> {
    if program.is_empty() {
        return Err(SandboxError::NotFound {
            program: program.into(),
        });
    }
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    for dir in std::env::split_paths(path_var) {
        let cand = if dir.is_absolute() {
            dir.join(program)
        } else {
            cwd.join(dir).join(program)
        };
        if let Ok(m) = std::fs::metadata(&cand)
            && m.is_file()
        {
            return Ok(cand);
        }
    }
    Err(SandboxError::NotFound {
        program: program.into(),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::Setup {
            step: "pipe",
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: pipe2 returned two fresh fds we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn dev_null(write: bool) -> Result<OwnedFd, SandboxError> {
    let f = std::fs::File::options()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(|e| SandboxError::io("cannot open", "/dev/null", e))?;
    Ok(f.into())
}

type Fds = (Option<OwnedFd>, Option<OwnedFd>);

fn stdin_fds(s: &Stdio) -> Result<Fds, SandboxError> {
    Ok(match s {
        Stdio::Inherit => (None, None),
        Stdio::Null => (Some(dev_null(false)?), None),
        Stdio::Pipe => {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        }
        Stdio::Fd(fd) => (
            Some(fd.try_clone().map_err(|e| SandboxError::Setup {
                step: "dup stdin",
                source: e,
            })?),
            None,
        ),
    })
}

/// (child end, caller end, relay (from child, to target))
type OutFds = (Option<OwnedFd>, Option<OwnedFd>, Option<(OwnedFd, OwnedFd)>);

fn output_fds(s: &Stdio) -> Result<OutFds, SandboxError> {
    Ok(match s {
        Stdio::Inherit => (None, None, None),
        Stdio::Null => (Some(dev_null(true)?), None, None),
        Stdio::Pipe => {
            let (inner_r, inner_w) = pipe()?;
            let (outer_r, outer_w) = pipe()?;
            (Some(inner_w), Some(outer_r), Some((inner_r, outer_w)))
        }
        Stdio::Fd(fd) => {
            let (inner_r, inner_w) = pipe()?;
            let target = fd.try_clone().map_err(|e| SandboxError::Setup {
                step: "dup output",
                source: e,
            })?;
            (Some(inner_w), None, Some((inner_r, target)))
        }
    })
}

/// Copies the command's output to its destination, counting bytes; past the cap it asks the
/// supervisor to kill the tree.
fn relay(
    src: OwnedFd,
    dst: OwnedFd,
    counter: Arc<AtomicU64>,
    cap: Option<u64>,
    reason: Arc<AtomicU8>,
    supervisor: libc::pid_t,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut src = std::fs::File::from(src);
        let mut dst = std::fs::File::from(dst);
        let mut buf = vec![0u8; 64 * 1024];
        let mut dst_ok = true;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let total = counter.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            let mut chunk = &buf[..n];
            if let Some(cap) = cap
                && total > cap
            {
                let over = (total - cap).min(n as u64) as usize;
                chunk = &buf[..n - over];
                if reason
                    .compare_exchange(
                        REASON_NONE,
                        REASON_OUTPUT,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
                {
                    // SAFETY: the supervisor is not reaped before this thread is joined.
                    unsafe { libc::kill(supervisor, libc::SIGUSR1) };
                }
            }
            if dst_ok && !chunk.is_empty() && dst.write_all(chunk).is_err() {
                dst_ok = false;
            }
        }
    })
}

fn ptrs(v: &[CString]) -> Vec<*const libc::c_char> {
    let mut p: Vec<*const libc::c_char> = v.iter().map(|c| c.as_ptr()).collect();
    p.push(std::ptr::null());
    p
}

fn rlimits(l: &crate::Limits) -> Vec<(libc::__rlimit_resource_t, u64)> {
    let mut v = vec![(libc::RLIMIT_CORE, 0)];
    let pairs = [
        (libc::RLIMIT_CPU, l.cpu_secs),
        (libc::RLIMIT_AS, l.address_space),
        (libc::RLIMIT_FSIZE, l.file_size),
        (libc::RLIMIT_NOFILE, l.open_files),
        (libc::RLIMIT_NPROC, l.processes),
    ];
    for (r, val) in pairs {
        if let Some(val) = val {
            v.push((r, val));
        }
    }
    v
}

/// Mount flags a bind remount must keep (the kernel locks them in a user namespace).
fn locked_flags(path: &Path) -> Result<libc::c_ulong, SandboxError> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Config("NUL in path".into()))?;
    // SAFETY: statvfs writes into the zeroed struct.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(SandboxError::io(
            "statvfs",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    let f = s.f_flag;
    let mut m: libc::c_ulong = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st != 0 {
            m |= ms;
        }
    }
    if f & (libc::ST_NOATIME | libc::ST_RELATIME) == 0 {
        m |= libc::MS_STRICTATIME;
    }
    Ok(m)
}

fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of buf.
        let r = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if r == 0 {
            break;
        }
        got += r as usize;
    }
    got
}

impl SandboxedChild {
    /// Pid of the command (in the caller's pid namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the command and every descendant (asynchronously; `wait` returns afterwards).
    pub fn kill(&self) {
        if self.waited {
            return;
        }
        let _ = self.kill_reason.compare_exchange(
            REASON_NONE,
            REASON_KILL,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        // SAFETY: the supervisor is our unreaped child while `self` exists.
        unsafe { libc::kill(self.supervisor, libc::SIGUSR1) };
    }

    /// Waits for the command and all its descendants, restores protected paths, removes the
    /// TMPDIR and reports what happened. Blocking: call it from a blocking thread in async code.
    pub fn wait(mut self) -> Result<ExecReport, SandboxError> {
        Ok(self.finish())
    }

    fn finish(&mut self) -> ExecReport {
        self.waited = true;
        let mut st = 0;
        loop {
            // SAFETY: plain waitpid on our own child.
            let r = unsafe { libc::waitpid(self.supervisor, &mut st, 0) };
            if r >= 0 {
                break;
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                // Gone (reaped by someone else): its stack is free.
                Some(libc::ECHILD) => break,
                _ => {
                    // It may still run on its stack: leak the stack rather than reuse it.
                    std::mem::forget(self.stacks.take());
                    break;
                }
            }
        }
        let wall = self.start.elapsed();
        if let Some(s) = self.stacks.take() {
            s.recycle();
        }
        let mut buf = [0u8; 8 * 7];
        let got = read_full(self.status_fd.as_raw_fd(), &mut buf);
        let word =
            |i: usize| i64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let (raw_status, sup_reason) = if got == buf.len() {
            (word(0) as i32, word(1))
        } else {
            (-1, 0)
        };
        let status = if raw_status == -1 {
            // The supervisor itself died (SIGKILLed from outside): report its status.
            decode(st)
        } else {
            decode(raw_status)
        };
        let user_cpu = Duration::from_secs(word(2).max(0) as u64)
            + Duration::from_micros(word(3).max(0) as u64);
        let sys_cpu = Duration::from_secs(word(4).max(0) as u64)
            + Duration::from_micros(word(5).max(0) as u64);
        let max_rss_kb = word(6).max(0) as u64;
        for r in self.relays.drain(..) {
            let _ = r.join();
        }
        let violations = self
            .snapshot
            .take()
            .map(|s| s.check_and_restore())
            .unwrap_or_default();
        let _ = std::fs::remove_dir_all(&self.tmpdir);
        let killed_by = match self.kill_reason.load(Ordering::SeqCst) {
            REASON_OUTPUT => Some(Limit::OutputCap),
            REASON_KILL => Some(Limit::Killed),
            _ if sup_reason == SUP_TIMEOUT => Some(Limit::Timeout),
            _ if status == ExitStatusKind::Signaled(libc::SIGXCPU) => Some(Limit::CpuTime),
            _ => None,
        };
        ExecReport {
            status,
            wall,
            user_cpu,
            sys_cpu,
            max_rss_kb,
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            output_counted: self.output_counted,
            killed_by,
            violations,
        }
    }
}

impl Drop for SandboxedChild {
    fn drop(&mut self) {
        if !self.waited {
            self.kill();
            let report = self.finish();
            for v in report.violations {
                tracing::warn!(violation = %v, "sandboxed command dropped without wait");
            }
        }
    }
}

fn decode(st: i32) -> ExitStatusKind {
    if libc::WIFSIGNALED(st) {
        ExitStatusKind::Signaled(libc::WTERMSIG(st))
    } else {
        ExitStatusKind::Exited(libc::WEXITSTATUS(st))
    }
}

// ---------------------------------------------------------------------------------------------
// In the children: they share the caller's memory (CLONE_VM), so only raw system calls
// (`crate::sys`), no allocation, no locks, no libc wrapper that writes `errno`.

/// Stacks of the two children, in one mapping with a guard page below each:
/// `[guard][command][guard][supervisor]`. Unmapped only after the supervisor was reaped.
struct ChildStacks {
    base: *mut libc::c_void,
    len: usize,
    page: usize,
}

// SAFETY: a plain owned mapping; the pointer is only used to compute stack tops and unmap it.
unsafe impl Send for ChildStacks {}

/// The supervisor's loop and `kill_descendants` need a few KiB; the command child little more
/// than its `ChildPlan` walk.
const SUPERVISOR_STACK: usize = 128 << 10;
const COMMAND_STACK: usize = 64 << 10;

/// Stacks of finished commands, reused: a fresh mapping costs two `mprotect`s (guard pages),
/// an `munmap` and a page fault per touched page on every spawn.
static STACK_POOL: std::sync::Mutex<Vec<ChildStacks>> = std::sync::Mutex::new(Vec::new());
/// More than this many idle stacks are unmapped (each is ~200 KiB of address space, a few
/// touched pages).
const STACK_POOL_MAX: usize = 8;

impl ChildStacks {
    /// A stack pair from the pool, or a new one.
    fn get() -> Result<ChildStacks, SandboxError> {
        if let Some(s) = STACK_POOL.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(s);
        }
        ChildStacks::new()
    }

    /// Returns the stacks to the pool. Only once no child runs on them any more.
    fn recycle(self) {
        if let Ok(mut p) = STACK_POOL.lock()
            && p.len() < STACK_POOL_MAX
        {
            p.push(self);
        }
    }

    fn new() -> Result<ChildStacks, SandboxError> {
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => 4096,
        };
        let len = page + COMMAND_STACK + page + SUPERVISOR_STACK;
        // SAFETY: a fresh anonymous mapping; the guard pages are inside it.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(SandboxError::Setup {
                    step: "mmap child stacks",
                    source: std::io::Error::last_os_error(),
                });
            }
            let stacks = ChildStacks { base, len, page };
            let guard2 = base.cast::<u8>().add(page + COMMAND_STACK).cast();
            if libc::mprotect(base, page, libc::PROT_NONE) != 0
                || libc::mprotect(guard2, page, libc::PROT_NONE) != 0
            {
                return Err(SandboxError::Setup {
                    step: "mprotect guard page",
                    source: std::io::Error::last_os_error(),
                });
            }
            Ok(stacks)
        }
    }

    fn command_top(&self) -> *mut libc::c_void {
        // SAFETY: inside the mapping (the end of the command's stack).
        unsafe { self.base.cast::<u8>().add(self.page + COMMAND_STACK).cast() }
    }

    fn supervisor_top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, the top of the supervisor's stack.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStacks {
    fn drop(&mut self) {
        // SAFETY: our mapping; no child runs on it any more (see `SandboxedChild::finish`).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

struct UsernsPlan {
    uid_map: CString,
    gid_map: CString,
    /// Started as root: try a mount namespace alone first (root may create one without a user
    /// namespace, which saves creating the user namespace and writing its id maps); a
    /// container's root without CAP_SYS_ADMIN falls back to the user namespace.
    try_mount_ns_alone: bool,
    /// Every mount is made read-only, then these are bind-mounted writable again (the
    /// workspace, the TMPDIR, `extra_write`): metadata changes (chmod, chown, utimes, xattrs),
    /// which Landlock does not control, can't reach anything else.
    writable: Vec<CString>,
    /// (private TMPDIR, base path): mounted last, writable, over the base that the shared
    /// Landlock ruleset grants.
    tmp_over: (CString, CString),
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 1;
const AT_RECURSIVE: u32 = 0x8000;

/// `mount_setattr` on `path`: 0 or `-errno`.
unsafe fn mount_setattr(path: &std::ffi::CStr, recursive: bool, set: u64, clr: u64) -> isize {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: path is NUL-terminated, attr is a valid mount_attr of the size we pass.
    unsafe {
        sys::sys6(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD as isize as usize,
            path.as_ptr() as usize,
            flags as usize,
            &attr as *const MountAttr as usize,
            std::mem::size_of::<MountAttr>(),
            0,
        )
    }
}

/// Makes the whole mount namespace read-only and re-opens `writable` for writing. Returns
/// the first raw error (`-errno`) or 0.
unsafe fn readonly_except(writable: &[CString]) -> isize {
    unsafe {
        let r = mount_setattr(c"/", true, MOUNT_ATTR_RDONLY, 0);
        if r != 0 {
            return r;
        }
        for w in writable {
            let r = sys::mount(w.as_ptr(), w.as_ptr(), libc::MS_BIND);
            if r != 0 {
                return r;
            }
            let r = mount_setattr(w, false, 0, MOUNT_ATTR_RDONLY);
            if r != 0 {
                return r;
            }
        }
        0
    }
}

struct MountOp {
    src: CString,
    dst: CString,
    /// Read-only remount with these locked flags; `None` = plain self-bind.
    remount: Option<libc::c_ulong>,
}

struct ChildPlan<'a> {
    program: CString,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
    stdio: [RawFd; 3],
    userns: Option<UsernsPlan>,
    mounts: Vec<MountOp>,
    ruleset: RawFd,
    filter: &'a [libc::sock_filter],
    rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    err_w: RawFd,
    status_w: RawFd,
    new_session: bool,
    parent: libc::pid_t,
    timeout_us: i64,
    command_stack: *mut libc::c_void,
}

const STEP_FORK: u32 = 1;
const STEP_STDIO: u32 = 2;
const STEP_USERNS: u32 = 3;
const STEP_IDMAP: u32 = 4;
const STEP_MOUNT: u32 = 5;
const STEP_CHDIR: u32 = 6;
const STEP_RLIMIT: u32 = 7;
const STEP_NNP: u32 = 8;
const STEP_LANDLOCK: u32 = 9;
const STEP_SECCOMP: u32 = 10;
const STEP_EXEC: u32 = 11;
const STEP_CAPS: u32 = 12;
const STEP_READONLY: u32 = 13;

fn step_name(s: u32) -> &'static str {
    match s {
        STEP_FORK => "fork",
        STEP_STDIO => "stdio",
        STEP_USERNS => "unshare user+mount namespace",
        STEP_IDMAP => "uid/gid map",
        STEP_MOUNT => "bind mount protected path",
        STEP_CHDIR => "chdir",
        STEP_RLIMIT => "setrlimit",
        STEP_NNP => "no_new_privs",
        STEP_LANDLOCK => "landlock_restrict_self",
        STEP_SECCOMP => "seccomp",
        STEP_CAPS => "drop capabilities",
        STEP_READONLY => "read-only remount outside the workspace",
        _ => "exec",
    }
}

/// Child steps whose failure means "user namespaces don't work here" rather than a real error.
const NAMESPACE_STEPS: &[&str] = &[
    "unshare user+mount namespace",
    "uid/gid map",
    "read-only remount outside the workspace",
];

/// SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS_LOCKED (keep-caps off) |
/// SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (linux/securebits.h).
const SECUREBITS_LOCKED_NOROOT: usize = 0x01 | 0x02 | 0x20 | 0x40 | 0x80;

const SUP_TIMEOUT: i64 = 1;
const SUP_KILLED: i64 = 2;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

unsafe fn fail(err_w: RawFd, step: u32, errno: i32) -> ! {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&step.to_ne_bytes());
    b[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writing a stack buffer to our pipe, then exiting without running destructors.
    unsafe {
        sys::write(err_w, &b);
        sys::exit(if step == STEP_EXEC {
            if errno == libc::ENOENT { 127 } else { 126 }
        } else {
            125
        });
    }
}

unsafe fn write_all_raw(fd: RawFd, b: &[u8]) {
    let mut off = 0;
    while off < b.len() {
        // SAFETY: writing the remaining part of b.
        let r = unsafe { sys::write(fd, &b[off..]) };
        if r <= 0 {
            if sys::err(r) == libc::EINTR {
                continue;
            }
            return;
        }
        off += r as usize;
    }
}

extern "C" fn supervisor_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` of `spawn_inner`, which outlives the command's exec.
    unsafe { supervisor(&*(arg as *const ChildPlan<'_>)) }
}

extern "C" fn command_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: as above; the supervisor is suspended (CLONE_VFORK) until we exec or exit.
    unsafe { command_child(&*(arg as *const ChildPlan<'_>)) }
}

unsafe fn supervisor(plan: &ChildPlan<'_>) -> ! {
    unsafe {
        // What is needed after the command has exec'd: from then on the caller may free `plan`.
        let err_w = plan.err_w;
        let sw = plan.status_w;
        let parent = plan.parent;
        let timeout_us = plan.timeout_us;

        // Every signal arrives blocked (the caller blocked them around clone), so none of the
        // caller's handlers ever runs here; the ones we act on are taken with sigtimedwait.
        let set: sys::KSigset = [
            libc::SIGCHLD,
            libc::SIGUSR1,
            libc::SIGALRM,
            libc::SIGTERM,
            libc::SIGHUP,
        ]
        .iter()
        .fold(0, |s, &sig| s | sys::sigbit(sig));
        // A caller that ignores SIGCHLD would have our children reaped behind our back.
        sys::set_disposition(libc::SIGCHLD, libc::SIG_DFL);
        for sig in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTTOU,
            libc::SIGTTIN,
            libc::SIGTSTP,
        ] {
            sys::set_disposition(sig, libc::SIG_IGN);
        }
        if plan.new_session {
            sys::sys(libc::SYS_setsid, 0, 0, 0, 0);
        }
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        // No PR_SET_PDEATHSIG: it fires when the cloning *thread* exits (a tokio blocking
        // thread retires after 10 s idle), not the process. The caller's death is noticed by
        // the periodic getppid() check below instead.
        if sys::getppid() != parent {
            sys::exit(125);
        }

        // The command: a vfork-style clone, so nothing of the caller's memory is copied; we
        // stay suspended until it has exec'd or failed.
        let c = libc::clone(
            command_entry,
            plan.command_stack,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            plan as *const ChildPlan<'_> as *mut libc::c_void,
        );
        if c < 0 {
            // libc's clone stored errno in the caller's thread slot, not ours: report EAGAIN,
            // clone's usual failure (process or memory limits).
            fail(err_w, STEP_FORK, libc::EAGAIN);
        }
        // Keep nothing of the caller's fds (a server's sockets, other commands' pipes).
        if sw > 0 {
            sys::close_range(0, (sw - 1) as u32, 0);
        }
        sys::close_range((sw + 1) as u32, u32::MAX, 0);
        write_all_raw(sw, &(c as u32).to_ne_bytes());

        if timeout_us > 0 {
            let it = libc::itimerval {
                it_interval: libc::timeval {
                    tv_sec: 0,
                    tv_usec: 0,
                },
                it_value: libc::timeval {
                    tv_sec: (timeout_us / 1_000_000) as libc::time_t,
                    tv_usec: (timeout_us % 1_000_000) as libc::suseconds_t,
                },
            };
            sys::sys(
                libc::SYS_setitimer,
                libc::ITIMER_REAL as usize,
                &it as *const libc::itimerval as usize,
                0,
                0,
            );
        }

        let mut cmd_status: i32 = -1;
        let mut reason: i64 = 0;
        let tick = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        'wait: loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = sys::sigtimedwait(&set, &mut info, &tick) as i32;
            if sig == libc::SIGCHLD {
                loop {
                    let mut st = 0;
                    let r = sys::wait(-1, &mut st, libc::WNOHANG) as i32;
                    if r == c {
                        cmd_status = st;
                        break 'wait;
                    }
                    if r <= 0 {
                        break;
                    }
                }
            } else if sig == libc::SIGALRM {
                reason = SUP_TIMEOUT;
                break;
            } else if sig > 0 {
                reason = SUP_KILLED;
                break;
            } else if sys::getppid() != parent {
                // The caller died: nobody will wait for the command.
                reason = SUP_KILLED;
                break;
            }
        }
        kill_descendants(c, &mut cmd_status);
        let mut ru: libc::rusage = std::mem::zeroed();
        sys::sys(
            libc::SYS_getrusage,
            libc::RUSAGE_CHILDREN as isize as usize,
            &mut ru as *mut libc::rusage as usize,
            0,
            0,
        );
        let words: [i64; 7] = [
            cmd_status as i64,
            reason,
            ru.ru_utime.tv_sec as i64,
            ru.ru_utime.tv_usec as i64,
            ru.ru_stime.tv_sec as i64,
            ru.ru_stime.tv_usec as i64,
            ru.ru_maxrss as i64,
        ];
        let mut out = [0u8; 56];
        for (chunk, w) in out.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        write_all_raw(sw, &out);
        sys::exit(0);
    }
}

/// SIGKILLs every child (orphans are re-parented to us, the subreaper) until none is left.
unsafe fn kill_descendants(cmd: libc::pid_t, cmd_status: &mut i32) {
    unsafe {
        let path = c"/proc/thread-self/children";
        let mut buf = [0u8; 4096];
        loop {
            // The usual case first: no child left (the command started nothing that outlived
            // it), so no need to read the list. A descendant whose parent died was re-parented
            // to us before that parent could be reaped, so ECHILD means none is left.
            let mut st = 0;
            let r = sys::wait(-1, &mut st, libc::WNOHANG) as i32;
            if sys::err(r as isize) == libc::ECHILD {
                break;
            }
            if r > 0 {
                if r == cmd && *cmd_status == -1 {
                    *cmd_status = st;
                }
                continue;
            }
            let fd = sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC) as i32;
            let mut killed_any = false;
            if fd >= 0 {
                let n = sys::read(fd, &mut buf);
                sys::close(fd);
                let mut cur: i64 = 0;
                let mut have = false;
                for &b in buf.iter().take(n.max(0) as usize) {
                    if b.is_ascii_digit() {
                        cur = cur * 10 + (b - b'0') as i64;
                        have = true;
                    } else if have {
                        sys::kill(cur as libc::pid_t, libc::SIGKILL);
                        killed_any = true;
                        cur = 0;
                        have = false;
                    }
                }
                if have {
                    sys::kill(cur as libc::pid_t, libc::SIGKILL);
                    killed_any = true;
                }
            } else if *cmd_status == -1 {
                sys::kill(cmd, libc::SIGKILL);
            }
            let mut st = 0;
            let r = sys::wait(
                -1,
                &mut st,
                if killed_any || fd < 0 {
                    0
                } else {
                    libc::WNOHANG
                },
            ) as i32;
            if r == cmd && *cmd_status == -1 {
                *cmd_status = st;
            }
            if r < 0 {
                if sys::err(r as isize) == libc::EINTR {
                    continue;
                }
                break; // ECHILD: nothing left
            }
            if r == 0 && !killed_any {
                // Children exist but the list was empty (racing with a fork): try again.
                continue;
            }
        }
    }
}

/// Writes `data` to `path` in one call: 0 or `-errno` (`-EIO` for a short write).
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> isize {
    unsafe {
        let fd = sys::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return fd;
        }
        let r = sys::write(fd as i32, data);
        sys::close(fd as i32);
        match r {
            r if r < 0 => r,
            r if r as usize == data.len() => 0,
            _ => -(libc::EIO as isize),
        }
    }
}

/// Fails the command child at `step` if the raw call result `r` is an error.
macro_rules! check {
    ($ew:expr, $step:expr, $r:expr) => {{
        let r = $r;
        if r < 0 {
            fail($ew, $step, sys::err(r as isize));
        }
        r
    }};
}

unsafe fn command_child(plan: &ChildPlan<'_>) -> ! {
    unsafe {
        let ew = plan.err_w;
        // Default dispositions before unblocking: a handler of the caller must never run in
        // this process, which shares its memory (ignored signals would also survive exec).
        for sig in 1..=64 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                sys::set_disposition(sig, libc::SIG_DFL);
            }
        }
        sys::sigprocmask(libc::SIG_SETMASK, &0);
        sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as usize);
        for (i, fd) in plan.stdio.iter().enumerate() {
            if *fd >= 0 {
                check!(ew, STEP_STDIO, sys::dup2(*fd, i as i32));
            }
        }
        if let Some(u) = &plan.userns {
            let alone = u.try_mount_ns_alone
                && sys::sys(libc::SYS_unshare, libc::CLONE_NEWNS as usize, 0, 0, 0) == 0;
            if !alone {
                check!(
                    ew,
                    STEP_USERNS,
                    sys::sys(
                        libc::SYS_unshare,
                        (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as usize,
                        0,
                        0,
                        0
                    )
                );
                check!(ew, STEP_IDMAP, write_file(c"/proc/self/setgroups", b"deny"));
                check!(
                    ew,
                    STEP_IDMAP,
                    write_file(c"/proc/self/uid_map", u.uid_map.as_bytes())
                );
                check!(
                    ew,
                    STEP_IDMAP,
                    write_file(c"/proc/self/gid_map", u.gid_map.as_bytes())
                );
            }
            check!(
                ew,
                STEP_READONLY,
                sys::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    libc::MS_REC | libc::MS_SLAVE
                )
            );
            check!(ew, STEP_READONLY, readonly_except(&u.writable));
            for m in &plan.mounts {
                check!(
                    ew,
                    STEP_MOUNT,
                    sys::mount(m.src.as_ptr(), m.dst.as_ptr(), libc::MS_BIND)
                );
                if let Some(flags) = m.remount {
                    check!(
                        ew,
                        STEP_MOUNT,
                        sys::mount(
                            std::ptr::null(),
                            m.dst.as_ptr(),
                            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                        )
                    );
                }
            }
            let (src, dst) = &u.tmp_over;
            check!(
                ew,
                STEP_READONLY,
                sys::mount(src.as_ptr(), dst.as_ptr(), libc::MS_BIND)
            );
            check!(
                ew,
                STEP_READONLY,
                mount_setattr(dst, false, 0, MOUNT_ATTR_RDONLY)
            );
        }
        check!(ew, STEP_CHDIR, sys::chdir(&plan.cwd));
        for (res, val) in &plan.rlimits {
            let lim = libc::rlimit {
                rlim_cur: *val,
                rlim_max: *val,
            };
            check!(
                ew,
                STEP_RLIMIT,
                sys::sys(
                    libc::SYS_prlimit64,
                    0,
                    *res as usize,
                    &lim as *const libc::rlimit as usize,
                    0
                )
            );
        }
        // Everything above fd 2 closes at exec (the error pipe and the ruleset included).
        sys::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);

        // Capabilities: none survive (matters when started as root, or inside the userns).
        // Locked securebits stop execve from granting uid 0 the bounding set (the only way
        // back to capabilities once they are cleared below: no_new_privs ignores file
        // capabilities and set-user-ID bits). One call: dropping the bounding set takes one
        // credential copy per capability (~40), a sizeable part of a spawn. Without
        // CAP_SETPCAP (no user namespace, not root) neither is possible nor needed.
        if sys::prctl(libc::PR_SET_SECUREBITS, SECUREBITS_LOCKED_NOROOT) != 0 {
            for cap in 0..64 {
                if sys::err(sys::prctl(libc::PR_CAPBSET_DROP, cap)) == libc::EINVAL {
                    break;
                }
            }
        }
        sys::sys(
            libc::SYS_prctl,
            libc::PR_CAP_AMBIENT as usize,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as usize,
            0,
            0,
        );
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check!(
            ew,
            STEP_CAPS,
            sys::sys(
                libc::SYS_capset,
                &hdr as *const CapHeader as usize,
                data.as_ptr() as usize,
                0,
                0
            )
        );

        check!(ew, STEP_NNP, sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1));
        if plan.ruleset >= 0 {
            check!(
                ew,
                STEP_LANDLOCK,
                sys::sys(
                    libc::SYS_landlock_restrict_self,
                    plan.ruleset as usize,
                    0,
                    0,
                    0
                )
            );
        }
        let prog = libc::sock_fprog {
            len: plan.filter.len() as u16,
            filter: plan.filter.as_ptr() as *mut libc::sock_filter,
        };
        check!(
            ew,
            STEP_SECCOMP,
            sys::sys(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as usize,
                0,
                &prog as *const libc::sock_fprog as usize,
                0
            )
        );
        let r = sys::sys(
            libc::SYS_execve,
            plan.program.as_ptr() as usize,
            plan.argv_ptrs.as_ptr() as usize,
            plan.envp_ptrs.as_ptr() as usize,
            0,
        );
        fail(ew, STEP_EXEC, sys::err(r));
    }
}

/// Probe helper: fork a child that sets up a user+mount namespace and a read-only bind mount.
pub(crate) fn try_userns_in_child() -> bool {
    let uid = unsafe { libc::geteuid() };
    let gid = unsafe { libc::getegid() };
    let (Ok(uid_map), Ok(gid_map)) = (
        CString::new(format!("{uid} {uid} 1\n")),
        CString::new(format!("{gid} {gid} 1\n")),
    ) else {
        return false;
    };
    // Any directory works as the "writable" one; the probe only checks that the kernel and
    // LSMs let us do what the spawn path does.
    let target = c"/usr";
    // SAFETY: the child only makes raw system calls on the buffers above and exits.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let ok = libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) == 0
                && write_file(c"/proc/self/setgroups", b"deny") == 0
                && write_file(c"/proc/self/uid_map", uid_map.as_bytes()) == 0
                && write_file(c"/proc/self/gid_map", gid_map.as_bytes()) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ) == 0
                && readonly_except(&[target.to_owned()]) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
        if pid < 0 {
            return false;
        }
        let mut st = 0;
        while libc::waitpid(pid, &mut st, 0) < 0 {
            if errno() != libc::EINTR {
                return false;
            }
        }
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Sandbox>();
    fn send<T: Send>() {}
    send::<SandboxedChild>();
}
