//! `airlock policy`: check, explain, trust (owned by the policy work).

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a policy file.
    Check {},
}

pub fn run(_command: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`airlock policy` is not implemented yet")
}
