//! `--demo`: a module, a queue, an agent and an admin, so that a fresh start is usable at once
//! (V4). Idempotent: every object has a fixed id, and a second start on the same data finds them
//! (refusals `AlreadyExists` / unchanged values are the expected answers). Passwords are drawn
//! on the first start and kept in the data directory (`demo-credentials.txt`, owner-only) so they
//! can be printed again.

use crate::http::App;
use crate::http::auth::{Role, create_user};
use crate::http::error::{ApiError, ApiResult};
use chat_core::agent::{AgentCommand, Presence};
use chat_core::config::{
    ACCOUNT_SETTINGS_STREAM, AccountCommand, AccountSettings, AdminCommand, ContactField, FieldDef,
    FieldKind, FieldTarget, FormDefinition, FormKind, InputKind, Level, ModuleCommand,
    ModuleDecider, ModuleSettings, QueueCommand, QueueDecider, WorkingHours,
};
use chat_core::{ModuleId, QueueId};
use std::path::Path;

/// The demo module's id.
pub const DEMO_MODULE: ModuleId = ModuleId::from_u128(0xde30_0001);
/// The demo queue's id.
pub const DEMO_QUEUE: QueueId = QueueId::from_u128(0xde30_0002);
/// The demo agent's login.
pub const DEMO_AGENT_LOGIN: &str = "agent";
/// The demo admin's login.
pub const DEMO_ADMIN_LOGIN: &str = "admin";

/// The demo's sign-in details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoCredentials {
    /// The agent's password.
    pub agent_password: String,
    /// The admin's password.
    pub admin_password: String,
}

/// Seeds the demo and returns its credentials.
pub async fn seed(app: &App, data_dir: Option<&Path>) -> ApiResult<DemoCredentials> {
    let credentials = credentials(data_dir)?;
    let admin = create_or_keep(
        app,
        DEMO_ADMIN_LOGIN,
        "Demo Admin",
        Role::Admin,
        &credentials.admin_password,
    )
    .await?;
    let agent = create_or_keep(
        app,
        DEMO_AGENT_LOGIN,
        "Demo Agent",
        Role::Agent,
        &credentials.agent_password,
    )
    .await?;
    let engine = app.engine();

    // Browsers on the service's own origin (the demo page) may use the widget, under either
    // loopback name (a pattern without a port matches only port 80, so the port is kept).
    let own = app.public_url().trim_end_matches('/').to_owned();
    let mut patterns = vec![own.clone()];
    if own.contains("://127.0.0.1:") {
        patterns.push(own.replacen("://127.0.0.1:", "://localhost:", 1));
    }
    for pattern in patterns {
        let command = AdminCommand::new(admin, AccountCommand::AuthoriseDomain { pattern });
        // An already-authorised pattern is no change; a refusal here means a bad public URL.
        engine
            .handle::<AccountSettings>(ACCOUNT_SETTINGS_STREAM, &command)
            .await?
            .map_err(ApiError::from)?;
    }

    let queue_stream = DEMO_QUEUE.stream_name();
    let create = QueueCommand::Create {
        id: DEMO_QUEUE,
        name: "Support".into(),
        reference: "demo_support".into(),
    };
    ignore_existing(
        engine
            .handle::<QueueDecider>(&queue_stream, &AdminCommand::new(admin, create))
            .await?,
    )?;
    let member = QueueCommand::SetMember {
        agent,
        level: Level::One,
    };
    engine
        .handle::<QueueDecider>(&queue_stream, &AdminCommand::new(admin, member))
        .await?
        .map_err(ApiError::from)?;

    let module_stream = DEMO_MODULE.stream_name();
    let mut settings = ModuleSettings::named("Demo website");
    settings.alias = "demo".into();
    settings.routing = Some(DEMO_QUEUE);
    settings.transcript_email = true;
    let create = ModuleCommand::Create {
        id: DEMO_MODULE,
        reference: "demo".into(),
        settings,
    };
    ignore_existing(
        engine
            .handle::<ModuleDecider>(&module_stream, &AdminCommand::new(admin, create))
            .await?,
    )?;
    let commands = [
        ModuleCommand::SetWorkingHours {
            hours: WorkingHours::always_open(),
        },
        ModuleCommand::SetForm {
            kind: FormKind::PreChat,
            form: Some(pre_chat_form()),
        },
        ModuleCommand::SetForm {
            kind: FormKind::Offline,
            form: Some(offline_form()),
        },
    ];
    for command in commands {
        engine
            .handle::<ModuleDecider>(&module_stream, &AdminCommand::new(admin, command))
            .await?
            .map_err(ApiError::from)?;
    }
    let _ = engine
        .agent(AgentCommand::SetCapacity { agent, capacity: 3 })
        .await?;
    let _ = engine
        .agent(AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        })
        .await?;
    Ok(credentials)
}

fn input(
    name: &str,
    label: &str,
    input: InputKind,
    required: bool,
    target: FieldTarget,
) -> FieldDef {
    FieldDef {
        name: name.into(),
        label: label.into(),
        kind: FieldKind::Input { input },
        required,
        target,
    }
}

fn pre_chat_form() -> FormDefinition {
    FormDefinition {
        fields: vec![
            input(
                "name",
                "Your name",
                InputKind::Text,
                true,
                FieldTarget::Contact(ContactField::firstname()),
            ),
            input(
                "email",
                "Your e-mail",
                InputKind::Email,
                true,
                FieldTarget::Contact(ContactField::email()),
            ),
        ],
    }
}

fn offline_form() -> FormDefinition {
    FormDefinition {
        fields: vec![
            input(
                "email",
                "Your e-mail",
                InputKind::Email,
                true,
                FieldTarget::Contact(ContactField::email()),
            ),
            FieldDef {
                name: "message".into(),
                label: "Your message".into(),
                kind: FieldKind::Textarea,
                required: true,
                target: FieldTarget::Nowhere,
            },
        ],
    }
}

async fn create_or_keep(
    app: &App,
    login: &str,
    name: &str,
    role: Role,
    password: &str,
) -> ApiResult<chat_core::AgentId> {
    match create_user(app, login, name, role, password).await {
        Ok(user) => Ok(user.id),
        Err(error) if error.detail.code == "already_exists" => {
            Ok(crate::http::auth::user_id(login))
        }
        Err(error) => Err(error),
    }
}

fn ignore_existing<T>(result: Result<T, chat_core::config::ConfigRejection>) -> ApiResult<()> {
    match result {
        Ok(_) | Err(chat_core::config::ConfigRejection::AlreadyExists { .. }) => Ok(()),
        Err(rejection) => Err(rejection.into()),
    }
}

fn credentials(data_dir: Option<&Path>) -> ApiResult<DemoCredentials> {
    let path = data_dir.map(|d| d.join("demo-credentials.txt"));
    if let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        let mut lines = text.lines();
        if let (Some(agent), Some(admin)) = (lines.next(), lines.next()) {
            return Ok(DemoCredentials {
                agent_password: agent.to_owned(),
                admin_password: admin.to_owned(),
            });
        }
    }
    let fresh = DemoCredentials {
        agent_password: random_password()?,
        admin_password: random_password()?,
    };
    if let Some(path) = path {
        crate::http::service::write_private(
            &path,
            &format!("{}\n{}\n", fresh.agent_password, fresh.admin_password),
        )
        .map_err(ApiError::internal)?;
    }
    Ok(fresh)
}

fn random_password() -> ApiResult<String> {
    let mut bytes = [0u8; 9];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
