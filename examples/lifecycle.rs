//! One chat through its whole life on the in-memory path: start, queue, assign, messages both
//! ways, end, rating, resume, end again — then the events it produced, read back from the store.
//!
//! Run it with `cargo run -p chat-examples --example lifecycle`.
//!
//! It shows the loop every host of chat-core runs: read the stream, fold it into a state
//! (`Decider::replay`), `decide` with `now` and host-minted ids, append the events with the
//! version the decision was based on (optimistic concurrency). An assignment appends the chat's
//! `AgentAssigned` and the agent's `ChatClaimed` in one atomic multi-stream append, so capacity and
//! "one agent per chat" hold even with several processes on one store.

use chat_core::agent::{Agent, AgentCommand, Presence};
use chat_core::conversation::{
    Admission, ChatCommand, ChatEvent, ChatSettings, Conversation, EndedBy, MessageBody, Origin,
    Party, StartChat, next_deadline,
};
use chat_core::projection::ConversationView;
use chat_core::{
    AgentId, ChatId, CommandId, ContactId, Decider, EventKind, MessageId, ModuleId, PageData,
};
use chat_store::{
    EventStore, ExpectedVersion, MemoryStore, NewEvent, READ_COUNT_MAX, StreamAppend, StreamId,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use uuid::Uuid;

type Error = Box<dyn std::error::Error>;

/// Reads a whole stream and decodes its payloads.
async fn load<E: DeserializeOwned>(
    store: &MemoryStore,
    stream: &StreamId,
) -> Result<Vec<E>, Error> {
    let recorded = store.read_stream(stream, 1, READ_COUNT_MAX).await?;
    recorded
        .iter()
        .map(|r| Ok(rmp_serde::from_slice(&r.payload)?))
        .collect()
}

/// Wraps decided events for the store: MessagePack with named fields, type name, schema version.
fn encode<E: Serialize + EventKind>(
    events: &[E],
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, Error> {
    events
        .iter()
        .map(|event| {
            Ok(NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                recorded_at: now,
                correlation_id: None,
                causation_id: None,
                payload: rmp_serde::to_vec_named(event)?,
            })
        })
        .collect()
}

/// Load, decide, append for one aggregate; returns the events it recorded.
async fn execute<D>(
    store: &MemoryStore,
    stream: &StreamId,
    command: &D::Command,
    now: DateTime<Utc>,
) -> Result<Vec<D::Event>, Error>
where
    D: Decider,
    D::Event: Serialize + DeserializeOwned + EventKind,
    D::Rejection: std::error::Error + 'static,
{
    let history: Vec<D::Event> = load(store, stream).await?;
    let state = D::replay(&history);
    let events = D::decide(&state, command, now)?;
    if !events.is_empty() {
        let expected = ExpectedVersion::Exact(history.len() as u64);
        store
            .append(stream, expected, encode(&events, now)?)
            .await??;
    }
    Ok(events)
}

/// Assigns a chat: the chat's `AgentAssigned` and the agent's `ChatClaimed` go in together, each
/// stream at the version the decisions were based on, or not at all.
async fn assign(
    store: &MemoryStore,
    chat: ChatId,
    agent: AgentId,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let chat_stream = StreamId::new(chat.stream_name())?;
    let agent_stream = StreamId::new(agent.stream_name())?;
    let chat_history: Vec<ChatEvent> = load(store, &chat_stream).await?;
    let agent_history = load(store, &agent_stream).await?;
    let chat_events = Conversation::decide(
        &Conversation::replay(&chat_history),
        &ChatCommand::Assign {
            command_id: CommandId::from_uuid(Uuid::now_v7()),
            agent,
            manual_pick: false,
        },
        now,
    )?;
    let agent_events = Agent::decide(
        &Agent::replay(&agent_history),
        &AgentCommand::Claim { agent, chat },
        now,
    )?;
    store
        .append_multi(vec![
            StreamAppend {
                stream_id: chat_stream,
                expected: ExpectedVersion::Exact(chat_history.len() as u64),
                events: encode(&chat_events, now)?,
            },
            StreamAppend {
                stream_id: agent_stream,
                expected: ExpectedVersion::Exact(agent_history.len() as u64),
                events: encode(&agent_events, now)?,
            },
        ])
        .await??;
    Ok(())
}

/// Who, readably.
fn party(party: Party) -> String {
    match party {
        Party::Visitor => "visitor".to_owned(),
        Party::Agent(agent) => format!("agent {agent}"),
        Party::System => "system".to_owned(),
    }
}

/// One readable line per event.
fn describe(event: &ChatEvent) -> String {
    match event {
        ChatEvent::ChatStarted { record, .. } => format!(
            "module {}, contact {}, origin {:?}, page message {:?}, form answers {:?}",
            record.module,
            record.contact,
            record.origin,
            record.page.message.as_deref().unwrap_or(""),
            record.form_answers.keys().collect::<Vec<_>>()
        ),
        ChatEvent::ChatQueued { episode, cause, .. } => {
            format!("episode {episode}, because {cause:?}")
        }
        ChatEvent::AgentAssigned {
            episode,
            agent,
            via,
            ..
        } => format!("episode {episode}, agent {agent} via {via:?}"),
        ChatEvent::MessagePosted { message, .. } => {
            let author = party(message.author);
            let extras = if message.body.quick_replies.is_empty() {
                String::new()
            } else {
                format!(
                    " [quick replies: {}]",
                    message.body.quick_replies.join(" | ")
                )
            };
            format!("{author}: {:?}{extras}", message.body.text)
        }
        ChatEvent::EpisodeEnded {
            episode,
            disposition,
            by,
            ..
        } => format!(
            "episode {episode}, disposition {disposition:?}, by {}",
            party(*by)
        ),
        ChatEvent::TranscriptEmailRequested { episode, to, .. } => {
            format!("episode {episode}, to {to}")
        }
        ChatEvent::ChatRated {
            episode,
            score,
            comment,
            ..
        } => format!("episode {episode}, score {score}/5, comment {comment:?}"),
        ChatEvent::ChatResumed { episode, .. } => format!("new episode {episode}"),
        other => format!("{other:?}"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let store = MemoryStore::new();
    // The host's clock, advanced by hand so the output reads like a conversation.
    let mut now = Utc::now();
    let mut later = |seconds: i64| {
        now += TimeDelta::seconds(seconds);
        now
    };
    let new_id = || CommandId::from_uuid(Uuid::now_v7());
    let agent = AgentId::from_uuid(Uuid::now_v7());
    let chat = ChatId::from_uuid(Uuid::now_v7());
    let chat_stream = StreamId::new(chat.stream_name())?;
    let agent_stream = StreamId::new(agent.stream_name())?;

    // The agent comes online with room for two chats (A1, R2).
    let at = later(0);
    for command in [
        AgentCommand::SetCapacity { agent, capacity: 2 },
        AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        },
    ] {
        execute::<Agent>(&store, &agent_stream, &command, at).await?;
    }

    // A visitor starts a chat from the widget, inside working hours (C1, C2, M6).
    let admission = Admission {
        within_working_hours: true,
        open_chats: 0,
        open_chats_max: Some(20),
        contact_blocked: false,
    };
    let start = StartChat {
        command_id: new_id(),
        chat,
        module: ModuleId::from_uuid(Uuid::now_v7()),
        contact: ContactId::from_uuid(Uuid::now_v7()),
        contact_email: Some("ada@example.org".to_owned()),
        resume_token: Uuid::now_v7().simple().to_string(),
        page: PageData {
            firstname: Some("Ada".to_owned()),
            lastname: Some("Lovelace".to_owned()),
            message: Some("Question about my invoice".to_owned()),
            vars: BTreeMap::new(),
        },
        form_answers: BTreeMap::from([(
            "topic".to_owned(),
            chat_core::FieldValue::Text("billing".to_owned()),
        )]),
        routing_vars: BTreeMap::from([("lang".to_owned(), "en".to_owned())]),
        origin: Origin::Widget,
        settings: ChatSettings {
            async_chatting: false,
            case_when_no_agent: false,
            unattended_timeout_s: Some(300),
            transcript_email: true,
            attachment_bytes_max: 10 * 1024 * 1024,
        },
        admission,
    };
    let at = later(1);
    execute::<Conversation>(
        &store,
        &chat_stream,
        &ChatCommand::Start(Box::new(start)),
        at,
    )
    .await?;
    let queued = Conversation::replay(&load::<ChatEvent>(&store, &chat_stream).await?);
    println!(
        "queued; the host arms its timer for {:?} (C5)\n",
        next_deadline(&queued)
    );

    // Routing gives it to the agent; messages go both ways; the visitor ends it (C4, C6).
    assign(&store, chat, agent, later(20)).await?;
    let message = |author, body| ChatCommand::PostMessage {
        command_id: new_id(),
        message_id: MessageId::from_uuid(Uuid::now_v7()),
        author,
        body,
    };
    let conversation = [
        message(
            Party::Visitor,
            MessageBody::text("Hello, my invoice is wrong."),
        ),
        message(
            Party::Agent(agent),
            MessageBody {
                quick_replies: vec!["The amount".to_owned(), "The address".to_owned()],
                ..MessageBody::text("Sorry about that! What is wrong with it?")
            },
        ),
        message(Party::Visitor, MessageBody::text("The amount")),
        message(
            Party::Agent(agent),
            MessageBody::text("Fixed, you'll get a new one."),
        ),
        ChatCommand::End {
            command_id: new_id(),
            by: EndedBy::Visitor,
        },
    ];
    for command in &conversation {
        execute::<Conversation>(&store, &chat_stream, command, later(15)).await?;
    }
    // A retried end (same command id, e.g. after a network error) records nothing (C9).
    let retry = execute::<Conversation>(&store, &chat_stream, &conversation[4], later(1)).await?;
    assert!(retry.is_empty());
    let release = AgentCommand::Release { agent, chat };
    execute::<Agent>(&store, &agent_stream, &release, later(0)).await?;

    // The visitor rates the chat, comes back later and resumes it; the same chat re-enters the
    // queue as episode 2 (X3, C7).
    let rate = ChatCommand::Rate {
        command_id: new_id(),
        score: 5,
        comment: Some("Quick and friendly".to_owned()),
    };
    execute::<Conversation>(&store, &chat_stream, &rate, later(10)).await?;
    let resume = ChatCommand::Resume {
        command_id: new_id(),
        admission,
    };
    execute::<Conversation>(&store, &chat_stream, &resume, later(3600)).await?;
    assign(&store, chat, agent, later(30)).await?;
    for command in [
        message(
            Party::Visitor,
            MessageBody::text("The new invoice arrived, thanks!"),
        ),
        message(
            Party::Agent(agent),
            MessageBody::text("Great, have a nice day."),
        ),
        ChatCommand::End {
            command_id: new_id(),
            by: EndedBy::Agent(agent),
        },
    ] {
        execute::<Conversation>(&store, &chat_stream, &command, later(20)).await?;
    }
    execute::<Agent>(&store, &agent_stream, &release, later(0)).await?;

    // What the log holds, read back from the store.
    println!("events of {chat_stream}:");
    for recorded in store.read_stream(&chat_stream, 1, READ_COUNT_MAX).await? {
        let event: ChatEvent = rmp_serde::from_slice(&recorded.payload)?;
        println!(
            "  v{:<2} {:<25} {}",
            recorded.stream_version,
            recorded.event_type,
            describe(&event)
        );
    }
    println!("\nevents of {agent_stream}:");
    for recorded in store.read_stream(&agent_stream, 1, READ_COUNT_MAX).await? {
        println!("  v{:<2} {}", recorded.stream_version, recorded.event_type);
    }

    // The conversation view is a fold of the same events (C8).
    let view = ConversationView::from_events(&load::<ChatEvent>(&store, &chat_stream).await?);
    println!(
        "\nview: phase {:?}, episode {}, disposition {:?}, {} messages, {} participants, ratings {:?}",
        view.phase(),
        view.state().episode,
        view.disposition(),
        view.messages().len(),
        view.participants().len(),
        view.ratings().iter().map(|r| r.score).collect::<Vec<_>>()
    );
    let agent_state = Agent::replay(&load(&store, &agent_stream).await?);
    println!(
        "agent: {:?}, holds {} of {} chats",
        agent_state.presence,
        agent_state.chats.len(),
        agent_state.capacity
    );
    Ok(())
}
