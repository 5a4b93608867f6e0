//! SOCKS5 (RFC 1928), `CONNECT` only, no authentication: the same decisions as HTTP `CONNECT`.
//! A refusal is reply code 2 ("connection not allowed by ruleset"); the rule is in the event.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
use std::time::{Duration, Instant};

use airlock_policy::{Layer, Verdict};

use crate::http::{connect, decide, relay};
use crate::{Attempt, DecidedBy, ProxyConfig, Via};

pub(crate) fn serve(mut c: TcpStream, config: &ProxyConfig, start: Instant) {
    let Ok((host, port)) = handshake(&mut c) else {
        return;
    };
    let _ = c.set_read_timeout(None);
    let mut attempt = Attempt {
        host: host.clone(),
        port,
        via: Via::Socks,
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
    let (norm, addrs, d, by) = decide(&host, port, config);
    attempt.host = norm;
    attempt.by = by;
    attempt.rule = d.rule;
    attempt.layer = d.layer;
    let finish = |mut a: Attempt| {
        a.duration = start.elapsed();
        (config.events)(a);
    };
    let Some(addrs) = addrs else {
        let _ = reply(&mut c, 2);
        finish(attempt);
        return;
    };
    attempt.verdict = Verdict::Allow;
    match connect(&addrs, config.connect_timeout) {
        Ok((up, a)) => {
            attempt.addr = Some(a);
            let _ = up.set_nodelay(true);
            if reply(&mut c, 0).is_ok() {
                let (u, d) = relay(c, up);
                attempt.bytes_up = u;
                attempt.bytes_down = d;
            }
        }
        Err(e) => {
            attempt.error = Some(format!("connect failed: {e}"));
            let _ = reply(&mut c, 5);
        }
    }
    finish(attempt);
}

fn reply(c: &mut TcpStream, code: u8) -> std::io::Result<()> {
    c.write_all(&[5, code, 0, 1, 0, 0, 0, 0, 0, 0])
}

/// Greeting and request; answers what it cannot serve itself. Returns the target.
fn handshake(c: &mut TcpStream) -> Result<(String, u16), ()> {
    let mut b2 = [0u8; 2];
    c.read_exact(&mut b2).map_err(|_| ())?;
    let mut methods = vec![0u8; b2[1] as usize];
    c.read_exact(&mut methods).map_err(|_| ())?;
    if !methods.contains(&0) {
        let _ = c.write_all(&[5, 0xff]);
        return Err(());
    }
    c.write_all(&[5, 0]).map_err(|_| ())?;
    let mut req = [0u8; 4];
    c.read_exact(&mut req).map_err(|_| ())?;
    if req[0] != 5 || req[1] != 1 {
        // Only CONNECT: no BIND, no UDP ASSOCIATE.
        let _ = reply(c, 7);
        return Err(());
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            c.read_exact(&mut a).map_err(|_| ())?;
            Ipv4Addr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            c.read_exact(&mut a).map_err(|_| ())?;
            format!("[{}]", Ipv6Addr::from(a))
        }
        3 => {
            let mut n = [0u8; 1];
            c.read_exact(&mut n).map_err(|_| ())?;
            let mut name = vec![0u8; n[0] as usize];
            c.read_exact(&mut name).map_err(|_| ())?;
            String::from_utf8(name).map_err(|_| {
                let _ = reply(c, 1);
            })?
        }
        _ => {
            let _ = reply(c, 8);
            return Err(());
        }
    };
    let mut p = [0u8; 2];
    c.read_exact(&mut p).map_err(|_| ())?;
    Ok((host, u16::from_be_bytes(p)))
}
