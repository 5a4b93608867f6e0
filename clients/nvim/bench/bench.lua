-- Timing of the Neovim plugin (numbers recorded in docs/benchmarks.md, "Neovim plugin").
--   nvim --headless --clean -l clients/nvim/bench/bench.lua <airlock-bin> <empty-dir>
-- or: bash clients/nvim/bench/run.sh
-- 1. render: an `airlock/proposal` with 100 hunks on a 10 000-line buffer, from the handler
--    call to all extmarks drawn (in-process, no server), 200 runs.
-- 2. end to end: `:Airlock prompt` sent -> the agent's write drawn as hunks in the buffer, with
--    the real server and its scripted agent (each turn rejects the previous proposal first).
local bin, dir = assert(_G.arg[1]), assert(_G.arg[2])
local plugin_dir = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h:h')
vim.opt.runtimepath:prepend(plugin_dir)
vim.cmd.runtime('plugin/airlock.lua')
vim.notify = function() end
local airlock = require('airlock')
local proposals = require('airlock.proposals')

local function pct(samples, p)
  table.sort(samples)
  return samples[math.max(1, math.ceil(#samples * p))]
end
local function now_ms()
  return vim.uv.hrtime() / 1e6
end

-- 1. render
local ws = dir .. '/ws'
vim.fn.mkdir(ws .. '/.git', 'p')
local lines = {}
for i = 1, 10000 do
  lines[i] = 'line ' .. i
end
vim.fn.writefile(lines, ws .. '/big.txt')
vim.cmd.edit(ws .. '/big.txt')
local buf = vim.api.nvim_get_current_buf()
local hunks, view = {}, {}
for k = 1, 100 do
  local row = k * 100 - 1
  table.insert(hunks, {
    id = k,
    oldStart = row,
    oldCount = 1,
    oldText = 'line ' .. (row + 1) .. '\n',
    newText = 'changed ' .. k .. '\nadded ' .. k .. '\n',
    status = 'pending',
  })
  table.insert(view, { id = k, status = 'pending', startLine = row, endLine = row + 1 })
end
local params = {
  event = 'created',
  uri = vim.uri_from_bufnr(buf),
  proposal = { id = 'bench', state = 'pending', hunks = hunks, view = view, createdAt = 'x' },
}
local render = {}
for _ = 1, 200 do
  local t0 = now_ms()
  proposals.on_notification(params, 0)
  table.insert(render, now_ms() - t0)
end
assert(#airlock.hunks(buf) == 100, 'render bench drew ' .. #airlock.hunks(buf))
proposals.on_notification(vim.tbl_extend('force', params, { event = 'resolved' }), 0)
vim.cmd('bwipe!')

-- 2. end to end
local turns = 30
local script = {}
for t = 1, turns do
  table.insert(
    script,
    '[[turn]]\n[[turn.step]]\nwrite = "f.txt"\ncontent = "a\\nturn ' .. t .. '\\nc\\n"\n'
  )
end
vim.fn.writefile(vim.split(table.concat(script, '\n'), '\n'), dir .. '/script.toml')
vim.fn.writefile({ 'a', 'b', 'c' }, ws .. '/f.txt')
airlock.setup({
  cmd = { bin, 'serve' },
  init_options = { agent = { script = dir .. '/script.toml' } },
})
vim.cmd.edit(ws .. '/f.txt')
vim.bo.filetype = 'text'
local fbuf = vim.api.nvim_get_current_buf()
assert(vim.wait(10000, function()
  local c = vim.lsp.get_clients({ name = 'airlock', bufnr = fbuf })[1]
  return c and c.initialized
end, 5))
local e2e = {}
for t = 1, turns do
  local t0 = now_ms()
  airlock.prompt('turn ' .. t)
  assert(
    vim.wait(10000, function()
      return #airlock.hunks(fbuf) == 1
    end, 1),
    'no hunk in turn ' .. t
  )
  table.insert(e2e, now_ms() - t0)
  local done = false
  airlock.reject_all('bench', function()
    done = true
  end)
  assert(vim.wait(10000, function()
    return done and #airlock.hunks(fbuf) == 0
  end, 1))
end
local first = e2e[1]
table.remove(e2e, 1) -- the first turn also starts the agent

io.stdout:write(
  string.format(
    '| render 100 hunks on 10 000 lines (200 runs), p50 / p99 | %.2f ms / %.2f ms |\n'
      .. '| prompt -> hunk drawn, warm agent (%d turns), p50 / p99 / max | %.1f ms / %.1f ms / %.1f ms |\n'
      .. '| prompt -> hunk drawn, first turn (starts the agent) | %.1f ms |\n',
    pct(render, 0.5),
    pct(render, 0.99),
    #e2e,
    pct(e2e, 0.5),
    pct(e2e, 0.99),
    pct(e2e, 1),
    first
  )
)
for _, c in ipairs(vim.lsp.get_clients()) do
  c:stop()
end
vim.wait(2000, function()
  return #vim.lsp.get_clients() == 0
end)
os.exit(0)
