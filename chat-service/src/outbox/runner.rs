//! The running outbox: follow the log, keep the pending intents, claim, send, record.
//!
//! One task per outbox. It first catches up with the log from position 0 (the fold of intents
//! and delivery streams *is* the outbox's state, so nothing else needs to survive a restart),
//! then follows it live. Due intents are sent by at most `deliveries_in_flight_max` concurrent
//! send tasks; each claims its attempt with an exact expected version on the intent's delivery
//! stream before it sends, so two engines never send the same attempt. Outcomes are applied to
//! the fold at once and again (idempotently, by version) when the follower reads them back.

use super::delivery::{DeliveryEvent, DeliveryState, RetryPolicy, cut_error};
use super::error::OutboxError;
use super::intent::{Intent, IntentId, IntentKind, Source, derive_intents, needs_module};
use super::mail::{Mailer, SmtpConfig, render};
use super::settings::{OutboxSettings, SETTINGS_STREAM, SettingsEvent};
use super::webhook::{self, WebhookSecret};
use crate::engine::{Clock, Codec, DomainEvent, Followed, Follower, Shutdown, encode};
use chat_core::ModuleId;
use chat_core::conversation::ChatEvent;
use chat_store::{
    EventStore, ExpectedVersion, GlobalPosition, READ_COUNT_MAX, RecordedEvent, StreamId,
    StreamVersion,
};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

/// Longest send timeout an outbox may be given, in milliseconds.
pub const SEND_TIMEOUT_MS_MAX: u64 = 5 * 60 * 1000;
/// Most concurrent sends an outbox may be given.
pub const DELIVERIES_IN_FLIGHT_MAX: usize = 64;
/// Most intents an outbox keeps pending in memory; at this many it stops reading the log until
/// some are delivered or given up (the log keeps the rest; nothing is dropped).
pub const PENDING_INTENTS_MAX: usize = 100_000;
/// Wait before an intent is looked at again after the *store* failed during its attempt.
pub const STORE_RETRY_MS: u64 = 1_000;

/// A place where the outbox stops as if its process died, for tests of restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the receiver accepted a message, before the outcome is recorded: the window in
    /// which a crash makes the next engine send the same message again (same Message-ID).
    AfterSendBeforeRecord,
}

/// How the outbox runs: transports, secrets, patience. Not in the log (see settings.rs).
#[derive(Clone, Debug)]
pub struct OutboxOptions {
    /// The SMTP server; without one every mail attempt fails (and is retried, then given up).
    pub smtp: Option<SmtpConfig>,
    /// The signing secret of each webhook target, by target name.
    pub webhook_secrets: BTreeMap<String, WebhookSecret>,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
    /// One send's timeout, in milliseconds (≤ [`SEND_TIMEOUT_MS_MAX`]); an attempt's lease is
    /// twice this, so another engine takes over only after the sender must have given up.
    pub send_timeout_ms: u64,
    /// Concurrent sends (1..=[`DELIVERIES_IN_FLIGHT_MAX`]).
    pub deliveries_in_flight_max: usize,
    /// Pending intents kept in memory (1..=[`PENDING_INTENTS_MAX`]).
    pub pending_intents_max: usize,
    /// Stop on purpose at this point (tests only; `None` in production).
    pub crash_point: Option<CrashPoint>,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self {
            smtp: None,
            webhook_secrets: BTreeMap::new(),
            retry: RetryPolicy::default(),
            send_timeout_ms: 30_000,
            deliveries_in_flight_max: 8,
            pending_intents_max: PENDING_INTENTS_MAX,
            crash_point: None,
        }
    }
}

impl OutboxOptions {
    /// Checks every option against its limit; the error names the option.
    pub fn validate(&self) -> Result<(), OutboxError> {
        self.retry.validate()?;
        let range = |field: &str, limit: &'static str, value: usize, max: usize| {
            if value == 0 {
                Err(OutboxError::Config(format!("{field} must be at least 1")))
            } else if value > max {
                Err(OutboxError::LimitExceeded {
                    field: field.to_owned(),
                    limit,
                    max,
                    actual: value,
                })
            } else {
                Ok(())
            }
        };
        range(
            "send_timeout_ms",
            "SEND_TIMEOUT_MS_MAX",
            usize::try_from(self.send_timeout_ms).unwrap_or(usize::MAX),
            usize::try_from(SEND_TIMEOUT_MS_MAX).unwrap_or(usize::MAX),
        )?;
        range(
            "deliveries_in_flight_max",
            "DELIVERIES_IN_FLIGHT_MAX",
            self.deliveries_in_flight_max,
            DELIVERIES_IN_FLIGHT_MAX,
        )?;
        range(
            "pending_intents_max",
            "PENDING_INTENTS_MAX",
            self.pending_intents_max,
            PENDING_INTENTS_MAX,
        )
    }

    fn lease(&self) -> TimeDelta {
        TimeDelta::milliseconds(i64::try_from(self.send_timeout_ms.saturating_mul(2)).unwrap_or(0))
    }
}

/// What the outbox has done so far, for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// The last log position folded.
    pub position: GlobalPosition,
    /// Whether the initial catch-up with the log is done.
    pub caught_up: bool,
    /// Intents not yet delivered or given up.
    pub pending: usize,
    /// Deliveries this outbox saw completed (by any engine) since it started.
    pub delivered: u64,
    /// Deliveries this outbox saw given up since it started.
    pub gave_up: u64,
    /// Messages this outbox itself handed to a receiver since it started.
    pub sent: u64,
}

/// A running outbox.
#[derive(Debug)]
pub struct OutboxHandle {
    join: JoinHandle<Result<(), OutboxError>>,
    stats: watch::Receiver<OutboxStats>,
}

impl OutboxHandle {
    /// The latest statistics.
    pub fn stats(&self) -> OutboxStats {
        *self.stats.borrow()
    }

    /// Waits until the outbox has folded the log up to `position` and has nothing pending;
    /// `None` if the outbox stopped first (see [`OutboxHandle::join`] for why).
    pub async fn idle_at(&mut self, position: GlobalPosition) -> Option<OutboxStats> {
        self.stats
            .wait_for(|s| s.caught_up && s.position >= position && s.pending == 0)
            .await
            .map(|s| *s)
            .ok()
    }

    /// A receiver of every change of the statistics.
    pub fn watch(&self) -> watch::Receiver<OutboxStats> {
        self.stats.clone()
    }

    /// Waits for the task to end (after shutdown, an error or a crash point).
    pub async fn join(self) -> Result<(), OutboxError> {
        match self.join.await {
            Ok(result) => result,
            Err(e) => Err(OutboxError::Config(format!("outbox task failed: {e}"))),
        }
    }
}

/// The e-mail and webhook outbox (O1, O2, C3, V5); see the module docs and docs/OUTBOX.md.
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
    clock: Arc<dyn Clock>,
    options: OutboxOptions,
    mailer: Option<Mailer>,
    http: reqwest::Client,
    /// Messages handed to a receiver; counted before the outcome is recorded, so the count is
    /// never behind a `Delivered` the follower reads back.
    sent: AtomicU64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox over `store`; checks the options and builds the transports.
    pub fn new(
        store: Arc<dyn EventStore>,
        codec: Arc<Codec>,
        clock: Arc<dyn Clock>,
        options: OutboxOptions,
    ) -> Result<Self, OutboxError> {
        options.validate()?;
        let timeout = Duration::from_millis(options.send_timeout_ms);
        let mailer = options
            .smtp
            .as_ref()
            .map(|smtp| Mailer::new(smtp, timeout))
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OutboxError::Config(format!("http client: {e}")))?;
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                codec,
                clock,
                options,
                mailer,
                http,
                sent: AtomicU64::new(0),
            }),
        })
    }

    /// Records `settings` in the log (stream `outbox-settings`) unless they are already the
    /// last recorded ones; returns whether it appended. Events after this position are matched
    /// against them; events before keep the settings of their time.
    pub async fn set_settings(
        store: &dyn EventStore,
        settings: &OutboxSettings,
        now: DateTime<Utc>,
    ) -> Result<bool, OutboxError> {
        settings.validate()?;
        let stream = StreamId::new(SETTINGS_STREAM)?;
        let codec = Codec::default();
        let mut version: StreamVersion = 0;
        let mut current: Option<OutboxSettings> = None;
        loop {
            let page = store
                .read_stream(&stream, version + 1, READ_COUNT_MAX)
                .await?;
            if page.is_empty() {
                break;
            }
            for recorded in &page {
                version = recorded.stream_version;
                let SettingsEvent::OutboxSettingsSet { settings, .. } =
                    codec.decode_as(recorded)?;
                current = Some(settings);
            }
        }
        if current.as_ref() == Some(settings) {
            return Ok(false);
        }
        let event = SettingsEvent::OutboxSettingsSet {
            at: now,
            settings: settings.clone(),
        };
        let new = encode(&event, Uuid::now_v7(), now, None, None)
            .map_err(|e| OutboxError::Config(e.to_string()))?;
        match store
            .append(&stream, ExpectedVersion::Exact(version), vec![new])
            .await?
        {
            Ok(_) => Ok(true),
            Err(conflict) => Err(OutboxError::Config(format!(
                "outbox settings changed concurrently: {conflict}"
            ))),
        }
    }

    /// Runs the outbox in a task until `shutdown`.
    pub fn spawn(self, shutdown: Shutdown) -> OutboxHandle {
        let (tx, rx) = watch::channel(OutboxStats::default());
        let join = tokio::spawn(self.run(shutdown, tx));
        OutboxHandle { join, stats: rx }
    }

    async fn run(
        self,
        mut shutdown: Shutdown,
        stats_tx: watch::Sender<OutboxStats>,
    ) -> Result<(), OutboxError> {
        let shared = self.shared;
        let max = shared.options.pending_intents_max;
        let mut fold = Fold::default();
        let mut follower = Follower::new(
            shared.store.clone(),
            shared.codec.clone(),
            0,
            shutdown.clone(),
        );
        // Read but not yet folded (at `pending_intents_max`, folding waits for room).
        let mut backlog: VecDeque<Followed> = VecDeque::new();
        // Until the first catch-up with the log is done nothing is sent (an old intent's
        // outcome may be further on) — unless the pending set is full, when sending is the only
        // way to make room; a stale attempt then meets a `Conflict`, never a second send.
        let mut catching_up = true;
        let mut jumps = shared.clock.jumps();
        let mut sending: JoinSet<(IntentId, Attempted)> = JoinSet::new();
        let mut busy: BTreeSet<IntentId> = BTreeSet::new();
        loop {
            while fold.tracked.len() < max {
                let Some(followed) = backlog.pop_front() else {
                    break;
                };
                fold.apply(&shared, &followed).await?;
                fold.stats.position = followed.position();
            }
            if backlog.is_empty() {
                fold.stats.position = fold.stats.position.max(follower.position());
            }
            let room = fold.tracked.len() < max;
            if catching_up && room && backlog.is_empty() {
                let page = follower.read_page().await.map_err(engine_error)?;
                if page.is_empty() {
                    catching_up = false;
                    fold.stats.caught_up = true;
                } else {
                    backlog.extend(page);
                    continue;
                }
            }
            fold.stats.sent = shared.sent.load(Ordering::Acquire);
            fold.publish(&stats_tx);
            let now = shared.clock.now();
            if !catching_up || !room {
                // Start every due attempt we have room for.
                while sending.len() < shared.options.deliveries_in_flight_max {
                    let Some(id) = fold.next_due(now, &busy) else {
                        break;
                    };
                    let Some(tracked) = fold.tracked.get(&id) else {
                        break;
                    };
                    busy.insert(id);
                    let shared = shared.clone();
                    let intent = tracked.intent.clone();
                    let state = tracked.state;
                    sending.spawn(async move {
                        let attempted = attempt(&shared, &intent, state).await;
                        (intent.id, attempted)
                    });
                }
            }
            let sleep_for = fold
                .next_wake(&busy)
                .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO));
            let reading = !catching_up && room && backlog.is_empty();
            tokio::select! {
                () = shutdown.wait() => break,
                Some(joined) = sending.join_next(), if !sending.is_empty() => {
                    let (id, attempted) = joined
                        .map_err(|e| OutboxError::Config(format!("send task failed: {e}")))?;
                    busy.remove(&id);
                    match attempted {
                        Attempted::Recorded { events } => {
                            for (version, event) in events {
                                fold.apply_delivery(id, version, &event);
                            }
                        }
                        Attempted::Conflict => fold.refresh(&shared, id).await?,
                        Attempted::StoreFailed(error) => {
                            tracing::warn!(intent = %id, %error, "outbox: store failed during an attempt");
                            fold.hold(id, now + TimeDelta::milliseconds(STORE_RETRY_MS as i64));
                        }
                        Attempted::Crashed => {
                            sending.abort_all();
                            return Err(OutboxError::SimulatedCrash("AfterSendBeforeRecord"));
                        }
                    }
                }
                page = follower.next_page(), if reading => {
                    let Some(page) = page.map_err(engine_error)? else { break };
                    backlog.extend(page);
                }
                () = sleep_or_forever(sleep_for) => {}
                _ = jumps.changed() => {}
            }
            fold.stats.sent = shared.sent.load(Ordering::Acquire);
            fold.publish(&stats_tx);
        }
        sending.abort_all();
        while sending.join_next().await.is_some() {}
        Ok(())
    }
}

async fn sleep_or_forever(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

fn engine_error(error: crate::engine::EngineError) -> OutboxError {
    match error {
        crate::engine::EngineError::Store(e) => OutboxError::Store(e),
        other => OutboxError::Config(other.to_string()),
    }
}

/// One intent and where its delivery stands.
struct Tracked {
    intent: Intent,
    state: DeliveryState,
    /// Set after a store failure: not before this instant.
    not_before: Option<DateTime<Utc>>,
}

impl Tracked {
    fn wake_at(&self) -> Option<DateTime<Utc>> {
        let at = self.state.next_action_at()?;
        Some(self.not_before.map_or(at, |nb| nb.max(at)))
    }
}

/// The outbox's whole state: the settings in force and the open intents.
#[derive(Default)]
struct Fold {
    settings: OutboxSettings,
    tracked: BTreeMap<IntentId, Tracked>,
    stats: OutboxStats,
}

impl Fold {
    fn publish(&mut self, tx: &watch::Sender<OutboxStats>) {
        self.stats.pending = self.tracked.len();
        tx.send_if_modified(|old| {
            let changed = *old != self.stats;
            *old = self.stats;
            changed
        });
    }

    /// The earliest due intent not being sent, if due by `now`. A linear scan: pending intents
    /// are few in steady state, and a scan cannot disagree with the map.
    fn next_due(&self, now: DateTime<Utc>, busy: &BTreeSet<IntentId>) -> Option<IntentId> {
        self.tracked
            .iter()
            .filter(|(id, _)| !busy.contains(id))
            .filter_map(|(id, t)| t.wake_at().map(|at| (at, *id)))
            .filter(|(at, _)| *at <= now)
            .min()
            .map(|(_, id)| id)
    }

    fn next_wake(&self, busy: &BTreeSet<IntentId>) -> Option<DateTime<Utc>> {
        self.tracked
            .iter()
            .filter(|(id, _)| !busy.contains(id))
            .filter_map(|(_, t)| t.wake_at())
            .min()
    }

    fn hold(&mut self, id: IntentId, until: DateTime<Utc>) {
        if let Some(tracked) = self.tracked.get_mut(&id) {
            tracked.not_before = Some(until);
        }
    }

    /// Applies event `version` of `id`'s delivery stream, once.
    fn apply_delivery(&mut self, id: IntentId, version: StreamVersion, event: &DeliveryEvent) {
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return;
        };
        if version != tracked.state.version + 1 {
            return;
        }
        tracked.state.apply(event);
        tracked.not_before = None;
        self.close_if_done(id);
    }

    fn close_if_done(&mut self, id: IntentId) {
        let Some(tracked) = self.tracked.get(&id) else {
            return;
        };
        if tracked.state.is_closed() {
            match tracked.state.status {
                super::DeliveryStatus::Delivered => self.stats.delivered += 1,
                _ => self.stats.gave_up += 1,
            }
            self.tracked.remove(&id);
        }
    }

    /// Re-reads a delivery stream after a conflict: another engine moved it.
    async fn refresh(&mut self, shared: &Shared, id: IntentId) -> Result<(), OutboxError> {
        let stream = StreamId::new(id.stream_name())?;
        let events = read_stream_all(&*shared.store, &stream, u64::MAX).await?;
        let Some(tracked) = self.tracked.get_mut(&id) else {
            return Ok(());
        };
        let mut state = DeliveryState::new(tracked.intent.source.at);
        for recorded in &events {
            let event: DeliveryEvent = shared.codec.decode_as(recorded)?;
            state.apply(&event);
        }
        tracked.state = state;
        self.close_if_done(id);
        Ok(())
    }

    /// Folds one event of the log.
    async fn apply(&mut self, shared: &Shared, followed: &Followed) -> Result<(), OutboxError> {
        let recorded = &followed.recorded;
        match &followed.event {
            DomainEvent::Chat { event, .. } => {
                let chat = if needs_module(event, &self.settings) {
                    chat_of(shared, recorded).await?
                } else {
                    None
                };
                let source = Source::of(recorded);
                let chat_ref = chat.as_ref().map(|(m, e)| (*m, e.as_deref()));
                for intent in derive_intents(&source, event, chat_ref, &self.settings) {
                    let due = intent.source.at;
                    self.tracked.entry(intent.id).or_insert(Tracked {
                        intent,
                        state: DeliveryState::new(due),
                        not_before: None,
                    });
                }
            }
            DomainEvent::Other if recorded.stream_id.as_str() == SETTINGS_STREAM => {
                let SettingsEvent::OutboxSettingsSet { settings, .. } =
                    shared.codec.decode_as(recorded)?;
                self.settings = settings;
            }
            DomainEvent::Other => {
                if let Some(id) = IntentId::from_stream(&recorded.stream_id)
                    && self.tracked.contains_key(&id)
                {
                    let event: DeliveryEvent = shared.codec.decode_as(recorded)?;
                    self.apply_delivery(id, recorded.stream_version, &event);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The module and visitor e-mail of the chat an event belongs to, from its `ChatStarted`.
async fn chat_of(
    shared: &Shared,
    recorded: &RecordedEvent,
) -> Result<Option<(ModuleId, Option<String>)>, OutboxError> {
    let first = shared.store.read_stream(&recorded.stream_id, 1, 1).await?;
    let Some(first) = first.first() else {
        return Ok(None);
    };
    match shared.codec.decode_as::<ChatEvent>(first)? {
        ChatEvent::ChatStarted { record, .. } => {
            Ok(Some((record.module, record.contact_email.clone())))
        }
        _ => Ok(None),
    }
}

/// Every event of a stream up to `until` (inclusive), in pages.
async fn read_stream_all(
    store: &dyn EventStore,
    stream: &StreamId,
    until: StreamVersion,
) -> Result<Vec<RecordedEvent>, OutboxError> {
    let mut events = Vec::new();
    let mut from = 1;
    while from <= until {
        let page = store.read_stream(stream, from, READ_COUNT_MAX).await?;
        let Some(last) = page.last() else { break };
        from = last.stream_version + 1;
        events.extend(page.into_iter().filter(|e| e.stream_version <= until));
    }
    Ok(events)
}

/// How one attempt ended, for the runner.
enum Attempted {
    /// Appended these events (with their stream versions).
    Recorded {
        events: Vec<(StreamVersion, DeliveryEvent)>,
    },
    /// The delivery stream moved under us: another engine is on it.
    Conflict,
    /// The store failed; try again later.
    StoreFailed(OutboxError),
    /// The crash point was reached.
    Crashed,
}

/// What will be sent.
enum Payload {
    Mail(super::mail::RenderedMail),
    Webhook {
        url: String,
        kind: super::WebhookEventKind,
        body: Vec<u8>,
        secret: Option<WebhookSecret>,
        target: String,
    },
}

/// Renders the payload; the inner `Err` is a reason it can never be sent.
async fn prepare(shared: &Shared, intent: &Intent) -> Result<Result<Payload, String>, OutboxError> {
    let stream = StreamId::new(intent.source.stream.clone())?;
    let history = read_stream_all(&*shared.store, &stream, intent.source.version).await?;
    let events = history
        .iter()
        .map(|r| shared.codec.decode_as::<ChatEvent>(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match &intent.kind {
        IntentKind::Webhook { target, url, kind } => {
            let Some(event) = events.last() else {
                return Ok(Err(format!(
                    "source event {} is missing",
                    intent.source.event_id
                )));
            };
            let record = events.iter().find_map(|e| match e {
                ChatEvent::ChatStarted { record, .. } => Some(&**record),
                _ => None,
            });
            webhook::body(intent, *kind, event, record).map(|body| Payload::Webhook {
                url: url.clone(),
                kind: *kind,
                body,
                secret: shared.options.webhook_secrets.get(target).cloned(),
                target: target.clone(),
            })
        }
        _ => match render(intent, &events) {
            Ok(Some(mail)) => Ok(Payload::Mail(mail)),
            Ok(None) => Err("not a mail intent".to_owned()),
            Err(reason) => Err(reason),
        },
    })
}

/// Sends a prepared payload once.
async fn send(
    shared: &Shared,
    intent: &Intent,
    attempt_no: u32,
    payload: Payload,
) -> Result<String, String> {
    match payload {
        Payload::Mail(mail) => match &shared.mailer {
            Some(mailer) => mailer.send(&mail).await,
            None => Err("no SMTP server configured".to_owned()),
        },
        Payload::Webhook {
            url,
            kind,
            body,
            secret,
            target,
        } => {
            let Some(secret) = secret else {
                return Err(format!("no secret configured for webhook target {target}"));
            };
            let now = shared.clock.now();
            webhook::post(
                &shared.http,
                (&url, kind),
                intent,
                attempt_no,
                &secret,
                body,
                now,
            )
            .await
        }
    }
}

/// Appends one delivery event at exactly `version`; `Ok(false)` on a conflict.
async fn record(
    shared: &Shared,
    intent: &Intent,
    version: StreamVersion,
    event: &DeliveryEvent,
    now: DateTime<Utc>,
) -> Result<bool, OutboxError> {
    let stream = StreamId::new(intent.id.stream_name())?;
    // A fresh id: two engines claiming the same version must conflict, not collide on an id.
    let new = encode(
        event,
        Uuid::now_v7(),
        now,
        None,
        Some(intent.source.event_id),
    )
    .map_err(|e| OutboxError::Config(e.to_string()))?;
    Ok(shared
        .store
        .append(&stream, ExpectedVersion::Exact(version), vec![new])
        .await?
        .is_ok())
}

/// One attempt: prepare, claim, send, record.
async fn attempt(shared: &Shared, intent: &Intent, state: DeliveryState) -> Attempted {
    match attempt_inner(shared, intent, state).await {
        Ok(attempted) => attempted,
        Err(error) => Attempted::StoreFailed(error),
    }
}

async fn attempt_inner(
    shared: &Shared,
    intent: &Intent,
    state: DeliveryState,
) -> Result<Attempted, OutboxError> {
    let now = shared.clock.now();
    let version = state.version;
    let payload = match prepare(shared, intent).await? {
        Ok(payload) => payload,
        Err(reason) => {
            let event = DeliveryEvent::GaveUp {
                attempt: state.attempts,
                at: now,
                error: cut_error(reason),
            };
            return Ok(if record(shared, intent, version, &event, now).await? {
                Attempted::Recorded {
                    events: vec![(version + 1, event)],
                }
            } else {
                Attempted::Conflict
            });
        }
    };
    let attempt_no = state.attempts + 1;
    let claim = DeliveryEvent::AttemptStarted {
        intent: intent.id,
        attempt: attempt_no,
        at: now,
        lease_until: now + shared.options.lease(),
    };
    if !record(shared, intent, version, &claim, now).await? {
        return Ok(Attempted::Conflict);
    }
    let timeout = Duration::from_millis(shared.options.send_timeout_ms);
    let result =
        match tokio::time::timeout(timeout, send(shared, intent, attempt_no, payload)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "timed out after {} ms",
                shared.options.send_timeout_ms
            )),
        };
    if result.is_ok() {
        shared.sent.fetch_add(1, Ordering::AcqRel);
    }
    if shared.options.crash_point == Some(super::CrashPoint::AfterSendBeforeRecord) {
        return Ok(Attempted::Crashed);
    }
    let done_at = shared.clock.now();
    let outcome = match result {
        Ok(detail) => DeliveryEvent::Delivered {
            attempt: attempt_no,
            at: done_at,
            detail,
        },
        Err(error) if shared.options.retry.may_retry(attempt_no) => DeliveryEvent::AttemptFailed {
            attempt: attempt_no,
            at: done_at,
            error: cut_error(error),
            retry_at: done_at + shared.options.retry.backoff(attempt_no),
        },
        Err(error) => DeliveryEvent::GaveUp {
            attempt: attempt_no,
            at: done_at,
            error: cut_error(format!(
                "{error}; no attempt left (attempts_max = {})",
                shared.options.retry.attempts_max
            )),
        },
    };
    let mut events = vec![(version + 1, claim)];
    if record(shared, intent, version + 1, &outcome, done_at).await? {
        events.push((version + 2, outcome));
        Ok(Attempted::Recorded { events })
    } else {
        // Our lease ran out and another engine took over; it records its own outcome.
        Ok(Attempted::Conflict)
    }
}
