--- The agent's streamed output (`airlock/agentUpdate`) in one scratch buffer, and the prompt
--- buffer that sends `airlock/prompt`.
--- Guarantees: message chunks are appended as they arrive, so the text in the buffer is the
--- concatenation of the agent's chunks; every window showing the buffer follows its end.
local M = {}

local api = vim.api
M.name = 'airlock://output'
M.bufnr = nil
--- What the last line holds: 'message', 'thought' or 'other'; a chunk of another kind starts a
--- new line.
local last_kind = 'other'
--- toolCallId -> title, since updates usually carry only the id.
local tool_titles = {}

function M.buffer()
  if M.bufnr and api.nvim_buf_is_valid(M.bufnr) then
    return M.bufnr
  end
  local b = api.nvim_create_buf(false, true)
  api.nvim_buf_set_name(b, M.name)
  vim.bo[b].filetype = 'airlock'
  vim.bo[b].bufhidden = 'hide'
  vim.bo[b].modifiable = false
  M.bufnr = b
  last_kind = 'other'
  return b
end

local function with_modifiable(b, fn)
  vim.bo[b].modifiable = true
  local ok, err = pcall(fn)
  vim.bo[b].modifiable = false
  if not ok then
    error(err)
  end
end

local function follow(b)
  local last = api.nvim_buf_line_count(b)
  for _, w in ipairs(vim.fn.win_findbuf(b)) do
    api.nvim_win_set_cursor(w, { last, 0 })
  end
end

local function is_empty(b)
  return api.nvim_buf_line_count(b) == 1 and api.nvim_buf_get_lines(b, 0, 1, false)[1] == ''
end

--- Appends `text` as whole new lines.
function M.append_lines(lines)
  local b = M.buffer()
  with_modifiable(b, function()
    if is_empty(b) then
      api.nvim_buf_set_lines(b, 0, -1, false, lines)
    else
      api.nvim_buf_set_lines(b, -1, -1, false, lines)
    end
  end)
  last_kind = 'other'
  follow(b)
end

--- Appends a streamed chunk: continues the last line while the kind stays the same.
function M.append_chunk(kind, text, prefix)
  local b = M.buffer()
  local pieces = vim.split(text, '\n', { plain = true })
  with_modifiable(b, function()
    if last_kind ~= kind then
      local first = (prefix or '') .. pieces[1]
      if is_empty(b) then
        api.nvim_buf_set_lines(b, 0, -1, false, { first })
      else
        api.nvim_buf_set_lines(b, -1, -1, false, { first })
      end
    else
      local n = api.nvim_buf_line_count(b)
      local line = api.nvim_buf_get_lines(b, n - 1, n, false)[1] or ''
      api.nvim_buf_set_lines(b, n - 1, n, false, { line .. pieces[1] })
    end
    if #pieces > 1 then
      api.nvim_buf_set_lines(b, -1, -1, false, vim.list_slice(pieces, 2))
    end
  end)
  last_kind = kind
  follow(b)
end

--- The buffer's text (for tests and `:Airlock output`).
function M.text()
  return table.concat(api.nvim_buf_get_lines(M.buffer(), 0, -1, false), '\n')
end

local function content_text(content)
  if type(content) ~= 'table' then
    return nil
  end
  if content.type == 'text' then
    return content.text
  end
  return nil
end

--- `airlock/agentUpdate`: one ACP `SessionUpdate`.
function M.on_update(params, _client_id)
  local u = params and params.update
  if type(u) ~= 'table' then
    return
  end
  local kind = u.sessionUpdate
  if kind == 'agent_message_chunk' then
    local t = content_text(u.content)
    if t then
      M.append_chunk('message', t)
    end
  elseif kind == 'agent_thought_chunk' then
    local t = content_text(u.content)
    if t then
      M.append_chunk('thought', t, '(thinking) ')
    end
  elseif kind == 'tool_call' then
    if u.toolCallId and u.title then
      tool_titles[u.toolCallId] = u.title
    end
    M.append_lines({
      string.format(
        '[tool] %s (%s, %s)',
        u.title or u.toolCallId or '?',
        u.kind or 'other',
        u.status or 'pending'
      ),
    })
  elseif kind == 'tool_call_update' then
    if u.toolCallId and u.title then
      tool_titles[u.toolCallId] = u.title
    end
    if u.status or u.title then
      local title = u.title or tool_titles[u.toolCallId] or u.toolCallId or '?'
      M.append_lines({ string.format('[tool] %s: %s', title, u.status or 'updated') })
    end
  elseif kind == 'plan' then
    local lines = { '[plan]' }
    for _, e in ipairs(u.entries or {}) do
      local mark = ({ completed = 'x', in_progress = '~' })[e.status] or ' '
      table.insert(lines, string.format('  [%s] %s', mark, e.content or ''))
    end
    M.append_lines(lines)
  end
  api.nvim_exec_autocmds('User', { pattern = 'AirlockAgentUpdate', modeline = false, data = u })
end

--- Shows the output buffer in a split (reuses a window already showing it).
function M.open()
  local b = M.buffer()
  local wins = vim.fn.win_findbuf(b)
  if #wins > 0 then
    return wins[1]
  end
  local cur = api.nvim_get_current_win()
  vim.cmd(require('airlock.config').options.output.split)
  local w = api.nvim_get_current_win()
  api.nvim_win_set_buf(w, b)
  vim.wo[w].wrap = true
  vim.wo[w].number = false
  follow(b)
  api.nvim_set_current_win(cur)
  return w
end

--- A prompt buffer (`buftype=prompt`) under the output window: <CR> sends the line.
function M.open_prompt()
  M.open()
  local name = 'airlock://prompt'
  local b = vim.fn.bufnr(name)
  if b < 1 or not api.nvim_buf_is_valid(b) then
    b = api.nvim_create_buf(false, true)
    api.nvim_buf_set_name(b, name)
    vim.bo[b].buftype = 'prompt'
    vim.bo[b].bufhidden = 'hide'
    vim.fn.prompt_setprompt(b, 'airlock> ')
    vim.fn.prompt_setcallback(b, function(text)
      if text and text:match('%S') then
        require('airlock').prompt(text)
      end
    end)
  end
  local wins = vim.fn.win_findbuf(b)
  if #wins > 0 then
    api.nvim_set_current_win(wins[1])
  else
    local out_win = vim.fn.win_findbuf(M.buffer())[1]
    if out_win then
      api.nvim_set_current_win(out_win)
    end
    vim.cmd('belowright 3split')
    api.nvim_win_set_buf(0, b)
  end
  vim.cmd('startinsert')
  return b
end

return M
