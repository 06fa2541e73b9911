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

mod clock;
mod codec;
mod error;
mod follow;
mod shutdown;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, DomainEvent, RESERVED_STREAM_PREFIX, derived_command_id, encode, event_id};
pub use error::EngineError;
pub use follow::{FOLLOW_PAGE_EVENTS_MAX, FOLLOW_POLL_INTERVAL_MS, Followed, Follower};
pub use shutdown::{Shutdown, ShutdownTrigger};
