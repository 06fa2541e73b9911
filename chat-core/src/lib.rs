//! # chat-core
//!
//! The pure model of a live-chat conversation engine: chats, agents' presence and the admin
//! configuration (modules, trigger strategies, working intervals, forms, contacts, queues) as
//! commands → events → state, replayed into projections.
//!
//! Why pure: the log is the ground state, so every state must be a deterministic fold of events,
//! and every decision a deterministic function of (state, command, now). chat-core therefore
//! depends on no async runtime, reads no clock, draws no random number and touches no file or
//! socket. Time, ids and tokens come in as arguments; the host (chat-service's engine) supplies
//! them. This is enforced by `clippy.toml` (disallowed methods) and `tests/purity.rs` (the
//! dependency allow-list).

pub mod agent;
pub mod config;
pub mod conversation;
mod decider;
mod ids;
pub mod projection;
mod values;

pub use agent::{Agent, AgentCommand, AgentEvent, AgentRejection, AgentState, Presence};
pub use conversation::{
    ChatCommand, ChatEvent, ChatState, Conversation, Phase, Rejection as ChatRejection,
    next_deadline,
};
pub use decider::{Decider, EventKind, Given, Then, given};
pub use ids::{
    AgentId, CannedResponseId, CaseId, ChatId, CommandId, ContactId, MessageId, ModuleId, QueueId,
    StrategyId,
};
pub use projection::{ConversationView, LiveList, Recorded};
pub use values::{
    AttachmentMeta, FIELD_TEXT_BYTES_MAX, FieldValue, PAGE_VAR_NAME_BYTES_MAX, PAGE_VARS_MAX,
    PageData,
};
