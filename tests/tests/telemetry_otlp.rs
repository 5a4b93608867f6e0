//! OTLP export from the real binary to a real receiver on loopback that decodes the protobuf
//! with the official `opentelemetry-proto` types: events arrive as log records with their
//! attributes, the standard OTEL_* variables are honoured, what is queued is flushed at exit,
//! and a Collector that is down does not hold the server up.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_e2e::{Env, Lsp, READ_THEN_WRITE_SCRIPT, with_script};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use serde_json::json;

/// One decoded log record with its resource attributes.
#[derive(Debug, Clone)]
struct Received {
    event_name: String,
    body: String,
    attrs: HashMap<String, String>,
    resource: HashMap<String, String>,
}

#[derive(Default)]
struct Seen {
    records: Vec<Received>,
    paths: Vec<String>,
    headers: Vec<HashMap<String, String>>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn map(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

/// A minimal OTLP/HTTP receiver: decodes every POST body as an ExportLogsServiceRequest.
fn start_receiver() -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let s = s.clone();
            std::thread::spawn(move || handle(stream, &s));
        }
    });
    (endpoint, seen)
}

fn handle(stream: TcpStream, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = ExportLogsServiceRequest::decode(&body[..]).expect("OTLP protobuf body");
    {
        let mut seen = seen.lock().expect("lock");
        seen.paths.push(
            request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
        );
        seen.headers.push(headers);
        for rl in &request.resource_logs {
            let resource = rl
                .resource
                .as_ref()
                .map(|r| map(&r.attributes))
                .unwrap_or_default();
            for sl in &rl.scope_logs {
                for rec in &sl.log_records {
                    seen.records.push(Received {
                        event_name: rec.event_name.clone(),
                        body: text(&rec.body),
                        attrs: map(&rec.attributes),
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
    let mut stream = stream;
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
    );
}

fn wait_for(seen: &Mutex<Seen>, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(r) = seen.lock().expect("lock").records.iter().find(|r| pred(r)) {
            return r.clone();
        }
        assert!(Instant::now() < deadline, "no OTLP record for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_reach_a_real_otlp_receiver_with_their_attributes() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    let (endpoint, seen) = start_receiver();
    let mut cmd = env.command();
    cmd.arg("serve")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=e2e,team=platform",
        )
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme")
        .env("OTEL_BLRP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED");
    let options = with_script(&env, READ_THEN_WRITE_SCRIPT, json!({})).expect("script");
    let mut lsp = Lsp::spawn_editor(cmd, &env, options).expect("start");
    lsp.request("airlock/prompt", json!({"text": "take notes"}))
        .expect("prompt");

    let read = wait_for(&seen, "fs.read", |r| r.event_name == "fs.read");
    assert_eq!(read.body, "notes.txt");
    assert_eq!(read.attrs["airlock.kind"], "fs.read");
    assert_eq!(read.attrs["airlock.subject"], "notes.txt");
    assert_eq!(read.attrs["airlock.decision"], "allow");
    assert!(read.attrs["airlock.seq"].parse::<u64>().is_ok(), "{read:?}");
    assert!(read.attrs["airlock.session"].starts_with("s-"), "{read:?}");
    assert_eq!(read.resource["service.name"], "airlock");
    assert_eq!(read.resource["team"], "platform");
    assert_eq!(read.resource["deployment.environment"], "e2e");

    let created = wait_for(&seen, "proposal.created", |r| {
        r.event_name == "proposal.created"
    });
    assert_eq!(created.attrs["airlock.subject"], "new.txt");
    assert_eq!(created.attrs["airlock.newFile"], "true");
    assert!(
        created.attrs.contains_key("airlock.proposal"),
        "{created:?}"
    );

    // What is queued at exit is flushed, including the last event.
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    wait_for(&seen, "server.stopped", |r| {
        r.event_name == "server.stopped"
    });

    let seen = seen.lock().expect("lock");
    assert!(
        seen.paths.iter().all(|p| p == "/v1/logs"),
        "{:?}",
        seen.paths
    );
    assert!(
        seen.headers
            .iter()
            .all(|h| h.get("x-tenant").map(String::as_str) == Some("acme")
                && h.get("content-type").map(String::as_str) == Some("application/x-protobuf")),
        "{:?}",
        seen.headers
    );
    // Same order as the bus: seqs strictly increase across all batches.
    let seqs: Vec<u64> = seen
        .records
        .iter()
        .map(|r| r.attrs["airlock.seq"].parse().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn a_collector_that_is_down_does_not_hold_the_server_up() {
    let env = Env::new();
    env.write("notes.txt", "some notes\n");
    // A port with nothing listening: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = env.command();
    cmd.arg("serve")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )
        .env("OTEL_BLRP_SCHEDULE_DELAY", "50");
    let options = with_script(&env, READ_THEN_WRITE_SCRIPT, json!({})).expect("script");
    let mut lsp = Lsp::spawn_editor(cmd, &env, options).expect("start");
    let started = Instant::now();
    let stop = lsp
        .request("airlock/prompt", json!({"text": "take notes"}))
        .expect("prompt works with the collector down");
    assert_eq!(stop["stopReason"], "end_turn");
    let exit_started = Instant::now();
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    let exit = exit_started.elapsed();
    assert!(
        exit < Duration::from_secs(8),
        "exit took {exit:?} with the collector down (turn took {:?})",
        started.elapsed()
    );
}

#[test]
fn an_unsupported_protocol_is_refused_with_a_message_and_the_server_runs() {
    let env = Env::new();
    let mut cmd = env.command();
    cmd.arg("serve")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("AIRLOCK_LOG", "warn");
    let mut lsp = Lsp::spawn(cmd).expect("spawn");
    lsp.initialize(&env.workspace_uri(), json!({}), json!({}))
        .expect("initialize");
    assert_eq!(lsp.shutdown().expect("shutdown"), 0);
    let logs = env.state.join("airlock/logs");
    let log: String = std::fs::read_dir(&logs)
        .expect("log dir")
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        log.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" is not supported")
            && log.contains("OTLP export is off"),
        "{log}"
    );
}
