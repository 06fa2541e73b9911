//! WebSocket streams (V1): a visitor's chat, an agent's inbox, a supervisor's board.
//!
//! Every pushed frame carries the event's global position; a client that reconnects with
//! `?after=<last position it saw>` gets exactly what it missed, then live events — no gap, no
//! duplicate (the [`Fanout`](crate::fanout::Fanout) reads the log from that position before it
//! goes live). Browsers cannot set headers on a WebSocket, so the credential travels in the
//! query: `?token=<resume token>` for visitors, `?token=<operator token>` for operators.
//!
//! Frames (server → client, JSON text): an event `{"position", "stream", "type", "event"}`, or,
//! once, before the server closes, `{"disconnected": {"reason", "resume_after"}}` (the client
//! reconnects with `after = resume_after`). The client sends nothing but pings.

use crate::engine::{DomainEvent, Followed};
use crate::fanout::{Audience, FanoutError, Subscription};
use crate::http::App;
use crate::http::auth::{Operator, Role, authenticate, bearer, query_param};
use crate::http::error::{ApiError, ApiResult};
use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use chat_core::{ChatId, EventKind};
use chat_store::GlobalPosition;
use serde_json::{Value, json};

/// Largest message a client may send on a stream (pings and close frames only), in bytes.
pub const CLIENT_FRAME_BYTES_MAX: usize = 1024;

/// The WebSocket routes (not in the OpenAPI document: OpenAPI cannot describe them; docs/HTTP.md
/// does).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/visitor/chats/{chat}/ws", get(visitor_stream))
        .route("/api/agent/ws", get(agent_stream))
        .route("/api/supervisor/ws", get(board_stream))
}

/// The paths of [`routes`], for the test that compares the router with the OpenAPI document.
pub const PATHS: [&str; 3] = [
    "/api/visitor/chats/{chat}/ws",
    "/api/agent/ws",
    "/api/supervisor/ws",
];

/// `?after=` of a stream request (0: from the beginning).
struct After(GlobalPosition);

impl FromRequestParts<App> for After {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, Self::Rejection> {
        match query_param(parts, "after") {
            None => Ok(Self(0)),
            Some(text) => text
                .parse()
                .map(Self)
                .map_err(|_| ApiError::invalid("after", "a log position (an unsigned integer)")),
        }
    }
}

async fn visitor_stream(
    State(app): State<App>,
    Path(chat): Path<ChatId>,
    After(after): After,
    upgrade: WebSocketUpgrade,
    parts: Parts,
) -> ApiResult<Response> {
    app.check_origin(&parts.headers).await?;
    let token = query_param(&parts, "token").or_else(|| {
        parts
            .headers
            .get("x-resume-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    app.visitor_chat(chat, token.as_deref()).await?;
    open(app, Audience::Chat(chat), after, upgrade).await
}

async fn agent_stream(
    State(app): State<App>,
    After(after): After,
    upgrade: WebSocketUpgrade,
    parts: Parts,
) -> ApiResult<Response> {
    let operator = operator(&app, &parts).await?;
    open(app, Audience::AgentInbox(operator.id), after, upgrade).await
}

async fn board_stream(
    State(app): State<App>,
    After(after): After,
    upgrade: WebSocketUpgrade,
    parts: Parts,
) -> ApiResult<Response> {
    operator(&app, &parts).await?.require(Role::Supervisor)?;
    open(app, Audience::Board, after, upgrade).await
}

async fn operator(app: &App, parts: &Parts) -> ApiResult<Operator> {
    let token =
        bearer(parts).ok_or_else(|| ApiError::unauthorized("send ?token=<operator token>"))?;
    authenticate(app, &token).await
}

async fn open(
    app: App,
    audience: Audience,
    after: GlobalPosition,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let subscription =
        app.fanout()
            .subscribe(audience, after)
            .await
            .map_err(|error| match error {
                FanoutError::TooManySubscribers { max } => ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_subscribers",
                    format!("{max} streams are open; retry later"),
                ),
                other => ApiError::internal(other),
            })?;
    // Clients send only pings: small buffers keep an idle stream at a few KiB instead of the
    // 128 KiB tungstenite reserves by default (measured by benches/load.rs).
    Ok(upgrade
        .max_message_size(CLIENT_FRAME_BYTES_MAX)
        .read_buffer_size(CLIENT_FRAME_BYTES_MAX * 4)
        .write_buffer_size(0)
        .on_upgrade(move |socket| pump(socket, subscription)))
}

/// The JSON frame of one event: position, stream, type and the event itself.
pub fn event_frame(followed: &Followed) -> Option<Value> {
    let (kind, event) = match &followed.event {
        DomainEvent::Chat { event, .. } => {
            let mut event = serde_json::to_value(event).ok()?;
            strip_secrets(&mut event);
            (event_type(&followed.event)?, event)
        }
        DomainEvent::Agent { event, .. } => (event.event_type(), serde_json::to_value(event).ok()?),
        _ => return None,
    };
    Some(json!({
        "position": followed.position(),
        "stream": followed.recorded.stream_id.as_str(),
        "type": kind,
        "event": event,
    }))
}

fn event_type(event: &DomainEvent) -> Option<&'static str> {
    match event {
        DomainEvent::Chat { event, .. } => Some(event.event_type()),
        DomainEvent::Agent { event, .. } => Some(event.event_type()),
        _ => None,
    }
}

/// Removes every `resume_token` from a pushed event: the token is the visitor's credential, and
/// agents and supervisors receive `ChatStarted` too.
fn strip_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("resume_token");
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// Pushes the subscription's events to the socket until either side ends.
async fn pump(mut socket: WebSocket, mut subscription: Subscription) {
    loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(followed) => {
                    let Some(frame) = event_frame(&followed) else { continue };
                    if socket.send(Message::Text(frame.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Err(FanoutError::Disconnected { reason, resume_after }) => {
                    let frame = json!({"disconnected": {
                        "reason": format!("{reason:?}"),
                        "resume_after": resume_after,
                    }});
                    let _ = socket.send(Message::Text(frame.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "stream ended");
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
