//! The audit side of the log (E5, X4): what an auditor runs against a stopped or running
//! deployment (`chat-audit`, [`cli`]) and the erasure operations the engine uses.
//!
//! - [`dump`]: the log as text or JSON lines, filtered by stream, type and time;
//! - [`verify`]: positions gap-free, versions in order, every event decodes and upcasts, the hash
//!   chain unbroken (chat-store's [`chat_store::verify`]), and every recorded redaction's key
//!   really destroyed;
//! - [`rebuild`]: every projection folded from scratch and compared with its stored checkpoint;
//! - [`state_at`]: one chat's or module's state as of any past instant;
//! - [`erase_contact`] and the redaction hook: crypto-shredding (docs/AUDIT.md).
//!
//! Every function takes the store **as written** (`raw`): the chain covers stored bytes, and
//! readers that need content wrap it with the engine's sealing ([`crate::engine::sealing`]).

pub mod cli;
mod dump;
mod erase;

pub use dump::{DUMP_FILTER_ENTRIES_MAX, DumpFilter, DumpFormat, dump};
pub(crate) use erase::shred_after_chat_command;
pub use erase::{Erasure, erase_contact, erases_content};

use crate::engine::{
    Aggregate, Board, Codec, DomainEvent, EngineError, PastChats, Projection, Statistics,
    latest_checkpoint, rebuild_until, sealing,
};
use chat_core::EventKind;
use chat_core::conversation::ChatEvent;
use chat_store::{
    EventStore, READ_COUNT_MAX, StoreError, StreamId, VAULT_KEYS_PER_CALL_MAX, VerifyOptions,
    VerifyReport,
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use uuid::Uuid;

/// A refused audit request or a failing store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An argument is malformed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// An argument breaks a named limit.
    #[error("limit exceeded: {limit} is {max}, got {actual}")]
    LimitExceeded {
        /// The limit's name.
        limit: &'static str,
        /// Its value.
        max: usize,
        /// What was asked.
        actual: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading through the engine's codec or followers failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

/// Most redacted messages whose keys [`verify`] checks (one vault call per
/// [`VAULT_KEYS_PER_CALL_MAX`]); past it the rest are counted, not checked.
pub const VERIFY_REDACTIONS_CHECKED_MAX: usize = 1_000_000;

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The log's verification (first bad record, if any).
    pub log: VerifyReport,
    /// Redactions recorded in the log.
    pub redactions: u64,
    /// Redacted messages whose key is still in the vault (a redaction recorded by a process
    /// that stopped before destroying the key): the content is still readable. Run the redaction
    /// again to finish it.
    pub unshredded: Vec<Uuid>,
}

impl AuditReport {
    /// Whether the log verified and every redaction is complete.
    pub fn is_ok(&self) -> bool {
        self.log.is_ok() && self.unshredded.is_empty()
    }
}

/// Verifies the log as written (see the module documentation).
pub async fn verify(raw: &Arc<dyn EventStore>) -> Result<AuditReport, AuditError> {
    let codec = Codec::default();
    let mut redacted = Vec::new();
    let mut redactions = 0u64;
    let log = chat_store::verify(raw.as_ref(), VerifyOptions::default(), |record| {
        let event = codec.decode(record).map_err(|e| e.to_string())?;
        if let DomainEvent::Chat {
            event: ChatEvent::MessageRedacted { message_id, .. },
            ..
        } = event
        {
            redactions += 1;
            if redacted.len() < VERIFY_REDACTIONS_CHECKED_MAX {
                redacted.push(message_id.as_uuid());
            }
        }
        Ok(())
    })
    .await?;
    let mut unshredded = Vec::new();
    if let Some(vault) = raw.key_vault() {
        for chunk in redacted.chunks(VAULT_KEYS_PER_CALL_MAX) {
            unshredded.extend(vault.keys(chunk).await?.into_keys());
        }
    }
    Ok(AuditReport {
        log,
        redactions,
        unshredded,
    })
}

/// How one projection's stored checkpoint compares with a rebuild from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// No checkpoint is stored.
    NoCheckpoint,
    /// The checkpoint's key was destroyed after a redaction or erasure: the engine rebuilds it.
    Erased,
    /// The checkpoint equals the fold of the log up to its position.
    Matches {
        /// The checkpoint's position.
        position: u64,
    },
    /// The checkpoint differs from the fold of the log up to its position.
    Differs {
        /// The checkpoint's position.
        position: u64,
    },
}

/// One line of [`rebuild`]'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionCheck {
    /// The projection's name.
    pub name: &'static str,
    /// The outcome.
    pub comparison: Comparison,
}

async fn compare<P: Projection>(
    sealed: &Arc<dyn EventStore>,
    codec: &Arc<Codec>,
) -> Result<ProjectionCheck, AuditError> {
    let comparison = match latest_checkpoint::<P>(sealed.as_ref(), codec).await? {
        None => Comparison::NoCheckpoint,
        Some((0, _)) => Comparison::Erased,
        Some((position, stored)) => {
            let rebuilt = rebuild_until::<P>(sealed.clone(), codec.clone(), position).await?;
            if rebuilt == stored {
                Comparison::Matches { position }
            } else {
                Comparison::Differs { position }
            }
        }
    };
    Ok(ProjectionCheck {
        name: P::NAME,
        comparison,
    })
}

/// Folds every projection (X1 board, X2 past chats, X3 statistics) from scratch up to its
/// checkpoint's position and compares it with the stored checkpoint.
pub async fn rebuild(raw: &Arc<dyn EventStore>) -> Result<Vec<ProjectionCheck>, AuditError> {
    let sealed = sealing(raw.clone());
    let codec = Arc::new(Codec::default());
    Ok(vec![
        compare::<Board>(&sealed, &codec).await?,
        compare::<PastChats>(&sealed, &codec).await?,
        compare::<Statistics>(&sealed, &codec).await?,
    ])
}

/// The state of the aggregate `D` in `stream` as of `at`: the fold of its events recorded at or
/// before `at` (each event's recorded-at is the decision's instant). Content whose key was
/// destroyed shows as erased, as it does everywhere else.
pub async fn state_at<D: Aggregate>(
    raw: &Arc<dyn EventStore>,
    stream: &str,
    at: DateTime<Utc>,
) -> Result<D::State, AuditError>
where
    D::Event: Serialize + DeserializeOwned + EventKind + Send + Sync,
    D::State: Default + Send + Sync + 'static,
{
    let stream = StreamId::new(stream).map_err(|e| AuditError::Invalid {
        field: "stream",
        reason: e.to_string(),
    })?;
    let sealed = sealing(raw.clone());
    let codec = Codec::default();
    let mut state = D::State::default();
    let mut from = 1;
    loop {
        let page = sealed.read_stream(&stream, from, READ_COUNT_MAX).await?;
        let Some(last) = page.last() else {
            return Ok(state);
        };
        from = last.stream_version + 1;
        for recorded in &page {
            if recorded.recorded_at > at {
                return Ok(state);
            }
            let event: D::Event = codec.decode_as(recorded)?;
            D::evolve(&mut state, &event);
        }
    }
}
