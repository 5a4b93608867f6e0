//! `workspace/executeCommand`: the `airlock.*` commands any LSP editor can run.

use airlock_proposals::Decision;
use serde_json::Value;
use tokio::sync::oneshot;
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::ExecuteCommandParams;

use crate::commands::*;
use crate::ext;
use crate::handlers::{agent, proposals};
use crate::main_loop::State;

pub type CommandReply = oneshot::Receiver<jsonrpc::Result<Option<Value>>>;

pub fn execute(state: &mut State, params: ExecuteCommandParams) -> CommandReply {
    let args = params.arguments;
    let resolve = |rx: proposals::ResolveReply| -> CommandReply { map(rx, |r| r.map(Some)) };
    match params.command.as_str() {
        ACCEPT => resolve(proposals::from_command(
            state,
            &args,
            Decision::Accept,
            false,
        )),
        REJECT => resolve(proposals::from_command(
            state,
            &args,
            Decision::Reject,
            false,
        )),
        ACCEPT_ALL => resolve(proposals::from_command(
            state,
            &args,
            Decision::Accept,
            true,
        )),
        REJECT_ALL => resolve(proposals::from_command(
            state,
            &args,
            Decision::Reject,
            true,
        )),
        PROMPT => {
            let Some(text) = args.first().and_then(Value::as_str) else {
                return ready(Err(jsonrpc::Error::invalid_params(
                    "airlock.prompt takes the prompt text as its argument",
                )));
            };
            let params = ext::PromptParams {
                text: text.to_owned(),
                uris: Vec::new(),
                selection: None,
            };
            map(agent::prompt(state, params), |r| {
                r.map(|p| serde_json::to_value(p).ok())
            })
        }
        CANCEL => ready(agent::cancel(state).map(Some)),
        other => ready(Err(jsonrpc::Error::invalid_params(format!(
            "unknown command {other}"
        )))),
    }
}

fn ready(result: jsonrpc::Result<Option<Value>>) -> CommandReply {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(result);
    rx
}

/// Adapts a reply channel of another type without blocking the state task.
fn map<T: Send + 'static>(
    rx: oneshot::Receiver<jsonrpc::Result<T>>,
    f: impl FnOnce(jsonrpc::Result<T>) -> jsonrpc::Result<Option<Value>> + Send + 'static,
) -> CommandReply {
    let (tx, out) = oneshot::channel();
    tokio::spawn(async move {
        let result = rx
            .await
            .unwrap_or_else(|_| Err(jsonrpc::Error::internal_error()));
        let _ = tx.send(f(result));
    });
    out
}
