-- The plugin end to end: a prompt produces inline hunks at the right lines, ]h/[h move
-- between them, accept applies a hunk to the buffer, reject (reason from vim.ui.input) clears
-- it and the agent is told on its next turn, :Airlock diff shows the proposed text,
-- accept-all finishes, statusline and :Airlock log follow.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

local BASE = 'fn one() {\n    1\n}\n\nfn two() {\n    2\n}\n\nfn three() {\n    3\n}\n'
local AGENT = 'fn one() {\n    100\n}\n\nfn two() {\n    200\n}\n\nfn three() {\n    300\n}\n'

H.run(function()
  vim.fn.mkdir(H.ws .. '/.git', 'p')
  local path = H.write('src/lib.rs', BASE)
  local script = H.script(string.format(
    [==[
[[turn]]
match = "keep three"
[[turn.step]]
message = "told: keep three"

[[turn]]
[[turn.step]]
message = "working on it"
[[turn.step]]
write = "src/lib.rs"
content = %s

[[turn]]
[[turn.step]]
message = "nothing to report"
]==],
    H.toml_str(AGENT)
  ))

  H.load_plugin()
  local airlock = require('airlock')
  airlock.setup({
    cmd = { H.bin, 'serve' },
    keymaps = true,
    init_options = { agent = { script = script } },
  })
  vim.cmd.edit(path)
  local buf = vim.api.nvim_get_current_buf()
  local client = H.wait_attached(buf)
  H.eq({ version = 1 }, client.config.capabilities.experimental.airlock, 'advertised capability')
  H.truthy(client.server_capabilities.experimental.airlock, 'server offers experimental.airlock')
  H.truthy(vim.fn.maparg(']h', 'n', false, true).buffer == 1, ']h mapped buffer-locally')
  -- The per-hunk diagnostics stay listed but are not drawn over the inline view.
  local dns = vim.lsp.diagnostic.get_namespace(client.id)
  H.eq(false, vim.diagnostic.config(nil, dns).virtual_text, 'airlock diagnostics not drawn')

  -- Prompt: streamed output in a split, then three hunks drawn at the changed lines.
  vim.cmd('Airlock prompt fix the numbers')
  H.wait(function()
    return #airlock.hunks(buf) == 3
  end, 'three hunks')
  local rows = vim.tbl_map(function(h)
    return { h.row, h.end_row }
  end, airlock.hunks(buf))
  H.eq({ { 1, 1 }, { 5, 5 }, { 9, 9 } }, rows, 'hunk rows (0-based start, end)')
  H.eq(BASE, H.buf_text(buf), 'the buffer keeps the user text until accept')
  H.wait(function()
    return #vim.diagnostic.get(buf, { namespace = dns }) == 3
  end, 'three airlock diagnostics still listed')

  -- Added lines are virtual lines under the replaced line, replaced lines are highlighted.
  local marks =
    vim.api.nvim_buf_get_extmarks(buf, require('airlock.proposals').ns, 0, -1, { details = true })
  local virt, removed_hl = {}, {}
  for _, m in ipairs(marks) do
    for _, vl in ipairs(m[4].virt_lines or {}) do
      table.insert(virt, { m[2], vl[1][1], vl[1][2] })
    end
    if m[4].hl_group == 'AirlockRemoved' then
      table.insert(removed_hl, m[2])
    end
  end
  H.eq({
    { 1, '    100', 'AirlockAdded' },
    { 5, '    200', 'AirlockAdded' },
    { 9, '    300', 'AirlockAdded' },
  }, virt, 'virtual lines')
  H.eq({ 1, 5, 9 }, removed_hl, 'rows highlighted as replaced')

  -- The output split shows the agent's message; the statusline counts the hunks.
  H.wait(function()
    return require('airlock.output').text():find('working on it', 1, true) ~= nil
  end, 'agent output')
  H.truthy(#vim.fn.win_findbuf(require('airlock.output').buffer()) == 1, 'output window open')
  H.wait(function()
    return airlock.statusline():find('3 hunks', 1, true) ~= nil
  end, 'statusline with 3 hunks, got ' .. airlock.statusline())

  -- ]h / [h (default keymaps from setup{keymaps = true}).
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('normal ]h')
  H.eq(2, vim.fn.line('.'), ']h from line 1')
  vim.cmd('normal ]h')
  H.eq(6, vim.fn.line('.'), ']h from line 2')
  vim.cmd('normal ]h')
  H.eq(10, vim.fn.line('.'), ']h from line 6')
  vim.cmd('normal [h')
  H.eq(6, vim.fn.line('.'), '[h from line 10')
  vim.cmd('normal ]h')
  vim.cmd('normal ]h')
  H.eq(2, vim.fn.line('.'), ']h wraps past the last hunk')

  -- Off a hunk (line 1 is just above hunk 1), accept does nothing but say so.
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('Airlock accept')
  H.truthy(
    ((H.notes[#H.notes] or {}).msg or ''):find('no pending hunk under the cursor', 1, true),
    'off-hunk accept'
  )
  vim.wait(200)
  H.eq(3, #airlock.hunks(buf), 'nothing decided off a hunk')
  H.eq(BASE, H.buf_text(buf), 'nothing applied off a hunk')
  vim.api.nvim_win_set_cursor(0, { 2, 0 })

  -- Accept hunk 1: the server sends workspace/applyEdit, Neovim applies it.
  vim.cmd('Airlock accept')
  H.wait(function()
    return #airlock.hunks(buf) == 2
  end, 'two hunks left after accept')
  H.eq(BASE:gsub('    1\n', '    100\n', 1), H.buf_text(buf), 'buffer after accepting hunk 1')
  H.eq(BASE, H.read(path), 'an open buffer is not written behind the user')
  H.eq(
    { 5, 9 },
    vim.tbl_map(function(h)
      return h.row
    end, airlock.hunks(buf)),
    'remaining hunk rows'
  )

  -- Hints keep the server's numbering (the agent hears "hunk 3", the user sees "hunk 3/3").
  local hints = {}
  for _, m in
    ipairs(vim.api.nvim_buf_get_extmarks(buf, require('airlock.proposals').ns, 0, -1, {
      details = true,
    }))
  do
    if m[4].virt_text then
      table.insert(hints, vim.trim(m[4].virt_text[1][1]))
    end
  end
  H.eq({ 'airlock hunk 2/3  +1 -1', 'airlock hunk 3/3  +1 -1' }, hints, 'hunk hints')

  -- Reject hunk 3 with a reason asked through vim.ui.input.
  local asked
  vim.ui.input = function(opts, on_confirm)
    asked = opts.prompt
    on_confirm('keep three')
  end
  vim.api.nvim_win_set_cursor(0, { 10, 0 })
  vim.cmd('Airlock reject')
  H.wait(function()
    return #airlock.hunks(buf) == 1
  end, 'one hunk left after reject')
  H.truthy(asked and asked:find('reason', 1, true), 'reason asked with vim.ui.input')
  H.eq(BASE:gsub('    1\n', '    100\n', 1), H.buf_text(buf), 'reject leaves the buffer alone')

  -- :Airlock diff: current vs proposed side by side.
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  local pbuf = H.truthy(airlock.diff(), ':Airlock diff opened nothing')
  local proposed = BASE:gsub('    1\n', '    100\n', 1):gsub('    2\n', '    200\n', 1)
  H.eq(proposed, H.buf_text(pbuf), 'proposed side of the diff')
  H.truthy(vim.wo[vim.fn.win_findbuf(pbuf)[1]].diff, 'proposed window in diff mode')
  H.truthy(vim.wo[vim.fn.win_findbuf(buf)[1]].diff, 'source window in diff mode')
  vim.cmd('bwipe ' .. pbuf)
  vim.api.nvim_set_current_buf(buf)

  -- Accept all: the last hunk lands, nothing is pending.
  vim.cmd('Airlock accept-all')
  H.wait(function()
    return #airlock.hunks(buf) == 0
  end, 'no hunks after accept-all')
  H.eq(proposed, H.buf_text(buf), 'buffer after accept-all')
  H.wait(function()
    return airlock.statusline():find('hunk', 1, true) == nil
  end, 'statusline without hunks, got ' .. airlock.statusline())

  -- The agent is told about the rejection and its reason on its next turn.
  local stop
  airlock.prompt('anything new?', {
    on_done = function(err, result)
      stop = err and 'error' or result.stopReason
    end,
  })
  H.wait(function()
    return stop ~= nil
  end, 'second turn to end')
  H.eq('end_turn', stop, 'second turn stop reason')
  H.wait_output_count('told: keep three', 1, 'agent was told the reason')

  -- Live telemetry.
  local lbuf = airlock.log()
  H.wait(function()
    local t = table.concat(vim.api.nvim_buf_get_lines(lbuf, 0, -1, false), '\n')
    return t:find('proposal.created', 1, true) and t:find('proposal.resolved', 1, true)
  end, ':Airlock log with proposal events')
end)
