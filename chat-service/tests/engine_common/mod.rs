//! Shared fixtures of the engine tests: real stores (sled in a temp directory, PostgreSQL in a
//! fresh schema), a manual clock, and a configured module, queue and agents.

#![allow(dead_code, unreachable_pub)]

use chat_core::agent::{Agent, AgentCommand, AgentState, Presence};
use chat_core::config::{
    ACCOUNT_SETTINGS_STREAM, AccountCommand, AccountSettings, AdminCommand, Level, ModuleCommand,
    ModuleDecider, ModuleSettings, QueueCommand, QueueDecider, WorkingHours,
};
use chat_core::conversation::{ChatEvent, ChatState, Conversation, Origin};
use chat_core::{AgentId, ChatId, CommandId, ContactId, ModuleId, PageData, QueueId};
use chat_service::engine::{Engine, EngineOptions, ManualClock, NewChat};
use chat_store::{EventStore, PostgresConfig, PostgresStore, PostgresTestDatabase, SledStore};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where a test's log lives; reopening gives a new store over the same data (a restart).
pub enum Backend {
    /// sled in a temporary directory.
    Sled(tempfile::TempDir),
    /// PostgreSQL in a schema no other run uses.
    Postgres(PostgresTestDatabase, PostgresConfig),
}

impl Backend {
    pub fn sled() -> Self {
        Self::Sled(tempfile::tempdir().expect("a temp dir"))
    }

    /// `None` (after printing why) when `CHAT_TEST_POSTGRES_URL` is unset; panics under `CI=true`.
    pub fn postgres() -> Option<Self> {
        let database = PostgresTestDatabase::from_env()?;
        let config = database.fresh_config();
        Some(Self::Postgres(database, config))
    }

    pub async fn open(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Sled(dir) => Arc::new(SledStore::open(dir.path()).expect("sled opens")),
            Self::Postgres(_, config) => Arc::new(
                PostgresStore::open(config.clone())
                    .await
                    .expect("postgres opens"),
            ),
        }
    }

    /// Drops the PostgreSQL schema (sled's directory goes with the `TempDir`).
    pub async fn clean_up(self) {
        if let Self::Postgres(database, config) = self {
            database
                .drop_schema(config.schema_name())
                .await
                .expect("schema dropped");
        }
    }
}

/// Monday 30 March 2026, 09:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap()
}

pub const ADMIN: AgentId = AgentId::from_u128(0xad);
pub const QUEUE: QueueId = QueueId::from_u128(0x9);
pub const MODULE: ModuleId = ModuleId::from_u128(0x3);
pub const TIMEOUT_S: u32 = 60;

pub async fn start(
    store: Arc<dyn EventStore>,
    clock: Arc<ManualClock>,
    options: EngineOptions,
) -> Engine {
    Engine::start(store, clock, options)
        .await
        .expect("engine starts")
}

/// Account timeout [`TIMEOUT_S`], one queue with `agents` as level-1 members, one module routed
/// to it, open always or never.
pub async fn configure(engine: &Engine, open: bool, agents: &[AgentId]) {
    let admin = |c| AdminCommand::new(ADMIN, c);
    engine
        .handle::<AccountSettings>(
            ACCOUNT_SETTINGS_STREAM,
            &admin(AccountCommand::SetUnattendedTimeout {
                timeout_s: TIMEOUT_S,
            }),
        )
        .await
        .unwrap()
        .expect("timeout set");
    let queue = QUEUE.stream_name();
    engine
        .handle::<QueueDecider>(
            &queue,
            &AdminCommand::new(
                ADMIN,
                QueueCommand::Create {
                    id: QUEUE,
                    name: "Support".into(),
                    reference: "support".into(),
                },
            ),
        )
        .await
        .unwrap()
        .expect("queue created");
    for agent in agents {
        engine
            .handle::<QueueDecider>(
                &queue,
                &AdminCommand::new(
                    ADMIN,
                    QueueCommand::SetMember {
                        agent: *agent,
                        level: Level::One,
                    },
                ),
            )
            .await
            .unwrap()
            .expect("member set");
    }
    let mut settings = ModuleSettings::named("Sales");
    settings.alias = "sales".into();
    settings.routing = Some(QUEUE);
    let module = MODULE.stream_name();
    engine
        .handle::<ModuleDecider>(
            &module,
            &AdminCommand::new(
                ADMIN,
                ModuleCommand::Create {
                    id: MODULE,
                    reference: "sales".into(),
                    settings,
                },
            ),
        )
        .await
        .unwrap()
        .expect("module created");
    let hours = if open {
        WorkingHours::always_open()
    } else {
        WorkingHours::closed()
    };
    engine
        .handle::<ModuleDecider>(
            &module,
            &AdminCommand::new(ADMIN, ModuleCommand::SetWorkingHours { hours }),
        )
        .await
        .unwrap()
        .expect("hours set");
}

pub async fn online(engine: &Engine, agent: AgentId, capacity: u32) {
    engine
        .agent(AgentCommand::SetCapacity { agent, capacity })
        .await
        .unwrap()
        .expect("capacity set");
    engine
        .agent(AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        })
        .await
        .unwrap()
        .expect("presence set");
}

pub fn new_chat(n: u128) -> NewChat {
    NewChat {
        command_id: CommandId::from_u128(0xc0_0000 + n),
        chat: ChatId::from_u128(0xc4a7_0000 + n),
        module: MODULE,
        contact: ContactId::from_u128(0xc0_7ac7_0000 + n),
        contact_email: Some(format!("visitor{n}@example.com")),
        resume_token: format!("token-{n}"),
        page: PageData::default(),
        form_answers: BTreeMap::new(),
        routing_vars: BTreeMap::new(),
        origin: Origin::Widget,
    }
}

pub async fn chat_state(engine: &Engine, chat: ChatId) -> ChatState {
    engine
        .state::<Conversation>(&chat.stream_name())
        .await
        .expect("chat state loads")
}

pub async fn agent_state(engine: &Engine, agent: AgentId) -> AgentState {
    engine
        .state::<Agent>(&agent.stream_name())
        .await
        .expect("agent state loads")
}

/// Every event of a chat's stream, decoded.
pub async fn chat_events(store: &Arc<dyn EventStore>, chat: ChatId) -> Vec<ChatEvent> {
    let stream = chat_store::StreamId::new(chat.stream_name()).unwrap();
    let codec = chat_service::engine::Codec::default();
    store
        .read_stream(&stream, 1, chat_store::READ_COUNT_MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| codec.decode_as(e).unwrap())
        .collect()
}

/// Runs a test body on sled, and on PostgreSQL when configured.
#[macro_export]
macro_rules! on_every_store {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sled() {
                super::$name(super::engine_common::Backend::sled()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = super::engine_common::Backend::postgres() {
                    super::$name(backend).await;
                }
            }
        }
    };
}
