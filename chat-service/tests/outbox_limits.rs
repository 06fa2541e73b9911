//! Every named limit of the outbox, at the limit (accepted) and past it (refused with the limit
//! named), plus the pure parts: intent derivation is deterministic, backoff doubles and is
//! capped, signatures verify only untampered, fresh bodies, transcripts stay under their size.

use chat_core::conversation::{
    ChatEvent, ChatMessage, ChatRecord, ChatSettings, Disposition, MessageBody, OfflineReason,
    Origin, Party,
};
use chat_core::{AgentId, ChatId, CommandId, ContactId, MessageId, ModuleId, PageData};
use chat_service::engine::{Codec, ShutdownTrigger, SystemClock};
use chat_service::outbox::{
    BACKOFF_MS_MAX, DELIVERIES_IN_FLIGHT_MAX, DELIVERY_ATTEMPTS_MAX, EMAIL_ADDRESS_BYTES_MAX,
    EMAIL_BODY_BYTES_MAX, EMAIL_SUBJECT_CHARS_MAX, Intent, IntentKind, OFFLINE_MAIL_MODULES_MAX,
    OfflineMail, Outbox, OutboxError, OutboxOptions, OutboxSettings, PENDING_INTENTS_MAX,
    RetryPolicy, SEND_TIMEOUT_MS_MAX, SUBJECT_FIELD_BYTES_MAX, SignatureError, Source,
    WEBHOOK_NAME_BYTES_MAX, WEBHOOK_SECRET_BYTES_MAX, WEBHOOK_SECRET_BYTES_MIN,
    WEBHOOK_TARGETS_MAX, WEBHOOK_URL_BYTES_MAX, WebhookEventKind, WebhookSecret, WebhookTarget,
    derive_intents, render, signature_header, verify_signature,
};
use chrono::{TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

fn cases() -> u32 {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        10_000
    } else {
        512
    }
}

fn limit_of(error: OutboxError) -> &'static str {
    match error {
        OutboxError::LimitExceeded { limit, .. } => limit,
        other => panic!("expected LimitExceeded, got {other:?}"),
    }
}

/// A valid address of exactly `len` bytes: `user@` and a domain of labels of at most 60 bytes.
fn address_of_len(len: usize) -> String {
    let mut domain = String::from("example.com");
    let mut room = len - "user@".len() - domain.len();
    while room > 0 {
        let label = room.min(61) - 1;
        let label = label.max(1);
        domain = format!("{}.{domain}", "d".repeat(label));
        room -= label + 1;
    }
    let address = format!("user@{domain}");
    assert_eq!(address.len(), len);
    address
}

#[test]
fn v5_settings_limits_are_enforced_at_and_past_each_limit() {
    let target = |url: String| WebhookTarget {
        url,
        events: WebhookEventKind::ALL.into_iter().collect(),
    };
    // Targets.
    let mut settings = OutboxSettings::default();
    for i in 0..WEBHOOK_TARGETS_MAX {
        settings.webhooks.insert(
            format!("t{i}"),
            target("https://crm.example/hook".to_owned()),
        );
    }
    settings.validate().expect("at WEBHOOK_TARGETS_MAX");
    settings.webhooks.insert(
        "one-more".to_owned(),
        target("https://crm.example/hook".to_owned()),
    );
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "WEBHOOK_TARGETS_MAX"
    );

    // URL length.
    let base = "https://crm.example/";
    let url = |len: usize| format!("{base}{}", "x".repeat(len - base.len()));
    let mut settings = OutboxSettings::default();
    settings
        .webhooks
        .insert("crm".to_owned(), target(url(WEBHOOK_URL_BYTES_MAX)));
    settings.validate().expect("at WEBHOOK_URL_BYTES_MAX");
    settings
        .webhooks
        .insert("crm".to_owned(), target(url(WEBHOOK_URL_BYTES_MAX + 1)));
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "WEBHOOK_URL_BYTES_MAX"
    );

    // Target name length and characters.
    let mut settings = OutboxSettings::default();
    let name = "n".repeat(WEBHOOK_NAME_BYTES_MAX);
    settings
        .webhooks
        .insert(name.clone(), target("http://127.0.0.1:9/".to_owned()));
    settings.validate().expect("at WEBHOOK_NAME_BYTES_MAX");
    settings
        .webhooks
        .insert(format!("{name}n"), target("http://127.0.0.1:9/".to_owned()));
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "WEBHOOK_NAME_BYTES_MAX"
    );
    let mut settings = OutboxSettings::default();
    settings.webhooks.insert(
        "has space".to_owned(),
        target("http://127.0.0.1:9/".to_owned()),
    );
    assert!(matches!(
        settings.validate(),
        Err(OutboxError::InvalidSettings { field, .. }) if field == "webhooks.name"
    ));
    let mut settings = OutboxSettings::default();
    settings
        .webhooks
        .insert("crm".to_owned(), target("ftp://crm.example/".to_owned()));
    assert!(matches!(
        settings.validate(),
        Err(OutboxError::InvalidSettings { field, .. }) if field == "webhooks[crm].url"
    ));

    // Addresses.
    let mut settings = OutboxSettings {
        sender: Some(address_of_len(EMAIL_ADDRESS_BYTES_MAX)),
        ..OutboxSettings::default()
    };
    settings.validate().expect("at EMAIL_ADDRESS_BYTES_MAX");
    settings.sender = Some(address_of_len(EMAIL_ADDRESS_BYTES_MAX + 1));
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "EMAIL_ADDRESS_BYTES_MAX"
    );
    settings.sender = Some("not an address".to_owned());
    assert!(matches!(
        settings.validate(),
        Err(OutboxError::InvalidSettings { field, .. }) if field == "sender"
    ));

    // Subject field.
    let module = ModuleId::from_u128(1);
    let rule = |field: String| OfflineMail::EmailInteraction {
        inbox: "inbox@example.com".to_owned(),
        subject_field: field,
    };
    let mut settings = OutboxSettings::default();
    settings
        .offline_mail
        .insert(module, rule("s".repeat(SUBJECT_FIELD_BYTES_MAX)));
    settings.validate().expect("at SUBJECT_FIELD_BYTES_MAX");
    settings
        .offline_mail
        .insert(module, rule("s".repeat(SUBJECT_FIELD_BYTES_MAX + 1)));
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "SUBJECT_FIELD_BYTES_MAX"
    );
    settings.offline_mail.insert(module, rule(String::new()));
    assert!(
        settings.validate().is_err(),
        "an empty subject field is refused"
    );

    // Modules with offline rules.
    let forward = OfflineMail::Forward {
        to: "team@example.com".to_owned(),
    };
    let mut settings = OutboxSettings::default();
    for i in 0..OFFLINE_MAIL_MODULES_MAX {
        settings
            .offline_mail
            .insert(ModuleId::from_u128(i as u128), forward.clone());
    }
    settings.validate().expect("at OFFLINE_MAIL_MODULES_MAX");
    settings
        .offline_mail
        .insert(ModuleId::from_u128(u128::MAX), forward);
    assert_eq!(
        limit_of(settings.validate().unwrap_err()),
        "OFFLINE_MAIL_MODULES_MAX"
    );
}

#[test]
fn v5_retry_and_runtime_limits_are_enforced() {
    let ok = RetryPolicy {
        attempts_max: DELIVERY_ATTEMPTS_MAX,
        backoff_initial_ms: 1,
        backoff_max_ms: BACKOFF_MS_MAX,
    };
    ok.validate().expect("at the limits");
    let err = RetryPolicy {
        attempts_max: DELIVERY_ATTEMPTS_MAX + 1,
        ..ok
    }
    .validate()
    .unwrap_err();
    assert_eq!(limit_of(err), "DELIVERY_ATTEMPTS_MAX");
    let err = RetryPolicy {
        backoff_max_ms: BACKOFF_MS_MAX + 1,
        ..ok
    }
    .validate()
    .unwrap_err();
    assert_eq!(limit_of(err), "BACKOFF_MS_MAX");
    assert!(
        RetryPolicy {
            attempts_max: 0,
            ..ok
        }
        .validate()
        .is_err()
    );

    let options = |f: fn(&mut OutboxOptions)| {
        let mut o = OutboxOptions::default();
        f(&mut o);
        o.validate()
    };
    options(|o| o.send_timeout_ms = SEND_TIMEOUT_MS_MAX).expect("at SEND_TIMEOUT_MS_MAX");
    assert_eq!(
        limit_of(options(|o| o.send_timeout_ms = SEND_TIMEOUT_MS_MAX + 1).unwrap_err()),
        "SEND_TIMEOUT_MS_MAX"
    );
    options(|o| o.deliveries_in_flight_max = DELIVERIES_IN_FLIGHT_MAX).expect("at the max");
    assert_eq!(
        limit_of(
            options(|o| o.deliveries_in_flight_max = DELIVERIES_IN_FLIGHT_MAX + 1).unwrap_err()
        ),
        "DELIVERIES_IN_FLIGHT_MAX"
    );
    options(|o| o.pending_intents_max = PENDING_INTENTS_MAX).expect("at the max");
    assert_eq!(
        limit_of(options(|o| o.pending_intents_max = PENDING_INTENTS_MAX + 1).unwrap_err()),
        "PENDING_INTENTS_MAX"
    );
    assert!(options(|o| o.deliveries_in_flight_max = 0).is_err());

    WebhookSecret::new(vec![7; WEBHOOK_SECRET_BYTES_MIN]).expect("at the minimum");
    WebhookSecret::new(vec![7; WEBHOOK_SECRET_BYTES_MAX]).expect("at the maximum");
    assert!(WebhookSecret::new(vec![7; WEBHOOK_SECRET_BYTES_MIN - 1]).is_err());
    assert_eq!(
        limit_of(WebhookSecret::new(vec![7; WEBHOOK_SECRET_BYTES_MAX + 1]).unwrap_err()),
        "WEBHOOK_SECRET_BYTES_MAX"
    );
}

#[tokio::test]
async fn v5_an_outbox_with_bad_options_does_not_start() {
    let store: Arc<dyn chat_store::EventStore> = Arc::new(chat_store::MemoryStore::new());
    let options = OutboxOptions {
        deliveries_in_flight_max: DELIVERIES_IN_FLIGHT_MAX + 1,
        ..OutboxOptions::default()
    };
    let result = Outbox::new(
        store.clone(),
        Arc::new(Codec::default()),
        Arc::new(SystemClock::default()),
        options,
    );
    assert!(matches!(result, Err(OutboxError::LimitExceeded { .. })));
    let bad = OutboxSettings {
        sender: Some("nobody".to_owned()),
        ..OutboxSettings::default()
    };
    assert!(
        Outbox::set_settings(&*store, &bad, Utc::now())
            .await
            .is_err()
    );
    assert_eq!(
        store.head_position().await.expect("head"),
        0,
        "nothing is recorded from invalid settings"
    );
    let (_trigger, _shutdown) = ShutdownTrigger::new();
}

#[test]
fn v5_backoff_doubles_and_is_capped() {
    let policy = RetryPolicy {
        attempts_max: DELIVERY_ATTEMPTS_MAX,
        backoff_initial_ms: 100,
        backoff_max_ms: 1_000,
    };
    let waits: Vec<i64> = (1..=6)
        .map(|n| policy.backoff(n).num_milliseconds())
        .collect();
    assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
    assert_eq!(
        policy.backoff(u32::MAX),
        TimeDelta::milliseconds(1_000),
        "no overflow"
    );
    assert!(policy.may_retry(DELIVERY_ATTEMPTS_MAX - 1));
    assert!(!policy.may_retry(DELIVERY_ATTEMPTS_MAX));
}

#[test]
fn v5_signatures_verify_only_untampered_fresh_bodies() {
    let secret = WebhookSecret::new(b"0123456789abcdef".to_vec()).expect("secret");
    let now = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let body = br#"{"event":"chat.started"}"#;
    let header = signature_header(&secret, now.timestamp(), body);
    verify_signature(&secret, &header, body, now, 300).expect("valid");
    assert_eq!(
        verify_signature(&secret, &header, b"{}", now, 300),
        Err(SignatureError::Mismatch)
    );
    let other = WebhookSecret::new(b"fedcba9876543210".to_vec()).expect("secret");
    assert_eq!(
        verify_signature(&other, &header, body, now, 300),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify_signature(&secret, &header, body, now + TimeDelta::seconds(301), 300),
        Err(SignatureError::Stale { .. })
    ));
    assert_eq!(
        verify_signature(&secret, "v1=abc", body, now, 300),
        Err(SignatureError::Malformed)
    );
}

fn record(chat: ChatId, module: ModuleId, email: Option<&str>) -> ChatRecord {
    ChatRecord {
        chat,
        module,
        contact: ContactId::from_u128(3),
        contact_email: email.map(str::to_owned),
        resume_token: "t".to_owned(),
        page: PageData::default(),
        form_answers: BTreeMap::new(),
        routing_vars: BTreeMap::new(),
        origin: Origin::Widget,
        settings: ChatSettings::default(),
    }
}

fn source(n: u128) -> Source {
    Source {
        event_id: Uuid::from_u128(n),
        stream: format!("chat-{}", Uuid::from_u128(1)),
        version: 2,
        position: 10,
        at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
    }
}

#[test]
fn o2_a_transcript_longer_than_email_body_bytes_max_keeps_the_latest_messages() {
    let chat = ChatId::from_u128(1);
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let mut history = vec![ChatEvent::ChatStarted {
        command_id: CommandId::from_u128(1),
        at,
        record: Box::new(record(chat, ModuleId::from_u128(2), Some("a@b.example"))),
    }];
    let messages = 1000;
    for i in 0..messages {
        history.push(ChatEvent::MessagePosted {
            command_id: CommandId::from_u128(100 + i),
            message: Box::new(ChatMessage {
                id: MessageId::from_u128(100 + i),
                episode: 1,
                author: Party::Visitor,
                at,
                body: MessageBody::text(format!("message {i} {}", "x".repeat(1000))),
                redaction: None,
            }),
        });
    }
    let intent = Intent {
        id: chat_service::outbox::IntentId(Uuid::from_u128(9)),
        kind: IntentKind::Transcript {
            to: "a@b.example".to_owned(),
            episode: 1,
        },
        source: source(5),
        sender: Some("s@shop.example".to_owned()),
        message_id_domain: "shop.example".to_owned(),
    };
    let mail = render(&intent, &history).expect("render").expect("mail");
    assert!(mail.body.len() <= EMAIL_BODY_BYTES_MAX);
    assert!(
        mail.body.len() > EMAIL_BODY_BYTES_MAX - 2_000,
        "the budget is used"
    );
    assert!(
        mail.body.contains(&format!("message {} ", messages - 1)),
        "latest kept"
    );
    assert!(!mail.body.contains("message 0 "), "oldest left out");
    assert!(mail.body.contains("earlier messages are not included"));
    assert_eq!(
        mail.message_id,
        "<00000000-0000-0000-0000-000000000009@shop.example>"
    );

    // A subject from a long offline-form answer is cut to EMAIL_SUBJECT_CHARS_MAX.
    let mut started = record(chat, ModuleId::from_u128(2), Some("a@b.example"));
    started.form_answers.insert(
        "subject".to_owned(),
        chat_core::FieldValue::Text("é".repeat(EMAIL_SUBJECT_CHARS_MAX + 50)),
    );
    let history = vec![ChatEvent::ChatStarted {
        command_id: CommandId::from_u128(1),
        at,
        record: Box::new(started),
    }];
    let intent = Intent {
        kind: IntentKind::OfflineInteraction {
            from: "a@b.example".to_owned(),
            inbox: "inbox@shop.example".to_owned(),
            subject_field: "subject".to_owned(),
        },
        ..intent
    };
    let mail = render(&intent, &history).expect("render").expect("mail");
    assert_eq!(mail.subject.chars().count(), EMAIL_SUBJECT_CHARS_MAX);
}

fn arbitrary_event() -> impl Strategy<Value = ChatEvent> {
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    prop_oneof![
        Just(ChatEvent::EpisodeEnded {
            command_id: CommandId::from_u128(1),
            at,
            episode: 1,
            disposition: Disposition::Offline {
                reason: OfflineReason::OutsideWorkingHours
            },
            by: Party::System,
        }),
        Just(ChatEvent::EpisodeEnded {
            command_id: CommandId::from_u128(1),
            at,
            episode: 1,
            disposition: Disposition::Managed,
            by: Party::Visitor,
        }),
        Just(ChatEvent::TranscriptEmailRequested {
            command_id: CommandId::from_u128(1),
            at,
            episode: 1,
            to: "a@b.example".to_owned(),
        }),
        Just(ChatEvent::AsyncReplyEmailRequested {
            command_id: CommandId::from_u128(1),
            at,
            episode: 1,
            to: "a@b.example".to_owned(),
            message_id: MessageId::from_u128(4),
        }),
        Just(ChatEvent::ChatRated {
            command_id: CommandId::from_u128(1),
            at,
            episode: 1,
            agent: AgentId::from_u128(5),
            score: 5,
            comment: None,
        }),
        Just(ChatEvent::ChatResumed {
            command_id: CommandId::from_u128(1),
            at,
            episode: 2,
        }),
    ]
}

fn arbitrary_settings() -> impl Strategy<Value = OutboxSettings> {
    let kinds = proptest::sample::subsequence(WebhookEventKind::ALL.to_vec(), 0..=7);
    (
        proptest::collection::btree_map("[a-c]{1,3}", kinds, 0..4),
        proptest::option::of(prop_oneof![
            Just(OfflineMail::Forward {
                to: "team@shop.example".to_owned()
            }),
            Just(OfflineMail::EmailInteraction {
                inbox: "inbox@shop.example".to_owned(),
                subject_field: "subject".to_owned()
            }),
        ]),
        any::<bool>(),
    )
        .prop_map(|(targets, rule, sender)| OutboxSettings {
            sender: sender.then(|| "s@shop.example".to_owned()),
            offline_mail: rule
                .into_iter()
                .map(|r| (ModuleId::from_u128(2), r))
                .collect(),
            webhooks: targets
                .into_iter()
                .map(|(name, kinds)| {
                    (
                        name,
                        WebhookTarget {
                            url: "https://crm.example/hook".to_owned(),
                            events: kinds.into_iter().collect(),
                        },
                    )
                })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// A rebuild derives the same intents, with the same ids, as the first run; ids are unique
    /// per event and differ between events; only subscribed targets get a webhook intent.
    #[test]
    fn v5_intent_derivation_is_deterministic_and_ids_are_unique(
        event in arbitrary_event(),
        settings in arbitrary_settings(),
        n in 1_u128..1_000,
        email in proptest::option::of(Just("v@visitor.example")),
    ) {
        let chat = Some((ModuleId::from_u128(2), email));
        let first = derive_intents(&source(n), &event, chat, &settings);
        let again = derive_intents(&source(n), &event, chat, &settings);
        prop_assert_eq!(&first, &again);
        let ids: std::collections::BTreeSet<_> = first.iter().map(|i| i.id).collect();
        prop_assert_eq!(ids.len(), first.len());
        let other = derive_intents(&source(n + 1), &event, chat, &settings);
        for intent in &other {
            prop_assert!(!ids.contains(&intent.id));
        }
        let webhooks = first.iter().filter(|i| !i.kind.is_mail()).count();
        let wanted = chat_service::outbox::webhook_kind(&event).map_or(0, |kind| {
            settings.webhooks.values().filter(|t| t.events.contains(&kind)).count()
        });
        prop_assert_eq!(webhooks, wanted);
        let mails = first.iter().filter(|i| i.kind.is_mail()).count();
        let expected_mails = match &event {
            ChatEvent::TranscriptEmailRequested { .. }
            | ChatEvent::AsyncReplyEmailRequested { .. } => 1,
            ChatEvent::EpisodeEnded { disposition: Disposition::Offline { .. }, .. } => {
                match settings.offline_mail.get(&ModuleId::from_u128(2)) {
                    Some(OfflineMail::Forward { .. }) => 1,
                    Some(OfflineMail::EmailInteraction { .. }) => usize::from(email.is_some()),
                    None => 0,
                }
            }
            _ => 0,
        };
        prop_assert_eq!(mails, expected_mails);
    }
}
