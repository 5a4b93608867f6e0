//! `airlock exec`: run one command in the sandbox (owned by the sandbox work).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`airlock exec` is not implemented yet")
}
