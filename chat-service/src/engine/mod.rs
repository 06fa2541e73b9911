//! The engine runtime: commands → decide → append → followers (projections, routing, timers,
//! outbox, fan-out). See `docs/ENGINE.md` for every choice and `docs/ARCHITECTURE.md`, "Runtime
//! data flow", for the picture.
//!
//! Building blocks other components use:
//! - [`codec`](Codec): typed events ↔ store envelopes, one [`DomainEvent`] for any event, and
//!   deterministic event ids ([`event_id`], [`derived_command_id`]) so retries are no-ops (C9);
//! - [`Follower`]: the one log follower (pages of `read_all`, woken by `subscribe()`, no gaps,
//!   no duplicates, stops on [`Shutdown`]);
//! - [`Clock`]: the only source of `now` ([`SystemClock`], [`ManualClock`] for tests).

mod aggregate;
mod clock;
mod codec;
mod error;
mod follow;
mod projections;
mod runtime;
mod shutdown;
mod world;

pub use aggregate::{Aggregate, ReferenceChange, STATE_CACHE_STREAMS_MAX};
pub use projections::{
    AgentStats, Board, CHECKPOINT_INTERVAL_EVENTS, ChatQuery, ChatRow, ModuleStats, PastChats,
    Projection, SEARCH_RESULTS_MAX, SEARCH_TEXT_BYTES_MAX, Statistics, checkpoint_stream,
    latest_checkpoint, rebuild, rebuild_until,
};
pub use runtime::{
    CONFLICT_RETRIES_MAX, ChatOutcome, Engine, EngineOptions, Handled, NewChat, Refusal,
    TIMER_SLEEP_MS_MAX,
};

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{
    ChatSealPolicy, Codec, DomainEvent, RESERVED_STREAM_PREFIX, chat_record_key, checkpoint_owner,
    contact_key, derived_command_id, encode, event_id, message_key, sealing,
};
pub use error::EngineError;
pub use follow::{FOLLOW_PAGE_EVENTS_MAX, FOLLOW_POLL_INTERVAL_MS, Followed, Follower};
pub use shutdown::{Shutdown, ShutdownTrigger};
