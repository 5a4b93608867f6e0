//! Measures what a pre-forked sandbox helper ("zygote") would cost per command, before any
//! of it is built into `Sandbox`: the floor the design can reach.
//!
//! `zygote_probe baseline N` — `std::process::Command::new("/bin/true").status()` N times.
//! `zygote_probe zygote N [AIRLOCK] [--layer2]` — starts a helper (this binary, `helper`
//! mode; under `AIRLOCK exec --new-session --` when given, i.e. already in the namespaces
//! with Landlock and seccomp installed once) with a unix socket as its stdin, then N times:
//! opens /dev/null three times, sends the fds with SCM_RIGHTS, and waits for the status. The
//! helper forks a per-command subreaper, which forks the command (dup2 of the three fds,
//! `execve /bin/true`), reaps every descendant and exits with the command's status. With
//! `--layer2` the subreaper first stacks a per-command Landlock layer of ~25 rules (what
//! TMPDIR isolation between commands sharing one helper would need: the helper's domain
//! grants the whole shared tmp, the layer grants every top-level entry but that one plus the
//! command's own dir).
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
        Some("helper") => helper(args.iter().any(|a| a == "--layer2")),
        Some("baseline") => {
            let n = count(&args);
            let (c0, t0) = (cpu(), Instant::now());
            for _ in 0..n {
                Command::new("/bin/true").status().expect("spawn");
            }
            report("baseline", n, t0.elapsed(), cpu() - c0);
        }
        Some("zygote") => zygote(&args),
        _ => eprintln!("usage: zygote_probe baseline|zygote N [AIRLOCK] [--layer2]"),
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
    let what = match (airlock.is_some(), layer2) {
        (false, _) => "zygote, unsandboxed helper",
        (true, false) => "zygote, sandboxed helper",
        (true, true) => "zygote, sandboxed helper + per-command Landlock layer",
    };
    report(what, n, wall, ours_cpu + helper_cpu);
}

fn send_fds(sock: RawFd, fds: &[RawFd]) {
    let byte = [1u8];
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

fn recv_fds(sock: RawFd) -> Option<[RawFd; 3]> {
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
        Some(out)
    }
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

/// Stacks a Landlock layer granting everything below each of `fds` (ABI 1 rights).
unsafe fn stack_layer(fds: &[RawFd]) {
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
            let pb = PathBeneath {
                allowed_access: all,
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
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if libc::syscall(libc::SYS_landlock_restrict_self, rs, 0) != 0 {
            libc::_exit(90);
        }
        libc::close(rs);
    }
}

fn helper(layer2: bool) {
    let l2 = if layer2 { layer2_fds() } else { Vec::new() };
    let mut sock = unsafe { UnixStream::from_raw_fd(libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3)) };
    let mut c0 = None;
    let mut stacks = (vec![0u8; 1 << 16], ());
    while let Some(fds) = recv_fds(0) {
        c0.get_or_insert_with(cpu);
        let job = Job {
            fds,
            layer2: if layer2 { &l2 } else { &[] },
        };
        // SAFETY: the subreaper runs on its own stack in our address space (CLONE_VM, as the
        // real spawn path does) and makes raw calls only; we wait for it before reusing `job`.
        let status = unsafe {
            let sub = libc::clone(
                subreaper,
                stacks.0.as_mut_ptr().add(stacks.0.len()).cast(),
                libc::CLONE_VM | libc::SIGCHLD,
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
}

extern "C" fn subreaper(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the helper's `Job`, alive until we are reaped.
    unsafe {
        let job = &*(arg as *const Job);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if !job.layer2.is_empty() {
            stack_layer(job.layer2);
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
        let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null()];
        libc::execve(argv[0], argv.as_ptr(), envp.as_ptr());
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
