//! Fixtures shared by the lifecycle tests: fixed ids, a fixed clock, a default module setup and a
//! way to build a history by running commands (so a test's `given` stays short and always matches
//! what `decide` really records).

// Each test crate uses a different subset of these fixtures.
#![allow(dead_code)]

use chat_core::agent::{AgentEvent, Presence};
use chat_core::conversation::{
    Admission, ChatCommand, ChatEvent, ChatSettings, ChatState, Conversation, EndedBy, MessageBody,
    Origin, Party, StartChat,
};
use chat_core::{
    AgentId, ChatId, CommandId, ContactId, Decider, FieldValue, MessageId, ModuleId, PageData,
    QueueId,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Property-test cases: 10,000 in CI (`CI=true`), fewer on a developer's machine.
pub(crate) fn cases() -> u32 {
    if std::env::var("CI").as_deref() == Ok("true") {
        10_000
    } else {
        500
    }
}

/// A fixed instant `s` seconds after the tests' epoch.
pub(crate) fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + s, 0).expect("valid test instant")
}

pub(crate) const CHAT: ChatId = ChatId::from_u128(1);
pub(crate) const MODULE: ModuleId = ModuleId::from_u128(2);
pub(crate) const CONTACT: ContactId = ContactId::from_u128(3);
pub(crate) const AGENT_A: AgentId = AgentId::from_u128(10);
pub(crate) const AGENT_B: AgentId = AgentId::from_u128(11);
pub(crate) const QUEUE: QueueId = QueueId::from_u128(20);
pub(crate) const EMAIL: &str = "ada@example.org";
/// The unattended timeout of [`settings`], in seconds.
pub(crate) const TIMEOUT_S: u32 = 300;

pub(crate) fn cmd(n: u128) -> CommandId {
    CommandId::from_u128(1000 + n)
}

pub(crate) fn msg(n: u128) -> MessageId {
    MessageId::from_u128(5000 + n)
}

/// A module with a 5-minute timeout, transcripts on, async and cases off.
pub(crate) fn settings() -> ChatSettings {
    ChatSettings {
        async_chatting: false,
        case_when_no_agent: false,
        unattended_timeout_s: Some(TIMEOUT_S),
        transcript_email: true,
        attachment_bytes_max: 10 * 1024 * 1024,
    }
}

/// Inside working hours, below the module's maximum, contact not blocked.
pub(crate) fn open_module() -> Admission {
    Admission {
        within_working_hours: true,
        open_chats: 3,
        open_chats_max: Some(10),
        contact_blocked: false,
    }
}

pub(crate) fn start_with(settings: ChatSettings, admission: Admission) -> StartChat {
    StartChat {
        command_id: cmd(0),
        chat: CHAT,
        module: MODULE,
        contact: CONTACT,
        contact_email: Some(EMAIL.to_owned()),
        resume_token: "resume-token-1".to_owned(),
        page: PageData {
            firstname: Some("Ada".to_owned()),
            lastname: Some("Lovelace".to_owned()),
            message: Some("My invoice is wrong".to_owned()),
            vars: BTreeMap::from([("plan".to_owned(), "gold".to_owned())]),
        },
        form_answers: BTreeMap::from([(
            "topic".to_owned(),
            FieldValue::Text("billing".to_owned()),
        )]),
        routing_vars: BTreeMap::from([("lang".to_owned(), "en".to_owned())]),
        origin: Origin::Widget,
        settings,
        admission,
    }
}

pub(crate) fn start() -> ChatCommand {
    ChatCommand::Start(Box::new(start_with(settings(), open_module())))
}

pub(crate) fn start_settings(settings: ChatSettings) -> ChatCommand {
    ChatCommand::Start(Box::new(start_with(settings, open_module())))
}

pub(crate) fn assign(n: u128, agent: AgentId) -> ChatCommand {
    ChatCommand::Assign {
        command_id: cmd(n),
        agent,
        manual_pick: false,
    }
}

pub(crate) fn say(n: u128, author: Party, text: &str) -> ChatCommand {
    ChatCommand::PostMessage {
        command_id: cmd(n),
        message_id: msg(n),
        author,
        body: MessageBody::text(text),
    }
}

pub(crate) fn end(n: u128, by: EndedBy) -> ChatCommand {
    ChatCommand::End {
        command_id: cmd(n),
        by,
    }
}

pub(crate) fn tick(n: u128) -> ChatCommand {
    ChatCommand::Tick { command_id: cmd(n) }
}

pub(crate) fn resume(n: u128) -> ChatCommand {
    ChatCommand::Resume {
        command_id: cmd(n),
        admission: open_module(),
    }
}

/// Runs commands in order (command `i` at `t(i * 10)` unless given an instant) and returns the
/// events they recorded; panics on a rejection, since a `given` must be a real history.
pub(crate) fn run(commands: &[ChatCommand]) -> Vec<ChatEvent> {
    let timed: Vec<(ChatCommand, DateTime<Utc>)> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), t(i as i64 * 10)))
        .collect();
    run_at(&timed)
}

/// Like [`run`], with an explicit instant per command.
pub(crate) fn run_at(commands: &[(ChatCommand, DateTime<Utc>)]) -> Vec<ChatEvent> {
    let mut state = ChatState::default();
    let mut events = Vec::new();
    for (command, at) in commands {
        let produced = Conversation::decide(&state, command, *at)
            .unwrap_or_else(|r| panic!("history command {command:?} refused: {r}"));
        for event in &produced {
            Conversation::evolve(&mut state, event);
        }
        events.extend(produced);
    }
    events
}

/// A started, queued chat (command 0 at t(0)).
pub(crate) fn queued_chat() -> Vec<ChatEvent> {
    run(&[start()])
}

/// A chat agent A holds (assigned by command 1 at t(10)).
pub(crate) fn active_chat() -> Vec<ChatEvent> {
    run(&[start(), assign(1, AGENT_A)])
}

/// A chat agent A handled, with one message each way, ended by the visitor at t(40).
pub(crate) fn ended_chat() -> Vec<ChatEvent> {
    run(&[
        start(),
        assign(1, AGENT_A),
        say(2, Party::Visitor, "Hello?"),
        say(3, Party::Agent(AGENT_A), "Hi, how can I help?"),
        end(4, EndedBy::Visitor),
    ])
}

/// An agent's stream as it begins: capacity set at `t(0)`, then the presence at `t(1)`, holding
/// nothing yet.
pub(crate) fn agent_joined(agent: AgentId, capacity: u32, presence: Presence) -> Vec<AgentEvent> {
    vec![
        AgentEvent::CapacitySet {
            agent,
            at: t(0),
            capacity,
        },
        AgentEvent::PresenceChanged {
            agent,
            at: t(1),
            presence,
        },
    ]
}
