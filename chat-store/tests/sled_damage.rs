//! E3: a truncated, damaged or missing record is a clear error naming its position — on open or
//! on the read that meets it — never skipped silently and never a panic.
//!
//! The damage is done through sled itself (the store closed), at the keys the store documents:
//! `e` + position (8 bytes, big endian) for records, `i` + event id for the id index.

use chat_store::conformance::{block_on, test_event};
use chat_store::{EventStore, ExpectedVersion, GlobalPosition, SledStore, StoreError, StreamId};
use std::path::Path;
use tempfile::TempDir;

fn record_key(position: GlobalPosition) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// A closed store of 6 events: positions 1–3 in `damage-a`, 4–6 in `damage-b`.
fn written_store() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("open");
    block_on(async {
        for (i, name) in ["damage-a", "damage-b"].into_iter().enumerate() {
            let events = (0..3).map(|n| test_event(i as u64 * 3 + n + 1)).collect();
            store
                .append(&stream(name), ExpectedVersion::NoStream, events)
                .await
                .expect("no error")
                .expect("no conflict");
        }
    });
    store.close();
    dir
}

fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid")
}

/// Opens the directory with plain sled, lets `damage` change it, and closes it again.
fn with_sled(dir: &Path, damage: impl FnOnce(&sled::Db)) {
    let db = open_raw(dir);
    damage(&db);
    db.flush().expect("flush the damage");
}

fn open_raw(dir: &Path) -> sled::Db {
    // sled's background threads may hold the lock briefly after the store closed.
    for _ in 0..500 {
        if let Ok(db) = sled::open(dir) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    sled::open(dir).expect("open the directory with sled")
}

fn rewrite(dir: &Path, position: GlobalPosition, change: impl FnOnce(&mut Vec<u8>)) {
    with_sled(dir, |db| {
        let mut value = db
            .get(record_key(position))
            .expect("read")
            .expect("the record exists")
            .to_vec();
        change(&mut value);
        db.insert(record_key(position), value).expect("write");
    });
}

fn assert_corrupt<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    at: GlobalPosition,
    says: &str,
) {
    match result {
        Err(StoreError::Corrupt { position, reason }) => {
            assert_eq!(
                position, at,
                "the error names the damaged position ({reason})"
            );
            assert!(reason.contains(says), "{reason:?} should say {says:?}");
        }
        other => panic!("expected Corrupt at {at} saying {says:?}, got {other:?}"),
    }
}

#[test]
fn e3_truncated_last_record_fails_the_open_naming_its_position() {
    let dir = written_store();
    rewrite(dir.path(), 6, |value| value.truncate(value.len() / 2));
    assert_corrupt(SledStore::open(dir.path()), 6, "checksum");
    rewrite(dir.path(), 6, |value| value.truncate(3));
    assert_corrupt(SledStore::open(dir.path()), 6, "truncated");
}

#[test]
fn e3_last_record_without_its_index_entries_fails_the_open() {
    let dir = written_store();
    with_sled(dir.path(), |db| {
        let mut key = vec![b'i'];
        key.extend_from_slice(test_event(6).event_id.as_bytes());
        db.remove(key)
            .expect("remove")
            .expect("the index entry existed");
    });
    assert_corrupt(SledStore::open(dir.path()), 6, "index");
}

#[test]
fn e3_damaged_middle_record_is_an_error_on_every_read_that_meets_it() {
    let dir = written_store();
    rewrite(dir.path(), 2, |value| {
        let last = value.len() - 1;
        value[last] ^= 0x01;
    });
    let store = SledStore::open(dir.path()).expect("the tail is fine, so the open is");
    block_on(async {
        assert_corrupt(store.read_all(1, 100).await, 2, "checksum");
        assert_corrupt(
            store.read_stream(&stream("damage-a"), 1, 100).await,
            2,
            "checksum",
        );
        // Reads that do not reach the damage still work; reads past it start past it.
        assert_eq!(store.read_all(1, 1).await.expect("position 1").len(), 1);
        assert_eq!(store.read_all(3, 100).await.expect("from 3").len(), 4);
        assert_eq!(
            store
                .read_stream(&stream("damage-b"), 1, 100)
                .await
                .expect("the other stream")
                .len(),
            3
        );
        // Idempotency needs the damaged record too: a retry of it says so instead of guessing.
        let retry = store
            .append(
                &stream("damage-a"),
                ExpectedVersion::Any,
                vec![test_event(2)],
            )
            .await;
        assert!(
            matches!(retry, Err(StoreError::Corrupt { position: 2, .. })),
            "{retry:?}"
        );
    });
}

#[test]
fn e3_missing_middle_record_is_an_error_naming_the_hole() {
    let dir = written_store();
    with_sled(dir.path(), |db| {
        db.remove(record_key(4)).expect("remove").expect("existed");
    });
    let store = SledStore::open(dir.path()).expect("open");
    block_on(async {
        assert_corrupt(store.read_all(1, 100).await, 4, "missing");
        assert_corrupt(store.read_all(4, 1).await, 4, "missing");
        assert_corrupt(
            store.read_stream(&stream("damage-b"), 1, 100).await,
            4,
            "missing",
        );
    });
}

#[test]
fn e3_record_under_the_wrong_position_is_an_error() {
    let dir = written_store();
    with_sled(dir.path(), |db| {
        let second = db.get(record_key(2)).expect("read").expect("exists");
        db.insert(record_key(3), second).expect("write");
    });
    let store = SledStore::open(dir.path()).expect("open");
    block_on(async {
        assert_corrupt(store.read_all(1, 100).await, 3, "position 2");
    });
}

#[test]
fn e3_foreign_or_newer_data_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    with_sled(dir.path(), |db| {
        db.insert(b"something", b"else").expect("write");
    });
    let foreign = SledStore::open(dir.path());
    assert!(
        matches!(&foreign, Err(StoreError::Backend(m)) if m.contains("not a chat-store")),
        "{foreign:?}"
    );
    let dir = written_store();
    with_sled(dir.path(), |db| {
        db.insert(b"mformat", b"chat-store-sled/99").expect("write");
    });
    let newer = SledStore::open(dir.path());
    assert!(
        matches!(&newer, Err(StoreError::Backend(m)) if m.contains("unknown data format")),
        "{newer:?}"
    );
}

/// sled recovers its log up to the first damaged entry and calls that the end. A log that comes
/// back shorter than what was flushed before is an error naming the first lost position.
#[test]
fn e3_a_log_shorter_than_the_head_mark_fails_the_open() {
    let dir = written_store();
    with_sled(dir.path(), |db| {
        // What sled would recover if the tail of its files were damaged: the last append gone,
        // records and index entries alike.
        for key in db.iter().keys() {
            let key = key.expect("key");
            let value = db.get(&key).expect("read").expect("exists");
            let last_append = (key[0] == b'e' && key[1..] >= 4_u64.to_be_bytes()[..])
                || (key[0] != b'e' && key[0] != b'm' && value[..] >= 4_u64.to_be_bytes()[..]);
            if last_append {
                db.remove(&key).expect("remove");
            }
        }
    });
    assert_corrupt(SledStore::open(dir.path()), 4, "head mark");
}

/// Damage below our records, in sled's own files: whatever sled makes of it, the open fails or
/// every event comes back intact — never fewer events silently, never a panic.
#[test]
fn e3_damaged_sled_files_are_found_never_skipped() {
    let original = written_store();
    let intact = {
        let store = SledStore::open(original.path()).expect("open");
        let events = block_on(store.read_all(1, 100)).expect("read");
        store.close();
        events
    };
    assert_eq!(intact.len(), 6);
    let files: Vec<_> = std::fs::read_dir(original.path())
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .collect();
    let mut outcomes = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("read");
        for eighth in 0..8 {
            if bytes.is_empty() {
                continue;
            }
            let copy = TempDir::new().expect("temp dir");
            for f in &files {
                std::fs::copy(f, copy.path().join(f.file_name().expect("name"))).expect("copy");
            }
            let mut damaged = bytes.clone();
            let at = damaged.len() * eighth / 8;
            damaged[at] ^= 0xff;
            std::fs::write(copy.path().join(file.file_name().expect("name")), &damaged)
                .expect("write");
            let path = copy.path().to_path_buf();
            let expected = intact.clone();
            let outcome = std::panic::catch_unwind(move || match SledStore::open(&path) {
                Err(e) => format!("refused: {e}"),
                Ok(store) => match block_on(store.read_all(1, 100)) {
                    Ok(events) if events == expected => "intact".to_owned(),
                    Ok(events) => format!("SILENTLY CHANGED: {} events", events.len()),
                    Err(e) => format!("refused: {e}"),
                },
            })
            .unwrap_or_else(|_| "PANIC".to_owned());
            outcomes.push((file.clone(), at, outcome));
        }
    }
    let bad: Vec<_> = outcomes
        .iter()
        .filter(|(_, _, o)| !o.starts_with("refused") && o != "intact")
        .collect();
    assert!(bad.is_empty(), "damage went unnoticed: {bad:#?}");
    assert!(
        outcomes.iter().any(|(_, _, o)| o.starts_with("refused")),
        "some damage is found: {outcomes:#?}"
    );
}
