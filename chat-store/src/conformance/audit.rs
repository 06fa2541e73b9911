//! Checks of the audit guarantees (docs/AUDIT.md): the hash chain every store writes, the key
//! vault every store offers, and sealing over the store.

use super::checks::read_everything;
use super::{StoreFactory, block_on, test_event};
use crate::StoreError;
use crate::chain::{GENESIS_LINK, VerifyOptions, chain_link, verify};
use crate::seal::{SealKey, SealPolicy, SealedStore, mark};
use crate::store::EventStore;
use crate::types::{ExpectedVersion, StreamAppend, StreamId};
use crate::vault::VAULT_KEYS_PER_CALL_MAX;
use std::sync::Arc;
use uuid::Uuid;

fn sid(name: &str) -> StreamId {
    StreamId::new(name).expect("a valid test stream id")
}

/// Checks every record's link against the hash of the record after the previous link.
fn assert_chained(records: &[crate::RecordedEvent]) {
    let mut previous = GENESIS_LINK;
    for record in records {
        let expected = chain_link(&previous, record);
        assert_eq!(
            record.chain,
            Some(expected),
            "position {} is linked to the one before",
            record.global_position
        );
        previous = expected;
    }
}

/// Tamper evidence: every append (single, multi-stream, concurrent batches) links each record to
/// the previous one in position order; a retry writes no new link; the chain survives a reopen;
/// and `verify` passes the log, counting every event.
pub fn e5_hash_chain_links_every_record<F: StoreFactory>(factory: F) {
    block_on(async {
        let store = factory.open().await;
        let (a, b) = (sid("chain-a"), sid("chain-b"));
        let first: Vec<_> = (1..=3).map(test_event).collect();
        store
            .append(&a, ExpectedVersion::NoStream, first.clone())
            .await
            .expect("append")
            .expect("no conflict");
        store
            .append_multi(vec![
                StreamAppend {
                    stream_id: a.clone(),
                    expected: ExpectedVersion::Exact(3),
                    events: vec![test_event(4)],
                },
                StreamAppend {
                    stream_id: b.clone(),
                    expected: ExpectedVersion::NoStream,
                    events: vec![test_event(5), test_event(6)],
                },
            ])
            .await
            .expect("append")
            .expect("no conflict");
        // A retry of the first append writes nothing, so no link either.
        store
            .append(&a, ExpectedVersion::NoStream, first)
            .await
            .expect("retry")
            .expect("no conflict");
        let store = Arc::new(store);
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let stream = sid(&format!("chain-w{w}"));
                    for n in 0..3 {
                        store
                            .append(
                                &stream,
                                ExpectedVersion::Any,
                                vec![test_event(100 + w * 10 + n)],
                            )
                            .await
                            .expect("append")
                            .expect("no conflict");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let mut store = Arc::try_unwrap(store).unwrap_or_else(|_| panic!("writers are done"));
        let records = read_everything(&store).await;
        assert_eq!(records.len(), 18);
        assert_chained(&records);
        let report = verify(&store, VerifyOptions::default(), |_| Ok(()))
            .await
            .expect("verify");
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.events, 18);
        assert_eq!(report.legacy_events, 0);
        assert_eq!(report.last_link, records.last().and_then(|r| r.chain));
        // The decoder's verdict is part of the report, naming the event it refused.
        let refused = records[4].event_id;
        let report = verify(&store, VerifyOptions::default(), |r| {
            if r.event_id == refused {
                Err("refused".into())
            } else {
                Ok(())
            }
        })
        .await
        .expect("verify");
        let bad = report.first_bad.expect("a refused event");
        assert_eq!((bad.position, bad.event_id), (5, Some(refused)));
        // The verification's own bound: one stream past it is a named limit, at it passes.
        let streams = records
            .iter()
            .map(|r| &r.stream_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let at = verify(
            &store,
            VerifyOptions {
                streams_max: streams,
            },
            |_| Ok(()),
        )
        .await
        .expect("at the limit");
        assert!(at.is_ok());
        let past = verify(
            &store,
            VerifyOptions {
                streams_max: streams - 1,
            },
            |_| Ok(()),
        )
        .await;
        assert!(matches!(
            past,
            Err(StoreError::LimitExceeded {
                limit: "VERIFY_STREAMS_MAX",
                ..
            })
        ));
        if factory.persistent() {
            store = factory.reopen(store).await;
            store
                .append(&b, ExpectedVersion::Exact(2), vec![test_event(7)])
                .await
                .expect("append after reopen")
                .expect("no conflict");
            let after = read_everything(&store).await;
            assert_eq!(&after[..18], &records[..]);
            assert_chained(&after);
        }
    });
}

/// The key vault beside the log: keys are created once (a second request returns the same key,
/// whatever owner it names), read back, shredded by id and by owner, durably across a reopen, and
/// a call over `VAULT_KEYS_PER_CALL_MAX` keys is refused.
pub fn x4_key_vault_creates_and_shreds<F: StoreFactory>(factory: F) {
    block_on(async {
        let mut store = factory.open().await;
        let Some(vault) = store.key_vault() else {
            println!("skipped: the store has no key vault");
            return;
        };
        let owner = Uuid::from_u128(0xabc);
        let ids: Vec<Uuid> = (1..=4).map(|n| Uuid::from_u128(0x1000 + n)).collect();
        let requests = vec![
            (ids[0], Some(owner)),
            (ids[1], Some(owner)),
            (ids[2], None),
            (ids[3], Some(Uuid::from_u128(0xdef))),
        ];
        let created = vault.get_or_create(&requests).await.expect("create");
        assert_eq!(created.len(), 4);
        assert_ne!(created[&ids[0]], created[&ids[1]], "keys are random");
        let again = vault.get_or_create(&[(ids[0], None)]).await.expect("again");
        assert_eq!(again[&ids[0]], created[&ids[0]], "an existing key is kept");
        let read = vault.keys(&ids).await.expect("keys");
        assert_eq!(read, created);
        assert_eq!(
            vault
                .shred(&[ids[2], Uuid::from_u128(9)])
                .await
                .expect("shred"),
            1
        );
        assert_eq!(vault.shred_owner(owner).await.expect("shred owner"), 2);
        drop(vault);
        if factory.persistent() {
            store = factory.reopen(store).await;
        }
        let vault = store.key_vault().expect("a vault");
        let left = vault.keys(&ids).await.expect("keys");
        assert_eq!(left.keys().copied().collect::<Vec<_>>(), vec![ids[3]]);
        assert_eq!(left[&ids[3]], created[&ids[3]], "kept across a reopen");
        let at: Vec<Uuid> = (0..VAULT_KEYS_PER_CALL_MAX as u128)
            .map(|n| Uuid::from_u128(0x10_0000 + n))
            .collect();
        assert!(vault.keys(&at).await.expect("at the limit").is_empty());
        let mut past = at.clone();
        past.push(Uuid::from_u128(1));
        for result in [
            vault.keys(&past).await.map(|_| ()),
            vault.shred(&past).await.map(|_| ()),
        ] {
            assert!(matches!(
                result,
                Err(StoreError::LimitExceeded {
                    limit: "VAULT_KEYS_PER_CALL_MAX",
                    ..
                })
            ));
        }
    });
}

/// The test policy: the whole `text` field of every `Secret` event, keyed by the event's `n`.
struct TextPolicy;

impl SealPolicy for TextPolicy {
    fn applies(&self, _: &StreamId, event_type: &str) -> bool {
        event_type.starts_with("Tested")
    }

    fn mark(&self, _: &StreamId, _: &str, payload: &mut rmpv::Value) -> Result<(), String> {
        let rmpv::Value::Map(entries) = payload else {
            return Err("not a map".into());
        };
        let n = entries
            .iter()
            .find(|(k, _)| k.as_str() == Some("n"))
            .and_then(|(_, v)| v.as_u64())
            .ok_or("no n")?;
        for (key, value) in entries.iter_mut() {
            if key.as_str() == Some("text") {
                let key = SealKey {
                    key_id: Uuid::from_u128(u128::from(n)),
                    owner: Some(Uuid::from_u128(u128::from(n % 2))),
                };
                *value = mark(key, &rmpv::Value::from("[erased]"), value)?;
            }
        }
        Ok(())
    }
}

/// Sealing over the store: the inner store holds no plaintext of a sealed value, the sealed
/// store reads it back, an exact retry stays idempotent, a shredded key turns the value into its
/// placeholder while the chain still verifies.
pub fn x4_sealed_values_are_shredded<F: StoreFactory>(factory: F) {
    block_on(async {
        let inner = factory.open().await;
        let Some(vault) = inner.key_vault() else {
            println!("skipped: the store has no key vault");
            return;
        };
        let inner: Arc<dyn EventStore> = Arc::new(inner);
        let sealed = SealedStore::new(inner.clone(), vault.clone(), Arc::new(TextPolicy));
        let stream = sid("sealed-a");
        let mut events: Vec<_> = (1..=4).map(test_event).collect();
        for event in &mut events {
            event.payload = rmp_serde::to_vec_named(&super::TestPayload {
                n: event_n(event),
                text: format!("secret-text-{}", event_n(event)),
            })
            .expect("payload");
        }
        let first = sealed
            .append(&stream, ExpectedVersion::NoStream, events.clone())
            .await
            .expect("append")
            .expect("no conflict");
        let retry = sealed
            .append(&stream, ExpectedVersion::NoStream, events.clone())
            .await
            .expect("retry")
            .expect("no conflict");
        assert_eq!(first, retry, "an exact retry is still recognised");
        let raw = inner.read_all(1, 100).await.expect("raw read");
        for record in &raw {
            assert!(
                !contains(&record.payload, b"secret-text"),
                "plaintext reached the inner store"
            );
        }
        let opened = sealed.read_all(1, 100).await.expect("read");
        let texts = |records: &[crate::RecordedEvent]| -> Vec<String> {
            records
                .iter()
                .map(|r| {
                    rmp_serde::from_slice::<super::TestPayload>(&r.payload)
                        .expect("decodes")
                        .text
                })
                .collect()
        };
        assert_eq!(
            texts(&opened),
            (1..=4)
                .map(|n| format!("secret-text-{n}"))
                .collect::<Vec<_>>()
        );
        vault.shred(&[Uuid::from_u128(2)]).await.expect("shred one");
        vault
            .shred_owner(Uuid::from_u128(1))
            .await
            .expect("shred the odd ones");
        let after = sealed.read_stream(&stream, 1, 100).await.expect("read");
        assert_eq!(
            texts(&after),
            vec!["[erased]", "[erased]", "[erased]", "secret-text-4"]
        );
        let report = verify(inner.as_ref(), VerifyOptions::default(), |_| Ok(()))
            .await
            .expect("verify");
        assert!(report.is_ok(), "shredding is not tampering: {report:?}");
        let stripped = crate::seal::strip(&raw[3].payload)
            .expect("strips")
            .expect("has a mark");
        let shown: super::TestPayload = rmp_serde::from_slice(&stripped).expect("decodes");
        assert_eq!(
            shown.text, "[erased]",
            "a reader without keys sees placeholders"
        );
    });
}

fn event_n(event: &crate::NewEvent) -> u64 {
    rmp_serde::from_slice::<super::TestPayload>(&event.payload)
        .expect("a test payload")
        .n
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
