//! V1 with several processes (issue #8): two service processes on one PostgreSQL database serve
//! the same chats. A visitor connected to process A sees, live over its WebSocket, what an agent
//! sends through process B, and the agent's stream on B sees what the visitor sends through A.
//! Both processes run their routing runtimes at once (R2 holds through the store).

mod http_support;
mod support;

use chat_service::http::auth::SecretKey;
use chat_store::PostgresTestDatabase;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Child;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one pushed frame.
const WAIT: Duration = Duration::from_secs(30);

struct Process {
    child: Child,
    url: String,
    lines: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(url: &str, schema: &str, key: &str, demo: bool) -> Process {
    let store = format!("postgres:{url}");
    let mut args = vec![
        "--store",
        &store,
        "--postgres-schema",
        schema,
        "--secret-key",
        key,
        "--listen",
        "127.0.0.1:0",
    ];
    if demo {
        args.push("--demo");
    }
    let (child, url, lines) = http_support::start_binary(env!("CARGO_BIN_EXE_chat-service"), &args);
    Process { child, url, lines }
}

async fn ws(
    url: &str,
    origin: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.replacen("http://", "ws://", 1),
        )
        .expect("request");
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("origin"));
    tokio_tungstenite::connect_async(request)
        .await
        .expect("ws connects")
        .0
}

/// Frames until one of `event_type` whose JSON contains `needle`.
async fn until(
    stream: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    event_type: &str,
    needle: &str,
) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {event_type} containing {needle:?} within {WAIT:?}"))
            .expect("stream open")
            .expect("frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame["type"] == event_type && text.contains(needle) {
                return frame;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_a_visitor_on_one_process_sees_what_an_agent_sends_through_another() {
    let Some(db) = PostgresTestDatabase::from_env() else {
        return;
    };
    let config = db.fresh_config();
    let schema = config.schema_name().to_owned();
    let key = SecretKey::generate().expect("key").to_hex();
    let a = start(db.url(), &schema, &key, true);
    let b = start(db.url(), &schema, &key, false);
    let password = a
        .lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("agent: login agent password "))
        .expect("demo agent credentials printed")
        .trim()
        .to_owned();
    let client = reqwest::Client::new();

    // The agent signs in on B; the token is valid on A too (one shared key).
    let signed: Value = client
        .post(format!("{}/api/agent/sign-in", b.url))
        .json(&json!({"login": "agent", "password": password}))
        .send()
        .await
        .expect("sign-in answered")
        .json()
        .await
        .expect("JSON");
    let token = signed["token"].as_str().expect("token").to_owned();
    let me = client
        .get(format!("{}/api/agent/me", a.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    assert_eq!(me.status(), StatusCode::OK, "a token of B is accepted by A");
    let mut inbox = ws(
        &format!("{}/api/agent/ws?token={token}&after=0", b.url),
        &b.url,
    )
    .await;

    // The visitor starts on A (A's own origin is authorised by the demo).
    let started: Value = client
        .post(format!("{}/api/visitor/modules/demo/chats", a.url))
        .header("Origin", &a.url)
        .json(&json!({"form": {"name": "Vera", "email": "vera@example.org"}, "page": {}}))
        .send()
        .await
        .expect("start answered")
        .json()
        .await
        .expect("JSON");
    let chat = started["chat"].as_str().expect("chat id").to_owned();
    let resume = started["resume_token"]
        .as_str()
        .expect("resume token")
        .to_owned();
    let mut visitor = ws(
        &format!(
            "{}/api/visitor/chats/{chat}/ws?token={resume}&after=0",
            a.url
        ),
        &a.url,
    )
    .await;

    // Routing (on either process) gives the chat to the only agent; both sides see it.
    until(&mut visitor, "AgentAssigned", &chat).await;
    until(&mut inbox, "AgentAssigned", &chat).await;

    // The agent writes through B; the visitor on A receives it live.
    let sent = client
        .post(format!("{}/api/agent/chats/{chat}/messages", b.url))
        .bearer_auth(&token)
        .json(&json!({"text": "hello from process B"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(sent.status(), StatusCode::OK, "{:?}", sent.text().await);
    let frame = until(&mut visitor, "MessagePosted", "hello from process B").await;
    assert!(frame["position"].as_u64().is_some());

    // The visitor answers through A; the agent's stream on B receives it live.
    let reply = client
        .post(format!("{}/api/visitor/chats/{chat}/messages", a.url))
        .header("Origin", &a.url)
        .header("X-Resume-Token", &resume)
        .json(&json!({"text": "hello from process A"}))
        .send()
        .await
        .expect("answered");
    assert!(reply.status().is_success(), "{:?}", reply.text().await);
    until(&mut inbox, "MessagePosted", "hello from process A").await;

    drop(a);
    drop(b);
    let _ = db.drop_schema(&schema).await;
}
