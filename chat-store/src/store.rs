//! The store trait every backend implements.
//!
//! `async-trait` rather than `async fn` in traits: the service picks its store at run time
//! (`--store memory | sled:PATH | postgres:URL`) and holds it as `Arc<dyn EventStore>`, and native
//! async trait methods are not object-safe.

use crate::error::StoreError;
use crate::types::{
    AppendResult, Conflict, ExpectedVersion, GlobalPosition, NewEvent, RecordedEvent, StreamAppend,
    StreamId, StreamVersion,
};
use crate::vault::KeyVault;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::watch;

/// The result of an append: the outer `Err` is a broken request or backend, the inner `Err` the
/// expected optimistic-concurrency conflict.
pub type AppendOutcome = Result<Result<AppendResult, Conflict>, StoreError>;

/// An append-only, totally ordered event log made of streams (E1).
///
/// Guarantees every implementation must keep (checked by the conformance suite):
/// - an acknowledged append is durable and all-or-nothing, also across several streams;
/// - stream versions start at 1 and have no gaps; global positions start at 1, have no gaps and
///   follow commit order, so a reader tailing `read_all` never skips an event;
/// - re-appending events whose ids are already stored returns the original result and writes
///   nothing (idempotent retry).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends to several streams atomically, each with its own expectation. Either every
    /// expectation holds and every event is written, or nothing is.
    async fn append_multi(&self, appends: Vec<StreamAppend>) -> AppendOutcome;

    /// Appends to one stream.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> AppendOutcome {
        self.append_multi(vec![StreamAppend {
            stream_id: stream_id.clone(),
            expected,
            events,
        }])
        .await
    }

    /// Reads up to `max_count` events of one stream whose version is `>= from_version`.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `max_count` events of all streams whose global position is `>= from_position`,
    /// in position order.
    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's current version (0 when it has no events).
    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError>;

    /// The global position of the last committed event (0 for an empty store).
    async fn head_position(&self) -> Result<GlobalPosition, StoreError>;

    /// A wake-up channel carrying the last committed global position. It only says "something
    /// new"; readers then `read_all` from their own position, so a missed wake-up loses nothing.
    fn subscribe(&self) -> watch::Receiver<GlobalPosition>;

    /// The key vault kept beside this log, holding the keys of sealed values
    /// ([`crate::seal`]); `None` for a store without one (then nothing can be sealed).
    fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        None
    }

    /// Whether this store seals on append and opens on read itself (a [`crate::SealedStore`]),
    /// so that a caller does not wrap it twice.
    fn is_sealing(&self) -> bool {
        false
    }
}
