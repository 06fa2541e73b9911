//! The deterministic checks of the suite. Each is `pub fn check(factory)` so that
//! [`conformance_tests!`](crate::conformance_tests) can turn it into a `#[test]` of the same name.

use super::{StoreFactory, block_on, test_event};
use crate::error::StoreError;
use crate::store::{AppendOutcome, EventStore};
use crate::types::{
    AppendResult, Conflict, EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX,
    ExpectedVersion, GlobalPosition, NewEvent, READ_COUNT_MAX, RecordedEvent, STREAM_ID_BYTES_MAX,
    STREAMS_PER_APPEND_MAX, StreamAppend, StreamId, StreamVersion,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a check waits for a wake-up or a task before it calls the store stuck.
const STUCK_S: u64 = 120;

fn sid(name: &str) -> StreamId {
    StreamId::new(name).expect("a valid test stream id")
}

fn single(stream_id: &StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend {
        stream_id: stream_id.clone(),
        expected,
        events,
    }
}

fn events(from: u64, count: u64) -> Vec<NewEvent> {
    (from..from + count).map(test_event).collect()
}

/// Unwraps an acknowledged append, naming what was attempted when it was not.
fn acked(outcome: AppendOutcome, what: &str) -> AppendResult {
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(conflict)) => panic!("{what}: unexpected conflict {conflict}"),
        Err(error) => panic!("{what}: unexpected error {error}"),
    }
}

fn conflicted(outcome: AppendOutcome, what: &str) -> Conflict {
    match outcome {
        Ok(Err(conflict)) => conflict,
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

fn assert_limit<T: std::fmt::Debug>(result: Result<T, StoreError>, limit: &str) {
    match result {
        Err(StoreError::LimitExceeded { limit: got, .. }) if got == limit => {}
        other => panic!("expected LimitExceeded {{ limit: {limit} }}, got {other:?}"),
    }
}

fn assert_invalid_request(outcome: AppendOutcome, what: &str) {
    assert!(
        matches!(outcome, Err(StoreError::InvalidRequest(_))),
        "{what}: expected InvalidRequest, got {outcome:?}"
    );
}

/// The record a store must give back for `event` written at `version` and `position`.
pub fn expected_record(
    event: &NewEvent,
    stream_id: &StreamId,
    stream_version: StreamVersion,
    global_position: GlobalPosition,
) -> RecordedEvent {
    RecordedEvent {
        event_id: event.event_id,
        stream_id: stream_id.clone(),
        stream_version,
        global_position,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        recorded_at: event.recorded_at,
        correlation_id: event.correlation_id,
        causation_id: event.causation_id,
        payload: event.payload.clone(),
        chain: None,
    }
}

/// Reads the whole log, page by page.
pub async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let page = store
            .read_all(all.len() as u64 + 1, 1000)
            .await
            .expect("read_all");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn head<S: EventStore>(store: &S) -> GlobalPosition {
    store.head_position().await.expect("head_position")
}

async fn version<S: EventStore>(store: &S, stream_id: &StreamId) -> StreamVersion {
    store
        .stream_version(stream_id)
        .await
        .expect("stream_version")
}

/// E1: versions start at 1, positions start at 1 and follow commit order, the full envelope
/// comes back unchanged, and reads honour their start and count.
pub fn e1_append_then_read_back<F: StoreFactory>(factory: F) {
    block_on(async {
        let store = factory.open().await;
        let (a, b) = (sid("read-back-a"), sid("read-back-b"));
        assert_eq!(head(&store).await, 0, "an empty store's head");
        assert_eq!(version(&store, &a).await, 0, "an empty stream's version");
        assert!(store.read_all(1, 100).await.expect("read_all").is_empty());
        assert!(
            store
                .read_stream(&a, 1, 100)
                .await
                .expect("read")
                .is_empty()
        );

        let written = events(1, 4);
        let r1 = acked(
            store
                .append(&a, ExpectedVersion::NoStream, written[0..2].to_vec())
                .await,
            "first append",
        );
        assert_eq!(
            r1,
            AppendResult {
                stream_versions: vec![(a.clone(), 2)],
                first_position: 1,
                last_position: 2
            }
        );
        let r2 = acked(
            store
                .append(&b, ExpectedVersion::Any, written[2..3].to_vec())
                .await,
            "append to b",
        );
        assert_eq!((r2.first_position, r2.last_position), (3, 3));
        assert_eq!(r2.stream_versions, vec![(b.clone(), 1)]);
        let r3 = acked(
            store
                .append(&a, ExpectedVersion::Exact(2), written[3..4].to_vec())
                .await,
            "third append",
        );
        assert_eq!(r3.stream_versions, vec![(a.clone(), 3)]);
        assert_eq!((r3.first_position, r3.last_position), (4, 4));

        let expected_a = vec![
            expected_record(&written[0], &a, 1, 1),
            expected_record(&written[1], &a, 2, 2),
            expected_record(&written[3], &a, 3, 4),
        ];
        let expected_all = vec![
            expected_a[0].clone(),
            expected_a[1].clone(),
            expected_record(&written[2], &b, 1, 3),
            expected_a[2].clone(),
        ];
        assert_eq!(
            store.read_stream(&a, 1, 100).await.expect("read"),
            expected_a
        );
        assert_eq!(
            store.read_stream(&a, 0, 100).await.expect("read"),
            expected_a,
            "version 0 reads from the start"
        );
        assert_eq!(
            store.read_stream(&a, 2, 1).await.expect("read"),
            expected_a[1..2].to_vec()
        );
        assert!(
            store
                .read_stream(&a, 4, 100)
                .await
                .expect("read")
                .is_empty()
        );
        assert!(store.read_stream(&a, 1, 0).await.expect("read").is_empty());
        assert_eq!(
            store.read_all(1, 100).await.expect("read_all"),
            expected_all
        );
        assert_eq!(
            store.read_all(0, 100).await.expect("read_all"),
            expected_all
        );
        assert_eq!(
            store.read_all(3, 1).await.expect("read_all"),
            expected_all[2..3].to_vec()
        );
        assert!(store.read_all(5, 100).await.expect("read_all").is_empty());
        assert!(store.read_all(1, 0).await.expect("read_all").is_empty());
        assert_eq!(version(&store, &a).await, 3);
        assert_eq!(version(&store, &b).await, 1);
        assert_eq!(head(&store).await, 4);
    });
}

/// E1: each expectation kind admits exactly the states it names, `Exact(0)` is `NoStream`, and a
/// conflict reports the actual version and writes nothing.
pub fn e1_expected_version_kinds<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::{Any, Exact, NoStream, StreamExists};
        let store = factory.open().await;
        let s = sid("expectations");
        let mut n = 0;
        let mut next = || {
            n += 1;
            vec![test_event(n)]
        };
        let conflict = |expected, actual| Conflict {
            stream_id: s.clone(),
            expected,
            actual,
        };
        assert_eq!(
            conflicted(
                store.append(&s, StreamExists, next()).await,
                "StreamExists on empty"
            ),
            conflict(StreamExists, 0)
        );
        assert_eq!(
            conflicted(
                store.append(&s, Exact(1), next()).await,
                "Exact(1) on empty"
            ),
            conflict(Exact(1), 0)
        );
        acked(
            store.append(&s, Exact(0), next()).await,
            "Exact(0) on empty",
        );
        assert_eq!(
            conflicted(store.append(&s, NoStream, next()).await, "NoStream on v1"),
            conflict(NoStream, 1)
        );
        assert_eq!(
            conflicted(store.append(&s, Exact(0), next()).await, "Exact(0) on v1"),
            conflict(Exact(0), 1)
        );
        acked(
            store.append(&s, StreamExists, next()).await,
            "StreamExists on v1",
        );
        acked(store.append(&s, Exact(2), next()).await, "Exact(2) on v2");
        assert_eq!(
            conflicted(
                store.append(&s, Exact(2), next()).await,
                "stale Exact(2) on v3"
            ),
            conflict(Exact(2), 3)
        );
        assert_eq!(
            conflicted(store.append(&s, Exact(4), next()).await, "Exact(4) on v3"),
            conflict(Exact(4), 3)
        );
        acked(store.append(&s, Any, next()).await, "Any on v3");
        let t = sid("expectations-other");
        acked(store.append(&t, Any, next()).await, "Any on empty");
        acked(
            store
                .append(&sid("expectations-new"), NoStream, next())
                .await,
            "NoStream on empty",
        );
        assert_eq!(version(&store, &s).await, 4, "conflicts wrote nothing");
        assert_eq!(head(&store).await, 6, "conflicts took no position");
        let positions: Vec<_> = read_everything(&store)
            .await
            .iter()
            .map(|e| e.global_position)
            .collect();
        assert_eq!(positions, (1..=6).collect::<Vec<_>>(), "gap-free positions");
    });
}

/// E1: a multi-stream append whose second expectation fails writes nothing to the first stream;
/// once both hold, both streams get their events at consecutive positions, in request order.
pub fn e1_multi_stream_conflict_writes_nothing<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::{Exact, NoStream};
        let store = factory.open().await;
        let (a, b) = (sid("multi-a"), sid("multi-b"));
        acked(store.append(&a, NoStream, events(1, 1)).await, "seed a");
        let conflict = conflicted(
            store
                .append_multi(vec![
                    single(&b, NoStream, events(2, 2)),
                    single(&a, Exact(0), events(4, 1)),
                ])
                .await,
            "second stream's expectation fails",
        );
        assert_eq!(
            conflict,
            Conflict {
                stream_id: a.clone(),
                expected: Exact(0),
                actual: 1
            }
        );
        assert_eq!(
            version(&store, &b).await,
            0,
            "b untouched by the failed append"
        );
        assert_eq!(head(&store).await, 1);

        let both = events(5, 3);
        let result = acked(
            store
                .append_multi(vec![
                    single(&b, NoStream, both[0..2].to_vec()),
                    single(&a, Exact(1), both[2..3].to_vec()),
                ])
                .await,
            "both expectations hold",
        );
        assert_eq!(
            result,
            AppendResult {
                stream_versions: vec![(b.clone(), 2), (a.clone(), 2)],
                first_position: 2,
                last_position: 4
            }
        );
        assert_eq!(
            store.read_all(2, 100).await.expect("read_all"),
            vec![
                expected_record(&both[0], &b, 1, 2),
                expected_record(&both[1], &b, 2, 3),
                expected_record(&both[2], &a, 2, 4),
            ]
        );
    });
}

/// E1: malformed requests are `InvalidRequest` (or `InvalidStreamId`) and write nothing.
pub fn e1_invalid_requests_are_refused<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::Any;
        let store = factory.open().await;
        let (a, b) = (sid("invalid-a"), sid("invalid-b"));
        assert_invalid_request(store.append_multi(Vec::new()).await, "no streams");
        assert_invalid_request(store.append(&a, Any, Vec::new()).await, "zero events");
        assert_invalid_request(
            store
                .append_multi(vec![
                    single(&a, Any, events(1, 1)),
                    single(&b, Any, Vec::new()),
                ])
                .await,
            "one stream without events",
        );
        assert_invalid_request(
            store
                .append_multi(vec![
                    single(&a, Any, events(1, 1)),
                    single(&a, Any, events(2, 1)),
                ])
                .await,
            "a stream twice",
        );
        let twice = test_event(3);
        assert_invalid_request(
            store.append(&a, Any, vec![twice.clone(), twice]).await,
            "an event id twice",
        );
        let mut untyped = test_event(4);
        untyped.event_type.clear();
        assert_invalid_request(store.append(&a, Any, vec![untyped]).await, "empty type");
        for bad in ["Chat\0Started", "Chat\nStarted"] {
            let mut control = test_event(5);
            control.event_type = bad.to_owned();
            assert_invalid_request(
                store.append(&a, Any, vec![control]).await,
                "control character in the type",
            );
        }
        assert!(matches!(
            StreamId::new(""),
            Err(StoreError::InvalidStreamId { .. })
        ));
        assert!(matches!(
            StreamId::new("chat\n1"),
            Err(StoreError::InvalidStreamId { .. })
        ));
        assert_eq!(head(&store).await, 0, "nothing written");
        assert_eq!(version(&store, &a).await, 0);
    });
}

/// E1: every named limit refuses one past the limit with `LimitExceeded` naming it, and accepts
/// (and stores intact) a request exactly at the limit.
pub fn e1_limits_are_enforced<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::Any;
        let store = factory.open().await;
        let mut n = 1000;
        let mut next = || {
            n += 1;
            test_event(n)
        };

        assert_limit(
            StreamId::new("s".repeat(STREAM_ID_BYTES_MAX + 1)),
            "STREAM_ID_BYTES_MAX",
        );
        let longest = sid(&"s".repeat(STREAM_ID_BYTES_MAX));
        let at_limit = next();
        acked(
            store.append(&longest, Any, vec![at_limit.clone()]).await,
            "longest id",
        );
        assert_eq!(
            store.read_stream(&longest, 1, 10).await.expect("read"),
            vec![expected_record(&at_limit, &longest, 1, 1)]
        );

        let s = sid("limits");
        let mut biggest = next();
        biggest.event_type = "T".repeat(EVENT_TYPE_BYTES_MAX);
        biggest.payload = vec![0xab; EVENT_BYTES_MAX - EVENT_TYPE_BYTES_MAX];
        acked(
            store.append(&s, Any, vec![biggest.clone()]).await,
            "event at EVENT_BYTES_MAX",
        );
        assert_eq!(
            store.read_stream(&s, 1, 10).await.expect("read"),
            vec![expected_record(&biggest, &s, 1, 2)],
            "the biggest event comes back intact"
        );
        let mut too_big = next();
        too_big.event_type = "T".repeat(EVENT_TYPE_BYTES_MAX);
        too_big.payload = vec![0xab; EVENT_BYTES_MAX - EVENT_TYPE_BYTES_MAX + 1];
        assert_limit(
            store.append(&s, Any, vec![too_big]).await,
            "EVENT_BYTES_MAX",
        );
        let mut long_type = next();
        long_type.event_type = "T".repeat(EVENT_TYPE_BYTES_MAX + 1);
        assert_limit(
            store.append(&s, Any, vec![long_type]).await,
            "EVENT_TYPE_BYTES_MAX",
        );

        let many: Vec<_> = (0..EVENTS_PER_APPEND_MAX).map(|_| next()).collect();
        let result = acked(
            store
                .append_multi(vec![
                    single(&s, Any, many[..EVENTS_PER_APPEND_MAX / 2].to_vec()),
                    single(
                        &sid("limits-2"),
                        Any,
                        many[EVENTS_PER_APPEND_MAX / 2..].to_vec(),
                    ),
                ])
                .await,
            "EVENTS_PER_APPEND_MAX events over two streams",
        );
        assert_eq!(
            result.last_position - result.first_position + 1,
            EVENTS_PER_APPEND_MAX as u64
        );
        let one_too_many: Vec<_> = (0..=EVENTS_PER_APPEND_MAX).map(|_| next()).collect();
        assert_limit(
            store.append(&s, Any, one_too_many).await,
            "EVENTS_PER_APPEND_MAX",
        );

        let streams: Vec<_> = (0..=STREAMS_PER_APPEND_MAX)
            .map(|i| single(&sid(&format!("limits-many-{i}")), Any, vec![next()]))
            .collect();
        assert_limit(
            store.append_multi(streams.clone()).await,
            "STREAMS_PER_APPEND_MAX",
        );
        acked(
            store
                .append_multi(streams[..STREAMS_PER_APPEND_MAX].to_vec())
                .await,
            "STREAMS_PER_APPEND_MAX streams",
        );

        let head_now = head(&store).await;
        assert_eq!(
            head_now,
            2 + EVENTS_PER_APPEND_MAX as u64 + STREAMS_PER_APPEND_MAX as u64,
            "refused appends wrote nothing"
        );
        let page = store.read_all(1, READ_COUNT_MAX).await.expect("read_all");
        assert_eq!(page.len() as u64, head_now.min(READ_COUNT_MAX as u64));
        assert_limit(
            store.read_all(1, READ_COUNT_MAX + 1).await,
            "READ_COUNT_MAX",
        );
        assert_eq!(
            store
                .read_stream(&s, 1, READ_COUNT_MAX)
                .await
                .expect("read")
                .len(),
            1 + EVENTS_PER_APPEND_MAX / 2
        );
        assert_limit(
            store.read_stream(&s, 1, READ_COUNT_MAX + 1).await,
            "READ_COUNT_MAX",
        );
    });
}

/// E1, C9: re-sending an append whose events are stored returns the original result and writes
/// nothing — for every expectation kind, also when the expectation no longer holds.
pub fn e1_idempotent_retry_returns_original_result<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::{Any, Exact, NoStream};
        let mut store = factory.open().await;
        let (a, b, c) = (sid("retry-a"), sid("retry-b"), sid("retry-c"));
        let request = vec![
            single(&a, NoStream, events(1, 2)),
            single(&b, NoStream, events(3, 1)),
        ];
        let original = acked(store.append_multi(request.clone()).await, "original");
        acked(store.append(&c, Any, events(4, 1)).await, "something else");
        let single_original = acked(store.append(&a, Exact(2), events(5, 1)).await, "Exact(2)");
        let any_original = acked(store.append(&c, Any, events(6, 2)).await, "Any");
        let before = read_everything(&store).await;

        for round in 0..2 {
            assert_eq!(
                acked(
                    store.append_multi(request.clone()).await,
                    "multi-stream retry"
                ),
                original
            );
            assert_eq!(
                acked(
                    store.append(&a, Exact(2), events(5, 1)).await,
                    "stale Exact retry"
                ),
                single_original
            );
            assert_eq!(
                acked(store.append(&c, Any, events(6, 2)).await, "Any retry"),
                any_original
            );
            assert_eq!(
                read_everything(&store).await,
                before,
                "retries wrote nothing"
            );
            assert_eq!(version(&store, &a).await, 3);
            if round == 0 && factory.persistent() {
                store = factory.reopen(store).await;
            }
        }
    });
}

/// E1: an id that is stored cannot come back as anything but an exact retry: another stream,
/// other content, a mix with new events or another order is `DuplicateEventId` and writes nothing.
pub fn e1_reused_event_id_is_an_error<F: StoreFactory>(factory: F) {
    block_on(async {
        use ExpectedVersion::Any;
        let store = factory.open().await;
        let (a, b) = (sid("reuse-a"), sid("reuse-b"));
        let stored = events(1, 3);
        acked(store.append(&a, Any, stored.clone()).await, "original");
        let expect_duplicate =
            |outcome: AppendOutcome, id: Uuid, position: u64, what: &str| match outcome {
                Err(StoreError::DuplicateEventId {
                    event_id,
                    position: at,
                    ..
                }) => assert_eq!((event_id, at), (id, position), "{what}"),
                other => panic!("{what}: expected DuplicateEventId, got {other:?}"),
            };
        expect_duplicate(
            store.append(&b, Any, vec![stored[0].clone()]).await,
            stored[0].event_id,
            1,
            "same id, other stream",
        );
        let mut changed = stored[1].clone();
        changed.payload.push(0);
        expect_duplicate(
            store.append(&a, Any, vec![changed]).await,
            stored[1].event_id,
            2,
            "same id, other payload",
        );
        expect_duplicate(
            store
                .append(&b, Any, vec![test_event(10), stored[2].clone()])
                .await,
            stored[2].event_id,
            3,
            "a new event together with a stored one",
        );
        expect_duplicate(
            store
                .append(&a, Any, vec![stored[1].clone(), stored[0].clone()])
                .await,
            stored[0].event_id,
            1,
            "stored events in another order",
        );
        expect_duplicate(
            store
                .append(&a, Any, vec![stored[0].clone(), stored[2].clone()])
                .await,
            stored[2].event_id,
            3,
            "stored events that are not one run",
        );
        assert_eq!(head(&store).await, 3, "nothing written");
        assert_eq!(
            version(&store, &b).await,
            0,
            "the new event was not written"
        );
    });
}

/// E1, R2: tasks racing `Exact(v)` on one stream: every version has exactly one winner, the
/// losers get a conflict, and the stream holds exactly the winners' events.
pub fn e1_concurrent_exact_appends_have_one_winner_per_version<F: StoreFactory>(factory: F) {
    block_on(async {
        const TASKS: u64 = 12;
        const ATTEMPTS: u64 = 25;
        let store = Arc::new(factory.open().await);
        let s = sid("race");
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS as usize));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut wins = Vec::new();
                for attempt in 0..ATTEMPTS {
                    let v = store.stream_version(&s).await.expect("stream_version");
                    let event = test_event(1 + task * ATTEMPTS + attempt);
                    match store
                        .append(&s, ExpectedVersion::Exact(v), vec![event.clone()])
                        .await
                        .expect("no backend error")
                    {
                        Ok(result) => {
                            assert_eq!(result.stream_versions, vec![(s.clone(), v + 1)]);
                            wins.push((v + 1, event.event_id));
                        }
                        Err(conflict) => assert!(
                            conflict.actual > v,
                            "a conflict means someone else wrote: {conflict}"
                        ),
                    }
                }
                wins
            }));
        }
        let mut winners = BTreeMap::new();
        for task in tasks {
            for (version, id) in task.await.expect("task") {
                assert!(
                    winners.insert(version, id).is_none(),
                    "two winners for version {version}"
                );
            }
        }
        let stored = read_stream_all(&*store, &s).await;
        assert_eq!(stored.len(), winners.len(), "one event per winner");
        for event in stored {
            assert_eq!(
                winners.get(&event.stream_version),
                Some(&event.event_id),
                "the stored event of each version is its winner's"
            );
        }
        assert!(!winners.is_empty());
    });
}

async fn read_stream_all<S: EventStore>(store: &S, s: &StreamId) -> Vec<RecordedEvent> {
    store
        .read_stream(s, 1, READ_COUNT_MAX)
        .await
        .expect("read_stream")
}

/// E1: concurrent multi-stream appends sharing one stream are all-or-nothing: every acknowledged
/// append is stored whole at consecutive positions, every refused one not at all.
pub fn e1_concurrent_multi_stream_appends_are_all_or_nothing<F: StoreFactory>(factory: F) {
    block_on(async {
        const TASKS: u64 = 8;
        const ATTEMPTS: u64 = 20;
        let store = Arc::new(factory.open().await);
        let shared = sid("pair-shared");
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (store, shared) = (store.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let own = sid(&format!("pair-own-{task}"));
                let mut attempts = Vec::new();
                for attempt in 0..ATTEMPTS {
                    let base = 1 + (task * ATTEMPTS + attempt) * 3;
                    let vs = store.stream_version(&shared).await.expect("version");
                    let vo = store.stream_version(&own).await.expect("version");
                    // Every third attempt is stale on purpose on the second stream, so that
                    // conflicts come from both streams of the request.
                    let own_expected = if attempt % 3 == 2 { vo + 1 } else { vo };
                    let request = vec![
                        single(&shared, ExpectedVersion::Exact(vs), events(base, 1)),
                        single(
                            &own,
                            ExpectedVersion::Exact(own_expected),
                            events(base + 1, 2),
                        ),
                    ];
                    let ids: Vec<Uuid> = request
                        .iter()
                        .flat_map(|a| a.events.iter().map(|e| e.event_id))
                        .collect();
                    let outcome = store.append_multi(request).await.expect("no backend error");
                    attempts.push((ids, outcome.ok()));
                }
                attempts
            }));
        }
        let mut attempts = Vec::new();
        for task in tasks {
            attempts.extend(task.await.expect("task"));
        }
        let stored = read_everything(&*store).await;
        let by_id: BTreeMap<Uuid, &RecordedEvent> =
            stored.iter().map(|e| (e.event_id, e)).collect();
        let mut acked_events = 0;
        {
            for (ids, result) in attempts {
                match result {
                    Some(result) => {
                        let positions: Vec<_> = ids
                            .iter()
                            .map(|id| by_id.get(id).expect("acked event stored").global_position)
                            .collect();
                        assert_eq!(
                            positions,
                            (result.first_position..=result.last_position).collect::<Vec<_>>(),
                            "an acked append sits whole at its positions"
                        );
                        acked_events += ids.len();
                    }
                    None => assert!(
                        ids.iter().all(|id| !by_id.contains_key(id)),
                        "a refused append left nothing behind"
                    ),
                }
            }
        }
        assert_eq!(
            stored.len(),
            acked_events,
            "nothing but acked appends stored"
        );
        let shared_version = version(&*store, &shared).await;
        assert_eq!(shared_version as usize * 3, acked_events);
        assert!(shared_version > 0);
    });
}

/// E1: a reader tailing `read_all`, woken by `subscribe`, sees every event of 8 concurrent
/// writers exactly once, in position order, with no gap.
pub fn e1_tailing_reader_sees_every_event_once_in_order<F: StoreFactory>(factory: F) {
    block_on(async {
        const WRITERS: u64 = 8;
        const APPENDS: u64 = 30;
        let store = Arc::new(factory.open().await);
        let mut all_ids = BTreeSet::new();
        let mut plans = Vec::new();
        let mut n = 0;
        for writer in 0..WRITERS {
            let mut plan = Vec::new();
            for append in 0..APPENDS {
                let count = 1 + (writer + append) % 3;
                let batch = events(n + 1, count);
                n += count;
                all_ids.extend(batch.iter().map(|e| e.event_id));
                plan.push(batch);
            }
            plans.push(plan);
        }
        let total = all_ids.len();

        let reader = {
            let store = store.clone();
            let mut wake = store.subscribe();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut next = 1;
                while seen.len() < total {
                    let page = store.read_all(next, 64).await.expect("read_all");
                    if page.is_empty() {
                        tokio::time::timeout(Duration::from_secs(STUCK_S), wake.changed())
                            .await
                            .expect("a wake-up after every commit")
                            .expect("the store keeps its subscription open");
                        continue;
                    }
                    for event in page {
                        assert_eq!(event.global_position, next, "in order, no gap");
                        next += 1;
                        seen.push(event.event_id);
                    }
                }
                seen
            })
        };
        let mut writers = Vec::new();
        for (writer, plan) in plans.into_iter().enumerate() {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let own = sid(&format!("tail-{writer}"));
                let shared = sid("tail-shared");
                for (i, batch) in plan.into_iter().enumerate() {
                    let target = if i % 2 == 0 { &own } else { &shared };
                    acked(
                        store.append(target, ExpectedVersion::Any, batch).await,
                        "writer append",
                    );
                    tokio::task::yield_now().await;
                }
            }));
        }
        for writer in writers {
            writer.await.expect("writer");
        }
        let seen = tokio::time::timeout(Duration::from_secs(STUCK_S), reader)
            .await
            .expect("the reader catches up")
            .expect("reader");
        assert_eq!(seen.len(), total, "each event once");
        assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), all_ids);
    });
}

/// E1: the subscription starts at the head and moves to the last committed position.
pub fn e1_subscribe_wakes_on_commit<F: StoreFactory>(factory: F) {
    block_on(async {
        let store = Arc::new(factory.open().await);
        let s = sid("wake");
        let mut early = store.subscribe();
        assert_eq!(*early.borrow_and_update(), 0);
        let waiter = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(STUCK_S), early.changed())
                .await
                .expect("woken")
                .expect("open");
            *early.borrow_and_update()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        acked(
            store.append(&s, ExpectedVersion::Any, events(1, 2)).await,
            "append",
        );
        let woken_at = waiter.await.expect("waiter");
        assert!(
            woken_at >= 2,
            "the wake-up carries the new head, got {woken_at}"
        );
        acked(
            store.append(&s, ExpectedVersion::Any, events(3, 1)).await,
            "append",
        );
        let late = store.subscribe();
        assert_eq!(*late.borrow(), 3, "a new subscription starts at the head");
    });
}

/// E3: a persistent store keeps every acknowledged event, the stream versions, the head and the
/// idempotency index across reopen, and continues the positions without a gap.
/// (Non-persistent stores pass trivially.)
pub fn e3_reopen_keeps_everything<F: StoreFactory>(factory: F) {
    if !factory.persistent() {
        println!("skipped: the store is not persistent");
        return;
    }
    block_on(async {
        let mut store = factory.open().await;
        let (a, b) = (sid("reopen-a"), sid("reopen-b"));
        let first = vec![
            single(&a, ExpectedVersion::NoStream, events(1, 3)),
            single(&b, ExpectedVersion::NoStream, events(4, 1)),
        ];
        let first_result = acked(store.append_multi(first.clone()).await, "first");
        acked(
            store
                .append(&b, ExpectedVersion::Exact(1), events(5, 2))
                .await,
            "second",
        );
        let before = read_everything(&store).await;
        for _ in 0..2 {
            store = factory.reopen(store).await;
            assert_eq!(read_everything(&store).await, before);
            assert_eq!(head(&store).await, 6);
            assert_eq!(
                *store.subscribe().borrow(),
                6,
                "subscription starts at the head"
            );
            assert_eq!(version(&store, &a).await, 3);
            assert_eq!(version(&store, &b).await, 3);
            assert_eq!(
                acked(
                    store.append_multi(first.clone()).await,
                    "retry after reopen"
                ),
                first_result
            );
        }
        let next = acked(
            store
                .append(&a, ExpectedVersion::Exact(3), events(7, 1))
                .await,
            "append after reopen",
        );
        assert_eq!((next.first_position, next.stream_versions[0].1), (7, 4));
        store = factory.reopen(store).await;
        assert_eq!(read_everything(&store).await.len(), 7);
    });
}
