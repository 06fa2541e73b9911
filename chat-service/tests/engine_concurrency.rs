//! R2 under concurrency: two engines on one store (one PostgreSQL database, or one sled store
//! shared in-process), 200 chats started concurrently against 5 agents of capacity 3. The log is
//! folded position by position: never more than 3 chats held by an agent, never a chat with two
//! agents, and at the end every chat active or waiting, with every agent full.

mod engine_common;

use chat_core::agent::AgentEvent;
use chat_core::conversation::{ChatEvent, Phase};
use chat_core::{AgentId, ChatId};
use chat_service::engine::{Codec, DomainEvent, EngineOptions, ManualClock};
use chat_store::READ_COUNT_MAX;
use engine_common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const AGENTS: u128 = 5;
const CAPACITY: u32 = 3;
const CHATS: u128 = 200;

async fn r2_two_engines_never_exceed_capacity_nor_double_assign(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = backend.open().await;
    let second_store = match &backend {
        // sled allows one opener per directory: the second engine shares the store.
        Backend::Sled(_) => store.clone(),
        Backend::Postgres(..) => backend.open().await,
    };
    let agents: Vec<AgentId> = (1..=AGENTS).map(|n| AgentId::from_u128(0xa0 + n)).collect();
    let one = start(store.clone(), clock.clone(), EngineOptions::default()).await;
    configure(&one, true, &agents).await;
    for agent in &agents {
        online(&one, *agent, CAPACITY).await;
    }
    let two = start(second_store, clock.clone(), EngineOptions::default()).await;

    let mut tasks = Vec::new();
    for n in 1..=CHATS {
        let engine = if n % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            engine.start_chat(new_chat(n)).await.unwrap().unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    one.settle().await.unwrap();
    two.settle().await.unwrap();
    one.settle().await.unwrap();

    // Fold the whole log, checking the invariants at every position.
    let codec = Codec::default();
    let mut held: BTreeMap<AgentId, BTreeSet<ChatId>> = BTreeMap::new();
    let mut holder: BTreeMap<ChatId, AgentId> = BTreeMap::new();
    let mut position = 0;
    loop {
        let page = store.read_all(position + 1, READ_COUNT_MAX).await.unwrap();
        let Some(last) = page.last() else { break };
        position = last.global_position;
        for recorded in &page {
            match codec.decode(recorded).unwrap() {
                DomainEvent::Agent { agent, event } => match event {
                    AgentEvent::ChatClaimed { chat, .. } => {
                        let chats = held.entry(agent).or_default();
                        chats.insert(chat);
                        assert!(
                            chats.len() <= CAPACITY as usize,
                            "agent {agent:?} holds {} chats at position {}",
                            chats.len(),
                            recorded.global_position
                        );
                    }
                    AgentEvent::ChatReleased { chat, .. } => {
                        held.entry(agent).or_default().remove(&chat);
                    }
                    _ => {}
                },
                DomainEvent::Chat { chat, event } => match event {
                    ChatEvent::AgentAssigned { agent, .. } => {
                        let previous = holder.insert(chat, agent);
                        assert_eq!(
                            previous, None,
                            "chat {chat:?} assigned to {agent:?} while held by {previous:?} at position {}",
                            recorded.global_position
                        );
                    }
                    ChatEvent::EpisodeEnded { .. } | ChatEvent::ChatQueued { .. } => {
                        holder.remove(&chat);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let mut phases: BTreeMap<Phase, usize> = BTreeMap::new();
    for n in 1..=CHATS {
        let state = chat_state(&one, new_chat(n).chat).await;
        assert!(
            matches!(state.phase, Phase::Active | Phase::Queued | Phase::Ended),
            "chat {n} is {:?}",
            state.phase
        );
        *phases.entry(state.phase).or_default() += 1;
        if let Some(agent) = state.agent {
            assert_eq!(holder.get(&state.record.unwrap().chat), Some(&agent));
        }
    }
    let full = (AGENTS as usize) * CAPACITY as usize;
    assert_eq!(phases.get(&Phase::Active), Some(&full), "{phases:?}");
    assert_eq!(phases.get(&Phase::Queued), Some(&(CHATS as usize - full)));
    for agent in &agents {
        assert_eq!(held[agent].len(), CAPACITY as usize);
        assert_eq!(
            agent_state(&two, *agent).await.chats.len(),
            CAPACITY as usize
        );
    }
    assert_eq!(one.board().live().waiting().len(), CHATS as usize - full);
    assert_eq!(two.board(), one.board(), "both engines' X1 agree");
    one.shutdown().await;
    two.shutdown().await;
    assert!(one.failures().is_empty(), "{:?}", one.failures());
    assert!(two.failures().is_empty(), "{:?}", two.failures());
    backend.clean_up().await;
}
on_every_store!(r2_two_engines_never_exceed_capacity_nor_double_assign);
