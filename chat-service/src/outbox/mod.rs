//! The outbox: e-mail (O1 offline messages, O2 transcripts, C3 "your message was answered") and
//! outgoing webhooks (V5), driven by the log.
//!
//! Why an outbox and not "send right after the append": the append is the only thing that is
//! atomic. A process that appends and then dies before sending would lose the mail; one that
//! sends and then fails to append would send for something that never happened. Here the log
//! says what must be delivered ([`derive_intents`], a pure function, so every engine and every
//! rebuild derive the same intents with the same ids), and each intent's delivery stream
//! (`outbox-<intent id>`) says what was attempted and how it went ([`DeliveryEvent`]),
//! appended with exact expected versions so two engines never send the same attempt.
//!
//! Guarantee: at-least-once, with a stable Message-ID / delivery id. Exactly once unless an
//! engine dies after a receiver accepted a message and before its outcome is recorded; then
//! the same message (same Message-ID, same delivery id) is sent again once the attempt's lease
//! has passed. docs/OUTBOX.md has the details and how to verify webhook signatures.

mod delivery;
mod error;
mod intent;
mod mail;
mod runner;
mod settings;
mod webhook;

pub use delivery::{
    BACKOFF_MS_MAX, DELIVERY_ATTEMPTS_MAX, DELIVERY_ERROR_BYTES_MAX, DeliveryEvent, DeliveryState,
    DeliveryStatus, RetryPolicy,
};
pub use error::OutboxError;
pub use intent::{
    DELIVERY_STREAM_PREFIX, Intent, IntentId, IntentKind, Source, derive_intents, needs_module,
    webhook_kind,
};
pub use mail::{
    EMAIL_BODY_BYTES_MAX, EMAIL_SUBJECT_CHARS_MAX, RenderedMail, SmtpConfig, SmtpSecurity, render,
};
pub use runner::{
    CrashPoint, DELIVERIES_IN_FLIGHT_MAX, Outbox, OutboxHandle, OutboxOptions, OutboxStats,
    PENDING_INTENTS_MAX, SEND_TIMEOUT_MS_MAX, STORE_RETRY_MS,
};
pub use settings::{
    EMAIL_ADDRESS_BYTES_MAX, OFFLINE_MAIL_MODULES_MAX, OfflineMail, OutboxSettings,
    SETTINGS_STREAM, SUBJECT_FIELD_BYTES_MAX, SettingsEvent, WEBHOOK_NAME_BYTES_MAX,
    WEBHOOK_TARGETS_MAX, WEBHOOK_URL_BYTES_MAX, WebhookEventKind, WebhookTarget,
};
pub use webhook::{
    ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, SignatureError,
    WEBHOOK_BODY_BYTES_MAX, WEBHOOK_SECRET_BYTES_MAX, WEBHOOK_SECRET_BYTES_MIN, WebhookBody,
    WebhookSecret, signature_header, verify_signature,
};
