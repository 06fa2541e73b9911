//! The e-mail half of the outbox, end to end over real stores and a real SMTP listener on a
//! loopback socket: offline messages (O1), transcripts (O2), async replies (C3), retries with
//! backoff, giving up, and no second send across restarts.

mod support;

use chat_core::conversation::{ChatCommand, ChatEvent, ChatSettings, Disposition, Party};
use chat_core::{AgentId, CaseId, ChatId, ModuleId};
use chat_service::engine::{Codec, ShutdownTrigger, SystemClock};
use chat_service::outbox::{
    CrashPoint, DeliveryEvent, IntentId, OfflineMail, Outbox, OutboxError, OutboxHandle,
    OutboxOptions, OutboxSettings, RetryPolicy, SmtpConfig,
};
use chat_store::EventStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::{Backend, Driver, SmtpListener, WAIT, backends, read_log};
use uuid::Uuid;

const SENDER: &str = "support@shop.example";
const TEAM: &str = "team@shop.example";
const VISITOR: &str = "ada@visitor.example";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 5,
        backoff_initial_ms: 50,
        backoff_max_ms: 200,
    }
}

fn options(smtp: &SmtpListener) -> OutboxOptions {
    OutboxOptions {
        smtp: Some(SmtpConfig::plain("127.0.0.1", smtp.port())),
        retry: fast_retry(),
        send_timeout_ms: 5_000,
        ..OutboxOptions::default()
    }
}

fn settings(module: ModuleId, rule: Option<OfflineMail>) -> OutboxSettings {
    OutboxSettings {
        sender: Some(SENDER.to_owned()),
        offline_mail: rule.into_iter().map(|r| (module, r)).collect(),
        webhooks: BTreeMap::new(),
    }
}

struct Running {
    handle: OutboxHandle,
    trigger: ShutdownTrigger,
}

fn spawn(store: Arc<dyn EventStore>, options: OutboxOptions) -> Running {
    let (trigger, shutdown) = ShutdownTrigger::new();
    let outbox = Outbox::new(
        store,
        Arc::new(Codec::default()),
        Arc::new(SystemClock::default()),
        options,
    )
    .expect("outbox options");
    Running {
        handle: outbox.spawn(shutdown),
        trigger,
    }
}

impl Running {
    async fn idle(&mut self, store: &dyn EventStore) -> chat_service::outbox::OutboxStats {
        let head = store.head_position().await.expect("head");
        tokio::time::timeout(WAIT, self.handle.idle_at(head))
            .await
            .expect("outbox idle in time")
            .expect("the outbox is running")
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.handle.join().await.expect("clean stop");
    }
}

/// The delivery streams in the log, with their decoded events, by intent id.
async fn deliveries(store: &dyn EventStore) -> BTreeMap<IntentId, Vec<DeliveryEvent>> {
    let codec = Codec::default();
    let mut all: BTreeMap<IntentId, Vec<DeliveryEvent>> = BTreeMap::new();
    for recorded in read_log(store).await {
        if let Some(id) = IntentId::from_stream(&recorded.stream_id) {
            let event: DeliveryEvent = codec.decode_as(&recorded).expect("delivery event");
            all.entry(id).or_default().push(event);
        }
    }
    all
}

fn kinds(events: &[DeliveryEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match e {
            DeliveryEvent::AttemptStarted { .. } => "started",
            DeliveryEvent::Delivered { .. } => "delivered",
            DeliveryEvent::AttemptFailed { .. } => "failed",
            DeliveryEvent::GaveUp { .. } => "gave-up",
        })
        .collect()
}

fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_offline_chat_is_forwarded_to_a_real_smtp_listener() {
    for backend in backends().await {
        let store = backend.store();
        let smtp = SmtpListener::start().await;
        let module = ModuleId::from_uuid(new_id());
        let rule = OfflineMail::Forward {
            to: TEAM.to_owned(),
        };
        assert!(
            Outbox::set_settings(&*store, &settings(module, Some(rule)), support::now())
                .await
                .expect("settings")
        );
        let mut outbox = spawn(store.clone(), options(&smtp));
        let driver = Driver::new(store.clone());
        let chat = ChatId::from_uuid(new_id());
        let events = driver
            .start(
                chat,
                module,
                Some(VISITOR),
                &[("topic", "Refund for order 42")],
                ChatSettings::default(),
                false,
            )
            .await;
        assert!(
            matches!(
                events.last(),
                Some(ChatEvent::EpisodeEnded {
                    disposition: Disposition::Offline { .. },
                    ..
                })
            ),
            "{}: outside working hours the chat goes offline",
            backend.name()
        );
        let stats = outbox.idle(&*store).await;
        assert_eq!(
            (stats.delivered, stats.gave_up),
            (1, 0),
            "{}",
            backend.name()
        );

        let mails = smtp.mails();
        assert_eq!(mails.len(), 1, "{}: one forwarded mail", backend.name());
        let mail = &mails[0];
        assert_eq!(mail.recipients, vec![TEAM.to_owned()]);
        assert_eq!(mail.envelope_from, SENDER);
        assert_eq!(mail.header("Reply-To").as_deref(), Some(VISITOR));
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("Offline message from Ada Lovelace")
        );
        let body = mail.body();
        assert!(body.contains("topic: Refund for order 42"), "{body}");
        assert!(body.contains("I need help with my order"), "{body}");

        // The Message-ID is the intent id, which names the delivery stream in the log.
        let deliveries = deliveries(&*store).await;
        assert_eq!(deliveries.len(), 1);
        let (id, events) = deliveries.iter().next().expect("one delivery");
        assert_eq!(
            mail.header("Message-ID"),
            Some(format!("<{id}@shop.example>"))
        );
        assert_eq!(kinds(events), ["started", "delivered"]);
        outbox.stop().await;
        backend.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_offline_chat_becomes_an_email_interaction_from_the_visitor() {
    let backend = Backend::sled();
    let store = backend.store();
    let smtp = SmtpListener::start().await;
    let module = ModuleId::from_uuid(new_id());
    let rule = OfflineMail::EmailInteraction {
        inbox: "inbox@shop.example".to_owned(),
        subject_field: "subject".to_owned(),
    };
    Outbox::set_settings(&*store, &settings(module, Some(rule)), support::now())
        .await
        .expect("settings");
    let mut outbox = spawn(store.clone(), options(&smtp));
    let driver = Driver::new(store.clone());
    driver
        .start(
            ChatId::from_uuid(new_id()),
            module,
            Some(VISITOR),
            &[("subject", "Where is my parcel?"), ("order", "42")],
            ChatSettings::default(),
            false,
        )
        .await;
    // Without a visitor e-mail no interaction can be made: kept for a supervisor only.
    driver
        .start(
            ChatId::from_uuid(new_id()),
            module,
            None,
            &[("subject", "Anonymous")],
            ChatSettings::default(),
            false,
        )
        .await;
    // A module without a rule: nothing is sent either.
    driver
        .start(
            ChatId::from_uuid(new_id()),
            ModuleId::from_uuid(new_id()),
            Some(VISITOR),
            &[("subject", "Other module")],
            ChatSettings::default(),
            false,
        )
        .await;
    let stats = outbox.idle(&*store).await;
    assert_eq!(stats.delivered, 1);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.recipients, vec!["inbox@shop.example".to_owned()]);
    assert_eq!(mail.header("From").as_deref(), Some(VISITOR));
    assert_eq!(mail.header("Sender").as_deref(), Some(SENDER));
    assert_eq!(mail.envelope_from, SENDER, "the relay sees our own address");
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Where is my parcel?")
    );
    assert!(mail.body().contains("order: 42"));
    outbox.stop().await;
}

/// Runs one managed chat with the transcript option through to its end.
async fn managed_chat_with_transcript(driver: &Driver, module: ModuleId, agent: AgentId) -> ChatId {
    let chat = ChatId::from_uuid(new_id());
    let settings = ChatSettings {
        transcript_email: true,
        ..ChatSettings::default()
    };
    driver
        .start(chat, module, Some(VISITOR), &[], settings, true)
        .await;
    driver.assign(chat, agent).await;
    driver
        .say(chat, Party::Visitor, "Hello, my order is late")
        .await;
    driver
        .say(chat, Party::Agent(agent), "Sorry Ada, it ships today")
        .await;
    let ended = driver.end_by_agent(chat, agent).await;
    assert!(
        ended
            .iter()
            .any(|e| matches!(e, ChatEvent::TranscriptEmailRequested { .. }))
    );
    chat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_transcript_is_emailed_exactly_once_also_across_a_restart() {
    for mut backend in backends().await {
        let store = backend.store();
        let smtp = SmtpListener::start().await;
        let module = ModuleId::from_uuid(new_id());
        Outbox::set_settings(&*store, &settings(module, None), support::now())
            .await
            .expect("settings");
        let mut outbox = spawn(store.clone(), options(&smtp));
        let driver = Driver::new(store.clone());
        let agent = AgentId::from_uuid(new_id());
        driver.online_agent(agent).await;
        managed_chat_with_transcript(&driver, module, agent).await;
        let stats = outbox.idle(&*store).await;
        assert_eq!((stats.sent, stats.delivered), (1, 1), "{}", backend.name());
        let mails = smtp.mails();
        assert_eq!(mails.len(), 1, "{}", backend.name());
        assert_eq!(mails[0].recipients, vec![VISITOR.to_owned()]);
        assert_eq!(
            mails[0].header("Subject").as_deref(),
            Some("Transcript of your chat")
        );
        let body = mails[0].body();
        assert!(body.contains("You: Hello, my order is late"), "{body}");
        assert!(body.contains("Agent: Sorry Ada, it ships today"), "{body}");

        // Restart: the store is closed and reopened, a new outbox rebuilds from the log.
        outbox.stop().await;
        drop(driver);
        drop(store);
        backend.reopen().await;
        let store = backend.store();
        let mut outbox = spawn(store.clone(), options(&smtp));
        let stats = outbox.idle(&*store).await;
        assert_eq!(
            stats.sent,
            0,
            "{}: the recorded outcome prevents a resend",
            backend.name()
        );
        assert_eq!(stats.delivered, 1, "the rebuilt fold sees the delivery");
        assert_eq!(
            smtp.mails().len(),
            1,
            "{}: still exactly one mail",
            backend.name()
        );
        outbox.stop().await;
        drop(store);
        backend.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_first_agent_reply_to_an_async_chat_emails_the_visitor() {
    let backend = Backend::sled();
    let store = backend.store();
    let smtp = SmtpListener::start().await;
    let module = ModuleId::from_uuid(new_id());
    Outbox::set_settings(&*store, &settings(module, None), support::now())
        .await
        .expect("settings");
    let mut outbox = spawn(store.clone(), options(&smtp));
    let driver = Driver::new(store.clone());
    let chat = ChatId::from_uuid(new_id());
    let async_on = ChatSettings {
        async_chatting: true,
        ..ChatSettings::default()
    };
    driver
        .start(chat, module, Some(VISITOR), &[], async_on, true)
        .await;
    driver
        .chat(
            chat,
            ChatCommand::NoAgentAvailable {
                command_id: driver.command_id(),
                case_id: CaseId::from_uuid(new_id()),
                case_template: BTreeMap::new(),
            },
        )
        .await;
    driver.say(chat, Party::Visitor, "Anyone there?").await;
    let agent = AgentId::from_uuid(new_id());
    driver.online_agent(agent).await;
    driver.assign(chat, agent).await;
    let replied = driver
        .say(chat, Party::Agent(agent), "Yes! Your refund is on its way.")
        .await;
    assert!(
        replied
            .iter()
            .any(|e| matches!(e, ChatEvent::AsyncReplyEmailRequested { .. }))
    );
    // A second agent message asks for nothing more.
    driver
        .say(chat, Party::Agent(agent), "Anything else?")
        .await;
    outbox.idle(&*store).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("Your message was answered")
    );
    assert!(mails[0].body().contains("Yes! Your refund is on its way."));
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_smtp_failures_are_retried_with_backoff_and_each_outcome_recorded() {
    let backend = Backend::sled();
    let store = backend.store();
    let smtp = SmtpListener::start().await;
    smtp.reject_next(2);
    let module = ModuleId::from_uuid(new_id());
    Outbox::set_settings(&*store, &settings(module, None), support::now())
        .await
        .expect("settings");
    let mut outbox = spawn(store.clone(), options(&smtp));
    let driver = Driver::new(store.clone());
    let agent = AgentId::from_uuid(new_id());
    driver.online_agent(agent).await;
    managed_chat_with_transcript(&driver, module, agent).await;
    outbox.idle(&*store).await;
    assert_eq!(smtp.rejected(), 2);
    assert_eq!(smtp.mails().len(), 1);
    let deliveries = deliveries(&*store).await;
    let events = deliveries.values().next().expect("one delivery");
    assert_eq!(
        kinds(events),
        [
            "started",
            "failed",
            "started",
            "failed",
            "started",
            "delivered"
        ]
    );
    let waits: Vec<i64> = events
        .iter()
        .filter_map(|e| match e {
            DeliveryEvent::AttemptFailed {
                at,
                retry_at,
                error,
                ..
            } => {
                assert!(error.contains("451"), "the SMTP reply is recorded: {error}");
                Some((*retry_at - *at).num_milliseconds())
            }
            _ => None,
        })
        .collect();
    assert_eq!(waits, [50, 100], "backoff doubles from backoff_initial_ms");
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_delivery_gives_up_after_attempts_max() {
    let backend = Backend::sled();
    let store = backend.store();
    let smtp = SmtpListener::start().await;
    smtp.reject_next(100);
    let module = ModuleId::from_uuid(new_id());
    Outbox::set_settings(&*store, &settings(module, None), support::now())
        .await
        .expect("settings");
    let mut options = options(&smtp);
    options.retry.attempts_max = 3;
    let mut outbox = spawn(store.clone(), options);
    let driver = Driver::new(store.clone());
    let agent = AgentId::from_uuid(new_id());
    driver.online_agent(agent).await;
    managed_chat_with_transcript(&driver, module, agent).await;
    let stats = outbox.idle(&*store).await;
    assert_eq!((stats.delivered, stats.gave_up), (0, 1));
    assert_eq!(smtp.rejected(), 3, "exactly attempts_max attempts");
    let deliveries = deliveries(&*store).await;
    let events = deliveries.values().next().expect("one delivery");
    assert_eq!(
        kinds(events),
        [
            "started", "failed", "started", "failed", "started", "gave-up"
        ]
    );
    match events.last() {
        Some(DeliveryEvent::GaveUp { attempt, error, .. }) => {
            assert_eq!(*attempt, 3);
            assert!(error.contains("attempts_max = 3"), "{error}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    outbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_a_crash_between_send_and_record_resends_with_the_same_message_id_and_only_once() {
    for mut backend in backends().await {
        let store = backend.store();
        let smtp = SmtpListener::start().await;
        let module = ModuleId::from_uuid(new_id());
        let rule = OfflineMail::Forward {
            to: TEAM.to_owned(),
        };
        Outbox::set_settings(&*store, &settings(module, Some(rule)), support::now())
            .await
            .expect("settings");
        // A short send timeout makes the lease (twice the timeout) short.
        let crashing = OutboxOptions {
            crash_point: Some(CrashPoint::AfterSendBeforeRecord),
            send_timeout_ms: 300,
            ..options(&smtp)
        };
        let outbox = spawn(store.clone(), crashing);
        let driver = Driver::new(store.clone());
        driver
            .start(
                ChatId::from_uuid(new_id()),
                module,
                Some(VISITOR),
                &[],
                ChatSettings::default(),
                false,
            )
            .await;
        let result = tokio::time::timeout(WAIT, outbox.handle.join())
            .await
            .expect("the outbox reaches its crash point");
        assert!(
            matches!(result, Err(OutboxError::SimulatedCrash(_))),
            "{result:?}"
        );
        assert_eq!(smtp.mails().len(), 1, "sent before the crash");
        let recorded = deliveries(&*store).await;
        assert_eq!(
            kinds(recorded.values().next().expect("one delivery")),
            ["started"],
            "{}: the outcome was never recorded",
            backend.name()
        );

        // Restart. The attempt's lease runs out; the new outbox sends again.
        drop(driver);
        drop(store);
        drop(outbox.trigger);
        backend.reopen().await;
        let store = backend.store();
        let mut restarted = spawn(
            store.clone(),
            OutboxOptions {
                send_timeout_ms: 300,
                ..options(&smtp)
            },
        );
        let stats = restarted.idle(&*store).await;
        assert_eq!(stats.sent, 1);
        let mails = smtp.mails();
        assert_eq!(
            mails.len(),
            2,
            "at-least-once: the unrecorded send is repeated"
        );
        assert_eq!(
            mails[0].header("Message-ID"),
            mails[1].header("Message-ID"),
            "{}: both copies carry the same Message-ID, so the receiver can drop one",
            backend.name()
        );
        assert_eq!(
            mails[0].data, mails[1].data,
            "byte-for-byte the same message"
        );
        let recorded = deliveries(&*store).await;
        assert_eq!(
            kinds(recorded.values().next().expect("one delivery")),
            ["started", "started", "delivered"]
        );
        restarted.stop().await;

        // Once recorded, no restart sends it again.
        drop(store);
        backend.reopen().await;
        let store = backend.store();
        let mut again = spawn(store.clone(), options(&smtp));
        let stats = again.idle(&*store).await;
        assert_eq!(stats.sent, 0);
        assert_eq!(smtp.mails().len(), 2);
        again.stop().await;
        drop(store);
        backend.cleanup().await;
    }
}

/// Two outboxes on one store (two engines): every intent is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_two_outboxes_on_one_store_send_each_mail_once() {
    for backend in backends().await {
        let store = backend.store();
        let smtp = SmtpListener::start().await;
        let module = ModuleId::from_uuid(new_id());
        let rule = OfflineMail::Forward {
            to: TEAM.to_owned(),
        };
        Outbox::set_settings(&*store, &settings(module, Some(rule)), support::now())
            .await
            .expect("settings");
        let mut first = spawn(store.clone(), options(&smtp));
        let mut second = spawn(store.clone(), options(&smtp));
        let driver = Driver::new(store.clone());
        let chats = 20;
        for _ in 0..chats {
            driver
                .start(
                    ChatId::from_uuid(new_id()),
                    module,
                    Some(VISITOR),
                    &[],
                    ChatSettings::default(),
                    false,
                )
                .await;
        }
        let a = first.idle(&*store).await;
        let b = second.idle(&*store).await;
        let mails = smtp.mails();
        assert_eq!(
            mails.len(),
            chats,
            "{}: one mail per offline chat",
            backend.name()
        );
        assert_eq!(a.sent + b.sent, chats as u64);
        let ids: std::collections::BTreeSet<_> =
            mails.iter().map(|m| m.header("Message-ID")).collect();
        assert_eq!(ids.len(), chats);
        first.stop().await;
        second.stop().await;
        drop(store);
        backend.cleanup().await;
    }
}

/// At `pending_intents_max` the outbox stops reading the log until intents close; nothing is
/// lost, everything is still delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_at_pending_intents_max_the_outbox_pauses_reading_and_still_delivers_everything() {
    let backend = Backend::sled();
    let store = backend.store();
    let smtp = SmtpListener::start().await;
    let module = ModuleId::from_uuid(new_id());
    let rule = OfflineMail::Forward {
        to: TEAM.to_owned(),
    };
    Outbox::set_settings(&*store, &settings(module, Some(rule)), support::now())
        .await
        .expect("settings");
    let driver = Driver::new(store.clone());
    let chats = 12;
    for _ in 0..chats {
        driver
            .start(
                ChatId::from_uuid(new_id()),
                module,
                Some(VISITOR),
                &[],
                ChatSettings::default(),
                false,
            )
            .await;
    }
    let options = OutboxOptions {
        pending_intents_max: 2,
        ..options(&smtp)
    };
    let mut outbox = spawn(store.clone(), options);
    let mut watch = outbox.handle.watch();
    let mut pending_seen_max = 0;
    let head = store.head_position().await.expect("head");
    tokio::time::timeout(WAIT, async {
        loop {
            let stats = *watch.borrow_and_update();
            pending_seen_max = pending_seen_max.max(stats.pending);
            if stats.caught_up && stats.position >= head && stats.pending == 0 {
                break;
            }
            watch.changed().await.expect("running");
        }
    })
    .await
    .expect("idle in time");
    assert!(
        pending_seen_max <= 2,
        "never more than pending_intents_max: {pending_seen_max}"
    );
    assert!(pending_seen_max >= 1);
    let stats = outbox.idle(&*store).await;
    assert_eq!(stats.delivered, chats as u64);
    assert_eq!(smtp.mails().len(), chats);
    outbox.stop().await;
}
