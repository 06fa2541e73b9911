//! How fast does the engine rebuild state from its log? Decode + fold of 1,000,000 chat events
//! (50,000 conversations of 20 events from the real decider) read from the in-memory store and
//! from the sled store, against same-process baselines over the same bytes: the raw MessagePack
//! decode of the payloads, and the raw sled scan of the store's data directory.
//!
//! Everything runs on one thread (a current-thread runtime), so the figures are per core.
//! Run: `cargo bench -p chat-benches --bench replay` (`REPLAY_EVENTS` scales it down,
//! `REPLAY_SLED=0` skips the sled half, whose fill takes minutes); figures in
//! docs/PERFORMANCE.md.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_benches::{
    COMMANDS_PER_CONVERSATION, EVENTS_PER_CONVERSATION, Row, Table, envelopes, machine, per_second,
    stream_id, time,
};
use chat_core::Decider;
use chat_core::conversation::{ChatEvent, ChatState, Conversation};
use chat_store::{
    EventStore, ExpectedVersion, MemoryStore, READ_COUNT_MAX, RecordedEvent,
    STREAMS_PER_APPEND_MAX, SledStore, StreamAppend, StreamId, Upcasters,
};

/// Chats that are live at once while the log is written: their events interleave in the log the
/// way a busy service's do (every chat's step `k` before any chat's step `k + 1`).
const CHATS_LIVE: u64 = 512;
/// Timed runs per figure (the best is reported, the spread noted).
const RUNS: usize = 3;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Writes `conversations` conversations into `store`: `CHATS_LIVE` chats at a time, each command's
/// events appended with `Exact` expectations, up to `STREAMS_PER_APPEND_MAX` chats per
/// multi-stream append, the appends of one step in flight together (so sled shares flushes).
async fn fill(store: Arc<dyn EventStore>, conversations: u64) -> Result<()> {
    for wave in (0..conversations).step_by(CHATS_LIVE as usize) {
        let chats: Vec<u64> = (wave..conversations.min(wave + CHATS_LIVE)).collect();
        let mut histories: Vec<_> = chats.iter().map(|&n| envelopes(n).into_iter()).collect();
        let mut versions = vec![0u64; chats.len()];
        for _step in 0..COMMANDS_PER_CONVERSATION {
            let mut appends = Vec::new();
            for (group, indexes) in (0..chats.len())
                .collect::<Vec<_>>()
                .chunks(STREAMS_PER_APPEND_MAX)
                .enumerate()
            {
                let request: Vec<StreamAppend> = indexes
                    .iter()
                    .map(|&i| {
                        let append = StreamAppend {
                            stream_id: stream_id(chats[i]),
                            expected: ExpectedVersion::Exact(versions[i]),
                            events: histories[i].next().expect("one decision per step"),
                        };
                        versions[i] += append.events.len() as u64;
                        append
                    })
                    .collect();
                let store = store.clone();
                appends.push(tokio::spawn(async move {
                    (group, store.append_multi(request).await)
                }));
            }
            for append in appends {
                let (group, outcome) = append.await?;
                outcome?.map_err(|c| format!("group {group}: {c}"))?;
            }
        }
    }
    Ok(())
}

/// Reads the whole log in pages of `READ_COUNT_MAX`, handing each page to `page`.
async fn scan(store: &dyn EventStore, mut page: impl FnMut(Vec<RecordedEvent>)) -> u64 {
    let mut position = 1;
    loop {
        let events = store
            .read_all(position, READ_COUNT_MAX)
            .await
            .expect("the log reads");
        let Some(last) = events.last() else {
            return position - 1;
        };
        position = last.global_position + 1;
        page(events);
    }
}

/// The states a replay builds, one per stream. A `HashMap`: a reader looks a chat up once per
/// event and needs no order, and a B-tree of 50,000 string keys costs more per event (about
/// 0.4 µs, a dozen string comparisons on cold keys) than the rest of the fold.
type States = HashMap<StreamId, ChatState>;

/// The replay every reader of the log does: decode through the codec (upcasters included) and
/// fold each chat's events into its state. The decoded event is owned and dropped right after,
/// so it is folded by value (`evolve_owned` moves the record and message bodies into the state).
fn fold(states: &mut States, codec: &Upcasters, page: Vec<RecordedEvent>) {
    for recorded in page {
        let event: ChatEvent = codec.decode(&recorded).expect("a chat event");
        Conversation::evolve_owned(states.entry(recorded.stream_id).or_default(), event);
    }
}

/// The same replay folding by reference (`evolve`, which clones what the state keeps): the path
/// every replay took before `evolve_owned`, measured in the same run for the ratio.
fn fold_by_reference(states: &mut States, codec: &Upcasters, page: Vec<RecordedEvent>) {
    for recorded in page {
        let event: ChatEvent = codec.decode(&recorded).expect("a chat event");
        Conversation::evolve(states.entry(recorded.stream_id).or_default(), &event);
    }
}

/// The replay as this benchmark measured it before `evolve_owned` (one run in the same process
/// shows what the changes bought): states in a `BTreeMap` keyed by stream id, folded by reference,
/// and (in its caller) the states dropped inside the timed run.
fn fold_as_before(
    states: &mut std::collections::BTreeMap<StreamId, ChatState>,
    codec: &Upcasters,
    page: Vec<RecordedEvent>,
) {
    for recorded in page {
        let event: ChatEvent = codec.decode(&recorded).expect("a chat event");
        match states.get_mut(&recorded.stream_id) {
            Some(state) => Conversation::evolve(state, &event),
            None => Conversation::evolve(states.entry(recorded.stream_id).or_default(), &event),
        }
    }
}

/// The same fold with the payload decoded by `rmp_serde` directly (no upcaster lookup): what
/// the codec costs on top of the raw decode.
fn fold_direct(states: &mut States, page: Vec<RecordedEvent>) {
    for recorded in page {
        let event: ChatEvent = rmp_serde::from_slice(&recorded.payload).expect("a chat event");
        Conversation::evolve_owned(states.entry(recorded.stream_id).or_default(), event);
    }
}

/// Times `runs` runs of `run`, each on a fresh input from `setup` (untimed), fastest first.
///
/// What `run` returns is handed to `check` and dropped after the clock stops: a replay's product
/// is the state it built, and tearing 50,000 chat states down again (a quarter of a second)
/// is not part of rebuilding them.
fn time_replay<I, O>(
    runs: usize,
    mut setup: impl FnMut() -> I,
    mut run: impl FnMut(I) -> O,
    mut check: impl FnMut(&O),
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let input = setup();
        let started = Instant::now();
        let output = run(input);
        times.push(started.elapsed());
        check(&output);
        drop(output);
    }
    times.sort();
    times
}

/// Best time as a rate of `events`, with the spread of the runs as a note.
fn rate(events: u64, times: &[Duration]) -> (f64, String) {
    let best = times[0];
    let worst = times[times.len() - 1];
    (
        per_second(events, best),
        format!(
            "best of {}: {:.0} ms (worst {:.0} ms)",
            times.len(),
            best.as_secs_f64() * 1e3,
            worst.as_secs_f64() * 1e3
        ),
    )
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let events_wanted: u64 = std::env::var("REPLAY_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let conversations = events_wanted.div_ceil(EVENTS_PER_CONVERSATION as u64);
    let events = conversations * EVENTS_PER_CONVERSATION as u64;
    let rt = runtime();
    println!(
        "replay: {events} events ({conversations} conversations) — {}",
        machine()
    );
    let codec = Upcasters::new();

    // --- memory -------------------------------------------------------------------------------
    let memory = Arc::new(MemoryStore::new());
    let started = Instant::now();
    rt.block_on(fill(memory.clone(), conversations))?;
    eprintln!(
        "  (memory store filled in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let mut log = Vec::with_capacity(events as usize);
    let read = rt.block_on(scan(memory.as_ref(), |page| log.extend(page)));
    assert_eq!(read, events, "the memory log holds every event");
    let payloads: Vec<Vec<u8>> = log.iter().map(|e| e.payload.clone()).collect();
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();

    let mut table = Table::new(format!("Replay of {events} events, one core"), "events/s");
    let raw_decode = time(RUNS, || {
        for payload in &payloads {
            let event: ChatEvent = rmp_serde::from_slice(payload).expect("a chat event");
            black_box(event);
        }
    });
    let (raw_decode_rate, note) = rate(events, &raw_decode);
    table.push(Row {
        name: "baseline: raw MessagePack decode (`rmp_serde::from_slice`)".into(),
        rate: raw_decode_rate,
        baseline: None,
        note: format!(
            "{note}; payloads average {} bytes",
            payload_bytes / events as usize
        ),
    });
    let codec_decode = time(RUNS, || {
        for recorded in &log {
            let event: ChatEvent = codec.decode(recorded).expect("a chat event");
            black_box(event);
        }
    });
    let (r, note) = rate(events, &codec_decode);
    table.push(Row {
        name: "codec decode only (`Upcasters::decode`)".into(),
        rate: r,
        baseline: Some(raw_decode_rate),
        note,
    });
    let decoded: Vec<(StreamId, ChatEvent)> = log
        .iter()
        .map(|e| {
            (
                e.stream_id.clone(),
                rmp_serde::from_slice(&e.payload).expect("event"),
            )
        })
        .collect();
    let fold_owned = time_replay(
        RUNS,
        || decoded.clone(),
        |decoded| {
            let mut states = States::new();
            for (stream, event) in decoded {
                Conversation::evolve_owned(states.entry(stream).or_default(), event);
            }
            states
        },
        |states| assert_eq!(states.len() as u64, conversations),
    );
    let (r, note) = rate(events, &fold_owned);
    table.push(Row {
        name: "fold only, by value (`Conversation::evolve_owned` of decoded events into a map \
               of chats)"
            .into(),
        rate: r,
        baseline: None,
        note,
    });
    let fold_by_ref = time_replay(
        RUNS,
        || decoded.clone(),
        |decoded| {
            let mut states = States::new();
            for (stream, event) in decoded {
                Conversation::evolve(states.entry(stream).or_default(), &event);
            }
            states
        },
        |states| assert_eq!(states.len() as u64, conversations),
    );
    let (r, note) = rate(events, &fold_by_ref);
    table.push(Row {
        name: "fold only, by reference (`Conversation::evolve`, clones what it keeps)".into(),
        rate: r,
        baseline: None,
        note,
    });
    drop(decoded);
    let memory_read = time(RUNS, || {
        rt.block_on(scan(memory.as_ref(), |page| {
            black_box(page);
        }));
    });
    let (r, note) = rate(events, &memory_read);
    table.push(Row {
        name: "memory: `read_all` only".into(),
        rate: r,
        baseline: None,
        note,
    });
    let one_state_per_chat =
        |states: &States| assert_eq!(states.len() as u64, conversations, "one state per chat");
    let memory_replay = time_replay(
        RUNS,
        || (),
        |()| {
            let mut states = States::new();
            rt.block_on(scan(memory.as_ref(), |page| {
                fold(&mut states, &codec, page)
            }));
            states
        },
        one_state_per_chat,
    );
    let (memory_rate, note) = rate(events, &memory_replay);
    table.push(Row {
        name:
            "**memory: `read_all` + codec decode + fold by value** (target ≥ 2,000,000/s, ≥ 70 %)"
                .into(),
        rate: memory_rate,
        baseline: Some(raw_decode_rate),
        note,
    });
    let memory_by_ref = time_replay(
        RUNS,
        || (),
        |()| {
            let mut states = States::new();
            rt.block_on(scan(memory.as_ref(), |page| {
                fold_by_reference(&mut states, &codec, page)
            }));
            states
        },
        one_state_per_chat,
    );
    let (r, note) = rate(events, &memory_by_ref);
    table.push(Row {
        name: "memory: `read_all` + codec decode + fold by reference (`evolve`)".into(),
        rate: r,
        baseline: Some(raw_decode_rate),
        note,
    });
    let memory_before = time(RUNS, || {
        let mut states = std::collections::BTreeMap::new();
        rt.block_on(scan(memory.as_ref(), |page| {
            fold_as_before(&mut states, &codec, page)
        }));
        assert_eq!(states.len() as u64, conversations, "one state per chat");
    });
    let (r, note) = rate(events, &memory_before);
    table.push(Row {
        name:
            "memory: the same as measured until 2026-11-21 12:00 (B-tree of chats, by reference, \
               teardown timed)"
                .into(),
        rate: r,
        baseline: Some(raw_decode_rate),
        note,
    });
    let memory_direct = time_replay(
        RUNS,
        || (),
        |()| {
            let mut states = States::new();
            rt.block_on(scan(memory.as_ref(), |page| fold_direct(&mut states, page)));
            states
        },
        one_state_per_chat,
    );
    let (r, note) = rate(events, &memory_direct);
    table.push(Row {
        name: "memory: `read_all` + direct `rmp_serde` decode + fold by value (no codec)".into(),
        rate: r,
        baseline: Some(raw_decode_rate),
        note,
    });
    drop(log);
    drop(payloads);
    drop(memory);
    if std::env::var("REPLAY_SLED").is_ok_and(|v| v == "0") {
        println!("{}", table.markdown());
        return Ok(());
    }

    // --- sled ---------------------------------------------------------------------------------
    let dir = tempfile::TempDir::new()?;
    let sled = Arc::new(SledStore::open(dir.path())?);
    let started = Instant::now();
    rt.block_on(fill(sled.clone(), conversations))?;
    eprintln!(
        "  (sled store filled in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let sled = Arc::into_inner(sled).expect("no other handle");
    sled.close();

    let db = sled::open(dir.path())?;
    let mut records = 0;
    let raw_scan = time(RUNS, || {
        let mut bytes = 0usize;
        records = 0;
        for entry in db.scan_prefix(b"e") {
            let (_, value) = entry.expect("sled scans");
            bytes += value.len();
            records += 1;
        }
        black_box(bytes);
    });
    assert_eq!(records, events, "the raw scan sees every record");
    let (raw_scan_rate, note) = rate(events, &raw_scan);
    drop(db);
    // Both baselines together: the cost floor of reading and decoding the same bytes.
    let floor = per_second(events, raw_scan[0] + raw_decode[0]);
    table.push(Row {
        name: "baseline: raw sled scan of the records (`scan_prefix`)".into(),
        rate: raw_scan_rate,
        baseline: None,
        note,
    });
    let sled = SledStore::open(dir.path())?;
    let sled_read = time(RUNS, || {
        rt.block_on(scan(&sled, |page| {
            black_box(page);
        }));
    });
    let (r, note) = rate(events, &sled_read);
    table.push(Row {
        name: "sled: `read_all` only (vs raw scan)".into(),
        rate: r,
        baseline: Some(raw_scan_rate),
        note,
    });
    let sled_replay = time_replay(
        RUNS,
        || (),
        |()| {
            let mut states = States::new();
            rt.block_on(scan(&sled, |page| fold(&mut states, &codec, page)));
            states
        },
        one_state_per_chat,
    );
    let (r, note) = rate(events, &sled_replay);
    table.push(Row {
        name: "**sled: `read_all` + codec decode + fold by value** (vs raw scan + raw decode)"
            .into(),
        rate: r,
        baseline: Some(floor),
        note,
    });
    sled.close();
    println!("{}", table.markdown());
    Ok(())
}
