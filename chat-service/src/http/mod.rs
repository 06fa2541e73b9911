//! The reference HTTP + WebSocket service (V1): a thin wrapper over the [`Engine`].
//!
//! Layout: [`App`] is the shared state every handler gets (the engine, the live fan-out, the
//! attachment store, the signing key, limits); [`router`] assembles the visitor API
//! (`/api/visitor/…`, the widget's), the agent API (`/api/agent/…`, the console's), the admin and
//! supervisor API (`/api/admin/…`), and the operational endpoints (`/healthz`, `/metrics`,
//! `/openapi.json`). Each API part is one module with its own `routes()`, registered through
//! utoipa-axum so that the OpenAPI document is generated from the same registrations as the
//! router and cannot drift from it. Errors are mapped in one place ([`error`]).
//!
//! Only this module knows HTTP and JSON (STYLE: "only the shell knows the wire"): request and
//! response types live here, next to their handlers. docs/HTTP.md is the user's guide.

pub mod admin;
pub mod agent;
pub mod auth;
pub mod blobs;
pub mod demo;
pub mod error;
pub mod extract;
pub mod ops;
pub mod service;
pub mod views;
pub mod visitor;
pub mod web;
pub mod ws;

use crate::engine::Engine;
use crate::fanout::Fanout;
use crate::http::auth::{SecretKey, constant_time_eq};
use crate::http::blobs::BlobStore;
use crate::http::error::{ApiError, ApiResult};
use axum::Router;
use axum::http::HeaderMap;
use chat_core::ChatId;
use chat_core::config::{ACCOUNT_SETTINGS_STREAM, AccountSettings, check_origin};
use chat_core::conversation::{ChatState, Conversation};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Most visitor keys (chats or addresses) the rate limiter tracks at once; beyond it the
/// oldest-refilled entries are dropped (a dropped key starts again with a full bucket).
pub const RATE_KEYS_MAX: usize = 100_000;

/// Limits of the HTTP layer (the engine and chat-core keep their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body outside attachment uploads, in bytes.
    pub json_bytes_max: usize,
    /// Largest attachment upload body, in bytes (a module's own limit may be lower).
    pub upload_bytes_max: usize,
    /// Visitor requests allowed per minute per chat (or per address before a chat exists).
    pub visitor_requests_per_minute: u32,
    /// Visitor requests allowed in a burst.
    pub visitor_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            json_bytes_max: 64 * 1024,
            upload_bytes_max: 10 * 1024 * 1024,
            visitor_requests_per_minute: 120,
            visitor_burst: 30,
        }
    }
}

/// Counters for `/metrics` that no other component keeps.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered with a 5xx.
    pub server_errors: AtomicU64,
    /// Visitor requests refused by the rate limiter.
    pub rate_limited: AtomicU64,
}

/// What the service is made of; see [`service::Service`] for how it is assembled.
pub struct AppParts {
    /// The engine.
    pub engine: Engine,
    /// The live fan-out over the engine's store.
    pub fanout: Fanout,
    /// The outbox, when running (for `/metrics`).
    pub outbox: Option<tokio::sync::watch::Receiver<crate::outbox::OutboxStats>>,
    /// Where attachments are kept.
    pub blobs: Arc<dyn BlobStore>,
    /// The key that signs operator tokens.
    pub secret: SecretKey,
    /// The HTTP limits.
    pub limits: HttpLimits,
    /// The URL browsers reach the service at (for the embed snippet and links).
    pub public_url: String,
}

struct Inner {
    parts: AppParts,
    rate: Mutex<HashMap<String, (f64, Instant)>>,
    counters: Counters,
    catalogue: admin::Catalogue,
    canned: agent::CannedIndex,
}

/// The shared state of every handler; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// An app from its parts.
    pub fn new(parts: AppParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                rate: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                catalogue: admin::Catalogue::default(),
                canned: agent::CannedIndex::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.parts.engine
    }

    /// The live fan-out.
    pub fn fanout(&self) -> &Fanout {
        &self.inner.parts.fanout
    }

    /// The attachment store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.parts.blobs
    }

    /// The token signing key.
    pub fn secret(&self) -> &SecretKey {
        &self.inner.parts.secret
    }

    /// The HTTP limits.
    pub fn limits(&self) -> &HttpLimits {
        &self.inner.parts.limits
    }

    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> &str {
        self.inner.parts.public_url.trim_end_matches('/')
    }

    /// The outbox's statistics, when an outbox runs.
    pub fn outbox_stats(&self) -> Option<crate::outbox::OutboxStats> {
        self.inner.parts.outbox.as_ref().map(|w| *w.borrow())
    }

    /// The admin API's list of configuration objects and operators (folded from the log).
    pub(crate) fn catalogue(&self) -> &admin::Catalogue {
        &self.inner.catalogue
    }

    /// The agent API's canned-response lookup index (A4, folded from the log).
    pub(crate) fn canned(&self) -> &agent::CannedIndex {
        &self.inner.canned
    }

    /// The HTTP layer's own counters.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The account settings as the log has them now.
    pub async fn account(&self) -> ApiResult<AccountSettings> {
        Ok(self
            .engine()
            .state::<AccountSettings>(ACCOUNT_SETTINGS_STREAM)
            .await?)
    }

    /// M5, V3: a browser request (one with an `Origin` header) must come from an authorised
    /// domain; requests without `Origin` (servers, curl) pass, as they carry no ambient browser
    /// credentials — they still need the resume token or an operator token.
    pub async fn check_origin(&self, headers: &HeaderMap) -> ApiResult<()> {
        let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .map_err(|_| ApiError::invalid("Origin", "not ASCII"))?;
        let account = self.account().await?;
        check_origin(origin, &account.authorised_domains).map_err(|refused| {
            ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "origin_not_allowed",
                refused.to_string(),
            )
            .with_field("Origin")
        })
    }

    /// V3: the chat a visitor may see — the one whose resume token they present. A missing
    /// token is 401 `unauthorized`; a wrong token, or a chat that does not exist, is 403
    /// `not_your_chat` (the two are indistinguishable on purpose).
    pub async fn visitor_chat(&self, chat: ChatId, token: Option<&str>) -> ApiResult<ChatState> {
        let token = token.ok_or_else(|| {
            ApiError::unauthorized("send the chat's resume token in the X-Resume-Token header")
        })?;
        let state = self
            .engine()
            .state::<Conversation>(&chat.stream_name())
            .await?;
        let matches = state
            .record
            .as_ref()
            .is_some_and(|r| constant_time_eq(r.resume_token.as_bytes(), token.as_bytes()));
        if matches {
            Ok(state)
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "not_your_chat",
                "the resume token does not open this chat",
            ))
        }
    }

    /// Per-visitor rate limit (token bucket keyed by chat id, or by address before a chat
    /// exists): 429 `rate_limited` when the bucket is empty.
    pub fn rate_limit(&self, key: &str) -> ApiResult<()> {
        let limits = self.limits();
        let per_s = f64::from(limits.visitor_requests_per_minute) / 60.0;
        let burst = f64::from(limits.visitor_burst.max(1));
        let now = Instant::now();
        let mut buckets = self
            .inner
            .rate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= RATE_KEYS_MAX && !buckets.contains_key(key) {
            // Full buckets carry no information: drop them first, then the stalest half.
            buckets.retain(|_, (tokens, at)| *tokens + at.elapsed().as_secs_f64() * per_s < burst);
            if buckets.len() >= RATE_KEYS_MAX {
                let mut ages: Vec<Instant> = buckets.values().map(|(_, at)| *at).collect();
                ages.sort_unstable();
                let cut = ages[ages.len() / 2];
                buckets.retain(|_, (_, at)| *at > cut);
            }
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_s).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            self.inner
                .counters
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} requests per minute; slow down",
                    limits.visitor_requests_per_minute
                ),
            ))
        }
    }
}

/// The OpenAPI document's frame; the paths come from the registered routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-engine reference service",
        description = "Visitor (widget), agent (console) and admin APIs of the live-chat engine. \
            Every error is a JSON `ErrorBody` with a stable `code` (docs/HTTP.md lists them).",
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::FieldProblem)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "resume_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Resume-Token"))),
        );
    }
}

fn api() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(visitor::routes())
        .merge(agent::routes())
        .merge(admin::routes())
        .merge(ops::routes())
}

/// The OpenAPI document of every registered route (served at `/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The whole service: every API route, the WebSocket streams, `/openapi.json`, and the limits
/// that apply to every request.
pub fn router(app: App) -> Router {
    let (router, document) = api().split_for_parts();
    let document = Arc::new(document);
    let json_bytes_max = app.limits().json_bytes_max;
    router
        .merge(ws::routes())
        .merge(web::routes())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json((*document).clone()) }
            }),
        )
        // Uploads override this on their own route with `upload_bytes_max`.
        .layer(axum::extract::DefaultBodyLimit::max(json_bytes_max))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            ops::count_server_errors,
        ))
        .with_state(app)
}
