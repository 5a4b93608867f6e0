//! Layering, locks and trust: loosening is ignored until trusted, trust is revoked by any
//! change, the managed layer locks keys, invalid files never produce a policy.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use airlock_policy::{
    Layer, PolicyError, PolicyPaths, Verdict, WarningKind, load, trust_workspace,
};

struct Env {
    _dir: tempfile::TempDir,
    paths: PolicyPaths,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ws");
        std::fs::create_dir_all(root.join(".airlock")).unwrap();
        let paths = PolicyPaths {
            workspace_root: root,
            user_policy: dir.path().join("config/policy.toml"),
            managed_policy: dir.path().join("etc/policy.toml"),
            trust_store: dir.path().join("state/trust.json"),
        };
        Env { _dir: dir, paths }
    }

    fn write(&self, path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn workspace(&self, text: &str) {
        self.write(&self.paths.workspace_policy(), text);
    }
    fn user(&self, text: &str) {
        self.write(&self.paths.user_policy, text);
    }
    fn managed(&self, text: &str) {
        self.write(&self.paths.managed_policy, text);
    }
}

const LOOSE_WORKSPACE: &str = r#"version = 1
[files]
allow_read = [".env.example"]
deny_read = ["private/**"]
[commands]
default = "allow"
allow = ["curl"]
deny = ["make clean"]
[network]
default = "allow"
allow = ["example.com"]
"#;

#[test]
fn untrusted_workspace_only_tightens() {
    let env = Env::new();
    env.workspace(LOOSE_WORKSPACE);
    let loaded = load(&env.paths).unwrap();
    assert!(!loaded.workspace_trusted);
    let p = &loaded.policy;
    // Loosening ignored.
    assert_eq!(p.decide_command("curl x").verdict, Verdict::Ask);
    assert_eq!(p.decide_command("ls").verdict, Verdict::Ask);
    assert_eq!(p.decide_domain("example.com", None).verdict, Verdict::Deny);
    assert_eq!(p.decide_domain("other.org", None).verdict, Verdict::Deny);
    assert_eq!(
        p.decide_read(Path::new(".env.example")).verdict,
        Verdict::Deny
    );
    // Tightening applied.
    assert_eq!(p.decide_command("make clean").verdict, Verdict::Deny);
    assert_eq!(p.decide_read(Path::new("private/x")).verdict, Verdict::Deny);
    // One warning per ignored entry, located.
    let w: Vec<(WarningKind, usize)> = loaded.warnings.iter().map(|w| (w.kind, w.line)).collect();
    assert_eq!(w.len(), 5, "{:#?}", loaded.warnings);
    assert!(w.iter().all(|(k, _)| *k == WarningKind::UntrustedLoosening));
    let mut lines: Vec<usize> = w.iter().map(|(_, l)| *l).collect();
    lines.sort_unstable();
    assert_eq!(lines, [3, 6, 7, 10, 11]);
    assert!(
        loaded.warnings[0].to_string().contains("policy.toml:"),
        "{}",
        loaded.warnings[0]
    );
    assert_eq!(loaded.sources[0].trusted, Some(false));
}

#[test]
fn trust_applies_loosening_and_any_change_revokes_it() {
    let env = Env::new();
    env.workspace(LOOSE_WORKSPACE);
    let (_, sha) = trust_workspace(&env.paths).unwrap();
    assert_eq!(sha.len(), 64);
    let loaded = load(&env.paths).unwrap();
    assert!(loaded.workspace_trusted);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let p = &loaded.policy;
    assert_eq!(p.decide_command("curl x").verdict, Verdict::Allow);
    assert_eq!(p.decide_command("ls").verdict, Verdict::Allow);
    let d = p.decide_domain("example.com", None);
    assert_eq!((d.verdict, d.layer), (Verdict::Allow, Layer::Workspace));
    assert!(d.source.unwrap().ends_with(".airlock/policy.toml:11"));
    // A one-character change revokes trust.
    env.workspace(&LOOSE_WORKSPACE.replace("curl", "curL"));
    let loaded = load(&env.paths).unwrap();
    assert!(!loaded.workspace_trusted);
    assert_eq!(loaded.policy.decide_command("curL x").verdict, Verdict::Ask);
    assert_eq!(loaded.policy.decide_command("ls").verdict, Verdict::Ask);
}

#[test]
fn refuses_to_trust_missing_or_invalid() {
    let env = Env::new();
    assert!(trust_workspace(&env.paths).is_err());
    env.workspace("version = 1\n[comands]\n");
    let err = trust_workspace(&env.paths).unwrap_err().to_string();
    assert!(
        err.contains("policy.toml:2:2: unknown key `comands`"),
        "{err}"
    );
}

#[test]
fn corrupt_trust_store_trusts_nothing() {
    let env = Env::new();
    env.workspace(LOOSE_WORKSPACE);
    env.write(&env.paths.trust_store, "{not json");
    let loaded = load(&env.paths).unwrap();
    assert!(!loaded.workspace_trusted);
    assert_eq!(loaded.policy.decide_command("curl").verdict, Verdict::Ask);
}

#[test]
fn strictest_wins_across_layers() {
    let env = Env::new();
    env.managed("version = 1\n[commands]\ndeny = [\"cargo publish\"]\nallow = [\"cargo\"]\n");
    env.user("version = 1\n[commands]\nallow = [\"cargo publish\", \"cargo test\"]\nask = [\"cargo test --release\"]\n");
    env.workspace("version = 1\n[commands]\nask = [\"cargo test --ignored\"]\n");
    let loaded = load(&env.paths).unwrap();
    let p = &loaded.policy;
    let d = p.decide_command("cargo publish --dry-run");
    assert_eq!(
        (d.verdict, d.parts[0].decision.layer),
        (Verdict::Deny, Layer::Managed)
    );
    assert!(
        d.parts[0]
            .decision
            .source
            .as_deref()
            .unwrap()
            .ends_with("etc/policy.toml:3")
    );
    assert_eq!(p.decide_command("cargo test").verdict, Verdict::Allow);
    // Equal verdicts: the higher layer is reported.
    assert_eq!(
        p.decide_command("cargo test").parts[0].decision.layer,
        Layer::Managed
    );
    assert_eq!(
        p.decide_command("cargo test --release").verdict,
        Verdict::Ask
    );
    let d = p.decide_command("cargo test --ignored");
    assert_eq!(
        (d.verdict, d.parts[0].decision.layer),
        (Verdict::Ask, Layer::Workspace)
    );
    // Sources: managed, user, workspace.
    let layers: Vec<Layer> = loaded.sources.iter().map(|s| s.layer).collect();
    assert_eq!(layers, [Layer::Managed, Layer::User, Layer::Workspace]);
}

#[test]
fn defaults_take_the_strictest_layer() {
    let env = Env::new();
    env.user("version = 1\n[commands]\ndefault = \"allow\"\n[network]\ndefault = \"allow\"\n");
    let p = load(&env.paths).unwrap().policy;
    assert_eq!(p.decide_command("anything").verdict, Verdict::Allow);
    assert_eq!(p.network_default(), Verdict::Allow);
    env.workspace("version = 1\n[commands]\ndefault = \"deny\"\n");
    let p = load(&env.paths).unwrap().policy;
    let d = p.decide_command("anything");
    assert_eq!(
        (d.verdict, d.parts[0].decision.layer),
        (Verdict::Deny, Layer::Workspace)
    );
}

#[test]
fn managed_locks_lower_layers() {
    let env = Env::new();
    env.managed("version = 1\nlock = [\"commands.allow\", \"network\"]\n[commands]\nallow = [\"git status\"]\n");
    env.user("version = 1\n[commands]\nallow = [\"cargo test\"]\ndeny = [\"curl\"]\n[network]\nallow = [\"example.com\"]\n");
    let loaded = load(&env.paths).unwrap();
    let p = &loaded.policy;
    assert_eq!(p.decide_command("cargo test").verdict, Verdict::Ask);
    assert_eq!(p.decide_command("git status").verdict, Verdict::Allow);
    // Unlocked keys of lower layers still apply.
    assert_eq!(p.decide_command("curl").verdict, Verdict::Deny);
    assert_eq!(p.decide_domain("example.com", None).verdict, Verdict::Deny);
    let kinds: Vec<(WarningKind, Layer, usize)> = loaded
        .warnings
        .iter()
        .map(|w| (w.kind, w.layer, w.line))
        .collect();
    assert_eq!(
        kinds,
        [
            (WarningKind::Locked, Layer::User, 3),
            (WarningKind::Locked, Layer::User, 6)
        ]
    );
}

#[test]
fn lock_outside_managed_is_ignored_with_warning() {
    let env = Env::new();
    env.user("version = 1\nlock = [\"commands\"]\n");
    let loaded = load(&env.paths).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].kind, WarningKind::LockIgnored);
}

#[test]
fn invalid_layers_are_errors_with_locations() {
    let env = Env::new();
    env.user("version = 1\n[commands]\nalow = [\"ls\"]\n");
    let err = load(&env.paths).unwrap_err();
    let lines = err.lines();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].ends_with("config/policy.toml:3:1: unknown key `alow` in commands; did you mean `allow`? (expected one of `default`, `allow`, `ask`, `deny`)"), "{lines:?}");

    let env = Env::new();
    env.write(&env.paths.workspace_policy(), "");
    std::fs::write(env.paths.workspace_policy(), b"version = 1\n# \xff\xfe\n").unwrap();
    assert!(matches!(
        load(&env.paths),
        Err(PolicyError::NotUtf8 { offset: 14, .. })
    ));

    let env = Env::new();
    env.workspace(&format!("version = 1\n#{}\n", "x".repeat(2 * 1024 * 1024)));
    let err = load(&env.paths).unwrap_err();
    assert!(err.to_string().contains("the limit is"), "{err}");

    let env = Env::new();
    env.workspace("");
    let err = load(&env.paths).unwrap_err();
    assert!(err.to_string().contains("missing `version = 1`"), "{err}");

    let env = Env::new();
    env.workspace("version = 1\n[files]\nprotect = [\"src/[\"]\n");
    let err = load(&env.paths).unwrap_err();
    assert!(
        err.to_string()
            .contains("policy.toml:3:12: invalid glob `src/[`"),
        "{err}"
    );
}

#[test]
fn unreadable_policy_is_an_error() {
    let env = Env::new();
    // A directory where the file should be: reading fails with something other than NotFound.
    std::fs::create_dir_all(env.paths.workspace_policy()).unwrap();
    assert!(matches!(load(&env.paths), Err(PolicyError::Read { .. })));
}
