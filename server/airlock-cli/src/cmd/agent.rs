//! `airlock agent`: the embedded scripted ACP agent (owned by the agent-bridge work).

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the scripted mock agent on stdio.
    Mock {},
}

pub fn run(_command: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`airlock agent` is not implemented yet")
}
