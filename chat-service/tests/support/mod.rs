//! Test support shared by the outbox and fan-out tests: a real SMTP listener and a real webhook
//! receiver on loopback TCP sockets, the sled and PostgreSQL stores, and a small driver that
//! decides chat-core commands and appends them through the engine's codec.
//!
//! The listener and the receiver are deliberately small hand-written servers: the point is a
//! real socket and a real protocol exchange with lettre and reqwest, and a record of exactly
//! what arrived (every request, failed ones included).

#![allow(dead_code, unreachable_pub)]

use chat_core::agent::{Agent, AgentCommand, AgentEvent, Presence};
use chat_core::conversation::{
    Admission, ChatCommand, ChatEvent, ChatSettings, Conversation, EndedBy, MessageBody, Origin,
    Party, StartChat,
};
use chat_core::{
    AgentId, ChatId, CommandId, ContactId, Decider, FieldValue, MessageId, ModuleId, PageData,
};
use chat_service::engine::{encode, event_id};
use chat_store::{
    EventStore, ExpectedVersion, PostgresStore, PostgresTestDatabase, READ_COUNT_MAX,
    RecordedEvent, SledStore, StreamAppend, StreamId,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use uuid::Uuid;

/// Longest a test waits for something asynchronous before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// Whether this is a CI run (more cases, no skipping).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Waits for `check` to hold, polling; panics with `what` after [`WAIT`].
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP

/// One mail as the listener received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// `MAIL FROM` address.
    pub envelope_from: String,
    /// `RCPT TO` addresses.
    pub recipients: Vec<String>,
    /// The message (headers and body), dot-unstuffed.
    pub data: String,
}

impl ReceivedMail {
    /// The first header named `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = &mut value {
                if line.starts_with(' ') || line.starts_with('\t') {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_owned());
            }
        }
        value
    }

    /// The body after the headers (quoted-printable soft breaks and `=XX` undone for ASCII).
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let joined = body.replace("=\r\n", "");
        let mut out = String::new();
        let bytes = joined.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'='
                && i + 2 < bytes.len()
                && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
            {
                out.push(b as char);
                i += 3;
                continue;
            }
            out.push(bytes[i] as char);
            i += 1;
        }
        out
    }
}

/// A minimal SMTP server on a loopback port: greets, accepts EHLO/HELO, MAIL, RCPT, DATA,
/// RSET, NOOP, QUIT, and records every accepted message. `reject_data` makes the next that many
/// DATA commands fail with a temporary error (451), after the message was transmitted.
#[derive(Clone)]
pub struct SmtpListener {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    reject_data: Arc<Mutex<usize>>,
    rejected: Arc<Mutex<usize>>,
}

impl SmtpListener {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let this = Self {
            addr: listener.local_addr().expect("addr"),
            mails: Arc::default(),
            reject_data: Arc::default(),
            rejected: Arc::default(),
        };
        let server = this.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(socket).await;
                });
            }
        });
        this
    }

    /// Fails the next `n` DATA commands with 451.
    pub fn reject_next(&self, n: usize) {
        *self.reject_data.lock().unwrap() = n;
    }

    /// How many DATA commands were refused.
    pub fn rejected(&self) -> usize {
        *self.rejected.lock().unwrap()
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.mails.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 test-smtp ESMTP ready\r\n").await?;
        let mut from = String::new();
        let mut recipients = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                write.write_all(b"250 test-smtp\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&command["MAIL FROM:".len()..]);
                recipients.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                recipients.push(address(&command["RCPT TO:".len()..]));
                write.write_all(b"250 OK\r\n").await?;
            } else if upper == "DATA" {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                let reject = {
                    let mut left = self.reject_data.lock().unwrap();
                    let reject = *left > 0;
                    *left = left.saturating_sub(1);
                    reject
                };
                if reject {
                    *self.rejected.lock().unwrap() += 1;
                    write.write_all(b"451 try again later\r\n").await?;
                } else {
                    self.mails.lock().unwrap().push(ReceivedMail {
                        envelope_from: from.clone(),
                        recipients: recipients.clone(),
                        data,
                    });
                    write.write_all(b"250 OK queued\r\n").await?;
                }
            } else if upper == "QUIT" {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            } else if upper == "RSET" || upper == "NOOP" {
                write.write_all(b"250 OK\r\n").await?;
            } else {
                write.write_all(b"502 not implemented\r\n").await?;
            }
        }
    }
}

fn address(text: &str) -> String {
    let text = text.trim();
    let end = text.find('>').unwrap_or(text.len());
    text[..end].trim_start_matches('<').to_owned()
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// One HTTP request as the receiver got it.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status the receiver answered.
    pub status: u16,
}

/// A minimal HTTP/1.1 server on a loopback port that records every request and answers 200,
/// except that the first `fail_first` requests *of the first delivery id it sees* get 500.
#[derive(Clone)]
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<ReceivedRequest>>>,
    fail_first: usize,
    first_delivery: Arc<Mutex<Option<(String, usize)>>>,
}

impl WebhookReceiver {
    pub async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let this = Self {
            addr: listener.local_addr().expect("addr"),
            requests: Arc::default(),
            fail_first,
            first_delivery: Arc::default(),
        };
        let server = this.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.serve(socket).await;
                });
            }
        });
        this
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/chat", self.addr)
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.requests.lock().unwrap().clone()
    }

    async fn serve(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(socket);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = BTreeMap::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let delivery = headers.get("x-chat-delivery").cloned().unwrap_or_default();
        let status = {
            let mut first = self.first_delivery.lock().unwrap();
            let entry = first.get_or_insert_with(|| (delivery.clone(), 0));
            if entry.0 == delivery && entry.1 < self.fail_first {
                entry.1 += 1;
                500
            } else {
                200
            }
        };
        self.requests.lock().unwrap().push(ReceivedRequest {
            method,
            path,
            headers,
            body,
            status,
        });
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let mut socket = reader.into_inner();
        socket
            .write_all(
                format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        socket.shutdown().await
    }
}

// ---------------------------------------------------------------------------------------------
// Stores

/// A store under test, reopenable like a restarted process.
pub enum Backend {
    Sled {
        dir: tempfile::TempDir,
        store: Option<Arc<SledStore>>,
    },
    Postgres {
        db: PostgresTestDatabase,
        config: chat_store::PostgresConfig,
        store: Option<Arc<PostgresStore>>,
    },
}

impl Backend {
    pub fn sled() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(dir.path()).expect("open sled");
        Self::Sled {
            dir,
            store: Some(Arc::new(store)),
        }
    }

    /// PostgreSQL on a fresh schema, or `None` (printed) when `CHAT_TEST_POSTGRES_URL` is unset
    /// outside CI.
    pub async fn postgres() -> Option<Self> {
        let db = PostgresTestDatabase::from_env()?;
        let config = db.fresh_config();
        let store = PostgresStore::open(config.clone())
            .await
            .expect("open postgres");
        Some(Self::Postgres {
            db,
            config,
            store: Some(Arc::new(store)),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sled { .. } => "sled",
            Self::Postgres { .. } => "postgres",
        }
    }

    pub fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Self::Sled { store, .. } => store.clone().expect("open") as Arc<dyn EventStore>,
            Self::Postgres { store, .. } => store.clone().expect("open") as Arc<dyn EventStore>,
        }
    }

    /// Closes the store (every other handle must be gone); `reopen` opens it again.
    pub fn close(&mut self) {
        match self {
            Self::Sled { store, .. } => {
                if let Some(open) = store.take() {
                    let Ok(old) = Arc::try_unwrap(open) else {
                        panic!("no other handle on the sled store may be left");
                    };
                    old.close();
                }
            }
            Self::Postgres { store, .. } => drop(store.take()),
        }
    }

    /// Closes the store (every other handle must be gone) and opens the same data again.
    pub async fn reopen(&mut self) {
        self.close();
        match self {
            Self::Sled { dir, store } => {
                *store = Some(Arc::new(SledStore::open(dir.path()).expect("reopen sled")));
            }
            Self::Postgres { config, store, .. } => {
                *store = Some(Arc::new(
                    PostgresStore::open(config.clone())
                        .await
                        .expect("reopen postgres"),
                ));
            }
        }
    }

    pub async fn cleanup(self) {
        if let Self::Postgres { db, config, store } = self {
            drop(store);
            let _ = db.drop_schema(config.schema_name()).await;
        }
    }
}

/// The backends to run a test on: sled always, PostgreSQL when configured.
pub async fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::sled()];
    if let Some(pg) = Backend::postgres().await {
        all.push(pg);
    }
    all
}

/// Every event of the log.
pub async fn read_log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let page = store
            .read_all(all.len() as u64 + 1, READ_COUNT_MAX)
            .await
            .expect("read_all");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

// ---------------------------------------------------------------------------------------------
// Driving chats (chat-core decides; the engine's codec encodes; the store appends)

/// Decides commands against the stored history and appends the events with the expected
/// version, like the engine does (used until a test needs the engine's routing or timers).
pub struct Driver {
    pub store: Arc<dyn EventStore>,
    next: std::sync::atomic::AtomicU64,
}

impl Driver {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// A fresh command id.
    pub fn command_id(&self) -> CommandId {
        CommandId::from_uuid(Uuid::now_v7())
    }

    /// A fresh message id.
    pub fn message_id(&self) -> MessageId {
        MessageId::from_uuid(Uuid::now_v7())
    }

    async fn history<E: serde::de::DeserializeOwned>(&self, stream: &StreamId) -> Vec<E> {
        self.store
            .read_stream(stream, 1, READ_COUNT_MAX)
            .await
            .expect("read stream")
            .iter()
            .map(|r| rmp_serde::from_slice(&r.payload).expect("decode"))
            .collect()
    }

    /// Decides `command` for `chat` and appends the result; returns the events.
    pub async fn chat(&self, chat: ChatId, command: ChatCommand) -> Vec<ChatEvent> {
        let stream = StreamId::new(chat.stream_name()).expect("stream");
        let history: Vec<ChatEvent> = self.history(&stream).await;
        let state = Conversation::replay(&history);
        let now = Utc::now();
        let events = Conversation::decide(&state, &command, now).expect("command accepted");
        if !events.is_empty() {
            let new = events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    encode(e, event_id(command.command_id(), i as u32), now, None, None)
                        .expect("encode")
                })
                .collect();
            self.store
                .append(&stream, ExpectedVersion::Exact(history.len() as u64), new)
                .await
                .expect("append")
                .expect("no conflict");
        }
        events
    }

    /// Decides an agent command and appends it.
    pub async fn agent(&self, agent: AgentId, command: AgentCommand) -> Vec<AgentEvent> {
        let stream = StreamId::new(agent.stream_name()).expect("stream");
        let history: Vec<AgentEvent> = self.history(&stream).await;
        let now = Utc::now();
        let events = Agent::decide(&Agent::replay(&history), &command, now).expect("accepted");
        if !events.is_empty() {
            let new = events
                .iter()
                .map(|e| encode(e, Uuid::now_v7(), now, None, None).expect("encode"))
                .collect();
            self.store
                .append(&stream, ExpectedVersion::Exact(history.len() as u64), new)
                .await
                .expect("append")
                .expect("no conflict");
        }
        events
    }

    /// Puts an agent online with room for chats.
    pub async fn online_agent(&self, agent: AgentId) {
        self.agent(agent, AgentCommand::SetCapacity { agent, capacity: 3 })
            .await;
        self.agent(
            agent,
            AgentCommand::SetPresence {
                agent,
                presence: Presence::Online,
            },
        )
        .await;
    }

    /// Assigns a queued chat: the chat's `AgentAssigned` and the agent's claim in one append.
    pub async fn assign(&self, chat: ChatId, agent: AgentId) {
        let chat_stream = StreamId::new(chat.stream_name()).expect("stream");
        let agent_stream = StreamId::new(agent.stream_name()).expect("stream");
        let chat_history: Vec<ChatEvent> = self.history(&chat_stream).await;
        let agent_history: Vec<AgentEvent> = self.history(&agent_stream).await;
        let now = Utc::now();
        let command = ChatCommand::Assign {
            command_id: self.command_id(),
            agent,
            manual_pick: false,
        };
        let chat_events = Conversation::decide(&Conversation::replay(&chat_history), &command, now)
            .expect("assign");
        let agent_events = Agent::decide(
            &Agent::replay(&agent_history),
            &AgentCommand::Claim { agent, chat },
            now,
        )
        .expect("claim");
        let encode_all = |events: &[ChatEvent]| -> Vec<_> {
            events
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    encode(e, event_id(command.command_id(), i as u32), now, None, None)
                        .expect("encode")
                })
                .collect()
        };
        self.store
            .append_multi(vec![
                StreamAppend {
                    stream_id: chat_stream,
                    expected: ExpectedVersion::Exact(chat_history.len() as u64),
                    events: encode_all(&chat_events),
                },
                StreamAppend {
                    stream_id: agent_stream,
                    expected: ExpectedVersion::Exact(agent_history.len() as u64),
                    events: agent_events
                        .iter()
                        .map(|e| encode(e, Uuid::now_v7(), now, None, None).expect("encode"))
                        .collect(),
                },
            ])
            .await
            .expect("append")
            .expect("no conflict");
    }

    /// Releases a chat from an agent (after an end).
    pub async fn release(&self, chat: ChatId, agent: AgentId) {
        self.agent(agent, AgentCommand::Release { agent, chat })
            .await;
    }

    /// Starts a chat with the given admission facts and settings.
    pub async fn start(
        &self,
        chat: ChatId,
        module: ModuleId,
        email: Option<&str>,
        form: &[(&str, &str)],
        settings: ChatSettings,
        within_working_hours: bool,
    ) -> Vec<ChatEvent> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let start = StartChat {
            command_id: self.command_id(),
            chat,
            module,
            contact: ContactId::from_uuid(Uuid::now_v7()),
            contact_email: email.map(str::to_owned),
            resume_token: format!("token-{n}"),
            page: PageData {
                firstname: Some("Ada".to_owned()),
                lastname: Some("Lovelace".to_owned()),
                message: Some("I need help with my order".to_owned()),
                vars: BTreeMap::new(),
            },
            form_answers: form
                .iter()
                .map(|(k, v)| ((*k).to_owned(), FieldValue::Text((*v).to_owned())))
                .collect(),
            routing_vars: BTreeMap::new(),
            origin: Origin::Widget,
            settings,
            admission: Admission {
                within_working_hours,
                open_chats: 0,
                open_chats_max: None,
                contact_blocked: false,
            },
        };
        self.chat(chat, ChatCommand::Start(Box::new(start))).await
    }

    /// Posts a text message.
    pub async fn say(&self, chat: ChatId, author: Party, text: &str) -> Vec<ChatEvent> {
        self.chat(
            chat,
            ChatCommand::PostMessage {
                command_id: self.command_id(),
                message_id: self.message_id(),
                author,
                body: MessageBody::text(text),
            },
        )
        .await
    }

    /// Ends the chat by the agent and releases it.
    pub async fn end_by_agent(&self, chat: ChatId, agent: AgentId) -> Vec<ChatEvent> {
        let events = self
            .chat(
                chat,
                ChatCommand::End {
                    command_id: self.command_id(),
                    by: EndedBy::Agent(agent),
                },
            )
            .await;
        self.release(chat, agent).await;
        events
    }

    /// Rates the ended chat.
    pub async fn rate(&self, chat: ChatId, score: u8) -> Vec<ChatEvent> {
        self.chat(
            chat,
            ChatCommand::Rate {
                command_id: self.command_id(),
                score,
                comment: Some("quick and kind".to_owned()),
            },
        )
        .await
    }
}

/// The instant used by tests that need one.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
