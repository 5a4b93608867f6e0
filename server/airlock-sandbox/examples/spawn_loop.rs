//! Spawns `/bin/true` N times through a prepared sandbox and prints the mean time per spawn
//! (used to profile the spawn path: `strace -f -c`, `perf`).
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
    let t = std::time::Instant::now();
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
        sb.spawn(&spec).expect("spawn").wait().expect("wait");
    }
    println!("{:?} per spawn", t.elapsed() / n);
}
