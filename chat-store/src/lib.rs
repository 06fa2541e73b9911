//! # chat-store
//!
//! Pluggable event stores behind one async trait, [`EventStore`]: in-memory (tests, embedding),
//! sled (the embedded default) and PostgreSQL (several service processes on one database).
//!
//! The log is the ground state of the whole engine: a store that loses, tears, reorders or skips
//! an acknowledged event breaks every promise above it. That is why every backend runs the same
//! public conformance suite (feature `testing`).

mod chain;
#[cfg(feature = "testing")]
pub mod conformance;
mod error;
mod memory;
mod plan;
mod postgres;
pub mod seal;
mod sled_store;
mod sled_vault;
mod store;
mod types;
mod upcast;
mod vault;

pub use chain::{
    BadRecord, ChainLink, Fault, GENESIS_LINK, VERIFY_PAGE_EVENTS, VERIFY_STREAMS_MAX,
    VerifyOptions, VerifyReport, chain_link, link_hex, verify,
};
pub use error::StoreError;
pub use memory::MemoryStore;
pub use plan::{check_retry, validate_appends, validate_read_count};
#[cfg(feature = "testing")]
pub use postgres::{HeldAppend, POSTGRES_TEST_URL_VAR, PostgresTestDatabase};
pub use postgres::{
    POSTGRES_POOL_SIZE_MAX, POSTGRES_SCHEMA_BYTES_MAX, POSTGRES_WRITE_BATCH_APPENDS_MAX,
    POSTGRES_WRITE_BATCH_BYTES_MAX, POSTGRES_WRITE_QUEUE_APPENDS_MAX, PostgresConfig,
    PostgresKeyVault, PostgresStore,
};
pub use seal::{SealKey, SealPolicy, SealedStore};
pub use sled_store::{
    SLED_FORMAT, SLED_HEAD_MARK_INTERVAL_MS, SLED_OPEN_LOCK_WAIT_MS, SLED_WRITE_BATCH_APPENDS_MAX,
    SLED_WRITE_QUEUE_APPENDS_MAX, SledStore,
};
pub use sled_vault::SledKeyVault;
pub use store::{AppendOutcome, EventStore};
pub use types::{
    AppendResult, Conflict, EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX,
    ExpectedVersion, GlobalPosition, NewEvent, READ_COUNT_MAX, RecordedEvent, STREAM_ID_BYTES_MAX,
    STREAMS_PER_APPEND_MAX, StreamAppend, StreamId, StreamVersion,
};
pub use upcast::{UpcastStep, Upcasters, encode_payload, set_field, take_field};
pub use vault::{KeyVault, MemoryVault, SecretKey, VAULT_KEYS_PER_CALL_MAX};
