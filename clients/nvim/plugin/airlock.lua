-- Airlock: defines :Airlock, <Plug> maps and highlight groups, and hooks airlock clients as
-- they attach. Does not start anything: `vim.lsp.enable('airlock')` or
-- `require('airlock').setup{}` does.
if vim.g.loaded_airlock then
  return
end
vim.g.loaded_airlock = true

if vim.fn.has('nvim-0.11') ~= 1 then
  vim.api.nvim_echo({ { 'airlock.nvim needs Neovim >= 0.11', 'ErrorMsg' } }, true, {})
  return
end

local airlock = require('airlock')
airlock.define_highlights()
airlock.define_plug_maps()

vim.api.nvim_create_user_command('Airlock', airlock.command, {
  nargs = '+',
  complete = airlock.complete,
  desc = 'Airlock: prompt the agent, review its hunks, see its log (:help airlock)',
})

local group = vim.api.nvim_create_augroup('airlock', { clear = true })
vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = airlock.define_highlights })
vim.api.nvim_create_autocmd('LspAttach', {
  group = group,
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if client and client.name == 'airlock' then
      airlock.on_attach(client, ev.buf)
    end
  end,
})
vim.api.nvim_create_autocmd('LspDetach', {
  group = group,
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if client and client.name == 'airlock' then
      -- Only when the client is going away entirely (not one buffer detaching).
      vim.schedule(function()
        local c = vim.lsp.get_client_by_id(ev.data.client_id)
        if not c or c:is_stopped() then
          require('airlock.proposals').forget_client(ev.data.client_id)
          require('airlock.status').forget_client(ev.data.client_id)
        end
      end)
    end
  end,
})
