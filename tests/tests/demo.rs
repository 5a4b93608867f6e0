//! `airlock demo`, the README's first command: runs end to end and shows every step.

use airlock_e2e::Env;

#[test]
fn demo_walks_through_every_step_and_exits_0() -> anyhow::Result<()> {
    let env = Env::new();
    let out = env
        .command()
        .arg("demo")
        .env("TMPDIR", env.dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "src/lib.rs on disk is unchanged: yes",
        "accepted hunk",
        "rejected hunk",
        "keep the greeting as it is",
        "a.wrapping_add(b)",
        "21 src/lib.rs",
        "is denied by policy rule commands.deny \"curl\"",
        "no connection: Permission denied",
        "received no connection",
        "reading .env is denied by policy rule files.deny_read",
        "command.finished",
        "Demo finished (server exit code 0)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("\x1b["),
        "no colors when stdout is not a terminal"
    );
    // Everything it created was temporary and is gone; the user's dirs were never touched.
    let left: Vec<_> = std::fs::read_dir(env.dir.path())?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("airlock-demo-"))
        .collect();
    assert!(left.is_empty(), "demo left {left:?}");
    assert!(
        std::fs::read_dir(&env.state)?.next().is_none(),
        "demo wrote to the user's state dir"
    );
    Ok(())
}
