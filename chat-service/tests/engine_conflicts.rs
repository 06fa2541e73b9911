//! CONFLICT_RETRIES_MAX: a stream that another writer moves before every append of ours makes
//! the engine give up after the named number of attempts with a typed error, and write nothing
//! of its own. The contention is real: a second writer appends to the same in-memory store.

use async_trait::async_trait;
use chat_core::agent::{AgentCommand, AgentEvent, Presence};
use chat_core::{AgentId, CommandId};
use chat_service::engine::{
    CONFLICT_RETRIES_MAX, EngineError, EngineOptions, ManualClock, encode, event_id,
};
use chat_store::{
    AppendOutcome, EventStore, ExpectedVersion, GlobalPosition, MemoryStore, RecordedEvent,
    StoreError, StreamAppend, StreamId, StreamVersion,
};
use chrono::{TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::sync::watch;

/// A memory store with a rival writer: before each append to an agent stream, the rival appends
/// one event there first.
struct Contended {
    inner: MemoryStore,
    rival_appends: AtomicU32,
}

#[async_trait]
impl EventStore for Contended {
    async fn append_multi(&self, appends: Vec<StreamAppend>) -> AppendOutcome {
        if let Some(target) = appends
            .iter()
            .find(|a| a.stream_id.as_str().starts_with("agent-"))
        {
            let n = self.rival_appends.fetch_add(1, Ordering::SeqCst);
            let agent = AgentId::from_u128(1);
            let at = Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap();
            let event = AgentEvent::CapacitySet {
                agent,
                at,
                capacity: n % 50 + 1,
            };
            let rival = encode(
                &event,
                event_id(CommandId::from_u128(0x7), n),
                at,
                None,
                None,
            )
            .expect("encodes");
            self.inner
                .append(&target.stream_id, ExpectedVersion::Any, vec![rival])
                .await?
                .expect("the rival's append has no expectation");
        }
        self.inner.append_multi(appends).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner
            .read_stream(stream_id, from_version, max_count)
            .await
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from_position, max_count).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head_position().await
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.inner.subscribe()
    }
}

#[tokio::test]
async fn e1_a_hot_stream_gives_up_after_conflict_retries_max_attempts() {
    let store = Arc::new(Contended {
        inner: MemoryStore::new(),
        rival_appends: AtomicU32::new(0),
    });
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap(),
    ));
    let engine =
        chat_service::engine::Engine::start(store.clone(), clock, EngineOptions::default())
            .await
            .unwrap();
    let agent = AgentId::from_u128(1);
    let result = engine
        .agent(AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        })
        .await;
    match result {
        Err(EngineError::ConflictRetriesExhausted { stream, attempts }) => {
            assert_eq!(stream, agent.stream_name());
            assert_eq!(attempts, CONFLICT_RETRIES_MAX);
        }
        other => panic!("expected ConflictRetriesExhausted, got {other:?}"),
    }
    assert_eq!(
        store.rival_appends.load(Ordering::SeqCst),
        CONFLICT_RETRIES_MAX
    );
    let stream = StreamId::new(agent.stream_name()).unwrap();
    let ours = store
        .read_stream(&stream, 1, 1000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "AgentPresenceChanged")
        .count();
    assert_eq!(ours, 0, "nothing of the refused command was written");
    engine.shutdown().await;
}
