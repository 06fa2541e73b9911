//! Issue #8's main journey through the public API only, over real sockets, on sled and
//! PostgreSQL, ending at a real SMTP listener: an admin sets the engine's e-mail sender and two
//! agents; a visitor starts a chat on the demo module; an agent takes it from the waiting list;
//! messages go both ways and each side sees the other's on its WebSocket stream; the agent
//! transfers the chat; the second agent answers; the visitor ends and rates; the visitor's
//! transcript e-mail arrives, once, with every message in it.

mod http_support;
mod support;

use chat_service::http::auth::user_id;
use chat_service::http::demo::{DEMO_AGENT_LOGIN, DEMO_MODULE};
use chat_service::http::service::{ServiceConfig, SmtpSettings};
use http_support::{TestService, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{SmtpListener, WAIT};

const PASSWORD: &str = "password-1234";
const VISITOR_EMAIL: &str = "ada@example.org";
const SENDER: &str = "support@shop.example";

/// An agent created by the admin API (not in the demo queue, so routing leaves chats to a manual
/// pick), signed in and online; returns (token, id).
async fn agent(t: &TestService, login: &str) -> (String, String) {
    let (status, created) = t
        .post(
            "/api/admin/operators",
            &t.admin_token,
            json!({"login": login, "display_name": login, "role": "agent",
                   "password": PASSWORD, "capacity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, signed) = t
        .send(
            t.client
                .post(t.url("/api/agent/sign-in"))
                .json(&json!({"login": login, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let token = signed["token"].as_str().expect("token").to_owned();
    t.go_online(&token).await;
    (token, created["id"].as_str().expect("id").to_owned())
}

/// The event of a pushed frame (events travel externally tagged: `{"<type>": {…}}`).
fn event_of(frame: &Value) -> &Value {
    &frame["event"][frame["type"].as_str().expect("a type")]
}

/// Frames until a `MessagePosted` whose text is `text`; returns that frame.
async fn message_frame(ws: &mut WsClient, text: &str) -> Value {
    loop {
        let frame = ws.next().await.expect("stream open");
        if frame["type"] == "MessagePosted" {
            assert_eq!(
                event_of(&frame)["message"]["body"]["text"],
                text,
                "the next message pushed is the one sent: {frame}"
            );
            return frame;
        }
    }
}

async fn journey(t: &TestService, smtp: &SmtpListener) {
    // The admin: the engine's e-mail sender; the demo agent takes nothing; two agents.
    let mail = json!({"sender": SENDER, "offline_mail": {}});
    let (status, body) = t.put("/api/admin/mail", &t.admin_token, mail.clone()).await;
    assert_eq!((status, &body), (StatusCode::OK, &mail));
    let demo_agent = user_id(DEMO_AGENT_LOGIN).to_string();
    let (status, body) = t
        .patch(
            &format!("/api/admin/operators/{demo_agent}"),
            &t.admin_token,
            json!({"capacity": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (alice, alice_id) = agent(t, "alice").await;
    let (bob, bob_id) = agent(t, "bob").await;

    // The visitor starts a chat; it waits (nobody in the queue has room).
    let (status, started) = t
        .send(
            t.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&json!({"form": {"name": "Ada", "email": VISITOR_EMAIL},
                              "page": {"message": "my order is late"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    assert_eq!(started["offline"], false);
    let chat = started["chat"].as_str().expect("chat").to_owned();
    let token = started["resume_token"].as_str().expect("token").to_owned();
    let mut visitor_ws = t
        .ws(&format!(
            "/api/visitor/chats/{chat}/ws?token={token}&after=0"
        ))
        .await;
    visitor_ws.until_type("ChatQueued").await;
    t.service.app().engine().settle().await.expect("settles");
    let (status, waiting) = t.get("/api/agent/waiting", &alice).await;
    assert_eq!(status, StatusCode::OK, "{waiting}");
    assert!(
        waiting["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .any(|c| c["chat"] == chat.as_str()),
        "{waiting}"
    );

    // Alice listens to her inbox and takes the chat; the visitor sees her assigned.
    let mut alice_ws = t.ws(&format!("/api/agent/ws?token={alice}")).await;
    let chat_path = format!("/api/agent/chats/{chat}");
    let (status, taken) = t
        .post(&format!("{chat_path}/take"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    let (assigned, _) = visitor_ws.until_type("AgentAssigned").await;
    assert_eq!(
        event_of(&assigned)["agent"],
        alice_id.as_str(),
        "{assigned}"
    );

    // Messages both ways, each pushed to the other side with its text.
    let visitor_says = |text: &str| {
        t.visitor(
            Method::POST,
            &format!("/api/visitor/chats/{chat}/messages"),
            Some(&token),
        )
        .json(&json!({"text": text}))
    };
    let (status, sent) = t.send(visitor_says("Order 1234 has not arrived")).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    message_frame(&mut alice_ws, "Order 1234 has not arrived").await;
    let (status, sent) = t
        .post(
            &format!("{chat_path}/messages"),
            &alice,
            json!({"text": "Let me hand you to our shipping expert"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    message_frame(&mut visitor_ws, "Order 1234 has not arrived").await;
    message_frame(&mut visitor_ws, "Let me hand you to our shipping expert").await;

    // Alice transfers to Bob; the visitor's stream says so; Bob answers.
    let (status, done) = t
        .post(
            &format!("{chat_path}/transfer"),
            &alice,
            json!({"agent": bob_id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (assigned, _) = visitor_ws.until_type("AgentAssigned").await;
    assert_eq!(event_of(&assigned)["agent"], bob_id.as_str(), "{assigned}");
    let (status, _) = t
        .post(
            &format!("{chat_path}/messages"),
            &bob,
            json!({"text": "It ships tomorrow morning"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    message_frame(&mut visitor_ws, "It ships tomorrow morning").await;

    // The visitor ends and rates.
    let (status, ended) = t.visitor_action(&chat, "end", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    assert_eq!(ended["view"]["disposition"], "Managed");
    visitor_ws.until_type("EpisodeEnded").await;
    let (status, rated) = t
        .visitor_action(
            &chat,
            "rating",
            &token,
            json!({"score": 5, "comment": "fast"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    visitor_ws.until_type("ChatRated").await;
    visitor_ws.close().await;
    alice_ws.close().await;

    // O2: the transcript reaches the SMTP listener, from the sender, to the visitor.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mail = loop {
        if let Some(mail) = smtp
            .mails()
            .into_iter()
            .find(|m| m.recipients.iter().any(|r| r.contains(VISITOR_EMAIL)))
        {
            break mail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transcript within {WAIT:?}; the outbox's metrics: {:?}",
            t.send(t.client.get(t.url("/metrics"))).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(mail.envelope_from, SENDER);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Transcript of your chat")
    );
    let body = mail.body();
    for text in [
        "Order 1234 has not arrived",
        "Let me hand you to our shipping expert",
        "It ships tomorrow morning",
    ] {
        assert!(body.contains(text), "{text:?} in the transcript:\n{body}");
    }
    // Once: the outbox has nothing left to send and sent one e-mail for this chat.
    t.service.app().engine().settle().await.expect("settles");
    let to_visitor = smtp
        .mails()
        .iter()
        .filter(|m| m.recipients.iter().any(|r| r.contains(VISITOR_EMAIL)))
        .count();
    assert_eq!(to_visitor, 1, "one transcript");
}

#[tokio::test]
async fn c1_a2_a3_o2_journey_through_the_api_ends_with_the_transcript_email_on_every_store() {
    for backend in support::backends().await {
        let smtp = SmtpListener::start().await;
        let config = ServiceConfig {
            smtp: Some(SmtpSettings {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                security: "none".into(),
                user: None,
                password: None,
            }),
            ..ServiceConfig::default()
        };
        let t = TestService::over(backend.store(), config).await;
        journey(&t, &smtp).await;
        t.shutdown().await;
        backend.cleanup().await;
    }
}

/// The e-mail settings refuse a bad address, naming the field, and change nothing.
#[tokio::test]
async fn o1_mail_settings_refuse_a_bad_address_and_keep_the_last_good_ones() {
    let t = TestService::memory().await;
    let put = |body: Value| {
        t.client
            .put(t.url("/api/admin/mail"))
            .bearer_auth(&t.admin_token)
            .json(&body)
    };
    let module = DEMO_MODULE.to_string();
    let good = json!({"sender": SENDER,
                      "offline_mail": {module.clone(): {"Forward": {"to": "team@shop.example"}}}});
    let (status, body) = t.send(put(good.clone())).await;
    assert_eq!((status, &body), (StatusCode::OK, &good));
    let (status, body) = t
        .send(put(json!({"sender": "not an address", "offline_mail": {}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "sender", "{body}");
    let (status, body) = t
        .send(put(json!({"sender": SENDER,
                         "offline_mail": {module: {"Forward": {"to": "nobody"}}}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("offline_mail[")),
        "{body}"
    );
    let (status, body) = t.get("/api/admin/mail", &t.admin_token).await;
    assert_eq!((status, &body), (StatusCode::OK, &good));
    let (status, body) = t.get("/api/admin/mail", &t.agent_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    t.shutdown().await;
}
