//! End-to-end journeys through the engine on real stores (sled, and PostgreSQL when
//! `CHAT_TEST_POSTGRES_URL` is set): offline outside hours (C2), unmanaged when nobody is
//! online (C3), routed, answered and ended (C4, C6, X1–X3), the unattended timeout across a
//! restart (C5, E3), a resume back to the same agent (C7, R3), retries across a restart (C9),
//! and projections resumed from checkpoints equal to a fresh rebuild.

mod engine_common;

use chat_core::AgentId;
use chat_core::FieldValue;
use chat_core::config::{
    AdminCommand, ModuleCommand, ModuleDecider, QueueCommand, QueueDecider, QueuePolicy,
    RepeatMode, Selection,
};
use chat_core::conversation::{
    ChatCommand, ChatEvent, Disposition, EndedBy, MessageBody, OfflineReason, Party, Phase,
};
use chat_core::{CommandId, MessageId};
use chat_service::engine::{
    Board, ChatQuery, EngineOptions, ManualClock, PastChats, Statistics, rebuild,
};
use chrono::TimeDelta;
use engine_common::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const ANN: AgentId = AgentId::from_u128(0xa1);
const BOB: AgentId = AgentId::from_u128(0xb2);

fn post(n: u128, author: Party, text: &str) -> ChatCommand {
    ChatCommand::PostMessage {
        command_id: CommandId::from_u128(0x9057_0000 + n),
        message_id: MessageId::from_u128(0x3e55_0000 + n),
        author,
        body: MessageBody::text(text),
    }
}

async fn c2_outside_working_hours_goes_offline(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(backend.open().await, clock, EngineOptions::default()).await;
    configure(&engine, false, &[ANN]).await;
    online(&engine, ANN, 2).await;
    let chat = new_chat(1);
    let outcome = engine.start_chat(chat.clone()).await.unwrap().unwrap();
    assert!(matches!(
        outcome.events.last(),
        Some(ChatEvent::EpisodeEnded {
            disposition: Disposition::Offline {
                reason: OfflineReason::OutsideWorkingHours
            },
            ..
        })
    ));
    engine.settle().await.unwrap();
    let state = chat_state(&engine, chat.chat).await;
    assert_eq!(state.phase, Phase::Ended);
    assert_eq!(state.agent, None, "an offline chat is never routed");
    assert!(engine.board().live().waiting().is_empty());
    let offline = engine.past_chats();
    let found = offline.search(&ChatQuery {
        disposition: Some(Disposition::Offline {
            reason: OfflineReason::OutsideWorkingHours,
        }),
        ..ChatQuery::default()
    });
    assert_eq!(found.len(), 1);
    assert_eq!(engine.statistics().by_alias()["sales"].ended["Offline"], 1);
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c2_outside_working_hours_goes_offline);

async fn c4_a_chat_in_hours_is_routed_answered_and_ended(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(
        backend.open().await,
        clock.clone(),
        EngineOptions::default(),
    )
    .await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 1).await;
    let chat = new_chat(1);
    engine.start_chat(chat.clone()).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    let state = chat_state(&engine, chat.chat).await;
    assert_eq!(state.phase, Phase::Active, "routed to the online agent");
    assert_eq!(state.agent, Some(ANN));
    assert!(agent_state(&engine, ANN).await.chats.contains(&chat.chat));
    assert_eq!(engine.board().live().active().len(), 1);

    clock.advance(TimeDelta::seconds(20));
    engine
        .chat(
            chat.chat,
            post(1, Party::Agent(ANN), "Hello, how can I help?"),
        )
        .await
        .unwrap()
        .unwrap();
    clock.advance(TimeDelta::seconds(5));
    engine
        .chat(chat.chat, post(2, Party::Visitor, "My parcel is late"))
        .await
        .unwrap()
        .unwrap();
    clock.advance(TimeDelta::seconds(30));
    let end = ChatCommand::End {
        command_id: CommandId::from_u128(0xe7d),
        by: EndedBy::Agent(ANN),
    };
    engine.chat(chat.chat, end).await.unwrap().unwrap();
    engine.settle().await.unwrap();

    let state = chat_state(&engine, chat.chat).await;
    assert_eq!(state.disposition, Some(Disposition::Managed));
    assert!(
        agent_state(&engine, ANN).await.chats.is_empty(),
        "the end released the agent in the same append"
    );
    assert!(engine.board().live().active().is_empty());
    let past = engine.past_chats();
    let by_text = past.search(&ChatQuery {
        text: Some("PARCEL".into()),
        agent: Some(ANN),
        ..ChatQuery::default()
    });
    assert_eq!(by_text.len(), 1);
    assert_eq!(by_text[0].chat, chat.chat);
    assert!(
        past.search(&ChatQuery {
            agent: Some(BOB),
            ..ChatQuery::default()
        })
        .is_empty()
    );
    let stats = engine.statistics().agent(ANN);
    assert_eq!(stats.chats_handled, 1);
    assert_eq!(stats.first_response_s_mean(), Some(20.0));
    assert_eq!(stats.handling_s_mean(), Some(55.0));
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c4_a_chat_in_hours_is_routed_answered_and_ended);

async fn c5_an_unattended_chat_times_out_also_across_a_restart(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(
        backend.open().await,
        clock.clone(),
        EngineOptions::default(),
    )
    .await;
    configure(&engine, true, &[ANN]).await;
    // The only agent is online without room: both chats wait (nobody online would be C3).
    online(&engine, ANN, 0).await;
    let (live, restarted) = (new_chat(1), new_chat(2));
    engine.start_chat(live.clone()).await.unwrap().unwrap();
    clock.advance(TimeDelta::seconds(30));
    engine.start_chat(restarted.clone()).await.unwrap().unwrap();
    clock.advance(TimeDelta::seconds(i64::from(TIMEOUT_S) - 30));
    engine.settle().await.unwrap();
    let state = chat_state(&engine, live.chat).await;
    assert_eq!(
        state.disposition,
        Some(Disposition::Timeout),
        "the live timer fired"
    );
    assert_eq!(
        chat_state(&engine, restarted.chat).await.phase,
        Phase::Queued
    );

    // Crash-like stop before the second deadline, then time passes while nothing runs.
    engine.shutdown().await;
    drop(engine);
    clock.advance(TimeDelta::seconds(3600));
    let store = backend.open().await;
    let engine = start(store.clone(), clock.clone(), EngineOptions::default()).await;
    engine.settle().await.unwrap();
    let state = chat_state(&engine, restarted.chat).await;
    assert_eq!(
        state.disposition,
        Some(Disposition::Timeout),
        "the deadline was rebuilt from the log and the overdue tick fired"
    );
    let ends = chat_events(&store, restarted.chat)
        .await
        .into_iter()
        .filter(|e| matches!(e, ChatEvent::EpisodeEnded { .. }))
        .count();
    assert_eq!(ends, 1, "an overdue deadline fires once");
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c5_an_unattended_chat_times_out_also_across_a_restart);

async fn c3_a_chat_nobody_online_can_take_ends_unmanaged(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(backend.open().await, clock, EngineOptions::default()).await;
    configure(&engine, true, &[ANN]).await;
    let chat = new_chat(1);
    engine.start_chat(chat.clone()).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    let state = chat_state(&engine, chat.chat).await;
    assert_eq!(state.disposition, Some(Disposition::Unmanaged));
    assert_eq!(state.agent, None);
    assert!(engine.board().live().waiting().is_empty());
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c3_a_chat_nobody_online_can_take_ends_unmanaged);

async fn a6_nobody_online_makes_a_case_carrying_the_module_template(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = backend.open().await;
    let engine = start(store.clone(), clock, EngineOptions::default()).await;
    configure(&engine, true, &[ANN]).await;
    let module = MODULE.stream_name();
    let state = engine.state::<ModuleDecider>(&module).await.unwrap();
    let mut settings = state.module.expect("configured").settings;
    settings.case_when_no_agent = true;
    let template = BTreeMap::from([
        ("category".to_owned(), "chat".to_owned()),
        ("priority".to_owned(), "high".to_owned()),
    ]);
    for command in [
        ModuleCommand::Update { settings },
        ModuleCommand::SetCaseTemplate {
            template: template.clone(),
        },
    ] {
        engine
            .handle::<ModuleDecider>(&module, &AdminCommand::new(ADMIN, command))
            .await
            .unwrap()
            .unwrap();
    }
    let chat = new_chat(1);
    engine.start_chat(chat.clone()).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    let cases: Vec<_> = chat_events(&store, chat.chat)
        .await
        .into_iter()
        .filter_map(|e| match e {
            ChatEvent::CaseCreated { case, .. } => Some(case),
            _ => None,
        })
        .collect();
    assert_eq!(cases.len(), 1, "one case for the unattended chat");
    let expected: BTreeMap<String, FieldValue> = template
        .into_iter()
        .map(|(k, v)| (k, FieldValue::Text(v)))
        .collect();
    assert_eq!(cases[0].template, expected);
    assert_eq!(
        cases[0].requested_by, None,
        "nobody asked: no agent was available"
    );
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(a6_nobody_online_makes_a_case_carrying_the_module_template);

async fn c7_r3_a_resumed_chat_returns_to_the_same_online_agent(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(
        backend.open().await,
        clock.clone(),
        EngineOptions::default(),
    )
    .await;
    configure(&engine, true, &[ANN, BOB]).await;
    let policy = QueueCommand::SetPolicy {
        policy: QueuePolicy {
            selection: Selection::LongestIdle,
            repeat: RepeatMode::Same { wait_s: 300 },
        },
    };
    engine
        .handle::<QueueDecider>(&QUEUE.stream_name(), &AdminCommand::new(ADMIN, policy))
        .await
        .unwrap()
        .unwrap();
    online(&engine, ANN, 3).await;
    online(&engine, BOB, 3).await;
    let chat = new_chat(1);
    engine.start_chat(chat.clone()).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    let first = chat_state(&engine, chat.chat).await.agent.expect("routed");
    let other = if first == ANN { BOB } else { ANN };
    engine
        .chat(chat.chat, post(1, Party::Agent(first), "Hi"))
        .await
        .unwrap()
        .unwrap();
    let end = ChatCommand::End {
        command_id: CommandId::from_u128(0xe7d),
        by: EndedBy::Visitor,
    };
    engine.chat(chat.chat, end).await.unwrap().unwrap();
    clock.advance(TimeDelta::seconds(60));
    let resumed = engine
        .resume_chat(chat.chat, CommandId::from_u128(0x7e5))
        .await
        .unwrap()
        .unwrap();
    assert!(
        resumed
            .events
            .iter()
            .any(|e| matches!(e, ChatEvent::ChatQueued { .. })),
        "the resumed chat re-enters the queue"
    );
    engine.settle().await.unwrap();
    let state = chat_state(&engine, chat.chat).await;
    assert_eq!(state.episode, 2);
    assert_eq!(
        state.agent,
        Some(first),
        "same-agent policy: back to {first:?}, although {other:?} is idler"
    );
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c7_r3_a_resumed_chat_returns_to_the_same_online_agent);

async fn c9_e3_retries_after_a_restart_are_no_ops_and_projections_resume_from_checkpoints(
    backend: Backend,
) {
    let clock = Arc::new(ManualClock::new(t0()));
    let options = EngineOptions {
        checkpoint_interval_events: 3,
    };
    let engine = start(backend.open().await, clock.clone(), options.clone()).await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 5).await;
    for n in 1..=4 {
        engine.start_chat(new_chat(n)).await.unwrap().unwrap();
    }
    engine.settle().await.unwrap();
    let message = post(1, Party::Agent(ANN), "First answer");
    let chat = new_chat(1).chat;
    let first = engine.chat(chat, message.clone()).await.unwrap().unwrap();
    assert_eq!(first.events.len(), 1);
    engine.settle().await.unwrap();
    engine.shutdown().await;
    drop(engine);

    let store = backend.open().await;
    let engine = start(store.clone(), clock.clone(), options).await;
    let retry = engine.chat(chat, message).await.unwrap().unwrap();
    assert!(
        retry.events.is_empty(),
        "the retry is recognised after a restart (C9)"
    );
    let restart = engine.start_chat(new_chat(1)).await.unwrap().unwrap();
    assert!(restart.events.is_empty());
    engine.start_chat(new_chat(5)).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    let messages = chat_events(&store, chat)
        .await
        .into_iter()
        .filter(|e| matches!(e, ChatEvent::MessagePosted { .. }))
        .count();
    assert_eq!(messages, 1);
    let codec = engine.codec().clone();
    assert_eq!(
        engine.board(),
        rebuild::<Board>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        engine.past_chats(),
        rebuild::<PastChats>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        engine.statistics(),
        rebuild::<Statistics>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    assert_eq!(engine.board().live().active().len(), 5);
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(c9_e3_retries_after_a_restart_are_no_ops_and_projections_resume_from_checkpoints);
