//! The chat workload every store benchmark shares: whole conversations produced by the real
//! decider, encoded the way the engine stores them.
//!
//! Why one module: a replay figure, an append figure and the peer comparison are only comparable
//! if they move the same events. Each conversation is the shape the issue names — start, assign,
//! messages both ways, end — and every event comes out of `Conversation::decide`, so payload
//! sizes and fold costs are the real ones, not a synthetic record of guessed size.

use chat_core::conversation::{
    Admission, ChatCommand, ChatEvent, ChatSettings, Conversation, EndedBy, MessageBody, Origin,
    Party, StartChat,
};
use chat_core::{AgentId, ChatId, CommandId, ContactId, Decider, EventKind, MessageId, ModuleId};
use chat_core::{FieldValue, PageData};
use chat_store::{NewEvent, StoreError, StreamId, encode_payload};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Messages in one conversation, alternating visitor and agent.
pub const MESSAGES_PER_CONVERSATION: usize = 16;
/// Events of one conversation: `ChatStarted` + `ChatQueued` (one command), `AgentAssigned`, the
/// messages, `EpisodeEnded`.
pub const EVENTS_PER_CONVERSATION: usize = 2 + 1 + MESSAGES_PER_CONVERSATION + 1;
/// Commands of one conversation (start, assign, each message, end).
pub const COMMANDS_PER_CONVERSATION: usize = 1 + 1 + MESSAGES_PER_CONVERSATION + 1;

/// Lines a chat really carries: short acknowledgements to a few sentences (14–190 bytes).
const LINES: [&str; 8] = [
    "Hello, I have a question about my last invoice.",
    "Hi! Sure, I can help with that. Could you tell me the invoice number?",
    "It is INV-2026-004512.",
    "Thanks. I can see it: the amount includes the annual plan that renewed on the 1st, which is \
     why it is higher than the monthly ones you had before. Shall I switch you back to monthly?",
    "Yes please, and can I get a refund for the difference?",
    "Done: you are on the monthly plan from today, and the difference will be refunded to your \
     card within five working days.",
    "Perfect, thank you!",
    "You're welcome. Anything else?",
];

/// The instant conversation 0 starts; conversation `n` starts `n` seconds later.
fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("a valid date")
}

/// A 128-bit mix of `(kind, n, i)` (SplitMix64 twice): ids that look random to a B-tree, as the
/// engine's hashed ids do, yet are the same in every run.
fn id(kind: u64, n: u64, i: u64) -> Uuid {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = mix(kind ^ mix(n ^ mix(i)));
    let low = mix(high ^ n.rotate_left(17) ^ i);
    Uuid::from_u128((u128::from(high) << 64) | u128::from(low))
}

/// The chat of conversation `n`.
pub fn chat_id(n: u64) -> ChatId {
    ChatId::from_uuid(id(1, n, 0))
}

/// The stream of conversation `n` (`chat-<uuid>`).
pub fn stream_id(n: u64) -> StreamId {
    StreamId::new(chat_id(n).stream_name()).expect("a chat stream name is a valid stream id")
}

/// When command `step` of conversation `n` is decided: a new chat every second, a step every
/// 20 seconds within a chat.
pub fn decided_at(n: u64, step: usize) -> DateTime<Utc> {
    epoch() + TimeDelta::seconds(n as i64) + TimeDelta::seconds(20 * step as i64)
}

/// The commands of conversation `n`, in order: start (widget, with page data and a form), an
/// automatic assignment, [`MESSAGES_PER_CONVERSATION`] messages alternating visitor and agent,
/// the visitor's end.
pub fn commands(n: u64) -> Vec<ChatCommand> {
    let agent = AgentId::from_uuid(id(2, n % 50, 0));
    let command_id = |step: u64| CommandId::from_uuid(id(3, n, step));
    let start = StartChat {
        command_id: command_id(0),
        chat: chat_id(n),
        module: ModuleId::from_uuid(id(4, n % 4, 0)),
        contact: ContactId::from_uuid(id(5, n, 0)),
        contact_email: Some(format!("visitor{n}@example.org")),
        resume_token: id(6, n, 0).simple().to_string(),
        page: PageData {
            firstname: Some("Ada".to_owned()),
            lastname: Some("Lovelace".to_owned()),
            message: Some("Question about my invoice".to_owned()),
            vars: BTreeMap::from([("plan".to_owned(), "pro".to_owned())]),
        },
        form_answers: BTreeMap::from([(
            "topic".to_owned(),
            FieldValue::Text("billing".to_owned()),
        )]),
        routing_vars: BTreeMap::from([("lang".to_owned(), "en".to_owned())]),
        origin: Origin::Widget,
        settings: ChatSettings {
            async_chatting: false,
            case_when_no_agent: false,
            unattended_timeout_s: Some(300),
            transcript_email: false,
            attachment_bytes_max: 10 * 1024 * 1024,
        },
        admission: Admission {
            within_working_hours: true,
            open_chats: 0,
            open_chats_max: None,
            contact_blocked: false,
        },
    };
    let mut commands = vec![
        ChatCommand::Start(Box::new(start)),
        ChatCommand::Assign {
            command_id: command_id(1),
            agent,
            manual_pick: false,
        },
    ];
    for m in 0..MESSAGES_PER_CONVERSATION {
        let author = if m % 2 == 0 {
            Party::Visitor
        } else {
            Party::Agent(agent)
        };
        commands.push(ChatCommand::PostMessage {
            command_id: command_id(2 + m as u64),
            message_id: MessageId::from_uuid(id(7, n, m as u64)),
            author,
            body: MessageBody::text(LINES[(m + n as usize) % LINES.len()]),
        });
    }
    commands.push(ChatCommand::End {
        command_id: command_id(COMMANDS_PER_CONVERSATION as u64 - 1),
        by: EndedBy::Visitor,
    });
    debug_assert_eq!(commands.len(), COMMANDS_PER_CONVERSATION);
    commands
}

/// The events of conversation `n`, one `Vec` per command, as the real decider produced them
/// (each decided on the state folded from the events before it).
///
/// Panics if the decider refuses a command or the conversation does not have
/// [`EVENTS_PER_CONVERSATION`] events: the benchmarks would then measure something else.
pub fn decisions(n: u64) -> Vec<Vec<ChatEvent>> {
    let mut state = <Conversation as Decider>::State::default();
    let mut decisions = Vec::with_capacity(COMMANDS_PER_CONVERSATION);
    for (step, command) in commands(n).iter().enumerate() {
        let events = Conversation::decide(&state, command, decided_at(n, step))
            .unwrap_or_else(|rejection| panic!("the workload's step {step} refused: {rejection}"));
        for event in &events {
            Conversation::evolve(&mut state, event);
        }
        decisions.push(events);
    }
    let total: usize = decisions.iter().map(Vec::len).sum();
    assert_eq!(total, EVENTS_PER_CONVERSATION, "the workload's event count");
    decisions
}

/// The store envelope of the `index`-th event of conversation `n`, decided at `at`: MessagePack
/// with named fields, the event's type name and schema version — what the engine appends.
pub fn envelope(
    event: &ChatEvent,
    n: u64,
    index: usize,
    at: DateTime<Utc>,
) -> Result<NewEvent, StoreError> {
    Ok(NewEvent {
        event_id: id(8, n, index as u64),
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        recorded_at: at,
        correlation_id: Some(id(9, n, 0)),
        causation_id: Some(id(3, n, index as u64)),
        payload: encode_payload(event)?,
    })
}

/// Every event of conversation `n` as store envelopes, one `Vec` per command.
pub fn envelopes(n: u64) -> Vec<Vec<NewEvent>> {
    let mut index = 0;
    decisions(n)
        .iter()
        .enumerate()
        .map(|(step, events)| {
            events
                .iter()
                .map(|event| {
                    let envelope = envelope(event, n, index, decided_at(n, step));
                    index += 1;
                    envelope.expect("chat events encode")
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_is_twenty_events_from_the_real_decider() {
        let decisions = decisions(7);
        assert_eq!(decisions.len(), COMMANDS_PER_CONVERSATION);
        assert!(matches!(decisions[0][0], ChatEvent::ChatStarted { .. }));
        assert!(matches!(
            decisions.last().unwrap()[0],
            ChatEvent::EpisodeEnded { .. }
        ));
        let ids: std::collections::BTreeSet<Uuid> = envelopes(7)
            .into_iter()
            .flatten()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(ids.len(), EVENTS_PER_CONVERSATION, "distinct event ids");
        assert_ne!(stream_id(7), stream_id(8));
    }
}
