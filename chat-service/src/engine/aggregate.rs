//! Loading an aggregate's state from its stream, with a bounded in-process cache.
//!
//! Any chat-core [`Decider`] whose events the codec can store is an [`Aggregate`]. Loading always
//! reads the stream from the cached version onwards (one `read_stream` that is usually empty), so
//! the cache saves the fold of old events but never serves a stale state: another engine on the
//! same database may have appended since. The cache is bounded by [`STATE_CACHE_STREAMS_MAX`];
//! it is only an optimisation, so eviction (by stream name, no LRU bookkeeping) costs a reload.

use crate::engine::codec::Codec;
use crate::engine::error::EngineError;
use chat_core::agent::Agent;
use chat_core::config::{
    AccountSettings, AdminCommand, CannedDecider, ConfigRejection, Contact, ModuleDecider,
    ModuleEvent, QueueDecider, QueueEvent, ReferenceKind, Reservation, ReservationCommand, Stamped,
    StrategyDecider, StrategyEvent,
};
use chat_core::conversation::Conversation;
use chat_core::{AgentId, CommandId, Decider, EventKind};
use chat_store::{EventStore, READ_COUNT_MAX, StreamId, StreamVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Mutex;
use uuid::Uuid;

/// Most stream states the engine keeps in memory between commands.
pub const STATE_CACHE_STREAMS_MAX: usize = 10_000;

/// A decider the engine can run: its events are stored through the codec.
pub trait Aggregate: Decider + 'static
where
    Self::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
    Self::State: Send + Sync + 'static,
{
    /// The command's retry id, when the aggregate has them (C9). Aggregates without one are
    /// idempotent by meaning; the engine then names the command by (stream, version).
    fn command_id(command: &Self::Command) -> Option<CommandId>;

    /// The references (M2, T1, R1) a decision takes or frees. The engine appends each one's
    /// reservation event in the same atomic append as `events`, so uniqueness holds across
    /// engines on one store; empty for aggregates that hold no reference.
    fn references(
        before: &Self::State,
        events: &[Self::Event],
    ) -> Vec<ReferenceChange<Self::Rejection>> {
        let _ = (before, events);
        Vec::new()
    }
}

/// One reservation a decision needs: the reference's stream gets `command`, and a refusal of it
/// (another owner holds the reference) becomes the owner's rejection through `refused`.
#[derive(Clone, Debug)]
pub struct ReferenceChange<R> {
    /// The reference's namespace.
    pub kind: ReferenceKind,
    /// The reference, as the owner spells it.
    pub reference: String,
    /// Reserve or release, by the admin of the owner's decision.
    pub command: AdminCommand<ReservationCommand>,
    /// How the reservation's refusal is reported as the owner aggregate's rejection.
    pub refused: fn(ConfigRejection) -> R,
}

impl ReferenceChange<ConfigRejection> {
    fn reserve(by: AgentId, kind: ReferenceKind, reference: &str, owner: Uuid) -> Self {
        Self {
            kind,
            reference: reference.to_owned(),
            command: AdminCommand::new(
                by,
                ReservationCommand::Reserve {
                    kind,
                    reference: reference.to_owned(),
                    owner,
                },
            ),
            refused: std::convert::identity,
        }
    }

    fn release(by: AgentId, kind: ReferenceKind, reference: &str, owner: Uuid) -> Self {
        Self {
            kind,
            reference: reference.to_owned(),
            command: AdminCommand::new(by, ReservationCommand::Release { owner }),
            refused: std::convert::identity,
        }
    }
}

/// The reservations of a configuration object's decision: creation reserves, a reference change
/// reserves the new one and releases the old one, deletion releases. `current` is the object's
/// (id, reference) before the decision.
fn reference_changes<'a, E: 'a>(
    kind: ReferenceKind,
    current: Option<(Uuid, &str)>,
    events: &'a [Stamped<E>],
    meaning: impl Fn(&'a E) -> Option<Owned<'a>>,
) -> Vec<ReferenceChange<ConfigRejection>> {
    let mut changes = Vec::new();
    let mut current = current.map(|(id, r)| (id, r.to_owned()));
    for stamped in events {
        let by = stamped.by;
        match meaning(&stamped.event) {
            Some(Owned::Created(id, reference)) => {
                changes.push(ReferenceChange::reserve(by, kind, reference, id));
                current = Some((id, reference.to_owned()));
            }
            Some(Owned::Renamed(to)) => {
                if let Some((id, from)) = current.take() {
                    // A change of letter case keeps the same reservation stream: nothing to do.
                    if !from.eq_ignore_ascii_case(to) {
                        changes.push(ReferenceChange::reserve(by, kind, to, id));
                        changes.push(ReferenceChange::release(by, kind, &from, id));
                    }
                    current = Some((id, to.to_owned()));
                }
            }
            Some(Owned::Deleted) => {
                if let Some((id, from)) = current.take() {
                    changes.push(ReferenceChange::release(by, kind, &from, id));
                }
            }
            None => {}
        }
    }
    changes
}

/// What an owner's event means for its reference.
enum Owned<'a> {
    Created(Uuid, &'a str),
    Renamed(&'a str),
    Deleted,
}

impl Aggregate for Conversation {
    fn command_id(command: &Self::Command) -> Option<CommandId> {
        Some(command.command_id())
    }
}

impl Aggregate for Agent {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }
}

impl Aggregate for ModuleDecider {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }

    fn references(
        before: &Self::State,
        events: &[Self::Event],
    ) -> Vec<ReferenceChange<ConfigRejection>> {
        let current = before
            .module
            .as_ref()
            .filter(|_| !before.deleted)
            .map(|m| (m.id.as_uuid(), m.reference.as_str()));
        reference_changes(ReferenceKind::Module, current, events, |e| match e {
            ModuleEvent::Created { id, reference, .. } => {
                Some(Owned::Created(id.as_uuid(), reference))
            }
            ModuleEvent::ReferenceChanged { to, .. } => Some(Owned::Renamed(to)),
            ModuleEvent::Deleted => Some(Owned::Deleted),
            _ => None,
        })
    }
}

impl Aggregate for QueueDecider {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }

    fn references(
        before: &Self::State,
        events: &[Self::Event],
    ) -> Vec<ReferenceChange<ConfigRejection>> {
        let current = before
            .queue
            .as_ref()
            .filter(|_| !before.deleted)
            .map(|q| (q.id.as_uuid(), q.reference.as_str()));
        reference_changes(ReferenceKind::Queue, current, events, |e| match e {
            QueueEvent::Created { id, reference, .. } => {
                Some(Owned::Created(id.as_uuid(), reference))
            }
            QueueEvent::Deleted => Some(Owned::Deleted),
            _ => None,
        })
    }
}

impl Aggregate for StrategyDecider {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }

    fn references(
        before: &Self::State,
        events: &[Self::Event],
    ) -> Vec<ReferenceChange<ConfigRejection>> {
        let current = before
            .strategy
            .as_ref()
            .filter(|_| !before.deleted)
            .map(|s| (s.id.as_uuid(), s.reference.as_str()));
        reference_changes(ReferenceKind::Strategy, current, events, |e| match e {
            StrategyEvent::Created { id, reference, .. } => {
                Some(Owned::Created(id.as_uuid(), reference))
            }
            StrategyEvent::Deleted => Some(Owned::Deleted),
            _ => None,
        })
    }
}

impl Aggregate for Contact {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }
}

impl Aggregate for Reservation {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }
}

impl Aggregate for CannedDecider {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }
}

impl Aggregate for AccountSettings {
    fn command_id(_: &Self::Command) -> Option<CommandId> {
        None
    }
}

struct Entry {
    version: StreamVersion,
    state: Box<dyn Any + Send + Sync>,
}

/// Stream states by stream name, type-erased so one cache serves every aggregate.
#[derive(Default)]
pub(crate) struct StateCache {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl StateCache {
    fn get<S: Clone + 'static>(&self, stream: &str) -> Option<(S, StreamVersion)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(stream)?;
        let state = entry.state.downcast_ref::<S>()?;
        Some((state.clone(), entry.version))
    }

    pub(crate) fn put<S: Send + Sync + 'static>(
        &self,
        stream: &str,
        state: S,
        version: StreamVersion,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if !entries.contains_key(stream) && entries.len() >= STATE_CACHE_STREAMS_MAX {
            entries.pop_first();
        }
        let keep_newer = entries.get(stream).is_some_and(|e| e.version > version);
        if !keep_newer {
            entries.insert(
                stream.to_owned(),
                Entry {
                    version,
                    state: Box::new(state),
                },
            );
        }
    }

    pub(crate) fn forget(&self, stream: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(stream);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

/// The stream's current state and version: the cached fold plus whatever was appended since.
pub(crate) async fn load<D: Aggregate>(
    store: &dyn EventStore,
    codec: &Codec,
    cache: &StateCache,
    stream: &StreamId,
) -> Result<(D::State, StreamVersion), EngineError>
where
    D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
    D::State: Send + Sync + 'static,
{
    let (mut state, mut version) = cache
        .get::<D::State>(stream.as_str())
        .unwrap_or_else(|| (D::State::default(), 0));
    let before = version;
    loop {
        let page = store
            .read_stream(stream, version + 1, READ_COUNT_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        let last_version = last.stream_version;
        for recorded in &page {
            // Decoded for this fold only: move it in (message bodies are not cloned).
            D::evolve_owned(&mut state, codec.decode_as(recorded)?);
        }
        version = last_version;
    }
    if version != before {
        cache.put(stream.as_str(), state.clone(), version);
    }
    Ok((state, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_by_state_cache_streams_max() {
        let cache = StateCache::default();
        for i in 0..=STATE_CACHE_STREAMS_MAX {
            cache.put(&format!("s-{i:06}"), i, 1);
        }
        assert_eq!(cache.len(), STATE_CACHE_STREAMS_MAX);
        // A newer version is never replaced by an older one.
        cache.put("s-000009", 99usize, 5);
        cache.put("s-000009", 1usize, 2);
        assert_eq!(cache.get::<usize>("s-000009"), Some((99, 5)));
    }
}
