-- Less common paths of the inline view: a file opened after its proposal arrived is drawn on
-- attach; a hunk the user's own edit overlaps becomes "conflicted" (drawn as such, the user's
-- text kept); a proposed new file is drawn as an insertion into the empty buffer and can be
-- rejected; the prompt buffer sends what is typed into it.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

local BASE = 'a\nb\nc\nd\ne\nf\ng\nh\n'

H.run(function()
  vim.fn.mkdir(H.ws .. '/.git', 'p')
  local main = H.write('main.txt', 'main\n')
  local later = H.write('later.txt', BASE)
  local script = H.script([==[
[[turn]]
match = "two files"
[[turn.step]]
write = "later.txt"
content = "a\nB\nc\nd\ne\nf\nG\nh\n"
[[turn.step]]
write = "fresh.txt"
content = "brand\nnew\n"

[[turn]]
match = "slow"
[[turn.step]]
message = "starting slow"
[[turn.step]]
wait = 15000
[[turn.step]]
message = "finished slow"

[[turn]]
match = "typed"
[[turn.step]]
thought = "considering"
[[turn.step]]
plan = [{ content = "Read it", status = "completed", priority = "high" }, "Write it"]
[[turn.step]]
tool_call = "t1"
title = "Look around"
kind = "search"
[[turn.step]]
tool_update = "t1"
status = "completed"
[[turn.step]]
message = "got the typed prompt"
]==])

  H.load_plugin()
  local airlock = require('airlock')
  airlock.setup({ cmd = { H.bin, 'serve' }, init_options = { agent = { script = script } } })
  vim.wait(200)
  H.eq({}, vim.lsp.get_clients({ name = 'airlock' }), 'no server for the unnamed start buffer')
  vim.cmd.edit(main)
  vim.bo.filetype = 'text'
  H.wait_attached(vim.api.nvim_get_current_buf())

  local ended
  airlock.prompt('two files', {
    on_done = function(err, result)
      ended = err and 'error' or result.stopReason
    end,
  })
  H.wait(function()
    return ended ~= nil
  end, 'turn to end')
  H.wait(function()
    local n = 0
    for _ in pairs(require('airlock.proposals').by_id) do
      n = n + 1
    end
    return n == 2
  end, 'two proposals announced')

  -- The user is told about proposals for files that are not open.
  H.truthy(
    vim.iter(H.notes):any(function(n)
      return n.msg:find('proposes a new file fresh.txt (1 hunk); :Airlock list', 1, true) ~= nil
    end),
    'notified about the new file'
  )

  -- :Airlock list: every pending hunk of every file, opened or not, in the quickfix list.
  vim.cmd('Airlock list')
  local qf = vim.fn.getqflist()
  H.eq(
    { { 'later.txt', 2 }, { 'later.txt', 7 }, { 'fresh.txt', 1 } },
    vim.tbl_map(function(i)
      return { vim.fn.fnamemodify(vim.api.nvim_buf_get_name(i.bufnr), ':t'), i.lnum }
    end, { qf[2], qf[3], qf[1] }),
    'quickfix items (sorted by file name: fresh.txt first)'
  )
  H.truthy(qf[2].text:find('airlock hunk 1/2', 1, true), 'quickfix text: ' .. qf[2].text)
  vim.cmd('cclose')

  -- Opened after the proposal: drawn when the client attaches.
  vim.cmd.edit(later)
  vim.bo.filetype = 'text'
  local lbuf = vim.api.nvim_get_current_buf()
  H.wait_attached(lbuf)
  H.wait(function()
    return #airlock.hunks(lbuf) == 2
  end, 'hunks drawn in a buffer opened later')
  H.eq(
    { 1, 6 },
    vim.tbl_map(function(h)
      return h.row
    end, airlock.hunks(lbuf)),
    'rows in the later buffer'
  )

  -- The user rewrites line 7 ("g"), which hunk 2 also changes; accepting all keeps the
  -- user's line and leaves that hunk conflicted.
  vim.api.nvim_buf_set_lines(lbuf, 6, 7, false, { 'mine' })
  local done
  airlock.accept_all(function(err)
    done = err and vim.inspect(err) or 'ok'
  end)
  H.wait(function()
    return done ~= nil
  end, 'accept all to answer')
  H.eq(
    'a\nB\nc\nd\ne\nf\nmine\nh\n',
    H.buf_text(lbuf),
    'non-overlapping hunk applied, user line kept'
  )
  H.wait(function()
    local hs = airlock.hunks(lbuf)
    return #hs == 1 and hs[1].status == 'conflicted'
  end, 'the overlapped hunk shown as conflicted')
  local marks =
    vim.api.nvim_buf_get_extmarks(lbuf, require('airlock.proposals').ns, 0, -1, { details = true })
  H.truthy(
    vim.iter(marks):any(function(m)
      return m[4].hl_group == 'AirlockConflict'
    end),
    'conflict highlight: ' .. vim.inspect(marks) .. vim.inspect(airlock.hunks(lbuf))
  )

  -- A proposed new file: the empty buffer shows the insertion; accept fills the buffer.
  local fresh = H.ws .. '/fresh.txt'
  H.eq(0, vim.fn.filereadable(fresh), 'new file not on disk before accept')
  vim.cmd.edit(fresh)
  vim.bo.filetype = 'text'
  local fbuf = vim.api.nvim_get_current_buf()
  H.wait_attached(fbuf)
  H.wait(function()
    return #airlock.hunks(fbuf) == 1
  end, 'new-file hunk drawn')
  H.eq({ 'brand', 'new' }, require('airlock.proposals').proposed_lines(fbuf), 'proposed new file')
  -- Rejected here rather than accepted: Neovim reports an empty buffer as "\n", which the
  -- server counts as a user edit overlapping the insertion (see clients/nvim/README.md).
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  local rejected
  airlock.reject_hunk('not now', function(err)
    rejected = err and vim.inspect(err) or 'ok'
  end)
  H.wait(function()
    return rejected ~= nil
  end, 'reject of the new file')
  H.eq('ok', rejected, 'reject new file')
  H.wait(function()
    return #airlock.hunks(fbuf) == 0
  end, 'new-file hunk gone')
  H.eq(0, vim.fn.filereadable(fresh), 'a rejected new file is not created')

  -- :Airlock cancel ends a running turn; the statusline shows the agent working meanwhile.
  local stop
  airlock.prompt('slow', {
    on_done = function(err, result)
      stop = err and 'error' or result.stopReason
    end,
  })
  H.wait_output_count('starting slow', 1, 'slow turn started')
  H.wait(function()
    return airlock.statusline():find('working', 1, true) ~= nil
  end, 'statusline "working", got ' .. airlock.statusline())
  vim.cmd('Airlock cancel')
  H.wait(function()
    return stop ~= nil
  end, 'cancelled turn to end')
  H.eq('cancelled', stop, 'stop reason after :Airlock cancel')
  H.wait_output_count('[cancelled]', 1, 'cancel shown in the output')
  H.wait(function()
    return airlock.statusline():find('idle', 1, true) ~= nil
  end, 'statusline back to idle, got ' .. airlock.statusline())
  H.truthy(
    not require('airlock.output').text():find('finished slow', 1, true),
    'turn really stopped'
  )

  -- The prompt buffer: typing a line and <CR> sends it.
  local pbuf = airlock.prompt_buffer()
  H.eq('prompt', vim.bo[pbuf].buftype, 'prompt buffer type')
  vim.cmd('stopinsert') -- headless: type the whole sequence ourselves
  vim.api.nvim_feedkeys(vim.keycode('Atyped words<CR><Esc>'), 'xt', false)
  H.wait(function()
    return require('airlock.output').text():find('got the typed prompt', 1, true) ~= nil
  end, 'the typed prompt reached the agent')
  H.truthy(
    require('airlock.output').text():find('> typed words', 1, true),
    'prompt echoed in the output'
  )
  -- Thoughts, plans and tool calls are rendered as lines of their own.
  local out = require('airlock.output').text()
  for _, want in ipairs({
    '(thinking) considering',
    '[plan]',
    '  [x] Read it',
    '  [ ] Write it',
    '[tool] Look around (search, pending)',
    '[tool] Look around: completed',
  }) do
    H.truthy(out:find(want, 1, true), want .. ' missing from the output:\n' .. out)
  end
end)
