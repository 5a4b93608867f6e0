//! The ACP side of Airlock: the client that drives a coding agent for `airlock serve`, and the
//! embedded scripted agent behind `airlock agent mock`.
//!
//! Architecture invariant: only the private `wire` module and the connection code in
//! [`client`] and [`mock`] see ACP's schema types; the server works on [`types`] — plain data
//! plus a [`Reply`] per request.
//!
//! Driving it from a server (see [`AgentClient`]):
//! 1. `AgentClient::spawn(&config, root, ClientOptions::default())` (or `spawn_command` with a
//!    sandbox-wrapped command) → `(client, events)`; the handshake is done.
//! 2. Drain `events` continuously in the main loop; answer each [`AgentRequest`] through its
//!    `respond` [`Reply`] whenever the decision is made — holding a `Reply` while the user
//!    decides is fine, it never blocks the connection. A dropped `Reply` answers the agent with
//!    an internal error.
//! 3. `client.prompt(text)` / `prompt_with(parts)` in a spawned task → [`StopReason`]. Every
//!    update the agent sent during the turn is already queued on `events` when it returns.
//! 4. `client.cancel()` sends `session/cancel` and answers pending permission requests
//!    `cancelled`; answer other held requests (a write waiting for accept) yourself, e.g. with
//!    an error, so the agent can finish the turn.
//! 5. [`AgentEvent::Exited`] is the last event; every call fails with [`AcpError::Closed`]
//!    afterwards. Spawn a new client on the next prompt. `shutdown()` on server exit.

pub mod client;
pub mod mock;
pub mod script;
pub mod transport;
pub mod types;
mod wire;

pub use client::{AcpError, AgentClient, AgentConfig, AgentEvents, ClientOptions, PromptPart};
pub use transport::{Direction, TrafficTap};
pub use types::*;
