--- Inline proposals: the agent's pending hunks drawn in the buffer with extmarks, navigation
--- between them, and decisions sent back with `airlock/resolve`.
---
--- Guarantees:
--- - The buffer is never modified by this module. Until a hunk is accepted the buffer keeps the
---   user's text (the server's truth): the lines a hunk would replace are highlighted in place
---   (`AirlockRemoved`), the lines it would add are shown as virtual lines (`AirlockAdded`).
---   Accepting lets the server send `workspace/applyEdit`, which Neovim applies.
--- - Hunk positions come from `proposal.view` (where each open hunk sits in the buffer now);
---   the extmarks then follow the user's edits until the server sends a newer view.
--- - What is drawn is always exactly the open hunks of the latest notification of every pending
---   proposal for the buffer: each notification redraws the buffer from scratch.
local M = {}

local api = vim.api
M.ns = api.nvim_create_namespace('airlock.proposals')

--- id -> {client_id, uri, proposal}
M.by_id = {}

local function split_lines(text)
  if text == nil or text == '' then
    return {}
  end
  local lines = vim.split(text, '\n', { plain = true })
  if lines[#lines] == '' then
    table.remove(lines)
  end
  for i, l in ipairs(lines) do
    lines[i] = l:gsub('\r$', '')
  end
  return lines
end
M.split_lines = split_lines

--- A file's identity: its real path, so the server's canonical paths and the names Neovim
--- gives buffers compare equal (URIs are never compared as strings: encodings differ).
local function file_key(path)
  if not path or path == '' then
    return nil
  end
  path = vim.fs.normalize(vim.fn.fnamemodify(path, ':p'))
  local real = vim.uv.fs_realpath(path)
  if real then
    return real
  end
  -- A file that does not exist yet (a proposed new file): resolve its directory.
  local dir = vim.uv.fs_realpath(vim.fs.dirname(path))
  return dir and (dir .. '/' .. vim.fs.basename(path)) or path
end

local function key_of_uri(uri)
  local ok, fname = pcall(vim.uri_to_fname, uri)
  return ok and file_key(fname) or uri
end

local function key_of_buf(bufnr)
  local name = api.nvim_buf_get_name(bufnr)
  if name:match('^%a[%w+.-]*://') then
    return name
  end
  return file_key(name)
end

--- The loaded buffer of the file `key`, or nil (never creates one).
local function buf_for_key(key)
  for _, b in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(b) and vim.bo[b].buftype == '' and key_of_buf(b) == key then
      return b
    end
  end
  return nil
end

--- Pending proposals for `bufnr`, oldest first.
function M.for_buffer(bufnr)
  return M.for_key(key_of_buf(bufnr))
end

--- Pending proposals for the file `key`, oldest first.
function M.for_key(key)
  local out = {}
  for _, entry in pairs(M.by_id) do
    if entry.key == key then
      table.insert(out, entry)
    end
  end
  table.sort(out, function(a, b)
    return (a.proposal.createdAt or '') < (b.proposal.createdAt or '')
  end)
  return out
end

--- Open hunks of the proposals for the file `key` as the latest views place them:
--- `{proposal, client_id, hunk, status, start_line, end_line}` (0-based, end exclusive).
local function placed_for_key(key)
  local out = {}
  for _, entry in ipairs(M.for_key(key)) do
    local p = entry.proposal
    local hunks = {}
    for _, h in ipairs(p.hunks or {}) do
      hunks[h.id] = h
    end
    if type(p.view) == 'table' then
      for _, v in ipairs(p.view) do
        local h = hunks[v.id]
        if h and (v.status == 'pending' or v.status == 'conflicted') then
          table.insert(out, {
            proposal = p.id,
            client_id = entry.client_id,
            hunk = h,
            status = v.status,
            total = #(p.hunks or {}),
            start_line = v.startLine,
            end_line = v.endLine,
          })
        end
      end
    else
      -- No view (the server could not read the file): the base positions are the best guess.
      for _, h in ipairs(p.hunks or {}) do
        if h.status == 'pending' or h.status == 'conflicted' then
          table.insert(out, {
            proposal = p.id,
            client_id = entry.client_id,
            hunk = h,
            status = h.status,
            total = #(p.hunks or {}),
            start_line = h.oldStart,
            end_line = h.oldStart + h.oldCount,
          })
        end
      end
    end
  end
  table.sort(out, function(a, b)
    return a.start_line < b.start_line
  end)
  return out
end

--- Drawn hunks per buffer: bufnr -> list of {mark, proposal, client_id, hunk, status}.
M.drawn = {}

local function set_mark(bufnr, row, col, opts)
  local ok, id = pcall(api.nvim_buf_set_extmark, bufnr, M.ns, row, col, opts)
  if ok then
    return id
  end
  return nil
end

--- Redraws every open hunk of `bufnr`.
function M.render(bufnr)
  if not api.nvim_buf_is_loaded(bufnr) then
    return
  end
  -- Hunks already drawn keep where their marks are now: the marks have followed every edit,
  -- including the accepted hunks Neovim just applied, while a view may have been computed
  -- before the server saw those edits. Not when the user's edit changed the hunk's own lines
  -- (the mark's extent no longer matches): then the server's view is the better guess.
  local prev = {}
  for _, h in ipairs(M.hunks(bufnr)) do
    prev[h.proposal .. '#' .. h.hunk.id] = h
  end
  api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  local drawn = {}
  local line_count = api.nvim_buf_line_count(bufnr)
  local hunks = placed_for_key(key_of_buf(bufnr))
  for _, ph in ipairs(hunks) do
    local was = prev[ph.proposal .. '#' .. ph.hunk.id]
    local view_lines = ph.end_line - ph.start_line
    if was and was.insertion and view_lines == 0 then
      local at = was.after and was.row + 1 or was.row
      ph.start_line, ph.end_line = at, at
    elseif was and not was.insertion and was.end_row - was.row + 1 == view_lines then
      ph.start_line, ph.end_line = was.row, was.end_row + 1
    end
    local s, e = ph.start_line, ph.end_line
    local conflicted = ph.status == 'conflicted'
    local removed_hl = conflicted and 'AirlockConflict' or 'AirlockRemoved'
    local added = {}
    for _, l in ipairs(split_lines(ph.hunk.newText)) do
      table.insert(added, { { l, conflicted and 'AirlockConflict' or 'AirlockAdded' } })
    end
    local removed_count = math.max(e - s, 0)
    -- Numbered as the server and the agent number them (hunk 3 stays hunk 3 after 1 is decided).
    local hint = string.format(
      ' airlock %s%d/%d  +%d -%d',
      conflicted and 'CONFLICT ' or 'hunk ',
      ph.hunk.id,
      ph.total,
      #added,
      removed_count
    )
    local mark
    local after_anchor = false
    if e > s and s < line_count then
      local last = math.min(e, line_count) - 1
      local last_len = #(api.nvim_buf_get_lines(bufnr, last, last + 1, false)[1] or '')
      mark = set_mark(bufnr, s, 0, {
        end_row = last,
        end_col = last_len,
        hl_group = removed_hl,
        hl_eol = true,
        sign_text = conflicted and '!' or '-',
        sign_hl_group = removed_hl,
        virt_text = { { hint, 'AirlockHint' } },
        virt_text_pos = 'eol',
        priority = 200,
      })
      if #added > 0 then
        set_mark(bufnr, last, 0, { virt_lines = added, priority = 200 })
      end
    else
      -- A pure insertion before line s (or after the last line).
      local row, above = s, true
      if s >= line_count then
        row, above = math.max(line_count - 1, 0), false
        if line_count == 1 and api.nvim_buf_get_lines(bufnr, 0, 1, false)[1] == '' then
          above = true
        end
        after_anchor = not above
      end
      mark = set_mark(bufnr, row, 0, {
        virt_lines = added,
        virt_lines_above = above,
        sign_text = conflicted and '!' or '+',
        sign_hl_group = conflicted and 'AirlockConflict' or 'AirlockAdded',
        virt_text = { { hint, 'AirlockHint' } },
        virt_text_pos = 'eol',
        priority = 200,
      })
    end
    if mark then
      table.insert(drawn, {
        mark = mark,
        proposal = ph.proposal,
        client_id = ph.client_id,
        hunk = ph.hunk,
        status = ph.status,
        total = ph.total,
        insertion = not (e > s and s < line_count),
        after = after_anchor,
      })
    end
  end
  M.drawn[bufnr] = drawn
end

--- Hunks of `bufnr` with their current rows (they follow edits): sorted by start row.
--- Each: `{proposal, client_id, hunk, status, row, end_row, insertion}`.
function M.hunks(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local out = {}
  for _, d in ipairs(M.drawn[bufnr] or {}) do
    local pos = api.nvim_buf_get_extmark_by_id(bufnr, M.ns, d.mark, { details = true })
    if pos[1] then
      local details = pos[3] or {}
      table.insert(out, {
        proposal = d.proposal,
        client_id = d.client_id,
        hunk = d.hunk,
        status = d.status,
        total = d.total,
        insertion = d.insertion,
        after = d.after,
        row = pos[1],
        end_row = details.end_row or pos[1],
      })
    end
  end
  table.sort(out, function(a, b)
    return a.row < b.row
  end)
  return out
end

--- The hunk whose lines contain the cursor (an insertion: its anchor line).
function M.hunk_at_cursor(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local row = api.nvim_win_get_cursor(0)[1] - 1
  for _, h in ipairs(M.hunks(bufnr)) do
    if row >= h.row and row <= h.end_row then
      return h
    end
  end
  return nil
end

--- Moves the cursor to the next (`dir` = 1) or previous (-1) hunk.
function M.jump(dir)
  local bufnr = api.nvim_get_current_buf()
  local hunks = M.hunks(bufnr)
  if #hunks == 0 then
    vim.notify('airlock: no pending hunks in this buffer', vim.log.levels.INFO)
    return false
  end
  local row = api.nvim_win_get_cursor(0)[1] - 1
  local target
  if dir > 0 then
    for _, h in ipairs(hunks) do
      if h.row > row then
        target = h
        break
      end
    end
    if not target and require('airlock.config').options.wrap then
      target = hunks[1]
    end
  else
    for i = #hunks, 1, -1 do
      if hunks[i].row < row then
        target = hunks[i]
        break
      end
    end
    if not target and require('airlock.config').options.wrap then
      target = hunks[#hunks]
    end
  end
  if not target then
    return false
  end
  vim.cmd("normal! m'")
  api.nvim_win_set_cursor(0, { target.row + 1, 0 })
  return true
end

--- Sends `airlock/resolve`. `on_done(err, outcome)` is called after the server answered
--- (by then any `workspace/applyEdit` has been applied).
function M.resolve(client_id, params, on_done)
  local client = vim.lsp.get_client_by_id(client_id)
  if not client then
    vim.notify('airlock: the server that made this proposal is gone', vim.log.levels.ERROR)
    return
  end
  client:request('airlock/resolve', params, function(err, result)
    if err then
      vim.notify('airlock: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif result and result.summary then
      vim.notify('airlock: ' .. result.summary, vim.log.levels.INFO)
    end
    if on_done then
      on_done(err, result)
    end
  end)
end

local function no_hunk()
  vim.notify('airlock: no pending hunk under the cursor', vim.log.levels.WARN)
end

--- Accepts the hunk under the cursor (in an `:Airlock diff` buffer: the edited text).
function M.accept_hunk(on_done)
  if vim.b.airlock_source then
    return M.accept_edited(nil, on_done)
  end
  local h = M.hunk_at_cursor()
  if not h then
    return no_hunk()
  end
  M.resolve(
    h.client_id,
    { proposal = h.proposal, hunks = { h.hunk.id }, decision = 'accept' },
    on_done
  )
end

--- Asks for a reason (`vim.ui.input`) unless one is given; nil when the user cancelled.
local function with_reason(reason, prompt, then_)
  if reason ~= nil then
    return then_(reason ~= '' and reason or nil)
  end
  vim.ui.input({ prompt = prompt }, function(input)
    if input == nil then
      return -- cancelled: nothing is decided
    end
    then_(input ~= '' and input or nil)
  end)
end

--- Rejects the hunk under the cursor; the reason (asked with `vim.ui.input` when not given)
--- is passed on to the agent.
function M.reject_hunk(reason, on_done)
  local h = M.hunk_at_cursor()
  if not h then
    return no_hunk()
  end
  with_reason(reason, 'Reject hunk, reason for the agent (optional): ', function(r)
    M.resolve(
      h.client_id,
      { proposal = h.proposal, hunks = { h.hunk.id }, decision = 'reject', reason = r },
      on_done
    )
  end)
end

--- Decides every open hunk of every proposal in the buffer, one proposal after the other.
local function decide_all(bufnr, decision, reason, on_done)
  local entries = M.for_buffer(bufnr)
  if #entries == 0 then
    vim.notify('airlock: no pending proposals for this buffer', vim.log.levels.INFO)
    return
  end
  local i = 0
  local function next_one(err)
    i = i + 1
    if err or i > #entries then
      if on_done then
        on_done(err)
      end
      return
    end
    local e = entries[i]
    M.resolve(
      e.client_id,
      { proposal = e.proposal.id, decision = decision, reason = reason },
      function(e2)
        next_one(e2)
      end
    )
  end
  next_one(nil)
end

function M.accept_all(bufnr, on_done)
  decide_all(bufnr or api.nvim_get_current_buf(), 'accept', nil, on_done)
end

function M.reject_all(bufnr, reason, on_done)
  bufnr = bufnr or api.nvim_get_current_buf()
  with_reason(reason, 'Reject all, reason for the agent (optional): ', function(r)
    decide_all(bufnr, 'reject', r, on_done)
  end)
end

--- The buffer's text with every open hunk applied at its current position.
function M.proposed_lines(bufnr)
  local lines = api.nvim_buf_get_lines(bufnr, 0, -1, false)
  if #lines == 1 and lines[1] == '' then
    lines = {} -- an empty file: Neovim shows one empty line that is not in the text
  end
  local hunks = M.hunks(bufnr)
  table.sort(hunks, function(a, b)
    return a.row > b.row
  end)
  for _, h in ipairs(hunks) do
    if h.status == 'pending' then
      local new = split_lines(h.hunk.newText)
      local first, count
      if h.insertion then
        first, count = h.after and h.row + 2 or h.row + 1, 0
      else
        first, count = h.row + 1, h.end_row - h.row + 1
      end
      for _ = 1, count do
        table.remove(lines, first)
      end
      for k = #new, 1, -1 do
        table.insert(lines, first, new[k])
      end
    end
  end
  return lines
end

--- Opens a vertical diff of the buffer against its proposed text.
function M.diff(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if #M.hunks(bufnr) == 0 then
    vim.notify('airlock: no pending hunks in this buffer', vim.log.levels.INFO)
    return nil
  end
  local source_win = api.nvim_get_current_win()
  local ft = vim.bo[bufnr].filetype
  local name = 'airlock://proposed/' .. vim.fn.fnamemodify(api.nvim_buf_get_name(bufnr), ':.')
  local existing = vim.fn.bufnr(name)
  if existing > 0 then
    api.nvim_buf_delete(existing, { force = true })
  end
  vim.cmd('diffthis')
  vim.cmd('vertical rightbelow new')
  local pbuf = api.nvim_get_current_buf()
  vim.bo[pbuf].buftype = 'nofile'
  vim.bo[pbuf].bufhidden = 'wipe'
  vim.bo[pbuf].swapfile = false
  api.nvim_buf_set_name(pbuf, name)
  api.nvim_buf_set_lines(pbuf, 0, -1, false, M.proposed_lines(bufnr))
  vim.bo[pbuf].modified = false
  if ft ~= '' then
    vim.bo[pbuf].filetype = ft
  end
  vim.b[pbuf].airlock_source = bufnr
  local accept_key = require('airlock.config').keymaps().accept_hunk
  if accept_key then
    vim.keymap.set('n', accept_key, function()
      M.accept_edited(pbuf)
    end, { buffer = pbuf, desc = 'Airlock: accept the (edited) proposed text' })
  end
  vim.b[pbuf].airlock_proposals = vim.tbl_map(function(e)
    return e.proposal.id
  end, M.for_buffer(bufnr))
  vim.cmd('diffthis')
  api.nvim_create_autocmd('BufWipeout', {
    buffer = pbuf,
    once = true,
    callback = function()
      if api.nvim_win_is_valid(source_win) then
        api.nvim_win_call(source_win, function()
          vim.cmd('diffoff')
        end)
      end
    end,
  })
  return pbuf
end

--- In the proposed buffer of `:Airlock diff`: accept its whole text, with the user's edits, as
--- the outcome of the file's proposal (`editedText`; the agent is told what was edited).
--- Only for a file with a single pending proposal: with stacked proposals the edit could not
--- be attributed to one of them.
function M.accept_edited(pbuf, on_done)
  pbuf = pbuf or api.nvim_get_current_buf()
  local source = vim.b[pbuf].airlock_source
  if not source or not api.nvim_buf_is_valid(source) then
    vim.notify('airlock: not an :Airlock diff buffer', vim.log.levels.ERROR)
    return
  end
  local entries = M.for_buffer(source)
  if #entries ~= 1 then
    vim.notify(
      string.format(
        'airlock: %d proposals are pending for this file; accept or reject them in the buffer',
        #entries
      ),
      vim.log.levels.ERROR
    )
    return
  end
  local text = table.concat(api.nvim_buf_get_lines(pbuf, 0, -1, false), '\n') .. '\n'
  local e = entries[1]
  M.resolve(
    e.client_id,
    { proposal = e.proposal.id, decision = 'accept', editedText = text },
    function(err, result)
      if not err and api.nvim_buf_is_valid(pbuf) then
        api.nvim_buf_delete(pbuf, { force = true })
      end
      if on_done then
        on_done(err, result)
      end
    end
  )
end

--- `path` relative to the client's workspace root when inside it, else shortened with `~`.
local function relative(client_id, path)
  local client = vim.lsp.get_client_by_id(client_id)
  local root = client and client.root_dir and file_key(client.root_dir)
  local key = file_key(path) or path
  if root and vim.startswith(key, root .. '/') then
    return key:sub(#root + 2)
  end
  return vim.fn.fnamemodify(path, ':~')
end

--- `airlock/proposal`: remember the latest state and redraw the file's buffer if loaded.
function M.on_notification(params, client_id)
  local p = params and params.proposal
  if type(p) ~= 'table' or not p.id then
    return
  end
  local old = M.by_id[p.id]
  if params.event == 'resolved' or (p.state and p.state ~= 'pending') then
    M.by_id[p.id] = nil
  else
    M.by_id[p.id] =
      { client_id = client_id, uri = params.uri, key = key_of_uri(params.uri), proposal = p }
  end
  if p.supersedes and M.by_id[p.supersedes] then
    M.by_id[p.supersedes] = nil
  end
  local bufnr = buf_for_key(key_of_uri(params.uri))
  if bufnr then
    M.render(bufnr)
  end
  if old and old.key ~= key_of_uri(params.uri) then
    local ob = buf_for_key(old.key)
    if ob then
      M.render(ob)
    end
  end
  if params.event == 'created' and require('airlock.config').options.notify then
    local open = 0
    for _, h in ipairs(p.hunks or {}) do
      if h.status == 'pending' then
        open = open + 1
      end
    end
    vim.notify(
      string.format(
        'airlock: the agent proposes %s%s (%d hunk%s)%s',
        p.isNewFile and 'a new file ' or 'changes to ',
        relative(client_id, vim.uri_to_fname(params.uri)),
        open,
        open == 1 and '' or 's',
        bufnr and '' or '; :Airlock list shows them'
      ),
      vim.log.levels.INFO
    )
  end
  api.nvim_exec_autocmds('User', {
    pattern = 'AirlockProposal',
    modeline = false,
    data = { event = params.event, uri = params.uri, proposal = p.id },
  })
end

--- Every open hunk of every pending proposal, in all files, as quickfix items.
function M.qf_items()
  local items = {}
  local keys = {}
  for _, e in pairs(M.by_id) do
    keys[e.key] = true
  end
  for key in pairs(keys) do
    local fname = key
    local bufnr = buf_for_key(key)
    local list
    if bufnr and M.drawn[bufnr] then
      list = vim.tbl_map(function(h)
        return {
          hunk = h.hunk,
          status = h.status,
          total = h.total,
          start_line = h.row,
          proposal = h.proposal,
        }
      end, M.hunks(bufnr))
    else
      list = placed_for_key(key)
    end
    for _, h in ipairs(list) do
      local added = #split_lines(h.hunk.newText)
      local removed = #split_lines(h.hunk.oldText)
      table.insert(items, {
        filename = fname,
        lnum = h.start_line + 1,
        col = 1,
        type = h.status == 'conflicted' and 'W' or 'I',
        text = string.format(
          'airlock %s%d/%d  +%d -%d  (%s)',
          h.status == 'conflicted' and 'CONFLICT ' or 'hunk ',
          h.hunk.id,
          h.total,
          added,
          removed,
          h.proposal
        ),
      })
    end
  end
  table.sort(items, function(a, b)
    if a.filename ~= b.filename then
      return a.filename < b.filename
    end
    return a.lnum < b.lnum
  end)
  return items
end

--- `:Airlock list`: all pending hunks in the quickfix list.
function M.list()
  local items = M.qf_items()
  vim.fn.setqflist({}, ' ', { title = 'Airlock: pending hunks', items = items })
  if #items == 0 then
    vim.notify('airlock: no pending hunks', vim.log.levels.INFO)
  else
    vim.cmd('botright copen')
  end
  return items
end

--- Forgets the proposals of a client that stopped, and clears their marks.
function M.forget_client(client_id)
  local keys = {}
  for id, e in pairs(M.by_id) do
    if e.client_id == client_id then
      keys[e.key] = true
      M.by_id[id] = nil
    end
  end
  for key in pairs(keys) do
    local b = buf_for_key(key)
    if b then
      M.render(b)
    end
  end
end

return M
