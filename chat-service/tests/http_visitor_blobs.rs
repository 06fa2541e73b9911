//! A5 on PostgreSQL: attachments live in the store's schema (`PgBlobs`), so two service
//! processes on one database serve each other's uploads — a file uploaded through one process is
//! downloaded through the other, over real sockets.

mod support;

use chat_service::http::blobs::{BlobMeta, BlobStore, PgBlobs};
use chat_service::http::demo;
use chat_service::http::service::{Service, ServiceConfig};
use chat_store::PostgresStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use support::Backend;

async fn process(store: Arc<PostgresStore>, url: &str, schema: &str) -> Service {
    let config = ServiceConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        ..ServiceConfig::default()
    };
    let blobs = PgBlobs::open(url, schema).await.expect("blobs table");
    Service::start_with(config, store, Arc::new(blobs), None)
        .await
        .expect("service starts")
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a5_two_processes_on_one_database_serve_each_others_uploads() {
    let Some(Backend::Postgres { db, config, store }) = Backend::postgres().await else {
        println!("skipped: CHAT_TEST_POSTGRES_URL is not set");
        return;
    };
    let first_store = store.expect("open");
    let second_store = Arc::new(
        PostgresStore::open(config.clone())
            .await
            .expect("second process opens the same schema"),
    );
    let schema = config.schema_name().to_owned();
    let one = process(first_store, db.url(), &schema).await;
    let two = process(second_store, db.url(), &schema).await;
    demo::seed(one.app(), None).await.expect("demo seeds");
    two.app()
        .engine()
        .settle()
        .await
        .expect("second catches up");
    let client = reqwest::Client::new();

    // Requests without Origin are not browser requests: only the token counts.
    let (status, started) = json_of(
        client
            .post(format!(
                "http://{}/api/visitor/modules/demo/chats",
                one.address()
            ))
            .json(&json!({"form": {"name": "Ada", "email": "ada@example.org"}}))
            .send()
            .await
            .expect("start"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let chat = started["chat"].as_str().expect("chat");
    let token = started["resume_token"].as_str().expect("token");

    let bytes: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let (status, uploaded) = json_of(
        client
            .post(format!(
                "http://{}/api/visitor/chats/{chat}/attachments?name=report.pdf",
                one.address()
            ))
            .header("X-Resume-Token", token)
            .header("Content-Type", "application/pdf")
            .body(bytes.clone())
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let url = uploaded["url"].as_str().expect("url");

    let download = client
        .get(format!("http://{}{url}?token={token}", two.address()))
        .send()
        .await
        .expect("download from the other process");
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["content-type"], "application/pdf");
    assert_eq!(download.bytes().await.expect("bytes").to_vec(), bytes);

    // The message naming the upload is accepted by the other process too.
    let (status, sent) = json_of(
        client
            .post(format!(
                "http://{}/api/visitor/chats/{chat}/messages",
                two.address()
            ))
            .header("X-Resume-Token", token)
            .json(&json!({"text": "here", "attachments": [uploaded["id"]]}))
            .send()
            .await
            .expect("message"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let attachment = &sent["view"]["messages"][0]["attachments"][0];
    assert_eq!(attachment["file_name"], "report.pdf");
    assert_eq!(attachment["size_bytes"], 5000);

    // Write-once: a second put under the same id changes nothing.
    let blobs = PgBlobs::open(db.url(), &schema).await.expect("blobs");
    let id = uploaded["id"].as_str().expect("id").parse().expect("uuid");
    let (meta, _) = blobs.get(id).await.expect("get").expect("stored");
    let other = BlobMeta {
        file_name: "other.pdf".into(),
        ..meta.clone()
    };
    blobs.put(id, other, vec![1]).await.expect("put");
    assert_eq!(blobs.meta(id).await.expect("meta"), Some(meta));
    assert_eq!(blobs.meta(uuid::Uuid::now_v7()).await.expect("meta"), None);

    one.shutdown().await;
    two.shutdown().await;
    let _ = db.drop_schema(&schema).await;
}
