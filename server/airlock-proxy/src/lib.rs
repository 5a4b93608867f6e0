//! Airlock's egress proxy: the only network path out of the sandbox.
//!
//! The proxy listens on `127.0.0.1` (an ephemeral port) and speaks HTTP `CONNECT` and plain
//! HTTP forwarding (absolute-form requests), and SOCKS5 `CONNECT` with the same decisions.
//! It guarantees:
//!
//! - **Every target is decided before any byte leaves.** The host is normalized
//!   (case, trailing dot; non-ASCII names are refused, clients send the `xn--` form) and handed
//!   to the caller's decision function with the port; only `allow` connects.
//! - **The proxy resolves names itself** and connects to the address it resolved. IP-literal
//!   targets (including decimal/hex/octal IPv4 forms) and names that resolve to loopback,
//!   private, link-local, unique-local or unspecified addresses are refused unless that address
//!   is *explicitly* allowed (an exact, non-wildcard allow rule for the IP literal).
//! - **Requests are not smuggled.** A plain-HTTP request whose `Host` header differs from its
//!   absolute URI is refused, and so is ambiguous body framing (`Transfer-Encoding` with
//!   `Content-Length`, differing lengths). One request per client connection: exactly its body
//!   is forwarded (anything pipelined after it is dropped, never sent to the target unchecked),
//!   and both the target and the client are told `Connection: close`.
//! - **`ask` holds the connection, never the caller.** When the policy says `ask` and the
//!   owner gave an [`AskFn`] (`airlock serve`), the connection's own thread waits for the
//!   owner's answer at most [`ProxyConfig::ask_timeout`]; no answer is a denial. Without one
//!   (`airlock exec`: nobody to ask) `ask` is a denial at once. IP-literal targets are never
//!   asked about: they need an exact allow rule.
//! - **Every attempt is an [`Attempt`]** (host, port, verdict, rule, who decided, bytes
//!   up/down, duration) handed to the caller's event function once the connection ends.

mod http;
mod socks;
mod target;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use airlock_policy::{Decision, Layer, Verdict};
pub use target::{HostRule, explicitly_allows, is_internal, normalize_host, parse_ip_literal};

/// Decides one `(host, port)`; host is already normalized (lowercase, no trailing dot).
pub type DecideFn = dyn Fn(&str, u16) -> Decision + Send + Sync;
/// Receives one record per attempt, when the attempt ends.
pub type EventFn = dyn Fn(Attempt) + Send + Sync;
/// Asks the proxy's owner about an `ask` verdict for `(host, port)` (the decision carries the
/// rule). Called on the connection's thread; must not block: it hands the question over and
/// returns where the answer will arrive. A dropped sender is a denial.
pub type AskFn = dyn Fn(&str, u16, &Decision) -> std::sync::mpsc::Receiver<AskAnswer> + Send + Sync;

/// The owner's answer to an `ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskAnswer {
    pub allow: bool,
    /// [`DecidedBy::User`] or [`DecidedBy::Session`] (remembered from an earlier answer).
    pub by: DecidedBy,
}

/// Who decided an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// The policy's rules (also `ask` where nobody can be asked, which is a denial).
    Policy,
    /// The user, asked for this connection.
    User,
    /// The user's earlier "allow for this session" (or "deny").
    Session,
    /// Nobody answered within the ask timeout: denied.
    Timeout,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Policy => "policy",
            DecidedBy::User => "user",
            DecidedBy::Session => "session",
            DecidedBy::Timeout => "timeout",
        }
    }
}

/// How a client asked for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Connect,
    Http,
    Socks,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Connect => "connect",
            Via::Http => "http",
            Via::Socks => "socks5",
        }
    }
}

/// One connection attempt through the proxy.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Normalized target host as the client named it (an IP literal in canonical form).
    pub host: String,
    pub port: u16,
    pub via: Via,
    /// `allow` only when bytes could flow; anything refused is `deny` (also for `ask`).
    pub verdict: Verdict,
    /// The deciding rule, e.g. `network.allow "crates.io"` or `builtin: ...`.
    pub rule: Option<String>,
    pub layer: Layer,
    /// Who decided: the policy, or (for an `ask`) the user, their session choice, or the timeout.
    pub by: DecidedBy,
    /// The address connected to (allowed attempts that reached the target).
    pub addr: Option<SocketAddr>,
    /// Client → target bytes (after the proxy handshake).
    pub bytes_up: u64,
    /// Target → client bytes.
    pub bytes_down: u64,
    pub duration: Duration,
    /// Why an allowed attempt failed (resolution, connect) or a request was malformed.
    pub error: Option<String>,
}

/// Name resolution: the system resolver, with fixed answers for some names (tests only).
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Fixed answers, checked first. Only for tests (`AIRLOCK_TEST_RESOLVE` in the CLI).
    pub overrides: Vec<(String, IpAddr)>,
}

impl Resolver {
    /// Parses `name=ip,name=ip` (the `AIRLOCK_TEST_RESOLVE` format).
    pub fn parse_overrides(spec: &str) -> Result<Resolver, ProxyError> {
        let mut overrides = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, ip) = item
                .split_once('=')
                .ok_or_else(|| ProxyError::Resolve(format!("`{item}`: expected NAME=IP")))?;
            let ip: IpAddr = ip
                .trim()
                .parse()
                .map_err(|e| ProxyError::Resolve(format!("`{item}`: {e}")))?;
            let name = normalize_host(name).map_err(|e| ProxyError::Resolve(e.to_string()))?;
            overrides.push((name, ip));
        }
        Ok(Resolver { overrides })
    }

    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let fixed: Vec<SocketAddr> = self
            .overrides
            .iter()
            .filter(|(n, _)| n == host)
            .map(|(_, ip)| SocketAddr::new(*ip, port))
            .collect();
        if !fixed.is_empty() {
            return Ok(fixed);
        }
        use std::net::ToSocketAddrs;
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// What the proxy needs from its owner.
#[derive(Clone)]
pub struct ProxyConfig {
    pub decide: Arc<DecideFn>,
    pub events: Arc<EventFn>,
    pub resolver: Resolver,
    /// Timeout for connecting to a target.
    pub connect_timeout: Duration,
    /// Who answers `ask` verdicts; `None`: `ask` is denied (nobody to ask).
    pub ask: Option<Arc<AskFn>>,
    /// How long a connection waits for the answer to an `ask` before it is denied.
    pub ask_timeout: Duration,
}

impl ProxyConfig {
    pub fn new(decide: Arc<DecideFn>, events: Arc<EventFn>) -> ProxyConfig {
        ProxyConfig {
            decide,
            events,
            resolver: Resolver::default(),
            connect_timeout: Duration::from_secs(10),
            ask: None,
            ask_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("resolver override: {0}")]
    Resolve(String),
    #[error("invalid host `{host}`: {reason}")]
    Host { host: String, reason: String },
}

/// A running proxy. Dropping it stops accepting; connections in flight finish on their own.
pub struct Proxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// Connections being served (their attempt not yet reported).
    active: Arc<AtomicUsize>,
}

impl Proxy {
    /// Starts listening on `127.0.0.1:0`, one thread per connection.
    pub fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(ProxyError::Listen)?;
        let addr = listener.local_addr().map_err(ProxyError::Listen)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let config = Arc::new(config);
        let active = Arc::new(AtomicUsize::new(0));
        let active2 = active.clone();
        let accept = std::thread::Builder::new()
            .name("airlock-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let config = config.clone();
                    let active = active2.clone();
                    active.fetch_add(1, Ordering::SeqCst);
                    let spawned = std::thread::Builder::new()
                        .name("airlock-proxy-conn".into())
                        .spawn(move || {
                            http::serve(conn, &config);
                            active.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        active2.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
            .map_err(ProxyError::Listen)?;
        Ok(Proxy {
            addr,
            stop,
            accept: Some(accept),
            active,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits up to `grace` for connections in flight to end, so their
    /// attempts are reported (the command is gone: its sockets are closed, relays end at once).
    pub fn shutdown(self, grace: Duration) {
        let deadline = std::time::Instant::now() + grace;
        while self.active.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The environment a proxied command needs: `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and
    /// their lowercase forms pointing here, and `NO_PROXY` empty so nothing bypasses it.
    pub fn env(&self) -> Vec<(String, String)> {
        let url = format!("http://{}", self.addr);
        let mut v = Vec::new();
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            v.push((k.to_string(), url.clone()));
            v.push((k.to_ascii_lowercase(), url.clone()));
        }
        v.push(("NO_PROXY".into(), String::new()));
        v.push(("no_proxy".into(), String::new()));
        v
    }
}

/// The decision function for a loaded policy plus one-off `--allow-domain` rules. A one-off
/// rule only replaces the network *default* (it never overrides a `deny` or `ask` rule), so the
/// strictest-wins guarantee of the policy holds.
pub fn policy_decider(policy: Arc<airlock_policy::Policy>, extra: Vec<HostRule>) -> Arc<DecideFn> {
    Arc::new(move |host: &str, port: u16| {
        let d = policy.decide_domain(host, Some(port));
        let by_default = d.verdict != Verdict::Allow
            && d.rule.as_deref().is_some_and(|r| {
                r.starts_with("builtin: network defaults") || r.starts_with("network.default")
            });
        if by_default && let Some(r) = extra.iter().find(|r| r.matches(host, port)) {
            return r.decision();
        }
        d
    })
}

/// Whether a command needs the proxy at all: some domain may be allowed. Otherwise the
/// network stays fully off (no proxy, no TCP port open in the sandbox).
pub fn policy_needs_proxy(policy: &airlock_policy::Policy, extra: &[HostRule]) -> bool {
    !extra.is_empty()
        || !policy.allowed_domains().is_empty()
        || policy.network_default() != Verdict::Deny
}

/// One line per attempt for logs and stderr:
/// `allow example.com:443 via connect by network.allow "example.com" (user) up 10 B down 20 B in 3.1 ms`.
pub fn format_attempt(a: &Attempt) -> String {
    let mut s = format!(
        "{} {}:{} via {} by {} ({}) up {} B down {} B in {:.1} ms",
        a.verdict,
        a.host,
        a.port,
        a.via.as_str(),
        a.rule.as_deref().unwrap_or("policy"),
        a.layer,
        a.bytes_up,
        a.bytes_down,
        a.duration.as_secs_f64() * 1e3
    );
    if a.by != DecidedBy::Policy {
        s.push_str(&format!(" decided by {}", a.by.as_str()));
    }
    if let Some(addr) = a.addr {
        s.push_str(&format!(" to {addr}"));
    }
    if let Some(e) = &a.error {
        s.push_str(&format!(" error: {e}"));
    }
    s
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::{Read, Write};
    use std::sync::Mutex;

    use super::*;

    fn rule(verdict: Verdict, rule: &str) -> Decision {
        Decision {
            verdict,
            rule: Some(rule.into()),
            layer: Layer::User,
            source: None,
        }
    }

    fn get(proxy: &Proxy, host: &str, port: u16) -> String {
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        write!(
            c,
            "GET http://{host}:{port}/ HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn ask_waits_for_the_owner_and_times_out_to_deny() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for c in server.incoming() {
                let Ok(mut c) = c else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let mut b = [0u8; 1024];
                let _ = c.read(&mut b);
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let decide: Arc<DecideFn> = Arc::new(|host: &str, _| {
            if host == "127.0.0.1" {
                rule(Verdict::Allow, "network.allow \"127.0.0.1\"")
            } else {
                rule(Verdict::Ask, "network.default = \"ask\"")
            }
        });
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let a2 = attempts.clone();
        let events: Arc<EventFn> = Arc::new(move |a: Attempt| a2.lock().unwrap().push(a));
        // Questions nobody answers are kept here, so their senders stay alive.
        let unanswered = Arc::new(Mutex::new(Vec::new()));
        let u2 = unanswered.clone();
        let ask: Arc<AskFn> = Arc::new(move |host: &str, _, _: &Decision| {
            let (tx, rx) = std::sync::mpsc::channel();
            match host {
                "yes.test" => tx
                    .send(AskAnswer {
                        allow: true,
                        by: DecidedBy::User,
                    })
                    .unwrap(),
                "no.test" => tx
                    .send(AskAnswer {
                        allow: false,
                        by: DecidedBy::Session,
                    })
                    .unwrap(),
                _ => u2.lock().unwrap().push(tx),
            }
            rx
        });
        let mut config = ProxyConfig::new(decide, events);
        config.resolver =
            Resolver::parse_overrides("yes.test=127.0.0.1,no.test=127.0.0.1,slow.test=127.0.0.1")
                .unwrap();
        config.ask = Some(ask);
        config.ask_timeout = Duration::from_millis(300);
        let proxy = Proxy::start(config).unwrap();

        assert!(get(&proxy, "yes.test", port).ends_with("ok"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let no = get(&proxy, "no.test", port);
        assert!(
            no.starts_with("HTTP/1.1 403") && no.contains("denied by the user earlier"),
            "{no}"
        );
        let slow = get(&proxy, "slow.test", port);
        assert!(
            slow.contains("(ask: no answer within 300 ms, denied)"),
            "{slow}"
        );
        assert!(slow.starts_with("HTTP/1.1 403"), "{slow}");
        // IP literals are never asked about.
        let ip = get(&proxy, "10.1.2.3", port);
        assert!(
            ip.contains("IP-literal targets need an exact allow rule"),
            "{ip}"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            1,
            "denied requests never arrive"
        );
        proxy.shutdown(Duration::from_secs(2));
        let mut by: Vec<_> = attempts
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.host.clone(), a.verdict, a.by))
            .collect();
        by.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            by,
            [
                ("10.1.2.3".into(), Verdict::Deny, DecidedBy::Policy),
                ("no.test".into(), Verdict::Deny, DecidedBy::Session),
                ("slow.test".into(), Verdict::Deny, DecidedBy::Timeout),
                ("yes.test".into(), Verdict::Allow, DecidedBy::User),
            ]
        );
        assert_eq!(unanswered.lock().unwrap().len(), 1);
    }
}
