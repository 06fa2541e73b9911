//! The sled store: the embedded default (E2), a log in a local data directory.
//!
//! # Group commit
//!
//! One writer thread owns every write. Appenders send their request over a bounded channel and
//! await the answer. The writer takes the first waiting request plus everything else already
//! queued (up to [`SLED_WRITE_BATCH_APPENDS_MAX`]), plans them one after the other against the stored
//! log plus the batch so far (so a later request sees the earlier ones' events), applies all new
//! records as **one** atomic `sled::Batch`, calls `flush` (fsync) **once**, and only then publishes
//! the new head and answers every request of the batch. Concurrent appenders thus share a flush;
//! a lone appender pays one flush per append. A plain OS thread rather than a tokio task, because
//! `flush` blocks on the disk.
//!
//! Because one thread assigns positions and batches commit in order, global positions are
//! gap-free and follow commit order. Readers only see events up to the published (flushed) head:
//! sled makes a batch readable before it is flushed, and an event that a crash could still take
//! back must never be seen, or a reader could checkpoint past a position that is later reused.
//!
//! # Layout (one sled tree)
//!
//! - `m` `format` → [`SLED_FORMAT`] — refuses to open foreign or newer data;
//! - `e` position (8 bytes, big endian) → record: format byte, CRC-32 of the rest, header length,
//!   MessagePack header (the envelope, named fields), payload bytes;
//! - `s` stream id `0x00` version (8 bytes BE) → position (stream ids have no control characters,
//!   so the 0 byte cannot occur inside one);
//! - `i` event id (16 bytes) → position (the idempotency index).
//!
//! # Damage
//!
//! A record whose checksum, framing or header does not hold, or a position or stream version
//! missing from the middle of the log, is a [`StoreError::Corrupt`] naming the position — on open
//! (the last record and its index entries are checked) or on the read that meets it. Nothing is
//! skipped. After a failed write or flush the store refuses further appends: sled's in-memory
//! state may then be ahead of the disk, and only a reopen tells what is really there.

use crate::chain::ChainLink;
use crate::error::StoreError;
use crate::plan::{LogState, Plan, plan_append, validate_appends, validate_read_count};
use crate::sled_vault::SledKeyVault;
use crate::store::{AppendOutcome, EventStore};
use crate::types::{GlobalPosition, RecordedEvent, StreamAppend, StreamId, StreamVersion};
use crate::vault::KeyVault;
use async_trait::async_trait;
use chrono::DateTime;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// Most appends the writer plans, applies and flushes together. Bounds the work (and the time to
/// the first acknowledgement) of one group commit.
pub const SLED_WRITE_BATCH_APPENDS_MAX: usize = 256;
/// Most appends waiting for the writer; further appenders wait for room (back-pressure).
pub const SLED_WRITE_QUEUE_APPENDS_MAX: usize = 1024;
/// How long opening waits for another handle to release the data directory's lock before it
/// reports the directory as in use.
pub const SLED_OPEN_LOCK_WAIT_MS: u64 = 5_000;
/// The data format this build reads and writes, stored under `m format`.
pub const SLED_FORMAT: &[u8] = b"chat-store-sled/1";

/// How often, at most, the writer records its flushed head in the head mark file (see
/// `HeadMark`): damage in sled's files that loses events older than this is found at open.
pub const SLED_HEAD_MARK_INTERVAL_MS: u64 = 1_000;
const HEAD_MARK_FILE: &str = "chat-store-head";
const HEAD_MARK_PREFIX: &str = "chat-store head ";
const RECORD_FORMAT: u8 = 1;
/// Format byte, CRC-32 and header length.
const RECORD_PREFIX_BYTES: usize = 1 + 4 + 4;
const FORMAT_KEY: &[u8] = b"mformat";

/// An [`EventStore`] in a sled data directory. Open one per directory and process (sled locks
/// the directory); share it behind an `Arc`.
#[derive(Debug)]
pub struct SledStore {
    shared: Arc<Shared>,
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    vault: Arc<SledKeyVault>,
}

#[derive(Debug)]
struct Shared {
    db: sled::Db,
    /// The data directory.
    path: PathBuf,
    /// The last flushed position: what readers may see.
    head: watch::Sender<GlobalPosition>,
    /// Group commits done (flushes that made appends durable), to show that appenders share them.
    flushes: std::sync::atomic::AtomicU64,
}

struct Request {
    appends: Vec<StreamAppend>,
    reply: oneshot::Sender<AppendOutcome>,
}

fn backend(path: &Path, what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sled store {}: {what}: {error}", path.display()))
}

impl SledStore {
    /// Opens (or creates) the store in `path` and checks the end of its log.
    ///
    /// Blocking (sled recovers its log on open): call it at start-up or from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_db(&path)?;
        match db.get(FORMAT_KEY).map_err(|e| backend(&path, "read", e))? {
            Some(format) if format.as_ref() == SLED_FORMAT => {}
            Some(format) => {
                return Err(backend(
                    &path,
                    "unknown data format",
                    String::from_utf8_lossy(&format),
                ));
            }
            None if db.is_empty() => {
                db.insert(FORMAT_KEY, SLED_FORMAT)
                    .and_then(|_| db.flush())
                    .map_err(|e| backend(&path, "cannot initialise", e))?;
            }
            None => {
                return Err(backend(
                    &path,
                    "not a chat-store data directory",
                    "data without a format marker",
                ));
            }
        }
        let head = check_tail(&db)?;
        if let Some(mark) = read_head_mark(&path)?
            && mark > head
        {
            return Err(SledStore::corrupt(
                head + 1,
                format!(
                    "sled recovered the log only up to position {head}, but position {mark} was \
                     flushed before (head mark): sled's files are damaged"
                ),
            ));
        }
        let vault = Arc::new(SledKeyVault::open(&db)?);
        let shared = Arc::new(Shared {
            db,
            path: path.clone(),
            head: watch::Sender::new(head),
            flushes: std::sync::atomic::AtomicU64::new(0),
        });
        let (requests, queue) = mpsc::channel(SLED_WRITE_QUEUE_APPENDS_MAX);
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("chat-store-sled-writer".into())
                .spawn(move || write_loop(&shared, queue))
                .map_err(|e| backend(&path, "cannot start the writer", e))?
        };
        Ok(Self {
            shared,
            path,
            requests: Some(requests),
            writer: Mutex::new(Some(writer)),
            vault,
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer (after it has answered every queued append) and closes the data
    /// directory, so that it can be opened again — also by this process. Blocking.
    pub fn close(mut self) {
        self.requests = None;
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer {
            // A panicked writer has nothing left to flush; its appenders already got an error.
            let _ = writer.join();
        }
        // Dropping the last `Db` handle flushes and unlocks the directory.
    }

    fn head(&self) -> GlobalPosition {
        *self.shared.head.borrow()
    }

    fn corrupt(position: GlobalPosition, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            position,
            reason: reason.into(),
        }
    }

    fn read_record(&self, position: GlobalPosition) -> Result<RecordedEvent, StoreError> {
        read_record(&self.shared.db, position)?
            .ok_or_else(|| Self::corrupt(position, "the record is missing"))
    }
}

/// Opens sled, waiting up to [`SLED_OPEN_LOCK_WAIT_MS`] for the directory lock: sled's
/// background I/O threads can hold it for a moment after the previous handle in this process
/// was dropped (sled's own tests block on the lock for the same reason).
fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(SLED_OPEN_LOCK_WAIT_MS);
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(error)
                if error.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => return Err(backend(path, "cannot open", error)),
        }
    }
}

fn event_key(position: GlobalPosition) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn stream_prefix(stream_id: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream_id.as_str().len() + 10);
    key.push(b's');
    key.extend_from_slice(stream_id.as_str().as_bytes());
    key.push(0);
    key
}

fn stream_key(stream_id: &StreamId, version: StreamVersion) -> Vec<u8> {
    let mut key = stream_prefix(stream_id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn id_key(event_id: &Uuid) -> [u8; 17] {
    let mut key = [b'i'; 17];
    key[1..].copy_from_slice(event_id.as_bytes());
    key
}

fn u64_at(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The envelope as stored, without the payload (kept raw after it). Named fields, so a later
/// format can add one without breaking old records.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    event_id: Uuid,
    stream_id: String,
    stream_version: StreamVersion,
    global_position: GlobalPosition,
    event_type: String,
    schema_version: u16,
    recorded_at_s: i64,
    recorded_at_ns: u32,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
    /// The hash-chain link (`crate::chain`); absent in records written before the chain.
    #[serde(default)]
    chain: Option<ChainLink>,
}

fn encode(record: &RecordedEvent) -> Result<Vec<u8>, StoreError> {
    let header = Header {
        event_id: record.event_id,
        stream_id: record.stream_id.as_str().to_owned(),
        stream_version: record.stream_version,
        global_position: record.global_position,
        event_type: record.event_type.clone(),
        schema_version: record.schema_version,
        recorded_at_s: record.recorded_at.timestamp(),
        recorded_at_ns: record.recorded_at.timestamp_subsec_nanos(),
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        chain: record.chain,
    };
    let header = rmp_serde::to_vec_named(&header).map_err(|e| {
        StoreError::Backend(format!("cannot encode event {}: {e}", record.event_id))
    })?;
    let mut bytes = Vec::with_capacity(RECORD_PREFIX_BYTES + header.len() + record.payload.len());
    bytes.push(RECORD_FORMAT);
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&record.payload);
    let crc = crc32fast::hash(&bytes[5..]);
    bytes[1..5].copy_from_slice(&crc.to_be_bytes());
    Ok(bytes)
}

/// Decodes the record stored under position `position`, checking everything that can be.
fn decode(position: GlobalPosition, bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    let corrupt = |reason: String| SledStore::corrupt(position, reason);
    if bytes.len() < RECORD_PREFIX_BYTES {
        return Err(corrupt(format!(
            "the record is truncated to {} bytes",
            bytes.len()
        )));
    }
    if bytes[0] != RECORD_FORMAT {
        return Err(corrupt(format!("unknown record format {}", bytes[0])));
    }
    let crc = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[5..]) != crc {
        return Err(corrupt(
            "checksum mismatch (the record is truncated or damaged)".into(),
        ));
    }
    let header_len = u32::from_be_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
    let Some(header) = bytes.get(RECORD_PREFIX_BYTES..RECORD_PREFIX_BYTES + header_len) else {
        return Err(corrupt("the header runs past the record".into()));
    };
    let header: Header =
        rmp_serde::from_slice(header).map_err(|e| corrupt(format!("unreadable header: {e}")))?;
    if header.global_position != position {
        return Err(corrupt(format!(
            "the record says it is at position {}",
            header.global_position
        )));
    }
    let stream_id =
        StreamId::new(header.stream_id).map_err(|e| corrupt(format!("bad stream id: {e}")))?;
    let recorded_at = DateTime::from_timestamp(header.recorded_at_s, header.recorded_at_ns)
        .ok_or_else(|| corrupt("recorded-at out of range".into()))?;
    Ok(RecordedEvent {
        event_id: header.event_id,
        stream_id,
        stream_version: header.stream_version,
        global_position: position,
        event_type: header.event_type,
        schema_version: header.schema_version,
        recorded_at,
        correlation_id: header.correlation_id,
        causation_id: header.causation_id,
        payload: bytes[RECORD_PREFIX_BYTES + header_len..].to_vec(),
        chain: header.chain,
    })
}

fn read_record(
    db: &sled::Db,
    position: GlobalPosition,
) -> Result<Option<RecordedEvent>, StoreError> {
    let bytes = db
        .get(event_key(position))
        .map_err(|e| StoreError::Backend(format!("sled read at position {position}: {e}")))?;
    bytes.map(|b| decode(position, &b)).transpose()
}

/// The position of the last record, after checking that record and its index entries: a torn
/// tail is found at open, not by the first reader.
fn check_tail(db: &sled::Db) -> Result<GlobalPosition, StoreError> {
    let last = db
        .scan_prefix(b"e")
        .next_back()
        .transpose()
        .map_err(|e| StoreError::Backend(format!("sled scan: {e}")))?;
    let Some((key, value)) = last else {
        return Ok(0);
    };
    let position = u64_at(&key[1..])
        .ok_or_else(|| SledStore::corrupt(0, format!("a record key of {} bytes", key.len())))?;
    let record = decode(position, &value)?;
    let indexed = |key: &[u8]| -> Result<bool, StoreError> {
        let value = db
            .get(key)
            .map_err(|e| StoreError::Backend(format!("sled read: {e}")))?;
        Ok(value.and_then(|v| u64_at(&v)) == Some(position))
    };
    if !indexed(&id_key(&record.event_id))?
        || !indexed(&stream_key(&record.stream_id, record.stream_version))?
    {
        return Err(SledStore::corrupt(
            position,
            "the last record's index entries are missing",
        ));
    }
    Ok(position)
}

/// The stored log plus the records planned earlier in the current batch.
struct Overlay<'a> {
    db: &'a sled::Db,
    versions: BTreeMap<StreamId, StreamVersion>,
    ids: BTreeMap<Uuid, RecordedEvent>,
    head: GlobalPosition,
    /// The link of the last record added to this batch (`None`: nothing added yet).
    head_link: Option<Option<ChainLink>>,
}

impl LogState for Overlay<'_> {
    fn stream_version(&mut self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        if let Some(version) = self.versions.get(stream_id) {
            return Ok(*version);
        }
        let prefix = stream_prefix(stream_id);
        let last = self
            .db
            .scan_prefix(&prefix)
            .keys()
            .next_back()
            .transpose()
            .map_err(|e| StoreError::Backend(format!("sled scan: {e}")))?;
        let version = match last {
            None => 0,
            Some(key) => u64_at(&key[prefix.len()..]).ok_or_else(|| {
                SledStore::corrupt(
                    0,
                    format!("a stream index key of stream {stream_id} is bad"),
                )
            })?,
        };
        self.versions.insert(stream_id.clone(), version);
        Ok(version)
    }

    fn event_by_id(&mut self, event_id: &Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        if let Some(record) = self.ids.get(event_id) {
            return Ok(Some(record.clone()));
        }
        let position = self
            .db
            .get(id_key(event_id))
            .map_err(|e| StoreError::Backend(format!("sled read: {e}")))?;
        let Some(position) = position else {
            return Ok(None);
        };
        let position = u64_at(&position).ok_or_else(|| {
            SledStore::corrupt(0, format!("the id index entry of event {event_id} is bad"))
        })?;
        let record = read_record(self.db, position)?
            .ok_or_else(|| SledStore::corrupt(position, "the record is missing"))?;
        if record.event_id != *event_id {
            return Err(SledStore::corrupt(
                position,
                format!("the id index points event {event_id} here"),
            ));
        }
        Ok(Some(record))
    }

    fn head(&self) -> GlobalPosition {
        self.head
    }

    fn head_link(&mut self) -> Result<Option<ChainLink>, StoreError> {
        if let Some(link) = self.head_link {
            return Ok(link);
        }
        if self.head == 0 {
            return Ok(None);
        }
        let record = read_record(self.db, self.head)?
            .ok_or_else(|| SledStore::corrupt(self.head, "the record is missing"))?;
        self.head_link = Some(record.chain);
        Ok(record.chain)
    }
}

impl Overlay<'_> {
    fn add(&mut self, record: RecordedEvent, batch: &mut sled::Batch) -> Result<(), StoreError> {
        let position = record.global_position.to_be_bytes();
        batch.insert(&event_key(record.global_position), encode(&record)?);
        batch.insert(
            stream_key(&record.stream_id, record.stream_version),
            &position,
        );
        batch.insert(&id_key(&record.event_id), &position);
        self.head = record.global_position;
        self.head_link = Some(record.chain);
        self.versions
            .insert(record.stream_id.clone(), record.stream_version);
        self.ids.insert(record.event_id, record);
        Ok(())
    }
}

/// The writer thread: group commit (see the module documentation).
fn write_loop(shared: &Shared, mut queue: mpsc::Receiver<Request>) {
    let mut broken: Option<String> = None;
    let mut mark = HeadMark::new(&shared.path, *shared.head.borrow());
    while let Some(first) = queue.blocking_recv() {
        let mut requests = vec![first];
        while requests.len() < SLED_WRITE_BATCH_APPENDS_MAX {
            match queue.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        if let Some(reason) = &broken {
            for request in requests {
                let _ = request.reply.send(Err(StoreError::Backend(reason.clone())));
            }
            continue;
        }
        let durable = *shared.head.borrow();
        let mut overlay = Overlay {
            db: &shared.db,
            versions: BTreeMap::new(),
            ids: BTreeMap::new(),
            head: durable,
            head_link: None,
        };
        let mut batch = sled::Batch::default();
        let mut answers = Vec::with_capacity(requests.len());
        for request in requests {
            let outcome = match plan_append(&mut overlay, &request.appends) {
                Ok(Ok(Plan::Write { records, result })) => records
                    .into_iter()
                    .try_for_each(|record| overlay.add(record, &mut batch))
                    .map(|()| Ok(result)),
                Ok(Ok(Plan::AlreadyStored(result))) => Ok(Ok(result)),
                Ok(Err(conflict)) => Ok(Err(conflict)),
                Err(error) => Err(error),
            };
            answers.push((request.reply, outcome));
        }
        if overlay.head > durable {
            let written = shared
                .db
                .apply_batch(batch)
                .and_then(|()| shared.db.flush());
            if let Err(error) = written {
                let reason = format!(
                    "sled write failed ({error}); appends are refused until the store is reopened"
                );
                for (reply, _) in answers {
                    let _ = reply.send(Err(StoreError::Backend(reason.clone())));
                }
                broken = Some(reason);
                continue;
            }
            shared
                .flushes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            shared.head.send_replace(overlay.head);
        }
        for (reply, outcome) in answers {
            // An appender that stopped waiting still had its events written; a retry with the
            // same event ids gets this result.
            let _ = reply.send(outcome);
        }
        mark.maybe_write(*shared.head.borrow(), false);
    }
    if broken.is_none() {
        mark.maybe_write(*shared.head.borrow(), true);
    }
}

/// The head mark: a small file beside sled's, holding a position that sled has already flushed.
///
/// sled recovers its log up to the first damaged entry and calls that the end, so damage in its
/// files would silently shorten our log. The mark lets the open tell: if sled comes back with a
/// lower head than the mark, acknowledged events are gone, and the open fails naming the first
/// missing position. The mark is written at most every [`SLED_HEAD_MARK_INTERVAL_MS`] (and when
/// the writer stops), after the acknowledgements, so it costs no latency and about one fsync a
/// second; it is never ahead of what sled has flushed.
struct HeadMark {
    path: PathBuf,
    written: GlobalPosition,
    at: std::time::Instant,
}

impl HeadMark {
    fn new(dir: &Path, head: GlobalPosition) -> Self {
        Self {
            path: dir.join(HEAD_MARK_FILE),
            written: head,
            at: std::time::Instant::now(),
        }
    }

    fn maybe_write(&mut self, head: GlobalPosition, now: bool) {
        let due = self.at.elapsed() >= std::time::Duration::from_millis(SLED_HEAD_MARK_INTERVAL_MS);
        if head == self.written || !(now || due) {
            return;
        }
        // A failed mark write only weakens the damage check; the log itself is fine.
        if let Err(error) = write_head_mark(&self.path, head) {
            tracing::warn!(path = %self.path.display(), %error, "cannot write the head mark");
            return;
        }
        self.written = head;
        self.at = std::time::Instant::now();
    }
}

/// Writes the mark atomically: a temporary file, fsync, rename, fsync of the directory.
fn write_head_mark(path: &Path, head: GlobalPosition) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{HEAD_MARK_PREFIX}{head}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The mark's position, `None` when there is no mark (new or older data directories).
fn read_head_mark(dir: &Path) -> Result<Option<GlobalPosition>, StoreError> {
    let path = dir.join(HEAD_MARK_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(backend(&path, "cannot read the head mark", error)),
    };
    text.strip_prefix(HEAD_MARK_PREFIX)
        .and_then(|n| n.trim_end().parse().ok())
        .map(Some)
        .ok_or_else(|| backend(&path, "unreadable head mark", format!("{text:?}")))
}

#[async_trait]
impl EventStore for SledStore {
    async fn append_multi(&self, appends: Vec<StreamAppend>) -> AppendOutcome {
        validate_appends(&appends)?;
        let closed = || backend(&self.path, "append", "the writer has stopped");
        let requests = self.requests.as_ref().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request { appends, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: StreamVersion,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        let head = self.head();
        let prefix = stream_prefix(stream_id);
        let first_version = from_version.max(1);
        let mut events = Vec::new();
        let entries = self
            .shared
            .db
            .range(stream_key(stream_id, first_version)..)
            .take_while(|entry| entry.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)));
        for (expected_version, entry) in (first_version..).zip(entries) {
            if events.len() == max_count {
                break;
            }
            let (key, value) = entry.map_err(|e| backend(&self.path, "scan", e))?;
            let position = u64_at(&value).ok_or_else(|| {
                Self::corrupt(
                    0,
                    format!("the index entry of {stream_id} is {} bytes", value.len()),
                )
            })?;
            if position > head {
                break;
            }
            let version = u64_at(&key[prefix.len()..]);
            if version != Some(expected_version) {
                return Err(Self::corrupt(
                    position,
                    format!(
                        "stream {stream_id} lacks version {expected_version} before this record"
                    ),
                ));
            }
            let record = self.read_record(position)?;
            if &record.stream_id != stream_id || record.stream_version != expected_version {
                return Err(Self::corrupt(
                    position,
                    format!("the index of {stream_id} v{expected_version} points here"),
                ));
            }
            events.push(record);
        }
        Ok(events)
    }

    async fn read_all(
        &self,
        from_position: GlobalPosition,
        max_count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_read_count(max_count)?;
        let from = from_position.max(1);
        let head = self.head();
        if from > head || max_count == 0 {
            return Ok(Vec::new());
        }
        let last = head.min(from.saturating_add(max_count as u64 - 1));
        let mut events = Vec::with_capacity((last - from + 1) as usize);
        let mut expected = from;
        for entry in self.shared.db.range(event_key(from)..=event_key(last)) {
            let (key, value) = entry.map_err(|e| backend(&self.path, "scan", e))?;
            if key.as_ref() != event_key(expected) {
                return Err(Self::corrupt(expected, "the record is missing"));
            }
            events.push(decode(expected, &value)?);
            expected += 1;
        }
        if expected <= last {
            return Err(Self::corrupt(expected, "the record is missing"));
        }
        Ok(events)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, StoreError> {
        let head = self.head();
        let prefix = stream_prefix(stream_id);
        // The last index entry, unless it belongs to a batch that is not flushed yet.
        for entry in self.shared.db.scan_prefix(&prefix).rev() {
            let (key, value) = entry.map_err(|e| backend(&self.path, "scan", e))?;
            let position = u64_at(&value)
                .ok_or_else(|| Self::corrupt(0, format!("an index entry of {stream_id} is bad")))?;
            if position <= head {
                return u64_at(&key[prefix.len()..])
                    .ok_or_else(|| Self::corrupt(position, "a stream index key is bad"));
            }
        }
        Ok(0)
    }

    async fn head_position(&self) -> Result<GlobalPosition, StoreError> {
        Ok(self.head())
    }

    fn subscribe(&self) -> watch::Receiver<GlobalPosition> {
        self.shared.head.subscribe()
    }

    fn key_vault(&self) -> Option<Arc<dyn KeyVault>> {
        Some(self.vault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ExpectedVersion, NewEvent};
    use std::sync::atomic::Ordering;

    fn request(n: u64) -> (Request, oneshot::Receiver<AppendOutcome>) {
        let (reply, answer) = oneshot::channel();
        let event = NewEvent {
            event_id: Uuid::from_u128(n.into()),
            event_type: "GroupCommitted".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp_micros(0).expect("time"),
            correlation_id: None,
            causation_id: None,
            payload: vec![0x90],
        };
        let appends = vec![StreamAppend {
            stream_id: StreamId::new(format!("group-{n}")).expect("id"),
            expected: ExpectedVersion::NoStream,
            events: vec![event],
        }];
        (Request { appends, reply }, answer)
    }

    /// Appends that queue up while the writer is busy share one flush, up to
    /// `SLED_WRITE_BATCH_APPENDS_MAX` per flush, and are acknowledged in queue order. The queue
    /// is filled before the writer runs, which is what a busy writer sees.
    #[test]
    fn e3_queued_appends_share_one_flush() {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let shared = Shared {
            db: sled::open(dir.path()).expect("sled"),
            path: dir.path().to_path_buf(),
            head: watch::Sender::new(0),
            flushes: std::sync::atomic::AtomicU64::new(0),
        };
        let total = SLED_WRITE_BATCH_APPENDS_MAX as u64 + 10;
        let (sender, queue) = mpsc::channel(SLED_WRITE_QUEUE_APPENDS_MAX);
        let mut answers = Vec::new();
        for n in 1..=total {
            let (request, answer) = request(n);
            assert!(sender.try_send(request).is_ok(), "room in the queue");
            answers.push(answer);
        }
        drop(sender);
        write_loop(&shared, queue);
        assert_eq!(
            shared.flushes.load(Ordering::Relaxed),
            2,
            "two group commits"
        );
        for (n, answer) in (1..=total).zip(answers) {
            let result = answer
                .blocking_recv()
                .expect("answered")
                .expect("no error")
                .expect("no conflict");
            assert_eq!(result.first_position, n, "acknowledged in queue order");
        }
        assert_eq!(*shared.head.borrow(), total);
        assert_eq!(read_head_mark(dir.path()).expect("mark"), Some(total));
    }
}
