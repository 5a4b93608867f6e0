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
content = "one\nTWO\nthree\nFOUR\n"
]==])
  H.load_plugin()
  local airlock = require('airlock')
  airlock.setup({ cmd = { H.bin, 'serve' }, init_options = { agent = { script = script } } })
  vim.cmd.edit(path)
  vim.bo.filetype = 'text'
  local buf = vim.api.nvim_get_current_buf()
  H.wait_attached(buf)
  vim.cmd('Airlock prompt shout')
  H.wait(function()
    return #airlock.hunks(buf) == 2
  end, 'two hunks')

  local pbuf = H.truthy(airlock.diff(), 'diff buffer')
  H.eq(
    { 'one', 'TWO', 'three', 'FOUR' },
    vim.api.nvim_buf_get_lines(pbuf, 0, -1, false),
    'proposed'
  )
  vim.api.nvim_buf_set_lines(pbuf, 3, 4, false, { 'Four (mine)' })
  vim.api.nvim_set_current_buf(pbuf)
  vim.cmd('Airlock accept')
  H.wait(function()
    return not vim.api.nvim_buf_is_valid(pbuf)
  end, 'diff buffer closed after accept')
  H.eq('one\nTWO\nthree\nFour (mine)\n', H.buf_text(buf), 'edited text applied')
  H.wait(function()
    return #airlock.hunks(buf) == 0
  end, 'no hunks left')
  H.truthy(not vim.wo.diff, 'diff mode left')

  airlock.prompt('next')
  H.wait_output_count('saw the edit', 1, 'agent told about the edit')
end)
