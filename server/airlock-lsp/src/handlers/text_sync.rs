//! `textDocument/didOpen|didChange|didSave|didClose` into the document store.

use tower_lsp_server::ls_types::*;

use crate::main_loop::State;

pub fn did_open(state: &mut State, params: DidOpenTextDocumentParams) {
    let doc = params.text_document;
    state
        .docs
        .open(doc.uri.clone(), doc.version, doc.text, doc.language_id);
    crate::handlers::policy_file::on_change(state, &doc.uri);
    crate::handlers::proposals::publish(state, &doc.uri);
}

pub fn did_change(state: &mut State, params: DidChangeTextDocumentParams) {
    let uri = params.text_document.uri;
    let changes = params
        .content_changes
        .into_iter()
        .map(|c| (c.range, c.text))
        .collect();
    if let Err(err) = state
        .docs
        .change(&uri, params.text_document.version, changes, state.encoding)
    {
        // The editor and we disagree about the text now; everything built on it would be wrong.
        tracing::error!("didChange for {} rejected: {err}", uri.as_str());
        if let Some(out) = state.out() {
            out.show(
                MessageType::ERROR,
                format!(
                    "airlock: lost sync with {} ({err}); close and reopen the file",
                    uri.as_str()
                ),
            );
        }
        return;
    }
    crate::handlers::policy_file::on_change(state, &uri);
    // Hunks move (or conflict) as the user types: keep their diagnostics where they are now.
    crate::handlers::proposals::publish_if_pending(state, &uri);
}

pub fn did_save(state: &mut State, params: DidSaveTextDocumentParams) {
    crate::handlers::policy_file::on_save(state, &params.text_document.uri);
}

pub fn did_close(state: &mut State, params: DidCloseTextDocumentParams) {
    state.docs.close(&params.text_document.uri);
}
