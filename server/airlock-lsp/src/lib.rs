//! The LSP front of Airlock: `airlock serve`.
//!
//! Architecture invariant: all server state lives in [`main_loop::State`], owned by one task.
//! LSP handlers (which tower-lsp runs concurrently) never touch state directly; they send a
//! closure to that task and, for requests, await its answer. Because handlers send before their
//! first `.await`, state changes happen in the order the editor sent the messages.
//! Requests *to* the editor (applyEdit, approvals) are spawned on their own tasks with a
//! timeout, so no handler ever waits on the user.

mod backend;
pub mod commands;
pub mod documents;
pub mod ext;
mod handlers;
mod main_loop;
mod outbox;
pub mod settings;
mod shadow_watch;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tower_lsp_server::{LspService, Server};

/// Everything `serve` needs from the CLI. Paths are resolved by the caller (XDG, env).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
    pub user_policy: PathBuf,
    pub managed_policy: PathBuf,
    /// `--agent` on the command line; overrides config and initializationOptions.
    pub agent_override: Option<Vec<String>>,
    /// `--isolation` on the command line; overrides config and initializationOptions.
    pub isolation_override: Option<String>,
    /// The user's `config.toml`, already parsed (agent command etc.).
    pub user_settings: settings::Settings,
    /// Name resolution of the agent terminals' egress proxy. Fixed answers only in tests
    /// (`AIRLOCK_TEST_RESOLVE`, read by the CLI; docs/network.md).
    pub proxy_resolver: airlock_proxy::Resolver,
}

/// How the session ended, for the process exit code (LSP: 0 after `shutdown`, 1 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Clean,
    WithoutShutdown,
}

/// Runs the language server on stdin/stdout until `exit` or end of input.
pub async fn serve(config: ServeConfig) -> Ending {
    let shutdown_seen = Arc::new(AtomicBool::new(false));
    let (handle, state_task) = main_loop::start(config);
    let seen = shutdown_seen.clone();
    let (service, socket) = LspService::build(move |client| {
        handle.attach_client(client.clone());
        backend::Backend::new(handle, seen)
    })
    .custom_method(ext_method::PROMPT, backend::Backend::prompt)
    .custom_method(ext_method::CANCEL, backend::Backend::cancel)
    .custom_method(ext_method::RESOLVE, backend::Backend::resolve)
    .finish();
    let (input, output) = transport::guard(tokio::io::stdin(), tokio::io::stdout());
    Server::new(input, output, socket).serve(service).await;
    state_task.shutdown().await;
    if shutdown_seen.load(Ordering::SeqCst) {
        Ending::Clean
    } else {
        Ending::WithoutShutdown
    }
}

/// `custom_method` wants `&'static str`; keep the names in one place (`ext`).
mod ext_method {
    use tower_lsp_server::ls_types::request::Request;
    pub const PROMPT: &str = <crate::ext::Prompt as Request>::METHOD;
    pub const CANCEL: &str = <crate::ext::Cancel as Request>::METHOD;
    pub const RESOLVE: &str = <crate::ext::Resolve as Request>::METHOD;
}
