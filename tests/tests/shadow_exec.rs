//! `airlock exec --shadow-upper/--shadow-work` (overlay) and `--shadow-copy`: the command sees a
//! writable view of the workspace at the workspace's own path, while the real workspace, the
//! shadow's own layers and protected paths stay out of its reach. Checked from outside the
//! sandbox, as the current user and (when run as root) as an unprivileged user.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use airlock_e2e::airlock_bin;

const TEST_USER: &str = "airlock-test";

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn user_exists() -> bool {
    Command::new("id")
        .arg(TEST_USER)
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", TEST_USER])
            .status()
            .is_ok_and(|s| s.success())
}

struct Fixture {
    _dir: tempfile::TempDir,
    ws: std::path::PathBuf,
    state: std::path::PathBuf,
}

fn fixture(unprivileged: bool) -> Fixture {
    let dir = tempfile::Builder::new()
        .prefix("airlock-shadow-")
        .tempdir()
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
    let ws = root.join("ws");
    let state = root.join("state");
    for (rel, text) in [
        ("a.txt", "real a\n"),
        ("b.txt", "real b\n"),
        (".env", "SECRET=1\n"),
        (".git/hooks/README", "hooks\n"),
        ("target/out", "build\n"),
    ] {
        let p = ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(&ws)).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    }
    for d in ["upper", "work"] {
        std::fs::create_dir_all(state.join(d)).unwrap_or_else(|e| panic!("{e}"));
    }
    if unprivileged {
        let ok = Command::new("chown")
            .args(["-R", &format!("{TEST_USER}:{TEST_USER}")])
            .arg(&root)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown for the test user");
    }
    Fixture {
        _dir: dir,
        ws,
        state,
    }
}

const SCRIPT: &str = r#"
echo shadow > a.txt
rm b.txt
echo new > c.txt
echo x > .git/hooks/pre-commit 2>/dev/null && echo HOOK-WRITTEN
cat .env 2>/dev/null
echo x > target/out 2>/dev/null
echo x > "$UPPER/evil" 2>/dev/null && echo UPPER-WRITTEN
cat a.txt
"#;

fn run(f: &Fixture, unprivileged: bool, shadow_args: &[String]) -> String {
    let mut cmd = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            TEST_USER,
            "--regid",
            TEST_USER,
            "--clear-groups",
            "--",
        ]);
        c.arg(airlock_bin());
        c
    } else {
        Command::new(airlock_bin())
    };
    cmd.current_dir(&f.ws)
        .env("HOME", f.state.join("home"))
        .env("XDG_CONFIG_HOME", f.state.join("xdg"))
        .env("UPPER", f.state.join("upper"))
        .args(["exec", "--no-policy", "--workspace"])
        .arg(&f.ws)
        .args(shadow_args)
        .args(["--pass-env", "UPPER", "--", "sh", "-c", SCRIPT]);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run airlock exec: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exec failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn check_common(f: &Fixture, stdout: &str) {
    // The command saw its own writes at the workspace's path…
    assert!(stdout.ends_with("shadow\n"), "{stdout}");
    // …but the real workspace is untouched.
    assert_eq!(read(&f.ws.join("a.txt")), "real a\n");
    assert_eq!(read(&f.ws.join("b.txt")), "real b\n");
    assert!(!f.ws.join("c.txt").exists());
    assert_eq!(read(&f.ws.join("target/out")), "build\n");
    // Protections still hold inside the shadow.
    assert!(
        !stdout.contains("HOOK-WRITTEN") && !stdout.contains("SECRET"),
        "{stdout}"
    );
    assert!(!stdout.contains("UPPER-WRITTEN"), "{stdout}");
    assert!(!f.state.join("upper/evil").exists());
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn users() -> Vec<bool> {
    if is_root() && user_exists() {
        vec![false, true]
    } else {
        vec![false]
    }
}

#[test]
fn overlay_shadow_keeps_the_real_workspace_and_collects_writes_in_the_upper_dir() {
    for unprivileged in users() {
        let f = fixture(unprivileged);
        let args = vec![
            "--shadow-upper".to_owned(),
            f.state.join("upper").display().to_string(),
            "--shadow-work".to_owned(),
            f.state.join("work").display().to_string(),
        ];
        let stdout = run(&f, unprivileged, &args);
        check_common(&f, &stdout);
        let upper = f.state.join("upper");
        assert_eq!(read(&upper.join("a.txt")), "shadow\n");
        assert_eq!(read(&upper.join("c.txt")), "new\n");
        let whiteout = std::fs::symlink_metadata(upper.join("b.txt"))
            .unwrap_or_else(|e| panic!("no whiteout for b.txt: {e}"));
        assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
        assert!(!upper.join(".git/hooks/pre-commit").exists());
    }
}

#[test]
fn copy_shadow_is_bind_mounted_over_the_workspace() {
    for unprivileged in users() {
        let f = fixture(unprivileged);
        let copy = f.state.join("copy");
        let status = Command::new("cp")
            .args(["-a"])
            .arg(&f.ws)
            .arg(&copy)
            .status()
            .is_ok_and(|s| s.success());
        assert!(status);
        std::fs::remove_dir_all(copy.join("target")).unwrap_or_else(|e| panic!("{e}"));
        let stdout = run(
            &f,
            unprivileged,
            &["--shadow-copy".to_owned(), copy.display().to_string()],
        );
        check_common(&f, &stdout);
        assert_eq!(read(&copy.join("a.txt")), "shadow\n");
        assert!(!copy.join("b.txt").exists());
        assert_eq!(read(&copy.join("c.txt")), "new\n");
        assert!(!copy.join(".git/hooks/pre-commit").exists());
    }
}

#[test]
fn doctor_names_the_shadow_this_kernel_offers() {
    let doctor = |env: &[(&str, &str)]| -> serde_json::Value {
        let mut c = Command::new(airlock_bin());
        c.args(["doctor", "--json"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap_or_else(|e| panic!("doctor: {e}"));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("doctor json: {e}"))
    };
    assert_eq!(doctor(&[])["shadow"], "overlay");
    assert_eq!(
        doctor(&[("AIRLOCK_TEST_NO_OVERLAY", "1")])["shadow"],
        "copy-bind"
    );
    assert_eq!(doctor(&[("AIRLOCK_TEST_NO_USERNS", "1")])["shadow"], "copy");
}
