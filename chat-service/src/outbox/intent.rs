//! Intents: what the outbox must deliver, derived from chat events by a pure function.
//!
//! Why derived and not recorded: the log already says everything (an offline end, a transcript
//! request, an async-reply request, a chat event a webhook wants); recording "please send" again
//! would be a second source of truth. [`derive_intents`] is a pure function of the event, its
//! envelope, the chat's module and the settings in force at its position, so every engine, and
//! every rebuild after a restart, derives the same intents with the same ids. An intent's id is
//! a name-based UUID of (source event id, kind, target): it names the delivery stream
//! `outbox-<id>`, the e-mail's Message-ID and the webhook's delivery id, so all three are stable
//! across retries, restarts and engines.

use super::settings::{OfflineMail, OutboxSettings, WebhookEventKind};
use chat_core::ModuleId;
use chat_core::conversation::{ChatEvent, Disposition};
use chat_store::{GlobalPosition, RecordedEvent, StreamId, StreamVersion};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use uuid::Uuid;

/// The prefix of every delivery stream (`outbox-<intent id>`).
pub const DELIVERY_STREAM_PREFIX: &str = "outbox";

/// The stable id of one intent: delivery stream, Message-ID and webhook delivery id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntentId(pub Uuid);

impl IntentId {
    /// The name-based id of the intent tagged `tag` (kind and target) of the event
    /// `source_event`.
    fn derive(source_event: Uuid, tag: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"chat-service/outbox-intent/v1\0");
        hash.update(source_event.as_bytes());
        hash.update(tag.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0_u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// The delivery stream of this intent.
    pub fn stream_name(&self) -> String {
        format!("{DELIVERY_STREAM_PREFIX}-{}", self.0)
    }

    /// The intent id named by a delivery stream, if `stream` is one.
    pub fn from_stream(stream: &StreamId) -> Option<Self> {
        let rest = stream
            .as_str()
            .strip_prefix(DELIVERY_STREAM_PREFIX)?
            .strip_prefix('-')?;
        Uuid::parse_str(rest).ok().map(Self)
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntentId({})", self.0)
    }
}

/// Where an intent comes from: enough of the envelope to find the event again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The event's id.
    pub event_id: Uuid,
    /// The chat stream.
    pub stream: String,
    /// The event's version in that stream (a transcript is the stream up to here).
    pub version: StreamVersion,
    /// The event's global position.
    pub position: GlobalPosition,
    /// When it was recorded (an intent is due from then).
    pub at: DateTime<Utc>,
}

impl Source {
    /// The source part of a recorded event.
    pub fn of(event: &RecordedEvent) -> Self {
        Self {
            event_id: event.event_id,
            stream: event.stream_id.as_str().to_owned(),
            version: event.stream_version,
            position: event.global_position,
            at: event.recorded_at,
        }
    }
}

/// What to deliver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IntentKind {
    /// O1: forward an offline message to a team address.
    OfflineForward {
        /// The team address.
        to: String,
    },
    /// O1: turn an offline message into an e-mail from the visitor to the inbox.
    OfflineInteraction {
        /// The visitor's address (the sender).
        from: String,
        /// The inbox.
        inbox: String,
        /// The offline-form field whose answer is the subject.
        subject_field: String,
    },
    /// O2: the transcript of an ended episode, to the visitor.
    Transcript {
        /// The visitor's address.
        to: String,
        /// The episode.
        episode: u32,
    },
    /// C3: "your message was answered", to the visitor of an asynchronous chat.
    AsyncReply {
        /// The visitor's address.
        to: String,
        /// The episode.
        episode: u32,
    },
    /// V5: one chat event POSTed to one target.
    Webhook {
        /// The target's name in the settings.
        target: String,
        /// The target's URL when the event was derived.
        url: String,
        /// The kind, for the payload and the header.
        kind: WebhookEventKind,
    },
}

impl IntentKind {
    /// Whether this is an e-mail (rather than a webhook).
    pub fn is_mail(&self) -> bool {
        !matches!(self, Self::Webhook { .. })
    }
}

/// One thing to deliver once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// Its stable id.
    pub id: IntentId,
    /// What to deliver.
    pub kind: IntentKind,
    /// The event it comes from.
    pub source: Source,
    /// The sender of engine mail when it was derived (`None`: mail gives up, see settings).
    pub sender: Option<String>,
    /// The Message-ID's domain when it was derived.
    pub message_id_domain: String,
}

impl Intent {
    /// The e-mail's Message-ID: `<intent id@domain>`, the same for every attempt (a receiving
    /// mail system that sees it twice can tell it is one message).
    pub fn message_id(&self) -> String {
        format!("<{}@{}>", self.id, self.message_id_domain)
    }
}

/// Whether a chat event needs its chat's module to derive intents (only offline ends, for O1);
/// the caller then looks the module up in the chat's `ChatStarted`.
pub fn needs_module(event: &ChatEvent, settings: &OutboxSettings) -> bool {
    !settings.offline_mail.is_empty()
        && matches!(
            event,
            ChatEvent::EpisodeEnded {
                disposition: Disposition::Offline { .. },
                ..
            }
        )
}

/// The webhook kind of a chat event, if webhooks carry it (V5).
pub fn webhook_kind(event: &ChatEvent) -> Option<WebhookEventKind> {
    Some(match event {
        ChatEvent::ChatStarted { .. } => WebhookEventKind::ChatStarted,
        ChatEvent::AgentAssigned { .. } => WebhookEventKind::ChatAssigned,
        ChatEvent::MessagePosted { .. } => WebhookEventKind::MessagePosted,
        ChatEvent::EpisodeEnded {
            disposition: Disposition::Offline { .. },
            ..
        } => WebhookEventKind::OfflineMessage,
        ChatEvent::EpisodeEnded { .. } => WebhookEventKind::ChatEnded,
        ChatEvent::CaseCreated { .. } => WebhookEventKind::CaseCreated,
        ChatEvent::ChatRated { .. } => WebhookEventKind::ChatRated,
        _ => return None,
    })
}

/// The intents of one chat event (pure: same inputs, same intents, same ids, same order).
///
/// `module` and `contact_email` are the chat's, from its `ChatStarted`; they are needed only
/// when [`needs_module`] says so (offline ends), and ignored otherwise.
pub fn derive_intents(
    source: &Source,
    event: &ChatEvent,
    chat: Option<(ModuleId, Option<&str>)>,
    settings: &OutboxSettings,
) -> Vec<Intent> {
    let mut kinds: Vec<(String, IntentKind)> = Vec::new();
    match event {
        ChatEvent::EpisodeEnded {
            disposition: Disposition::Offline { .. },
            ..
        } => {
            let rule = chat.and_then(|(module, email)| {
                settings.offline_mail.get(&module).map(|rule| (rule, email))
            });
            match rule {
                Some((OfflineMail::Forward { to }, _)) => kinds.push((
                    "offline-forward".to_owned(),
                    IntentKind::OfflineForward { to: to.clone() },
                )),
                Some((
                    OfflineMail::EmailInteraction {
                        inbox,
                        subject_field,
                    },
                    Some(visitor),
                )) => kinds.push((
                    "offline-interaction".to_owned(),
                    IntentKind::OfflineInteraction {
                        from: visitor.to_owned(),
                        inbox: inbox.clone(),
                        subject_field: subject_field.clone(),
                    },
                )),
                // No rule, or an interaction without a visitor address: kept for a supervisor.
                Some((OfflineMail::EmailInteraction { .. }, None)) | None => {}
            }
        }
        ChatEvent::TranscriptEmailRequested { episode, to, .. } => kinds.push((
            "transcript".to_owned(),
            IntentKind::Transcript {
                to: to.clone(),
                episode: *episode,
            },
        )),
        ChatEvent::AsyncReplyEmailRequested { episode, to, .. } => kinds.push((
            "async-reply".to_owned(),
            IntentKind::AsyncReply {
                to: to.clone(),
                episode: *episode,
            },
        )),
        _ => {}
    }
    if let Some(kind) = webhook_kind(event) {
        for (name, target) in &settings.webhooks {
            if target.events.contains(&kind) {
                kinds.push((
                    format!("webhook\0{name}"),
                    IntentKind::Webhook {
                        target: name.clone(),
                        url: target.url.clone(),
                        kind,
                    },
                ));
            }
        }
    }
    kinds
        .into_iter()
        .map(|(tag, kind)| Intent {
            id: IntentId::derive(source.event_id, &tag),
            kind,
            source: source.clone(),
            sender: settings.sender.clone(),
            message_id_domain: settings.message_id_domain().to_owned(),
        })
        .collect()
}
