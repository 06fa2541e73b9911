//! Operational endpoints: `/healthz` for load balancers, `/metrics` in Prometheus text format.

use crate::http::App;
use crate::http::error::ApiResult;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The operational routes.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// What `/healthz` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the store answers and no engine task has failed, else `degraded`.
    pub status: String,
    /// The log's head position.
    pub head_position: u64,
    /// Engine tasks that stopped with an error.
    pub failures: Vec<String>,
}

/// Liveness and readiness: the store answers and no background task has failed.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(app): State<App>) -> ApiResult<Response> {
    let head_position = app.engine().store().head_position().await?;
    let failures = app.engine().failures();
    let status = if failures.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let code = if failures.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        code,
        Json(Health {
            status: status.to_owned(),
            head_position,
            failures,
        }),
    )
        .into_response())
}

/// Prometheus metrics: chats waiting and active, agents online, events appended (the log's head
/// position), e-mails and webhooks pending, WebSocket clients, rate-limited and failed requests.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(app): State<App>) -> ApiResult<Response> {
    let board = app.engine().board();
    let live = board.live();
    let online = live
        .agents()
        .values()
        .filter(|a| a.presence == chat_core::agent::Presence::Online)
        .count();
    let head = app.engine().store().head_position().await?;
    let mut text = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "chat_chats_waiting",
        "Chats waiting for an agent.",
        live.waiting().len() as u64,
    );
    gauge(
        "chat_chats_active",
        "Chats with an agent.",
        live.active().len() as u64,
    );
    gauge("chat_agents_online", "Agents online.", online as u64);
    gauge(
        "chat_events_appended",
        "Events in the log (its head position).",
        head,
    );
    gauge(
        "chat_websocket_clients",
        "Open WebSocket streams on this process.",
        app.fanout().subscribers() as u64,
    );
    if let Some(stats) = app.outbox_stats() {
        gauge(
            "chat_outbox_pending",
            "E-mails and webhooks not yet delivered.",
            stats.pending as u64,
        );
        gauge(
            "chat_outbox_delivered",
            "Deliveries completed since start.",
            stats.delivered,
        );
    }
    gauge(
        "chat_http_rate_limited",
        "Visitor requests refused by the rate limiter since start.",
        app.counters().rate_limited.load(Ordering::Relaxed),
    );
    gauge(
        "chat_http_server_errors",
        "Requests answered with a 5xx since start.",
        app.counters().server_errors.load(Ordering::Relaxed),
    );
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Counts 5xx answers for `/metrics`.
pub(crate) async fn count_server_errors(
    State(app): State<App>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.status().is_server_error() {
        app.counters().server_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}
