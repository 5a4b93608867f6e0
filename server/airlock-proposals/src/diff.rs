//! Line diff into hunks, applying hunks, and placing hunks on a text the user changed.
//!
//! Guarantees:
//! - `apply_hunks(a, &diff(a, b)) == b` for every pair of texts (property-tested), including
//!   CRLF, missing final newline, empty texts and non-ASCII: lines keep their terminators,
//!   so no byte is reconstructed, only copied.
//! - [`place`] never reports a hunk as applicable when the user changed any line it replaces
//!   (or inserted lines inside it, or inserted at the same point): the user's text wins.

use similar::{Algorithm, DiffTag, TextDiff, capture_diff_slices};

use crate::text::split_lines;
use crate::types::{Highlight, Hunk, HunkStatus, LineEdit, Side};

/// One non-equal region between two line sequences, as half-open line ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub old_start: usize,
    pub old_end: usize,
    pub new_start: usize,
    pub new_end: usize,
}

/// Hunks larger than this (either side, in lines) get no word highlights: the word diff is
/// quadratic-ish and a block that large is read as a whole anyway.
const HIGHLIGHT_MAX_LINES: usize = 32;

/// Non-equal regions turning `old` into `new`, in order, never adjacent to each other.
pub(crate) fn changes(old: &[&str], new: &[&str]) -> Vec<Change> {
    // Common prefix/suffix are trimmed here because agent writes usually touch a few places
    // of a large file, and the diff is then only run on the middle.
    let prefix = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let max_suffix = old.len().min(new.len()) - prefix;
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let old_mid = &old[prefix..old.len() - suffix];
    let new_mid = &new[prefix..new.len() - suffix];
    if old_mid.is_empty() && new_mid.is_empty() {
        return Vec::new();
    }
    capture_diff_slices(Algorithm::Myers, old_mid, new_mid)
        .into_iter()
        .filter(|op| op.tag() != DiffTag::Equal)
        .map(|op| {
            let (o, n) = (op.old_range(), op.new_range());
            Change {
                old_start: o.start + prefix,
                old_end: o.end + prefix,
                new_start: n.start + prefix,
                new_end: n.end + prefix,
            }
        })
        .collect()
}

/// Diffs two texts into pending hunks numbered from 1, with word highlights.
pub fn diff(old: &str, new: &str) -> Vec<Hunk> {
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    changes(&old_lines, &new_lines)
        .into_iter()
        .zip(1u32..)
        .map(|(c, id)| {
            let old_text = old_lines[c.old_start..c.old_end].concat();
            let new_text = new_lines[c.new_start..c.new_end].concat();
            let highlights = if (1..=HIGHLIGHT_MAX_LINES).contains(&(c.old_end - c.old_start))
                && (1..=HIGHLIGHT_MAX_LINES).contains(&(c.new_end - c.new_start))
            {
                highlights(&old_text, &new_text)
            } else {
                Vec::new()
            };
            Hunk {
                id,
                old_start: to_u32(c.old_start),
                old_count: to_u32(c.old_end - c.old_start),
                old_text,
                new_text,
                status: HunkStatus::Pending,
                reason: None,
                edited_text: None,
                highlights,
            }
        })
        .collect()
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn highlights(old_text: &str, new_text: &str) -> Vec<Highlight> {
    let diff = TextDiff::from_lines(old_text, new_text);
    let mut out = Vec::new();
    for op in diff.ops() {
        for change in diff.iter_inline_changes(op) {
            let (side, line) = match (change.old_index(), change.new_index()) {
                (_, Some(n)) if change.tag() == similar::ChangeTag::Insert => (Side::New, n),
                (Some(o), _) if change.tag() == similar::ChangeTag::Delete => (Side::Old, o),
                _ => continue,
            };
            let mut offset = 0usize;
            for (emphasized, value) in change.values() {
                let len = value.len();
                if *emphasized {
                    out.push(Highlight {
                        side,
                        line: to_u32(line),
                        start: to_u32(offset),
                        end: to_u32(offset + len),
                    });
                }
                offset += len;
            }
        }
    }
    out
}

/// Replaces line ranges of `lines`; `edits` are `(start, end, text)`, sorted, non-overlapping.
pub(crate) fn splice(lines: &[&str], edits: &[(usize, usize, &str)]) -> String {
    let mut out = String::with_capacity(lines.iter().map(|l| l.len()).sum::<usize>() + 64);
    let mut at = 0;
    for &(start, end, text) in edits {
        for l in &lines[at..start] {
            out.push_str(l);
        }
        out.push_str(text);
        at = end;
    }
    for l in &lines[at.min(lines.len())..] {
        out.push_str(l);
    }
    out
}

/// Applies hunks (their `edited_text` when set, else `new_text`) to the text their
/// `old_start` refers to. Hunks must not overlap; order does not matter.
pub fn apply_hunks(text: &str, hunks: &[Hunk]) -> String {
    let lines = split_lines(text);
    let mut edits: Vec<(usize, usize, &str)> = hunks
        .iter()
        .map(|h| {
            let start = (h.old_start as usize).min(lines.len());
            let end = (start + h.old_count as usize).min(lines.len());
            (start, end, h.edited_text.as_deref().unwrap_or(&h.new_text))
        })
        .collect();
    edits.sort_by_key(|e| e.0);
    splice(&lines, &edits)
}

/// Minimal line edits turning `old` into `new`.
pub fn line_edits(old: &str, new: &str) -> Vec<LineEdit> {
    let old_lines = split_lines(old);
    let new_lines = split_lines(new);
    changes(&old_lines, &new_lines)
        .into_iter()
        .map(|c| LineEdit {
            start_line: to_u32(c.old_start),
            end_line: to_u32(c.old_end),
            old_text: old_lines[c.old_start..c.old_end].concat(),
            new_text: new_lines[c.new_start..c.new_end].concat(),
        })
        .collect()
}

/// Where a hunk of the base lands in the user's current text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// The user did not touch the hunk's lines: they are at `start..start + old_count`.
    Clean { start: usize },
    /// The user's edit overlaps the hunk but produced exactly the hunk's result (e.g. it was
    /// applied before a crash, or the user typed the same thing): nothing left to do.
    AlreadyApplied { start: usize, end: usize },
    /// The user changed lines the hunk replaces; `start..end` is the overlapping region of
    /// the current text.
    Conflict { start: usize, end: usize },
}

impl Placement {
    pub(crate) fn range(self, old_count: usize) -> (usize, usize) {
        match self {
            Placement::Clean { start } => (start, start + old_count),
            Placement::AlreadyApplied { start, end } | Placement::Conflict { start, end } => {
                (start, end)
            }
        }
    }
}

/// Whether the user's change `c` and the hunk replacing base lines `s..e` collide.
fn interacts(c: &Change, s: usize, e: usize) -> bool {
    let user_empty = c.old_start == c.old_end;
    match (s == e, user_empty) {
        // Both insert at the same point: their order is ambiguous.
        (true, true) => c.old_start == s,
        // Agent inserts inside a region the user replaced or deleted.
        (true, false) => c.old_start < s && s < c.old_end,
        // User inserted lines inside the region the agent replaces.
        (false, true) => s < c.old_start && c.old_start < e,
        (false, false) => c.old_start < e && s < c.old_end,
    }
}

/// Places the hunk replacing base lines `s..e` by `new_text` on the current text, given the
/// user's changes `user` (base → current).
pub(crate) fn place(
    user: &[Change],
    base: &[&str],
    current: &[&str],
    s: usize,
    e: usize,
    new_text: &str,
) -> Placement {
    let mut first = None;
    let mut last = None;
    for (i, c) in user.iter().enumerate() {
        if interacts(c, s, e) {
            first.get_or_insert(i);
            last = Some(i);
        } else if c.old_start > e {
            break;
        }
    }
    let (Some(i), Some(j)) = (first, last) else {
        // Every change that ends at or before `s` shifts the hunk; an insertion exactly at a
        // non-empty hunk's start goes before it.
        let delta: isize = user
            .iter()
            .take_while(|c| c.old_end <= s)
            .map(|c| (c.new_end - c.new_start) as isize - (c.old_end - c.old_start) as isize)
            .sum();
        return Placement::Clean {
            start: s.saturating_add_signed(delta),
        };
    };
    let (ci, cj) = (user[i], user[j]);
    let (a, b) = (s.min(ci.old_start), e.max(cj.old_end));
    let start = ci.new_start - (ci.old_start - a);
    let end = cj.new_end + (b - cj.old_end);
    let expected_len = base[a..s].iter().map(|l| l.len()).sum::<usize>()
        + new_text.len()
        + base[e..b].iter().map(|l| l.len()).sum::<usize>();
    let actual = &current[start..end];
    if actual.iter().map(|l| l.len()).sum::<usize>() == expected_len {
        let expected = [
            base[a..s].concat(),
            new_text.to_owned(),
            base[e..b].concat(),
        ]
        .concat();
        if actual.concat() == expected {
            return Placement::AlreadyApplied { start, end };
        }
    }
    Placement::Conflict { start, end }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn lines_strategy() -> impl Strategy<Value = String> {
        // Few distinct lines so that diffs have both equal and changed regions; terminators
        // vary per line and the last line may lack one.
        let line = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("ç日本".to_owned()),
            Just(String::new()),
            Just("  fn x() {}".to_owned()),
            "[a-c é]{0,4}".prop_map(|s| s),
        ];
        let term = prop_oneof![Just("\n"), Just("\r\n"), Just("\n")];
        (prop::collection::vec((line, term), 0..30), any::<bool>()).prop_map(|(ls, trailing)| {
            let mut s = String::new();
            let n = ls.len();
            for (i, (l, t)) in ls.into_iter().enumerate() {
                s.push_str(&l);
                if i + 1 < n || trailing {
                    s.push_str(t);
                }
            }
            s
        })
    }

    proptest! {
        #[test]
        fn apply_diff_roundtrip(a in lines_strategy(), b in lines_strategy()) {
            let hunks = diff(&a, &b);
            prop_assert_eq!(apply_hunks(&a, &hunks), b.clone());
            // The same holds for the minimal line edits used for open buffers.
            let edits = line_edits(&a, &b);
            let lines = split_lines(&a);
            let spliced: Vec<_> = edits.iter().map(|e| (e.start_line as usize, e.end_line as usize, e.new_text.as_str())).collect();
            prop_assert_eq!(splice(&lines, &spliced), b);
        }

        #[test]
        fn untouched_hunks_rebase_onto_user_edits(
            base in lines_strategy(), agent in lines_strategy(), user in lines_strategy()
        ) {
            // 3-way property: every hunk placed Clean has its old lines intact at the new
            // position, so applying it replaces exactly what the agent meant to replace.
            let bl = split_lines(&base);
            let cl = split_lines(&user);
            let uc = changes(&bl, &cl);
            let mut prev_end = 0;
            for h in diff(&base, &agent) {
                let (s, e) = (h.old_start as usize, (h.old_start + h.old_count) as usize);
                let placement = place(&uc, &bl, &cl, s, e, &h.new_text);
                let (start, end) = placement.range(e - s);
                prop_assert!(start <= end && end <= cl.len(), "{:?} out of bounds", placement);
                if let Placement::Clean { start } = placement {
                    prop_assert_eq!(cl[start..start + (e - s)].concat(), h.old_text);
                    // Clean hunks stay in order and never overlap, so splicing them is safe.
                    prop_assert!(start >= prev_end, "{:?} overlaps the previous hunk", placement);
                    prev_end = end;
                }
            }
        }
    }

    #[test]
    fn edge_cases_roundtrip() {
        let cases = [
            ("", ""),
            ("", "x"),
            ("x", ""),
            ("a\nb", "a\nb\n"),
            ("a\r\nb\r\n", "a\nb\n"),
            ("é\n", "é"),
            ("a\n", "a\n"),
        ];
        for (a, b) in cases {
            assert_eq!(apply_hunks(a, &diff(a, b)), b, "{a:?} -> {b:?}");
        }
        assert!(diff("same\n", "same\n").is_empty());
    }

    #[test]
    fn word_highlights_mark_changed_words() {
        let hunks = diff("let a = old_name;\n", "let a = new_name;\n");
        assert_eq!(hunks.len(), 1);
        let new_hl: Vec<_> = hunks[0]
            .highlights
            .iter()
            .filter(|h| h.side == Side::New)
            .collect();
        assert_eq!(new_hl.len(), 1);
        let h = new_hl[0];
        assert_eq!(
            &"let a = new_name;\n"[h.start as usize..h.end as usize],
            "new_name;",
            "words are whitespace-separated tokens"
        );
    }

    #[test]
    fn placement_shifts_conflicts_and_detects_applied() {
        let base = "1\n2\n3\n4\n5\n6\n";
        let bl = split_lines(base);
        // User inserted two lines at the top and changed line "5".
        let cur = "0\n0\n1\n2\n3\n4\nFIVE\n6\n";
        let cl = split_lines(cur);
        let uc = changes(&bl, &cl);
        // Hunk on line index 1 ("2"): untouched, shifted by 2.
        assert_eq!(
            place(&uc, &bl, &cl, 1, 2, "two\n"),
            Placement::Clean { start: 3 }
        );
        // Hunk on line index 4 ("5"): the user changed it.
        assert_eq!(
            place(&uc, &bl, &cl, 4, 5, "five\n"),
            Placement::Conflict { start: 6, end: 7 }
        );
        // Same change as the user made: already applied.
        assert_eq!(
            place(&uc, &bl, &cl, 4, 5, "FIVE\n"),
            Placement::AlreadyApplied { start: 6, end: 7 }
        );
        // Insertion at the same point as the user's insertion is ambiguous.
        assert!(matches!(
            place(&uc, &bl, &cl, 0, 0, "x\n"),
            Placement::Conflict { .. }
        ));
        // Insertion right after the user's changed line is fine.
        assert_eq!(
            place(&uc, &bl, &cl, 5, 5, "x\n"),
            Placement::Clean { start: 7 }
        );
    }
}
