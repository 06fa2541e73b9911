//! E3 / C9 kill-and-restart: an engine process (this test binary re-executed with
//! `ENGINE_KILL_CHILD` set) runs traffic and prints every acknowledged command; the parent kills
//! it with SIGKILL mid-traffic, restarts an engine on the same data, and checks that no
//! acknowledged command was lost and that every projection (resumed from its checkpoint) equals a
//! fresh rebuild from the log.

mod engine_common;

use chat_core::conversation::{ChatCommand, MessageBody, Party};
use chat_core::{AgentId, CommandId, MessageId};
use chat_service::engine::{Board, EngineOptions, ManualClock, PastChats, Statistics, rebuild};
use chat_store::{EventStore, PostgresConfig, PostgresStore, SledStore};
use engine_common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

const CHILD_VAR: &str = "ENGINE_KILL_CHILD";
const ACKS_BEFORE_KILL: usize = 40;
const AGENT: AgentId = AgentId::from_u128(0xa1);

fn options() -> EngineOptions {
    EngineOptions {
        checkpoint_interval_events: 5,
    }
}

fn post_command(n: u128) -> ChatCommand {
    ChatCommand::PostMessage {
        command_id: CommandId::from_u128(0x9057_0000 + n),
        message_id: MessageId::from_u128(0x3e55_0000 + n),
        author: Party::Visitor,
        body: MessageBody::text(format!("message {n}")),
    }
}

async fn open_spec(spec: &str) -> Arc<dyn EventStore> {
    if let Some(path) = spec.strip_prefix("sled:") {
        Arc::new(SledStore::open(path).expect("sled opens"))
    } else {
        let rest = spec.strip_prefix("pg:").expect("a store spec");
        let (url, schema) = rest.rsplit_once('#').expect("url#schema");
        Arc::new(
            PostgresStore::open(PostgresConfig::new(url).schema(schema))
                .await
                .expect("postgres opens"),
        )
    }
}

/// The child: configure, then start chats and post messages forever, printing each ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_kill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_VAR) else {
        return; // Only meaningful as the child of the kill-and-restart test.
    };
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(open_spec(&spec).await, clock, options()).await;
    configure(&engine, true, &[AGENT]).await;
    online(&engine, AGENT, 100).await;
    let mut out = std::io::stdout();
    for n in 1.. {
        engine.start_chat(new_chat(n)).await.unwrap().unwrap();
        writeln!(out, "ack start {n}").unwrap();
        out.flush().unwrap();
        engine
            .chat(new_chat(n).chat, post_command(n))
            .await
            .unwrap()
            .unwrap();
        writeln!(out, "ack post {n}").unwrap();
        out.flush().unwrap();
    }
}

async fn e3_killed_engine_restarts_without_losing_acknowledged_commands(backend: Backend) {
    let spec = match &backend {
        Backend::Sled(dir) => format!("sled:{}", dir.path().display()),
        Backend::Postgres(database, config) => {
            format!("pg:{}#{}", database.url(), config.schema_name())
        }
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "e3_kill_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_VAR, &spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let mut acked: Vec<(String, u128)> = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < ACKS_BEFORE_KILL {
        let line = lines.next().expect("the child acknowledges").unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let (kind, n) = rest.split_once(' ').unwrap();
            acked.push((kind.to_owned(), n.parse().unwrap()));
        }
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix.
    child.wait().unwrap();
    // The child may have acknowledged more before dying: count those too.
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("ack ") {
            let (kind, n) = rest.split_once(' ').unwrap();
            acked.push((kind.to_owned(), n.parse().unwrap()));
        }
    }

    let store = backend.open().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(store.clone(), clock, options()).await;
    engine.settle().await.unwrap();
    for (kind, n) in &acked {
        let state = chat_state(&engine, new_chat(*n).chat).await;
        let command = match kind.as_str() {
            "start" => new_chat(*n).command_id,
            _ => CommandId::from_u128(0x9057_0000 + n),
        };
        assert!(
            state.accepted_commands.contains(&command),
            "acknowledged {kind} {n} was lost"
        );
    }
    let codec = engine.codec().clone();
    assert_eq!(
        engine.board(),
        rebuild::<Board>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        engine.past_chats(),
        rebuild::<PastChats>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    assert_eq!(
        engine.statistics(),
        rebuild::<Statistics>(store.clone(), codec.clone())
            .await
            .unwrap()
    );
    let started = acked.iter().filter(|(k, _)| k == "start").count();
    assert!(
        engine.board().live().active().len() + engine.board().live().waiting().len() >= started
    );
    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    drop(engine);
    drop(store);
    backend.clean_up().await;
}
on_every_store!(e3_killed_engine_restarts_without_losing_acknowledged_commands);
