//! Queues with member agents and levels (R1): the configuration chat-routing reads. A queue is an
//! aggregate so that every membership change has an author and a time (M7), and so that routing
//! can state which configuration version it assumed.
//!
//! An agent's capacity (R2) is not here: it lives on the agent's own stream
//! (`chat_core::agent`, `AgentCapacitySet`), next to the chats the agent holds, so that one
//! stream decides "below capacity" without a second source of truth.

use super::common::{
    ConfigRejection, check_absent, check_count, check_name, check_reference, live, stamped_decider,
};
use crate::{AgentId, EventKind, QueueId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most members of one queue.
pub const MEMBERS_PER_QUEUE_MAX: usize = 500;

/// A member's level in a queue (R1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Serves chats started by visitors (and transfers).
    One,
    /// Only receives transferred chats.
    Two,
}

/// Longest a returning visitor's chat may wait for their previous agent (R3), in seconds.
pub const SAME_AGENT_WAIT_S_MAX: u32 = 24 * 3600;

/// How a queue picks among the agents who could take a chat (R4). chat-routing implements each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Selection {
    /// The agent idle for longest first.
    #[default]
    LongestIdle,
    /// The agent with the fewest chats first.
    LeastBusy,
    /// Each agent in turn.
    RoundRobin,
}

/// What happens when a visitor comes back: a resumed chat or a known contact (R3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RepeatMode {
    /// The previous agent is treated like anyone else.
    #[default]
    Any,
    /// The previous agent whenever they can take it; the chat waits up to `wait_s` seconds for
    /// them (at most [`SAME_AGENT_WAIT_S_MAX`]), then goes to anyone.
    Same {
        /// How long to wait for the previous agent.
        wait_s: u32,
    },
    /// Never the previous agent.
    New,
}

/// A queue's routing policy (R3, R4): configuration, so that every engine on one store routes
/// alike and every change has an author and a time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueuePolicy {
    /// How an agent is picked.
    pub selection: Selection,
    /// Returning visitors.
    pub repeat: RepeatMode,
}

/// A live queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    /// Its id.
    pub id: QueueId,
    /// Its name.
    pub name: String,
    /// Its reference (unique among queues).
    pub reference: String,
    /// Members and their levels.
    pub members: BTreeMap<AgentId, Level>,
    /// The routing policy.
    pub policy: QueuePolicy,
}

impl Queue {
    /// The agents that may receive a chat: level 1 only for a new chat, both levels for a
    /// transfer (R1).
    pub fn eligible(&self, transferred: bool) -> impl Iterator<Item = AgentId> + '_ {
        self.members
            .iter()
            .filter(move |(_, level)| transferred || **level == Level::One)
            .map(|(agent, _)| *agent)
    }
}

/// The state of a queue stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueState {
    /// The queue, once created.
    pub queue: Option<Queue>,
    /// Whether it was deleted.
    pub deleted: bool,
}

/// What an admin can ask of a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueCommand {
    /// Create (the host reserves the reference in the same append).
    Create {
        /// Minted by the host.
        id: QueueId,
        /// Its name.
        name: String,
        /// Its reference.
        reference: String,
    },
    /// Rename.
    Rename {
        /// The new name.
        name: String,
    },
    /// Add a member, or change a member's level.
    SetMember {
        /// The agent.
        agent: AgentId,
        /// The level.
        level: Level,
    },
    /// Remove a member.
    RemoveMember {
        /// The agent.
        agent: AgentId,
    },
    /// Set the routing policy (R3, R4).
    SetPolicy {
        /// The new policy.
        policy: QueuePolicy,
    },
    /// Delete (the host releases the reference in the same append).
    Delete,
}

/// What happened to a queue. Stored inside [`Stamped`](super::Stamped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueEvent {
    /// The queue exists.
    Created {
        /// Its id.
        id: QueueId,
        /// Its name.
        name: String,
        /// Its reference.
        reference: String,
    },
    /// Renamed.
    Renamed {
        /// The new name.
        name: String,
    },
    /// A member was added or changed level.
    MemberSet {
        /// The agent.
        agent: AgentId,
        /// The level.
        level: Level,
    },
    /// A member was removed.
    MemberRemoved {
        /// The agent.
        agent: AgentId,
    },
    /// The routing policy changed.
    PolicySet {
        /// The new policy.
        policy: QueuePolicy,
    },
    /// Deleted.
    Deleted,
}

impl EventKind for QueueEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "QueueCreated",
            Self::Renamed { .. } => "QueueRenamed",
            Self::MemberSet { .. } => "QueueMemberSet",
            Self::MemberRemoved { .. } => "QueueMemberRemoved",
            Self::PolicySet { .. } => "QueuePolicySet",
            Self::Deleted => "QueueDeleted",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// The queue aggregate's decider (state [`QueueState`]).
#[derive(Debug)]
pub enum QueueDecider {}

stamped_decider!(QueueDecider {
    state: QueueState,
    command: QueueCommand,
    event: QueueEvent,
    decide: decide,
    evolve: evolve,
});

fn decide(state: &QueueState, command: &QueueCommand) -> Result<Vec<QueueEvent>, ConfigRejection> {
    const OBJECT: &str = "queue";
    if let QueueCommand::Create {
        id,
        name,
        reference,
    } = command
    {
        check_absent(OBJECT, state.queue.as_ref())?;
        check_name("name", name)?;
        check_reference(reference)?;
        return Ok(vec![QueueEvent::Created {
            id: *id,
            name: name.clone(),
            reference: reference.clone(),
        }]);
    }
    let queue = live(OBJECT, state.queue.as_ref(), state.deleted)?;
    Ok(match command {
        QueueCommand::Create { .. } => vec![],
        QueueCommand::Rename { name } => {
            check_name("name", name)?;
            if *name == queue.name {
                vec![]
            } else {
                vec![QueueEvent::Renamed { name: name.clone() }]
            }
        }
        QueueCommand::SetMember { agent, level } => match queue.members.get(agent) {
            Some(current) if current == level => vec![],
            Some(_) => vec![QueueEvent::MemberSet {
                agent: *agent,
                level: *level,
            }],
            None => {
                check_count("members", queue.members.len() + 1, MEMBERS_PER_QUEUE_MAX)?;
                vec![QueueEvent::MemberSet {
                    agent: *agent,
                    level: *level,
                }]
            }
        },
        QueueCommand::RemoveMember { agent } => {
            if !queue.members.contains_key(agent) {
                return Err(ConfigRejection::Missing {
                    field: "members".to_owned(),
                    value: agent.to_string(),
                });
            }
            vec![QueueEvent::MemberRemoved { agent: *agent }]
        }
        QueueCommand::SetPolicy { policy } => {
            if let RepeatMode::Same { wait_s } = policy.repeat
                && wait_s > SAME_AGENT_WAIT_S_MAX
            {
                return Err(ConfigRejection::OutOfRange {
                    field: "policy.repeat.wait_s".to_owned(),
                    min: 0,
                    max: u64::from(SAME_AGENT_WAIT_S_MAX),
                    value: u64::from(wait_s),
                });
            }
            if *policy == queue.policy {
                vec![]
            } else {
                vec![QueueEvent::PolicySet { policy: *policy }]
            }
        }
        QueueCommand::Delete => vec![QueueEvent::Deleted],
    })
}

fn evolve(state: &mut QueueState, event: &QueueEvent) {
    if let QueueEvent::Created {
        id,
        name,
        reference,
    } = event
    {
        state.queue = Some(Queue {
            id: *id,
            name: name.clone(),
            reference: reference.clone(),
            members: BTreeMap::new(),
            policy: QueuePolicy::default(),
        });
        return;
    }
    let Some(queue) = state.queue.as_mut() else {
        return;
    };
    match event {
        QueueEvent::Created { .. } => {}
        QueueEvent::Renamed { name } => queue.name = name.clone(),
        QueueEvent::MemberSet { agent, level } => {
            queue.members.insert(*agent, *level);
        }
        QueueEvent::MemberRemoved { agent } => {
            queue.members.remove(agent);
        }
        QueueEvent::PolicySet { policy } => queue.policy = *policy,
        QueueEvent::Deleted => state.deleted = true,
    }
}
