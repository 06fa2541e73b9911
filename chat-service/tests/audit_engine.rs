//! The audit guarantees end to end through the engine, on sled and PostgreSQL (E5, X4):
//! redaction and contact erasure leave no trace of the erased words on disk while the log still
//! shows who erased what and when and still verifies; `state-at` reproduces the live engine's
//! states; `rebuild` matches the stored checkpoints; `dump` filters and its limits.

mod engine_common;

use chat_core::config::{Contact, ContactCommand, ContactEvent, ContactField, ModuleDecider};
use chat_core::conversation::{ChatCommand, ChatEvent, Conversation, EndedBy, MessageBody, Party};
use chat_core::{AgentId, ChatId, CommandId, ContactId, FieldValue, MessageId, PageData};
use chat_service::audit::cli::{Command, DumpArgs, StateAtArgs, StoreSpec, run};
use chat_service::audit::{
    AuditError, Comparison, DUMP_FILTER_ENTRIES_MAX, DumpFilter, DumpFormat, dump, erase_contact,
    rebuild, state_at, verify,
};
use chat_service::engine::{ChatQuery, EngineOptions, ManualClock};
use chrono::TimeDelta;
use engine_common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const ANN: AgentId = AgentId::from_u128(0xa1);

const REDACTED_TEXT: &str = "SECRET-REDACT-ME-7731";
const AGENT_TEXT: &str = "agent reply keep-me 5521";
const VISITOR_TEXT: &str = "VISITOR-WORDS-SECRET-8812";
const FORM_TEXT: &str = "FORM-ANSWER-SECRET-2290";
const PAGE_NAME: &str = "Zanzibarova";
const COMMENT_TEXT: &str = "RATING-COMMENT-SECRET-4417";
const CONTACT_EMAIL: &str = "erase-me-6610@example.com";

fn post(n: u128, author: Party, text: &str) -> (MessageId, ChatCommand) {
    let message_id = MessageId::from_u128(0x3e55_0000 + n);
    (
        message_id,
        ChatCommand::PostMessage {
            command_id: CommandId::from_u128(0x9057_0000 + n),
            message_id,
            author,
            body: MessageBody::text(text),
        },
    )
}

fn options() -> EngineOptions {
    EngineOptions {
        // A checkpoint after every event: the past-chats index (with the words) reaches the log.
        checkpoint_interval_events: 1,
    }
}

/// Every byte of every file under `dir`.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let mut found = false;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found |= files_contain(&path, needle);
        } else {
            // sled's threads may still rename a temporary file (the head mark) meanwhile.
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("read {}: {e}", path.display()),
            };
            found |= bytes.windows(needle.len()).any(|w| w == needle);
        }
    }
    found
}

/// Whether any column of any table of the schema holds `needle`, as text or as bytes (a `bytea`
/// prints as hex in a row's text).
async fn database_contains(backend: &Backend, needle: &str) -> bool {
    let Backend::Postgres(database, config) = backend else {
        unreachable!("a PostgreSQL backend");
    };
    let schema = config.schema_name();
    let client = database.connect().await.expect("connect");
    let tables = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .expect("tables");
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let mut found = false;
    for table in tables {
        let table: String = table.get(0);
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {schema}.{table} AS r
                     WHERE r::text LIKE '%' || $1 || '%' OR r::text LIKE '%' || $2 || '%'"
                ),
                &[&needle, &hex],
            )
            .await
            .expect("search");
        found |= row.get::<_, i64>(0) > 0;
    }
    found
}

/// Searches the backend's storage (sled's files, or every table of the schema).
async fn stored_anywhere(backend: &Backend, needle: &str) -> bool {
    match backend {
        Backend::Sled(dir) => files_contain(dir.path(), needle.as_bytes()),
        Backend::Postgres(..) => database_contains(backend, needle).await,
    }
}

/// A started, routed chat of `contact`, with a visitor and an agent message.
async fn chat_with_messages(
    engine: &chat_service::engine::Engine,
    n: u128,
    contact: ContactId,
) -> (ChatId, MessageId, MessageId) {
    let mut new = new_chat(n);
    new.contact = contact;
    new.contact_email = Some(CONTACT_EMAIL.to_owned());
    new.page = PageData {
        firstname: Some(PAGE_NAME.to_owned()),
        ..PageData::default()
    };
    new.form_answers =
        BTreeMap::from([("question".to_owned(), FieldValue::Text(FORM_TEXT.into()))]);
    let chat = new.chat;
    engine.start_chat(new).await.unwrap().expect("started");
    engine.settle().await.unwrap();
    assert_eq!(chat_state(engine, chat).await.agent, Some(ANN), "routed");
    let (visitor, command) = post(
        n * 10 + 1,
        Party::Visitor,
        &format!("{VISITOR_TEXT} {REDACTED_TEXT}"),
    );
    engine
        .chat(chat, command)
        .await
        .unwrap()
        .expect("visitor posts");
    let (agent, command) = post(n * 10 + 2, Party::Agent(ANN), AGENT_TEXT);
    engine
        .chat(chat, command)
        .await
        .unwrap()
        .expect("agent posts");
    engine.settle().await.unwrap();
    (chat, visitor, agent)
}

fn search(engine: &chat_service::engine::Engine, text: &str) -> usize {
    engine
        .past_chats()
        .search(&ChatQuery {
            text: Some(text.to_lowercase()),
            ..ChatQuery::default()
        })
        .len()
}

/// X4: an agent redacts a visitor's message. Afterwards the engine (live and after a restart),
/// the search and a reader of the raw log show it as redacted, its key is gone, the log records
/// who redacted it and when, `verify` passes, and neither sled's files nor any table holds the
/// words — while unsealed data (the resume token) is found by the same search.
async fn x4_redaction_leaves_no_trace(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let raw = backend.open().await;
    let engine = start(raw.clone(), clock.clone(), options()).await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 2).await;
    let contact = ContactId::from_u128(0xc0);
    let (chat, visitor, agent) = chat_with_messages(&engine, 1, contact).await;
    assert_eq!(search(&engine, REDACTED_TEXT), 1, "indexed before");
    clock.advance(TimeDelta::seconds(30));
    let redact = ChatCommand::Redact {
        command_id: CommandId::from_u128(0x7ed),
        by: ANN,
        message_id: visitor,
    };
    engine
        .chat(chat, redact.clone())
        .await
        .unwrap()
        .expect("redacted");
    // A retry of the redaction is recognised and still makes sure the key is gone.
    engine.chat(chat, redact).await.unwrap().expect("retried");
    engine.settle().await.unwrap();

    let state = chat_state(&engine, chat).await;
    let message = state
        .messages
        .iter()
        .find(|m| m.id == visitor)
        .expect("kept");
    let redaction = message.redaction.expect("redaction recorded");
    assert_eq!(
        (redaction.by, redaction.at),
        (ANN, t0() + TimeDelta::seconds(30))
    );
    assert_eq!(message.for_readers().body, MessageBody::default());
    let kept = state.messages.iter().find(|m| m.id == agent).expect("kept");
    assert_eq!(kept.body.text, AGENT_TEXT);
    assert_eq!(search(&engine, REDACTED_TEXT), 0, "not searchable");
    assert_eq!(search(&engine, AGENT_TEXT), 1);
    let vault = raw.key_vault().expect("a vault");
    assert!(
        vault.keys(&[visitor.as_uuid()]).await.unwrap().is_empty(),
        "key destroyed"
    );
    // A reader of the raw log (no keys) sees placeholders, and the redaction's record.
    let events = chat_events(&raw, chat).await;
    assert!(
        events.iter().any(|e| matches!(e,
        ChatEvent::MessageRedacted { message_id, by, .. } if *message_id == visitor && *by == ANN))
    );
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    drop(engine);

    // After a restart, the state and the search come from the log: still redacted.
    let engine = start(raw.clone(), clock.clone(), options()).await;
    engine.settle().await.unwrap();
    let state = chat_state(&engine, chat).await;
    let message = state
        .messages
        .iter()
        .find(|m| m.id == visitor)
        .expect("kept");
    assert_eq!(
        message.body,
        MessageBody::default(),
        "the content is gone from the log"
    );
    assert!(message.redaction.is_some());
    assert_eq!(
        search(&engine, REDACTED_TEXT),
        0,
        "not searchable after a restart"
    );
    assert_eq!(search(&engine, AGENT_TEXT), 1);
    engine.shutdown().await;
    drop(engine);

    let report = verify(&raw).await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.redactions, 1);
    for check in rebuild(&raw).await.expect("rebuild") {
        assert!(
            matches!(
                check.comparison,
                Comparison::Matches { .. } | Comparison::Erased
            ),
            "{check:?}"
        );
    }
    drop(raw);
    assert!(
        stored_anywhere(&backend, "token-1").await,
        "the search finds plain data"
    );
    assert!(
        !stored_anywhere(&backend, REDACTED_TEXT).await,
        "no trace of the words"
    );
    assert!(!stored_anywhere(&backend, &REDACTED_TEXT.to_lowercase()).await);
    backend.clean_up().await;
}
on_every_store!(x4_redaction_leaves_no_trace);

/// X4: erasing a contact erases what it wrote in every chat — visitor messages, the page data,
/// form answers, its e-mail, rating comments, its contact fields — keeps the agents' words,
/// records who erased it and when, verifies, and leaves no trace on disk.
async fn x4_contact_erasure_leaves_no_trace(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let raw = backend.open().await;
    let engine = start(raw.clone(), clock.clone(), options()).await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 3).await;
    let contact = ContactId::from_u128(0xc1);
    let fields = BTreeMap::from([
        (ContactField::email(), CONTACT_EMAIL.to_owned()),
        (ContactField::firstname(), PAGE_NAME.to_owned()),
    ]);
    engine
        .handle::<Contact>(
            &contact.stream_name(),
            &ContactCommand::Create {
                id: contact,
                fields,
            },
        )
        .await
        .unwrap()
        .expect("contact created");
    let (first, visitor, agent) = chat_with_messages(&engine, 2, contact).await;
    let (second, _, _) = chat_with_messages(&engine, 3, contact).await;
    engine
        .chat(
            first,
            ChatCommand::End {
                command_id: CommandId::from_u128(0xe1d),
                by: EndedBy::Visitor,
            },
        )
        .await
        .unwrap()
        .expect("ended");
    engine
        .chat(
            first,
            ChatCommand::Rate {
                command_id: CommandId::from_u128(0x4a7e),
                score: 4,
                comment: Some(COMMENT_TEXT.to_owned()),
            },
        )
        .await
        .unwrap()
        .expect("rated");
    engine.settle().await.unwrap();
    assert_eq!(search(&engine, VISITOR_TEXT), 2);
    clock.advance(TimeDelta::seconds(60));
    let erasure = erase_contact(&engine, contact, ADMIN)
        .await
        .unwrap()
        .expect("erased");
    assert_eq!(erasure.chats, [first, second].into());
    assert!(erasure.keys_destroyed >= 5, "{erasure:?}");
    engine.settle().await.unwrap();

    let state = chat_state(&engine, first).await;
    assert_eq!(search(&engine, VISITOR_TEXT), 0, "not searchable");
    assert_eq!(search(&engine, AGENT_TEXT), 2, "the agents' words stay");
    let contact_state = engine
        .state::<Contact>(&contact.stream_name())
        .await
        .unwrap();
    assert!(contact_state.fields.is_empty());
    assert_eq!(contact_state.erased_by, Some(ADMIN));
    engine.shutdown().await;
    drop(engine);
    drop(state);

    // From the log (a restart): every copy of the contact's words reads as erased.
    let engine = start(raw.clone(), clock.clone(), options()).await;
    engine.settle().await.unwrap();
    let state = chat_state(&engine, first).await;
    let record = state.record.as_ref().expect("started");
    assert_eq!(record.page, PageData::default());
    assert!(record.form_answers.is_empty());
    assert_eq!(record.contact_email, None);
    let message = state
        .messages
        .iter()
        .find(|m| m.id == visitor)
        .expect("kept");
    assert_eq!(message.body, MessageBody::default());
    let message = state.messages.iter().find(|m| m.id == agent).expect("kept");
    assert_eq!(message.body.text, AGENT_TEXT);
    assert_eq!(search(&engine, VISITOR_TEXT), 0);
    assert_eq!(search(&engine, AGENT_TEXT), 2);
    let events = chat_events(&raw, first).await;
    assert!(events.iter().any(|e| matches!(
        e,
        ChatEvent::ChatRated {
            comment: None,
            score: 4,
            ..
        }
    )));
    engine.shutdown().await;
    drop(engine);
    let contact_events = raw
        .read_stream(
            &chat_store::StreamId::new(contact.stream_name()).unwrap(),
            1,
            100,
        )
        .await
        .unwrap();
    let erased: ContactEvent = chat_service::engine::Codec::default()
        .decode_as(contact_events.last().unwrap())
        .unwrap();
    assert_eq!(
        erased,
        ContactEvent::Erased {
            by: ADMIN,
            at: t0() + TimeDelta::seconds(60)
        },
        "the log shows who erased and when"
    );
    let report = verify(&raw).await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    drop(raw);
    assert!(
        stored_anywhere(&backend, "token-2").await,
        "the search finds plain data"
    );
    for secret in [
        VISITOR_TEXT,
        FORM_TEXT,
        PAGE_NAME,
        COMMENT_TEXT,
        CONTACT_EMAIL,
    ] {
        assert!(
            !stored_anywhere(&backend, secret).await,
            "no trace of {secret}"
        );
    }
    backend.clean_up().await;
}
on_every_store!(x4_contact_erasure_leaves_no_trace);

/// E5: the state of a chat and of a module recorded from the live engine at several instants is
/// what `state-at` computes from the log for each of them (and the command line prints it).
async fn e5_state_at_reproduces_the_live_states(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let raw = backend.open().await;
    let engine = start(raw.clone(), clock.clone(), options()).await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 2).await;
    let module_state = |engine: &chat_service::engine::Engine| {
        let engine = engine.clone();
        async move {
            engine
                .state::<ModuleDecider>(&MODULE.stream_name())
                .await
                .unwrap()
        }
    };
    let new = new_chat(4);
    let chat = new.chat;
    let mut recorded = Vec::new();
    let step = |clock: &ManualClock| clock.advance(TimeDelta::seconds(7));
    step(&clock);
    engine.start_chat(new).await.unwrap().expect("started");
    engine.settle().await.unwrap();
    recorded.push((
        chat_service::engine::Clock::now(clock.as_ref()),
        chat_state(&engine, chat).await,
        module_state(&engine).await,
    ));
    for n in 0..4u128 {
        step(&clock);
        let author = if n % 2 == 0 {
            Party::Visitor
        } else {
            Party::Agent(ANN)
        };
        let (_, command) = post(40 + n, author, &format!("message {n}"));
        engine.chat(chat, command).await.unwrap().expect("posted");
        if n == 1 {
            engine
                .handle::<ModuleDecider>(
                    &MODULE.stream_name(),
                    &chat_core::config::AdminCommand::new(
                        ADMIN,
                        chat_core::config::ModuleCommand::AddTag {
                            tag: "audited".into(),
                        },
                    ),
                )
                .await
                .unwrap()
                .expect("tag added");
        }
        engine.settle().await.unwrap();
        recorded.push((
            chat_service::engine::Clock::now(clock.as_ref()),
            chat_state(&engine, chat).await,
            module_state(&engine).await,
        ));
    }
    step(&clock);
    engine
        .chat(
            chat,
            ChatCommand::End {
                command_id: CommandId::from_u128(0xe2d),
                by: EndedBy::Agent(ANN),
            },
        )
        .await
        .unwrap()
        .expect("ended");
    engine.settle().await.unwrap();
    recorded.push((
        chat_service::engine::Clock::now(clock.as_ref()),
        chat_state(&engine, chat).await,
        module_state(&engine).await,
    ));
    engine.shutdown().await;
    drop(engine);

    for (at, chat_then, module_then) in &recorded {
        let replayed = state_at::<Conversation>(&raw, &chat.stream_name(), *at)
            .await
            .expect("state at");
        assert_eq!(&replayed, chat_then, "chat at {at}");
        let replayed = state_at::<ModuleDecider>(&raw, &MODULE.stream_name(), *at)
            .await
            .expect("state at");
        assert_eq!(&replayed, module_then, "module at {at}");
    }
    // Before the chat started it had no state.
    let before = state_at::<Conversation>(&raw, &chat.stream_name(), t0())
        .await
        .unwrap();
    assert_eq!(before, Default::default());
    // The command line, for one instant picked at random.
    let pick = random_index(recorded.len());
    let (at, chat_then, _) = &recorded[pick];
    let mut out = Vec::new();
    let status = run(
        &raw,
        &Command::StateAt(StateAtArgs {
            chat: Some(chat.as_uuid()),
            module: None,
            at: *at,
        }),
        &mut out,
    )
    .await
    .expect("state-at runs");
    assert_eq!(status, 0);
    let printed: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(printed, serde_json::to_value(chat_then).unwrap());
    drop(raw);
    backend.clean_up().await;
}
on_every_store!(e5_state_at_reproduces_the_live_states);

/// A random index below `len`, from the OS (the test checks every instant, and the command
/// line for one picked at random).
fn random_index(len: usize) -> usize {
    (getrandom::u64().expect("OS randomness") % len as u64) as usize
}

/// E5: `dump` prints the selected events as JSON lines and text, `verify` and `rebuild` through
/// the command line, and the dump filter's limits at and past them.
async fn e5_dump_verify_and_rebuild_from_the_command_line(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let raw = backend.open().await;
    let engine = start(raw.clone(), clock.clone(), options()).await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 2).await;
    clock.advance(TimeDelta::seconds(60));
    let contact = ContactId::from_u128(0xc5);
    let (chat, _, _) = chat_with_messages(&engine, 5, contact).await;
    engine.shutdown().await;
    drop(engine);

    let filter = DumpFilter {
        streams: vec!["chat-*".into()],
        types: vec!["MessagePosted".into()],
        from: Some(t0() + TimeDelta::seconds(30)),
        to: None,
    };
    let mut out = Vec::new();
    let written = dump(&raw, &filter, DumpFormat::JsonLines, &mut out)
        .await
        .expect("dump");
    assert_eq!(written, 2);
    let lines: Vec<serde_json::Value> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["type"], "MessagePosted");
        assert_eq!(line["stream"], chat.stream_name());
        assert_eq!(line["chain"].as_str().map(str::len), Some(64));
    }
    assert!(
        lines[1].to_string().contains(AGENT_TEXT),
        "opened with the keys"
    );
    // Before the chat's time window: nothing.
    let early = DumpFilter {
        to: Some(t0() + TimeDelta::seconds(30)),
        types: vec!["MessagePosted".into()],
        ..DumpFilter::default()
    };
    let mut out = Vec::new();
    assert_eq!(
        dump(&raw, &early, DumpFormat::Text, &mut out)
            .await
            .unwrap(),
        0
    );
    let mut out = Vec::new();
    let all = dump(&raw, &DumpFilter::default(), DumpFormat::Text, &mut out)
        .await
        .unwrap();
    assert_eq!(
        all,
        raw.head_position().await.unwrap(),
        "one line per event"
    );

    let mut out = Vec::new();
    assert_eq!(run(&raw, &Command::Verify, &mut out).await.unwrap(), 0);
    assert!(String::from_utf8(out).unwrap().contains("OK"));
    let mut out = Vec::new();
    assert_eq!(run(&raw, &Command::Rebuild, &mut out).await.unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    for name in ["board", "past-chats", "statistics"] {
        assert!(text.contains(&format!("{name}: matches")), "{text}");
    }
    // Limits: DUMP_FILTER_ENTRIES_MAX entries pass, one more is refused; so are bad entries.
    let many = |n: usize| (0..n).map(|i| format!("s-{i}")).collect::<Vec<_>>();
    let mut out = Vec::new();
    let at_limit = DumpFilter {
        streams: many(DUMP_FILTER_ENTRIES_MAX),
        types: many(DUMP_FILTER_ENTRIES_MAX),
        ..DumpFilter::default()
    };
    assert_eq!(
        dump(&raw, &at_limit, DumpFormat::Text, &mut out)
            .await
            .unwrap(),
        0
    );
    for past in [
        DumpFilter {
            streams: many(DUMP_FILTER_ENTRIES_MAX + 1),
            ..DumpFilter::default()
        },
        DumpFilter {
            types: many(DUMP_FILTER_ENTRIES_MAX + 1),
            ..DumpFilter::default()
        },
    ] {
        assert!(matches!(
            dump(&raw, &past, DumpFormat::Text, &mut out).await,
            Err(AuditError::LimitExceeded {
                limit: "DUMP_FILTER_ENTRIES_MAX",
                ..
            })
        ));
    }
    let long = DumpFilter {
        types: vec!["T".repeat(chat_store::EVENT_TYPE_BYTES_MAX + 1)],
        ..DumpFilter::default()
    };
    assert!(matches!(
        dump(&raw, &long, DumpFormat::Text, &mut out).await,
        Err(AuditError::Invalid { field: "type", .. })
    ));
    let backwards = DumpFilter {
        from: Some(t0()),
        to: Some(t0()),
        ..DumpFilter::default()
    };
    assert!(matches!(
        dump(&raw, &backwards, DumpFormat::Text, &mut out).await,
        Err(AuditError::Invalid { field: "from", .. })
    ));
    let mut out = Vec::new();
    let args = DumpArgs {
        json: false,
        streams: vec![chat.stream_name()],
        types: vec![],
        from: None,
        to: None,
    };
    run(&raw, &Command::Dump(args), &mut out).await.unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .lines()
            .all(|l| l.contains(&chat.stream_name()))
    );
    drop(raw);
    backend.clean_up().await;
}
on_every_store!(e5_dump_verify_and_rebuild_from_the_command_line);

/// The `--store` argument: `sled:PATH` or `postgres:URL`, anything else a named error.
#[test]
fn e5_store_argument_is_parsed_or_refused() {
    assert_eq!(
        StoreSpec::parse("sled:data/events", None).unwrap(),
        StoreSpec::Sled("data/events".into())
    );
    assert_eq!(
        StoreSpec::parse("postgres:postgres://u@h/db", Some("s".into())).unwrap(),
        StoreSpec::Postgres {
            url: "postgres://u@h/db".into(),
            schema: Some("s".into())
        }
    );
    for bad in ["memory", "sled:", "postgres:", "mysql:x"] {
        assert!(
            matches!(
                StoreSpec::parse(bad, None),
                Err(AuditError::Invalid { field: "store", .. })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        StoreSpec::parse("sled:x", Some("s".into())),
        Err(AuditError::Invalid {
            field: "schema",
            ..
        })
    ));
}
