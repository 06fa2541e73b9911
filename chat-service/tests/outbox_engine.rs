//! The outbox behind the real engine (part 1's `Engine`, configured through its commands): a chat
//! started outside working hours goes offline and its forward reaches a real SMTP listener; a
//! chat in hours is routed, answered and ended by the engine, and its transcript is e-mailed
//! exactly once — on sled and on PostgreSQL.

mod engine_common;
mod support;

use chat_core::config::{AdminCommand, ModuleCommand, ModuleSettings};
use chat_core::conversation::{ChatCommand, EndedBy, MessageBody, Party};
use chat_core::{AgentId, CommandId, MessageId};
use chat_service::engine::{EngineOptions, ManualClock};
use chat_service::outbox::{
    OfflineMail, Outbox, OutboxOptions, OutboxSettings, RetryPolicy, SmtpConfig,
};
use engine_common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use support::{SmtpListener, WAIT};

const AGENT: AgentId = AgentId::from_u128(0xa9e7);

fn outbox_settings() -> OutboxSettings {
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

async fn o1_o2_through_the_engine(backend: Backend, open: bool) {
    let store = backend.open().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(store.clone(), clock.clone(), EngineOptions::default()).await;
    configure(&engine, open, &[AGENT]).await;
    // The module e-mails transcripts (O2).
    let mut settings = ModuleSettings::named("Sales");
    settings.alias = "sales".into();
    settings.routing = Some(QUEUE);
    settings.transcript_email = true;
    engine
        .handle::<chat_core::config::ModuleDecider>(
            &MODULE.stream_name(),
            &AdminCommand::new(ADMIN, ModuleCommand::Update { settings }),
        )
        .await
        .unwrap()
        .expect("module updated");
    Outbox::set_settings(&**engine.store(), &outbox_settings(), clock_now(&clock))
        .await
        .expect("outbox settings");
    let smtp = SmtpListener::start().await;
    let mut outbox = Outbox::new(
        engine.store().clone(),
        engine.codec().clone(),
        engine.clock().clone(),
        OutboxOptions {
            smtp: Some(SmtpConfig::plain("127.0.0.1", smtp.port())),
            retry: RetryPolicy {
                attempts_max: 3,
                backoff_initial_ms: 0,
                backoff_max_ms: 0,
            },
            send_timeout_ms: 5_000,
            ..OutboxOptions::default()
        },
    )
    .expect("options")
    .spawn(engine.shutdown_signal());

    if open {
        online(&engine, AGENT, 3).await;
    }
    let chat = new_chat(1);
    engine.start_chat(chat.clone()).await.unwrap().unwrap();
    if open {
        engine.settle().await.unwrap();
        let state = chat_state(&engine, chat.chat).await;
        assert_eq!(state.agent, Some(AGENT), "routed by the engine");
        for (n, (author, text)) in [
            (Party::Visitor, "Where is my order?"),
            (Party::Agent(AGENT), "It ships today."),
        ]
        .into_iter()
        .enumerate()
        {
            engine
                .chat(
                    chat.chat,
                    ChatCommand::PostMessage {
                        command_id: CommandId::from_u128(0x6e55_0000 + n as u128),
                        message_id: MessageId::from_u128(0x6e55_0000 + n as u128),
                        author,
                        body: MessageBody::text(text),
                    },
                )
                .await
                .unwrap()
                .unwrap();
        }
        engine
            .chat(
                chat.chat,
                ChatCommand::End {
                    command_id: CommandId::from_u128(0xe4d),
                    by: EndedBy::Agent(AGENT),
                },
            )
            .await
            .unwrap()
            .unwrap();
    }
    engine.settle().await.unwrap();
    let head = engine.store().head_position().await.unwrap();
    let stats = tokio::time::timeout(WAIT, outbox.idle_at(head))
        .await
        .expect("idle in time")
        .expect("running");
    assert_eq!(stats.delivered, 1);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "exactly one mail");
    let visitor = chat.contact_email.clone().expect("e-mail");
    if open {
        assert_eq!(mails[0].recipients, vec![visitor]);
        assert_eq!(
            mails[0].header("Subject").as_deref(),
            Some("Transcript of your chat")
        );
        let body = mails[0].body();
        assert!(body.contains("You: Where is my order?"), "{body}");
        assert!(body.contains("Agent: It ships today."), "{body}");
    } else {
        assert_eq!(mails[0].recipients, vec!["team@shop.example".to_owned()]);
        assert_eq!(mails[0].header("Reply-To"), Some(visitor));
    }
    engine.shutdown().await;
    outbox.join().await.expect("clean stop");
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    drop(engine);
    drop(store);
    backend.clean_up().await;
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    chat_service::engine::Clock::now(clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_a_chat_outside_hours_goes_offline_and_its_mail_reaches_smtp_via_the_engine() {
    o1_o2_through_the_engine(Backend::sled(), false).await;
    if let Some(backend) = Backend::postgres() {
        o1_o2_through_the_engine(backend, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_a_chat_routed_answered_and_ended_by_the_engine_gets_one_transcript() {
    o1_o2_through_the_engine(Backend::sled(), true).await;
    if let Some(backend) = Backend::postgres() {
        o1_o2_through_the_engine(backend, true).await;
    }
}
