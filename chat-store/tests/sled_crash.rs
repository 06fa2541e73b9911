//! E3: acknowledged appends survive SIGKILL, and nothing unacknowledged is half there.
//!
//! The test binary re-executes itself as a child (`CHAT_STORE_CRASH_CHILD_DIR` set) that appends
//! to a sled store with four concurrent writers — two-stream appends of three events, so group
//! commit and multi-stream atomicity are both under fire — and prints `ACK` for every
//! acknowledged append. The parent kills it with SIGKILL at a random moment, reopens the
//! directory and checks every event byte for byte. 20 cycles when `CI=true`, 5 otherwise; the
//! seed is printed and can be replayed with `CHAT_STORE_CRASH_SEED`.

use chat_store::conformance::ci;
use chat_store::{
    EventStore, ExpectedVersion, NewEvent, RecordedEvent, SledStore, StreamAppend, StreamId,
};
use chrono::DateTime;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const CHILD_ENV: &str = "CHAT_STORE_CRASH_CHILD_DIR";
const SEED_ENV: &str = "CHAT_STORE_CRASH_SEED";
const TEST_NAME: &str = "e3_sled_acknowledged_appends_survive_sigkill";
const WRITERS: u64 = 4;
/// A child that is never killed stops by itself after this long (a broken parent must not leave
/// it running).
const CHILD_LIFETIME_S: u64 = 60;

fn stream(writer: u64, part: &str) -> StreamId {
    StreamId::new(format!("crash-{writer}-{part}")).expect("valid")
}

/// Event `index` (0..3) of append `seq` of `writer`: everything derives from these numbers, so
/// the parent can check any stored event byte for byte. Sizes vary up to 64 KiB, so that some
/// batches span several sled I/O buffers.
fn event(writer: u64, seq: u64, index: u64) -> NewEvent {
    let size = match (seq * 7 + index) % 10 {
        0 => 64 * 1024,
        n => (n as usize) * 300,
    };
    let mut payload = format!("{writer}/{seq}/{index}/").into_bytes();
    payload.extend((0..size).map(|i| (i as u64 ^ seq ^ (writer << 3) ^ index) as u8));
    NewEvent {
        event_id: Uuid::from_u128(((writer as u128) << 96) | ((seq as u128) << 8) | index as u128),
        event_type: "CrashTested".into(),
        schema_version: 1,
        recorded_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + seq as i64)
            .expect("time"),
        correlation_id: Some(Uuid::from_u128(writer as u128)),
        causation_id: None,
        payload,
    }
}

/// Append `seq` of `writer`: two events to its `a` stream, one to its `b` stream, atomically.
fn append_request(writer: u64, seq: u64) -> Vec<StreamAppend> {
    vec![
        StreamAppend {
            stream_id: stream(writer, "a"),
            expected: ExpectedVersion::Exact(seq * 2),
            events: vec![event(writer, seq, 0), event(writer, seq, 1)],
        },
        StreamAppend {
            stream_id: stream(writer, "b"),
            expected: ExpectedVersion::Exact(seq),
            events: vec![event(writer, seq, 2)],
        },
    ]
}

fn run_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(SledStore::open(dir).expect("the child opens the store"));
    runtime.block_on(async {
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(CHILD_LIFETIME_S);
                let mut seq = store
                    .stream_version(&stream(writer, "b"))
                    .await
                    .expect("version");
                while Instant::now() < deadline {
                    let result = store
                        .append_multi(append_request(writer, seq))
                        .await
                        .expect("no store error in the child")
                        .expect("no conflict: one writer per stream");
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "ACK {writer} {seq} {} {}",
                        result.first_position, result.last_position
                    )
                    .and_then(|()| out.flush())
                    .expect("stdout");
                    seq += 1;
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
    });
}

/// A small xorshift: the kill moments only need to vary, and replay from a printed seed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max
    }
}

/// Runs one child until a random moment after its first acknowledgement, kills it, and returns
/// the acknowledgements it printed as `(writer, seq) -> (first, last)`.
fn run_and_kill(dir: &Path, moments: &mut Moments) -> Vec<((u64, u64), (u64, u64))> {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut stdout = child.stdout.take().expect("piped");
    let (first_ack, first_ack_seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buffer = [0_u8; 4096];
        let mut told = false;
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => return all,
                Ok(n) => {
                    all.extend_from_slice(&buffer[..n]);
                    if !told && all.windows(4).any(|w| w == b"ACK ") {
                        told = true;
                        let _ = first_ack.send(());
                    }
                }
            }
        }
    });
    first_ack_seen
        .recv_timeout(Duration::from_secs(30))
        .expect("the child acknowledges an append within 30 s");
    std::thread::sleep(Duration::from_millis(moments.next_ms(250)));
    assert!(
        child.try_wait().expect("child status").is_none(),
        "the child stopped before it was killed"
    );
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    let output = reader.join().expect("reader");
    // Only complete lines count: the kill may cut the last one.
    let complete = match output.iter().rposition(|&b| b == b'\n') {
        Some(end) => &output[..=end],
        None => &[][..],
    };
    String::from_utf8_lossy(complete)
        .lines()
        .filter_map(|line| line.strip_prefix("ACK "))
        .map(|line| {
            let n: Vec<u64> = line
                .split(' ')
                .map(|x| x.parse().expect("a number"))
                .collect();
            ((n[0], n[1]), (n[2], n[3]))
        })
        .collect()
}

/// Reopens the directory and checks it against every acknowledgement so far.
fn verify(dir: &Path, acked: &BTreeMap<(u64, u64), (u64, u64)>) -> usize {
    let store = SledStore::open(dir).expect("the store reopens after SIGKILL");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let all: Vec<RecordedEvent> = runtime.block_on(async {
        let mut all = Vec::new();
        loop {
            let page = store
                .read_all(all.len() as u64 + 1, 1000)
                .await
                .expect("every stored record reads back");
            if page.is_empty() {
                break all;
            }
            all.extend(page);
        }
    });
    let head = runtime.block_on(store.head_position()).expect("head");
    assert_eq!(all.len() as u64, head, "read_all reaches the head");
    // Group the stored events by append; each must be whole, intact and contiguous.
    let mut appends: BTreeMap<(u64, u64), Vec<&RecordedEvent>> = BTreeMap::new();
    for (i, stored) in all.iter().enumerate() {
        assert_eq!(stored.global_position, i as u64 + 1, "gap-free positions");
        let id = stored.event_id.as_u128();
        let (writer, seq, index) = ((id >> 96) as u64, (id >> 8) as u64, (id & 0xff) as u64);
        let want = event(writer, seq, index);
        let (stream_id, version) = if index < 2 {
            (stream(writer, "a"), seq * 2 + index + 1)
        } else {
            (stream(writer, "b"), seq + 1)
        };
        assert!(
            stored.is_retry_of(&stream_id, &want) && stored.stream_version == version,
            "event {writer}/{seq}/{index} at position {} is intact",
            stored.global_position
        );
        appends.entry((writer, seq)).or_default().push(stored);
    }
    for ((writer, seq), events) in &appends {
        let positions: Vec<u64> = events.iter().map(|e| e.global_position).collect();
        assert_eq!(
            positions.len(),
            3,
            "append {writer}/{seq} is whole, not half there: {positions:?}"
        );
        assert_eq!(
            positions[2],
            positions[0] + 2,
            "append {writer}/{seq} is contiguous"
        );
        assert!(
            *seq == 0 || appends.contains_key(&(*writer, seq - 1)),
            "writer {writer}'s appends have no hole before {seq}"
        );
    }
    for ((writer, seq), (first, last)) in acked {
        let events = appends
            .get(&(*writer, *seq))
            .unwrap_or_else(|| panic!("acknowledged append {writer}/{seq} was lost"));
        assert_eq!(
            (events[0].global_position, events[2].global_position),
            (*first, *last),
            "acknowledged append {writer}/{seq} is where its acknowledgement said"
        );
    }
    drop(runtime);
    store.close();
    appends.len()
}

#[test]
fn e3_sled_acknowledged_appends_survive_sigkill() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        run_child(Path::new(&dir));
        return;
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
                | 1
        });
    println!("kill moments seed: {SEED_ENV}={seed}");
    let mut moments = Moments(seed);
    let cycles = if ci() { 20 } else { 5 };
    let dir = tempfile::TempDir::new().expect("temp dir");
    let mut acked = BTreeMap::new();
    let mut stored = 0;
    for cycle in 0..cycles {
        let new = run_and_kill(dir.path(), &mut moments);
        assert!(
            !new.is_empty(),
            "cycle {cycle}: the child acknowledged appends"
        );
        for (append, positions) in new {
            assert!(
                acked.insert(append, positions).is_none(),
                "append {append:?} acknowledged twice"
            );
        }
        let now = verify(dir.path(), &acked);
        assert!(now >= stored, "cycle {cycle}: nothing stored went away");
        stored = now;
    }
    println!(
        "{cycles} kill cycles, {} acknowledged appends, {stored} stored",
        acked.len()
    );
}
