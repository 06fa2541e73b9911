//! Acceptance tests of the visitor API (issue #8, visitor part) over real sockets: the widget's
//! journeys on sled and PostgreSQL, every refusal path (the documented error, and nothing
//! recorded: the log's head position does not move), and the limits at and past their edge.

mod http_support;
mod support;

use chat_core::config::{AdminCommand, ModuleCommand, ModuleDecider, WorkingHours};
use chat_core::conversation::{ChatCommand, MessageBody, Party};
use chat_core::{AgentId, ChatId, CommandId, MessageId};
use chat_service::http::auth::user_id;
use chat_service::http::demo::{DEMO_ADMIN_LOGIN, DEMO_MODULE};
use chat_service::http::service::ServiceConfig;
use chat_store::MemoryStore;
use http_support::{TestService, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

// ----- helpers ------------------------------------------------------------------------------

/// A pre-chat form the demo module accepts.
fn demo_form(email: &str) -> Value {
    json!({"name": "Ada", "email": email})
}

/// Starts a chat on the demo module; returns (chat id, resume token, body).
async fn start(ts: &TestService, email: &str) -> (String, String, Value) {
    let (status, body) = ts
        .send(
            ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&json!({"form": demo_form(email), "page": {"message": "hello"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let chat = body["chat"].as_str().expect("chat id").to_owned();
    let token = body["resume_token"].as_str().expect("token").to_owned();
    (chat, token, body)
}

/// The log's head once the engine has acted on everything (routing, timers, projections).
async fn head(ts: &TestService) -> u64 {
    let engine = ts.service.app().engine();
    engine.settle().await.expect("settles");
    engine.store().head_position().await.expect("head")
}

fn agent(ts: &TestService) -> AgentId {
    AgentId::from_uuid(ts.agent_id.parse().expect("agent id"))
}

/// The agent side, through the engine (the agent API is another part's).
async fn agent_says(ts: &TestService, chat: &str, text: &str) {
    let chat = ChatId::from_uuid(chat.parse().expect("chat id"));
    ts.service
        .app()
        .engine()
        .chat(
            chat,
            ChatCommand::PostMessage {
                command_id: CommandId::from_uuid(Uuid::now_v7()),
                message_id: MessageId::from_uuid(Uuid::now_v7()),
                author: Party::Agent(agent(ts)),
                body: MessageBody::text(text),
            },
        )
        .await
        .expect("engine")
        .expect("agent message accepted");
}

async fn visitor_says(ts: &TestService, chat: &str, token: &str, text: &str) -> Value {
    let (status, body) = ts
        .send(
            ts.visitor(
                Method::POST,
                &format!("/api/visitor/chats/{chat}/messages"),
                Some(token),
            )
            .json(&json!({"text": text})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// Frames of type `MessagePosted` until `count` arrived (other types are returned too, in order).
async fn messages(ws: &mut WsClient, count: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|f: &&Value| f["type"] == "MessagePosted")
        .count()
        < count
    {
        seen.push(ws.next().await.expect("stream open"));
    }
    seen
}

fn text_of(frame: &Value) -> String {
    frame["event"].to_string()
}

/// Changes the demo module through the engine, as an admin would.
async fn admin_module(ts: &TestService, command: ModuleCommand) {
    let admin = user_id(DEMO_ADMIN_LOGIN);
    ts.service
        .app()
        .engine()
        .handle::<ModuleDecider>(
            &DEMO_MODULE.stream_name(),
            &AdminCommand::new(admin, command),
        )
        .await
        .expect("engine")
        .expect("module change accepted");
}

/// Sets the demo module's attachment limit.
async fn attachment_limit(ts: &TestService, bytes_max: u64) {
    let state = ts
        .service
        .app()
        .engine()
        .state::<ModuleDecider>(&DEMO_MODULE.stream_name())
        .await
        .expect("module");
    let mut settings = state.module.expect("demo module").settings;
    settings.attachment_bytes_max = bytes_max;
    admin_module(ts, ModuleCommand::Update { settings }).await;
}

async fn upload(
    ts: &TestService,
    chat: &str,
    token: &str,
    name: &str,
    content_type: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    ts.send(
        ts.visitor(
            Method::POST,
            &format!("/api/visitor/chats/{chat}/attachments?name={name}"),
            Some(token),
        )
        .header("Content-Type", content_type)
        .body(bytes),
    )
    .await
}

// ----- journeys -----------------------------------------------------------------------------

/// C1, C4, C6, C7-resume-after-reconnect, X3, F4: the visitor starts through the module's
/// reference, the agent gets it, messages go both ways over the visitor's stream, the visitor
/// reconnects after missing some and gets exactly those, ends and rates.
#[tokio::test]
async fn c1_visitor_journey_over_the_stream_with_reconnect_end_and_rating() {
    for backend in support::backends().await {
        let ts = TestService::on(&backend).await;

        let (status, module) = ts
            .send(ts.visitor(Method::GET, "/api/visitor/modules/demo", None))
            .await;
        assert_eq!(status, StatusCode::OK, "{module}");
        assert_eq!(module["id"], DEMO_MODULE.to_string());
        assert_eq!(module["open_now"], true);
        assert_eq!(module["pre_chat_form"][1]["input"], "email");
        assert_eq!(module["offline_form"][1]["kind"], "textarea");
        let by_id = ts
            .send(ts.visitor(
                Method::GET,
                &format!("/api/visitor/modules/{DEMO_MODULE}"),
                None,
            ))
            .await;
        assert_eq!(by_id.1["reference"], "demo", "M9: by id and by reference");

        let (chat, token, started) = start(&ts, "Ada@Example.org").await;
        assert_eq!(started["offline"], false);
        assert_eq!(token.len(), 64, "256-bit token in hex");
        assert_eq!(started["view"]["page"]["message"], "hello");

        let mut ws = ts
            .ws(&format!(
                "/api/visitor/chats/{chat}/ws?token={token}&after=0"
            ))
            .await;
        ws.until_type("AgentAssigned").await;

        visitor_says(&ts, &chat, &token, "my printer is on fire").await;
        agent_says(&ts, &chat, "please step away from it").await;
        let frames = messages(&mut ws, 2).await;
        let posted: Vec<&Value> = frames
            .iter()
            .filter(|f| f["type"] == "MessagePosted")
            .collect();
        assert!(text_of(posted[0]).contains("my printer is on fire"));
        assert!(text_of(posted[1]).contains("please step away"));
        let last = posted[1]["position"].as_u64().expect("position");
        ws.close().await;

        // Missed while disconnected.
        agent_says(&ts, &chat, "missed one").await;
        visitor_says(&ts, &chat, &token, "missed two").await;
        agent_says(&ts, &chat, "missed three").await;

        let mut ws = ts
            .ws(&format!(
                "/api/visitor/chats/{chat}/ws?token={token}&after={last}"
            ))
            .await;
        let missed = messages(&mut ws, 3).await;
        assert_eq!(missed.len(), 3, "exactly the missed events: {missed:?}");
        for (frame, text) in missed
            .iter()
            .zip(["missed one", "missed two", "missed three"])
        {
            assert!(text_of(frame).contains(text), "{frame}");
        }
        let positions: Vec<u64> = missed
            .iter()
            .map(|f| f["position"].as_u64().expect("position"))
            .collect();
        assert!(positions[0] > last && positions.windows(2).all(|w| w[0] < w[1]));
        visitor_says(&ts, &chat, &token, "live again").await;
        let live = ws.next().await.expect("live frame");
        assert!(
            text_of(&live).contains("live again"),
            "no duplicate: {live}"
        );

        let (status, ended) = ts.visitor_action(&chat, "end", &token, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{ended}");
        assert_eq!(ended["view"]["phase"], "Ended");
        assert_eq!(ended["view"]["disposition"], "Managed");
        ws.until_type("EpisodeEnded").await;

        let rate = |score: u32| {
            ts.visitor_action(
                &chat,
                "rating",
                &token,
                json!({"score": score, "comment": "quick"}),
            )
        };
        let (status, rated) = rate(5).await;
        assert_eq!(status, StatusCode::OK, "{rated}");
        assert_eq!(rated["view"]["rated"], true);
        let (status, again) = rate(4).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(again["error"]["code"], "already_rated");

        // F4: the same e-mail (other case) is the same contact.
        let (_, _, second) = start(&ts, "ADA@example.org").await;
        assert_eq!(second["view"]["contact"], started["view"]["contact"]);

        // C7: the ended chat resumes; its stream says so.
        let (status, resumed) = ts
            .send(
                ts.visitor(
                    Method::POST,
                    &format!("/api/visitor/chats/{chat}/resume"),
                    Some(&token),
                )
                .json(&json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{resumed}");
        assert_eq!(resumed["view"]["episode"], 2);
        ws.until_type("ChatResumed").await;

        ws.close().await;
        ts.shutdown().await;
        backend.cleanup().await;
    }
}

/// C9: a retried start returns the same chat and token; a retried message posts nothing new.
#[tokio::test]
async fn c9_retries_with_the_same_command_id_record_nothing_new() {
    let ts = TestService::memory().await;
    let command_id = Uuid::now_v7();
    let body = json!({"command_id": command_id, "form": demo_form("c9@example.org")});
    let first = ts
        .send(
            ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&body),
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED);
    let retry = ts
        .send(
            ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&body),
        )
        .await;
    assert_eq!(retry.0, StatusCode::OK, "{}", retry.1);
    assert_eq!(retry.1["chat"], first.1["chat"]);
    assert_eq!(retry.1["resume_token"], first.1["resume_token"]);

    let chat = first.1["chat"].as_str().expect("chat");
    let token = first.1["resume_token"].as_str().expect("token");
    let message = json!({"command_id": Uuid::now_v7(), "text": "once"});
    let send = || {
        ts.visitor(
            Method::POST,
            &format!("/api/visitor/chats/{chat}/messages"),
            Some(token),
        )
        .json(&message)
    };
    let (_, a) = ts.send(send()).await;
    let before = head(&ts).await;
    let (status, b) = ts.send(send()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(a["message_id"], b["message_id"]);
    assert_eq!(head(&ts).await, before);
    let count = b["view"]["messages"].as_array().expect("messages").len();
    assert_eq!(count, 1);
    ts.shutdown().await;
}

/// C2, O1: a module outside its working hours shows itself closed; the pre-chat start goes
/// offline, and the offline form's message is kept as an offline chat with its answers.
#[tokio::test]
async fn o1_offline_module_takes_the_offline_form() {
    let ts = TestService::memory().await;
    admin_module(
        &ts,
        ModuleCommand::SetWorkingHours {
            hours: WorkingHours::closed(),
        },
    )
    .await;
    let (_, module) = ts
        .send(ts.visitor(Method::GET, "/api/visitor/modules/demo", None))
        .await;
    assert_eq!(module["open_now"], false);

    let (_, _, started) = start(&ts, "late@example.org").await;
    assert_eq!(started["offline"], true);
    assert_eq!(started["offline_reason"], "outside_working_hours");

    let offline = |form: Value| {
        ts.visitor(
            Method::POST,
            "/api/visitor/modules/demo/offline-messages",
            None,
        )
        .json(&json!({"form": form}))
    };
    let before = head(&ts).await;
    let (status, refused) = ts.send(offline(json!({"email": "late@example.org"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["code"], "invalid_form");
    assert_eq!(refused["error"]["field"], "message");
    assert_eq!(head(&ts).await, before, "an invalid form records nothing");

    let (status, kept) = ts
        .send(offline(
            json!({"email": "late@example.org", "message": "call me tomorrow"}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    assert_eq!(kept["offline"], true);
    assert_eq!(kept["view"]["phase"], "Ended");
    assert_eq!(
        kept["view"]["form_answers"]["message"]["value"],
        "call me tomorrow"
    );
    assert_eq!(kept["view"]["contact"], started["view"]["contact"]);
    ts.shutdown().await;
}

/// T4: with no strategy attached the widget shows its icon; bad contexts are refused by name.
#[tokio::test]
async fn t4_triggers_are_evaluated_for_the_page() {
    let ts = TestService::memory().await;
    let evaluate = |body: Value| {
        ts.visitor(Method::POST, "/api/visitor/modules/demo/triggers", None)
            .json(&body)
    };
    let (status, decision) = ts
        .send(evaluate(
            json!({"url": "https://shop.example/cart", "pages_viewed": 2}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    assert_eq!(decision["display"], "show_icon");
    assert_eq!(decision["reason"], "no_strategy_attached");

    let (status, refused) = ts
        .send(evaluate(
            json!({"url": "https://x", "events": ["Not A Key"]}),
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["field"], "custom event");
    let (status, refused) = ts.send(evaluate(json!({"pages_viewed": 1}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["code"], "invalid_json");
    let (status, missing) = ts
        .send(ts.visitor(Method::GET, "/api/visitor/modules/nope", None))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "not_found");
    ts.shutdown().await;
}

// ----- refusals -----------------------------------------------------------------------------

/// V3, M5, A5, F2: every refusal answers its documented error and records nothing.
#[tokio::test]
async fn v3_every_refusal_returns_its_error_and_changes_nothing() {
    let ts = TestService::memory().await;
    attachment_limit(&ts, 1000).await;
    let (chat, token, _) = start(&ts, "mine@example.org").await;
    let (_, other_token, _) = start(&ts, "other@example.org").await;
    let before = head(&ts).await;
    let messages = format!("/api/visitor/chats/{chat}/messages");
    let say = json!({"text": "hi"});

    let check = |status: StatusCode, body: &Value, want: StatusCode, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    };

    // Wrong origin (M5), on a module route and on a chat route.
    let (s, b) = ts
        .send(
            ts.client
                .get(ts.url("/api/visitor/modules/demo"))
                .header("Origin", "https://evil.example"),
        )
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "origin_not_allowed");
    let (s, b) = ts
        .send(
            ts.client
                .post(ts.url(&messages))
                .header("Origin", "https://evil.example")
                .header("X-Resume-Token", &token)
                .json(&say),
        )
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "origin_not_allowed");

    // Missing token, wrong token, another visitor's token.
    let (s, b) = ts
        .send(ts.visitor(Method::POST, &messages, None).json(&say))
        .await;
    check(s, &b, StatusCode::UNAUTHORIZED, "unauthorized");
    let (s, b) = ts
        .send(ts.visitor(Method::POST, &messages, Some("0123")).json(&say))
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "not_your_chat");
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&other_token))
                .json(&say),
        )
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "not_your_chat");
    let (s, b) = ts
        .send(ts.visitor(
            Method::GET,
            &format!("/api/visitor/chats/{chat}"),
            Some(&other_token),
        ))
        .await;
    check(s, &b, StatusCode::FORBIDDEN, "not_your_chat");

    // Oversized message.
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"text": "x".repeat(4097)})),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "limit_exceeded");
    assert_eq!(b["error"]["field"], "message_text_bytes_max");

    // Oversized attachment, refused type, an attachment of no upload.
    let (s, b) = upload(
        &ts,
        &chat,
        &token,
        "big.pdf",
        "application/pdf",
        vec![1; 1001],
    )
    .await;
    check(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "limit_exceeded");
    assert_eq!(b["error"]["field"], "attachment_bytes_max");
    let (s, b) = upload(&ts, &chat, &token, "x.html", "text/html", vec![1; 10]).await;
    check(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "type_not_accepted",
    );
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"text": "see", "attachments": [Uuid::now_v7()]})),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(b["error"]["field"], "attachments");

    // Invalid form: names the field; no chat, no contact.
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&json!({"form": {"name": "Bob", "email": "not-an-email"}})),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_form");
    assert_eq!(b["error"]["field"], "email");
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
                .json(&json!({"form": {"email": "bob@example.org", "color": "red"}})),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_form");
    let fields: Vec<&str> = b["error"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "color"], "every problem, named");

    // Junk the fuzzer would send: JSON errors, a chat id that is no UUID, a wrong content type.
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .header("Content-Type", "application/json")
                .body("{not json"),
        )
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = ts
        .send(ts.visitor(Method::GET, "/api/visitor/chats/not-a-uuid", Some(&token)))
        .await;
    check(s, &b, StatusCode::BAD_REQUEST, "invalid_field");
    let (s, b) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .body("text"),
        )
        .await;
    check(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    assert_eq!(head(&ts).await, before, "no refusal recorded anything");
    ts.shutdown().await;
}

/// V3: past the per-chat budget a visitor gets `rate_limited`, and nothing is recorded.
#[tokio::test]
async fn v3_rate_limit_exceeded_is_refused_and_records_nothing() {
    let config = ServiceConfig {
        visitor_requests_per_minute: 1,
        ..ServiceConfig::default()
    };
    let ts = TestService::over(Arc::new(MemoryStore::new()), config).await;
    let (chat, token, _) = start(&ts, "fast@example.org").await;
    let burst = chat_service::http::HttpLimits::default().visitor_burst;
    let read = || {
        ts.visitor(
            Method::GET,
            &format!("/api/visitor/chats/{chat}"),
            Some(&token),
        )
    };
    for _ in 0..burst {
        let (status, body) = ts.send(read()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let before = head(&ts).await;
    let (status, body) = ts
        .send(
            ts.visitor(
                Method::POST,
                &format!("/api/visitor/chats/{chat}/messages"),
                Some(&token),
            )
            .json(&json!({"text": "one too many"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(head(&ts).await, before);
    ts.shutdown().await;
}

// ----- limits -------------------------------------------------------------------------------

/// C4, A5, M6: message text, attachments (module and service limits), attachments per message
/// and page variables, each at its limit and one past it.
#[tokio::test]
async fn limits_at_and_past_the_edge() {
    let config = ServiceConfig {
        upload_bytes_max: 3000,
        ..ServiceConfig::default()
    };
    let ts = TestService::over(Arc::new(MemoryStore::new()), config).await;
    attachment_limit(&ts, 2000).await;
    let (chat, token, _) = start(&ts, "edge@example.org").await;
    let messages = format!("/api/visitor/chats/{chat}/messages");

    let (status, _) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"text": "é".repeat(2048)})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "4096 bytes is the limit");
    let (status, _) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"text": format!("{}x", "é".repeat(2048))})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The module's limit (2000) is below the service's (3000).
    let at: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
    let (status, uploaded) =
        upload(&ts, &chat, &token, "at.pdf", "application/pdf", at.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["size_bytes"], 2000);
    let (status, over) = upload(
        &ts,
        &chat,
        &token,
        "over.pdf",
        "application/pdf",
        vec![0; 2001],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(over["error"]["field"], "attachment_bytes_max");

    // Download: the same bytes, never rendered from this origin.
    let url = uploaded["url"].as_str().expect("url");
    let response = ts
        .visitor(Method::GET, url, Some(&token))
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment; filename=\"at.pdf\"")
    );
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), at);
    let (status, _) = ts.send(ts.visitor(Method::GET, url, Some("wrong"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Ten attachments on one message are the limit; eleven are refused.
    let id = uploaded["id"].as_str().expect("id");
    let (status, sent) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"attachments": vec![id; 10]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (status, refused) = ts
        .send(
            ts.visitor(Method::POST, &messages, Some(&token))
                .json(&json!({"attachments": vec![id; 11]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"]["field"], "attachments_per_message_max");

    // The service's limit binds when the module allows more.
    attachment_limit(&ts, 10_000).await;
    let (chat2, token2, _) = start(&ts, "edge2@example.org").await;
    let (status, _) = upload(&ts, &chat2, &token2, "a.png", "image/png", vec![7; 3000]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, over) = upload(&ts, &chat2, &token2, "b.png", "image/png", vec![7; 3001]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(over["error"]["field"], "upload_bytes_max");

    // Page variables: 50 pass, 51 are refused.
    let vars = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"name": format!("v{i}"), "value": "x"}))
            .collect()
    };
    let start_with = |n: usize| {
        ts.visitor(Method::POST, "/api/visitor/modules/demo/chats", None)
            .json(&json!({"form": demo_form("vars@example.org"), "page": {"vars": vars(n)}}))
    };
    let (status, body) = ts.send(start_with(50)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = ts.send(start_with(51)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "vars");
    ts.shutdown().await;
}

/// M5: the widget on a customer's site calls from another origin: preflights are answered and
/// answers name the origin (the route still refuses origins outside the authorised domains).
#[tokio::test]
async fn m5_cross_origin_preflights_are_answered() {
    let ts = TestService::memory().await;
    let response = ts
        .client
        .request(Method::OPTIONS, ts.url("/api/visitor/modules/demo/chats"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type, x-resume-token",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("x-resume-token")
    );
    let answer = ts
        .client
        .get(ts.url("/api/visitor/modules/demo"))
        .header("Origin", ts.origin())
        .send()
        .await
        .expect("answer");
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "the service's own origin is authorised"
    );
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        ts.origin().as_str()
    );
    ts.shutdown().await;
}
