//! The follower's contract on a real store (sled in a temp directory): every event after the
//! start position exactly once and in order while writers append concurrently, reserved `$`
//! streams skipped, and a clean stop on shutdown.

use chat_core::agent::{AgentEvent, Presence};
use chat_core::{AgentId, CommandId};
use chat_service::engine::{
    Codec, DomainEvent, FOLLOW_PAGE_EVENTS_MAX, Follower, ShutdownTrigger, encode, event_id,
};
use chat_store::{EventStore, ExpectedVersion, SledStore, StreamId};
use chrono::{TimeZone, Utc};
use std::sync::Arc;

const WRITERS: u128 = 4;
/// More than one page in total, so paging is exercised.
const EVENTS_PER_WRITER: u32 = (FOLLOW_PAGE_EVENTS_MAX as u32) / 2 + 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_the_follower_hands_out_every_event_once_in_order_while_writers_append() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    let (trigger, shutdown) = ShutdownTrigger::new();
    let at = Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap();
    let mut writers = Vec::new();
    for w in 1..=WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let agent = AgentId::from_u128(w);
            let stream = StreamId::new(agent.stream_name()).unwrap();
            let reserved = StreamId::new(format!("$checkpoint-test-{w}")).unwrap();
            for i in 0..EVENTS_PER_WRITER {
                let presence = if i % 2 == 0 {
                    Presence::Online
                } else {
                    Presence::Away
                };
                let event = AgentEvent::PresenceChanged {
                    agent,
                    at,
                    presence,
                };
                let id = event_id(CommandId::from_u128(w), i);
                let new = encode(&event, id, at, None, None).unwrap();
                store
                    .append(&stream, ExpectedVersion::Any, vec![new.clone()])
                    .await
                    .unwrap()
                    .unwrap();
                if i % 100 == 0 {
                    let mut bookkeeping = new;
                    bookkeeping.event_id = event_id(CommandId::from_u128(1000 + w), i);
                    store
                        .append(&reserved, ExpectedVersion::Any, vec![bookkeeping])
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
        }));
    }
    let total = WRITERS as usize * EVENTS_PER_WRITER as usize;
    let mut follower = Follower::new(store.clone(), Arc::new(Codec::default()), 0, shutdown);
    let mut seen = Vec::new();
    while seen.len() < total {
        let page = follower.next_page().await.unwrap().expect("not shut down");
        for followed in page {
            assert!(
                matches!(followed.event, DomainEvent::Agent { .. }),
                "reserved streams are skipped"
            );
            seen.push(followed.position());
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(seen.len(), total, "no duplicates");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(
        follower.position(),
        store.head_position().await.unwrap(),
        "no gap at the end"
    );
    let reserved = store.head_position().await.unwrap() as usize - total;
    assert_eq!(
        reserved,
        WRITERS as usize * (EVENTS_PER_WRITER as usize).div_ceil(100)
    );

    // Shutdown stops a waiting follower cleanly.
    let waiting = tokio::spawn(async move { follower.next_page().await });
    trigger.trigger();
    assert!(waiting.await.unwrap().unwrap().is_none());
}
