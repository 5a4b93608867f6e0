-- A workspace reached through a symlink (~/code -> /mnt/data/code is common): the server
-- reports canonical paths, Neovim names the buffer by the link. Hunks must still be drawn in
-- that buffer and accepting must land in the buffer, not behind it on disk.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

H.run(function()
  vim.fn.mkdir(H.ws .. '/.git', 'p')
  H.write('notes.txt', 'alpha\nbeta\n')
  local link = H.dir .. '/link'
  assert(vim.uv.fs_symlink(H.ws, link))
  local script =
    H.script('[[turn]]\n[[turn.step]]\nwrite = "notes.txt"\ncontent = "alpha\\nBETA\\n"\n')
  H.load_plugin()
  local airlock = require('airlock')
  airlock.setup({ cmd = { H.bin, 'serve' }, init_options = { agent = { script = script } } })
  vim.cmd.edit(link .. '/notes.txt')
  vim.bo.filetype = 'text'
  local buf = vim.api.nvim_get_current_buf()
  H.wait_attached(buf)
  vim.cmd('Airlock prompt upper')
  H.wait(function()
    return #airlock.hunks(buf) == 1
  end, 'hunk drawn in the buffer opened through the link')
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  local done
  airlock.accept_hunk(function(err)
    done = err and vim.inspect(err) or 'ok'
  end)
  H.wait(function()
    return done ~= nil
  end, 'accept answered')
  H.eq('ok', done, 'accept')
  H.wait(function()
    return H.buf_text(buf) == 'alpha\nBETA\n'
  end, 'accepted hunk in the buffer, have: ' .. H.buf_text(buf))
  H.eq('alpha\nbeta\n', H.read(H.ws .. '/notes.txt'), 'disk untouched while the buffer is open')
end)
