--- `:Airlock log`: the server's telemetry (`airlock/telemetry`) as a live buffer.
--- Guarantees: the last `log.max_events` events are kept in memory, so opening the log shows
--- what happened before it was opened; events the server dropped (editor too slow) are
--- reported with their count, never silently missing.
local M = {}

local api = vim.api
M.name = 'airlock://log'
M.bufnr = nil
--- Formatted lines, oldest first (bounded).
M.lines = {}
M.dropped = 0

local function fmt_time(ms)
  ms = tonumber(ms) or 0
  return os.date('%H:%M:%S', math.floor(ms / 1000)) .. string.format('.%03d', ms % 1000)
end

--- One event as one line: time, kind, subject, then decision/rule/duration/fields if present.
function M.format(e)
  local parts = { fmt_time(e.tsMs), string.format('%-18s', e.kind or '?'), e.subject or '' }
  if e.decision then
    table.insert(parts, 'decision=' .. tostring(e.decision))
  end
  if e.rule then
    table.insert(
      parts,
      'rule=' .. tostring(e.rule) .. (e.layer and ('@' .. tostring(e.layer)) or '')
    )
  end
  if e.durationMs then
    table.insert(parts, string.format('%sms', tostring(e.durationMs)))
  end
  if type(e.fields) == 'table' and next(e.fields) then
    local ok, json = pcall(vim.json.encode, e.fields)
    if ok then
      table.insert(parts, json)
    end
  end
  return (table.concat(parts, '  '):gsub('\n', '\\n'))
end

local function buffer()
  if M.bufnr and api.nvim_buf_is_valid(M.bufnr) then
    return M.bufnr
  end
  return nil
end

local function append(lines)
  local b = buffer()
  if not b or #lines == 0 then
    return
  end
  vim.bo[b].modifiable = true
  local empty = api.nvim_buf_line_count(b) == 1 and api.nvim_buf_get_lines(b, 0, 1, false)[1] == ''
  api.nvim_buf_set_lines(b, empty and 0 or -1, -1, false, lines)
  vim.bo[b].modifiable = false
  local last = api.nvim_buf_line_count(b)
  for _, w in ipairs(vim.fn.win_findbuf(b)) do
    api.nvim_win_set_cursor(w, { last, 0 })
  end
end

function M.on_batch(params, _client_id)
  params = params or {}
  local new = {}
  local dropped = tonumber(params.dropped) or 0
  if dropped > 0 then
    M.dropped = M.dropped + dropped
    table.insert(
      new,
      string.format('-- %d events dropped by the server (the editor was too slow)', dropped)
    )
  end
  for _, e in ipairs(params.events or {}) do
    table.insert(new, M.format(e))
  end
  local max = require('airlock.config').options.log.max_events
  vim.list_extend(M.lines, new)
  if #M.lines > max then
    M.lines = vim.list_slice(M.lines, #M.lines - max + 1)
  end
  append(new)
  if #new > 0 then
    api.nvim_exec_autocmds(
      'User',
      { pattern = 'AirlockTelemetry', modeline = false, data = params }
    )
  end
end

--- Opens (or focuses) the log window.
function M.open()
  local b = buffer()
  if not b then
    b = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(b, M.name)
    vim.bo[b].filetype = 'airlocklog'
    vim.bo[b].bufhidden = 'hide'
    api.nvim_buf_set_lines(b, 0, -1, false, M.lines)
    vim.bo[b].modifiable = false
    M.bufnr = b
  end
  local wins = vim.fn.win_findbuf(b)
  if #wins > 0 then
    api.nvim_set_current_win(wins[1])
  else
    vim.cmd(require('airlock.config').options.log.split)
    api.nvim_win_set_buf(0, b)
  end
  api.nvim_win_set_cursor(0, { api.nvim_buf_line_count(b), 0 })
  return b
end

return M
