//! Typed events ↔ store envelopes: the one place the engine turns a chat-core event into a
//! [`NewEvent`] and a [`RecordedEvent`] back into a typed event.
//!
//! Why one codec: every reader of the log (command handling, the routing host, timers,
//! projections, the outbox, live fan-out) must decode the same bytes the same way, through
//! chat-store's [`Upcasters`] (E4). Decoding is chosen by the stream's prefix (`chat-` →
//! [`ChatEvent`], `agent-` → [`AgentEvent`], `module-` → module events …), so a follower needs
//! no table of event types: [`Codec::decode`] returns one [`DomainEvent`] for any event.
//!
//! Event ids are **derived, not drawn**: [`event_id`] hashes (command id, index of the event in
//! the decision). A retried command — after a lost reply, or after a crash and restart —
//! re-appends exactly the same ids, and the store's idempotency makes the retry a no-op (C9).
//! Commands the engine issues itself (routing assignments, timer ticks) get their command ids
//! the same way from what they are about ([`derived_command_id`]), so two engines racing on the
//! same tick produce the same ids and only one append lands.

use crate::engine::error::EngineError;
use chat_core::PageData;
use chat_core::agent::AgentEvent;
use chat_core::config::{
    ACCOUNT_SETTINGS_STREAM, AccountEvent, CannedEvent, ContactEvent, ModuleEvent, QueueEvent,
    ReferenceKind, ReservationEvent, Stamped, StrategyEvent,
};
use chat_core::conversation::ChatEvent;
use chat_core::conversation::MessageBody;
use chat_core::{
    AgentId, CannedResponseId, ChatId, CommandId, ContactId, EventKind, ModuleId, QueueId,
    StrategyId,
};
use chat_store::seal::{self, SealKey, SealPolicy};
use chat_store::{
    EventStore, NewEvent, RecordedEvent, SealedStore, StoreError, StreamId, Upcasters,
    encode_payload,
};
use chrono::{DateTime, Utc};
use rmpv::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Streams whose name starts with this are reserved for the engine's own bookkeeping
/// (projection checkpoints, `$checkpoint-<name>`); followers skip them.
pub const RESERVED_STREAM_PREFIX: &str = "$";

/// Any event of the log, decoded by its stream's prefix. Configuration events are boxed: they
/// are rare and large, chat and agent events are the hot path.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DomainEvent {
    /// `chat-<uuid>`.
    Chat {
        /// The chat.
        chat: ChatId,
        /// The event.
        event: ChatEvent,
    },
    /// `agent-<uuid>`.
    Agent {
        /// The agent.
        agent: AgentId,
        /// The event.
        event: AgentEvent,
    },
    /// `module-<uuid>`.
    Module {
        /// The module.
        module: ModuleId,
        /// The event.
        event: Box<Stamped<ModuleEvent>>,
    },
    /// `queue-<uuid>`.
    Queue {
        /// The queue.
        queue: QueueId,
        /// The event.
        event: Box<Stamped<QueueEvent>>,
    },
    /// `strategy-<uuid>`.
    Strategy {
        /// The strategy.
        strategy: StrategyId,
        /// The event.
        event: Box<Stamped<StrategyEvent>>,
    },
    /// `canned-<uuid>`.
    Canned {
        /// The canned response.
        canned: CannedResponseId,
        /// The event.
        event: Box<Stamped<CannedEvent>>,
    },
    /// `contact-<uuid>`.
    Contact {
        /// The contact.
        contact: ContactId,
        /// The event.
        event: Box<ContactEvent>,
    },
    /// The account settings stream.
    Account(Box<Stamped<AccountEvent>>),
    /// A reference reservation (`modref-…`, `stratref-…`, `queueref-…`).
    Reservation(Box<Stamped<ReservationEvent>>),
    /// A stream this codec does not know (another component's, e.g. the outbox's), or a
    /// reserved `$` stream. Its owner decodes the envelope itself with [`Codec::decode_as`].
    Other,
}

/// Decodes and encodes events; holds the upcasters of every event type (E4).
#[derive(Debug, Default)]
pub struct Codec {
    upcasters: Upcasters,
}

impl Codec {
    /// A codec with the given upcasters (none are needed yet: every event is at version 1).
    pub fn new(upcasters: Upcasters) -> Self {
        Self { upcasters }
    }

    /// Decodes one event as `T`, through the upcasters.
    ///
    /// A payload that still holds seal marks (read from a store without its key vault, e.g. an
    /// audit of the raw log) decodes with their placeholders: such a reader sees sealed content
    /// as erased, never as an error.
    pub fn decode_as<T: DeserializeOwned>(&self, event: &RecordedEvent) -> Result<T, StoreError> {
        match seal::strip(&event.payload) {
            Ok(None) => self.upcasters.decode(event),
            Ok(Some(payload)) => {
                let stripped = RecordedEvent {
                    payload,
                    ..event.clone()
                };
                self.upcasters.decode(&stripped)
            }
            Err(reason) => Err(StoreError::Decode {
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                reason: format!("bad seal mark: {reason}"),
            }),
        }
    }

    /// Decodes any event by its stream's prefix. An unknown prefix is [`DomainEvent::Other`],
    /// not an error: other components own streams too. A known prefix that does not decode is
    /// an error — a follower must never skip an event it is responsible for.
    pub fn decode(&self, event: &RecordedEvent) -> Result<DomainEvent, StoreError> {
        let stream = event.stream_id.as_str();
        if stream.starts_with(RESERVED_STREAM_PREFIX) {
            return Ok(DomainEvent::Other);
        }
        if stream == ACCOUNT_SETTINGS_STREAM {
            return Ok(DomainEvent::Account(self.decode_as(event)?));
        }
        let Some((prefix, rest)) = stream.split_once('-') else {
            return Ok(DomainEvent::Other);
        };
        let reservations = [
            ReferenceKind::Module,
            ReferenceKind::Strategy,
            ReferenceKind::Queue,
        ];
        if reservations.iter().any(|k| k.stream_prefix() == prefix) {
            return Ok(DomainEvent::Reservation(self.decode_as(event)?));
        }
        let known = [
            ChatId::STREAM_PREFIX,
            AgentId::STREAM_PREFIX,
            ModuleId::STREAM_PREFIX,
            QueueId::STREAM_PREFIX,
            StrategyId::STREAM_PREFIX,
            CannedResponseId::STREAM_PREFIX,
            ContactId::STREAM_PREFIX,
        ];
        if !known.contains(&prefix) {
            return Ok(DomainEvent::Other);
        }
        let id = Uuid::parse_str(rest).map_err(|e| StoreError::Decode {
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            reason: format!("stream {stream} does not end in a UUID: {e}"),
        })?;
        Ok(match prefix {
            p if p == ChatId::STREAM_PREFIX => DomainEvent::Chat {
                chat: ChatId(id),
                event: self.decode_as(event)?,
            },
            p if p == AgentId::STREAM_PREFIX => DomainEvent::Agent {
                agent: AgentId(id),
                event: self.decode_as(event)?,
            },
            p if p == ModuleId::STREAM_PREFIX => DomainEvent::Module {
                module: ModuleId(id),
                event: self.decode_as(event)?,
            },
            p if p == QueueId::STREAM_PREFIX => DomainEvent::Queue {
                queue: QueueId(id),
                event: self.decode_as(event)?,
            },
            p if p == StrategyId::STREAM_PREFIX => DomainEvent::Strategy {
                strategy: StrategyId(id),
                event: self.decode_as(event)?,
            },
            p if p == CannedResponseId::STREAM_PREFIX => DomainEvent::Canned {
                canned: CannedResponseId(id),
                event: self.decode_as(event)?,
            },
            _ => DomainEvent::Contact {
                contact: ContactId(id),
                event: self.decode_as(event)?,
            },
        })
    }
}

/// Encodes one typed event into the envelope the store appends. `recorded_at` is the host's
/// `now` of the decision (stores never invent domain time).
pub fn encode<E: Serialize + EventKind>(
    event: &E,
    event_id: Uuid,
    recorded_at: DateTime<Utc>,
    correlation_id: Option<Uuid>,
    causation_id: Option<Uuid>,
) -> Result<NewEvent, EngineError> {
    Ok(NewEvent {
        event_id,
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        recorded_at,
        correlation_id,
        causation_id,
        payload: encode_payload(event)?,
    })
}

/// A name-based UUID (version 8, SHA-256 of a domain tag and the parts): the same parts give
/// the same id in every process and after every restart.
fn name_based(tag: &[u8], parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update((tag.len() as u64).to_be_bytes());
    hash.update(tag);
    for part in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id of the `index`-th event (0-based, over every stream of one append) produced by the
/// command `command` (C9).
pub fn event_id(command: CommandId, index: u32) -> Uuid {
    name_based(
        b"chat-engine/event",
        &[command.as_uuid().as_bytes(), &index.to_be_bytes()],
    )
}

/// The command id of a command the engine issues itself, named by what it is about, e.g.
/// (`"tick"`, chat, deadline) or (`"assign"`, chat, chat version). Two engines issuing the same
/// command get the same id, so the log records it once.
pub fn derived_command_id(kind: &str, parts: &[&[u8]]) -> CommandId {
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    all.push(kind.as_bytes());
    all.extend_from_slice(parts);
    CommandId::from_uuid(name_based(b"chat-engine/command", &all))
}

// ----- sealing (X4, docs/AUDIT.md) ------------------------------------------------------------

/// The key that seals a chat's record (page data, form answers, the contact's e-mail, rating
/// comments, e-mail recipients): one per chat, owned by the chat.
pub fn chat_record_key(chat: ChatId) -> SealKey {
    SealKey {
        key_id: name_based(b"chat-engine/key/chat-record", &[chat.as_uuid().as_bytes()]),
        owner: Some(chat.as_uuid()),
    }
}

/// The key that seals one message's body (the message id itself). A visitor's message is owned
/// by its chat (erased with the contact); an agent's or the system's by nobody (erased only by
/// redaction).
pub fn message_key(message: Uuid, chat: ChatId, by_visitor: bool) -> SealKey {
    SealKey {
        key_id: message,
        owner: by_visitor.then(|| chat.as_uuid()),
    }
}

/// The key that seals a contact's fields, owned by the contact.
pub fn contact_key(contact: ContactId) -> SealKey {
    SealKey {
        key_id: name_based(b"chat-engine/key/contact", &[contact.as_uuid().as_bytes()]),
        owner: Some(contact.as_uuid()),
    }
}

/// The owner of every key of a projection's checkpoints (`$checkpoint-<name>`): destroyed when a
/// redaction or an erasure is folded, so no old checkpoint keeps erased text readable.
pub fn checkpoint_owner(stream: &str) -> Uuid {
    name_based(b"chat-engine/key/checkpoint-owner", &[stream.as_bytes()])
}

/// `store` sealing what [`ChatSealPolicy`] marks under keys of its own vault, unless it already
/// seals or has no vault (then it is returned as it is, and content is stored in plaintext).
pub fn sealing(store: Arc<dyn EventStore>) -> Arc<dyn EventStore> {
    if store.is_sealing() {
        return store;
    }
    match store.key_vault() {
        Some(vault) => Arc::new(SealedStore::new(store, vault, Arc::new(ChatSealPolicy))),
        None => store,
    }
}

/// What the engine seals: every place a visitor's or an agent's words or a contact's data are
/// copied into the log (docs/AUDIT.md has the list), and projection checkpoints, whole.
#[derive(Debug, Default)]
pub struct ChatSealPolicy;

const CHECKPOINT_STREAM_PREFIX: &str = "$checkpoint-";

fn field<'a>(value: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    match value {
        Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn placeholder<T: Serialize>(value: &T) -> Result<Value, String> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| e.to_string())?;
    rmpv::decode::read_value(&mut bytes.as_slice()).map_err(|e| e.to_string())
}

/// Seals `name` of `map` (when present and not already sealed) under `key`.
fn seal_field(map: &mut Value, name: &str, key: SealKey, shown: &Value) -> Result<(), String> {
    if let Some(value) = field(map, name)
        && !matches!(value, Value::Ext(..))
    {
        *value = seal::mark(key, shown, value)?;
    }
    Ok(())
}

fn uuid_of(value: Option<&mut Value>, what: &str) -> Result<Uuid, String> {
    match value {
        Some(Value::Binary(bytes)) => Uuid::from_slice(bytes).map_err(|e| e.to_string()),
        Some(Value::String(text)) => text
            .as_str()
            .ok_or_else(|| format!("{what} is not UTF-8"))
            .and_then(|t| Uuid::parse_str(t).map_err(|e| e.to_string())),
        _ => Err(format!("no {what}")),
    }
}

/// Seals a `ChatMessage` map's body under its message key. A redacted message's copy (in a later
/// case) has an empty body already and is left as it is: sealing it would create its destroyed
/// key anew.
fn seal_message(message: &mut Value, chat: ChatId) -> Result<(), String> {
    if field(message, "redaction").is_some_and(|r| !r.is_nil()) {
        return Ok(());
    }
    let id = uuid_of(field(message, "id"), "message id")?;
    let by_visitor = field(message, "author").and_then(|a| a.as_str()) == Some("Visitor");
    let shown = placeholder(&MessageBody::default())?;
    seal_field(message, "body", message_key(id, chat, by_visitor), &shown)
}

/// Seals the contact data a `ChatRecord` or `CaseData` map copies.
fn seal_record(record: &mut Value, chat: ChatId) -> Result<(), String> {
    let key = chat_record_key(chat);
    seal_field(record, "contact_email", key, &Value::Nil)?;
    seal_field(record, "page", key, &placeholder(&PageData::default())?)?;
    seal_field(record, "form_answers", key, &Value::Map(Vec::new()))
}

impl SealPolicy for ChatSealPolicy {
    fn applies(&self, stream: &StreamId, event_type: &str) -> bool {
        let stream = stream.as_str();
        if stream.starts_with(CHECKPOINT_STREAM_PREFIX) {
            return true;
        }
        if stream.starts_with(ChatId::STREAM_PREFIX) {
            return matches!(
                event_type,
                "ChatStarted"
                    | "MessagePosted"
                    | "CaseCreated"
                    | "ChatRated"
                    | "AsyncReplyEmailRequested"
                    | "TranscriptEmailRequested"
            );
        }
        stream.starts_with(ContactId::STREAM_PREFIX)
            && matches!(event_type, "ContactCreated" | "ContactUpdated")
    }

    fn mark(&self, stream: &StreamId, event_type: &str, payload: &mut Value) -> Result<(), String> {
        let name = stream.as_str();
        if name.starts_with(CHECKPOINT_STREAM_PREFIX) {
            // The whole checkpoint: its placeholder is "position 0", i.e. rebuild from the log.
            let position = field(payload, "position")
                .and_then(|p| p.as_u64())
                .ok_or("a checkpoint without a position")?;
            let key = SealKey {
                key_id: name_based(
                    b"chat-engine/key/checkpoint",
                    &[name.as_bytes(), &position.to_be_bytes()],
                ),
                owner: Some(checkpoint_owner(name)),
            };
            let shown = Value::Map(vec![(Value::from("position"), Value::from(0))]);
            *payload = seal::mark(key, &shown, payload)?;
            return Ok(());
        }
        let id = name
            .split_once('-')
            .map(|(_, id)| id)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("stream {name} does not end in a UUID"))?;
        // Events are externally tagged: { "<EventType>": { fields } }.
        let Value::Map(entries) = payload else {
            return Err(format!("{event_type} is not a map"));
        };
        let Some((_, body)) = entries.first_mut() else {
            return Err(format!("{event_type} is empty"));
        };
        if name.starts_with(ContactId::STREAM_PREFIX) {
            let shown = Value::Map(Vec::new());
            return seal_field(body, "fields", contact_key(ContactId(id)), &shown);
        }
        let chat = ChatId(id);
        match event_type {
            "ChatStarted" => {
                if let Some(record) = field(body, "record") {
                    seal_record(record, chat)?;
                }
            }
            "MessagePosted" => {
                if let Some(message) = field(body, "message") {
                    seal_message(message, chat)?;
                }
            }
            "CaseCreated" => {
                if let Some(case) = field(body, "case") {
                    seal_record(case, chat)?;
                    if let Some(Value::Array(messages)) = field(case, "messages") {
                        for message in messages {
                            seal_message(message, chat)?;
                        }
                    }
                }
            }
            "ChatRated" => seal_field(body, "comment", chat_record_key(chat), &Value::Nil)?,
            _ => seal_field(body, "to", chat_record_key(chat), &Value::from(""))?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let command = CommandId::from_u128(7);
        assert_eq!(event_id(command, 0), event_id(command, 0));
        assert_ne!(event_id(command, 0), event_id(command, 1));
        assert_ne!(event_id(command, 0), event_id(CommandId::from_u128(8), 0));
        // Pinned: a change of the derivation would break idempotency across an upgrade.
        assert_eq!(
            event_id(CommandId::from_u128(1), 0).to_string(),
            "7e7f6a60-30b6-8972-9d58-b12fbe0e8c96"
        );
        let a = derived_command_id("tick", &[b"ab", b"c"]);
        let b = derived_command_id("tick", &[b"a", b"bc"]);
        assert_ne!(a, b);
        assert_eq!(a.as_uuid().get_version_num(), 8);
    }
}
