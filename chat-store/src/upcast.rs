//! Payload encoding and upcasting (E4): old events must still load after their type changes.
//!
//! Payloads are MessagePack maps with named fields ([`encode_payload`]), so *adding* an optional
//! field needs nothing: old payloads simply lack it (`Option` or `#[serde(default)]`). Any other
//! change (a rename, a move, a new required field) bumps the event type's schema version and
//! registers one step in [`Upcasters`], from version `v` to `v + 1`, written over the dynamic
//! [`rmpv::Value`] so that the old Rust type need not be kept. Reading chains the steps from the
//! stored version up to the current one, then deserialises the current type.

use crate::error::StoreError;
use crate::types::RecordedEvent;
use rmp_serde::decode::ReadRefReader;
use rmpv::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// One upcasting step: the payload at schema version `v` in, the payload at `v + 1` out. An `Err`
/// says why this payload cannot be upcast (it becomes [`StoreError::Decode`]).
pub type UpcastStep = Box<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// Encodes a payload as MessagePack with named fields — the only encoding the engine writes,
/// because positional fields would make every added field a breaking change.
pub fn encode_payload<T: Serialize>(payload: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(payload)
        .map_err(|e| StoreError::InvalidRequest(format!("cannot encode a payload: {e}")))
}

/// The upcasting steps of every event type; the current schema version of a type is one past its
/// last step (1 for a type without steps).
#[derive(Default)]
pub struct Upcasters {
    /// Per event type, the steps in order: `steps[type][v - 1]` takes version `v` to `v + 1`.
    /// Keyed by type alone so a lookup borrows the stored `&str` instead of allocating a key on
    /// every decode (replay decodes millions of events).
    steps: BTreeMap<String, Vec<UpcastStep>>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.steps.iter().map(|(t, steps)| (t, steps.len())))
            .finish()
    }
}

impl Upcasters {
    /// No steps: every type is at version 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step of `event_type` from `from_version` to `from_version + 1`. Steps must
    /// be registered without holes, starting at 1; a second step for the same version, or a
    /// hole, is an `InvalidRequest` (a programming error found at start-up, not at read time).
    pub fn register(
        &mut self,
        event_type: &str,
        from_version: u16,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Result<&mut Self, StoreError> {
        let current = self.current_version(event_type);
        if from_version != current {
            return Err(StoreError::InvalidRequest(format!(
                "an upcaster of {event_type} must start at its current version {current}, not {from_version}"
            )));
        }
        self.steps
            .entry(event_type.to_owned())
            .or_default()
            .push(Box::new(step));
        Ok(self)
    }

    /// The version new events of `event_type` are written with.
    pub fn current_version(&self, event_type: &str) -> u16 {
        self.steps.get(event_type).map_or(1, |steps| {
            // At most u16::MAX - 1 steps can be registered: `register` checks from_version.
            u16::try_from(steps.len() + 1).unwrap_or(u16::MAX)
        })
    }

    /// The event's payload as a dynamic value at the current schema version of its type.
    pub fn upcast(&self, event: &RecordedEvent) -> Result<Value, StoreError> {
        let error = |reason: String| StoreError::Decode {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason,
        };
        let current = self.current_version(&event.event_type);
        if event.schema_version == 0 {
            return Err(error("schema versions start at 1".into()));
        }
        if event.schema_version > current {
            return Err(error(format!(
                "written by a newer build: this build knows {} up to version {current}",
                event.event_type
            )));
        }
        let mut bytes = event.payload.as_slice();
        let mut value = rmpv::decode::read_value(&mut bytes)
            .map_err(|e| error(format!("the payload is not MessagePack: {e}")))?;
        if !bytes.is_empty() {
            return Err(error(format!(
                "{} bytes after the payload's MessagePack value",
                bytes.len()
            )));
        }
        let steps = self
            .steps
            .get(&event.event_type)
            .map_or(&[][..], Vec::as_slice);
        for version in event.schema_version..current {
            let step = &steps[usize::from(version) - 1];
            value = step(value).map_err(|reason| {
                error(format!("upcasting from version {version} failed: {reason}"))
            })?;
        }
        Ok(value)
    }

    /// Upcasts the event's payload and deserialises it as the current type `T`.
    pub fn decode<T: DeserializeOwned>(&self, event: &RecordedEvent) -> Result<T, StoreError> {
        if event.schema_version != 0
            && event.schema_version == self.current_version(&event.event_type)
        {
            // Fast path, the common case: the payload is already at the current version, so it
            // is decoded straight into `T` without the dynamic value (4× cheaper on replay). It
            // reads the slice in place: through `io::Read`, every string would first be copied
            // into a scratch buffer (13 % of a whole replay's instructions).
            let mut deserializer = rmp_serde::Deserializer::from_read_ref(&event.payload[..]);
            let error = |reason: String| StoreError::Decode {
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                reason,
            };
            let decoded = T::deserialize(&mut deserializer)
                .map_err(|e| error(format!("the payload does not fit the type: {e}")))?;
            if !at_end(&mut deserializer) {
                return Err(error(format!(
                    "{} bytes after the payload's MessagePack value",
                    bytes_after_value(&event.payload)
                )));
            }
            return Ok(decoded);
        }
        let value = self.upcast(event)?;
        // Read back by rmp_serde, which wrote it: rmpv's own deserialiser accepts enums only in
        // its array form and refuses rmp_serde's (a unit variant as a string, others as a map).
        let mut bytes = Vec::with_capacity(event.payload.len());
        rmpv::encode::write_value(&mut bytes, &value).map_err(|e| StoreError::Decode {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason: format!("the upcast payload cannot be re-encoded: {e}"),
        })?;
        rmp_serde::from_slice(&bytes).map_err(|e| StoreError::Decode {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason: format!("the upcast payload does not fit the current type: {e}"),
        })
    }
}

/// Whether the slice deserializer has read its whole input. rmp_serde 1.3 does not tell a slice
/// reader's position, so this reads one byte more, as an option's marker (which reads nothing
/// after it): that fails with an end-of-input error exactly when no byte is left, since any
/// byte is a marker, even a reserved one.
fn at_end(deserializer: &mut rmp_serde::Deserializer<ReadRefReader<'_, [u8]>>) -> bool {
    struct OneMarker;
    impl<'de> serde::de::Visitor<'de> for OneMarker {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any MessagePack marker")
        }

        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
            Ok(())
        }
    }
    match serde::Deserializer::deserialize_option(deserializer, OneMarker) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e)) => {
            e.kind() == std::io::ErrorKind::UnexpectedEof
        }
        Ok(()) | Err(_) => false,
    }
}

/// How many bytes follow the first MessagePack value of `payload`, for the error message only
/// (the value was just decoded, so it is well-formed; the whole payload if it cannot be read).
#[cold]
fn bytes_after_value(payload: &[u8]) -> usize {
    let mut rest = payload;
    match rmpv::decode::read_value_ref(&mut rest) {
        Ok(_) => rest.len(),
        Err(_) => payload.len(),
    }
}

/// Upcaster helper: the map's field `name`, taken out (`None` when absent or not a map).
pub fn take_field(map: &mut Value, name: &str) -> Option<Value> {
    let Value::Map(entries) = map else {
        return None;
    };
    let index = entries.iter().position(|(k, _)| k.as_str() == Some(name))?;
    Some(entries.remove(index).1)
}

/// Upcaster helper: sets the map's field `name` to `value`, replacing an existing one.
/// An `Err` when `map` is not a map (the payload is not what this step expects).
pub fn set_field(map: &mut Value, name: &str, value: Value) -> Result<(), String> {
    let Value::Map(entries) = map else {
        return Err(format!("expected a map to set {name:?} in, found {map}"));
    };
    match entries.iter_mut().find(|(k, _)| k.as_str() == Some(name)) {
        Some((_, old)) => *old = value,
        None => entries.push((Value::from(name), value)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StreamId;
    use proptest::prelude::*;
    use serde::Deserialize;

    /// A payload shaped like the engine's events: named fields, strings, options, a list, an
    /// enum with unit and struct variants, a nested map.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Payload {
        id: u64,
        text: String,
        note: Option<String>,
        tags: Vec<String>,
        kind: Kind,
        fields: BTreeMap<String, String>,
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Plain,
        Tagged { by: String, score: u8 },
    }

    fn recorded(payload: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            event_id: uuid::Uuid::nil(),
            stream_id: StreamId::new("s-1").unwrap(),
            stream_version: 1,
            global_position: 1,
            event_type: "Payload".into(),
            schema_version: 1,
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            correlation_id: None,
            causation_id: None,
            payload,
            chain: None,
        }
    }

    /// The fast path as it was before it read in place: through `io::Read`, every string copied
    /// into a scratch buffer. The reference the slice reader must agree with.
    fn decode_through_read(event: &RecordedEvent) -> Result<Payload, String> {
        let mut bytes = event.payload.as_slice();
        let decoded = Payload::deserialize(&mut rmp_serde::Deserializer::new(&mut bytes))
            .map_err(|e| format!("the payload does not fit the type: {e}"))?;
        if !bytes.is_empty() {
            return Err(format!(
                "{} bytes after the payload's MessagePack value",
                bytes.len()
            ));
        }
        Ok(decoded)
    }

    fn decode_in_place(event: &RecordedEvent) -> Result<Payload, String> {
        Upcasters::new()
            .decode::<Payload>(event)
            .map_err(|e| match e {
                StoreError::Decode { reason, .. } => reason,
                other => panic!("only decode errors are expected, got {other}"),
            })
    }

    fn payload() -> impl Strategy<Value = Payload> {
        let kind = prop_oneof![
            Just(Kind::Plain),
            (".{0,8}", any::<u8>()).prop_map(|(by, score)| Kind::Tagged { by, score }),
        ];
        (
            any::<u64>(),
            ".{0,40}",
            prop::option::of(".{0,8}"),
            prop::collection::vec(".{0,6}", 0..4),
            kind,
            prop::collection::btree_map(".{0,4}", ".{0,6}", 0..3),
        )
            .prop_map(|(id, text, note, tags, kind, fields)| Payload {
                id,
                text,
                note,
                tags,
                kind,
                fields,
            })
    }

    /// A valid payload's bytes, then damaged: cut short, a byte overwritten, bytes appended.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            payload(),
            any::<prop::sample::Index>(),
            prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
            prop::collection::vec(any::<u8>(), 0..4),
            0..4u8,
        )
            .prop_map(|(payload, cut, overwrite, tail, how)| {
                let mut bytes = encode_payload(&payload).unwrap();
                match how {
                    0 => {}
                    1 => bytes.truncate(cut.index(bytes.len())),
                    2 => bytes.extend(tail),
                    _ => {
                        if let Some((at, byte)) = overwrite {
                            let at = at.index(bytes.len());
                            bytes[at] = byte;
                        }
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Given any payload bytes (valid, cut short, overwritten, with bytes after the value, or
        /// random), when decoded at the current version, then reading the slice in place gives
        /// what reading it through `io::Read` gave: the same value, or the same error.
        #[test]
        fn the_fast_path_reads_in_place_what_the_reader_read(
            payload in prop_oneof![bytes(), prop::collection::vec(any::<u8>(), 0..64)],
        ) {
            let event = recorded(payload);
            prop_assert_eq!(decode_in_place(&event), decode_through_read(&event));
        }
    }

    #[test]
    fn bytes_after_the_value_are_refused_and_counted() {
        let payload = Payload {
            id: 7,
            text: "hi".into(),
            note: None,
            tags: vec![],
            kind: Kind::Plain,
            fields: BTreeMap::new(),
        };
        let mut bytes = encode_payload(&payload).unwrap();
        assert_eq!(decode_in_place(&recorded(bytes.clone())), Ok(payload));
        bytes.extend([0xc0, 0x01, 0xa1]);
        assert_eq!(
            decode_in_place(&recorded(bytes)),
            Err("3 bytes after the payload's MessagePack value".into())
        );
    }
}
