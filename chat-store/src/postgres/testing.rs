//! Test support (feature `testing`): the test database named by `CHAT_TEST_POSTGRES_URL`, with a
//! fresh schema per store, and an append held open before its commit.
//!
//! It lives in the library rather than in `tests/` because every PostgreSQL test file — and the
//! conformance factory — needs the same skip rule, schema naming and clean-up, and because
//! holding an append open needs the store's own SQL, which stays private.

use super::writer::{Answer, write_batch};
use super::{PostgresConfig, PostgresStore, application_name, backend, validate_schema};
use crate::error::StoreError;
use crate::plan::validate_appends;
use crate::types::{AppendResult, Conflict, StreamAppend};
use std::time::Duration;
use tokio_postgres::NoTls;
use uuid::Uuid;

impl PostgresStore {
    /// Runs an append's statements in a transaction of its own (the writer's transaction body,
    /// bypassing the writer's queue) and hands back the outcome while the transaction is still
    /// open (rows inserted, global head locked, nothing committed), so a test can show that no
    /// reader passes an append that commits late.
    pub async fn append_held(&self, appends: Vec<StreamAppend>) -> Result<HeldAppend, StoreError> {
        validate_appends(&appends)?;
        let mut client = self.client().await?;
        let schema = self.schema.clone();
        let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();
        let (decision_tx, decision_rx) = tokio::sync::oneshot::channel::<bool>();
        let task = tokio::spawn(async move {
            let tx = client.transaction().await.map_err(backend)?;
            // The writer's own transaction body, with a batch of one.
            let outcome = match write_batch(&tx, &schema, &[&appends]).await {
                Ok(mut batch) => batch.answers.pop().unwrap_or_else(|| {
                    Err(StoreError::Backend("a batch of one gave no answer".into()))
                }),
                Err(e) => Err(e),
            };
            let outcome = match outcome {
                Ok(Ok(Answer::Written(result))) => Ok(Ok(result)),
                Ok(Ok(Answer::AlreadyStored(_))) => Err(StoreError::InvalidRequest(
                    "a held append takes new event ids only".into(),
                )),
                Ok(Err(conflict)) => Ok(Err(conflict)),
                Err(e) => Err(e),
            };
            let wrote = matches!(outcome, Ok(Ok(_)));
            let _ = outcome_tx.send(outcome);
            let commit = wrote && decision_rx.await.unwrap_or(false);
            if commit {
                tx.commit().await.map_err(backend)
            } else {
                tx.rollback().await.map_err(backend)
            }
        });
        let outcome = outcome_rx
            .await
            .map_err(|_| StoreError::Backend("held append task ended early".into()))??;
        Ok(HeldAppend {
            outcome,
            decision: decision_tx,
            task,
        })
    }
}

/// The database the PostgreSQL tests run against, named by [`POSTGRES_TEST_URL_VAR`].
///
/// Every test store gets its own schema (`chat_test_<unix seconds>_<random>`), so concurrent
/// tests and runs never see each other's data; the time in the name lets a later run drop what
/// an aborted one left behind.
#[derive(Clone)]
pub struct PostgresTestDatabase {
    url: String,
}

/// The environment variable holding the test database's URL, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_TEST_URL_VAR: &str = "CHAT_TEST_POSTGRES_URL";

impl PostgresTestDatabase {
    /// The test database, or `None` (after printing why) when [`POSTGRES_TEST_URL_VAR`] is unset
    /// and the caller should skip. With `CI=true` a missing URL panics: CI must not skip.
    pub fn from_env() -> Option<Self> {
        match std::env::var(POSTGRES_TEST_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(Self { url }),
            _ if crate::conformance::ci() => panic!(
                "CI=true but {POSTGRES_TEST_URL_VAR} is not set: the PostgreSQL tests must run"
            ),
            _ => {
                eprintln!(
                    "skipping a PostgreSQL test: {POSTGRES_TEST_URL_VAR} is not set \
                     (e.g. postgres://postgres@127.0.0.1:5432/test)"
                );
                None
            }
        }
    }

    /// The database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A configuration with a schema no one else uses.
    pub fn fresh_config(&self) -> PostgresConfig {
        let seconds = chrono::Utc::now().timestamp();
        let random = Uuid::now_v7().simple().to_string();
        // The last 16 hex digits of a v7 UUID are random.
        let schema = format!("{TEST_SCHEMA_PREFIX}{seconds}_{}", &random[16..]);
        PostgresConfig::new(self.url.clone()).schema(schema)
    }

    /// Drops one test schema and everything in it, at the end of a test.
    pub async fn drop_schema(&self, schema: &str) -> Result<(), StoreError> {
        self.drop_schemas(&[schema]).await
    }

    /// Drops several test schemas in one statement (one commit, however many).
    pub async fn drop_schemas(&self, schemas: &[&str]) -> Result<(), StoreError> {
        if schemas.is_empty() {
            return Ok(());
        }
        for schema in schemas {
            validate_schema(schema)?;
        }
        let client = self.connect().await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                schemas.join(", ")
            ))
            .await
            .map_err(backend)
    }

    /// A plain connection of its own (not a store's), for tests that act on the database behind
    /// a store's back: hold locks, kill the store's connections, look at its tables. Its
    /// `application_name` is `chat-store-test`, so killing a store's connections spares it.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(backend)?;
        config.application_name("chat-store-test");
        let (client, connection) = config.connect(NoTls).await.map_err(backend)?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The `application_name` of every connection of a store in `schema`, to find (and kill)
    /// them in `pg_stat_activity`.
    pub fn application_name(schema: &str) -> String {
        application_name(schema)
    }

    /// Drops test schemas created more than `age` ago (left by runs that stopped before their
    /// own clean-up); returns how many.
    pub async fn prune_stale_schemas(&self, age: Duration) -> Result<usize, StoreError> {
        let client = self.connect().await?;
        let oldest = chrono::Utc::now().timestamp() - age.as_secs() as i64;
        let pattern = format!("{}%", TEST_SCHEMA_PREFIX.replace('_', "\\_"));
        let names: Vec<String> = client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1",
                &[&pattern],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let stale: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|name| {
                let created = name[TEST_SCHEMA_PREFIX.len()..]
                    .split('_')
                    .next()
                    .and_then(|s| s.parse::<i64>().ok());
                created.is_some_and(|created| created < oldest) && validate_schema(name).is_ok()
            })
            .collect();
        self.drop_schemas(&stale).await?;
        Ok(stale.len())
    }
}

/// The prefix of every schema [`PostgresTestDatabase::fresh_config`] makes.
const TEST_SCHEMA_PREFIX: &str = "chat_test_";

/// An append whose transaction is open: its rows are inserted and the global head is locked,
/// but nothing is committed until [`HeldAppend::commit`].
#[derive(Debug)]
pub struct HeldAppend {
    outcome: Result<AppendResult, Conflict>,
    decision: tokio::sync::oneshot::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl HeldAppend {
    /// What the append will have written once committed (or the conflict it met).
    pub fn outcome(&self) -> &Result<AppendResult, Conflict> {
        &self.outcome
    }

    /// Commits the held transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.finish(true).await
    }

    /// Rolls the held transaction back.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.finish(false).await
    }

    async fn finish(self, commit: bool) -> Result<(), StoreError> {
        let _ = self.decision.send(commit);
        self.task
            .await
            .map_err(|e| StoreError::Backend(format!("held append task failed: {e}")))?
    }
}
