//! Test support for the HTTP service: a real service on a loopback port over a real store, with
//! the demo seeded (module `demo` routed to queue Support, agent `agent` online with capacity 3,
//! admin `admin`), signed-in tokens, and small JSON and WebSocket clients.
//!
//! Use from a test file with `mod support; mod http_support;`.

#![allow(dead_code, unreachable_pub)]

use crate::support::Backend;
use chat_service::http::auth::sign_in;
use chat_service::http::blobs::MemoryBlobs;
use chat_service::http::demo::{self, DEMO_ADMIN_LOGIN, DEMO_AGENT_LOGIN, DemoCredentials};
use chat_service::http::service::{Service, ServiceConfig};
use chat_store::{EventStore, MemoryStore};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Longest a test waits for one pushed WebSocket frame before failing.
pub const WS_WAIT: Duration = Duration::from_secs(30);

/// A running service with the demo seeded.
pub struct TestService {
    pub service: Service,
    pub base: String,
    pub client: reqwest::Client,
    pub credentials: DemoCredentials,
    pub admin_token: String,
    pub agent_token: String,
    pub agent_id: String,
}

impl TestService {
    /// A service over the in-memory store.
    pub async fn memory() -> Self {
        Self::over(Arc::new(MemoryStore::new()), ServiceConfig::default()).await
    }

    /// A service over `backend`'s store.
    pub async fn on(backend: &Backend) -> Self {
        Self::over(backend.store(), ServiceConfig::default()).await
    }

    /// A service over `store` with `config` (its `listen` is replaced by a free loopback port).
    pub async fn over(store: Arc<dyn EventStore>, mut config: ServiceConfig) -> Self {
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.demo = true;
        let service = Service::start_with(config, store, Arc::new(MemoryBlobs::default()), None)
            .await
            .expect("service starts");
        let credentials = demo::seed(service.app(), None).await.expect("demo seeds");
        let (admin, admin_token) =
            sign_in(service.app(), DEMO_ADMIN_LOGIN, &credentials.admin_password)
                .await
                .expect("admin signs in");
        let (agent, agent_token) =
            sign_in(service.app(), DEMO_AGENT_LOGIN, &credentials.agent_password)
                .await
                .expect("agent signs in");
        let _ = admin;
        let base = format!("http://{}", service.address());
        Self {
            service,
            base,
            client: reqwest::Client::new(),
            credentials,
            admin_token,
            agent_token,
            agent_id: agent.id.to_string(),
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The service's own origin (authorised by the demo).
    pub fn origin(&self) -> String {
        self.base.clone()
    }

    /// Sends `request` and returns the status and the JSON body (`Value::Null` when empty or
    /// not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request is answered");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body)
    }

    /// `method` on `path` with an operator token and, when given, a JSON body.
    pub async fn operator(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// GET with an operator token.
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.operator(reqwest::Method::GET, path, token, None).await
    }

    /// POST JSON with an operator token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.operator(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// PUT JSON with an operator token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.operator(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    /// PATCH JSON with an operator token.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.operator(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// DELETE with an operator token.
    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.operator(reqwest::Method::DELETE, path, token, None)
            .await
    }

    /// Puts the signed-in agent of `token` online; panics unless the service agrees.
    pub async fn go_online(&self, token: &str) {
        let (status, body) = self
            .put("/api/agent/presence", token, json!({"presence": "online"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["presence"], "online", "{body}");
    }

    /// The visitor POSTs `body` to `/api/visitor/chats/{chat}/{action}` with the chat's resume
    /// token (e.g. `end`, `rating`).
    pub async fn visitor_action(
        &self,
        chat: &str,
        action: &str,
        resume_token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let path = format!("/api/visitor/chats/{chat}/{action}");
        self.send(
            self.visitor(reqwest::Method::POST, &path, Some(resume_token))
                .json(&body),
        )
        .await
    }

    /// A visitor request from the service's own origin with the chat's resume token.
    pub fn visitor(
        &self,
        method: reqwest::Method,
        path: &str,
        resume_token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Origin", self.origin());
        if let Some(token) = resume_token {
            request = request.header("X-Resume-Token", token);
        }
        request
    }

    /// Opens a WebSocket on `path_and_query` (e.g. `/api/agent/ws?token=…&after=0`).
    pub async fn ws(&self, path_and_query: &str) -> WsClient {
        let url = format!("ws://{}{path_and_query}", self.service.address());
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .expect("ws request");
        request
            .headers_mut()
            .insert("Origin", self.origin().parse().expect("origin header"));
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connects");
        WsClient { stream }
    }

    /// Stops the service.
    pub async fn shutdown(self) {
        self.service.shutdown().await;
    }
}

/// A WebSocket client of a stream.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// The next JSON frame (events and the `disconnected` notice), or `None` when the server
    /// closed. Panics after [`WS_WAIT`] without a frame.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(WS_WAIT, self.stream.next())
                .await
                .expect("a frame within WS_WAIT")?;
            match message.ok()? {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("JSON frame"));
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Frames until one of type `event_type` arrives; returns it with the ones before it.
    pub async fn until_type(&mut self, event_type: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream closed before {event_type}"));
            if frame["type"] == event_type {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

/// Starts the `chat-service` binary (`bin`: `env!("CARGO_BIN_EXE_chat-service")`) with `args`
/// and reads what it prints up to the "API description" line; returns the process, the URL it
/// listens on and the printed lines. Its logs (stderr) are discarded.
pub fn start_binary(bin: &str, args: &[&str]) -> (std::process::Child, String, Vec<String>) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("a printed line");
        let done = line.starts_with("API description");
        lines.push(line);
        if done {
            break;
        }
    }
    let url = lines
        .iter()
        .find(|l| l.starts_with("chat-service listening on"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .unwrap_or_else(|| panic!("the service prints where it listens: {lines:?}"))
        .to_owned();
    (child, url, lines)
}
