--- The LSP client configuration for `airlock serve` and helpers to find the running client.
--- Guarantees: the configuration always advertises `experimental.airlock = {version = 1}` and
--- routes every `airlock/*` message to the plugin's modules; it never depends on `setup()`
--- having been called, so `vim.lsp.enable('airlock')` alone works.
local M = {}

M.name = 'airlock'
M.capabilities = { experimental = { airlock = { version = 1 } } }

local function handlers()
  return {
    ['airlock/proposal'] = function(_, params, ctx)
      require('airlock.proposals').on_notification(params, ctx.client_id)
    end,
    ['airlock/agentUpdate'] = function(_, params, ctx)
      require('airlock.output').on_update(params, ctx.client_id)
    end,
    ['airlock/telemetry'] = function(_, params, ctx)
      require('airlock.log').on_batch(params, ctx.client_id)
    end,
    ['airlock/status'] = function(_, params, ctx)
      require('airlock.status').on_status(params, ctx.client_id)
    end,
    ['airlock/approval'] = function(err, params, ctx)
      return require('airlock.approval').handle(err, params, ctx)
    end,
  }
end

--- The `vim.lsp.Config` for the server, from the current options.
function M.config()
  local o = require('airlock.config').options
  return {
    cmd = o.cmd,
    root_markers = o.root_markers,
    filetypes = o.filetypes,
    init_options = o.init_options,
    capabilities = vim.deepcopy(M.capabilities),
    handlers = handlers(),
  }
end

--- The airlock client for `bufnr` (default: current), else any running airlock client.
--- @return vim.lsp.Client?
function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local attached = vim.lsp.get_clients({ name = M.name, bufnr = bufnr })
  if attached[1] then
    return attached[1]
  end
  return vim.lsp.get_clients({ name = M.name })[1]
end

--- Like `client()`, but tells the user how to start the server when none runs.
function M.require_client(bufnr)
  local client = M.client(bufnr)
  if not client then
    vim.notify(
      "airlock: the server is not running (call require('airlock').setup{} or "
        .. "vim.lsp.enable('airlock'), then open a file in a workspace)",
      vim.log.levels.ERROR
    )
  end
  return client
end

return M
