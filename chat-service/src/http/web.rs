//! Pages and scripts for browsers (issue #9, docs/WIDGET.md): the index page, the widget script
//! and its styles (what the embed snippet loads), the demo page that embeds the widget for the
//! demo module, a module's public chat link (M9, a full-page chat), the agent console, and a
//! placeholder avatar for advanced-style modules.
//!
//! Plain files under `chat-service/static/`, embedded with `include_str!`: no build step, and the
//! binary serves the same bytes the tests drive. Every dynamic value written into a page goes
//! through [`json_for_script`] or chat-core's `render_snippet`, which escape for `<script>`.

use crate::http::App;
use crate::http::demo::DEMO_MODULE;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chat_core::PageData;
use chat_core::config::{ModuleDecider, render_snippet};

const WIDGET_JS: &str = include_str!("../../static/widget.js");
const WIDGET_CSS: &str = include_str!("../../static/widget.css");
const CONSOLE_HTML: &str = include_str!("../../static/console.html");
const CONSOLE_JS: &str = include_str!("../../static/console.js");
const CONSOLE_CSS: &str = include_str!("../../static/console.css");
const AVATAR_SVG: &str = include_str!("../../static/avatar.svg");

/// Longest module key (id or reference) the public chat page accepts, in bytes; a longer one is
/// no module and is answered 404 without a page.
pub const CHAT_PAGE_KEY_BYTES_MAX: usize = 64;

/// The browser-facing routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(index))
        .route(
            "/widget.js",
            get(|| asset(WIDGET_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/widget.css",
            get(|| asset(WIDGET_CSS, "text/css; charset=utf-8")),
        )
        .route("/console", get(|| async { Html(CONSOLE_HTML) }))
        .route(
            "/console.js",
            get(|| asset(CONSOLE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/console.css",
            get(|| asset(CONSOLE_CSS, "text/css; charset=utf-8")),
        )
        .route("/avatar.svg", get(|| asset(AVATAR_SVG, "image/svg+xml")))
        .route("/demo", get(demo_page))
        .route("/chat/{module}", get(chat_page))
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chat-engine</title></head>\
         <body><h1>chat-engine reference service</h1>\
         <ul><li><a href=\"/demo\">Demo page with the chat widget</a></li>\
         <li><a href=\"/console\">Agent console</a></li></ul>\
         <p>API description: <a href=\"/openapi.json\">/openapi.json</a>. \
         Health: <a href=\"/healthz\">/healthz</a>. Metrics: <a href=\"/metrics\">/metrics</a>.</p></body></html>",
    )
}

/// A JSON value that is also safe inside an HTML `<script>` block (no `<`, `>`, `&`).
fn json_for_script(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn page(title: &str, body_class: &str, content: &str, script: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#111;}}\
         main{{max-width:720px;margin:0 auto;padding:24px;}}</style></head>\
         <body class=\"{body_class}\">{content}{script}</body></html>"
    )
}

/// V4: the demo page a fresh start prints — a shop page with the demo module's real snippet
/// (chat-core's `render_snippet`, the one an admin copies), with page data as a site would pass.
async fn demo_page(State(app): State<App>) -> Response {
    let state = match app
        .engine()
        .state::<ModuleDecider>(&DEMO_MODULE.stream_name())
        .await
    {
        Ok(state) => state,
        Err(error) => return crate::http::error::ApiError::from(error).into_response(),
    };
    let Some(module) = state.module.filter(|_| !state.deleted) else {
        return (
            StatusCode::NOT_FOUND,
            Html("<!doctype html><title>No demo</title><p>Start the service with --demo.</p>"),
        )
            .into_response();
    };
    let data = PageData {
        firstname: None,
        lastname: None,
        message: None,
        vars: [("page".to_owned(), "demo".to_owned())]
            .into_iter()
            .collect(),
    };
    let snippet = match render_snippet(&module, app.public_url(), &data) {
        Ok(snippet) => snippet,
        Err(rejection) => {
            return crate::http::error::ApiError::from(rejection).into_response();
        }
    };
    Html(page(
        "Demo shop",
        "demo",
        "<main><h1>Demo shop</h1><p>This page embeds the chat widget of the demo module, the way \
         a customer's website would. Sign in to the <a href=\"/console\">agent console</a> in \
         another window to answer.</p></main>",
        &snippet,
    ))
    .into_response()
}

/// M9: a module's public link — the widget as a full page, for sites that only link to the chat.
async fn chat_page(State(app): State<App>, Path(module): Path<String>) -> Response {
    if module.is_empty() || module.len() > CHAT_PAGE_KEY_BYTES_MAX {
        return StatusCode::NOT_FOUND.into_response();
    }
    let config = serde_json::json!({
        "module": module,
        "baseUrl": app.public_url(),
        "mode": "page",
    });
    let script = format!(
        "<script>window.ChatEngine = {};</script><script src=\"/widget.js\"></script>",
        json_for_script(&config)
    );
    Html(page("Chat", "chat-page", "", &script)).into_response()
}

#[cfg(test)]
mod tests {
    use super::json_for_script;

    #[test]
    fn given_a_value_with_a_closing_script_tag_when_written_then_it_cannot_end_the_script() {
        let written = json_for_script(&serde_json::json!({"module": "</script><b>&"}));
        assert!(!written.contains('<') && !written.contains('>') && !written.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&written).expect("still JSON");
        assert_eq!(back["module"], "</script><b>&");
    }
}
