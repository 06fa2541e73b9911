//! Named limits on every size and count routing accepts.
//!
//! Routing runs inside every request of the service, so its worst case must be known: each
//! collection it indexes or walks has a ceiling here, checked where the data comes in, and refused
//! with [`RouteError::TooLarge`](crate::RouteError::TooLarge) naming the field.

/// Agents in one snapshot.
pub const AGENTS_MAX: usize = 100_000;
/// Queues in one snapshot.
pub const QUEUES_MAX: usize = 10_000;
/// Modules in one snapshot.
pub const MODULES_MAX: usize = 10_000;
/// A queue's `waiting_max` may not exceed this; it also bounds a queue's length.
pub const QUEUE_WAITING_MAX: u32 = 1_000_000;
/// Concurrent chats one agent may be configured for.
pub const AGENT_CAPACITY_MAX: u32 = 1_000;
/// Queues one agent may belong to (each membership is indexed, so it prices every update).
pub const MEMBERSHIPS_MAX: usize = 256;
/// Agents one chat may exclude. Selection walks past excluded agents, so this bounds a decision.
pub const EXCLUDED_AGENTS_MAX: usize = 64;
/// Routing variables on one chat.
pub const VARIABLES_MAX: usize = 64;
/// Bytes in one routing-variable name or value, and in one rule value.
pub const VARIABLE_BYTES_MAX: usize = 1_024;
/// Smart-routing rules on one module.
pub const RULES_MAX: usize = 256;
/// Conditions in one rule.
pub const CONDITIONS_MAX: usize = 16;
