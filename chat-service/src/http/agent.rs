//! The agent API (`/api/agent/…`): what the console does — sign in, presence (A1), the waiting
//! list and manual pick (A2, R2), chats in progress and their transcript (C4), every action in a
//! chat (A3: messages, articles, quick replies, video-call links, attachments, transfer, end,
//! block F5, case A6, redaction X4) and canned responses (A4).
//!
//! Why it is thin: chat-core decides every rule and the engine appends atomically (a manual pick
//! is `Assign { manual_pick: true }` with the agent's claim in the same append, so capacity R2 is
//! the agent aggregate's refusal, not a check here). A handler parses, checks who may reach the
//! chat, builds the command and maps the refusal with `ApiError::from`.
//!
//! Who may reach a chat (the shell's rule, V3): the agent who holds it, the agent of its current
//! episode (so the transcript of a chat they just ended stays readable), and any supervisor or
//! admin. Everyone else gets `not_the_assigned_agent`, the same code chat-core uses for an agent
//! acting on a chat they do not hold. chat-core lets any agent block, redact or convert; the API
//! narrows that to the agents who can see the chat at all.
//!
//! Retries (C9): every chat command takes an optional `command_id`; ids the command needs
//! (message id, case id) are derived from it, so a retry names the same message or case and
//! records nothing new. Canned responses derive their id from the `command_id` the same way.
//!
//! The console's shape: commands answer with a small [`AgentCommandDone`] (the chat's new version
//! and log position); live changes arrive on `/api/agent/ws`, whose frames carry the same
//! positions.

use crate::engine::{DomainEvent, derived_command_id};
use crate::http::App;
use crate::http::auth::{self, Operator, Role};
use crate::http::blobs::{BLOB_NAME_BYTES_MAX, BLOB_TYPE_BYTES_MAX, BlobMeta};
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::views::{ChatView, MessageView};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::agent::{Agent, AgentCommand, Presence};
use chat_core::config::{
    AdminCommand, CannedCommand, CannedContent, CannedDecider, CannedLibrary, CannedResponse,
    CannedScope, CannedState, ConfigRejection, KEY_CHARS_MAX, QueueDecider,
};
use chat_core::conversation::{
    Article, ChatCommand, ChatState, Conversation, EndedBy, MessageBody, Rejection,
};
use chat_core::projection::LiveStatus;
use chat_core::{
    AgentId, CannedResponseId, CaseId, ChatId, CommandId, Decider, FIELD_TEXT_BYTES_MAX,
    FieldValue, MessageId, QueueId,
};
use chat_store::GlobalPosition;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Most waiting chats one request of the waiting list returns.
pub const WAITING_LIST_MAX: usize = 200;
/// Waiting chats returned when the request names no `limit`.
pub const WAITING_LIST_DEFAULT: usize = 50;
/// Most personal canned responses one agent may keep (team ones are the admin's).
pub const CANNED_PERSONAL_MAX: usize = 100;
/// Longest `/shortcut` prefix a lookup accepts, in bytes (a shortcut is at most
/// `KEY_CHARS_MAX` characters, plus the `/`).
pub const CANNED_PREFIX_BYTES_MAX: usize = KEY_CHARS_MAX + 1;

/// The agent routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(sign_in))
        .routes(routes!(me))
        .routes(routes!(set_presence))
        .routes(routes!(waiting))
        .routes(routes!(my_chats))
        .routes(routes!(read_chat))
        .routes(routes!(take))
        .routes(routes!(send_message))
        .routes(routes!(upload_attachment))
        .routes(routes!(download_attachment))
        .routes(routes!(transfer))
        .routes(routes!(end))
        .routes(routes!(block))
        .routes(routes!(convert_to_case))
        .routes(routes!(redact))
        .routes(routes!(lookup_canned))
        .routes(routes!(personal_canned, create_canned))
        .routes(routes!(delete_canned))
}

// ----- sign-in and presence (A1) ----------------------------------------------------------------

/// Login and password.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    /// The login name (case-insensitive).
    pub login: String,
    /// The password.
    pub password: String,
}

/// An operator as the console shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// The user id, which is also the agent id.
    pub id: String,
    /// The login name.
    pub login: String,
    /// The name visitors and colleagues see.
    pub display_name: String,
    /// What the operator may do.
    pub role: Role,
}

/// A signed-in operator and their token.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedIn {
    /// Send as `Authorization: Bearer <token>` (or `?token=` on WebSockets).
    pub token: String,
    /// Seconds the token stays valid (a password change or disabling ends it earlier).
    pub expires_in_s: i64,
    /// Who signed in.
    pub user: OperatorView,
}

/// Presence as the API spells it (A1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PresenceValue {
    /// Taking chats.
    Online,
    /// Connected, taking no new chats.
    Away,
    /// Not connected.
    Offline,
}

impl From<Presence> for PresenceValue {
    fn from(presence: Presence) -> Self {
        match presence {
            Presence::Online => Self::Online,
            Presence::Away => Self::Away,
            Presence::Offline => Self::Offline,
        }
    }
}

impl From<PresenceValue> for Presence {
    fn from(presence: PresenceValue) -> Self {
        match presence {
            PresenceValue::Online => Self::Online,
            PresenceValue::Away => Self::Away,
            PresenceValue::Offline => Self::Offline,
        }
    }
}

/// An agent's presence, capacity and held chats, as the agent's stream has them now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentStatus {
    /// Online, away or offline.
    pub presence: PresenceValue,
    /// Most chats held at once (R2); set by an admin.
    pub capacity: u32,
    /// The chats held now.
    pub chats: Vec<String>,
    /// Whether a take would pass presence and capacity now.
    pub can_take: bool,
}

/// Who I am and where I stand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentMe {
    /// The operator.
    pub user: OperatorView,
    /// Presence, capacity, held chats.
    pub status: AgentStatus,
}

/// A presence change.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct SetPresence {
    /// The new presence.
    pub presence: PresenceValue,
}

fn operator_view(operator: &Operator) -> OperatorView {
    OperatorView {
        id: operator.id.to_string(),
        login: operator.login.clone(),
        display_name: operator.display_name.clone(),
        role: operator.role,
    }
}

fn agent_status(state: &chat_core::agent::AgentState) -> AgentStatus {
    AgentStatus {
        presence: state.presence.into(),
        capacity: state.capacity,
        chats: state.chats.iter().map(ToString::to_string).collect(),
        can_take: state.can_take_chat(),
    }
}

async fn status_of(app: &App, agent: AgentId) -> ApiResult<chat_core::agent::AgentState> {
    Ok(app.engine().state::<Agent>(&agent.stream_name()).await?)
}

/// Signs an operator in. A wrong password and an unknown login are the same 401, on purpose.
#[utoipa::path(post, path = "/api/agent/sign-in", tag = "agent",
    request_body = SignIn,
    responses(
        (status = 200, body = SignedIn),
        (status = 400, description = "unusable body", body = ErrorBody),
        (status = 401, description = "`unauthorized`: wrong login or password", body = ErrorBody),
    ))]
async fn sign_in(
    State(app): State<App>,
    ApiJson(request): ApiJson<SignIn>,
) -> ApiResult<Json<SignedIn>> {
    let (user, token) = auth::sign_in(&app, &request.login, &request.password).await?;
    Ok(Json(SignedIn {
        token,
        expires_in_s: auth::TOKEN_TTL_S,
        user: OperatorView {
            id: user.id.to_string(),
            login: user.login,
            display_name: user.display_name,
            role: user.role,
        },
    }))
}

/// Who the token belongs to, with presence, capacity and held chats.
#[utoipa::path(get, path = "/api/agent/me", tag = "agent",
    responses(
        (status = 200, body = AgentMe),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn me(State(app): State<App>, operator: Operator) -> ApiResult<Json<AgentMe>> {
    let state = status_of(&app, operator.id).await?;
    Ok(Json(AgentMe {
        user: operator_view(&operator),
        status: agent_status(&state),
    }))
}

/// A1: online, away or offline. Only online agents get new chats; held chats stay held.
#[utoipa::path(put, path = "/api/agent/presence", tag = "agent",
    request_body = SetPresence,
    responses(
        (status = 200, body = AgentStatus),
        (status = 400, description = "unusable body", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_presence(
    State(app): State<App>,
    operator: Operator,
    ApiJson(request): ApiJson<SetPresence>,
) -> ApiResult<Json<AgentStatus>> {
    let handled = app
        .engine()
        .agent(AgentCommand::SetPresence {
            agent: operator.id,
            presence: request.presence.into(),
        })
        .await?
        .map_err(ApiError::from)?;
    Ok(Json(agent_status(&handled.state)))
}

// ----- the waiting list, taking, my chats (A2, R2) ----------------------------------------------

/// `?limit=` of the waiting list.
#[derive(Clone, Copy, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitingQuery {
    /// Most chats to return (default 50, at most 200).
    pub limit: Option<usize>,
}

/// One chat waiting for an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WaitingChat {
    /// The chat.
    pub chat: String,
    /// Its module.
    pub module: String,
    /// Its contact.
    pub contact: String,
    /// The episode (above 1 for a resumed chat).
    pub episode: u32,
    /// `waiting` (in a queue) or `asynchronous` (nobody was available, the visitor may write).
    pub status: String,
    /// The queue after a transfer to a queue; none for the module's routing.
    pub queue: Option<String>,
    /// Since when it waits (RFC 3339).
    pub since: String,
    /// Page data (M6: firstname, lastname, message, vars).
    #[schema(value_type = Object)]
    pub page: serde_json::Value,
}

/// The waiting list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WaitingList {
    /// The longest-waiting chats first, at most `limit`.
    pub chats: Vec<WaitingChat>,
    /// How many chats wait in all.
    pub total: usize,
}

/// The chats waiting for an agent, longest-waiting first (X1's live list). Every agent sees
/// every waiting chat: a manual pick is not limited to queue members (docs/HTTP.md).
#[utoipa::path(get, path = "/api/agent/waiting", tag = "agent",
    params(WaitingQuery),
    responses(
        (status = 200, body = WaitingList),
        (status = 400, description = "`invalid_field` (query) or `limit_exceeded`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn waiting(
    State(app): State<App>,
    _operator: Operator,
    ApiQuery(query): ApiQuery<WaitingQuery>,
) -> ApiResult<Json<WaitingList>> {
    let limit = query.limit.unwrap_or(WAITING_LIST_DEFAULT);
    if limit > WAITING_LIST_MAX {
        return Err(ApiError::invalid(
            "limit",
            format!("at most {WAITING_LIST_MAX}"),
        ));
    }
    let board = app.engine().board();
    let all = board.live().waiting();
    let mut chats = Vec::with_capacity(limit.min(all.len()));
    for live in all.iter().take(limit) {
        let state = app
            .engine()
            .state::<Conversation>(&live.chat.stream_name())
            .await?;
        let (status, queue) = match live.status {
            LiveStatus::Waiting { queue } => ("waiting", queue.map(|q| q.to_string())),
            LiveStatus::Asynchronous => ("asynchronous", None),
            LiveStatus::Active { .. } => continue,
        };
        chats.push(WaitingChat {
            chat: live.chat.to_string(),
            module: live.module.to_string(),
            contact: live.contact.to_string(),
            episode: live.episode,
            status: status.to_owned(),
            queue,
            since: live.since.to_rfc3339(),
            page: state
                .record
                .as_ref()
                .and_then(|r| serde_json::to_value(&r.page).ok())
                .unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(Json(WaitingList {
        chats,
        total: all.len(),
    }))
}

/// One chat an agent holds, for the console's list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatSummary {
    /// The chat.
    pub chat: String,
    /// Its module.
    pub module: String,
    /// Its contact.
    pub contact: String,
    /// chat-core's phase (`Active` for a held chat).
    pub phase: String,
    /// The current episode.
    pub episode: u32,
    /// The chat stream's version.
    pub version: u64,
    /// Messages in the chat.
    pub messages: usize,
    /// The latest message, redactions applied.
    pub last_message: Option<MessageView>,
    /// Page data (M6).
    #[schema(value_type = Object)]
    pub page: serde_json::Value,
}

/// The chats I hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MyChats {
    /// Held chats, by id.
    pub chats: Vec<ChatSummary>,
}

/// The chats I hold now, from my own agent stream (exact, not eventual): at most my capacity.
#[utoipa::path(get, path = "/api/agent/chats", tag = "agent",
    responses(
        (status = 200, body = MyChats),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn my_chats(State(app): State<App>, operator: Operator) -> ApiResult<Json<MyChats>> {
    let held = status_of(&app, operator.id).await?.chats;
    let mut chats = Vec::with_capacity(held.len());
    for chat in held {
        let state = app
            .engine()
            .state::<Conversation>(&chat.stream_name())
            .await?;
        let Some(record) = &state.record else {
            continue;
        };
        chats.push(ChatSummary {
            chat: chat.to_string(),
            module: record.module.to_string(),
            contact: record.contact.to_string(),
            phase: format!("{:?}", state.phase),
            episode: state.episode,
            version: state.version,
            messages: state.messages.len(),
            last_message: state.messages.last().map(MessageView::from),
            page: serde_json::to_value(&record.page).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(Json(MyChats { chats }))
}

/// The chat, if it exists (404 otherwise: an unknown chat is not a rule's refusal).
async fn load_chat(app: &App, chat: ChatId) -> ApiResult<ChatState> {
    let state = app
        .engine()
        .state::<Conversation>(&chat.stream_name())
        .await?;
    if state.record.is_none() {
        return Err(ApiError::not_found(format!("chat {chat}")));
    }
    Ok(state)
}

/// The access rule of this module (see the module doc): holder, agent of the current episode,
/// or supervisor.
fn may_reach(operator: &Operator, state: &ChatState, action: &'static str) -> ApiResult<()> {
    let me = Some(operator.id);
    if operator.role >= Role::Supervisor || state.agent == me || state.episode_agent == me {
        Ok(())
    } else {
        Err(Rejection::NotTheAssignedAgent {
            agent: operator.id,
            action,
        }
        .into())
    }
}

/// Loads the chat and checks that `operator` may reach it.
async fn reachable_chat(
    app: &App,
    operator: &Operator,
    chat: ChatId,
    action: &'static str,
) -> ApiResult<ChatState> {
    let state = load_chat(app, chat).await?;
    may_reach(operator, &state, action)?;
    Ok(state)
}

/// The transcript and facts of a chat (X4: redacted messages keep id, author, time and the
/// redaction, and lose their content).
#[utoipa::path(get, path = "/api/agent/chats/{chat}", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    responses(
        (status = 200, body = ChatView),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn read_chat(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
) -> ApiResult<Json<ChatView>> {
    let state = reachable_chat(&app, &operator, chat, "read the chat").await?;
    Ok(Json(ChatView::from(&state)))
}

/// The optional retry id every command accepts (C9).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentCommandRequest {
    /// Send the same id again to retry without doing it twice; the server mints one if absent.
    pub command_id: Option<Uuid>,
}

fn command_id(given: Option<Uuid>) -> CommandId {
    CommandId::from_uuid(given.unwrap_or_else(Uuid::now_v7))
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentCommandDone {
    /// The chat.
    pub chat: String,
    /// The command id used (send it again to retry).
    pub command_id: String,
    /// The chat stream's version after the command.
    pub version: u64,
    /// The log position of the last event recorded (none for a recognised retry).
    pub position: Option<u64>,
    /// `false` when the command id was already recorded: nothing new happened (C9).
    pub recorded: bool,
    /// The message id (messages).
    pub message_id: Option<String>,
    /// The case id (conversion to a case).
    pub case_id: Option<String>,
}

/// Runs one chat command through the engine; a refusal becomes its `ApiError`.
async fn run(app: &App, chat: ChatId, command: ChatCommand) -> ApiResult<AgentCommandDone> {
    let id = command.command_id();
    let outcome = app
        .engine()
        .chat(chat, command)
        .await?
        .map_err(ApiError::from)?;
    Ok(AgentCommandDone {
        chat: chat.to_string(),
        command_id: id.as_uuid().to_string(),
        version: outcome.version,
        position: outcome.position,
        recorded: !outcome.events.is_empty(),
        message_id: None,
        case_id: None,
    })
}

/// A2: take a waiting chat (manual pick). The chat's assignment and my claim are one atomic
/// append: `at_capacity` / `not_online` when my agent stream refuses, `already_assigned` when
/// someone else was first, `chat_ended` for an ended chat.
#[utoipa::path(post, path = "/api/agent/chats/{chat}/take", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = AgentCommandRequest,
    responses(
        (status = 200, body = ChatView),
        (status = 400, description = "unusable body", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`already_assigned`, `chat_ended`, `at_capacity`, `not_online`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn take(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<AgentCommandRequest>,
) -> ApiResult<Json<ChatView>> {
    load_chat(&app, chat).await?;
    let outcome = app
        .engine()
        .chat(
            chat,
            ChatCommand::Assign {
                command_id: command_id(request.command_id),
                agent: operator.id,
                manual_pick: true,
            },
        )
        .await?
        .map_err(ApiError::from)?;
    Ok(Json(ChatView::from(&outcome.state)))
}

// ----- in a chat (A3, A5, A6, F5, X4) -----------------------------------------------------------

/// An article (A3): a title and a link, a body, or both.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ArticleBody {
    /// The title.
    pub title: String,
    /// Where it lives.
    pub link: Option<String>,
    /// Its text, sent inline.
    pub body: Option<String>,
}

/// A message from the agent: text, attachments, quick replies, an article, a video-call link —
/// any combination, at least one of text, attachment, article or link.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentMessage {
    /// Retry id (C9); the message id is derived from it.
    pub command_id: Option<Uuid>,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Ids of attachments uploaded to this chat (`POST …/attachments`).
    #[serde(default)]
    pub attachments: Vec<Uuid>,
    /// Persistent quick replies offered to the visitor.
    #[serde(default)]
    pub quick_replies: Vec<String>,
    /// An article.
    pub article: Option<ArticleBody>,
    /// A video-call link.
    pub video_call_link: Option<String>,
}

/// C4, A3: post a message as the chat's agent (only the holder may).
#[utoipa::path(post, path = "/api/agent/chats/{chat}/messages", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = AgentMessage,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 400, description = "`empty_message`, `limit_exceeded`, `invalid_field`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `not_assigned`, `chat_ended`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn send_message(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<AgentMessage>,
) -> ApiResult<Json<AgentCommandDone>> {
    load_chat(&app, chat).await?;
    let attachments =
        crate::http::blobs::message_attachments(app.blobs().as_ref(), chat, &request.attachments)
            .await?;
    let command_id = command_id(request.command_id);
    let message_id = MessageId::from_uuid(
        derived_command_id("agent-message", &[command_id.as_uuid().as_bytes()]).as_uuid(),
    );
    let body = MessageBody {
        text: request.text,
        attachments,
        quick_replies: request.quick_replies,
        article: request.article.map(|a| Article {
            title: a.title,
            link: a.link,
            body: a.body,
        }),
        video_call_link: request.video_call_link,
    };
    let mut done = run(
        &app,
        chat,
        ChatCommand::PostMessage {
            command_id,
            message_id,
            author: chat_core::conversation::Party::Agent(operator.id),
            body,
        },
    )
    .await?;
    done.message_id = Some(message_id.to_string());
    Ok(Json(done))
}

/// `?file_name=` of an upload.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name as shown to the visitor.
    pub file_name: String,
}

/// A stored attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentUpload {
    /// Its id: list it in a message's `attachments`.
    pub attachment: String,
    /// The file name.
    pub file_name: String,
    /// The content type (the request's `Content-Type`).
    pub content_type: String,
    /// Its size.
    pub size_bytes: u64,
}

/// A5: uploads an attachment's bytes (the raw request body) for a message of this chat. The
/// chat's attachment limit (the module's, snapshotted at start) and the service's
/// `upload_bytes_max` apply; the message that lists it records only its metadata.
#[utoipa::path(post, path = "/api/agent/chats/{chat}/attachments", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id"), UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes; its type in Content-Type"),
    responses(
        (status = 200, body = AgentUpload),
        (status = 400, description = "`invalid_field` (file_name, Content-Type)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`", body = ErrorBody),
        (status = 413, description = "`limit_exceeded`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn upload_attachment(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Json<AgentUpload>> {
    let state = reachable_chat(&app, &operator, chat, "upload attachments").await?;
    let file_name = query.file_name;
    if file_name.trim().is_empty() || file_name.len() > BLOB_NAME_BYTES_MAX {
        return Err(ApiError::invalid(
            "file_name",
            format!("1 to {BLOB_NAME_BYTES_MAX} bytes, not blank"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    if content_type.len() > BLOB_TYPE_BYTES_MAX {
        return Err(ApiError::invalid(
            "Content-Type",
            format!("at most {BLOB_TYPE_BYTES_MAX} bytes"),
        ));
    }
    let chat_max = state
        .record
        .as_ref()
        .map_or(0, |r| r.settings.attachment_bytes_max);
    let max = chat_max.min(app.limits().upload_bytes_max as u64);
    if max == 0 {
        return Err(ApiError::too_large(
            "attachment",
            "0 bytes (attachments are off)",
        ));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::too_large("attachment", format!("{max} bytes")))?;
    let id = Uuid::now_v7();
    let meta = BlobMeta {
        chat,
        file_name: file_name.clone(),
        content_type: content_type.clone(),
        size_bytes: bytes.len() as u64,
    };
    app.blobs().put(id, meta, bytes.to_vec()).await?;
    Ok(Json(AgentUpload {
        attachment: id.to_string(),
        file_name,
        content_type,
        size_bytes: bytes.len() as u64,
    }))
}

/// An attachment of a chat I may reach (visitors' uploads included), as a download.
#[utoipa::path(get, path = "/api/agent/chats/{chat}/attachments/{attachment}", tag = "agent",
    params(
        ("chat" = Uuid, Path, description = "The chat id"),
        ("attachment" = Uuid, Path, description = "The attachment id"),
    ),
    responses(
        (status = 200, description = "The bytes, with their Content-Type", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn download_attachment(
    State(app): State<App>,
    operator: Operator,
    ApiPath((chat, attachment)): ApiPath<(ChatId, Uuid)>,
) -> ApiResult<Response> {
    reachable_chat(&app, &operator, chat, "download attachments").await?;
    let Some((meta, bytes)) = app
        .blobs()
        .get(attachment)
        .await?
        .filter(|(m, _)| m.chat == chat)
    else {
        return Err(ApiError::not_found(format!("attachment {attachment}")));
    };
    let content_type = HeaderValue::from_str(&meta.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    // The name is the uploader's: keep it out of the header's syntax.
    let safe: String = meta
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A transfer: to another agent, or to a queue — exactly one.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TransferRequest {
    /// Retry id (C9).
    pub command_id: Option<Uuid>,
    /// The agent who gets the chat (must be online with room: their claim is appended with it).
    pub agent: Option<Uuid>,
    /// The queue the chat goes back to (level-2 members may take it, R1).
    pub queue: Option<Uuid>,
}

/// A3: hand the chat to another agent or put it back into a queue (only the holder may).
#[utoipa::path(post, path = "/api/agent/chats/{chat}/transfer", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = TransferRequest,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 400, description = "`invalid_field`: neither or both of agent and queue", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such chat or queue", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `transfer_to_self`, `not_online`, `at_capacity`, `chat_ended`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn transfer(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<TransferRequest>,
) -> ApiResult<Json<AgentCommandDone>> {
    load_chat(&app, chat).await?;
    let command_id = command_id(request.command_id);
    let command = match (request.agent, request.queue) {
        (Some(to), None) => ChatCommand::TransferToAgent {
            command_id,
            by: operator.id,
            to: AgentId::from_uuid(to),
        },
        (None, Some(queue)) => {
            let queue = QueueId::from_uuid(queue);
            let found = app
                .engine()
                .state::<QueueDecider>(&queue.stream_name())
                .await?;
            if found.queue.is_none() || found.deleted {
                return Err(ApiError::not_found(format!("queue {queue}")).with_field("queue"));
            }
            ChatCommand::TransferToQueue {
                command_id,
                by: operator.id,
                queue,
            }
        }
        _ => {
            return Err(ApiError::invalid(
                "agent",
                "give exactly one of agent and queue",
            ));
        }
    };
    Ok(Json(run(&app, chat, command).await?))
}

/// C6: end the chat as its agent (it ends for the visitor too).
#[utoipa::path(post, path = "/api/agent/chats/{chat}/end", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = AgentCommandRequest,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `not_assigned`, `chat_ended`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn end(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<AgentCommandRequest>,
) -> ApiResult<Json<AgentCommandDone>> {
    load_chat(&app, chat).await?;
    let command = ChatCommand::End {
        command_id: command_id(request.command_id),
        by: EndedBy::Agent(operator.id),
    };
    Ok(Json(run(&app, chat, command).await?))
}

/// F5: block the visitor. An open episode ends with disposition blocked; the contact can start
/// or resume no chat afterwards (`contact_blocked`).
#[utoipa::path(post, path = "/api/agent/chats/{chat}/block", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = AgentCommandRequest,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `already_blocked`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn block(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<AgentCommandRequest>,
) -> ApiResult<Json<AgentCommandDone>> {
    reachable_chat(&app, &operator, chat, "block the visitor").await?;
    let command = ChatCommand::Block {
        command_id: command_id(request.command_id),
        by: operator.id,
    };
    Ok(Json(run(&app, chat, command).await?))
}

/// A conversion to a case with template data.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CaseRequest {
    /// Retry id (C9); the case id is derived from it.
    pub command_id: Option<Uuid>,
    /// Template fields: name → text (at most 50 fields; names up to 64 characters, values up
    /// to 4096 bytes).
    #[serde(default)]
    pub template: BTreeMap<String, String>,
}

/// A6: turn the open chat into a case carrying its contact, messages and the template fields;
/// the episode ends with disposition case.
#[utoipa::path(post, path = "/api/agent/chats/{chat}/case", tag = "agent",
    params(("chat" = Uuid, Path, description = "The chat id")),
    request_body = CaseRequest,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 400, description = "`invalid_field`, `limit_exceeded`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `chat_ended`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn convert_to_case(
    State(app): State<App>,
    operator: Operator,
    ApiPath(chat): ApiPath<ChatId>,
    ApiJson(request): ApiJson<CaseRequest>,
) -> ApiResult<Json<AgentCommandDone>> {
    reachable_chat(&app, &operator, chat, "convert the chat to a case").await?;
    // chat-core bounds the number of fields; the sizes of names and values are the wire's.
    for (name, value) in &request.template {
        if name.is_empty() || name.chars().count() > KEY_CHARS_MAX {
            return Err(ApiError::invalid(
                "template",
                format!("field names are 1 to {KEY_CHARS_MAX} characters"),
            ));
        }
        if value.len() > FIELD_TEXT_BYTES_MAX {
            return Err(ApiError::too_large(
                format!("template.{name}"),
                format!("{FIELD_TEXT_BYTES_MAX} bytes"),
            ));
        }
    }
    let command_id = command_id(request.command_id);
    let case_id = CaseId::from_uuid(
        derived_command_id("agent-case", &[command_id.as_uuid().as_bytes()]).as_uuid(),
    );
    let template = request
        .template
        .into_iter()
        .map(|(name, value)| (name, FieldValue::Text(value)))
        .collect();
    let mut done = run(
        &app,
        chat,
        ChatCommand::ConvertToCase {
            command_id,
            by: operator.id,
            case_id,
            template,
        },
    )
    .await?;
    done.case_id = Some(case_id.to_string());
    Ok(Json(done))
}

/// X4: redact a message: its content disappears for every reader; the log keeps who and when.
#[utoipa::path(post, path = "/api/agent/chats/{chat}/messages/{message}/redact", tag = "agent",
    params(
        ("chat" = Uuid, Path, description = "The chat id"),
        ("message" = Uuid, Path, description = "The message id"),
    ),
    request_body = AgentCommandRequest,
    responses(
        (status = 200, body = AgentCommandDone),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`not_the_assigned_agent`, `unknown_message`, `already_redacted`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn redact(
    State(app): State<App>,
    operator: Operator,
    ApiPath((chat, message)): ApiPath<(ChatId, MessageId)>,
    ApiJson(request): ApiJson<AgentCommandRequest>,
) -> ApiResult<Json<AgentCommandDone>> {
    reachable_chat(&app, &operator, chat, "redact messages").await?;
    let command = ChatCommand::Redact {
        command_id: command_id(request.command_id),
        by: operator.id,
        message_id: message,
    };
    Ok(Json(run(&app, chat, command).await?))
}

// ----- canned responses (A4) --------------------------------------------------------------------

/// The canned responses of the log, folded on demand: each lookup first reads what was appended
/// since the previous one (so a response created a moment ago, by any process, is found), then
/// asks chat-core's [`CannedLibrary`] — the one place the lookup rule lives. The first lookup
/// after a start reads the whole log once; memory grows with the responses only.
#[derive(Debug, Default)]
pub struct CannedIndex {
    fold: tokio::sync::Mutex<CannedFold>,
}

#[derive(Debug, Default)]
struct CannedFold {
    position: GlobalPosition,
    library: CannedLibrary,
    states: BTreeMap<CannedResponseId, CannedState>,
}

impl CannedIndex {
    async fn caught_up(&self, app: &App) -> ApiResult<tokio::sync::MutexGuard<'_, CannedFold>> {
        let mut fold = self.fold.lock().await;
        let mut follower = app.engine().follower(fold.position);
        loop {
            let page = follower.read_page().await?;
            if page.is_empty() {
                break;
            }
            for followed in &page {
                if let DomainEvent::Canned { canned, event } = &followed.event {
                    fold.library.record(*canned, event);
                    CannedDecider::evolve(fold.states.entry(*canned).or_default(), event);
                }
            }
        }
        fold.position = follower.position();
        Ok(fold)
    }
}

impl CannedFold {
    fn personal(&self, agent: AgentId) -> Vec<&CannedResponse> {
        let mut mine: Vec<&CannedResponse> = self
            .states
            .values()
            .filter(|s| !s.deleted)
            .filter_map(|s| s.response.as_ref())
            .filter(|r| r.scope == CannedScope::Personal(agent))
            .collect();
        mine.sort_by(|a, b| (&a.content.shortcut, a.id).cmp(&(&b.content.shortcut, b.id)));
        mine
    }
}

/// One canned response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CannedResponseView {
    /// Its id.
    pub id: String,
    /// `personal` (mine) or `team`.
    pub scope: String,
    /// Typed after `/`.
    pub shortcut: String,
    /// The picker's title.
    pub title: String,
    /// The text inserted.
    pub body: String,
}

impl From<&CannedResponse> for CannedResponseView {
    fn from(response: &CannedResponse) -> Self {
        Self {
            id: response.id.to_string(),
            scope: match response.scope {
                CannedScope::Personal(_) => "personal",
                CannedScope::Team => "team",
            }
            .to_owned(),
            shortcut: response.content.shortcut.clone(),
            title: response.content.title.clone(),
            body: response.content.body.clone(),
        }
    }
}

/// Canned responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CannedResponses {
    /// The responses.
    pub responses: Vec<CannedResponseView>,
}

/// `?prefix=` of a lookup.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// What the agent typed, starting with `/` (`/gre` finds `greeting`).
    pub prefix: String,
}

/// A4: my personal and the team's responses whose shortcut starts with what follows the `/`;
/// personal first, then team, each by shortcut; at most 20 (type more to narrow).
#[utoipa::path(get, path = "/api/agent/canned", tag = "agent",
    params(LookupQuery),
    responses(
        (status = 200, body = CannedResponses),
        (status = 400, description = "`invalid_field` (prefix)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn lookup_canned(
    State(app): State<App>,
    operator: Operator,
    ApiQuery(query): ApiQuery<LookupQuery>,
) -> ApiResult<Json<CannedResponses>> {
    if query.prefix.len() > CANNED_PREFIX_BYTES_MAX {
        return Err(ApiError::invalid(
            "prefix",
            format!("at most {CANNED_PREFIX_BYTES_MAX} bytes"),
        ));
    }
    let fold = app.canned().caught_up(&app).await?;
    let responses = fold
        .library
        .lookup(operator.id, &query.prefix)
        .into_iter()
        .map(CannedResponseView::from)
        .collect();
    Ok(Json(CannedResponses { responses }))
}

/// My personal canned responses, by shortcut (at most 100).
#[utoipa::path(get, path = "/api/agent/canned/personal", tag = "agent",
    responses(
        (status = 200, body = CannedResponses),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn personal_canned(
    State(app): State<App>,
    operator: Operator,
) -> ApiResult<Json<CannedResponses>> {
    let fold = app.canned().caught_up(&app).await?;
    let responses = fold
        .personal(operator.id)
        .into_iter()
        .map(CannedResponseView::from)
        .collect();
    Ok(Json(CannedResponses { responses }))
}

/// A new personal canned response.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewCannedResponse {
    /// Retry id (C9); the response's id is derived from it.
    pub command_id: Option<Uuid>,
    /// Lowercase letters, digits and `_`, up to 64 characters.
    pub shortcut: String,
    /// Up to 100 characters.
    pub title: String,
    /// Up to 4000 characters, not blank.
    pub body: String,
}

/// A4: creates a personal canned response (only I see it). A retry with the same `command_id`
/// answers the same response.
#[utoipa::path(post, path = "/api/agent/canned/personal", tag = "agent",
    request_body = NewCannedResponse,
    responses(
        (status = 201, body = CannedResponseView),
        (status = 400, description = "`empty`, `too_long`, `invalid_key` (field named), `limit_exceeded`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 409, description = "`already_exists`: the command id was used for another response", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn create_canned(
    State(app): State<App>,
    operator: Operator,
    ApiJson(request): ApiJson<NewCannedResponse>,
) -> ApiResult<(StatusCode, Json<CannedResponseView>)> {
    let command_id = command_id(request.command_id);
    let id = CannedResponseId::from_uuid(
        derived_command_id("agent-canned", &[command_id.as_uuid().as_bytes()]).as_uuid(),
    );
    let scope = CannedScope::Personal(operator.id);
    let content = CannedContent {
        shortcut: request.shortcut,
        title: request.title,
        body: request.body,
    };
    {
        let fold = app.canned().caught_up(&app).await?;
        let already = fold.states.get(&id).and_then(|s| s.response.as_ref());
        if let Some(existing) = already {
            // A retry (C9): the same id with the same request is the same response.
            return if existing.scope == scope && existing.content == content {
                Ok((
                    StatusCode::CREATED,
                    Json(CannedResponseView::from(existing)),
                ))
            } else {
                Err(ConfigRejection::AlreadyExists {
                    object: "canned response",
                }
                .into())
            };
        }
        let held = fold.personal(operator.id).len();
        if held >= CANNED_PERSONAL_MAX {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "limit_exceeded",
                format!("canned_personal_max is {CANNED_PERSONAL_MAX}: delete one first"),
            )
            .with_field("canned_personal_max"));
        }
    }
    let command = AdminCommand::new(operator.id, CannedCommand::Create { id, scope, content });
    let handled = app
        .engine()
        .handle::<CannedDecider>(&id.stream_name(), &command)
        .await?
        .map_err(ApiError::from)?;
    let response = handled
        .state
        .response
        .as_ref()
        .ok_or_else(|| ApiError::internal("created canned response missing from its state"))?;
    Ok((
        StatusCode::CREATED,
        Json(CannedResponseView::from(response)),
    ))
}

/// Deletes one of my personal canned responses (team ones are the admin's).
#[utoipa::path(delete, path = "/api/agent/canned/personal/{canned}", tag = "agent",
    params(("canned" = Uuid, Path, description = "The canned response id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not my personal response", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`deleted`: already deleted", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn delete_canned(
    State(app): State<App>,
    operator: Operator,
    ApiPath(canned): ApiPath<CannedResponseId>,
) -> ApiResult<StatusCode> {
    let stream = canned.stream_name();
    let state = app.engine().state::<CannedDecider>(&stream).await?;
    let Some(response) = &state.response else {
        return Err(ApiError::not_found(format!("canned response {canned}")));
    };
    if response.scope != CannedScope::Personal(operator.id) {
        return Err(ApiError::forbidden(
            "only your own personal canned responses can be deleted here",
        ));
    }
    app.engine()
        .handle::<CannedDecider>(
            &stream,
            &AdminCommand::new(operator.id, CannedCommand::Delete),
        )
        .await?
        .map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
