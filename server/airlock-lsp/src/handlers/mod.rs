//! Handler bodies, one file per LSP/extension family. Each function runs on the state task
//! with `&mut State`; anything that must wait is spawned and reports back.

pub mod agent;
pub mod approvals;
pub mod commands;
pub mod lifecycle;
pub mod policy_file;
pub mod proposals;
pub mod shadow;
pub mod terminals;
pub mod text_sync;
