//! X1, X4, C8: the pure read models. The conversation view shows state, ordered messages with
//! redactions applied, participants, disposition and ratings; the live list shows waiting and
//! active chats and the agents' presence, folded from many streams.

mod lifecycle_support;

use chat_core::agent::{AgentEvent, Presence};
use chat_core::conversation::*;
use chat_core::projection::{ConversationView, LiveList, LiveStatus, Recorded};
use chat_core::{ChatId, Decider, given};
use lifecycle_support::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Two episodes: handled by A, rated, resumed, handled by B, a message redacted, ended by B.
fn two_episodes() -> Vec<ChatEvent> {
    let mut events = ended_chat();
    for (command, at) in [
        (
            ChatCommand::Rate {
                command_id: cmd(20),
                score: 5,
                comment: Some("great".to_owned()),
            },
            t(50),
        ),
        (resume(21), t(100)),
        (say(22, Party::Visitor, "my password is hunter2"), t(110)),
        (assign(23, AGENT_B), t(120)),
        (
            ChatCommand::Redact {
                command_id: cmd(24),
                by: AGENT_B,
                message_id: msg(22),
            },
            t(130),
        ),
        (
            say(25, Party::Agent(AGENT_B), "please never share it"),
            t(140),
        ),
        (end(26, EndedBy::Agent(AGENT_B)), t(150)),
    ] {
        let produced = given::<Conversation>(&events)
            .when(&command, at)
            .result()
            .expect("accepted");
        events.extend(produced);
    }
    events
}

#[test]
fn x4_the_view_shows_ordered_messages_with_redactions_applied() {
    let view = ConversationView::from_events(&two_episodes());
    let messages = view.messages();
    let texts: Vec<&str> = messages.iter().map(|m| m.body.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Hello?", "Hi, how can I help?", "", "please never share it"]
    );
    assert_eq!(
        messages[2].redaction,
        Some(Redaction {
            by: AGENT_B,
            at: t(130)
        }),
        "the audit keeps who and when"
    );
    assert_eq!(messages[2].author, Party::Visitor);
    assert_eq!(messages[2].episode, 2);
}

#[test]
fn x1_the_view_shows_state_participants_disposition_and_ratings() {
    let view = ConversationView::from_events(&two_episodes());
    assert_eq!(view.phase(), Phase::Ended);
    assert_eq!(view.disposition(), Some(Disposition::Managed));
    assert_eq!(view.state().episode, 2);
    assert_eq!(view.record().map(|r| r.chat), Some(CHAT));
    assert_eq!(
        view.participants(),
        &BTreeSet::from([Party::Visitor, Party::Agent(AGENT_A), Party::Agent(AGENT_B)])
    );
    assert_eq!(view.ratings().len(), 1);
    assert_eq!(view.ratings()[0].agent, AGENT_A);
    assert_eq!(view.ratings()[0].score, 5);
    assert_eq!(view.ratings()[0].episode, 1);
    // The view's state is exactly the aggregate's state: one fold, not two.
    assert_eq!(view.state(), &Conversation::replay(&two_episodes()));
}

fn chat_events(
    chat: ChatId,
    commands: &[(ChatCommand, chrono::DateTime<chrono::Utc>)],
) -> Vec<(ChatId, ChatEvent)> {
    let mut start_cmd = start_with(settings(), open_module());
    start_cmd.chat = chat;
    let mut all = vec![(ChatCommand::Start(Box::new(start_cmd)), commands[0].1)];
    all.extend(commands[1..].iter().cloned());
    run_at(&all).into_iter().map(|e| (chat, e)).collect()
}

#[test]
fn x1_the_live_list_shows_waiting_and_active_chats_and_drops_ended_ones() {
    let c1 = ChatId::from_u128(201);
    let c2 = ChatId::from_u128(202);
    let c3 = ChatId::from_u128(203);
    let mut log = Vec::new();
    log.extend(chat_events(
        c1,
        &[(start(), t(0)), (assign(1, AGENT_A), t(30))],
    ));
    log.extend(chat_events(c2, &[(start(), t(10))]));
    log.extend(chat_events(
        c3,
        &[(start(), t(5)), (end(1, EndedBy::Visitor), t(20))],
    ));
    let mut list = LiveList::default();
    for (chat, event) in &log {
        list.apply(Recorded::Chat { chat: *chat, event });
    }
    let waiting: Vec<ChatId> = list.waiting().iter().map(|c| c.chat).collect();
    assert_eq!(waiting, [c2]);
    assert_eq!(list.waiting()[0].since, t(10));
    assert_eq!(list.waiting()[0].module, MODULE);
    assert_eq!(
        list.waiting()[0].status,
        LiveStatus::Waiting { queue: None }
    );
    let active: Vec<(ChatId, LiveStatus)> =
        list.active().iter().map(|c| (c.chat, c.status)).collect();
    assert_eq!(active, [(c1, LiveStatus::Active { agent: AGENT_A })]);
}

#[test]
fn x1_a_resumed_chat_comes_back_to_the_live_list_and_waiting_is_oldest_first() {
    let c1 = ChatId::from_u128(301);
    let c2 = ChatId::from_u128(302);
    let mut list = LiveList::default();
    let first = chat_events(c1, &[(start(), t(0)), (end(1, EndedBy::Visitor), t(5))]);
    let second = chat_events(c2, &[(start(), t(50))]);
    let resumed_state = Conversation::replay(first.iter().map(|(_, e)| e));
    let resumed: Vec<ChatEvent> =
        Conversation::decide(&resumed_state, &resume(2), t(60)).expect("resumed");
    for (chat, event) in first.iter().chain(second.iter()) {
        list.apply(Recorded::Chat { chat: *chat, event });
    }
    assert_eq!(list.waiting().len(), 1);
    for event in &resumed {
        list.apply(Recorded::Chat { chat: c1, event });
    }
    let waiting: Vec<(ChatId, u32)> = list.waiting().iter().map(|c| (c.chat, c.episode)).collect();
    assert_eq!(waiting, [(c2, 1), (c1, 2)]);
}

#[test]
fn x1_the_live_list_shows_agents_presence_and_room() {
    let mut list = LiveList::default();
    let events = [
        agent_joined(AGENT_A, 1, Presence::Online),
        agent_joined(AGENT_B, 2, Presence::Away),
    ]
    .concat();
    for event in &events {
        let agent = match event {
            AgentEvent::CapacitySet { agent, .. } | AgentEvent::PresenceChanged { agent, .. } => {
                *agent
            }
            _ => unreachable!(),
        };
        list.apply(Recorded::Agent { agent, event });
    }
    assert_eq!(list.available_agents(), [AGENT_A]);
    let claim = AgentEvent::ChatClaimed {
        agent: AGENT_A,
        at: t(2),
        chat: CHAT,
    };
    list.apply(Recorded::Agent {
        agent: AGENT_A,
        event: &claim,
    });
    assert!(list.available_agents().is_empty(), "A is at capacity");
    assert_eq!(list.agents()[&AGENT_B].presence, Presence::Away);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// C8: the live list depends only on each stream's own order, not on how the streams'
    /// events interleave in the global log.
    #[test]
    fn x1_the_live_list_does_not_depend_on_how_streams_interleave(
        picks in prop::collection::vec(0..3usize, 0..40),
    ) {
        let streams = [
            chat_events(ChatId::from_u128(1), &[(start(), t(0)), (assign(1, AGENT_A), t(30)), (end(2, EndedBy::Visitor), t(40))]),
            chat_events(ChatId::from_u128(2), &[(start(), t(10)), (assign(1, AGENT_B), t(20))]),
            chat_events(ChatId::from_u128(3), &[(start(), t(5))]),
        ];
        let mut sequential = LiveList::default();
        for (chat, event) in streams.iter().flatten() {
            sequential.apply(Recorded::Chat { chat: *chat, event });
        }
        let mut next = [0usize; 3];
        let mut interleaved = LiveList::default();
        let mut order: Vec<usize> = picks;
        order.extend([0, 1, 2].iter().flat_map(|&s| std::iter::repeat_n(s, streams[s].len())));
        for s in order {
            if let Some((chat, event)) = streams[s].get(next[s]) {
                interleaved.apply(Recorded::Chat { chat: *chat, event });
                next[s] += 1;
            }
        }
        prop_assert_eq!(interleaved, sequential);
    }
}
