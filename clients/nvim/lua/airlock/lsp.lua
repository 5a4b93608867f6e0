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

--- Where the server runs for `bufnr`: the nearest directory with a root marker, else the
--- current directory if the file is inside it. Buffers that are not files (no name, special
--- buftype, `scheme://` names) get no server: without a workspace the agent has no scope.
function M.root_dir(bufnr, on_dir)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == '' or vim.bo[bufnr].buftype ~= '' or name:match('^%a[%w+.-]*://') then
    return
  end
  local root = vim.fs.root(bufnr, require('airlock.config').options.root_markers)
  if root then
    return on_dir(root)
  end
  local cwd = vim.uv.cwd()
  local path = vim.fs.normalize(vim.fn.fnamemodify(name, ':p'))
  if cwd and vim.startswith(path, vim.fs.normalize(cwd) .. '/') then
    on_dir(cwd)
  end
end

--- The `vim.lsp.Config` for the server, from the current options.
function M.config()
  local o = require('airlock.config').options
  return {
    cmd = o.cmd,
    root_dir = M.root_dir,
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
