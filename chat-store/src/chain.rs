//! Tamper evidence: a global hash chain over the log, and [`verify`], which walks it.
//!
//! Every record stores a link: SHA-256 over a domain tag, the previous record's link and a
//! canonical encoding of the record (position, stream, version, id, type, schema version,
//! recorded-at, correlation, causation, payload). A store computes it at append, under the same
//! ordering that assigns global positions (the memory store's lock, the sled writer thread, the
//! PostgreSQL head-row lock), so the chain follows commit order. Changing, removing or
//! reordering any stored byte breaks the link of that record (or of the next one), and
//! [`verify`] names the first position where it breaks.
//!
//! The chain covers payload bytes as stored. Sealed content ([`crate::seal`]) is stored as
//! ciphertext, so destroying its key (a legitimate redaction) changes nothing the chain covers.
//!
//! Records written before the chain existed carry no link ("legacy"); they may only form a prefix
//! of the log. The first chained record links to [`GENESIS_LINK`], and every record after a
//! chained one must be chained too, so stripping links is itself detected.

use crate::error::StoreError;
use crate::store::EventStore;
use crate::types::{GlobalPosition, READ_COUNT_MAX, RecordedEvent, StreamId, StreamVersion};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One link of the chain: SHA-256 bytes.
pub type ChainLink = [u8; 32];

/// What the first chained record links to.
pub const GENESIS_LINK: ChainLink = [0; 32];

/// The domain tag hashed first, so a link can never be mistaken for another SHA-256 use.
const CHAIN_TAG: &[u8] = b"chat-store/chain/1";

/// Events [`verify`] reads per page.
pub const VERIFY_PAGE_EVENTS: usize = 1_000;

/// Most distinct streams [`verify`] tracks versions for in memory (one entry per stream).
/// Bounds the memory of a verification; a larger log is verified with
/// [`VerifyOptions::streams_max`] raised.
pub const VERIFY_STREAMS_MAX: usize = 10_000_000;

/// The link of `record` after `previous`.
pub fn chain_link(previous: &ChainLink, record: &RecordedEvent) -> ChainLink {
    let mut hash = Sha256::new();
    hash.update(CHAIN_TAG);
    hash.update(previous);
    hash.update(record.global_position.to_be_bytes());
    let stream = record.stream_id.as_str().as_bytes();
    hash.update((stream.len() as u64).to_be_bytes());
    hash.update(stream);
    hash.update(record.stream_version.to_be_bytes());
    hash.update(record.event_id.as_bytes());
    hash.update((record.event_type.len() as u64).to_be_bytes());
    hash.update(record.event_type.as_bytes());
    hash.update(record.schema_version.to_be_bytes());
    hash.update(record.recorded_at.timestamp().to_be_bytes());
    hash.update(record.recorded_at.timestamp_subsec_nanos().to_be_bytes());
    for id in [record.correlation_id, record.causation_id] {
        match id {
            None => hash.update([0]),
            Some(id) => {
                hash.update([1]);
                hash.update(id.as_bytes());
            }
        }
    }
    hash.update((record.payload.len() as u64).to_be_bytes());
    hash.update(&record.payload);
    hash.finalize().into()
}

/// Links `records` (consecutive, in position order) after `previous`, setting each one's
/// `chain`; returns the last link. Stores call it under their ordering lock.
pub(crate) fn link_all(previous: Option<ChainLink>, records: &mut [RecordedEvent]) -> ChainLink {
    let mut link = previous.unwrap_or(GENESIS_LINK);
    for record in records {
        link = chain_link(&link, record);
        record.chain = Some(link);
    }
    link
}

/// Lowercase hex of a link, for reports and dumps.
pub fn link_hex(link: &ChainLink) -> String {
    link.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why [`verify`] stopped at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The store could not read the record (checksum, framing, a missing record…).
    Unreadable {
        /// The store's reason.
        reason: String,
    },
    /// `read_all` skipped a position: the record at `found` came where `position` was due.
    Gap {
        /// The position found instead.
        found: GlobalPosition,
    },
    /// A stream's versions do not go 1, 2, 3 … in position order.
    VersionOutOfOrder {
        /// The stream.
        stream: StreamId,
        /// The version due.
        expected: StreamVersion,
        /// The version found.
        found: StreamVersion,
    },
    /// The stored link is not the hash of the record after the previous link: this record (or
    /// the one before it) was altered.
    ChainMismatch {
        /// The link stored with the record (`None`: a legacy record after chained ones).
        stored: Option<ChainLink>,
        /// The link recomputed from the stored bytes.
        computed: ChainLink,
    },
    /// The caller's decoder refused the event (it does not decode or upcast).
    Undecodable {
        /// The decoder's reason.
        reason: String,
    },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable { reason } => write!(f, "unreadable: {reason}"),
            Self::Gap { found } => write!(f, "gap: the log continues at position {found}"),
            Self::VersionOutOfOrder {
                stream,
                expected,
                found,
            } => write!(
                f,
                "stream {stream} has version {found} where version {expected} was due"
            ),
            Self::ChainMismatch { stored, computed } => write!(
                f,
                "hash chain mismatch: stored {}, computed {} (the record or its predecessor was altered)",
                stored.as_ref().map_or_else(|| "none".to_owned(), link_hex),
                link_hex(computed)
            ),
            Self::Undecodable { reason } => write!(f, "does not decode: {reason}"),
        }
    }
}

/// The first bad record found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// Its global position.
    pub position: GlobalPosition,
    /// Its event id, when the record could be read.
    pub event_id: Option<uuid::Uuid>,
    /// What is wrong.
    pub fault: Fault,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked and found good (before the first bad one).
    pub events: u64,
    /// Of those, records written before the chain existed (a prefix of the log, not
    /// tamper-evident).
    pub legacy_events: u64,
    /// The link of the last good record (the value to write down to detect a later truncation).
    pub last_link: Option<ChainLink>,
    /// The first bad record; `None` when the whole log verified.
    pub first_bad: Option<BadRecord>,
}

impl VerifyReport {
    /// Whether the whole log verified.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Bounds of one verification.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// Most distinct streams tracked (default [`VERIFY_STREAMS_MAX`]); past it verification
    /// fails with `LimitExceeded` rather than using unbounded memory.
    pub streams_max: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            streams_max: VERIFY_STREAMS_MAX,
        }
    }
}

/// Walks the whole log with `read_all` and checks that positions have no gaps, every stream's
/// versions go 1, 2, 3 … in position order, every record's link is the hash of the record after
/// the previous link, and `decode` accepts every event. Stops at the first bad record and names
/// it in the report. An error is returned only for a failing backend or a broken limit; damage is
/// a report, not an error.
///
/// Give it the store as written (not a [`crate::SealedStore`]): the chain covers stored bytes.
pub async fn verify(
    store: &dyn EventStore,
    options: VerifyOptions,
    mut decode: impl FnMut(&RecordedEvent) -> Result<(), String>,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        events: 0,
        legacy_events: 0,
        last_link: None,
        first_bad: None,
    };
    let mut versions: BTreeMap<StreamId, StreamVersion> = BTreeMap::new();
    let mut position: GlobalPosition = 1;
    let page_size = VERIFY_PAGE_EVENTS.min(READ_COUNT_MAX);
    loop {
        let page = match store.read_all(position, page_size).await {
            Ok(page) => page,
            Err(StoreError::Corrupt {
                position: at,
                reason,
            }) => {
                report.first_bad = Some(BadRecord {
                    position: if at == 0 { position } else { at },
                    event_id: None,
                    fault: Fault::Unreadable { reason },
                });
                return Ok(report);
            }
            Err(error) => return Err(error),
        };
        if page.is_empty() {
            return Ok(report);
        }
        for record in &page {
            let bad = |fault| BadRecord {
                position,
                event_id: Some(record.event_id),
                fault,
            };
            if record.global_position != position {
                report.first_bad = Some(bad(Fault::Gap {
                    found: record.global_position,
                }));
                return Ok(report);
            }
            let due = versions.get(&record.stream_id).copied().unwrap_or(0) + 1;
            if record.stream_version != due {
                report.first_bad = Some(bad(Fault::VersionOutOfOrder {
                    stream: record.stream_id.clone(),
                    expected: due,
                    found: record.stream_version,
                }));
                return Ok(report);
            }
            match (record.chain, report.last_link) {
                (None, None) => report.legacy_events += 1,
                (stored, previous) => {
                    let computed = chain_link(&previous.unwrap_or(GENESIS_LINK), record);
                    if stored != Some(computed) {
                        report.first_bad = Some(bad(Fault::ChainMismatch { stored, computed }));
                        return Ok(report);
                    }
                    report.last_link = Some(computed);
                }
            }
            if let Err(reason) = decode(record) {
                report.first_bad = Some(bad(Fault::Undecodable { reason }));
                return Ok(report);
            }
            if !versions.contains_key(&record.stream_id) && versions.len() >= options.streams_max {
                return Err(StoreError::LimitExceeded {
                    limit: "VERIFY_STREAMS_MAX",
                    max: options.streams_max,
                    actual: versions.len() + 1,
                });
            }
            versions.insert(record.stream_id.clone(), record.stream_version);
            report.events += 1;
            position += 1;
        }
    }
}
