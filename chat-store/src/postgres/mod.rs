//! PostgreSQL event store: the path for deployments where several service processes share one
//! database (E2).
//!
//! Why tokio-postgres + deadpool rather than sqlx: the store is async, pipelines statements on one
//! connection, and needs no live database at compile time (sqlx's checked macros do); deadpool is
//! a small, well-kept pool that recycles broken connections.
//!
//! The database decides every concurrency question, so two processes keep every promise of the
//! trait between them:
//! - appends are written by one writer task per store (`writer.rs`), many per transaction (group
//!   commit): the transaction takes the global head's row lock first (so every writer of every
//!   process locks in one order), reads the batch's stream heads and stored ids, plans each
//!   append with the shared rules, and writes the survivors with one statement (stream heads,
//!   every event via `unnest`, the head, a `NOTIFY`); each appender gets its own answer;
//! - the global head's row lock is held until commit, so positions are gap-free and become
//!   visible in position order: a reader tailing `read_all` can never pass an event that commits
//!   late (the visibility rule and its cost are in `docs/POSTGRES.md`);
//! - `NOTIFY` is only a wake-up; a background task on its own connection moves the
//!   [`EventStore::subscribe`] channel and reconnects when that connection dies.
//!
//! The rules of a retry (same event ids) and of a conflict are the shared ones
//! (`plan.rs`, as in the memory and sled stores), applied to what the database holds under
//! the head lock: the batch reads its stored ids in the same round trip as the head.

mod listen;
mod migrate;
#[cfg(feature = "testing")]
mod testing;
mod vault;
mod writer;

pub use vault::PostgresKeyVault;
pub use writer::{
    POSTGRES_WRITE_BATCH_APPENDS_MAX, POSTGRES_WRITE_BATCH_BYTES_MAX,
    POSTGRES_WRITE_QUEUE_APPENDS_MAX,
};

#[cfg(feature = "testing")]
pub use testing::{HeldAppend, POSTGRES_TEST_URL_VAR, PostgresTestDatabase};

use crate::chain::ChainLink;
use crate::error::StoreError;
use crate::plan::{validate_appends, validate_read_count};
use crate::store::{AppendOutcome, EventStore};
use crate::types::{GlobalPosition, RecordedEvent, StreamAppend, StreamId, StreamVersion};
use async_trait::async_trait;
use chrono::DateTime;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{NoTls, Row};

/// Longest schema name, in bytes: PostgreSQL truncates identifiers at 63 bytes, and the schema
/// name is also the `LISTEN` channel, so a longer one would silently share a channel.
pub const POSTGRES_SCHEMA_BYTES_MAX: usize = 63;
/// Most pooled connections one store opens. Every connection is a server process; the
/// database's `max_connections` (100 by default) is shared by every service process.
pub const POSTGRES_POOL_SIZE_MAX: usize = 64;

/// The schema used when the configuration names none.
const DEFAULT_SCHEMA: &str = "chat_store";
/// The pool size used when the configuration names none.
const DEFAULT_POOL_SIZE: usize = 8;
/// How long opening one connection may take before the store reports the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a free pooled connection before getting an error.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalive probing for connections whose URL sets none: first probe after 10 s of silence,
/// then every 5 s, given up after 3 — a server that vanished without closing the socket (a
/// partition, a dead host) is noticed in about 25 s instead of the driver's default two hours.
/// It matters most for the listener, which otherwise waits silently for notifications forever.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
/// The driver's default keepalive idle time, i.e. "the URL did not set one".
const DRIVER_KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// The default of [`PostgresConfig::stalled_transaction_timeout`].
const DEFAULT_STALLED_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15);

/// Where and how a [`PostgresStore`] connects.
///
/// The URL is a libpq-style `postgres://user@host:port/database` (its password is never
/// printed: `Debug` shows only the schema and pool size).
#[derive(Clone)]
pub struct PostgresConfig {
    url: String,
    schema: String,
    pool_size: usize,
    stalled_transaction_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field(
                "stalled_transaction_timeout",
                &self.stalled_transaction_timeout,
            )
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// A configuration for `url` with the default schema (`chat_store`) and pool size (8).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            stalled_transaction_timeout: DEFAULT_STALLED_TRANSACTION_TIMEOUT,
        }
    }

    /// The schema holding the store's tables. Separate schemas are separate logs in one database
    /// (tests give every run its own). Lower-case ASCII letters, digits and `_`, not starting
    /// with a digit or `pg_`, at most [`POSTGRES_SCHEMA_BYTES_MAX`] bytes.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// How many pooled connections the store may open (1 to [`POSTGRES_POOL_SIZE_MAX`]).
    pub fn pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// How long the server lets one of the store's transactions sit idle, waiting for the
    /// store's next statement, before it ends that session (`idle_in_transaction_session_timeout`,
    /// default 15 s, at least 1 ms). The store never pauses inside a transaction, so only a frozen
    /// or cut-off process hits it — and without it such a process would keep the global head
    /// locked, and every appender of every process waiting, until TCP gave up (hours).
    pub fn stalled_transaction_timeout(mut self, timeout: Duration) -> Self {
        self.stalled_transaction_timeout = timeout;
        self
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Checks the schema name and pool size and builds the driver's configuration: every
    /// connection gets `search_path` set to the schema (so the SQL below names no schema), the
    /// stalled-transaction timeout, and an `application_name` naming the schema (so operators see
    /// which log a connection serves).
    fn pg_config(&self) -> Result<tokio_postgres::Config, StoreError> {
        validate_schema(&self.schema)?;
        if self.pool_size == 0 || self.pool_size > POSTGRES_POOL_SIZE_MAX {
            return Err(StoreError::LimitExceeded {
                limit: "POSTGRES_POOL_SIZE_MAX",
                max: POSTGRES_POOL_SIZE_MAX,
                actual: self.pool_size,
            });
        }
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::InvalidRequest(format!("invalid PostgreSQL URL: {e}")))?;
        let stalled_ms = self.stalled_transaction_timeout.as_millis().max(1);
        let ours = format!(
            "-c search_path={} -c idle_in_transaction_session_timeout={stalled_ms}",
            self.schema
        );
        let options = match config.get_options() {
            Some(given) if !given.is_empty() => format!("{given} {ours}"),
            _ => ours,
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name(application_name(&self.schema));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_keepalives_idle() == DRIVER_KEEPALIVE_IDLE {
            config.keepalives_idle(KEEPALIVE_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVE_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVE_RETRIES);
        }
        Ok(config)
    }
}

/// The `application_name` of the store's connections when the URL sets none.
fn application_name(schema: &str) -> String {
    format!("chat-store:{schema}")
}

/// Schema names go into SQL text (`CREATE SCHEMA`, `LISTEN`, `search_path`) where parameters
/// cannot, so only a plain lower-case identifier is accepted: it needs no quoting anywhere.
fn validate_schema(schema: &str) -> Result<(), StoreError> {
    if schema.len() > POSTGRES_SCHEMA_BYTES_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "POSTGRES_SCHEMA_BYTES_MAX",
            max: POSTGRES_SCHEMA_BYTES_MAX,
            actual: schema.len(),
        });
    }
    let plain = schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_well = schema
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !plain || !starts_well || schema.starts_with("pg_") {
        return Err(StoreError::InvalidRequest(format!(
            "invalid schema name {schema:?}: lower-case ASCII letters, digits and _, \
             not starting with a digit or pg_"
        )));
    }
    Ok(())
}

/// The PostgreSQL implementation of [`EventStore`].
///
/// Dropping the store stops its listener task and closes its writer's queue (the writer ends
/// after the batch in flight); pooled connections close when the last pending operation returns
/// them.
pub struct PostgresStore {
    pool: Pool,
    schema: String,
    head: Arc<watch::Sender<GlobalPosition>>,
    listener: tokio::task::AbortHandle,
    /// The queue of the writer task, the only appender of this store (group commit).
    writer: mpsc::Sender<writer::Request>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("head", &*self.head.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects with the default schema and pool size (see [`PostgresConfig::new`]).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(PostgresConfig::new(url)).await
    }

    /// Connects, applies any missing migration (safe when several processes start at once), and
    /// starts the listener that feeds [`EventStore::subscribe`].
    pub async fn open(config: PostgresConfig) -> Result<Self, StoreError> {
        let pg_config = config.pg_config()?;
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                // A test query on every checkout: a connection the server killed is replaced
                // before it is handed out instead of failing the caller's first statement.
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build connection pool: {e}")))?;
        let mut client = checkout(&pool).await?;
        migrate::migrate(&mut client, &config.schema).await?;
        let position = read_head(&client).await?;
        drop(client);
        let head = Arc::new(watch::Sender::new(position));
        let listener = tokio::spawn(listen::run(
            pg_config,
            config.schema.clone(),
            Arc::clone(&head),
        ))
        .abort_handle();
        let (writer, queue) = mpsc::channel(POSTGRES_WRITE_QUEUE_APPENDS_MAX);
        tokio::spawn(writer::run(
            pool.clone(),
            config.schema.clone(),
            Arc::clone(&head),
            queue,
        ));
        Ok(Self {
            pool,
            schema: config.schema,
            head,
            listener,
            writer,
        })
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        checkout(&self.pool).await
    }

    /// Tells local subscribers at once, without waiting for the `NOTIFY` round trip.
    fn advance(&self, position: GlobalPosition) {
        advance(&self.head, position);
    }
}

/// The version of one stream (0 when it has none).
const SQL_STREAM_VERSION: &str = "SELECT version FROM streams WHERE stream_id = $1";

/// The envelope columns every read returns, in the order `recorded_event` expects.
macro_rules! event_columns {
    () => {
        "global_position, event_id, stream_id, stream_version, event_type, schema_version, \
         recorded_at_s, recorded_at_ns, correlation_id, causation_id, payload, chain"
    };
}
const SQL_READ_ALL: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE global_position >= $1 ORDER BY global_position LIMIT $2"
);
const SQL_READ_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
);
const SQL_EVENTS_BY_ID: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_id = ANY($1)"
);
const SQL_HEAD: &str = "SELECT position FROM log_head";

#[async_trait]
impl EventStore for PostgresStore {
    /// Queued for the store's writer, which commits it together with every other append waiting
    /// at the time (group commit, `writer.rs`). A full queue makes the caller wait here.
    async fn append_multi(&self, appends: Vec<StreamAppend>) -> AppendOutcome {
        validate_appends(&appends)?;
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::Request { appends, reply })
            .await
            .map_err(|_| writer::writer_stopped())?;
        answer.await.map_err(|_| writer::writer_stopped())?
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let sql = client
            .prepare_cached(SQL_READ_STREAM)
            .await
            .map_err(backend)?;
        let rows = client
            .query(
                &sql,
                &[
                    &stream_id.as_str(),
                    &to_db(from_version),
                    &(max_count as i64),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(recorded_event).collect()
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let sql = client.prepare_cached(SQL_READ_ALL).await.map_err(backend)?;
        let rows = client
            .query(&sql, &[&to_db(from_position), &(max_count as i64)])
            .await
            .map_err(backend)?;
        let events: Vec<RecordedEvent> =
            rows.iter().map(recorded_event).collect::<Result<_, _>>()?;
        // Positions are gap-free by construction; a hole here would mean a reader skips an event,
        // which the store refuses to do silently.
        for (expected, event) in (from_position.max(1)..).zip(&events) {
            if event.global_position != expected {
                return Err(StoreError::Corrupt {
                    position: expected,
                    reason: format!(
                        "the log continues at position {} instead",
                        event.global_position
                    ),
                });
            }
        }
        Ok(events)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        let client = self.client().await?;
        let sql = client
            .prepare_cached(SQL_STREAM_VERSION)
            .await
            .map_err(backend)?;
        match client
            .query_opt(&sql, &[&stream_id.as_str()])
            .await
            .map_err(backend)?
        {
            Some(row) => from_db(row.try_get(0).map_err(backend)?, 0),
            None => Ok(0),
        }
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        let client = self.client().await?;
        let position = read_head(&client).await?;
        self.advance(position);
        Ok(position)
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.head.subscribe()
    }

    fn key_vault(&self) -> Option<Arc<dyn crate::KeyVault>> {
        Some(Arc::new(PostgresKeyVault {
            pool: self.pool.clone(),
        }))
    }
}

async fn checkout(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Backend(format!("no PostgreSQL connection: {e}")))
}

async fn read_head(client: &tokio_postgres::Client) -> Result<GlobalPosition, StoreError> {
    let row = client.query_one(SQL_HEAD, &[]).await.map_err(backend)?;
    from_db(row.try_get(0).map_err(backend)?, 0)
}

/// Moves the subscription channel forward, never back: local acknowledgements and `NOTIFY`
/// payloads arrive in any interleaving.
fn advance(head: &watch::Sender<GlobalPosition>, position: GlobalPosition) {
    head.send_if_modified(|current| {
        if position > *current {
            *current = position;
            true
        } else {
            false
        }
    });
}

/// Positions and versions are `u64` in the trait and `bigint` in the database; a value beyond
/// `i64::MAX` matches nothing stored, so it is clamped rather than refused.
fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_db(value: i64, position: GlobalPosition) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        position,
        reason: format!("negative number {value} in the database"),
    })
}

fn recorded_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(backend)?;
    let position = from_db(position, 0)?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let stream_id: String = row.try_get(2).map_err(backend)?;
    let schema_version: i32 = row.try_get(5).map_err(backend)?;
    let seconds: i64 = row.try_get(6).map_err(backend)?;
    let nanos: i32 = row.try_get(7).map_err(backend)?;
    let recorded_at = u32::try_from(nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
        .ok_or_else(|| corrupt(format!("invalid timestamp {seconds}s {nanos}ns")))?;
    Ok(RecordedEvent {
        global_position: position,
        event_id: row.try_get(1).map_err(backend)?,
        stream_id: StreamId::new(stream_id).map_err(|e| corrupt(e.to_string()))?,
        stream_version: from_db(row.try_get(3).map_err(backend)?, position)?,
        event_type: row.try_get(4).map_err(backend)?,
        schema_version: u16::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version} out of range")))?,
        recorded_at,
        correlation_id: row.try_get(8).map_err(backend)?,
        causation_id: row.try_get(9).map_err(backend)?,
        payload: row.try_get(10).map_err(backend)?,
        chain: row
            .try_get::<_, Option<Vec<u8>>>(11)
            .map_err(backend)?
            .map(|link| {
                ChainLink::try_from(link.as_slice())
                    .map_err(|_| corrupt(format!("a chain link of {} bytes", link.len())))
            })
            .transpose()?,
    })
}

/// A database or connection failure as a store error, with the server's own message and
/// SQLSTATE when there is one (the driver's `Display` alone says only "db error").
fn backend(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Backend(format!("PostgreSQL {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::Backend(format!("PostgreSQL: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2_schema_names_are_plain_identifiers() {
        for good in [
            "chat_store",
            "_x",
            "a1",
            &"a".repeat(POSTGRES_SCHEMA_BYTES_MAX),
        ] {
            assert!(validate_schema(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "Chat", "a-b", "a b", "pg_catalog", "a;drop", "é"] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::InvalidRequest(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_schema(&"a".repeat(POSTGRES_SCHEMA_BYTES_MAX + 1)),
            Err(StoreError::LimitExceeded {
                limit: "POSTGRES_SCHEMA_BYTES_MAX",
                ..
            })
        ));
    }

    #[test]
    fn e2_pool_size_is_bounded_and_connections_are_configured() {
        for bad in [0, POSTGRES_POOL_SIZE_MAX + 1] {
            let config = PostgresConfig::new("postgres://u@localhost/db").pool_size(bad);
            assert!(matches!(
                config.pg_config(),
                Err(StoreError::LimitExceeded {
                    limit: "POSTGRES_POOL_SIZE_MAX",
                    ..
                })
            ));
        }
        let config =
            PostgresConfig::new("postgres://u@localhost/db").pool_size(POSTGRES_POOL_SIZE_MAX);
        let pg = config.pg_config().expect("the maximum is allowed");
        assert_eq!(
            pg.get_options(),
            Some("-c search_path=chat_store -c idle_in_transaction_session_timeout=15000")
        );
        assert_eq!(pg.get_application_name(), Some("chat-store:chat_store"));
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(pg.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        let given = PostgresConfig::new(
            "postgres://u@localhost/db?keepalives_idle=60&application_name=svc",
        )
        .pg_config()
        .expect("valid");
        assert_eq!(
            given.get_keepalives_idle(),
            Duration::from_secs(60),
            "the URL wins"
        );
        assert_eq!(given.get_application_name(), Some("svc"));
    }

    #[test]
    fn e2_a_bad_url_is_a_clear_error() {
        let err = PostgresConfig::new("postgres://u@localhost:notaport/db")
            .pg_config()
            .expect_err("bad port");
        assert!(matches!(err, StoreError::InvalidRequest(ref m) if m.contains("PostgreSQL URL")));
    }
}
