//! `workspace/executeCommand`: the `airlock.*` commands any LSP editor can run.

use serde_json::Value;
use tokio::sync::oneshot;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::ExecuteCommandParams;

use crate::main_loop::State;

pub type CommandReply = oneshot::Receiver<jsonrpc::Result<Option<Value>>>;

pub fn execute(_state: &mut State, params: ExecuteCommandParams) -> CommandReply {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(jsonrpc::Error::invalid_params(format!(
        "unknown command {}",
        params.command
    ))));
    rx
}
