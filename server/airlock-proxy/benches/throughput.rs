//! Proxy vs direct on loopback, in one run: bulk download throughput through a CONNECT tunnel
//! and the latency of a fresh connection + one small request/response (the per-request cost a
//! package manager pays). Results go to docs/benchmarks.md. `cargo bench -p airlock-proxy`.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_proxy::{Decision, Layer, Proxy, ProxyConfig, Verdict};

const BULK: u64 = 200 * 1024 * 1024;

/// Serves `BULK` bytes on a `b` request, one byte on `p` (ping).
fn server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let mut c = c.unwrap();
            let _ = c.set_nodelay(true);
            std::thread::spawn(move || {
                let mut cmd = [0u8; 1];
                while c.read_exact(&mut cmd).is_ok() {
                    if cmd[0] == b'b' {
                        let buf = vec![7u8; 256 * 1024];
                        let mut left = BULK;
                        while left > 0 {
                            let n = left.min(buf.len() as u64) as usize;
                            c.write_all(&buf[..n]).unwrap();
                            left -= n as u64;
                        }
                    } else {
                        c.write_all(b"k").unwrap();
                    }
                }
            });
        }
    });
    a
}

fn tunnel(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).unwrap();
    s.set_nodelay(true).unwrap();
    write!(
        s,
        "CONNECT 127.0.0.1:{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        target.port()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"));
    s
}

fn bulk(mut s: TcpStream) -> f64 {
    let t = Instant::now();
    s.write_all(b"b").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < BULK {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n as u64;
    }
    BULK as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn ping(connect: &dyn Fn() -> TcpStream, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut s = connect();
        s.write_all(b"p").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    times[n / 2]
}

fn main() {
    let target = server();
    let decide = Arc::new(|_: &str, _: u16| Decision {
        verdict: Verdict::Allow,
        rule: Some("network.allow \"127.0.0.1\"".into()),
        layer: Layer::User,
        source: None,
    });
    let proxy = Proxy::start(ProxyConfig::new(decide, Arc::new(|_| {}))).unwrap();
    let pa = proxy.addr();

    let direct = || {
        let s = TcpStream::connect(target).unwrap();
        s.set_nodelay(true).unwrap();
        s
    };
    let via = || tunnel(pa, target);
    // Warm-up, then alternate so both see the same machine load.
    let _ = ping(&direct, 50);
    let _ = ping(&via, 50);
    let n = 500;
    let lat_d = ping(&direct, n);
    let lat_p = ping(&via, n);
    let mut tp_d = Vec::new();
    let mut tp_p = Vec::new();
    for _ in 0..3 {
        tp_d.push(bulk(direct()));
        tp_p.push(bulk(via()));
    }
    tp_d.sort_by(f64::total_cmp);
    tp_p.sort_by(f64::total_cmp);
    let (d, p) = (tp_d[1], tp_p[1]);
    println!("latency (connect + 1-byte request/response, median of {n}):");
    println!(
        "  direct {:.1} us, via proxy {:.1} us, added {:.1} us",
        lat_d.as_secs_f64() * 1e6,
        lat_p.as_secs_f64() * 1e6,
        (lat_p.as_secs_f64() - lat_d.as_secs_f64()) * 1e6
    );
    println!("bulk download 200 MB (median of 3):");
    println!(
        "  direct {d:.0} MB/s, via proxy {p:.0} MB/s, ratio {:.0} %",
        p / d * 100.0
    );
}
