//! The conformance suite against the in-memory store (E2).

use chat_store::MemoryStore;
use chat_store::conformance::StoreFactory;

struct Memory;

#[async_trait::async_trait]
impl StoreFactory for Memory {
    type Store = MemoryStore;

    async fn open(&self) -> MemoryStore {
        MemoryStore::new()
    }
}

chat_store::conformance_tests!(Memory);
