//! Proposals in the editor: diagnostics, code lenses, code actions, `airlock/resolve`.

use serde_json::Value;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::*;

use crate::ext;
use crate::main_loop::State;

pub fn restore(_state: &mut State) {}

pub fn publish(_state: &mut State, _uri: &Uri) {}

pub fn code_action(_state: &mut State, _params: CodeActionParams) -> Option<CodeActionResponse> {
    None
}

pub fn code_lens(_state: &mut State, _params: CodeLensParams) -> Option<Vec<CodeLens>> {
    None
}

pub fn resolve(_state: &mut State, params: ext::ResolveParams) -> jsonrpc::Result<Value> {
    Err(jsonrpc::Error::invalid_params(format!(
        "no proposal {}",
        params.proposal
    )))
}
