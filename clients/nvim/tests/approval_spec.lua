-- Approvals: the agent's session/request_permission reaches the plugin as airlock/approval and
-- is answered through vim.ui.select (stubbed here as a user would pick). Checks the choices
-- offered, the question shown, that the agent gets the answer, and that "allow for this
-- session" is remembered by the server (no second question for the same subject).
-- Uses vim.lsp.config/vim.lsp.enable only (no setup()).
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h') .. '/helpers.lua')

H.run(function()
  vim.fn.mkdir(H.ws .. '/.git', 'p')
  local path = H.write('notes.txt', 'hello\n')
  local script = H.script([==[
[[turn]]
match = "deploy"
[[turn.step]]
permission = "deploy the site"
kind = "execute"
options = ["allow_once", "allow_always", "reject_once"]

[[turn]]
match = "greet"
[[turn.step]]
run = "echo"
args = ["hi"]

[[turn]]
match = "format"
[[turn.step]]
permission = "format the code"
[[turn.step]]
permission = "format the code"
]==])

  -- A user policy that asks before `echo`: the question must show that rule.
  local policy = assert(os.getenv('XDG_CONFIG_HOME')) .. '/airlock/policy.toml'
  vim.fn.mkdir(vim.fn.fnamemodify(policy, ':h'), 'p')
  vim.fn.writefile({ 'version = 1', '[commands]', 'ask = ["echo"]' }, policy)

  H.load_plugin()
  local airlock = require('airlock')
  -- Configured the Neovim 0.11 way, without setup(): lsp/airlock.lua supplies the rest
  -- (capability, handlers, root detection).
  vim.lsp.config(
    'airlock',
    { cmd = { H.bin, 'serve' }, init_options = { agent = { script = script } } }
  )
  vim.lsp.enable('airlock')
  vim.cmd.edit(path)
  local buf = vim.api.nvim_get_current_buf()
  H.wait_attached(buf)
  local client = vim.lsp.get_clients({ name = 'airlock', bufnr = buf })[1]
  H.eq({ version = 1 }, client.capabilities.experimental.airlock, 'capability from lsp/airlock.lua')
  -- No keymaps unless asked for.
  for _, lhs in ipairs({ ']h', '[h', '<leader>aa', '<leader>ar' }) do
    H.eq('', vim.fn.maparg(lhs, 'n'), 'no default mapping for ' .. lhs)
  end
  H.truthy(vim.fn.maparg('<Plug>(airlock-next-hunk)', 'n') ~= '', '<Plug> maps exist')

  local asked = {}
  local answers = {}
  vim.ui.select = function(items, opts, on_choice)
    table.insert(asked, {
      items = vim.deepcopy(items),
      prompt = opts.prompt,
      labels = vim.tbl_map(opts.format_item, items),
    })
    on_choice(table.remove(answers, 1))
  end

  local function turn(text)
    local stop
    airlock.prompt(text, {
      on_done = function(err, result)
        stop = err and ('error: ' .. vim.inspect(err)) or result.stopReason
      end,
    })
    H.wait(function()
      return stop ~= nil
    end, 'turn "' .. text .. '" to end')
    H.eq('end_turn', stop, 'stop reason of "' .. text .. '"')
  end

  -- Deny: the agent is told it was rejected.
  answers = { 'deny' }
  turn('deploy')
  H.eq(1, #asked, 'one question')
  H.eq({ 'allow_once', 'allow_session', 'allow_always', 'deny' }, asked[1].items, 'choices offered')
  H.eq(
    { 'Allow once', 'Allow for this session', 'Always allow', 'Deny' },
    asked[1].labels,
    'choice labels'
  )
  H.truthy(
    asked[1].prompt:find('deploy the site', 1, true),
    'question names the subject: ' .. asked[1].prompt
  )
  H.wait_output_count('permission deploy the site: reject_once', 1, 'agent got the denial')

  -- Allow for this session: asked once, the second identical request is answered by the server.
  answers = { 'allow_session' }
  turn('format')
  H.eq(2, #asked, 'the same subject is asked once per session')
  H.wait_output_count('permission format the code: allow_once', 2, 'both requests allowed')

  -- A command the policy asks about: the question shows the command and the rule.
  answers = { 'allow_once' }
  turn('greet')
  H.eq(3, #asked, 'asked for the command')
  if os.getenv('AIRLOCK_TEST_VERBOSE') then
    print(asked[3].prompt)
  end
  H.truthy(
    asked[3].prompt:find('command `echo hi`', 1, true)
      and asked[3].prompt:find('(rule commands.ask', 1, true)
      and asked[3].prompt:find(' in user', 1, true),
    'question shows the command and the rule: ' .. asked[3].prompt
  )

  -- Dismissing the picker (nil) answers deny.
  answers = {}
  turn('deploy again')
  H.eq(4, #asked, 'asked again for deploy')
  H.wait_output_count('permission deploy the site: reject_once', 2, 'dismissed picker is deny')
end)
