//! A1, R2: the agent presence aggregate. Given/when/then for every transition and rejection, and
//! a property test that capacity and presence rules hold over random command sequences and that
//! the state is the fold of its events.

mod lifecycle_support;

use chat_core::agent::{Agent, AgentCommand, AgentEvent, AgentRejection, AgentState, Presence};
use chat_core::{ChatId, Decider, given};
use lifecycle_support::*;
use proptest::prelude::*;

const CHAT_1: ChatId = ChatId::from_u128(101);
const CHAT_2: ChatId = ChatId::from_u128(102);

fn presence(p: Presence) -> AgentCommand {
    AgentCommand::SetPresence {
        agent: AGENT_A,
        presence: p,
    }
}

fn claim(chat: ChatId) -> AgentCommand {
    AgentCommand::Claim {
        agent: AGENT_A,
        chat,
    }
}

/// Agent A online with capacity 1, holding nothing.
fn online_with_capacity_one() -> Vec<AgentEvent> {
    agent_joined(AGENT_A, 1, Presence::Online)
}

#[test]
fn a1_an_agent_goes_online_away_and_offline() {
    let state = given::<Agent>(&[])
        .when(&presence(Presence::Online), t(5))
        .then_events(&[AgentEvent::PresenceChanged {
            agent: AGENT_A,
            at: t(5),
            presence: Presence::Online,
        }]);
    assert_eq!(state.presence, Presence::Online);
    assert_eq!(state.presence_since, Some(t(5)));
    for p in [Presence::Away, Presence::Offline] {
        given::<Agent>(&online_with_capacity_one())
            .when(&presence(p), t(9))
            .then_events(&[AgentEvent::PresenceChanged {
                agent: AGENT_A,
                at: t(9),
                presence: p,
            }]);
    }
}

#[test]
fn a1_setting_the_same_presence_or_capacity_records_nothing() {
    given::<Agent>(&online_with_capacity_one())
        .when(&presence(Presence::Online), t(9))
        .then_events(&[]);
    given::<Agent>(&online_with_capacity_one())
        .when(
            &AgentCommand::SetCapacity {
                agent: AGENT_A,
                capacity: 1,
            },
            t(9),
        )
        .then_events(&[]);
}

#[test]
fn a1_only_online_agents_take_chats() {
    let mut away = online_with_capacity_one();
    away.push(AgentEvent::PresenceChanged {
        agent: AGENT_A,
        at: t(2),
        presence: Presence::Away,
    });
    given::<Agent>(&away)
        .when(&claim(CHAT_1), t(3))
        .then_rejected(AgentRejection::NotOnline {
            presence: Presence::Away,
        });
    given::<Agent>(&[])
        .when(&claim(CHAT_1), t(3))
        .then_rejected(AgentRejection::NotOnline {
            presence: Presence::Offline,
        });
}

#[test]
fn r2_a_claim_beyond_capacity_is_refused() {
    let mut history = online_with_capacity_one();
    history.push(AgentEvent::ChatClaimed {
        agent: AGENT_A,
        at: t(2),
        chat: CHAT_1,
    });
    let rejection = given::<Agent>(&history)
        .when(&claim(CHAT_2), t(3))
        .result()
        .expect_err("refused");
    assert_eq!(
        rejection,
        AgentRejection::AtCapacity {
            held: 1,
            capacity: 1
        }
    );
    assert_eq!(
        rejection.to_string(),
        "agent is at capacity: holds 1 of 1 chats"
    );
}

#[test]
fn a1_claim_and_release_are_recorded_and_idempotent() {
    let state = given::<Agent>(&online_with_capacity_one())
        .when(&claim(CHAT_1), t(2))
        .then_events(&[AgentEvent::ChatClaimed {
            agent: AGENT_A,
            at: t(2),
            chat: CHAT_1,
        }]);
    assert!(state.chats.contains(&CHAT_1));
    let mut history = online_with_capacity_one();
    history.push(AgentEvent::ChatClaimed {
        agent: AGENT_A,
        at: t(2),
        chat: CHAT_1,
    });
    // A retried claim of a held chat records nothing (and is not refused for capacity).
    given::<Agent>(&history)
        .when(&claim(CHAT_1), t(3))
        .then_events(&[]);
    let release = AgentCommand::Release {
        agent: AGENT_A,
        chat: CHAT_1,
    };
    let state =
        given::<Agent>(&history)
            .when(&release, t(4))
            .then_events(&[AgentEvent::ChatReleased {
                agent: AGENT_A,
                at: t(4),
                chat: CHAT_1,
            }]);
    assert!(state.chats.is_empty());
    given::<Agent>(&online_with_capacity_one())
        .when(&release, t(4))
        .then_events(&[]);
}

#[test]
fn r2_lowering_capacity_keeps_held_chats_but_blocks_new_claims() {
    let mut history = online_with_capacity_one();
    history.extend([
        AgentEvent::CapacitySet {
            agent: AGENT_A,
            at: t(2),
            capacity: 2,
        },
        AgentEvent::ChatClaimed {
            agent: AGENT_A,
            at: t(3),
            chat: CHAT_1,
        },
        AgentEvent::ChatClaimed {
            agent: AGENT_A,
            at: t(4),
            chat: CHAT_2,
        },
        AgentEvent::CapacitySet {
            agent: AGENT_A,
            at: t(5),
            capacity: 1,
        },
    ]);
    let state = Agent::replay(&history);
    assert_eq!(state.chats.len(), 2);
    assert!(!state.can_take_chat());
    given::<Agent>(&history)
        .when(&claim(ChatId::from_u128(103)), t(6))
        .then_rejected(AgentRejection::AtCapacity {
            held: 2,
            capacity: 1,
        });
}

fn agent_command() -> impl Strategy<Value = AgentCommand> {
    prop_oneof![
        prop_oneof![
            Just(Presence::Online),
            Just(Presence::Away),
            Just(Presence::Offline)
        ]
        .prop_map(presence),
        (0..5u32).prop_map(|capacity| AgentCommand::SetCapacity {
            agent: AGENT_A,
            capacity
        }),
        (0..6u128).prop_map(|c| claim(ChatId::from_u128(c))),
        (0..6u128).prop_map(|c| AgentCommand::Release {
            agent: AGENT_A,
            chat: ChatId::from_u128(c)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a1_r2_capacity_and_presence_hold_and_state_is_the_fold(
        commands in prop::collection::vec(agent_command(), 1..40),
    ) {
        let mut live = AgentState::default();
        let mut log = Vec::new();
        for (i, command) in commands.iter().enumerate() {
            let before = live.clone();
            if let Ok(events) = Agent::decide(&live, command, t(i as i64)) {
                for event in &events {
                    if let AgentEvent::ChatClaimed { .. } = event {
                        prop_assert_eq!(before.presence, Presence::Online);
                        prop_assert!(before.chats.len() < before.capacity as usize);
                    }
                    Agent::evolve(&mut live, event);
                }
                // Retrying the same command records nothing.
                prop_assert_eq!(Agent::decide(&live, command, t(i as i64)), Ok(vec![]));
                log.extend(events);
            }
            prop_assert_eq!(live.version, log.len() as u64);
        }
        prop_assert_eq!(Agent::replay(&log), live);
    }
}
