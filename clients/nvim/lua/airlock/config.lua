--- Airlock's options: defaults, merged with what the user passed to `setup()`.
--- Everything else reads `require('airlock.config').options`; nothing here talks to the server.
local M = {}

--- Default key for each action when `keymaps = true`. A table passed as `keymaps` overrides
--- entries; `false` for an entry leaves that action unmapped.
M.default_keymaps = {
  next_hunk = ']h',
  prev_hunk = '[h',
  accept_hunk = '<leader>aa',
  reject_hunk = '<leader>ar',
  accept_all = '<leader>aA',
  reject_all = '<leader>aR',
  diff = '<leader>ad',
  prompt = '<leader>ap',
  output = '<leader>ao',
  log = '<leader>al',
}

M.defaults = {
  --- Command that starts the server; `{'airlock', 'serve'}` finds `airlock` on $PATH.
  cmd = { 'airlock', 'serve' },
  --- Directories (or files) that mark the workspace root.
  root_markers = { '.airlock', '.git' },
  --- Filetypes to attach to; nil: every buffer that has a filetype.
  filetypes = nil,
  --- Sent as `initializationOptions` (see docs: `agent.command`, `agent.script`, `log`, ...).
  init_options = {},
  --- Call `vim.lsp.enable('airlock')` from `setup()`.
  enable = true,
  --- false (default): no keymaps. true: `default_keymaps`. A table: override entries.
  keymaps = false,
  --- The server also publishes one diagnostic per hunk for editors without a plugin. With the
  --- plugin's inline view they are redundant, so by default they stay in the diagnostic list
  --- (`:lua vim.diagnostic.setqflist()`) but are not drawn. `true` draws them as usual.
  diagnostics = false,
  --- Say (vim.notify) when the agent proposes changes to a file.
  notify = true,
  --- Where `]h` / `[h` go past the last / first hunk.
  wrap = true,
  output = {
    --- Command used to open the agent output window.
    split = 'botright 12split',
    --- Show the output window when a prompt is sent.
    open_on_prompt = true,
  },
  log = {
    --- Telemetry events kept in memory for `:Airlock log`.
    max_events = 5000,
    split = 'botright 12split',
  },
}

M.options = vim.deepcopy(M.defaults)

--- Merges user options over the defaults (deeply, lists replaced).
function M.set(opts)
  M.options = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  return M.options
end

--- The keymaps to set: `{action = lhs}`, empty when keymaps are off.
function M.keymaps()
  local k = M.options.keymaps
  if k == true then
    return vim.deepcopy(M.default_keymaps)
  elseif type(k) == 'table' then
    local out = vim.tbl_extend('force', vim.deepcopy(M.default_keymaps), k)
    for action, lhs in pairs(out) do
      if lhs == false then
        out[action] = nil
      end
    end
    return out
  end
  return {}
end

return M
