//! The envelope and the vocabulary of appends, shared by every store.
//!
//! Stores keep payloads opaque (MessagePack bytes produced by the caller); the envelope's typed
//! metadata is what a store must understand to order, deduplicate and upcast events.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Longest stream id, in bytes. Stream ids are keys in every backend; a bound keeps keys and
/// indexes small and makes a runaway id a clear error instead of a slow store.
pub const STREAM_ID_BYTES_MAX: usize = 256;
/// Largest encoded event (payload + event type), in bytes. Chat events are small; a megabyte
/// leaves room for long messages and form submissions while bounding memory per event.
pub const EVENT_BYTES_MAX: usize = 1024 * 1024;
/// Most events in one append call (over all streams of a multi-stream append).
pub const EVENTS_PER_APPEND_MAX: usize = 1000;
/// Most streams in one multi-stream append.
pub const STREAMS_PER_APPEND_MAX: usize = 16;
/// Longest event type name, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 128;
/// Most events a single read returns; callers page with the returned positions.
pub const READ_COUNT_MAX: usize = 10_000;

/// The name of one stream (one aggregate instance), e.g. `chat-<uuid>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    /// Validates and wraps a stream id: non-empty, at most [`STREAM_ID_BYTES_MAX`] bytes
    /// (`LimitExceeded` otherwise), no control characters. Stores rely on the absence of control
    /// characters: sled separates the id from the version in its keys with a 0 byte.
    pub fn new(id: impl Into<String>) -> Result<Self, crate::StoreError> {
        let id = id.into();
        if id.len() > STREAM_ID_BYTES_MAX {
            return Err(crate::StoreError::LimitExceeded {
                limit: "STREAM_ID_BYTES_MAX",
                max: STREAM_ID_BYTES_MAX,
                actual: id.len(),
            });
        }
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(crate::StoreError::InvalidStreamId { stream_id: id });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stream's version is the number of events in it: an empty stream has version 0 and the
/// first event of a stream has version 1.
pub type StreamVersion = u64;

/// A global position: 1 for the first event ever committed, then gap-free in commit order.
pub type GlobalPosition = u64;

/// What the appender believes about the stream before its events go in (optimistic concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must be empty (version 0).
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's version must be exactly this (`Exact(0)` is the same as `NoStream`).
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies this expectation.
    pub fn admits(self, actual: StreamVersion) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::StreamExists => actual > 0,
            Self::Exact(v) => actual == v,
        }
    }
}

/// One event as the caller proposes it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Client-chosen id (UUID v7 in the engine); re-appending a stored id is idempotent.
    pub event_id: Uuid,
    /// The event's type name, e.g. `ChatStarted`.
    pub event_type: String,
    /// The payload's schema version, for upcasting (E4).
    pub schema_version: u16,
    /// When the event happened, injected by the host (stores never invent domain time).
    pub recorded_at: DateTime<Utc>,
    /// The id of the request that caused this whole flow.
    pub correlation_id: Option<Uuid>,
    /// The id of the command or event that directly caused this event.
    pub causation_id: Option<Uuid>,
    /// MessagePack with named fields (`rmp_serde::to_vec_named`).
    pub payload: Vec<u8>,
}

/// One event as stored: the full envelope.
///
/// Equality compares the envelope and payload, not [`RecordedEvent::chain`]: the link is a
/// function of the record and the log before it, checked by [`crate::verify`], and a record
/// read from a store equals the record a test expects without recomputing the chain.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// Client-chosen id.
    pub event_id: Uuid,
    /// The stream the event belongs to.
    pub stream_id: StreamId,
    /// The stream's version after this event (1 for the first).
    pub stream_version: StreamVersion,
    /// Position in the global commit order (gap-free, starting at 1).
    pub global_position: GlobalPosition,
    /// The event's type name.
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u16,
    /// When the event happened (host-injected).
    pub recorded_at: DateTime<Utc>,
    /// Correlation id, if any.
    pub correlation_id: Option<Uuid>,
    /// Causation id, if any.
    pub causation_id: Option<Uuid>,
    /// MessagePack payload.
    pub payload: Vec<u8>,
    /// The record's link in the global hash chain (tamper evidence, [`crate::chain_link`]);
    /// `None` for a record written before the chain existed.
    pub chain: Option<crate::ChainLink>,
}

impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event_id == other.event_id
            && self.stream_id == other.stream_id
            && self.stream_version == other.stream_version
            && self.global_position == other.global_position
            && self.event_type == other.event_type
            && self.schema_version == other.schema_version
            && self.recorded_at == other.recorded_at
            && self.correlation_id == other.correlation_id
            && self.causation_id == other.causation_id
            && self.payload == other.payload
    }
}

/// The events for one stream inside a (possibly multi-stream) append.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamAppend {
    /// The target stream.
    pub stream_id: StreamId,
    /// The expectation checked before anything is written.
    pub expected: ExpectedVersion,
    /// The events, in order (at least one).
    pub events: Vec<NewEvent>,
}

/// What an acknowledged append wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// Each stream's version after the append, in the order of the request.
    pub stream_versions: Vec<(StreamId, StreamVersion)>,
    /// Global position of the first event written.
    pub first_position: GlobalPosition,
    /// Global position of the last event written.
    pub last_position: GlobalPosition,
}

/// The expected outcome "someone else wrote first": the caller reloads and retries, or gives up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
pub struct Conflict {
    /// The first stream whose expectation failed.
    pub stream_id: StreamId,
    /// What the caller expected.
    pub expected: ExpectedVersion,
    /// The stream's actual version.
    pub actual: StreamVersion,
}
