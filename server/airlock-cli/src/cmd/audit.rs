//! `airlock audit`: verify and read the hash-chained audit log. A thin shell over
//! `airlock_telemetry::audit`: the directory comes from [`crate::dirs::Dirs`]
//! (`$XDG_STATE_HOME/airlock/audit`), the checks from the library.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_telemetry::audit;
use airlock_telemetry::{Event, EventKind};
use anyhow::{Context, bail};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the hash chain of the audit log; exit 0 if intact, 1 if not.
    ///
    /// Without FILE, checks every file of the audit directory in order, across rotation, and
    /// that the log still ends where the server last wrote (so records cut off the end are
    /// found too). With FILEs, checks that they are intact and follow each other.
    /// A problem is printed as `FILE:LINE: what is wrong`.
    Verify {
        /// Audit files to check, oldest first (default: the whole audit directory).
        files: Vec<PathBuf>,
        /// The audit directory (default: $XDG_STATE_HOME/airlock/audit).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the audit log as a readable table (or JSON lines), optionally filtered.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Audit files to read, oldest first (default: the whole audit directory).
    files: Vec<PathBuf>,
    /// The audit directory (default: $XDG_STATE_HOME/airlock/audit).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Only these kinds; repeatable. A prefix without a dot matches a family:
    /// `command` = `command.started`, `command.finished`, `command.denied`.
    #[arg(long, value_name = "KIND")]
    kind: Vec<String>,
    /// Only events at or after this time: `2026-11-24`, `2026-11-24T06:30[:00][Z]` (UTC), or
    /// an age such as `90s`, `15m`, `2h`, `7d`.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events of this server session.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Only events with this decision (`allow`, `deny`, `accepted`, …).
    #[arg(long, value_name = "DECISION")]
    decision: Option<String>,
    /// Only the last N matching events.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Print each matching event as one JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Verify { files, dir } => verify(files, dir),
        Command::Show(args) => show(args),
    }
}

fn audit_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match dir {
        Some(d) => Ok(d),
        None => Ok(crate::dirs::Dirs::from_env()?
            .state
            .join(airlock_telemetry::audit::DIR_NAME)),
    }
}

fn verify(files: Vec<PathBuf>, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (result, what) = if files.is_empty() {
        let dir = audit_dir(dir)?;
        (audit::verify_dir(&dir), dir.display().to_string())
    } else {
        for f in &files {
            if !f.is_file() {
                bail!("{}: no such audit file", f.display());
            }
        }
        (
            audit::verify_files(&files, false),
            format!("{} file(s)", files.len()),
        )
    };
    match result {
        Ok(report) if report.files == 0 => {
            println!("no audit records in {what}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(report) => {
            let end = if report.head_checked {
                ", ends where the server last wrote"
            } else {
                " (the end of the log is checked only when verifying the whole directory)"
            };
            println!(
                "ok: {} records (#{}..#{}) in {} file(s), chain intact{end}",
                report.records, report.first_n, report.last_n, report.files
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("{err}");
            println!("audit log verification FAILED");
            Ok(ExitCode::from(1))
        }
    }
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let files = if args.files.is_empty() {
        let dir = audit_dir(args.dir.clone())?;
        audit::list_files(&dir)?
    } else {
        args.files.clone()
    };
    for k in &args.kind {
        let family = !k.contains('.');
        if !family && EventKind::parse(k).is_none() {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            bail!(
                "unknown event kind {k:?}; known kinds: {}",
                known.join(", ")
            );
        }
    }
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, airlock_telemetry::now_ms()))
        .transpose()?;
    let mut matching: Vec<Event> = Vec::new();
    let mut unreadable = 0;
    for (path, line, record) in audit::read_records(&files) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                unreadable += 1;
                eprintln!("{}:{line}: unreadable record: {e}", path.display());
                continue;
            }
        };
        let Some(event) = record.event else {
            continue; // seals are structure, not events
        };
        if !args.kind.is_empty() && !args.kind.iter().any(|k| kind_matches(k, event.kind)) {
            continue;
        }
        if since.is_some_and(|t| event.ts_ms < t)
            || args.session.as_ref().is_some_and(|s| *s != event.session)
            || args
                .decision
                .as_ref()
                .is_some_and(|d| Some(d) != event.decision.as_ref())
        {
            continue;
        }
        matching.push(event);
    }
    let skip = args.last.map_or(0, |n| matching.len().saturating_sub(n));
    for event in &matching[skip..] {
        if args.json {
            println!(
                "{}",
                serde_json::to_string(event).context("serialize event")?
            );
        } else {
            println!("{}", format_event(event));
        }
    }
    Ok(if unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn kind_matches(filter: &str, kind: EventKind) -> bool {
    let name = kind.as_str();
    name == filter
        || (!filter.contains('.')
            && name
                .strip_prefix(filter)
                .is_some_and(|rest| rest.starts_with('.')))
}

/// `2026-11-24T06:31:02.123Z  #12  fs.read             allow   src/lib.rs  rule=r (user)  k=v`
fn format_event(e: &Event) -> String {
    let mut line = format!(
        "{}  #{:<5} {:<18} {:<10} {}",
        audit::format_utc(e.ts_ms),
        e.seq,
        e.kind.as_str(),
        e.decision.as_deref().unwrap_or("-"),
        e.subject.replace('\n', "\\n"),
    );
    if let Some(rule) = &e.rule {
        line.push_str(&format!("  rule={rule}"));
        if let Some(layer) = &e.layer {
            line.push_str(&format!(" ({layer})"));
        }
    }
    if let Some(ms) = e.duration_ms {
        line.push_str(&format!("  {ms:.1}ms"));
    }
    for (k, v) in &e.fields {
        let v = match v {
            serde_json::Value::String(s) => s.replace('\n', "\\n"),
            other => other.to_string(),
        };
        line.push_str(&format!("  {k}={v}"));
    }
    line
}

/// A time in unix milliseconds from an absolute UTC date/time or an age before `now_ms`.
fn parse_since(s: &str, now_ms: u64) -> anyhow::Result<u64> {
    let s = s.trim();
    let unit_ms = |u: &str| match u {
        "s" => Some(1000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        "d" => Some(86_400_000),
        _ => None,
    };
    if let Some(split) = s.find(|c: char| !c.is_ascii_digit())
        && split > 0
        && let (Ok(n), Some(unit)) = (s[..split].parse::<u64>(), unit_ms(&s[split..]))
    {
        return Ok(now_ms.saturating_sub(n.saturating_mul(unit)));
    }
    let bad = || {
        anyhow::anyhow!(
            "--since {s:?}: expected YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z] (UTC) or an age like 15m"
        )
    };
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || !(2..=3).contains(&t.len()) {
        return Err(bad());
    }
    let (y, mo, day) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (h, mi) = (num(t[0])?, num(t[1])?);
    let sec = t.get(2).map_or(Ok(0), |x| num(x))?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    let days = audit::days_from_civil(y, mo, day);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    u64::try_from(secs * 1000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn since_accepts_dates_times_and_ages() {
        let now = 1_764_000_000_000; // 2025-11-24T16:00:00Z
        assert_eq!(parse_since("2025-11-24", now).unwrap(), 1_763_942_400_000);
        assert_eq!(parse_since("2025-11-24T16:00Z", now).unwrap(), now);
        assert_eq!(parse_since("2025-11-24T16:00:00", now).unwrap(), now);
        assert_eq!(parse_since("15m", now).unwrap(), now - 900_000);
        assert_eq!(parse_since("2d", now).unwrap(), now - 172_800_000);
        for bad in ["yesterday", "2025-13-01", "10y", "2025-11-24T25:00"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn kind_filter_matches_families_only_at_a_dot() {
        assert!(kind_matches("command", EventKind::CommandStarted));
        assert!(kind_matches("fs.read", EventKind::FsRead));
        assert!(!kind_matches("fs.read", EventKind::FsReadDenied));
        assert!(!kind_matches("prompt", EventKind::ProposalCreated));
        assert!(kind_matches("prompt", EventKind::PromptFinished));
    }
}
