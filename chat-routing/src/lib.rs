//! # chat-routing
//!
//! Decides who gets a chat, purely and deterministically: given a [`Snapshot`] of agents, queues,
//! modules and waiting chats, a [`Request`] and `now`, a [`Router`] returns a [`Decision`] —
//! assign, enqueue, offline or unmanaged — with a [`Trace`] saying why. No clock, no I/O, no
//! randomness, no hash iteration: the same inputs always give the same answer (R6).
//!
//! Why pure: several service processes route at once (R2). Each decision therefore states its
//! [`Preconditions`] (the chat still waiting at version v, the agent's load still k), and the host
//! commits it atomically or re-reads and retries. Routing itself stays a function anyone can
//! property-test — see the `testing` feature's `harness` module, which checks the invariants of
//! `docs/ROUTING.md` against any [`Policy`].
//!
//! ```
//! use chat_routing::*;
//! use chrono::{TimeZone, Utc};
//!
//! let (queue, module) = (QueueId::from_u128(1), ModuleId::from_u128(1));
//! let mut snapshot = Snapshot::new();
//! snapshot.upsert_queue(Queue::new(queue, Selection::LeastBusy))?;
//! snapshot.upsert_module(Module::new(module, queue))?;
//! snapshot.upsert_agent(Agent::online(AgentId::from_u128(7), 2).member_of(queue, Level::One))?;
//!
//! let now = Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap();
//! let request = Request::New(IncomingChat::new(ChatId::from_u128(1), module));
//! let outcome = Router::default().decide(&snapshot, &request, now)?;
//! assert_eq!(outcome.decision.assigned_agent(), Some(AgentId::from_u128(7)));
//! snapshot.apply(&outcome.decision)?; // in a real host: commit to the store first
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decision;
mod error;
#[cfg(feature = "testing")]
pub mod harness;
mod limits;
mod model;
mod router;
mod snapshot;

pub use decision::{
    Assignment, Decision, Enqueued, Exclusion, OfflineReason, Outcome, Preconditions, QueueChoice,
    Trace, Verdict, WaitReason,
};
pub use error::{Conflict, RouteError};
pub use limits::{
    AGENT_CAPACITY_MAX, AGENTS_MAX, CONDITIONS_MAX, EXCLUDED_AGENTS_MAX, MEMBERSHIPS_MAX,
    MODULES_MAX, QUEUE_WAITING_MAX, QUEUES_MAX, RULES_MAX, VARIABLE_BYTES_MAX, VARIABLES_MAX,
};
pub use model::{
    Agent, AgentId, ChatId, Condition, Level, Module, ModuleId, Opening, Origin, Presence, Queue,
    QueueId, RepeatMode, Rule, Selection, WaitingChat,
};
pub use router::{
    Candidates, IncomingChat, Policy, QueueSelection, Request, Router, Target, exclusion,
};
pub use snapshot::Snapshot;
