//! `airlock exec` network policy through the loopback proxy, checked from outside the sandbox.
//!
//! Every server here listens on 127.0.0.1 and counts the connections it accepts: a refused
//! attempt must leave that count at zero. Names are pointed at 127.0.0.1 with the test-only
//! `AIRLOCK_TEST_RESOLVE`; nothing here contacts a non-loopback address.
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use airlock_e2e::http::HttpServer;

fn airlock_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AIRLOCK_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("airlock")
}

/// Landlock TCP rules need ABI 4; without them the sandbox refuses to open the proxy port.
fn landlock_tcp() -> bool {
    let out = Command::new(airlock_bin())
        .args(["exec", "--allow-domain", "x.test", "--", "true"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "skipping: sandbox with a TCP port is unavailable here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
    true
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(policy: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cfg/airlock")).unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::write(dir.path().join("cfg/airlock/policy.toml"), policy).unwrap();
        Env { dir }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(airlock_bin());
        c.env("XDG_CONFIG_HOME", self.dir.path().join("cfg"))
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env(
                "AIRLOCK_TEST_RESOLVE",
                "good.test=127.0.0.1,other.test=127.0.0.1,a.sub.test=127.0.0.1,\
                 sub.test=127.0.0.1,no.sub.test=127.0.0.1,port.test=127.0.0.1,bad.test=127.0.0.1,\
                 xn--bcher-kva.test=127.0.0.1,xn--bse-sna.test=127.0.0.1",
            )
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
        c
    }

    fn exec(&self, flags: &[&str], script: &str) -> Output {
        let ws = self.ws();
        let mut c = self.cmd();
        c.arg("exec").arg("--workspace").arg(&ws).args(flags);
        // The command's own stderr goes to a file: airlock's `net` lines share the terminal's
        // stderr and would interleave with curl's messages.
        let script = format!("exec 2>>cmd-stderr.txt\n{script}");
        c.args(["--", "/bin/sh", "-c", &script]);
        c.output().unwrap()
    }

    fn explain(&self, domain: &str) -> String {
        let out = self
            .cmd()
            .args(["policy", "explain", "--workspace"])
            .arg(self.ws())
            .args(["--domain", domain, "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "explain {domain}: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        v["decision"].as_str().unwrap().to_string()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Lines `airlock: net ...` of the exec's stderr.
fn net_lines(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("airlock: net "))
        .map(str::to_string)
        .collect()
}

fn bytes_down(line: &str) -> u64 {
    let i = line.find(" down ").unwrap();
    line[i + 6..].split(' ').next().unwrap().parse().unwrap()
}

fn bytes_up(line: &str) -> u64 {
    let i = line.find(" up ").unwrap();
    line[i + 4..].split(' ').next().unwrap().parse().unwrap()
}

const EXPLICIT: &str = "version = 1\n[network]\nallow = [\"good.test\", \"127.0.0.1\"]\n";

#[test]
fn allowed_name_reachable_with_curl_connect_and_python() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello good\n".to_owned()).unwrap();
    let env = Env::new(EXPLICIT);
    let p = s.port;
    let script = format!(
        "curl -sS http://good.test:{p}/ && curl -sS -p http://GOOD.test.:{p}/ && \
         /usr/bin/python3 -c \"import urllib.request as u; print(u.urlopen('http://good.test:{p}/').read().decode().strip())\""
    );
    let out = env.exec(&[], &script);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(stdout.matches("hello good").count(), 3, "{stdout}");
    assert_eq!(s.hits(), 3);
    let lines = net_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "allow good.test:{p} via http by network.allow \"good.test\" (user)"
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("allow good.test:{p} via connect")),
        "{}",
        lines[1]
    );
    for l in &lines {
        assert!(bytes_down(l) > 40 && bytes_up(l) > 20, "{l}");
    }
}

#[test]
fn one_off_allow_domain_without_policy() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello oneoff\n".to_owned()).unwrap();
    let env = Env::new("version = 1\n");
    let p = s.port;
    let out = env.exec(
        &[
            "--allow-domain",
            "good.test",
            "--allow-domain",
            &format!("127.0.0.1:{p}"),
        ],
        &format!("curl -sS http://good.test:{p}/"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello oneoff\n");
    assert!(net_lines(&out)[0].contains("--allow-domain \"good.test\""));
    assert_eq!(s.hits(), 1);
}

#[test]
fn denied_name_gets_403_naming_the_rule() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello x\n".to_owned()).unwrap();
    let env = Env::new(
        "version = 1\n[network]\nallow = [\"*.test\", \"127.0.0.1\"]\ndeny = [\"bad.test\"]\n",
    );
    let p = s.port;
    let out = env.exec(
        &[],
        &format!(
            "curl -sS -w '%{{http_code}}\\n' http://bad.test:{p}/; curl -sS -w '%{{http_code}}\\n' http://nothing.example:{p}/"
        ),
    );
    let stdout = text(&out.stdout);
    let mut blocks = stdout.split("\n403\n");
    let first = blocks.next().unwrap();
    assert!(
        first.contains("denied by network.deny \"bad.test\" (user layer"),
        "{stdout}"
    );
    assert!(stdout.matches("403").count() >= 2, "{stdout}");
    assert_eq!(s.hits(), 0, "the server must see nothing");
    let lines = net_lines(&out);
    assert!(
        lines[0].starts_with(&format!(
            "deny bad.test:{p} via http by network.deny \"bad.test\""
        )),
        "{lines:?}"
    );
    assert!(lines[0].contains("up 0 B down 0 B"), "{lines:?}");
}

#[test]
fn bypass_attempts_are_blocked_and_the_server_sees_nothing() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello x\n".to_owned()).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let up = udp.local_addr().unwrap().port();
    // Names are allowed, the address is not: the rebinding guard must hold.
    let env = Env::new("version = 1\n[network]\nallow = [\"good.test\", \"other.test\"]\n");
    let p = s.port;
    let cases = [
        (
            "rebinding",
            format!("curl -sS -w '%{{http_code}}' http://good.test:{p}/"),
        ),
        (
            "noproxy",
            format!("curl -sS --noproxy '*' http://127.0.0.1:{p}/"),
        ),
        (
            "direct-python",
            format!(
                "/usr/bin/python3 -c \"import socket; socket.create_connection(('127.0.0.1', {p}), 2)\""
            ),
        ),
        (
            "ip-literal",
            format!("curl -sS -w '%{{http_code}}' http://127.0.0.1:{p}/"),
        ),
        (
            "decimal",
            format!("curl -sS -w '%{{http_code}}' -p http://2130706433:{p}/"),
        ),
        (
            "hex",
            format!("curl -sS -w '%{{http_code}}' -p http://0x7f.1:{p}/"),
        ),
        (
            "ipv6",
            format!("curl -sS -w '%{{http_code}}' -p 'http://[::1]:{p}/'"),
        ),
        (
            "host-header",
            format!("curl -sS -w '%{{http_code}}' -H 'Host: bad.test:{p}' http://good.test:{p}/"),
        ),
        (
            "smuggle",
            format!(
                "/usr/bin/python3 -c \"import socket,os; h,pp=os.environ['HTTP_PROXY'][7:].split(':'); s=socket.create_connection((h,int(pp))); s.sendall(b'GET http://bad.test:{p}/ HTTP/1.1\\r\\nHost: good.test:{p}\\r\\n\\r\\n'); print(s.recv(4096).decode())\""
            ),
        ),
        (
            "connect-host-mismatch",
            format!(
                "/usr/bin/python3 -c \"import socket,os; h,pp=os.environ['HTTP_PROXY'][7:].split(':'); s=socket.create_connection((h,int(pp))); s.sendall(b'CONNECT good.test:{p} HTTP/1.1\\r\\nHost: bad.test:{p}\\r\\n\\r\\n'); print(s.recv(4096).decode())\""
            ),
        ),
        (
            "udp-dns",
            format!(
                "/usr/bin/python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'q', ('127.0.0.1', {up}))\""
            ),
        ),
    ];
    // With the address explicitly allowed, good.test is reachable: only the Host check can
    // stop these.
    let explicit = Env::new(EXPLICIT);
    let host_checked = ["host-header", "connect-host-mismatch"];
    for (name, script) in &cases {
        let e = if host_checked.contains(name) || *name == "smuggle" {
            &explicit
        } else {
            &env
        };
        let out = e.exec(&[], script);
        if host_checked.contains(name) {
            assert!(
                text(&out.stdout).contains("Host header differs from the request target"),
                "{name}: {}",
                text(&out.stdout)
            );
        }
        let stdout = text(&out.stdout);
        let ok_refusal = stdout.contains("403") || !out.status.success();
        assert!(
            ok_refusal,
            "{name}: not refused: {stdout}\n{}",
            text(&out.stderr)
        );
        assert!(
            !stdout.contains("hello"),
            "{name}: reached the server: {stdout}"
        );
        assert_eq!(s.hits(), 0, "{name}: the server saw a connection");
        let lines = net_lines(&out);
        assert!(
            lines.iter().all(|l| l.starts_with("deny ")),
            "{name}: the proxy let something through: {lines:?}"
        );
        let mut b = [0u8; 16];
        assert!(
            udp.recv_from(&mut b).is_err(),
            "{name}: a UDP datagram got out"
        );
    }
}

#[test]
fn no_allowed_domain_means_no_proxy_and_no_tcp() {
    let s = HttpServer::start(|_| "hello x\n".to_owned()).unwrap();
    let env = Env::new("version = 1\n");
    let out = env.exec(
        &[],
        &format!(
            "env | grep -i _proxy; /usr/bin/python3 -c \"import socket; socket.create_connection(('127.0.0.1', {}), 2)\"",
            s.port
        ),
    );
    assert!(!out.status.success());
    assert!(
        !text(&out.stdout).to_lowercase().contains("proxy="),
        "{}",
        text(&out.stdout)
    );
    assert!(net_lines(&out).is_empty());
    assert_eq!(s.hits(), 0);
}

/// `airlock policy explain --domain` and the proxy agree on every name of a table.
#[test]
fn explain_agrees_with_the_proxy() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello x\n".to_owned()).unwrap();
    let p = s.port;
    let env = Env::new(&format!(
        "version = 1\n[network]\nallow = [\"good.test\", \"*.sub.test\", \"port.test:{p}\", \"xn--bcher-kva.test\", \"127.0.0.1\"]\ndeny = [\"no.sub.test\"]\n"
    ));
    let other = if p == 1 { 2 } else { p - 1 };
    let table = [
        format!("good.test:{p}"),
        format!("GOOD.Test.:{p}"),
        format!("a.sub.test:{p}"),
        format!("sub.test:{p}"),
        format!("no.sub.test:{p}"),
        format!("port.test:{p}"),
        format!("port.test:{other}"),
        format!("other.test:{p}"),
        format!("127.0.0.1:{p}"),
        // IDNA: decided in the `xn--` form by both.
        format!("Bücher.test:{p}"),
        format!("böse.test:{p}"),
    ];
    let script: String = table
        .iter()
        .map(|t| format!("echo \"$(curl -s -o /dev/null -w '%{{http_code}}' http://{t}/)\";"))
        .collect();
    let out = env.exec(&[], &script);
    let codes: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(codes.len(), table.len(), "{codes:?} {}", text(&out.stderr));
    // The expected outcome, so that the two cannot agree by both being wrong.
    let expected = [
        "allow", "allow", "allow", "deny", "deny", "allow", "deny", "deny", "allow", "allow",
        "deny",
    ];
    assert_eq!(expected.len(), table.len());
    for ((t, code), want) in table.iter().zip(&codes).zip(expected) {
        let got = if code == "403" { "deny" } else { "allow" };
        assert_eq!(got, want, "{t}: proxy answered {code}");
        let explain = env.explain(t);
        // 403 is the proxy's refusal; anything else means it let the attempt through (the
        // port below the server's may have no listener: 000 after a 502, still allowed).
        let proxy = if code == "403" { "deny" } else { "allow" };
        assert_eq!(
            explain, proxy,
            "{t}: explain says {explain}, proxy answered {code}"
        );
    }
    assert!(s.hits() >= 5, "allowed names must reach the server");
}

#[test]
fn attempts_report_bytes_through_a_tunnel() {
    if !landlock_tcp() {
        return;
    }
    // An echo server: the tunnel's byte counts must match what was sent both ways.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = c.try_clone().unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut r, &mut c);
            });
        }
    });
    let env = Env::new(EXPLICIT);
    let script = format!(
        "/usr/bin/python3 -c \"
import socket,os
h,pp=os.environ['HTTPS_PROXY'][7:].split(':')
s=socket.create_connection((h,int(pp)))
s.sendall(b'CONNECT good.test:{p} HTTP/1.1\\r\\nHost: good.test:{p}\\r\\n\\r\\n')
r=b''
while not r.endswith(b'\\r\\n\\r\\n'): r+=s.recv(1)
assert b' 200 ' in r, r
s.sendall(b'x'*100000)
s.shutdown(socket.SHUT_WR)
n=0
while True:
    d=s.recv(65536)
    if not d: break
    n+=len(d)
print(n)
\""
    );
    let report = env.dir.path().join("report.json");
    let out = env.exec(&["--report-json", report.to_str().unwrap()], &script);
    assert_eq!(text(&out.stdout).trim(), "100000", "{}", text(&out.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let net = r["network"].as_array().unwrap();
    assert_eq!(net.len(), 1, "{r}");
    assert_eq!(net[0]["host"], "good.test");
    assert_eq!(net[0]["decision"], "allow");
    assert_eq!(net[0]["via"], "connect");
    assert_eq!(net[0]["rule"], "network.allow \"good.test\"");
    assert_eq!(net[0]["bytes_up"], 100000);
    assert_eq!(net[0]["bytes_down"], 100000);
    let lines = net_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(bytes_up(&lines[0]), 100000, "{}", lines[0]);
    assert_eq!(bytes_down(&lines[0]), 100000, "{}", lines[0]);
}

/// `ask` has nobody to ask in `airlock exec`: the proxy denies, and says so.
#[test]
fn ask_is_denied_in_non_interactive_exec() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello x\n".to_owned()).unwrap();
    let env = Env::new("version = 1\n[network]\ndefault = \"ask\"\nallow = [\"127.0.0.1\"]\n");
    let out = env.exec(
        &[],
        &format!("curl -sS -w '%{{http_code}}' http://good.test:{}/", s.port),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.ends_with("403"), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("ask: no approval here, denied"), "{stdout}");
    assert_eq!(s.hits(), 0);
}

/// SOCKS5 on the same port: same decisions, same events.
#[test]
fn socks5_gets_the_same_decisions() {
    if !landlock_tcp() {
        return;
    }
    let s = HttpServer::start(|_| "hello socks\n".to_owned()).unwrap();
    let env = Env::new(EXPLICIT);
    let p = s.port;
    let out = env.exec(
        &[],
        &format!(
            "S=socks5h://${{HTTP_PROXY#http://}}; curl -sS -x $S http://good.test:{p}/; curl -sS -x $S http://other.test:{p}/; curl -sS -x $S http://127.0.0.2:{p}/; true"
        ),
    );
    assert_eq!(text(&out.stdout), "hello socks\n", "{}", text(&out.stderr));
    assert_eq!(s.hits(), 1);
    let lines = net_lines(&out);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("allow good.test:{p} via socks5")),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("deny other.test:{p} via socks5")),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with(&format!("deny 127.0.0.2:{p} via socks5")),
        "{lines:?}"
    );
}
