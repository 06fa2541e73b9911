//! The rules of an append, written once for every store (memory, sled, PostgreSQL).
//!
//! An append is checked in three steps: the request alone ([`validate_appends`]: limits, empty
//! appends, repeated streams or ids), then idempotency (are these event ids already stored?), then
//! the expectations. Keeping the steps here means the stores cannot drift apart on what a retry,
//! a conflict or a limit is. The PostgreSQL store plans too, inside its batch transaction, against
//! what it read under the global head's lock (which no other writer can change before it
//! commits); the conformance suite holds every store to the same answers.

use crate::chain::{ChainLink, link_all};
use crate::error::StoreError;
use crate::types::{
    AppendResult, Conflict, EVENT_BYTES_MAX, EVENT_TYPE_BYTES_MAX, EVENTS_PER_APPEND_MAX,
    GlobalPosition, NewEvent, READ_COUNT_MAX, RecordedEvent, STREAMS_PER_APPEND_MAX, StreamAppend,
    StreamId, StreamVersion,
};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Checks a request on its own, before any store state is looked at: at least one stream and one
/// event per stream, every named limit, no stream twice, no event id twice.
///
/// A stream named twice in one request is refused because its two expectations would have to be
/// checked against each other; an id twice because it could never be stored twice.
pub fn validate_appends(appends: &[StreamAppend]) -> Result<(), StoreError> {
    if appends.is_empty() {
        return Err(StoreError::InvalidRequest(
            "an append needs at least one stream".into(),
        ));
    }
    if appends.len() > STREAMS_PER_APPEND_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "STREAMS_PER_APPEND_MAX",
            max: STREAMS_PER_APPEND_MAX,
            actual: appends.len(),
        });
    }
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    if total > EVENTS_PER_APPEND_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "EVENTS_PER_APPEND_MAX",
            max: EVENTS_PER_APPEND_MAX,
            actual: total,
        });
    }
    let mut streams = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for append in appends {
        if append.events.is_empty() {
            return Err(StoreError::InvalidRequest(format!(
                "the append to stream {} has no events",
                append.stream_id
            )));
        }
        if !streams.insert(&append.stream_id) {
            return Err(StoreError::InvalidRequest(format!(
                "stream {} appears twice in one append",
                append.stream_id
            )));
        }
        for event in &append.events {
            validate_event(event)?;
            if !ids.insert(event.event_id) {
                return Err(StoreError::InvalidRequest(format!(
                    "event id {} appears twice in one append",
                    event.event_id
                )));
            }
        }
    }
    Ok(())
}

fn validate_event(event: &NewEvent) -> Result<(), StoreError> {
    if event.event_type.is_empty() {
        return Err(StoreError::InvalidRequest(format!(
            "event {} has an empty event type",
            event.event_id
        )));
    }
    // Every backend must refuse the same types: PostgreSQL cannot store a NUL in text, so a
    // control character is refused here rather than becoming a backend error on one store only.
    if event.event_type.chars().any(char::is_control) {
        return Err(StoreError::InvalidRequest(format!(
            "event {} has a control character in its event type {:?}",
            event.event_id, event.event_type
        )));
    }
    if event.event_type.len() > EVENT_TYPE_BYTES_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "EVENT_TYPE_BYTES_MAX",
            max: EVENT_TYPE_BYTES_MAX,
            actual: event.event_type.len(),
        });
    }
    let size = event.payload.len() + event.event_type.len();
    if size > EVENT_BYTES_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "EVENT_BYTES_MAX",
            max: EVENT_BYTES_MAX,
            actual: size,
        });
    }
    Ok(())
}

/// Checks the `max_count` of a read against [`READ_COUNT_MAX`].
pub fn validate_read_count(max_count: usize) -> Result<(), StoreError> {
    if max_count > READ_COUNT_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "READ_COUNT_MAX",
            max: READ_COUNT_MAX,
            actual: max_count,
        });
    }
    Ok(())
}

impl RecordedEvent {
    /// Whether this stored event is the one `event` proposes for `stream_id` (same id, stream and
    /// content), i.e. whether re-sending `event` is a retry rather than a reuse of the id.
    pub fn is_retry_of(&self, stream_id: &StreamId, event: &NewEvent) -> bool {
        self.event_id == event.event_id
            && &self.stream_id == stream_id
            && self.event_type == event.event_type
            && self.schema_version == event.schema_version
            && self.recorded_at == event.recorded_at
            && self.correlation_id == event.correlation_id
            && self.causation_id == event.causation_id
            && self.payload == event.payload
    }
}

/// What a store's committed state (plus, for sled, the not yet written part of the current
/// batch) looks like to the planner.
pub(crate) trait LogState {
    /// The stream's version (0 when empty).
    fn stream_version(&mut self, stream_id: &StreamId) -> Result<StreamVersion, StoreError>;
    /// The stored event with this id, if any.
    fn event_by_id(&mut self, event_id: &Uuid) -> Result<Option<RecordedEvent>, StoreError>;
    /// The last global position (0 when empty).
    fn head(&self) -> GlobalPosition;
    /// The chain link of the record at the head (`None`: empty, or a legacy record).
    fn head_link(&mut self) -> Result<Option<ChainLink>, StoreError>;
}

/// What a valid append turns into.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Every event is already stored: an exact retry, answered with the original result.
    AlreadyStored(AppendResult),
    /// New events to write, with the result to acknowledge once they are durable.
    Write {
        /// The records, in global position order.
        records: Vec<RecordedEvent>,
        /// The result.
        result: AppendResult,
    },
}

/// Plans an append that [`validate_appends`] accepted.
pub(crate) fn plan_append(
    state: &mut impl LogState,
    appends: &[StreamAppend],
) -> Result<Result<Plan, Conflict>, StoreError> {
    let mut stored = BTreeMap::new();
    for event in appends.iter().flat_map(|a| &a.events) {
        if let Some(record) = state.event_by_id(&event.event_id)? {
            stored.insert(event.event_id, record);
        }
    }
    if let Some(result) = check_retry(appends, &stored)? {
        return Ok(Ok(Plan::AlreadyStored(result)));
    }
    let mut versions = Vec::with_capacity(appends.len());
    for append in appends {
        let actual = state.stream_version(&append.stream_id)?;
        if !append.expected.admits(actual) {
            return Ok(Err(Conflict {
                stream_id: append.stream_id.clone(),
                expected: append.expected,
                actual,
            }));
        }
        versions.push(actual);
    }
    let first_position = state.head() + 1;
    let mut position = state.head();
    let mut records = Vec::new();
    let mut stream_versions = Vec::with_capacity(appends.len());
    for (append, mut version) in appends.iter().zip(versions) {
        for event in &append.events {
            position += 1;
            version += 1;
            records.push(RecordedEvent {
                event_id: event.event_id,
                stream_id: append.stream_id.clone(),
                stream_version: version,
                global_position: position,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                recorded_at: event.recorded_at,
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                payload: event.payload.clone(),
                chain: None,
            });
        }
        stream_versions.push((append.stream_id.clone(), version));
    }
    let previous = state.head_link()?;
    link_all(previous, &mut records);
    Ok(Ok(Plan::Write {
        records,
        result: AppendResult {
            stream_versions,
            first_position,
            last_position: position,
        },
    }))
}

/// Decides whether a request whose event ids are (partly) stored is an exact retry.
///
/// `stored` holds the stored events among the request's ids (a backend fetches them by id).
/// Returns `Some(original result)` when the request is an exact retry: every event stored,
/// identical, in its stream, at consecutive global positions in request order — exactly how the
/// original append wrote them. `None` when none is stored. Anything in between reuses ids and is
/// [`StoreError::DuplicateEventId`], naming the first offending event in request order.
pub fn check_retry(
    appends: &[StreamAppend],
    stored: &BTreeMap<Uuid, RecordedEvent>,
) -> Result<Option<AppendResult>, StoreError> {
    let mut found = Vec::new();
    let mut missing = None;
    for append in appends {
        for event in &append.events {
            match stored.get(&event.event_id) {
                Some(stored) => found.push((append, event, stored)),
                None => missing = missing.or(Some(event.event_id)),
            }
        }
    }
    let Some((_, _, first)) = found.first() else {
        return Ok(None);
    };
    let duplicate = |stored: &RecordedEvent, reason: String| StoreError::DuplicateEventId {
        event_id: stored.event_id,
        position: stored.global_position,
        reason,
    };
    if let Some(missing) = missing {
        return Err(duplicate(
            first,
            format!("the same append also has the new event {missing}, so it is not a retry"),
        ));
    }
    let first_position = first.global_position;
    let mut stream_versions: Vec<(StreamId, StreamVersion)> = Vec::new();
    for (offset, (append, event, stored)) in found.iter().enumerate() {
        if !stored.is_retry_of(&append.stream_id, event) {
            return Err(duplicate(
                stored,
                format!(
                    "stored in stream {} with other content than this request for stream {}",
                    stored.stream_id, append.stream_id
                ),
            ));
        }
        if stored.global_position != first_position + offset as u64 {
            return Err(duplicate(
                stored,
                "the request's events are not one contiguous run of the log in request order"
                    .into(),
            ));
        }
        match stream_versions.last_mut() {
            Some((stream, version)) if stream == &append.stream_id => {
                *version = stored.stream_version;
            }
            _ => stream_versions.push((append.stream_id.clone(), stored.stream_version)),
        }
    }
    let last_position = first_position + found.len() as u64 - 1;
    Ok(Some(AppendResult {
        stream_versions,
        first_position,
        last_position,
    }))
}
