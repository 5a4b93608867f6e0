//! The policy in force, and editor support for `.airlock/policy.toml`.

use tower_lsp_server::ls_types::*;

use crate::main_loop::State;

pub fn load_policy(_state: &mut State) {}

pub fn on_change(_state: &mut State, _uri: &Uri) {}

pub fn on_save(_state: &mut State, _uri: &Uri) {}

pub fn hover(_state: &mut State, _params: HoverParams) -> Option<Hover> {
    None
}

pub fn completion(_state: &mut State, _params: CompletionParams) -> Option<CompletionResponse> {
    None
}
