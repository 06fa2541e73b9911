//! PostgreSQL-specific promises (E1, E2, E3) that the shared conformance suite cannot stage: an
//! append that commits late, connections killed by the server, concurrent migrations, wake-ups
//! that cross store instances, schema isolation, group commit (many appenders in one
//! transaction, each answered on its own, within the batch and queue limits).
//!
//! Every test runs against the database named by `CHAT_TEST_POSTGRES_URL`, in a schema of its
//! own, and drops that schema when it passes. Without the variable each test prints why and
//! passes as skipped, except with `CI=true`, where it fails.

use chat_store::conformance::test_event;
use chat_store::{
    AppendResult, Conflict, EVENT_BYTES_MAX, EventStore, ExpectedVersion, GlobalPosition, NewEvent,
    POSTGRES_WRITE_BATCH_APPENDS_MAX, POSTGRES_WRITE_BATCH_BYTES_MAX,
    POSTGRES_WRITE_QUEUE_APPENDS_MAX, PostgresConfig, PostgresStore, PostgresTestDatabase,
    RecordedEvent, StoreError, StreamAppend, StreamId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::timeout;

/// How long a test waits for something that should happen at once before calling it stuck.
const STUCK: Duration = Duration::from_secs(60);
/// How long a test watches for something that must not happen (a reader passing an open
/// transaction, a blocked append finishing). Longer only makes the test slower, not stricter.
const QUIET: Duration = Duration::from_millis(300);

fn sid(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

fn events(from: u64, count: u64) -> Vec<NewEvent> {
    (from..from + count).map(test_event).collect()
}

fn single(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> Vec<StreamAppend> {
    vec![StreamAppend {
        stream_id: sid(stream),
        expected,
        events,
    }]
}

fn acked(outcome: chat_store::AppendOutcome) -> AppendResult {
    match outcome {
        Ok(Ok(result)) => result,
        other => panic!("expected an acknowledged append, got {other:?}"),
    }
}

async fn open(config: PostgresConfig) -> PostgresStore {
    PostgresStore::open(config)
        .await
        .expect("opening a PostgreSQL store (is the server at CHAT_TEST_POSTGRES_URL up?)")
}

/// Everything in the log, page by page, checking that positions run 1, 2, 3 … with no gap.
async fn read_everything(store: &impl EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let page = store
            .read_all(all.len() as u64 + 1, 100)
            .await
            .expect("read_all");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    for (index, event) in all.iter().enumerate() {
        assert_eq!(
            event.global_position,
            index as u64 + 1,
            "gap-free positions"
        );
    }
    all
}

/// A reader that tails the log the way a projection does: woken by `subscribe`, it reads from
/// its own position and records what it delivered, in order.
struct Tail {
    delivered: watch::Receiver<Vec<RecordedEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tail {
    fn start(store: Arc<PostgresStore>) -> Self {
        let (tx, delivered) = watch::channel(Vec::new());
        let task = tokio::spawn(async move {
            let mut wake = store.subscribe();
            let mut next: GlobalPosition = 1;
            loop {
                let page = store.read_all(next, 100).await.expect("tail read_all");
                if page.is_empty() {
                    if wake.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                for event in &page {
                    assert_eq!(
                        event.global_position, next,
                        "the tail never skips a position"
                    );
                    next += 1;
                }
                tx.send_modify(|all| all.extend(page));
            }
        });
        Self { delivered, task }
    }

    fn positions(&self) -> Vec<GlobalPosition> {
        self.delivered
            .borrow()
            .iter()
            .map(|e| e.global_position)
            .collect()
    }

    async fn wait_for(&mut self, count: usize) -> Vec<RecordedEvent> {
        timeout(STUCK, self.delivered.wait_for(|all| all.len() >= count))
            .await
            .expect("the tail delivers in time")
            .expect("the tail is running")
            .clone()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// E1/E2, the Marten/Axon trap: one append's rows are inserted but not committed while later
/// appends are submitted. A tailing reader must not pass the open append, and must deliver it,
/// in order, once it commits. Under the store's visibility rule the later appends wait for the
/// open one (they cannot take a position before it resolves); the test shows that too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_late_commit_is_never_skipped_by_a_tailing_reader() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let store = Arc::new(open(config.clone()).await);
    let mut tail = Tail::start(store.clone());
    acked(
        store
            .append(&sid("early"), ExpectedVersion::NoStream, events(1, 3))
            .await,
    );
    tail.wait_for(3).await;

    let held = store
        .append_held(single("held", ExpectedVersion::NoStream, events(10, 2)))
        .await
        .expect("held append");
    let held_result = held.outcome().clone().expect("no conflict");
    assert_eq!(
        (held_result.first_position, held_result.last_position),
        (4, 5)
    );
    let mut later = Vec::new();
    for n in 0..3_u64 {
        let store = store.clone();
        later.push(tokio::spawn(async move {
            store
                .append(
                    &sid(&format!("later-{n}")),
                    ExpectedVersion::NoStream,
                    events(20 + n, 1),
                )
                .await
        }));
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        tail.positions(),
        vec![1, 2, 3],
        "the tail stops before the open append"
    );
    assert_eq!(store.head_position().await.expect("head"), 3);
    assert!(store.read_all(4, 100).await.expect("read").is_empty());
    let other_instance = open(config.clone()).await;
    assert_eq!(
        read_everything(&other_instance).await.len(),
        3,
        "no process sees past it"
    );
    assert!(
        later.iter().all(|task| !task.is_finished()),
        "later appends wait for the open one instead of committing ahead of it"
    );

    held.commit().await.expect("commit the held append");
    let mut later_positions = Vec::new();
    for task in later {
        let result = acked(timeout(STUCK, task).await.expect("in time").expect("task"));
        later_positions.push(result.first_position);
    }
    later_positions.sort_unstable();
    assert_eq!(later_positions, vec![6, 7, 8]);
    let delivered = tail.wait_for(8).await;
    assert_eq!(
        delivered
            .iter()
            .map(|e| e.global_position)
            .collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        delivered[3..5]
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        vec![test_event(10).event_id, test_event(11).event_id],
        "the late commit is delivered at its own positions, before the later appends"
    );
    drop((tail, other_instance));
    drop(store);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E1: an append that rolls back after holding the global head leaves no gap: the next append
/// takes the position it would have had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_rolled_back_append_leaves_no_gap() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let store = open(config.clone()).await;
    acked(
        store
            .append(&sid("a"), ExpectedVersion::NoStream, events(1, 2))
            .await,
    );
    let held = store
        .append_held(single("b", ExpectedVersion::NoStream, events(5, 3)))
        .await
        .expect("held append");
    assert_eq!(
        held.outcome().as_ref().expect("no conflict").first_position,
        3
    );
    held.rollback().await.expect("rollback");
    let next = acked(
        store
            .append(&sid("b"), ExpectedVersion::NoStream, events(9, 1))
            .await,
    );
    assert_eq!((next.first_position, next.last_position), (3, 3));
    assert_eq!(read_everything(&store).await.len(), 3);
    assert_eq!(store.stream_version(&sid("b")).await.expect("version"), 1);
    drop(store);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// Terminates every server connection of the stores in `schema` (pooled and listener alike);
/// returns how many.
async fn kill_store_connections(killer: &tokio_postgres::Client, schema: &str) -> u64 {
    let row = killer
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1 \
               AND pid <> pg_backend_pid()",
            &[&PostgresTestDatabase::application_name(schema)],
        )
        .await
        .expect("pg_terminate_backend");
    row.get::<_, i64>(0) as u64
}

/// E3 over the network: the server kills the store's connections again and again (every 15 ms,
/// up to 60 times) while four writers append. A writer whose append fails retries it with the same event ids (idempotent).
/// Afterwards every acknowledged event is stored exactly once, positions have no gap, the pool
/// works, and a second instance's subscription — fed only by its own, also killed, listener —
/// still wakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e3_killed_connections_lose_no_acknowledged_event() {
    const WRITERS: u64 = 4;
    const APPENDS: u64 = 25;
    const ATTEMPTS_MAX: u32 = 200;
    // Bounded, so a slow machine where every append outlives the 15 ms between kills still ends.
    const KILL_ROUNDS: u32 = 60;
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config().pool_size(4);
    let store = Arc::new(open(config.clone()).await);
    let watcher = open(config.clone()).await;
    let killer = db.connect().await.expect("killer connection");
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (store, failures) = (store.clone(), failures.clone());
        writers.push(tokio::spawn(async move {
            let stream = sid(&format!("writer-{writer}"));
            let mut acked_ids = Vec::new();
            for append in 0..APPENDS {
                let batch = events(1 + (writer * APPENDS + append) * 2, 2);
                let expected = ExpectedVersion::Exact(append * 2);
                let mut attempts = 0;
                let result = loop {
                    attempts += 1;
                    match store.append(&stream, expected, batch.clone()).await {
                        Ok(Ok(result)) => break result,
                        Ok(Err(conflict)) => panic!("a retry is not a conflict: {conflict}"),
                        Err(StoreError::Backend(_)) if attempts < ATTEMPTS_MAX => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(e) => panic!("append failed for good: {e}"),
                    }
                };
                assert_eq!(
                    result.stream_versions,
                    vec![(stream.clone(), append * 2 + 2)]
                );
                acked_ids.extend(batch.iter().map(|e| e.event_id));
            }
            acked_ids
        }));
    }
    let kills = {
        let (done, schema) = (done.clone(), config.schema_name().to_owned());
        tokio::spawn(async move {
            let mut kills = 0;
            for _ in 0..KILL_ROUNDS {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                kills += kill_store_connections(&killer, &schema).await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            kills
        })
    };
    let mut acked_ids = BTreeSet::new();
    for writer in writers {
        let ids = timeout(STUCK, writer)
            .await
            .expect("writers finish")
            .expect("writer");
        acked_ids.extend(ids);
    }
    done.store(true, Ordering::Relaxed);
    let kills = kills.await.expect("killer");
    assert!(kills > 0, "the test killed connections");
    eprintln!(
        "killed {kills} connections; {} appends failed and were retried",
        failures.load(Ordering::Relaxed)
    );

    let stored = read_everything(&*store).await;
    assert_eq!(
        stored.len() as u64,
        WRITERS * APPENDS * 2,
        "nothing lost, nothing doubled"
    );
    let stored_ids: BTreeSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids, acked_ids);
    // The watcher appended nothing: only its listener (killed too, then reconnected) can move
    // its subscription to the head.
    let mut wake = watcher.subscribe();
    let last = acked(
        store
            .append(&sid("after"), ExpectedVersion::NoStream, events(10_000, 1))
            .await,
    );
    timeout(STUCK, wake.wait_for(|p| *p >= last.last_position))
        .await
        .expect("the reconnected listener wakes the watcher")
        .expect("subscription open");
    drop((store, watcher));
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E3: an append whose connection dies while it waits inside its transaction returns an error,
/// writes nothing, and its retry with the same event ids is acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_append_cut_off_in_flight_fails_and_its_retry_is_idempotent() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = Arc::new(open(config.clone()).await);
    let blocker = db.connect().await.expect("blocker connection");
    let killer = db.connect().await.expect("killer connection");
    // Hold the global head's row lock so the store's append stops half-way through.
    blocker
        .batch_execute(&format!(
            "BEGIN; UPDATE {schema}.log_head SET position = position"
        ))
        .await
        .expect("lock the head");
    let request = single("cut", ExpectedVersion::NoStream, events(1, 2));
    let in_flight = {
        let (store, request) = (store.clone(), request.clone());
        tokio::spawn(async move { store.append_multi(request).await })
    };
    tokio::time::sleep(QUIET).await;
    assert!(!in_flight.is_finished(), "the append waits for the head");
    assert!(kill_store_connections(&killer, &schema).await > 0);
    let outcome = timeout(STUCK, in_flight)
        .await
        .expect("in time")
        .expect("task");
    assert!(
        matches!(outcome, Err(StoreError::Backend(_))),
        "a cut-off append is an error, got {outcome:?}"
    );
    blocker.batch_execute("ROLLBACK").await.expect("unlock");
    assert!(
        read_everything(&*store).await.is_empty(),
        "nothing half-written"
    );

    let first = acked(store.append_multi(request.clone()).await);
    let again = acked(store.append_multi(request).await);
    assert_eq!(first, again, "the retry returns the original result");
    assert_eq!(read_everything(&*store).await.len(), 2);
    drop(store);
    db.drop_schema(&schema).await.expect("drop schema");
}

/// E2: stores opening at once on a fresh schema (as service processes do after a deploy) apply
/// each migration exactly once, and reopening applies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_concurrent_opens_migrate_once() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let opens: Vec<_> = (0..4)
        .map(|_| tokio::spawn(PostgresStore::open(config.clone())))
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(
            open.await
                .expect("task")
                .expect("every concurrent open succeeds"),
        );
    }
    stores.push(open(config.clone()).await);
    let client = db.connect().await.expect("connection");
    let rows = client
        .query(
            &format!(
                "SELECT version, count(*) FROM {}.schema_migrations GROUP BY version",
                config.schema_name()
            ),
            &[],
        )
        .await
        .expect("migrations table");
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(
            row.get::<_, i64>(1),
            1,
            "migration {} applied once",
            row.get::<_, i32>(0)
        );
    }
    drop(stores);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E1/E2: a commit by one store instance wakes another's subscription (LISTEN/NOTIFY), and
/// stores in different schemas of one database neither see nor wake each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_notify_wakes_other_instances_and_schemas_stay_apart() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let (config, elsewhere_config) = (db.fresh_config(), db.fresh_config());
    let writer = open(config.clone()).await;
    let reader = open(config.clone()).await;
    let elsewhere = open(elsewhere_config.clone()).await;
    let mut wake = reader.subscribe();
    let mut elsewhere_wake = elsewhere.subscribe();
    let result = acked(
        writer
            .append(&sid("s"), ExpectedVersion::NoStream, events(1, 2))
            .await,
    );
    timeout(STUCK, wake.wait_for(|p| *p == result.last_position))
        .await
        .expect("woken by the other instance's commit")
        .expect("subscription open");
    assert_eq!(read_everything(&reader).await.len(), 2);
    tokio::time::sleep(QUIET).await;
    assert!(
        !elsewhere_wake.has_changed().expect("open"),
        "no wake-up across schemas"
    );
    assert_eq!(*elsewhere_wake.borrow_and_update(), 0);
    assert_eq!(elsewhere.head_position().await.expect("head"), 0);
    assert!(read_everything(&elsewhere).await.is_empty());
    drop((writer, reader, elsewhere));
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
    db.drop_schema(elsewhere_config.schema_name())
        .await
        .expect("drop schema");
}

/// E2: the host's timestamp comes back bit for bit, nanoseconds included (the envelope is the
/// store's to keep, not to round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_recorded_at_keeps_nanoseconds() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let store = open(config.clone()).await;
    let mut event = test_event(1);
    event.recorded_at = chrono::DateTime::from_timestamp(1_763_700_000, 123_456_789).expect("ok");
    let mut early = test_event(2);
    early.recorded_at = chrono::DateTime::from_timestamp(-1_000_000_000_000, 1).expect("ok");
    acked(
        store
            .append(
                &sid("t"),
                ExpectedVersion::Any,
                vec![event.clone(), early.clone()],
            )
            .await,
    );
    let stored = read_everything(&store).await;
    assert_eq!(stored[0].recorded_at, event.recorded_at);
    assert_eq!(stored[1].recorded_at, early.recorded_at);
    drop(store);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E2: a server that cannot be reached is a clear backend error at open, not a hang or a panic;
/// a bad schema name is refused before any connection is tried.
#[tokio::test]
async fn e2_unreachable_server_and_bad_schema_are_errors() {
    let unreachable = PostgresStore::open(
        PostgresConfig::new("postgres://postgres@127.0.0.1:1/test").schema("chat_unreachable"),
    )
    .await;
    assert!(
        matches!(unreachable, Err(StoreError::Backend(ref m)) if m.contains("connection")),
        "got {unreachable:?}"
    );
    let bad = PostgresStore::open(
        PostgresConfig::new("postgres://postgres@127.0.0.1:1/test").schema("Robert'); DROP"),
    )
    .await;
    assert!(
        matches!(bad, Err(StoreError::InvalidRequest(_))),
        "got {bad:?}"
    );
}

/// E2: a process that freezes inside its append transaction (global head locked, no commit) is cut
/// off by the server after the stalled-transaction timeout: its append is lost (it was never
/// acknowledged) and the appenders waiting behind it go on, gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_a_stalled_appender_cannot_hold_the_log() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db
        .fresh_config()
        .stalled_transaction_timeout(Duration::from_secs(1));
    let store = Arc::new(open(config.clone()).await);
    let held = store
        .append_held(single("frozen", ExpectedVersion::NoStream, events(1, 2)))
        .await
        .expect("held append");
    assert_eq!(
        held.outcome().as_ref().expect("no conflict").first_position,
        1
    );
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(&sid("waiting"), ExpectedVersion::NoStream, events(5, 1))
                .await
        })
    };
    let result = acked(
        timeout(STUCK, waiting)
            .await
            .expect("in time")
            .expect("task"),
    );
    assert_eq!((result.first_position, result.last_position), (1, 1));
    assert!(
        held.commit().await.is_err(),
        "the frozen append's session was ended"
    );
    let stored = read_everything(&*store).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_id, test_event(5).event_id);
    assert_eq!(
        store.stream_version(&sid("frozen")).await.expect("version"),
        0
    );
    drop(store);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E1: when several expectations fail, the conflict names the first failing stream in request
/// order — not the first in the store's lock order (stream ids ascending).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_conflict_names_the_first_failing_stream_in_request_order() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let store = open(config.clone()).await;
    for (stream, n) in [("a", 1), ("z", 2)] {
        acked(
            store
                .append(&sid(stream), ExpectedVersion::NoStream, events(n, 1))
                .await,
        );
    }
    let request = |first: &str, second: &str| {
        vec![
            StreamAppend {
                stream_id: sid(first),
                expected: ExpectedVersion::NoStream,
                events: events(10, 1),
            },
            StreamAppend {
                stream_id: sid(second),
                expected: ExpectedVersion::Exact(5),
                events: events(11, 1),
            },
        ]
    };
    for (first, second) in [("z", "a"), ("a", "z")] {
        match store.append_multi(request(first, second)).await {
            Ok(Err(conflict)) => {
                assert_eq!(conflict.stream_id, sid(first));
                assert_eq!(conflict.expected, ExpectedVersion::NoStream);
                assert_eq!(conflict.actual, 1);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(read_everything(&store).await.len(), 2, "nothing written");
    drop(store);
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// E2: a database migrated by a newer build (a migration this build does not know) is refused at
/// open rather than written to with an older idea of the tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_a_database_from_a_newer_build_is_refused() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    drop(open(config.clone()).await);
    let client = db.connect().await.expect("connection");
    client
        .execute(
            &format!(
                "INSERT INTO {}.schema_migrations (version, name) VALUES (999, 'from_the_future')",
                config.schema_name()
            ),
            &[],
        )
        .await
        .expect("record a future migration");
    let refused = PostgresStore::open(config.clone()).await;
    assert!(
        matches!(refused, Err(StoreError::Backend(ref m)) if m.contains("newer")),
        "got {refused:?}"
    );
    db.drop_schema(config.schema_name())
        .await
        .expect("drop schema");
}

/// Holds the global head's row lock from a connection of its own, so every append of the store
/// under test queues behind it (the writer's transaction waits for the lock) until `release`.
struct HeadBlocker(tokio_postgres::Client);

impl HeadBlocker {
    async fn hold(db: &PostgresTestDatabase, schema: &str) -> Self {
        let client = db.connect().await.expect("blocker connection");
        client
            .batch_execute(&format!(
                "BEGIN; UPDATE {schema}.log_head SET position = position"
            ))
            .await
            .expect("lock the head");
        Self(client)
    }

    async fn release(self) {
        self.0.batch_execute("ROLLBACK").await.expect("unlock");
    }
}

/// Per transaction that wrote events (PostgreSQL's `xmin` of the rows): how many events and how
/// many payload + event-type bytes it wrote, in commit order.
async fn transactions(db: &PostgresTestDatabase, schema: &str) -> Vec<(i64, i64)> {
    let client = db.connect().await.expect("connection");
    client
        .query(
            &format!(
                "SELECT count(*), sum(length(payload) + octet_length(event_type))::int8 \
                 FROM {schema}.events GROUP BY xmin::text::int8 ORDER BY min(global_position)"
            ),
            &[],
        )
        .await
        .expect("events per transaction")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Spawns one task per request, each appending it on its own.
fn spawn_appends(
    store: &Arc<PostgresStore>,
    requests: Vec<Vec<StreamAppend>>,
) -> Vec<tokio::task::JoinHandle<chat_store::AppendOutcome>> {
    requests
        .into_iter()
        .map(|request| {
            let store = store.clone();
            tokio::spawn(async move { store.append_multi(request).await })
        })
        .collect()
}

async fn outcomes(
    tasks: Vec<tokio::task::JoinHandle<chat_store::AppendOutcome>>,
) -> Vec<Result<AppendResult, Conflict>> {
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        let outcome = timeout(STUCK, task).await.expect("in time").expect("task");
        all.push(outcome.expect("no store error"));
    }
    all
}

/// E1/E2, group commit: appenders queued while the writer waits are written together, and each
/// gets its own answer. Four contenders create each of eight streams: one wins, the three others
/// get a conflict of their own naming the winner's version; a multi-stream append whose second
/// expectation fails leaves no trace in its first stream; an exact duplicate request in the same
/// batch gets the original result; the unconditional appends all land. Every acknowledged event
/// is stored once, gap-free, in far fewer transactions than appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_appenders_in_one_batch_are_answered_each_on_their_own() {
    const STREAMS: u64 = 8;
    const CONTENDERS: u64 = 4;
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = Arc::new(open(config.clone()).await);
    acked(
        store
            .append(&sid("fixed"), ExpectedVersion::NoStream, events(1, 1))
            .await,
    );
    let blocker = HeadBlocker::hold(&db, &schema).await;

    let mut requests = Vec::new();
    for stream in 0..STREAMS {
        for contender in 0..CONTENDERS {
            let n = 100 + stream * CONTENDERS + contender;
            requests.push(single(
                &format!("race-{stream}"),
                ExpectedVersion::NoStream,
                events(n, 1),
            ));
        }
    }
    let any_from = requests.len();
    for n in 0..8 {
        requests.push(single("any", ExpectedVersion::Any, events(200 + n, 1)));
    }
    let multi = requests.len();
    requests.push(vec![
        StreamAppend {
            stream_id: sid("multi-new"),
            expected: ExpectedVersion::NoStream,
            events: events(300, 2),
        },
        StreamAppend {
            stream_id: sid("fixed"),
            expected: ExpectedVersion::Exact(5),
            events: events(302, 1),
        },
    ]);
    let twins = requests.len();
    let twin = single("twin", ExpectedVersion::NoStream, events(400, 3));
    requests.push(twin.clone());
    requests.push(twin);
    let appends = requests.len();
    let tasks = spawn_appends(&store, requests);
    tokio::time::sleep(QUIET).await;
    assert!(
        tasks.iter().all(|task| !task.is_finished()),
        "every append waits for the head"
    );
    blocker.release().await;
    let outcomes = outcomes(tasks).await;

    let mut acked_ids = BTreeSet::from([test_event(1).event_id]);
    for stream in 0..STREAMS {
        let from = (stream * CONTENDERS) as usize;
        let contenders = &outcomes[from..from + CONTENDERS as usize];
        let winners: Vec<&AppendResult> =
            contenders.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "one winner on race-{stream}");
        assert_eq!(
            winners[0].stream_versions,
            vec![(sid(&format!("race-{stream}")), 1)]
        );
        for (offset, outcome) in contenders.iter().enumerate() {
            match outcome {
                Ok(_) => {
                    acked_ids
                        .insert(test_event(100 + stream * CONTENDERS + offset as u64).event_id);
                }
                Err(conflict) => assert_eq!(
                    conflict,
                    &Conflict {
                        stream_id: sid(&format!("race-{stream}")),
                        expected: ExpectedVersion::NoStream,
                        actual: 1,
                    },
                    "each loser gets its own conflict with the actual version"
                ),
            }
        }
    }
    let mut any_versions = Vec::new();
    for (n, outcome) in outcomes[any_from..multi].iter().enumerate() {
        let result = outcome.as_ref().expect("an Any append never conflicts");
        any_versions.push(result.stream_versions[0].1);
        acked_ids.insert(test_event(200 + n as u64).event_id);
    }
    any_versions.sort_unstable();
    assert_eq!(any_versions, (1..=8).collect::<Vec<_>>());
    assert_eq!(
        outcomes[multi],
        Err(Conflict {
            stream_id: sid("fixed"),
            expected: ExpectedVersion::Exact(5),
            actual: 1,
        })
    );
    let twin_result = outcomes[twins].clone().expect("the first twin is written");
    assert_eq!(
        outcomes[twins + 1],
        Ok(twin_result.clone()),
        "an exact duplicate gets the original result"
    );
    acked_ids.extend(events(400, 3).iter().map(|e| e.event_id));

    let stored = read_everything(&*store).await;
    let stored_ids: BTreeSet<_> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored.len(), stored_ids.len(), "each event stored once");
    assert_eq!(stored_ids, acked_ids, "exactly the acknowledged events");
    assert_eq!(
        store
            .stream_version(&sid("multi-new"))
            .await
            .expect("version"),
        0,
        "a refused multi-stream append leaves no trace"
    );
    assert_eq!(
        store.stream_version(&sid("fixed")).await.expect("version"),
        1
    );
    assert_eq!(
        store.stream_version(&sid("twin")).await.expect("version"),
        3
    );
    let written = transactions(&db, &schema).await;
    eprintln!(
        "{appends} appends, {} transactions wrote events",
        written.len()
    );
    assert!(
        written.len() <= 3,
        "queued appends share transactions: {written:?}"
    );
    drop(store);
    db.drop_schema(&schema).await.expect("drop schema");
}

/// E2, group commit limits: more appends queued than one batch takes are written in several
/// transactions, none with more than `POSTGRES_WRITE_BATCH_APPENDS_MAX` appends, at least one
/// full; every append is acknowledged once, at gap-free positions in acknowledgement order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_a_batch_takes_at_most_the_batch_limit() {
    let appends = 2 * POSTGRES_WRITE_BATCH_APPENDS_MAX + 10;
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = Arc::new(open(config.clone()).await);
    let blocker = HeadBlocker::hold(&db, &schema).await;
    let requests = (0..appends as u64)
        .map(|n| {
            single(
                &format!("s-{}", n % 16),
                ExpectedVersion::Any,
                events(n + 1, 1),
            )
        })
        .collect();
    let tasks = spawn_appends(&store, requests);
    tokio::time::sleep(QUIET).await;
    blocker.release().await;
    let outcomes = outcomes(tasks).await;
    let mut positions: Vec<GlobalPosition> = outcomes
        .iter()
        .map(|o| o.as_ref().expect("no conflict").first_position)
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=appends as u64).collect::<Vec<_>>());
    assert_eq!(read_everything(&*store).await.len(), appends);
    let written = transactions(&db, &schema).await;
    let largest = written.iter().map(|&(events, _)| events).max().unwrap_or(0);
    assert_eq!(
        largest, POSTGRES_WRITE_BATCH_APPENDS_MAX as i64,
        "batches fill up to the limit and no further: {written:?}"
    );
    assert!(written.len() >= 3, "{written:?}");
    drop(store);
    db.drop_schema(&schema).await.expect("drop schema");
}

/// E2, group commit limits: appends whose bytes add up to more than
/// `POSTGRES_WRITE_BATCH_BYTES_MAX` are split over transactions that each stay within it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_a_batch_takes_at_most_the_byte_limit() {
    let appends = POSTGRES_WRITE_BATCH_BYTES_MAX / EVENT_BYTES_MAX + 4;
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = Arc::new(open(config.clone()).await);
    let blocker = HeadBlocker::hold(&db, &schema).await;
    let requests = (0..appends as u64)
        .map(|n| {
            let mut event = test_event(n + 1);
            event.payload = vec![n as u8; EVENT_BYTES_MAX - event.event_type.len()];
            single(&format!("big-{n}"), ExpectedVersion::NoStream, vec![event])
        })
        .collect();
    let tasks = spawn_appends(&store, requests);
    tokio::time::sleep(QUIET).await;
    blocker.release().await;
    for outcome in outcomes(tasks).await {
        outcome.expect("no conflict");
    }
    let written = transactions(&db, &schema).await;
    assert_eq!(
        written.iter().map(|&(events, _)| events).sum::<i64>(),
        appends as i64
    );
    assert!(written.len() >= 2, "{written:?}");
    for &(_, bytes) in &written {
        assert!(
            bytes <= POSTGRES_WRITE_BATCH_BYTES_MAX as i64,
            "a transaction within the byte limit: {written:?}"
        );
    }
    drop(store);
    db.drop_schema(&schema).await.expect("drop schema");
}

/// E2, back-pressure: more appenders than the writer's queue and one batch hold together. The
/// ones that find the queue full wait for room — none is refused or lost — and once the head is
/// free every one is acknowledged and stored exactly once, gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn e2_a_full_queue_makes_appenders_wait_and_loses_nothing() {
    let appends = POSTGRES_WRITE_QUEUE_APPENDS_MAX + POSTGRES_WRITE_BATCH_APPENDS_MAX + 64;
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = Arc::new(open(config.clone()).await);
    let blocker = HeadBlocker::hold(&db, &schema).await;
    let requests = (0..appends as u64)
        .map(|n| {
            single(
                &format!("q-{n}"),
                ExpectedVersion::NoStream,
                events(n + 1, 1),
            )
        })
        .collect();
    let tasks = spawn_appends(&store, requests);
    tokio::time::sleep(QUIET).await;
    assert!(
        tasks.iter().all(|task| !task.is_finished()),
        "appenders wait (in the batch, in the queue or for room in it), none is refused"
    );
    blocker.release().await;
    let outcomes = outcomes(tasks).await;
    let mut by_position = BTreeMap::new();
    for (n, outcome) in outcomes.iter().enumerate() {
        let result = outcome.as_ref().expect("no conflict");
        assert_eq!(result.stream_versions, vec![(sid(&format!("q-{n}")), 1)]);
        by_position.insert(result.first_position, test_event(n as u64 + 1).event_id);
    }
    assert_eq!(
        by_position.len(),
        appends,
        "every append at its own position"
    );
    let stored = read_everything(&*store).await;
    assert_eq!(stored.len(), appends, "nothing lost, nothing doubled");
    for event in &stored {
        assert_eq!(by_position[&event.global_position], event.event_id);
    }
    drop(store);
    db.drop_schema(&schema).await.expect("drop schema");
}

/// E2: dropping a store ends its writer task: the writer's pool — and with it every server
/// connection of the store — goes away instead of lingering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_a_dropped_store_ends_its_writer() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let store = open(config.clone()).await;
    acked(
        store
            .append(&sid("s"), ExpectedVersion::NoStream, events(1, 1))
            .await,
    );
    let watcher = db.connect().await.expect("connection");
    let connections = || async {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&PostgresTestDatabase::application_name(&schema)],
            )
            .await
            .expect("pg_stat_activity")
            .get::<_, i64>(0)
    };
    assert!(connections().await > 0, "the store is connected");
    drop(store);
    timeout(STUCK, async {
        while connections().await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every connection of the dropped store closes");
    db.drop_schema(&schema).await.expect("drop schema");
}
