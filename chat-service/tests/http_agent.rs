//! The agent API over real sockets: sign-in and revoked tokens, the journey from the waiting list
//! through a manual pick, messages both ways, the agent's inbox stream, a transfer and the end
//! (sled and PostgreSQL), the supervisor stream's role check, and every refusal path — each
//! answering its documented code and recording nothing.
//!
//! Chats wait for a manual pick because the demo agent (the demo queue's only member) stays
//! online at capacity 0: routing then keeps the chat queued ("could take it later", C3), and the
//! agents of these tests are not members, so routing never gives them chats itself.

mod http_support;
mod support;

use chat_core::agent::AgentCommand;
use chat_core::config::{AdminCommand, CannedCommand, CannedContent, CannedDecider, CannedScope};
use chat_core::conversation::{ChatCommand, MESSAGE_TEXT_BYTES_MAX, MessageBody, Origin, Party};
use chat_core::{AgentId, CannedResponseId, ChatId, CommandId, ContactId, MessageId, PageData};
use chat_service::engine::NewChat;
use chat_service::http::agent::{CANNED_PERSONAL_MAX, CANNED_PREFIX_BYTES_MAX, WAITING_LIST_MAX};
use chat_service::http::auth::{
    Role, UserCommand, UserDecider, create_user, hash_password, sign_in, user_id, user_stream,
};
use chat_service::http::demo::{self, DEMO_AGENT_LOGIN};
use chat_service::http::error::ApiError;
use chat_service::http::service::ServiceConfig;
use chat_store::{MemoryStore, READ_COUNT_MAX, StreamId};
use http_support::TestService;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const PASSWORD: &str = "password-1234";

/// A new agent, signed in, online with `capacity`.
async fn agent(t: &TestService, login: &str, capacity: u32) -> (String, AgentId) {
    let app = t.service.app();
    let user = create_user(app, login, login, Role::Agent, PASSWORD)
        .await
        .expect("user created");
    app.engine()
        .agent(AgentCommand::SetCapacity {
            agent: user.id,
            capacity,
        })
        .await
        .expect("engine")
        .expect("capacity set");
    let (_, token) = sign_in(app, login, PASSWORD).await.expect("signs in");
    t.go_online(&token).await;
    (token, user.id)
}

/// Keeps chats waiting: the demo queue's only member stays online with no room.
async fn chats_wait(t: &TestService) {
    t.service
        .app()
        .engine()
        .agent(AgentCommand::SetCapacity {
            agent: user_id(DEMO_AGENT_LOGIN),
            capacity: 0,
        })
        .await
        .expect("engine")
        .expect("capacity set");
}

/// A visitor chat on the demo module, waiting (the engine's `start_chat`, as the widget does).
async fn visitor_chat(t: &TestService, contact: ContactId) -> ChatId {
    let chat = ChatId::from_uuid(Uuid::now_v7());
    let engine = t.service.app().engine();
    engine
        .start_chat(NewChat {
            command_id: CommandId::from_uuid(Uuid::now_v7()),
            chat,
            module: demo::DEMO_MODULE,
            contact,
            contact_email: Some("vera@example.com".into()),
            resume_token: format!("resume-{chat}"),
            page: PageData {
                firstname: Some("Vera".into()),
                ..PageData::default()
            },
            form_answers: BTreeMap::new(),
            routing_vars: BTreeMap::new(),
            origin: Origin::Widget,
        })
        .await
        .expect("engine")
        .expect("chat starts");
    engine.settle().await.expect("settled");
    chat
}

async fn visitor_says(t: &TestService, chat: ChatId, text: &str) {
    t.service
        .app()
        .engine()
        .chat(
            chat,
            ChatCommand::PostMessage {
                command_id: CommandId::from_uuid(Uuid::now_v7()),
                message_id: MessageId::from_uuid(Uuid::now_v7()),
                author: Party::Visitor,
                body: MessageBody::text(text),
            },
        )
        .await
        .expect("engine")
        .expect("visitor message accepted");
}

async fn head(t: &TestService) -> u64 {
    let engine = t.service.app().engine();
    engine.settle().await.expect("settled");
    engine.store().head_position().await.expect("head")
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// The global positions of a chat's events.
async fn chat_positions(t: &TestService, chat: ChatId) -> Vec<u64> {
    let stream = StreamId::new(chat.stream_name()).expect("stream id");
    t.service
        .app()
        .engine()
        .store()
        .read_stream(&stream, 1, READ_COUNT_MAX)
        .await
        .expect("read")
        .iter()
        .map(|r| r.global_position)
        .collect()
}

/// Frames up to and including the first of `event_type`; checks positions strictly increase.
async fn frames_until(ws: &mut http_support::WsClient, event_type: &str) -> Vec<Value> {
    let (last, mut frames) = ws.until_type(event_type).await;
    frames.push(last);
    let positions: Vec<u64> = frames
        .iter()
        .map(|f| f["position"].as_u64().expect("a position"))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase: {positions:?}"
    );
    frames
}

fn chat_frame_positions(frames: &[Value], chat: ChatId) -> Vec<u64> {
    let stream = chat.stream_name();
    frames
        .iter()
        .filter(|f| f["stream"] == stream.as_str())
        .map(|f| f["position"].as_u64().expect("a position"))
        .collect()
}

#[tokio::test]
async fn a1_sign_in_answers_one_401_for_wrong_passwords_and_unknown_logins_and_revokes_tokens() {
    let t = TestService::memory().await;
    let app = t.service.app();

    // Given the demo agent, when they sign in with the right password, then the token works.
    let (status, body) = t
        .send(
            t.client.post(t.url("/api/agent/sign-in")).json(
                &json!({"login": DEMO_AGENT_LOGIN, "password": t.credentials.agent_password}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["login"], DEMO_AGENT_LOGIN);
    assert_eq!(body["user"]["role"], "agent");
    let token = body["token"].as_str().expect("token").to_owned();
    let (status, me) = t.get("/api/agent/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["id"], t.agent_id.as_str());
    assert_eq!(me["status"]["presence"], "online");
    assert_eq!(me["status"]["capacity"], 3);

    // A wrong password and an unknown login are the same 401.
    let refused = |login: &str, password: &str| {
        t.send(
            t.client
                .post(t.url("/api/agent/sign-in"))
                .json(&json!({"login": login, "password": password})),
        )
    };
    let (wrong_status, wrong) = refused(DEMO_AGENT_LOGIN, "not the password").await;
    let (unknown_status, unknown) = refused("nobody", "not the password").await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&wrong), "unauthorized");
    assert_eq!(wrong, unknown);

    // No token, a made-up token, a body that is not JSON.
    let (status, body) = t.send(t.client.get(t.url("/api/agent/me"))).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = t.get("/api/agent/me", "abc.def").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = t
        .send(
            t.client
                .post(t.url("/api/agent/sign-in"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );

    // Given a signed-in user, when an admin disables them, then the token and a new sign-in fail.
    create_user(app, "dora", "Dora", Role::Agent, PASSWORD)
        .await
        .expect("created");
    let (_, dora) = sign_in(app, "dora", PASSWORD).await.expect("signs in");
    assert_eq!(t.get("/api/agent/me", &dora).await.0, StatusCode::OK);
    app.engine()
        .handle::<UserDecider>(
            &user_stream(user_id("dora")),
            &UserCommand::SetDisabled { disabled: true },
        )
        .await
        .expect("engine")
        .expect("disabled");
    assert_eq!(
        t.get("/api/agent/me", &dora).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refused("dora", PASSWORD).await.0, StatusCode::UNAUTHORIZED);

    // Given a signed-in user, when the password changes, then the old token fails, a new one works.
    create_user(app, "paul", "Paul", Role::Agent, PASSWORD)
        .await
        .expect("created");
    let (_, old) = sign_in(app, "paul", PASSWORD).await.expect("signs in");
    let hash = hash_password("another-password").expect("hash");
    app.engine()
        .handle::<UserDecider>(
            &user_stream(user_id("paul")),
            &UserCommand::SetPassword {
                password_hash: hash,
            },
        )
        .await
        .expect("engine")
        .expect("password changed");
    assert_eq!(
        t.get("/api/agent/me", &old).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refused("paul", PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = refused("paul", "another-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["token"].as_str().expect("token");
    assert_eq!(t.get("/api/agent/me", new).await.0, StatusCode::OK);

    // A1: presence round-trips; a bad value names the body.
    let (status, body) = t
        .put("/api/agent/presence", new, json!({"presence": "away"}))
        .await;
    assert_eq!(
        (status, body["presence"].as_str()),
        (StatusCode::OK, Some("away"))
    );
    let (status, body) = t
        .put("/api/agent/presence", new, json!({"presence": "busy"}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    t.shutdown().await;
}

/// The journey on one backend: waits → taken → messages both ways (the inbox stream sees every
/// event of the chat in order) → transfer → the second agent ends it → lists reflect it.
async fn journey(t: &TestService) {
    chats_wait(t).await;
    let (alice, alice_id) = agent(t, "alice", 2).await;
    let (bob, bob_id) = agent(t, "bob", 2).await;
    let chat = visitor_chat(t, ContactId::from_uuid(Uuid::now_v7())).await;
    let chat_path = format!("/api/agent/chats/{chat}");

    // The chat waits, with the visitor's page data.
    let (status, list) = t.get("/api/agent/waiting", &alice).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let waiting = list["chats"].as_array().expect("chats");
    let line = waiting
        .iter()
        .find(|c| c["chat"] == chat.to_string().as_str())
        .unwrap_or_else(|| panic!("{chat} in {list}"));
    assert_eq!(line["status"], "waiting");
    assert_eq!(line["page"]["firstname"], "Vera");

    // Alice listens to her inbox from now on, then takes the chat.
    let from = head(t).await;
    let mut alice_ws = t
        .ws(&format!("/api/agent/ws?token={alice}&after={from}"))
        .await;
    let (status, view) = t
        .post(&format!("{chat_path}/take"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["agent"], alice_id.to_string().as_str());
    assert_eq!(view["phase"], "Active");
    let (_, mine) = t.get("/api/agent/chats", &alice).await;
    assert_eq!(
        mine["chats"][0]["chat"],
        chat.to_string().as_str(),
        "{mine}"
    );

    // Messages both ways.
    let (status, done) = t
        .post(
            &format!("{chat_path}/messages"),
            &alice,
            json!({"text": "Hello Vera, how can I help?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["recorded"], true);
    visitor_says(t, chat, "My order is late").await;
    let (_, view) = t.get(&chat_path, &alice).await;
    let texts: Vec<&str> = view["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["Hello Vera, how can I help?", "My order is late"]);

    // Transfer to Bob, who listens from before it.
    let before_transfer = head(t).await;
    let mut bob_ws = t
        .ws(&format!(
            "/api/agent/ws?token={bob}&after={before_transfer}"
        ))
        .await;
    let (status, done) = t
        .post(
            &format!("{chat_path}/transfer"),
            &alice,
            json!({"agent": bob_id.as_uuid()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let transfer_position = done["position"].as_u64().expect("position");

    // Alice's inbox had every event of the chat from her take through the transfer, in order.
    let alice_frames = frames_until(&mut alice_ws, "AgentChatReleased").await;
    let all = chat_positions(t, chat).await;
    let expected: Vec<u64> = all
        .iter()
        .copied()
        .filter(|p| *p > from && *p <= transfer_position)
        .collect();
    assert_eq!(chat_frame_positions(&alice_frames, chat), expected);
    assert!(
        expected.len() >= 4,
        "take, two messages, transfer: {expected:?}"
    );
    alice_ws.close().await;

    // Bob answers and ends the chat; his inbox sees it all.
    let (status, _) = t
        .post(
            &format!("{chat_path}/messages"),
            &bob,
            json!({"text": "Bob here."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t.post(&format!("{chat_path}/end"), &alice, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_the_assigned_agent")
    );
    let (status, done) = t.post(&format!("{chat_path}/end"), &bob, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let bob_frames = frames_until(&mut bob_ws, "AgentChatReleased").await;
    let all = chat_positions(t, chat).await;
    let expected: Vec<u64> = all
        .iter()
        .copied()
        .filter(|p| *p > before_transfer)
        .collect();
    assert_eq!(chat_frame_positions(&bob_frames, chat), expected);
    assert!(
        bob_frames.iter().any(|f| f["type"] == "EpisodeEnded"),
        "the end was pushed"
    );
    bob_ws.close().await;

    // The board and both agents' lists reflect it.
    t.service.app().engine().settle().await.expect("settled");
    let (_, list) = t.get("/api/agent/waiting", &alice).await;
    assert!(
        !list["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .any(|c| c["chat"] == chat.to_string().as_str()),
        "{list}"
    );
    let board = t.service.app().engine().board();
    assert!(!board.live().active().iter().any(|c| c.chat == chat));
    for token in [&alice, &bob] {
        let (_, mine) = t.get("/api/agent/chats", token).await;
        assert_eq!(mine["chats"], json!([]), "{mine}");
    }
    let (_, view) = t.get(&chat_path, &bob).await;
    assert_eq!(view["phase"], "Ended");
    assert_eq!(view["disposition"], "Managed");
    assert_eq!(view["messages"].as_array().map(Vec::len), Some(3));
    // Alice handed it on: it is no longer hers to read.
    let (status, body) = t.get(&chat_path, &alice).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "not_the_assigned_agent")
    );
}

#[tokio::test]
async fn c4_a2_a3_journey_take_messages_inbox_stream_transfer_end_on_every_store() {
    for backend in support::backends().await {
        let t = TestService::on(&backend).await;
        journey(&t).await;
        t.shutdown().await;
        backend.cleanup().await;
    }
}

#[tokio::test]
async fn x1_the_supervisor_stream_refuses_an_agent_token_and_accepts_an_admin_token() {
    let t = TestService::memory().await;
    let url = format!(
        "ws://{}/api/supervisor/ws?token={}",
        t.service.address(),
        t.agent_token
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected a 403 refusal, got {:?}", other.map(|_| ())),
    }
    let mut board = t
        .ws(&format!(
            "/api/supervisor/ws?token={}&after=0",
            t.admin_token
        ))
        .await;
    // The demo's own history arrives (the agent's presence and capacity at least).
    let frame = board.next().await.expect("a frame");
    assert!(frame["position"].as_u64().is_some(), "{frame}");
    board.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn refusals_answer_their_code_and_record_nothing() {
    let t = TestService::memory().await;
    chats_wait(&t).await;
    let (alice, alice_id) = agent(&t, "alice", 1).await;
    let (bob, _) = agent(&t, "bob", 1).await;
    let contact = ContactId::from_uuid(Uuid::now_v7());
    let first = visitor_chat(&t, contact).await;
    let second = visitor_chat(&t, ContactId::from_uuid(Uuid::now_v7())).await;
    let first_path = format!("/api/agent/chats/{first}");
    let (status, _) = t
        .post(&format!("{first_path}/take"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, done) = t
        .post(
            &format!("{first_path}/messages"),
            &alice,
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let message = done["message_id"].as_str().expect("message id").to_owned();

    let start = head(&t).await;
    let refusals: Vec<(StatusCode, &str, reqwest::RequestBuilder)> = vec![
        // No token, a bad token.
        (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .json(&json!({"text": "x"})),
        ),
        (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .bearer_auth("0.0.0.bad")
                .json(&json!({"text": "x"})),
        ),
        // Not the holder: posting, ending, transferring, reading, redacting, blocking.
        (
            StatusCode::CONFLICT,
            "not_the_assigned_agent",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .bearer_auth(&bob)
                .json(&json!({"text": "x"})),
        ),
        (
            StatusCode::CONFLICT,
            "not_the_assigned_agent",
            t.client
                .post(t.url(&format!("{first_path}/end")))
                .bearer_auth(&bob)
                .json(&json!({})),
        ),
        (
            StatusCode::CONFLICT,
            "not_the_assigned_agent",
            t.client.get(t.url(&first_path)).bearer_auth(&bob),
        ),
        (
            StatusCode::CONFLICT,
            "not_the_assigned_agent",
            t.client
                .post(t.url(&format!("{first_path}/messages/{message}/redact")))
                .bearer_auth(&bob)
                .json(&json!({})),
        ),
        (
            StatusCode::CONFLICT,
            "not_the_assigned_agent",
            t.client
                .post(t.url(&format!("{first_path}/block")))
                .bearer_auth(&bob)
                .json(&json!({})),
        ),
        // Take beyond capacity (Alice holds 1 of 1), take an assigned chat.
        (
            StatusCode::CONFLICT,
            "at_capacity",
            t.client
                .post(t.url(&format!("/api/agent/chats/{second}/take")))
                .bearer_auth(&alice)
                .json(&json!({})),
        ),
        (
            StatusCode::CONFLICT,
            "already_assigned",
            t.client
                .post(t.url(&format!("{first_path}/take")))
                .bearer_auth(&bob)
                .json(&json!({})),
        ),
        // Unknown chat, unusable ids and bodies, transfer targets.
        (
            StatusCode::NOT_FOUND,
            "not_found",
            t.client
                .post(t.url(&format!("/api/agent/chats/{}/take", Uuid::now_v7())))
                .bearer_auth(&alice)
                .json(&json!({})),
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_field",
            t.client
                .post(t.url("/api/agent/chats/not-a-uuid/take"))
                .bearer_auth(&alice)
                .json(&json!({})),
        ),
        (
            StatusCode::BAD_REQUEST,
            "empty_message",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .bearer_auth(&alice)
                .json(&json!({"text": ""})),
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_json",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .bearer_auth(&alice)
                .json(&json!({"text": 5})),
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_field",
            t.client
                .post(t.url(&format!("{first_path}/transfer")))
                .bearer_auth(&alice)
                .json(&json!({})),
        ),
        (
            StatusCode::NOT_FOUND,
            "not_found",
            t.client
                .post(t.url(&format!("{first_path}/transfer")))
                .bearer_auth(&alice)
                .json(&json!({"queue": Uuid::now_v7()})),
        ),
        (
            StatusCode::CONFLICT,
            "transfer_to_self",
            t.client
                .post(t.url(&format!("{first_path}/transfer")))
                .bearer_auth(&alice)
                .json(&json!({"agent": alice_id.as_uuid()})),
        ),
        (
            StatusCode::CONFLICT,
            "not_online",
            t.client
                .post(t.url(&format!("{first_path}/transfer")))
                .bearer_auth(&alice)
                .json(&json!({"agent": Uuid::now_v7()})),
        ),
        (
            StatusCode::CONFLICT,
            "unknown_message",
            t.client
                .post(t.url(&format!("{first_path}/messages/{}/redact", Uuid::now_v7())))
                .bearer_auth(&alice)
                .json(&json!({})),
        ),
        (
            StatusCode::BAD_REQUEST,
            "invalid_field",
            t.client
                .post(t.url(&format!("{first_path}/messages")))
                .bearer_auth(&alice)
                .json(&json!({"text": "x", "attachments": [Uuid::now_v7()]})),
        ),
    ];
    for (i, (status, expected, request)) in refusals.into_iter().enumerate() {
        let (got, body) = t.send(request).await;
        assert_eq!(
            (got, code(&body)),
            (status, expected),
            "refusal {i}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(head(&t).await, start, "the refusals recorded nothing");
    // A supervisor (here the admin) reads any chat.
    let (status, view) = t.get(&first_path, &t.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["agent"], alice_id.to_string().as_str());

    // X4: redact once, then the second time is refused and changes nothing.
    let redact = format!("{first_path}/messages/{message}/redact");
    let (status, _) = t.post(&redact, &alice, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, view) = t.get(&first_path, &alice).await;
    assert_eq!(view["messages"][0]["text"], "");
    assert_eq!(
        view["messages"][0]["redaction"]["by"],
        alice_id.to_string().as_str()
    );
    let after_redaction = head(&t).await;
    let (status, body) = t.post(&redact, &alice, json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_redacted")
    );
    assert_eq!(head(&t).await, after_redaction);

    // F5: block; the chat ends blocked; the visitor cannot start another chat.
    let (status, done) = t
        .post(&format!("{first_path}/block"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (_, view) = t.get(&first_path, &alice).await;
    assert_eq!(
        (view["phase"].as_str(), view["blocked"].as_bool()),
        (Some("Ended"), Some(true))
    );
    let blocked_at = head(&t).await;
    let (status, body) = t
        .post(&format!("{first_path}/block"), &alice, json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "already_blocked")
    );
    let refusal = t
        .service
        .app()
        .engine()
        .start_chat(NewChat {
            command_id: CommandId::from_uuid(Uuid::now_v7()),
            chat: ChatId::from_uuid(Uuid::now_v7()),
            module: demo::DEMO_MODULE,
            contact,
            contact_email: None,
            resume_token: "resume-blocked".into(),
            page: PageData::default(),
            form_answers: BTreeMap::new(),
            routing_vars: BTreeMap::new(),
            origin: Origin::Widget,
        })
        .await
        .expect("engine")
        .expect_err("a blocked contact cannot start a chat");
    assert_eq!(ApiError::from(refusal).detail.code, "contact_blocked");
    assert_eq!(
        head(&t).await,
        blocked_at,
        "nothing recorded for the blocked start"
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a3_a5_a6_c9_message_kinds_attachments_retries_and_case_with_their_limits() {
    let config = ServiceConfig {
        upload_bytes_max: 1024,
        ..ServiceConfig::default()
    };
    let t = TestService::over(Arc::new(MemoryStore::new()), config).await;
    chats_wait(&t).await;
    let (alice, _) = agent(&t, "alice", 2).await;
    let chat = visitor_chat(&t, ContactId::from_uuid(Uuid::now_v7())).await;
    let path = format!("/api/agent/chats/{chat}");
    assert_eq!(
        t.post(&format!("{path}/take"), &alice, json!({})).await.0,
        StatusCode::OK
    );

    // A5: an upload at the limit passes, one byte more is 413; the message carries it.
    let upload = |bytes: Vec<u8>| {
        t.send(
            t.client
                .post(t.url(&format!("{path}/attachments?file_name=note.txt")))
                .bearer_auth(&alice)
                .header("content-type", "text/plain")
                .body(bytes),
        )
    };
    let (status, uploaded) = upload(vec![b'a'; 1024]).await;
    assert_eq!(status, StatusCode::OK, "{uploaded}");
    assert_eq!(uploaded["size_bytes"], 1024);
    let (status, body) = upload(vec![b'a'; 1025]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "limit_exceeded")
    );
    let attachment = uploaded["attachment"].as_str().expect("id").to_owned();

    // A3: an article, quick replies, a video-call link and the attachment in one message.
    let command_id = Uuid::now_v7();
    let message = json!({
        "command_id": command_id,
        "text": "Here you go",
        "attachments": [attachment],
        "quick_replies": ["Yes", "No"],
        "article": {"title": "Returns", "link": "https://example.com/returns"},
        "video_call_link": "https://meet.example.com/abc",
    });
    let (status, done) = t
        .post(&format!("{path}/messages"), &alice, message.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["recorded"], true);
    // C9: the same command again records nothing and names the same message.
    let (status, again) = t.post(&format!("{path}/messages"), &alice, message).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["recorded"], false);
    assert_eq!(again["message_id"], done["message_id"]);
    let (_, view) = t.get(&path, &alice).await;
    let messages = view["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{view}");
    let sent = &messages[0];
    assert_eq!(sent["quick_replies"], json!(["Yes", "No"]));
    assert_eq!(sent["article"]["title"], "Returns");
    assert_eq!(sent["video_call_link"], "https://meet.example.com/abc");
    assert_eq!(sent["attachments"][0]["size_bytes"], 1024);
    let response = t
        .client
        .get(t.url(&format!("{path}/attachments/{attachment}")))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.bytes().await.expect("bytes").len(), 1024);

    // Limits at and past the edge: text, attachments per message, the waiting list.
    let at = "x".repeat(MESSAGE_TEXT_BYTES_MAX);
    let (status, _) = t
        .post(&format!("{path}/messages"), &alice, json!({"text": at}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let past = "x".repeat(MESSAGE_TEXT_BYTES_MAX + 1);
    let (status, body) = t
        .post(&format!("{path}/messages"), &alice, json!({"text": past}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "limit_exceeded")
    );
    assert_eq!(body["error"]["field"], "message_text_bytes_max");
    let eleven: Vec<Uuid> = (0..11).map(|_| Uuid::now_v7()).collect();
    let (status, body) = t
        .post(
            &format!("{path}/messages"),
            &alice,
            json!({"text": "x", "attachments": eleven}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "limit_exceeded")
    );
    let (status, _) = t
        .get(
            &format!("/api/agent/waiting?limit={WAITING_LIST_MAX}"),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = t
        .get(
            &format!("/api/agent/waiting?limit={}", WAITING_LIST_MAX + 1),
            &alice,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );

    // A6: a case with template data ends the chat with disposition case; a retry is a no-op.
    let case_command = json!({"command_id": Uuid::now_v7(), "template": {"priority": "high"}});
    let (status, done) = t
        .post(&format!("{path}/case"), &alice, case_command.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let case_id = done["case_id"].as_str().expect("case id").to_owned();
    let (_, again) = t.post(&format!("{path}/case"), &alice, case_command).await;
    assert_eq!(
        (again["recorded"].as_bool(), again["case_id"].as_str()),
        (Some(false), Some(case_id.as_str()))
    );
    let (_, view) = t.get(&path, &alice).await;
    assert_eq!(view["phase"], "Ended");
    assert!(
        view["disposition"]
            .as_str()
            .is_some_and(|d| d.contains(&case_id)),
        "{view}"
    );
    let (status, body) = t
        .post(
            &format!("{path}/case"),
            &alice,
            json!({"template": {"": "x"}}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
    t.shutdown().await;
}

#[tokio::test]
async fn a4_canned_responses_are_found_by_prefix_personal_first_within_their_limits() {
    let t = TestService::memory().await;
    let (alice, _) = agent(&t, "alice", 1).await;
    let (bob, _) = agent(&t, "bob", 1).await;
    let create = |token: &str, shortcut: &str, command_id: Option<Uuid>| {
        let body = json!({
            "command_id": command_id,
            "shortcut": shortcut,
            "title": shortcut,
            "body": format!("Text of {shortcut}"),
        });
        t.send(
            t.client
                .post(t.url("/api/agent/canned/personal"))
                .bearer_auth(token)
                .json(&body),
        )
    };
    let retry_id = Uuid::now_v7();
    for shortcut in ["greeting", "goodbye", "thanks"] {
        let id = (shortcut == "greeting").then_some(retry_id);
        let (status, body) = create(&alice, shortcut, id).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["scope"], "personal");
    }
    // C9: the same command id answers the same response and creates nothing.
    let (status, again) = create(&alice, "greeting", Some(retry_id)).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (_, mine) = t.get("/api/agent/canned/personal", &alice).await;
    assert_eq!(
        mine["responses"].as_array().map(Vec::len),
        Some(3),
        "{mine}"
    );
    // A team response, the admin's (through the engine, as the admin API does).
    let app = t.service.app();
    let team = CannedResponseId::from_uuid(Uuid::now_v7());
    app.engine()
        .handle::<CannedDecider>(
            &team.stream_name(),
            &AdminCommand::new(
                user_id("admin"),
                CannedCommand::Create {
                    id: team,
                    scope: CannedScope::Team,
                    content: CannedContent {
                        shortcut: "great_news".into(),
                        title: "Great news".into(),
                        body: "We have great news.".into(),
                    },
                },
            ),
        )
        .await
        .expect("engine")
        .expect("team response");

    let lookup = |token: &str, prefix: &str| {
        let request = t
            .client
            .get(t.url("/api/agent/canned"))
            .query(&[("prefix", prefix)])
            .bearer_auth(token);
        t.send(request)
    };
    let shortcuts = |body: &Value| -> Vec<String> {
        body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .map(|r| r["shortcut"].as_str().expect("shortcut").to_owned())
            .collect()
    };
    let (status, found) = lookup(&alice, "/g").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(shortcuts(&found), ["goodbye", "greeting", "great_news"]);
    assert_eq!(found["responses"][2]["scope"], "team");
    let (_, found) = lookup(&alice, "/GRE").await;
    assert_eq!(shortcuts(&found), ["greeting", "great_news"]);
    let (_, found) = lookup(&bob, "/g").await;
    assert_eq!(
        shortcuts(&found),
        ["great_news"],
        "Bob sees no personal one of Alice"
    );
    let (_, found) = lookup(&alice, "g").await;
    assert!(
        shortcuts(&found).is_empty(),
        "text not starting with / finds nothing"
    );
    // The prefix at and past its limit.
    let at = format!("/{}", "a".repeat(CANNED_PREFIX_BYTES_MAX - 1));
    assert_eq!(lookup(&alice, &at).await.0, StatusCode::OK);
    let (status, body) = lookup(&alice, &format!("{at}a")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );

    // Refusals: a bad shortcut names its field; another's or a team response cannot be deleted.
    let (status, body) = create(&alice, "Hello!", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_key")
    );
    assert_eq!(body["error"]["field"], "shortcut");
    let greeting = again["id"].as_str().expect("id").to_owned();
    let (status, body) = t
        .delete(&format!("/api/agent/canned/personal/{greeting}"), &bob)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = t
        .delete(&format!("/api/agent/canned/personal/{team}"), &alice)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .delete(
            &format!("/api/agent/canned/personal/{}", Uuid::now_v7()),
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .delete(&format!("/api/agent/canned/personal/{greeting}"), &alice)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = t
        .delete(&format!("/api/agent/canned/personal/{greeting}"), &alice)
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "deleted"));
    let (_, found) = lookup(&alice, "/gre").await;
    assert_eq!(shortcuts(&found), ["great_news"]);

    // Limits: CANNED_PERSONAL_MAX personal responses, then one more is refused; a lookup
    // returns at most CANNED_LOOKUP_RESULTS_MAX.
    for i in 2..CANNED_PERSONAL_MAX {
        let (status, body) = create(&alice, &format!("r{i:03}"), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, mine) = t.get("/api/agent/canned/personal", &alice).await;
    assert_eq!(
        mine["responses"].as_array().map(Vec::len),
        Some(CANNED_PERSONAL_MAX)
    );
    let start = head(&t).await;
    let (status, body) = create(&alice, "one_too_many", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "limit_exceeded")
    );
    assert_eq!(head(&t).await, start);
    let (_, found) = lookup(&alice, "/").await;
    assert_eq!(
        found["responses"].as_array().map(Vec::len),
        Some(chat_core::config::CANNED_LOOKUP_RESULTS_MAX)
    );
    t.shutdown().await;
}
