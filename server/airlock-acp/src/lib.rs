//! The ACP side of Airlock: the client that drives a coding agent for `airlock serve`, and the
//! embedded scripted agent behind `airlock agent mock`.
//!
//! Architecture invariant: only [`wire`] and the connection code in [`client`] and [`mock`] see
//! ACP's schema types; the server works on [`types`] — plain data plus a [`Reply`] per request.
//!
//! Driving it from a server (see [`AgentClient`]):
//! 1. `AgentClient::spawn(&config, root, ClientOptions::default())` (or `spawn_command` with a
//!    sandbox-wrapped command) → `(client, events)`; the handshake is done.
//! 2. Drain `events` in the main loop; answer each [`AgentRequest`] through its `respond`
//!    [`Reply`] whenever the decision is made (never block the loop waiting for it).
//! 3. `client.prompt(text)` in a spawned task → [`StopReason`]; `client.cancel()` to stop it.
//! 4. [`AgentEvent::Exited`] is the last event; spawn a new client on the next prompt.

pub mod client;
pub mod mock;
pub mod script;
pub mod transport;
pub mod types;
mod wire;

pub use client::{AcpError, AgentClient, AgentConfig, AgentEvents, ClientOptions, PromptPart};
pub use transport::{Direction, TrafficTap};
pub use types::*;
