//! `airlock doctor`: report kernel features and active protections (owned by the sandbox work).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`airlock doctor` is not implemented yet")
}
