//! airlock-lsp
