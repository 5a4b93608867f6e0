//! Shadow workspace setup cost (docs/benchmarks.md): builds a workspace of N small files
//! (default 10,000, in 100 dirs) and times what `agent.isolation = "shadow"` does before the
//! agent starts — the overlayfs probe and, for the copy fallback, the copy and its baseline
//! fingerprints — plus one sweep of an empty upper dir, with the process's RSS growth.
//!
//! `cargo run --release -p airlock-sandbox --example shadow_setup -- [N] [DIR]`
//! (DIR: where to build it, default a temp dir; use one on the state dir's filesystem).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Instant;

use airlock_sandbox::shadow;

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let base = args.next().map(std::path::PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let ws = tmp.path().join("ws");
    for i in 0..n {
        let dir = ws.join(format!("d{:03}", i % 100));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}.rs")),
            format!("// file {i}\nfn f{i}() {{}}\n"),
        )
        .unwrap();
    }
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();

    let t = Instant::now();
    let kind = shadow::pick(&state.join("probe"));
    println!(
        "pick (probe)      {:>9.2?}  -> {}",
        t.elapsed(),
        kind.as_str()
    );

    let upper = state.join("upper");
    std::fs::create_dir_all(&upper).unwrap();
    let t = Instant::now();
    let changes = shadow::overlay_changes(&upper, &ws, &[".git"]);
    println!(
        "sweep empty upper {:>9.2?}  ({} changes)",
        t.elapsed(),
        changes.len()
    );

    let rss0 = rss_kb();
    let t = Instant::now();
    let stats = shadow::create_copy(&ws, &state.join("copy")).unwrap();
    println!(
        "copy              {:>9.2?}  ({} files, {} bytes, {} reflinked)",
        t.elapsed(),
        stats.files,
        stats.bytes,
        stats.reflinked
    );
    let t = Instant::now();
    let copy_base = shadow::stamps(&state.join("copy"));
    let real_base = shadow::stamps(&ws);
    println!(
        "baseline stamps   {:>9.2?}  ({} + {} entries, RSS +{} KiB)",
        t.elapsed(),
        copy_base.len(),
        real_base.len(),
        rss_kb().saturating_sub(rss0)
    );
    let t = Instant::now();
    let again = shadow::stamps(&state.join("copy"));
    let changed = again
        .iter()
        .filter(|(k, v)| copy_base.get(*k) != Some(v))
        .count();
    println!(
        "sweep of the copy {:>9.2?}  ({changed} changed)",
        t.elapsed()
    );
    let _ = Path::new("");
}
