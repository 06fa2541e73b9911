//! The conformance suite against the sled store, each store in its own temporary directory (E2).

use chat_store::conformance::{StoreFactory, ci};
use chat_store::{EventStore, GlobalPosition, RecordedEvent, SledStore, StoreError, StreamId};
use tempfile::TempDir;
use tokio::sync::watch;

/// A sled store and the temporary directory it lives in (removed when the store is dropped).
struct TempSled {
    store: SledStore,
    dir: TempDir,
}

struct Sled;

#[async_trait::async_trait]
impl StoreFactory for Sled {
    type Store = TempSled;

    async fn open(&self) -> TempSled {
        let dir = TempDir::new().expect("a temporary directory");
        let store = SledStore::open(dir.path()).expect("open a fresh sled store");
        TempSled { store, dir }
    }

    async fn reopen(&self, old: TempSled) -> TempSled {
        let TempSled { store, dir } = old;
        store.close();
        let store = SledStore::open(dir.path()).expect("reopen the sled store");
        TempSled { store, dir }
    }

    fn persistent(&self) -> bool {
        true
    }

    /// Every sled append is a disk flush, and every case a new data directory: sled runs fewer
    /// model cases than the memory store (see docs/STORE.md).
    fn model_cases(&self) -> u32 {
        if ci() { 2_000 } else { 64 }
    }
}

#[async_trait::async_trait]
impl EventStore for TempSled {
    async fn append_multi(
        &self,
        appends: Vec<chat_store::StreamAppend>,
    ) -> chat_store::AppendOutcome {
        self.store.append_multi(appends).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store
            .read_stream(stream_id, from_version, max_count)
            .await
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.store.read_all(from_position, max_count).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        self.store.stream_version(stream_id).await
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        self.store.head_position().await
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.store.subscribe()
    }

    fn key_vault(&self) -> Option<std::sync::Arc<dyn chat_store::KeyVault>> {
        self.store.key_vault()
    }
}

chat_store::conformance_tests!(Sled);
