//! Package installs through Airlock's egress proxy: `cargo fetch`, `pip install` and
//! `npm install` inside `airlock exec`, each against a small registry this test builds and
//! serves on 127.0.0.1 under a made-up name (`index.crates.test`, `pypi.test`,
//! `registry.npmjs.test`, pointed at 127.0.0.1 with the test-only `AIRLOCK_TEST_RESOLVE`).
//!
//! Each registry is served twice: over plain `http://` (the tools send absolute-form requests
//! to the proxy) and over `https://` (the tools tunnel with `CONNECT`), the TLS side being a
//! small Python front with a certificate from a throw-away CA made here with `openssl`, which
//! the tools are told to trust (`http.cainfo`, `--cert`, `--cafile`).
//!
//! Allowed: the install succeeds, the installed files are checked from outside the sandbox, and
//! the registry's request log matches the proxy's attempts in `--report-json` (a direct
//! connection is impossible: the sandbox may only connect to the proxy's port). Not allowed:
//! the install fails, nothing is installed and the registry saw no connection at all.
//!
//! Packages are made here from sources this test writes (`cargo package`, a wheel zipped by
//! Python, `npm pack`); nothing is downloaded and nothing leaves loopback. A tool that is not
//! installed skips its test with a loud message (and without `openssl`, the `https://` half is
//! skipped loudly). pip and npm also run as the unprivileged user (over plain HTTP); cargo only
//! as the current user (the toolchain lives in its home, like sandbox_workflows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox_common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sandbox_common::*;
use sha2::Digest;

const CRATES: &str = "index.crates.test";
const PYPI: &str = "pypi.test";
const NPM: &str = "registry.npmjs.test";

/// One request as the registry saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    host: String,
}

/// A small HTTP/1.1 file server on 127.0.0.1 (keep-alive unless the request says
/// `Connection: close`, as real registries do) that logs every request and counts connections.
struct Registry {
    port: u16,
    listener: Option<TcpListener>,
    conns: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Registry {
    fn bind() -> Registry {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Registry {
            port: l.local_addr().unwrap().port(),
            listener: Some(l),
            conns: Arc::new(AtomicUsize::new(0)),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Serves `files` (path → content type, body); paths match without the query and with or
    /// without a trailing slash.
    fn serve(&mut self, files: HashMap<String, (&'static str, Vec<u8>)>) {
        let l = self.listener.take().unwrap();
        let files = Arc::new(files);
        let (conns, log) = (self.conns.clone(), self.log.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                conns.fetch_add(1, Ordering::SeqCst);
                let (files, log) = (files.clone(), log.clone());
                std::thread::spawn(move || serve_conn(c, &files, &log));
            }
        });
    }

    fn connections(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

fn serve_conn(
    c: TcpStream,
    files: &HashMap<String, (&'static str, Vec<u8>)>,
    log: &Mutex<Vec<Seen>>,
) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target, version) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        log.lock().unwrap().push(Seen {
            method: method.clone(),
            path: target.clone(),
            host: headers.get("host").cloned().unwrap_or_default(),
        });
        let close = version != "HTTP/1.1"
            || headers
                .get("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let path = target.split('?').next().unwrap_or_default();
        let found = files
            .get(path)
            .or_else(|| files.get(path.trim_end_matches('/')));
        let (status, ctype, body): (&str, &str, &[u8]) = match found {
            Some((t, b)) => ("200 OK", t, b),
            None => ("404 Not Found", "text/plain", b"not found\n"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let send_body = method != "HEAD";
        if w.write_all(head.as_bytes()).is_err()
            || (send_body && w.write_all(body).is_err())
            || w.flush().is_err()
        {
            return;
        }
        if close {
            return;
        }
    }
}

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Whether `program` runs here; prints a loud skip message when it doesn't.
fn have(program: &str, args: &[&str], test: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "\n!!!!!!!! SKIPPING {test}: `{program} {}` does not run on this machine !!!!!!!!\n",
            args.join(" ")
        );
    }
    ok
}

/// Landlock TCP rules need ABI 4; without them the sandbox cannot open the proxy's port.
fn landlock_tcp(t: &Fixture) -> bool {
    let r = t.exec_argv(&["--allow-domain", "x.test"], &["true"]);
    if r.code != 0 {
        eprintln!(
            "\n!!!!!!!! SKIPPING: sandbox with a TCP port is unavailable here: {} !!!!!!!!\n",
            r.stderr
        );
        return false;
    }
    true
}

/// How the tool reaches the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Plain HTTP: absolute-form requests to the proxy.
    Http,
    /// TLS through a `CONNECT` tunnel.
    Https,
}

/// A throw-away CA and a certificate for the three registry names, made with `openssl`.
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    fn make(dir: &Path) -> Option<Tls> {
        if !have(
            "openssl",
            &["version"],
            "the https:// half of the package tests (no openssl)",
        ) || !have(
            PYTHON,
            &["-c", "import ssl"],
            "the https:// half of the package tests (no Python ssl for the TLS front)",
        ) {
            return None;
        }
        let sh = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        sh(&[
            &["req", "-x509", "-nodes"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=airlock test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ],
        ]
        .concat());
        sh(&[
            &["req", "-nodes"],
            &ec[..],
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=airlock test registry",
            ],
        ]
        .concat());
        std::fs::write(
            dir.join("leaf.ext"),
            format!(
                "subjectAltName=DNS:{CRATES},DNS:{PYPI},DNS:{NPM}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
                 subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            ),
        )
        .unwrap();
        sh(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ]);
        Some(Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("leaf.pem"),
            key: dir.join("leaf.key"),
        })
    }
}

/// TLS in front of a [`Registry`]: one backend connection per client connection, so the
/// registry's connection count stays the number of tunnels.
const TLS_FRONT: &str = r#"
import socket, ssl, sys, threading
cert, key, backend = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass

def handle(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError):
        c.close()
        return
    up = socket.create_connection(("127.0.0.1", backend))
    threading.Thread(target=pipe, args=(up, t), daemon=True).start()
    pipe(t, up)

while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"#;

struct TlsFront {
    port: u16,
    child: Child,
}

impl TlsFront {
    fn start(tls: &Tls, backend: u16) -> TlsFront {
        let mut child = Command::new(PYTHON)
            .args(["-c", TLS_FRONT])
            .arg(&tls.cert)
            .arg(&tls.key)
            .arg(backend.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("TLS front did not start: {line:?}")
        });
        TlsFront { port, child }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry as the tool sees it: the server, and what the URL names.
struct Served {
    reg: Registry,
    _front: Option<TlsFront>,
    scheme: Scheme,
    name: &'static str,
    /// The port in the tool's URLs (the registry's, or the TLS front's).
    port: u16,
}

impl Served {
    /// Starts a registry for `name`; `files` gets the base URL (`scheme://name:port`), which
    /// some registry documents embed.
    fn start(
        name: &'static str,
        scheme: Scheme,
        tls: Option<&Tls>,
        files: impl FnOnce(&str) -> HashMap<String, (&'static str, Vec<u8>)>,
    ) -> Served {
        let mut reg = Registry::bind();
        let front = match scheme {
            Scheme::Http => None,
            Scheme::Https => Some(TlsFront::start(tls.unwrap(), reg.port)),
        };
        let port = front.as_ref().map_or(reg.port, |f| f.port);
        let base = match scheme {
            Scheme::Http => format!("http://{name}:{port}"),
            Scheme::Https => format!("https://{name}:{port}"),
        };
        reg.serve(files(&base));
        Served {
            reg,
            _front: front,
            scheme,
            name,
            port,
        }
    }

    fn base(&self) -> String {
        match self.scheme {
            Scheme::Http => format!("http://{}:{}", self.name, self.port),
            Scheme::Https => format!("https://{}:{}", self.name, self.port),
        }
    }

    /// Allow list of the successful run: the name, and its (loopback) address, which the DNS
    /// rebinding guard otherwise refuses.
    fn allow(&self) -> Vec<String> {
        vec![self.name.to_string(), format!("127.0.0.1:{}", self.port)]
    }
}

/// Allow list of the refused run: some other name, so the proxy runs and decides.
fn allow_other() -> Vec<String> {
    vec!["other.test".to_string()]
}

/// The schemes to run: `https` only with a CA to trust, and only as the current user (what
/// differs for the unprivileged user — file access, caches — does not depend on the scheme;
/// this keeps the file's runtime down).
fn schemes(case: Case, tls: &Option<Tls>) -> Vec<Scheme> {
    match tls {
        Some(_) if case.user == User::Current => vec![Scheme::Http, Scheme::Https],
        _ => vec![Scheme::Http],
    }
}

/// What one `airlock exec` of an install did, seen from outside.
struct Outcome {
    run: RunResult,
    /// `--report-json`'s `network` list.
    network: Vec<serde_json::Value>,
}

/// Runs `script` in the fixture's workspace with `--allow-domain` for each of `allow`, the
/// registry names pointed at 127.0.0.1 and the report written outside the workspace.
fn install(t: &Fixture, extra: &[&str], allow: &[String], script: &str) -> Outcome {
    let report = t.out.join("report.json");
    let _ = std::fs::remove_file(&report);
    let mut c = t.base_command(&airlock_bin());
    c.env(
        "AIRLOCK_TEST_RESOLVE",
        format!("{CRATES}=127.0.0.1,{PYPI}=127.0.0.1,{NPM}=127.0.0.1"),
    )
    .arg("exec")
    .arg("--workspace")
    .arg(&t.ws)
    .arg("--report-json")
    .arg(&report)
    .args(["--timeout", "60"])
    .args(extra);
    for a in allow {
        c.args(["--allow-domain", a]);
    }
    // The tool's stderr goes to a file: airlock's `net` lines share the terminal's stderr and
    // would interleave with the tool's messages.
    let script = format!(
        "exec 2>'{}'\n{script}",
        t.ws.join("tool-stderr.txt").display()
    );
    c.args(["--", "/bin/sh", "-c", &script]);
    let mut run = run(c);
    // Failure messages show both.
    if let Ok(tool) = std::fs::read_to_string(t.ws.join("tool-stderr.txt")) {
        run.stderr = format!("{}\n--- the tool's stderr:\n{tool}", run.stderr);
    }
    let network = std::fs::read_to_string(&report)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v["network"].as_array().cloned())
        .unwrap_or_default();
    Outcome { run, network }
}

/// The allowed run: every registry connection is an allowed proxy attempt for the name (HTTP
/// forwarding or a tunnel, by scheme), and every request the registry saw was addressed to it.
fn assert_reached_through_proxy(case: Case, tool: &str, o: &Outcome, s: &Served) {
    let what = format!("{case} {tool} {:?}", s.scheme);
    let via = match s.scheme {
        Scheme::Http => "http",
        Scheme::Https => "connect",
    };
    let allowed: Vec<_> = o
        .network
        .iter()
        .filter(|a| a["decision"] == "allow")
        .collect();
    assert!(
        !allowed.is_empty(),
        "{what}: no allowed attempt in the report: {:?}\n{}",
        o.network,
        o.run.stderr
    );
    for a in &allowed {
        assert_eq!(a["host"], s.name, "{what}: {a}");
        assert_eq!(a["port"], s.port, "{what}: {a}");
        assert_eq!(a["via"], via, "{what}: {a}");
        assert_eq!(
            a["rule"],
            format!("--allow-domain \"{}\"", s.name),
            "{what}: {a}"
        );
        assert!(a["bytes_down"].as_u64().unwrap() > 0, "{what}: {a}");
    }
    assert_eq!(
        s.reg.connections(),
        allowed.len(),
        "{what}: the registry's connections must be exactly the proxy's allowed attempts: {:?}",
        o.network
    );
    let seen = s.reg.requests();
    assert!(!seen.is_empty(), "{what}: the registry saw nothing");
    let host = format!("{}:{}", s.name, s.port);
    for r in &seen {
        assert_eq!(r.host, host, "{what}: {r:?}");
        assert_eq!(r.method, "GET", "{what}: {r:?}");
    }
    let prefix = format!("airlock: net allow {}:{} via {via} ", s.name, s.port);
    let lines = o
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count();
    assert_eq!(
        lines,
        allowed.len(),
        "{what}: one `net` line per attempt on stderr:\n{}",
        o.run.stderr
    );
}

/// The denied run: the tool failed, the proxy refused the name, the registry saw nothing.
fn assert_refused(case: Case, tool: &str, o: &Outcome, s: &Served) {
    let what = format!("{case} {tool} {:?}", s.scheme);
    assert_ne!(
        o.run.code, 0,
        "{what}: install without the registry allowed must fail:\n{}",
        o.run.stderr
    );
    assert_eq!(
        s.reg.connections(),
        0,
        "{what}: the registry saw a connection"
    );
    assert!(s.reg.requests().is_empty(), "{what}");
    assert!(
        o.network.iter().all(|a| a["decision"] == "deny"),
        "{what}: {:?}",
        o.network
    );
    assert!(
        o.network.iter().any(|a| a["host"] == s.name),
        "{what}: the refusal of {} must be an attempt in the report: {:?}\n{}",
        s.name,
        o.network,
        o.run.stderr
    );
}

/// The workspace copy of the CA certificate (the sandbox reads only the workspace and system
/// dirs), or "" over plain HTTP.
fn ca_in_workspace(t: &Fixture, tls: &Option<Tls>) -> String {
    let Some(tls) = tls else {
        return String::new();
    };
    let dst = t.ws.join("test-ca.pem");
    std::fs::copy(&tls.ca, &dst).unwrap();
    dst.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// cargo: a sparse registry replacing crates.io

struct CargoTool {
    cargo: PathBuf,
    cargo_home: PathBuf,
    rustup_home: PathBuf,
}

fn cargo_tool() -> Option<CargoTool> {
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    let cargo = cargo_home.join("bin/cargo");
    if !have(
        cargo.to_str()?,
        &["--version"],
        "the cargo package test (no cargo)",
    ) {
        return None;
    }
    Some(CargoTool {
        cargo,
        cargo_home,
        rustup_home,
    })
}

/// `airprobe` 0.1.0 packaged by `cargo package`; returns the `.crate` bytes.
fn make_crate(tool: &CargoTool, dir: &Path) -> Vec<u8> {
    let src = dir.join("airprobe");
    std::fs::create_dir_all(src.join("src")).unwrap();
    std::fs::write(
        src.join("Cargo.toml"),
        "[package]\nname = \"airprobe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         license = \"MIT\"\ndescription = \"airlock test crate\"\n",
    )
    .unwrap();
    std::fs::write(src.join("src/lib.rs"), "pub fn probe() -> u32 { 7 }\n").unwrap();
    let out = Command::new(&tool.cargo)
        .args([
            "package",
            "--no-verify",
            "--allow-dirty",
            "--offline",
            "--quiet",
        ])
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", src.join("target"))
        .env("CARGO_HOME", &tool.cargo_home)
        .env("RUSTUP_HOME", &tool.rustup_home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo package: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(src.join("target/package/airprobe-0.1.0.crate")).unwrap()
}

/// config.json, the index file and the download, as a sparse registry serves them.
fn cargo_registry(krate: &[u8], base: &str) -> HashMap<String, (&'static str, Vec<u8>)> {
    let mut f = HashMap::new();
    f.insert(
        "/cargo/config.json".to_string(),
        (
            "application/json",
            format!("{{\"dl\":\"{base}/cargo/dl/{{crate}}/{{version}}/download\"}}").into_bytes(),
        ),
    );
    f.insert(
        "/cargo/ai/rp/airprobe".to_string(),
        (
            "text/plain",
            format!(
                "{{\"name\":\"airprobe\",\"vers\":\"0.1.0\",\"deps\":[],\"cksum\":\"{}\",\"features\":{{}},\"yanked\":false}}\n",
                sha256_hex(krate)
            )
            .into_bytes(),
        ),
    );
    f.insert(
        "/cargo/dl/airprobe/0.1.0/download".to_string(),
        ("application/x-tar", krate.to_vec()),
    );
    f
}

/// A crate depending on `airprobe`, and a CARGO_HOME inside the workspace whose config
/// replaces crates.io with the test registry (and trusts the test CA over https).
fn cargo_workspace(t: &Fixture, s: &Served, ca: &str) {
    std::fs::create_dir_all(t.ws.join("app/src")).unwrap();
    std::fs::write(
        t.ws.join("app/Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [dependencies]\nairprobe = \"0.1\"\n",
    )
    .unwrap();
    std::fs::write(t.ws.join("app/src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::create_dir_all(t.ws.join("cargo-home")).unwrap();
    let mut config = format!(
        "[source.crates-io]\nreplace-with = \"mirror\"\n\
         [source.mirror]\nregistry = \"sparse+{}/cargo/\"\n\
         [net]\nretry = 0\n",
        s.base()
    );
    if s.scheme == Scheme::Https {
        config.push_str(&format!("[http]\ncainfo = \"{ca}\"\n"));
    }
    std::fs::write(t.ws.join("cargo-home/config.toml"), config).unwrap();
}

fn cargo_fetch(t: &Fixture, tool: &CargoTool, allow: &[String]) -> Outcome {
    let extra = [
        "--allow-read",
        tool.cargo_home.to_str().unwrap(),
        "--allow-read",
        tool.rustup_home.to_str().unwrap(),
    ];
    // CARGO_HOME is the workspace's (its config replaces crates.io); the toolchain's own bin
    // dir goes on PATH, where rustup's proxies look for `rustc`.
    let script = format!(
        "PATH='{}/bin':\"$PATH\" CARGO_HOME=\"$PWD/cargo-home\" RUSTUP_HOME='{}' \
         cargo fetch --manifest-path app/Cargo.toml",
        tool.cargo_home.display(),
        tool.rustup_home.display(),
    );
    install(t, &extra, allow, &script)
}

/// Every file named `name` below `dir`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return v;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(find_named(&p, name));
        } else if e.file_name() == name {
            v.push(p);
        }
    }
    v
}

#[test]
fn cargo_fetch_through_the_proxy() {
    let Some(tool) = cargo_tool() else { return };
    let src = tempfile::tempdir().unwrap();
    let krate = make_crate(&tool, src.path());
    let tls = Tls::make(src.path());
    // The toolchain is in the current user's home: not run as the unprivileged user.
    for case in cases(&[Mode::Default])
        .into_iter()
        .filter(|c| c.user == User::Current)
    {
        for scheme in schemes(case, &tls) {
            for allowed in [true, false] {
                let t = Fixture::new(case);
                if !landlock_tcp(&t) {
                    return;
                }
                let s = Served::start(CRATES, scheme, tls.as_ref(), |base| {
                    cargo_registry(&krate, base)
                });
                let ca = ca_in_workspace(&t, &tls);
                cargo_workspace(&t, &s, &ca);
                t.chown_all();
                let cached =
                    || find_named(&t.ws.join("cargo-home/registry"), "airprobe-0.1.0.crate");
                if allowed {
                    let o = cargo_fetch(&t, &tool, &s.allow());
                    assert_eq!(
                        o.run.code, 0,
                        "{case} {scheme:?}: cargo fetch: {}",
                        o.run.stderr
                    );
                    let files = cached();
                    assert_eq!(files.len(), 1, "{case} {scheme:?}: {files:?}");
                    assert_eq!(std::fs::read(&files[0]).unwrap(), krate, "{case}");
                    let lock = std::fs::read_to_string(t.ws.join("app/Cargo.lock")).unwrap();
                    assert!(
                        lock.contains(&format!("checksum = \"{}\"", sha256_hex(&krate))),
                        "{case} {scheme:?}: {lock}"
                    );
                    assert_reached_through_proxy(case, "cargo", &o, &s);
                    let paths: Vec<_> = s.reg.requests().into_iter().map(|r| r.path).collect();
                    assert!(
                        paths
                            .iter()
                            .any(|p| p == "/cargo/dl/airprobe/0.1.0/download"),
                        "{case} {scheme:?}: {paths:?}"
                    );
                } else {
                    let o = cargo_fetch(&t, &tool, &allow_other());
                    assert_refused(case, "cargo", &o, &s);
                    assert!(cached().is_empty(), "{case} {scheme:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// pip: a PEP 503 simple index serving a wheel

const PYTHON: &str = "/usr/bin/python3";

/// `airprobe-0.1.0-py3-none-any.whl`, zipped by Python with a correct RECORD.
fn make_wheel(dir: &Path) -> Vec<u8> {
    let out = dir.join("airprobe-0.1.0-py3-none-any.whl");
    let script = r#"
import base64, hashlib, sys, zipfile
di = "airprobe-0.1.0.dist-info"
files = {
    "airprobe/__init__.py": b"def probe():\n    return 7\n",
    di + "/METADATA": b"Metadata-Version: 2.1\nName: airprobe\nVersion: 0.1.0\n",
    di + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: airlock-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, data in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (path, h, len(data)))
record.append(di + "/RECORD,,")
files[di + "/RECORD"] = ("\n".join(record) + "\n").encode()
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for path, data in files.items():
        z.writestr(path, data)
"#;
    let st = Command::new(PYTHON)
        .args(["-c", script])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "building the wheel");
    std::fs::read(out).unwrap()
}

fn pypi_registry(wheel: &[u8]) -> HashMap<String, (&'static str, Vec<u8>)> {
    let name = "airprobe-0.1.0-py3-none-any.whl";
    let mut f = HashMap::new();
    f.insert(
        "/pypi/simple/airprobe".to_string(),
        (
            "text/html",
            format!(
                "<!DOCTYPE html><html><body><a href=\"/pypi/files/{name}#sha256={}\">{name}</a></body></html>\n",
                sha256_hex(wheel)
            )
            .into_bytes(),
        ),
    );
    f.insert(
        format!("/pypi/files/{name}"),
        ("application/octet-stream", wheel.to_vec()),
    );
    f
}

fn pip_install(t: &Fixture, s: &Served, ca: &str, allow: &[String]) -> Outcome {
    // PIP_CONFIG_FILE=/dev/null: no pip.conf (a host's find-links or index must not count);
    // no cache (HOME is read-only). Plain HTTP needs --trusted-host (pip ignores an insecure
    // index otherwise); over https the test CA is trusted with --cert.
    let trust = match s.scheme {
        Scheme::Http => format!("--trusted-host {}", s.name),
        Scheme::Https => format!("--cert '{ca}'"),
    };
    let script = format!(
        "PIP_CONFIG_FILE=/dev/null {PYTHON} -m pip install --no-cache-dir --disable-pip-version-check \
         --no-input --retries 0 --timeout 20 {trust} --index-url {}/pypi/simple/ --target pylib airprobe",
        s.base()
    );
    install(t, &[], allow, &script)
}

#[test]
fn pip_install_through_the_proxy() {
    if !have(
        PYTHON,
        &["-m", "pip", "--version"],
        "the pip package test (no pip)",
    ) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let wheel = make_wheel(src.path());
    let tls = Tls::make(src.path());
    for case in cases(&[Mode::Default]) {
        for scheme in schemes(case, &tls) {
            for allowed in [true, false] {
                let t = Fixture::new(case);
                if !landlock_tcp(&t) {
                    return;
                }
                let s = Served::start(PYPI, scheme, tls.as_ref(), |_| pypi_registry(&wheel));
                let ca = ca_in_workspace(&t, &tls);
                t.chown_all();
                let module = t.ws.join("pylib/airprobe/__init__.py");
                if allowed {
                    let o = pip_install(&t, &s, &ca, &s.allow());
                    assert_eq!(
                        o.run.code, 0,
                        "{case} {scheme:?}: pip install: {}{}",
                        o.run.stdout, o.run.stderr
                    );
                    assert_eq!(
                        std::fs::read_to_string(&module).unwrap(),
                        "def probe():\n    return 7\n",
                        "{case} {scheme:?}"
                    );
                    assert!(
                        t.ws.join("pylib/airprobe-0.1.0.dist-info/RECORD").exists(),
                        "{case} {scheme:?}"
                    );
                    assert_reached_through_proxy(case, "pip", &o, &s);
                    let paths: Vec<_> = s.reg.requests().into_iter().map(|r| r.path).collect();
                    assert!(
                        paths.iter().any(|p| p.ends_with(".whl")),
                        "{case} {scheme:?}: {paths:?}"
                    );
                } else {
                    let o = pip_install(&t, &s, &ca, &allow_other());
                    assert_refused(case, "pip", &o, &s);
                    assert!(!module.exists(), "{case} {scheme:?}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// npm: a registry serving one package document and its tarball

/// `airprobe-0.1.0.tgz` made by `npm pack`; returns the tarball, its integrity and shasum.
fn make_npm_package(dir: &Path) -> (Vec<u8>, String, String) {
    let src = dir.join("airprobe");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("package.json"),
        "{\"name\":\"airprobe\",\"version\":\"0.1.0\",\"main\":\"index.js\",\"license\":\"MIT\"}\n",
    )
    .unwrap();
    std::fs::write(src.join("index.js"), "module.exports = () => 7;\n").unwrap();
    let out = Command::new("npm")
        .args(["pack", "--json", "--userconfig", "/dev/null", "--cache"])
        .arg(dir.join("npm-cache"))
        .arg("--pack-destination")
        .arg(dir)
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm pack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v[0];
    let tgz = std::fs::read(dir.join(p["filename"].as_str().unwrap())).unwrap();
    (
        tgz,
        p["integrity"].as_str().unwrap().to_string(),
        p["shasum"].as_str().unwrap().to_string(),
    )
}

fn npm_registry(
    pkg: &(Vec<u8>, String, String),
    base: &str,
) -> HashMap<String, (&'static str, Vec<u8>)> {
    let (tgz, integrity, shasum) = pkg;
    let doc = serde_json::json!({
        "name": "airprobe",
        "dist-tags": {"latest": "0.1.0"},
        "versions": {"0.1.0": {
            "name": "airprobe",
            "version": "0.1.0",
            "main": "index.js",
            "dist": {
                "tarball": format!("{base}/npm/airprobe/-/airprobe-0.1.0.tgz"),
                "integrity": integrity,
                "shasum": shasum,
            },
        }},
    });
    let mut f = HashMap::new();
    f.insert(
        "/npm/airprobe".to_string(),
        ("application/json", doc.to_string().into_bytes()),
    );
    f.insert(
        "/npm/airprobe/-/airprobe-0.1.0.tgz".to_string(),
        ("application/octet-stream", tgz.clone()),
    );
    f
}

fn npm_install(t: &Fixture, s: &Served, ca: &str, allow: &[String]) -> Outcome {
    // npm's cache must be writable (HOME is not); no user/global npmrc; no audit, fund or
    // update check (each would be one more request to the registry).
    let cafile = match s.scheme {
        Scheme::Http => String::new(),
        Scheme::Https => format!("--cafile '{ca}'"),
    };
    let script = format!(
        "cd proj && npm install --registry {}/npm/ {cafile} --cache \"$PWD/../npm-cache\" \
         --userconfig /dev/null --globalconfig empty-npmrc --no-audit --no-fund \
         --no-update-notifier --fetch-retries 0 airprobe",
        s.base()
    );
    install(t, &[], allow, &script)
}

#[test]
fn npm_install_through_the_proxy() {
    if !have("npm", &["--version"], "the npm package test (no npm)") {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let pkg = make_npm_package(src.path());
    let tls = Tls::make(src.path());
    for case in cases(&[Mode::Default]) {
        for scheme in schemes(case, &tls) {
            for allowed in [true, false] {
                let t = Fixture::new(case);
                if !landlock_tcp(&t) {
                    return;
                }
                let s = Served::start(NPM, scheme, tls.as_ref(), |base| npm_registry(&pkg, base));
                let ca = ca_in_workspace(&t, &tls);
                std::fs::create_dir_all(t.ws.join("proj")).unwrap();
                std::fs::write(t.ws.join("proj/empty-npmrc"), "").unwrap();
                std::fs::write(
                    t.ws.join("proj/package.json"),
                    "{\"name\":\"proj\",\"version\":\"1.0.0\",\"private\":true}\n",
                )
                .unwrap();
                t.chown_all();
                let index = t.ws.join("proj/node_modules/airprobe/index.js");
                if allowed {
                    let o = npm_install(&t, &s, &ca, &s.allow());
                    assert_eq!(
                        o.run.code, 0,
                        "{case} {scheme:?}: npm install: {}{}",
                        o.run.stdout, o.run.stderr
                    );
                    assert_eq!(
                        std::fs::read_to_string(&index).unwrap(),
                        "module.exports = () => 7;\n",
                        "{case} {scheme:?}"
                    );
                    let lock =
                        std::fs::read_to_string(t.ws.join("proj/package-lock.json")).unwrap();
                    assert!(
                        lock.contains(&pkg.1),
                        "{case} {scheme:?}: integrity not locked: {lock}"
                    );
                    assert_reached_through_proxy(case, "npm", &o, &s);
                    let paths: Vec<_> = s.reg.requests().into_iter().map(|r| r.path).collect();
                    assert!(
                        paths.iter().any(|p| p.ends_with("airprobe-0.1.0.tgz")),
                        "{case} {scheme:?}: {paths:?}"
                    );
                } else {
                    let o = npm_install(&t, &s, &ca, &allow_other());
                    assert_refused(case, "npm", &o, &s);
                    assert!(!index.exists(), "{case} {scheme:?}");
                }
            }
        }
    }
}
