//! One client connection: read the request head, decide, then relay bytes both ways.

use std::io::{BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use airlock_policy::{Decision, Layer, Verdict};

use crate::target::{explicitly_allows, is_internal, normalize_host, parse_ip_literal};
use crate::{Attempt, DecidedBy, ProxyConfig, Via};

const MAX_HEAD: usize = 64 * 1024;

struct Head {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
    /// Bytes read past the head (the start of the body or tunnel data).
    rest: Vec<u8>,
}

pub(crate) fn serve(mut client: TcpStream, config: &ProxyConfig) {
    let start = Instant::now();
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut first = [0u8; 1];
    if matches!(client.peek(&mut first), Ok(1)) && first[0] == 5 {
        crate::socks::serve(client, config, start);
        return;
    }
    let head = match read_head(&mut client) {
        Ok(h) => h,
        Err(e) => {
            respond(
                &mut client,
                400,
                "Bad Request",
                &format!("airlock proxy: {e}\n"),
            );
            return;
        }
    };
    let _ = client.set_read_timeout(None);
    let is_connect = head.method.eq_ignore_ascii_case("CONNECT");
    let via = if is_connect { Via::Connect } else { Via::Http };
    let parsed = if is_connect {
        split_authority(&head.target, None).map(|(h, p)| (h, p, String::new()))
    } else {
        parse_absolute(&head.target)
    };
    let framing = if is_connect {
        Ok(Body::None)
    } else {
        body_framing(&head.headers)
    };
    let ((raw_host, port, path), framing) = match (parsed, framing) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) | (_, Err(e)) => {
            respond(
                &mut client,
                400,
                "Bad Request",
                &format!("airlock proxy: {e}\n"),
            );
            return;
        }
    };
    let mut attempt = Attempt {
        host: raw_host.clone(),
        port,
        via,
        verdict: Verdict::Deny,
        rule: None,
        layer: Layer::Builtin,
        by: DecidedBy::Policy,
        addr: None,
        bytes_up: 0,
        bytes_down: 0,
        duration: Duration::ZERO,
        error: None,
    };
    let finish = |mut a: Attempt| {
        a.duration = start.elapsed();
        (config.events)(a);
    };

    {
        // The Host header must name the target: otherwise an origin server (or a virtual
        // host) could be reached under a name the policy never saw. For CONNECT it is only
        // informative, but a mismatch is a sign of smuggling: refused too.
        if let Some((_, h)) = head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            let same = split_authority(h, Some(if is_connect { port } else { 80 }))
                .ok()
                .and_then(|(hh, hp)| normalize_host(&hh).ok().map(|n| (n, hp)))
                .zip(normalize_host(&raw_host).ok())
                .is_some_and(|((hh, hp), rh)| hh == rh && hp == port);
            if !same {
                let d = Decision {
                    verdict: Verdict::Deny,
                    rule: Some("builtin: Host header differs from the request target".into()),
                    layer: Layer::Builtin,
                    source: None,
                };
                deny(&mut client, &attempt, &d);
                attempt.rule = d.rule;
                finish(attempt);
                return;
            }
        }
    }

    let (host, addrs, d, by) = decide(&raw_host, port, config);
    attempt.host = host.clone();
    attempt.by = by;
    attempt.rule = d.rule.clone();
    attempt.layer = d.layer;
    let Some(addrs) = addrs else {
        deny(&mut client, &attempt, &d);
        finish(attempt);
        return;
    };
    let upstream = connect(&addrs, config.connect_timeout);
    let mut upstream = match upstream {
        Ok((s, a)) => {
            attempt.addr = Some(a);
            s
        }
        Err(last_err) => {
            attempt.verdict = Verdict::Allow;
            attempt.error = Some(format!("connect failed: {last_err}"));
            respond(
                &mut client,
                502,
                "Bad Gateway",
                &format!("airlock proxy: cannot connect to {host}:{port}: {last_err}\n"),
            );
            finish(attempt);
            return;
        }
    };
    attempt.verdict = Verdict::Allow;
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);

    if !is_connect {
        let mut req = format!("{} {} {}\r\n", head.method, path, head.version);
        for (k, v) in &head.headers {
            let k_l = k.to_ascii_lowercase();
            if k_l.starts_with("proxy-") || k_l == "connection" || k_l == "keep-alive" {
                continue;
            }
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        if upstream.write_all(req.as_bytes()).is_err() {
            finish(attempt);
            return;
        }
        let (up, down) = forward_one_request(client, upstream, head.rest, framing);
        attempt.bytes_up = req.len() as u64 + up;
        attempt.bytes_down = down;
        finish(attempt);
        return;
    }
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        finish(attempt);
        return;
    }
    let mut up_prefix = 0u64;
    if !head.rest.is_empty() {
        if upstream.write_all(&head.rest).is_err() {
            finish(attempt);
            return;
        }
        up_prefix = head.rest.len() as u64;
    }
    let (up, down) = relay(client, upstream);
    attempt.bytes_up = up + up_prefix;
    attempt.bytes_down = down;
    finish(attempt);
}

/// How the body of a plain-HTTP request ends (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    None,
    Length(u64),
    Chunked,
}

/// The request's body framing; ambiguous framing (both `Transfer-Encoding` and
/// `Content-Length`, differing lengths, a transfer coding other than a final `chunked`) is the
/// stuff of request smuggling and refused.
fn body_framing(headers: &[(String, String)]) -> Result<Body, String> {
    let te: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let lengths: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    if !te.is_empty() {
        if !lengths.is_empty() {
            return Err("both Transfer-Encoding and Content-Length: request refused".into());
        }
        if !te.last().is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
            return Err(format!(
                "Transfer-Encoding `{}` does not end in chunked: request refused",
                te.join(", ")
            ));
        }
        return Ok(Body::Chunked);
    }
    let Some(first) = lengths.first() else {
        return Ok(Body::None);
    };
    if lengths.iter().any(|l| l != first) {
        return Err("differing Content-Length values: request refused".into());
    }
    let n = first
        .parse::<u64>()
        .map_err(|_| format!("invalid Content-Length `{first}`"))?;
    Ok(if n == 0 { Body::None } else { Body::Length(n) })
}

/// Plain HTTP: one request per client connection. Forwards the body of the request whose
/// head was already sent (and nothing after it: a pipelined second request never reaches the
/// target unchecked), relays the response with `Connection: close` so the client does not
/// reuse the connection, and drains the client until it closes. Returns (body bytes sent
/// upstream, bytes received from upstream).
fn forward_one_request(
    client: TcpStream,
    mut upstream: TcpStream,
    rest: Vec<u8>,
    framing: Body,
) -> (u64, u64) {
    let (Ok(client_w), Ok(upstream_r)) = (client.try_clone(), upstream.try_clone()) else {
        return (0, 0);
    };
    let down = std::thread::spawn(move || relay_response(upstream_r, client_w));
    let mut from_client = std::io::BufReader::new(std::io::Cursor::new(rest).chain(client));
    let up = forward_body(&mut from_client, &mut upstream, framing).unwrap_or_else(|n| n);
    // Anything the client sends after its request is read and dropped until it closes (or
    // the response side shuts the connection down).
    let _ = std::io::copy(&mut from_client, &mut std::io::sink());
    // Half-close, as a client closing its side would: the response may still be on its way.
    let _ = upstream.shutdown(Shutdown::Write);
    let down = down.join().unwrap_or(0);
    (up, down)
}

/// Copies exactly the body described by `framing`; Ok(bytes) when it ended where the framing
/// says, Err(bytes copied) when either side failed or the body was malformed.
fn forward_body(
    from: &mut impl std::io::BufRead,
    to: &mut impl Write,
    framing: Body,
) -> Result<u64, u64> {
    let mut n = 0u64;
    match framing {
        Body::None => Ok(0),
        Body::Length(len) => {
            let copied = std::io::copy(&mut from.take(len), to).map_err(|_| n)?;
            if copied == len {
                Ok(copied)
            } else {
                Err(copied)
            }
        }
        Body::Chunked => loop {
            let line = read_line(from).ok_or(n)?;
            to.write_all(&line).map_err(|_| n)?;
            n += line.len() as u64;
            let text = std::str::from_utf8(&line).map_err(|_| n)?;
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| n)?;
            if size == 0 {
                // Trailer fields, up to the empty line.
                loop {
                    let line = read_line(from).ok_or(n)?;
                    to.write_all(&line).map_err(|_| n)?;
                    n += line.len() as u64;
                    if line == b"\r\n" {
                        return Ok(n);
                    }
                }
            }
            let copied = std::io::copy(&mut from.take(size), to).map_err(|_| n)?;
            n += copied;
            if copied != size {
                return Err(n);
            }
            let crlf = read_line(from).ok_or(n)?;
            if crlf != b"\r\n" {
                return Err(n);
            }
            to.write_all(&crlf).map_err(|_| n)?;
            n += 2;
        },
    }
}

/// One CRLF-terminated line of at most 4 KiB (chunk sizes and trailers), or None.
fn read_line(from: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    from.take(4096).read_until(b'\n', &mut line).ok()?;
    line.ends_with(b"\r\n").then_some(line)
}

/// Relays the target's response to the client, with `Connection: close` in its final head
/// (interim 1xx heads pass unchanged). Returns the bytes received from the target.
fn relay_response(mut upstream: TcpStream, mut client: TcpStream) -> u64 {
    let mut received = 0u64;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // The head: rewritten if it parses, otherwise passed on as it came.
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break Some(i);
            }
            if buf.len() > MAX_HEAD {
                break None;
            }
            match upstream.read(&mut chunk) {
                Ok(0) | Err(_) => break None,
                Ok(k) => {
                    received += k as u64;
                    buf.extend_from_slice(&chunk[..k]);
                }
            }
        };
        let Some(end) = end else { break };
        let head = &buf[..end];
        // 1xx heads other than 101 (which the stripped `Connection: upgrade` never asks for,
        // and which would end HTTP on the connection) precede the final one.
        let status = head.get(9..12).unwrap_or_default();
        let interim = head.starts_with(b"HTTP/1.") && status.starts_with(b"1") && status != b"101";
        let out = if interim {
            buf[..end + 4].to_vec()
        } else {
            close_head(head)
        };
        if client.write_all(&out).is_err() {
            let _ = client.shutdown(Shutdown::Both);
            return received;
        }
        buf.drain(..end + 4);
        if !interim {
            break;
        }
    }
    if client.write_all(&buf).is_err() {
        let _ = client.shutdown(Shutdown::Both);
        return received;
    }
    let count = AtomicU64::new(0);
    if let Ok(c) = client.try_clone() {
        copy(upstream, c, &count);
    }
    // The response is complete: stop reading the client too, which ends the request side.
    let _ = client.shutdown(Shutdown::Both);
    received + count.load(Ordering::Relaxed)
}

/// A response head with `Connection`/`Keep-Alive`/`Proxy-Connection` replaced by
/// `Connection: close`.
fn close_head(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 24);
    for (i, line) in head.split(|&b| b == b'\n').enumerate() {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        let name = l.split(|&b| b == b':').next().unwrap_or_default();
        if i > 0
            && ["connection", "keep-alive", "proxy-connection"]
                .iter()
                .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        {
            continue;
        }
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

/// Connects to the first address that answers.
pub(crate) fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr), String> {
    let mut last_err = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok((s, *a)),
            Err(e) => last_err = format!("{a}: {e}"),
        }
    }
    Err(last_err)
}

/// Decides `host:port` (asking the owner for an `ask` verdict, see [`ask_owner`]); on allow,
/// also returns the addresses that may be connected to.
pub(crate) fn decide(
    raw: &str,
    port: u16,
    config: &ProxyConfig,
) -> (String, Option<Vec<SocketAddr>>, Decision, DecidedBy) {
    let mut by = DecidedBy::Policy;
    let (host, addrs, d) = decide_inner(raw, port, config, &mut by);
    (host, addrs, d, by)
}

/// `ask`: hands the question to the owner and waits (on this connection's thread) at most
/// `ask_timeout`. No owner, no answer, or a dropped question: deny.
fn ask_owner(host: &str, port: u16, d: Decision, config: &ProxyConfig) -> (Decision, DecidedBy) {
    let Some(ask) = &config.ask else {
        return (as_denial(d), DecidedBy::Policy);
    };
    let rx = ask(host, port, &d);
    let base = d.rule.clone().unwrap_or_default();
    let (verdict, by, why) = match rx.recv_timeout(config.ask_timeout) {
        Ok(a) => {
            let how = if a.allow { "allowed" } else { "denied" };
            let who = if a.by == DecidedBy::Session {
                "by the user earlier this session"
            } else {
                "by the user"
            };
            let verdict = if a.allow {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            (verdict, a.by, format!("{how} {who}"))
        }
        Err(RecvTimeoutError::Timeout) => {
            let within = match config.ask_timeout.as_millis() {
                ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
                ms => format!("{ms} ms"),
            };
            let why = format!("no answer within {within}, denied");
            (Verdict::Deny, DecidedBy::Timeout, why)
        }
        // The owner dropped the question unanswered (e.g. the server is shutting down).
        Err(RecvTimeoutError::Disconnected) => (
            Verdict::Deny,
            DecidedBy::Timeout,
            "nobody answered, denied".to_owned(),
        ),
    };
    let d = Decision {
        verdict,
        rule: Some(format!("{base} (ask: {why})")),
        ..d
    };
    (d, by)
}

fn decide_inner(
    raw: &str,
    port: u16,
    config: &ProxyConfig,
    by: &mut DecidedBy,
) -> (String, Option<Vec<SocketAddr>>, Decision) {
    let refuse = |rule: String| Decision {
        verdict: Verdict::Deny,
        rule: Some(rule),
        layer: Layer::Builtin,
        source: None,
    };
    let host = match normalize_host(raw) {
        Ok(h) => h,
        Err(e) => return (raw.to_string(), None, refuse(format!("builtin: {e}"))),
    };
    if let Some(ip) = parse_ip_literal(&host) {
        let canon = ip.to_string();
        let d = (config.decide)(&canon, port);
        if explicitly_allows(&d) {
            return (canon, Some(vec![SocketAddr::new(ip, port)]), d);
        }
        if d.verdict != Verdict::Deny {
            // Also for `ask`: an address is opened by a rule naming it, never by a question.
            let r = format!(
                "builtin: IP-literal targets need an exact allow rule for the address (`{canon}` matched only {})",
                d.rule.as_deref().unwrap_or("a default")
            );
            return (canon, None, refuse(r));
        }
        return (canon, None, as_denial(d));
    }
    let mut d = (config.decide)(&host, port);
    if d.verdict == Verdict::Ask {
        (d, *by) = ask_owner(&host, port, d, config);
    }
    if d.verdict != Verdict::Allow {
        return (host, None, as_denial(d));
    }
    let addrs = match config.resolver.resolve(&host, port) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => {
            return (
                host.clone(),
                None,
                refuse(format!("builtin: `{host}` did not resolve")),
            );
        }
        Err(e) => {
            return (
                host.clone(),
                None,
                refuse(format!("builtin: `{host}` did not resolve: {e}")),
            );
        }
    };
    let mut ok = Vec::new();
    let mut internal = None;
    for a in addrs {
        if is_internal(a.ip()) && !explicitly_allows(&(config.decide)(&a.ip().to_string(), port)) {
            internal.get_or_insert(a.ip());
            continue;
        }
        ok.push(a);
    }
    if ok.is_empty() {
        let ip = internal.map(|i| i.to_string()).unwrap_or_default();
        let r = format!(
            "builtin: `{host}` resolves to internal address {ip} (DNS rebinding guard); allow it with an exact rule for \"{ip}\""
        );
        return (host, None, refuse(r));
    }
    (host, Some(ok), d)
}

fn as_denial(mut d: Decision) -> Decision {
    if d.verdict == Verdict::Ask {
        let r = d.rule.take().unwrap_or_default();
        d.rule = Some(format!("{r} (ask: no approval here, denied)"));
    }
    d.verdict = Verdict::Deny;
    d
}

fn deny(client: &mut TcpStream, a: &Attempt, d: &Decision) {
    let body = format!(
        "airlock: connection to {}:{} denied by {} ({} layer{})\n",
        a.host,
        a.port,
        d.rule.as_deref().unwrap_or("policy"),
        d.layer,
        d.source
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default()
    );
    respond(client, 403, "Forbidden", &body);
}

fn respond(client: &mut TcpStream, code: u16, reason: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-Airlock: denied\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(msg.as_bytes());
    let _ = client.shutdown(Shutdown::Write);
}

fn read_head(s: &mut TcpStream) -> Result<Head, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = loop {
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("connection closed before the request head ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(format!("request head longer than {MAX_HEAD} bytes"));
        }
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line `{first}`"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version `{version}`"));
    }
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("malformed header line `{l}`"))?;
        if k.is_empty() || k.contains(' ') {
            return Err(format!("malformed header name `{k}`"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
        rest: buf[end + 4..].to_vec(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `host:port`, `[v6]:port`; `default_port` when the port is optional.
fn split_authority(a: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("expected HOST:PORT, got `{a}`");
    if a.contains('@') {
        return Err(format!("userinfo in `{a}` is not accepted"));
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').ok_or_else(bad)?;
        (format!("[{h}]"), tail.strip_prefix(':'))
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
            Some(_) => return Err(bad()),
            None => (a.to_string(), None),
        }
    };
    let port = match (port, default_port) {
        (Some(p), _) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad()),
    };
    if host.is_empty() || host == "[]" {
        return Err(bad());
    }
    Ok((host, port))
}

/// `http://host[:port]/path` → (host, port, origin-form path).
fn parse_absolute(t: &str) -> Result<(String, u16, String), String> {
    let lower = t.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").map(|_| &t[7..]) else {
        return Err(format!(
            "only CONNECT and absolute `http://` requests are proxied, got `{t}`"
        ));
    };
    let (auth, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let (h, p) = split_authority(auth, Some(80))?;
    Ok((h, p, path))
}

/// Copies both ways until each side closes; returns (client→target, target→client) bytes.
pub(crate) fn relay(client: TcpStream, upstream: TcpStream) -> (u64, u64) {
    let down = Arc::new(AtomicU64::new(0));
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return (0, 0);
    };
    let down2 = down.clone();
    let t = std::thread::spawn(move || copy(u2, c2, &down2));
    let up = AtomicU64::new(0);
    copy(client, upstream, &up);
    let _ = t.join();
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}

fn copy(mut from: TcpStream, mut to: TcpStream, count: &AtomicU64) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn absolute_form() {
        assert_eq!(
            parse_absolute("http://Example.com:8080/a?b").unwrap(),
            ("Example.com".into(), 8080, "/a?b".into())
        );
        assert_eq!(
            parse_absolute("http://[::1]/").unwrap(),
            ("[::1]".into(), 80, "/".into())
        );
        assert!(parse_absolute("/relative").is_err());
        assert!(parse_absolute("https://x/").is_err());
        assert!(parse_absolute("http://user@evil.com/").is_err());
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn body_framing_refuses_ambiguity() {
        assert_eq!(body_framing(&h(&[])).unwrap(), Body::None);
        assert_eq!(
            body_framing(&h(&[("Content-Length", "12")])).unwrap(),
            Body::Length(12)
        );
        assert_eq!(
            body_framing(&h(&[("content-length", "5"), ("Content-Length", "5")])).unwrap(),
            Body::Length(5)
        );
        assert_eq!(
            body_framing(&h(&[("Transfer-Encoding", "gzip, Chunked")])).unwrap(),
            Body::Chunked
        );
        for bad in [
            h(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]),
            h(&[("Content-Length", "3"), ("Content-Length", "4")]),
            h(&[("Content-Length", "3, 4")]),
            h(&[("Content-Length", "-1")]),
            h(&[("Transfer-Encoding", "chunked, gzip")]),
        ] {
            assert!(body_framing(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chunked_body_ends_at_its_last_chunk() {
        let wire = b"3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\nGET http://other.test/ HTTP/1.1\r\n\r\n";
        let mut from = std::io::BufReader::new(&wire[..]);
        let mut out = Vec::new();
        let n = forward_body(&mut from, &mut out, Body::Chunked).unwrap();
        assert_eq!(out, b"3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\n");
        assert_eq!(n, out.len() as u64);
        let mut out = Vec::new();
        let bad = b"3\r\nabcX\r\n";
        assert!(forward_body(&mut &bad[..], &mut out, Body::Chunked).is_err());
    }

    #[test]
    fn response_head_gets_connection_close() {
        let head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2";
        assert_eq!(
            close_head(head),
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    /// Interim `100 Continue` passes unchanged; the final head gets `Connection: close`.
    #[test]
    fn interim_heads_pass_and_the_final_one_closes() {
        let pair = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (b, _) = l.accept().unwrap();
            (a, b)
        };
        let (mut target, upstream) = pair();
        let (client, mut client_peer) = pair();
        let sent = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        target.write_all(sent).unwrap();
        drop(target);
        let received = relay_response(upstream, client);
        let mut got = String::new();
        client_peer.read_to_string(&mut got).unwrap();
        assert_eq!(
            got,
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        assert_eq!(
            received,
            sent.len() as u64,
            "bytes down count what the target sent"
        );
    }

    /// A target that ignores `Connection: close` (keeps reading and answers every head it
    /// sees): a second request pipelined behind the first, for another host, must not reach
    /// it, and the client is told the connection closes.
    #[test]
    fn a_pipelined_second_request_never_reaches_the_target() {
        use std::sync::Mutex;
        use std::sync::mpsc;

        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tport = target.local_addr().unwrap().port();
        let (raw_tx, raw_rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for c in target.incoming() {
                let Ok(mut c) = c else { continue };
                let raw_tx = raw_tx.clone();
                std::thread::spawn(move || {
                    let mut raw = Vec::new();
                    let mut answered = 0;
                    let mut b = [0u8; 4096];
                    loop {
                        match c.read(&mut b) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => raw.extend_from_slice(&b[..n]),
                        }
                        // Request lines seen (a chunked body's end also has an empty line).
                        let heads = raw.windows(11).filter(|w| w == b" HTTP/1.1\r\n").count();
                        while answered < heads {
                            answered += 1;
                            let _ = c.write_all(
                                b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
                            );
                        }
                    }
                    let _ = raw_tx.send(raw);
                });
            }
        });
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let mut config = ProxyConfig::new(
            Arc::new(|host: &str, _| Decision {
                verdict: Verdict::Allow,
                rule: Some(format!("network.allow \"{host}\"")),
                layer: Layer::User,
                source: None,
            }),
            Arc::new(move |a| ev.lock().unwrap().push(a)),
        );
        config.resolver =
            crate::Resolver::parse_overrides("good.test=127.0.0.1,other.test=127.0.0.1").unwrap();
        let proxy = crate::Proxy::start(config).unwrap();

        for (framing, body) in [
            ("Content-Length: 3", &b"abc"[..]),
            ("Transfer-Encoding: chunked", &b"3\r\nabc\r\n0\r\n\r\n"[..]),
        ] {
            let mut c = TcpStream::connect(proxy.addr()).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = format!(
                "POST http://good.test:{tport}/a HTTP/1.1\r\nHost: good.test:{tport}\r\n{framing}\r\n\r\n"
            )
            .into_bytes();
            req.extend_from_slice(body);
            req.extend_from_slice(
                format!(
                    "GET http://other.test:{tport}/b HTTP/1.1\r\nHost: other.test:{tport}\r\n\r\n"
                )
                .as_bytes(),
            );
            c.write_all(&req).unwrap();
            // Read the one response as a client that honours Connection: close would.
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") || !got.ends_with(b"ok") {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&b[..n]);
            }
            let text = String::from_utf8_lossy(&got).into_owned();
            assert!(text.contains("Connection: close\r\n"), "{text}");
            assert!(!text.contains("keep-alive"), "{text}");
            drop(c);
            let raw = raw_rx.recv_timeout(Duration::from_secs(5)).unwrap();
            let raw = String::from_utf8_lossy(&raw).into_owned();
            assert!(raw.starts_with("POST /a HTTP/1.1\r\n"), "{raw}");
            assert!(
                raw.ends_with(std::str::from_utf8(body).unwrap()),
                "the body arrives whole and nothing after it: {raw}"
            );
            assert!(!raw.contains("other.test"), "smuggled: {raw}");
        }
        proxy.shutdown(Duration::from_secs(2));
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events.iter().all(|a| a.host == "good.test"), "{events:?}");
    }
}
