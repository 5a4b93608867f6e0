-- Picked up by `vim.lsp.config('airlock')` / `vim.lsp.enable('airlock')` (Neovim >= 0.11):
-- the defaults, which the user's `vim.lsp.config('airlock', {...})` extends.
return require('airlock.lsp').config()
