//! Events/s through the bus into the audit log and the editor queue, and the memory the bus
//! keeps when the editor never reads.
//!
//! Run: `cargo bench -p airlock-telemetry --bench bus`. Results and method: docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use airlock_telemetry::audit::AuditOptions;
use airlock_telemetry::{Bus, Event, EventKind};
use criterion::{Criterion, Throughput};

fn typical(i: u64) -> Event {
    Event::new(
        EventKind::FsRead,
        format!("src/module_{}/file_{i}.rs", i % 50),
    )
    .decision("allow")
    .rule(Some("read-src".into()), Some("workspace".into()))
}

/// A command line long enough to take redaction's slow path.
fn command(i: u64) -> Event {
    Event::new(
        EventKind::CommandFinished,
        format!("cargo test -p airlock-telemetry --all-targets -- --test-threads={i}"),
    )
    .decision("allow")
    .duration(Duration::from_millis(1234))
    .field("exitCode", 0)
    .field("maxRssKb", 123_456)
    .field("bytesOut", 4096)
}

fn bus_with_audit(dir: &std::path::Path) -> Bus {
    let bus = Bus::new("s-bench");
    bus.open_audit(dir, AuditOptions::default());
    bus
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("bus");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(1));

    g.bench_function("emit/no sinks", |b| {
        let bus = Bus::new("s-bench");
        bus.detach_editor();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(bus.emit(typical(i)));
        });
    });
    // The editor queue is never drained here: the stuck-editor case, where every push also
    // drops the oldest event.
    g.bench_function("emit/editor queue (stuck editor)", |b| {
        let bus = Bus::new("s-bench");
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(bus.emit(typical(i)));
        });
    });
    g.bench_function("emit/audit log", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = bus_with_audit(dir.path());
        bus.detach_editor();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(bus.emit(typical(i)));
        });
    });
    g.bench_function("emit/audit log + editor queue", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = bus_with_audit(dir.path());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(bus.emit(typical(i)));
        });
    });
    g.bench_function("emit/audit log + editor queue, command event", |b| {
        let dir = tempfile::tempdir().expect("tempdir");
        let bus = bus_with_audit(dir.path());
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(bus.emit(command(i)));
        });
    });
    g.finish();
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// RSS while emitting into the audit log and an editor queue nobody drains.
fn rss_probe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = bus_with_audit(dir.path());
    let start = Instant::now();
    let mut emitted = 0u64;
    println!("rss probe (audit log + editor queue never drained):");
    for target in [10_000u64, 100_000, 1_000_000, 2_000_000] {
        while emitted < target {
            emitted += 1;
            bus.emit(typical(emitted));
        }
        println!(
            "  {emitted:>9} events: RSS {:>7} kB, editor dropped {:>9}, {:.0} events/s so far",
            rss_kb(),
            bus.stats().editor_dropped,
            emitted as f64 / start.elapsed().as_secs_f64()
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    // `cargo test --benches` runs this binary in test mode; the probe is for real runs only.
    if std::env::args().any(|a| a == "--bench") {
        rss_probe();
    }
}
