//! Agent bridge benchmark: ACP message throughput through the client side, request round
//! trips, and prompt → first update latency, against the scripted agent in a real child
//! process over real pipes.
//!
//! Run: `cargo bench -p airlock-acp --bench bridge`. The bench executable is its own agent:
//! started with `AIRLOCK_BENCH_AGENT=<script file>` it runs the scripted agent
//! (`airlock_acp::mock`, the code behind `airlock agent mock`) on stdio, so no other binary
//! has to be built. Results go to stdout; record them in docs/benchmarks.md ("Agent bridge").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use airlock_acp::{AgentClient, AgentConfig, AgentEvent, AgentRequest, ClientOptions};

const AGENT_ENV: &str = "AIRLOCK_BENCH_AGENT";
const THROUGHPUT_MESSAGES: u32 = 100_000;
const READS: usize = 2_000;
const LATENCY_PROMPTS: usize = 300;
const RUNS: usize = 3;

fn main() {
    if let Ok(script) = std::env::var(AGENT_ENV) {
        let script = airlock_acp::script::load(Path::new(&script)).expect("bench script");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(airlock_acp::mock::run_stdio(script)).unwrap();
        rt.shutdown_timeout(Duration::from_millis(100));
        return;
    }
    // `cargo bench` passes `--bench`; anything else (e.g. `cargo test --benches`) is a smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(full));
}

async fn start(dir: &Path, script: &str) -> (AgentClient, airlock_acp::AgentEvents) {
    let script_path = dir.join("bench.toml");
    std::fs::write(&script_path, script).unwrap();
    let config = AgentConfig {
        command: vec![std::env::current_exe().unwrap().display().to_string()],
        env: BTreeMap::from([(AGENT_ENV.to_owned(), script_path.display().to_string())]),
        cwd: dir.to_path_buf(),
    };
    AgentClient::spawn(&config, dir, ClientOptions::default())
        .await
        .expect("bench agent starts")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn run(full: bool) {
    let dir = std::env::temp_dir().join(format!("airlock-acp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let (messages, reads, prompts, runs) = if full {
        (THROUGHPUT_MESSAGES, READS, LATENCY_PROMPTS, RUNS)
    } else {
        (1_000, 20, 5, 1)
    };

    // 1. Update throughput: one turn streaming `messages` agent_message_chunks.
    let mut rates = Vec::new();
    for _ in 0..runs {
        let script = format!(
            "[[turn]]\n[[turn.step]]\nmessage = \"chunk of streamed text\"\nrepeat = {messages}\n"
        );
        let (client, mut events) = start(&dir, &script).await;
        let started = Instant::now();
        let prompt = tokio::spawn({
            let client = client.clone();
            async move { client.prompt("go").await }
        });
        let mut seen = 0u32;
        while seen < messages {
            match events.recv().await.expect("events") {
                AgentEvent::Update(_) => seen += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        prompt.await.unwrap().unwrap();
        let elapsed = started.elapsed();
        rates.push(f64::from(messages) / elapsed.as_secs_f64());
        client.shutdown().await;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "updates: {messages} agent_message_chunk notifications per turn, {runs} runs: median {:.0} msg/s (min {:.0}, max {:.0})",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1]
    );

    // 2. Request round trips: fs/read_text_file answered by the "server" loop.
    std::fs::write(dir.join("f.txt"), "hello\n").unwrap();
    let mut script = String::from("[[turn]]\n");
    for _ in 0..reads {
        script.push_str("[[turn.step]]\nread = \"f.txt\"\n");
    }
    let mut rates = Vec::new();
    for _ in 0..runs {
        let (client, mut events) = start(&dir, &script).await;
        let started = Instant::now();
        let prompt = tokio::spawn({
            let client = client.clone();
            async move { client.prompt("go").await }
        });
        let mut answered = 0;
        while answered < reads {
            if let AgentEvent::Request(AgentRequest::ReadTextFile { respond, .. }) =
                events.recv().await.expect("events")
            {
                respond.send(Ok(String::from("hello\n")));
                answered += 1;
            }
        }
        prompt.await.unwrap().unwrap();
        rates.push(reads as f64 / started.elapsed().as_secs_f64());
        client.shutdown().await;
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "requests: {reads} sequential fs/read_text_file round trips (each also reports a message), {runs} runs: median {:.0} req/s",
        rates[rates.len() / 2]
    );

    // 3. Latency: prompt sent → first update received, on a warm connection.
    let (client, mut events) = start(
        &dir,
        "[[turn]]\nmatch = \"ping\"\n[[turn.step]]\nmessage = \"pong\"\n",
    )
    .await;
    let mut latencies = Vec::new();
    for _ in 0..prompts {
        let started = Instant::now();
        let prompt = tokio::spawn({
            let client = client.clone();
            async move { client.prompt("ping").await }
        });
        loop {
            if let AgentEvent::Update(_) = events.recv().await.expect("events") {
                break;
            }
        }
        latencies.push(started.elapsed());
        prompt.await.unwrap().unwrap();
    }
    client.shutdown().await;
    latencies.sort();
    println!(
        "latency: prompt → first update over {prompts} prompts: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );

    // 4. Cold start: spawn + initialize + session/new.
    let mut starts = Vec::new();
    for _ in 0..if full { 20 } else { 2 } {
        let started = Instant::now();
        let (client, _events) = start(&dir, "[[turn]]\n[[turn.step]]\nmessage = \"x\"\n").await;
        starts.push(started.elapsed());
        client.shutdown().await;
    }
    starts.sort();
    println!(
        "startup: spawn + initialize + session/new: p50 {:?}, max {:?}",
        percentile(&starts, 0.5),
        starts[starts.len() - 1]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
