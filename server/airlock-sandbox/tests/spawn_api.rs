//! The library API the server uses for agent terminals: pipes, kill, spawning from a thread
//! that exits before the command does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::{Duration, Instant};

use airlock_sandbox::{CommandSpec, ExitStatusKind, Limit, Sandbox, SandboxConfig, Stdio};

fn sandbox(ws: &std::path::Path) -> Sandbox {
    Sandbox::prepare(SandboxConfig {
        workspace: ws.to_path_buf(),
        ..SandboxConfig::default()
    })
    .expect("prepare")
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        stdin: Stdio::Null,
        stdout: Stdio::Pipe,
        stderr: Stdio::Null,
        new_session: true,
        ..CommandSpec::default()
    }
}

#[test]
fn piped_output_is_relayed_and_counted() {
    let ws = tempfile::tempdir().unwrap();
    let sb = sandbox(ws.path());
    let mut child = sb.spawn(&sh("echo hello; echo world")).unwrap();
    let mut out = String::new();
    std::fs::File::from(child.stdout.take().unwrap())
        .read_to_string(&mut out)
        .unwrap();
    let report = child.wait().unwrap();
    assert_eq!(out, "hello\nworld\n");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
    assert_eq!(report.bytes_out, 12);
    assert!(report.output_counted);
}

#[test]
fn kill_ends_the_whole_tree() {
    let ws = tempfile::tempdir().unwrap();
    let sb = sandbox(ws.path());
    let child = sb.spawn(&sh("sleep 30 & sleep 30")).unwrap();
    let start = Instant::now();
    child.kill();
    let report = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(report.killed_by, Some(Limit::Killed));
    assert_eq!(report.status, ExitStatusKind::Signaled(9));
}

#[test]
fn the_command_outlives_the_thread_that_spawned_it() {
    // A tokio blocking thread may spawn and then retire; the command must keep running.
    let ws = tempfile::tempdir().unwrap();
    let sb = std::sync::Arc::new(sandbox(ws.path()));
    let sb2 = sb.clone();
    let child =
        std::thread::spawn(move || sb2.spawn(&sh("sleep 1.5; echo done > finished")).unwrap())
            .join()
            .unwrap();
    let report = child.wait().unwrap();
    assert_eq!(report.status, ExitStatusKind::Exited(0), "{report:?}");
    assert!(ws.path().join("finished").exists());
}

/// The children run in the caller's memory on pooled stacks: commands spawned from several
/// threads at once, some failing before exec, each get their own output and exit status, and
/// setup failures are reported without disturbing the others.
#[test]
fn concurrent_spawns_from_many_threads_stay_apart() {
    let ws = tempfile::tempdir().unwrap();
    let sb = sandbox(ws.path());
    std::thread::scope(|s| {
        for t in 0..4 {
            let sb = &sb;
            s.spawn(move || {
                for i in 0..15 {
                    let code = (t * 16 + i) % 100;
                    let mut child = sb
                        .spawn(&sh(&format!("echo {t}-{i}; exit {code}")))
                        .unwrap();
                    let mut out = String::new();
                    std::fs::File::from(child.stdout.take().unwrap())
                        .read_to_string(&mut out)
                        .unwrap();
                    let report = child.wait().unwrap();
                    assert_eq!(out, format!("{t}-{i}\n"));
                    assert_eq!(report.status, ExitStatusKind::Exited(code));
                    if i % 5 == 0 {
                        // A path is not looked up first: execve itself fails in the child.
                        let missing = CommandSpec {
                            program: format!("./no-such-program-{t}-{i}"),
                            ..sh("")
                        };
                        let err = sb.spawn(&missing).err().expect("must fail");
                        assert_eq!(err.exit_code(), 127, "{err}");
                    }
                }
            });
        }
    });
}
