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
use chat_core::config::{AccountSettings, ModuleDecider, QueueDecider};
use chat_core::conversation::Conversation;
use chat_core::{CommandId, Decider, EventKind};
use chat_store::{EventStore, READ_COUNT_MAX, StreamId, StreamVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Mutex;

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
}

impl Aggregate for QueueDecider {
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
            let event: D::Event = codec.decode_as(recorded)?;
            D::evolve(&mut state, &event);
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
