//! The widget and the agent console in a real headless Chromium (issue #9), driven through
//! chromedriver with fantoccini against a real service (`TestService`, demo seeded).
//!
//! Journeys, a visitor page and an agent console side by side (two browser sessions): the
//! trigger opens the chat; the pre-chat form refuses a bad e-mail (the server's error shown next
//! to the field) then starts; the agent takes the chat; messages both ways; a reload of the
//! visitor page resumes the same chat; transfer; end; rating. And an offline module shows the
//! offline form on its public link, in the advanced style at phone width.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`). Without them a test prints why and passes, except under `CI=true`.
//! Screenshots go to `target/tmp/screenshots/`. Every wait polls a DOM condition with a timeout.

mod http_support;
mod support;

use chat_core::AgentId;
use chat_core::agent::{AgentCommand, Presence};
use chat_service::http::auth::{Role, create_user, user_id};
use chat_service::http::demo::{DEMO_AGENT_LOGIN, DEMO_MODULE};
use fantoccini::{Client, ClientBuilder, Locator};
use http_support::TestService;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for one DOM condition.
const WAIT: Duration = Duration::from_secs(20);
/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(100);
const PASSWORD: &str = "password-1234";

/// Whether the browsers are installed; without them, outside CI, the test is skipped.
fn browsers_present(test: &str) -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing \
             (apt-get install -y chromium chromium-driver)"
        );
        eprintln!("{test}: skipped, {CHROMIUM} or {CHROMEDRIVER} is missing");
    }
    present
}

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver listens within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profiles: tempfile::tempdir().expect("profile dir"),
        }
    }

    /// A new browser session with its own empty profile, `width` × `height` pixels.
    async fn session(&self, name: &str, width: u32, height: u32) -> Client {
        let profile = self.profiles.path().join(name);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` (a JavaScript expression) until it is true; fails naming `what`.
async fn until(client: &Client, condition: &str, what: &str) {
    let script = format!("return Boolean({condition});");
    let deadline = Instant::now() + WAIT;
    loop {
        let value = client.execute(&script, vec![]).await.unwrap_or(Value::Null);
        if value == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let state = client
                .execute(
                    "var r = document.getElementById('ce-root'); return r ? r.outerHTML.slice(0, 3000) : document.body.innerText.slice(0, 3000);",
                    vec![],
                )
                .await
                .unwrap_or(Value::Null);
            panic!("waited {WAIT:?} for {what} ({condition}); page: {state}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for the element `css` and returns it.
async fn element(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("element {css}: {e}"))
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let field = element(client, css).await;
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(client: &Client, css: &str) {
    element(client, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// A JavaScript expression: whether the element `css` contains `text`.
fn contains(css: &str, text: &str) -> String {
    format!(
        "(document.querySelector({}) || {{}}).textContent && document.querySelector({}).textContent.includes({})",
        json!(css),
        json!(css),
        json!(text)
    )
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshots_dir().join(name);
    std::fs::write(&path, png).expect("screenshot written");
    eprintln!("screenshot: {}", path.display());
}

/// A new agent with `capacity`, not a member of the demo queue (routing gives them nothing).
async fn new_agent(t: &TestService, login: &str, capacity: u32) -> AgentId {
    let app = t.service.app();
    let user = create_user(app, login, &format!("Agent {login}"), Role::Agent, PASSWORD)
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
    user.id
}

async fn set_online(t: &TestService, agent: AgentId) {
    t.service
        .app()
        .engine()
        .agent(AgentCommand::SetPresence {
            agent,
            presence: Presence::Online,
        })
        .await
        .expect("engine")
        .expect("online");
}

/// Chats wait for a manual pick: the demo queue's only member stays online with no room.
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

/// A strategy that opens the chat on the demo page, attached to the demo module.
async fn open_on_demo_page(t: &TestService) {
    let (status, strategy) = t
        .post(
            "/api/admin/strategies",
            &t.admin_token,
            json!({"reference": "demo_page", "name": "Demo page",
                   "rules": {"combinator": "All", "rules": [{"Url": {"Prefix": t.url("/demo")}}]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{strategy}");
    let id = strategy["id"].as_str().expect("strategy id");
    let (status, body) = t
        .put(
            &format!("/api/admin/modules/{DEMO_MODULE}/strategies/{id}"),
            &t.admin_token,
            json!({"open": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn sign_in(console: &Client, t: &TestService, login: &str) {
    console.goto(&t.url("/console")).await.expect("console");
    type_into(console, "#login", login).await;
    type_into(console, "#password", PASSWORD).await;
    click(console, "#signin-submit").await;
    until(
        console,
        "document.getElementById('app').dataset.ready === 'true'",
        "the console",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_c4_a2_a3_c6_x3_visitor_and_agent_journey_in_chromium() {
    if !browsers_present("visitor and agent journey") {
        return;
    }
    // Given the demo with a strategy that opens the chat on the demo page, chats waiting for a
    // manual pick, and two agents (Alice signs in to the console, Bob is online for a transfer).
    let t = TestService::memory().await;
    chats_wait(&t).await;
    open_on_demo_page(&t).await;
    let alice = new_agent(&t, "alice", 2).await;
    let bob = new_agent(&t, "bob", 2).await;
    set_online(&t, bob).await;
    let driver = Driver::start().await;
    let visitor = driver.session("visitor", 1280, 900).await;
    let console = driver.session("console", 1280, 900).await;

    // When the visitor opens the demo page, then the trigger opens the chat with its form.
    visitor.goto(&t.url("/demo")).await.expect("demo page");
    until(&visitor, "document.getElementById('ce-root') && document.getElementById('ce-root').dataset.display === 'open_chat'", "the trigger's decision").await;
    assert!(
        element(&visitor, "#ce-panel")
            .await
            .is_displayed()
            .await
            .expect("displayed")
    );
    assert_eq!(
        visitor
            .execute(
                "return document.getElementById('ce-root').dataset.style",
                vec![]
            )
            .await
            .expect("style"),
        json!("simple")
    );

    // When the pre-chat form is sent with a bad e-mail, then the server's refusal is shown next
    // to the e-mail field and no chat starts.
    type_into(&visitor, "#ce-prechat-name", "Vera").await;
    type_into(&visitor, "#ce-prechat-email", "not-an-email").await;
    click(&visitor, "#ce-prechat-submit").await;
    until(
        &visitor,
        "document.getElementById('ce-err-email').textContent.length > 0",
        "the e-mail error",
    )
    .await;
    let invalid = element(&visitor, "#ce-prechat-email").await;
    assert_eq!(
        invalid.attr("aria-invalid").await.expect("attr").as_deref(),
        Some("true")
    );
    let name_error = element(&visitor, "#ce-err-name")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        name_error.is_empty(),
        "only the e-mail is refused: {name_error:?}"
    );
    let (_, waiting) = t.get("/api/agent/waiting", &t.agent_token).await;
    assert_eq!(waiting["total"], 0, "{waiting}");

    // When it is corrected, then the chat starts and waits.
    type_into(&visitor, "#ce-prechat-email", "vera@example.com").await;
    click(&visitor, "#ce-prechat-submit").await;
    until(
        &visitor,
        "document.getElementById('ce-root').dataset.phase === 'Queued'",
        "a waiting chat",
    )
    .await;
    let chat = visitor
        .execute(
            "return document.getElementById('ce-root').dataset.chat",
            vec![],
        )
        .await
        .expect("chat id");
    let chat = chat.as_str().expect("chat id").to_owned();

    // When Alice signs in, goes online and takes the chat from the waiting list.
    sign_in(&console, &t, "alice").await;
    click(&console, "#presence option[value=online]").await;
    until(&console, &contains("#live", "online"), "Alice online").await;
    click(&console, &format!("#waiting .take[data-chat='{chat}']")).await;
    until(
        &console,
        "document.getElementById('chat').dataset.phase === 'Active'",
        "the taken chat",
    )
    .await;
    until(
        &console,
        &contains("#chat-facts", "vera@example.com"),
        "the form answers",
    )
    .await;
    until(
        &visitor,
        "document.getElementById('ce-root').dataset.phase === 'Active'",
        "the visitor sees the agent",
    )
    .await;

    // Then messages travel both ways, live.
    type_into(&visitor, "#ce-input", "Hello, where is my order?").await;
    click(&visitor, "#ce-send").await;
    until(
        &console,
        &contains("#transcript", "Hello, where is my order?"),
        "the visitor's message at the console",
    )
    .await;
    type_into(&console, "#reply", "Hi Vera, let me check.").await;
    click(&console, "#send").await;
    until(
        &visitor,
        &contains("#ce-messages", "Hi Vera, let me check."),
        "the agent's message in the widget",
    )
    .await;
    screenshot(&visitor, "widget-simple.png").await;
    screenshot(&console, "console.png").await;

    // When the visitor reloads the page, then the same chat is back with its messages, and new
    // messages still arrive live.
    visitor.refresh().await.expect("reload");
    until(&visitor, "document.getElementById('ce-root') && document.getElementById('ce-root').dataset.resumed === 'true'", "the resumed chat").await;
    let resumed = visitor
        .execute(
            "return document.getElementById('ce-root').dataset.chat",
            vec![],
        )
        .await
        .expect("chat id");
    assert_eq!(resumed, json!(chat), "the same chat after a reload");
    until(
        &visitor,
        &contains("#ce-messages", "Hello, where is my order?"),
        "the earlier messages",
    )
    .await;
    until(
        &visitor,
        "document.getElementById('ce-root').dataset.connected === 'true'",
        "the stream reopened",
    )
    .await;
    type_into(&console, "#reply", "Found it: it ships today.").await;
    click(&console, "#send").await;
    until(
        &visitor,
        &contains("#ce-messages", "Found it: it ships today."),
        "a live message after the reload",
    )
    .await;

    // When Alice transfers the chat to Bob, then it leaves her console and Bob holds it.
    type_into(&console, "#transfer-to", &bob.to_string()).await;
    click(&console, "#transfer").await;
    until(
        &console,
        "document.getElementById('chat').hidden && !document.querySelector('#mine [data-chat]')",
        "the chat gone from Alice",
    )
    .await;
    let bob_token = chat_service::http::auth::sign_in(t.service.app(), "bob", PASSWORD)
        .await
        .expect("bob signs in")
        .1;
    let (status, view) = t.get(&format!("/api/agent/chats/{chat}"), &bob_token).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["agent"], json!(bob.to_string()), "{view}");
    assert_ne!(view["agent"], json!(alice.to_string()));

    // When the visitor ends the chat, then the widget asks for a rating, which is recorded.
    click(&visitor, "#ce-end").await;
    until(
        &visitor,
        "document.getElementById('ce-rating')",
        "the rating form",
    )
    .await;
    click(&visitor, "label[for=ce-score-5]").await;
    type_into(&visitor, "#ce-rating-comment", "Quick and kind").await;
    click(&visitor, "#ce-rate").await;
    until(
        &visitor,
        "document.getElementById('ce-thanks')",
        "the thanks",
    )
    .await;
    let (_, view) = t.get(&format!("/api/agent/chats/{chat}"), &bob_token).await;
    assert_eq!(view["phase"], "Ended", "{view}");
    assert_eq!(view["rated"], true, "{view}");

    visitor.close().await.expect("close");
    console.close().await.expect("close");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o1_m4_m9_an_offline_module_shows_the_offline_form_in_the_advanced_style_at_phone_width() {
    if !browsers_present("offline form") {
        return;
    }
    // Given the demo module closed around the clock, in the advanced style with avatars.
    let t = TestService::memory().await;
    let (status, body) = t
        .put(
            &format!("/api/admin/modules/{DEMO_MODULE}/working-hours"),
            &t.admin_token,
            json!({"weekly": [[], [], [], [], [], [], []], "exceptions": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let avatar = t.url("/avatar.svg");
    let (status, body) = t.put(&format!("/api/admin/modules/{DEMO_MODULE}/appearance"),
        &t.admin_token,
        json!({"title": "Demo shop help", "module_colour": "#5b2a86", "button_colour": "#5b2a86",
               "button_icon": "chat", "style": {"Advanced": {"avatars": [avatar, avatar],
               "heading": "We answer within a day", "button_title": "Write to us"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let driver = Driver::start().await;
    let visitor = driver.session("offline", 390, 844).await;

    // When a visitor opens the module's public link on a phone.
    visitor
        .goto(&t.url("/chat/demo"))
        .await
        .expect("public link");

    // Then the offline form is shown, in the advanced style.
    until(
        &visitor,
        "document.getElementById('ce-offline')",
        "the offline form",
    )
    .await;
    assert_eq!(
        visitor
            .execute(
                "return document.getElementById('ce-root').dataset.style",
                vec![]
            )
            .await
            .expect("style"),
        json!("advanced")
    );
    until(
        &visitor,
        &contains(".ce-heading", "We answer within a day"),
        "the heading",
    )
    .await;
    // Headless Chromium keeps windows at least 500 px wide; the phone layout applies up to 540.
    let fits = visitor
        .execute(
            "var w = window.innerWidth; var p = document.getElementById('ce-panel').getBoundingClientRect(); \
             return [w, p.width, p.left];",
            vec![],
        )
        .await
        .expect("widths");
    let viewport = fits[0].as_f64().expect("viewport width");
    assert!(viewport <= 540.0, "a phone-sized window: {fits}");
    assert_eq!(
        fits[1].as_f64(),
        Some(viewport),
        "the panel fills the phone's width: {fits}"
    );
    assert_eq!(fits[2].as_f64(), Some(0.0), "{fits}");
    screenshot(&visitor, "widget-advanced-offline.png").await;

    // When the message is sent without an e-mail, the server's refusal names the field; with
    // one, it is kept.
    type_into(&visitor, "#ce-offline-message", "Do you ship to Norway?").await;
    click(&visitor, "#ce-offline-submit").await;
    until(
        &visitor,
        "document.getElementById('ce-err-email').textContent.length > 0",
        "the e-mail error",
    )
    .await;
    type_into(&visitor, "#ce-offline-email", "nils@example.no").await;
    click(&visitor, "#ce-offline-submit").await;
    until(
        &visitor,
        "document.getElementById('ce-offline-sent')",
        "the confirmation",
    )
    .await;
    // The search folds the log on demand; poll in case it trails by a moment.
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, found) = t
            .get("/api/admin/chats?disposition=offline", &t.admin_token)
            .await;
        if found["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an offline chat is kept: {found}"
        );
        tokio::time::sleep(POLL).await;
    }

    visitor.close().await.expect("close");
    t.shutdown().await;
}
