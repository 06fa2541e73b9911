//! The model-based check: random operation sequences run against the store and against a plain
//! in-memory model, compared after every step (sled's `tests/tree/mod.rs` idea).
//!
//! The model is deliberately naive (a `Vec` of records, linear scans) so that it is obviously
//! right; only request validation is shared with the stores, because it is a pure function of the
//! request and has its own deterministic check.

use super::checks::{expected_record, read_everything};
use super::{StoreFactory, test_event};
use crate::error::StoreError;
use crate::plan::validate_appends;
use crate::store::{AppendOutcome, EventStore};
use crate::types::{
    AppendResult, Conflict, ExpectedVersion, GlobalPosition, RecordedEvent, StreamAppend, StreamId,
    StreamVersion,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How many streams the random operations touch: few, so that expectations collide often.
const STREAMS: u8 = 4;

#[derive(Clone, Copy, Debug)]
enum Expect {
    Any,
    NoStream,
    StreamExists,
    /// `Exact(model version + offset)`, so that both hits and misses happen.
    Exact(i8),
}

#[derive(Clone, Debug)]
struct Part {
    stream: u8,
    expect: Expect,
    count: u8,
}

#[derive(Clone, Debug)]
enum Op {
    /// New events; `keep_repeats` leaves a stream named twice in (an invalid request).
    Append {
        parts: Vec<Part>,
        keep_repeats: bool,
    },
    /// Re-send an earlier request as it was (acknowledged or refused then).
    Retry {
        back: usize,
    },
    /// Re-send an earlier request with its first payload changed (reuses its ids).
    RetryAltered {
        back: usize,
    },
    ReadStream {
        stream: u8,
        from: StreamVersion,
        max: usize,
    },
    ReadAll {
        from: GlobalPosition,
        max: usize,
    },
    /// Close and reopen (persistent stores; a no-op otherwise).
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        Just(Expect::Any),
        Just(Expect::NoStream),
        Just(Expect::StreamExists),
        (-1_i8..=1).prop_map(Expect::Exact),
    ];
    let part = (0..STREAMS, expect, 1_u8..=3).prop_map(|(stream, expect, count)| Part {
        stream,
        expect,
        count,
    });
    prop_oneof![
        8 => (vec(part, 1..=3), proptest::bool::weighted(0.1))
            .prop_map(|(parts, keep_repeats)| Op::Append { parts, keep_repeats }),
        2 => any::<usize>().prop_map(|back| Op::Retry { back }),
        1 => any::<usize>().prop_map(|back| Op::RetryAltered { back }),
        1 => (0..STREAMS, 0_u64..8, 0_usize..6)
            .prop_map(|(stream, from, max)| Op::ReadStream { stream, from, max }),
        1 => (0_u64..40, 0_usize..12).prop_map(|(from, max)| Op::ReadAll { from, max }),
        1 => Just(Op::Reopen),
    ]
}

/// What an append came to, comparable between the store and the model.
#[derive(Debug, PartialEq)]
enum Outcome {
    Acked(AppendResult),
    Conflict(Conflict),
    Invalid,
    Duplicate,
}

fn outcome(result: AppendOutcome) -> Result<Outcome, TestCaseError> {
    Ok(match result {
        Ok(Ok(result)) => Outcome::Acked(result),
        Ok(Err(conflict)) => Outcome::Conflict(conflict),
        Err(StoreError::InvalidRequest(_)) => Outcome::Invalid,
        Err(StoreError::DuplicateEventId { .. }) => Outcome::Duplicate,
        Err(other) => return Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    })
}

#[derive(Default)]
struct Model {
    log: Vec<RecordedEvent>,
}

impl Model {
    fn version(&self, stream_id: &StreamId) -> StreamVersion {
        self.log
            .iter()
            .filter(|e| &e.stream_id == stream_id)
            .count() as u64
    }

    fn append(&mut self, request: &[StreamAppend]) -> Outcome {
        if validate_appends(request).is_err() {
            return Outcome::Invalid;
        }
        let stored: Vec<Option<&RecordedEvent>> = request
            .iter()
            .flat_map(|a| a.events.iter())
            .map(|e| self.log.iter().find(|r| r.event_id == e.event_id))
            .collect();
        if stored.iter().any(Option::is_some) {
            let pairs = request
                .iter()
                .flat_map(|a| a.events.iter().map(move |e| (&a.stream_id, e)));
            let first = stored[0].map(|r| r.global_position);
            let exact_retry = stored
                .iter()
                .zip(pairs)
                .enumerate()
                .all(|(i, (r, (s, e)))| {
                    r.is_some_and(|r| {
                        r.is_retry_of(s, e)
                            && Some(r.global_position) == first.map(|f| f + i as u64)
                    })
                });
            if !exact_retry {
                return Outcome::Duplicate;
            }
            let stream_versions = request
                .iter()
                .map(|a| {
                    let last = a.events.last().expect("validated");
                    let r = self.log.iter().find(|r| r.event_id == last.event_id);
                    (a.stream_id.clone(), r.expect("stored").stream_version)
                })
                .collect();
            let first = first.expect("stored");
            return Outcome::Acked(AppendResult {
                stream_versions,
                first_position: first,
                last_position: first + stored.len() as u64 - 1,
            });
        }
        for append in request {
            let actual = self.version(&append.stream_id);
            if !append.expected.admits(actual) {
                return Outcome::Conflict(Conflict {
                    stream_id: append.stream_id.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        let first_position = self.log.len() as u64 + 1;
        let mut stream_versions = Vec::new();
        for append in request {
            let mut version = self.version(&append.stream_id);
            for event in &append.events {
                version += 1;
                let position = self.log.len() as u64 + 1;
                self.log
                    .push(expected_record(event, &append.stream_id, version, position));
            }
            stream_versions.push((append.stream_id.clone(), version));
        }
        Outcome::Acked(AppendResult {
            stream_versions,
            first_position,
            last_position: self.log.len() as u64,
        })
    }
}

fn stream(index: u8) -> StreamId {
    StreamId::new(format!("model-{index}")).expect("valid")
}

/// E1, E3: random appends (every expectation kind, multi-stream, retries, reused ids, invalid
/// requests), reads and reopens agree with a plain in-memory model after every step.
pub fn e1_model_based_random_operations<F: StoreFactory>(factory: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config {
        cases: factory.model_cases(),
        // The suite runs from other crates too: a failure prints its minimal operation list
        // instead of writing a regression file next to this source.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&vec(op(), 1..24), |ops| {
        runtime.block_on(run_case(&factory, &ops))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

async fn run_case<F: StoreFactory>(factory: &F, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut store = factory.open().await;
    let mut model = Model::default();
    let mut history: Vec<Vec<StreamAppend>> = Vec::new();
    let mut n = 0_u64;
    for op in ops {
        match op {
            Op::Append {
                parts,
                keep_repeats,
            } => {
                let mut request: Vec<StreamAppend> = Vec::new();
                for part in parts {
                    let stream_id = stream(part.stream);
                    if !keep_repeats && request.iter().any(|a| a.stream_id == stream_id) {
                        continue;
                    }
                    let current = model.version(&stream_id);
                    let expected = match part.expect {
                        Expect::Any => ExpectedVersion::Any,
                        Expect::NoStream => ExpectedVersion::NoStream,
                        Expect::StreamExists => ExpectedVersion::StreamExists,
                        Expect::Exact(offset) => {
                            ExpectedVersion::Exact(current.saturating_add_signed(offset.into()))
                        }
                    };
                    let events = (0..part.count)
                        .map(|_| {
                            n += 1;
                            test_event(n)
                        })
                        .collect();
                    request.push(StreamAppend {
                        stream_id,
                        expected,
                        events,
                    });
                }
                history.push(request.clone());
                compare_append(&store, &mut model, &request).await?;
            }
            Op::Retry { back } | Op::RetryAltered { back } => {
                if history.is_empty() {
                    continue;
                }
                let mut request = history[history.len() - 1 - back % history.len()].clone();
                if matches!(op, Op::RetryAltered { .. }) {
                    request[0].events[0].payload.push(0xff);
                }
                compare_append(&store, &mut model, &request).await?;
            }
            Op::ReadStream {
                stream: s,
                from,
                max,
            } => {
                let stream_id = stream(*s);
                let got = store
                    .read_stream(&stream_id, *from, *max)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("read_stream: {e}")))?;
                let want: Vec<_> = model
                    .log
                    .iter()
                    .filter(|e| e.stream_id == stream_id && e.stream_version >= *from)
                    .take(*max)
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want, "read_stream({}, {}, {})", stream_id, from, max);
            }
            Op::ReadAll { from, max } => {
                let got = store
                    .read_all(*from, *max)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("read_all: {e}")))?;
                let want: Vec<_> = model
                    .log
                    .iter()
                    .filter(|e| e.global_position >= *from)
                    .take(*max)
                    .cloned()
                    .collect();
                prop_assert_eq!(got, want, "read_all({}, {})", from, max);
            }
            Op::Reopen => {
                if factory.persistent() {
                    store = factory.reopen(store).await;
                }
            }
        }
        let head = store
            .head_position()
            .await
            .map_err(|e| TestCaseError::fail(format!("head_position: {e}")))?;
        prop_assert_eq!(head, model.log.len() as u64, "head after {:?}", op);
        prop_assert_eq!(
            *store.subscribe().borrow(),
            head,
            "subscription at the head"
        );
        for s in 0..STREAMS {
            let stream_id = stream(s);
            let version = store
                .stream_version(&stream_id)
                .await
                .map_err(|e| TestCaseError::fail(format!("stream_version: {e}")))?;
            prop_assert_eq!(
                version,
                model.version(&stream_id),
                "version of {}",
                stream_id
            );
        }
    }
    prop_assert_eq!(read_everything(&store).await, model.log, "the whole log");
    Ok(())
}

async fn compare_append<S: EventStore>(
    store: &S,
    model: &mut Model,
    request: &[StreamAppend],
) -> Result<(), TestCaseError> {
    let got = outcome(store.append_multi(request.to_vec()).await)?;
    let want = model.append(request);
    prop_assert_eq!(got, want, "append {:?}", request);
    Ok(())
}
