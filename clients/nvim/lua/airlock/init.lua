--- Airlock for Neovim: review an AI agent's edits hunk by hunk, answer its approvals, watch
--- what it does. The plugin is a thin client of `airlock serve`: every decision is made and
--- recorded by the server; this module only shows state and forwards the user's choices.
---
--- Public API (see `:help airlock-lua`):
---   setup(opts)            configure, `vim.lsp.config('airlock', …)` and enable it
---   prompt(text, opts)     start an agent turn (`airlock/prompt`)
---   cancel()               cancel the running turn
---   next_hunk() / prev_hunk()
---   accept_hunk() / reject_hunk(reason?) / accept_all() / reject_all(reason?)
---   diff()                 current vs proposed, side by side
---   list()                 every pending hunk in the quickfix list
---   log() / output() / prompt_buffer()
---   statusline()           e.g. "airlock: working · 3 hunks"
local M = {}

local api = vim.api

local function proposals()
  return require('airlock.proposals')
end

--- Highlight groups, linked to the diff groups so every colorscheme gives them a meaning.
function M.define_highlights()
  local links = {
    AirlockAdded = 'DiffAdd',
    AirlockRemoved = 'DiffDelete',
    AirlockConflict = 'DiffText',
    AirlockHint = 'Comment',
  }
  for group, target in pairs(links) do
    api.nvim_set_hl(0, group, { link = target, default = true })
  end
end

local plug = {
  next_hunk = function()
    M.next_hunk()
  end,
  prev_hunk = function()
    M.prev_hunk()
  end,
  accept_hunk = function()
    M.accept_hunk()
  end,
  reject_hunk = function()
    M.reject_hunk()
  end,
  accept_all = function()
    M.accept_all()
  end,
  reject_all = function()
    M.reject_all()
  end,
  diff = function()
    M.diff()
  end,
  prompt = function()
    M.prompt_buffer()
  end,
  output = function()
    M.output()
  end,
  log = function()
    M.log()
  end,
}
M.actions = plug

--- `<Plug>(airlock-…)` mappings, always defined; users may map them as they like.
function M.define_plug_maps()
  for action, fn in pairs(plug) do
    local name = '<Plug>(airlock-' .. action:gsub('_', '-') .. ')'
    vim.keymap.set('n', name, fn, { desc = 'Airlock: ' .. action:gsub('_', ' ') })
  end
end

--- Buffer-local keymaps from `setup{ keymaps = … }` (none by default).
function M.set_keymaps(bufnr)
  for action, lhs in pairs(require('airlock.config').keymaps()) do
    if plug[action] and type(lhs) == 'string' then
      vim.keymap.set('n', lhs, plug[action], {
        buffer = bufnr,
        desc = 'Airlock: ' .. action:gsub('_', ' '),
      })
    end
  end
end

--- Called on `LspAttach` of an airlock client.
function M.on_attach(client, bufnr)
  M.set_keymaps(bufnr)
  if not require('airlock.config').options.diagnostics then
    vim.diagnostic.config(
      { virtual_text = false, signs = false, underline = false, virtual_lines = false },
      vim.lsp.diagnostic.get_namespace(client.id)
    )
  end
  proposals().render(bufnr)
end

--- Configures the client and (unless `enable = false`) enables it.
--- Options: see `:help airlock-config`.
function M.setup(opts)
  local config = require('airlock.config')
  config.set(opts)
  vim.lsp.config('airlock', require('airlock.lsp').config())
  if config.options.enable then
    vim.lsp.enable('airlock')
  end
  return M
end

--- Starts an agent turn. `opts.on_done(err, result)` is called when the turn ends.
function M.prompt(text, opts)
  opts = opts or {}
  if not text or not text:match('%S') then
    return M.prompt_buffer()
  end
  local bufnr = api.nvim_get_current_buf()
  local client = require('airlock.lsp').require_client(bufnr)
  if not client then
    return nil
  end
  local output = require('airlock.output')
  local cfg = require('airlock.config').options
  if cfg.output.open_on_prompt then
    output.open()
  end
  output.append_lines({ '', '> ' .. text, '' })
  local params = { text = text }
  if vim.lsp.buf_is_attached(bufnr, client.id) then
    params.uris = { vim.uri_from_bufnr(bufnr) }
  end
  local ok, id = client:request('airlock/prompt', params, function(err, result)
    if err then
      output.append_lines({ '[error] ' .. (err.message or vim.inspect(err)) })
      vim.notify('airlock: prompt failed: ' .. (err.message or ''), vim.log.levels.ERROR)
    elseif result and result.stopReason and result.stopReason ~= 'end_turn' then
      -- Only unusual ends are worth a line. (The answer may overtake the turn's last updates,
      -- so an "[end_turn]" line could land above the agent's final words.)
      output.append_lines({ string.format('[%s]', result.stopReason) })
    end
    if opts.on_done then
      opts.on_done(err, result)
    end
  end, bufnr)
  return ok and id or nil
end

--- Cancels the running agent turn.
function M.cancel(on_done)
  local client = require('airlock.lsp').require_client()
  if not client then
    return
  end
  client:request('airlock/cancel', vim.NIL, function(err, result)
    if err then
      vim.notify('airlock: cancel failed: ' .. (err.message or ''), vim.log.levels.ERROR)
    elseif result and not result.cancelled then
      vim.notify('airlock: ' .. (result.reason or 'nothing to cancel'), vim.log.levels.INFO)
    end
    if on_done then
      on_done(err, result)
    end
  end)
end

function M.next_hunk()
  return proposals().jump(1)
end

function M.prev_hunk()
  return proposals().jump(-1)
end

function M.accept_hunk(on_done)
  return proposals().accept_hunk(on_done)
end

function M.reject_hunk(reason, on_done)
  return proposals().reject_hunk(reason, on_done)
end

function M.accept_all(on_done)
  return proposals().accept_all(nil, on_done)
end

function M.reject_all(reason, on_done)
  return proposals().reject_all(nil, reason, on_done)
end

function M.diff()
  return proposals().diff()
end

--- All pending hunks of all files in the quickfix list (and opens it).
function M.list()
  return proposals().list()
end

function M.hunks(bufnr)
  return proposals().hunks(bufnr)
end

function M.log()
  return require('airlock.log').open()
end

function M.output()
  return require('airlock.output').open()
end

function M.prompt_buffer()
  return require('airlock.output').open_prompt()
end

function M.statusline()
  return require('airlock.status').statusline()
end

--- `:Airlock {subcommand} [args]`
M.subcommands = {
  prompt = function(args)
    M.prompt(args)
  end,
  cancel = function()
    M.cancel()
  end,
  next = function()
    M.next_hunk()
  end,
  prev = function()
    M.prev_hunk()
  end,
  accept = function()
    M.accept_hunk()
  end,
  reject = function(args)
    M.reject_hunk(args ~= '' and args or nil)
  end,
  ['accept-all'] = function()
    M.accept_all()
  end,
  ['reject-all'] = function(args)
    M.reject_all(args ~= '' and args or nil)
  end,
  diff = function()
    M.diff()
  end,
  list = function()
    M.list()
  end,
  log = function()
    M.log()
  end,
  output = function()
    M.output()
  end,
  status = function()
    vim.notify(M.statusline() ~= '' and M.statusline() or 'airlock: not running')
  end,
}

function M.command(opts)
  local sub, rest = (opts.args or ''):match('^%s*(%S*)%s*(.-)%s*$')
  local fn = M.subcommands[sub]
  if not fn then
    vim.notify(
      'airlock: unknown subcommand '
        .. vim.inspect(sub)
        .. '; one of: '
        .. table.concat(vim.tbl_keys(M.subcommands), ', '),
      vim.log.levels.ERROR
    )
    return
  end
  fn(rest)
end

function M.complete(arglead, cmdline)
  if cmdline:match('^%s*%S+%s+%S+%s') then
    return {}
  end
  local out = {}
  for name in pairs(M.subcommands) do
    if name:sub(1, #arglead) == arglead then
      table.insert(out, name)
    end
  end
  table.sort(out)
  return out
end

return M
