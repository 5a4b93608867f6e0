//! `initialize`, `initialized`, `shutdown` and the end of the session.

use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::*;

use crate::commands;
use crate::documents::Encoding;
use crate::ext::{self, ClientOptIn};
use crate::main_loop::State;

pub fn initialize(
    state: &mut State,
    params: InitializeParams,
) -> jsonrpc::Result<InitializeResult> {
    state.encoding = Encoding::negotiate(
        params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_deref()),
    );
    state.opt_in = ClientOptIn::from_experimental(params.capabilities.experimental.as_ref());
    if let Err(message) = state
        .settings
        .merge_init_options(params.initialization_options.as_ref())
    {
        // Bad options are the editor config's fault: say so precisely, but still start so the
        // user sees the message in the editor rather than a dead server.
        tracing::warn!("{message}");
        if let Some(out) = state.out() {
            out.show(
                MessageType::ERROR,
                format!("airlock: invalid settings: {message}"),
            );
        }
    }
    state.root = workspace_root(&params);
    state.agent.progress_supported = params
        .capabilities
        .window
        .as_ref()
        .and_then(|w| w.work_done_progress)
        .unwrap_or(false);
    tracing::info!(root = ?state.root, encoding = ?state.encoding, opt_in = ?state.opt_in, "initialize");

    let capabilities = ServerCapabilities {
        position_encoding: Some(state.encoding.kind()),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::Supported(true)),
                ..Default::default()
            },
        )),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX, CodeActionKind::SOURCE]),
            ..Default::default()
        })),
        code_lens_provider: Some(CodeLensOptions {
            resolve_provider: Some(false),
        }),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: commands::ALL.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions::default()),
        experimental: Some(serde_json::json!({ "airlock": ext::server_capability() })),
        ..Default::default()
    };
    Ok(InitializeResult {
        capabilities,
        server_info: Some(ServerInfo {
            name: "airlock".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
        offset_encoding: None,
    })
}

fn workspace_root(params: &InitializeParams) -> Option<std::path::PathBuf> {
    #[allow(deprecated)] // rootUri is deprecated but older clients still send only it
    let first = params
        .workspace_folders
        .as_ref()
        .and_then(|f| f.first())
        .map(|f| f.uri.clone())
        .or_else(|| params.root_uri.clone())?;
    let path = first.to_file_path()?.into_owned();
    Some(std::fs::canonicalize(&path).unwrap_or(path))
}

pub fn initialized(state: &mut State) {
    crate::handlers::policy_file::load_policy(state);
    crate::handlers::proposals::restore(state);
    crate::handlers::agent::start_telemetry_pump(state);
}

pub fn shutdown(state: &mut State) {
    crate::handlers::agent::stop(state);
    crate::handlers::terminals::kill_all(state);
}

/// Runs once when the state task ends: no children may outlive the server.
pub fn on_exit(state: &mut State) {
    crate::handlers::agent::stop(state);
    crate::handlers::terminals::kill_all(state);
    // Proposals shown but still queued for disk: write them before the process goes.
    if let Some(Err(err)) = state.proposals.as_ref().map(|s| s.flush()) {
        tracing::error!("proposals not saved on exit: {err}");
    }
}
