//! Benchmarks for docs/benchmarks.md ("Proposals"). Run:
//! `cargo bench -p airlock-proposals --bench proposals` (add `-- quick` for fewer runs).
//!
//! A plain timing harness (no criterion) to keep the build small; it prints percentiles.
//! (a) `Store::propose` for a 1,000-line file with 5 changed regions, with the state dir on
//!     the same disk as the target dir: the caller's part (in memory, queued for the writer
//!     thread) and until it is on disk (`flush`, fsync included when durable) — p50/p99 over
//!     many runs.
//! (b) diff of a 10,000-line file with 1 % of the lines changed: this crate's `diff` (and
//!     similar's algorithms on their own) against `git diff --no-index` on the same two
//!     files, in the same run. git's time includes starting a process, so the time of
//!     `git diff --no-index` on two identical files is reported as its floor.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_proposals::{
    Decision, Origin, ProposeInput, ResolveInput, Store, StoreOptions, apply_hunks, diff,
    line_edits,
};

/// CPU time (user + system) of this process: robust against other jobs on the machine.
fn cpu_self() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time (user + system) of all waited-for children so far.
fn cpu_children() -> Duration {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{name:<58} n={:<5} p50={:>9.3?} p99={:>9.3?} min={:>9.3?} max={:>9.3?}",
        samples.len(),
        p50,
        percentile(&samples, 0.99),
        samples[0],
        samples[samples.len() - 1],
    );
    p50
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .collect()
}

/// CPU time per run, for comparing with a child process's CPU time.
fn cpu_time<T>(runs: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = cpu_self();
            black_box(f());
            cpu_self().saturating_sub(t)
        })
        .collect()
}

/// Deterministic source-like lines.
fn source_file(lines: usize, seed: u64) -> Vec<String> {
    let mut x = seed | 1;
    (0..lines)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 5 {
                0 => format!(
                    "    let value_{i} = compute(input_{}, {});\n",
                    x % 97,
                    x % 1000
                ),
                1 => format!("    // note {i}: keep {} in sync with the parser\n", x % 31),
                2 => format!("fn helper_{i}(a: u32, b: &str) -> Result<u32, Error> {{\n"),
                3 => "    }\n".to_owned(),
                _ => format!(
                    "        self.items.push(Item::new({i}, \"{}\"));\n",
                    x % 7919
                ),
            }
        })
        .collect()
}

fn bench_propose(quick: bool, durable: bool) {
    let base_lines = source_file(1000, 7);
    let base: String = base_lines.concat();
    let mut new_lines = base_lines.clone();
    // Five regions like an agent edit: two replacements, an insertion, a deletion, a rename.
    new_lines[100] = "    let value_100 = compute_fast(input_1, 2);\n".into();
    new_lines[101] = "    // computed eagerly\n".into();
    new_lines.insert(400, "    tracing::debug!(\"checkpoint\");\n".into());
    new_lines.remove(600);
    new_lines[800] = "fn assist_800(a: u32) -> u32 {\n".into();
    new_lines[950] = "    }\n    // end of block\n".into();
    let new: String = new_lines.concat();

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let tmp = tempfile::tempdir_in(&target).expect("temp dir in target/");
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).expect("create ws");
    let options = StoreOptions {
        durable,
        ..StoreOptions::default()
    };
    let mut store =
        Store::open_with(&tmp.path().join("state"), &root, options).expect("open store");
    let runs = if quick { 50 } else { 2000 };
    let mut samples = Vec::with_capacity(runs);
    let mut persisted = Vec::with_capacity(runs);
    for i in 0..runs {
        let input = ProposeInput {
            path: root.join(format!("src/file_{}.rs", i % 10)),
            base_text: base.clone(),
            base_version: Some(1),
            is_new_file: false,
            new_text: new.clone(),
            origin: Origin::default(),
        };
        let t = Instant::now();
        let p = store.propose(input).expect("propose");
        samples.push(t.elapsed());
        store.flush().expect("flush");
        persisted.push(t.elapsed());
        assert_eq!(p.hunks.len(), 5);
        // Untimed: clear it so every timed call is a fresh proposal, not a supersede.
        store
            .resolve(ResolveInput {
                id: p.id,
                hunks: None,
                decision: Decision::Reject,
                reason: None,
                edited_text: None,
                current_text: base.clone(),
                current_version: None,
            })
            .expect("reject");
        store.flush().expect("flush");
    }
    if durable {
        report("propose 1,000 lines / 5 regions (caller's part)", samples);
        report("  until on disk (flush, fsynced)", persisted);
        report(
            "  of which diff into hunks (with word highlights)",
            time(runs, || diff(&base, &new)),
        );
    } else {
        report(
            "propose 1,000 lines / 5 regions, durable: false, until on disk",
            persisted,
        );
    }
}

/// Wall time and CPU time (of git itself) of one `git diff --no-index`.
fn git_diff(a: &Path, b: &Path) -> (Duration, Duration) {
    let cpu = cpu_children();
    let t = Instant::now();
    let status = Command::new("git")
        .args(["diff", "--no-index", "--no-color", "--no-ext-diff"])
        .arg(a)
        .arg(b)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run git");
    let d = t.elapsed();
    // --no-index exits 1 when the files differ.
    assert!(status.code() == Some(0) || status.code() == Some(1));
    (d, cpu_children().saturating_sub(cpu))
}

fn bench_diff_vs_git(quick: bool) {
    let old_lines = source_file(10_000, 42);
    let mut new_lines = old_lines.clone();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut changed = std::collections::BTreeSet::new();
    while changed.len() < 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        changed.insert((x % 10_000) as usize);
    }
    for &i in &changed {
        new_lines[i] = format!("    let changed_{i} = rewrite({});\n", x % 17);
    }
    let old: String = old_lines.concat();
    let new: String = new_lines.concat();
    let hunks = diff(&old, &new);
    assert_eq!(apply_hunks(&old, &hunks), new);

    let tmp = tempfile::tempdir().expect("temp dir");
    let (a, b, a2) = (
        tmp.path().join("old.rs"),
        tmp.path().join("new.rs"),
        tmp.path().join("same.rs"),
    );
    std::fs::write(&a, &old).expect("write");
    std::fs::write(&b, &new).expect("write");
    std::fs::write(&a2, &old).expect("write");
    let runs = if quick { 5 } else { 100 };
    println!(
        "10,000 lines, {} changed lines ({} hunks):",
        changed.len(),
        hunks.len()
    );
    let ours = report(
        "  airlock diff() in process (hunks + word highlights)",
        time(runs, || diff(&old, &new)),
    );
    report(
        "  airlock line_edits() in process (no highlights)",
        time(runs, || line_edits(&old, &new)),
    );
    report(
        "  airlock read both files + diff()",
        time(runs, || {
            let o = std::fs::read_to_string(&a).expect("read");
            let n = std::fs::read_to_string(&b).expect("read");
            diff(&o, &n)
        }),
    );
    let ol: Vec<&str> = old.split_inclusive('\n').collect();
    let nl: Vec<&str> = new.split_inclusive('\n').collect();
    for (name, alg) in [
        (
            "  similar Myers, whole file (no prefix trim)",
            similar::Algorithm::Myers,
        ),
        (
            "  similar Patience, whole file",
            similar::Algorithm::Patience,
        ),
        (
            "  similar Histogram, whole file",
            similar::Algorithm::Histogram,
        ),
    ] {
        report(
            name,
            time(runs, || similar::capture_diff_slices(alg, &ol, &nl)),
        );
    }
    let git: Vec<_> = (0..runs).map(|_| git_diff(&a, &b)).collect();
    let same: Vec<_> = (0..runs).map(|_| git_diff(&a, &a2)).collect();
    let git_wall = report(
        "  git diff --no-index, wall (process)",
        git.iter().map(|g| g.0).collect(),
    );
    report(
        "  git diff --no-index, identical files, wall (floor)",
        same.iter().map(|g| g.0).collect(),
    );
    println!("CPU time (user+sys; insensitive to other load on the machine):");
    let ours_cpu = report("  airlock diff(), CPU", cpu_time(runs, || diff(&old, &new)));
    report(
        "  airlock line_edits(), CPU",
        cpu_time(runs, || line_edits(&old, &new)),
    );
    report(
        "  similar Myers on &str lines, CPU",
        cpu_time(runs, || {
            similar::capture_diff_slices(similar::Algorithm::Myers, &ol, &nl)
        }),
    );
    let git_cpu = report(
        "  git diff --no-index, CPU of git",
        git.iter().map(|g| g.1).collect(),
    );
    let floor_cpu = report(
        "  git diff --no-index, identical files, CPU of git (floor)",
        same.iter().map(|g| g.1).collect(),
    );
    println!(
        "  => p50: airlock diff() {:.3?} CPU / {:.3?} wall; git {:.3?} CPU ({:.3?} above its floor) / {:.3?} wall",
        ours_cpu,
        ours,
        git_cpu,
        git_cpu.saturating_sub(floor_cpu),
        git_wall
    );
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` it is absent, and a
    // short smoke run checks that the bench still works without taking minutes.
    let args: Vec<String> = std::env::args().collect();
    let quick = !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "quick");
    bench_propose(quick, true);
    bench_propose(quick, false);
    bench_diff_vs_git(quick);
}
