//! PostgreSQL: how fast are our appends, against a raw multi-row INSERT of the same rows, and
//! how does the whole command loop compare with a peer — cqrs-es 0.5 with postgres-es 0.5 — on
//! the same workload (conversations of 20 events from the same decider) and the same database?
//!
//! Both sides run the same loop per command: load the chat's events, fold them, decide, append
//! at the loaded version (cqrs-es's `CqrsFramework::execute` does exactly that against its
//! `events` table). Each side gets its own schema, dropped at the end. The database is
//! `CHAT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! Run: `cargo bench -p chat-benches --bench peer` (`PEER_SECONDS` sets the length of each
//! case, 3 by default); figures in docs/PERFORMANCE.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_benches::{
    COMMANDS_PER_CONVERSATION, EVENTS_PER_CONVERSATION, Row, Table, commands, decided_at, envelope,
    envelopes, machine, per_second, postgres_url, stream_id,
};
use chat_core::conversation::{ChatCommand, ChatEvent, ChatState, Conversation, Rejection};
use chat_core::{Decider, EventKind};
use chat_store::{
    EventStore, ExpectedVersion, NewEvent, PostgresConfig, PostgresStore, READ_COUNT_MAX, Upcasters,
};
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent};
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The writer counts of the issue.
const WRITERS: [u64; 3] = [1, 8, 64];
/// Events per append: one, and ten (half a conversation).
const EVENTS_PER_APPEND: [usize; 2] = [1, 10];
/// Connections per side: the writers share at most this many, on both sides of a comparison,
/// so the benchmark leaves room under `max_connections` (100 by default) for other clients.
const CONNECTIONS_MAX: u64 = 16;
/// Conversations driven at once in the command-loop comparison.
const CONVERSATIONS_LIVE: u64 = 8;

// ---- the peer: the same decider as a cqrs-es aggregate ------------------------------------------

/// The chat's state as a cqrs-es aggregate (serialisable only for snapshots, which this workload,
/// like ours, does not use).
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
struct PeerChat(ChatState);

/// A chat event as cqrs-es stores it (JSON in its `events` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct PeerEvent(ChatEvent);

impl DomainEvent for PeerEvent {
    fn event_type(&self) -> String {
        self.0.event_type().to_owned()
    }

    fn event_version(&self) -> String {
        self.0.schema_version().to_string()
    }
}

/// A command with the instant the host decided it at.
struct PeerCommand {
    command: ChatCommand,
    at: DateTime<Utc>,
}

impl Aggregate for PeerChat {
    const TYPE: &'static str = "chat";
    type Command = PeerCommand;
    type Event = PeerEvent;
    type Error = Rejection;
    type Services = ();

    async fn handle(
        &mut self,
        command: PeerCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> std::result::Result<(), Rejection> {
        for event in Conversation::decide(&self.0, &command.command, command.at)? {
            sink.write(PeerEvent(event), self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: PeerEvent) {
        Conversation::evolve(&mut self.0, &event.0);
    }
}

// ---- schemas ------------------------------------------------------------------------------------

/// A schema name no other run uses.
fn fresh_schema(what: &str) -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("chat_bench_{what}_{seconds}_{}", std::process::id())
}

async fn admin() -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", postgres_url()))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The raw baseline's table: the store's `events` columns and constraints, nothing else.
async fn raw_schema(client: &tokio_postgres::Client, schema: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.events (
                 global_position bigserial PRIMARY KEY,
                 event_id uuid NOT NULL UNIQUE,
                 stream_id text NOT NULL,
                 stream_version bigint NOT NULL,
                 event_type text NOT NULL,
                 schema_version integer NOT NULL,
                 recorded_at_s bigint NOT NULL,
                 recorded_at_ns integer NOT NULL,
                 correlation_id uuid,
                 causation_id uuid,
                 payload bytea NOT NULL,
                 UNIQUE (stream_id, stream_version));"
        ))
        .await?;
    Ok(())
}

/// postgres-es's tables (its `db/init.sql`) in their own schema.
async fn peer_schema(client: &tokio_postgres::Client, schema: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.events (
                 aggregate_type text NOT NULL, aggregate_id text NOT NULL,
                 sequence bigint CHECK (sequence >= 0) NOT NULL,
                 event_type text NOT NULL, event_version text NOT NULL,
                 payload json NOT NULL, metadata json NOT NULL,
                 PRIMARY KEY (aggregate_type, aggregate_id, sequence));
             CREATE TABLE {schema}.snapshots (
                 aggregate_type text NOT NULL, aggregate_id text NOT NULL,
                 last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
                 current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
                 payload json NOT NULL,
                 PRIMARY KEY (aggregate_type, aggregate_id, last_sequence));"
        ))
        .await?;
    Ok(())
}

// ---- appends ------------------------------------------------------------------------------------

/// Conversation `n`'s events cut into appends of `size` events.
fn appends_of(n: u64, size: usize) -> Vec<Vec<NewEvent>> {
    let events: Vec<NewEvent> = envelopes(n).into_iter().flatten().collect();
    events.chunks(size).map(<[NewEvent]>::to_vec).collect()
}

/// Where the append benchmark writes: our store, or raw INSERTs over plain connections.
#[derive(Clone)]
enum Sink {
    Store(Arc<PostgresStore>),
    Raw(Arc<Vec<tokio_postgres::Client>>, String),
}

impl Sink {
    async fn append(&self, writer: u64, n: u64, version: u64, events: Vec<NewEvent>) {
        match self {
            Sink::Store(store) => {
                store
                    .append(&stream_id(n), ExpectedVersion::Exact(version), events)
                    .await
                    .expect("the append is stored")
                    .expect("no conflict: each writer owns its chats");
            }
            Sink::Raw(clients, schema) => {
                let client = &clients[(writer % clients.len() as u64) as usize];
                let stream = stream_id(n).as_str().to_owned();
                let rows: Vec<[Box<dyn ToSql + Sync + Send>; 10]> = events
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let row: [Box<dyn ToSql + Sync + Send>; 10] = [
                            Box::new(e.event_id),
                            Box::new(stream.clone()),
                            Box::new((version + 1 + i as u64) as i64),
                            Box::new(e.event_type),
                            Box::new(i32::from(e.schema_version)),
                            Box::new(e.recorded_at.timestamp()),
                            Box::new(e.recorded_at.timestamp_subsec_nanos() as i32),
                            Box::new(e.correlation_id),
                            Box::new(e.causation_id),
                            Box::new(e.payload),
                        ];
                        row
                    })
                    .collect();
                let values: Vec<String> = (0..rows.len())
                    .map(|r| {
                        let p: Vec<String> = (1..=10).map(|c| format!("${}", r * 10 + c)).collect();
                        format!("({})", p.join(","))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO {schema}.events (event_id, stream_id, stream_version, \
                     event_type, schema_version, recorded_at_s, recorded_at_ns, \
                     correlation_id, causation_id, payload) VALUES {}",
                    values.join(",")
                );
                let params: Vec<&(dyn ToSql + Sync)> = rows
                    .iter()
                    .flatten()
                    .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                client.execute(&sql, &params).await.expect("raw insert");
            }
        }
    }
}

/// `writers` tasks append conversations (writer `w` takes conversations `w`, `w + writers`, …)
/// in appends of `size` events until `run` has passed; events written and time taken.
async fn append_run(sink: Sink, writers: u64, size: usize, run: Duration) -> (u64, Duration) {
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + run;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let sink = sink.clone();
        let written = written.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < deadline {
                let mut version = 0;
                for events in appends_of(n, size) {
                    let count = events.len() as u64;
                    sink.append(w, n, version, events).await;
                    version += count;
                    written.fetch_add(count, Ordering::Relaxed);
                }
                n += writers;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a writer");
    }
    (written.load(Ordering::Relaxed), started.elapsed())
}

// ---- the command loop ---------------------------------------------------------------------------

/// Ours: load the chat's stream, decode and fold it, decide, append at the loaded version.
async fn our_command(store: &PostgresStore, codec: &Upcasters, n: u64, step: usize) {
    let stream = stream_id(n);
    let history = store
        .read_stream(&stream, 1, READ_COUNT_MAX)
        .await
        .expect("the stream reads");
    let events: Vec<ChatEvent> = history
        .iter()
        .map(|r| codec.decode(r).expect("a chat event"))
        .collect();
    let state = Conversation::replay(&events);
    let at = decided_at(n, step);
    let decided = Conversation::decide(&state, &commands(n)[step], at).expect("accepted");
    let envelopes: Vec<NewEvent> = decided
        .iter()
        .enumerate()
        .map(|(i, e)| envelope(e, n, events.len() + i, at).expect("encodes"))
        .collect();
    store
        .append(
            &stream,
            ExpectedVersion::Exact(history.len() as u64),
            envelopes,
        )
        .await
        .expect("the append is stored")
        .expect("no conflict: one driver per chat");
}

/// Which side runs the command loop.
#[derive(Clone)]
enum Side {
    Ours(Arc<PostgresStore>, Arc<Upcasters>),
    Peer(Arc<PostgresCqrs<PeerChat>>),
}

/// `CONVERSATIONS_LIVE` drivers each run whole conversations, command by command, until `run`
/// has passed; conversations finished and time taken.
async fn conversation_run(side: Side, run: Duration) -> (u64, Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + run;
    let mut tasks = Vec::new();
    for d in 0..CONVERSATIONS_LIVE {
        let side = side.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = d;
            while Instant::now() < deadline {
                for step in 0..COMMANDS_PER_CONVERSATION {
                    match &side {
                        Side::Ours(store, codec) => our_command(store, codec, n, step).await,
                        Side::Peer(cqrs) => {
                            let command = PeerCommand {
                                command: commands(n)[step].clone(),
                                at: decided_at(n, step),
                            };
                            cqrs.execute(&stream_id(n).to_string(), command)
                                .await
                                .expect("the peer accepts the command");
                        }
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += CONVERSATIONS_LIVE;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a driver");
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

async fn bench(run: Duration) -> Result<()> {
    let admin = admin().await?;
    let mut schemas = Vec::new();
    let mut appends = Table::new(
        "PostgreSQL appends vs a raw multi-row INSERT of the same rows",
        "events/s",
    );
    for size in EVENTS_PER_APPEND {
        for writers in WRITERS {
            let connections = writers.min(CONNECTIONS_MAX);
            let schema = fresh_schema(&format!("store_{writers}_{size}"));
            schemas.push(schema.clone());
            let config = PostgresConfig::new(postgres_url())
                .schema(schema.clone())
                .pool_size(connections as usize);
            let store = Arc::new(PostgresStore::open(config).await?);
            let (events, elapsed) =
                append_run(Sink::Store(store.clone()), writers, size, run).await;
            drop(store);
            let raw = fresh_schema(&format!("raw_{writers}_{size}"));
            schemas.push(raw.clone());
            raw_schema(&admin, &raw).await?;
            let mut clients = Vec::new();
            for _ in 0..connections {
                clients.push(crate::admin().await?);
            }
            let (raw_events, raw_elapsed) =
                append_run(Sink::Raw(Arc::new(clients), raw), writers, size, run).await;
            appends.push(Row {
                name: format!("{writers} writers × {size}-event appends"),
                rate: per_second(events, elapsed),
                baseline: Some(per_second(raw_events, raw_elapsed)),
                note: format!("{connections} connections each side"),
            });
        }
    }
    println!("{}", appends.markdown());

    let mut peer = Table::new(
        format!(
            "Whole conversations ({EVENTS_PER_CONVERSATION} events, {COMMANDS_PER_CONVERSATION} \
             commands), {CONVERSATIONS_LIVE} at a time: ours vs cqrs-es 0.5 + postgres-es 0.5"
        ),
        "events/s",
    );
    let peer_schema_name = fresh_schema("peer");
    schemas.push(peer_schema_name.clone());
    peer_schema(&admin, &peer_schema_name).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(CONVERSATIONS_LIVE as u32)
        .connect(&postgres_url())
        .await?;
    let repo = PostgresEventRepository::new(pool).with_tables(
        &format!("{peer_schema_name}.events"),
        &format!("{peer_schema_name}.snapshots"),
    );
    let cqrs = Arc::new(CqrsFramework::new(
        PersistedEventStore::new_event_store(repo),
        vec![],
        (),
    ));
    let (peer_done, peer_elapsed) = conversation_run(Side::Peer(cqrs), run).await;
    let peer_rate = per_second(peer_done * EVENTS_PER_CONVERSATION as u64, peer_elapsed);
    let ours_schema = fresh_schema("ours");
    schemas.push(ours_schema.clone());
    let config = PostgresConfig::new(postgres_url())
        .schema(ours_schema)
        .pool_size(CONVERSATIONS_LIVE as usize);
    let store = Arc::new(PostgresStore::open(config).await?);
    let (ours_done, ours_elapsed) =
        conversation_run(Side::Ours(store, Arc::new(Upcasters::new())), run).await;
    peer.push(Row {
        name: "baseline: cqrs-es + postgres-es (`CqrsFramework::execute`)".into(),
        rate: peer_rate,
        baseline: None,
        note: format!(
            "{peer_done} conversations in {:.1} s",
            peer_elapsed.as_secs_f64()
        ),
    });
    peer.push(Row {
        name: "**ours: `PostgresStore`, read + fold + decide + append** (target ≥ 3×)".into(),
        rate: per_second(ours_done * EVENTS_PER_CONVERSATION as u64, ours_elapsed),
        baseline: Some(peer_rate),
        note: format!(
            "{ours_done} conversations in {:.1} s",
            ours_elapsed.as_secs_f64()
        ),
    });
    println!("{}", peer.markdown());
    for schema in schemas {
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let run = Duration::from_secs_f64(
        std::env::var("PEER_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3.0),
    );
    println!("peer: {} s per case — {}", run.as_secs_f64(), machine());
    tokio::runtime::Runtime::new()?.block_on(bench(run))
}
