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
use chat_core::agent::AgentEvent;
use chat_core::config::{
    ACCOUNT_SETTINGS_STREAM, AccountEvent, CannedEvent, ContactEvent, ModuleEvent, QueueEvent,
    ReferenceKind, ReservationEvent, Stamped, StrategyEvent,
};
use chat_core::conversation::ChatEvent;
use chat_core::{
    AgentId, CannedResponseId, ChatId, CommandId, ContactId, EventKind, ModuleId, QueueId,
    StrategyId,
};
use chat_store::{NewEvent, RecordedEvent, StoreError, Upcasters, encode_payload};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
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
    pub fn decode_as<T: DeserializeOwned>(&self, event: &RecordedEvent) -> Result<T, StoreError> {
        self.upcasters.decode(event)
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
