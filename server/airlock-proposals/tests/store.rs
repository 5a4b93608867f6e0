//! Store behaviour through the public API only: lifecycle, stacking, rebase/conflicts,
//! edits, persistence across reopen, guards.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use airlock_proposals::{
    Decision, HunkResult, HunkStatus, Limits, LineEdit, Origin, ProposalError, ProposalId,
    ProposalState, ProposeInput, ResolveInput, Store, StoreOptions,
};

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(root.join("src")).unwrap();
    let root = std::fs::canonicalize(root).unwrap();
    let state = tmp.path().join("state");
    Env {
        _tmp: tmp,
        root,
        state,
    }
}

const BASE: &str = "fn one() {}\n\nfn two() {}\n\nfn three() {}\n\nfn four() {}\n";
const AGENT: &str = "fn uno() {}\n\nfn two() {}\n\nfn tres() {}\n\nfn four() {}\n// end\n";

fn propose(store: &mut Store, path: &Path, base: &str, new: &str) -> airlock_proposals::Proposal {
    store
        .propose(ProposeInput {
            path: path.to_owned(),
            base_text: base.to_owned(),
            base_version: Some(3),
            is_new_file: false,
            new_text: new.to_owned(),
            origin: Origin {
                session: Some("s1".into()),
                tool_call: Some("t1".into()),
            },
        })
        .unwrap()
}

fn resolve(
    id: &ProposalId,
    hunks: Option<Vec<u32>>,
    decision: Decision,
    current: &str,
) -> ResolveInput {
    ResolveInput {
        id: id.clone(),
        hunks,
        decision,
        reason: None,
        edited_text: None,
        current_text: current.to_owned(),
        current_version: Some(4),
    }
}

/// Applies line edits the way an editor would (bottom-up on a line array).
fn apply_edits(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_owned).collect();
    for e in edits.iter().rev() {
        let start = e.start_line as usize;
        let end = e.end_line as usize;
        assert_eq!(lines[start..end].concat(), e.old_text, "edit's old text");
        lines.splice(start..end, std::iter::once(e.new_text.clone()));
    }
    lines.concat()
}

#[test]
fn accept_all_produces_exact_text_and_edits() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let file = env.root.join("src/lib.rs");
    let p = propose(&mut store, &file, BASE, AGENT);
    assert_eq!(p.id.as_str(), "p-1");
    assert_eq!(p.hunks.len(), 3);
    assert_eq!(p.path, file);
    assert_eq!(store.pending_for(Path::new("src/lib.rs")).unwrap().id, p.id);

    let r = store
        .resolve(resolve(&p.id, None, Decision::Accept, BASE))
        .unwrap();
    assert_eq!(r.new_text.as_deref(), Some(AGENT));
    assert_eq!(apply_edits(BASE, &r.edits), AGENT);
    assert_eq!(r.proposal.state, ProposalState::Resolved);
    assert!(store.list().is_empty());
    assert_eq!(store.get(&p.id).unwrap().state, ProposalState::Resolved);
    assert_eq!(
        r.outcome.summary(),
        "User accepted 3 of 3 hunks in src/lib.rs."
    );
}

#[test]
fn reject_with_reason_reaches_the_agent() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let mut input = resolve(&p.id, Some(vec![2]), Decision::Reject, BASE);
    input.reason = Some("keep the old name".into());
    let r = store.resolve(input).unwrap();
    assert_eq!(r.new_text, None);
    assert!(r.edits.is_empty());
    assert_eq!(
        r.outcome.summary(),
        "User rejected hunk 2 in src/lib.rs: 'keep the old name'; 2 hunks still awaiting review."
    );
    let mut input = resolve(&p.id, None, Decision::Accept, BASE);
    input.current_version = Some(5);
    let r = store.resolve(input).unwrap();
    assert_eq!(
        r.new_text.as_deref(),
        Some("fn uno() {}\n\nfn two() {}\n\nfn three() {}\n\nfn four() {}\n// end\n")
    );
    assert_eq!(
        r.outcome.summary(),
        "User accepted 2 of 3 hunks in src/lib.rs."
    );
    // Deciding a closed hunk again is an error the UI can show.
    let err = store
        .resolve(resolve(&p.id, Some(vec![2]), Decision::Accept, AGENT))
        .unwrap_err();
    assert!(
        matches!(err, ProposalError::UnknownProposal { .. }),
        "{err}"
    );
}

#[test]
fn partial_accept_then_rest_reaches_agent_text() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let r = store
        .resolve(resolve(&p.id, Some(vec![1, 3]), Decision::Accept, BASE))
        .unwrap();
    let mid = r.new_text.unwrap();
    assert_eq!(
        mid,
        "fn uno() {}\n\nfn two() {}\n\nfn three() {}\n\nfn four() {}\n// end\n"
    );
    assert_eq!(r.proposal.state, ProposalState::Pending);
    let r2 = store
        .resolve(resolve(&p.id, Some(vec![2]), Decision::Accept, &mid))
        .unwrap();
    assert_eq!(r2.new_text.as_deref(), Some(AGENT));
    assert_eq!(apply_edits(&mid, &r2.edits), AGENT);
    let err = store
        .resolve(resolve(&p.id, Some(vec![2]), Decision::Accept, AGENT))
        .unwrap_err();
    assert!(err.to_string().contains("no pending proposal with id p-1"));
}

#[test]
fn user_edits_elsewhere_are_rebased_and_overlaps_conflict() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    // Meanwhile the user added a header (shifts everything) and renamed `three` themselves.
    let user = "// header\n// more\nfn one() {}\n\nfn two() {}\n\nfn THREE() {}\n\nfn four() {}\n";
    let views = store.view(&p.id, user).unwrap();
    assert_eq!(
        views
            .iter()
            .map(|v| (v.id, v.status, v.start_line, v.end_line))
            .collect::<Vec<_>>(),
        vec![
            (1, HunkStatus::Pending, 2, 3),
            (2, HunkStatus::Conflicted, 6, 7),
            (3, HunkStatus::Pending, 9, 9),
        ]
    );
    let r = store
        .resolve(resolve(&p.id, None, Decision::Accept, user))
        .unwrap();
    let got = r.new_text.unwrap();
    assert_eq!(
        got,
        "// header\n// more\nfn uno() {}\n\nfn two() {}\n\nfn THREE() {}\n\nfn four() {}\n// end\n",
        "the user's THREE must survive"
    );
    assert_eq!(apply_edits(user, &r.edits), got);
    let conflicted: Vec<_> = r
        .outcome
        .hunks
        .iter()
        .filter(|h| matches!(h.result, HunkResult::Conflicted { .. }))
        .map(|h| h.id)
        .collect();
    assert_eq!(conflicted, vec![2]);
    assert!(r.outcome.summary().contains("hunk 2 was not applied"));
    // The conflicted hunk stays visible, relocated onto the new text, until rejected.
    assert_eq!(r.proposal.state, ProposalState::Pending);
    let h2 = r.proposal.hunks.iter().find(|h| h.id == 2).unwrap();
    assert_eq!(h2.status, HunkStatus::Conflicted);
    assert_eq!((h2.old_start, h2.old_count), (6, 1));
    let views = store.view(&p.id, &got).unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(
        (views[0].status, views[0].start_line, views[0].end_line),
        (HunkStatus::Conflicted, 6, 7)
    );
    let r = store
        .resolve(resolve(&p.id, None, Decision::Reject, &got))
        .unwrap();
    assert_eq!(r.new_text, None);
    assert!(store.list().is_empty());
}

#[test]
fn change_already_in_the_file_counts_as_accepted() {
    // E.g. a crash after the edit reached the buffer but before resolve was recorded.
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let r = store
        .resolve(resolve(&p.id, Some(vec![3]), Decision::Accept, AGENT))
        .unwrap();
    assert_eq!(r.new_text, None, "nothing left to write");
    assert!(r.edits.is_empty());
    assert_eq!(r.proposal.state, ProposalState::Resolved);
    assert!(
        r.outcome
            .hunks
            .iter()
            .all(|h| h.result == HunkResult::Accepted)
    );
}

#[test]
fn edited_hunk_is_kept_and_reported() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let mut input = resolve(&p.id, Some(vec![2]), Decision::Accept, BASE);
    input.edited_text = Some("fn drei() {}\n".into());
    let r = store.resolve(input).unwrap();
    assert_eq!(
        r.new_text.as_deref(),
        Some("fn one() {}\n\nfn two() {}\n\nfn drei() {}\n\nfn four() {}\n")
    );
    assert_eq!(
        r.outcome.hunks[0].result,
        HunkResult::Edited {
            text: "fn drei() {}\n".into()
        }
    );
    let h = r.proposal.hunks.iter().find(|h| h.id == 2).unwrap();
    assert_eq!(h.edited_text.as_deref(), Some("fn drei() {}\n"));
    let summary = r.outcome.summary();
    assert!(summary.starts_with("User accepted 1 of 3 hunks in src/lib.rs; edited hunk 2 before accepting; 2 hunks still awaiting review. The user's version differs from yours:\n"), "{summary}");
    assert!(
        summary.contains("-fn tres() {}\n+fn drei() {}\n"),
        "{summary}"
    );

    // Edited text for several hunks is ambiguous.
    let mut input = resolve(&p.id, Some(vec![1, 3]), Decision::Accept, BASE);
    input.edited_text = Some("x\n".into());
    assert!(matches!(
        store.resolve(input).unwrap_err(),
        ProposalError::EditNeedsOneHunk { count: 2, .. }
    ));
}

#[test]
fn whole_file_edit_is_applied_three_way() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    // The user edited the preview (AGENT) — changed hunk 1's text — while also adding a
    // line at the top of the real buffer meanwhile.
    let edited = AGENT.replace("fn uno()", "fn eins()");
    let current = format!("// user\n{BASE}");
    let mut input = resolve(&p.id, None, Decision::Accept, &current);
    input.edited_text = Some(edited.clone());
    let r = store.resolve(input).unwrap();
    let got = r.new_text.unwrap();
    assert_eq!(apply_edits(&current, &r.edits), got);
    assert!(got.contains("fn eins()") && got.contains("// user\n"));
    let results: Vec<_> = r.outcome.hunks.iter().map(|h| h.result.clone()).collect();
    assert_eq!(
        results,
        vec![
            HunkResult::Edited {
                text: "fn eins() {}\n".into()
            },
            HunkResult::Accepted,
            HunkResult::Accepted
        ]
    );
    assert!(r.outcome.whole_file_edited);
    assert!(store.list().is_empty());

    // If the user's other edit touches the same lines, the edited text is refused, not merged.
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let current = BASE.replace("fn one()", "fn ONE()");
    let mut input = resolve(&p.id, None, Decision::Accept, &current);
    input.edited_text = Some(edited);
    let err = store.resolve(input).unwrap_err();
    assert!(
        matches!(err, ProposalError::EditConflict { first_line: 1, .. }),
        "{err}"
    );
    assert_eq!(store.list().len(), 1, "still pending after the refusal");
}

#[test]
fn stacking_supersedes_the_pending_proposal() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let file = env.root.join("src/lib.rs");
    let p1 = propose(&mut store, &file, BASE, AGENT);
    // The user accepts hunk 1, then the agent writes again, based on what it believes the
    // file is (its own full version) plus a further change.
    let r = store
        .resolve(resolve(&p1.id, Some(vec![1]), Decision::Accept, BASE))
        .unwrap();
    let current = r.new_text.unwrap();
    let agent_view = store.agent_view(&file, &current).unwrap();
    assert_eq!(agent_view, AGENT, "agent sees its whole pending write");
    let second = AGENT.replace("fn four()", "fn vier()");
    let p2 = propose(&mut store, &file, &current, &second);
    assert_eq!(p2.supersedes.as_ref(), Some(&p1.id));
    assert_eq!(store.list().len(), 1);
    assert_eq!(store.get(&p1.id).unwrap().state, ProposalState::Superseded);
    // Diffed against the current text: hunk 1 was accepted already, so it is not offered.
    assert!(p2.hunks.iter().all(|h| !h.new_text.contains("uno")));
    let r = store
        .resolve(resolve(&p2.id, None, Decision::Accept, &current))
        .unwrap();
    assert_eq!(r.new_text.as_deref(), Some(second.as_str()));

    // Writing back the current content withdraws the pending proposal.
    let p3 = propose(&mut store, &file, BASE, AGENT);
    let p4 = propose(&mut store, &file, BASE, BASE);
    assert!(p4.hunks.is_empty());
    assert_eq!(p4.state, ProposalState::Resolved);
    assert_eq!(p4.supersedes.as_ref(), Some(&p3.id));
    assert!(store.list().is_empty());
}

#[test]
fn pending_state_survives_reopen_and_ids_are_not_reused() {
    let env = env();
    let file = env.root.join("src/lib.rs");
    let id = {
        let mut store = Store::open(&env.state, &env.root).unwrap();
        let p = propose(&mut store, &file, BASE, AGENT);
        let mut input = resolve(&p.id, Some(vec![2]), Decision::Reject, BASE);
        input.reason = Some("no".into());
        store.resolve(input).unwrap();
        let q = propose(&mut store, &env.root.join("src/other.rs"), "a\n", "b\n");
        store
            .resolve(resolve(&q.id, None, Decision::Accept, "a\n"))
            .unwrap();
        p.id
    };
    let mut store = Store::open(&env.state, &env.root).unwrap();
    assert!(
        store.load_warnings().is_empty(),
        "{:?}",
        store.load_warnings()
    );
    let list = store.list();
    assert_eq!(list.len(), 1);
    let p = list[0].clone();
    assert_eq!(p.id, id);
    assert_eq!(
        p.hunks.iter().map(|h| h.status).collect::<Vec<_>>(),
        vec![
            HunkStatus::Pending,
            HunkStatus::Rejected,
            HunkStatus::Pending
        ]
    );
    assert_eq!(p.origin.session.as_deref(), Some("s1"));
    let r = store
        .resolve(resolve(&p.id, None, Decision::Accept, BASE))
        .unwrap();
    assert_eq!(
        r.new_text.as_deref(),
        Some("fn uno() {}\n\nfn two() {}\n\nfn three() {}\n\nfn four() {}\n// end\n")
    );
    drop(store);
    let mut store = Store::open(&env.state, &env.root).unwrap();
    assert!(store.list().is_empty());
    let next = propose(&mut store, &file, BASE, AGENT);
    assert_eq!(next.id.as_str(), "p-3", "p-1 and p-2 were used before");
}

/// Files in one subdirectory of the workspace's state dir.
fn state_files(env: &Env, sub: &str) -> Vec<PathBuf> {
    let dir = env
        .state
        .join(airlock_proposals::workspace_key(&env.root))
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn base_texts_are_stored_once_per_content_and_removed_when_unused() {
    let env = env();
    let file = env.root.join("src/lib.rs");
    let big_base: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    // Three writes to one file from the same base: one base file, one (small) proposal file.
    for n in 0..3 {
        propose(
            &mut store,
            &file,
            &big_base,
            &big_base.replace("line 7\n", &format!("v{n}\n")),
        );
    }
    let other = propose(&mut store, &env.root.join("src/b.rs"), "b\n", "c\n");
    store.flush().unwrap();
    assert_eq!(state_files(&env, "bases").len(), 2);
    let proposals = state_files(&env, "proposals");
    assert_eq!(proposals.len(), 2, "{proposals:?}");
    for p in &proposals {
        let len = std::fs::metadata(p).unwrap().len();
        assert!(
            len < 2000,
            "{} holds {len} bytes: the base must not be inline",
            p.display()
        );
    }
    // Accepting b.rs leaves its base unused: it goes; the big one stays.
    store
        .resolve(resolve(&other.id, None, Decision::Accept, "b\n"))
        .unwrap();
    store.flush().unwrap();
    let bases = state_files(&env, "bases");
    assert_eq!(bases.len(), 1);
    assert_eq!(std::fs::read_to_string(&bases[0]).unwrap(), big_base);
    // After a reopen, rejecting the rest resolves it: its base goes too.
    let p = store.pending_for(&file).unwrap().clone();
    drop(store);
    let mut store = Store::open(&env.state, &env.root).unwrap();
    assert!(
        store.load_warnings().is_empty(),
        "{:?}",
        store.load_warnings()
    );
    assert_eq!(store.list().len(), 1);
    let r = store
        .resolve(resolve(&p.id, None, Decision::Reject, &big_base))
        .unwrap();
    assert_eq!(r.proposal.state, ProposalState::Resolved);
    store.flush().unwrap();
    assert!(state_files(&env, "bases").is_empty());
    assert!(state_files(&env, "proposals").is_empty());
}

#[test]
fn format_1_files_with_inline_base_text_still_load() {
    let env = env();
    let file = env.root.join("src/lib.rs");
    let id = {
        let mut store = Store::open(&env.state, &env.root).unwrap();
        propose(&mut store, &file, BASE, AGENT).id
    };
    // Rewrite the file as format 1 wrote it: the base inline, no base file.
    let path = state_files(&env, "proposals").pop().unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["format"] = 1.into();
    v["baseText"] = BASE.into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    for b in state_files(&env, "bases") {
        std::fs::remove_file(b).unwrap();
    }
    let mut store = Store::open(&env.state, &env.root).unwrap();
    assert!(
        store.load_warnings().is_empty(),
        "{:?}",
        store.load_warnings()
    );
    store.flush().unwrap();
    assert_eq!(
        state_files(&env, "bases").len(),
        1,
        "the base is written out"
    );
    let r = store
        .resolve(resolve(&id, None, Decision::Accept, BASE))
        .unwrap();
    assert_eq!(r.new_text.as_deref(), Some(AGENT));
}

#[test]
fn new_files_are_proposals_too() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = store
        .propose(ProposeInput {
            path: "src/new/mod.rs".into(),
            base_text: String::new(),
            base_version: None,
            is_new_file: true,
            new_text: "pub fn f() {}\n".into(),
            origin: Origin::default(),
        })
        .unwrap();
    assert!(p.is_new_file);
    assert_eq!(p.path, env.root.join("src/new/mod.rs"));
    assert_eq!(p.hunks.len(), 1);
    let r = store
        .resolve(resolve(&p.id, None, Decision::Accept, ""))
        .unwrap();
    assert_eq!(r.new_text.as_deref(), Some("pub fn f() {}\n"));

    std::fs::write(env.root.join("src/exists.rs"), "x").unwrap();
    let err = store
        .propose(ProposeInput {
            path: "src/exists.rs".into(),
            base_text: String::new(),
            base_version: None,
            is_new_file: true,
            new_text: "y".into(),
            origin: Origin::default(),
        })
        .unwrap_err();
    assert!(matches!(err, ProposalError::NewFileExists { .. }), "{err}");
}

#[test]
fn guards_refuse_with_actionable_errors() {
    let env = env();
    let mut store = Store::open_with(
        &env.state,
        &env.root,
        StoreOptions {
            limits: Limits { max_bytes: 64 },
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let input = |path: &str, new: &str| ProposeInput {
        path: path.into(),
        base_text: "a\n".into(),
        base_version: None,
        is_new_file: false,
        new_text: new.into(),
        origin: Origin::default(),
    };
    let err = store.propose(input("../etc/passwd", "x")).unwrap_err();
    assert!(
        err.to_string().contains("outside the workspace root"),
        "{err}"
    );
    let err = store.propose(input("src", "x")).unwrap_err();
    assert!(matches!(err, ProposalError::NotAFile { .. }), "{err}");
    let err = store.propose(input("src/a.rs", "bin\0ary")).unwrap_err();
    assert!(err.to_string().contains("binary"), "{err}");
    let err = store
        .propose(input("src/a.rs", &"x".repeat(65)))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("65 bytes is larger than the limit of 64"),
        "{err}"
    );
    assert!(store.list().is_empty());
    let dir = env
        .state
        .join(airlock_proposals::workspace_key(&env.root))
        .join("proposals");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
}

#[test]
fn crlf_non_ascii_and_no_final_newline_round_trip_through_resolve() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let base = "ligne 1\r\nçà\r\nfin";
    let new = "ligne 1\r\nçà — 日本\r\nfin\r\n";
    let p = propose(&mut store, &env.root.join("src/fr.txt"), base, new);
    let r = store
        .resolve(resolve(&p.id, None, Decision::Accept, base))
        .unwrap();
    assert_eq!(r.new_text.as_deref(), Some(new));
    assert_eq!(apply_edits(base, &r.edits), new);
    let last = r.edits.last().unwrap();
    assert_eq!(
        last.end_point(),
        (2, 3),
        "end of the unterminated last line"
    );
}

#[test]
fn plan_records_nothing_until_commit_and_stale_plans_are_refused() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let first = store
        .plan(resolve(&p.id, Some(vec![1]), Decision::Accept, BASE))
        .unwrap();
    let second = store
        .plan(resolve(&p.id, Some(vec![2]), Decision::Reject, BASE))
        .unwrap();
    // The editor refused the edit: dropping the plan leaves everything pending.
    assert!(
        store
            .get(&p.id)
            .unwrap()
            .hunks
            .iter()
            .all(|h| h.status == HunkStatus::Pending)
    );
    store.commit(&first).unwrap();
    let err = store.commit(&second).unwrap_err();
    assert!(matches!(err, ProposalError::Stale { .. }), "{err}");
    assert_eq!(
        store.get(&p.id).unwrap().hunks[0].status,
        HunkStatus::Accepted
    );
    // Killed after the edit reached the file but before commit: the next plan sees the
    // hunk in the text and records it as accepted without applying it twice.
    let applied = store
        .plan(resolve(
            &p.id,
            Some(vec![2]),
            Decision::Accept,
            &first.new_text.clone().unwrap(),
        ))
        .unwrap();
    let text = applied.new_text.clone().unwrap();
    drop(applied);
    let r = store
        .resolve(resolve(&p.id, Some(vec![2]), Decision::Accept, &text))
        .unwrap();
    assert_eq!(r.new_text, None);
    assert_eq!(r.outcome.hunks[0].result, HunkResult::Accepted);
    assert_eq!(r.proposal.hunks[1].status, HunkStatus::Accepted);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("a\n"),
                Just("b\n"),
                Just("c\r\n"),
                Just("é\n"),
                Just("\n")
            ],
            0..14,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever the user changed meanwhile, accepting everything never touches a line the
        /// user changed, and the edits turn the current text into the new text exactly.
        #[test]
        fn accepting_never_overwrites_user_lines(base in text(), agent in text(), user in text()) {
            let env = env();
            let options = StoreOptions { durable: false, ..StoreOptions::default() };
            let mut store = Store::open_with(&env.state, &env.root, options).unwrap();
            let p = store.propose(ProposeInput {
                path: "f.txt".into(),
                base_text: base.clone(),
                base_version: None,
                is_new_file: false,
                new_text: agent.clone(),
                origin: Origin::default(),
            }).unwrap();
            if p.hunks.is_empty() {
                return Ok(());
            }
            let r = store.resolve(resolve(&p.id, None, Decision::Accept, &user)).unwrap();
            let result = r.new_text.clone().unwrap_or_else(|| user.clone());
            prop_assert_eq!(apply_edits(&user, &r.edits), result.clone());
            if base == user {
                prop_assert_eq!(result, agent);
            }
            // Lines of `user` that differ from the base (new side of base → user changes).
            let user_changed: Vec<usize> = airlock_proposals::line_edits(&base, &user)
                .iter()
                .flat_map(|e| {
                    let start = e.start_line as usize;
                    let n = e.new_text.split_inclusive('\n').count();
                    let shift: isize = airlock_proposals::line_edits(&base, &user)
                        .iter()
                        .take_while(|o| o.start_line < e.start_line)
                        .map(|o| o.new_text.split_inclusive('\n').count() as isize - (o.end_line - o.start_line) as isize)
                        .sum();
                    let s = start.saturating_add_signed(shift);
                    s..s + n
                })
                .collect();
            for e in &r.edits {
                for line in e.start_line as usize..e.end_line as usize {
                    prop_assert!(!user_changed.contains(&line), "edit {:?} overwrites user line {}", e, line);
                }
            }
        }
    }
}

#[test]
fn one_live_store_per_workspace_and_workspaces_share_a_state_dir() {
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let no_wait = StoreOptions {
        lock_wait: std::time::Duration::ZERO,
        ..StoreOptions::default()
    };
    let err = Store::open_with(&env.state, &env.root, no_wait).unwrap_err();
    assert!(matches!(err, ProposalError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another Airlock server"));

    // Another workspace in the same state dir is independent.
    let other = env.root.parent().unwrap().join("other-ws");
    std::fs::create_dir_all(&other).unwrap();
    let mut other_store = Store::open(&env.state, &other).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let q = propose(&mut other_store, &other.join("x.rs"), "a\n", "b\n");
    assert_eq!((p.id.as_str(), q.id.as_str()), ("p-1", "p-1"));
    drop(store);
    drop(other_store);
    let reopened = Store::open(&env.state, &env.root).unwrap();
    assert_eq!(reopened.list().len(), 1);
    assert_eq!(reopened.list()[0].path, env.root.join("src/lib.rs"));
}

#[test]
fn commit_is_idempotent_when_the_applied_edit_was_recorded_first() {
    // The editor applies the edit, reports the change, and something records it as "already
    // applied" before the plan's commit arrives: the commit must not fail.
    let env = env();
    let mut store = Store::open(&env.state, &env.root).unwrap();
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let plan = store
        .plan(resolve(&p.id, None, Decision::Accept, BASE))
        .unwrap();
    let applied = plan.new_text.clone().unwrap();
    let seen = store
        .resolve(resolve(&p.id, None, Decision::Accept, &applied))
        .unwrap();
    assert_eq!(seen.proposal.state, ProposalState::Resolved);
    store.commit(&plan).unwrap();
    assert!(store.list().is_empty());

    // A plan whose decisions differ from what was recorded is still refused.
    let p = propose(&mut store, &env.root.join("src/lib.rs"), BASE, AGENT);
    let accept = store
        .plan(resolve(&p.id, Some(vec![1]), Decision::Accept, BASE))
        .unwrap();
    store
        .resolve(resolve(&p.id, Some(vec![1]), Decision::Reject, BASE))
        .unwrap();
    assert!(matches!(
        store.commit(&accept).unwrap_err(),
        ProposalError::Stale { .. }
    ));
}

#[test]
fn a_deletion_mark_is_persisted_and_refused_for_proposals_that_add_text() {
    let env = env();
    let path = env.root.join("src/gone.rs");
    std::fs::write(&path, BASE).unwrap();
    let id = {
        let mut store = Store::open(&env.state, &env.root).unwrap();
        let edit = propose(&mut store, &path, BASE, AGENT);
        assert!(matches!(
            store.mark_deletion(&edit.id),
            Err(ProposalError::NotADeletion { .. })
        ));
        let deletion = propose(&mut store, &path, BASE, "");
        assert!(store.mark_deletion(&deletion.id).unwrap().deletes_file);
        store.flush().unwrap();
        deletion.id
    };
    let store = Store::open(&env.state, &env.root).unwrap();
    assert!(
        store.get(&id).unwrap().deletes_file,
        "the mark survives a reopen"
    );
}
