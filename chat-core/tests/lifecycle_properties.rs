//! Property tests over random command sequences (C8, C9, C6): replaying the produced events
//! reproduces the live state exactly (also after MessagePack); versions strictly increase; an
//! ended episode has exactly one disposition; no command is accepted in a state that forbids it
//! (checked against an independent table); a repeated command id never adds events.
//!
//! 10,000 cases when `CI=true`, 500 otherwise (`lifecycle_support::cases`).

mod lifecycle_support;

use chat_core::conversation::*;
use chat_core::{AgentId, CaseId, Decider, MessageId};
use chrono::{DateTime, TimeDelta, Utc};
use lifecycle_support::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const AGENTS: [AgentId; 3] = [AGENT_A, AGENT_B, AgentId::from_u128(12)];

/// An abstract command; ids and agents are small indexes so that collisions (retries, double
/// assignment, the wrong agent) happen often.
#[derive(Clone, Debug)]
enum Op {
    Start {
        within_hours: bool,
        at_capacity: bool,
    },
    NoAgent,
    Assign {
        agent: usize,
        manual: bool,
    },
    Post {
        author: u8,
        message: u8,
        special: bool,
    },
    TransferToAgent {
        by: usize,
        to: usize,
    },
    TransferToQueue {
        by: usize,
    },
    End {
        by_agent: Option<usize>,
    },
    Tick,
    Rate {
        score: u8,
    },
    Resume {
        blocked: bool,
        within_hours: bool,
    },
    Block {
        by: usize,
    },
    Convert {
        by: usize,
    },
    Redact {
        message: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0..AGENTS.len();
    prop_oneof![
        2 => (any::<bool>(), any::<bool>()).prop_map(|(w, c)| Op::Start {
            within_hours: w || c,
            at_capacity: c && !w
        }),
        1 => Just(Op::NoAgent),
        3 => (agent.clone(), any::<bool>()).prop_map(|(agent, manual)| Op::Assign { agent, manual }),
        6 => (0..5u8, 0..30u8, prop::bool::weighted(0.2))
            .prop_map(|(author, message, special)| Op::Post { author, message, special }),
        1 => (agent.clone(), agent.clone()).prop_map(|(by, to)| Op::TransferToAgent { by, to }),
        1 => agent.clone().prop_map(|by| Op::TransferToQueue { by }),
        2 => prop::option::weighted(0.5, agent.clone()).prop_map(|by_agent| Op::End { by_agent }),
        2 => Just(Op::Tick),
        1 => (0..7u8).prop_map(|score| Op::Rate { score }),
        2 => (prop::bool::weighted(0.1), prop::bool::weighted(0.9))
            .prop_map(|(blocked, within_hours)| Op::Resume { blocked, within_hours }),
        1 => agent.clone().prop_map(|by| Op::Block { by }),
        1 => agent.clone().prop_map(|by| Op::Convert { by }),
        1 => (0..30u8).prop_map(|message| Op::Redact { message }),
    ]
}

fn admission(within_hours: bool, at_capacity: bool, blocked: bool) -> Admission {
    Admission {
        within_working_hours: within_hours,
        open_chats: if at_capacity { 10 } else { 3 },
        open_chats_max: Some(10),
        contact_blocked: blocked,
    }
}

fn to_command(op: &Op, id: u8, chat_settings: &ChatSettings, email: bool) -> ChatCommand {
    let command_id = cmd(u128::from(id));
    match *op {
        Op::Start {
            within_hours,
            at_capacity,
        } => {
            let mut start = start_with(
                chat_settings.clone(),
                admission(within_hours, at_capacity, false),
            );
            start.command_id = command_id;
            if !email {
                start.contact_email = None;
            }
            ChatCommand::Start(Box::new(start))
        }
        Op::NoAgent => ChatCommand::NoAgentAvailable {
            command_id,
            case_id: CaseId::from_u128(u128::from(id)),
            case_template: BTreeMap::new(),
        },
        Op::Assign { agent, manual } => ChatCommand::Assign {
            command_id,
            agent: AGENTS[agent],
            manual_pick: manual,
        },
        Op::Post {
            author,
            message,
            special,
        } => {
            let author = match author {
                0 | 1 => Party::Visitor,
                2 => Party::System,
                n => Party::Agent(AGENTS[usize::from(n - 3)]),
            };
            let body = if special {
                MessageBody {
                    quick_replies: vec!["yes".to_owned()],
                    ..MessageBody::text("pick one")
                }
            } else {
                MessageBody::text(format!("m{message}"))
            };
            ChatCommand::PostMessage {
                command_id,
                message_id: MessageId::from_u128(u128::from(message)),
                author,
                body,
            }
        }
        Op::TransferToAgent { by, to } => ChatCommand::TransferToAgent {
            command_id,
            by: AGENTS[by],
            to: AGENTS[to],
        },
        Op::TransferToQueue { by } => ChatCommand::TransferToQueue {
            command_id,
            by: AGENTS[by],
            queue: QUEUE,
        },
        Op::End { by_agent } => ChatCommand::End {
            command_id,
            by: by_agent.map_or(EndedBy::Visitor, |a| EndedBy::Agent(AGENTS[a])),
        },
        Op::Tick => ChatCommand::Tick { command_id },
        Op::Rate { score } => ChatCommand::Rate {
            command_id,
            score,
            comment: None,
        },
        Op::Resume {
            blocked,
            within_hours,
        } => ChatCommand::Resume {
            command_id,
            admission: admission(within_hours, false, blocked),
        },
        Op::Block { by } => ChatCommand::Block {
            command_id,
            by: AGENTS[by],
        },
        Op::Convert { by } => ChatCommand::ConvertToCase {
            command_id,
            by: AGENTS[by],
            case_id: CaseId::from_u128(1000 + u128::from(id)),
            template: BTreeMap::new(),
        },
        Op::Redact { message } => ChatCommand::Redact {
            command_id,
            by: AGENT_A,
            message_id: MessageId::from_u128(u128::from(message)),
        },
    }
}

/// The independent table of what each phase allows (docs/LIFECYCLE.md, "Allowed commands").
/// Written from the document, not from `decide`: it knows phases, who holds the chat, whether the
/// episode was rated or had an agent, whether the visitor is blocked — nothing else.
fn allowed(state: &ChatState, op: &Op) -> bool {
    use Phase::*;
    let phase = state.phase;
    let open = matches!(phase, Queued | AsyncOpen | Active);
    let holds = |agent: usize| phase == Active && state.agent == Some(AGENTS[agent]);
    match *op {
        Op::Start { .. } => phase == NotStarted,
        Op::NoAgent => phase == Queued,
        Op::Assign { .. } => matches!(phase, Queued | AsyncOpen),
        Op::Post { author, .. } => match author {
            0..=2 => open,
            n => holds(usize::from(n - 3)),
        },
        Op::TransferToAgent { by, to } => holds(by) && by != to,
        Op::TransferToQueue { by } => holds(by),
        Op::End { by_agent: None } => open,
        Op::End { by_agent: Some(a) } => holds(a),
        Op::Tick => matches!(phase, Queued | Active),
        Op::Rate { .. } => phase == Ended && !state.rated && state.episode_agent.is_some(),
        Op::Resume { blocked, .. } => phase == Ended && !blocked && !state.blocked,
        Op::Block { .. } => phase != NotStarted && !state.blocked,
        Op::Convert { .. } => open,
        Op::Redact { .. } => phase != NotStarted,
    }
}

fn check_dispositions(events: &[ChatEvent], state: &ChatState) -> Result<(), TestCaseError> {
    let mut per_episode: BTreeMap<u32, usize> = BTreeMap::new();
    for event in events {
        if let ChatEvent::EpisodeEnded { episode, .. } = event {
            *per_episode.entry(*episode).or_default() += 1;
        }
    }
    for episode in 1..state.episode {
        prop_assert_eq!(
            per_episode.get(&episode).copied(),
            Some(1),
            "ended episode {} must have exactly one disposition",
            episode
        );
    }
    let current = per_episode.get(&state.episode).copied().unwrap_or(0);
    prop_assert_eq!(current, usize::from(state.phase == Phase::Ended));
    prop_assert_eq!(state.disposition.is_some(), state.phase == Phase::Ended);
    Ok(())
}

fn settings_strategy() -> impl Strategy<Value = (ChatSettings, bool)> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(async_chatting, case, timeout, transcript, email)| {
            (
                ChatSettings {
                    async_chatting,
                    case_when_no_agent: case,
                    unattended_timeout_s: timeout.then_some(TIMEOUT_S),
                    transcript_email: transcript,
                    attachment_bytes_max: 1024,
                },
                email,
            )
        })
}

type Step = (Op, u8, i64);

/// Runs one sequence, checking every invariant on the way; returns the log and the phases seen.
fn check_sequence(
    chat_settings: &ChatSettings,
    email: bool,
    steps: &[Step],
) -> Result<(Vec<ChatEvent>, BTreeSet<Phase>), TestCaseError> {
    let mut live = ChatState::default();
    let mut phases = BTreeSet::new();
    let mut log: Vec<ChatEvent> = Vec::new();
    let mut now: DateTime<Utc> = t(0);
    // Start first most of the time, so sequences reach the interesting states.
    let mut steps = steps.to_vec();
    if steps.len() > 1 && !matches!(steps[0].0, Op::Start { .. }) {
        steps.insert(
            0,
            (
                Op::Start {
                    within_hours: true,
                    at_capacity: false,
                },
                47,
                0,
            ),
        );
    }
    for (op, id, dt_s) in &steps {
        now += TimeDelta::seconds(*dt_s);
        let command = to_command(op, *id, chat_settings, email);
        let seen_before = live.accepted_commands.contains(&command.command_id());
        let deadline_before = next_deadline(&live);
        let result = Conversation::decide(&live, &command, now);
        match result {
            Ok(events) if events.is_empty() => {
                prop_assert!(seen_before, "only a retry may record nothing: {:?}", op);
            }
            Ok(events) => {
                prop_assert!(!seen_before, "a repeated command id added events: {:?}", op);
                prop_assert!(
                    allowed(&live, op),
                    "{:?} accepted in phase {:?}, which forbids it",
                    op,
                    live.phase
                );
                if let Op::Tick = op {
                    prop_assert!(deadline_before.is_some_and(|d| now >= d));
                }
                for event in &events {
                    prop_assert_eq!(event.command_id(), command.command_id());
                    let version = live.version;
                    Conversation::evolve(&mut live, event);
                    prop_assert!(live.version > version, "versions strictly increase");
                }
                // C9: the same command again records nothing.
                prop_assert_eq!(Conversation::decide(&live, &command, now), Ok(vec![]));
                log.extend(events);
            }
            Err(_) => {
                prop_assert!(!seen_before, "a retry must not be refused: {:?}", op);
            }
        }
        phases.insert(live.phase);
        prop_assert_eq!(live.version, log.len() as u64);
        check_dispositions(&log, &live)?;
    }
    // C8: replaying the log reproduces the live state exactly, also after MessagePack.
    let replayed = Conversation::replay(&log);
    prop_assert_eq!(&replayed, &live);
    let decoded: Vec<ChatEvent> = log
        .iter()
        .map(|e| rmp_serde::from_slice(&rmp_serde::to_vec_named(e).unwrap()).unwrap())
        .collect();
    let restarted = Conversation::replay(&decoded);
    prop_assert_eq!(&restarted, &live);
    // The same replay folding owned events (moving record and messages instead of cloning).
    let mut owned = ChatState::default();
    for event in decoded {
        Conversation::evolve_owned(&mut owned, event);
    }
    prop_assert_eq!(&owned, &live);
    prop_assert_eq!(next_deadline(&restarted), next_deadline(&live));
    let ids: BTreeSet<_> = log.iter().map(ChatEvent::command_id).collect();
    prop_assert_eq!(ids, live.accepted_commands.clone());
    Ok((log, phases))
}

fn sequence() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((op(), 0..48u8, 0..400i64), 1..48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn c8_c9_random_command_sequences_keep_every_invariant(
        (chat_settings, email) in settings_strategy(),
        steps in sequence(),
    ) {
        check_sequence(&chat_settings, email, &steps)?;
    }
}

/// Guards the property above against a generator that stops reaching the interesting states:
/// 2,000 deterministic samples must visit every phase, record every event type and end episodes
/// with every disposition.
#[test]
fn c8_the_generator_reaches_every_phase_event_and_disposition() {
    use chat_core::EventKind;
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (settings_strategy(), sequence());
    let mut phases = BTreeSet::new();
    let mut types = BTreeSet::new();
    let mut dispositions = BTreeSet::new();
    for _ in 0..2000 {
        let ((chat_settings, email), steps) =
            strategy.new_tree(&mut runner).expect("tree").current();
        let (log, seen) = check_sequence(&chat_settings, email, &steps).expect("invariants hold");
        phases.extend(seen);
        types.extend(log.iter().map(EventKind::event_type));
        dispositions.extend(log.iter().filter_map(|e| match e {
            ChatEvent::EpisodeEnded { disposition, .. } => Some(match disposition {
                Disposition::Managed => "managed",
                Disposition::Offline { .. } => "offline",
                Disposition::Unmanaged => "unmanaged",
                Disposition::Timeout => "timeout",
                Disposition::Abandoned => "abandoned",
                Disposition::Blocked => "blocked",
                Disposition::Case { .. } => "case",
            }),
            _ => None,
        }));
    }
    assert_eq!(phases.len(), 5, "phases reached: {phases:?}");
    assert_eq!(types.len(), 13, "event types reached: {types:?}");
    assert_eq!(
        dispositions.len(),
        7,
        "dispositions reached: {dispositions:?}"
    );
}
