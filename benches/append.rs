//! How many events per second can the sled store make durable? 1, 8 and 64 concurrent writers,
//! each appending whole conversations (from the real decider) to its own chats in single-event or
//! 10-event appends with `Exact` expectations; against the same-process baseline of raw sled:
//! the very bytes the store wrote (records and index entries, read back from its directory),
//! applied and flushed in two ways: grouped as group commit would ideally group them (one thread,
//! one batch and one flush per `writers` appends — the baseline of the ratio), and one batch and
//! flush per append from as many threads as writers (noted beside it).
//!
//! Run: `cargo bench -p chat-benches --bench append` (`APPEND_SECONDS` sets the store's run
//! length per case, 3 by default); figures in docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chat_benches::{Row, Table, envelopes, machine, per_second, stream_id};
use chat_store::{EventStore, ExpectedVersion, NewEvent, SledStore};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The writer counts of the issue.
const WRITERS: [u64; 3] = [1, 8, 64];
/// Events per append: one, and ten (half a conversation).
const EVENTS_PER_APPEND: [usize; 2] = [1, 10];

/// Conversation `n`'s events cut into appends of `size` events.
fn appends_of(n: u64, size: usize) -> Vec<Vec<NewEvent>> {
    let events: Vec<NewEvent> = envelopes(n).into_iter().flatten().collect();
    events.chunks(size).map(<[NewEvent]>::to_vec).collect()
}

/// `writers` tasks append conversations (writer `w` takes conversations `w`, `w + writers`, …)
/// until `run` has passed; returns the events made durable and the time taken.
async fn store_run(
    store: Arc<SledStore>,
    writers: u64,
    size: usize,
    run: Duration,
) -> Result<(u64, Duration)> {
    let written = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + run;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let written = written.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = w;
            while Instant::now() < deadline {
                let stream = stream_id(n);
                let mut version = 0;
                for events in appends_of(n, size) {
                    let count = events.len() as u64;
                    store
                        .append(&stream, ExpectedVersion::Exact(version), events)
                        .await
                        .expect("the append is stored")
                        .expect("no conflict: each writer owns its chats");
                    version += count;
                    written.fetch_add(count, Ordering::Relaxed);
                }
                n += writers;
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok((written.load(Ordering::Relaxed), started.elapsed()))
}

/// The sled entries (key, value) of one global position.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Every key and value the store wrote, grouped by the global position they belong to: the
/// record (`e` + position) and its two index entries, whose values are the position.
fn written_bytes(dir: &std::path::Path) -> Result<Vec<Entries>> {
    let db = sled::open(dir)?;
    let mut by_position: BTreeMap<u64, Entries> = BTreeMap::new();
    for entry in db.iter() {
        let (key, value) = entry?;
        let position = match key.first() {
            Some(b'e') => u64::from_be_bytes(key[1..9].try_into()?),
            Some(b's' | b'i') => u64::from_be_bytes(value.as_ref().try_into()?),
            _ => continue,
        };
        by_position
            .entry(position)
            .or_default()
            .push((key.to_vec(), value.to_vec()));
    }
    Ok(by_position.into_values().collect())
}

/// The baseline: `threads` threads apply the same entries in batches of `size` positions (an
/// append's events have consecutive positions) and flush after each batch.
fn raw_run(entries: &[Entries], size: usize, threads: u64) -> Result<(u64, Duration)> {
    let dir = tempfile::TempDir::new()?;
    let db = sled::open(dir.path())?;
    let batches: Vec<&[Entries]> = entries.chunks(size).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads as usize {
            let db = &db;
            let batches = &batches;
            scope.spawn(move || {
                for batch in batches.iter().skip(t).step_by(threads as usize) {
                    let mut raw = sled::Batch::default();
                    for (key, value) in batch.iter().flatten() {
                        raw.insert(key.as_slice(), value.as_slice());
                    }
                    db.apply_batch(raw).expect("raw batch");
                    db.flush().expect("raw flush");
                }
            });
        }
    });
    Ok((entries.len() as u64, started.elapsed()))
}

fn main() -> Result<()> {
    let run = Duration::from_secs_f64(
        std::env::var("APPEND_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3.0),
    );
    println!("append: {} s per case — {}", run.as_secs_f64(), machine());
    let rt = tokio::runtime::Runtime::new()?;
    let mut table = Table::new(
        "Durable sled appends vs raw sled, `writers` appends per batch + flush",
        "events/s",
    );
    for size in EVENTS_PER_APPEND {
        for writers in WRITERS {
            let dir = tempfile::TempDir::new()?;
            let store = Arc::new(SledStore::open(dir.path())?);
            let (events, elapsed) = rt.block_on(store_run(store.clone(), writers, size, run))?;
            Arc::into_inner(store)
                .expect("the writers are done")
                .close();
            let entries = written_bytes(dir.path())?;
            assert_eq!(
                entries.len() as u64,
                events,
                "every acknowledged event is stored"
            );
            let (raw_events, raw_elapsed) = raw_run(&entries, size, writers)?;
            // The ceiling of group commit: every writer's append in one batch, one flush.
            let (grouped_events, grouped_elapsed) = raw_run(&entries, size * writers as usize, 1)?;
            let rate = per_second(events, elapsed);
            let raw = per_second(raw_events, raw_elapsed);
            let grouped = per_second(grouped_events, grouped_elapsed);
            let target = if writers == 64 {
                " (target ≥ 50,000/s, ≥ 50 %)"
            } else {
                ""
            };
            table.push(Row {
                name: format!("{writers} writers × {size}-event appends{target}"),
                rate,
                baseline: Some(grouped),
                note: format!(
                    "{events} events in {:.1} s; raw with a flush per append from {writers} \
                     threads: {} events/s ({:.0} % of it)",
                    elapsed.as_secs_f64(),
                    raw.round(),
                    100.0 * rate / raw
                ),
            });
        }
    }
    println!("{}", table.markdown());
    Ok(())
}
