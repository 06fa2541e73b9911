//! E5: `verify` passes a clean log and names the first altered event when one stored byte is
//! changed — in sled's data directory (through sled, with the record's checksum recomputed as a
//! deliberate tamperer would, and without) and in PostgreSQL's table — and records written
//! before the chain are accepted only as a prefix.

use chat_store::conformance::{block_on, test_event};
use chat_store::{
    EventStore, ExpectedVersion, Fault, GlobalPosition, PostgresStore, PostgresTestDatabase,
    SledStore, StreamId, VerifyOptions, VerifyReport, verify,
};
use std::path::Path;
use tempfile::TempDir;

fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid")
}

async fn write_six(store: &dyn EventStore) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for (i, name) in ["tamper-a", "tamper-b"].into_iter().enumerate() {
        let events: Vec<_> = (0..3).map(|n| test_event(i as u64 * 3 + n + 1)).collect();
        ids.extend(events.iter().map(|e| e.event_id));
        store
            .append(&stream(name), ExpectedVersion::NoStream, events)
            .await
            .expect("no error")
            .expect("no conflict");
    }
    ids
}

async fn report(store: &dyn EventStore) -> VerifyReport {
    verify(store, VerifyOptions::default(), |_| Ok(()))
        .await
        .expect("verify runs")
}

fn record_key(position: GlobalPosition) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// Flips the last byte (payload) of the record at `position` in sled's files; with `reseal`, also
/// recomputes the record's CRC-32 (format byte, CRC, header length, header, payload).
fn flip_payload_byte(dir: &Path, position: GlobalPosition, reseal: bool) {
    let db = (0..500)
        .find_map(|_| {
            sled::open(dir).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        })
        .expect("open the directory with sled");
    let mut value = db
        .get(record_key(position))
        .expect("read")
        .expect("the record exists")
        .to_vec();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    if reseal {
        let crc = crc32fast::hash(&value[5..]);
        value[1..5].copy_from_slice(&crc.to_be_bytes());
    }
    db.insert(record_key(position), value).expect("write");
    db.flush().expect("flush");
}

/// sled: a clean log verifies; one payload byte changed with the checksum recomputed breaks the
/// chain exactly at that event; without the checksum the record is unreadable at that position.
#[test]
fn e5_sled_verify_names_the_altered_event() {
    let dir = TempDir::new().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("open");
    let ids = block_on(write_six(&store));
    let clean = block_on(report(&store));
    assert!(clean.is_ok(), "{clean:?}");
    assert_eq!(clean.events, 6);
    store.close();

    flip_payload_byte(dir.path(), 4, true);
    let store = SledStore::open(dir.path()).expect("reopen");
    let tampered = block_on(report(&store));
    let bad = tampered.first_bad.expect("the change is found");
    assert_eq!((bad.position, bad.event_id), (4, Some(ids[3])));
    assert!(
        matches!(bad.fault, Fault::ChainMismatch { .. }),
        "{:?}",
        bad.fault
    );
    assert_eq!(tampered.events, 3, "everything before it verified");
    store.close();

    flip_payload_byte(dir.path(), 2, false);
    let store = SledStore::open(dir.path()).expect("reopen");
    let damaged = block_on(report(&store));
    let bad = damaged.first_bad.expect("the damage is found");
    assert_eq!(bad.position, 2);
    assert!(
        matches!(bad.fault, Fault::Unreadable { .. }),
        "{:?}",
        bad.fault
    );
    store.close();
}

fn postgres() -> Option<PostgresTestDatabase> {
    PostgresTestDatabase::from_env()
}

/// PostgreSQL: a clean log verifies; a payload byte changed by `UPDATE` breaks the chain exactly
/// at that event; a link removed after chained records is found; and records without links
/// (written before migration 0002) are accepted as a prefix, with later appends chained after.
#[test]
fn e5_postgres_verify_names_the_altered_event() {
    let Some(database) = postgres() else {
        return;
    };
    block_on(async {
        let config = database.fresh_config().pool_size(2);
        let schema = config.schema_name().to_owned();
        let store = PostgresStore::open(config).await.expect("open");
        let ids = write_six(&store).await;
        let clean = report(&store).await;
        assert!(clean.is_ok(), "{clean:?}");
        let client = database.connect().await.expect("connect");
        client
            .batch_execute(&format!(
                "UPDATE {schema}.events SET payload = set_byte(payload, 3, get_byte(payload, 3) # 1)
                 WHERE global_position = 5"
            ))
            .await
            .expect("tamper");
        let bad = report(&store).await.first_bad.expect("the change is found");
        assert_eq!((bad.position, bad.event_id), (5, Some(ids[4])));
        assert!(matches!(bad.fault, Fault::ChainMismatch { .. }));
        // Undo, then strip a link in the middle: a legacy record after chained ones is refused.
        client
            .batch_execute(&format!(
                "UPDATE {schema}.events SET payload = set_byte(payload, 3, get_byte(payload, 3) # 1)
                 WHERE global_position = 5;
                 UPDATE {schema}.events SET chain = NULL WHERE global_position = 3"
            ))
            .await
            .expect("strip");
        let bad = report(&store)
            .await
            .first_bad
            .expect("the stripped link is found");
        assert_eq!(bad.position, 3);
        assert!(matches!(
            bad.fault,
            Fault::ChainMismatch { stored: None, .. }
        ));
        // A log written before the chain: no links at all and none at the head.
        client
            .batch_execute(&format!(
                "UPDATE {schema}.events SET chain = NULL; UPDATE {schema}.log_head SET chain = NULL"
            ))
            .await
            .expect("legacy");
        store
            .append(
                &stream("tamper-c"),
                ExpectedVersion::NoStream,
                vec![test_event(7)],
            )
            .await
            .expect("append")
            .expect("no conflict");
        let legacy = report(&store).await;
        assert!(legacy.is_ok(), "{legacy:?}");
        assert_eq!((legacy.events, legacy.legacy_events), (7, 6));
        drop(store);
        database.drop_schema(&schema).await.expect("drop schema");
    });
}
