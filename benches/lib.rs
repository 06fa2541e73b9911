//! Benchmarks live beside this file as `[[bench]]` targets of `benches/Cargo.toml`; results and the
//! commands that produce them are in `docs/PERFORMANCE.md`.
//!
//! This library holds what several benchmarks share: the chat workload (whole conversations from
//! the real decider) and the small report helpers that print a machine line and result tables.

mod report;
mod workload;

pub use report::{Row, Table, machine, per_second, postgres_url, time};
pub use workload::{
    COMMANDS_PER_CONVERSATION, EVENTS_PER_CONVERSATION, MESSAGES_PER_CONVERSATION, chat_id,
    commands, decided_at, decisions, envelope, envelopes, stream_id,
};
