//! Group commit: one writer task per [`PostgresStore`](super::PostgresStore) writes every append
//! of that store, many in one transaction.
//!
//! Why: the global head's row lock is held through `COMMIT`, i.e. through the WAL flush (the
//! visibility rule, `docs/POSTGRES.md`), so one transaction per append lets the whole log commit
//! only one append per flush, however many callers wait. Appenders therefore send their request
//! over a bounded queue ([`POSTGRES_WRITE_QUEUE_APPENDS_MAX`]; a full queue makes them wait,
//! nothing is dropped) and await their own answer. The writer takes the first waiting request plus
//! everything queued while the previous transaction committed (up to
//! [`POSTGRES_WRITE_BATCH_APPENDS_MAX`] appends and [`POSTGRES_WRITE_BATCH_BYTES_MAX`] bytes) and
//! writes them in **one** transaction: N concurrent appenders share one lock hold and one WAL
//! flush. A lone appender still pays one transaction per append.
//!
//! Inside the transaction ([`write_batch`], also the body of the test-only held append) the
//! heads are checked first rather than guarded by a savepoint per append: the global head's row
//! is locked **first**, and since every writer of every process takes it before touching a stream
//! head or an event, nothing else can change the stream heads or the stored event ids until this
//! transaction ends. So one pipelined round trip reads the log head, the batch's stream heads and
//! any stored events with the batch's ids; the shared planner (`plan_append`: the rules of the
//! memory and sled stores) decides each append in queue order against that state plus the
//! batch's earlier appends — its own result, its own [`Conflict`](crate::Conflict), or its own
//! error (a reused event id) — and one statement writes the survivors: conditional stream-head
//! updates (checked to match what was read, so a broken assumption fails the batch instead of
//! forking a stream), every event via `unnest`, the new log head and its chain link, and one
//! `NOTIFY`. A refused append writes nothing and fails no one else.
//!
//! A failure that is not one appender's (the connection dies, the commit fails) answers every
//! appender of the batch with that error; the transaction rolls back, so nothing of it is
//! visible, and a retry with the same event ids is idempotent as ever. When the store is dropped
//! its queue closes and the task ends after the batch in flight; an appender whose answer can no
//! longer come gets a "writer has stopped" error instead of hanging.

use super::{SQL_EVENTS_BY_ID, advance, backend, checkout, from_db, recorded_event, to_db};
use crate::chain::ChainLink;
use crate::error::StoreError;
use crate::plan::{LogState, Plan, plan_append};
use crate::store::AppendOutcome;
use crate::types::{
    AppendResult, Conflict, GlobalPosition, RecordedEvent, StreamAppend, StreamId, StreamVersion,
};
use deadpool_postgres::{Pool, Transaction};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// Most appends waiting for a store's writer; further appenders wait for room (back-pressure,
/// never a drop).
pub const POSTGRES_WRITE_QUEUE_APPENDS_MAX: usize = 1024;
/// Most appends the writer puts in one transaction. Bounds the work of one lock hold, and so the
/// time to the first acknowledgement and the wait of other processes' writers.
pub const POSTGRES_WRITE_BATCH_APPENDS_MAX: usize = 256;
/// Most payload and event-type bytes the writer puts in one transaction (one append larger than
/// this still goes, alone). Bounds the statement's parameters and the writer's memory.
pub const POSTGRES_WRITE_BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

/// One appender's request and where its answer goes.
pub(super) struct Request {
    pub(super) appends: Vec<StreamAppend>,
    pub(super) reply: oneshot::Sender<AppendOutcome>,
}

/// The error an appender gets when the writer is gone.
pub(super) fn writer_stopped() -> StoreError {
    StoreError::Backend("the PostgreSQL store's writer has stopped".into())
}

/// What one append of a batch came to.
#[derive(Debug)]
pub(super) enum Answer {
    /// Its events are written in this transaction.
    Written(AppendResult),
    /// Every event was already stored by an earlier append: an exact retry, answered with the
    /// original result (nothing written).
    AlreadyStored(AppendResult),
}

/// What a batch wrote, and each append's own answer, in batch order.
pub(super) struct BatchOutcome {
    pub(super) answers: Vec<Result<Result<Answer, Conflict>, StoreError>>,
    /// The new log head, when anything was written.
    pub(super) last_position: Option<GlobalPosition>,
}

/// The writer task: group commit (see the module documentation).
pub(super) async fn run(
    pool: Pool,
    channel: String,
    head: Arc<watch::Sender<GlobalPosition>>,
    mut queue: mpsc::Receiver<Request>,
) {
    let mut held_over: Option<Request> = None;
    loop {
        let first = match held_over.take() {
            Some(request) => request,
            None => match queue.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let mut bytes = request_bytes(&first.appends);
        let mut requests = vec![first];
        while requests.len() < POSTGRES_WRITE_BATCH_APPENDS_MAX {
            let Ok(request) = queue.try_recv() else {
                break;
            };
            let size = request_bytes(&request.appends);
            if bytes + size > POSTGRES_WRITE_BATCH_BYTES_MAX {
                held_over = Some(request);
                break;
            }
            bytes += size;
            requests.push(request);
        }
        let batch: Vec<&[StreamAppend]> = requests.iter().map(|r| r.appends.as_slice()).collect();
        match commit_batch(&pool, &channel, &batch).await {
            Ok(outcome) => {
                if let Some(last) = outcome.last_position {
                    advance(&head, last);
                }
                for (request, answer) in requests.into_iter().zip(outcome.answers) {
                    let answer = answer.map(|a| {
                        a.map(|(Answer::Written(result) | Answer::AlreadyStored(result))| result)
                    });
                    // An appender that stopped waiting still had its events written; a retry
                    // with the same event ids gets this result.
                    let _ = request.reply.send(answer);
                }
            }
            Err(error) => {
                for request in requests {
                    let _ = request.reply.send(Err(shared_error(&error)));
                }
            }
        }
    }
}

/// The bytes an append adds to a batch (what [`POSTGRES_WRITE_BATCH_BYTES_MAX`] counts).
fn request_bytes(appends: &[StreamAppend]) -> usize {
    appends
        .iter()
        .flat_map(|a| &a.events)
        .map(|e| e.payload.len() + e.event_type.len())
        .sum()
}

/// One batch, one transaction: committed when it wrote anything, rolled back otherwise.
async fn commit_batch(
    pool: &Pool,
    channel: &str,
    batch: &[&[StreamAppend]],
) -> Result<BatchOutcome, StoreError> {
    let mut client = checkout(pool).await?;
    let tx = client.transaction().await.map_err(backend)?;
    let outcome = write_batch(&tx, channel, batch).await?;
    if outcome.last_position.is_some() {
        tx.commit().await.map_err(backend)?;
    } else {
        tx.rollback().await.map_err(backend)?;
    }
    Ok(outcome)
}

/// A batch failure, once for each appender of the batch (`StoreError` is not `Clone`: it may
/// one day carry a source that is not).
fn shared_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Backend(reason) => StoreError::Backend(reason.clone()),
        StoreError::Corrupt { position, reason } => StoreError::Corrupt {
            position: *position,
            reason: reason.clone(),
        },
        other => StoreError::Backend(other.to_string()),
    }
}

/// Locks the global head (first, so every writer takes its locks in one order and no two can
/// deadlock), then returns it and the link of its event.
const SQL_LOCK_HEAD: &str = "SELECT position, chain FROM log_head FOR UPDATE";
/// The heads of the batch's streams (a missing row is version 0).
const SQL_STREAM_HEADS: &str =
    "SELECT stream_id, version FROM streams WHERE stream_id = ANY($1::text[])";

/// Writes a planned batch in one statement: moves the stream heads (each only from the version
/// read under the lock: a row that moved, or a stream that appeared, makes a count come back
/// short), inserts every event, moves the log head and its chain link, queues the wake-up.
const SQL_WRITE_BATCH: &str = "\
WITH bumped AS (
    UPDATE streams AS s SET version = n.version
    FROM unnest($1::text[], $2::int8[], $3::int8[]) AS n(stream_id, previous, version)
    WHERE s.stream_id = n.stream_id AND s.version = n.previous
    RETURNING 1
), created AS (
    INSERT INTO streams (stream_id, version)
    SELECT n.stream_id, n.version FROM unnest($4::text[], $5::int8[]) AS n(stream_id, version)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING 1
), written AS (
    INSERT INTO events (global_position, event_id, stream_id, stream_version, event_type,
                        schema_version, recorded_at_s, recorded_at_ns, correlation_id,
                        causation_id, payload, chain)
    SELECT * FROM unnest($6::int8[], $7::uuid[], $8::text[], $9::int8[], $10::text[],
                         $11::int4[], $12::int8[], $13::int4[], $14::uuid[], $15::uuid[],
                         $16::bytea[], $17::bytea[])
    RETURNING 1
), moved AS (
    UPDATE log_head SET position = $18, chain = $19 RETURNING 1
), notified AS (
    SELECT pg_notify($20, $21)
)
SELECT (SELECT count(*) FROM bumped), (SELECT count(*) FROM created),
       (SELECT count(*) FROM written), (SELECT count(*) FROM moved),
       (SELECT count(*) FROM notified)";

/// The body of every append transaction (the writer's batches and the test-only held append):
/// lock the log head, read what the batch needs in the same round trip, plan each append in
/// order, write every planned event with one statement. Commit or rollback is the caller's.
pub(super) async fn write_batch(
    tx: &Transaction<'_>,
    channel: &str,
    batch: &[&[StreamAppend]],
) -> Result<BatchOutcome, StoreError> {
    let streams: Vec<&str> = batch
        .iter()
        .flat_map(|appends| appends.iter().map(|a| a.stream_id.as_str()))
        .collect();
    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|appends| appends.iter().flat_map(|a| &a.events))
        .map(|e| e.event_id)
        .collect();
    let lock = tx.prepare_cached(SQL_LOCK_HEAD).await.map_err(backend)?;
    let heads = tx.prepare_cached(SQL_STREAM_HEADS).await.map_err(backend)?;
    let by_id = tx.prepare_cached(SQL_EVENTS_BY_ID).await.map_err(backend)?;
    // Pipelined: all three are on the wire before the first answer; the server runs them in
    // order, so the reads see every commit made before the lock was granted.
    let (head_row, head_rows, stored_rows) = futures::future::try_join3(
        tx.query_one(&lock, &[]),
        tx.query(&heads, &[&streams]),
        tx.query(&by_id, &[&ids]),
    )
    .await
    .map_err(backend)?;
    let head = from_db(head_row.try_get(0).map_err(backend)?, 0)?;
    let head_link: Option<Vec<u8>> = head_row.try_get(1).map_err(backend)?;
    let head_link = head_link
        .map(|link| {
            ChainLink::try_from(link.as_slice()).map_err(|_| StoreError::Corrupt {
                position: head,
                reason: format!("the head's chain link has {} bytes", link.len()),
            })
        })
        .transpose()?;
    let mut before = BTreeMap::new();
    for row in &head_rows {
        let stream: String = row.try_get(0).map_err(backend)?;
        let stream = StreamId::new(stream).map_err(|e| StoreError::Corrupt {
            position: 0,
            reason: format!("a stream head has a bad id: {e}"),
        })?;
        before.insert(stream, from_db(row.try_get(1).map_err(backend)?, 0)?);
    }
    let mut stored = BTreeMap::new();
    for row in &stored_rows {
        let event = recorded_event(row)?;
        stored.insert(event.event_id, event);
    }
    let mut state = Overlay {
        versions: before.clone(),
        stored,
        written: Vec::new(),
        written_ids: BTreeMap::new(),
        head,
        head_link,
    };
    let mut answers = Vec::with_capacity(batch.len());
    for appends in batch {
        let answer = match plan_append(&mut state, appends) {
            Ok(Ok(Plan::Write { records, result })) => {
                records.into_iter().for_each(|record| state.add(record));
                Ok(Ok(Answer::Written(result)))
            }
            Ok(Ok(Plan::AlreadyStored(result))) => Ok(Ok(Answer::AlreadyStored(result))),
            Ok(Err(conflict)) => Ok(Err(conflict)),
            Err(error) => Err(error),
        };
        answers.push(answer);
    }
    if state.written.is_empty() {
        return Ok(BatchOutcome {
            answers,
            last_position: None,
        });
    }
    write_planned(tx, channel, &before, &state).await?;
    Ok(BatchOutcome {
        answers,
        last_position: Some(state.head),
    })
}

/// Runs [`SQL_WRITE_BATCH`] for the planned records and checks that every row it was meant to
/// touch was touched.
async fn write_planned(
    tx: &Transaction<'_>,
    channel: &str,
    before: &BTreeMap<StreamId, StreamVersion>,
    state: &Overlay,
) -> Result<(), StoreError> {
    let records = &state.written;
    let mut bumped: (Vec<&str>, Vec<i64>, Vec<i64>) = Default::default();
    let mut created: (Vec<&str>, Vec<i64>) = Default::default();
    for (stream, &version) in &state.versions {
        match before.get(stream) {
            Some(&previous) if previous == version => {}
            Some(&previous) => {
                bumped.0.push(stream.as_str());
                bumped.1.push(to_db(previous));
                bumped.2.push(to_db(version));
            }
            None => {
                created.0.push(stream.as_str());
                created.1.push(to_db(version));
            }
        }
    }
    let positions: Vec<i64> = records.iter().map(|r| to_db(r.global_position)).collect();
    let ids: Vec<Uuid> = records.iter().map(|r| r.event_id).collect();
    let streams: Vec<&str> = records.iter().map(|r| r.stream_id.as_str()).collect();
    let versions: Vec<i64> = records.iter().map(|r| to_db(r.stream_version)).collect();
    let types: Vec<&str> = records.iter().map(|r| r.event_type.as_str()).collect();
    let schema_versions: Vec<i32> = records
        .iter()
        .map(|r| i32::from(r.schema_version))
        .collect();
    let seconds: Vec<i64> = records.iter().map(|r| r.recorded_at.timestamp()).collect();
    let nanos: Vec<i32> = records
        .iter()
        .map(|r| r.recorded_at.timestamp_subsec_nanos() as i32)
        .collect();
    let correlations: Vec<Option<Uuid>> = records.iter().map(|r| r.correlation_id).collect();
    let causations: Vec<Option<Uuid>> = records.iter().map(|r| r.causation_id).collect();
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    let links: Vec<&[u8]> = records
        .iter()
        .map(|r| r.chain.as_ref().map_or(&[][..], |l| &l[..]))
        .collect();
    let head_link: Option<&[u8]> = state.head_link.as_ref().map(|l| &l[..]);
    let sql = tx.prepare_cached(SQL_WRITE_BATCH).await.map_err(backend)?;
    let row = tx
        .query_one(
            &sql,
            &[
                &bumped.0,
                &bumped.1,
                &bumped.2,
                &created.0,
                &created.1,
                &positions,
                &ids,
                &streams,
                &versions,
                &types,
                &schema_versions,
                &seconds,
                &nanos,
                &correlations,
                &causations,
                &payloads,
                &links,
                &to_db(state.head),
                &head_link,
                &channel,
                &state.head.to_string(),
            ],
        )
        .await
        .map_err(backend)?;
    let counts: [i64; 4] = [
        row.try_get(0).map_err(backend)?,
        row.try_get(1).map_err(backend)?,
        row.try_get(2).map_err(backend)?,
        row.try_get(3).map_err(backend)?,
    ];
    let meant = [
        bumped.0.len() as i64,
        created.0.len() as i64,
        records.len() as i64,
        1,
    ];
    // Under the log head's lock nothing else writes a stream head; a short count means that
    // promise was broken (e.g. an older build appending with another lock order), and the batch
    // is refused rather than written over someone else's events.
    if counts != meant {
        return Err(StoreError::Backend(format!(
            "the batch write touched {counts:?} rows (stream heads moved, stream heads created, \
             events, log head) instead of {meant:?}"
        )));
    }
    Ok(())
}

/// The log as the planner sees it inside a batch: what was read under the head lock plus the
/// records planned earlier in the batch (so a later append sees the earlier ones' events).
struct Overlay {
    /// Stream heads: read under the lock, then moved by the batch (absent: version 0).
    versions: BTreeMap<StreamId, StreamVersion>,
    /// Stored events with the batch's ids (read under the lock).
    stored: BTreeMap<Uuid, RecordedEvent>,
    /// The records the batch writes, in position order.
    written: Vec<RecordedEvent>,
    /// Where each of `written` is, by id.
    written_ids: BTreeMap<Uuid, usize>,
    head: GlobalPosition,
    head_link: Option<ChainLink>,
}

impl Overlay {
    fn add(&mut self, record: RecordedEvent) {
        assert_eq!(
            record.global_position,
            self.head + 1,
            "a batch's positions follow the head, gap-free"
        );
        self.head = record.global_position;
        self.head_link = record.chain;
        self.versions
            .insert(record.stream_id.clone(), record.stream_version);
        self.written_ids.insert(record.event_id, self.written.len());
        self.written.push(record);
    }
}

impl LogState for Overlay {
    fn stream_version(&mut self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        Ok(self.versions.get(stream_id).copied().unwrap_or(0))
    }

    fn event_by_id(&mut self, event_id: &Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        if let Some(&index) = self.written_ids.get(event_id) {
            return Ok(Some(self.written[index].clone()));
        }
        Ok(self.stored.get(event_id).cloned())
    }

    fn head(&self) -> GlobalPosition {
        self.head
    }

    fn head_link(&mut self) -> Result<Option<ChainLink>, StoreError> {
        Ok(self.head_link)
    }
}
