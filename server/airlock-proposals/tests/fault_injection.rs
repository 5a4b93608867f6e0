//! Fault injection: a child process loops propose (often superseding the file's pending
//! proposal) / plan / write_atomic / commit on a real state dir and workspace, and is SIGKILLed
//! at random moments, many times. The store writes in the background, so the child reports a
//! proposal as persisted only from `Store::on_persisted`, as the server acknowledges an agent's
//! write. After every kill the state must load without warnings (every proposal finds its
//! base text), no workspace file may be torn, and for every file the newest proposal reported
//! persisted must still be pending — or a newer one — unless the child had started to resolve
//! it or a newer one.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use airlock_proposals::{
    Decision, Origin, ProposalId, ProposeInput, ResolveInput, Store, StoreOptions, TEMP_MARKER,
    write_atomic,
};

const CHILD_ENV: &str = "AIRLOCK_PROPOSALS_FAULT_CHILD";
const FILES: usize = 5;
const LINES: usize = 300;

fn file_text(gen_of_line: impl Fn(usize) -> u64) -> String {
    (0..LINES)
        .map(|k| format!("line {k:04} generation {:08}\n", gen_of_line(k)))
        .collect()
}

/// A workspace file is whole when it has exactly LINES well-formed lines, in order.
fn check_whole(path: &Path, text: &str) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(
        lines.len(),
        LINES,
        "{} is torn: {} lines",
        path.display(),
        lines.len()
    );
    for (k, l) in lines.iter().enumerate() {
        let prefix = format!("line {k:04} generation ");
        assert!(
            l.starts_with(&prefix) && l.len() == prefix.len() + 9 && l.ends_with('\n'),
            "{} is torn at line {k}: {l:?}",
            path.display()
        );
    }
}

/// Prints one whole line (the writer thread and the main thread both report).
fn report(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child: runs until killed. Reports `PERSISTED id file` once a proposal is on disk, and
/// `RESOLVING id file` before it starts a resolution that may remove it.
#[test]
#[ignore = "helper process, started by kill_9_during_writes_loses_nothing"]
fn fault_child_loop() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let root = dir.join("ws");
    // Odd rounds run without fsync: a killed process must not matter either way.
    let durable = std::env::var("AIRLOCK_PROPOSALS_FAULT_DURABLE").as_deref() != Ok("0");
    let options = StoreOptions {
        durable,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.join("state"), &root, options).unwrap();
    // Generations only need to differ from the previous content of a line; a clock start
    // keeps successive children apart (8 digits, to keep every line the same length).
    let mut generation: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
        % 90_000_000;
    loop {
        generation += 1;
        let name = format!("f{}.txt", generation as usize % FILES);
        let file = root.join(&name);
        let current = std::fs::read_to_string(&file).unwrap();
        // Every other visit resolves; the others supersede the pending proposal, so chains of
        // supersedes pile up in the writer's queue between two batches.
        if let Some(p) = store
            .pending_for(&file)
            .filter(|_| (generation / FILES as u64).is_multiple_of(2))
            .cloned()
        {
            report(format!("RESOLVING {} {name}", p.id));
            // Alternate partial and full accepts, like a user would.
            let hunks = generation
                .is_multiple_of(3)
                .then(|| vec![p.open_hunks().next().unwrap().id]);
            let plan = store
                .plan(ResolveInput {
                    id: p.id.clone(),
                    hunks,
                    decision: Decision::Accept,
                    reason: None,
                    edited_text: None,
                    current_text: current.clone(),
                    current_version: None,
                })
                .unwrap();
            if let Some(text) = &plan.new_text {
                write_atomic(&file, text.as_bytes()).unwrap();
            }
            store.commit(&plan).unwrap();
            continue;
        }
        let new_text = file_text(|k| {
            if (k as u64 + generation).is_multiple_of(61) {
                generation
            } else {
                current
                    .lines()
                    .nth(k)
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0)
            }
        });
        let p = store
            .propose(ProposeInput {
                path: file.clone(),
                base_text: current,
                base_version: None,
                is_new_file: false,
                new_text,
                origin: Origin::default(),
            })
            .unwrap();
        if p.hunks.is_empty() {
            continue; // Same text as before: nothing was stored.
        }
        let id = p.id;
        store.on_persisted(move |r| {
            r.unwrap();
            report(format!("PERSISTED {id} {name}"));
        });
    }
}

#[test]
fn kill_9_during_writes_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..FILES {
        std::fs::write(root.join(format!("f{i}.txt")), file_text(|_| 0)).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let number = |id: &str| id.trim_start_matches("p-").parse::<u64>().unwrap();
    // Per file: ids reported persisted, ids being resolved.
    let mut persisted: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut resolving: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let count = |m: &BTreeMap<String, BTreeSet<u64>>| m.values().map(BTreeSet::len).sum::<usize>();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut total_lines = 0;
    // At least 40 kills, and more while the (possibly loaded) machine has done too little
    // work for the kills to have hit writes often.
    for round in 0..400 {
        if round >= 40 && count(&persisted) >= 40 && count(&resolving) >= 20 {
            break;
        }
        let mut child = Command::new(&exe)
            .args([
                "fault_child_loop",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, tmp.path())
            .env(
                "AIRLOCK_PROPOSALS_FAULT_DURABLE",
                if round % 2 == 0 { "1" } else { "0" },
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        // xorshift: a different kill moment each round, reproducible across runs.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 120));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child must die by the signal"
        );
        let lines = reader.join().unwrap();
        if std::env::var_os("FAULT_DEBUG").is_some() {
            eprintln!("round {round}: {lines:?}");
        }
        for line in lines {
            // libtest may print "test fault_child_loop ... " on the same line first.
            let (map, rest) = if let Some((_, rest)) = line.split_once("PERSISTED ") {
                (&mut persisted, rest)
            } else if let Some((_, rest)) = line.split_once("RESOLVING ") {
                (&mut resolving, rest)
            } else {
                continue;
            };
            let (id, file) = rest.split_once(' ').unwrap();
            map.entry(file.to_owned()).or_default().insert(number(id));
            total_lines += 1;
        }

        // Every state file that is not a temp file parses.
        let state = tmp.path().join("state");
        let proposals_dir = state
            .join(airlock_proposals::workspace_key(&root))
            .join("proposals");
        for entry in std::fs::read_dir(proposals_dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains(TEMP_MARKER) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("round {round}: torn {}: {e}", path.display()));
        }
        for i in 0..FILES {
            let path = root.join(format!("f{i}.txt"));
            check_whole(&path, &std::fs::read_to_string(&path).unwrap());
        }
        let store = Store::open(&state, &root).unwrap();
        assert!(
            store.load_warnings().is_empty(),
            "round {round}: {:?}",
            store.load_warnings()
        );
        for (file, ids) in &persisted {
            let newest = *ids.last().unwrap();
            if resolving
                .get(file)
                .is_some_and(|r| r.range(newest..).next().is_some())
            {
                continue; // It, or a newer one that superseded it, was being resolved.
            }
            let pending = store
                .pending_for(&root.join(file))
                .map(|p| number(p.id.as_str()));
            assert!(
                pending.is_some_and(|n| n >= newest),
                "round {round}: {file}: proposal p-{newest} was reported persisted, but the \
                 pending proposal after the kill is {pending:?}"
            );
        }
        // No base text is left behind that no pending proposal uses (opening sweeps them, and
        // finishing an interrupted supersede queues the old one's removal).
        store.flush().unwrap();
        let bases = state
            .join(airlock_proposals::workspace_key(&root))
            .join("bases");
        let used: BTreeSet<String> = store.list().iter().map(|p| p.base_hash.clone()).collect();
        let on_disk: BTreeSet<String> = std::fs::read_dir(&bases)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            used.is_subset(&on_disk) && on_disk.is_subset(&used),
            "round {round}: bases on disk {on_disk:?}, used {used:?}"
        );
        // Pending proposals still describe their files: planning them works.
        for p in store.list() {
            let current = std::fs::read_to_string(&p.path).unwrap();
            let id: ProposalId = p.id.clone();
            store
                .plan(ResolveInput {
                    id,
                    hunks: None,
                    decision: Decision::Accept,
                    reason: None,
                    edited_text: None,
                    current_text: current,
                    current_version: None,
                })
                .unwrap();
        }
    }
    // Guard against a vacuous run (e.g. a child that never got going).
    assert!(
        count(&persisted) >= 40 && count(&resolving) >= 20,
        "too little work: {} persisted, {} resolving ({total_lines} lines)",
        count(&persisted),
        count(&resolving)
    );
}
