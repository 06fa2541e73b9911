//! Why routing refuses a request or a commit.
//!
//! Two kinds of "no": a [`RouteError`] is a request routing cannot answer (unknown ids, data over a
//! limit, stale opening hours, a transfer to someone who cannot take it); a [`Conflict`] is the
//! expected outcome of two hosts deciding on the same snapshot — the loser re-reads and retries.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::decision::Exclusion;
use crate::model::{AgentId, ChatId, ModuleId, QueueId};

/// A request routing cannot answer, naming the field or rule at fault.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A size or count is over its documented limit (`crate::limits`).
    #[error("{field} is {value}, over the limit of {max}")]
    TooLarge {
        /// The field, e.g. `chat.excluded_agents`.
        field: &'static str,
        /// What was given.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// The request names an agent the snapshot does not have.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// The request names a chat that is not waiting in the snapshot.
    #[error("chat {0} is not waiting")]
    UnknownChat(ChatId),
    /// The request or a rule names a queue the snapshot does not have.
    #[error("unknown queue {0}")]
    UnknownQueue(QueueId),
    /// The request names a module the snapshot does not have.
    #[error("unknown module {0}")]
    UnknownModule(ModuleId),
    /// A chat already waiting cannot be admitted again (one chat, one place: Rocket.Chat #22206).
    #[error("chat {0} is already waiting")]
    AlreadyWaiting(ChatId),
    /// The module's opening state expired at `until`; the host must re-evaluate its schedule.
    #[error("opening hours of module {module} are stale since {until}; re-evaluate the schedule")]
    StaleOpening {
        /// Which module.
        module: ModuleId,
        /// When the given state stopped being valid.
        until: DateTime<Utc>,
    },
    /// A transfer names an agent who cannot take the chat now.
    #[error("agent {agent} cannot take the transferred chat: {why:?}")]
    TransferTargetIneligible {
        /// The target.
        agent: AgentId,
        /// Why not.
        why: Exclusion,
    },
    /// A [`Policy`](crate::Policy) chose an agent that is not eligible. The engine refuses it, so a
    /// faulty policy can never break capacity, presence, membership or level rules.
    #[error("policy chose agent {agent}, who is not eligible: {why:?}")]
    PolicyChoseIneligible {
        /// The agent chosen.
        agent: AgentId,
        /// Why that agent is not eligible.
        why: Exclusion,
    },
}

/// A decision's preconditions no longer hold: somebody else committed first.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Conflict {
    /// The chat is not waiting at the expected version (taken, moved or abandoned meanwhile).
    #[error("chat {chat} is no longer waiting at version {expected}")]
    ChatMoved {
        /// Which chat.
        chat: ChatId,
        /// The version the decision assumed.
        expected: u64,
    },
    /// The chat is already waiting, but the decision assumed it was not.
    #[error("chat {0} is already waiting")]
    ChatAlreadyWaiting(ChatId),
    /// The agent's load changed since the decision was made.
    #[error("agent {agent} no longer has load {expected}")]
    AgentLoadChanged {
        /// Which agent.
        agent: AgentId,
        /// The load the decision assumed.
        expected: u32,
    },
    /// The agent went offline, filled up or left the queue since the decision was made.
    #[error("agent {0} can no longer take the chat")]
    AgentUnavailable(AgentId),
    /// The module's open-chat count changed since the decision was made.
    #[error("module {module} no longer has {expected} open chats")]
    ModuleCountChanged {
        /// Which module.
        module: ModuleId,
        /// The count the decision assumed.
        expected: u32,
    },
    /// The decision refers to an agent, queue or module the snapshot no longer has.
    #[error("the decision refers to something the snapshot no longer has")]
    Missing,
}
