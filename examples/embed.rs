//! Embed the engine in a backend in a few lines, with the sled store.
//!
//! Run with `cargo run -p chat-examples --example embed [DATA_DIR]` (a temporary directory when
//! none is given). It configures one module and queue, brings an agent online, starts a chat
//! that routing gives to the agent, exchanges messages, ends it, and prints what the
//! projections saw. Run it twice on the same directory: the log and the projections survive.

use chat_core::agent::{AgentCommand, Presence};
use chat_core::config::{
    AdminCommand, Level, ModuleCommand, ModuleDecider, ModuleSettings, QueueCommand, QueueDecider,
    WorkingHours,
};
use chat_core::conversation::{ChatCommand, Conversation, EndedBy, MessageBody, Origin, Party};
use chat_core::{AgentId, ChatId, CommandId, ContactId, MessageId, ModuleId, PageData, QueueId};
use chat_service::engine::{Engine, EngineOptions, NewChat, SystemClock};
use chat_store::SledStore;
use std::sync::Arc;
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A store and an engine.
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or(temp.path().to_owned(), Into::into);
    let store = Arc::new(SledStore::open(&dir)?);
    let engine = Engine::start(
        store,
        Arc::new(SystemClock::default()),
        EngineOptions::default(),
    )
    .await?;

    // 2. Configuration (once): a queue with one agent, a module routed to it, always open.
    let (admin, agent) = (AgentId::from_u128(1), AgentId::from_u128(2));
    let (queue, module) = (QueueId::from_u128(3), ModuleId::from_u128(4));
    let queue_stream = queue.stream_name();
    let create = QueueCommand::Create {
        id: queue,
        name: "Support".into(),
        reference: "support".into(),
    };
    let _ = engine
        .handle::<QueueDecider>(&queue_stream, &AdminCommand::new(admin, create))
        .await?;
    let member = QueueCommand::SetMember {
        agent,
        level: Level::One,
    };
    let _ = engine
        .handle::<QueueDecider>(&queue_stream, &AdminCommand::new(admin, member))
        .await?;
    let mut settings = ModuleSettings::named("Website");
    settings.routing = Some(queue);
    let module_stream = module.stream_name();
    let create = ModuleCommand::Create {
        id: module,
        reference: "website".into(),
        settings,
    };
    let _ = engine
        .handle::<ModuleDecider>(&module_stream, &AdminCommand::new(admin, create))
        .await?;
    let hours = ModuleCommand::SetWorkingHours {
        hours: WorkingHours::always_open(),
    };
    let _ = engine
        .handle::<ModuleDecider>(&module_stream, &AdminCommand::new(admin, hours))
        .await?;

    // 3. The agent comes online.
    let _ = engine
        .agent(AgentCommand::SetCapacity { agent, capacity: 2 })
        .await?;
    let _ = engine
        .agent(AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        })
        .await?;

    // 4. A visitor starts a chat; routing assigns it in the background.
    let chat = ChatId::from_uuid(Uuid::now_v7());
    let new = NewChat {
        command_id: CommandId::from_uuid(Uuid::now_v7()),
        chat,
        module,
        contact: ContactId::from_uuid(Uuid::now_v7()),
        contact_email: Some("visitor@example.com".into()),
        resume_token: Uuid::now_v7().to_string(),
        page: PageData::default(),
        form_answers: Default::default(),
        routing_vars: Default::default(),
        origin: Origin::Widget,
    };
    engine.start_chat(new).await??;
    engine.settle().await?;
    let state = engine.state::<Conversation>(&chat.stream_name()).await?;
    println!("chat {chat} is {:?} with {:?}", state.phase, state.agent);

    // 5. Messages both ways, then the agent ends the chat.
    for (author, text) in [
        (Party::Visitor, "Hello?"),
        (Party::Agent(agent), "Hi! How can I help?"),
    ] {
        let post = ChatCommand::PostMessage {
            command_id: CommandId::from_uuid(Uuid::now_v7()),
            message_id: MessageId::from_uuid(Uuid::now_v7()),
            author,
            body: MessageBody::text(text),
        };
        engine.chat(chat, post).await??;
    }
    let end = ChatCommand::End {
        command_id: CommandId::from_uuid(Uuid::now_v7()),
        by: EndedBy::Agent(agent),
    };
    let ended = engine.chat(chat, end).await??;
    println!("ended: {:?}", ended.state.disposition);

    // 6. The projections followed along.
    engine.settle().await?;
    println!("waiting now: {}", engine.board().live().waiting().len());
    println!("agent stats: {:?}", engine.statistics().agent(agent));
    engine.shutdown().await;
    Ok(())
}
