//! Escape suite for `airlock exec`: every attack runs inside the real binary and its effect is
//! checked from OUTSIDE the sandbox (files on disk, listeners, host processes), never from
//! what the sandboxed process prints.
//!
//! Each scenario runs in several modes: the default (this kernel's best: Landlock ABI 7 + user
//! namespaces), without user namespaces, and with the Landlock ABI capped (test-only knobs
//! `AIRLOCK_TEST_NO_USERNS`, `AIRLOCK_TEST_LANDLOCK_ABI`) — the paths users' older kernels
//! take. When the suite runs as root, every scenario also runs as an unprivileged user
//! (`airlock-test`, created if missing) through `setpriv`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox_common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use sandbox_common::*;

#[test]
fn writes_outside_the_workspace_have_no_effect() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        std::fs::write(t.out.join("existing"), "original").unwrap();
        std::fs::write(t.ws.join("file"), "in workspace").unwrap();
        t.chown_all();
        let out = t.out.display();
        let home = t.home.display();
        let script = format!(
            r#"
            echo x > {out}/plain
            ln -s {out}/via-symlink link1; echo x > link1
            ln -s {out}/existing link2; echo x >> link2
            ln {out}/existing hardlink; echo x >> hardlink
            echo x > /proc/self/root{out}/via-proc-root
            echo x > /proc/self/cwd/../out/via-proc-cwd
            mv file {out}/renamed-out
            mkdir {out}/newdir
            chmod 777 {out}/existing
            truncate -s 0 {out}/existing
            /usr/bin/python3 -c "import os; os.open('{out}/existing', os.O_RDONLY | os.O_TRUNC)"
            echo x > {home}/in-home
            touch /etc/airlock-escape 2>/dev/null
            exit 0
            "#
        );
        let r = t.exec(&[], &script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        for name in [
            "plain",
            "via-symlink",
            "via-proc-root",
            "via-proc-cwd",
            "renamed-out",
            "newdir",
        ] {
            assert!(
                !t.out.join(name).exists(),
                "{case}: {name} was created outside"
            );
        }
        assert_eq!(
            std::fs::read_to_string(t.out.join("existing")).unwrap(),
            "original",
            "{case}"
        );
        if case.mode.has_userns() {
            // Landlock has no right for metadata changes; the read-only mount namespace does.
            // Without user namespaces this is a documented residual risk (docs/security.md).
            assert_eq!(
                mode(&t.out.join("existing")) & 0o777,
                0o644,
                "{case}: chmod went through"
            );
        }
        assert!(
            t.ws.join("file").exists(),
            "{case}: file left the workspace"
        );
        assert!(!t.home.join("in-home").exists(), "{case}");
        assert!(
            !std::path::Path::new("/etc/airlock-escape").exists(),
            "{case}"
        );
    });
}

#[test]
fn host_tmp_and_dev_shm_are_not_writable() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let tag = t.tag();
        let r = t.exec(
            &[],
            &format!(
                "echo x > /tmp/airlock-escape-{tag}; echo x > /dev/shm/airlock-escape-{tag}; \
                 echo ok > \"$TMPDIR/private\" && cp \"$TMPDIR/private\" tmpdir-worked; echo \"$TMPDIR\" > tmpdir-path"
            ),
        );
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert!(
            !std::path::Path::new(&format!("/tmp/airlock-escape-{tag}")).exists(),
            "{case}"
        );
        assert!(
            !std::path::Path::new(&format!("/dev/shm/airlock-escape-{tag}")).exists(),
            "{case}"
        );
        // The private TMPDIR worked and is gone afterwards.
        assert!(
            t.ws.join("tmpdir-worked").exists(),
            "{case}: private TMPDIR unusable: {}",
            r.stderr
        );
        let tmpdir = std::fs::read_to_string(t.ws.join("tmpdir-path")).unwrap();
        assert!(
            !std::path::Path::new(tmpdir.trim()).exists(),
            "{case}: TMPDIR {tmpdir} left behind"
        );
    });
}

#[test]
fn secrets_in_home_and_deny_read_files_are_unreadable() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        std::fs::create_dir_all(t.home.join(".ssh")).unwrap();
        std::fs::write(t.home.join(".ssh/id_ed25519"), "SSH-KEY-SECRET").unwrap();
        std::fs::write(t.home.join("notes.txt"), "HOME-FILE-SECRET").unwrap();
        // ~/.cargo is readable by default (toolchain), its crates.io token is not.
        std::fs::create_dir_all(t.home.join(".cargo")).unwrap();
        std::fs::write(
            t.home.join(".cargo/credentials.toml"),
            "token = \"CARGO-TOKEN-SECRET\"",
        )
        .unwrap();
        std::fs::write(t.home.join(".cargo/config.toml"), "[build]").unwrap();
        std::fs::write(t.ws.join(".env"), "DOTENV-SECRET").unwrap();
        std::fs::create_dir_all(t.ws.join("svc")).unwrap();
        std::fs::write(t.ws.join("svc/.env.local"), "NESTED-DOTENV-SECRET").unwrap();
        std::os::unix::fs::symlink(".env", t.ws.join("env-link")).unwrap();
        std::fs::write(t.ws.join("readme.txt"), "PUBLIC").unwrap();
        t.chown_all();
        let home = t.home.display();
        let script = format!(
            "cat {home}/.ssh/id_ed25519 > leak1; cat {home}/notes.txt > leak2; cat .env > leak3; \
             cat svc/.env.local > leak4; cat env-link > leak5; cat /proc/self/cwd/.env > leak6; \
             cp .env leak7; cat {home}/.cargo/credentials.toml > leak8; cat {home}/.cargo/config.toml > cargo-config; cat readme.txt > public; exit 0"
        );
        let r = t.exec(&[], &script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        for i in 1..=8 {
            let leaked = std::fs::read_to_string(t.ws.join(format!("leak{i}"))).unwrap_or_default();
            assert!(!leaked.contains("SECRET"), "{case}: leak{i} = {leaked:?}");
        }
        assert_eq!(
            std::fs::read_to_string(t.ws.join("cargo-config")).unwrap(),
            "[build]",
            "{case}: toolchain config unreadable"
        );
        assert_eq!(
            std::fs::read_to_string(t.ws.join("public")).unwrap(),
            "PUBLIC",
            "{case}: {}",
            r.stderr
        );
    });
}

#[test]
fn secrets_in_the_environment_do_not_pass() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let secrets = [
            ("GITHUB_TOKEN", "ghp_SECRETVALUE1"),
            ("AWS_SECRET_ACCESS_KEY", "SECRETVALUE2"),
            ("AWS_ACCESS_KEY_ID", "SECRETVALUE3"),
            ("OPENAI_API_KEY", "SECRETVALUE4"),
            ("MY_SERVICE_PASSWORD", "SECRETVALUE5"),
            ("SSH_AUTH_SOCK", "/tmp/SECRETVALUE6"),
            ("SOME_RANDOM_VAR", "SECRETVALUE7"),
        ];
        let r = t.exec(
            &secrets,
            "env > env.txt; cat /proc/self/environ > environ.bin",
        );
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        let env = std::fs::read_to_string(t.ws.join("env.txt")).unwrap();
        let environ = std::fs::read(t.ws.join("environ.bin")).unwrap();
        assert!(env.contains("PATH="), "{case}: env not captured: {env}");
        assert!(!env.contains("SECRETVALUE"), "{case}: {env}");
        assert!(
            !String::from_utf8_lossy(&environ).contains("SECRETVALUE"),
            "{case}"
        );
    });
}

#[test]
fn inherited_fds_are_closed() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let target = t.out.join("fd-target");
        std::fs::write(&target, "").unwrap();
        t.chown_all();
        // The outer shell opens fd 7 on a file outside; the sandboxed command tries to use it.
        let r = t.exec_wrapped(
            &format!("exec 7>>{} 8<{}", target.display(), target.display()),
            "echo leaked >&7; echo leaked > /proc/self/fd/7; exit 0",
        );
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "",
            "{case}: wrote through an inherited fd"
        );
    });
}

#[test]
fn network_is_off() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let tcp_port = tcp.local_addr().unwrap().port();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let udp_port = udp.local_addr().unwrap().port();
        let sock_path = t.out.join("host.sock");
        let unix = UnixListener::bind(&sock_path).unwrap();
        unix.set_nonblocking(true).unwrap();
        std::fs::set_permissions(
            &sock_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let abstract_name = format!("airlock-test-{}", t.tag());
        let abs_addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .unwrap();
        let abs = UnixListener::bind_addr(&abs_addr).unwrap();
        abs.set_nonblocking(true).unwrap();

        let py = format!(
            r#"
import socket, struct
def attempt(f):
    try: f()
    except Exception: pass
def tcp():
    s = socket.create_connection(("127.0.0.1", {tcp_port}), timeout=1); s.send(b"x")
def tcp6():
    s = socket.create_connection(("::ffff:127.0.0.1", {tcp_port}), timeout=1); s.send(b"x")
def udp():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"udp", ("127.0.0.1", {udp_port}))
def raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    s.sendto(struct.pack("!HHHH", 40000, {udp_port}, 11, 0) + b"raw", ("127.0.0.1", 0))
def unix_path():
    s = socket.socket(socket.AF_UNIX); s.connect("{sock}"); s.send(b"x")
def unix_abstract():
    s = socket.socket(socket.AF_UNIX); s.connect("\0{abstract_name}"); s.send(b"x")
for f in (tcp, tcp6, udp, raw, unix_path, unix_abstract): attempt(f)
"#,
            sock = sock_path.display()
        );
        std::fs::write(t.ws.join("net.py"), &py).unwrap();
        t.chown_all();
        let r = t.exec(&[], "/usr/bin/python3 net.py");
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            tcp.accept().is_err(),
            "{case}: TCP connection reached the host listener"
        );
        let mut buf = [0u8; 64];
        assert!(
            udp.recv_from(&mut buf).is_err(),
            "{case}: a UDP datagram reached the host"
        );
        assert!(
            unix.accept().is_err(),
            "{case}: host pathname unix socket reached"
        );
        assert!(
            abs.accept().is_err(),
            "{case}: host abstract unix socket reached"
        );

        // Control: the same script unsandboxed does reach the listeners, so the checks above
        // can fail.
        if case.mode == Mode::Default {
            let ctl = t.run_unsandboxed("/usr/bin/python3 net.py");
            assert_eq!(ctl.code, 0, "control: {}", ctl.stderr);
            std::thread::sleep(Duration::from_millis(100));
            assert!(tcp.accept().is_ok(), "control: TCP listener got nothing");
            assert!(
                udp.recv_from(&mut buf).is_ok(),
                "control: UDP listener got nothing"
            );
            assert!(unix.accept().is_ok(), "control: unix listener got nothing");
            let mut c = abs
                .accept()
                .expect("control: abstract listener got nothing")
                .0;
            let _ = c.read(&mut buf);
        }
    });
}

#[test]
fn host_processes_cannot_be_signalled_or_traced() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let mut victim = t.spawn_as_case_user("sleep 60");
        let pid = victim.id();
        // Below Landlock ABI 6 the user opted out of signal scoping (`no-signal-scope`).
        let kill = if case.mode.has_signal_scope() {
            format!("kill -TERM {pid}; kill -KILL {pid}")
        } else {
            String::new()
        };
        let script = format!(
            r#"{kill}
/usr/bin/python3 -c "import ctypes; l = ctypes.CDLL(None); l.ptrace(16, {pid}, 0, 0)"
exit 0"#
        );
        let r = t.exec(&[], &script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            victim.try_wait().unwrap().is_none(),
            "{case}: the host process was killed"
        );
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains("TracerPid:\t0"),
            "{case}: the host process is traced"
        );
        victim.kill().unwrap();
        let _ = victim.wait();
    });
}

/// Started as root, the command keeps no capability: neither directly nor by executing a
/// program again (uid 0 would get its bounding set back at execve; cleared capabilities,
/// locked securebits and no_new_privs each stop that). CAP_CHOWN is what Landlock and the
/// read-only mounts don't cover inside the workspace, so the effect is checked there: the
/// owner of the files on disk.
#[test]
fn capabilities_do_not_survive_even_for_root() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        for f in ["owned", "owned2", "control"] {
            std::fs::write(t.ws.join(f), "x").unwrap();
        }
        t.chown_all();
        let r = t.exec(
            &[],
            "chown 65534 owned; sh -c 'exec chown 65534 owned2'; exit 0",
        );
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        for f in ["owned", "owned2"] {
            let uid = std::fs::metadata(t.ws.join(f)).unwrap().uid();
            assert_ne!(uid, 65534, "{case}: {f} was chowned inside the sandbox");
        }
        if is_root() && case.user == User::Current {
            // The same chown works for root outside the sandbox: the test can fail.
            let c = t.run_unsandboxed(&format!("chown 65534 {}", t.ws.join("control").display()));
            assert_eq!(c.code, 0, "{case}: {}", c.stderr);
            let uid = std::fs::metadata(t.ws.join("control")).unwrap().uid();
            assert_eq!(uid, 65534, "{case}: control chown had no effect");
        }
    });
}

#[test]
fn daemons_die_with_the_command() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let tag = t.tag();
        let script = format!(
            "setsid sh -c 'sleep 1.5; echo alive > daemon1; sleep 60 # {tag}' >/dev/null 2>&1 < /dev/null &
             (sh -c 'sleep 1.5; echo alive > daemon2; sleep 60 # {tag}' &) >/dev/null 2>&1
             nohup sh -c 'trap \"\" TERM HUP; sleep 1.5; echo alive > daemon3 # {tag}' >/dev/null 2>&1 &
             exit 0"
        );
        let r = t.exec(&[], &script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        // Nothing of the command may remain once `airlock exec` has returned.
        let survivors = processes_matching(&tag);
        assert!(survivors.is_empty(), "{case}: survivors {survivors:?}");
        std::thread::sleep(Duration::from_millis(2000));
        for f in ["daemon1", "daemon2", "daemon3"] {
            assert!(
                !t.ws.join(f).exists(),
                "{case}: {f} ran after the command ended"
            );
        }
    });
}

#[test]
fn mount_and_namespaces_are_blocked() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        std::fs::create_dir_all(t.ws.join("rootfs")).unwrap();
        t.chown_all();
        let tag = t.tag();
        let script = format!(
            "mount --bind / rootfs; unshare -rm sh -c 'mount --bind / rootfs && echo x > rootfs/tmp/airlock-mount-{tag}'; \
             echo x > rootfs/tmp/airlock-mount-{tag}; exit 0"
        );
        let r = t.exec(&[], &script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert!(
            !std::path::Path::new(&format!("/tmp/airlock-mount-{tag}")).exists(),
            "{case}"
        );
    });
}

#[test]
fn exit_codes_pass_through() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        std::fs::write(t.ws.join("not-exec"), "#!/bin/sh\n").unwrap();
        t.chown_all();
        assert_eq!(t.exec(&[], "exit 7").code, 7, "{case}");
        assert_eq!(t.exec(&[], "kill -TERM $$").code, 128 + 15, "{case}");
        assert_eq!(
            t.exec_argv(&[], &["airlock-no-such-command"]).code,
            127,
            "{case}"
        );
        assert_eq!(t.exec_argv(&[], &["./not-exec"]).code, 126, "{case}");
        let r = t.exec_argv(&["--timeout", "0.3"], &["sleep", "20"]);
        assert_eq!(r.code, 128 + 9, "{case}: timeout: {}", r.stderr);
        assert!(
            r.wall < Duration::from_secs(5),
            "{case}: timeout not enforced"
        );
    });
}
