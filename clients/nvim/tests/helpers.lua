-- Shared by the headless test scenarios (run with `nvim --headless --clean -l <scenario>.lua
-- <airlock-bin> <workdir>`, see tests/run.sh and tests/tests/nvim_*.rs). Each scenario
-- exits 0 on success; any failed check raises, prints the reason and exits 1.
local H = {}

H.plugin_dir = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
H.bin = assert(_G.arg[1], 'usage: nvim -l scenario.lua <airlock-bin> <workdir>')
H.dir = assert(_G.arg[2], 'usage: nvim -l scenario.lua <airlock-bin> <workdir>')
H.ws = H.dir .. '/ws'
vim.fn.mkdir(H.ws, 'p')

--- Puts the plugin on 'runtimepath' and sources it, as a plugin manager would.
function H.load_plugin()
  vim.opt.runtimepath:prepend(H.plugin_dir)
  vim.cmd.runtime('plugin/airlock.lua')
end

function H.write(rel, text)
  local path = H.ws .. '/' .. rel
  vim.fn.mkdir(vim.fn.fnamemodify(path, ':h'), 'p')
  local f = assert(io.open(path, 'wb'))
  f:write(text)
  f:close()
  return path
end

function H.read(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

--- Writes an agent script and returns its path.
function H.script(text)
  local path = H.dir .. '/script.toml'
  local f = assert(io.open(path, 'wb'))
  f:write(text)
  f:close()
  return path
end

--- TOML basic string for `s`.
function H.toml_str(s)
  return vim.json.encode(s)
end

if os.getenv('AIRLOCK_TEST_LSP_DEBUG') then
  vim.lsp.log.set_level('debug')
end

H.notes = {}
local orig_notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(H.notes, { msg = msg, level = level })
  if os.getenv('AIRLOCK_TEST_VERBOSE') then
    orig_notify(msg, level, opts)
  end
end

function H.context()
  local lines = { 'notifications:' }
  for _, n in ipairs(H.notes) do
    table.insert(lines, '  ' .. tostring(n.level) .. ' ' .. tostring(n.msg))
  end
  local ok, out = pcall(function()
    return require('airlock.output').text()
  end)
  if ok then
    table.insert(lines, 'agent output:\n' .. out)
  end
  local logf = vim.lsp.get_log_path()
  table.insert(lines, 'lsp log: ' .. logf)
  return table.concat(lines, '\n')
end

function H.fail(msg)
  error(msg .. '\n' .. H.context(), 2)
end

function H.wait(cond, what, ms)
  if not vim.wait(ms or 20000, cond, 20) then
    H.fail('timed out waiting for ' .. what)
  end
end

--- Waits until the agent output contains `text` exactly `n` times. (The answer to
--- airlock/prompt may arrive before the turn's last airlock/agentUpdate, so output is waited
--- for, never read right after a turn ends.)
function H.wait_output_count(text, n, what)
  local count = 0
  local ok = vim.wait(20000, function()
    local out = require('airlock.output').text()
    count = select(2, out:gsub(vim.pesc(text), ''))
    return count >= n
  end, 20)
  if not ok then
    H.fail(string.format('%s: %q appears %d times, expected %d', what, text, count, n))
  end
  vim.wait(100) -- let any late duplicate arrive
  local out = require('airlock.output').text()
  count = select(2, out:gsub(vim.pesc(text), ''))
  H.eq(n, count, what .. ': occurrences of ' .. text)
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    H.fail(
      string.format(
        '%s:\n  expected: %s\n  actual:   %s',
        what,
        vim.inspect(expected),
        vim.inspect(actual)
      )
    )
  end
end

function H.truthy(v, what)
  if not v then
    H.fail(what)
  end
  return v
end

function H.buf_text(bufnr)
  return table.concat(vim.api.nvim_buf_get_lines(bufnr or 0, 0, -1, false), '\n') .. '\n'
end

--- Waits until the airlock client is attached to `bufnr` and initialized.
function H.wait_attached(bufnr)
  local client
  H.wait(function()
    client = vim.lsp.get_clients({ name = 'airlock', bufnr = bufnr })[1]
    return client ~= nil and client.initialized
  end, 'the airlock client to attach')
  return client
end

--- Runs `fn`, then exits: 0 if it returned, 1 (with the error) if it raised.
function H.run(fn)
  local ok, err = xpcall(fn, debug.traceback)
  for _, c in ipairs(vim.lsp.get_clients()) do
    c:stop()
  end
  vim.wait(3000, function()
    return #vim.lsp.get_clients() == 0
  end, 20)
  if not ok then
    io.stderr:write('FAIL: ' .. tostring(err) .. '\n')
    os.exit(1)
  end
  io.stdout:write('OK\n')
  os.exit(0)
end

return H
