//! The Neovim plugin (`clients/nvim`) in a real headless Neovim against the real binary and the
//! embedded scripted agent. The checks themselves are in `clients/nvim/tests/*_spec.lua`; each
//! test here runs one scenario in a fresh Neovim with private XDG dirs.

mod nvim_support;

/// A prompt draws three hunks at lines 2/6/10; ]h/[h move; accept applies hunk 1 to the buffer;
/// reject (reason via vim.ui.input) clears hunk 3 and the agent is told the reason next turn;
/// :Airlock diff shows the proposed text; accept-all; statusline and :Airlock log follow.
#[test]
fn nvim_inline_review_accept_reject_navigate_diff() {
    nvim_support::run_spec("review_spec.lua");
}

/// airlock/approval answered through a stubbed vim.ui.select: choices, question, deny, allow
/// for the session (asked once), dismissed picker = deny.
#[test]
fn nvim_approvals_through_vim_ui_select() {
    nvim_support::run_spec("approval_spec.lua");
}

/// :checkhealth airlock is OK (binary + version, initialize round trip, Landlock), reports a
/// missing binary as an error, and :help airlock resolves its tags.
#[test]
fn nvim_checkhealth_and_help() {
    nvim_support::run_spec("health_spec.lua");
}

/// A file opened after its proposal is drawn on attach; an overlapping user edit leaves the
/// hunk conflicted (drawn as such, user text kept); a proposed new file is drawn and can be
/// rejected; the prompt buffer sends what is typed.
#[test]
fn nvim_late_open_conflict_new_file_prompt_buffer() {
    nvim_support::run_spec("more_spec.lua");
}

/// Edit before accept: the proposed side of :Airlock diff is edited and accepted there; the
/// buffer gets the edited text and the agent is told about the edit.
#[test]
fn nvim_edit_proposed_text_before_accepting() {
    nvim_support::run_spec("edit_spec.lua");
}

/// A workspace opened through a symlink: hunks are drawn in the buffer named by the link and
/// accepting lands in that buffer (the disk stays untouched while it is open).
#[test]
fn nvim_workspace_through_a_symlink() {
    nvim_support::run_spec("symlink_spec.lua");
}
