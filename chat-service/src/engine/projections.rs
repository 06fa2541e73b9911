//! Read models with durable checkpoints: X1 (the supervisor's board), X2 (past chats, searchable)
//! and X3 (per-agent and per-alias statistics).
//!
//! Each projection is a pure fold of [`Followed`] events ([`Projection::apply`]), so rebuilding it
//! from position 0 always yields the same value (C8, tested). A runner resumes it from its
//! checkpoint and follows the log.
//!
//! **Checkpoints without a new storage API.** A checkpoint is an ordinary event,
//! `ProjectionCheckpoint { position, state }`, appended to the reserved stream
//! `$checkpoint-<name>` with the exact expected version the runner last saw. Every store already
//! offers that, atomically and durably, so checkpoints work on memory, sled and PostgreSQL alike;
//! followers skip `$` streams. The trade-offs (docs/ENGINE.md): the checkpoint stream grows by one
//! event per checkpoint (the store cannot truncate), and a state larger than the store's
//! `EVENT_BYTES_MAX` is not checkpointed at all (the projection is then rebuilt from the log at
//! start). With several engines, they race on the same checkpoint stream; the loser's append
//! conflicts and it simply skips that checkpoint.

use crate::engine::codec::{Codec, DomainEvent, derived_command_id, encode, event_id};
use crate::engine::error::EngineError;
use crate::engine::follow::{FOLLOW_POLL_INTERVAL_MS, Followed, Follower};
use crate::engine::shutdown::Shutdown;
use chat_core::config::{ContactEvent, ModuleEvent};
use chat_core::conversation::{ChatEvent, Disposition, Party};
use chat_core::projection::{LiveList, Recorded};
use chat_core::{AgentId, ChatId, ContactId, EventKind, MessageId, ModuleId};
use chat_store::{EVENT_BYTES_MAX, EventStore, ExpectedVersion, GlobalPosition, StreamId};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// Default number of domain events a projection folds between two checkpoints.
pub const CHECKPOINT_INTERVAL_EVENTS: u64 = 1000;

/// Most text of one chat the search index keeps, in bytes (X2); later messages are not indexed.
pub const SEARCH_TEXT_BYTES_MAX: usize = 16 * 1024;

/// Most results one search returns.
pub const SEARCH_RESULTS_MAX: usize = 100;

/// The reserved stream of a projection's checkpoints.
pub fn checkpoint_stream(name: &str) -> String {
    format!("$checkpoint-{name}")
}

/// A read model folded from the log.
pub trait Projection:
    Default + Clone + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Its stable name (the checkpoint stream is `$checkpoint-<NAME>`).
    const NAME: &'static str;
    /// Whether its state holds content a redaction or an erasure removes (X4): then folding
    /// such an event destroys the keys of every earlier checkpoint (docs/AUDIT.md).
    const HOLDS_CONTENT: bool = false;
    /// Folds the next event of the global log.
    fn apply(&mut self, followed: &Followed);
}

/// Folds a whole log page by page from position 0: what a fresh rebuild computes. The store is
/// read with its keys (as the engine reads it, [`crate::engine::sealing`]), so a rebuild from
/// the store as written equals the engine's projection.
pub async fn rebuild<P: Projection>(
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
) -> Result<P, EngineError> {
    let store = crate::engine::codec::sealing(store);
    let (_trigger, shutdown) = crate::engine::shutdown::ShutdownTrigger::new();
    let mut follower = Follower::new(store, codec, 0, shutdown);
    let mut projection = P::default();
    loop {
        let page = follower.read_page().await?;
        if page.is_empty() {
            return Ok(projection);
        }
        for followed in &page {
            projection.apply(followed);
        }
    }
}

/// Folds the log from position 0 up to and including `until`: what a projection checkpointed at
/// `until` must equal (the audit's `rebuild` compares them).
pub async fn rebuild_until<P: Projection>(
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
    until: GlobalPosition,
) -> Result<P, EngineError> {
    let store = crate::engine::codec::sealing(store);
    let (_trigger, shutdown) = crate::engine::shutdown::ShutdownTrigger::new();
    let mut follower = Follower::new(store, codec, 0, shutdown);
    let mut projection = P::default();
    loop {
        let page = follower.read_page().await?;
        if page.is_empty() {
            return Ok(projection);
        }
        for followed in page.iter().filter(|f| f.position() <= until) {
            projection.apply(followed);
        }
        if follower.position() >= until {
            return Ok(projection);
        }
    }
}

/// The latest checkpoint of `P` (its position and state), `None` when there is none. A
/// checkpoint whose key was destroyed after a redaction reads as position 0 and the default
/// state, i.e. "rebuild from the log".
pub async fn latest_checkpoint<P: Projection>(
    store: &dyn EventStore,
    codec: &Codec,
) -> Result<Option<(GlobalPosition, P)>, EngineError> {
    let stream = StreamId::new(checkpoint_stream(P::NAME))?;
    let version = store.stream_version(&stream).await?;
    if version == 0 {
        return Ok(None);
    }
    let last = store.read_stream(&stream, version, 1).await?;
    let Some(recorded) = last.first() else {
        return Ok(None);
    };
    let checkpoint: Checkpoint<P> = codec.decode_as(recorded)?;
    Ok(Some((checkpoint.position, checkpoint.state)))
}

#[derive(Serialize, Deserialize)]
struct Checkpoint<P: Default> {
    position: GlobalPosition,
    /// Absent in the placeholder of a checkpoint whose key was destroyed (`position` 0): the
    /// projection is then rebuilt from the log.
    #[serde(default)]
    state: P,
}

impl<P: Default> EventKind for Checkpoint<P> {
    fn event_type(&self) -> &'static str {
        "ProjectionCheckpoint"
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

struct Shared<P> {
    state: RwLock<P>,
    position: watch::Sender<GlobalPosition>,
    interval_events: u64,
    /// The checkpoint stream's version as this engine last saw it.
    checkpoint_version: RwLock<u64>,
}

/// A running projection: readers take a copy of its state; the runner feeds it.
pub(crate) struct ProjectionHandle<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for ProjectionHandle<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Projection> ProjectionHandle<P> {
    pub(crate) fn new(interval_events: u64) -> Self {
        let interval_events = if interval_events == 0 {
            CHECKPOINT_INTERVAL_EVENTS
        } else {
            interval_events
        };
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(P::default()),
                position: watch::Sender::new(0),
                interval_events,
                checkpoint_version: RwLock::new(0),
            }),
        }
    }

    /// Loads the last checkpoint, if any; returns the position to follow from.
    pub(crate) async fn resume(
        &self,
        store: &dyn EventStore,
        codec: &Codec,
    ) -> Result<GlobalPosition, EngineError> {
        let stream = StreamId::new(checkpoint_stream(P::NAME))?;
        let version = store.stream_version(&stream).await?;
        *self
            .shared
            .checkpoint_version
            .write()
            .unwrap_or_else(|p| p.into_inner()) = version;
        let Some((position, state)) = latest_checkpoint::<P>(store, codec).await? else {
            return Ok(0);
        };
        *self.shared.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        self.shared.position.send_replace(position);
        Ok(position)
    }

    pub(crate) fn read(&self) -> P {
        self.shared
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) async fn wait_for(&self, position: GlobalPosition) -> Result<(), EngineError> {
        let mut rx = self.shared.position.subscribe();
        rx.wait_for(|p| *p >= position)
            .await
            .map(|_| ())
            .map_err(|_| EngineError::ShutDown)
    }

    async fn checkpoint(
        &self,
        store: &dyn EventStore,
        position: GlobalPosition,
        recorded_at: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let stream = StreamId::new(checkpoint_stream(P::NAME))?;
        let checkpoint = Checkpoint {
            position,
            state: self.read(),
        };
        // Same name and position, same (deterministic) state and instant: two engines writing
        // the same checkpoint write identical events, and the store keeps one.
        let command =
            derived_command_id("checkpoint", &[P::NAME.as_bytes(), &position.to_be_bytes()]);
        let event = encode(&checkpoint, event_id(command, 0), recorded_at, None, None)?;
        if event.payload.len() > EVENT_BYTES_MAX {
            tracing::warn!(
                projection = P::NAME,
                bytes = event.payload.len(),
                "projection too large to checkpoint; it will be rebuilt from the log at start"
            );
            return Ok(());
        }
        let expected = *self
            .shared
            .checkpoint_version
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let outcome = store
            .append(&stream, ExpectedVersion::Exact(expected), vec![event])
            .await;
        let version = match outcome {
            Ok(Ok(result)) => result.stream_versions.first().map_or(expected, |(_, v)| *v),
            // Another engine checkpointed meanwhile: skip this one, learn the new version.
            Ok(Err(_)) | Err(chat_store::StoreError::DuplicateEventId { .. }) => {
                store.stream_version(&stream).await?
            }
            Err(error) => return Err(error.into()),
        };
        *self
            .shared
            .checkpoint_version
            .write()
            .unwrap_or_else(|p| p.into_inner()) = version;
        Ok(())
    }
}

/// Follows the log into the projection until shutdown, checkpointing when caught up and
/// `interval_events` domain events past the last checkpoint, and once more at shutdown.
pub(crate) async fn run_projection<P: Projection>(
    store: Arc<dyn EventStore>,
    mut follower: Follower,
    handle: ProjectionHandle<P>,
    mut shutdown: Shutdown,
) -> Result<(), EngineError> {
    let mut wake = store.subscribe();
    let mut since_checkpoint = 0u64;
    let mut last_at = DateTime::<Utc>::UNIX_EPOCH;
    loop {
        wake.borrow_and_update();
        let page = follower.read_page().await?;
        if !page.is_empty() {
            let mut erased = false;
            {
                let mut state = handle
                    .shared
                    .state
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                for followed in &page {
                    state.apply(followed);
                    last_at = followed.recorded.recorded_at;
                    erased |= P::HOLDS_CONTENT && crate::audit::erases_content(&followed.event);
                }
            }
            since_checkpoint += page.len() as u64;
            if erased && let Some(vault) = store.key_vault() {
                // Earlier checkpoints still hold what was just erased: destroy their keys
                // before any new checkpoint (which no longer holds it) is written.
                let owner = crate::engine::codec::checkpoint_owner(&checkpoint_stream(P::NAME));
                vault.shred_owner(owner).await?;
            }
        }
        handle.shared.position.send_replace(follower.position());
        if !page.is_empty() {
            continue;
        }
        if since_checkpoint >= handle.shared.interval_events {
            handle
                .checkpoint(store.as_ref(), follower.position(), last_at)
                .await?;
            since_checkpoint = 0;
            continue;
        }
        tokio::select! {
            _ = wake.changed() => {}
            () = shutdown.wait() => {
                if since_checkpoint > 0 {
                    handle.checkpoint(store.as_ref(), follower.position(), last_at).await?;
                }
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_INTERVAL_MS)) => {}
        }
    }
}

// ----- X1 -------------------------------------------------------------------------------------

/// X1: chats waiting and in progress, and the agents' presence and load — chat-core's
/// [`LiveList`] fed from the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    live: LiveList,
}

impl Board {
    /// The live list.
    pub fn live(&self) -> &LiveList {
        &self.live
    }
}

impl Projection for Board {
    const NAME: &'static str = "board";

    fn apply(&mut self, followed: &Followed) {
        match &followed.event {
            DomainEvent::Chat { chat, event } => {
                self.live.apply(Recorded::Chat { chat: *chat, event })
            }
            DomainEvent::Agent { agent, event } => self.live.apply(Recorded::Agent {
                agent: *agent,
                event,
            }),
            _ => {}
        }
    }
}

// ----- X2 -------------------------------------------------------------------------------------

/// One chat as the search shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRow {
    /// The chat.
    pub chat: ChatId,
    /// Its module.
    pub module: ModuleId,
    /// Its contact.
    pub contact: ContactId,
    /// Every agent who held it.
    pub agents: BTreeSet<AgentId>,
    /// The disposition of its latest ended episode.
    pub disposition: Option<Disposition>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its latest episode ended (`None` while open).
    pub ended_at: Option<DateTime<Utc>>,
    /// Message texts (redacted ones removed), bounded by [`SEARCH_TEXT_BYTES_MAX`].
    texts: BTreeMap<MessageId, String>,
    text_bytes: usize,
    /// The visitor's messages among `texts`: removed when the contact is erased (X4).
    #[serde(default)]
    visitor_messages: BTreeSet<MessageId>,
}

/// A search over past chats (X2): every set filter must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatQuery {
    /// The contact.
    pub contact: Option<ContactId>,
    /// An agent who held the chat.
    pub agent: Option<AgentId>,
    /// The module.
    pub module: Option<ModuleId>,
    /// The disposition's kind (fields such as a case id are ignored).
    pub disposition: Option<Disposition>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
    /// A case-insensitive substring of a message.
    pub text: Option<String>,
}

/// X2: every chat, searchable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastChats {
    rows: BTreeMap<ChatId, ChatRow>,
}

impl PastChats {
    /// One chat's row.
    pub fn get(&self, chat: ChatId) -> Option<&ChatRow> {
        self.rows.get(&chat)
    }

    /// Chats matching `query`, latest start first, at most [`SEARCH_RESULTS_MAX`].
    pub fn search(&self, query: &ChatQuery) -> Vec<&ChatRow> {
        let needle = query.text.as_ref().map(|t| t.to_lowercase());
        let mut rows: Vec<&ChatRow> = self
            .rows
            .values()
            .filter(|r| query.contact.is_none_or(|c| r.contact == c))
            .filter(|r| query.agent.is_none_or(|a| r.agents.contains(&a)))
            .filter(|r| query.module.is_none_or(|m| r.module == m))
            .filter(|r| {
                query.disposition.is_none_or(|d| {
                    r.disposition.is_some_and(|have| {
                        std::mem::discriminant(&have) == std::mem::discriminant(&d)
                    })
                })
            })
            .filter(|r| query.from.is_none_or(|f| r.started_at >= f))
            .filter(|r| query.to.is_none_or(|t| r.started_at < t))
            .filter(|r| {
                needle
                    .as_ref()
                    .is_none_or(|n| r.texts.values().any(|t| t.contains(n.as_str())))
            })
            .collect();
        rows.sort_by_key(|r| (std::cmp::Reverse(r.started_at), r.chat));
        rows.truncate(SEARCH_RESULTS_MAX);
        rows
    }
}

impl Projection for PastChats {
    const NAME: &'static str = "past-chats";
    const HOLDS_CONTENT: bool = true;

    fn apply(&mut self, followed: &Followed) {
        if let DomainEvent::Contact { contact, event } = &followed.event
            && matches!(**event, ContactEvent::Erased { .. })
        {
            for row in self.rows.values_mut().filter(|r| r.contact == *contact) {
                for id in std::mem::take(&mut row.visitor_messages) {
                    if let Some(text) = row.texts.remove(&id) {
                        row.text_bytes -= text.len();
                    }
                }
            }
            return;
        }
        let DomainEvent::Chat { chat, event } = &followed.event else {
            return;
        };
        if let ChatEvent::ChatStarted { at, record, .. } = event {
            self.rows.insert(
                *chat,
                ChatRow {
                    chat: *chat,
                    module: record.module,
                    contact: record.contact,
                    agents: BTreeSet::new(),
                    disposition: None,
                    started_at: *at,
                    ended_at: None,
                    texts: BTreeMap::new(),
                    text_bytes: 0,
                    visitor_messages: BTreeSet::new(),
                },
            );
            return;
        }
        let Some(row) = self.rows.get_mut(chat) else {
            return;
        };
        match event {
            ChatEvent::AgentAssigned { agent, .. } => {
                row.agents.insert(*agent);
            }
            ChatEvent::MessagePosted { message, .. } => {
                let text = message.body.text.to_lowercase();
                if row.text_bytes + text.len() <= SEARCH_TEXT_BYTES_MAX {
                    row.text_bytes += text.len();
                    row.texts.insert(message.id, text);
                    if message.author == Party::Visitor {
                        row.visitor_messages.insert(message.id);
                    }
                }
            }
            ChatEvent::MessageRedacted { message_id, .. } => {
                if let Some(text) = row.texts.remove(message_id) {
                    row.text_bytes -= text.len();
                }
                row.visitor_messages.remove(message_id);
            }
            ChatEvent::EpisodeEnded {
                at, disposition, ..
            } => {
                row.disposition = Some(*disposition);
                row.ended_at = Some(*at);
            }
            ChatEvent::ChatResumed { .. } => row.ended_at = None,
            _ => {}
        }
    }
}

// ----- X3 -------------------------------------------------------------------------------------

/// One agent's statistics (X3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStats {
    /// Assignments that ended (by an end of the episode or a transfer away).
    pub chats_handled: u64,
    /// Sum of first-response times (assignment → first message of the agent), in seconds.
    pub first_response_s_total: i64,
    /// How many first responses were measured.
    pub first_responses: u64,
    /// Sum of handling times (assignment → end or transfer away), in seconds.
    pub handling_s_total: i64,
    /// Sum of rating scores.
    pub rating_total: u64,
    /// How many ratings.
    pub ratings: u64,
}

impl AgentStats {
    /// Mean first-response time in seconds.
    pub fn first_response_s_mean(&self) -> Option<f64> {
        (self.first_responses > 0)
            .then(|| self.first_response_s_total as f64 / self.first_responses as f64)
    }

    /// Mean handling time in seconds.
    pub fn handling_s_mean(&self) -> Option<f64> {
        (self.chats_handled > 0).then(|| self.handling_s_total as f64 / self.chats_handled as f64)
    }

    /// Mean rating.
    pub fn rating_mean(&self) -> Option<f64> {
        (self.ratings > 0).then(|| self.rating_total as f64 / self.ratings as f64)
    }
}

/// Counts of one module (or one alias) by outcome (X3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleStats {
    /// Chats started.
    pub started: u64,
    /// Episodes ended, by disposition kind (`Managed`, `Offline`, `Timeout` …).
    pub ended: BTreeMap<String, u64>,
    /// Sum of rating scores.
    pub rating_total: u64,
    /// How many ratings.
    pub ratings: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Holding {
    agent: AgentId,
    since: DateTime<Utc>,
    responded: bool,
}

/// X3: per-agent and per-module statistics; per-alias views merge modules sharing an alias.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistics {
    agents: BTreeMap<AgentId, AgentStats>,
    modules: BTreeMap<ModuleId, ModuleStats>,
    aliases: BTreeMap<ModuleId, String>,
    chat_modules: BTreeMap<ChatId, ModuleId>,
    holding: BTreeMap<ChatId, Holding>,
}

impl Statistics {
    /// One agent's statistics.
    pub fn agent(&self, agent: AgentId) -> AgentStats {
        self.agents.get(&agent).cloned().unwrap_or_default()
    }

    /// One module's counts.
    pub fn module(&self, module: ModuleId) -> ModuleStats {
        self.modules.get(&module).cloned().unwrap_or_default()
    }

    /// Counts per module alias (modules without a known alias are listed by id).
    pub fn by_alias(&self) -> BTreeMap<String, ModuleStats> {
        let mut out: BTreeMap<String, ModuleStats> = BTreeMap::new();
        for (module, stats) in &self.modules {
            let alias = self
                .aliases
                .get(module)
                .cloned()
                .unwrap_or_else(|| module.to_string());
            let entry = out.entry(alias).or_default();
            entry.started += stats.started;
            entry.rating_total += stats.rating_total;
            entry.ratings += stats.ratings;
            for (kind, n) in &stats.ended {
                *entry.ended.entry(kind.clone()).or_default() += n;
            }
        }
        out
    }

    fn release(&mut self, chat: ChatId, at: DateTime<Utc>) {
        if let Some(holding) = self.holding.remove(&chat) {
            let stats = self.agents.entry(holding.agent).or_default();
            stats.chats_handled += 1;
            stats.handling_s_total += (at - holding.since).num_seconds();
        }
    }
}

fn disposition_kind(disposition: &Disposition) -> &'static str {
    match disposition {
        Disposition::Managed => "Managed",
        Disposition::Offline { .. } => "Offline",
        Disposition::Unmanaged => "Unmanaged",
        Disposition::Timeout => "Timeout",
        Disposition::Abandoned => "Abandoned",
        Disposition::Blocked => "Blocked",
        Disposition::Case { .. } => "Case",
    }
}

impl Projection for Statistics {
    const NAME: &'static str = "statistics";

    fn apply(&mut self, followed: &Followed) {
        match &followed.event {
            DomainEvent::Module { module, event } => match &event.event {
                ModuleEvent::Created { settings, .. } | ModuleEvent::Updated { settings, .. } => {
                    self.aliases.insert(*module, settings.alias.clone());
                }
                _ => {}
            },
            DomainEvent::Chat { chat, event } => {
                let chat = *chat;
                match event {
                    ChatEvent::ChatStarted { record, .. } => {
                        self.chat_modules.insert(chat, record.module);
                        self.modules.entry(record.module).or_default().started += 1;
                    }
                    ChatEvent::AgentAssigned { at, agent, .. } => {
                        self.release(chat, *at);
                        self.holding.insert(
                            chat,
                            Holding {
                                agent: *agent,
                                since: *at,
                                responded: false,
                            },
                        );
                    }
                    ChatEvent::ChatQueued { at, .. } => self.release(chat, *at),
                    ChatEvent::MessagePosted { message, .. } => {
                        if let (Party::Agent(author), Some(holding)) =
                            (message.author, self.holding.get_mut(&chat))
                            && holding.agent == author
                            && !holding.responded
                        {
                            holding.responded = true;
                            let stats = self.agents.entry(author).or_default();
                            stats.first_responses += 1;
                            stats.first_response_s_total +=
                                (message.at - holding.since).num_seconds();
                        }
                    }
                    ChatEvent::EpisodeEnded {
                        at, disposition, ..
                    } => {
                        self.release(chat, *at);
                        if let Some(module) = self.chat_modules.get(&chat) {
                            *self
                                .modules
                                .entry(*module)
                                .or_default()
                                .ended
                                .entry(disposition_kind(disposition).to_owned())
                                .or_default() += 1;
                        }
                    }
                    ChatEvent::ChatRated { agent, score, .. } => {
                        let stats = self.agents.entry(*agent).or_default();
                        stats.rating_total += u64::from(*score);
                        stats.ratings += 1;
                        if let Some(module) = self.chat_modules.get(&chat) {
                            let m = self.modules.entry(*module).or_default();
                            m.rating_total += u64::from(*score);
                            m.ratings += 1;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::conversation::{ChatMessage, ChatRecord, ChatSettings, MessageBody, Origin};
    use chat_core::{CommandId, PageData};
    use chat_store::RecordedEvent;

    fn followed(position: u64, chat: ChatId, event: ChatEvent) -> Followed {
        Followed {
            recorded: RecordedEvent {
                event_id: uuid::Uuid::from_u128(u128::from(position)),
                stream_id: StreamId::new(chat.stream_name()).unwrap(),
                stream_version: position,
                global_position: position,
                event_type: event.event_type().to_owned(),
                schema_version: 1,
                recorded_at: event.at(),
                correlation_id: None,
                causation_id: None,
                payload: Vec::new(),
                chain: None,
            },
            event: DomainEvent::Chat { chat, event },
        }
    }

    fn started(chat: ChatId, minute: i64) -> ChatEvent {
        ChatEvent::ChatStarted {
            command_id: CommandId::from_u128(1),
            at: DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::minutes(minute),
            record: Box::new(ChatRecord {
                chat,
                module: ModuleId::from_u128(1),
                contact: ContactId::from_u128(1),
                contact_email: None,
                resume_token: "t".into(),
                page: PageData::default(),
                form_answers: BTreeMap::new(),
                routing_vars: BTreeMap::new(),
                origin: Origin::Widget,
                settings: ChatSettings::default(),
            }),
        }
    }

    fn message(n: u128, text: String) -> ChatEvent {
        ChatEvent::MessagePosted {
            command_id: CommandId::from_u128(n),
            message: Box::new(ChatMessage {
                id: MessageId::from_u128(n),
                episode: 1,
                author: Party::Visitor,
                at: DateTime::<Utc>::UNIX_EPOCH,
                body: MessageBody::text(text),
                redaction: None,
            }),
        }
    }

    #[test]
    fn x2_search_returns_at_most_search_results_max_latest_first() {
        let mut past = PastChats::default();
        for n in 0..=SEARCH_RESULTS_MAX as u128 {
            let chat = ChatId::from_u128(n + 1);
            past.apply(&followed(n as u64 + 1, chat, started(chat, n as i64)));
        }
        let found = past.search(&ChatQuery::default());
        assert_eq!(found.len(), SEARCH_RESULTS_MAX);
        assert_eq!(
            found[0].chat,
            ChatId::from_u128(SEARCH_RESULTS_MAX as u128 + 1)
        );
    }

    #[test]
    fn x2_search_text_is_bounded_by_search_text_bytes_max_and_redaction_removes_it() {
        let mut past = PastChats::default();
        let chat = ChatId::from_u128(1);
        past.apply(&followed(1, chat, started(chat, 0)));
        past.apply(&followed(
            2,
            chat,
            message(1, "a".repeat(SEARCH_TEXT_BYTES_MAX - 6)),
        ));
        past.apply(&followed(3, chat, message(2, "Needle".into())));
        past.apply(&followed(4, chat, message(3, "x".into())));
        let query = |text: &str| ChatQuery {
            text: Some(text.into()),
            ..ChatQuery::default()
        };
        assert_eq!(
            past.search(&query("needle")).len(),
            1,
            "exactly at the limit: indexed"
        );
        assert!(
            past.search(&query("x")).is_empty(),
            "beyond the limit: not indexed"
        );
        let redacted = ChatEvent::MessageRedacted {
            command_id: CommandId::from_u128(9),
            at: DateTime::<Utc>::UNIX_EPOCH,
            message_id: MessageId::from_u128(2),
            by: AgentId::from_u128(1),
        };
        past.apply(&followed(5, chat, redacted));
        assert!(
            past.search(&query("needle")).is_empty(),
            "X4: redacted text is not searchable"
        );
    }
}
