//! `airlock serve`: the LSP server on stdio.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`airlock serve` is not implemented yet")
}
