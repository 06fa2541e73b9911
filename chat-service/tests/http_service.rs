//! The service as a whole: it starts from the README's command on a fresh data directory, seeds
//! the demo idempotently across restarts, answers `/healthz` and `/metrics`, and serves every
//! operation its OpenAPI document describes.

mod http_support;
mod support;

use http_support::TestService;
use reqwest::StatusCode;
use serde_json::Value;
use std::process::{Child, Command};

fn start(args: &[&str]) -> (Child, String, Vec<String>) {
    http_support::start_binary(env!("CARGO_BIN_EXE_chat-service"), args)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn v4_the_binary_starts_on_a_fresh_directory_with_the_demo_and_again_on_the_same_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sled:{}", dir.path().join("data").display());
    // One port for both runs, as a real deployment has: the demo authorises its own origin.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--store", &store, "--listen", &listen, "--demo"];
    let (child, url, lines) = start(&args);
    let printed = lines.join("\n");
    assert!(printed.contains("demo page"), "{printed}");
    let password = |login: &str| {
        lines
            .iter()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("{login}: login {login}"))
            })
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{login} credentials printed in {printed}"))
    };
    let agent_password = password("agent");
    let client = reqwest::Client::new();
    let health: Value = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], "ok");
    let seeded_head = health["head_position"].as_u64().expect("head position");
    assert!(seeded_head > 0, "the demo wrote its configuration");
    stop(child);

    // A restart on the same directory finds the demo: same credentials, nothing new to write
    // but the agent's presence (already online: no change either).
    let (child, url, lines) = start(&args);
    // A new client: the old one's pooled connection died with the first process.
    let client = reqwest::Client::new();
    assert!(
        lines.iter().any(|l| l.contains(&agent_password)),
        "the same demo credentials are printed again"
    );
    let health: Value = client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("healthz answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        health["head_position"].as_u64(),
        Some(seeded_head),
        "re-seeding the demo appends nothing"
    );
    assert!(dir.path().join("data/secret.key").exists());
    stop(child);
}

#[tokio::test]
async fn v4_a_bad_store_option_is_refused_with_its_forms_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-service"))
        .args(["--store", "mysql://x"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expected memory, sled:PATH or postgres:URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn metrics_name_every_gauge_and_count_the_log() {
    let service = TestService::memory().await;
    let response = service
        .client
        .get(service.url("/metrics"))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    for gauge in [
        "chat_chats_waiting",
        "chat_chats_active",
        "chat_agents_online",
        "chat_events_appended",
        "chat_websocket_clients",
        "chat_outbox_pending",
        "chat_http_server_errors",
    ] {
        assert!(text.contains(&format!("\n{gauge} ")), "{gauge} in {text}");
    }
    let online: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("chat_agents_online "))
        .and_then(|v| v.parse().ok())
        .expect("agents online value");
    assert_eq!(online, 1, "the demo agent is online");
    service.shutdown().await;
}

/// Every operation of `/openapi.json` is served: a request with the documented method reaches a
/// handler (any answer but the router's own 404/405, which have no JSON error body).
#[tokio::test]
async fn v1_every_documented_operation_is_routed_and_answers_json_errors() {
    let service = TestService::memory().await;
    let (status, document) = service
        .send(service.client.get(service.url("/openapi.json")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/healthz") && paths.contains_key("/metrics"));
    let mut checked = 0;
    for (path, operations) in paths {
        let concrete = fill_parameters(path);
        for method in operations.as_object().expect("operations").keys() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let response = service
                .client
                .request(method.clone(), service.url(&concrete))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("answered");
            let status = response.status();
            let body = response.bytes().await.expect("body");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                let json: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| panic!("{method} {path} is not routed"));
                assert!(json["error"]["code"].is_string(), "{method} {path}");
            }
            assert!(
                !status.is_server_error(),
                "{method} {path} answered {status} to an empty request"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
    // And something undocumented is not served.
    let (status, _) = service
        .send(service.client.get(service.url("/api/not-a-route")))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    service.shutdown().await;
}

/// `{param}` → a syntactically valid value that names nothing.
fn fill_parameters(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        let name = &rest[start + 1..end - 1];
        out.push_str(if name == "reference" {
            "no_such_reference"
        } else {
            "00000000-0000-0000-0000-000000000000"
        });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn healthz_reports_the_head_and_no_failures() {
    let service = TestService::memory().await;
    let (status, body) = service
        .send(service.client.get(service.url("/healthz")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["failures"], Value::Array(Vec::new()));
    service.shutdown().await;
}
