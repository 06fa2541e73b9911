//! O2 / E3 kill-and-restart of the outbox, in the style of `engine_kill_restart.rs`: a child
//! process (this test binary re-executed with `OUTBOX_KILL_CHILD` set) starts offline chats
//! while its outbox forwards them to an SMTP listener that lives in the parent; the parent kills
//! the child with SIGKILL mid-traffic, restarts an outbox on the same data, and checks what
//! docs/OUTBOX.md promises: every offline chat in the log gets its mail, no Message-ID arrives
//! more than twice, and a Message-ID arrives twice only for an attempt whose outcome the killed
//! process never recorded (at most `deliveries_in_flight_max` of them).

mod support;

use chat_core::conversation::ChatSettings;
use chat_core::{ChatId, ModuleId};
use chat_service::engine::{Codec, ShutdownTrigger, SystemClock};
use chat_service::outbox::{
    DeliveryEvent, IntentId, OfflineMail, Outbox, OutboxOptions, OutboxSettings, RetryPolicy,
    SmtpConfig,
};
use chat_store::{EventStore, PostgresConfig, PostgresStore, SledStore};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use support::{Backend, Driver, SmtpListener, WAIT, read_log};
use uuid::Uuid;

const CHILD_VAR: &str = "OUTBOX_KILL_CHILD";
const ACKS_BEFORE_KILL: usize = 30;
const MODULE: ModuleId = ModuleId::from_u128(0x00ff_113e);
const IN_FLIGHT: usize = 4;

fn settings() -> OutboxSettings {
    OutboxSettings {
        sender: Some("support@shop.example".to_owned()),
        offline_mail: [(
            MODULE,
            OfflineMail::Forward {
                to: "team@shop.example".to_owned(),
            },
        )]
        .into_iter()
        .collect(),
        webhooks: BTreeMap::new(),
    }
}

fn options(port: u16) -> OutboxOptions {
    OutboxOptions {
        smtp: Some(SmtpConfig::plain("127.0.0.1", port)),
        retry: RetryPolicy {
            attempts_max: 10,
            backoff_initial_ms: 20,
            backoff_max_ms: 200,
        },
        // A short lease (twice this), so the restarted outbox takes over quickly.
        send_timeout_ms: 300,
        deliveries_in_flight_max: IN_FLIGHT,
        ..OutboxOptions::default()
    }
}

async fn open_spec(spec: &str) -> Arc<dyn EventStore> {
    if let Some(path) = spec.strip_prefix("sled:") {
        Arc::new(SledStore::open(path).expect("sled opens"))
    } else {
        let rest = spec.strip_prefix("pg:").expect("a store spec");
        let (url, schema) = rest.rsplit_once('#').expect("url#schema");
        Arc::new(
            PostgresStore::open(PostgresConfig::new(url).schema(schema))
                .await
                .expect("postgres opens"),
        )
    }
}

/// The child: an outbox, and offline chats forever, printing each acknowledged start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_kill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return; // Only meaningful as the child of the kill-and-restart test.
    };
    let (store_spec, port) = spec.rsplit_once('|').expect("spec|port");
    let store = open_spec(store_spec).await;
    Outbox::set_settings(&*store, &settings(), support::now())
        .await
        .expect("settings");
    let (_trigger, shutdown) = ShutdownTrigger::new();
    let _outbox = Outbox::new(
        store.clone(),
        Arc::new(Codec::default()),
        Arc::new(SystemClock::default()),
        options(port.parse().expect("port")),
    )
    .expect("options")
    .spawn(shutdown);
    let driver = Driver::new(store);
    for n in 1.. {
        driver
            .start(
                ChatId::from_uuid(Uuid::now_v7()),
                MODULE,
                Some("ada@visitor.example"),
                &[],
                ChatSettings::default(),
                false,
            )
            .await;
        println!("ack {n}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn kill_and_restart(mut backend: Backend) {
    let smtp = SmtpListener::start().await;
    let spec = match &backend {
        Backend::Sled { dir, .. } => format!("sled:{}", dir.path().display()),
        Backend::Postgres { db, config, .. } => format!("pg:{}#{}", db.url(), config.schema_name()),
    };
    // The child opens the data itself: close ours first (sled locks its directory).
    backend.close();
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "o2_kill_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_VAR, format!("{spec}|{}", smtp.port()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = 0;
    while acked < ACKS_BEFORE_KILL || smtp.mails().len() < 5 {
        let line = lines.next().expect("the child acknowledges").expect("line");
        if line.starts_with("ack ") {
            acked += 1;
        }
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix.
    child.wait().expect("reaped");
    let received_at_kill = smtp.mails().len();

    backend.reopen().await;
    let store = backend.store();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let mut outbox = Outbox::new(
        store.clone(),
        Arc::new(Codec::default()),
        Arc::new(SystemClock::default()),
        options(smtp.port()),
    )
    .expect("options")
    .spawn(shutdown);
    let head = store.head_position().await.expect("head");
    let stats = tokio::time::timeout(WAIT, outbox.idle_at(head))
        .await
        .expect("idle in time")
        .expect("running");
    assert_eq!(stats.gave_up, 0);

    // Every offline chat in the log (acknowledged or not) got its mail.
    let log = read_log(&*store).await;
    let offline_chats = log
        .iter()
        .filter(|r| r.event_type == "EpisodeEnded" && r.stream_id.as_str().starts_with("chat-"))
        .count();
    assert!(offline_chats >= ACKS_BEFORE_KILL);
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for mail in smtp.mails() {
        *copies
            .entry(mail.header("Message-ID").expect("Message-ID"))
            .or_default() += 1;
    }
    assert_eq!(
        copies.len(),
        offline_chats,
        "one Message-ID per offline chat"
    );

    // A second copy only where the killed process sent but never recorded the outcome.
    let codec = Codec::default();
    let mut streams: BTreeMap<IntentId, Vec<DeliveryEvent>> = BTreeMap::new();
    for recorded in &log {
        if let Some(id) = IntentId::from_stream(&recorded.stream_id) {
            streams
                .entry(id)
                .or_default()
                .push(codec.decode_as(recorded).expect("delivery event"));
        }
    }
    let unrecorded: BTreeSet<String> = streams
        .iter()
        .filter(|(_, events)| {
            events.windows(2).any(|w| {
                matches!(
                    (&w[0], &w[1]),
                    (
                        DeliveryEvent::AttemptStarted { .. },
                        DeliveryEvent::AttemptStarted { .. }
                    )
                )
            })
        })
        .map(|(id, _)| format!("<{id}@shop.example>"))
        .collect();
    assert!(unrecorded.len() <= IN_FLIGHT, "{unrecorded:?}");
    for (message_id, n) in &copies {
        assert!(*n <= 2, "{message_id} arrived {n} times");
        if *n == 2 {
            assert!(
                unrecorded.contains(message_id),
                "{message_id} was sent twice although its outcome was recorded"
            );
        }
    }
    eprintln!(
        "{}: {offline_chats} offline chats, {received_at_kill} mails before the kill, \
         {} resent after it",
        backend.name(),
        copies.values().filter(|n| **n == 2).count()
    );
    trigger.trigger();
    outbox.join().await.expect("stop");
    drop(store);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_killed_outbox_restarts_and_resends_only_unrecorded_attempts_sled() {
    kill_and_restart(Backend::sled()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_killed_outbox_restarts_and_resends_only_unrecorded_attempts_postgres() {
    if let Some(backend) = Backend::postgres().await {
        kill_and_restart(backend).await;
    }
}
