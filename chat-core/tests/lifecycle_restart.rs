//! C5, C8, E4: what survives a restart. Every event variant round-trips through MessagePack with
//! named fields (the store's encoding), and the deadline of every state is the same whether the
//! state was folded live, rebuilt from the events, or rebuilt from events that went through
//! MessagePack.

mod lifecycle_support;

use chat_core::agent::{AgentEvent, Presence};
use chat_core::conversation::*;
use chat_core::{CaseId, ChatId, Decider, EventKind, FieldValue};
use chrono::{DateTime, Utc};
use lifecycle_support::*;
use std::collections::{BTreeMap, BTreeSet};

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let bytes = rmp_serde::to_vec_named(value).expect("encode");
    rmp_serde::from_slice(&bytes).expect("decode")
}

/// One history that holds every chat event variant at least once.
fn every_chat_event() -> Vec<ChatEvent> {
    let async_case = ChatSettings {
        async_chatting: true,
        ..settings()
    };
    let mut events = run(&[
        start_settings(async_case),
        ChatCommand::NoAgentAvailable {
            command_id: cmd(1),
            case_id: CaseId::from_u128(1),
            case_template: BTreeMap::new(),
        },
        say(2, Party::Visitor, "hello"),
        assign(3, AGENT_A),
        ChatCommand::PostMessage {
            command_id: cmd(4),
            message_id: msg(4),
            author: Party::Agent(AGENT_A),
            body: MessageBody {
                text: "answer".to_owned(),
                attachments: vec![chat_core::AttachmentMeta {
                    file_name: "a.pdf".to_owned(),
                    content_type: "application/pdf".to_owned(),
                    size_bytes: 10,
                    storage_key: "s3://a".to_owned(),
                }],
                quick_replies: vec!["ok".to_owned()],
                article: Some(Article {
                    title: "T".to_owned(),
                    link: Some("https://x".to_owned()),
                    body: Some("b".to_owned()),
                }),
                video_call_link: Some("https://v".to_owned()),
            },
        },
        ChatCommand::Redact {
            command_id: cmd(5),
            by: AGENT_A,
            message_id: msg(2),
        },
        end(6, EndedBy::Visitor),
        ChatCommand::Rate {
            command_id: cmd(7),
            score: 4,
            comment: None,
        },
        resume(8),
        ChatCommand::ConvertToCase {
            command_id: cmd(9),
            by: AGENT_B,
            case_id: CaseId::from_u128(2),
            template: BTreeMap::from([("k".to_owned(), FieldValue::Many(vec!["a".to_owned()]))]),
        },
        ChatCommand::Block {
            command_id: cmd(10),
            by: AGENT_B,
        },
    ]);
    // Offline start of another chat: the offline disposition with a reason.
    events.extend(run(&[ChatCommand::Start(Box::new(start_with(
        settings(),
        chat_core::conversation::Admission {
            open_chats: 5,
            open_chats_max: Some(5),
            ..open_module()
        },
    )))]));
    events
}

const CHAT_EVENT_TYPES: [&str; 13] = [
    "ChatStarted",
    "ChatQueued",
    "AsyncChattingStarted",
    "AgentAssigned",
    "MessagePosted",
    "AsyncReplyEmailRequested",
    "EpisodeEnded",
    "TranscriptEmailRequested",
    "ChatRated",
    "ChatResumed",
    "ContactBlocked",
    "CaseCreated",
    "MessageRedacted",
];

#[test]
fn e4_every_chat_event_variant_round_trips_through_messagepack() {
    let events = every_chat_event();
    let seen: BTreeSet<&str> = events.iter().map(EventKind::event_type).collect();
    assert_eq!(
        seen,
        CHAT_EVENT_TYPES.into_iter().collect(),
        "the sample covers every variant"
    );
    for event in &events {
        assert_eq!(&round_trip(event), event, "{}", event.event_type());
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn e4_every_agent_event_variant_round_trips_through_messagepack() {
    let events = [
        AgentEvent::PresenceChanged {
            agent: AGENT_A,
            at: t(1),
            presence: Presence::Away,
        },
        AgentEvent::CapacitySet {
            agent: AGENT_A,
            at: t(2),
            capacity: 3,
        },
        AgentEvent::ChatClaimed {
            agent: AGENT_A,
            at: t(3),
            chat: ChatId::from_u128(7),
        },
        AgentEvent::ChatReleased {
            agent: AGENT_A,
            at: t(4),
            chat: ChatId::from_u128(7),
        },
    ];
    let names: Vec<&str> = events.iter().map(EventKind::event_type).collect();
    assert_eq!(
        names,
        [
            "AgentPresenceChanged",
            "AgentCapacitySet",
            "AgentChatClaimed",
            "AgentChatReleased"
        ]
    );
    for event in &events {
        assert_eq!(&round_trip(event), event);
        assert_eq!(event.schema_version(), 1);
    }
}

#[test]
fn c8_the_state_itself_round_trips_and_equals_its_replay() {
    let events = every_chat_event();
    let state = Conversation::replay(&events[..events.len() - 2]);
    assert_eq!(round_trip(&state), state);
}

/// Folds the commands live (decide then evolve, as the engine does), then checks the deadline
/// three ways: live, rebuilt from the events, rebuilt from MessagePack-decoded events.
#[track_caller]
fn deadline_survives_restart(
    commands: &[(ChatCommand, DateTime<Utc>)],
    expected: Option<DateTime<Utc>>,
    phase: Phase,
) {
    let mut live = ChatState::default();
    let mut log = Vec::new();
    for (command, at) in commands {
        let events = Conversation::decide(&live, command, *at).expect("accepted");
        for event in &events {
            Conversation::evolve(&mut live, event);
        }
        log.extend(events);
    }
    assert_eq!(live.phase, phase);
    assert_eq!(next_deadline(&live), expected, "live deadline");
    let rebuilt = Conversation::replay(&log);
    assert_eq!(rebuilt, live);
    assert_eq!(next_deadline(&rebuilt), expected, "rebuilt deadline");
    let stored: Vec<Vec<u8>> = log
        .iter()
        .map(|e| rmp_serde::to_vec_named(e).expect("encode"))
        .collect();
    let decoded: Vec<ChatEvent> = stored
        .iter()
        .map(|b| rmp_serde::from_slice(b).expect("decode"))
        .collect();
    let restarted = Conversation::replay(&decoded);
    assert_eq!(restarted, live);
    assert_eq!(
        next_deadline(&restarted),
        expected,
        "deadline after restart"
    );
}

const TO: i64 = TIMEOUT_S as i64;

#[test]
fn c5_deadline_of_a_queued_chat_survives_restart() {
    deadline_survives_restart(&[(start(), t(0))], Some(t(TO)), Phase::Queued);
    // A visitor message while queued does not move the clock: queue entry is older.
    deadline_survives_restart(
        &[(start(), t(0)), (say(1, Party::Visitor, "hi"), t(50))],
        Some(t(TO)),
        Phase::Queued,
    );
}

#[test]
fn c5_deadline_of_an_active_chat_survives_restart() {
    let base = [(start(), t(0)), (assign(1, AGENT_A), t(40))];
    deadline_survives_restart(&base, Some(t(40 + TO)), Phase::Active);
    let mut answered = base.to_vec();
    answered.push((say(2, Party::Agent(AGENT_A), "hi"), t(60)));
    deadline_survives_restart(&answered, None, Phase::Active);
    let mut waiting = answered.clone();
    waiting.push((say(3, Party::Visitor, "q"), t(90)));
    waiting.push((say(4, Party::System, "note"), t(95)));
    waiting.push((say(5, Party::Visitor, "q2"), t(120)));
    deadline_survives_restart(&waiting, Some(t(90 + TO)), Phase::Active);
}

#[test]
fn c5_deadline_after_a_transfer_survives_restart() {
    let mut commands = vec![
        (start(), t(0)),
        (assign(1, AGENT_A), t(10)),
        (say(2, Party::Agent(AGENT_A), "hi"), t(20)),
    ];
    commands.push((
        ChatCommand::TransferToQueue {
            command_id: cmd(3),
            by: AGENT_A,
            queue: QUEUE,
        },
        t(30),
    ));
    deadline_survives_restart(&commands, Some(t(30 + TO)), Phase::Queued);
    commands.push((assign(4, AGENT_B), t(70)));
    commands.push((
        ChatCommand::TransferToAgent {
            command_id: cmd(5),
            by: AGENT_B,
            to: AGENT_A,
        },
        t(80),
    ));
    deadline_survives_restart(&commands, Some(t(80 + TO)), Phase::Active);
}

#[test]
fn c5_async_ended_resumed_and_empty_chats_keep_their_deadline_across_restart() {
    deadline_survives_restart(&[], None, Phase::NotStarted);
    let async_start = start_settings(ChatSettings {
        async_chatting: true,
        ..settings()
    });
    let no_agent = ChatCommand::NoAgentAvailable {
        command_id: cmd(1),
        case_id: CaseId::from_u128(1),
        case_template: BTreeMap::new(),
    };
    deadline_survives_restart(
        &[
            (async_start, t(0)),
            (no_agent, t(5)),
            (say(2, Party::Visitor, "later"), t(9)),
        ],
        None,
        Phase::AsyncOpen,
    );
    let ended = [
        (start(), t(0)),
        (assign(1, AGENT_A), t(10)),
        (end(2, EndedBy::Agent(AGENT_A)), t(20)),
    ];
    deadline_survives_restart(&ended, None, Phase::Ended);
    let mut resumed = ended.to_vec();
    resumed.push((resume(3), t(500)));
    deadline_survives_restart(&resumed, Some(t(500 + TO)), Phase::Queued);
    let mut timed_out = vec![(start(), t(0))];
    timed_out.push((tick(1), t(TO)));
    deadline_survives_restart(&timed_out, None, Phase::Ended);
}
