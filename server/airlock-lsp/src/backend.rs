//! The `LanguageServer` implementation: a thin dispatcher.
//!
//! Every handler forwards to the state task (see `main_loop`) before its first `.await`, which
//! keeps document order even though tower-lsp runs handlers concurrently. The handler bodies
//! live in `handlers/`, one file per family.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tower_lsp_server::LanguageServer;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use crate::ext;
use crate::handlers;
use crate::main_loop::Handle;

pub struct Backend {
    state: Handle,
    shutdown_seen: Arc<AtomicBool>,
}

impl Backend {
    pub fn new(state: Handle, shutdown_seen: Arc<AtomicBool>) -> Backend {
        Backend {
            state,
            shutdown_seen,
        }
    }

    pub async fn prompt(&self, params: ext::PromptParams) -> Result<ext::PromptResult> {
        let rx = self
            .state
            .call(move |s| handlers::agent::prompt(s, params))
            .await?;
        rx.await
            .map_err(|_| tower_lsp_server::jsonrpc::Error::internal_error())?
    }

    pub async fn cancel(&self, _params: Option<Value>) -> Result<Value> {
        self.state.call(handlers::agent::cancel).await?
    }

    pub async fn resolve(&self, params: ext::ResolveParams) -> Result<Value> {
        let rx = self
            .state
            .call(move |s| handlers::proposals::resolve(s, params))
            .await?;
        rx.await
            .map_err(|_| tower_lsp_server::jsonrpc::Error::internal_error())?
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        self.state
            .call(move |s| handlers::lifecycle::initialize(s, params))
            .await?
    }

    async fn initialized(&self, _: InitializedParams) {
        self.state.notify(handlers::lifecycle::initialized);
    }

    async fn shutdown(&self) -> Result<()> {
        self.shutdown_seen.store(true, Ordering::SeqCst);
        self.state.call(handlers::lifecycle::shutdown).await
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.state
            .notify(move |s| handlers::text_sync::did_open(s, params));
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.state
            .notify(move |s| handlers::text_sync::did_change(s, params));
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        self.state
            .notify(move |s| handlers::text_sync::did_save(s, params));
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.state
            .notify(move |s| handlers::text_sync::did_close(s, params));
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        self.state
            .call(move |s| handlers::proposals::code_action(s, params))
            .await
    }

    async fn code_lens(&self, params: CodeLensParams) -> Result<Option<Vec<CodeLens>>> {
        self.state
            .call(move |s| handlers::proposals::code_lens(s, params))
            .await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        let rx = self
            .state
            .call(move |s| handlers::commands::execute(s, params))
            .await?;
        rx.await
            .map_err(|_| tower_lsp_server::jsonrpc::Error::internal_error())?
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        self.state
            .call(move |s| handlers::policy_file::hover(s, params))
            .await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        self.state
            .call(move |s| handlers::policy_file::completion(s, params))
            .await
    }
}
