//! # chat-routing
//!
//! Decides who gets a chat, purely and deterministically: no clock, no I/O, no randomness.
//! Being written (issue: `chat-routing`); nothing here works yet.
