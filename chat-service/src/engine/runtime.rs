//! The [`Engine`]: command handling over any store, and the background runtime that follows the
//! log to route waiting chats and fire timers.
//!
//! Command handling is load → decide (with the [`Clock`]'s `now`) → append with the expected
//! version → on conflict reload and decide again, at most [`CONFLICT_RETRIES_MAX`] times. A chat
//! command whose decision changes who holds the chat (assignment, transfer, end) appends the
//! agent's claim / release in the same `append_multi`, each stream with its exact expected
//! version: that single atomic append is what keeps capacity and exclusivity (R2) when several
//! engines share one database — the agent aggregate refuses a claim beyond capacity, the chat
//! refuses a double assignment, and a stale view loses with a conflict instead of winning.
//!
//! The runtime task folds the log into the [`World`], then on every change (a new chat, presence,
//! an end, a transfer, a resume, freed capacity) and at every wake-up instant (unattended
//! deadline C5, sticky-agent wait, opening hours) asks chat-routing to drain the queues and fires
//! due `Tick`s. Engine-issued commands carry derived command ids, so two engines doing the same
//! work append it once.

use crate::engine::aggregate::{Aggregate, StateCache, load};
use crate::engine::clock::Clock;
use crate::engine::codec::{Codec, derived_command_id, encode, event_id};
use crate::engine::error::EngineError;
use crate::engine::follow::Follower;
use crate::engine::projections::{
    Board, PastChats, Projection, ProjectionHandle, Statistics, run_projection,
};
use crate::engine::shutdown::{Shutdown, ShutdownTrigger};
use crate::engine::world::World;
use chat_core::agent::{Agent, AgentCommand, AgentRejection};
use chat_core::config::{
    Level as ConfigLevel, RepeatMode as ConfigRepeat, Reservation, ReservationCommand,
    Selection as ConfigSelection, reservation_stream,
};
use chat_core::conversation::{
    Admission, ChatCommand, ChatEvent, ChatSettings, ChatState, Conversation, Origin, QueueCause,
    Rejection, StartChat,
};
use chat_core::{
    AgentId, CaseId, ChatId, CommandId, ContactId, Decider, EventKind, FieldValue, ModuleId,
    PageData,
};
use chat_routing as routing;
use chat_store::{
    Conflict, EventStore, ExpectedVersion, GlobalPosition, NewEvent, StoreError, StreamAppend,
    StreamId, StreamVersion,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Most attempts of one command under optimistic-concurrency conflicts. Conflicts on one chat
/// are rare (one visitor, one agent); a bound turns a pathological hot stream into an error
/// instead of a spin.
pub const CONFLICT_RETRIES_MAX: u32 = 16;

/// Longest the runtime sleeps without looking at the clock: the system clock's deadlines are
/// met within this; a manual clock wakes the runtime at once when it jumps.
pub const TIMER_SLEEP_MS_MAX: u64 = 1000;

/// What an embedder chooses when starting an engine.
#[derive(Clone, Debug, Default)]
pub struct EngineOptions {
    /// Checkpoint a projection once it is this many events past its last checkpoint (0: the
    /// default, [`crate::engine::CHECKPOINT_INTERVAL_EVENTS`]).
    pub checkpoint_interval_events: u64,
}

/// A command the engine refused, as a value (nothing was recorded).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The chat refused it (the lifecycle's rules).
    #[error("{0}")]
    Chat(Rejection),
    /// The agent refused the claim or release that goes with it (capacity, presence).
    #[error("{0}")]
    Agent(AgentRejection),
    /// The caller's expected version is not the chat's: someone else acted first.
    #[error("chat moved: expected version {expected}, found {actual}")]
    Stale {
        /// What the caller expected.
        expected: StreamVersion,
        /// What the stream has.
        actual: StreamVersion,
    },
}

/// What a command did: the events appended (empty for a recognised retry) and the new state.
#[derive(Clone, Debug)]
pub struct Handled<S, E> {
    /// The events this call appended, in order (empty: nothing to do, e.g. a retry, C9).
    pub events: Vec<E>,
    /// The state after them.
    pub state: S,
    /// The stream's version after them.
    pub version: StreamVersion,
    /// The global position of the last event appended, if any.
    pub position: Option<GlobalPosition>,
}

/// The outcome of a chat command.
pub type ChatOutcome = Handled<ChatState, ChatEvent>;

/// A visitor's request for a chat; the engine adds the module's settings and the admission facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChat {
    /// Retry id (C9).
    pub command_id: CommandId,
    /// The new chat's id.
    pub chat: ChatId,
    /// The module.
    pub module: ModuleId,
    /// The matched contact.
    pub contact: ContactId,
    /// The contact's e-mail, when known.
    pub contact_email: Option<String>,
    /// The visitor's resume token.
    pub resume_token: String,
    /// Page data (M6).
    pub page: PageData,
    /// Validated pre-chat form answers.
    pub form_answers: BTreeMap<String, FieldValue>,
    /// Routing variables (R5).
    pub routing_vars: BTreeMap<String, String>,
    /// Widget or link.
    pub origin: Origin,
}

struct Inner {
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
    clock: Arc<dyn Clock>,
    cache: StateCache,
    world: RwLock<World>,
    trigger: ShutdownTrigger,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The position up to which the runtime has folded the log *and* acted on it, and the
    /// instant of that pass.
    acted: watch::Sender<(GlobalPosition, DateTime<Utc>)>,
    failures: Mutex<Vec<String>>,
    board: ProjectionHandle<Board>,
    past_chats: ProjectionHandle<PastChats>,
    statistics: ProjectionHandle<Statistics>,
}

/// The engine runtime; cheap to clone (one shared inner).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts an engine over `store`: rebuilds its world from the log, resumes the projections
    /// from their checkpoints, and spawns the runtime and projection tasks on the current tokio
    /// runtime.
    pub async fn start(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        // Message content and contact data are sealed under keys in the store's vault (X4).
        let store = crate::engine::codec::sealing(store);
        let codec = Arc::new(Codec::default());
        let (trigger, _) = ShutdownTrigger::new();
        let interval = options.checkpoint_interval_events;
        let inner = Arc::new(Inner {
            board: ProjectionHandle::new(interval),
            past_chats: ProjectionHandle::new(interval),
            statistics: ProjectionHandle::new(interval),
            store,
            codec,
            clock,
            cache: StateCache::default(),
            world: RwLock::new(World::default()),
            trigger,
            tasks: Mutex::new(Vec::new()),
            acted: watch::Sender::new((0, DateTime::<Utc>::MIN_UTC)),
            failures: Mutex::new(Vec::new()),
        });
        let engine = Self { inner };
        engine.catch_up_world().await?;
        engine.spawn_projection(engine.inner.board.clone()).await?;
        engine
            .spawn_projection(engine.inner.past_chats.clone())
            .await?;
        engine
            .spawn_projection(engine.inner.statistics.clone())
            .await?;
        let runtime = engine.clone();
        engine.spawn("runtime", async move { runtime.run().await });
        Ok(engine)
    }

    async fn spawn_projection<P: Projection>(
        &self,
        handle: ProjectionHandle<P>,
    ) -> Result<(), EngineError> {
        let after = handle
            .resume(self.inner.store.as_ref(), &self.inner.codec)
            .await?;
        let follower = self.follower(after);
        let store = self.inner.store.clone();
        let shutdown = self.shutdown_signal();
        self.spawn(P::NAME, async move {
            run_projection(store, follower, handle, shutdown).await
        });
        Ok(())
    }

    // ----- what other components use --------------------------------------------------------

    /// The store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The shared codec.
    pub fn codec(&self) -> &Arc<Codec> {
        &self.inner.codec
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// A follower of the log after `after`, stopped by this engine's shutdown.
    pub fn follower(&self, after: GlobalPosition) -> Follower {
        Follower::new(
            self.inner.store.clone(),
            self.inner.codec.clone(),
            after,
            self.shutdown_signal(),
        )
    }

    /// The shutdown signal, for background tasks of other components.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.inner.trigger.subscribe()
    }

    /// Runs a background task until it ends; an `Err` is recorded in [`Engine::failures`].
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = Result<(), EngineError>> + Send + 'static,
    {
        let inner = Arc::downgrade(&self.inner);
        let handle = tokio::spawn(async move {
            if let Err(error) = task.await {
                tracing::error!(task = name, %error, "engine task failed");
                if let Some(inner) = inner.upgrade() {
                    lock(&inner.failures).push(format!("{name}: {error}"));
                }
            }
        });
        lock(&self.inner.tasks).push(handle);
    }

    /// Errors that stopped a background task (empty when healthy).
    pub fn failures(&self) -> Vec<String> {
        lock(&self.inner.failures).clone()
    }

    /// Signals every task to stop, waits for them (projections write a final checkpoint).
    pub async fn shutdown(&self) {
        self.inner.trigger.trigger();
        let tasks: Vec<JoinHandle<()>> = lock(&self.inner.tasks).drain(..).collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Waits until the runtime and every projection have followed the log up to its head and
    /// acted on it (routing, due timers), and the head stopped moving. For tests and for callers
    /// who want read-your-writes on the projections.
    pub async fn settle(&self) -> Result<(), EngineError> {
        let now = self.inner.clock.now();
        loop {
            let head = self.inner.store.head_position().await?;
            let mut acted = self.inner.acted.subscribe();
            let mut shutdown = self.shutdown_signal();
            tokio::select! {
                r = acted.wait_for(|(p, at)| *p >= head && *at >= now) => {
                    r.map_err(|_| EngineError::ShutDown)?;
                }
                () = shutdown.wait() => return Err(EngineError::ShutDown),
            }
            self.inner.board.wait_for(head).await?;
            self.inner.past_chats.wait_for(head).await?;
            self.inner.statistics.wait_for(head).await?;
            if self.inner.store.head_position().await? == head && acted.borrow().0 >= head {
                return Ok(());
            }
        }
    }

    /// X1: chats waiting and in progress, live.
    pub fn board(&self) -> Board {
        self.inner.board.read()
    }

    /// X2: past chats, searchable.
    pub fn past_chats(&self) -> PastChats {
        self.inner.past_chats.read()
    }

    /// X3: per-agent and per-alias statistics.
    pub fn statistics(&self) -> Statistics {
        self.inner.statistics.read()
    }

    // ----- commands ---------------------------------------------------------------------------

    /// Runs a command of any aggregate (agents' presence and capacity, configuration): load,
    /// decide, append with the expected version, retry on conflict. A decision that takes or
    /// frees a reference (M2, T1, R1: see [`Aggregate::references`]) appends the reference's
    /// reservation in the same `append_multi`, each stream with its exact expected version (a
    /// never-used reference is version 0): of two racing creations one append passes, the other
    /// conflicts, reloads, and the reservation refuses with `DuplicateReference`.
    pub async fn handle<D: Aggregate>(
        &self,
        stream: &str,
        command: &D::Command,
    ) -> Result<Result<Handled<D::State, D::Event>, D::Rejection>, EngineError>
    where
        D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        D::State: Send + Sync + 'static,
    {
        let stream = StreamId::new(stream)?;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let (state, version) = self.load::<D>(&stream).await?;
            let now = self.inner.clock.now();
            let events = match D::decide(&state, command, now) {
                Ok(events) => events,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let changes = D::references(&state, &events);
            let mut next = state;
            for event in &events {
                D::evolve(&mut next, event);
            }
            if events.is_empty() {
                return Ok(Ok(Handled {
                    events,
                    state: next,
                    version,
                    position: None,
                }));
            }
            let command_id = D::command_id(command).unwrap_or_else(|| {
                derived_command_id(
                    "stream-version",
                    &[stream.as_str().as_bytes(), &version.to_be_bytes()],
                )
            });
            let mut staged = Staged::new(command_id, now);
            staged.push(stream.clone(), version, &events, next.clone())?;
            for change in changes {
                let reservation_stream =
                    StreamId::new(reservation_stream(change.kind, &change.reference))?;
                // Created before reservations were recorded: there is nothing to free.
                let nothing_to_free = |held: &chat_core::config::Reservation| {
                    matches!(&change.command.command,
                        ReservationCommand::Release { owner } if held.holder != Some(*owner))
                };
                let staged_reservation = self
                    .stage::<Reservation>(
                        &mut staged,
                        reservation_stream,
                        &change.command,
                        nothing_to_free,
                    )
                    .await?;
                if let Err(rejection) = staged_reservation {
                    return Ok(Err((change.refused)(rejection)));
                }
            }
            if let Some(position) = self.commit(staged).await? {
                return Ok(Ok(Handled {
                    version: version + events.len() as u64,
                    events,
                    state: next,
                    position: Some(position),
                }));
            }
        }
        Err(EngineError::ConflictRetriesExhausted {
            stream: stream.to_string(),
            attempts: CONFLICT_RETRIES_MAX,
        })
    }

    /// Runs `command` on `stream` and `linked` on `linked_stream` as one decision appended in one
    /// `append_multi`, both streams with their exact expected versions: a link recorded on both
    /// sides (T1, T3: a module's strategy attachment and the strategy's module link) is written
    /// whole or not at all, and a rival change of either side makes the pair retry. Either
    /// refusal refuses both; a linked decision that changes nothing adds no events.
    pub async fn handle_linked<D: Aggregate, L: Aggregate<Rejection = D::Rejection>>(
        &self,
        stream: &str,
        command: &D::Command,
        linked_stream: &str,
        linked: &L::Command,
    ) -> Result<Result<Handled<D::State, D::Event>, D::Rejection>, EngineError>
    where
        D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        D::State: Send + Sync + 'static,
        L::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        L::State: Send + Sync + 'static,
    {
        let stream = StreamId::new(stream)?;
        let linked_stream = StreamId::new(linked_stream)?;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let (state, version) = self.load::<D>(&stream).await?;
            let now = self.inner.clock.now();
            let events = match D::decide(&state, command, now) {
                Ok(events) => events,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let mut next = state;
            for event in &events {
                D::evolve(&mut next, event);
            }
            let command_id = derived_command_id(
                "linked-stream-version",
                &[stream.as_str().as_bytes(), &version.to_be_bytes()],
            );
            let mut staged = Staged::new(command_id, now);
            if !events.is_empty() {
                staged.push(stream.clone(), version, &events, next.clone())?;
            }
            let linked_result = self
                .stage::<L>(&mut staged, linked_stream.clone(), linked, |_| false)
                .await?;
            if let Err(rejection) = linked_result {
                return Ok(Err(rejection));
            }
            if staged.appends.is_empty() {
                return Ok(Ok(Handled {
                    events,
                    state: next,
                    version,
                    position: None,
                }));
            }
            if let Some(position) = self.commit(staged).await? {
                return Ok(Ok(Handled {
                    version: version + events.len() as u64,
                    events,
                    state: next,
                    position: Some(position),
                }));
            }
        }
        Err(EngineError::ConflictRetriesExhausted {
            stream: stream.to_string(),
            attempts: CONFLICT_RETRIES_MAX,
        })
    }

    /// The current state of any aggregate's stream, e.g. `state::<Conversation>(&chat.stream_name())`.
    pub async fn state<D: Aggregate>(&self, stream: &str) -> Result<D::State, EngineError>
    where
        D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        D::State: Send + Sync + 'static,
    {
        Ok(self.load::<D>(&StreamId::new(stream)?).await?.0)
    }

    /// An agent's presence, capacity, claim or release (A1, R2).
    pub async fn agent(
        &self,
        command: AgentCommand,
    ) -> Result<
        Result<Handled<chat_core::agent::AgentState, chat_core::agent::AgentEvent>, AgentRejection>,
        EngineError,
    > {
        let agent = match &command {
            AgentCommand::SetPresence { agent, .. }
            | AgentCommand::SetCapacity { agent, .. }
            | AgentCommand::Claim { agent, .. }
            | AgentCommand::Release { agent, .. } => *agent,
        };
        self.handle::<Agent>(&agent.stream_name(), &command).await
    }

    /// Starts a chat (C1, C2): the engine evaluates the module's schedule and open-chat count
    /// for the admission facts and snapshots the module's settings into the chat.
    pub async fn start_chat(
        &self,
        new: NewChat,
    ) -> Result<Result<ChatOutcome, Refusal>, EngineError> {
        self.catch_up_world().await?;
        let now = self.inner.clock.now();
        let (settings, admission) = self.admission(new.module, new.contact, now)?;
        let command = ChatCommand::Start(Box::new(StartChat {
            command_id: new.command_id,
            chat: new.chat,
            module: new.module,
            contact: new.contact,
            contact_email: new.contact_email,
            resume_token: new.resume_token,
            page: new.page,
            form_answers: new.form_answers,
            routing_vars: new.routing_vars,
            origin: new.origin,
            settings,
            admission,
        }));
        self.chat(new.chat, command).await
    }

    /// Resumes an ended chat (C7) with fresh admission facts.
    pub async fn resume_chat(
        &self,
        chat: ChatId,
        command_id: CommandId,
    ) -> Result<Result<ChatOutcome, Refusal>, EngineError> {
        let stream = StreamId::new(chat.stream_name())?;
        let (state, _) = self.load::<Conversation>(&stream).await?;
        let Some((module, contact)) = state.record.as_ref().map(|r| (r.module, r.contact)) else {
            return Ok(Err(Refusal::Chat(Rejection::NotStarted)));
        };
        self.catch_up_world().await?;
        let (_, admission) = self.admission(module, contact, self.inner.clock.now())?;
        self.chat(
            chat,
            ChatCommand::Resume {
                command_id,
                admission,
            },
        )
        .await
    }

    /// Any chat command (C4–C9, A3, X3, X4). Claims and releases of agents that go with it are
    /// appended atomically.
    pub async fn chat(
        &self,
        chat: ChatId,
        command: ChatCommand,
    ) -> Result<Result<ChatOutcome, Refusal>, EngineError> {
        let outcome = self.chat_expecting(chat, &command, None).await?;
        // A redaction destroys the message's key once recorded (also on a retry, X4).
        crate::audit::shred_after_chat_command(self, chat, &command, &outcome).await?;
        Ok(outcome)
    }

    /// The module's settings and the admission facts (C2, F5) from the world, caught up by the
    /// caller first.
    fn admission(
        &self,
        module: ModuleId,
        contact: ContactId,
        now: DateTime<Utc>,
    ) -> Result<(ChatSettings, Admission), EngineError> {
        let world = read(&self.inner.world);
        let state = world
            .modules
            .get(&module)
            .filter(|m| !m.deleted)
            .and_then(|m| m.module.as_ref())
            .ok_or(EngineError::UnknownModule(module))?;
        state
            .can_take_chats()
            .map_err(|_| EngineError::ModuleCannotTakeChats(module))?;
        let schedule = state.schedule(world.account.default_time_zone);
        let s = &state.settings;
        let settings = ChatSettings {
            async_chatting: s.async_chatting,
            case_when_no_agent: s.case_when_no_agent,
            unattended_timeout_s: Some(world.account.unattended_timeout_s),
            transcript_email: s.transcript_email,
            attachment_bytes_max: s.attachment_bytes_max,
        };
        let admission = Admission {
            within_working_hours: schedule.is_open(now),
            open_chats: world.open_chats(module),
            open_chats_max: s.concurrent_chats_max,
            contact_blocked: world.blocked_contacts.contains(&contact),
        };
        Ok((settings, admission))
    }

    async fn load<D: Aggregate>(
        &self,
        stream: &StreamId,
    ) -> Result<(D::State, StreamVersion), EngineError>
    where
        D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        D::State: Send + Sync + 'static,
    {
        load::<D>(
            self.inner.store.as_ref(),
            &self.inner.codec,
            &self.inner.cache,
            stream,
        )
        .await
    }

    async fn chat_expecting(
        &self,
        chat: ChatId,
        command: &ChatCommand,
        expected: Option<StreamVersion>,
    ) -> Result<Result<ChatOutcome, Refusal>, EngineError> {
        let stream = StreamId::new(chat.stream_name())?;
        for _ in 0..CONFLICT_RETRIES_MAX {
            let (state, version) = self.load::<Conversation>(&stream).await?;
            if let Some(expected) = expected
                && expected != version
            {
                return Ok(Err(Refusal::Stale {
                    expected,
                    actual: version,
                }));
            }
            let now = self.inner.clock.now();
            let events = match Conversation::decide(&state, command, now) {
                Ok(events) => events,
                Err(rejection) => return Ok(Err(Refusal::Chat(rejection))),
            };
            let mut next = state.clone();
            for event in &events {
                Conversation::evolve(&mut next, event);
            }
            if events.is_empty() {
                return Ok(Ok(Handled {
                    events,
                    state: next,
                    version,
                    position: None,
                }));
            }
            let command_id = command.command_id();
            let mut staged = Staged::new(command_id, now);
            staged.push(stream.clone(), version, &events, next.clone())?;
            if state.agent != next.agent {
                let changes = [
                    state
                        .agent
                        .map(|agent| (agent, AgentCommand::Release { agent, chat })),
                    next.agent
                        .map(|agent| (agent, AgentCommand::Claim { agent, chat })),
                ];
                for (agent, agent_command) in changes.into_iter().flatten() {
                    let agent_stream = StreamId::new(agent.stream_name())?;
                    let staged_agent = self
                        .stage::<Agent>(&mut staged, agent_stream, &agent_command, |_| false)
                        .await?;
                    if let Err(rejection) = staged_agent {
                        return Ok(Err(Refusal::Agent(rejection)));
                    }
                }
            }
            if let Some(position) = self.commit(staged).await? {
                return Ok(Ok(Handled {
                    version: version + events.len() as u64,
                    events,
                    state: next,
                    position: Some(position),
                }));
            }
        }
        Err(EngineError::ConflictRetriesExhausted {
            stream: stream.to_string(),
            attempts: CONFLICT_RETRIES_MAX,
        })
    }

    /// Decides `command` for a companion stream (an agent's claim or release, a reference's
    /// reservation) against its current state and stages its events in the same atomic write,
    /// at the stream's exact version. `skip` leaves the stream out for a state where the command
    /// has nothing to do. One path for every companion, so they commit, cache and retry alike.
    async fn stage<C: Aggregate>(
        &self,
        staged: &mut Staged,
        stream: StreamId,
        command: &C::Command,
        skip: impl FnOnce(&C::State) -> bool,
    ) -> Result<Result<(), C::Rejection>, EngineError>
    where
        C::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
        C::State: Send + Sync + 'static,
    {
        let (state, version) = self.load::<C>(&stream).await?;
        if skip(&state) {
            return Ok(Ok(()));
        }
        let events = match C::decide(&state, command, staged.now) {
            Ok(events) => events,
            Err(rejection) => return Ok(Err(rejection)),
        };
        if events.is_empty() {
            return Ok(Ok(()));
        }
        let mut next = state;
        for event in &events {
            C::evolve(&mut next, event);
        }
        staged.push(stream, version, &events, next)?;
        Ok(Ok(()))
    }

    /// Appends a staged write. Done: every stream's new state goes into the cache. Conflict:
    /// every stream is forgotten so the retry reloads it (`None`).
    async fn commit(&self, staged: Staged) -> Result<Option<GlobalPosition>, EngineError> {
        let streams: Vec<String> = staged
            .appends
            .iter()
            .map(|append| append.stream_id.as_str().to_owned())
            .collect();
        match self.append(staged.appends).await? {
            Appended::Done(position) => {
                for put in staged.cache_updates {
                    put(&self.inner.cache);
                }
                Ok(Some(position))
            }
            Appended::Retry => {
                for stream in &streams {
                    self.inner.cache.forget(stream);
                }
                Ok(None)
            }
        }
    }

    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Appended, EngineError> {
        match self.inner.store.append_multi(appends).await {
            Ok(Ok(result)) => Ok(Appended::Done(result.last_position)),
            Ok(Err(Conflict { .. })) => Ok(Appended::Retry),
            // The same derived ids with other content: the command (or the engine-issued one)
            // was already recorded by an earlier attempt; reload and decide again (C9).
            Err(StoreError::DuplicateEventId { .. }) => Ok(Appended::Retry),
            Err(error) => Err(error.into()),
        }
    }

    // ----- the runtime ------------------------------------------------------------------------

    async fn catch_up_world(&self) -> Result<(), EngineError> {
        let after = read(&self.inner.world).position;
        let mut follower = self.follower(after);
        loop {
            let page = follower.read_page().await?;
            if page.is_empty() {
                break;
            }
            let mut world = write(&self.inner.world);
            for followed in page {
                // Command handlers catch up too (read-your-writes for admission): whoever
                // applies a position first applies it, in order, exactly once.
                if followed.position() > world.position {
                    world.apply(followed);
                }
            }
        }
        // Past skipped reserved events too, so "caught up" compares with the store's head.
        let mut world = write(&self.inner.world);
        world.position = world.position.max(follower.position());
        Ok(())
    }

    async fn run(&self) -> Result<(), EngineError> {
        let mut shutdown = self.shutdown_signal();
        let mut wake = self.inner.store.subscribe();
        let mut jumps = self.inner.clock.jumps();
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            wake.borrow_and_update();
            jumps.borrow_and_update();
            self.catch_up_world().await?;
            let position = read(&self.inner.world).position;
            let now = self.inner.clock.now();
            let next_wakeup = self.act(now).await?;
            self.inner.acted.send_replace((position, now));
            if self.inner.store.head_position().await? > position {
                continue;
            }
            let now = self.inner.clock.now();
            let sleep_ms = next_wakeup
                .map(|at| (at - now).num_milliseconds().max(0) as u64)
                .unwrap_or(TIMER_SLEEP_MS_MAX)
                .min(TIMER_SLEEP_MS_MAX);
            if sleep_ms == 0 && next_wakeup.is_some() {
                // Due now but nothing could be done (e.g. a refused tick): do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::select! {
                _ = wake.changed() => {}
                _ = jumps.changed() => {}
                () = shutdown.wait() => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            }
        }
    }

    /// One pass of routing and timers over the current world. Returns the next instant at which
    /// something is due with no new input.
    async fn act(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, EngineError> {
        // Timers first: a chat that timed out must not be routed.
        let due: Vec<(DateTime<Utc>, ChatId)> = read(&self.inner.world)
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .copied()
            .collect();
        for (deadline, chat) in &due {
            let command_id = derived_command_id(
                "tick",
                &[
                    chat.as_uuid().as_bytes(),
                    &deadline.timestamp_micros().to_be_bytes(),
                ],
            );
            // A refusal (not due any more, already ended) is the expected race: nothing to do.
            let _ = self.chat(*chat, ChatCommand::Tick { command_id }).await?;
        }
        let (mut snapshot, router) = {
            let world = read(&self.inner.world);
            (build_snapshot(&world, now)?, routing::Router::default())
        };
        let outcomes = router.drain(&mut snapshot, now)?;
        for outcome in outcomes {
            if let routing::Decision::Assign(assignment) = outcome.decision {
                let chat = ChatId::from_uuid(assignment.chat.id.0);
                let version = assignment.expect.chat_version;
                let command = ChatCommand::Assign {
                    command_id: derived_command_id(
                        "assign",
                        &[chat.as_uuid().as_bytes(), &version.to_be_bytes()],
                    ),
                    agent: AgentId::from_uuid(assignment.agent.0),
                    manual_pick: false,
                };
                // Refused or stale: another engine (or the visitor) acted first; the follower
                // brings the news and the next pass decides again.
                let _ = self.chat_expecting(chat, &command, Some(version)).await?;
            }
        }
        // C3: a waiting chat nobody online could ever take (no online member at a level that
        // may serve it) is reported to the chat, which ends it unmanaged, turns it into a case
        // or keeps it open asynchronously, as its module says.
        let waiting: Vec<(routing::ChatId, u64)> =
            snapshot.waiting().map(|c| (c.id, c.version)).collect();
        for (id, version) in waiting {
            let outcome = router.decide(&snapshot, &routing::Request::Waiting(id), now)?;
            if let routing::Decision::Unmanaged { .. } = outcome.decision {
                let chat = ChatId::from_uuid(id.0);
                let (uuid, version_bytes) = (chat.as_uuid(), version.to_be_bytes());
                let parts: [&[u8]; 2] = [uuid.as_bytes(), &version_bytes];
                let case_template = self.case_template(chat);
                let command = ChatCommand::NoAgentAvailable {
                    command_id: derived_command_id("no-agent", &parts),
                    case_id: CaseId::from_uuid(derived_command_id("case", &parts).as_uuid()),
                    case_template,
                };
                let _ = self.chat_expecting(chat, &command, Some(version)).await?;
            }
        }
        let world = read(&self.inner.world);
        let timer = world.deadlines.first().map(|(at, _)| *at);
        let wakeup = router.next_wakeup(&snapshot, now).filter(|at| *at > now);
        Ok(timer.into_iter().chain(wakeup).min())
    }
}

impl Engine {
    /// A6: the case template of the chat's module, as case fields (empty when the module has
    /// none or is unknown).
    pub fn case_template(&self, chat: ChatId) -> BTreeMap<String, FieldValue> {
        let world = read(&self.inner.world);
        let module = world
            .chats
            .get(&chat)
            .and_then(|entry| entry.state.record.as_ref())
            .and_then(|record| world.modules.get(&record.module))
            .and_then(|state| state.module.as_ref());
        module
            .map(|m| {
                m.case_template
                    .iter()
                    .map(|(name, value)| (name.clone(), FieldValue::Text(value.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Puts one stream's new state into the cache once its append is acknowledged.
type CacheUpdate = Box<dyn FnOnce(&StateCache) + Send>;

/// One atomic multi-stream write being assembled: the primary stream's events and those of its
/// companions, with their event ids numbered in one sequence under the command id (so a retry
/// derives the same ids) and the cache updates to apply once the append is acknowledged.
struct Staged {
    command_id: CommandId,
    now: DateTime<Utc>,
    next_index: u32,
    appends: Vec<StreamAppend>,
    cache_updates: Vec<CacheUpdate>,
}

impl Staged {
    fn new(command_id: CommandId, now: DateTime<Utc>) -> Self {
        Self {
            command_id,
            now,
            next_index: 0,
            appends: Vec::new(),
            cache_updates: Vec::new(),
        }
    }

    /// Adds one stream's events, expected at exactly `version`, whose state becomes `next`.
    fn push<E: Serialize + EventKind, S: Send + Sync + 'static>(
        &mut self,
        stream: StreamId,
        version: StreamVersion,
        events: &[E],
        next: S,
    ) -> Result<(), EngineError> {
        let encoded = encode_all(events, self.command_id, self.next_index, self.now)?;
        self.next_index += events.len() as u32;
        let new_version = version + events.len() as u64;
        let key = stream.as_str().to_owned();
        self.cache_updates
            .push(Box::new(move |cache| cache.put(&key, next, new_version)));
        self.appends.push(StreamAppend {
            stream_id: stream,
            expected: ExpectedVersion::Exact(version),
            events: encoded,
        });
        Ok(())
    }
}

enum Appended {
    Done(GlobalPosition),
    Retry,
}

fn encode_all<E: Serialize + EventKind>(
    events: &[E],
    command_id: CommandId,
    first_index: u32,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, EngineError> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let index = first_index + i as u32;
            encode(
                event,
                event_id(command_id, index),
                now,
                Some(command_id.as_uuid()),
                Some(command_id.as_uuid()),
            )
        })
        .collect()
}

/// The routing snapshot of the world at `now`: queues with their policies, modules with their
/// opening evaluated in their zone, agents with presence, capacity, load and memberships, and the
/// waiting chats. Rebuilt per pass (O(agents + waiting chats)); see docs/ENGINE.md.
fn routing_selection(selection: ConfigSelection) -> routing::Selection {
    match selection {
        ConfigSelection::LongestIdle => routing::Selection::LongestIdle,
        ConfigSelection::LeastBusy => routing::Selection::LeastBusy,
        ConfigSelection::RoundRobin => routing::Selection::RoundRobin,
    }
}

fn build_snapshot(world: &World, now: DateTime<Utc>) -> Result<routing::Snapshot, EngineError> {
    let mut snapshot = routing::Snapshot::new();
    let mut memberships: BTreeMap<AgentId, BTreeMap<routing::QueueId, routing::Level>> =
        BTreeMap::new();
    for (id, state) in &world.queues {
        let Some(queue) = state.queue.as_ref().filter(|_| !state.deleted) else {
            continue;
        };
        let rq = routing::QueueId(id.as_uuid());
        let mut config = routing::Queue::new(rq, routing_selection(queue.policy.selection));
        config.repeat = match queue.policy.repeat {
            ConfigRepeat::Any => routing::RepeatMode::Any,
            ConfigRepeat::Same { wait_s } => routing::RepeatMode::Same { wait_s },
            ConfigRepeat::New => routing::RepeatMode::New,
        };
        snapshot.upsert_queue(config)?;
        for (agent, level) in &queue.members {
            let level = match level {
                ConfigLevel::One => routing::Level::One,
                ConfigLevel::Two => routing::Level::Two,
            };
            memberships.entry(*agent).or_default().insert(rq, level);
        }
    }
    for (id, state) in &world.modules {
        let Some(module) = state.module.as_ref().filter(|_| !state.deleted) else {
            continue;
        };
        let Some(queue) = module
            .settings
            .routing
            .filter(|q| world.queues.contains_key(q))
        else {
            continue;
        };
        let schedule = module.schedule(world.account.default_time_zone);
        let mut config = routing::Module::new(
            routing::ModuleId(id.as_uuid()),
            routing::QueueId(queue.as_uuid()),
        );
        config.opening = routing::Opening {
            open: schedule.is_open(now),
            until: schedule.next_change(now),
        };
        config.open_chats_max = module.settings.concurrent_chats_max;
        config.open_chats = world.open_chats(*id);
        snapshot.upsert_module(config)?;
    }
    for (id, entry) in &world.agents {
        let presence = match entry.state.presence {
            chat_core::agent::Presence::Online => routing::Presence::Online,
            chat_core::agent::Presence::Away => routing::Presence::Away,
            chat_core::agent::Presence::Offline => routing::Presence::Offline,
        };
        snapshot.upsert_agent(routing::Agent {
            id: routing::AgentId(id.as_uuid()),
            presence,
            capacity: entry.state.capacity,
            load: u32::try_from(entry.state.chats.len()).unwrap_or(u32::MAX),
            last_assigned_at: entry.last_assigned_at,
            memberships: memberships.remove(id).unwrap_or_default(),
        })?;
    }
    for (id, entry) in world
        .queued
        .iter()
        .filter_map(|id| world.chats.get(id).map(|entry| (id, entry)))
    {
        let Some(record) = entry.state.record.as_ref() else {
            continue;
        };
        let Some((arrived_at, cause)) = entry.queued else {
            continue;
        };
        let module = snapshot.module(routing::ModuleId(record.module.as_uuid()));
        let queue = match (cause, module) {
            (QueueCause::Transferred { queue, .. }, _) => routing::QueueId(queue.as_uuid()),
            (_, Some(module)) => module.choose_queue(&record.routing_vars).0,
            (_, None) => continue,
        };
        if snapshot.queue(queue).is_none() {
            continue;
        }
        let (origin, excluded) = match cause {
            QueueCause::Started => (routing::Origin::Customer, None),
            QueueCause::Resumed => (routing::Origin::Resume, None),
            QueueCause::Transferred { from, .. } => (routing::Origin::Transfer, Some(from)),
        };
        snapshot.insert_waiting(routing::WaitingChat {
            id: routing::ChatId(id.as_uuid()),
            version: entry.state.version,
            module: routing::ModuleId(record.module.as_uuid()),
            queue,
            arrived_at,
            priority: 0,
            origin,
            previous_agent: entry.previous_agent.map(|a| routing::AgentId(a.as_uuid())),
            variables: record.routing_vars.clone(),
            excluded_agents: excluded
                .map(|a| routing::AgentId(a.as_uuid()))
                .into_iter()
                .collect(),
        })?;
    }
    Ok(snapshot)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
