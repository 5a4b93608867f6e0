//! Spawns `/bin/true` N times through a prepared sandbox (or, with `plain`, with
//! `std::process::Command`) and prints the mean wall time per spawn, split into `spawn` (until
//! the command exec'd) and `wait` (until the tree is gone and the report is in), and the mean
//! CPU time (user+sys of this process and every reaped descendant: the steady number on a
//! loaded machine). Used by scripts/bench-sandbox.sh and to profile the spawn path (`perf
//! record`, `strace -f -c`).
use std::time::{Duration, Instant};

use airlock_sandbox::{CommandSpec, Sandbox, SandboxConfig, Stdio};

fn main() {
    let mut args = std::env::args().skip(1);
    let ws = args
        .next()
        .expect("usage: spawn_loop WORKSPACE [N] [plain]");
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let plain = args.next().is_some();
    let sb = Sandbox::prepare(SandboxConfig {
        workspace: ws.into(),
        ..SandboxConfig::default()
    })
    .expect("prepare");
    let (mut spawn, mut wait) = (Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    for _ in 0..n {
        if plain {
            std::process::Command::new("/bin/true")
                .status()
                .expect("spawn");
            continue;
        }
        let spec = CommandSpec {
            program: "/bin/true".into(),
            stdin: Stdio::Null,
            stdout: Stdio::Null,
            stderr: Stdio::Null,
            new_session: true,
            ..CommandSpec::default()
        };
        let t0 = Instant::now();
        let child = sb.spawn(&spec).expect("spawn");
        let t1 = Instant::now();
        child.wait().expect("wait");
        spawn += t1 - t0;
        wait += t1.elapsed();
    }
    println!(
        "{:?} per spawn (spawn {:?}, wait {:?}), cpu {:?} per spawn",
        t.elapsed() / n,
        spawn / n,
        wait / n,
        cpu_time() / n
    );
}

/// User+sys time of this process and of all its reaped descendants (a supervisor's rusage
/// includes the commands it reaped).
fn cpu_time() -> Duration {
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
