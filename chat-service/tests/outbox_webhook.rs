//! Outgoing webhooks (V5) end to end: a receiver started by the test on a loopback socket gets
//! every chat event of a journey, each signature valid (checked here with HMAC-SHA256 directly,
//! not with the outbox's own code), and a delivery the receiver failed twice arrives again with
//! the same delivery id and body.

mod support;

use chat_core::conversation::{ChatSettings, Party};
use chat_core::{AgentId, ChatId, ModuleId};
use chat_service::engine::{Codec, ShutdownTrigger, SystemClock};
use chat_service::outbox::{
    Outbox, OutboxOptions, OutboxSettings, RetryPolicy, WebhookEventKind, WebhookSecret,
    WebhookTarget, verify_signature,
};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use support::{Driver, WAIT, WebhookReceiver, backends};
use uuid::Uuid;

const SECRET: &[u8] = b"an example secret of 32 bytes!!!";

/// Recomputes the signature the documented way: HMAC-SHA256(secret, "<t>.<body>") in hex.
fn independent_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).expect("key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_webhook_receiver_gets_every_chat_event_of_a_journey_signed_and_retried() {
    for backend in backends().await {
        let store = backend.store();
        let receiver = WebhookReceiver::start(2).await;
        let module = ModuleId::from_uuid(Uuid::now_v7());
        let settings = OutboxSettings {
            sender: None,
            offline_mail: BTreeMap::new(),
            webhooks: [(
                "crm".to_owned(),
                WebhookTarget {
                    url: receiver.url(),
                    events: WebhookEventKind::ALL.into_iter().collect(),
                },
            )]
            .into_iter()
            .collect(),
        };
        Outbox::set_settings(&*store, &settings, support::now())
            .await
            .expect("settings");
        let (trigger, shutdown) = ShutdownTrigger::new();
        let options = OutboxOptions {
            webhook_secrets: [(
                "crm".to_owned(),
                WebhookSecret::new(SECRET).expect("secret"),
            )]
            .into_iter()
            .collect(),
            retry: RetryPolicy {
                attempts_max: 5,
                backoff_initial_ms: 50,
                backoff_max_ms: 200,
            },
            send_timeout_ms: 5_000,
            ..OutboxOptions::default()
        };
        let mut outbox = Outbox::new(
            store.clone(),
            Arc::new(Codec::default()),
            Arc::new(SystemClock::default()),
            options,
        )
        .expect("options")
        .spawn(shutdown);

        // The journey: started, assigned, two messages, ended, rated.
        let driver = Driver::new(store.clone());
        let agent = AgentId::from_uuid(Uuid::now_v7());
        driver.online_agent(agent).await;
        let chat = ChatId::from_uuid(Uuid::now_v7());
        driver
            .start(chat, module, None, &[], ChatSettings::default(), true)
            .await;
        driver.assign(chat, agent).await;
        driver.say(chat, Party::Visitor, "Hello").await;
        driver
            .say(chat, Party::Agent(agent), "Hi, how can I help?")
            .await;
        driver.end_by_agent(chat, agent).await;
        driver.rate(chat, 5).await;
        let head = store.head_position().await.expect("head");
        let stats = tokio::time::timeout(WAIT, outbox.idle_at(head))
            .await
            .expect("idle")
            .expect("running");
        assert_eq!(stats.delivered, 6, "{}", backend.name());

        let requests = receiver.requests();
        // Every accepted delivery, in log order.
        let mut accepted: Vec<_> = requests.iter().filter(|r| r.status == 200).collect();
        accepted.sort_by_key(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["position"]
                .as_u64()
                .expect("position")
        });
        let events: Vec<String> = accepted
            .iter()
            .map(|r| r.headers["x-chat-event"].clone())
            .collect();
        assert_eq!(
            events,
            [
                "chat.started",
                "chat.assigned",
                "chat.message",
                "chat.message",
                "chat.ended",
                "chat.rated"
            ],
            "{}",
            backend.name()
        );
        let ids: BTreeSet<&String> = accepted
            .iter()
            .map(|r| &r.headers["x-chat-delivery"])
            .collect();
        assert_eq!(ids.len(), 6, "one delivery id per event");

        // Every request (failed ones too) is signed, and the signature checks out.
        let secret = WebhookSecret::new(SECRET).expect("secret");
        for request in &requests {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, "/hooks/chat");
            assert_eq!(request.headers["content-type"], "application/json");
            let header = &request.headers["x-chat-signature"];
            let (t, v1) = header
                .split_once(',')
                .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
                .expect("t=…,v1=…");
            assert_eq!(v1, independent_signature(t, &request.body));
            verify_signature(&secret, header, &request.body, support::now(), 300)
                .expect("the documented verification accepts it");
            let mut tampered = request.body.clone();
            tampered.push(b' ');
            assert!(verify_signature(&secret, header, &tampered, support::now(), 300).is_err());
            let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
            assert_eq!(
                body["delivery_id"],
                request.headers["x-chat-delivery"].as_str()
            );
            assert_eq!(body["chat_id"], chat.to_string());
        }

        // The receiver failed the first delivery twice: it came three times, same id, same body.
        assert_eq!(requests.len(), 8, "6 deliveries + 2 retries");
        let first_id = &requests[0].headers["x-chat-delivery"];
        let same: Vec<_> = requests
            .iter()
            .filter(|r| &r.headers["x-chat-delivery"] == first_id)
            .collect();
        assert_eq!(
            same.iter().map(|r| r.status).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        assert_eq!(
            same.iter()
                .map(|r| r.headers["x-chat-attempt"].as_str())
                .collect::<Vec<_>>(),
            ["1", "2", "3"]
        );
        assert!(same.iter().all(|r| r.body == same[0].body), "a stable body");

        trigger.trigger();
        outbox.join().await.expect("clean stop");
        drop(driver);
        drop(store);
        backend.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_event_filters_and_settings_history_decide_what_a_target_gets() {
    let backend = support::Backend::sled();
    let store = backend.store();
    let receiver = WebhookReceiver::start(0).await;
    let driver = Driver::new(store.clone());
    let module = ModuleId::from_uuid(Uuid::now_v7());
    // A chat before any webhook was configured: never delivered, also not after a restart.
    let before = ChatId::from_uuid(Uuid::now_v7());
    driver
        .start(before, module, None, &[], ChatSettings::default(), true)
        .await;
    let settings = OutboxSettings {
        sender: None,
        offline_mail: BTreeMap::new(),
        webhooks: [(
            "offline-only".to_owned(),
            WebhookTarget {
                url: receiver.url(),
                events: [WebhookEventKind::OfflineMessage].into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
    };
    Outbox::set_settings(&*store, &settings, support::now())
        .await
        .expect("settings");
    assert!(
        !Outbox::set_settings(&*store, &settings, support::now())
            .await
            .expect("settings"),
        "the same settings are not recorded twice"
    );
    let (trigger, shutdown) = ShutdownTrigger::new();
    let mut outbox = Outbox::new(
        store.clone(),
        Arc::new(Codec::default()),
        Arc::new(SystemClock::default()),
        OutboxOptions {
            webhook_secrets: [(
                "offline-only".to_owned(),
                WebhookSecret::new(SECRET).expect("secret"),
            )]
            .into_iter()
            .collect(),
            ..OutboxOptions::default()
        },
    )
    .expect("options")
    .spawn(shutdown);
    let online = ChatId::from_uuid(Uuid::now_v7());
    driver
        .start(online, module, None, &[], ChatSettings::default(), true)
        .await;
    let offline = ChatId::from_uuid(Uuid::now_v7());
    driver
        .start(
            offline,
            module,
            Some("ada@visitor.example"),
            &[("question", "Do you ship to Mars?")],
            ChatSettings::default(),
            false,
        )
        .await;
    let head = store.head_position().await.expect("head");
    tokio::time::timeout(WAIT, outbox.idle_at(head))
        .await
        .expect("idle")
        .expect("running");
    let requests = receiver.requests();
    assert_eq!(
        requests.len(),
        1,
        "only the offline message passes the filter"
    );
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(body["event"], "chat.offline_message");
    assert_eq!(body["chat_id"], offline.to_string());
    let answer = body["offline_message"]["form_answers"]["question"].to_string();
    assert!(answer.contains("Do you ship to Mars?"), "{answer}");
    assert_eq!(
        body["offline_message"]["contact_email"],
        "ada@visitor.example"
    );
    trigger.trigger();
    outbox.join().await.expect("stop");
}
