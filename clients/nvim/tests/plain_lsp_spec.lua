-- Issue 7's "any LSP editor" check: Neovim with NO plugin (run with --clean, nothing added to
-- 'runtimepath'), only the built-in client started with vim.lsp.start. The agent's proposal
-- shows up as diagnostics (source airlock), the code actions list the decisions, and running
-- them goes workspace/executeCommand -> workspace/applyEdit, which Neovim applies itself.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

local BASE = 'fn one() {\n    1\n}\n\nfn two() {\n    2\n}\n\nfn three() {\n    3\n}\n'
local AGENT = 'fn one() {\n    100\n}\n\nfn two() {\n    200\n}\n\nfn three() {\n    300\n}\n'

H.run(function()
  H.truthy(not package.loaded['airlock'] and vim.fn.exists(':Airlock') == 0, 'no plugin loaded')
  local path = H.write('src/lib.rs', BASE)
  local script = H.script(
    string.format(
      '[[turn]]\n[[turn.step]]\nwrite = "src/lib.rs"\ncontent = %s\n',
      H.toml_str(AGENT)
    )
  )
  vim.cmd.edit(path)
  local buf = vim.api.nvim_get_current_buf()
  local id = assert(vim.lsp.start({
    name = 'airlock',
    cmd = { H.bin, 'serve' },
    root_dir = H.ws,
    init_options = { agent = { script = script } },
  }, { bufnr = buf }))
  local client = assert(vim.lsp.get_client_by_id(id))
  H.wait(function()
    return client.initialized and vim.lsp.buf_is_attached(buf, id)
  end, 'client attached')
  H.truthy(client.capabilities.experimental == nil, 'the plain client does not opt in')

  -- Prompt through the standard command.
  local done
  client:request(
    'workspace/executeCommand',
    { command = 'airlock.prompt', arguments = { 'fix the numbers' } },
    function(err)
      done = err and vim.inspect(err) or 'ok'
    end,
    buf
  )
  H.wait(function()
    return done ~= nil
  end, 'airlock.prompt to finish')
  H.eq('ok', done, 'airlock.prompt')

  local function airlock_diags()
    local out = {}
    for _, d in ipairs(vim.diagnostic.get(buf)) do
      if d.source == 'airlock' then
        table.insert(out, d)
      end
    end
    table.sort(out, function(a, b)
      return a.lnum < b.lnum
    end)
    return out
  end
  H.wait(function()
    return #airlock_diags() == 3
  end, 'three airlock diagnostics')
  H.eq(
    { 1, 5, 9 },
    vim.tbl_map(function(d)
      return d.lnum
    end, airlock_diags()),
    'diagnostic lines'
  )
  H.truthy(
    airlock_diags()[1].message:find('+     100', 1, true),
    'message previews the new line: ' .. airlock_diags()[1].message
  )

  -- The code actions at hunk 1, as vim.lsp.buf.code_action asks for them.
  local function actions_at(line)
    local resp = client:request_sync('textDocument/codeAction', {
      textDocument = { uri = vim.uri_from_bufnr(buf) },
      range = { start = { line = line, character = 0 }, ['end'] = { line = line, character = 0 } },
      context = { diagnostics = {} },
    }, 5000, buf)
    H.truthy(resp and not resp.err, 'codeAction failed: ' .. vim.inspect(resp))
    return resp.result
  end
  local titles = vim.tbl_map(function(a)
    return a.title
  end, actions_at(1))
  for _, want in ipairs({
    'Accept hunk 1 of 3',
    'Reject hunk 1 of 3',
    'Accept all in file',
    'Reject all in file',
    'Preview proposal',
  }) do
    H.truthy(
      vim.iter(titles):any(function(t)
        return vim.startswith(t, want)
      end),
      want .. ' missing from ' .. vim.inspect(titles)
    )
  end

  -- Accept hunk 1 the way a user does: vim.lsp.buf.code_action, filtered to the one action.
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  vim.lsp.buf.code_action({
    apply = true,
    filter = function(a)
      return vim.startswith(a.title, 'Accept hunk 1 of 3')
    end,
  })
  local after1 = BASE:gsub('    1\n', '    100\n', 1)
  H.wait(function()
    return H.buf_text(buf) == after1
  end, 'hunk 1 applied to the buffer, have:\n' .. H.buf_text(buf))
  H.wait(function()
    return #airlock_diags() == 2
  end, 'two diagnostics left')

  -- Reject hunk 3 with a reason through workspace/executeCommand, arguments from the action.
  local reject3 = vim.iter(actions_at(9)):find(function(a)
    return vim.startswith(a.title, 'Reject hunk 3')
  end)
  H.truthy(reject3 and reject3.command, 'Reject hunk 3 action with a command')
  local args = vim.deepcopy(reject3.command.arguments)
  args[3] = 'keep three'
  local r = client:request_sync(
    'workspace/executeCommand',
    { command = reject3.command.command, arguments = args },
    5000,
    buf
  )
  H.truthy(r and not r.err, 'reject failed: ' .. vim.inspect(r))
  H.wait(function()
    return #airlock_diags() == 1
  end, 'one diagnostic left after reject')
  H.eq(after1, H.buf_text(buf), 'reject leaves the buffer alone')

  -- Accept all in file: the last hunk lands; content exact; disk untouched (the buffer is open).
  local all = vim.iter(actions_at(5)):find(function(a)
    return a.title == 'Accept all in file'
  end)
  H.truthy(all, 'Accept all in file action')
  local r2 = client:request_sync(
    'workspace/executeCommand',
    { command = all.command.command, arguments = all.command.arguments },
    5000,
    buf
  )
  H.truthy(r2 and not r2.err, 'accept all failed: ' .. vim.inspect(r2))
  local final = after1:gsub('    2\n', '    200\n', 1)
  H.wait(function()
    return H.buf_text(buf) == final
  end, 'accept all applied, have:\n' .. H.buf_text(buf))
  H.wait(function()
    return #airlock_diags() == 0
  end, 'no diagnostics once resolved')
  H.eq(BASE, H.read(path), 'the server never writes an open buffer to disk')
  vim.cmd.write()
  H.eq(final, H.read(path), 'saved content exact')
end)
