//! One client connection: read the request head, decide, then relay bytes both ways.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_policy::{Decision, Layer, Verdict};

use crate::target::{explicitly_allows, is_internal, normalize_host, parse_ip_literal};
use crate::{Attempt, ProxyConfig, Via};

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
    let (raw_host, port, path) = match parsed {
        Ok(t) => t,
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
    let mut attempt = Attempt {
        host: raw_host.clone(),
        port,
        via,
        verdict: Verdict::Deny,
        rule: None,
        layer: Layer::Builtin,
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

    let (host, addrs, d) = decide(&raw_host, port, config);
    attempt.host = host.clone();
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

    let mut up_prefix = 0u64;
    if is_connect {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            finish(attempt);
            return;
        }
    } else {
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
        up_prefix = req.len() as u64;
    }
    if !head.rest.is_empty() {
        if upstream.write_all(&head.rest).is_err() {
            finish(attempt);
            return;
        }
        up_prefix += head.rest.len() as u64;
    }
    let (up, down) = relay(client, upstream);
    attempt.bytes_up = up + up_prefix;
    attempt.bytes_down = down;
    finish(attempt);
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

/// Decides `host:port`; on allow, also returns the addresses that may be connected to.
pub(crate) fn decide(
    raw: &str,
    port: u16,
    config: &ProxyConfig,
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
        if d.verdict == Verdict::Allow {
            let r = format!(
                "builtin: IP-literal targets need an exact allow rule for the address (`{canon}` matched only {})",
                d.rule.as_deref().unwrap_or("a default")
            );
            return (canon, None, refuse(r));
        }
        return (canon, None, as_denial(d));
    }
    let d = (config.decide)(&host, port);
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
}
