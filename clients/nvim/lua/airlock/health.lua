--- `:checkhealth airlock`: Neovim version, the `airlock` binary and its version, a real
--- `initialize` round trip with `airlock serve`, and the kernel protections from
--- `airlock doctor --json`. Every check starts the binary itself: it reports what would happen
--- now, not what happened when the client started.
local M = {}

local health = vim.health

local function cmd()
  local c = require('airlock.config').options.cmd
  -- Resolving the config runs the user's lsp/airlock.lua overrides: an error there must not
  -- break the health check.
  local ok, lsp_cfg = pcall(function()
    return vim.lsp.config.airlock
  end)
  if ok and lsp_cfg and type(lsp_cfg.cmd) == 'table' then
    c = lsp_cfg.cmd
  end
  return c
end

local function run(argv, timeout)
  local ok, obj = pcall(function()
    return vim.system(argv, { text = true }):wait(timeout or 5000)
  end)
  if not ok then
    return nil, tostring(obj)
  end
  return obj
end

--- Starts `airlock serve`, sends `initialize`, then `shutdown`/`exit`. Returns the result or
--- nil and an error.
function M.initialize_round_trip(bin, timeout)
  timeout = timeout or 10000
  local result, err
  local done = false
  local ok, rpc = pcall(vim.lsp.rpc.start, { bin, 'serve' }, {
    notification = function() end,
    server_request = function()
      return nil, vim.lsp.rpc.rpc_response_error(vim.lsp.protocol.ErrorCodes.MethodNotFound)
    end,
    on_error = function(code, e)
      err = err or ('rpc error ' .. tostring(code) .. ': ' .. vim.inspect(e))
      done = true
    end,
    on_exit = function(code)
      if not done then
        err = err or ('server exited with code ' .. tostring(code) .. ' before answering')
        done = true
      end
    end,
  })
  if not ok then
    return nil, 'cannot start: ' .. tostring(rpc)
  end
  rpc.request('initialize', {
    processId = vim.uv.os_getpid(),
    rootUri = vim.NIL,
    capabilities = { experimental = { airlock = { version = 1 } } },
  }, function(e, r)
    if e then
      err = 'initialize failed: ' .. (e.message or vim.inspect(e))
    else
      result = r
    end
    done = true
  end)
  local finished = vim.wait(timeout, function()
    return done
  end, 20)
  if result then
    local stopped = false
    rpc.request('shutdown', vim.NIL, function()
      rpc.notify('exit', vim.NIL)
      stopped = true
    end)
    vim.wait(3000, function()
      return stopped
    end, 20)
  end
  if not rpc.is_closing() then
    rpc.terminate()
  end
  if not finished then
    return nil, string.format('no answer to initialize within %d ms', timeout)
  end
  return result, err
end

function M.check()
  health.start('airlock: Neovim')
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim >= 0.11 is required, this is ' .. tostring(vim.version()))
  end

  health.start('airlock: binary')
  local argv = cmd()
  local exe = argv and argv[1]
  local bin = exe and vim.fn.exepath(exe) or ''
  if bin == '' then
    health.error(
      string.format('`%s` not found (cmd = %s)', tostring(exe), vim.inspect(argv)),
      { 'Install airlock (cargo install --path server/airlock-cli) or set cmd in setup{}' }
    )
    return
  end
  local v, verr = run({ bin, '--version' })
  if v and v.code == 0 then
    health.ok(string.format('%s (%s)', vim.trim(v.stdout or ''), bin))
  else
    health.error(
      string.format('`%s --version` failed: %s', bin, v and (v.stderr or v.code) or verr)
    )
    return
  end

  health.start('airlock: server')
  local result, err = M.initialize_round_trip(bin)
  if not result then
    health.error('`airlock serve` did not initialize: ' .. tostring(err))
  else
    local info = result.serverInfo or {}
    health.ok(
      string.format(
        '`airlock serve` answered initialize (%s %s)',
        info.name or '?',
        info.version or '?'
      )
    )
    local ext = result.capabilities
      and result.capabilities.experimental
      and result.capabilities.experimental.airlock
    if type(ext) == 'table' then
      health.ok('server offers the airlock extension, version ' .. tostring(ext.version))
    else
      health.warn('server does not offer experimental.airlock: inline review will not work')
    end
  end
  local clients = vim.lsp.get_clients({ name = 'airlock' })
  if #clients == 0 then
    health.info(
      "no airlock client is running (vim.lsp.enable('airlock') starts one when a file opens)"
    )
  end
  for _, c in ipairs(clients) do
    health.info(string.format('client %d: root %s', c.id, tostring(c.root_dir)))
  end

  health.start('airlock: sandbox (airlock doctor)')
  local d = run({ bin, 'doctor', '--json' })
  if not d or d.code ~= 0 then
    health.warn(
      '`airlock doctor --json` is not available: cannot tell which protections are active'
    )
    return
  end
  local ok, report = pcall(vim.json.decode, d.stdout or '')
  if not ok or type(report) ~= 'table' then
    health.warn('`airlock doctor --json` printed something that is not JSON')
    return
  end
  local abi = tonumber(report.landlock_abi) or 0
  if abi > 0 then
    health.ok(string.format('Landlock available (ABI %d, kernel %s)', abi, tostring(report.kernel)))
  else
    health.error(
      'Landlock is not available: commands the agent runs are not confined',
      { 'Use a kernel >= 5.13 with Landlock enabled (lsm=landlock,...)' }
    )
  end
  for _, p in ipairs(report.protections or {}) do
    if p.active then
      health.ok(string.format('%s (%s)', p.name, p.mechanism or ''))
    else
      health.warn(
        string.format('%s: not active', p.name),
        p.weaker_flag and { 'to run anyway: --weaker-mode ' .. p.weaker_flag } or nil
      )
    end
  end
end

return M
