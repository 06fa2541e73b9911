//! The `chat-audit` command line: `--store sled:PATH | postgres:URL` and the subcommands
//! `dump`, `verify`, `rebuild`, `state-at` (docs/AUDIT.md).

use super::{AuditError, Comparison, DumpFilter, DumpFormat};
use chat_core::config::ModuleDecider;
use chat_core::conversation::Conversation;
use chat_core::{ChatId, ModuleId};
use chat_store::{EventStore, PostgresConfig, PostgresStore, SledStore, link_hex};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// Audits an event log: dump, verify, rebuild projections, past states.
#[derive(Debug, Parser)]
#[command(name = "chat-audit", version)]
pub struct Cli {
    /// The log: `sled:PATH` (the service must be stopped: sled locks its directory) or
    /// `postgres:URL`.
    #[arg(long, env = "CHAT_AUDIT_STORE")]
    pub store: String,
    /// The PostgreSQL schema holding the log (default `chat_store`).
    #[arg(long)]
    pub schema: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints the log, one event per line (content opened with the store's keys).
    Dump(DumpArgs),
    /// Checks that positions have no gaps, versions are in order, every event decodes, the hash
    /// chain is unbroken and every redaction destroyed its key. Exit status 1 when not.
    Verify,
    /// Rebuilds every projection from the log and compares it with its stored checkpoint. Exit
    /// status 1 when one differs.
    Rebuild,
    /// Prints one chat's or module's state as of a past instant.
    StateAt(StateAtArgs),
}

/// `dump`'s options.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Only these streams (exact, or a prefix ending in `*`); repeatable.
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Only these event types; repeatable.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events recorded at or after this instant (RFC 3339).
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this instant (RFC 3339).
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
}

/// `state-at`'s options.
#[derive(Debug, Args)]
#[group(id = "target", required = true, multiple = false, args = ["chat", "module"])]
pub struct StateAtArgs {
    /// The chat's id.
    #[arg(long)]
    pub chat: Option<Uuid>,
    /// The module's id.
    #[arg(long)]
    pub module: Option<Uuid>,
    /// The instant (RFC 3339).
    #[arg(long)]
    pub at: DateTime<Utc>,
}

/// Where the log is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// A sled data directory.
    Sled(PathBuf),
    /// A PostgreSQL database and schema.
    Postgres {
        /// The URL.
        url: String,
        /// The schema, `None` for the default.
        schema: Option<String>,
    },
}

impl StoreSpec {
    /// Parses `sled:PATH` or `postgres:URL` (with `schema` from `--schema`).
    pub fn parse(store: &str, schema: Option<String>) -> Result<Self, AuditError> {
        let invalid = |reason: &str| AuditError::Invalid {
            field: "store",
            reason: reason.to_owned(),
        };
        if let Some(path) = store.strip_prefix("sled:") {
            if path.is_empty() {
                return Err(invalid("sled: needs a directory"));
            }
            if schema.is_some() {
                return Err(AuditError::Invalid {
                    field: "schema",
                    reason: "only a PostgreSQL store has a schema".into(),
                });
            }
            return Ok(Self::Sled(PathBuf::from(path)));
        }
        if let Some(url) = store.strip_prefix("postgres:") {
            if url.is_empty() {
                return Err(invalid("postgres: needs a URL"));
            }
            return Ok(Self::Postgres {
                url: url.to_owned(),
                schema,
            });
        }
        Err(invalid("expected sled:PATH or postgres:URL"))
    }

    /// Opens the store as written.
    pub async fn open(&self) -> Result<Arc<dyn EventStore>, AuditError> {
        Ok(match self {
            Self::Sled(path) => {
                let path = path.clone();
                let store = tokio::task::spawn_blocking(move || SledStore::open(path))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??;
                Arc::new(store)
            }
            Self::Postgres { url, schema } => {
                let mut config = PostgresConfig::new(url.clone()).pool_size(2);
                if let Some(schema) = schema {
                    config = config.schema(schema.clone());
                }
                Arc::new(PostgresStore::open(config).await?)
            }
        })
    }
}

/// Runs one command against an opened store, writing to `out`; returns the exit status (0: all
/// good, 1: the log or a projection failed its check).
pub async fn run(
    store: &Arc<dyn EventStore>,
    command: &Command,
    out: &mut dyn Write,
) -> Result<i32, AuditError> {
    match command {
        Command::Dump(args) => {
            let filter = DumpFilter {
                streams: args.streams.clone(),
                types: args.types.clone(),
                from: args.from,
                to: args.to,
            };
            let format = if args.json {
                DumpFormat::JsonLines
            } else {
                DumpFormat::Text
            };
            super::dump(store, &filter, format, out).await?;
            Ok(0)
        }
        Command::Verify => {
            let report = super::verify(store).await?;
            let log = &report.log;
            writeln!(
                out,
                "events verified: {} ({} written before the hash chain)",
                log.events, log.legacy_events
            )?;
            if let Some(link) = &log.last_link {
                writeln!(out, "last chain link: {}", link_hex(link))?;
            }
            writeln!(out, "redactions: {}", report.redactions)?;
            if let Some(bad) = &log.first_bad {
                let id = bad
                    .event_id
                    .map(|id| format!(" (event {id})"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "FAILED at position {}{id}: {}",
                    bad.position, bad.fault
                )?;
            }
            for message in &report.unshredded {
                writeln!(
                    out,
                    "FAILED: message {message} is redacted but its key still exists; redact it again"
                )?;
            }
            if report.is_ok() {
                writeln!(out, "OK")?;
            }
            Ok(if report.is_ok() { 0 } else { 1 })
        }
        Command::Rebuild => {
            let mut status = 0;
            for check in super::rebuild(store).await? {
                let line = match check.comparison {
                    Comparison::NoCheckpoint => "no checkpoint".to_owned(),
                    Comparison::Erased => {
                        "checkpoint erased by a redaction (rebuilt at start)".to_owned()
                    }
                    Comparison::Matches { position } => {
                        format!("matches the rebuild at position {position}")
                    }
                    Comparison::Differs { position } => {
                        status = 1;
                        format!("DIFFERS from the rebuild at position {position}")
                    }
                };
                writeln!(out, "{}: {line}", check.name)?;
            }
            Ok(status)
        }
        Command::StateAt(args) => {
            match (args.chat, args.module) {
                (Some(chat), None) => {
                    let state = super::state_at::<Conversation>(
                        store,
                        &ChatId(chat).stream_name(),
                        args.at,
                    )
                    .await?;
                    let json = serde_json::to_string_pretty(&state)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    writeln!(out, "{json}")?;
                }
                (None, Some(module)) => {
                    let state = super::state_at::<ModuleDecider>(
                        store,
                        &ModuleId(module).stream_name(),
                        args.at,
                    )
                    .await?;
                    writeln!(out, "{state:#?}")?;
                }
                _ => {
                    return Err(AuditError::Invalid {
                        field: "chat",
                        reason: "give exactly one of --chat and --module".into(),
                    });
                }
            }
            Ok(0)
        }
    }
}
