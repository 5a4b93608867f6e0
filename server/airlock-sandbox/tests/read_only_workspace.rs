//! `workspace_read_only`: the mode the server runs the agent process in. Effects are checked
//! from outside the sandbox, with and without user namespaces (the Landlock-only fallback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use airlock_sandbox::{CommandSpec, ExitStatusKind, Sandbox, SandboxConfig, Stdio};

fn run(no_userns: bool) {
    let ws = tempfile::tempdir().unwrap();
    let extra = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("code.rs"), "fn main() {}\n").unwrap();
    std::fs::write(ws.path().join(".env"), "SECRET=1\n").unwrap();
    std::fs::create_dir(ws.path().join("sub")).unwrap();
    let script = format!(
        "cat code.rs > \"$TMPDIR/copy\" && cp \"$TMPDIR/copy\" {extra}/copy; \
         cat .env > {extra}/env 2>/dev/null; \
         echo new > created; echo x >> code.rs; rm -f code.rs; echo y > sub/f; mkdir d; \
         chmod 000 code.rs; exit 0",
        extra = extra.path().display()
    );
    // The sandbox is prepared in a child process so that AIRLOCK_TEST_NO_USERNS reaches only it.
    let exe = std::env::current_exe().unwrap();
    let status = Command::new(exe)
        .args(["--exact", "child_runs_the_script", "--nocapture"])
        .env("RO_CHILD_WS", ws.path())
        .env("RO_CHILD_EXTRA", extra.path())
        .env("RO_CHILD_SCRIPT", script)
        .env("AIRLOCK_TEST_NO_USERNS", if no_userns { "1" } else { "0" })
        .status()
        .unwrap();
    assert!(status.success());

    let meta = std::fs::metadata(ws.path().join("code.rs")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if no_userns {
        // Landlock does not control chmod: only the read-only mount (user namespace) stops
        // it. Documented in docs/security.md; restore so the content can be checked.
        std::fs::set_permissions(
            ws.path().join("code.rs"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    } else {
        assert_ne!(mode, 0, "chmod reached the workspace");
    }
    assert_eq!(
        std::fs::read_to_string(ws.path().join("code.rs")).unwrap(),
        "fn main() {}\n",
        "the workspace file was changed or removed"
    );
    for p in ["created", "sub/f", "d"] {
        assert!(
            !ws.path().join(p).exists(),
            "{p} was created in the workspace"
        );
    }
    // Readable, and the TMPDIR and extra_write stayed writable.
    assert_eq!(
        std::fs::read_to_string(extra.path().join("copy")).unwrap(),
        "fn main() {}\n"
    );
    let leaked = std::fs::read_to_string(extra.path().join("env")).unwrap_or_default();
    assert!(!leaked.contains("SECRET"), "deny-read file was readable");
}

#[test]
fn read_only_workspace_with_user_namespaces() {
    run(false);
}

#[test]
fn read_only_workspace_landlock_only() {
    run(true);
}

/// Not a test on its own: the body of the child process started by `run`.
#[test]
fn child_runs_the_script() {
    let (Some(ws), Some(extra), Some(script)) = (
        std::env::var_os("RO_CHILD_WS"),
        std::env::var_os("RO_CHILD_EXTRA"),
        std::env::var("RO_CHILD_SCRIPT").ok(),
    ) else {
        return;
    };
    let sb = Sandbox::prepare(SandboxConfig {
        workspace: ws.into(),
        workspace_read_only: true,
        extra_write: vec![extra.into()],
        deny_read_globs: vec![".env*".into()],
        ..SandboxConfig::default()
    })
    .expect("prepare");
    let report = sb
        .spawn(&CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script],
            stdin: Stdio::Null,
            new_session: true,
            ..CommandSpec::default()
        })
        .expect("spawn")
        .wait()
        .expect("wait");
    assert_eq!(report.status, ExitStatusKind::Exited(0));
}
