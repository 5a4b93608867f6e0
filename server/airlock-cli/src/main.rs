//! The `airlock` binary: argument parsing and dispatch to one module per subcommand.
//!
//! Exit codes (documented in `airlock --help` and the README):
//! - `0` success; `1` the operation ran and found a problem (invalid policy, failed audit, …);
//! - `2` usage error (bad flags; clap's convention);
//! - `exec` passes the command's own exit code through (`128 + N` when killed by signal N),
//!   and uses `125` when the sandbox could not be set up, `126` not executable, `127` not found.

mod cmd;
mod dirs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Airlock: let a coding agent work in your repository without handing it the keys.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, long_about = None, after_help = cmd::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the language server on stdio (started by your editor).
    Serve(cmd::serve::Args),
    /// Run a command inside the Airlock sandbox, scoped to a workspace.
    Exec(Box<cmd::exec::Args>),
    /// Validate, explain and trust policy files.
    #[command(subcommand)]
    Policy(cmd::policy::Command),
    /// Agent tools: the embedded scripted ACP agent.
    #[command(subcommand)]
    Agent(cmd::agent::Command),
    /// Verify and read the hash-chained audit log.
    #[command(subcommand)]
    Audit(cmd::audit::Command),
    /// Walk through Airlock end to end with a scripted agent (no API key, no setup).
    Demo(cmd::demo::Args),
    /// Print what this kernel supports and which protections are active.
    Doctor(cmd::doctor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Exec(args) => cmd::exec::run(*args),
        Command::Policy(command) => cmd::policy::run(command),
        Command::Agent(command) => cmd::agent::run(command),
        Command::Audit(command) => cmd::audit::run(command),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Demo(args) => cmd::demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One clear line, then the chain of causes as context.
            eprintln!("airlock: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
