//! The service under load (issue 10): the real `chat-service` binary over sled, N idle visitor
//! WebSockets held open, M agent WebSockets, and whole conversations started at a target rate —
//! start → routing assigns → 10 messages alternating visitor and agent over HTTP, each observed
//! on the other side's WebSocket → the visitor ends the chat.
//!
//! Every message carries a unique marker (in its `command_id` and its text), so the generator counts exactly how
//! often each one reached the other side: 0 is a lost message, 2 or more a duplicate. Delivery
//! latency is HTTP send → frame received on the other side. The same-run baseline is the round
//! trip of a WebSocket ping/pong to the same service process, measured on one idle visitor stream
//! while the load runs (and once before it, at rest): the delivery latency is reported as a ratio
//! to it.
//!
//! Run: `cargo build --release -p chat-service --bin chat-service` first (the benchmark starts
//! `target/release/chat-service`, under `CARGO_TARGET_DIR` when set, or `LOAD_SERVICE_BIN`), then
//! `cargo bench -p chat-benches --bench load`. Knobs: `LOAD_VISITORS` (idle visitor streams,
//! default 9,500: with the agents' and the live conversations' streams the process stays within
//! its 10,000-stream limit), `LOAD_AGENTS` (agents taking the conversations, default 20),
//! `LOAD_RATE` (new conversations per second, default 200), `LOAD_SECONDS` (default 60),
//! `LOAD_QUICK=1` (200 visitors, 4 agents, 20/s for 5 s: a sanity run). Figures in
//! docs/PERFORMANCE.md.
//!
//! On the 2-core machine the generator (2 worker threads) competes with the service for the same
//! cores: the figures are a lower bound of what the service alone would do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_benches::machine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Messages per conversation (the workload), alternating visitor and agent.
const MESSAGES_PER_CONVERSATION: u64 = 10;
/// The most chats one operator may hold (R2: capacity 0–100).
const CAPACITY_MAX: u64 = 100;
/// Streams one service process accepts at most (`fanout::SUBSCRIBERS_MAX`).
const STREAMS_MAX: u64 = 10_000;
/// A message not delivered within this is counted late (and lost if it never arrives).
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
/// How long the generator waits for the service to print its credentials.
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// How long after the last conversation duplicates may still arrive before they are counted.
const DRAIN: Duration = Duration::from_secs(2);
/// Concurrent requests while setting up idle visitors.
const SETUP_CONCURRENCY: usize = 32;
/// Interval of the ping/pong baseline.
const PING_INTERVAL: Duration = Duration::from_millis(20);
/// Password of the generated agents.
const PASSWORD: &str = "load-password-1";
/// The demo module's id (`chat_service::http::demo::DEMO_MODULE`).
const DEMO_MODULE: &str = "00000000-0000-0000-0000-0000de300001";
/// The demo queue's id (`chat_service::http::demo::DEMO_QUEUE`).
const DEMO_QUEUE: &str = "00000000-0000-0000-0000-0000de300002";

/// The knobs, from the environment.
#[derive(Clone, Debug)]
struct Knobs {
    visitors: u64,
    agents: u64,
    rate: f64,
    seconds: u64,
    agent_capacity: u64,
}

impl Knobs {
    fn from_env() -> Result<Self> {
        let quick = std::env::var("LOAD_QUICK").is_ok_and(|v| v == "1");
        let (visitors, agents, rate, seconds) = if quick {
            (200, 4, 20.0, 5)
        } else {
            (9_500, 20, 200.0, 60)
        };
        let knobs = Self {
            visitors: env_or("LOAD_VISITORS", visitors)?,
            agents: env_or("LOAD_AGENTS", agents)?,
            rate: env_or("LOAD_RATE", rate)?,
            seconds: env_or("LOAD_SECONDS", seconds)?,
            agent_capacity: CAPACITY_MAX,
        };
        if knobs.agents == 0 || knobs.rate <= 0.0 || knobs.seconds == 0 {
            return Err("LOAD_AGENTS, LOAD_RATE and LOAD_SECONDS must be positive".into());
        }
        if knobs.visitors + knobs.agents + 2 > STREAMS_MAX {
            return Err(format!(
                "LOAD_VISITORS + LOAD_AGENTS must leave room under the service's {STREAMS_MAX} streams"
            )
            .into());
        }
        Ok(knobs)
    }

    /// Agents that hold the idle chats (each at most `CAPACITY_MAX`).
    fn idle_agents(&self) -> u64 {
        self.visitors.div_ceil(CAPACITY_MAX)
    }

    /// Conversations in flight at most: what the stream limit leaves after the idle visitors, the
    /// agents and the baseline stream, and what the agents can hold.
    fn in_flight_max(&self) -> u64 {
        let streams = STREAMS_MAX - self.visitors - self.agents - 1;
        streams.min(self.agents * self.agent_capacity)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a number").into()),
        Err(_) => Ok(default),
    }
}

/// Which side of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Visitor,
    Agent,
}

/// One sent message: when, to whom, and how often it arrived there.
struct Sent {
    at: Instant,
    to: Side,
    received: u32,
    delivered: Option<oneshot::Sender<Duration>>,
}

/// Every message of the run, by marker number.
#[derive(Default)]
struct Tracker {
    sent: Mutex<HashMap<u64, Sent>>,
    next: AtomicU64,
}

impl Tracker {
    /// Registers a message before it is sent; returns its marker and the delivery signal.
    fn register(&self, to: Side) -> (u64, oneshot::Receiver<Duration>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sent = Sent {
            at: Instant::now(),
            to,
            received: 0,
            delivered: Some(tx),
        };
        lock(&self.sent).insert(id, sent);
        (id, rx)
    }

    /// A `MessagePosted` frame carrying marker `id` arrived on `side`'s stream.
    fn observe(&self, id: u64, side: Side) {
        let mut sent = lock(&self.sent);
        if let Some(entry) = sent.get_mut(&id).filter(|e| e.to == side) {
            entry.received += 1;
            if let Some(tx) = entry.delivered.take() {
                let _ = tx.send(entry.at.elapsed());
            }
        }
    }

    /// (messages, lost, duplicated) over the whole run.
    fn totals(&self) -> (u64, u64, u64) {
        let sent = lock(&self.sent);
        let lost = sent.values().filter(|e| e.received == 0).count() as u64;
        let duplicated = sent
            .values()
            .map(|e| u64::from(e.received.saturating_sub(1)))
            .sum();
        (sent.len() as u64, lost, duplicated)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fixed part of every message's `command_id`; the last 12 hex digits are the marker.
///
/// The marker travels in the command id, not only in the text, because the pushed
/// `MessagePosted` frames of this version carry an empty `text` (see docs/PERFORMANCE.md).
const MARKER_PREFIX: &str = "1d1d1d1d-0000-4000-8000-";

/// The `command_id` of message `id`.
fn marker_command_id(id: u64) -> String {
    format!("{MARKER_PREFIX}{id:012x}")
}

/// The marker number in a frame's text, if any.
fn marker(text: &str) -> Option<u64> {
    let start = text.find(MARKER_PREFIX)? + MARKER_PREFIX.len();
    u64::from_str_radix(text.get(start..start + 12)?, 16).ok()
}

/// Counters of the run.
#[derive(Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    late: AtomicU64,
    behind_schedule: AtomicU64,
    agent_reconnects: AtomicU64,
    idle_unexpected_frames: AtomicU64,
    visitor_streams_open: AtomicU64,
    visitor_streams_peak: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    assign_us: Mutex<Vec<u64>>,
    ping_us: Mutex<Vec<u64>>,
}

impl Counters {
    fn stream_opened(&self) {
        let now = self.visitor_streams_open.fetch_add(1, Ordering::Relaxed) + 1;
        self.visitor_streams_peak.fetch_max(now, Ordering::Relaxed);
    }

    fn stream_closed(&self) {
        self.visitor_streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The service child process; killed when dropped.
struct ServiceProcess {
    child: Child,
    base: String,
    admin_password: String,
    agent_password: String,
    _data: tempfile::TempDir,
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServiceProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `VmRSS` or `VmHWM` of the service, in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|l| {
                l.trim_start_matches(':')
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    }
}

fn service_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("LOAD_SERVICE_BIN") {
        return Ok(path.into());
    }
    let target = std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target.join("release/chat-service");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} missing: run `cargo build --release -p chat-service --bin chat-service` first",
            path.display()
        )
        .into())
    }
}

/// Starts the service over sled in a fresh directory, with the demo and raised limits, and reads
/// the address and credentials it prints.
fn start_service(knobs: &Knobs) -> Result<ServiceProcess> {
    use std::io::BufRead as _;
    let data = tempfile::tempdir()?;
    let config = data.path().join("load.toml");
    // Every visitor of the run comes from 127.0.0.1, and the start route is limited per address.
    std::fs::write(
        &config,
        format!("visitor_requests_per_minute = 10000000\nwebsocket_clients_max = {STREAMS_MAX}\n"),
    )?;
    let _ = knobs;
    let mut child = Command::new(service_binary()?)
        .arg("--config")
        .arg(&config)
        .arg("--store")
        .arg(format!("sled:{}", data.path().join("data").display()))
        .args(["--listen", "127.0.0.1:0", "--demo"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Keep draining so the service never blocks on a full pipe.
                continue;
            }
        }
    });
    let mut process = ServiceProcess {
        child,
        base: String::new(),
        admin_password: String::new(),
        agent_password: String::new(),
        _data: data,
    };
    let deadline = Instant::now() + STARTUP_WAIT;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(wait)
            .map_err(|_| "the service printed no credentials in time")?;
        if let Some(rest) = line.strip_prefix("chat-service listening on ") {
            process.base = rest.split_whitespace().next().unwrap_or("").to_owned();
        } else if let Some(rest) = line.trim().strip_prefix("agent: login agent password ") {
            process.agent_password = rest.trim().to_owned();
        } else if let Some(rest) = line.trim().strip_prefix("admin: login admin password ") {
            process.admin_password = rest.trim().to_owned();
        } else if line.starts_with("API description") {
            break;
        }
    }
    if process.base.is_empty() || process.admin_password.is_empty() {
        return Err("the service's output lacked its address or credentials".into());
    }
    Ok(process)
}

/// A JSON client of the service.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{what}: {status} {body}").into())
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn sign_in(&self, login: &str, password: &str) -> Result<(String, String)> {
        let body = self
            .call(
                self.http
                    .post(self.url("/api/agent/sign-in"))
                    .json(&json!({"login": login, "password": password})),
                "sign-in",
            )
            .await?;
        let token = body["token"].as_str().ok_or("no token")?.to_owned();
        let id = body["user"]["id"].as_str().ok_or("no user id")?.to_owned();
        Ok((token, id))
    }

    async fn presence(&self, token: &str, presence: &str) -> Result<()> {
        self.call(
            self.http
                .put(self.url("/api/agent/presence"))
                .bearer_auth(token)
                .json(&json!({"presence": presence})),
            "presence",
        )
        .await
        .map(|_| ())
    }

    /// Creates an agent with `capacity`, signs it in, sets it online and makes it a level-1
    /// member of the demo queue. Returns (token, id).
    async fn agent(&self, admin: &str, login: &str, capacity: u64) -> Result<(String, String)> {
        self.call(
            self.http
                .post(self.url("/api/admin/operators"))
                .bearer_auth(admin)
                .json(
                    &json!({"login": login, "display_name": login, "role": "agent",
                    "password": PASSWORD, "capacity": capacity}),
                ),
            "create operator",
        )
        .await?;
        let (token, id) = self.sign_in(login, PASSWORD).await?;
        self.presence(&token, "online").await?;
        self.call(
            self.http
                .put(self.url(&format!("/api/admin/queues/{DEMO_QUEUE}/members/{id}")))
                .bearer_auth(admin)
                .json(&json!({"level": 1})),
            "queue member",
        )
        .await?;
        Ok((token, id))
    }

    /// Starts a chat on the demo module; returns (chat, resume token, position).
    async fn start_chat(&self, n: u64) -> Result<(String, String, u64)> {
        let body = self
            .call(
                self.http
                    .post(self.url("/api/visitor/modules/demo/chats"))
                    .json(&json!({"form": {"name": format!("Visitor {n}"),
                        "email": format!("v{n}@load.example")}})),
                "start chat",
            )
            .await?;
        let chat = body["chat"].as_str().ok_or("no chat")?.to_owned();
        let token = body["resume_token"].as_str().ok_or("no token")?.to_owned();
        let position = body["position"].as_u64().ok_or("no position")?;
        Ok((chat, token, position))
    }

    async fn head(&self) -> Result<u64> {
        let body = self
            .call(self.http.get(self.url("/healthz")), "healthz")
            .await?;
        body["head_position"].as_u64().ok_or("no head".into())
    }

    async fn connect(&self, path_and_query: &str) -> Result<Ws> {
        let url = format!("ws{}{path_and_query}", self.base.trim_start_matches("http"));
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(ws)
    }
}

/// The first string value under `key` anywhere in `value`.
fn find_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    match value {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_str)
            .or_else(|| map.values().find_map(|v| find_str(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_str(v, key)),
        _ => None,
    }
}

/// An agent's inbox stream: records every message marker it sees, reconnecting after a lag.
async fn agent_stream(
    api: Api,
    token: String,
    from: u64,
    tracker: Arc<Tracker>,
    counters: Arc<Counters>,
) {
    let mut after = from;
    loop {
        let Ok(mut ws) = api
            .connect(&format!("/api/agent/ws?token={token}&after={after}"))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(resume) = frame["disconnected"]["resume_after"].as_u64() {
                after = resume;
                break;
            }
            if let Some(position) = frame["position"].as_u64() {
                after = position;
            }
            if frame["type"] == "MessagePosted"
                && let Some(id) = marker(&text)
            {
                tracker.observe(id, Side::Agent);
            }
        }
        counters.agent_reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// One whole conversation.
async fn conversation(
    n: u64,
    api: Api,
    agents: Arc<HashMap<String, String>>,
    tracker: Arc<Tracker>,
    counters: Arc<Counters>,
) -> Result<()> {
    let begun = Instant::now();
    let (chat, resume, position) = api.start_chat(n).await?;
    let ws = api
        .connect(&format!(
            "/api/visitor/chats/{chat}/ws?token={resume}&after={}",
            position.saturating_sub(1)
        ))
        .await?;
    counters.stream_opened();
    let (assigned_tx, assigned_rx) = oneshot::channel::<String>();
    let reader = tokio::spawn(visitor_stream(ws, assigned_tx, tracker.clone()));
    let result = async {
        let agent = tokio::time::timeout(DELIVERY_WAIT, assigned_rx)
            .await
            .map_err(|_| "not assigned in time")??;
        lock(&counters.assign_us).push(begun.elapsed().as_micros() as u64);
        let agent_token = agents
            .get(&agent)
            .ok_or_else(|| format!("assigned to an agent of no load stream: {agent}"))?;
        for i in 0..MESSAGES_PER_CONVERSATION {
            let to = if i % 2 == 0 {
                Side::Agent
            } else {
                Side::Visitor
            };
            let (id, delivered) = tracker.register(to);
            let text = format!("ldm{id} message {i} of conversation {n}: hello there");
            let request = match to {
                Side::Agent => api
                    .http
                    .post(api.url(&format!("/api/visitor/chats/{chat}/messages")))
                    .header("X-Resume-Token", &resume),
                Side::Visitor => api
                    .http
                    .post(api.url(&format!("/api/agent/chats/{chat}/messages")))
                    .bearer_auth(agent_token),
            };
            let body = json!({"command_id": marker_command_id(id), "text": text});
            api.call(request.json(&body), "message").await?;
            match tokio::time::timeout(DELIVERY_WAIT, delivered).await {
                Ok(Ok(latency)) => lock(&counters.latencies_us).push(latency.as_micros() as u64),
                _ => {
                    counters.late.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        api.call(
            api.http
                .post(api.url(&format!("/api/visitor/chats/{chat}/end")))
                .header("X-Resume-Token", &resume)
                .json(&json!({})),
            "end",
        )
        .await?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    // The reader ends with the chat's end (or its stream); it may still count a duplicate.
    if result.is_ok() {
        let _ = tokio::time::timeout(DELIVERY_WAIT, reader).await;
    } else {
        reader.abort();
        // A failed conversation still ends its chat, or it would hold an agent's capacity and
        // starve the conversations after it.
        let _ = api
            .call(
                api.http
                    .post(api.url(&format!("/api/visitor/chats/{chat}/end")))
                    .header("X-Resume-Token", &resume)
                    .json(&json!({})),
                "end",
            )
            .await;
    }
    counters.stream_closed();
    result
}

/// A conversation's visitor stream: reports the assigned agent, records message markers, ends
/// with the episode.
async fn visitor_stream(mut ws: Ws, assigned: oneshot::Sender<String>, tracker: Arc<Tracker>) {
    let mut assigned = Some(assigned);
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match frame["type"].as_str() {
            Some("AgentAssigned") => {
                if let (Some(tx), Some(agent)) =
                    (assigned.take(), find_str(&frame["event"], "agent"))
                {
                    let _ = tx.send(agent.to_owned());
                }
            }
            Some("MessagePosted") => {
                if let Some(id) = marker(&text) {
                    tracker.observe(id, Side::Visitor);
                }
            }
            Some("EpisodeEnded") => break,
            _ => {}
        }
    }
    let _ = ws.close(None).await;
}

/// An idle visitor: holds its stream open and counts any message frame (there should be none).
async fn idle_stream(mut ws: Ws, counters: Arc<Counters>) {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message
            && text.contains("\"MessagePosted\"")
        {
            counters
                .idle_unexpected_frames
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    counters.stream_closed();
}

/// Pings the service on one stream every `PING_INTERVAL` until `stop`; records round trips.
async fn pinger(mut ws: Ws, counters: Arc<Counters>, stop: Arc<tokio::sync::Notify>) -> Ws {
    let mut seq: u64 = 0;
    loop {
        let sent = Instant::now();
        seq += 1;
        if ws
            .send(Message::Ping(seq.to_be_bytes().to_vec().into()))
            .await
            .is_err()
        {
            return ws;
        }
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) if payload.as_ref() == seq.to_be_bytes() => {
                    lock(&counters.ping_us).push(sent.elapsed().as_micros() as u64);
                    break;
                }
                Some(Ok(_)) => {}
                _ => return ws,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(PING_INTERVAL) => {}
            () = stop.notified() => return ws,
        }
    }
}

/// p50, p99 and max of microsecond samples, in milliseconds.
fn percentiles(samples: &mut [u64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    (at(0.5), at(0.99), at(1.0))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

async fn run(knobs: Knobs) -> Result<()> {
    println!("== load: {}", machine());
    println!(
        "knobs: {} idle visitors, {} agents, {} conversations/s for {} s",
        knobs.visitors, knobs.agents, knobs.rate, knobs.seconds
    );
    let service = start_service(&knobs)?;
    let api = Api {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(usize::try_from(knobs.in_flight_max()).unwrap_or(1024))
            .build()?,
        base: service.base.clone(),
    };
    let counters = Arc::new(Counters::default());
    let tracker = Arc::new(Tracker::default());

    // Setup: the demo agent goes offline (so routing never gives it load), no transcript mails.
    let (admin, _) = api.sign_in("admin", &service.admin_password).await?;
    let (demo_agent, _) = api.sign_in("agent", &service.agent_password).await?;
    api.presence(&demo_agent, "offline").await?;
    api.call(
        api.http
            .patch(api.url(&format!("/api/admin/modules/{DEMO_MODULE}")))
            .bearer_auth(&admin)
            .json(&json!({"transcript_email": false})),
        "module patch",
    )
    .await?;

    // Idle agents first, filled exactly by the idle visitors' chats, so that every load
    // conversation goes to a load agent.
    let rss_empty_kib = service.memory_kib("VmRSS");
    let idle_agents = knobs.idle_agents();
    let setup = Instant::now();
    // Password hashing makes each creation slow; a few at once use both cores.
    let created: Vec<Result<(String, String)>> = futures::stream::iter(0..idle_agents)
        .map(|a| {
            let capacity =
                knobs.visitors / idle_agents + u64::from(a < knobs.visitors % idle_agents);
            let (api, admin) = (api.clone(), admin.clone());
            async move { api.agent(&admin, &format!("idle{a}"), capacity).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut idle_tokens = Vec::new();
    for agent in created {
        idle_tokens.push(agent?.0);
    }
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut starts = Vec::new();
    for v in 0..knobs.visitors {
        let (api, gate) = (api.clone(), gate.clone());
        starts.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            api.start_chat(1_000_000_000 + v).await
        }));
    }
    let mut idle_chats = Vec::new();
    for start in starts {
        idle_chats.push(start.await??);
    }
    // Wait until routing has given every idle chat to an idle agent.
    let idle_tokens = idle_tokens;
    loop {
        let mut held = 0;
        for token in &idle_tokens {
            let me = api
                .call(
                    api.http.get(api.url("/api/agent/me")).bearer_auth(token),
                    "me",
                )
                .await?;
            held += me["status"]["chats"].as_array().map_or(0, Vec::len) as u64;
        }
        if held >= knobs.visitors {
            break;
        }
        if setup.elapsed() > Duration::from_secs(600) {
            return Err(format!("only {held} idle chats assigned after 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let started_idle = setup.elapsed();
    println!(
        "setup: {idle_agents} idle agents and {} idle chats in {:.1} s",
        knobs.visitors,
        started_idle.as_secs_f64()
    );
    let rss_chats_kib = service.memory_kib("VmRSS");
    let head = api.head().await?;
    let mut idle_streams = Vec::new();
    for (chat, token, _) in &idle_chats {
        let (api, gate, counters) = (api.clone(), gate.clone(), counters.clone());
        let path = format!("/api/visitor/chats/{chat}/ws?token={token}&after={head}");
        idle_streams.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let ws = api.connect(&path).await?;
            counters.stream_opened();
            tokio::spawn(idle_stream(ws, counters));
            Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for stream in idle_streams {
        stream.await??;
    }
    // Let the service settle the upgrades before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = service.memory_kib("VmRSS");
    let per_connection_kib =
        rss_idle_kib.saturating_sub(rss_chats_kib) as f64 / knobs.visitors.max(1) as f64;
    println!(
        "idle: {} visitor streams open, RSS {} → {} → {} KiB (empty → chats → streams)",
        counters.visitor_streams_open.load(Ordering::Relaxed),
        rss_empty_kib,
        rss_chats_kib,
        rss_idle_kib
    );

    // The load agents and their streams.
    let mut agent_tokens = HashMap::new();
    let head = api.head().await?;
    let created: Vec<Result<(String, String)>> = futures::stream::iter(0..knobs.agents)
        .map(|a| {
            let (api, admin) = (api.clone(), admin.clone());
            let capacity = knobs.agent_capacity;
            async move { api.agent(&admin, &format!("load{a}"), capacity).await }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    for agent in created {
        let (token, id) = agent?;
        tokio::spawn(agent_stream(
            api.clone(),
            token.clone(),
            head,
            tracker.clone(),
            counters.clone(),
        ));
        agent_tokens.insert(id, token);
    }
    let agent_tokens = Arc::new(agent_tokens);

    // The baseline stream: the first idle chat gets a second stream that only pings.
    let (chat, token, _) = &idle_chats[0];
    let ping_path = format!("/api/visitor/chats/{chat}/ws?token={token}&after={head}");
    let stop = Arc::new(tokio::sync::Notify::new());
    let rest = Arc::new(Counters::default());
    let ws = api.connect(&ping_path).await?;
    let resting = tokio::spawn(pinger(ws, rest.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.notify_one();
    let ws = resting.await?;
    let (rest_p50, rest_p99, _) = percentiles(&mut lock(&rest.ping_us));
    let pinging = tokio::spawn(pinger(ws, counters.clone(), stop.clone()));

    // The load: conversation k starts at k / rate (or as soon as a slot frees when behind).
    let total = (knobs.rate * knobs.seconds as f64).round() as u64;
    let slots = Arc::new(Semaphore::new(
        usize::try_from(knobs.in_flight_max()).unwrap_or(usize::MAX),
    ));
    let begin = Instant::now();
    let progress = {
        let counters = counters.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "  {:.0} s: {} started, {} completed, {} failed",
                    begin.elapsed().as_secs_f64(),
                    counters.started.load(Ordering::Relaxed),
                    counters.completed.load(Ordering::Relaxed),
                    counters.failed.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for k in 0..total {
        let due = begin + Duration::from_secs_f64(k as f64 / knobs.rate);
        tokio::time::sleep_until(due.into()).await;
        let permit = slots.clone().acquire_owned().await?;
        if due.elapsed() > Duration::from_millis(100) {
            counters.behind_schedule.fetch_add(1, Ordering::Relaxed);
        }
        counters.started.fetch_add(1, Ordering::Relaxed);
        let (api, agents, tracker, counters) = (
            api.clone(),
            agent_tokens.clone(),
            tracker.clone(),
            counters.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match conversation(k, api, agents, tracker, counters.clone()).await {
                Ok(()) => counters.completed.fetch_add(1, Ordering::Relaxed),
                Err(error) => {
                    if counters.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("conversation {k} failed: {error}");
                    }
                    0
                }
            };
        }));
    }
    let started_in = begin.elapsed();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = begin.elapsed();
    progress.abort();
    stop.notify_one();
    let _ = pinging.await;
    tokio::time::sleep(DRAIN).await;
    let peak_kib = service.memory_kib("VmHWM");
    let (messages, lost, duplicated) = tracker.totals();

    let completed = counters.completed.load(Ordering::Relaxed);
    let conversations_per_s = completed as f64 / elapsed.as_secs_f64();
    let messages_per_s = messages as f64 / elapsed.as_secs_f64();
    let (d50, d99, dmax) = percentiles(&mut lock(&counters.latencies_us));
    let (p50, p99, pmax) = percentiles(&mut lock(&counters.ping_us));
    let (a50, a99, amax) = percentiles(&mut lock(&counters.assign_us));
    let peak_streams = counters.visitor_streams_peak.load(Ordering::Relaxed);

    println!(
        "\n### Service under load ({} idle visitors, {} agents, {}/s for {} s)\n",
        knobs.visitors, knobs.agents, knobs.rate, knobs.seconds
    );
    println!("| figure | measured | target | |\n| --- | ---: | ---: | --- |");
    println!(
        "| conversations started (all in {:.1} s) | {} | {} | |",
        started_in.as_secs_f64(),
        thousands(counters.started.load(Ordering::Relaxed)),
        thousands(total)
    );
    println!(
        "| conversations completed / failed | {} / {} | {} / 0 | {} |",
        thousands(completed),
        counters.failed.load(Ordering::Relaxed),
        thousands(total),
        verdict(completed == total)
    );
    println!(
        "| conversations/s (completed ÷ {:.1} s) | {conversations_per_s:.0} | {} | {} |",
        elapsed.as_secs_f64(),
        knobs.rate,
        verdict(conversations_per_s >= 0.95 * knobs.rate)
    );
    println!(
        "| messages/s (HTTP posts) | {messages_per_s:.0} | {:.0} | |",
        knobs.rate * MESSAGES_PER_CONVERSATION as f64
    );
    println!(
        "| visitor streams open at the peak | {} | 10,000 | the process allows {} streams in all, agents' included |",
        thousands(peak_streams),
        thousands(STREAMS_MAX)
    );
    println!(
        "| delivery p50 / p99 / max | {d50:.1} / {d99:.1} / {dmax:.0} ms | p99 ≤ 25 ms | {} |",
        verdict(d99 <= 25.0)
    );
    println!(
        "| baseline: ping/pong p50 / p99 / max, same run | {p50:.2} / {p99:.1} / {pmax:.0} ms | | at rest: {rest_p50:.2} / {rest_p99:.1} ms |"
    );
    println!(
        "| delivery ÷ ping/pong | p50 {:.1}× / p99 {:.1}× | | |",
        d50 / p50,
        d99 / p99
    );
    println!(
        "| start → assigned (seen by the visitor) p50 / p99 / max | {a50:.1} / {a99:.1} / {amax:.0} ms | | |"
    );
    println!(
        "| messages lost / duplicated | {lost} / {duplicated} (of {}) | 0 / 0 | {} |",
        thousands(messages),
        verdict(lost == 0 && duplicated == 0)
    );
    println!(
        "| messages later than {} s | {} | 0 | |",
        DELIVERY_WAIT.as_secs(),
        counters.late.load(Ordering::Relaxed)
    );
    println!(
        "| service peak RSS (VmHWM) | {:.0} MiB | | |",
        peak_kib as f64 / 1024.0
    );
    println!(
        "| memory per idle visitor stream | {per_connection_kib:.1} KiB | | RSS {:.0} → {:.0} MiB for {} streams |",
        rss_chats_kib as f64 / 1024.0,
        rss_idle_kib as f64 / 1024.0,
        thousands(knobs.visitors)
    );
    println!(
        "| memory per idle chat (started, assigned, no stream) | {:.1} KiB | | |",
        rss_chats_kib.saturating_sub(rss_empty_kib) as f64 / knobs.visitors.max(1) as f64
    );
    println!(
        "| behind schedule > 100 ms / agent stream reconnects / frames on idle streams | {} / {} / {} | | |",
        counters.behind_schedule.load(Ordering::Relaxed),
        counters.agent_reconnects.load(Ordering::Relaxed),
        counters.idle_unexpected_frames.load(Ordering::Relaxed)
    );
    println!(
        "\nThe generator (2 tokio workers) and the service share the machine's {} cores.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}

fn main() -> Result<()> {
    let knobs = Knobs::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(knobs))
}
