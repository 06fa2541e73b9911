//! The engine's error: a broken request, store or log — never a business refusal.
//!
//! Like the store, the engine nests its results: a rejected command is the inner `Err` of
//! [`Handled`](super::Handled) results (an ordinary value the caller shows to a user), while
//! [`EngineError`] means something an operator must look at.

use chat_core::ModuleId;
use chat_store::{GlobalPosition, StoreError};

/// A failing store, a corrupt or gapped log, a misconfiguration, or a shut-down engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The store failed or refused a malformed request.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `read_all` returned a position other than the next one: the follower refuses to skip or
    /// repeat events.
    #[error("log gap: expected global position {expected}, read {found}")]
    Gap {
        /// The position the follower needed next.
        expected: GlobalPosition,
        /// What the store returned.
        found: GlobalPosition,
    },
    /// Optimistic-concurrency conflicts kept coming back; see `CONFLICT_RETRIES_MAX`.
    #[error("stream {stream} still conflicts after {attempts} attempts (conflict_retries_max)")]
    ConflictRetriesExhausted {
        /// The stream that kept moving.
        stream: String,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A command names a module the engine's configuration does not have.
    #[error("unknown module {0}: create it (module stream) before starting chats in it")]
    UnknownModule(ModuleId),
    /// The module has no routing configuration yet (M10).
    #[error("module {0} has no routing queue: it cannot take chats (M10)")]
    ModuleCannotTakeChats(ModuleId),
    /// Routing refused a request it cannot answer (over a limit, unknown ids).
    #[error("routing: {0}")]
    Routing(#[from] chat_routing::RouteError),
    /// A limit of the engine itself was reached (see the `*_MAX` constants).
    #[error("limit exceeded: {limit} is {max}, got {actual}")]
    LimitExceeded {
        /// The limit's name.
        limit: &'static str,
        /// Its value.
        max: usize,
        /// What was asked.
        actual: usize,
    },
    /// The engine is shutting down.
    #[error("the engine is shut down")]
    ShutDown,
}
