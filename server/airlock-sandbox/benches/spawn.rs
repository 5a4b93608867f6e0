//! In-server spawn cost: the path the agent's terminals take. A long-running process spawns
//! `/bin/true` unsandboxed (std::process::Command, posix_spawn) and through a prepared
//! `Sandbox` (Landlock ruleset per command, seccomp, supervisor, private TMPDIR), side by side.
//! Results: docs/benchmarks.md.

use std::process::Command;

use airlock_sandbox::{CommandSpec, Sandbox, SandboxConfig, Stdio};
use criterion::{Criterion, criterion_group, criterion_main};

fn spec() -> CommandSpec {
    CommandSpec {
        program: "/bin/true".into(),
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Null,
        new_session: true,
        ..CommandSpec::default()
    }
}

fn prepare(ws: &std::path::Path) -> Sandbox {
    Sandbox::prepare(SandboxConfig {
        workspace: ws.to_path_buf(),
        deny_read_globs: vec![".env*".into()],
        ..SandboxConfig::default()
    })
    .expect("prepare sandbox")
}

fn bench(c: &mut Criterion) {
    let plain = tempfile::tempdir().expect("tempdir");
    let repo = tempfile::tempdir().expect("tempdir");
    // A workspace with protected paths and a deny-read file: mounts in a user namespace.
    std::fs::create_dir_all(repo.path().join(".git/hooks")).expect("mkdir");
    std::fs::write(repo.path().join(".git/config"), "[core]\n").expect("write");
    std::fs::write(repo.path().join(".env"), "SECRET=1\n").expect("write");

    let sb_plain = prepare(plain.path());
    let sb_repo = prepare(repo.path());

    let mut g = c.benchmark_group("spawn_true");
    g.bench_function("unsandboxed", |b| {
        b.iter(|| {
            let st = Command::new("/bin/true").status().expect("spawn");
            assert!(st.success());
        })
    });
    g.bench_function("sandboxed_empty_workspace", |b| {
        b.iter(|| {
            let r = sb_plain
                .spawn(&spec())
                .expect("spawn")
                .wait()
                .expect("wait");
            assert_eq!(r.status.code(), 0);
        })
    });
    g.bench_function("sandboxed_git_workspace", |b| {
        b.iter(|| {
            let r = sb_repo.spawn(&spec()).expect("spawn").wait().expect("wait");
            assert_eq!(r.status.code(), 0);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
