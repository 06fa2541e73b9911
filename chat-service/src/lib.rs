//! # chat-service
//!
//! The engine runtime — the piece an existing backend embeds — and, later, the reference HTTP +
//! WebSocket service as a thin wrapper over it. The runtime turns the pure crates into a running
//! system: commands are decided by chat-core, appended to a chat-store with optimistic
//! concurrency, routed by chat-routing, and followed from the log by projections, timers, the
//! e-mail/webhook outbox and live fan-out (see docs/ARCHITECTURE.md, "Runtime data flow").

pub mod audit;
pub mod engine;
pub mod fanout;
pub mod http;
pub mod outbox;
