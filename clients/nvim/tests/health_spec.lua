-- :checkhealth airlock against the real binary reports OK for Neovim, binary + version,
-- the initialize round trip and Landlock; and :help airlock works once helptags exist.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

H.run(function()
  H.load_plugin()
  require('airlock').setup({ cmd = { H.bin, 'serve' } })

  vim.cmd('checkhealth airlock')
  local hbuf = vim.api.nvim_get_current_buf()
  local text = table.concat(vim.api.nvim_buf_get_lines(hbuf, 0, -1, false), '\n')
  local function has(pattern, what)
    H.truthy(text:find(pattern), what .. ' missing from :checkhealth airlock:\n' .. text)
  end
  has('OK Neovim 0%.1[1-9]', 'Neovim version')
  has('OK airlock %d+%.%d+%.%d+', 'binary version')
  has('OK `airlock serve` answered initialize %(airlock ', 'initialize round trip')
  has('OK server offers the airlock extension, version 1', 'extension version')
  has('OK Landlock available %(ABI %d+', 'Landlock')
  H.truthy(not text:find('ERROR'), 'no ERROR in :checkhealth airlock:\n' .. text)

  -- A missing binary is an error, not a crash.
  require('airlock').setup({ cmd = { H.dir .. '/no-such-airlock', 'serve' }, enable = false })
  vim.cmd('checkhealth airlock')
  local bad = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.truthy(
    bad:find('ERROR `[^`]*no%-such%-airlock` not found'),
    'missing binary reported:\n' .. bad
  )

  -- :help airlock from the shipped doc (helptags generated as a plugin manager does).
  local doc = H.dir .. '/doc'
  vim.fn.mkdir(doc, 'p')
  vim.fn.writefile(vim.fn.readfile(H.plugin_dir .. '/doc/airlock.txt'), doc .. '/airlock.txt')
  vim.opt.runtimepath:append(H.dir)
  vim.cmd('helptags ' .. vim.fn.fnameescape(doc))
  for _, tag in ipairs({
    'airlock',
    'airlock-setup',
    'airlock-commands',
    'airlock-keymaps',
    ':Airlock',
    'airlock-health',
    'airlock.statusline()',
  }) do
    vim.cmd('help ' .. tag)
    H.eq('help', vim.bo.buftype, ':help ' .. tag)
    H.truthy(
      vim.fn.expand('%:t') == 'airlock.txt',
      ':help ' .. tag .. ' opened ' .. vim.fn.expand('%')
    )
    vim.cmd('helpclose')
  end
end)
