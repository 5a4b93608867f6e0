//! A loopback HTTP server for the network tests: what reached it is checked from outside the
//! sandbox and the proxy, never from what the command printed.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

type Body = dyn Fn(&str) -> String + Send + Sync;

/// Listens on 127.0.0.1 (a free port), answers every request `200` with `body(path)`, and
/// records the connections and request paths it saw.
pub struct HttpServer {
    pub port: u16,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    pub fn start(body: impl Fn(&str) -> String + Send + Sync + 'static) -> Result<HttpServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind the test HTTP server")?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let body: Arc<Body> = Arc::new(body);
        let (h, p) = (hits.clone(), paths.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                let (p, body) = (p.clone(), body.clone());
                std::thread::spawn(move || answer(conn, &p, &*body));
            }
        });
        Ok(HttpServer { port, hits, paths })
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Request paths seen so far, in order of arrival.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

fn answer(mut conn: std::net::TcpStream, paths: &Mutex<Vec<String>>, body: &Body) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let body = body(&path);
    if let Ok(mut p) = paths.lock() {
        p.push(path);
    }
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
