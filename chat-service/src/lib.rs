//! # chat-service
//!
//! The engine runtime (commands, routing, timers, outbox over a real store) and the reference
//! HTTP + WebSocket service. Not written yet: nothing here works. Until it exists, the README's
//! run command runs `examples/lifecycle.rs` on the in-memory path.
