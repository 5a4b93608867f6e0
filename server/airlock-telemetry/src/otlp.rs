//! OpenTelemetry export: every event as an OTLP log record, over HTTP/protobuf.
//!
//! Why log records and not spans: an event is a point in time with attributes and no parent or
//! child; a log record (OTLP "event" = log record with an event name) maps one to one, so what a
//! Collector receives is exactly what the audit log holds. Durations travel as the
//! `airlock.duration_ms` attribute. A Collector can still turn them into spans or metrics.
//!
//! Guarantees:
//! - off unless an endpoint is configured (`OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`), and off when `OTEL_SDK_DISABLED=true`; the other standard
//!   variables (`OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_SERVICE_NAME`, `OTEL_BLRP_*`) are honoured by the OpenTelemetry SDK;
//! - [`OtlpExporter::export`] never blocks: records go into the SDK's bounded batch queue
//!   (`OTEL_BLRP_MAX_QUEUE_SIZE`, default 2048) and are dropped when it is full, so a Collector
//!   that is down costs neither memory nor the caller's time;
//! - each batch is tried at most [`ATTEMPTS`] times with a short backoff, then dropped.
//!
//! Transport: plain `http://` with a small blocking HTTP/1.1 client on the SDK's export thread,
//! which keeps the build free of an async HTTP and TLS stack. For `https://` Collectors, run a
//! local Collector (the usual agent deployment) and point Airlock at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::{Key, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};

use crate::Event;

/// Tries per batch before it is dropped.
pub const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("OTLP export: {variable}={value:?} is not supported (only http/protobuf is)")]
    Protocol {
        variable: &'static str,
        value: String,
    },
    #[error("OTLP export: endpoint {endpoint:?} is not supported: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("OTLP export: cannot build the exporter: {0}")]
    Build(String),
}

/// Where OTLP records go, read from the standard environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    pub endpoint: String,
    pub timeout: Duration,
}

impl OtlpConfig {
    /// `Ok(None)` when export is off (no endpoint, or `OTEL_SDK_DISABLED=true`).
    pub fn from_env() -> Result<Option<OtlpConfig>, OtlpError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        for variable in [
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            if let Some(value) = var(variable) {
                if value.trim() != "http/protobuf" {
                    return Err(OtlpError::Protocol { variable, value });
                }
                break;
            }
        }
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            // The signal-specific variable is used as is; the general one gets `/v1/logs`.
            (Some(e), _) => e,
            (None, Some(e)) => format!("{}/v1/logs", e.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        if !endpoint.starts_with("http://") {
            return Err(OtlpError::Endpoint {
                endpoint,
                reason: "only http:// endpoints are supported; send to a local Collector".into(),
            });
        }
        let timeout = var("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis);
        Ok(Some(OtlpConfig { endpoint, timeout }))
    }
}

/// The OTLP sink of the bus.
pub struct OtlpExporter {
    provider: SdkLoggerProvider,
    logger: SdkLogger,
}

impl OtlpExporter {
    /// Builds the exporter from the environment; `Ok(None)` when export is off.
    pub fn from_env() -> Result<Option<OtlpExporter>, OtlpError> {
        OtlpConfig::from_env()?.map(OtlpExporter::new).transpose()
    }

    pub fn new(config: OtlpConfig) -> Result<OtlpExporter, OtlpError> {
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .with_timeout(config.timeout)
            .with_http_client(BlockingHttp {
                timeout: config.timeout,
            })
            .build()
            .map_err(|e| OtlpError::Build(e.to_string()))?;
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource())
            .with_batch_exporter(exporter)
            .build();
        let logger = provider.logger("airlock");
        Ok(OtlpExporter { provider, logger })
    }

    /// Queues one event; never blocks (see the module docs).
    pub fn export(&self, event: &Event) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(event.kind.as_str());
        let ts = UNIX_EPOCH + Duration::from_millis(event.ts_ms);
        record.set_timestamp(ts);
        record.set_observed_timestamp(SystemTime::now());
        let (severity, text) = severity(event);
        record.set_severity_number(severity);
        record.set_severity_text(text);
        record.set_body(AnyValue::String(event.subject.clone().into()));
        record.add_attribute("airlock.kind", event.kind.as_str());
        record.add_attribute("airlock.seq", event.seq as i64);
        record.add_attribute("airlock.session", event.session.clone());
        record.add_attribute("airlock.subject", event.subject.clone());
        if let Some(d) = &event.decision {
            record.add_attribute("airlock.decision", d.clone());
        }
        if let Some(r) = &event.rule {
            record.add_attribute("airlock.rule", r.clone());
        }
        if let Some(l) = &event.layer {
            record.add_attribute("airlock.layer", l.clone());
        }
        if let Some(ms) = event.duration_ms {
            record.add_attribute("airlock.duration_ms", ms);
        }
        for (key, value) in &event.fields {
            record.add_attribute(Key::new(format!("airlock.{key}")), any_value(value));
        }
        self.logger.emit(record);
    }

    /// Sends what is queued (bounded by the export timeout). For shutdown and tests.
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!("OTLP flush failed: {err}");
        }
    }

    pub fn shutdown(&self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(2));
    }
}

/// The SDK's resource (which reads `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME`), with
/// `service.name = airlock` unless the environment named the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if !named {
        builder = builder.with_service_name("airlock");
    }
    builder.build()
}

fn severity(event: &Event) -> (Severity, &'static str) {
    use crate::EventKind::*;
    match event.kind {
        PolicyError | AuditError | AgentFailed => (Severity::Error, "ERROR"),
        PolicyWarning | AuditGap => (Severity::Warn, "WARN"),
        _ if event.decision.as_deref() == Some("deny") => (Severity::Warn, "WARN"),
        _ => (Severity::Info, "INFO"),
    }
}

fn any_value(value: &serde_json::Value) -> AnyValue {
    match value {
        serde_json::Value::Bool(b) => AnyValue::Boolean(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => AnyValue::Int(i),
            (None, Some(f)) => AnyValue::Double(f),
            _ => AnyValue::String(n.to_string().into()),
        },
        serde_json::Value::String(s) => AnyValue::String(s.clone().into()),
        // Nested values stay readable as JSON rather than becoming OTLP maps of maps.
        other => AnyValue::String(other.to_string().into()),
    }
}

/// A minimal blocking HTTP/1.1 client for `http://` endpoints, run on the SDK's export thread.
#[derive(Debug, Clone)]
struct BlockingHttp {
    timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for BlockingHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut last_err: Option<HttpError> = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            match self.post_once(&request) {
                // Retry only what the OTLP spec calls retryable: 429, 502, 503, 504.
                Ok(resp) if matches!(resp.status().as_u16(), 429 | 502 | 503 | 504) => {
                    last_err = Some(format!("collector answered {}", resp.status()).into());
                }
                Ok(resp) => return Ok(resp),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| "OTLP export failed".into()))
    }
}

impl BlockingHttp {
    fn post_once(&self, request: &Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri();
        let host = uri.host().ok_or("OTLP endpoint has no host")?;
        let port = uri.port_u16().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or("OTLP endpoint host does not resolve")?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
            request.method(),
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad HTTP status line from the collector: {status_line:?}"))?;
        let mut length: Option<usize> = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().ok();
            }
        }
        // The body only matters for error messages; cap it so a bad peer cannot grow memory.
        let mut body = Vec::new();
        let cap = length.unwrap_or(64 * 1024).min(64 * 1024) as u64;
        reader.take(cap).read_to_end(&mut body)?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}
