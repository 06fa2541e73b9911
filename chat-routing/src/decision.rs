//! What routing answers, and the assumptions each answer rests on.
//!
//! Every decision that changes anything carries [`Preconditions`]: the chat's version and whether
//! it was waiting, the chosen agent's load, the module's open-chat count. A host commits the
//! decision only if they still hold (compare-and-set in its store) and otherwise re-reads and asks
//! again. That is what makes "3 instances, limit 3, an agent got 4 chats" (Rocket.Chat #37776) and
//! "one inquiry taken by several agents" (#22206) impossible rather than unlikely.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, ChatId, ModuleId, Presence, QueueId, WaitingChat};

/// The state of the world a decision was made in; the commit must check it atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preconditions {
    /// The chat decided on.
    pub chat: ChatId,
    /// The chat's stream version the decision read.
    pub chat_version: u64,
    /// `true`: the chat must still be waiting at `chat_version`; `false`: it must not be waiting
    /// (a new, resumed or transferred chat not yet queued).
    pub chat_waiting: bool,
    /// The chosen agent must still have exactly this load — and still be online and a member of
    /// the chat's queue (`Snapshot::apply` checks both; a store-backed host must too).
    pub agent_load: Option<(AgentId, u32)>,
    /// The module must still have exactly this many open chats (only when the module is capped
    /// and the decision admits a chat, so two hosts cannot both take the last slot).
    pub module_open_chats: Option<(ModuleId, u32)>,
}

/// Give a chat to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The chat as routed (queue, origin, previous agent …).
    pub chat: WaitingChat,
    /// Who gets it.
    pub agent: AgentId,
    /// The decision's `now`; becomes the agent's `last_assigned_at`.
    pub at: DateTime<Utc>,
    /// `true`: the chat newly counts towards its module's open chats (a new or resumed chat).
    pub admitted: bool,
    /// The agent who hands the chat over (a transfer) and loses one from their load.
    pub release: Option<AgentId>,
    /// What must still hold at commit.
    pub expect: Preconditions,
}

/// Put (or keep) a chat in its queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The chat as it will wait.
    pub chat: WaitingChat,
    /// Why nobody takes it now.
    pub reason: WaitReason,
    /// `true`: the chat newly counts towards its module's open chats.
    pub admitted: bool,
    /// The agent who hands the chat over (a transfer to a queue).
    pub release: Option<AgentId>,
    /// What must still hold at commit.
    pub expect: Preconditions,
}

/// Routing's answer to one request (C2, C3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// An agent takes the chat now.
    Assign(Assignment),
    /// The chat waits; agents who could take it exist but none can right now.
    Enqueue(Enqueued),
    /// The chat is not taken at all: outside hours, module at capacity or queue full (C2).
    Offline {
        /// Which chat.
        chat: ChatId,
        /// Its module.
        module: ModuleId,
        /// Why.
        reason: OfflineReason,
    },
    /// Nobody online could ever take this chat in its queue (C3): the host ends it as unmanaged
    /// or, with asynchronous chatting, keeps it.
    Unmanaged {
        /// Which chat.
        chat: ChatId,
        /// The queue that has nobody.
        queue: QueueId,
    },
}

impl Decision {
    /// The agent given the chat, if any.
    pub fn assigned_agent(&self) -> Option<AgentId> {
        match self {
            Self::Assign(a) => Some(a.agent),
            _ => None,
        }
    }
}

/// Why a chat is turned away (C2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineReason {
    /// The module is closed; `next_change` is when it opens, if known.
    OutsideHours {
        /// When the module's state next changes.
        next_change: Option<DateTime<Utc>>,
    },
    /// The module already has `open_chats_max` open chats.
    ModuleAtCapacity {
        /// The cap.
        open_chats_max: u32,
    },
    /// The queue already holds `waiting_max` chats.
    QueueFull {
        /// Which queue.
        queue: QueueId,
        /// Its limit.
        waiting_max: u32,
    },
}

/// Why a chat waits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitReason {
    /// Agents who could take it are online, all at capacity.
    AllBusy,
    /// The queue's same-agent mode holds the chat for its previous agent until `until`.
    WaitingForPreviousAgent {
        /// The previous agent.
        agent: AgentId,
        /// When the chat falls back to anyone.
        until: DateTime<Utc>,
    },
    /// Eligible agents exist but the policy chose none.
    PolicyDeclined,
    /// Chats ahead of it wait in its queue; a newcomer never overtakes them (Chatwoot #10583).
    /// The host's next drain serves the queue in order, this chat included if there is room.
    BehindWaitingChats,
}

/// Why one agent cannot take one chat. The engine checks these for every assignment, whatever
/// the policy, in one function (`crate::router`), also used to explain decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exclusion {
    /// Not a member of the chat's queue.
    NotMember,
    /// A level-2 member, and the chat was not transferred (R1).
    LevelTwoTakesOnlyTransfers,
    /// Not online (A1).
    NotOnline(Presence),
    /// Already at capacity (R2).
    AtCapacity {
        /// Current load.
        load: u32,
        /// Capacity.
        capacity: u32,
    },
    /// Listed in the chat's excluded agents (e.g. the agent transferring it).
    ExcludedForChat,
    /// The queue's repeat mode is "new agent" and this is the previous agent (R3).
    PreviousAgentInNewMode,
    /// The chat is held for its previous agent until then (R3, same-agent mode).
    HeldForPreviousAgent {
        /// When the hold ends.
        until: DateTime<Utc>,
    },
}

/// One agent's part in a decision, as [`Router::explain`](crate::Router::explain) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// This agent got the chat.
    Chosen,
    /// Could have taken it; the policy preferred another (or declined).
    Eligible,
    /// Could not take it, and why.
    Excluded(Exclusion),
}

/// Why the chat went to the queue it went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueChoice {
    /// Smart-routing rule number `n` (0-based) of the module matched (R5).
    Rule(usize),
    /// No rule matched: the module's default queue.
    ModuleDefault,
    /// The request named the queue (transfer, resume) or the chat already waits in it.
    Requested,
}

/// Why the decision is what it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// How the queue was chosen.
    pub queue_choice: QueueChoice,
    /// Each agent's verdict, by agent id. [`Router::decide`](crate::Router::decide) leaves this
    /// empty (`complete == false`) to stay logarithmic in the number of agents;
    /// [`Router::explain`](crate::Router::explain) fills it for every agent.
    pub agents: Vec<(AgentId, Verdict)>,
    /// Whether `agents` lists every agent.
    pub complete: bool,
}

/// A decision and its trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// What to do.
    pub decision: Decision,
    /// Why.
    pub trace: Trace,
}
