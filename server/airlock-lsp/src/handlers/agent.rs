//! `airlock/prompt`, `airlock/cancel` and the agent's lifecycle; the telemetry pump.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tower_lsp_server::jsonrpc;

use crate::ext;
use crate::main_loop::State;

pub type PromptReply = oneshot::Receiver<jsonrpc::Result<ext::PromptResult>>;

pub fn prompt(_state: &mut State, _params: ext::PromptParams) -> PromptReply {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(jsonrpc::Error::invalid_request()));
    rx
}

pub fn cancel(_state: &mut State) -> jsonrpc::Result<Value> {
    Ok(Value::Null)
}

pub fn stop(_state: &mut State) {}

/// Moves telemetry from the bus's bounded queue to the editor, in batches, if the client opted in.
pub fn start_telemetry_pump(state: &mut State) {
    if !(state.opt_in.enabled && state.opt_in.telemetry) {
        return;
    }
    let Some(out) = state.out().cloned() else {
        return;
    };
    let queue = airlock_telemetry::EditorQueue::new(TELEMETRY_QUEUE);
    state.bus.attach_editor(queue.clone());
    // A plain thread: the queue blocks with a condvar, and this must never stall the runtime.
    let spawned = std::thread::Builder::new()
        .name("airlock-telemetry".into())
        .spawn(move || {
            loop {
                let batch = queue.take_batch(TELEMETRY_BATCH, Duration::from_millis(200));
                if batch.events.is_empty() && batch.dropped == 0 {
                    continue;
                }
                out.notify::<ext::Telemetry>(ext::TelemetryParams {
                    events: batch.events,
                    dropped: batch.dropped,
                });
                // Coalesce bursts into fewer notifications.
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    if let Err(err) = spawned {
        tracing::error!("cannot start the telemetry thread: {err}");
    }
}

const TELEMETRY_QUEUE: usize = 4096;
const TELEMETRY_BATCH: usize = 256;
