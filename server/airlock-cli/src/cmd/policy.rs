//! `airlock policy`: check, explain, trust. A thin shell over `airlock_policy`: paths come from
//! [`crate::dirs::Dirs`], decisions and errors from the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airlock_policy::{CommandDecision, CommandPart, Decision, PolicyPaths};
use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a policy file; errors are printed as `FILE:LINE:COL: message`.
    ///
    /// Without FILE, checks `.airlock/policy.toml` of the workspace containing the current
    /// directory. Exit 0 when valid, 1 when not.
    Check {
        /// The policy file to check.
        file: Option<PathBuf>,
    },
    /// Show what the policy decides and which rule (layer, file:line) decided it.
    ///
    /// For a command, a read, a write or a network host. Compound commands are split and get
    /// one entry per part; the strictest part decides.
    Explain(ExplainArgs),
    /// Trust the workspace policy as it is now, so its loosening rules apply.
    ///
    /// Until trusted, a workspace policy only tightens: its allow lists and looser defaults are
    /// ignored. Trust is pinned to the file's sha256; any later change revokes it.
    Trust {
        /// Workspace root (default: the workspace containing the current directory).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["command", "read", "write", "domain"])))]
pub struct ExplainArgs {
    /// Workspace root (default: the workspace containing the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// A shell command line, e.g. "cargo test && git push".
    #[arg(long, value_name = "STR")]
    command: Option<String>,
    /// A path the agent would read (relative to the workspace root, or absolute).
    #[arg(long, value_name = "PATH")]
    read: Option<PathBuf>,
    /// A path the agent would write.
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
    /// A network host, optionally with a port.
    #[arg(long, value_name = "HOST[:PORT]")]
    domain: Option<String>,
    /// Print JSON: {"decision":…,"parts":[{"text","decision","rule","layer","source"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Check { file } => check(file),
        Command::Explain(args) => explain(args),
        Command::Trust { workspace } => trust(workspace),
    }
}

/// The nearest ancestor of the current directory with `.airlock/policy.toml`, else the
/// current directory.
fn find_workspace(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        anyhow::ensure!(
            dir.is_dir(),
            "workspace {} is not a directory",
            dir.display()
        );
        return Ok(dir);
    }
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let found = cwd
        .ancestors()
        .find(|d| d.join(".airlock").join("policy.toml").is_file())
        .map(Path::to_path_buf);
    Ok(found.unwrap_or(cwd))
}

fn policy_paths(workspace_root: PathBuf) -> anyhow::Result<PolicyPaths> {
    let dirs = crate::dirs::Dirs::from_env()?;
    Ok(PolicyPaths {
        workspace_root,
        user_policy: dirs.user_policy(),
        managed_policy: dirs.managed_policy.clone(),
        trust_store: dirs.state.join("trust.json"),
    })
}

fn check(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let file = match file {
        Some(f) => f,
        None => find_workspace(None)?.join(".airlock").join("policy.toml"),
    };
    match airlock_policy::check_file(&file) {
        Ok(true) => {
            println!("{}: valid", file.display());
            for w in workspace_warnings(&file) {
                eprintln!("{w}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            eprintln!("{}: no such policy file", file.display());
            Ok(ExitCode::from(1))
        }
        Err(err) => {
            for line in err.lines() {
                eprintln!("{line}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// For a workspace policy (`<root>/.airlock/policy.toml`): the entries of this file that
/// will not apply (untrusted loosening, keys locked by the managed policy). Best effort: if the
/// other layers cannot be loaded, there is nothing reliable to say.
fn workspace_warnings(file: &Path) -> Vec<airlock_policy::Warning> {
    let Ok(file) = file.canonicalize() else {
        return Vec::new();
    };
    let is_workspace_policy = file.file_name().is_some_and(|n| n == "policy.toml")
        && file
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == ".airlock");
    let Some(root) = file.parent().and_then(Path::parent) else {
        return Vec::new();
    };
    if !is_workspace_policy {
        return Vec::new();
    }
    let Ok(paths) = policy_paths(root.to_path_buf()) else {
        return Vec::new();
    };
    match airlock_policy::load(&paths) {
        Ok(loaded) => loaded
            .warnings
            .into_iter()
            .filter(|w| w.path == paths.workspace_policy())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let root = find_workspace(args.workspace)?;
    let paths = policy_paths(root)?;
    let loaded = match airlock_policy::load(&paths) {
        Ok(l) => l,
        Err(err) => {
            for line in err.lines() {
                eprintln!("{line}");
            }
            eprintln!("airlock: the policy is invalid; nothing explained");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let policy = &loaded.policy;
    let single = |text: String, decision: Decision| CommandDecision {
        verdict: decision.verdict,
        parts: vec![CommandPart { text, decision }],
    };
    let result = if let Some(cmd) = &args.command {
        policy.decide_command(cmd)
    } else if let Some(p) = &args.read {
        single(p.display().to_string(), policy.decide_read(p))
    } else if let Some(p) = &args.write {
        single(p.display().to_string(), policy.decide_write(p))
    } else if let Some(d) = &args.domain {
        let (host, port) = split_domain(d)?;
        // As the egress proxy does: IDNA names are decided in their `xn--` form.
        let host = airlock_proxy::normalize_host(host).unwrap_or_else(|_| host.to_string());
        single(d.clone(), policy.decide_domain(&host, port))
    } else {
        anyhow::bail!("give one of --command, --read, --write, --domain");
    };
    if args.json {
        let parts: Vec<serde_json::Value> = result
            .parts
            .iter()
            .map(|p| {
                serde_json::json!({
                    "text": p.text,
                    "decision": p.decision.verdict,
                    "rule": p.decision.rule,
                    "layer": p.decision.layer,
                    "source": p.decision.source,
                })
            })
            .collect();
        let json = serde_json::json!({ "decision": result.verdict, "parts": parts });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", result.verdict);
        for p in &result.parts {
            let d = &p.decision;
            let origin = match &d.source {
                Some(s) => format!("{} {s}", d.layer),
                None => d.layer.to_string(),
            };
            println!(
                "  {:<5}  {}\n         {}  [{origin}]",
                d.verdict.as_str(),
                if p.text.is_empty() {
                    "(empty)"
                } else {
                    &p.text
                },
                d.rule.as_deref().unwrap_or("-"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn split_domain(s: &str) -> anyhow::Result<(&str, Option<u16>)> {
    let bad = || anyhow::anyhow!("`{s}`: expected HOST or HOST:PORT");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Ok((host, None)),
            None => Err(bad()),
            Some(p) => Ok((host, Some(p.parse().map_err(|_| bad())?))),
        };
    }
    match s.rsplit_once(':') {
        None => Ok((s, None)),
        Some((h, p)) => Ok((h, Some(p.parse().map_err(|_| bad())?))),
    }
}

fn trust(workspace: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let root = find_workspace(workspace)?;
    let paths = policy_paths(root)?;
    match airlock_policy::trust_workspace(&paths) {
        Ok((file, sha)) => {
            println!("trusted {} (sha256 {sha})", file.display());
            println!("any change to the file revokes this trust");
            Ok(ExitCode::SUCCESS)
        }
        Err(airlock_policy::TrustError::Invalid(err)) => {
            for line in err.lines() {
                eprintln!("{line}");
            }
            eprintln!("airlock: refusing to trust an invalid policy");
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err.into()),
    }
}
