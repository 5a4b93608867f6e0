//! Decision latency against a 200-rule policy (issue 4 target: under 50 µs for a compound
//! command of 5 parts). Results go to docs/benchmarks.md.
//!
//! Time is the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the machines this runs on are shared 2-core VMs where wall time mostly measures the other
//! builds. Falls back to wall time if that clock is unavailable.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use airlock_policy::{Policy, PolicyPaths, load};
use criterion::{Criterion, criterion_group, criterion_main};

/// 50 file rules, 100 command rules, 50 network rules.
fn policy_text() -> String {
    let list = |items: Vec<String>| {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let deny_read = list((0..25).map(|i| format!("secret{i}/**")).collect());
    let protect = list((0..25).map(|i| format!("*.lock{i}")).collect());
    let allow = list((0..50).map(|i| format!("tool{i} sub{i}")).collect());
    let ask = list((0..25).map(|i| format!("ask{i} --flag")).collect());
    let deny = list((0..25).map(|i| format!("bad{i}")).collect());
    let net_allow = list((0..25).map(|i| format!("*.host{i}.example")).collect());
    let net_deny = list((0..25).map(|i| format!("deny{i}.example:443")).collect());
    format!(
        "version = 1\n[files]\ndeny_read = [{deny_read}]\nprotect = [{protect}]\n\
         [commands]\nallow = [\"cargo build\", \"cargo test\", \"git diff\", \"grep\", {allow}]\n\
         ask = [{ask}]\ndeny = [{deny}]\n[network]\nallow = [{net_allow}]\ndeny = [{net_deny}]\n"
    )
}

fn policy(dir: &Path) -> Policy {
    let user = dir.join("user.toml");
    std::fs::write(&user, policy_text()).unwrap();
    let paths = PolicyPaths {
        workspace_root: dir.to_path_buf(),
        user_policy: user,
        managed_policy: dir.join("none.toml"),
        trust_store: dir.join("trust.json"),
    };
    load(&paths).unwrap().policy
}

/// CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
fn cpu_now() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Runs `f` `iters` times and returns the CPU time it took (wall time as a fallback).
fn timed<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let (cpu, wall) = (cpu_now(), Instant::now());
    for _ in 0..iters {
        black_box(f());
    }
    match (cpu, cpu_now()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => wall.elapsed(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let p = policy(dir.path());
    let compound = "cargo build && cargo test --all; git diff | grep foo > out.txt";
    assert_eq!(p.decide_command(compound).parts.len(), 5);
    let nested = "bash -c 'timeout 5 env A=1 cargo test && echo $(date)'";
    let argv: Vec<String> = ["cargo", "test", "--all"].map(String::from).to_vec();
    let file = Path::new("src/module/file.rs");

    c.bench_function("decide_command/compound_5_parts", |b| {
        b.iter_custom(|n| timed(n, || p.decide_command(black_box(compound))))
    });
    c.bench_function("decide_command/simple", |b| {
        b.iter_custom(|n| timed(n, || p.decide_command(black_box("cargo test --all"))))
    });
    c.bench_function("decide_command/sh_c_nested", |b| {
        b.iter_custom(|n| timed(n, || p.decide_command(black_box(nested))))
    });
    c.bench_function("decide_argv/simple", |b| {
        b.iter_custom(|n| timed(n, || p.decide_argv(black_box(&argv))))
    });
    c.bench_function("decide_read", |b| {
        b.iter_custom(|n| timed(n, || p.decide_read(black_box(file))))
    });
    c.bench_function("decide_write", |b| {
        b.iter_custom(|n| timed(n, || p.decide_write(black_box(file))))
    });
    c.bench_function("decide_domain", |b| {
        b.iter_custom(|n| {
            timed(n, || {
                p.decide_domain(black_box("static.host7.example"), Some(443))
            })
        })
    });
    c.bench_function("load/200_rules", |b| {
        b.iter_custom(|n| timed(n, || policy(dir.path())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
