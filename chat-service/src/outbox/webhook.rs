//! Outgoing webhooks (V5): the JSON body of a delivery, its HMAC-SHA256 signature, and the POST.
//!
//! The signature scheme is the common one (timestamp + body, so a captured request cannot be
//! replayed later with a fresh time): the header `X-Chat-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is HMAC-SHA256(secret, "<t>.<body>"). A receiver recomputes it over the raw
//! body, compares in constant time, and refuses timestamps too far from its clock
//! ([`verify_signature`] does exactly that; docs/OUTBOX.md shows it in a few lines for other
//! languages). `X-Chat-Delivery` is the intent id: the same on every retry, so a receiver that
//! stores it can drop duplicates.

use super::intent::Intent;
use super::settings::WebhookEventKind;
use chat_core::conversation::{ChatEvent, ChatRecord};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::fmt;

/// Largest webhook body, in bytes. Events are at most 1 MiB of MessagePack; JSON of the largest
/// (`CaseCreated` with 100 messages) stays well below. A larger body is not sent: the delivery
/// gives up with this limit named.
pub const WEBHOOK_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// Shortest webhook secret, in bytes (128 bits).
pub const WEBHOOK_SECRET_BYTES_MIN: usize = 16;
/// Longest webhook secret, in bytes (HMAC-SHA256's block size; longer keys are hashed anyway).
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 64;
/// The header carrying the delivery id.
pub const DELIVERY_HEADER: &str = "X-Chat-Delivery";
/// The header carrying the event kind.
pub const EVENT_HEADER: &str = "X-Chat-Event";
/// The header carrying `t=<unix seconds>,v1=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "X-Chat-Signature";
/// The header carrying the attempt number (1 for the first).
pub const ATTEMPT_HEADER: &str = "X-Chat-Attempt";

/// The secret one target's deliveries are signed with. Runtime configuration, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A secret of [`WEBHOOK_SECRET_BYTES_MIN`]..=[`WEBHOOK_SECRET_BYTES_MAX`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, super::OutboxError> {
        let bytes = bytes.into();
        if bytes.len() < WEBHOOK_SECRET_BYTES_MIN {
            return Err(super::OutboxError::Config(format!(
                "webhook secret is {} bytes, shorter than WEBHOOK_SECRET_BYTES_MIN = \
                 {WEBHOOK_SECRET_BYTES_MIN}",
                bytes.len()
            )));
        }
        if bytes.len() > WEBHOOK_SECRET_BYTES_MAX {
            return Err(super::OutboxError::LimitExceeded {
                field: "webhook secret".to_owned(),
                limit: "WEBHOOK_SECRET_BYTES_MAX",
                max: WEBHOOK_SECRET_BYTES_MAX,
                actual: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// The JSON body of one delivery.
#[derive(Debug, Serialize)]
pub struct WebhookBody<'a> {
    /// The stable delivery id (the intent id).
    pub delivery_id: String,
    /// The kind's wire name, e.g. `chat.message`.
    pub event: &'static str,
    /// The chat.
    pub chat_id: String,
    /// The event's global position: receivers order deliveries by it.
    pub position: u64,
    /// The event's id in the log.
    pub event_id: String,
    /// When the event happened.
    pub occurred_at: DateTime<Utc>,
    /// The chat event itself, as recorded.
    pub data: &'a ChatEvent,
    /// For `chat.offline_message`: the chat record (contact, e-mail, form answers, page data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_message: Option<&'a ChatRecord>,
}

/// Encodes the body of a webhook intent; `Err` names the limit when it is too large.
pub(crate) fn body(
    intent: &Intent,
    kind: WebhookEventKind,
    event: &ChatEvent,
    record: Option<&ChatRecord>,
) -> Result<Vec<u8>, String> {
    let chat_id = intent
        .source
        .stream
        .split_once('-')
        .map_or(intent.source.stream.as_str(), |(_, id)| id)
        .to_owned();
    let body = WebhookBody {
        delivery_id: intent.id.to_string(),
        event: kind.wire_name(),
        chat_id,
        position: intent.source.position,
        event_id: intent.source.event_id.to_string(),
        occurred_at: intent.source.at,
        data: event,
        offline_message: (kind == WebhookEventKind::OfflineMessage)
            .then_some(record)
            .flatten(),
    };
    let bytes = serde_json::to_vec(&body).map_err(|e| format!("json: {e}"))?;
    if bytes.len() > WEBHOOK_BODY_BYTES_MAX {
        return Err(format!(
            "body is {} bytes, over WEBHOOK_BODY_BYTES_MAX = {WEBHOOK_BODY_BYTES_MAX}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// HMAC-SHA256(secret, "<timestamp>.<body>") in lower-case hex.
pub(crate) fn signature(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    hex(&mac(secret, timestamp, body).finalize().into_bytes())
}

fn mac(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Chat-Signature` header value for a body sent at `timestamp`.
pub fn signature_header(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// Why a signature does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `t=<digits>,v1=<64 hex digits>`.
    #[error("malformed X-Chat-Signature header")]
    Malformed,
    /// The timestamp is further than the tolerance from the receiver's clock.
    #[error("signature timestamp {timestamp} is more than {tolerance_s} s from now")]
    Stale {
        /// The header's timestamp.
        timestamp: i64,
        /// The tolerance.
        tolerance_s: i64,
    },
    /// The HMAC does not match the body.
    #[error("signature does not match the body")]
    Mismatch,
}

/// Verifies a received delivery: the header's HMAC over the raw body, compared in constant time,
/// and its timestamp within `tolerance_s` of `now` (300 s is usual).
pub fn verify_signature(
    secret: &WebhookSecret,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given = unhex(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return Err(SignatureError::Malformed);
    };
    if (now.timestamp() - timestamp).abs() > tolerance_s {
        return Err(SignatureError::Stale {
            timestamp,
            tolerance_s,
        });
    }
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// POSTs one signed body; `Ok` carries the status, `Err` why it failed (non-2xx included).
pub(crate) async fn post(
    client: &reqwest::Client,
    (url, kind): (&str, WebhookEventKind),
    intent: &Intent,
    attempt: u32,
    secret: &WebhookSecret,
    body: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let timestamp = now.timestamp();
    let header = signature_header(secret, timestamp, &body);
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, intent.id.to_string())
        .header(EVENT_HEADER, kind.wire_name())
        .header(ATTEMPT_HEADER, attempt.to_string())
        .header(SIGNATURE_HEADER, header)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("http: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(format!("http {}", status.as_u16()))
    } else {
        Err(format!("http status {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::intent::{IntentId, IntentKind, Source};
    use chat_core::conversation::{ChatMessage, MessageBody, Party};
    use chat_core::{CommandId, MessageId};
    use uuid::Uuid;

    fn message_of(text_bytes: usize) -> ChatEvent {
        ChatEvent::MessagePosted {
            command_id: CommandId::from_u128(1),
            message: Box::new(ChatMessage {
                id: MessageId::from_u128(2),
                episode: 1,
                author: Party::Visitor,
                at: DateTime::<Utc>::UNIX_EPOCH,
                body: MessageBody::text("x".repeat(text_bytes)),
                redaction: None,
            }),
        }
    }

    #[test]
    fn v5_a_body_over_webhook_body_bytes_max_is_refused_with_the_limit_named() {
        let intent = Intent {
            id: IntentId(Uuid::from_u128(3)),
            kind: IntentKind::Webhook {
                target: "crm".to_owned(),
                url: "http://127.0.0.1:9/".to_owned(),
                kind: WebhookEventKind::MessagePosted,
            },
            source: Source {
                event_id: Uuid::from_u128(4),
                stream: format!("chat-{}", Uuid::from_u128(5)),
                version: 1,
                position: 1,
                at: DateTime::<Utc>::UNIX_EPOCH,
            },
            sender: None,
            message_id_domain: "x.example".to_owned(),
        };
        let kind = WebhookEventKind::MessagePosted;
        let overhead = body(&intent, kind, &message_of(0), None)
            .expect("small body")
            .len();
        let at_limit = body(
            &intent,
            kind,
            &message_of(WEBHOOK_BODY_BYTES_MAX - overhead),
            None,
        )
        .expect("a body of exactly WEBHOOK_BODY_BYTES_MAX is sent");
        assert_eq!(at_limit.len(), WEBHOOK_BODY_BYTES_MAX);
        let error = body(
            &intent,
            kind,
            &message_of(WEBHOOK_BODY_BYTES_MAX - overhead + 1),
            None,
        )
        .expect_err("one byte more is refused");
        assert!(error.contains("WEBHOOK_BODY_BYTES_MAX"), "{error}");
    }
}
