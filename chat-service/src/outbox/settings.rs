//! What the outbox sends, as data in the log: per-module offline e-mail handling (O1), the
//! sender address, and the webhook targets with their event filters (V5).
//!
//! Why in the log and not only in a config file: intents are *derived* from the log, and a
//! rebuild must derive the same intents. If the targets lived only in the process's
//! configuration, a target added today would, on the next restart, be handed every event since
//! the beginning of time; with the settings recorded in the stream [`SETTINGS_STREAM`], an event
//! is matched against the settings that were in force at its position, on every rebuild.
//! Webhook *secrets* are not in the log (audit dumps must not leak them): they are runtime
//! configuration, looked up by target name when a delivery is signed.

use super::error::OutboxError;
use chat_core::{EventKind, ModuleId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The stream holding every [`SettingsEvent`], in order.
pub const SETTINGS_STREAM: &str = "outbox-settings";
/// Most webhook targets.
pub const WEBHOOK_TARGETS_MAX: usize = 20;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2048;
/// Longest webhook target name, in bytes (names are ASCII letters, digits, `-` and `_`).
pub const WEBHOOK_NAME_BYTES_MAX: usize = 64;
/// Most modules with an offline e-mail rule.
pub const OFFLINE_MAIL_MODULES_MAX: usize = 10_000;
/// Longest e-mail address, in bytes (RFC 5321's path limit).
pub const EMAIL_ADDRESS_BYTES_MAX: usize = 254;
/// Longest offline-form field name used as a subject, in bytes.
pub const SUBJECT_FIELD_BYTES_MAX: usize = 128;

/// What happens to a module's offline chats (O1). Modules without a rule keep their offline
/// chats for a supervisor only (they stay searchable in the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineMail {
    /// Forward the offline message to an address (a team inbox); `Reply-To` is the visitor when
    /// their e-mail is known.
    Forward {
        /// The address that receives the forwarded message.
        to: String,
    },
    /// Turn the offline message into a new e-mail interaction: an e-mail *from the visitor's
    /// address* to the contact centre's inbox, whose subject is the answer to one offline-form
    /// field. Without a known visitor e-mail no interaction can be made and nothing is sent.
    EmailInteraction {
        /// The inbox that receives the interaction.
        inbox: String,
        /// The offline-form field whose answer becomes the subject.
        subject_field: String,
    },
}

/// The chat events a webhook target may ask for (V5). The names on the wire are
/// [`WebhookEventKind::wire_name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WebhookEventKind {
    /// `ChatStarted`.
    ChatStarted,
    /// `AgentAssigned`.
    ChatAssigned,
    /// `MessagePosted`.
    MessagePosted,
    /// `EpisodeEnded`, except offline ends (those are [`WebhookEventKind::OfflineMessage`]).
    ChatEnded,
    /// `EpisodeEnded` with an offline disposition: the visitor left a message (O1).
    OfflineMessage,
    /// `CaseCreated` (A6).
    CaseCreated,
    /// `ChatRated` (X3).
    ChatRated,
}

impl WebhookEventKind {
    /// Every kind, for targets that want everything.
    pub const ALL: [Self; 7] = [
        Self::ChatStarted,
        Self::ChatAssigned,
        Self::MessagePosted,
        Self::ChatEnded,
        Self::OfflineMessage,
        Self::CaseCreated,
        Self::ChatRated,
    ];

    /// The `event` field and `X-Chat-Event` header value.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::ChatStarted => "chat.started",
            Self::ChatAssigned => "chat.assigned",
            Self::MessagePosted => "chat.message",
            Self::ChatEnded => "chat.ended",
            Self::OfflineMessage => "chat.offline_message",
            Self::CaseCreated => "case.created",
            Self::ChatRated => "chat.rated",
        }
    }
}

/// One webhook target (V5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// Where to POST (`http://` or `https://`).
    pub url: String,
    /// The kinds this target receives; empty receives nothing.
    pub events: BTreeSet<WebhookEventKind>,
}

/// Everything the outbox derives intents from, as recorded in [`SETTINGS_STREAM`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxSettings {
    /// The `From` of engine mail (transcripts, replies, forwards) and the domain of every
    /// Message-ID. `None` sends no e-mail at all (intents are still derived and give up with a
    /// clear reason, so the omission is visible in the log).
    pub sender: Option<String>,
    /// Offline handling per module (O1).
    pub offline_mail: BTreeMap<ModuleId, OfflineMail>,
    /// Webhook targets by name; the name keys the secret and is part of each delivery id.
    pub webhooks: BTreeMap<String, WebhookTarget>,
}

impl OutboxSettings {
    /// Checks every field against its rule and limit; the error names the field.
    pub fn validate(&self) -> Result<(), OutboxError> {
        if let Some(sender) = &self.sender {
            check_address("sender", sender)?;
        }
        check_count(
            "offline_mail",
            "OFFLINE_MAIL_MODULES_MAX",
            self.offline_mail.len(),
            OFFLINE_MAIL_MODULES_MAX,
        )?;
        for (module, rule) in &self.offline_mail {
            match rule {
                OfflineMail::Forward { to } => {
                    check_address(&format!("offline_mail[{module}].to"), to)?;
                }
                OfflineMail::EmailInteraction {
                    inbox,
                    subject_field,
                } => {
                    check_address(&format!("offline_mail[{module}].inbox"), inbox)?;
                    let field = format!("offline_mail[{module}].subject_field");
                    if subject_field.is_empty() {
                        return Err(invalid(&field, "must name an offline-form field"));
                    }
                    check_bytes(
                        &field,
                        "SUBJECT_FIELD_BYTES_MAX",
                        subject_field,
                        SUBJECT_FIELD_BYTES_MAX,
                    )?;
                }
            }
        }
        check_count(
            "webhooks",
            "WEBHOOK_TARGETS_MAX",
            self.webhooks.len(),
            WEBHOOK_TARGETS_MAX,
        )?;
        for (name, target) in &self.webhooks {
            check_bytes(
                "webhooks.name",
                "WEBHOOK_NAME_BYTES_MAX",
                name,
                WEBHOOK_NAME_BYTES_MAX,
            )?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    "webhooks.name",
                    "must be ASCII letters, digits, '-' or '_'",
                ));
            }
            let field = format!("webhooks[{name}].url");
            check_bytes(
                &field,
                "WEBHOOK_URL_BYTES_MAX",
                &target.url,
                WEBHOOK_URL_BYTES_MAX,
            )?;
            match reqwest::Url::parse(&target.url) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
                _ => return Err(invalid(&field, "must be an absolute http(s) URL")),
            }
        }
        Ok(())
    }

    /// The domain every Message-ID ends with: the sender's, or a fixed one when no sender is set.
    pub(crate) fn message_id_domain(&self) -> &str {
        self.sender
            .as_deref()
            .and_then(|sender| sender.rsplit_once('@'))
            .map_or("chat-outbox.invalid", |(_, domain)| domain)
    }
}

/// The one event of [`SETTINGS_STREAM`]: the whole settings, as of `at`. Whole rather than
/// field-by-field: settings are small and rarely changed, and a reader needs only the last one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettingsEvent {
    /// The settings in force from this event's position on.
    OutboxSettingsSet {
        /// When they were set.
        at: DateTime<Utc>,
        /// The settings.
        settings: OutboxSettings,
    },
}

impl EventKind for SettingsEvent {
    fn event_type(&self) -> &'static str {
        "OutboxSettingsSet"
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

fn invalid(field: &str, reason: &str) -> OutboxError {
    OutboxError::InvalidSettings {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn check_count(
    field: &str,
    limit: &'static str,
    actual: usize,
    max: usize,
) -> Result<(), OutboxError> {
    if actual > max {
        return Err(OutboxError::LimitExceeded {
            field: field.to_owned(),
            limit,
            max,
            actual,
        });
    }
    Ok(())
}

fn check_bytes(
    field: &str,
    limit: &'static str,
    value: &str,
    max: usize,
) -> Result<(), OutboxError> {
    check_count(field, limit, value.len(), max)
}

/// An address lettre accepts, within [`EMAIL_ADDRESS_BYTES_MAX`].
pub(crate) fn check_address(field: &str, address: &str) -> Result<(), OutboxError> {
    check_bytes(
        field,
        "EMAIL_ADDRESS_BYTES_MAX",
        address,
        EMAIL_ADDRESS_BYTES_MAX,
    )?;
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| invalid(field, &format!("not an e-mail address: {e}")))
}
