//! Spawns `/bin/true` N times through a prepared sandbox and prints the mean time per spawn,
//! split into `spawn` (until the command exec'd) and `wait` (until the tree is gone and the
//! report is in). Used to profile the spawn path: `perf stat`, `strace -f -c`, `perf record`.
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
        "{:?} per spawn (spawn {:?}, wait {:?})",
        t.elapsed() / n,
        spawn / n,
        wait / n
    );
}
