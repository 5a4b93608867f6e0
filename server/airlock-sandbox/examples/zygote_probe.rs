//! Measures what a pre-forked sandbox helper ("zygote") would cost per command, before any
//! of it is built into `Sandbox`: the floor the design can reach.
//!
//! `zygote_probe baseline N` — `std::process::Command::new("/bin/true").status()` N times.
//! `zygote_probe zygote N [AIRLOCK] [--layer2|--isolate]` — starts a helper (this binary,
//! `helper` mode; under `AIRLOCK exec --new-session --` when given, i.e. already in the
//! namespaces with Landlock and seccomp installed once) with a unix socket as its stdin, then
//! N times: opens /dev/null three times, sends the fds with SCM_RIGHTS, and waits for the
//! status. The helper `clone(CLONE_VM)`s a per-command subreaper, which
//! `clone(CLONE_VM|CLONE_VFORK)`s the command (dup2 of the three fds, `execve /bin/true`),
//! reaps every descendant and exits with the command's status. With `--layer2` the subreaper
//! first builds and stacks a Landlock layer granting every entry of `/` but `/tmp` (the cost
//! of adding rules per command); with `--isolate` it stacks a layer from a template the helper
//! built once: everything but `./shared/` plus the command's own `./shared/<slot>` (TMPDIR
//! isolation between commands that share one helper).
//! `zygote_probe isolation AIRLOCK [--no-layer]` — runs two commands through a sandboxed
//! helper, each with its own slot, each trying to read, list and write the other's, and
//! prints what happened, checked from outside (`--no-layer`: the control, without the layer).
//!
//! Run it from a copy inside the workspace (the current directory, `airlock exec`'s default
//! workspace), so that the sandboxed helper can execute it:
//! `cp target/release/examples/zygote_probe target/release/airlock /tmp/ws && cd /tmp/ws &&
//! ./zygote_probe zygote 1000 ./airlock`.
//!
//! CPU = user+sys of the caller plus the helper's whole tree between the first and last
//! request (the helper reports it at exit), so the sandbox's one-time start is excluded.
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("helper") => helper(
            args.iter().any(|a| a == "--layer2"),
            args.iter().any(|a| a == "--isolate"),
            args.iter().any(|a| a == "--script"),
        ),
        Some("baseline") => {
            let n = count(&args);
            let (c0, t0) = (cpu(), Instant::now());
            for _ in 0..n {
                Command::new("/bin/true").status().expect("spawn");
            }
            report("baseline", n, t0.elapsed(), cpu() - c0);
        }
        Some("zygote") => zygote(&args),
        Some("isolation") => isolation(&args),
        _ => eprintln!(
            "usage: zygote_probe baseline N | zygote N [AIRLOCK] [--layer2|--isolate] | isolation AIRLOCK [--no-layer]"
        ),
    }
}

fn count(args: &[String]) -> u32 {
    args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300)
}

fn report(what: &str, n: u32, wall: Duration, cpu: Duration) {
    println!(
        "{what}: wall {:?}/spawn, cpu {:?}/spawn",
        wall / n.max(1),
        cpu / n.max(1)
    );
}

fn zygote(args: &[String]) {
    let n = count(args);
    let layer2 = args.iter().any(|a| a == "--layer2");
    let airlock = args.get(2).filter(|a| !a.starts_with("--"));
    let me = std::env::current_exe().expect("exe");
    let (mut ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut cmd = match airlock {
        Some(a) => {
            let mut c = Command::new(a);
            c.args(["exec", "--new-session", "--"]).arg(&me);
            c
        }
        None => Command::new(&me),
    };
    cmd.arg("helper");
    if layer2 {
        cmd.arg("--layer2");
    }
    let no_subreaper = args.iter().any(|a| a == "--no-subreaper");
    if no_subreaper {
        cmd.arg("--no-subreaper");
    }
    let pidns = args.iter().any(|a| a == "--pidns");
    if pidns {
        cmd.arg("--pidns");
    }
    let isolate = args.iter().any(|a| a == "--isolate");
    if isolate {
        std::fs::create_dir_all("shared/1").expect("mkdir");
        cmd.arg("--isolate");
        let shared = std::env::current_dir().expect("cwd").join("shared");
        let grants = complement_paths(&shared);
        eprintln!("per-command layer: {} rules", grants.len() + 1);
        for p in grants {
            cmd.arg("--grant").arg(p);
        }
    }
    let mut child = cmd
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("helper");
    let (c0, t0) = (cpu(), Instant::now());
    for _ in 0..n {
        let fds: Vec<std::fs::File> = (0..3)
            .map(|i| {
                std::fs::OpenOptions::new()
                    .read(i == 0)
                    .write(i != 0)
                    .open("/dev/null")
                    .expect("null")
            })
            .collect();
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        send_fds(ours.as_raw_fd(), &raw);
        drop(fds);
        let mut st = [0u8; 4];
        ours.read_exact(&mut st).expect("status");
        assert_eq!(i32::from_ne_bytes(st), 0, "command failed");
    }
    let wall = t0.elapsed();
    let ours_cpu = cpu() - c0;
    ours.shutdown(std::net::Shutdown::Write).ok();
    let mut tail = [0u8; 8];
    ours.read_exact(&mut tail).expect("helper cpu");
    child.wait().expect("wait helper");
    let helper_cpu = Duration::from_micros(u64::from_ne_bytes(tail));
    let what = match (airlock.is_some() && !no_subreaper, layer2, isolate) {
        (false, _, _) if pidns => "zygote, per-command pid namespace, no subreaper",
        (false, _, _) if no_subreaper => "zygote, no per-command subreaper",
        (false, _, _) => "zygote, unsandboxed helper",
        (true, _, true) => "zygote, sandboxed helper + per-command TMPDIR-isolating layer",
        (true, false, _) => "zygote, sandboxed helper",
        (true, true, _) => "zygote, sandboxed helper + per-command Landlock layer",
    };
    report(what, n, wall, ours_cpu + helper_cpu);
}

fn send_fds(sock: RawFd, fds: &[RawFd]) {
    send_job(sock, fds, 1);
}

fn send_job(sock: RawFd, fds: &[RawFd], index: u8) {
    let byte = [index];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut _,
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr and cmsg buffers are local and sized for three fds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        assert!(libc::sendmsg(sock, &msg, 0) == 1, "sendmsg");
    }
}

fn recv_fds(sock: RawFd) -> Option<([RawFd; 3], u8)> {
    let mut byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in send_fds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) != 1 {
            return None;
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        let mut out = [0 as RawFd; 3];
        std::ptr::copy_nonoverlapping(libc::CMSG_DATA(c).cast(), out.as_mut_ptr(), 3);
        Some((out, byte[0]))
    }
}

/// O_PATH fds (close-on-exec) of `paths`, skipping missing ones.
fn open_paths(paths: &[std::path::PathBuf]) -> Vec<RawFd> {
    paths
        .iter()
        .filter_map(|p| {
            let c = std::ffi::CString::new(p.clone().into_os_string().into_encoded_bytes()).ok()?;
            // SAFETY: plain open of a NUL-terminated path.
            let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            (fd >= 0).then_some(fd)
        })
        .collect()
}

/// Everything but `dir`, as Landlock rules must say it (there are no deny rules): at each
/// level from `/` down to `dir`'s parent, every entry except the next component of `dir`.
/// Computed by the caller: the restricted helper may not list `/` (an `O_PATH` open of a
/// listed entry is not checked by Landlock, so the helper can still open them).
fn complement_paths(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    let mut level = std::path::PathBuf::from("/");
    for comp in dir.components().skip(1) {
        if let Ok(d) = std::fs::read_dir(&level) {
            paths.extend(
                d.flatten()
                    .filter(|e| e.file_name() != comp.as_os_str())
                    .map(|e| e.path()),
            );
        }
        level.push(comp);
    }
    paths
}

/// Runs two commands through a helper under `AIRLOCK exec`, each with a per-command layer
/// granting its own `shared/<i>` only, each trying to read, list and write the other's dir;
/// checks the result from outside. `--no-layer` shows what happens without the layer.
fn isolation(args: &[String]) {
    let airlock = args
        .get(1)
        .expect("usage: zygote_probe isolation AIRLOCK [--no-layer]");
    let no_layer = args.iter().any(|a| a == "--no-layer");
    let _ = std::fs::remove_dir_all("shared");
    for i in 0..2 {
        std::fs::create_dir_all(format!("shared/{i}")).expect("mkdir");
    }
    let me = std::env::current_exe().expect("exe");
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut cmd = Command::new(airlock);
    cmd.args(["exec", "--new-session", "--"])
        .arg(&me)
        .args(["helper", "--script"]);
    if !no_layer {
        cmd.arg("--isolate");
        let shared = std::env::current_dir().expect("cwd").join("shared");
        for p in complement_paths(&shared) {
            cmd.arg("--grant").arg(p);
        }
    }
    let mut child = cmd
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("helper");
    let mut ours = ours;
    for i in 0..2u8 {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .expect("null");
        let fd = null.as_raw_fd();
        send_job(ours.as_raw_fd(), &[fd, fd, fd], i);
        let mut st = [0u8; 4];
        ours.read_exact(&mut st).expect("status");
    }
    ours.shutdown(std::net::Shutdown::Write).ok();
    let mut tail = [0u8; 8];
    ours.read_exact(&mut tail).ok();
    child.wait().expect("wait helper");
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    println!(
        "own secrets written: {}, {}",
        read("shared/0/secret").trim(),
        read("shared/1/secret").trim()
    );
    println!("1 read 0's secret: {:?}", read("shared/1/stolen").trim());
    println!("1 listed 0's dir: {:?}", read("shared/1/listing").trim());
    println!(
        "planted into the other's dir: 0->1 {}, 1->0 {}",
        std::path::Path::new("shared/1/planted").exists(),
        std::path::Path::new("shared/0/planted").exists()
    );
}

/// O_PATH fds of every entry of `/` but `/tmp`, opened once (close-on-exec).
fn layer2_fds() -> Vec<RawFd> {
    std::fs::read_dir("/")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name() != "tmp")
                .filter_map(|e| {
                    let p = std::ffi::CString::new(e.path().into_os_string().into_encoded_bytes())
                        .ok()?;
                    // SAFETY: plain open of a NUL-terminated path.
                    let fd = unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
                    (fd >= 0).then_some(fd)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// Builds a Landlock ruleset (ABI 1 rights) granting everything below each of `fds`; the fd
/// is close-on-exec (Landlock creates it so).
unsafe fn build_ruleset(fds: &[RawFd]) -> RawFd {
    let all: u64 = (1 << 13) - 1;
    let attr = RulesetAttr {
        handled_access_fs: all,
    };
    unsafe {
        let rs = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0,
        ) as RawFd;
        for &fd in fds {
            // Directory rights on a file are refused: files get execute/write/read only.
            let mut st: libc::stat = std::mem::zeroed();
            let is_dir =
                libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            let pb = PathBeneath {
                allowed_access: if is_dir { all } else { 0b111 },
                parent_fd: fd,
            };
            libc::syscall(
                libc::SYS_landlock_add_rule,
                rs,
                1,
                &pb as *const PathBeneath,
                0,
            );
        }
        rs
    }
}

/// Stacks the layer `rs` on the calling process (exits 90 if refused).
unsafe fn restrict(rs: RawFd) {
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if libc::syscall(libc::SYS_landlock_restrict_self, rs, 0) != 0 {
            libc::_exit(90);
        }
    }
}

fn helper(layer2: bool, isolate: bool, run_script: bool) {
    let l2 = if layer2 { layer2_fds() } else { Vec::new() };
    let cwd = std::env::current_dir().expect("cwd");
    let shared = cwd.join("shared");
    let args: Vec<String> = std::env::args().collect();
    let no_subreaper = args.iter().any(|a| a == "--no-subreaper");
    let pidns = args.iter().any(|a| a == "--pidns");
    let grants: Vec<std::path::PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--grant")
        .map(|w| w[1].clone().into())
        .collect();
    // A ruleset template per TMPDIR slot, built once: the complement of `shared/` plus the
    // slot's own dir. Per command only `landlock_restrict_self` runs (a template can be
    // applied any number of times).
    let grant_fds = open_paths(&grants);
    let templates: Vec<RawFd> = if isolate {
        (0..2)
            .map(|slot| {
                let mut fds = grant_fds.clone();
                fds.extend(open_paths(&[shared.join(slot.to_string())]));
                // SAFETY: raw Landlock calls on fds we own.
                unsafe { build_ruleset(&fds) }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut sock = unsafe { UnixStream::from_raw_fd(libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3)) };
    let mut c0 = None;
    let mut stacks = (vec![0u8; 1 << 16], ());
    while let Some((fds, index)) = recv_fds(0) {
        c0.get_or_insert_with(cpu);
        let script = std::ffi::CString::new(format!(
            "echo secret{index} > shared/{index}/secret; \
             cat shared/{o}/secret >> shared/{index}/stolen; \
             echo x > shared/{o}/planted; ls shared/{o} >> shared/{index}/listing",
            o = 1 - index.min(1)
        ))
        .expect("script");
        let job = Job {
            fds,
            layer2: &l2,
            template: templates.get(usize::from(index.min(1))).copied(),
            script: run_script.then_some(script.as_c_str()),
        };
        // SAFETY: the subreaper runs on its own stack in our address space (CLONE_VM, as the
        // real spawn path does) and makes raw calls only; we wait for it before reusing `job`.
        let status = unsafe {
            // `--no-subreaper`: the helper clones the command itself (the cost of the
            // per-command subreaper, by difference).
            let (entry, flags): (extern "C" fn(*mut libc::c_void) -> libc::c_int, _) = if pidns {
                // The command as init of its own pid namespace: when it exits, the kernel
                // kills every process left in the namespace (needs CAP_SYS_ADMIN; run
                // the helper unsandboxed as root to measure it).
                (
                    command,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_NEWPID | libc::SIGCHLD,
                )
            } else if no_subreaper {
                (command, libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD)
            } else {
                (subreaper, libc::CLONE_VM | libc::SIGCHLD)
            };
            let sub = libc::clone(
                entry,
                stacks.0.as_mut_ptr().add(stacks.0.len()).cast(),
                flags,
                (&job as *const Job).cast_mut().cast(),
            );
            for fd in fds {
                libc::close(fd);
            }
            let mut st = 0;
            libc::waitpid(sub, &mut st, 0);
            st
        };
        sock.write_all(&status.to_ne_bytes()).ok();
    }
    let used = c0.map(|c| cpu() - c).unwrap_or_default();
    sock.write_all(&(used.as_micros() as u64).to_ne_bytes())
        .ok();
}

struct Job<'a> {
    fds: [RawFd; 3],
    layer2: &'a [RawFd],
    template: Option<RawFd>,
    script: Option<&'a std::ffi::CStr>,
}

extern "C" fn subreaper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the helper's `Job`, alive until we are reaped.
    unsafe {
        let job = &*(arg as *const Job);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if !job.layer2.is_empty() {
            restrict(build_ruleset(job.layer2));
        }
        if let Some(rs) = job.template {
            restrict(rs);
        }
        let mut stack = [0u8; 16384];
        let cmd = libc::clone(
            command,
            stack.as_mut_ptr().add(stack.len()).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        );
        let mut cmd_status = 0;
        loop {
            let mut st = 0;
            let p = libc::waitpid(-1, &mut st, libc::__WALL);
            if p < 0 {
                break;
            }
            if p == cmd {
                cmd_status = st;
            }
        }
        libc::_exit(if cmd_status == 0 { 0 } else { 1 });
    }
}

extern "C" fn command(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: as in `subreaper`; dup2 and execve only.
    unsafe {
        let job = &*(arg as *const Job);
        for (i, &fd) in job.fds.iter().enumerate() {
            libc::dup2(fd, i as i32);
        }
        let envp = [std::ptr::null()];
        if let Some(script) = job.script {
            let argv = [
                c"/bin/sh".as_ptr(),
                c"-c".as_ptr(),
                script.as_ptr(),
                std::ptr::null(),
            ];
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
        } else {
            let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
            libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
        }
        libc::_exit(127);
    }
}

/// User+sys time of this process and of all its reaped descendants.
fn cpu() -> Duration {
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the zeroed struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            total += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    total
}
