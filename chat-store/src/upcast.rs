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
            // is decoded straight into `T` without the dynamic value (4× cheaper on replay).
            let mut bytes = event.payload.as_slice();
            let decoded = T::deserialize(&mut rmp_serde::Deserializer::new(&mut bytes));
            let error = |reason: String| StoreError::Decode {
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                reason,
            };
            let decoded =
                decoded.map_err(|e| error(format!("the payload does not fit the type: {e}")))?;
            if !bytes.is_empty() {
                return Err(error(format!(
                    "{} bytes after the payload's MessagePack value",
                    bytes.len()
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
