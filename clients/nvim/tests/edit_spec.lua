-- Edit before accept: in the proposed side of :Airlock diff the user changes the agent's text
-- and :Airlock accept there applies the edited text (editedText), closes the diff, and the
-- agent is told its change was edited.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

local BASE = 'one\ntwo\nthree\nfour\n'

H.run(function()
  vim.fn.mkdir(H.ws .. '/.git', 'p')
  local path = H.write('list.txt', BASE)
  local script = H.script([==[
[[turn]]
match = "edited"
[[turn.step]]
message = "saw the edit"

[[turn]]
[[turn.step]]
write = "list.txt"
content = "zero\none\nTWO\n2.5\nthree\n"
]==])
  H.load_plugin()
  local airlock = require('airlock')
  airlock.setup({ cmd = { H.bin, 'serve' }, init_options = { agent = { script = script } } })
  vim.cmd.edit(path)
  vim.bo.filetype = 'text'
  local buf = vim.api.nvim_get_current_buf()
  H.wait_attached(buf)
  vim.cmd('Airlock prompt shout')
  -- An insertion at the top, a 1-line -> 2-line replacement, a deletion at the end.
  H.wait(function()
    return #airlock.hunks(buf) == 3
  end, 'three hunks')
  local shape = vim.tbl_map(function(h)
    return { h.row, h.end_row, h.insertion or false }
  end, airlock.hunks(buf))
  H.eq({ { 0, 0, true }, { 1, 1, false }, { 3, 3, false } }, shape, 'hunk rows')
  local marks =
    vim.api.nvim_buf_get_extmarks(buf, require('airlock.proposals').ns, 0, -1, { details = true })
  local above = vim.iter(marks):find(function(m)
    return m[4].virt_lines_above
  end)
  H.truthy(
    above and above[2] == 0 and above[4].virt_lines[1][1][1] == 'zero',
    'insertion above line 1'
  )

  -- Accepting the insertion shifts the other hunks down by one line; they must follow.
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd('Airlock accept')
  H.wait(function()
    return #airlock.hunks(buf) == 2
  end, 'two hunks after accepting the insertion')
  H.eq('zero\none\ntwo\nthree\nfour\n', H.buf_text(buf), 'insertion applied')
  vim.wait(300) -- a late view must not move them back
  H.eq(
    { 2, 4 },
    vim.tbl_map(function(h)
      return h.row
    end, airlock.hunks(buf)),
    'remaining hunks moved down'
  )

  local pbuf = H.truthy(airlock.diff(), 'diff buffer')
  H.eq(
    { 'zero', 'one', 'TWO', '2.5', 'three' },
    vim.api.nvim_buf_get_lines(pbuf, 0, -1, false),
    'proposed side = the agent text'
  )
  vim.api.nvim_buf_set_lines(pbuf, 3, 4, false, { '2.5 (mine)' })
  vim.api.nvim_set_current_buf(pbuf)
  vim.cmd('Airlock accept')
  H.wait(function()
    return not vim.api.nvim_buf_is_valid(pbuf)
  end, 'diff buffer closed after accept')
  H.eq('zero\none\nTWO\n2.5 (mine)\nthree\n', H.buf_text(buf), 'edited text applied')
  H.wait(function()
    return #airlock.hunks(buf) == 0
  end, 'no hunks left')
  H.truthy(not vim.wo.diff, 'diff mode left')

  airlock.prompt('next')
  H.wait_output_count('saw the edit', 1, 'agent told about the edit')
end)
