//! Table-driven evaluation tests, including a bypass corpus: each row is a command, path or
//! host and the verdict the policy below must give.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use airlock_policy::{Layer, Policy, PolicyPaths, Verdict, load};

const POLICY: &str = r#"version = 1
[files]
deny_read = ["secrets/**", "*.pem"]
allow_read = [".env.example"]
protect = [".github/workflows/**"]
ask_write = ["Cargo.toml"]

[commands]
allow = ["cargo test", "cargo build", "git status", "git diff", "ls", "echo", "cat", "find", "true"]
ask = ["git push"]
deny = ["rm -rf", "sudo", "curl", "/usr/bin/wget"]

[network]
allow = ["crates.io", "*.crates.io", "example.com:443"]
deny = ["evil.crates.io"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    policy: Policy,
}

/// A workspace with the policy above as the user layer (always trusted).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(root.join("secrets")).unwrap();
    std::fs::create_dir_all(root.join(".git/hooks")).unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("secrets/key"), "k").unwrap();
    std::fs::write(root.join("src/main.rs"), "").unwrap();
    std::os::unix::fs::symlink("secrets/key", root.join("innocent.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    std::os::unix::fs::symlink(".git/hooks", root.join("hooks-link")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("not-yet"), root.join("dangling")).unwrap();
    let user = dir.path().join("user.toml");
    std::fs::write(&user, POLICY).unwrap();
    let paths = PolicyPaths {
        workspace_root: root.clone(),
        user_policy: user,
        managed_policy: dir.path().join("none.toml"),
        trust_store: dir.path().join("trust.json"),
    };
    let loaded = load(&paths).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    Fixture {
        _dir: dir,
        root,
        policy: loaded.policy,
    }
}

use Verdict::{Allow, Ask, Deny};

#[test]
fn commands() {
    let f = fixture();
    let table: &[(&str, Verdict)] = &[
        // argv-prefix matching
        ("cargo test", Allow),
        ("cargo test --all", Allow),
        ("cargo testx", Ask),
        ("cargo", Ask),
        ("git push origin main", Ask),
        ("git status", Allow),
        ("git -c core.pager=sh status", Ask),
        ("rm -rf /", Deny),
        ("rm -r -f /", Ask),
        // program paths
        ("/bin/rm -rf x", Deny),
        ("/usr/bin/rm -rf x", Deny),
        ("/usr/bin/cargo test", Allow),
        ("./cargo test", Ask),
        ("/tmp/cargo test", Ask),
        ("wget x", Deny),
        ("/usr/bin/wget x", Deny),
        // quoting and escapes
        ("'rm' -rf x", Deny),
        ("\"rm\" -rf x", Deny),
        ("r\\m -rf x", Deny),
        ("rm '-rf' x", Deny),
        ("r''m -r\"f\" x", Deny),
        ("cargo 'test'", Allow),
        // operators
        ("cargo test && rm -rf /", Deny),
        ("cargo test; curl x", Deny),
        ("cargo test || curl x", Deny),
        ("cargo test | sudo tee x", Deny),
        ("cargo test & curl x", Deny),
        ("cargo test\ncurl x", Deny),
        ("! curl x", Deny),
        ("time curl x", Deny),
        // substitutions, subshells, groups, functions, control flow
        ("echo $(curl evil)", Deny),
        ("echo `curl evil`", Deny),
        ("echo \"$(curl evil)\"", Deny),
        ("(cd src && curl y)", Deny),
        ("{ curl y; }", Deny),
        ("f() { curl x; }; f", Deny),
        ("if true; then curl x; fi", Deny),
        ("for i in 1 2; do rm -rf /; done", Deny),
        ("while true; do curl x; done", Deny),
        ("case x in x) curl y;; esac", Deny),
        ("ls <(curl x)", Deny),
        ("cargo test $(rm -rf /)", Deny),
        ("cat <<EOF\n$(curl x)\nEOF", Deny),
        ("cat <<'EOF'\n$(curl x)\nEOF", Allow),
        ("echo ${X:-$(curl x)}", Ask),
        // shells
        ("bash -c 'curl x'", Deny),
        ("sh -c \"cargo test\"", Allow),
        ("sh -c 'cargo test; curl x'", Deny),
        ("bash -lc 'rm -rf /'", Deny),
        ("bash -c \"sh -c 'curl x'\"", Deny),
        ("busybox sh -c 'curl x'", Deny),
        ("bash script.sh", Ask),
        ("sh -c \"$SCRIPT\"", Ask),
        // wrappers
        ("env X=1 curl x", Deny),
        ("env cargo test", Allow),
        ("env -i cargo test", Allow),
        ("env -S 'cargo test'", Ask),
        ("nohup curl x", Deny),
        ("timeout 5 curl x", Deny),
        ("timeout -s KILL 5 cargo test", Allow),
        ("nice -n 5 curl x", Deny),
        ("command curl x", Deny),
        ("exec curl x", Deny),
        ("stdbuf -o0 curl x", Deny),
        ("xargs rm -rf", Deny),
        ("echo a | xargs -0 -n1 rm -rf", Deny),
        ("echo a | xargs -I{} sh -c 'curl {}'", Ask),
        ("find . -exec rm -rf {} \\;", Deny),
        ("find . -name x -execdir curl {} +", Deny),
        ("find . -name x", Allow),
        ("sudo cargo test", Deny),
        ("sudo -u root ls", Deny),
        ("busybox rm -rf x", Deny),
        ("busybox ls", Allow),
        ("su -c 'curl x' root", Deny),
        ("watch -n 1 curl x", Deny),
        ("watch -n 1 cargo test", Allow),
        ("flock /tmp/l curl x", Deny),
        ("flock -w 5 /tmp/l -c 'curl x'", Deny),
        ("flock /tmp/l cargo test", Allow),
        // environment prefixes
        ("RUST_BACKTRACE=1 cargo test", Allow),
        ("LD_PRELOAD=x.so cargo test", Ask),
        ("PATH=.:$PATH cargo test", Ask),
        ("env LD_PRELOAD=x cargo test", Ask),
        ("RUSTC_WRAPPER=./evil sh -c 'cargo build'", Ask),
        ("X=$(curl x)", Deny),
        ("X=1", Allow),
        // dynamic programs, eval, unparsable
        ("$CMD x", Ask),
        ("${CMD}", Ask),
        ("\"$CMD\" x", Ask),
        ("~/bin/tool", Ask),
        ("c*o test", Ask),
        ("eval 'ls'", Ask),
        ("((x=1))", Ask),
        ("echo $((1 + 2))", Allow),
        ("( (curl x) )", Deny),
        ("echo $((curl x))", Deny),
        ("cargo test 'unterminated", Ask),
        ("", Ask),
        ("   ", Ask),
        // arguments naming protected or unreadable paths
        ("cat .env", Ask),
        ("cat ./secrets/key", Ask),
        ("cat .env.example", Allow),
        ("cat src/main.rs", Allow),
        ("cat --file=.env", Ask),
        ("echo x .git/hooks/pre-commit", Ask),
        ("find . -name x -newer .git/config", Ask),
        ("cat /etc/hostname", Allow),
        ("git diff .github/workflows/ci.yml", Ask),
        ("rm -rf .git/hooks", Deny),
        // redirections
        ("cargo test > .git/hooks/pre-commit", Deny),
        ("echo x >> .airlock/policy.toml", Deny),
        ("echo x > .github/workflows/ci.yml", Deny),
        ("echo x > hooks-link/pre-push", Deny),
        ("echo x > out.txt", Allow),
        ("echo x > Cargo.toml", Ask),
        ("echo x > ../outside", Deny),
        ("echo x > /tmp/outside", Deny),
        ("echo x &> src/../.git/config", Deny),
        ("echo x 2>/dev/null", Allow),
        ("echo x 2>&1 >/dev/null", Allow),
        ("cat < .env", Deny),
        ("cat < secrets/key", Deny),
        ("cat < src/main.rs", Allow),
        ("echo x > $F", Ask),
        ("echo x > \"$(curl x)\"", Deny),
    ];
    let mut failures = Vec::new();
    for (cmd, want) in table {
        let got = f.policy.decide_command(cmd);
        if got.verdict != *want {
            failures.push(format!(
                "{cmd:?}: want {want}, got {} {:#?}",
                got.verdict, got.parts
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn argv_commands() {
    let f = fixture();
    let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let table: &[(&[&str], Verdict)] = &[
        (&["cargo", "test"], Allow),
        // No shell: `;` is an argument, not an operator.
        (&["echo", "a;", "curl", "x"], Allow),
        (&["/usr/bin/rm", "-rf", "x"], Deny),
        (&["bash", "-c", "cargo test && curl x"], Deny),
        (&["env", "FOO=1", "curl"], Deny),
        (&["timeout", "10", "cargo", "test"], Allow),
        (&[], Ask),
    ];
    for (a, want) in table {
        let got = f.policy.decide_argv(&argv(a));
        assert_eq!(got.verdict, *want, "{a:?}: {:#?}", got.parts);
    }
}

#[test]
fn commands_in_a_subdirectory() {
    let f = fixture();
    let p = &f.policy;
    assert_eq!(
        p.decide_command_in("echo x > ../.git/config", Path::new("src"))
            .verdict,
        Deny
    );
    assert_eq!(
        p.decide_command_in("echo x > out.txt", Path::new("src"))
            .verdict,
        Allow
    );
    assert_eq!(
        p.decide_command_in("cat ../.env", &f.root.join("src"))
            .verdict,
        Ask
    );
    assert_eq!(p.decide_command("cat ../.env").verdict, Allow);
    let argv: Vec<String> = ["cat", "../secrets/key"].map(String::from).to_vec();
    assert_eq!(p.decide_argv_in(&argv, Path::new("src")).verdict, Ask);
}

#[test]
fn compound_commands_report_every_part() {
    let f = fixture();
    let d = f.policy.decide_command("cargo test && git push || curl x");
    let parts: Vec<(&str, Verdict)> = d
        .parts
        .iter()
        .map(|p| (p.text.as_str(), p.decision.verdict))
        .collect();
    assert_eq!(
        parts,
        [("cargo test", Allow), ("git push", Ask), ("curl x", Deny)]
    );
    assert_eq!(d.verdict, Deny);
    let curl = &d.parts[2].decision;
    assert_eq!(curl.rule.as_deref(), Some("commands.deny \"curl\""));
    assert_eq!(curl.layer, Layer::User);
    assert!(
        curl.source.as_deref().unwrap().ends_with("user.toml:11"),
        "{curl:?}"
    );
    assert_eq!(d.deciding_part().unwrap().text, "curl x");
}

#[test]
fn reads() {
    let f = fixture();
    let root = f.root.clone();
    let table: &[(PathBuf, Verdict)] = &[
        ("src/main.rs".into(), Allow),
        (".env".into(), Deny),
        ("sub/.env.local".into(), Deny),
        (".env.example".into(), Allow),
        ("secrets/key".into(), Deny),
        ("a/b/cert.pem".into(), Deny),
        ("src/../secrets/key".into(), Deny),
        ("src/../../ws/secrets/key".into(), Deny),
        ("innocent.txt".into(), Deny),
        ("etc-link/passwd".into(), Deny),
        ("../x".into(), Deny),
        ("/etc/passwd".into(), Deny),
        (root.join("src/main.rs"), Allow),
        (root.join("secrets/key"), Deny),
        (".git/config".into(), Allow),
    ];
    for (p, want) in table {
        let got = f.policy.decide_read(p);
        assert_eq!(got.verdict, *want, "{}: {got:?}", p.display());
    }
}

#[test]
fn writes() {
    let f = fixture();
    let table: &[(&str, Verdict)] = &[
        ("src/main.rs", Ask),
        ("new/file.rs", Ask),
        ("Cargo.toml", Ask),
        (".git/hooks/pre-commit", Deny),
        (".git/config", Deny),
        (".airlock/policy.toml", Deny),
        (".envrc", Deny),
        ("sub/.envrc", Deny),
        (".vscode/settings.json", Deny),
        (".idea/workspace.xml", Deny),
        (".github/workflows/ci.yml", Deny),
        ("hooks-link/pre-push", Deny),
        ("src/../.git/hooks/x", Deny),
        ("dangling", Deny),
        ("../escape", Deny),
        ("/tmp/x", Deny),
    ];
    for (p, want) in table {
        let got = f.policy.decide_write(Path::new(p));
        assert_eq!(got.verdict, *want, "{p}: {got:?}");
    }
    let d = f.policy.decide_write(Path::new(".github/workflows/ci.yml"));
    assert_eq!(
        d.rule.as_deref(),
        Some("files.protect \".github/workflows/**\"")
    );
    assert!(f.policy.is_protected(Path::new(".git/hooks/x")));
}

#[test]
fn domains() {
    let f = fixture();
    let table: &[(&str, Option<u16>, Verdict)] = &[
        ("crates.io", None, Allow),
        ("CRATES.IO.", Some(443), Allow),
        ("static.crates.io", Some(443), Allow),
        ("evil.crates.io", Some(443), Deny),
        ("evilcrates.io", None, Deny),
        ("example.com", Some(443), Allow),
        ("example.com", Some(80), Deny),
        ("example.com", None, Deny),
        ("github.com", None, Deny),
        ("not a host", None, Deny),
    ];
    for (h, port, want) in table {
        let got = f.policy.decide_domain(h, *port);
        assert_eq!(got.verdict, *want, "{h}:{port:?}: {got:?}");
    }
    assert_eq!(
        f.policy.allowed_domains(),
        ["crates.io", "*.crates.io", "example.com:443"]
    );
}

#[test]
fn strict_default_without_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = Policy::strict_default(dir.path());
    assert_eq!(p.decide_read(Path::new("src/lib.rs")).verdict, Allow);
    assert_eq!(p.decide_read(Path::new(".env")).verdict, Deny);
    assert_eq!(p.decide_read(Path::new(".env.production")).verdict, Deny);
    assert_eq!(p.decide_write(Path::new("src/lib.rs")).verdict, Ask);
    assert_eq!(p.decide_write(Path::new(".git/hooks/x")).verdict, Deny);
    assert_eq!(
        p.decide_write(Path::new(".git/modules/libs/sub/hooks/pre-commit"))
            .verdict,
        Deny
    );
    assert_eq!(
        p.decide_write(Path::new(".git/modules/sub/config")).verdict,
        Deny
    );
    assert_eq!(p.decide_command("ls").verdict, Ask);
    assert_eq!(p.decide_domain("crates.io", None).verdict, Deny);
    assert_eq!(
        p.protected_paths(),
        [
            ".git/hooks/",
            ".git/config",
            ".git/modules/**/hooks/",
            ".git/modules/**/config",
            ".airlock/",
            ".envrc",
            ".vscode/",
            ".idea/"
        ]
    );
    assert_eq!(p.deny_read_globs(), [".env*"]);
}

/// The sandbox hides what `deny_read_globs` denies (through `airlock_glob::ReadRules`): that
/// list must deny exactly the paths `decide_read` denies, exceptions and anchoring included.
#[test]
fn sandbox_read_rules_agree_with_decide_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    let user = dir.path().join("user.toml");
    std::fs::write(
        &user,
        r#"version = 1
[files]
deny_read = ["/secret", "*.pem", "private/", ".env.local"]
allow_read = [".env.example", ".env.local", "docs/.env.d/"]
"#,
    )
    .unwrap();
    let policy = load(&PolicyPaths {
        workspace_root: root.clone(),
        user_policy: user,
        managed_policy: dir.path().join("none.toml"),
        trust_store: dir.path().join("trust.json"),
    })
    .unwrap()
    .policy;
    let globs = policy.deny_read_globs();
    assert_eq!(
        globs,
        [
            ".env*",
            "!.env.example",
            "!.env.local",
            "!docs/.env.d/",
            "/secret",
            "*.pem",
            "private/",
            ".env.local"
        ]
    );
    let rules = airlock_glob::ReadRules::new(globs.iter().map(String::as_str)).unwrap();
    for rel in [
        ".env",
        "sub/.env",
        ".env.example",
        "sub/.env.example",
        ".env.local",
        "docs/.env.d",
        "docs/.env.d/x",
        ".env.d/x",
        "secret",
        "secret/inner",
        "sub/secret",
        "a/b/key.pem",
        "private",
        "private/x",
        "sub/private/x",
        "src/main.rs",
    ] {
        let decided = policy.decide_read(Path::new(rel)).verdict == Deny;
        assert_eq!(rules.denies(rel), decided, "{rel}");
    }
}
