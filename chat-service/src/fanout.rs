//! Live fan-out: a visitor's chat, an agent's inbox and a supervisor's board receive the events
//! that concern them, each with its global position, and resume after a reconnect from the last
//! position they saw — without a gap and without a duplicate.
//!
//! Why positions and not "live only": a WebSocket drops; the client then says "I have seen up to
//! position p" and must get exactly what came after p. So a [`Subscription`] first reads the log
//! itself from p (through the engine's one [`Follower`]), and only when it has caught up with
//! the hub does it register for live events; the hub hands it only events after the position
//! it registered at. Filtering state (which chats an agent holds) moves with it, so every event
//! is filtered exactly once, in order.
//!
//! Why a hub: one follower decodes each event once for every subscriber, instead of one reader
//! of the store per connection. Each subscriber has a bounded buffer
//! ([`FanoutOptions::subscriber_buffer_events`]). When it is full the hub waits at most
//! [`FanoutOptions::lag_grace_ms`] for room (a burst of commits can fill a buffer even of a
//! subscriber that keeps up), then disconnects the subscriber with [`Disconnect::Lagged`]; it
//! resumes from its last position. So a slow client costs itself a reconnect and delays the
//! others by one grace period at most, once.

use crate::engine::{
    Codec, DomainEvent, EngineError, Followed, Follower, Shutdown, ShutdownTrigger,
};
use chat_core::agent::AgentEvent;
use chat_core::conversation::ChatEvent;
use chat_core::{AgentId, ChatId};
use chat_store::{EventStore, GlobalPosition, StoreError};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most subscriptions open at once on one fan-out.
pub const SUBSCRIBERS_MAX: usize = 10_000;
/// Largest per-subscriber buffer of live events.
pub const SUBSCRIBER_BUFFER_EVENTS_MAX: usize = 4096;
/// Longest wait for a full subscriber buffer to make room, in milliseconds.
pub const LAG_GRACE_MS_MAX: u64 = 10_000;

/// One delivered event: the envelope (with its global position) and its decoding.
pub type FanoutEvent = Arc<Followed>;

/// Who listens, which decides what they receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// A visitor: the events of one chat.
    Chat(ChatId),
    /// An agent: their own stream (presence, claims, releases) and every event of the chats they
    /// hold, from the assignment to the release.
    AgentInbox(AgentId),
    /// A supervisor: every chat and agent event (X1).
    Board,
}

/// Limits of one fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FanoutOptions {
    /// Most open subscriptions (1..=[`SUBSCRIBERS_MAX`]).
    pub subscribers_max: usize,
    /// Live events buffered per subscriber (1..=[`SUBSCRIBER_BUFFER_EVENTS_MAX`]).
    pub subscriber_buffer_events: usize,
    /// How long the hub waits for a full buffer to make room before it disconnects the
    /// subscriber as lagging (0..=[`LAG_GRACE_MS_MAX`]).
    pub lag_grace_ms: u64,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            subscribers_max: 1_000,
            subscriber_buffer_events: 256,
            lag_grace_ms: 200,
        }
    }
}

/// Why a subscription ended; resume with [`Fanout::subscribe`] from `resume_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disconnect {
    /// The subscriber did not keep up: its buffer of `buffer_events` live events was full.
    Lagged {
        /// The buffer size it overflowed.
        buffer_events: usize,
    },
    /// The fan-out shut down.
    Shutdown,
    /// The fan-out's follower failed (a broken store or log).
    Failed(String),
}

/// Why a fan-out call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// [`FanoutOptions::subscribers_max`] subscriptions are open.
    #[error("too many subscribers: subscribers_max is {max}")]
    TooManySubscribers {
        /// The limit.
        max: usize,
    },
    /// An option is out of its range.
    #[error("fan-out option {field} is {value}, allowed {min}..={max}")]
    InvalidOption {
        /// The option.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its lowest value.
        min: u64,
        /// Its limit.
        max: u64,
    },
    /// The subscription ended; nothing after `resume_after` was delivered.
    #[error("subscription disconnected ({reason:?}); resume after position {resume_after}")]
    Disconnected {
        /// Why.
        reason: Disconnect,
        /// The last position delivered (resume from here).
        resume_after: GlobalPosition,
    },
    /// The store failed while catching up.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log could not be followed (gap, undecodable event).
    #[error("fan-out follower: {0}")]
    Follow(String),
}

impl From<EngineError> for FanoutError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Store(e) => Self::Store(e),
            other => Self::Follow(other.to_string()),
        }
    }
}

/// What one audience receives; stateful for an agent's inbox (the chats held).
#[derive(Clone, Debug)]
struct Filter {
    audience: Audience,
    held: BTreeSet<ChatId>,
}

impl Filter {
    /// Whether `event` goes to this audience, updating the state: called once per event, in
    /// position order.
    fn admit(&mut self, event: &DomainEvent) -> bool {
        match (self.audience, event) {
            (Audience::Chat(me), DomainEvent::Chat { chat, .. }) => *chat == me,
            (Audience::Board, DomainEvent::Chat { .. } | DomainEvent::Agent { .. }) => true,
            (Audience::AgentInbox(me), DomainEvent::Agent { agent, event }) if *agent == me => {
                match event {
                    AgentEvent::ChatClaimed { chat, .. } => {
                        self.held.insert(*chat);
                    }
                    AgentEvent::ChatReleased { chat, .. } => {
                        self.held.remove(chat);
                    }
                    _ => {}
                }
                true
            }
            (Audience::AgentInbox(me), DomainEvent::Chat { chat, event }) => {
                // The chat's `AgentAssigned` precedes the agent's claim in the same append.
                if let ChatEvent::AgentAssigned { agent, .. } = event
                    && *agent == me
                {
                    self.held.insert(*chat);
                }
                self.held.contains(chat)
            }
            _ => false,
        }
    }
}

struct Subscriber {
    filter: Filter,
    /// The hub sends only events after this position (the subscriber read up to it itself).
    after: GlobalPosition,
    tx: mpsc::Sender<FanoutEvent>,
    reason: Arc<Mutex<Option<Disconnect>>>,
}

/// Dispatches between two sweeps of the subscribers for dropped subscriptions: subscribers of a
/// quiet chat are otherwise only looked at when their chat has an event.
const SWEEP_EVERY_EVENTS: u64 = 1024;

#[derive(Default)]
struct Hub {
    /// The last position the hub has handed out.
    position: GlobalPosition,
    subscribers: BTreeMap<u64, Subscriber>,
    /// The visitors' subscribers ([`Audience::Chat`]) by chat: an event is offered only to its
    /// chat's subscribers and to [`Hub::broad`], so a dispatch costs O(agents + supervisors),
    /// not O(open streams) — most streams are idle visitors (docs/PERFORMANCE.md, load).
    by_chat: HashMap<ChatId, BTreeSet<u64>>,
    /// Subscribers that may receive any chat's events: agent inboxes and boards.
    broad: BTreeSet<u64>,
    /// Events dispatched, for [`SWEEP_EVERY_EVENTS`].
    dispatched: u64,
    next_id: u64,
    /// Set once the hub stopped; new registrations get it at once.
    stopped: Option<Disconnect>,
}

fn set_reason(slot: &Mutex<Option<Disconnect>>, reason: Disconnect) {
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    slot.get_or_insert(reason);
}

impl Hub {
    fn register(&mut self, subscriber: Subscriber) {
        let id = self.next_id;
        self.next_id += 1;
        match subscriber.filter.audience {
            Audience::Chat(chat) => {
                self.by_chat.entry(chat).or_default().insert(id);
            }
            Audience::AgentInbox(_) | Audience::Board => {
                self.broad.insert(id);
            }
        }
        self.subscribers.insert(id, subscriber);
    }

    fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        if let Audience::Chat(chat) = subscriber.filter.audience
            && let Some(ids) = self.by_chat.get_mut(&chat)
        {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_chat.remove(&chat);
            }
        }
        self.broad.remove(&id);
    }

    /// Hands one event to every subscriber it is for: its chat's, then the broad ones.
    async fn dispatch(&mut self, followed: &FanoutEvent, buffer_events: usize, grace: Duration) {
        let position = followed.position();
        let mut gone = Vec::new();
        let chat_ids = match &followed.event {
            DomainEvent::Chat { chat, .. } => self.by_chat.get(chat),
            _ => None,
        };
        let ids: Vec<u64> = chat_ids
            .into_iter()
            .flatten()
            .chain(&self.broad)
            .copied()
            .collect();
        for id in ids {
            let Some(sub) = self.subscribers.get_mut(&id) else {
                continue;
            };
            if sub.tx.is_closed() {
                // The subscription was dropped.
                gone.push(id);
                continue;
            }
            if position <= sub.after || !sub.filter.admit(&followed.event) {
                continue;
            }
            match sub.tx.try_send(followed.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(id),
                Err(mpsc::error::TrySendError::Full(event)) => {
                    match tokio::time::timeout(grace, sub.tx.send(event)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => gone.push(id),
                        Err(_) => {
                            set_reason(&sub.reason, Disconnect::Lagged { buffer_events });
                            gone.push(id);
                        }
                    }
                }
            }
        }
        self.dispatched += 1;
        if self.dispatched.is_multiple_of(SWEEP_EVERY_EVENTS) {
            gone.extend(
                self.subscribers
                    .iter()
                    .filter(|(_, sub)| sub.tx.is_closed())
                    .map(|(id, _)| *id),
            );
        }
        for id in gone {
            self.remove(id);
        }
        self.position = position;
    }

    fn stop(&mut self, reason: Disconnect) {
        for sub in self.subscribers.values() {
            set_reason(&sub.reason, reason.clone());
        }
        self.subscribers.clear();
        self.by_chat.clear();
        self.broad.clear();
        self.stopped = Some(reason);
    }
}

/// The live fan-out over one store; see the module docs.
pub struct Fanout {
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
    options: FanoutOptions,
    hub: Arc<tokio::sync::Mutex<Hub>>,
    open: Arc<AtomicUsize>,
    /// This fan-out's own signal: the caller's shutdown, or dropping the fan-out.
    shutdown: Shutdown,
    stop: Arc<ShutdownTrigger>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("options", &self.options)
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        // The hub task ends and closes every live subscription with `Disconnect::Shutdown`.
        self.stop.trigger();
    }
}

impl Fanout {
    /// Starts the hub at the store's head; it stops on `shutdown`.
    pub async fn start(
        store: Arc<dyn EventStore>,
        codec: Arc<Codec>,
        options: FanoutOptions,
        mut shutdown: Shutdown,
    ) -> Result<Self, FanoutError> {
        let check = |field, value: u64, min, max| {
            if value < min || value > max {
                Err(FanoutError::InvalidOption {
                    field,
                    value,
                    min,
                    max,
                })
            } else {
                Ok(())
            }
        };
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        check(
            "subscribers_max",
            wide(options.subscribers_max),
            1,
            wide(SUBSCRIBERS_MAX),
        )?;
        check(
            "subscriber_buffer_events",
            wide(options.subscriber_buffer_events),
            1,
            wide(SUBSCRIBER_BUFFER_EVENTS_MAX),
        )?;
        check("lag_grace_ms", options.lag_grace_ms, 0, LAG_GRACE_MS_MAX)?;
        let head = store.head_position().await?;
        let (stop, own) = ShutdownTrigger::new();
        let stop = Arc::new(stop);
        let outer = stop.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            outer.trigger();
        });
        let shutdown = own;
        let hub = Arc::new(tokio::sync::Mutex::new(Hub {
            position: head,
            ..Hub::default()
        }));
        let mut follower = Follower::new(store.clone(), codec.clone(), head, shutdown.clone());
        let task_hub = hub.clone();
        let buffer_events = options.subscriber_buffer_events;
        let grace = Duration::from_millis(options.lag_grace_ms);
        tokio::spawn(async move {
            let reason = loop {
                match follower.next_page().await {
                    Ok(Some(page)) => {
                        for followed in page {
                            // The lock is taken per event, so registrations interleave with a
                            // long page instead of waiting for all of it.
                            let mut hub = task_hub.lock().await;
                            hub.dispatch(&Arc::new(followed), buffer_events, grace)
                                .await;
                        }
                    }
                    Ok(None) => break Disconnect::Shutdown,
                    Err(error) => break Disconnect::Failed(error.to_string()),
                }
            };
            task_hub.lock().await.stop(reason);
        });
        Ok(Self {
            store,
            codec,
            options,
            hub,
            open: Arc::new(AtomicUsize::new(0)),
            shutdown,
            stop,
        })
    }

    /// Subscriptions open now.
    pub fn subscribers(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Opens a subscription for `audience` that delivers the events after `after` (0: from the
    /// beginning of the log; the last position seen, to resume).
    pub async fn subscribe(
        &self,
        audience: Audience,
        after: GlobalPosition,
    ) -> Result<Subscription, FanoutError> {
        let max = self.options.subscribers_max;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| FanoutError::TooManySubscribers { max })?;
        let guard = OpenGuard(self.open.clone());
        let held = match audience {
            Audience::AgentInbox(agent) => held_at(&*self.store, &self.codec, agent, after).await?,
            _ => BTreeSet::new(),
        };
        Ok(Subscription {
            filter: Some(Filter { audience, held }),
            reader: Some(Follower::new(
                self.store.clone(),
                self.codec.clone(),
                after,
                self.shutdown.clone(),
            )),
            buffered: VecDeque::new(),
            last: after,
            hub: self.hub.clone(),
            buffer_events: self.options.subscriber_buffer_events,
            live: None,
            _open: guard,
        })
    }
}

/// The chats `agent` held after position `after`, from the agent's own stream.
async fn held_at(
    store: &dyn EventStore,
    codec: &Codec,
    agent: AgentId,
    after: GlobalPosition,
) -> Result<BTreeSet<ChatId>, FanoutError> {
    let stream = chat_store::StreamId::new(agent.stream_name())?;
    let mut held = BTreeSet::new();
    let mut from = 1;
    'read: loop {
        let page = store
            .read_stream(&stream, from, chat_store::READ_COUNT_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        from = last.stream_version + 1;
        for recorded in &page {
            if recorded.global_position > after {
                break 'read;
            }
            match codec.decode_as::<AgentEvent>(recorded)? {
                AgentEvent::ChatClaimed { chat, .. } => {
                    held.insert(chat);
                }
                AgentEvent::ChatReleased { chat, .. } => {
                    held.remove(&chat);
                }
                _ => {}
            }
        }
    }
    Ok(held)
}

/// Decrements the open count when a subscription goes away.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Live {
    rx: mpsc::Receiver<FanoutEvent>,
    reason: Arc<Mutex<Option<Disconnect>>>,
}

/// One subscriber's stream of events; see [`Fanout::subscribe`].
pub struct Subscription {
    /// The filter while catching up; moved into the hub on registration.
    filter: Option<Filter>,
    /// The subscriber's own reader while catching up.
    reader: Option<Follower>,
    buffered: VecDeque<FanoutEvent>,
    /// The last position delivered (or the starting point).
    last: GlobalPosition,
    hub: Arc<tokio::sync::Mutex<Hub>>,
    buffer_events: usize,
    live: Option<Live>,
    _open: OpenGuard,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("last", &self.last)
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The last position delivered: where to resume after a disconnect.
    pub fn last_position(&self) -> GlobalPosition {
        self.last
    }

    /// Whether the subscription has caught up and receives live events from the hub.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// The next event for this audience, waiting for it if needed. Cancel-safe (a dropped call
    /// loses nothing; a dropped subscription is pruned by the hub). After an `Err`
    /// ([`FanoutError::Disconnected`] names where to resume) the subscription is finished.
    pub async fn next(&mut self) -> Result<FanoutEvent, FanoutError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.last = event.position();
                return Ok(event);
            }
            if let Some(live) = &mut self.live {
                return match live.rx.recv().await {
                    Some(event) => {
                        self.last = event.position();
                        Ok(event)
                    }
                    None => {
                        let reason = live
                            .reason
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone()
                            .unwrap_or(Disconnect::Shutdown);
                        Err(FanoutError::Disconnected {
                            reason,
                            resume_after: self.last,
                        })
                    }
                };
            }
            self.catch_up().await?;
        }
    }

    /// Reads one page of the log itself, or registers with the hub once caught up with it.
    async fn catch_up(&mut self) -> Result<(), FanoutError> {
        let (Some(reader), Some(filter)) = (&mut self.reader, &mut self.filter) else {
            return Err(FanoutError::Follow("subscription in no mode".to_owned()));
        };
        let page = reader.read_page().await?;
        if !page.is_empty() {
            for followed in page {
                if filter.admit(&followed.event) {
                    self.buffered.push_back(Arc::new(followed));
                }
            }
            return Ok(());
        }
        let read_to = reader.position();
        let mut hub = self.hub.lock().await;
        if let Some(reason) = &hub.stopped {
            return Err(FanoutError::Disconnected {
                reason: reason.clone(),
                resume_after: self.last,
            });
        }
        if hub.position > read_to {
            // The hub is ahead of what we read: read on.
            return Ok(());
        }
        let (tx, rx) = mpsc::channel(self.buffer_events);
        let reason = Arc::new(Mutex::new(None));
        let filter = self
            .filter
            .take()
            .unwrap_or_else(|| unreachable!("checked above"));
        hub.register(Subscriber {
            filter,
            after: read_to,
            tx,
            reason: reason.clone(),
        });
        drop(hub);
        self.reader = None;
        self.live = Some(Live { rx, reason });
        Ok(())
    }
}
