//! `dump`: the log as an auditor reads it, one event per line.

use super::AuditError;
use crate::engine::sealing;
use chat_store::{
    EVENT_TYPE_BYTES_MAX, EventStore, READ_COUNT_MAX, RecordedEvent, STREAM_ID_BYTES_MAX, link_hex,
};
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::Write;
use std::sync::Arc;

/// Most entries of one filter list (`--stream`, `--type`): filters are matched per event, so the
/// bound keeps a dump linear in the log.
pub const DUMP_FILTER_ENTRIES_MAX: usize = 100;

/// Which events a dump shows: each set filter must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// Streams: an exact stream id, or a prefix ending in `*` (`chat-*`). Empty: every stream.
    pub streams: Vec<String>,
    /// Event types, exact. Empty: every type.
    pub types: Vec<String>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl DumpFilter {
    /// Checks the filter's sizes: at most [`DUMP_FILTER_ENTRIES_MAX`] entries per list, each a
    /// valid stream id or event type length, and `from` before `to`.
    pub fn validate(&self) -> Result<(), AuditError> {
        for (limit, entries, bytes_max, field) in [
            (
                "DUMP_FILTER_ENTRIES_MAX",
                &self.streams,
                STREAM_ID_BYTES_MAX,
                "stream",
            ),
            (
                "DUMP_FILTER_ENTRIES_MAX",
                &self.types,
                EVENT_TYPE_BYTES_MAX,
                "type",
            ),
        ] {
            if entries.len() > DUMP_FILTER_ENTRIES_MAX {
                return Err(AuditError::LimitExceeded {
                    limit,
                    max: DUMP_FILTER_ENTRIES_MAX,
                    actual: entries.len(),
                });
            }
            for entry in entries {
                if entry.is_empty() || entry.len() > bytes_max {
                    return Err(AuditError::Invalid {
                        field,
                        reason: format!("{entry:?} must have 1 to {bytes_max} bytes"),
                    });
                }
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(AuditError::Invalid {
                field: "from",
                reason: format!("{from} is not before --to {to}"),
            });
        }
        Ok(())
    }

    fn matches(&self, record: &RecordedEvent) -> bool {
        let stream = record.stream_id.as_str();
        let stream_ok = self.streams.is_empty()
            || self.streams.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => stream.starts_with(prefix),
                None => stream == s,
            });
        stream_ok
            && (self.types.is_empty() || self.types.contains(&record.event_type))
            && self.from.is_none_or(|from| record.recorded_at >= from)
            && self.to.is_none_or(|to| record.recorded_at < to)
    }
}

/// How a dump prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    JsonLines,
}

/// The payload as JSON (MessagePack maps become objects; sealed values whose key is gone show
/// their placeholder).
fn payload_json(payload: &[u8]) -> serde_json::Value {
    match rmpv::decode::read_value(&mut &payload[..]) {
        Ok(value) => serde_json::to_value(&value).unwrap_or_else(|e| {
            serde_json::Value::String(format!("<payload not representable as JSON: {e}>"))
        }),
        Err(e) => serde_json::Value::String(format!("<payload is not MessagePack: {e}>")),
    }
}

/// Writes the events of the log that `filter` selects to `out`, opened with the store's keys
/// (redacted and erased content shows as erased); returns how many were written.
pub async fn dump(
    raw: &Arc<dyn EventStore>,
    filter: &DumpFilter,
    format: DumpFormat,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    filter.validate()?;
    let sealed = sealing(raw.clone());
    let mut written = 0;
    let mut position = 1;
    loop {
        let page = sealed.read_all(position, READ_COUNT_MAX).await?;
        let Some(last) = page.last() else {
            return Ok(written);
        };
        position = last.global_position + 1;
        for record in page.iter().filter(|r| filter.matches(r)) {
            let at = record
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            let chain = record.chain.as_ref().map(link_hex);
            let payload = payload_json(&record.payload);
            match format {
                DumpFormat::Text => writeln!(
                    out,
                    "#{} {at} {} v{} {} (schema {}) id {} chain {} {}",
                    record.global_position,
                    record.stream_id,
                    record.stream_version,
                    record.event_type,
                    record.schema_version,
                    record.event_id,
                    chain.as_deref().unwrap_or("-"),
                    payload
                )?,
                DumpFormat::JsonLines => {
                    let line = serde_json::json!({
                        "position": record.global_position,
                        "recorded_at": at,
                        "stream": record.stream_id.as_str(),
                        "version": record.stream_version,
                        "type": record.event_type,
                        "schema_version": record.schema_version,
                        "event_id": record.event_id,
                        "correlation_id": record.correlation_id,
                        "causation_id": record.causation_id,
                        "chain": chain,
                        "payload": payload,
                    });
                    writeln!(out, "{line}")?;
                }
            }
            written += 1;
        }
    }
}
