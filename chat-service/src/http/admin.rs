//! The admin and supervisor API (`/api/admin/…`): modules (M1–M10), trigger strategies (T1–T4),
//! working hours (S1), forms (F1), queues and memberships (R1), operators and capacity (R2),
//! account settings (M5, C5, F4), webhook targets (V5), and the supervisor's board, search and
//! statistics (X1–X3).
//!
//! Every handler is a thin translation: the request becomes a chat-core command, the engine
//! decides and appends it, and a refusal is mapped by [`crate::http::error`]. No business rule is
//! checked here; what is checked here is the wire (ids, paging, sizes of query texts).
//!
//! Lists read a [`Catalogue`] folded from the log on demand (caught up to the store's head on
//! every list request, so an admin sees their own writes), because configuration objects live in
//! one stream each and chat-core's `ModuleCatalogue` is a fold, not a store query.

use crate::engine::ChatQuery;
use crate::http::App;
use crate::http::auth::{
    Operator, Role, User, UserCommand, UserDecider, UserEvent, UserState, create_user,
    hash_password, user_stream,
};
use crate::http::error::{ApiError, ApiResult, ErrorBody, FieldProblem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::outbox::{
    OfflineMail, OutboxError, OutboxSettings, SETTINGS_STREAM, SettingsEvent, WebhookEventKind,
    WebhookTarget,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chat_core::agent::{AGENT_CAPACITY_MAX, AgentCommand, AgentRejection, Presence};
use chat_core::config::{
    ACCOUNT_SETTINGS_STREAM, AccountCommand, AccountSettings, AdminCommand, Appearance,
    AttachmentFlags, ConfigRejection, Dependant, EndOfInteraction, FormDefinition, FormKind,
    LanguageSetting, Level, Module, ModuleCatalogue, ModuleCommand, ModuleDecider, ModuleEvent,
    ModuleSettings, ModuleState, QueueCommand, QueueDecider, QueuePolicy, QueueState, RuleSet,
    Stamped, StrategyCommand, StrategyDecider, StrategyState, WorkingHours, ZoneSetting,
    render_snippet,
};
use chat_core::conversation::{Disposition, OfflineReason};
use chat_core::projection::LiveStatus;
use chat_core::{
    AgentId, CaseId, ChatId, ContactId, Decider, ModuleId, PageData, QueueId, StrategyId,
};
use chat_store::{GlobalPosition, READ_COUNT_MAX, StreamId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Most items one list page returns (`limit` above it is refused).
pub const PAGE_ITEMS_MAX: usize = 100;
/// Items a list page returns when `limit` is absent.
pub const PAGE_ITEMS_DEFAULT: usize = 50;
/// Longest search text (module name/alias/tag search, past-chat text search), in bytes.
pub const SEARCH_QUERY_BYTES_MAX: usize = 256;
/// Most chats of each kind (waiting, active) and agents the board returns at once.
pub const BOARD_ITEMS_MAX: usize = 1000;
/// Most domain patterns one account edit may authorise or revoke.
pub const DOMAIN_EDITS_MAX: usize = chat_core::config::AUTHORISED_DOMAINS_MAX;

/// The admin and supervisor routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_module, list_modules))
        .routes(routes!(get_module, edit_module, delete_module))
        .routes(routes!(duplicate_module))
        .routes(routes!(module_history))
        .routes(routes!(add_tag))
        .routes(routes!(remove_tag))
        .routes(routes!(set_working_hours))
        .routes(routes!(set_form, remove_form))
        .routes(routes!(set_appearance))
        .routes(routes!(set_case_template))
        .routes(routes!(attach_strategy, detach_strategy))
        .routes(routes!(module_snippet))
        .routes(routes!(create_strategy, list_strategies))
        .routes(routes!(get_strategy, edit_strategy, delete_strategy))
        .routes(routes!(create_queue, list_queues))
        .routes(routes!(get_queue, edit_queue, delete_queue))
        .routes(routes!(set_member, remove_member))
        .routes(routes!(set_queue_policy))
        .routes(routes!(create_operator, list_operators))
        .routes(routes!(get_operator, edit_operator))
        .routes(routes!(get_account, edit_account))
        .routes(routes!(list_webhooks))
        .routes(routes!(set_webhook, delete_webhook))
        .routes(routes!(get_mail, set_mail))
        .routes(routes!(board))
        .routes(routes!(search_chats))
        .routes(routes!(statistics))
}

fn parse_uuid(field: &str, text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ApiError::invalid(field, "not a UUID"))
}

fn module_id(text: &str) -> ApiResult<ModuleId> {
    parse_uuid("module", text).map(ModuleId::from_uuid)
}

fn strategy_id(text: &str) -> ApiResult<StrategyId> {
    parse_uuid("strategy", text).map(StrategyId::from_uuid)
}

fn queue_id(text: &str) -> ApiResult<QueueId> {
    parse_uuid("queue", text).map(QueueId::from_uuid)
}

fn agent_id(text: &str) -> ApiResult<AgentId> {
    parse_uuid("agent", text).map(AgentId::from_uuid)
}

/// The id of a new object: the request's `command_id` when given (so a retried creation finds
/// the object it already made), else a fresh time-ordered one.
fn new_id(command_id: Option<Uuid>) -> Uuid {
    command_id.unwrap_or_else(Uuid::now_v7)
}

fn check_search_text(field: &str, text: &str) -> ApiResult<()> {
    if text.len() > SEARCH_QUERY_BYTES_MAX {
        return Err(ApiError::too_large(field, SEARCH_QUERY_BYTES_MAX));
    }
    Ok(())
}

// ----- paging ---------------------------------------------------------------------------------

/// Paging of a list: `offset` items skipped, at most `limit` returned.
#[derive(Clone, Copy, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Items to skip (default 0).
    pub offset: Option<usize>,
    /// Items to return, 1 to [`PAGE_ITEMS_MAX`] (default [`PAGE_ITEMS_DEFAULT`]).
    pub limit: Option<usize>,
}

impl Paging {
    fn checked(self) -> ApiResult<(usize, usize)> {
        let limit = self.limit.unwrap_or(PAGE_ITEMS_DEFAULT);
        if limit == 0 {
            return Err(ApiError::invalid("limit", "must be at least 1"));
        }
        if limit > PAGE_ITEMS_MAX {
            return Err(ApiError::too_large("limit", PAGE_ITEMS_MAX));
        }
        Ok((self.offset.unwrap_or(0), limit))
    }

    fn page<T>(self, items: impl IntoIterator<Item = T>) -> ApiResult<Page<T>> {
        let (offset, limit) = self.checked()?;
        let mut total = 0;
        let mut page = Vec::new();
        for item in items {
            if total >= offset && page.len() < limit {
                page.push(item);
            }
            total += 1;
        }
        Ok(Page {
            items: page,
            total,
            offset,
            limit,
        })
    }
}

/// One page of a list.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items the whole list has.
    pub total: usize,
    /// Items skipped.
    pub offset: usize,
    /// The page size asked for.
    pub limit: usize,
}

// ----- the catalogue --------------------------------------------------------------------------

/// The admin's lists (modules, strategies, queues, operators), folded from the log and caught up
/// on each use. Held by [`App`]; one per service.
#[derive(Debug, Default)]
pub struct Catalogue {
    folded: tokio::sync::Mutex<Folded>,
}

#[derive(Debug, Default)]
struct Folded {
    position: GlobalPosition,
    modules: ModuleCatalogue,
    strategies: BTreeMap<StrategyId, StrategyState>,
    queues: BTreeMap<QueueId, QueueState>,
    users: BTreeMap<AgentId, UserState>,
}

impl Catalogue {
    /// Catches up with the log and runs `read` over the folded lists.
    async fn read<R>(&self, app: &App, read: impl FnOnce(&Folded) -> R) -> ApiResult<R> {
        use crate::engine::DomainEvent;
        let mut folded = self.folded.lock().await;
        let mut follower = app.engine().follower(folded.position);
        loop {
            let page = follower.read_page().await?;
            if page.is_empty() {
                break;
            }
            for followed in &page {
                match &followed.event {
                    DomainEvent::Module { module, event } => folded.modules.record(*module, event),
                    DomainEvent::Strategy { strategy, event } => StrategyDecider::evolve(
                        folded.strategies.entry(*strategy).or_default(),
                        event,
                    ),
                    DomainEvent::Queue { queue, event } => {
                        QueueDecider::evolve(folded.queues.entry(*queue).or_default(), event);
                    }
                    DomainEvent::Other
                        if followed.recorded.stream_id.as_str().starts_with("user-") =>
                    {
                        let event: UserEvent =
                            app.engine().codec().decode_as(&followed.recorded)?;
                        let id = match &event {
                            UserEvent::UserCreated { user, .. } => Some(user.id),
                            _ => followed.recorded.stream_id.as_str()["user-".len()..]
                                .parse::<Uuid>()
                                .ok()
                                .map(AgentId::from_uuid),
                        };
                        if let Some(id) = id {
                            UserDecider::evolve(folded.users.entry(id).or_default(), &event);
                        }
                    }
                    _ => {}
                }
            }
        }
        folded.position = follower.position();
        Ok(read(&folded))
    }
}

// ----- modules: shapes ------------------------------------------------------------------------

/// Every editable field of a module (M1, M3, M4). In a creation, absent fields take their
/// defaults (an absent `alias` is the name); in an edit (a JSON merge patch), absent fields keep
/// their value and `null` clears an optional one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleFields {
    /// Display name (searchable), 1–100 characters.
    pub name: String,
    /// Name used in statistics (searchable).
    pub alias: String,
    /// Optional description.
    pub description: Option<String>,
    /// An IANA zone name; `null` follows the account's default.
    pub time_zone: Option<String>,
    /// A language tag like `fr` or `pt-BR`; `null` follows the account's default.
    pub language: Option<String>,
    /// The queue smart routing starts from; `null` means the module cannot take chats (M10).
    pub routing: Option<Uuid>,
    /// `"Nothing"`, `{"Survey": {"survey": "<key>"}}` or `{"FollowUpQueue": "<queue uuid>"}`.
    #[schema(value_type = Object)]
    pub end_of_interaction: EndOfInteraction,
    /// E-mail the transcript to the visitor at the end (O2).
    pub transcript_email: bool,
    /// Most chats open at once before new ones go offline (C2); `null` is unlimited.
    pub concurrent_chats_max: Option<u32>,
    /// Let the visitor keep writing while no agent is available (C3).
    pub async_chatting: bool,
    /// Turn a chat nobody can take into a case (A6).
    pub case_when_no_agent: bool,
    /// Largest attachment in a chat message, in bytes (A5).
    pub attachment_bytes_max: u64,
    /// `{"title", "module_colour", "button_colour", "button_icon", "style"}`, `style` being
    /// `"Simple"` or `{"Advanced": {"avatars": [...], "heading", "button_title"}}` (M4).
    #[schema(value_type = Object)]
    pub appearance: Appearance,
}

impl Default for ModuleFields {
    fn default() -> Self {
        Self::from(&ModuleSettings::named(""))
    }
}

impl From<&ModuleSettings> for ModuleFields {
    fn from(s: &ModuleSettings) -> Self {
        Self {
            name: s.name.clone(),
            alias: s.alias.clone(),
            description: s.description.clone(),
            time_zone: match &s.time_zone {
                ZoneSetting::Default => None,
                ZoneSetting::Named(name) => Some(name.clone()),
            },
            language: match &s.language {
                LanguageSetting::Default => None,
                LanguageSetting::Tag(tag) => Some(tag.clone()),
            },
            routing: s.routing.map(|q| q.as_uuid()),
            end_of_interaction: s.end_of_interaction.clone(),
            transcript_email: s.transcript_email,
            concurrent_chats_max: s.concurrent_chats_max,
            async_chatting: s.async_chatting,
            case_when_no_agent: s.case_when_no_agent,
            attachment_bytes_max: s.attachment_bytes_max,
            appearance: s.appearance.clone(),
        }
    }
}

impl From<ModuleFields> for ModuleSettings {
    fn from(f: ModuleFields) -> Self {
        Self {
            name: f.name,
            alias: f.alias,
            description: f.description,
            time_zone: f.time_zone.map_or(ZoneSetting::Default, ZoneSetting::Named),
            language: f
                .language
                .map_or(LanguageSetting::Default, LanguageSetting::Tag),
            routing: f.routing.map(QueueId::from_uuid),
            end_of_interaction: f.end_of_interaction,
            transcript_email: f.transcript_email,
            concurrent_chats_max: f.concurrent_chats_max,
            async_chatting: f.async_chatting,
            case_when_no_agent: f.case_when_no_agent,
            attachment_bytes_max: f.attachment_bytes_max,
            appearance: f.appearance,
        }
    }
}

/// A new module (M1): one JSON object holding `reference`, an optional `command_id` and the
/// fields of [`ModuleFields`] (absent ones take their defaults; an unknown key is refused, as in
/// an edit).
#[derive(Clone, Debug)]
pub struct CreateModule {
    /// Retry id; also the new module's id, so a retried creation returns the same module.
    pub command_id: Option<Uuid>,
    /// The unique reference (M2): 1–64 ASCII letters, digits or `_+.@-`.
    pub reference: String,
    /// The fields.
    pub fields: ModuleFields,
}

impl CreateModule {
    /// Reads a creation body; a refusal names the key at fault.
    fn parse(body: Value) -> ApiResult<Self> {
        let mut body = module_body(body)?;
        let command_id = match body.remove("command_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|_| ApiError::invalid("command_id", "must be a UUID"))?,
            ),
        };
        let reference = take_reference(&mut body)?
            .ok_or_else(|| ApiError::invalid("reference", "is required"))?;
        let fields = serde_json::from_value(Value::Object(body))
            .map_err(|e| ApiError::invalid("body", e.to_string()))?;
        Ok(Self {
            command_id,
            reference,
            fields,
        })
    }
}

/// The body of a module creation or edit, which must be a JSON object.
fn module_body(body: Value) -> ApiResult<serde_json::Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid("body", "must be a JSON object")),
    }
}

/// Takes `reference` out of a module body.
fn take_reference(body: &mut serde_json::Map<String, Value>) -> ApiResult<Option<String>> {
    match body.remove("reference") {
        None => Ok(None),
        Some(Value::String(r)) => Ok(Some(r)),
        Some(_) => Err(ApiError::invalid("reference", "must be a string")),
    }
}

/// The creation body's schema is one object — [`ModuleFields`]' properties plus `reference`
/// (required) and `command_id`. A derived `#[serde(flatten)]` schema would be an `allOf` of two
/// objects, one of which (`ModuleFields`, `additionalProperties: false`) admits no `reference`,
/// so no body could satisfy it (schemathesis rejects such a document).
impl utoipa::PartialSchema for CreateModule {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{
            KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type,
        };
        let mut schema = <ModuleFields as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let reference: Object = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "The unique reference (M2): 1–64 ASCII letters, digits or `_+.@-`.",
                ))
                .build();
            let command_id: Object = ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .description(Some(
                    "Retry id; also the new module's id, so a retried creation returns the same module.",
                ))
                .build();
            object
                .properties
                .insert("reference".into(), reference.into());
            object
                .properties
                .insert("command_id".into(), command_id.into());
            object.required.push("reference".into());
            object.description = Some(
                "A new module (M1): `reference`, an optional `command_id` and the module's fields (absent ones take their defaults).".into(),
            );
        }
        schema
    }
}

impl ToSchema for CreateModule {}

/// A strategy attached to a module, with its flags (T1, T3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttachmentView {
    /// The strategy.
    pub strategy: Uuid,
    /// Display the chat icon when it matches.
    pub display: bool,
    /// Open the whole chat when it matches.
    pub open: bool,
}

/// A module as the admin sees it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ModuleView {
    /// Its id.
    pub id: Uuid,
    /// Its reference.
    pub reference: String,
    /// The public chat URL (M2, M9), fixed at creation.
    pub public_url: String,
    /// Every editable field.
    pub settings: ModuleFields,
    /// Weekly ranges and dated exceptions (S1), as chat-core serialises `WorkingHours`.
    #[schema(value_type = Object)]
    pub working_hours: WorkingHours,
    /// The pre-chat and offline forms (F1), by kind (`PreChat`, `Offline`).
    #[schema(value_type = Object)]
    pub forms: BTreeMap<FormKind, FormDefinition>,
    /// Tags (M3).
    pub tags: Vec<String>,
    /// Attached strategies (T1, T3).
    pub strategies: Vec<AttachmentView>,
    /// Registered external uses (M8, M9): `{"kind", "id"}`.
    #[schema(value_type = Vec<Object>)]
    pub external_uses: Vec<chat_core::config::ExternalUse>,
    /// The module this one was duplicated from (M7).
    pub duplicated_from: Option<Uuid>,
    /// The fields every case made from its chats carries (A6).
    pub case_template: BTreeMap<String, String>,
}

impl ModuleView {
    fn of(module: &Module, app: &App) -> Self {
        Self {
            id: module.id.as_uuid(),
            reference: module.reference.clone(),
            public_url: module.public_chat_url(app.public_url()),
            settings: ModuleFields::from(&module.settings),
            working_hours: module.working_hours.clone(),
            forms: module.forms.clone(),
            tags: module.tags.iter().cloned().collect(),
            strategies: module
                .strategies
                .iter()
                .map(|(id, flags)| AttachmentView {
                    strategy: id.as_uuid(),
                    display: flags.display,
                    open: flags.open,
                })
                .collect(),
            external_uses: module.external_uses.iter().cloned().collect(),
            duplicated_from: module.duplicated_from.map(|m| m.as_uuid()),
            case_template: module.case_template.clone(),
        }
    }
}

/// Module list filters (M3).
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModuleFilter {
    /// Case-insensitive substring of the name or alias (at most 256 bytes).
    pub q: Option<String>,
    /// An exact tag (at most 256 bytes).
    pub tag: Option<String>,
    /// Items to skip.
    pub offset: Option<usize>,
    /// Page size, 1–100.
    pub limit: Option<usize>,
}

/// A duplication (M7): the copy's reference and name.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct DuplicateModule {
    /// Retry id; also the copy's id.
    pub command_id: Option<Uuid>,
    /// The copy's reference (unique).
    pub reference: String,
    /// The copy's name (default: the original's name followed by " (copy)").
    pub name: Option<String>,
}

/// A tag to add (M3).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct TagBody {
    /// Retry id (tag edits are idempotent by meaning; accepted for uniformity).
    pub command_id: Option<Uuid>,
    /// The tag.
    pub tag: String,
}

/// An attachment's flags (T3); defaults display = yes, open = no.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct AttachBody {
    /// Retry id (accepted for uniformity; attaching is idempotent by meaning).
    pub command_id: Option<Uuid>,
    /// Display the chat icon (default `true`).
    pub display: Option<bool>,
    /// Open the whole chat (default `false`).
    pub open: Option<bool>,
}

/// One entry of a module's history (M7): who changed what, when.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// The event's version in the module's stream (1 = creation).
    pub version: u64,
    /// When (RFC 3339).
    pub at: DateTime<Utc>,
    /// Who: the operator's id.
    pub by: Uuid,
    /// Who: the operator's login, when the operator is known.
    pub by_login: Option<String>,
    /// The event type, e.g. `ModuleUpdated`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The fields that changed (`name`, `appearance`, `tags`, `forms`, …).
    pub changed: Vec<String>,
    /// The event as recorded.
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// Page data for a snippet (M6); every value is escaped into the snippet.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnippetParams {
    /// The contact's first name.
    pub firstname: Option<String>,
    /// The contact's last name.
    pub lastname: Option<String>,
    /// A message shown to the agent at the start.
    pub message: Option<String>,
}

/// The embed snippet of a module (M5).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Snippet {
    /// The HTML to paste before `</body>`.
    pub html: String,
    /// The module's public chat URL (M9), for links.
    pub public_url: String,
}

// ----- modules: handlers ----------------------------------------------------------------------

async fn run_module(
    app: &App,
    by: &Operator,
    module: ModuleId,
    command: ModuleCommand,
) -> ApiResult<Module> {
    let handled = app
        .engine()
        .handle::<ModuleDecider>(&module.stream_name(), &AdminCommand::new(by.id, command))
        .await?
        .map_err(config_error)?;
    live_module(handled.state)
}

fn live_module(state: ModuleState) -> ApiResult<Module> {
    match state.module {
        Some(module) if !state.deleted => Ok(module),
        _ => Err(ApiError::not_found("module")),
    }
}

async fn load_module(app: &App, module: ModuleId) -> ApiResult<Module> {
    live_module(
        app.engine()
            .state::<ModuleDecider>(&module.stream_name())
            .await?,
    )
}

/// M8, T4: a refused deletion lists its dependants in `fields` too (`strategy`, `open_chat`,
/// `external_use`, `module`), so a client needs not parse the message.
fn config_error(rejection: ConfigRejection) -> ApiError {
    let dependants = match &rejection {
        ConfigRejection::HasDependants { dependants } => dependants.clone(),
        _ => Vec::new(),
    };
    let mut error = ApiError::from(rejection);
    error.detail.fields = dependants
        .iter()
        .map(|d| {
            let (field, problem) = match d {
                Dependant::Strategy(id) => ("strategy", id.to_string()),
                Dependant::OpenChat(id) => ("open_chat", id.to_string()),
                Dependant::ExternalUse(u) => ("external_use", format!("{}:{}", u.kind, u.id)),
                Dependant::Module(id) => ("module", id.to_string()),
            };
            FieldProblem {
                field: field.to_owned(),
                problem,
            }
        })
        .collect();
    error
}

/// M1: create a module.
#[utoipa::path(post, path = "/api/admin/modules", tag = "admin",
    request_body = CreateModule,
    responses(
        (status = 201, body = ModuleView),
        (status = 400, description = "a field is invalid (named in `field`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`duplicate_reference`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn create_module(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<ModuleView>)> {
    by.require(Role::Admin)?;
    let body = CreateModule::parse(body)?;
    let id = ModuleId::from_uuid(new_id(body.command_id));
    let mut fields = body.fields;
    if fields.alias.is_empty() {
        fields.alias.clone_from(&fields.name);
    }
    let command = ModuleCommand::Create {
        id,
        reference: body.reference.clone(),
        settings: fields.into(),
    };
    let made = run_module(&app, &by, id, command)
        .await
        .map(|module| ModuleView::of(&module, &app));
    let view = retried_creation(made, body.command_id, || async {
        let module = load_module(&app, id).await?;
        Ok((module.reference == body.reference).then(|| ModuleView::of(&module, &app)))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// M3: list modules, optionally searched by name/alias (`q`) and by tag.
#[utoipa::path(get, path = "/api/admin/modules", tag = "admin",
    params(ModuleFilter),
    responses(
        (status = 200, body = Page<ModuleView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn list_modules(
    State(app): State<App>,
    by: Operator,
    ApiQuery(filter): ApiQuery<ModuleFilter>,
) -> ApiResult<Json<Page<ModuleView>>> {
    by.require(Role::Admin)?;
    if let Some(q) = &filter.q {
        check_search_text("q", q)?;
    }
    if let Some(tag) = &filter.tag {
        check_search_text("tag", tag)?;
    }
    let paging = Paging {
        offset: filter.offset,
        limit: filter.limit,
    };
    paging.checked()?;
    let views = app
        .catalogue()
        .read(&app, |folded| {
            let found: Vec<&Module> = match &filter.q {
                Some(q) => folded.modules.search(q),
                None => folded.modules.list().collect(),
            };
            found
                .into_iter()
                .filter(|m| filter.tag.as_ref().is_none_or(|t| m.tags.contains(t)))
                .map(|m| ModuleView::of(m, &app))
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(paging.page(views)?))
}

/// One module.
#[utoipa::path(get, path = "/api/admin/modules/{module}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_module(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let module = load_module(&app, module_id(&module)?).await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// Applies a JSON merge patch (RFC 7396) to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.insert(key.clone(), Value::Null);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// M3: edit every field. The body is a JSON merge patch of [`ModuleFields`] plus an optional
/// `reference` (a reference change reserves the new one and frees the old one atomically).
#[utoipa::path(patch, path = "/api/admin/modules/{module}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    request_body(content = Object, description = "a merge patch of ModuleFields, plus `reference` and `command_id`"),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`duplicate_reference`, `deleted`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn edit_module(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(patch): ApiJson<Value>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let mut patch = module_body(patch)?;
    patch.remove("command_id");
    let reference = take_reference(&mut patch)?;
    let current = load_module(&app, id).await?;
    let mut fields =
        serde_json::to_value(ModuleFields::from(&current.settings)).map_err(ApiError::internal)?;
    merge_patch(&mut fields, &Value::Object(patch));
    let fields: ModuleFields =
        serde_json::from_value(fields).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let settings: ModuleSettings = fields.into();
    // Both changes are checked before either is recorded, so a refusal changes nothing.
    let mut commands = Vec::new();
    if let Some(reference) = reference {
        commands.push(ModuleCommand::ChangeReference { reference });
    }
    commands.push(ModuleCommand::Update { settings });
    let mut probe = ModuleState {
        module: Some(current),
        deleted: false,
    };
    let now = app.engine().clock().now();
    for command in &commands {
        let events = ModuleDecider::decide(&probe, &AdminCommand::new(by.id, command.clone()), now)
            .map_err(config_error)?;
        for event in &events {
            ModuleDecider::evolve(&mut probe, event);
        }
    }
    let mut module = None;
    for command in commands {
        module = Some(run_module(&app, &by, id, command).await?);
    }
    let module = module.ok_or_else(|| ApiError::internal("no command run"))?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// M8: delete a module; refused while a strategy is attached, a chat is open or an external
/// use is registered (`has_dependants`, each listed in `fields`).
#[utoipa::path(delete, path = "/api/admin/modules/{module}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`has_dependants`, `deleted`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn delete_module(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
) -> ApiResult<StatusCode> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let board = app.engine().board();
    let open_chats: BTreeSet<ChatId> = board
        .live()
        .waiting()
        .into_iter()
        .chain(board.live().active())
        .filter(|c| c.module == id)
        .map(|c| c.chat)
        .collect();
    app.engine()
        .handle::<ModuleDecider>(
            &id.stream_name(),
            &AdminCommand::new(by.id, ModuleCommand::Delete { open_chats }),
        )
        .await?
        .map_err(config_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// M7: duplicate a module under a new id and reference (settings, hours, forms and tags are
/// copied; strategy attachments and external uses are not).
#[utoipa::path(post, path = "/api/admin/modules/{module}/duplicate", tag = "admin",
    params(("module" = Uuid, Path, description = "the module copied")),
    request_body = DuplicateModule,
    responses(
        (status = 201, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`duplicate_reference`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn duplicate_module(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(body): ApiJson<DuplicateModule>,
) -> ApiResult<(StatusCode, Json<ModuleView>)> {
    by.require(Role::Admin)?;
    let source = load_module(&app, module_id(&module)?).await?;
    let id = ModuleId::from_uuid(new_id(body.command_id));
    let name = body
        .name
        .clone()
        .unwrap_or_else(|| format!("{} (copy)", source.settings.name));
    let command = source.duplicate(id, &body.reference, &name);
    let made = run_module(&app, &by, id, command)
        .await
        .map(|copy| ModuleView::of(&copy, &app));
    let view = retried_creation(made, body.command_id, || async {
        let copy = load_module(&app, id).await?;
        let same = copy.duplicated_from == Some(source.id) && copy.reference == body.reference;
        Ok(same.then(|| ModuleView::of(&copy, &app)))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn changed_fields(event: &ModuleEvent) -> Vec<String> {
    let one = |s: &str| vec![s.to_owned()];
    match event {
        ModuleEvent::Created { .. } | ModuleEvent::Deleted => Vec::new(),
        ModuleEvent::Updated { changed, .. } => changed.clone(),
        ModuleEvent::ReferenceChanged { .. } => one("reference"),
        ModuleEvent::WorkingHoursSet { .. } => one("working_hours"),
        ModuleEvent::FormSet { kind, .. } => match kind {
            FormKind::PreChat => one("forms.pre_chat"),
            FormKind::Offline => one("forms.offline"),
        },
        ModuleEvent::TagAdded { .. } | ModuleEvent::TagRemoved { .. } => one("tags"),
        ModuleEvent::StrategyAttached { .. }
        | ModuleEvent::StrategyFlagsChanged { .. }
        | ModuleEvent::StrategyDetached { .. } => one("strategies"),
        ModuleEvent::UseRegistered { .. } | ModuleEvent::UseReleased { .. } => one("external_uses"),
        ModuleEvent::CaseTemplateSet { .. } => one("case_template"),
    }
}

/// M7: the module's history — its own event stream, oldest first: who changed what, when.
/// Deleted modules keep their history.
#[utoipa::path(get, path = "/api/admin/modules/{module}/history", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"), Paging),
    responses(
        (status = 200, body = Page<HistoryEntry>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn module_history(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<Page<HistoryEntry>>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let (offset, limit) = paging.checked()?;
    let stream = StreamId::new(id.stream_name())?;
    let store = app.engine().store();
    let total = store.stream_version(&stream).await?;
    if total == 0 {
        return Err(ApiError::not_found("module"));
    }
    let from = u64::try_from(offset).unwrap_or(u64::MAX).saturating_add(1);
    let records = if from > total {
        Vec::new()
    } else {
        store
            .read_stream(&stream, from, limit.min(READ_COUNT_MAX))
            .await?
    };
    let mut logins: BTreeMap<AgentId, Option<String>> = BTreeMap::new();
    let mut items = Vec::with_capacity(records.len());
    for recorded in &records {
        let stamped: Stamped<ModuleEvent> = app.engine().codec().decode_as(recorded)?;
        let by_login = match logins.get(&stamped.by) {
            Some(login) => login.clone(),
            None => {
                let user = app
                    .engine()
                    .state::<UserDecider>(&user_stream(stamped.by))
                    .await?;
                let login = user.user.map(|u| u.login);
                logins.insert(stamped.by, login.clone());
                login
            }
        };
        items.push(HistoryEntry {
            version: recorded.stream_version,
            at: stamped.at,
            by: stamped.by.as_uuid(),
            by_login,
            event_type: recorded.event_type.clone(),
            changed: changed_fields(&stamped.event),
            detail: serde_json::to_value(&stamped.event).map_err(ApiError::internal)?,
        });
    }
    Ok(Json(Page {
        items,
        total: usize::try_from(total).unwrap_or(usize::MAX),
        offset,
        limit,
    }))
}

/// M3: add a tag.
#[utoipa::path(post, path = "/api/admin/modules/{module}/tags", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    request_body = TagBody,
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`duplicate` (already tagged)", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn add_tag(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(body): ApiJson<TagBody>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let module = run_module(
        &app,
        &by,
        module_id(&module)?,
        ModuleCommand::AddTag { tag: body.tag },
    )
    .await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// M3: remove a tag.
#[utoipa::path(delete, path = "/api/admin/modules/{module}/tags/{tag}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"),
        ("tag" = String, Path, description = "the tag, percent-encoded")),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`missing` (not tagged)", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn remove_tag(
    State(app): State<App>,
    by: Operator,
    ApiPath((module, tag)): ApiPath<(String, String)>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let module = run_module(
        &app,
        &by,
        module_id(&module)?,
        ModuleCommand::RemoveTag { tag },
    )
    .await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// S1: replace the working intervals (chat-core's `WorkingHours`: `days` — seven lists of
/// `{"start", "end"}` minute ranges, Monday first — and dated `exceptions`).
#[utoipa::path(put, path = "/api/admin/modules/{module}/working-hours", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    request_body(content = Object, description = "chat-core WorkingHours"),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_working_hours(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(hours): ApiJson<WorkingHours>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let module = run_module(
        &app,
        &by,
        module_id(&module)?,
        ModuleCommand::SetWorkingHours { hours },
    )
    .await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

fn form_kind(text: &str) -> ApiResult<FormKind> {
    match text {
        "pre_chat" => Ok(FormKind::PreChat),
        "offline" => Ok(FormKind::Offline),
        _ => Err(ApiError::invalid("kind", "pre_chat or offline")),
    }
}

/// F1: set the pre-chat or offline form (chat-core's `FormDefinition`: `{"fields": [...]}`).
#[utoipa::path(put, path = "/api/admin/modules/{module}/forms/{kind}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"),
        ("kind" = String, Path, description = "`pre_chat` or `offline`")),
    request_body(content = Object, description = "chat-core FormDefinition"),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_form(
    State(app): State<App>,
    by: Operator,
    ApiPath((module, kind)): ApiPath<(String, String)>,
    ApiJson(form): ApiJson<FormDefinition>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let kind = form_kind(&kind)?;
    let module = run_module(
        &app,
        &by,
        id,
        ModuleCommand::SetForm {
            kind,
            form: Some(form),
        },
    )
    .await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// F1: remove a form.
#[utoipa::path(delete, path = "/api/admin/modules/{module}/forms/{kind}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"),
        ("kind" = String, Path, description = "`pre_chat` or `offline`")),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn remove_form(
    State(app): State<App>,
    by: Operator,
    ApiPath((module, kind)): ApiPath<(String, String)>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let kind = form_kind(&kind)?;
    let module = run_module(&app, &by, id, ModuleCommand::SetForm { kind, form: None }).await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// M4: replace the appearance (colours are validated and normalised to `#rrggbb`).
#[utoipa::path(put, path = "/api/admin/modules/{module}/appearance", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    request_body(content = Object, description = "chat-core Appearance"),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, description = "`invalid_colour` and others, naming the field", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_appearance(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(appearance): ApiJson<Appearance>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let mut settings = load_module(&app, id).await?.settings;
    settings.appearance = appearance;
    let module = run_module(&app, &by, id, ModuleCommand::Update { settings }).await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// A6: replace the case template (field name → value) every case made from the module's chats
/// carries.
#[utoipa::path(put, path = "/api/admin/modules/{module}/case-template", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id")),
    request_body(content = Object, description = "field name (a key) → value"),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_case_template(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiJson(template): ApiJson<BTreeMap<String, String>>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let module = run_module(
        &app,
        &by,
        module_id(&module)?,
        ModuleCommand::SetCaseTemplate { template },
    )
    .await?;
    Ok(Json(ModuleView::of(&module, &app)))
}

/// T1, T3: attach a strategy with its flags, or change the flags of an attached one. The
/// module's attachment and the strategy's link are one atomic append.
#[utoipa::path(put, path = "/api/admin/modules/{module}/strategies/{strategy}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"),
        ("strategy" = Uuid, Path, description = "the strategy id")),
    request_body = AttachBody,
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`display_and_open_both_off`, `too_many`, `deleted`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn attach_strategy(
    State(app): State<App>,
    by: Operator,
    ApiPath((module, strategy)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AttachBody>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let strategy = strategy_id(&strategy)?;
    let defaults = AttachmentFlags::default();
    let flags = AttachmentFlags {
        display: body.display.unwrap_or(defaults.display),
        open: body.open.unwrap_or(defaults.open),
    };
    let current = load_module(&app, id).await?;
    let command = if current.strategies.contains_key(&strategy) {
        ModuleCommand::SetStrategyFlags { strategy, flags }
    } else {
        ModuleCommand::AttachStrategy { strategy, flags }
    };
    let handled = app
        .engine()
        .handle_linked::<ModuleDecider, StrategyDecider>(
            &id.stream_name(),
            &AdminCommand::new(by.id, command),
            &strategy.stream_name(),
            &AdminCommand::new(by.id, StrategyCommand::LinkModule { module: id }),
        )
        .await?
        .map_err(config_error)?;
    Ok(Json(ModuleView::of(&live_module(handled.state)?, &app)))
}

/// T1: detach a strategy (module and strategy sides in one atomic append).
#[utoipa::path(delete, path = "/api/admin/modules/{module}/strategies/{strategy}", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"),
        ("strategy" = Uuid, Path, description = "the strategy id")),
    responses(
        (status = 200, body = ModuleView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`missing` (not attached)", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn detach_strategy(
    State(app): State<App>,
    by: Operator,
    ApiPath((module, strategy)): ApiPath<(String, String)>,
) -> ApiResult<Json<ModuleView>> {
    by.require(Role::Admin)?;
    let id = module_id(&module)?;
    let strategy = strategy_id(&strategy)?;
    let handled = app
        .engine()
        .handle_linked::<ModuleDecider, StrategyDecider>(
            &id.stream_name(),
            &AdminCommand::new(by.id, ModuleCommand::DetachStrategy { strategy }),
            &strategy.stream_name(),
            &AdminCommand::new(by.id, StrategyCommand::UnlinkModule { module: id }),
        )
        .await?
        .map_err(config_error)?;
    Ok(Json(ModuleView::of(&live_module(handled.state)?, &app)))
}

/// M5, M6: the HTML/JS snippet to paste before `</body>`, with optional page data (escaped).
/// The site's domain must also be authorised (account settings) for the widget to work.
#[utoipa::path(get, path = "/api/admin/modules/{module}/snippet", tag = "admin",
    params(("module" = Uuid, Path, description = "the module id"), SnippetParams),
    responses(
        (status = 200, body = Snippet),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn module_snippet(
    State(app): State<App>,
    by: Operator,
    ApiPath(module): ApiPath<String>,
    ApiQuery(params): ApiQuery<SnippetParams>,
) -> ApiResult<Json<Snippet>> {
    by.require(Role::Admin)?;
    let module = load_module(&app, module_id(&module)?).await?;
    let data = PageData {
        firstname: params.firstname,
        lastname: params.lastname,
        message: params.message,
        vars: BTreeMap::new(),
    };
    let html = render_snippet(&module, app.public_url(), &data).map_err(config_error)?;
    Ok(Json(Snippet {
        html,
        public_url: module.public_chat_url(app.public_url()),
    }))
}

// ----- trigger strategies ---------------------------------------------------------------------

/// A trigger strategy (T1, T2).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StrategyView {
    /// Its id.
    pub id: Uuid,
    /// Its reference (unique among strategies, fixed).
    pub reference: String,
    /// Its name.
    pub name: String,
    /// chat-core's `RuleSet`: `{"combinator": "All"|"Any", "rules": [...]}`.
    #[schema(value_type = Object)]
    pub rules: RuleSet,
    /// The modules it is attached to.
    pub modules: Vec<Uuid>,
}

impl StrategyView {
    fn of(state: &StrategyState) -> Option<Self> {
        let s = state.strategy.as_ref().filter(|_| !state.deleted)?;
        Some(Self {
            id: s.id.as_uuid(),
            reference: s.reference.clone(),
            name: s.name.clone(),
            rules: s.rules.clone(),
            modules: s.modules.iter().map(|m| m.as_uuid()).collect(),
        })
    }
}

/// A new strategy (T1).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateStrategy {
    /// Retry id; also the new strategy's id.
    pub command_id: Option<Uuid>,
    /// Its unique reference.
    pub reference: String,
    /// Its name.
    pub name: String,
    /// Its rules (chat-core's `RuleSet`).
    #[schema(value_type = Object)]
    pub rules: RuleSet,
}

/// A strategy edit; absent fields keep their value.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct EditStrategy {
    /// Retry id (accepted for uniformity).
    pub command_id: Option<Uuid>,
    /// The new name.
    pub name: Option<String>,
    /// The new rules.
    #[schema(value_type = Option<Object>)]
    pub rules: Option<RuleSet>,
}

async fn run_strategy(
    app: &App,
    by: &Operator,
    id: StrategyId,
    command: StrategyCommand,
) -> ApiResult<StrategyState> {
    Ok(app
        .engine()
        .handle::<StrategyDecider>(&id.stream_name(), &AdminCommand::new(by.id, command))
        .await?
        .map_err(config_error)?
        .state)
}

async fn load_strategy(app: &App, id: StrategyId) -> ApiResult<StrategyView> {
    let state = app
        .engine()
        .state::<StrategyDecider>(&id.stream_name())
        .await?;
    StrategyView::of(&state).ok_or_else(|| ApiError::not_found("strategy"))
}

/// T1: define a strategy.
#[utoipa::path(post, path = "/api/admin/strategies", tag = "admin",
    request_body = CreateStrategy,
    responses(
        (status = 201, body = StrategyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`duplicate_reference`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn create_strategy(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<CreateStrategy>,
) -> ApiResult<(StatusCode, Json<StrategyView>)> {
    by.require(Role::Admin)?;
    let id = StrategyId::from_uuid(new_id(body.command_id));
    let command = StrategyCommand::Create {
        id,
        name: body.name,
        reference: body.reference.clone(),
        rules: body.rules,
    };
    let made = run_strategy(&app, &by, id, command)
        .await
        .and_then(|state| {
            StrategyView::of(&state).ok_or_else(|| ApiError::internal("created strategy missing"))
        });
    let view = retried_creation(made, body.command_id, || async {
        let view = load_strategy(&app, id).await?;
        Ok((view.reference == body.reference).then_some(view))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// T1: list strategies.
#[utoipa::path(get, path = "/api/admin/strategies", tag = "admin",
    params(Paging),
    responses(
        (status = 200, body = Page<StrategyView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn list_strategies(
    State(app): State<App>,
    by: Operator,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<Page<StrategyView>>> {
    by.require(Role::Admin)?;
    paging.checked()?;
    let views = app
        .catalogue()
        .read(&app, |f| {
            f.strategies
                .values()
                .filter_map(StrategyView::of)
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(paging.page(views)?))
}

/// One strategy.
#[utoipa::path(get, path = "/api/admin/strategies/{strategy}", tag = "admin",
    params(("strategy" = Uuid, Path, description = "the strategy id")),
    responses(
        (status = 200, body = StrategyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_strategy(
    State(app): State<App>,
    by: Operator,
    ApiPath(strategy): ApiPath<String>,
) -> ApiResult<Json<StrategyView>> {
    by.require(Role::Admin)?;
    Ok(Json(load_strategy(&app, strategy_id(&strategy)?).await?))
}

/// T1, T2: edit a strategy's name and rules (its reference is fixed).
#[utoipa::path(patch, path = "/api/admin/strategies/{strategy}", tag = "admin",
    params(("strategy" = Uuid, Path, description = "the strategy id")),
    request_body = EditStrategy,
    responses(
        (status = 200, body = StrategyView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn edit_strategy(
    State(app): State<App>,
    by: Operator,
    ApiPath(strategy): ApiPath<String>,
    ApiJson(body): ApiJson<EditStrategy>,
) -> ApiResult<Json<StrategyView>> {
    by.require(Role::Admin)?;
    let id = strategy_id(&strategy)?;
    let current = load_strategy(&app, id).await?;
    let command = StrategyCommand::Update {
        name: body.name.unwrap_or(current.name),
        rules: body.rules.unwrap_or(current.rules),
    };
    let state = run_strategy(&app, &by, id, command).await?;
    StrategyView::of(&state)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("strategy"))
}

/// T4: delete a strategy; refused while attached to a module (`has_dependants`).
#[utoipa::path(delete, path = "/api/admin/strategies/{strategy}", tag = "admin",
    params(("strategy" = Uuid, Path, description = "the strategy id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`has_dependants`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn delete_strategy(
    State(app): State<App>,
    by: Operator,
    ApiPath(strategy): ApiPath<String>,
) -> ApiResult<StatusCode> {
    by.require(Role::Admin)?;
    run_strategy(&app, &by, strategy_id(&strategy)?, StrategyCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- queues ---------------------------------------------------------------------------------

/// A queue member and level (R1): 1 serves new chats, 2 only transfers.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// The agent.
    pub agent: Uuid,
    /// 1 or 2.
    pub level: u8,
}

/// A queue (R1).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueView {
    /// Its id.
    pub id: Uuid,
    /// Its reference (unique among queues, fixed).
    pub reference: String,
    /// Its name.
    pub name: String,
    /// Members and levels.
    pub members: Vec<MemberView>,
    /// How an agent is picked and how returning visitors are routed (R3, R4): chat-core's
    /// `QueuePolicy`, e.g. `{"selection": "RoundRobin", "repeat": {"Same": {"wait_s": 60}}}`.
    #[schema(value_type = Object)]
    pub policy: QueuePolicy,
}

impl QueueView {
    fn of(state: &QueueState) -> Option<Self> {
        let q = state.queue.as_ref().filter(|_| !state.deleted)?;
        Some(Self {
            id: q.id.as_uuid(),
            reference: q.reference.clone(),
            name: q.name.clone(),
            members: q
                .members
                .iter()
                .map(|(agent, level)| MemberView {
                    agent: agent.as_uuid(),
                    level: match level {
                        Level::One => 1,
                        Level::Two => 2,
                    },
                })
                .collect(),
            policy: q.policy,
        })
    }
}

/// A new queue.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateQueue {
    /// Retry id; also the new queue's id.
    pub command_id: Option<Uuid>,
    /// Its unique reference.
    pub reference: String,
    /// Its name.
    pub name: String,
}

/// A queue rename.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct EditQueue {
    /// Retry id (accepted for uniformity).
    pub command_id: Option<Uuid>,
    /// The new name.
    pub name: String,
}

/// A membership (R1).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MemberBody {
    /// Retry id (accepted for uniformity).
    pub command_id: Option<Uuid>,
    /// 1 (serves new chats) or 2 (transfers only).
    pub level: u8,
}

async fn run_queue(
    app: &App,
    by: &Operator,
    id: QueueId,
    command: QueueCommand,
) -> ApiResult<QueueState> {
    Ok(app
        .engine()
        .handle::<QueueDecider>(&id.stream_name(), &AdminCommand::new(by.id, command))
        .await?
        .map_err(config_error)?
        .state)
}

async fn load_queue(app: &App, id: QueueId) -> ApiResult<QueueView> {
    let state = app
        .engine()
        .state::<QueueDecider>(&id.stream_name())
        .await?;
    QueueView::of(&state).ok_or_else(|| ApiError::not_found("queue"))
}

fn queue_view(state: &QueueState) -> ApiResult<Json<QueueView>> {
    QueueView::of(state)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("queue"))
}

/// R1: create a queue.
#[utoipa::path(post, path = "/api/admin/queues", tag = "admin",
    request_body = CreateQueue,
    responses(
        (status = 201, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`duplicate_reference`", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn create_queue(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<CreateQueue>,
) -> ApiResult<(StatusCode, Json<QueueView>)> {
    by.require(Role::Admin)?;
    let id = QueueId::from_uuid(new_id(body.command_id));
    let command = QueueCommand::Create {
        id,
        name: body.name,
        reference: body.reference.clone(),
    };
    let made = match run_queue(&app, &by, id, command).await {
        Ok(state) => queue_view(&state).map(|Json(view)| view),
        Err(error) => Err(error),
    };
    let view = retried_creation(made, body.command_id, || async {
        let view = load_queue(&app, id).await?;
        Ok((view.reference == body.reference).then_some(view))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// R1: list queues.
#[utoipa::path(get, path = "/api/admin/queues", tag = "admin",
    params(Paging),
    responses(
        (status = 200, body = Page<QueueView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn list_queues(
    State(app): State<App>,
    by: Operator,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<Page<QueueView>>> {
    by.require(Role::Admin)?;
    paging.checked()?;
    let views = app
        .catalogue()
        .read(&app, |f| {
            f.queues
                .values()
                .filter_map(QueueView::of)
                .collect::<Vec<_>>()
        })
        .await?;
    Ok(Json(paging.page(views)?))
}

/// One queue.
#[utoipa::path(get, path = "/api/admin/queues/{queue}", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id")),
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_queue(
    State(app): State<App>,
    by: Operator,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<Json<QueueView>> {
    by.require(Role::Admin)?;
    Ok(Json(load_queue(&app, queue_id(&queue)?).await?))
}

/// R1: rename a queue (its reference is fixed).
#[utoipa::path(patch, path = "/api/admin/queues/{queue}", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id")),
    request_body = EditQueue,
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn edit_queue(
    State(app): State<App>,
    by: Operator,
    ApiPath(queue): ApiPath<String>,
    ApiJson(body): ApiJson<EditQueue>,
) -> ApiResult<Json<QueueView>> {
    by.require(Role::Admin)?;
    let state = run_queue(
        &app,
        &by,
        queue_id(&queue)?,
        QueueCommand::Rename { name: body.name },
    )
    .await?;
    queue_view(&state)
}

/// R1: delete a queue (modules routing to it then cannot take chats, M10).
#[utoipa::path(delete, path = "/api/admin/queues/{queue}", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn delete_queue(
    State(app): State<App>,
    by: Operator,
    ApiPath(queue): ApiPath<String>,
) -> ApiResult<StatusCode> {
    by.require(Role::Admin)?;
    run_queue(&app, &by, queue_id(&queue)?, QueueCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn known_operator(app: &App, agent: AgentId) -> ApiResult<User> {
    app.engine()
        .state::<UserDecider>(&user_stream(agent))
        .await?
        .user
        .ok_or_else(|| ApiError::not_found("operator"))
}

/// R1: add an agent to a queue or change their level.
#[utoipa::path(put, path = "/api/admin/queues/{queue}/members/{agent}", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id"),
        ("agent" = Uuid, Path, description = "the operator id")),
    request_body = MemberBody,
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_member(
    State(app): State<App>,
    by: Operator,
    ApiPath((queue, agent)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Json<QueueView>> {
    by.require(Role::Admin)?;
    let queue = queue_id(&queue)?;
    let agent = agent_id(&agent)?;
    let level = match body.level {
        1 => Level::One,
        2 => Level::Two,
        _ => return Err(ApiError::invalid("level", "1 or 2")),
    };
    known_operator(&app, agent).await?;
    let state = run_queue(&app, &by, queue, QueueCommand::SetMember { agent, level }).await?;
    queue_view(&state)
}

/// R1: remove an agent from a queue.
#[utoipa::path(delete, path = "/api/admin/queues/{queue}/members/{agent}", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id"),
        ("agent" = Uuid, Path, description = "the operator id")),
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`missing` (not a member)", body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn remove_member(
    State(app): State<App>,
    by: Operator,
    ApiPath((queue, agent)): ApiPath<(String, String)>,
) -> ApiResult<Json<QueueView>> {
    by.require(Role::Admin)?;
    let queue = queue_id(&queue)?;
    let agent = agent_id(&agent)?;
    let state = run_queue(&app, &by, queue, QueueCommand::RemoveMember { agent }).await?;
    queue_view(&state)
}

/// R3, R4: set a queue's routing policy (selection and repeat mode).
#[utoipa::path(put, path = "/api/admin/queues/{queue}/policy", tag = "admin",
    params(("queue" = Uuid, Path, description = "the queue id")),
    request_body(content = Object, description = "chat-core QueuePolicy"),
    responses(
        (status = 200, body = QueueView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_queue_policy(
    State(app): State<App>,
    by: Operator,
    ApiPath(queue): ApiPath<String>,
    ApiJson(policy): ApiJson<QueuePolicy>,
) -> ApiResult<Json<QueueView>> {
    by.require(Role::Admin)?;
    let state = run_queue(
        &app,
        &by,
        queue_id(&queue)?,
        QueueCommand::SetPolicy { policy },
    )
    .await?;
    queue_view(&state)
}

// ----- operators ------------------------------------------------------------------------------

/// An operator (agent, supervisor or admin) with their capacity and presence.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// The operator (and agent) id.
    pub id: Uuid,
    /// The login name.
    pub login: String,
    /// The display name.
    pub display_name: String,
    /// The role.
    pub role: Role,
    /// Whether disabled (cannot sign in; tokens stop working).
    pub disabled: bool,
    /// Most chats at once (R2).
    pub capacity: u32,
    /// `Offline`, `Online` or `Away`.
    #[schema(value_type = String)]
    pub presence: Presence,
}

/// A new operator.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateOperator {
    /// Retry id (the operator's id is derived from the login, so a retry is `already_exists`).
    pub command_id: Option<Uuid>,
    /// Login name: 1–64 bytes of letters, digits and `_.@+-`; unique, case-insensitive.
    pub login: String,
    /// Display name.
    pub display_name: String,
    /// `agent`, `supervisor` or `admin`.
    pub role: Role,
    /// At least 8 characters, at most 256 bytes.
    pub password: String,
    /// Most chats at once (R2), 0–100; default 0 (takes no chat until set).
    pub capacity: Option<u32>,
}

/// An operator edit; absent fields keep their value.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct EditOperator {
    /// Retry id (accepted for uniformity).
    pub command_id: Option<Uuid>,
    /// The new role.
    pub role: Option<Role>,
    /// Disable (`true`) or re-enable.
    pub disabled: Option<bool>,
    /// A new password (older tokens stop working).
    pub password: Option<String>,
    /// The new capacity, 0–100.
    pub capacity: Option<u32>,
}

fn capacity_error(rejection: AgentRejection) -> ApiError {
    match rejection {
        AgentRejection::CapacityTooLarge { .. } => {
            ApiError::invalid("capacity", format!("at most {AGENT_CAPACITY_MAX}"))
        }
        other => other.into(),
    }
}

async fn set_capacity(app: &App, agent: AgentId, capacity: u32) -> ApiResult<()> {
    app.engine()
        .agent(AgentCommand::SetCapacity { agent, capacity })
        .await?
        .map_err(capacity_error)?;
    Ok(())
}

async fn operator_view(app: &App, user: User) -> ApiResult<OperatorView> {
    let agent = app
        .engine()
        .state::<chat_core::Agent>(&user.id.stream_name())
        .await?;
    Ok(OperatorView {
        id: user.id.as_uuid(),
        login: user.login,
        display_name: user.display_name,
        role: user.role,
        disabled: user.disabled,
        capacity: agent.capacity,
        presence: agent.presence,
    })
}

/// Creates an agent, supervisor or admin.
#[utoipa::path(post, path = "/api/admin/operators", tag = "admin",
    request_body = CreateOperator,
    responses(
        (status = 201, body = OperatorView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`already_exists` (login taken)", body = ErrorBody),
        (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn create_operator(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<CreateOperator>,
) -> ApiResult<(StatusCode, Json<OperatorView>)> {
    by.require(Role::Admin)?;
    if let Some(capacity) = body.capacity
        && capacity > AGENT_CAPACITY_MAX
    {
        // Checked first so that a refused capacity creates nobody.
        return Err(capacity_error(AgentRejection::CapacityTooLarge {
            actual: capacity,
        }));
    }
    let user = create_user(
        &app,
        &body.login,
        &body.display_name,
        body.role,
        &body.password,
    )
    .await?;
    if let Some(capacity) = body.capacity {
        set_capacity(&app, user.id, capacity).await?;
    }
    Ok((StatusCode::CREATED, Json(operator_view(&app, user).await?)))
}

/// Lists operators, by id.
#[utoipa::path(get, path = "/api/admin/operators", tag = "admin",
    params(Paging),
    responses(
        (status = 200, body = Page<OperatorView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn list_operators(
    State(app): State<App>,
    by: Operator,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<Page<OperatorView>>> {
    by.require(Role::Admin)?;
    let users = app
        .catalogue()
        .read(&app, |f| {
            f.users
                .values()
                .filter_map(|s| s.user.clone())
                .collect::<Vec<_>>()
        })
        .await?;
    let page = paging.page(users)?;
    let mut items = Vec::with_capacity(page.items.len());
    for user in page.items {
        items.push(operator_view(&app, user).await?);
    }
    Ok(Json(Page {
        items,
        total: page.total,
        offset: page.offset,
        limit: page.limit,
    }))
}

/// One operator.
#[utoipa::path(get, path = "/api/admin/operators/{agent}", tag = "admin",
    params(("agent" = Uuid, Path, description = "the operator id")),
    responses(
        (status = 200, body = OperatorView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_operator(
    State(app): State<App>,
    by: Operator,
    ApiPath(agent): ApiPath<String>,
) -> ApiResult<Json<OperatorView>> {
    by.require(Role::Admin)?;
    let user = known_operator(&app, agent_id(&agent)?).await?;
    Ok(Json(operator_view(&app, user).await?))
}

/// Changes an operator's role, disables or re-enables them, resets their password, sets their
/// capacity. An admin cannot change their own role or disable themselves (`own_access`), so the
/// last admin cannot lock everyone out by mistake.
#[utoipa::path(patch, path = "/api/admin/operators/{agent}", tag = "admin",
    params(("agent" = Uuid, Path, description = "the operator id")),
    request_body = EditOperator,
    responses(
        (status = 200, body = OperatorView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "`own_access`", body = ErrorBody),
        (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn edit_operator(
    State(app): State<App>,
    by: Operator,
    ApiPath(agent): ApiPath<String>,
    ApiJson(body): ApiJson<EditOperator>,
) -> ApiResult<Json<OperatorView>> {
    by.require(Role::Admin)?;
    let id = agent_id(&agent)?;
    known_operator(&app, id).await?;
    if id == by.id && (body.role.is_some_and(|r| r != by.role) || body.disabled == Some(true)) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "own_access",
            "an admin cannot change their own role or disable themselves",
        ));
    }
    // Everything that can be refused for its input is checked before anything is recorded.
    if let Some(capacity) = body.capacity
        && capacity > AGENT_CAPACITY_MAX
    {
        return Err(capacity_error(AgentRejection::CapacityTooLarge {
            actual: capacity,
        }));
    }
    let password_hash = match body.password {
        Some(password) => Some(
            tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(ApiError::internal)??,
        ),
        None => None,
    };
    let mut commands = Vec::new();
    if let Some(role) = body.role {
        commands.push(UserCommand::SetRole { role });
    }
    if let Some(disabled) = body.disabled {
        commands.push(UserCommand::SetDisabled { disabled });
    }
    if let Some(password_hash) = password_hash {
        commands.push(UserCommand::SetPassword { password_hash });
    }
    for command in commands {
        app.engine()
            .handle::<UserDecider>(&user_stream(id), &command)
            .await?
            .map_err(ApiError::from)?;
    }
    if let Some(capacity) = body.capacity {
        set_capacity(&app, id, capacity).await?;
    }
    let user = known_operator(&app, id).await?;
    Ok(Json(operator_view(&app, user).await?))
}

// ----- account settings -----------------------------------------------------------------------

/// The account's settings (M5, C5, F4, defaults).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    /// Zone of modules set to the default.
    pub default_time_zone: String,
    /// Language of modules set to the default.
    pub default_language: String,
    /// Origins the widget and visitor API accept (M5), as normalised patterns.
    pub authorised_domains: Vec<String>,
    /// A chat unattended this long is closed (C5), in seconds.
    pub unattended_timeout_s: u32,
    /// The contact field submissions are matched on (F4).
    pub contact_match_field: String,
}

impl From<&AccountSettings> for AccountView {
    fn from(a: &AccountSettings) -> Self {
        Self {
            default_time_zone: a.default_time_zone.name().to_owned(),
            default_language: a.default_language.clone(),
            authorised_domains: a
                .authorised_domains
                .iter()
                .map(ToString::to_string)
                .collect(),
            unattended_timeout_s: a.unattended_timeout_s,
            contact_match_field: a.contact_match_field.as_str().to_owned(),
        }
    }
}

/// An account edit; absent fields keep their value. All changes are checked before any is
/// recorded.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditAccount {
    /// Retry id (accepted for uniformity; settings are idempotent by meaning).
    pub command_id: Option<Uuid>,
    /// An IANA zone name.
    pub default_time_zone: Option<String>,
    /// A language tag.
    pub default_language: Option<String>,
    /// Seconds, 60 to 604,800.
    pub unattended_timeout_s: Option<u32>,
    /// A contact field name, e.g. `email`.
    pub contact_match_field: Option<String>,
    /// Domain patterns to authorise (`example.com`, `*.example.com`, `https://x.org:8443`).
    #[serde(default)]
    pub authorise_domains: Vec<String>,
    /// Domain patterns to revoke.
    #[serde(default)]
    pub revoke_domains: Vec<String>,
}

/// The account's settings.
#[utoipa::path(get, path = "/api/admin/account", tag = "admin",
    responses(
        (status = 200, body = AccountView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_account(State(app): State<App>, by: Operator) -> ApiResult<Json<AccountView>> {
    by.require(Role::Admin)?;
    Ok(Json(AccountView::from(&app.account().await?)))
}

/// M5, C5, F4: edit the account's settings.
#[utoipa::path(patch, path = "/api/admin/account", tag = "admin",
    request_body = EditAccount,
    responses(
        (status = 200, body = AccountView),
        (status = 400, description = "`unknown_time_zone`, `invalid_language`, `out_of_range`, …", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn edit_account(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<EditAccount>,
) -> ApiResult<Json<AccountView>> {
    by.require(Role::Admin)?;
    if body.authorise_domains.len() > DOMAIN_EDITS_MAX {
        return Err(ApiError::too_large("authorise_domains", DOMAIN_EDITS_MAX));
    }
    if body.revoke_domains.len() > DOMAIN_EDITS_MAX {
        return Err(ApiError::too_large("revoke_domains", DOMAIN_EDITS_MAX));
    }
    let mut commands = Vec::new();
    if let Some(name) = body.default_time_zone {
        commands.push(AccountCommand::SetDefaultTimeZone { name });
    }
    if let Some(language) = body.default_language {
        commands.push(AccountCommand::SetDefaultLanguage { language });
    }
    if let Some(timeout_s) = body.unattended_timeout_s {
        commands.push(AccountCommand::SetUnattendedTimeout { timeout_s });
    }
    if let Some(field) = body.contact_match_field {
        commands.push(AccountCommand::SetContactMatchField { field });
    }
    commands.extend(
        body.authorise_domains
            .into_iter()
            .map(|pattern| AccountCommand::AuthoriseDomain { pattern }),
    );
    commands.extend(
        body.revoke_domains
            .into_iter()
            .map(|pattern| AccountCommand::RevokeDomain { pattern }),
    );
    // A dry run through chat-core's own decider first, so a refusal records nothing.
    let mut probe = app.account().await?;
    let now = app.engine().clock().now();
    for command in &commands {
        let events =
            AccountSettings::decide(&probe, &AdminCommand::new(by.id, command.clone()), now)
                .map_err(config_error)?;
        for event in &events {
            AccountSettings::evolve(&mut probe, event);
        }
    }
    for command in commands {
        app.engine()
            .handle::<AccountSettings>(ACCOUNT_SETTINGS_STREAM, &AdminCommand::new(by.id, command))
            .await?
            .map_err(config_error)?;
    }
    Ok(Json(AccountView::from(&app.account().await?)))
}

// ----- webhooks (V5) --------------------------------------------------------------------------

/// A webhook target (V5); its signing secret is runtime configuration, never in the log.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    /// The target's name (ASCII letters, digits, `-`, `_`; at most 64 bytes).
    pub name: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event kinds it receives: `chat.started`, `chat.assigned`, `chat.message`,
    /// `chat.ended`, `chat.offline_message`, `case.created`, `chat.rated`.
    pub events: Vec<String>,
}

/// A webhook target's URL and event filter.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct WebhookBody {
    /// Retry id (accepted for uniformity; settings are idempotent by meaning).
    pub command_id: Option<Uuid>,
    /// Absolute http(s) URL, at most 2048 bytes.
    pub url: String,
    /// Event kinds (wire names, see [`WebhookView::events`]); empty receives nothing.
    pub events: Vec<String>,
}

fn outbox_error(error: OutboxError) -> ApiError {
    match error {
        OutboxError::InvalidSettings { field, reason } => ApiError::invalid(field, reason),
        OutboxError::LimitExceeded { field, max, .. } => ApiError::too_large(field, max),
        OutboxError::Config(message) if message.contains("concurrently") => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        other => ApiError::internal(other),
    }
}

async fn outbox_settings(app: &App) -> ApiResult<OutboxSettings> {
    let stream = StreamId::new(SETTINGS_STREAM)?;
    let store = app.engine().store();
    let mut version = 0;
    let mut current = OutboxSettings::default();
    loop {
        let page = store
            .read_stream(&stream, version + 1, READ_COUNT_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        version = last.stream_version;
        for recorded in &page {
            let SettingsEvent::OutboxSettingsSet { settings, .. } =
                app.engine().codec().decode_as(recorded)?;
            current = settings;
        }
    }
    Ok(current)
}

/// Records `settings` in the outbox's settings stream (checked there; a refusal names the field).
async fn save_outbox_settings(app: &App, settings: &OutboxSettings) -> ApiResult<()> {
    let now = app.engine().clock().now();
    crate::outbox::Outbox::set_settings(app.engine().store().as_ref(), settings, now)
        .await
        .map_err(outbox_error)?;
    Ok(())
}

fn webhook_views(settings: &OutboxSettings) -> Vec<WebhookView> {
    settings
        .webhooks
        .iter()
        .map(|(name, target)| WebhookView {
            name: name.clone(),
            url: target.url.clone(),
            events: target
                .events
                .iter()
                .map(|k| k.wire_name().to_owned())
                .collect(),
        })
        .collect()
}

/// V5: the webhook targets and their event filters.
#[utoipa::path(get, path = "/api/admin/webhooks", tag = "admin",
    responses(
        (status = 200, body = Vec<WebhookView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn list_webhooks(State(app): State<App>, by: Operator) -> ApiResult<Json<Vec<WebhookView>>> {
    by.require(Role::Admin)?;
    Ok(Json(webhook_views(&outbox_settings(&app).await?)))
}

/// V5: add or replace a webhook target; recorded in the outbox's settings stream, so events
/// from now on are matched against it (not the history).
#[utoipa::path(put, path = "/api/admin/webhooks/{target}", tag = "admin",
    params(("target" = String, Path, description = "the target's name")),
    request_body = WebhookBody,
    responses(
        (status = 200, body = Vec<WebhookView>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_webhook(
    State(app): State<App>,
    by: Operator,
    ApiPath(target): ApiPath<String>,
    ApiJson(body): ApiJson<WebhookBody>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    by.require(Role::Admin)?;
    if body.events.len() > WebhookEventKind::ALL.len() {
        return Err(ApiError::too_large("events", WebhookEventKind::ALL.len()));
    }
    let mut events = BTreeSet::new();
    for name in &body.events {
        let kind = WebhookEventKind::ALL
            .into_iter()
            .find(|k| k.wire_name() == name)
            .ok_or_else(|| ApiError::invalid("events", format!("unknown event kind {name:?}")))?;
        events.insert(kind);
    }
    let mut settings = outbox_settings(&app).await?;
    settings.webhooks.insert(
        target,
        WebhookTarget {
            url: body.url,
            events,
        },
    );
    save_outbox_settings(&app, &settings).await?;
    Ok(Json(webhook_views(&settings)))
}

/// V5: remove a webhook target.
#[utoipa::path(delete, path = "/api/admin/webhooks/{target}", tag = "admin",
    params(("target" = String, Path, description = "the target's name")),
    responses(
        (status = 200, body = Vec<WebhookView>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn delete_webhook(
    State(app): State<App>,
    by: Operator,
    ApiPath(target): ApiPath<String>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    by.require(Role::Admin)?;
    let mut settings = outbox_settings(&app).await?;
    if settings.webhooks.remove(&target).is_none() {
        return Err(ApiError::not_found(format!("webhook target {target:?}")));
    }
    save_outbox_settings(&app, &settings).await?;
    Ok(Json(webhook_views(&settings)))
}

// ----- engine e-mail (O1, O2, C3) -------------------------------------------------------------

/// The outbox's e-mail settings: the sender of every engine e-mail (transcripts O2, answered
/// asynchronous messages C3, offline forwards O1) and each module's offline e-mail rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    /// The `From` of engine e-mail; `null` sends none (each e-mail gives up with that reason).
    pub sender: Option<String>,
    /// Offline handling by module id (O1): `{"Forward": {"to": "<address>"}}` or
    /// `{"EmailInteraction": {"inbox": "<address>", "subject_field": "<offline-form field>"}}`.
    /// Modules not listed keep their offline messages for supervisors only.
    #[schema(value_type = Object)]
    pub offline_mail: BTreeMap<Uuid, OfflineMail>,
}

impl From<&OutboxSettings> for MailSettings {
    fn from(settings: &OutboxSettings) -> Self {
        Self {
            sender: settings.sender.clone(),
            offline_mail: settings
                .offline_mail
                .iter()
                .map(|(module, rule)| (module.as_uuid(), rule.clone()))
                .collect(),
        }
    }
}

/// O1, O2: the engine's e-mail settings.
#[utoipa::path(get, path = "/api/admin/mail", tag = "admin",
    responses(
        (status = 200, body = MailSettings),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn get_mail(State(app): State<App>, by: Operator) -> ApiResult<Json<MailSettings>> {
    by.require(Role::Admin)?;
    Ok(Json(MailSettings::from(&outbox_settings(&app).await?)))
}

/// O1, O2: replace the engine's e-mail settings (the webhook targets are kept). Recorded in the
/// outbox's settings stream, so e-mail derived from events from now on follows them.
#[utoipa::path(put, path = "/api/admin/mail", tag = "admin",
    request_body = MailSettings,
    responses(
        (status = 200, body = MailSettings),
        (status = 400, description = "an address or field is invalid (named in `field`)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn set_mail(
    State(app): State<App>,
    by: Operator,
    ApiJson(body): ApiJson<MailSettings>,
) -> ApiResult<Json<MailSettings>> {
    by.require(Role::Admin)?;
    let mut settings = outbox_settings(&app).await?;
    settings.sender = body.sender;
    settings.offline_mail = body
        .offline_mail
        .into_iter()
        .map(|(module, rule)| (ModuleId::from_uuid(module), rule))
        .collect();
    save_outbox_settings(&app, &settings).await?;
    Ok(Json(MailSettings::from(&settings)))
}

// ----- supervisor (X1–X3) ---------------------------------------------------------------------

/// One live chat on the board (X1).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveChatView {
    /// The chat.
    pub chat: Uuid,
    /// Its module.
    pub module: Uuid,
    /// Its contact.
    pub contact: Uuid,
    /// The episode (a resumed chat has several).
    pub episode: u32,
    /// `waiting`, `asynchronous` or `active`.
    pub status: String,
    /// The queue it waits in after a transfer.
    pub queue: Option<Uuid>,
    /// The agent holding it (`active`).
    pub agent: Option<Uuid>,
    /// Since when it stands there.
    pub since: DateTime<Utc>,
}

/// One agent on the board (X1).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BoardAgent {
    /// The agent.
    pub agent: Uuid,
    /// `Offline`, `Online` or `Away`.
    #[schema(value_type = String)]
    pub presence: Presence,
    /// Most chats at once.
    pub capacity: u32,
    /// Chats held now.
    pub chats: Vec<Uuid>,
}

/// X1: chats waiting and in progress, and the agents' presence and load.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BoardView {
    /// Chats waiting (queued or asynchronous), longest-waiting first.
    pub waiting: Vec<LiveChatView>,
    /// Chats an agent holds, oldest assignment first.
    pub active: Vec<LiveChatView>,
    /// Every agent seen.
    pub agents: Vec<BoardAgent>,
    /// Set when a list was cut at [`BOARD_ITEMS_MAX`].
    pub truncated: bool,
}

fn live_chat_view(chat: &chat_core::projection::LiveChat) -> LiveChatView {
    let (status, queue, agent) = match chat.status {
        LiveStatus::Waiting { queue } => ("waiting", queue.map(|q| q.as_uuid()), None),
        LiveStatus::Asynchronous => ("asynchronous", None, None),
        LiveStatus::Active { agent } => ("active", None, Some(agent.as_uuid())),
    };
    LiveChatView {
        chat: chat.chat.as_uuid(),
        module: chat.module.as_uuid(),
        contact: chat.contact.as_uuid(),
        episode: chat.episode,
        status: status.to_owned(),
        queue,
        agent,
        since: chat.since,
    }
}

/// X1: the supervisor's board (also pushed live on the supervisor WebSocket).
#[utoipa::path(get, path = "/api/admin/board", tag = "supervisor",
    responses(
        (status = 200, body = BoardView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn board(State(app): State<App>, by: Operator) -> ApiResult<Json<BoardView>> {
    by.require(Role::Supervisor)?;
    let board = app.engine().board();
    let live = board.live();
    let waiting = live.waiting();
    let active = live.active();
    let truncated = waiting.len() > BOARD_ITEMS_MAX
        || active.len() > BOARD_ITEMS_MAX
        || live.agents().len() > BOARD_ITEMS_MAX;
    Ok(Json(BoardView {
        waiting: waiting
            .into_iter()
            .take(BOARD_ITEMS_MAX)
            .map(live_chat_view)
            .collect(),
        active: active
            .into_iter()
            .take(BOARD_ITEMS_MAX)
            .map(live_chat_view)
            .collect(),
        agents: live
            .agents()
            .iter()
            .take(BOARD_ITEMS_MAX)
            .map(|(id, state)| BoardAgent {
                agent: id.as_uuid(),
                presence: state.presence,
                capacity: state.capacity,
                chats: state.chats.iter().map(|c| c.as_uuid()).collect(),
            })
            .collect(),
        truncated,
    }))
}

/// X2 filters; every given filter must match.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChatSearch {
    /// The contact id.
    pub contact: Option<String>,
    /// An agent who held the chat.
    pub agent: Option<String>,
    /// The module id.
    pub module: Option<String>,
    /// `managed`, `offline`, `unmanaged`, `timeout`, `abandoned`, `blocked` or `case`.
    pub disposition: Option<String>,
    /// Started at or after (RFC 3339).
    pub from: Option<String>,
    /// Started before (RFC 3339).
    pub to: Option<String>,
    /// A case-insensitive substring of a (non-redacted) message, at most 256 bytes.
    pub text: Option<String>,
    /// Most results, 1–100 (default 50).
    pub limit: Option<usize>,
}

/// One past chat (X2).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatRowView {
    /// The chat.
    pub chat: Uuid,
    /// Its module.
    pub module: Uuid,
    /// Its contact.
    pub contact: Uuid,
    /// Every agent who held it.
    pub agents: Vec<Uuid>,
    /// The disposition of its latest ended episode, e.g. `Managed` or `{"Case": {...}}`.
    #[schema(value_type = Option<Object>)]
    pub disposition: Option<Value>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its latest episode ended (`null` while open).
    pub ended_at: Option<DateTime<Utc>>,
}

/// X2 results, latest start first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatSearchResult {
    /// The matching chats.
    pub items: Vec<ChatRowView>,
    /// Whether more chats matched than were returned.
    pub truncated: bool,
}

fn parse_disposition(text: &str) -> ApiResult<Disposition> {
    // The search compares the kind only, so the fields of Offline and Case are placeholders.
    Ok(match text {
        "managed" => Disposition::Managed,
        "offline" => Disposition::Offline {
            reason: OfflineReason::OutsideWorkingHours,
        },
        "unmanaged" => Disposition::Unmanaged,
        "timeout" => Disposition::Timeout,
        "abandoned" => Disposition::Abandoned,
        "blocked" => Disposition::Blocked,
        "case" => Disposition::Case {
            case_id: CaseId::from_u128(0),
        },
        _ => {
            return Err(ApiError::invalid(
                "disposition",
                "managed, offline, unmanaged, timeout, abandoned, blocked or case",
            ));
        }
    })
}

fn parse_instant(field: &str, text: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(field, "not an RFC 3339 instant"))
}

/// X2: search past (and open) chats by contact, agent, module, disposition, date range and text.
#[utoipa::path(get, path = "/api/admin/chats", tag = "supervisor",
    params(ChatSearch),
    responses(
        (status = 200, body = ChatSearchResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn search_chats(
    State(app): State<App>,
    by: Operator,
    ApiQuery(search): ApiQuery<ChatSearch>,
) -> ApiResult<Json<ChatSearchResult>> {
    by.require(Role::Supervisor)?;
    let (_, limit) = Paging {
        offset: None,
        limit: search.limit,
    }
    .checked()?;
    if let Some(text) = &search.text {
        check_search_text("text", text)?;
    }
    let query = ChatQuery {
        contact: search
            .contact
            .as_deref()
            .map(|c| parse_uuid("contact", c).map(ContactId::from_uuid))
            .transpose()?,
        agent: search.agent.as_deref().map(agent_id).transpose()?,
        module: search.module.as_deref().map(module_id).transpose()?,
        disposition: search
            .disposition
            .as_deref()
            .map(parse_disposition)
            .transpose()?,
        from: search
            .from
            .as_deref()
            .map(|t| parse_instant("from", t))
            .transpose()?,
        to: search
            .to
            .as_deref()
            .map(|t| parse_instant("to", t))
            .transpose()?,
        text: search.text.filter(|t| !t.is_empty()),
    };
    let past = app.engine().past_chats();
    let rows = past.search(&query);
    let truncated = rows.len() > limit;
    let items = rows
        .into_iter()
        .take(limit)
        .map(|r| ChatRowView {
            chat: r.chat.as_uuid(),
            module: r.module.as_uuid(),
            contact: r.contact.as_uuid(),
            agents: r.agents.iter().map(|a| a.as_uuid()).collect(),
            disposition: r.disposition.and_then(|d| serde_json::to_value(d).ok()),
            started_at: r.started_at,
            ended_at: r.ended_at,
        })
        .collect();
    Ok(Json(ChatSearchResult { items, truncated }))
}

/// One agent's statistics (X3).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentStatsView {
    /// The agent.
    pub agent: Uuid,
    /// The login name.
    pub login: String,
    /// Chats handled (held until they ended or moved on).
    pub chats_handled: u64,
    /// Mean first-response time, in seconds.
    pub first_response_s_mean: Option<f64>,
    /// Mean handling time, in seconds.
    pub handling_s_mean: Option<f64>,
    /// Mean rating.
    pub rating_mean: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
}

/// Statistics of the modules sharing one alias (X3).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AliasStatsView {
    /// The alias.
    pub alias: String,
    /// Chats started.
    pub started: u64,
    /// Ended episodes by disposition kind (`Managed`, `Offline`, …).
    pub ended: BTreeMap<String, u64>,
    /// Mean rating.
    pub rating_mean: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
}

/// X3: per-agent and per-alias statistics.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatisticsView {
    /// One page of operators (by id) with their statistics.
    pub agents: Page<AgentStatsView>,
    /// Every alias.
    pub aliases: Vec<AliasStatsView>,
}

/// X3: statistics per agent (paged) and per module alias.
#[utoipa::path(get, path = "/api/admin/statistics", tag = "supervisor",
    params(Paging),
    responses(
        (status = 200, body = StatisticsView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
    ),
    security(("operator" = [])))]
async fn statistics(
    State(app): State<App>,
    by: Operator,
    ApiQuery(paging): ApiQuery<Paging>,
) -> ApiResult<Json<StatisticsView>> {
    by.require(Role::Supervisor)?;
    paging.checked()?;
    let users = app
        .catalogue()
        .read(&app, |f| {
            f.users
                .values()
                .filter_map(|s| s.user.clone())
                .collect::<Vec<_>>()
        })
        .await?;
    let stats = app.engine().statistics();
    let agents = paging.page(users.into_iter().map(|user| {
        let s = stats.agent(user.id);
        AgentStatsView {
            agent: user.id.as_uuid(),
            login: user.login,
            chats_handled: s.chats_handled,
            first_response_s_mean: s.first_response_s_mean(),
            handling_s_mean: s.handling_s_mean(),
            rating_mean: s.rating_mean(),
            ratings: s.ratings,
        }
    }))?;
    let aliases = stats
        .by_alias()
        .into_iter()
        .map(|(alias, s)| AliasStatsView {
            alias,
            rating_mean: (s.ratings > 0).then(|| s.rating_total as f64 / s.ratings as f64),
            started: s.started,
            ended: s.ended,
            ratings: s.ratings,
        })
        .collect();
    Ok(Json(StatisticsView { agents, aliases }))
}

/// C9 for creations: a creation's id derives from its `command_id`, so a retry of one that was
/// recorded is refused `already_exists`; it then answers with what the first one made, if that
/// is what this request asks for (`same` returns it), and with the refusal otherwise.
async fn retried_creation<V, Fut>(
    made: ApiResult<V>,
    command_id: Option<Uuid>,
    same: impl FnOnce() -> Fut,
) -> ApiResult<V>
where
    Fut: std::future::Future<Output = ApiResult<Option<V>>>,
{
    match made {
        Err(error) if command_id.is_some() && error.detail.code == "already_exists" => {
            same().await?.ok_or(error)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_replaces_given_keys_clears_nulls_and_keeps_the_rest() {
        let mut target = serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}, "e": "x"});
        merge_patch(
            &mut target,
            &serde_json::json!({"a": 5, "b": {"c": null}, "f": true}),
        );
        assert_eq!(
            target,
            serde_json::json!({"a": 5, "b": {"c": null, "d": 3}, "e": "x", "f": true})
        );
    }

    #[test]
    fn paging_refuses_zero_and_over_the_maximum_and_cuts_pages() {
        let at_max = Paging {
            offset: Some(1),
            limit: Some(PAGE_ITEMS_MAX),
        };
        let page = at_max.page(0..PAGE_ITEMS_MAX + 5).unwrap();
        assert_eq!(page.items.len(), PAGE_ITEMS_MAX);
        assert_eq!(page.items[0], 1);
        assert_eq!(page.total, PAGE_ITEMS_MAX + 5);
        let over = Paging {
            offset: None,
            limit: Some(PAGE_ITEMS_MAX + 1),
        };
        assert_eq!(over.checked().unwrap_err().detail.code, "limit_exceeded");
        let zero = Paging {
            offset: None,
            limit: Some(0),
        };
        assert_eq!(
            zero.checked().unwrap_err().detail.field.as_deref(),
            Some("limit")
        );
    }

    /// Every request body a client can send has one object schema that admits it: no `allOf`
    /// (a flattened struct whose part forbids extra keys admits no body at all), and the module
    /// creation lists `reference` as required beside the module's fields.
    #[test]
    fn request_schemas_are_single_objects() {
        let document = serde_json::to_value(crate::http::openapi()).expect("document");
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for (name, schema) in schemas {
            assert!(
                schema.get("allOf").is_none(),
                "{name} is an allOf: {schema}"
            );
        }
        let create = &schemas["CreateModule"];
        assert_eq!(create["type"], "object", "{create}");
        for key in [
            "reference",
            "command_id",
            "name",
            "appearance",
            "transcript_email",
        ] {
            assert!(create["properties"][key].is_object(), "{key} in {create}");
        }
        assert_eq!(
            create["required"],
            serde_json::json!(["reference"]),
            "{create}"
        );
        assert_eq!(create["additionalProperties"], false, "{create}");
    }

    /// A module creation is one object: `reference` is required, `command_id` must be a UUID,
    /// and an unknown key is refused (named), as in an edit; absent fields take their defaults.
    #[test]
    fn a_creation_body_names_the_key_at_fault() {
        let parse = |body: serde_json::Value| CreateModule::parse(body).map_err(|e| e.detail);
        let made = parse(serde_json::json!({"reference": "sales", "name": "Sales"})).expect("ok");
        assert_eq!(
            (made.reference.as_str(), made.fields.name.as_str()),
            ("sales", "Sales")
        );
        assert_eq!(made.command_id, None);
        assert!(
            made.fields.alias.is_empty(),
            "the handler fills the alias from the name"
        );
        let field = |body| parse(body).expect_err("refused").field;
        assert_eq!(
            field(serde_json::json!({"name": "Sales"})).as_deref(),
            Some("reference")
        );
        assert_eq!(
            field(serde_json::json!({"reference": 7, "name": "Sales"})).as_deref(),
            Some("reference")
        );
        assert_eq!(
            field(serde_json::json!({"reference": "s", "command_id": "x"})).as_deref(),
            Some("command_id")
        );
        assert_eq!(
            field(serde_json::json!(["reference"])).as_deref(),
            Some("body")
        );
        let unknown =
            parse(serde_json::json!({"reference": "s", "colour": "red"})).expect_err("refused");
        assert_eq!(unknown.field.as_deref(), Some("body"));
        assert!(unknown.message.contains("colour"), "{}", unknown.message);
    }
}
