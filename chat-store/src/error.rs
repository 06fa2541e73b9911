//! Errors of the store layer.
//!
//! The outer [`StoreError`] means "the request was malformed or the backend is broken"; a
//! concurrency conflict is not an error but the inner `Err` of an append (sled's nested-result
//! idea), so callers cannot confuse "retry" with "page someone".

use crate::types::GlobalPosition;

/// A malformed request or a failing backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream id is empty or has control characters (a too long id is
    /// [`StoreError::LimitExceeded`] with `STREAM_ID_BYTES_MAX`).
    #[error("invalid stream id {stream_id:?}: 1 to {max} bytes, no control characters", max = crate::STREAM_ID_BYTES_MAX)]
    InvalidStreamId {
        /// The refused id.
        stream_id: String,
    },
    /// A request breaks a named limit (see the `*_MAX` constants).
    #[error("limit exceeded: {limit} is {max}, got {actual}")]
    LimitExceeded {
        /// The limit's name, e.g. `EVENT_BYTES_MAX`.
        limit: &'static str,
        /// The limit's value.
        max: usize,
        /// What the request had.
        actual: usize,
    },
    /// The request is malformed in another way (e.g. an append with no events).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An event id that is already stored comes back in a request that is not an exact retry of
    /// the append that stored it (other stream or content, or only part of the original events).
    /// Writing it twice would break the id's uniqueness; ignoring it would hide a client bug.
    #[error("event id {event_id} is already stored at global position {position}: {reason}")]
    DuplicateEventId {
        /// The reused id.
        event_id: uuid::Uuid,
        /// Where the stored event with that id is.
        position: GlobalPosition,
        /// How the request differs from an exact retry.
        reason: String,
    },
    /// Stored data could not be read back: the store refuses to skip it.
    #[error("corrupt record at global position {position}: {reason}")]
    Corrupt {
        /// Where the damage is: the record's global position, or 0 when the damage is in an index
        /// entry that no longer says which record it belongs to (the reason names the stream or
        /// event id instead).
        position: GlobalPosition,
        /// What is wrong.
        reason: String,
    },
    /// A payload could not be upcast or decoded.
    #[error("cannot decode event {event_type} v{schema_version}: {reason}")]
    Decode {
        /// The event's type.
        event_type: String,
        /// The stored schema version.
        schema_version: u16,
        /// Why.
        reason: String,
    },
    /// The backend failed (I/O, connection, database error).
    #[error("backend error: {0}")]
    Backend(String),
}
