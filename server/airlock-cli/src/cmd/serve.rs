//! `airlock serve`: the LSP server on stdio.
//!
//! stdout is the protocol, so nothing else may write to it: logs go to
//! `$XDG_STATE_HOME/airlock/logs/serve.log.YYYY-MM-DD` (level from `AIRLOCK_LOG`, then the
//! `log` setting, default `info`).

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_lsp::settings::Settings;
use anyhow::Context;

use crate::dirs::Dirs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Agent command (program and arguments, split on whitespace); overrides config.toml and the
    /// editor's initializationOptions. Without one, prompts say how to configure an agent.
    #[arg(long, value_name = "COMMAND")]
    pub agent: Option<String>,
    /// How the agent process is isolated; overrides config.toml and initializationOptions.
    /// `sandboxed` (default): read-only workspace, edits only through ACP `fs/write_text_file`.
    /// `shadow`: the agent writes to disk itself, into a copy-on-write shadow of the workspace,
    /// and its writes become proposals; the only mode offering ACP v2 (v2 agents always write
    /// to disk themselves). `none`: no sandbox (explicit, reported opt-out).
    #[arg(long, value_name = "MODE", value_parser = ["sandboxed", "shadow", "none"])]
    pub isolation: Option<String>,
    /// Accepted for editors that always pass it; stdio is the only transport.
    #[arg(long, hide = true)]
    pub stdio: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dirs = Dirs::from_env()?;
    let user_settings = load_user_settings(&dirs.user_config())?;
    let _log_guard = init_logging(&dirs.state.join("logs"), user_settings.log.as_deref())?;

    let config = airlock_lsp::ServeConfig {
        state_dir: dirs.state.clone(),
        config_dir: dirs.config.clone(),
        user_policy: dirs.user_policy(),
        managed_policy: dirs.managed_policy.clone(),
        agent_override: args
            .agent
            .map(|a| a.split_whitespace().map(str::to_owned).collect()),
        isolation_override: args.isolation,
        user_settings,
        proxy_resolver: match std::env::var("AIRLOCK_TEST_RESOLVE") {
            // Test-only (docs/network.md): fixed answers so tests can point names at 127.0.0.1.
            Ok(spec) => airlock_proxy::Resolver::parse_overrides(&spec)
                .map_err(|e| anyhow::anyhow!("AIRLOCK_TEST_RESOLVE: {e}"))?,
            Err(_) => airlock_proxy::Resolver::default(),
        },
    };
    // Two worker threads: the machines this runs on are small and the server is I/O bound.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let ending = runtime.block_on(airlock_lsp::serve(config));
    // Agent and terminal children are killed by the server on shutdown; don't wait for
    // stray blocking tasks (e.g. a stdin reader) to finish.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    tracing::info!(?ending, "exit");
    Ok(match ending {
        airlock_lsp::Ending::Clean => ExitCode::SUCCESS,
        airlock_lsp::Ending::WithoutShutdown => ExitCode::from(1),
    })
}

fn load_user_settings(path: &std::path::Path) -> anyhow::Result<Settings> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Settings::from_toml(&text, &path.display().to_string()).map_err(anyhow::Error::msg)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn init_logging(
    dir: &PathBuf,
    setting: Option<&str>,
) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create log dir {}", dir.display()))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("serve.log")
        .max_log_files(7)
        .build(dir)
        .with_context(|| format!("cannot open a log file in {}", dir.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .or_else(|| setting.map(str::to_owned))
        .unwrap_or_else(|| "info".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).with_context(|| {
        format!("invalid log filter {filter:?} (AIRLOCK_LOG or the `log` setting)")
    })?;
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(guard)
}
