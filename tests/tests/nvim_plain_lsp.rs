//! Any LSP editor, no plugin: Neovim started with `--clean` and only `vim.lsp.start` sees the
//! agent's proposal as `airlock` diagnostics, lists "Accept hunk" among the code actions, and
//! executing them applies the edits to the buffer through `workspace/applyEdit` — content exact.
//! Scenario: `clients/nvim/tests/plain_lsp_spec.lua`.

mod nvim_support;

#[test]
fn nvim_without_plugin_accepts_hunks_through_code_actions() {
    nvim_support::run_spec("plain_lsp_spec.lua");
}
