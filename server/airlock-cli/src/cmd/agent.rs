//! `airlock agent`: the embedded scripted ACP agent (format: docs/agent-script.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the scripted mock agent: a real ACP agent on stdin/stdout, no API key needed.
    ///
    /// Each `session/prompt` runs the next turn of the script (or the turn whose `match` text
    /// the prompt contains). Without --script, the built-in demo script is used.
    Mock {
        /// The script (TOML); see docs/agent-script.md.
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// Only validate the script and print a summary; do not speak ACP.
        #[arg(long)]
        check: bool,
    },
}

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Mock { script, check } => mock(script, check),
    }
}

fn mock(script: Option<PathBuf>, check: bool) -> anyhow::Result<ExitCode> {
    let script = match &script {
        Some(path) => airlock_acp::script::load(path)?,
        None => airlock_acp::script::default_script()?,
    };
    if check {
        let steps: usize = script.turns.iter().map(|t| t.steps.len()).sum();
        println!(
            "script {}: {} turns, {steps} steps, valid",
            script.name.as_deref().unwrap_or("(unnamed)"),
            script.turns.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let exit = runtime.block_on(airlock_acp::mock::run_stdio(script))?;
    match exit {
        airlock_acp::mock::MockExit::Eof => {
            // stdin is at EOF, so no blocking read keeps the runtime alive.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            Ok(ExitCode::SUCCESS)
        }
        // A scripted crash: leave at once, as a crashing agent would.
        airlock_acp::mock::MockExit::Crash(code) => std::process::exit(code),
    }
}
