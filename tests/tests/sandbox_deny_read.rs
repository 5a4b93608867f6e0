//! Deny-read fidelity of `airlock exec`: the sandbox hides exactly what the policy denies —
//! an anchored pattern only at the workspace root, an unanchored one at any depth, and a
//! `files.allow_read` exception stays readable. The command copies every file it can read;
//! what it managed to copy is checked from OUTSIDE the sandbox, in every mode × user case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sandbox_common;

use sandbox_common::*;

/// `(workspace path, whether the policy below lets the agent read it)`.
const FILES: &[(&str, bool)] = &[
    ("secret", false),
    ("sub/secret", true),
    (".env", false),
    ("sub/.env", false),
    (".env.example", true),
    ("sub/.env.example", true),
    ("readme.txt", true),
];

const POLICY: &str = r#"version = 1
[files]
deny_read = ["/secret"]
allow_read = [".env.example"]
"#;

/// Writes every file of [`FILES`] with a unique content, then has the sandboxed command copy
/// each one to `copies/`; returns the files whose copy holds their content.
fn readable_inside(t: &Fixture, flags: &[&str]) -> Vec<&'static str> {
    for (rel, _) in FILES {
        let path = t.ws.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("CONTENT-OF {rel}")).unwrap();
    }
    std::fs::create_dir_all(t.ws.join("copies")).unwrap();
    t.chown_all();
    let script: String = FILES
        .iter()
        .enumerate()
        .map(|(i, (rel, _))| format!("cat {rel} > copies/{i}; "))
        .chain(["exit 0".to_owned()])
        .collect();
    let r = t.exec_argv(flags, &["sh", "-c", &script]);
    assert_eq!(r.code, 0, "{}: {}", t.case, r.stderr);
    FILES
        .iter()
        .enumerate()
        .filter(|(i, (rel, _))| {
            std::fs::read_to_string(t.ws.join(format!("copies/{i}")))
                .is_ok_and(|copy| copy == format!("CONTENT-OF {rel}"))
        })
        .map(|(_, (rel, _))| *rel)
        .collect()
}

fn expected() -> Vec<&'static str> {
    FILES
        .iter()
        .filter(|(_, readable)| *readable)
        .map(|(rel, _)| *rel)
        .collect()
}

#[test]
fn exec_hides_what_the_user_policy_denies() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        let policy = t.root.join("xdg/airlock/policy.toml");
        std::fs::create_dir_all(policy.parent().unwrap()).unwrap();
        std::fs::write(&policy, POLICY).unwrap();
        assert_eq!(readable_inside(&t, &[]), expected(), "{case}");
    });
}

/// The form `airlock serve` hands the policy in force to the agent's sandbox in.
#[test]
fn exec_hides_what_a_handed_over_rule_list_denies() {
    for_each_case(|case| {
        let t = Fixture::new(case);
        let flags = [
            "--no-policy",
            "--deny-read",
            ".env*",
            "--deny-read",
            "!.env.example",
            "--deny-read",
            "/secret",
        ];
        assert_eq!(readable_inside(&t, &flags), expected(), "{case}");
    });
}
