//! The conformance suite every [`EventStore`](crate::EventStore) must pass (E2), written once and
//! public (feature `testing`) so that every backend — in this crate or outside it — is held to
//! the same semantics.
//!
//! # Running it against a store
//!
//! Implement [`StoreFactory`] and expand [`conformance_tests!`](crate::conformance_tests) once in
//! an integration test file. The macro writes one `#[test]` per check, so a failure names the
//! check:
//!
//! ```
//! use chat_store::MemoryStore;
//! use chat_store::conformance::StoreFactory;
//!
//! struct Factory;
//!
//! #[async_trait::async_trait]
//! impl StoreFactory for Factory {
//!     type Store = MemoryStore;
//!     // A fresh, empty store (a new temp directory, a new schema, ...).
//!     async fn open(&self) -> MemoryStore {
//!         MemoryStore::new()
//!     }
//!     // A persistent store also overrides `reopen` (close `old` completely and open the same
//!     // data again) and `persistent` (true).
//! }
//!
//! // In an integration test file: one `#[test]` per check.
//! chat_store::conformance_tests!(Factory);
//!
//! // A single check can also be called directly.
//! chat_store::conformance::e1_append_then_read_back(Factory);
//! ```
//!
//! Each check builds its own multi-threaded tokio runtime (the concurrency checks need real
//! parallelism), so the tests are plain `#[test]` functions. The factory expression is evaluated
//! once per test.
//!
//! # What is checked
//!
//! Besides the deterministic checks listed in the macro (read-back of the full envelope,
//! expectations, atomic multi-stream conflicts, invalid requests, every named limit, idempotent
//! retry and id reuse, racing `Exact(v)` appenders, racing multi-stream appenders, a tailing reader
//! against 8 writers, subscription wake-ups, reopen), `e1_model_based_random_operations` runs
//! random sequences of appends (every expectation kind, multi-stream, retries, reused ids), reads
//! and — for persistent stores — reopens against a plain in-memory model. It runs
//! [`StoreFactory::model_cases`] cases: [`cases`] (10,000 when `CI=true`, 256 otherwise) unless the
//! factory lowers it for a slow backend.
//!
//! Time stamps in the suite have microsecond precision: that is what every store must keep
//! (PostgreSQL's `timestamptz` keeps no more).

mod audit;
mod checks;
mod model;

pub use audit::{
    e5_hash_chain_links_every_record, x4_key_vault_creates_and_shreds,
    x4_sealed_values_are_shredded,
};
pub use checks::*;
pub use model::e1_model_based_random_operations;

use crate::EventStore;
use crate::types::NewEvent;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Opens stores for the suite.
#[async_trait]
pub trait StoreFactory: Send + Sync + 'static {
    /// The store under test.
    type Store: EventStore;

    /// A fresh store with no events. Each check opens its own; they may run in parallel.
    async fn open(&self) -> Self::Store;

    /// Closes `old` and opens the same data again — what a process restart does. Only called when
    /// [`StoreFactory::persistent`] is true; the default hands `old` back.
    async fn reopen(&self, old: Self::Store) -> Self::Store {
        old
    }

    /// Whether the store keeps its data across [`StoreFactory::reopen`].
    fn persistent(&self) -> bool {
        false
    }

    /// How many random cases the model-based check runs. A backend whose appends cost a disk
    /// flush may run fewer; say so in its documentation.
    fn model_cases(&self) -> u32 {
        cases()
    }
}

/// The project's property-test case count: 10,000 when the environment variable `CI` is `true`,
/// 256 otherwise.
pub fn cases() -> u32 {
    if ci() { 10_000 } else { 256 }
}

/// Whether the environment variable `CI` is `true` (CI runs the long versions of tests).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs `future` to completion on a fresh multi-threaded runtime.
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance suite")
        .block_on(future)
}

/// A valid event whose every envelope field depends on `n`, so a read-back that mixes up
/// fields or events is caught. Ids are v7 UUIDs made from `n` (unique per `n`, ordered by `n`).
pub fn test_event(n: u64) -> NewEvent {
    NewEvent {
        event_id: test_event_id(n),
        event_type: format!("Tested{}", n % 7),
        schema_version: (n % 3) as u16 + 1,
        recorded_at: test_time(n),
        correlation_id: n
            .is_multiple_of(2)
            .then(|| Uuid::from_u128(0xc0ffee_u128 << 64 | n as u128)),
        causation_id: n
            .is_multiple_of(3)
            .then(|| Uuid::from_u128(0xca05e_u128 << 64 | n as u128)),
        payload: rmp_serde::to_vec_named(&TestPayload {
            n,
            text: "x".repeat((n % 5) as usize),
        })
        .expect("encoding a test payload"),
    }
}

/// The id [`test_event`] gives event `n`: a v7 UUID whose timestamp and random bits come from `n`.
pub fn test_event_id(n: u64) -> Uuid {
    let mut random = [0_u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(1_700_000_000_000 + n, &random).into_uuid()
}

/// A microsecond-precision instant that depends on `n`.
pub fn test_time(n: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_700_000_000_000_000 + n as i64 * 1_000_003).expect("in range")
}

/// The payload of [`test_event`].
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestPayload {
    /// The event's number.
    pub n: u64,
    /// Some text, of varying length.
    pub text: String,
}

/// Expands to one `#[test]` per conformance check, each calling the check with `$factory`
/// (evaluated anew per test). See the [module documentation](crate::conformance).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@checks $factory;
            e1_append_then_read_back,
            e1_expected_version_kinds,
            e1_multi_stream_conflict_writes_nothing,
            e1_invalid_requests_are_refused,
            e1_limits_are_enforced,
            e1_idempotent_retry_returns_original_result,
            e1_reused_event_id_is_an_error,
            e1_concurrent_exact_appends_have_one_winner_per_version,
            e1_concurrent_multi_stream_appends_are_all_or_nothing,
            e1_tailing_reader_sees_every_event_once_in_order,
            e1_subscribe_wakes_on_commit,
            e3_reopen_keeps_everything,
            e1_model_based_random_operations,
            e5_hash_chain_links_every_record,
            x4_key_vault_creates_and_shreds,
            x4_sealed_values_are_shredded,
        );
    };
    (@checks $factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$check($factory);
            }
        )*
    };
}
