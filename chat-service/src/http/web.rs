//! Pages and scripts for browsers: the index page (and, with the widget issue, the widget script,
//! the demo page and the agent console).

use crate::http::App;
use axum::Router;
use axum::response::Html;
use axum::routing::get;

/// The browser-facing routes.
pub fn routes() -> Router<App> {
    Router::new().route("/", get(index))
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chat-engine</title></head>\
         <body><h1>chat-engine reference service</h1>\
         <p>API description: <a href=\"/openapi.json\">/openapi.json</a>. \
         Health: <a href=\"/healthz\">/healthz</a>. Metrics: <a href=\"/metrics\">/metrics</a>.</p></body></html>",
    )
}
