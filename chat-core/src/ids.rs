//! Identifiers shared by every aggregate.
//!
//! Each id is a newtype over a UUID so that a chat id can never be passed where an agent id is
//! expected. chat-core never mints ids: the host generates them (UUID v7 in the engine, fixed
//! values in tests) and passes them in with the command, which keeps `decide` deterministic.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// The prefix of this aggregate's stream names (`"<prefix>-<uuid>"`).
            pub const STREAM_PREFIX: &'static str = $prefix;

            /// Wraps an existing UUID (ids are minted by the host, never here).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A fixed id for tests and examples: `from_u128(1)` is always the same id.
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The name of the event stream that holds this aggregate's history.
            pub fn stream_name(&self) -> String {
                format!("{}-{}", $prefix, self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

id!(
    /// One conversation (a chat), from its first request to its last resumption.
    ChatId,
    "chat"
);
id!(
    /// A human agent (or supervisor) who answers chats.
    AgentId,
    "agent"
);
id!(
    /// A contact: the visitor behind one or more chats.
    ContactId,
    "contact"
);
id!(
    /// A chat module: one website or channel entry point.
    ModuleId,
    "module"
);
id!(
    /// A routing queue with member agents.
    QueueId,
    "queue"
);
id!(
    /// A trigger strategy: when the widget shows itself.
    StrategyId,
    "strategy"
);
id!(
    /// A canned response (macro).
    CannedResponseId,
    "canned"
);
id!(
    /// A case (ticket) created from a chat.
    CaseId,
    "case"
);
id!(
    /// One message inside a chat.
    MessageId,
    "message"
);
id!(
    /// The id a client puts on every command so that a retry is recognised (C9).
    CommandId,
    "command"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_prefixed_and_stable() {
        let chat = ChatId::from_u128(1);
        assert_eq!(
            chat.stream_name(),
            "chat-00000000-0000-0000-0000-000000000001"
        );
        assert_ne!(chat.stream_name(), AgentId::from_u128(1).stream_name());
    }
}
