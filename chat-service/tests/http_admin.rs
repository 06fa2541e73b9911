//! The admin and supervisor API over real sockets: the module lifecycle (M1–M8, T1, T3, T4) on
//! the memory store and on sled and PostgreSQL, the refusals (M2, M4, S1, roles), queues and
//! operators (R1, R2), account settings (M5, C5, F4), webhook targets (V5), the supervisor's
//! board, search and statistics (X1–X3) after a chat driven through the engine, the embed
//! snippet (M5, M6), and the limits of lists and searches.

mod http_support;
mod support;

use chat_core::conversation::{ChatCommand, EndedBy, MessageBody, Origin, Party};
use chat_core::{AgentId, ChatId, CommandId, ContactId, MessageId, PageData};
use chat_service::engine::NewChat;
use chat_service::http::admin::{PAGE_ITEMS_MAX, SEARCH_QUERY_BYTES_MAX};
use chat_service::http::auth::sign_in;
use chat_service::http::demo::DEMO_MODULE;
use http_support::TestService;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

fn error_field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("a page has items")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// M1–M8, T1, T3, T4: create → edit → search → duplicate → history → delete refused while a
/// strategy is attached (naming it) → detach → delete.
async fn module_lifecycle(svc: &TestService) {
    let admin = svc.admin_token.as_str();

    // Given a new module.
    let (status, created) = svc
        .post(
            "/api/admin/modules",
            admin,
            json!({"reference": "sales", "name": "Sales desk", "alias": "shop_sales",
                   "time_zone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["reference"], "sales");
    assert_eq!(created["settings"]["time_zone"], "Europe/Paris");
    assert_eq!(
        created["public_url"],
        format!("{}/chat/{id}", svc.service.app().public_url())
    );

    // When it is edited: a merge patch changes only what it names.
    let (status, edited) = svc
        .patch(
            &format!("/api/admin/modules/{id}"),
            admin,
            json!({"description": "Orders and returns",
               "appearance": {"title": "Talk to sales", "module_colour": "#ABC"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["settings"]["description"], "Orders and returns");
    assert_eq!(edited["settings"]["appearance"]["title"], "Talk to sales");
    assert_eq!(
        edited["settings"]["appearance"]["module_colour"], "#aabbcc",
        "colours are normalised"
    );
    assert_eq!(
        edited["settings"]["name"], "Sales desk",
        "untouched fields kept"
    );
    let (status, tagged) = svc
        .post(
            &format!("/api/admin/modules/{id}/tags"),
            admin,
            json!({"tag": "priority"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["tags"], json!(["priority"]));

    // Then it is found by name, by alias (any case) and by tag, and not by another tag.
    for query in ["q=desk", "q=SHOP_SALES", "tag=priority"] {
        let (status, page) = svc.get(&format!("/api/admin/modules?{query}"), admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(ids(&page), vec![id.clone()], "search {query}");
    }
    let (_, none) = svc.get("/api/admin/modules?tag=nothing", admin).await;
    assert_eq!(none["total"], 0);

    // When it is duplicated: a new id and reference, settings and tags copied.
    let (status, copy) = svc
        .post(
            &format!("/api/admin/modules/{id}/duplicate"),
            admin,
            json!({"reference": "sales-copy"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let copy_id = copy["id"].as_str().expect("id").to_owned();
    assert_ne!(copy_id, id);
    assert_eq!(copy["reference"], "sales-copy");
    assert_eq!(copy["settings"]["name"], "Sales desk (copy)");
    assert_eq!(copy["settings"]["description"], "Orders and returns");
    assert_eq!(copy["tags"], json!(["priority"]));
    assert_eq!(copy["duplicated_from"], id.as_str());
    assert_ne!(copy["public_url"], created["public_url"]);

    // Then the history lists each change with who and when.
    let (status, history) = svc
        .get(&format!("/api/admin/modules/{id}/history"), admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let entries = history["items"].as_array().expect("items");
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ModuleCreated", "ModuleUpdated", "ModuleTagAdded"]);
    let changed = entries[1]["changed"].as_array().unwrap();
    assert!(changed.contains(&json!("description")), "{changed:?}");
    assert!(changed.contains(&json!("appearance")), "{changed:?}");
    assert_eq!(entries[2]["changed"], json!(["tags"]));
    for entry in entries {
        assert_eq!(entry["by_login"], "admin", "{entry}");
        assert!(
            entry["at"].as_str().is_some_and(|t| t.starts_with("20")),
            "{entry}"
        );
    }

    // Given a strategy attached to the module.
    let (status, strategy) = svc
        .post(
            "/api/admin/strategies",
            admin,
            json!({"reference": "checkout", "name": "Checkout page",
                   "rules": {"combinator": "All", "rules": [{"Url": {"Prefix": "https://shop.example/checkout"}}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{strategy}");
    let strategy_id = strategy["id"].as_str().expect("id").to_owned();
    let (status, attached) = svc
        .put(
            &format!("/api/admin/modules/{id}/strategies/{strategy_id}"),
            admin,
            json!({"open": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{attached}");
    assert_eq!(
        attached["strategies"],
        json!([{"strategy": strategy_id, "display": true, "open": true}])
    );
    let (_, linked) = svc
        .get(&format!("/api/admin/strategies/{strategy_id}"), admin)
        .await;
    assert_eq!(linked["modules"], json!([id]), "both sides record the link");

    // When the module is deleted, it is refused naming the strategy.
    let (status, refused) = svc.delete(&format!("/api/admin/modules/{id}"), admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(error_code(&refused), "has_dependants");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&strategy_id)
    );
    assert_eq!(
        refused["error"]["fields"],
        json!([{"field": "strategy", "problem": strategy_id}])
    );
    // T4: the strategy cannot be deleted while attached either.
    let (status, refused) = svc
        .delete(&format!("/api/admin/strategies/{strategy_id}"), admin)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["fields"][0]["problem"], id.as_str());

    // When it is detached, the module can be deleted, and its reference is free again.
    let (status, detached) = svc
        .delete(
            &format!("/api/admin/modules/{id}/strategies/{strategy_id}"),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detached}");
    assert_eq!(detached["strategies"], json!([]));
    let (status, body) = svc.delete(&format!("/api/admin/modules/{id}"), admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, gone) = svc.get(&format!("/api/admin/modules/{id}"), admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
    let (_, history) = svc
        .get(&format!("/api/admin/modules/{id}/history"), admin)
        .await;
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["type"], "ModuleDeleted",
        "the history outlives the module"
    );
    let (status, again) = svc
        .post(
            "/api/admin/modules",
            admin,
            json!({"reference": "sales", "name": "Sales again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (status, body) = svc
        .delete(&format!("/api/admin/strategies/{strategy_id}"), admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_to_m8_module_lifecycle_on_the_memory_store() {
    let svc = TestService::memory().await;
    module_lifecycle(&svc).await;
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_to_m8_module_lifecycle_on_sled_and_postgres() {
    for backend in support::backends().await {
        let svc = TestService::on(&backend).await;
        module_lifecycle(&svc).await;
        svc.shutdown().await;
        backend.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_field_and_change_nothing() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();
    let (_, before) = svc.get("/api/admin/modules", admin).await;

    // M2: the demo's reference is taken.
    let (status, body) = svc
        .post(
            "/api/admin/modules",
            admin,
            json!({"reference": "demo", "name": "Another"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "duplicate_reference");

    for (fields, code, field) in [
        (
            json!({"reference": "café", "name": "x"}),
            "invalid_reference",
            "reference",
        ),
        (
            json!({"reference": "ok1", "name": "x", "appearance": {"title": "t",
                   "module_colour": "blue", "button_colour": "#fff", "button_icon": "chat",
                   "style": "Simple"}}),
            "invalid_colour",
            "module_colour",
        ),
        (
            json!({"reference": "ok2", "name": "x", "time_zone": "Mars/Olympus_Mons"}),
            "unknown_time_zone",
            "time_zone",
        ),
        (json!({"reference": "ok3"}), "empty", "name"),
    ] {
        let (status, body) = svc.post("/api/admin/modules", admin, fields).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_code(&body), code, "{body}");
        assert_eq!(error_field(&body), field, "{body}");
    }

    // An edit refused on its second part records neither part.
    let demo = DEMO_MODULE.to_string();
    let (status, body) = svc
        .patch(
            &format!("/api/admin/modules/{demo}"),
            admin,
            json!({"reference": "demo-renamed", "appearance": {"button_colour": "#12345"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "button_colour");
    let (_, still) = svc.get(&format!("/api/admin/modules/{demo}"), admin).await;
    assert_eq!(still["reference"], "demo");

    // Roles: an agent is forbidden, nobody is unauthorised, a bad id is named.
    let (status, body) = svc.get("/api/admin/modules", &svc.agent_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "forbidden");
    let (status, body) = svc
        .send(svc.client.get(svc.url("/api/admin/modules")))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "unauthorized");
    let (status, body) = svc
        .post(
            "/api/admin/modules",
            &svc.agent_token,
            json!({"reference": "x", "name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = svc.get("/api/admin/modules/not-a-uuid", admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "module");

    let (_, after) = svc.get("/api/admin/modules", admin).await;
    assert_eq!(ids(&after), ids(&before), "no refusal created a module");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_creation_with_the_same_command_id_returns_the_same_module() {
    let svc = TestService::memory().await;
    let command_id = uuid::Uuid::now_v7();
    let body = json!({"command_id": command_id, "reference": "retry", "name": "Retry"});
    let (first_status, first) = svc
        .post("/api/admin/modules", &svc.admin_token, body.clone())
        .await;
    let (second_status, second) = svc.post("/api/admin/modules", &svc.admin_token, body).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert_eq!(second_status, StatusCode::CREATED, "{second}");
    assert_eq!(first["id"], second["id"]);
    let (_, history) = svc
        .get(
            &format!(
                "/api/admin/modules/{}/history",
                first["id"].as_str().unwrap()
            ),
            &svc.admin_token,
        )
        .await;
    assert_eq!(history["total"], 1, "created once");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_f1_working_hours_forms_and_appearance_are_set_and_validated() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();
    let demo = DEMO_MODULE.to_string();
    let (_, module) = svc.get(&format!("/api/admin/modules/{demo}"), admin).await;
    let hours = module["working_hours"].clone();
    // Round trip: what is read can be written back unchanged.
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/working-hours"),
            admin,
            hours.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/working-hours"),
            admin,
            json!({"days": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = svc
        .delete(&format!("/api/admin/modules/{demo}/forms/offline"), admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["forms"].get("Offline").is_none(), "{body}");
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/forms/offline"),
            admin,
            module["forms"]["Offline"].clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["forms"]["Offline"], module["forms"]["Offline"]);
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/forms/sideways"),
            admin,
            json!({"fields": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "kind");

    // A6: the case template.
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/case-template"),
            admin,
            json!({"priority": "high"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["case_template"], json!({"priority": "high"}));
    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/case-template"),
            admin,
            json!({"Not A Key": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "case_template");

    let (status, body) = svc
        .put(
            &format!("/api/admin/modules/{demo}/appearance"),
            admin,
            json!({"title": "Hi", "module_colour": "#000", "button_colour": "#fff",
               "button_icon": "chat", "style": {"Advanced": {"avatars": [
                   "https://a.example/1.png", "https://a.example/2.png",
                   "https://a.example/3.png", "https://a.example/4.png"],
               "heading": "h", "button_title": "b"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_field(&body),
        "avatars",
        "four avatars are one too many"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r1_r2_queues_and_operators_are_managed() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();

    // Operators: created with a capacity; the capacity limit refuses and creates nobody.
    let (status, body) = svc
        .post(
            "/api/admin/operators",
            admin,
            json!({"login": "too_big", "display_name": "T", "role": "agent",
                   "password": "long enough", "capacity": 101}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "capacity");
    let (status, ann) = svc
        .post(
            "/api/admin/operators",
            admin,
            json!({"login": "ann", "display_name": "Ann", "role": "agent",
                   "password": "correct horse", "capacity": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ann}");
    assert_eq!(ann["capacity"], 100);
    let ann_id = ann["id"].as_str().unwrap().to_owned();
    let (_, operators) = svc.get("/api/admin/operators", admin).await;
    let logins: Vec<&str> = operators["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["login"].as_str().unwrap())
        .collect();
    assert!(
        logins.contains(&"ann") && !logins.contains(&"too_big"),
        "{logins:?}"
    );

    // Role change, password reset, disabling.
    let (status, body) = svc
        .patch(
            &format!("/api/admin/operators/{ann_id}"),
            admin,
            json!({"role": "supervisor", "password": "battery staple", "capacity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["capacity"], 2);
    assert!(
        sign_in(svc.service.app(), "ann", "correct horse")
            .await
            .is_err()
    );
    let (_, ann_token) = sign_in(svc.service.app(), "ann", "battery staple")
        .await
        .expect("the new password works");
    let (status, _) = svc.get("/api/admin/board", &ann_token).await;
    assert_eq!(status, StatusCode::OK, "a supervisor sees the board");
    let (status, _) = svc.get("/api/admin/modules", &ann_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "but configures nothing");
    let (status, body) = svc
        .patch(
            &format!("/api/admin/operators/{ann_id}"),
            admin,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = svc.get("/api/admin/board", &ann_token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled operator's token stops"
    );

    // An admin cannot lock themselves out.
    let admin_id = chat_service::http::auth::user_id("admin").to_string();
    let (status, body) = svc
        .patch(
            &format!("/api/admin/operators/{admin_id}"),
            admin,
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "own_access");

    // Queues and memberships with levels.
    let (status, queue) = svc
        .post(
            "/api/admin/queues",
            admin,
            json!({"reference": "level2", "name": "Experts"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    let queue_id = queue["id"].as_str().unwrap().to_owned();
    let agent = svc.agent_id.clone();
    let (status, body) = svc
        .put(
            &format!("/api/admin/queues/{queue_id}/members/{agent}"),
            admin,
            json!({"level": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "level");
    let (status, body) = svc
        .put(
            &format!("/api/admin/queues/{queue_id}/members/{agent}"),
            admin,
            json!({"level": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"], json!([{"agent": agent, "level": 2}]));
    let (status, body) = svc
        .put(
            &format!(
                "/api/admin/queues/{queue_id}/members/{}",
                uuid::Uuid::now_v7()
            ),
            admin,
            json!({"level": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an unknown operator: {body}");
    // R3, R4: the routing policy is configuration.
    let (status, body) = svc
        .put(
            &format!("/api/admin/queues/{queue_id}/policy"),
            admin,
            json!({"selection": "RoundRobin", "repeat": {"Same": {"wait_s": 60}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["policy"]["selection"], "RoundRobin");
    let (status, body) = svc
        .put(
            &format!("/api/admin/queues/{queue_id}/policy"),
            admin,
            json!({"selection": "LeastBusy", "repeat": {"Same": {"wait_s": 86_401}}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "policy.repeat.wait_s");
    let (_, queue) = svc
        .get(&format!("/api/admin/queues/{queue_id}"), admin)
        .await;
    assert_eq!(
        queue["policy"]["selection"], "RoundRobin",
        "the refusal changed nothing"
    );
    let (_, queues) = svc.get("/api/admin/queues", admin).await;
    assert_eq!(queues["total"], 2, "the demo's queue and this one");
    let (status, body) = svc
        .delete(
            &format!("/api/admin/queues/{queue_id}/members/{agent}"),
            admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["members"], json!([]));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_c5_f4_account_settings_change_all_or_nothing() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();
    let (_, before) = svc.get("/api/admin/account", admin).await;
    let (status, body) = svc
        .patch(
            "/api/admin/account",
            admin,
            json!({"unattended_timeout_s": 120, "default_time_zone": "Nowhere/City"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "unknown_time_zone");
    let (_, unchanged) = svc.get("/api/admin/account", admin).await;
    assert_eq!(unchanged, before, "the valid part was not recorded either");

    let (status, body) = svc
        .patch(
            "/api/admin/account",
            admin,
            json!({"unattended_timeout_s": 120, "default_time_zone": "Europe/Paris",
               "default_language": "fr", "contact_match_field": "lastname",
               "authorise_domains": ["*.shop.example"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unattended_timeout_s"], 120);
    assert_eq!(body["default_time_zone"], "Europe/Paris");
    assert_eq!(body["default_language"], "fr");
    assert_eq!(body["contact_match_field"], "lastname");
    assert!(
        body["authorised_domains"]
            .as_array()
            .unwrap()
            .contains(&json!("*.shop.example")),
        "{body}"
    );
    let (status, body) = svc
        .patch(
            "/api/admin/account",
            admin,
            json!({"unattended_timeout_s": 59}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "unattended_timeout_s");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_webhook_targets_round_trip_through_the_outbox_settings() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();
    let (status, body) = svc
        .put(
            "/api/admin/webhooks/crm",
            admin,
            json!({"url": "https://crm.example/hook", "events": ["chat.started", "chat.ended"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, listed) = svc.get("/api/admin/webhooks", admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([{"name": "crm", "url": "https://crm.example/hook",
                "events": ["chat.started", "chat.ended"]}])
    );
    // Recorded in the outbox's own settings stream.
    let stream = chat_store::StreamId::new(chat_service::outbox::SETTINGS_STREAM).unwrap();
    let version = svc
        .service
        .app()
        .engine()
        .store()
        .stream_version(&stream)
        .await
        .unwrap();
    assert_eq!(version, 1);

    for (name, body, field) in [
        (
            "crm",
            json!({"url": "ftp://crm.example", "events": []}),
            "webhooks[crm].url",
        ),
        (
            "crm",
            json!({"url": "https://crm.example", "events": ["chat.exploded"]}),
            "events",
        ),
        (
            "bad%20name",
            json!({"url": "https://crm.example", "events": []}),
            "webhooks.name",
        ),
    ] {
        let (status, refused) = svc
            .put(&format!("/api/admin/webhooks/{name}"), admin, body)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
        assert_eq!(error_field(&refused), field, "{refused}");
    }
    let (_, still) = svc.get("/api/admin/webhooks", admin).await;
    assert_eq!(still, listed, "refusals changed nothing");

    let (status, body) = svc.delete("/api/admin/webhooks/crm", admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([]));
    let (status, body) = svc.delete("/api/admin/webhooks/crm", admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m5_the_snippet_names_the_module_and_the_public_url_and_escapes_page_data() {
    let svc = TestService::memory().await;
    let demo = DEMO_MODULE.to_string();
    let hostile = "</script><script>alert(1)</script>";
    let url = reqwest::Url::parse_with_params(
        &svc.url(&format!("/api/admin/modules/{demo}/snippet")),
        &[("firstname", hostile), ("message", "it's <b>me</b> & you")],
    )
    .unwrap();
    let (status, body) = svc
        .send(svc.client.get(url).bearer_auth(&svc.admin_token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let html = body["html"].as_str().unwrap();
    let public = svc.service.app().public_url();
    assert!(html.contains(&demo), "{html}");
    assert!(html.contains(public), "{html}");
    assert!(
        !html.contains(hostile),
        "page data cannot close the script: {html}"
    );
    assert!(!html.contains("<b>"), "{html}");
    assert_eq!(body["public_url"], format!("{public}/chat/{demo}"));
    let (status, _) = svc
        .get(
            &format!("/api/admin/modules/{}/snippet", uuid::Uuid::now_v7()),
            &svc.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_x2_x3_board_search_and_statistics_reflect_a_chat_driven_through_the_engine() {
    let svc = TestService::memory().await;
    let engine = svc.service.app().engine().clone();
    let agent = AgentId::from_uuid(svc.agent_id.parse().unwrap());
    let chat = ChatId::from_uuid(uuid::Uuid::now_v7());
    let contact = ContactId::from_uuid(uuid::Uuid::now_v7());
    engine
        .start_chat(NewChat {
            command_id: CommandId::from_uuid(uuid::Uuid::now_v7()),
            chat,
            module: DEMO_MODULE,
            contact,
            contact_email: Some("visitor@example.com".into()),
            resume_token: "resume-token".into(),
            page: PageData::default(),
            form_answers: BTreeMap::new(),
            routing_vars: BTreeMap::new(),
            origin: Origin::Widget,
        })
        .await
        .unwrap()
        .expect("the chat starts");
    engine.settle().await.unwrap();

    // X1: the chat is on the board, held by the demo agent.
    let (status, board) = svc.get("/api/admin/board", &svc.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["active"][0]["chat"], chat.to_string(), "{board}");
    assert_eq!(board["active"][0]["agent"], svc.agent_id, "{board}");
    let (status, body) = svc.get("/api/admin/board", &svc.agent_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A module with an open chat cannot be deleted (M8), naming the chat.
    let (status, refused) = svc
        .delete(
            &format!("/api/admin/modules/{DEMO_MODULE}"),
            &svc.admin_token,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!({"field": "open_chat", "problem": chat.to_string()})),
        "{refused}"
    );

    for (n, author, text) in [
        (1, Party::Agent(agent), "Hello, how can I help?"),
        (2, Party::Visitor, "My parcel is late"),
    ] {
        engine
            .chat(
                chat,
                ChatCommand::PostMessage {
                    command_id: CommandId::from_uuid(uuid::Uuid::now_v7()),
                    message_id: MessageId::from_u128(n),
                    author,
                    body: MessageBody::text(text),
                },
            )
            .await
            .unwrap()
            .expect("posted");
    }
    engine
        .chat(
            chat,
            ChatCommand::End {
                command_id: CommandId::from_uuid(uuid::Uuid::now_v7()),
                by: EndedBy::Agent(agent),
            },
        )
        .await
        .unwrap()
        .expect("ended");
    engine.settle().await.unwrap();

    // X2: found by text, agent, module, contact, disposition and date range; not otherwise.
    let today = chrono::Utc::now().date_naive();
    let from = format!("{today}T00:00:00Z");
    let to = format!("{}T00:00:00Z", today.succ_opt().unwrap());
    for query in [
        "text=PARCEL".to_owned(),
        format!("agent={agent}"),
        format!("module={DEMO_MODULE}"),
        format!("contact={contact}"),
        "disposition=managed".to_owned(),
        format!("from={from}&to={to}"),
    ] {
        let (status, found) = svc
            .get(&format!("/api/admin/chats?{query}"), &svc.admin_token)
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {found}");
        assert_eq!(
            found["items"][0]["chat"],
            chat.to_string(),
            "{query}: {found}"
        );
        assert_eq!(found["items"][0]["disposition"], "Managed", "{found}");
    }
    for query in ["text=refund", "disposition=timeout", &format!("to={from}")] {
        let (_, found) = svc
            .get(&format!("/api/admin/chats?{query}"), &svc.admin_token)
            .await;
        assert_eq!(found["items"], json!([]), "{query}: {found}");
    }
    let (status, body) = svc
        .get("/api/admin/chats?disposition=sideways", &svc.admin_token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&body), "disposition");
    let (status, body) = svc
        .get("/api/admin/chats?from=yesterday", &svc.admin_token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&body), "from");

    // X3: the agent handled one chat; the demo alias started one, ended managed.
    let (status, stats) = svc.get("/api/admin/statistics", &svc.admin_token).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let agent_stats = stats["agents"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["login"] == "agent")
        .expect("the demo agent is listed")
        .clone();
    assert_eq!(agent_stats["chats_handled"], 1, "{agent_stats}");
    assert!(
        agent_stats["first_response_s_mean"].is_number(),
        "{agent_stats}"
    );
    let alias = stats["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["alias"] == "demo")
        .expect("the demo alias")
        .clone();
    assert_eq!(alias["started"], 1, "{alias}");
    assert_eq!(alias["ended"]["Managed"], 1, "{alias}");
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_and_search_texts_are_limited_at_and_past_the_edge() {
    let svc = TestService::memory().await;
    let admin = svc.admin_token.as_str();
    for n in 0..3 {
        let (status, body) = svc
            .post(
                "/api/admin/modules",
                admin,
                json!({"reference": format!("page{n}"), "name": format!("Paged {n}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, all) = svc.get("/api/admin/modules?q=paged", admin).await;
    let (status, second) = svc
        .get("/api/admin/modules?q=paged&offset=1&limit=1", admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["total"], 3);
    assert_eq!(ids(&second), vec![ids(&all)[1].clone()]);

    let (status, _) = svc
        .get(&format!("/api/admin/modules?limit={PAGE_ITEMS_MAX}"), admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        format!("/api/admin/modules?limit={}", PAGE_ITEMS_MAX + 1),
        format!("/api/admin/operators?limit={}", PAGE_ITEMS_MAX + 1),
        format!("/api/admin/chats?limit={}", PAGE_ITEMS_MAX + 1),
    ] {
        let (status, body) = svc.get(&path, admin).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(error_code(&body), "limit_exceeded");
        assert_eq!(error_field(&body), "limit");
    }
    let (status, body) = svc.get("/api/admin/modules?limit=0", admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = svc.get("/api/admin/modules?limit=lots", admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_field(&body), "query");

    let at_edge = "a".repeat(SEARCH_QUERY_BYTES_MAX);
    let past_edge = "a".repeat(SEARCH_QUERY_BYTES_MAX + 1);
    for (path, field) in [
        ("/api/admin/modules?q=", "q"),
        ("/api/admin/chats?text=", "text"),
    ] {
        let (status, body) = svc.get(&format!("{path}{at_edge}"), admin).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["items"], json!([]));
        let (status, body) = svc.get(&format!("{path}{past_edge}"), admin).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(error_field(&body), field);
    }
    svc.shutdown().await;
}
