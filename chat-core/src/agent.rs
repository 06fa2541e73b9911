//! Agent presence (A1): one stream per agent (`agent-<uuid>`) recording online / away / offline,
//! the agent's capacity and the chats the agent holds.
//!
//! Why an aggregate of its own: routing and capacity (R2) must be rebuilt from the log, and "no
//! claim beyond capacity, no claim while not online" is a rule about one agent's history. The host
//! appends a chat's `AgentAssigned` and the agent's `ChatClaimed` in one atomic multi-stream
//! append, each with its expected version, so neither rule can be broken by two processes racing.
//!
//! Agent commands are idempotent by their meaning rather than by a command id: claiming a chat the
//! agent already holds, releasing one it does not hold, or setting the presence or capacity it
//! already has records nothing (`Ok(vec![])`), so a retry is always safe.

use crate::{AgentId, ChatId, Decider, EventKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Highest capacity (concurrent chats) an agent may have.
pub const AGENT_CAPACITY_MAX: u32 = 100;

/// An agent's presence (A1). Only `Online` agents get new chats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Presence {
    /// Not connected (the state of a new stream).
    #[default]
    Offline,
    /// Connected, taking no new chats.
    Away,
    /// Connected and taking chats.
    Online,
}

/// What an agent (or the host on their behalf) may ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentCommand {
    /// Set the presence.
    SetPresence {
        /// The agent.
        agent: AgentId,
        /// The new presence.
        presence: Presence,
    },
    /// Set the capacity (R2). Lowering it below the chats held keeps them; only new claims wait.
    SetCapacity {
        /// The agent.
        agent: AgentId,
        /// Max concurrent chats, at most [`AGENT_CAPACITY_MAX`].
        capacity: u32,
    },
    /// Take a chat: refused when not online or at capacity.
    Claim {
        /// The agent.
        agent: AgentId,
        /// The chat.
        chat: ChatId,
    },
    /// Give a chat back (it ended or was transferred).
    Release {
        /// The agent.
        agent: AgentId,
        /// The chat.
        chat: ChatId,
    },
}

/// What happened to an agent. Schema version 1 for every variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// The presence changed.
    PresenceChanged {
        /// The agent.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
        /// The new presence.
        presence: Presence,
    },
    /// The capacity changed.
    CapacitySet {
        /// The agent.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
        /// The new capacity.
        capacity: u32,
    },
    /// The agent now holds the chat.
    ChatClaimed {
        /// The agent.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
        /// The chat.
        chat: ChatId,
    },
    /// The agent no longer holds the chat.
    ChatReleased {
        /// The agent.
        agent: AgentId,
        /// When.
        at: DateTime<Utc>,
        /// The chat.
        chat: ChatId,
    },
}

impl EventKind for AgentEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::PresenceChanged { .. } => "AgentPresenceChanged",
            Self::CapacitySet { .. } => "AgentCapacitySet",
            Self::ChatClaimed { .. } => "AgentChatClaimed",
            Self::ChatReleased { .. } => "AgentChatReleased",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// An agent's state, folded from its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Number of events applied.
    pub version: u64,
    /// Current presence.
    pub presence: Presence,
    /// Max concurrent chats (0 until set: a new agent takes nothing).
    pub capacity: u32,
    /// Chats held now.
    pub chats: BTreeSet<ChatId>,
    /// When the presence last changed (routing's "longest idle" needs a since).
    pub presence_since: Option<DateTime<Utc>>,
}

impl AgentState {
    /// Whether routing may give this agent one more chat now.
    pub fn can_take_chat(&self) -> bool {
        self.presence == Presence::Online && self.chats.len() < self.capacity as usize
    }
}

/// A refused agent command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentRejection {
    /// A claim by an agent who is away or offline (A1).
    #[error("agent is {presence:?}: only online agents take chats")]
    NotOnline {
        /// The agent's presence.
        presence: Presence,
    },
    /// A claim at or beyond capacity (R2).
    #[error("agent is at capacity: holds {held} of {capacity} chats")]
    AtCapacity {
        /// Chats held.
        held: u32,
        /// Capacity.
        capacity: u32,
    },
    /// A capacity above [`AGENT_CAPACITY_MAX`].
    #[error("limit exceeded: agent_capacity_max is {max}, got {actual}", max = AGENT_CAPACITY_MAX)]
    CapacityTooLarge {
        /// The refused capacity.
        actual: u32,
    },
}

/// The agent aggregate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Agent;

impl Decider for Agent {
    type State = AgentState;
    type Command = AgentCommand;
    type Event = AgentEvent;
    type Rejection = AgentRejection;

    fn decide(
        state: &AgentState,
        command: &AgentCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<AgentEvent>, AgentRejection> {
        let at = now;
        Ok(match *command {
            AgentCommand::SetPresence { agent, presence } if presence != state.presence => {
                vec![AgentEvent::PresenceChanged {
                    agent,
                    at,
                    presence,
                }]
            }
            AgentCommand::SetCapacity { capacity, .. } if capacity > AGENT_CAPACITY_MAX => {
                return Err(AgentRejection::CapacityTooLarge { actual: capacity });
            }
            AgentCommand::SetCapacity { agent, capacity } if capacity != state.capacity => {
                vec![AgentEvent::CapacitySet {
                    agent,
                    at,
                    capacity,
                }]
            }
            AgentCommand::Claim { agent, chat } if !state.chats.contains(&chat) => {
                if state.presence != Presence::Online {
                    return Err(AgentRejection::NotOnline {
                        presence: state.presence,
                    });
                }
                if !state.can_take_chat() {
                    return Err(AgentRejection::AtCapacity {
                        held: u32::try_from(state.chats.len()).unwrap_or(u32::MAX),
                        capacity: state.capacity,
                    });
                }
                vec![AgentEvent::ChatClaimed { agent, at, chat }]
            }
            AgentCommand::Release { agent, chat } if state.chats.contains(&chat) => {
                vec![AgentEvent::ChatReleased { agent, at, chat }]
            }
            // Already so: a retry, or a no-op.
            AgentCommand::SetPresence { .. }
            | AgentCommand::SetCapacity { .. }
            | AgentCommand::Claim { .. }
            | AgentCommand::Release { .. } => Vec::new(),
        })
    }

    fn evolve(state: &mut AgentState, event: &AgentEvent) {
        state.version += 1;
        match event {
            AgentEvent::PresenceChanged { at, presence, .. } => {
                state.presence = *presence;
                state.presence_since = Some(*at);
            }
            AgentEvent::CapacitySet { capacity, .. } => state.capacity = *capacity,
            AgentEvent::ChatClaimed { chat, .. } => {
                state.chats.insert(*chat);
            }
            AgentEvent::ChatReleased { chat, .. } => {
                state.chats.remove(chat);
            }
        }
    }
}
