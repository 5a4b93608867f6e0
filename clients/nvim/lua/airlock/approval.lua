--- `airlock/approval` (server → client request): ask the user with `vim.ui.select`.
--- Guarantees: the answer is always one of the offered options; dismissing the picker answers
--- `deny`. The request is answered only after the user chose (the handler yields inside the
--- LSP client's coroutine, so asynchronous `vim.ui.select` implementations work).
local M = {}

M.labels = {
  allow_once = 'Allow once',
  allow_session = 'Allow for this session',
  allow_always = 'Always allow',
  allow_always_workspace = 'Always allow (workspace policy)',
  deny = 'Deny',
}

--- The question shown above the choices: what, and the policy rule that asked.
function M.prompt_text(params)
  local text = string.format(
    'Airlock: the agent wants to run %s `%s`',
    params.kind or 'tool',
    params.subject or '?'
  )
  if params.rule then
    text = text
      .. string.format(' (rule %s%s)', params.rule, params.layer and (' in ' .. params.layer) or '')
  end
  text = text .. '. Allow it?'
  if type(params.alwaysRule) == 'string' then
    text = text .. string.format(' ("Always" adds %s)', params.alwaysRule)
  end
  return text
end

--- Calls `on_choice(choice)` with one of `params.options` (`deny` when dismissed).
function M.ask(params, on_choice)
  local options = params.options or { 'allow_once', 'allow_session', 'allow_always', 'deny' }
  vim.ui.select(options, {
    prompt = M.prompt_text(params),
    kind = 'airlock_approval',
    format_item = function(o)
      return M.labels[o] or o
    end,
  }, function(choice)
    if not vim.tbl_contains(options, choice) then
      choice = 'deny'
    end
    on_choice(choice)
  end)
end

function M.handle(_, params, _ctx)
  params = params or {}
  local co, is_main = coroutine.running()
  if not co or is_main then
    -- Not inside the client's coroutine (only when called directly): a blocking answer.
    local answer = 'deny'
    M.ask(params, function(c)
      answer = c
    end)
    return { choice = answer }
  end
  M.ask(params, function(choice)
    -- Scheduled so a synchronous vim.ui.select cannot resume before we yield.
    vim.schedule(function()
      coroutine.resume(co, choice)
    end)
  end)
  local choice = coroutine.yield()
  return { choice = choice }
end

return M
