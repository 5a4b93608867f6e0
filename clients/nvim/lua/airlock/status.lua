--- `airlock/status` per client, and the statusline component built from it.
local M = {}

--- client_id -> {agent, pendingProposals, pendingHunks}
M.by_client = {}

function M.on_status(params, client_id)
  M.by_client[client_id] = params
  vim.schedule(function()
    pcall(vim.cmd.redrawstatus)
  end)
  vim.api.nvim_exec_autocmds('User', { pattern = 'AirlockStatus', modeline = false, data = params })
end

function M.forget_client(client_id)
  M.by_client[client_id] = nil
end

--- The status for the current buffer's client (else any client), or nil.
function M.current()
  local client = require('airlock.lsp').client()
  if client and M.by_client[client.id] then
    return M.by_client[client.id]
  end
  local _, s = next(M.by_client)
  return s
end

local icons = {
  stopped = 'stopped',
  starting = 'starting',
  idle = 'idle',
  working = 'working',
  failed = 'FAILED',
}

--- e.g. `airlock: working · 3 hunks`; '' when no airlock server runs.
function M.statusline()
  local s = M.current()
  if not s then
    if require('airlock.lsp').client() then
      return 'airlock'
    end
    return ''
  end
  local text = 'airlock: ' .. (icons[s.agent] or tostring(s.agent))
  local hunks = tonumber(s.pendingHunks) or 0
  if hunks > 0 then
    text = text .. string.format(' · %d hunk%s', hunks, hunks == 1 and '' or 's')
  end
  return text
end

return M
