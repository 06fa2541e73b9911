//! E4: events written with an older schema still load — from a committed fixture of bytes written
//! by the old types, through a real store, after the types changed.
//!
//! The story the fixture tells: `ChatStarted` v1 had a flat `visitor_name`; v2 moved it into a
//! `visitor` object (an upcaster step) and gained an optional `language` (no step needed).
//! `MessagePosted` gained `attachments` with a default, staying at version 1.

use chat_store::conformance::block_on;
use chat_store::{
    EventStore, ExpectedVersion, MemoryStore, NewEvent, RecordedEvent, SledStore, StoreError,
    StreamId, Upcasters, set_field, take_field,
};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use uuid::Uuid;

/// The envelope of one fixture event, as the fixture file stores it.
#[derive(Debug, Serialize, Deserialize)]
struct FixtureEvent {
    event_id: Uuid,
    stream_id: String,
    event_type: String,
    schema_version: u16,
    recorded_at_us: i64,
    payload: Vec<u8>,
}

/// The types as they were when the fixture was written. Kept only to prove the fixture's bytes
/// are what they wrote; the loading test reads nothing but the file.
mod v1 {
    use serde::Serialize;
    use uuid::Uuid;

    #[derive(Serialize)]
    pub(crate) struct ChatStarted {
        pub(crate) chat_id: Uuid,
        pub(crate) module: String,
        pub(crate) visitor_name: String,
    }

    #[derive(Serialize)]
    pub(crate) struct MessagePosted {
        pub(crate) text: String,
    }
}

/// The current types.
#[derive(Debug, PartialEq, Deserialize)]
struct ChatStarted {
    chat_id: Uuid,
    module: String,
    visitor: Visitor,
    language: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Visitor {
    name: String,
}

#[derive(Debug, PartialEq, Deserialize)]
struct MessagePosted {
    text: String,
    #[serde(default)]
    attachments: Vec<String>,
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events_schema_v1.msgpack")
}

const CHAT_1: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
const CHAT_2: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);

fn v1_fixture() -> Vec<FixtureEvent> {
    let event = |n: u128, chat: Uuid, event_type: &str, payload: Vec<u8>| FixtureEvent {
        event_id: Uuid::from_u128(0x0190_0000_0001_7000_8000_0000_0000_0000 | n),
        stream_id: format!("chat-{chat}"),
        event_type: event_type.into(),
        schema_version: 1,
        recorded_at_us: 1_718_000_000_000_000 + n as i64 * 1_000_000,
        payload,
    };
    let started = |chat_id, module: &str, visitor_name: &str| {
        rmp_serde::to_vec_named(&v1::ChatStarted {
            chat_id,
            module: module.into(),
            visitor_name: visitor_name.into(),
        })
        .expect("encode")
    };
    let posted = |text: &str| {
        rmp_serde::to_vec_named(&v1::MessagePosted { text: text.into() }).expect("encode")
    };
    vec![
        event(
            1,
            CHAT_1,
            "ChatStarted",
            started(CHAT_1, "support", "Ada Lovelace"),
        ),
        event(
            2,
            CHAT_1,
            "MessagePosted",
            posted("Hello, is anyone there?"),
        ),
        event(
            3,
            CHAT_2,
            "ChatStarted",
            started(CHAT_2, "sales", "Grace Hopper"),
        ),
    ]
}

/// The registry of the current build.
fn upcasters() -> Upcasters {
    let mut upcasters = Upcasters::new();
    upcasters
        .register("ChatStarted", 1, |mut payload| {
            let name = take_field(&mut payload, "visitor_name")
                .ok_or("v1 ChatStarted without visitor_name")?;
            let visitor = rmpv::Value::Map(vec![(rmpv::Value::from("name"), name)]);
            set_field(&mut payload, "visitor", visitor)?;
            Ok(payload)
        })
        .expect("the first step of ChatStarted");
    upcasters
}

/// The committed file holds exactly what the v1 types wrote. Regenerate (only if the v1 story
/// itself changes) with `CHAT_STORE_WRITE_FIXTURES=1`.
#[test]
fn e4_fixture_holds_what_schema_v1_wrote() {
    let bytes = rmp_serde::to_vec_named(&v1_fixture()).expect("encode the fixture");
    if std::env::var("CHAT_STORE_WRITE_FIXTURES").is_ok_and(|v| v == "1") {
        std::fs::write(fixture_path(), &bytes).expect("write the fixture");
    }
    let committed = std::fs::read(fixture_path()).expect("the committed fixture");
    assert_eq!(
        committed, bytes,
        "the fixture no longer matches the v1 types"
    );
}

fn load_fixture() -> Vec<FixtureEvent> {
    let bytes = std::fs::read(fixture_path()).expect("the committed fixture");
    rmp_serde::from_slice(&bytes).expect("the fixture's envelope list")
}

/// Stores the fixture's events in `store`, as the old build would have.
async fn append_fixture<S: EventStore>(store: &S) {
    for event in load_fixture() {
        let stream_id = StreamId::new(event.stream_id).expect("stream id");
        let new = NewEvent {
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            recorded_at: DateTime::from_timestamp_micros(event.recorded_at_us).expect("time"),
            correlation_id: None,
            causation_id: None,
            payload: event.payload,
        };
        store
            .append(&stream_id, ExpectedVersion::Any, vec![new])
            .await
            .expect("no store error")
            .expect("no conflict");
    }
}

/// Reads the fixture's events back from `store` and decodes them as the current types.
async fn check_decoded<S: EventStore>(store: &S) {
    let stored = store.read_all(1, 100).await.expect("read_all");
    assert_eq!(stored.len(), 3);
    let upcasters = upcasters();
    assert_eq!(upcasters.current_version("ChatStarted"), 2);
    assert_eq!(upcasters.current_version("MessagePosted"), 1);
    assert_eq!(
        upcasters
            .decode::<ChatStarted>(&stored[0])
            .expect("ChatStarted v1"),
        ChatStarted {
            chat_id: CHAT_1,
            module: "support".into(),
            visitor: Visitor {
                name: "Ada Lovelace".into()
            },
            language: None,
        }
    );
    assert_eq!(
        upcasters
            .decode::<MessagePosted>(&stored[1])
            .expect("MessagePosted v1"),
        MessagePosted {
            text: "Hello, is anyone there?".into(),
            attachments: Vec::new(),
        }
    );
    let second: ChatStarted = upcasters.decode(&stored[2]).expect("ChatStarted v1");
    assert_eq!(
        (second.chat_id, second.visitor.name.as_str()),
        (CHAT_2, "Grace Hopper")
    );
}

#[test]
fn e4_old_events_load_through_upcasters_from_the_memory_store() {
    block_on(async {
        let store = MemoryStore::new();
        append_fixture(&store).await;
        check_decoded(&store).await;
    });
}

#[test]
fn e4_old_events_load_through_upcasters_from_the_sled_store_after_reopen() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let store = SledStore::open(dir.path()).expect("open");
    block_on(append_fixture(&store));
    store.close();
    let store = SledStore::open(dir.path()).expect("reopen");
    block_on(check_decoded(&store));
}

fn recorded(event_type: &str, schema_version: u16, payload: Vec<u8>) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::from_u128(1),
        stream_id: StreamId::new("chat-x").expect("id"),
        stream_version: 1,
        global_position: 1,
        event_type: event_type.into(),
        schema_version,
        recorded_at: DateTime::from_timestamp_micros(0).expect("time"),
        correlation_id: None,
        causation_id: None,
        payload,
        chain: None,
    }
}

fn assert_decode_error<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Decode { reason, .. }) => {
            assert!(reason.contains(needle), "{reason:?} should say {needle:?}")
        }
        other => panic!("expected a Decode error saying {needle:?}, got {other:?}"),
    }
}

#[test]
fn e4_unknown_versions_and_bad_payloads_are_decode_errors() {
    let upcasters = upcasters();
    let good = load_fixture().remove(0).payload;
    assert_decode_error(
        upcasters.upcast(&recorded("ChatStarted", 3, good.clone())),
        "newer build",
    );
    assert_decode_error(
        upcasters.upcast(&recorded("ChatStarted", 0, good.clone())),
        "start at 1",
    );
    assert_decode_error(
        upcasters.upcast(&recorded("ChatStarted", 1, good[..good.len() - 3].to_vec())),
        "not MessagePack",
    );
    let mut trailing = good.clone();
    trailing.push(0xc0);
    assert_decode_error(
        upcasters.upcast(&recorded("ChatStarted", 1, trailing)),
        "after the payload",
    );
    let no_name = rmp_serde::to_vec_named(&v1::MessagePosted { text: "x".into() }).expect("enc");
    assert_decode_error(
        upcasters.upcast(&recorded("ChatStarted", 1, no_name)),
        "without visitor_name",
    );
    assert_decode_error(
        upcasters.decode::<MessagePosted>(&recorded("ChatStarted", 1, good)),
        "does not fit",
    );
}

#[test]
fn e4_upcaster_steps_must_chain_from_the_current_version() {
    let mut upcasters = upcasters();
    let again = upcasters.register("ChatStarted", 1, Ok);
    assert!(
        matches!(again, Err(StoreError::InvalidRequest(_))),
        "a second v1 step"
    );
    let hole = upcasters.register("ChatStarted", 3, Ok);
    assert!(
        matches!(hole, Err(StoreError::InvalidRequest(_))),
        "a hole at v2"
    );
    upcasters
        .register("ChatStarted", 2, Ok)
        .expect("the next step");
    assert_eq!(upcasters.current_version("ChatStarted"), 3);
    assert_eq!(upcasters.current_version("Unknown"), 1);
}

/// The fast path: a payload already at the current version is decoded straight into the type,
/// with the same refusals as the upcasting path (trailing bytes, a payload of another shape).
#[test]
fn e4_current_version_payloads_decode_directly_with_the_same_refusals() {
    let upcasters = upcasters();
    assert_eq!(upcasters.current_version("MessagePosted"), 1);
    let payload = rmp_serde::to_vec_named(&v1::MessagePosted { text: "hi".into() }).expect("enc");
    let decoded: MessagePosted = upcasters
        .decode(&recorded("MessagePosted", 1, payload.clone()))
        .expect("current version decodes");
    assert_eq!(decoded.text, "hi");

    let mut trailing = payload.clone();
    trailing.push(0xc0);
    assert_decode_error(
        upcasters.decode::<MessagePosted>(&recorded("MessagePosted", 1, trailing)),
        "after the payload",
    );
    assert_decode_error(
        upcasters.decode::<ChatStarted>(&recorded("MessagePosted", 1, payload.clone())),
        "does not fit",
    );
    assert_decode_error(
        upcasters.decode::<MessagePosted>(&recorded("MessagePosted", 2, payload)),
        "newer build",
    );
}
