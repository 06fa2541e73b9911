//! The in-memory store: for tests, simulations and embedding where the log need not outlive the
//! process.
//!
//! One mutex around the whole log makes every append trivially atomic and commit-ordered; it is
//! held only for in-memory work, never across an `.await`.

use crate::chain::ChainLink;
use crate::error::StoreError;
use crate::plan::{LogState, Plan, plan_append, validate_appends, validate_read_count};
use crate::store::{AppendOutcome, EventStore};
use crate::types::{GlobalPosition, RecordedEvent, StreamAppend, StreamId, StreamVersion};
use crate::vault::{KeyVault, MemoryVault};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use uuid::Uuid;

/// An [`EventStore`] held in memory. Cheap to create; everything is lost when it is dropped.
#[derive(Debug)]
pub struct MemoryStore {
    log: Mutex<Log>,
    head: watch::Sender<GlobalPosition>,
    vault: Arc<MemoryVault>,
}

#[derive(Debug, Default)]
struct Log {
    /// `events[p - 1]` has global position `p`.
    events: Vec<RecordedEvent>,
    /// Each stream's events as indexes into `events`, in version order.
    streams: BTreeMap<StreamId, Vec<usize>>,
    /// Event id to index into `events`, for idempotent retries.
    ids: BTreeMap<Uuid, usize>,
}

impl LogState for Log {
    fn stream_version(&mut self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        Ok(self.streams.get(stream_id).map_or(0, |s| s.len() as u64))
    }

    fn event_by_id(&mut self, event_id: &Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        Ok(self.ids.get(event_id).map(|&i| self.events[i].clone()))
    }

    fn head(&self) -> GlobalPosition {
        self.events.len() as u64
    }

    fn head_link(&mut self) -> Result<Option<ChainLink>, StoreError> {
        Ok(self.events.last().and_then(|e| e.chain))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            log: Mutex::new(Log::default()),
            head: watch::Sender::new(0),
            vault: Arc::new(MemoryVault::new()),
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        // A panic while holding the lock cannot leave a half-applied append: records are pushed
        // only after planning succeeded, and pushing does not fail. So a poisoned lock still
        // guards a consistent log.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append_multi(&self, appends: Vec<StreamAppend>) -> AppendOutcome {
        validate_appends(&appends)?;
        let mut log = self.log();
        let (records, result) = match plan_append(&mut *log, &appends)? {
            Err(conflict) => return Ok(Err(conflict)),
            Ok(Plan::AlreadyStored(result)) => return Ok(Ok(result)),
            Ok(Plan::Write { records, result }) => (records, result),
        };
        for record in records {
            let index = log.events.len();
            debug_assert_eq!(record.global_position, index as u64 + 1);
            log.ids.insert(record.event_id, index);
            let stream = log.streams.entry(record.stream_id.clone()).or_default();
            assert_eq!(
                record.stream_version,
                stream.len() as u64 + 1,
                "stream versions are gap-free"
            );
            stream.push(index);
            log.events.push(record);
        }
        // Under the lock, so the watched head only moves forward.
        self.head.send_replace(result.last_position);
        Ok(Ok(result))
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        let log = self.log();
        let Some(indexes) = log.streams.get(stream_id) else {
            return Ok(Vec::new());
        };
        let skip = from_version.saturating_sub(1) as usize;
        Ok(indexes
            .iter()
            .skip(skip)
            .take(max_count)
            .map(|&i| log.events[i].clone())
            .collect())
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        let log = self.log();
        let skip = usize::try_from(from_position.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(log
            .events
            .iter()
            .skip(skip)
            .take(max_count)
            .cloned()
            .collect())
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        self.log().stream_version(stream_id)
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        Ok(self.log().head())
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.head.subscribe()
    }

    fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        Some(self.vault.clone())
    }
}
