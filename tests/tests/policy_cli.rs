//! `airlock policy check | explain | trust`, run as a user would: the real binary, private XDG
//! directories, policy files on disk.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use airlock_e2e::Env;
use serde_json::Value;

const WORKSPACE_POLICY: &str = r#"version = 1
[files]
deny_read = ["secrets/**"]
[commands]
allow = ["cargo test", "curl"]
deny = ["git push"]
[network]
allow = ["crates.io"]
"#;

fn run(env: &Env, args: &[&str]) -> Output {
    env.command()
        .args(args)
        .current_dir(&env.workspace)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `airlock policy explain --workspace WS ARGS…`.
fn explain(env: &Env, args: &[&str]) -> Output {
    let ws = env.workspace.display().to_string();
    let mut all = vec!["policy", "explain", "--workspace", ws.as_str()];
    all.extend_from_slice(args);
    run(env, &all)
}

fn explain_json(env: &Env, subject: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(subject);
    let o = explain(env, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn check_valid_and_invalid_files() {
    let env = Env::new();
    let file = env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    // Default file: the workspace's, found from a subdirectory.
    std::fs::create_dir_all(env.workspace.join("src/deep")).unwrap();
    let o = env
        .command()
        .args(["policy", "check"])
        .current_dir(env.workspace.join("src/deep"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("valid"));
    // Valid, but untrusted: the loosening entries are named.
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:5:10: warning: `commands.allow` \"cargo test\" loosens",
            file.display()
        )),
        "{err}"
    );

    env.write(
        ".airlock/policy.toml",
        "version = 1\n[commands]\nalow = [\"ls\"]\ndefault = \"maybe\"\n[network]\nallow = [\"a b\"]\n",
    );
    let o = run(&env, &["policy", "check", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    let f = file.display();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "{f}:3:1: unknown key `alow` in commands; did you mean `allow`?"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!("{f}:4:11: `commands.default` must be")),
        "{err}"
    );
    assert!(lines[2].starts_with(&format!("{f}:6:10: `a b`")), "{err}");
}

#[test]
fn check_bad_input_never_crashes() {
    let env = Env::new();
    let cases: &[(&str, &[u8], &str)] = &[
        ("syntax.toml", b"version = 1\n[files\n", ":2:"),
        (
            "utf8.toml",
            b"version = 1\n\xff\n",
            ":1:1: policy file is not valid UTF-8",
        ),
        ("empty.toml", b"", "missing `version = 1`"),
        (
            "types.toml",
            b"version = \"1\"\nfiles = 3\n",
            "must be a table",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = env.workspace.join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = run(&env, &["policy", "check", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stderr(&o).contains(want), "{name}: {}", stderr(&o));
    }
    let o = run(&env, &["policy", "check", "does-not-exist.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such policy file"));
    let huge = env.workspace.join("huge.toml");
    std::fs::write(&huge, format!("version = 1\n#{}\n", "x".repeat(2 << 20))).unwrap();
    let o = run(&env, &["policy", "check", huge.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the limit is"), "{}", stderr(&o));
}

#[test]
fn explain_compound_command_json() {
    let env = Env::new();
    let policy = env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    std::fs::create_dir_all(env.config.join("airlock")).unwrap();
    std::fs::write(
        env.config.join("airlock/policy.toml"),
        "version = 1\n[commands]\nallow = [\"ls\"]\n",
    )
    .unwrap();
    let ws = env.workspace.display().to_string();
    assert!(
        run(&env, &["policy", "trust", "--workspace", &ws])
            .status
            .success()
    );
    let v = explain_json(
        &env,
        &[
            "--command",
            "cargo test --all && ls | git push origin; rm -rf x",
        ],
    );
    assert_eq!(v["decision"], "deny");
    let parts = v["parts"].as_array().unwrap();
    let summary: Vec<(String, String)> = parts
        .iter()
        .map(|p| {
            (
                p["text"].as_str().unwrap().to_owned(),
                p["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("cargo test --all", "allow"),
        ("ls", "allow"),
        ("git push origin", "deny"),
        ("rm -rf x", "ask"),
    ];
    assert_eq!(
        summary,
        want.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "{v:#}"
    );
    assert_eq!(parts[0]["rule"], "commands.allow \"cargo test\"");
    assert_eq!(parts[0]["layer"], "workspace");
    assert_eq!(parts[0]["source"], format!("{}:5", policy.display()));
    assert_eq!(parts[1]["layer"], "user");
    assert_eq!(parts[3]["layer"], "builtin");
    assert_eq!(parts[3]["source"], Value::Null);
    for p in parts {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{p}");
    }
}

#[test]
fn explain_paths_and_domains() {
    let env = Env::new();
    env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    let cases: &[(&[&str], &str)] = &[
        (&["--read", "src/main.rs"], "allow"),
        (&["--read", "secrets/key"], "deny"),
        (&["--read", ".env"], "deny"),
        (&["--read", "../outside"], "deny"),
        (&["--write", "src/main.rs"], "ask"),
        (&["--write", ".git/hooks/pre-commit"], "deny"),
        (&["--domain", "crates.io"], "deny"),
        (&["--domain", "crates.io:443"], "deny"),
        (&["--domain", "example.com"], "deny"),
    ];
    for (subject, want) in cases {
        let v = explain_json(&env, subject);
        assert_eq!(v["decision"], *want, "{subject:?}: {v:#}");
        assert_eq!(v["parts"].as_array().unwrap().len(), 1);
    }
    // Human output: verdict first, then the part with its rule and origin.
    let o = explain(&env, &["--write", ".git/hooks/x"]);
    let out = stdout(&o);
    assert!(out.starts_with("deny\n"), "{out}");
    assert!(
        out.contains("builtin protect \".git/hooks/\"  [builtin]"),
        "{out}"
    );
}

#[test]
fn trust_applies_loosening_until_the_file_changes() {
    let env = Env::new();
    let policy = env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    // Untrusted: allow rules ignored, with a located warning.
    let ws = env.workspace.display().to_string();
    let o = explain(&env, &["--command", "curl x"]);
    assert!(stdout(&o).starts_with("ask\n"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:5:10: warning: `commands.allow` \"cargo test\" loosens",
            policy.display()
        )),
        "{err}"
    );
    assert_eq!(
        explain_json(&env, &["--domain", "crates.io"])["decision"],
        "deny"
    );

    let o = run(&env, &["policy", "trust", "--workspace", &ws]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sha256"));
    assert!(env.state.join("airlock/trust.json").is_file());
    assert_eq!(
        explain_json(&env, &["--command", "curl x"])["decision"],
        "allow"
    );
    assert_eq!(
        explain_json(&env, &["--domain", "crates.io"])["decision"],
        "allow"
    );
    let o = explain(&env, &["--command", "curl x"]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // Any change revokes trust.
    env.write(
        ".airlock/policy.toml",
        &format!("{WORKSPACE_POLICY}# edited\n"),
    );
    assert_eq!(
        explain_json(&env, &["--command", "curl x"])["decision"],
        "ask"
    );

    // An invalid policy cannot be trusted; trust without a policy fails.
    env.write(".airlock/policy.toml", "version = 1\nfiles = 1\n");
    let o = run(&env, &["policy", "trust"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("policy.toml:2:9:"), "{}", stderr(&o));
    std::fs::remove_file(env.workspace.join(".airlock/policy.toml")).unwrap();
    let o = run(&env, &["policy", "trust", "--workspace", &ws]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn managed_policy_from_env_wins_and_locks() {
    let env = Env::new();
    env.write(".airlock/policy.toml", WORKSPACE_POLICY);
    let ws = env.workspace.display().to_string();
    assert!(
        run(&env, &["policy", "trust", "--workspace", &ws])
            .status
            .success()
    );
    std::fs::create_dir_all(env.managed_policy.parent().unwrap()).unwrap();
    std::fs::write(
        &env.managed_policy,
        "version = 1\nlock = [\"network\"]\n[commands]\ndeny = [\"curl\"]\n",
    )
    .unwrap();
    let v = explain_json(&env, &["--command", "curl x"]);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["parts"][0]["layer"], "managed");
    assert_eq!(
        v["parts"][0]["source"],
        format!("{}:4", env.managed_policy.display())
    );
    // The trusted workspace's network.allow is locked out.
    assert_eq!(
        explain_json(&env, &["--domain", "crates.io"])["decision"],
        "deny"
    );
}

#[test]
fn explain_refuses_invalid_policy_and_bad_usage() {
    let env = Env::new();
    env.write(
        ".airlock/policy.toml",
        "version = 1\n[commands]\ndeny = \"curl\"\n",
    );
    let o = explain(&env, &["--command", "ls"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("policy.toml:3:8: `commands.deny` must be an array"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    // No subject, two subjects, bad domain: usage errors.
    let o = explain(&env, &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        &env,
        &["policy", "explain", "--command", "ls", "--read", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_file(env.workspace.join(".airlock/policy.toml")).unwrap();
    let o = run(&env, &["policy", "explain", "--domain", "host:notaport"]);
    assert_eq!(o.status.code(), Some(1));
}
