//! The visitor API (`/api/visitor/…`): what the chat widget, or a module's public link (M9),
//! calls. A small plain-JS widget needs five things from it: the module (appearance, forms,
//! open now?), the trigger decision for a page, a chat start (or an offline message), the chat
//! itself (read, write, attachments) and the end of it (end, rate, resume). Live events come from
//! the visitor stream (`ws.rs`), which the widget opens with the `position` these answers carry.
//!
//! Every route is origin-checked ([`App::check_origin`]) and rate-limited ([`App::rate_limit`]):
//! chat routes by chat id, after the resume token was checked (so nobody can spend another
//! visitor's budget); module routes, before a chat exists, by client address (by module when the
//! address is unknown). Every business rule is chat-core's: forms are validated by
//! `validate_submission`, page data by `check_page_data`, triggers decided by `evaluate`, and chat
//! commands go through the engine, whose refusals map to [`ApiError`] in one place. What this
//! module decides itself, and why, is in docs/HTTP.md ("Visitor API").

use crate::engine::{ChatOutcome, EngineError, NewChat, Refusal, derived_command_id};
use crate::http::App;
use crate::http::blobs::{BLOB_NAME_BYTES_MAX, BLOB_TYPE_BYTES_MAX, BlobMeta};
use crate::http::error::{ApiError, ApiResult, ErrorBody, rule_code};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::views::ChatView;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chat_core::config::{
    AccountSettings, Contact, ContactCommand, ContactField, FieldError, FieldKind, FieldProblem,
    FileType, FormDefinition, FormErrors, FormKind, InputKind, Module, ModuleDecider,
    REFERENCE_CHARS_MAX, ReferenceKind, Reservation, Strategy, StrategyDecider, Style, Submission,
    VisitorContext, check_page_data, check_reference, evaluate, reservation_stream,
    validate_submission,
};
use chat_core::conversation::{
    ChatCommand, ChatState, Disposition, EndedBy, MessageBody, Origin, Party, Phase,
};
use chat_core::{
    AttachmentMeta, ChatId, CommandId, ContactId, FieldValue, MessageId, ModuleId, PageData,
};
use chat_store::StreamId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Bytes of randomness in a resume token (C1): 256 bits from the operating system, sent as 64
/// hex digits. The token is the visitor's only credential, so it must not be guessable.
pub const RESUME_TOKEN_RANDOM_BYTES: usize = 32;

/// The content types a chat message's attachment may have (A5). Modules configure the size
/// (`attachment_bytes_max`), not the types, so the service holds one list: common documents,
/// images, audio and video, and nothing a browser would run when opened from the service's
/// origin (HTML, SVG, XML, scripts), which keeps an upload from becoming stored cross-site
/// scripting. Checked with chat-core's own `accept` matching ([`FileType`]).
pub const CHAT_ATTACHMENT_ACCEPT: &str = "image/png,image/jpeg,image/gif,image/webp,\
    application/pdf,text/plain,text/csv,application/zip,application/msword,\
    application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
    application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,audio/*,video/*";

/// The visitor routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_module))
        .routes(routes!(evaluate_triggers))
        .routes(routes!(start_chat))
        .routes(routes!(leave_offline_message))
        .routes(routes!(get_chat))
        .routes(routes!(send_message))
        .routes(routes!(upload_attachment))
        .routes(routes!(download_attachment))
        .routes(routes!(resume_chat))
        .routes(routes!(rate_chat))
        .routes(routes!(end_chat))
        .layer(axum::middleware::from_fn(cors))
}

/// How long a browser may cache a preflight answer, in seconds.
pub const CORS_MAX_AGE_S: u32 = 600;

/// CORS for the widget, which runs on the customer's site and calls this service from another
/// origin: preflights (`OPTIONS` with `Access-Control-Request-Method`) are answered 204, and
/// answers name the caller's origin in `Access-Control-Allow-Origin`. The origin is reflected
/// without a check here because every route checks it itself ([`App::check_origin`], 403
/// `origin_not_allowed`) and no cookie or other ambient credential is ever involved (the resume
/// token is sent explicitly), so a reflected origin grants nothing the route would refuse.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == axum::http::Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, x-resume-token"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(CORS_MAX_AGE_S),
        );
        response
    } else {
        next.run(request).await
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
    response
}

// ----- request and response shapes ---------------------------------------------------------

/// A module as the widget needs it (M4, F1, S2, A5, M9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModuleView {
    /// The module id.
    pub id: String,
    /// Its reference (M2).
    pub reference: String,
    /// Display name.
    pub name: String,
    /// The widget's language (the module's, else the account's).
    pub language: String,
    /// The module's public chat link (M9).
    pub chat_url: String,
    /// How the widget looks (M4).
    pub appearance: AppearanceView,
    /// The pre-chat form's fields, in display order (empty: no form).
    pub pre_chat_form: Vec<FieldView>,
    /// The offline form's fields (shown when `open_now` is false or a start went offline).
    pub offline_form: Vec<FieldView>,
    /// Whether the module is inside its working intervals now (S2). A start can still go
    /// offline when the module is at its maximum of concurrent chats (C2).
    pub open_now: bool,
    /// When `open_now` next changes (RFC 3339), if it ever does.
    pub next_change: Option<String>,
    /// Whether the visitor may keep writing while no agent is available (C3).
    pub async_chatting: bool,
    /// What a chat message's attachment may be (A5).
    pub attachments: AttachmentLimits,
}

/// The widget's appearance (M4), flattened for a script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppearanceView {
    /// `simple` or `advanced`.
    pub style: String,
    /// The title.
    pub title: String,
    /// The module colour (`#rrggbb`).
    pub module_colour: String,
    /// The button colour (`#rrggbb`).
    pub button_colour: String,
    /// The button icon's name.
    pub button_icon: String,
    /// Advanced style: up to 3 avatar image URLs.
    pub avatars: Vec<String>,
    /// Advanced style: the heading.
    pub heading: Option<String>,
    /// Advanced style: the button title.
    pub button_title: Option<String>,
}

/// One form field (F1), flattened for a script.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldView {
    /// The key to answer it under.
    pub name: String,
    /// The label (for `label`, the whole static text).
    pub label: String,
    /// `label`, `select`, `input`, `textarea`, `radio`, `checkboxes`, `agreement` or
    /// `attachment`.
    pub kind: String,
    /// For `input`: `text`, `number` or `email`.
    pub input: Option<String>,
    /// For `select`, `radio`, `checkboxes`: the options in display order.
    pub options: Vec<String>,
    /// Whether an answer is required (an agreement: must be ticked).
    pub required: bool,
    /// For `attachment`: most files.
    pub files_max: Option<usize>,
    /// For `attachment`: largest file, in bytes.
    pub file_bytes_max: Option<u64>,
    /// For `attachment`: accepted types as an HTML `accept` attribute (empty: any).
    pub accept: Option<String>,
}

/// What a chat message's attachment may be (A5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentLimits {
    /// Largest file, in bytes: the module's limit, capped by the service's upload limit (0: the
    /// module takes no attachments).
    pub bytes_max: u64,
    /// Accepted content types, as an HTML `accept` attribute.
    pub accept: String,
}

/// What the widget knows about the visitor on this page view (T2, T4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriggerRequest {
    /// The page URL.
    pub url: String,
    /// Seconds on the current page.
    #[serde(default)]
    pub time_on_page_s: u32,
    /// Pages viewed in this visit, this one included.
    #[serde(default)]
    pub pages_viewed: u32,
    /// Whether the visitor has been here before.
    #[serde(default)]
    pub returning: bool,
    /// Custom events the page has sent (at most 100).
    #[serde(default)]
    pub events: Vec<String>,
}

/// What the widget does on this page (T4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TriggerDecision {
    /// `hidden`, `show_icon` or `open_chat`.
    pub display: String,
    /// `no_strategy_attached`, `no_strategy_matched` or `matched`.
    pub reason: String,
    /// The strategy that matched, when `reason` is `matched`.
    pub strategy: Option<String>,
}

/// Where the visitor came from (M9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitOrigin {
    /// The embedded widget.
    #[default]
    Widget,
    /// The module's public chat link.
    Link,
}

/// Data the page passes in (M6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageBody {
    /// The visitor's first name.
    pub firstname: Option<String>,
    /// The visitor's last name.
    pub lastname: Option<String>,
    /// A message shown to the agent at the start.
    pub message: Option<String>,
    /// Name/value pairs shown to the agent during the chat (at most 50, names unique).
    #[serde(default)]
    pub vars: Vec<PageVar>,
}

/// One page variable (M6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PageVar {
    /// The name.
    pub name: String,
    /// The value.
    pub value: String,
}

/// A chat start (C1) or an offline message (O1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StartRequest {
    /// Retry id (C9): a retry with the same id returns the same chat and token. Keep it
    /// private to the widget: it opens the chat like the token does.
    pub command_id: Option<Uuid>,
    /// The form's answers by field name: a string (input, textarea, select, radio), a list of
    /// strings (checkboxes), `true`/`false` (agreement); a number is read as its text.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub form: BTreeMap<String, Value>,
    /// Page data (M6).
    #[serde(default)]
    pub page: PageBody,
    /// `widget` (default) or `link` (M9).
    #[serde(default)]
    pub origin: VisitOrigin,
}

/// A started chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StartedChat {
    /// The chat id.
    pub chat: String,
    /// The resume token: send it as `X-Resume-Token` (or `?token=` on the stream).
    pub resume_token: String,
    /// Whether the chat went offline (C2): the widget shows the offline form.
    pub offline: bool,
    /// `outside_working_hours` or `module_at_capacity` when offline.
    pub offline_reason: Option<String>,
    /// The global position of the chat's latest event: open the stream with `after=` it.
    pub position: u64,
    /// The chat.
    pub view: ChatView,
}

/// A chat and the global position of its latest event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VisitorChat {
    /// The global position of the chat's latest event: open the stream with `after=` it.
    pub position: u64,
    /// The chat.
    pub view: ChatView,
}

/// A message from the visitor (C4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// Retry id (C9): a retry posts nothing new.
    pub command_id: Option<Uuid>,
    /// The text (at most 4096 bytes).
    #[serde(default)]
    pub text: String,
    /// Ids of attachments uploaded to this chat (at most 10).
    #[serde(default)]
    pub attachments: Vec<Uuid>,
}

/// A posted message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SentMessage {
    /// The message id (the same for a retry).
    pub message_id: String,
    /// The global position of the chat's latest event.
    pub position: u64,
    /// The chat.
    pub view: ChatView,
}

/// A command that needs nothing but its retry id (end, resume).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CommandRequest {
    /// Retry id (C9).
    pub command_id: Option<Uuid>,
}

/// A rating (X3).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RateRequest {
    /// Retry id (C9).
    pub command_id: Option<Uuid>,
    /// 1 to 5.
    pub score: u32,
    /// Optional comment (at most 2000 bytes).
    pub comment: Option<String>,
}

/// `?name=` of an upload.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file name (at most 255 bytes, no path separators or control characters).
    pub name: String,
}

/// An uploaded attachment: send its `id` in a message's `attachments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    /// The attachment id.
    pub id: String,
    /// The file name.
    pub file_name: String,
    /// The content type.
    pub content_type: String,
    /// The size, in bytes.
    pub size_bytes: u64,
    /// Where to download it (with the resume token).
    pub url: String,
}

// ----- who is asking ------------------------------------------------------------------------

/// The client's address, when the server knows it (it does when served by
/// [`crate::http::service::Service`], which records peer addresses).
struct Client(Option<IpAddr>);

impl FromRequestParts<App> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// The resume token: the `X-Resume-Token` header, else `?token=` (a download link cannot set
/// headers).
fn resume_token(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(value) = headers.get("x-resume-token") {
        return value.to_str().ok().map(str::to_owned);
    }
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token").then(|| value.to_owned())
    })
}

/// Origin, then the token, then the chat's rate limit; the chat's state on success.
async fn visitor_access(
    app: &App,
    headers: &HeaderMap,
    uri: &Uri,
    chat: ChatId,
) -> ApiResult<ChatState> {
    app.check_origin(headers).await?;
    let state = app
        .visitor_chat(chat, resume_token(headers, uri).as_deref())
        .await?;
    app.rate_limit(&format!("chat:{chat}"))?;
    Ok(state)
}

/// Origin, the rate limit (by address, else by module), then the module.
async fn module_access(
    app: &App,
    headers: &HeaderMap,
    client: &Client,
    key: &str,
) -> ApiResult<Module> {
    app.check_origin(headers).await?;
    // Longer than any id or reference: not a module, and not a key worth remembering.
    if key.len() > REFERENCE_CHARS_MAX.max(36) {
        return Err(ApiError::not_found(format!("module {key:?}")));
    }
    match client.0 {
        Some(address) => app.rate_limit(&format!("addr:{address}"))?,
        None => app.rate_limit(&format!("module:{}", key.to_ascii_lowercase()))?,
    }
    find_module(app, key).await
}

/// M9: a module by its id or by its reference (ids first; a reference is looked up through its
/// reservation stream, the one place that knows who holds it).
async fn find_module(app: &App, key: &str) -> ApiResult<Module> {
    let engine = app.engine();
    let live = |state: chat_core::config::ModuleState| state.module.filter(|_| !state.deleted);
    if let Ok(id) = Uuid::parse_str(key) {
        let state = engine
            .state::<ModuleDecider>(&ModuleId::from_uuid(id).stream_name())
            .await?;
        if let Some(module) = live(state) {
            return Ok(module);
        }
    }
    let missing = || ApiError::not_found(format!("module {key:?}"));
    check_reference(key).map_err(|_| missing())?;
    let reservation = engine
        .state::<Reservation>(&reservation_stream(ReferenceKind::Module, key))
        .await?;
    let holder = reservation.holder.ok_or_else(missing)?;
    let state = engine
        .state::<ModuleDecider>(&ModuleId::from_uuid(holder).stream_name())
        .await?;
    live(state).ok_or_else(missing)
}

fn command_id(given: Option<Uuid>) -> CommandId {
    CommandId::from_uuid(given.unwrap_or_else(Uuid::now_v7))
}

/// The global position of the chat's event at `version` (its latest, for the state's version).
async fn chat_position(app: &App, chat: ChatId, version: u64) -> ApiResult<u64> {
    if version == 0 {
        return Ok(0);
    }
    let stream = StreamId::new(chat.stream_name())?;
    let events = app
        .engine()
        .store()
        .read_stream(&stream, version, 1)
        .await?;
    Ok(events.first().map_or(0, |e| e.global_position))
}

/// The outcome of a chat command: refusals mapped, the position of its last event (read back
/// for a recognised retry, which appends nothing).
async fn handled(
    app: &App,
    chat: ChatId,
    result: Result<Result<ChatOutcome, Refusal>, EngineError>,
) -> ApiResult<(ChatState, u64)> {
    let outcome = result?.map_err(ApiError::from)?;
    let position = match outcome.position {
        Some(position) => position,
        None => chat_position(app, chat, outcome.state.version).await?,
    };
    Ok((outcome.state, position))
}

// ----- module routes ------------------------------------------------------------------------

/// The module as the widget needs it: appearance, forms, open now, attachment limits. `{module}`
/// is the module's id or its reference (M9).
#[utoipa::path(get, path = "/api/visitor/modules/{module}", tag = "visitor",
    params(("module" = String, Path, description = "module id or reference")),
    responses(
        (status = 200, body = ModuleView),
        (status = 403, description = "origin_not_allowed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn get_module(
    State(app): State<App>,
    ApiPath(key): ApiPath<String>,
    client: Client,
    headers: HeaderMap,
) -> ApiResult<axum::Json<ModuleView>> {
    let module = module_access(&app, &headers, &client, &key).await?;
    let account = app.account().await?;
    let now = app.engine().clock().now();
    let schedule = module.schedule(account.default_time_zone);
    let appearance = &module.settings.appearance;
    let (style, avatars, heading, button_title) = match &appearance.style {
        Style::Simple => ("simple", Vec::new(), None, None),
        Style::Advanced {
            avatars,
            heading,
            button_title,
        } => (
            "advanced",
            avatars.clone(),
            Some(heading.clone()),
            Some(button_title.clone()),
        ),
    };
    let form = |kind| module.forms.get(&kind).map(form_view).unwrap_or_default();
    Ok(axum::Json(ModuleView {
        id: module.id.to_string(),
        reference: module.reference.clone(),
        name: module.settings.name.clone(),
        language: module.language(&account.default_language).to_owned(),
        chat_url: module.public_chat_url(app.public_url()),
        appearance: AppearanceView {
            style: style.to_owned(),
            title: appearance.title.clone(),
            module_colour: appearance.module_colour.clone(),
            button_colour: appearance.button_colour.clone(),
            button_icon: appearance.button_icon.clone(),
            avatars,
            heading,
            button_title,
        },
        pre_chat_form: form(FormKind::PreChat),
        offline_form: form(FormKind::Offline),
        open_now: schedule.is_open(now),
        next_change: schedule.next_change(now).map(|t| t.to_rfc3339()),
        async_chatting: module.settings.async_chatting,
        attachments: AttachmentLimits {
            bytes_max: module
                .settings
                .attachment_bytes_max
                .min(app.limits().upload_bytes_max as u64),
            accept: CHAT_ATTACHMENT_ACCEPT.to_owned(),
        },
    }))
}

fn form_view(form: &FormDefinition) -> Vec<FieldView> {
    form.fields
        .iter()
        .map(|field| {
            let mut view = FieldView {
                name: field.name.clone(),
                label: field.label.clone(),
                kind: String::new(),
                input: None,
                options: Vec::new(),
                required: field.required,
                files_max: None,
                file_bytes_max: None,
                accept: None,
            };
            view.kind = match &field.kind {
                FieldKind::Label => "label",
                FieldKind::Select { options } => {
                    view.options.clone_from(options);
                    "select"
                }
                FieldKind::Input { input } => {
                    view.input = Some(
                        match input {
                            InputKind::Text => "text",
                            InputKind::Number => "number",
                            InputKind::Email => "email",
                        }
                        .to_owned(),
                    );
                    "input"
                }
                FieldKind::Textarea => "textarea",
                FieldKind::Radio { options } => {
                    view.options.clone_from(options);
                    "radio"
                }
                FieldKind::Checkboxes { options } => {
                    view.options.clone_from(options);
                    "checkboxes"
                }
                FieldKind::Agreement => "agreement",
                FieldKind::Attachment {
                    files_max,
                    file_bytes_max,
                    accept,
                } => {
                    view.files_max = Some(*files_max);
                    view.file_bytes_max = Some(*file_bytes_max);
                    view.accept = Some(accept_attribute(accept));
                    "attachment"
                }
            }
            .to_owned();
            view
        })
        .collect()
}

fn accept_attribute(accept: &[FileType]) -> String {
    accept
        .iter()
        .map(|t| match t {
            FileType::Extension(ext) => ext.clone(),
            FileType::AnySubtype(kind) => format!("{kind}/*"),
            FileType::Mime(mime) => mime.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// T4: hidden, show the icon, or open the chat, for this visitor on this page — chat-core's
/// `evaluate` over the module's attached strategies.
#[utoipa::path(post, path = "/api/visitor/modules/{module}/triggers", tag = "visitor",
    params(("module" = String, Path, description = "module id or reference")),
    request_body = TriggerRequest,
    responses(
        (status = 200, body = TriggerDecision),
        (status = 400, description = "invalid_json, too_long, too_many, invalid_key", body = ErrorBody),
        (status = 403, description = "origin_not_allowed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn evaluate_triggers(
    State(app): State<App>,
    ApiPath(key): ApiPath<String>,
    client: Client,
    headers: HeaderMap,
    ApiJson(request): ApiJson<TriggerRequest>,
) -> ApiResult<axum::Json<TriggerDecision>> {
    let module = module_access(&app, &headers, &client, &key).await?;
    let visitor = VisitorContext {
        url: request.url,
        time_on_page_s: request.time_on_page_s,
        pages_viewed: request.pages_viewed,
        returning: request.returning,
        events: request.events.into_iter().collect(),
    };
    visitor.check()?;
    // At most STRATEGIES_PER_MODULE_MAX reads, each served from the engine's state cache.
    let mut strategies: Vec<Strategy> = Vec::with_capacity(module.strategies.len());
    for id in module.strategies.keys() {
        let state = app
            .engine()
            .state::<StrategyDecider>(&id.stream_name())
            .await?;
        if let Some(strategy) = state.strategy.filter(|_| !state.deleted) {
            strategies.push(strategy);
        }
    }
    let decision = evaluate(&module, &strategies, &visitor, app.engine().clock().now());
    let strategy = match decision.reason {
        chat_core::config::Reason::Matched(id) => Some(id.to_string()),
        _ => None,
    };
    Ok(axum::Json(TriggerDecision {
        display: rule_code(&decision.display),
        reason: rule_code(&decision.reason),
        strategy,
    }))
}

/// C1, C2: starts a chat with the pre-chat form's answers and the page's data. Returns the chat,
/// its resume token and, when the module is closed or full, `offline: true` (the widget then
/// shows the offline form).
#[utoipa::path(post, path = "/api/visitor/modules/{module}/chats", tag = "visitor",
    params(("module" = String, Path, description = "module id or reference")),
    request_body = StartRequest,
    responses(
        (status = 201, description = "started (also when it went offline)", body = StartedChat),
        (status = 200, description = "a retry: the chat its command id started", body = StartedChat),
        (status = 400, description = "invalid_form (fields named), invalid_field, too_many_bytes, too_many, limit_exceeded, invalid_json", body = ErrorBody),
        (status = 403, description = "origin_not_allowed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "contact_blocked, module_cannot_take_chats", body = ErrorBody),
        (status = 413, description = "limit_exceeded (body)", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn start_chat(
    State(app): State<App>,
    ApiPath(key): ApiPath<String>,
    client: Client,
    headers: HeaderMap,
    ApiJson(request): ApiJson<StartRequest>,
) -> ApiResult<Response> {
    let module = module_access(&app, &headers, &client, &key).await?;
    start(&app, &module, request, FormKind::PreChat).await
}

/// O1: leaves a message with the offline form's answers. It is kept as an offline chat (for a
/// supervisor, and forwarded or turned into an e-mail by the outbox as the module says). If the
/// module opened in the meantime, the chat is queued like any other: `offline` says which.
#[utoipa::path(post, path = "/api/visitor/modules/{module}/offline-messages", tag = "visitor",
    params(("module" = String, Path, description = "module id or reference")),
    request_body = StartRequest,
    responses(
        (status = 201, description = "kept (offline: true), or queued when the module is open", body = StartedChat),
        (status = 200, description = "a retry", body = StartedChat),
        (status = 400, description = "invalid_form (fields named), invalid_field, too_many_bytes, too_many, limit_exceeded, invalid_json", body = ErrorBody),
        (status = 403, description = "origin_not_allowed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "contact_blocked, module_cannot_take_chats", body = ErrorBody),
        (status = 413, description = "limit_exceeded (body)", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn leave_offline_message(
    State(app): State<App>,
    ApiPath(key): ApiPath<String>,
    client: Client,
    headers: HeaderMap,
    ApiJson(request): ApiJson<StartRequest>,
) -> ApiResult<Response> {
    let module = module_access(&app, &headers, &client, &key).await?;
    start(&app, &module, request, FormKind::Offline).await
}

/// The chat id a start's command id names: derived, so a retry reaches the same chat and the
/// chat's own retry check (C9) answers it.
fn chat_for(command: CommandId) -> ChatId {
    let id = derived_command_id("visitor-start", &[command.as_uuid().as_bytes()]);
    ChatId::from_uuid(id.as_uuid())
}

/// The contact id a matching value names (F4): derived from the field and the value as
/// chat-core's directory compares them (trimmed, lower case), so two starts with the same e-mail
/// reach the same contact stream — also on two processes at once, where a looked-up directory
/// could not see the other's creation.
fn contact_for(field: &ContactField, value: &str) -> ContactId {
    let normalised = value.trim().to_lowercase();
    let id = derived_command_id(
        "visitor-contact",
        &[field.as_str().as_bytes(), normalised.as_bytes()],
    );
    ContactId::from_uuid(id.as_uuid())
}

async fn start(
    app: &App,
    module: &Module,
    request: StartRequest,
    kind: FormKind,
) -> ApiResult<Response> {
    let page = page_data(request.page)?;
    let submission = submission(request.form)?;
    let empty = FormDefinition::default();
    let form = module.forms.get(&kind).unwrap_or(&empty);
    let validated = validate_submission(form, &submission)?;

    let command_id = command_id(request.command_id);
    let chat = chat_for(command_id);
    let account = app.account().await?;
    let mut fields = validated.contact.clone();
    for (field, value) in [
        (ContactField::firstname(), &page.firstname),
        (ContactField::lastname(), &page.lastname),
    ] {
        if let Some(value) = value.as_ref().filter(|v| !v.trim().is_empty()) {
            fields.entry(field).or_insert_with(|| value.clone());
        }
    }
    let (contact, known) = resolve_contact(app, &account, &fields, chat).await?;
    let new = NewChat {
        command_id,
        chat,
        module: module.id,
        contact,
        contact_email: fields.get(&ContactField::email()).cloned(),
        resume_token: fresh_resume_token()?,
        page,
        form_answers: validated.values,
        routing_vars: validated.routing,
        origin: match request.origin {
            VisitOrigin::Widget => Origin::Widget,
            VisitOrigin::Link => Origin::Link,
        },
    };
    let result = app.engine().start_chat(new).await;
    let retry = matches!(&result, Ok(Ok(outcome)) if outcome.events.is_empty());
    let (state, position) = handled(app, chat, result).await?;
    // After the chat, so that a refused start (a blocked contact) leaves the contact untouched.
    record_contact(app, contact, known, fields).await;
    let resume_token = state
        .record
        .as_ref()
        .map(|r| r.resume_token.clone())
        .unwrap_or_default();
    let offline_reason = match state.disposition {
        Some(Disposition::Offline { reason }) if state.phase == Phase::Ended => {
            Some(rule_code(&reason))
        }
        _ => None,
    };
    let status = if retry {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = StartedChat {
        chat: chat.to_string(),
        resume_token,
        offline: offline_reason.is_some(),
        offline_reason,
        position,
        view: ChatView::from(&state),
    };
    Ok((status, axum::Json(body)).into_response())
}

/// Page data (M6) in chat-core's shape, checked by chat-core's `check_page_data`.
fn page_data(page: PageBody) -> ApiResult<PageData> {
    if page.vars.len() > chat_core::PAGE_VARS_MAX {
        return Err(ApiError::from(
            chat_core::config::ConfigRejection::TooMany {
                field: "vars".to_owned(),
                max: chat_core::PAGE_VARS_MAX,
            },
        ));
    }
    let mut vars = BTreeMap::new();
    for var in page.vars {
        if vars.contains_key(&var.name) {
            return Err(ApiError::invalid(
                "page.vars",
                format!("{:?} is given twice", var.name),
            ));
        }
        vars.insert(var.name, var.value);
    }
    let data = PageData {
        firstname: page.firstname,
        lastname: page.lastname,
        message: page.message,
        vars,
    };
    check_page_data(&data)?;
    Ok(data)
}

/// JSON answers in chat-core's [`FieldValue`] shapes; a shape no field takes is refused as a
/// form error naming the field (`null` counts as unanswered).
fn submission(form: BTreeMap<String, Value>) -> ApiResult<Submission> {
    let mut submission = Submission::new();
    let mut errors = Vec::new();
    for (name, value) in form {
        let value = match value {
            Value::Null => continue,
            Value::String(text) => FieldValue::Text(text),
            Value::Bool(ticked) => FieldValue::Agreed(ticked),
            Value::Number(number) => FieldValue::Text(number.to_string()),
            Value::Array(items) if items.iter().all(Value::is_string) => FieldValue::Many(
                items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            Value::Array(_) | Value::Object(_) => {
                errors.push(FieldError {
                    field: name,
                    problem: FieldProblem::WrongKind {
                        expected: "a string, a list of strings or true/false",
                    },
                });
                continue;
            }
        };
        submission.insert(name, value);
    }
    if errors.is_empty() {
        Ok(submission)
    } else {
        Err(FormErrors { errors }.into())
    }
}

/// F4: the contact the form's contact fields name — by the account's matching field, then by
/// e-mail — and whether it exists. Nobody named: a new contact of this chat's own.
async fn resolve_contact(
    app: &App,
    account: &AccountSettings,
    fields: &BTreeMap<ContactField, String>,
    chat: ChatId,
) -> ApiResult<(ContactId, bool)> {
    let email = ContactField::email();
    let mut candidates: Vec<ContactId> = Vec::with_capacity(2);
    for field in [&account.contact_match_field, &email] {
        if let Some(value) = fields.get(field).filter(|v| !v.trim().is_empty()) {
            let id = contact_for(field, value);
            if !candidates.contains(&id) {
                candidates.push(id);
            }
        }
    }
    for id in &candidates {
        let contact = app.engine().state::<Contact>(&id.stream_name()).await?;
        if contact.id.is_some() {
            return Ok((*id, true));
        }
    }
    let anonymous = || {
        let id = derived_command_id("visitor-contact-anonymous", &[chat.as_uuid().as_bytes()]);
        ContactId::from_uuid(id.as_uuid())
    };
    Ok((candidates.first().copied().unwrap_or_else(anonymous), false))
}

/// F4: creates the contact or merges the newer values into it. The chat already started, so a
/// refusal here (a contact over its field limit) is logged, not answered.
async fn record_contact(
    app: &App,
    contact: ContactId,
    known: bool,
    fields: BTreeMap<ContactField, String>,
) {
    let stream = contact.stream_name();
    let engine = app.engine();
    let mut result = if known {
        engine
            .handle::<Contact>(&stream, &ContactCommand::Update { fields })
            .await
            .map(|r| r.map(|_| ()))
    } else {
        let create = ContactCommand::Create {
            id: contact,
            fields: fields.clone(),
        };
        match engine.handle::<Contact>(&stream, &create).await {
            // Created meanwhile (a concurrent start with the same e-mail, or a retry): merge.
            Ok(Err(chat_core::config::ConfigRejection::AlreadyExists { .. })) => engine
                .handle::<Contact>(&stream, &ContactCommand::Update { fields })
                .await
                .map(|r| r.map(|_| ())),
            other => other.map(|r| r.map(|_| ())),
        }
    };
    if let Ok(Err(rejection)) = &result {
        tracing::warn!(%contact, %rejection, "contact not recorded");
        result = Ok(Ok(()));
    }
    if let Err(error) = result {
        tracing::error!(%contact, %error, "contact not recorded");
    }
}

fn fresh_resume_token() -> ApiResult<String> {
    let mut bytes = [0u8; RESUME_TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

// ----- chat routes --------------------------------------------------------------------------

/// The visitor's chat (V3: only with its resume token).
#[utoipa::path(get, path = "/api/visitor/chats/{chat}", tag = "visitor",
    params(("chat" = String, Path, description = "chat id")),
    security(("resume_token" = [])),
    responses(
        (status = 200, body = VisitorChat),
        (status = 400, description = "invalid_field (path)", body = ErrorBody),
        (status = 401, description = "unauthorized: no token", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn get_chat(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<axum::Json<VisitorChat>> {
    let state = visitor_access(&app, &headers, &uri, chat).await?;
    let position = chat_position(&app, chat, state.version).await?;
    Ok(axum::Json(VisitorChat {
        position,
        view: ChatView::from(&state),
    }))
}

/// C4: the visitor writes (text and attachments uploaded to this chat).
#[utoipa::path(post, path = "/api/visitor/chats/{chat}/messages", tag = "visitor",
    params(("chat" = String, Path, description = "chat id")),
    security(("resume_token" = [])),
    request_body = SendMessageRequest,
    responses(
        (status = 201, body = SentMessage),
        (status = 400, description = "limit_exceeded (message_text_bytes_max, attachments_per_message_max, attachment_bytes_max), empty_message, invalid_field, invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 409, description = "chat_ended, not_started", body = ErrorBody),
        (status = 413, description = "limit_exceeded (body)", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn send_message(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(request): ApiJson<SendMessageRequest>,
) -> ApiResult<(StatusCode, axum::Json<SentMessage>)> {
    visitor_access(&app, &headers, &uri, chat).await?;
    let attachments =
        crate::http::blobs::message_attachments(app.blobs().as_ref(), chat, &request.attachments)
            .await?;
    let command_id = command_id(request.command_id);
    let message_id = MessageId::from_uuid(
        derived_command_id("visitor-message", &[command_id.as_uuid().as_bytes()]).as_uuid(),
    );
    let command = ChatCommand::PostMessage {
        command_id,
        message_id,
        author: Party::Visitor,
        body: MessageBody {
            text: request.text,
            attachments,
            ..MessageBody::default()
        },
    };
    let (state, position) = handled(&app, chat, app.engine().chat(chat, command).await).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SentMessage {
            message_id: message_id.to_string(),
            position,
            view: ChatView::from(&state),
        }),
    ))
}

/// A5: uploads one file (the body, with its `Content-Type`) to the chat; send the returned id
/// in a message. The size limit is the module's, capped by the service's `upload_bytes_max`.
#[utoipa::path(post, path = "/api/visitor/chats/{chat}/attachments", tag = "visitor",
    params(("chat" = String, Path, description = "chat id"), UploadQuery),
    security(("resume_token" = [])),
    request_body(content = String, content_type = "application/octet-stream",
        description = "the file's bytes; Content-Type is the file's type"),
    responses(
        (status = 201, body = AttachmentView),
        (status = 400, description = "invalid_field (name, Content-Type, body)", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 413, description = "limit_exceeded (attachment_bytes_max, upload_bytes_max)", body = ErrorBody),
        (status = 415, description = "type_not_accepted", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn upload_attachment(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
    ApiQuery(query): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<AttachmentView>)> {
    let state = visitor_access(&app, &headers, &uri, chat).await?;
    let name = query.name;
    if name.trim().is_empty()
        || name.len() > BLOB_NAME_BYTES_MAX
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(ApiError::invalid(
            "name",
            format!("1 to {BLOB_NAME_BYTES_MAX} bytes, no path separators or control characters"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= BLOB_TYPE_BYTES_MAX)
        .ok_or_else(|| ApiError::invalid("Content-Type", "the file's type is required"))?
        .to_owned();
    let module_max = state
        .record
        .as_ref()
        .map_or(0, |r| r.settings.attachment_bytes_max);
    let service_max = app.limits().upload_bytes_max as u64;
    let (limit_name, bytes_max) = if module_max <= service_max {
        ("attachment_bytes_max", module_max)
    } else {
        ("upload_bytes_max", service_max)
    };
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit_exceeded",
            format!("the file is over {limit_name} ({bytes_max} bytes)"),
        )
        .with_field(limit_name)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > bytes_max) {
        return Err(too_large());
    }
    let probe = AttachmentMeta {
        file_name: name.clone(),
        content_type: content_type.clone(),
        size_bytes: 0,
        storage_key: String::new(),
    };
    if !accepted(&probe) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "type_not_accepted",
            format!("{content_type} is not an accepted attachment type ({CHAT_ATTACHMENT_ACCEPT})"),
        )
        .with_field("Content-Type"));
    }
    // Reads at most the limit: a body without Content-Length that runs over it is cut off.
    let read_max = usize::try_from(bytes_max).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, read_max)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("body", "the file is empty"));
    }
    let id = Uuid::now_v7();
    let meta = BlobMeta {
        chat,
        file_name: name,
        content_type,
        size_bytes: bytes.len() as u64,
    };
    app.blobs().put(id, meta.clone(), bytes.to_vec()).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AttachmentView {
            id: id.to_string(),
            url: format!("/api/visitor/chats/{chat}/attachments/{id}"),
            file_name: meta.file_name,
            content_type: meta.content_type,
            size_bytes: meta.size_bytes,
        }),
    ))
}

/// Whether a chat attachment of this type is accepted ([`CHAT_ATTACHMENT_ACCEPT`]).
fn accepted(file: &AttachmentMeta) -> bool {
    FileType::parse_accept(CHAT_ATTACHMENT_ACCEPT)
        .is_ok_and(|types| types.iter().any(|t| t.accepts(file)))
}

/// Downloads an attachment of the chat (the visitor's or an agent's). Always served as a
/// download (`Content-Disposition: attachment`, `nosniff`), never rendered from this origin.
#[utoipa::path(get, path = "/api/visitor/chats/{chat}/attachments/{attachment}", tag = "visitor",
    params(("chat" = String, Path, description = "chat id"),
        ("attachment" = String, Path, description = "attachment id")),
    security(("resume_token" = [])),
    responses(
        (status = 200, description = "the file", content_type = "application/octet-stream"),
        (status = 400, description = "invalid_field (path)", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn download_attachment(
    State(app): State<App>,
    ApiPath((chat, attachment)): ApiPath<(ChatId, Uuid)>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    visitor_access(&app, &headers, &uri, chat).await?;
    let (meta, bytes) = app
        .blobs()
        .get(attachment)
        .await?
        .filter(|(meta, _)| meta.chat == chat)
        .ok_or_else(|| ApiError::not_found(format!("attachment {attachment}")))?;
    let probe = AttachmentMeta {
        file_name: meta.file_name.clone(),
        content_type: meta.content_type.clone(),
        size_bytes: meta.size_bytes,
        storage_key: String::new(),
    };
    let content_type = if accepted(&probe) {
        HeaderValue::from_str(&meta.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static("application/octet-stream")
    };
    let disposition = HeaderValue::from_str(&content_disposition(&meta.file_name))
        .unwrap_or(HeaderValue::from_static("attachment"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn content_disposition(file_name: &str) -> String {
    let fallback: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(file_name.len() * 3);
    for byte in file_name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// C7: resumes the ended chat (the same record re-enters the queue, or ends offline again).
#[utoipa::path(post, path = "/api/visitor/chats/{chat}/resume", tag = "visitor",
    params(("chat" = String, Path, description = "chat id")),
    security(("resume_token" = [])),
    request_body = CommandRequest,
    responses(
        (status = 200, body = VisitorChat),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 409, description = "chat_open, contact_blocked, limit_exceeded (episodes)", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn resume_chat(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(request): ApiJson<CommandRequest>,
) -> ApiResult<axum::Json<VisitorChat>> {
    visitor_access(&app, &headers, &uri, chat).await?;
    let result = app
        .engine()
        .resume_chat(chat, command_id(request.command_id))
        .await;
    let (state, position) = handled(&app, chat, result).await?;
    Ok(axum::Json(VisitorChat {
        position,
        view: ChatView::from(&state),
    }))
}

/// X3: rates the ended episode (1 to 5, optional comment).
#[utoipa::path(post, path = "/api/visitor/chats/{chat}/rating", tag = "visitor",
    params(("chat" = String, Path, description = "chat id")),
    security(("resume_token" = [])),
    request_body = RateRequest,
    responses(
        (status = 200, body = VisitorChat),
        (status = 400, description = "invalid_field (score), limit_exceeded (rating_comment_bytes_max)", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 409, description = "chat_open, already_rated, no_agent_to_rate", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn rate_chat(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(request): ApiJson<RateRequest>,
) -> ApiResult<axum::Json<VisitorChat>> {
    visitor_access(&app, &headers, &uri, chat).await?;
    // Past a byte is past 1..=5 too; chat-core names the range for the rest.
    let score = u8::try_from(request.score)
        .map_err(|_| ApiError::invalid("score", format!("{} is outside 1..=5", request.score)))?;
    let command = ChatCommand::Rate {
        command_id: command_id(request.command_id),
        score,
        comment: request.comment,
    };
    let (state, position) = handled(&app, chat, app.engine().chat(chat, command).await).await?;
    Ok(axum::Json(VisitorChat {
        position,
        view: ChatView::from(&state),
    }))
}

/// C6: the visitor ends the chat.
#[utoipa::path(post, path = "/api/visitor/chats/{chat}/end", tag = "visitor",
    params(("chat" = String, Path, description = "chat id")),
    security(("resume_token" = [])),
    request_body = CommandRequest,
    responses(
        (status = 200, body = VisitorChat),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_your_chat, origin_not_allowed", body = ErrorBody),
        (status = 409, description = "chat_ended", body = ErrorBody),
        (status = 429, description = "rate_limited", body = ErrorBody),
    ))]
async fn end_chat(
    State(app): State<App>,
    ApiPath(chat): ApiPath<ChatId>,
    headers: HeaderMap,
    uri: Uri,
    ApiJson(request): ApiJson<CommandRequest>,
) -> ApiResult<axum::Json<VisitorChat>> {
    visitor_access(&app, &headers, &uri, chat).await?;
    let command = ChatCommand::End {
        command_id: command_id(request.command_id),
        by: EndedBy::Visitor,
    };
    let (state, position) = handled(&app, chat, app.engine().chat(chat, command).await).await?;
    Ok(axum::Json(VisitorChat {
        position,
        view: ChatView::from(&state),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_field_values_and_odd_shapes_name_the_field() {
        let form: BTreeMap<String, Value> = serde_json::from_value(serde_json::json!({
            "name": "Ada", "age": 36, "agree": true, "topics": ["a", "b"], "skip": null
        }))
        .expect("json");
        let answers = submission(form).expect("valid shapes");
        assert_eq!(answers["name"], FieldValue::Text("Ada".into()));
        assert_eq!(answers["age"], FieldValue::Text("36".into()));
        assert_eq!(answers["agree"], FieldValue::Agreed(true));
        assert_eq!(
            answers["topics"],
            FieldValue::Many(vec!["a".into(), "b".into()])
        );
        assert!(!answers.contains_key("skip"));

        let odd: BTreeMap<String, Value> =
            serde_json::from_value(serde_json::json!({"x": {"y": 1}})).expect("json");
        let error = submission(odd).expect_err("an object is no answer");
        assert_eq!(error.detail.code, "invalid_form");
        assert_eq!(error.detail.field.as_deref(), Some("x"));
    }

    #[test]
    fn contacts_are_found_by_normalised_value_and_chats_by_command() {
        let email = ContactField::email();
        assert_eq!(
            contact_for(&email, " Ada@Example.org "),
            contact_for(&email, "ada@example.org")
        );
        assert_ne!(
            contact_for(&email, "ada@example.org"),
            contact_for(&ContactField::firstname(), "ada@example.org")
        );
        let command = CommandId::from_u128(1);
        assert_eq!(chat_for(command), chat_for(command));
        assert_ne!(chat_for(command), chat_for(CommandId::from_u128(2)));
    }

    #[test]
    fn downloads_never_carry_a_raw_quote_or_non_ascii_in_the_plain_file_name() {
        let header = content_disposition("a\"b é.pdf");
        assert!(header.starts_with("attachment; filename=\"a_b _.pdf\""));
        assert!(header.ends_with("filename*=UTF-8''a%22b%20%C3%A9.pdf"));
        assert!(HeaderValue::from_str(&header).is_ok());
    }

    #[test]
    fn a5_chat_attachment_types_refuse_what_a_browser_would_run() {
        let file = |content_type: &str| AttachmentMeta {
            file_name: "f".into(),
            content_type: content_type.into(),
            size_bytes: 1,
            storage_key: String::new(),
        };
        assert!(accepted(&file("application/pdf")));
        assert!(accepted(&file("image/png")));
        assert!(accepted(&file("video/mp4")));
        assert!(!accepted(&file("text/html")));
        assert!(!accepted(&file("image/svg+xml")));
        assert!(!accepted(&file("application/javascript")));
    }
}
