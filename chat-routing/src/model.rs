//! The inputs of routing, defined here rather than borrowed from chat-core.
//!
//! Routing must stay a small pure function that anyone can property-test, so it owns plain data
//! types: the engine converts its configuration and projections into these. Opening hours arrive
//! as data the host already evaluated in the module's time zone ([`Opening`]), which keeps time
//! zones and DST out of routing entirely (Rocket.Chat #4898 was a DST slip inside routing).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::RouteError;
use crate::limits::{
    AGENT_CAPACITY_MAX, CONDITIONS_MAX, EXCLUDED_AGENTS_MAX, MEMBERSHIPS_MAX, QUEUE_WAITING_MAX,
    RULES_MAX, VARIABLE_BYTES_MAX, VARIABLES_MAX,
};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fixed id for tests and examples: `from_u128(1)` is always the same id.
            pub const fn from_u128(value: u128) -> Self {
                Self(Uuid::from_u128(value))
            }
        }

        impl fmt::Debug for $name {
            // Short form: failing property tests print whole worlds, and small test ids stay
            // readable as `AgentId(3)` instead of a 36-character UUID.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let value = self.0.as_u128();
                if value < 1 << 32 {
                    write!(f, "{}({value})", stringify!($name))
                } else {
                    write!(f, "{}({})", stringify!($name), self.0)
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id!(
    /// An agent who can be given chats (the engine's `chat_core::AgentId`, converted).
    AgentId
);
id!(
    /// A chat being routed.
    ChatId
);
id!(
    /// A queue: a set of member agents and the policy that picks among them.
    QueueId
);
id!(
    /// A chat module (entry point) whose opening hours and concurrency cap gate new chats.
    ModuleId
);

/// Whether an agent takes new chats. Only `Online` agents are given chats (A1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Presence {
    /// Takes chats.
    Online,
    /// Signed in but not taking chats; counts as "nobody online" for unmanaged (C3).
    Away,
    /// Signed out.
    Offline,
}

/// A membership level (R1): level 1 serves chats started by visitors, level 2 only transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    /// Serves visitor-started, resumed and transferred chats.
    One,
    /// Serves transferred chats only (second-line support).
    Two,
}

/// One agent as routing sees it. `load` is the agent's CURRENT number of open chats: routing
/// never looks at lifetime counters, so an agent back from holiday is not flooded (Rocket.Chat
/// #13134).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Who.
    pub id: AgentId,
    /// Only online agents receive chats.
    pub presence: Presence,
    /// Maximum concurrent chats (R2); at most [`AGENT_CAPACITY_MAX`].
    pub capacity: u32,
    /// Chats the agent has open now.
    pub load: u32,
    /// When the agent was last given a chat; `None` (never) is the longest idle of all.
    pub last_assigned_at: Option<DateTime<Utc>>,
    /// The queues the agent serves and at which level; at most [`MEMBERSHIPS_MAX`].
    pub memberships: BTreeMap<QueueId, Level>,
}

impl Agent {
    /// An online agent with no chats and no memberships: the start of most test fixtures.
    pub fn online(id: AgentId, capacity: u32) -> Self {
        Self {
            id,
            presence: Presence::Online,
            capacity,
            load: 0,
            last_assigned_at: None,
            memberships: BTreeMap::new(),
        }
    }

    /// The same agent, also a member of `queue` at `level` (builder style for fixtures).
    #[must_use]
    pub fn member_of(mut self, queue: QueueId, level: Level) -> Self {
        self.memberships.insert(queue, level);
        self
    }

    /// Whether the agent could take one more chat right now, whatever the chat.
    pub fn has_spare_capacity(&self) -> bool {
        self.presence == Presence::Online && self.load < self.capacity
    }

    pub(crate) fn validate(&self) -> Result<(), RouteError> {
        if self.capacity > AGENT_CAPACITY_MAX {
            return Err(RouteError::TooLarge {
                field: "agent.capacity",
                value: self.capacity as usize,
                max: AGENT_CAPACITY_MAX as usize,
            });
        }
        check_count("agent.memberships", self.memberships.len(), MEMBERSHIPS_MAX)
    }
}

/// How a queue picks among the agents who could take a chat (R4). Ties are always broken by a
/// total order ending in the agent id, so the answer never depends on input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Selection {
    /// Oldest `last_assigned_at` first (never-assigned first), then id.
    LongestIdle,
    /// Lowest current `load` first, then longest idle, then id.
    LeastBusy,
    /// The next agent id after the queue's last assignee, wrapping around.
    RoundRobin,
}

/// What happens when a visitor comes back (R3): a resumed chat or a known contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RepeatMode {
    /// The previous agent is treated like anyone else.
    Any,
    /// The previous agent whenever eligible; while not, the chat waits up to `wait_s` seconds for
    /// them, then falls back to anyone. Never routed to them while they are offline (Chatwoot
    /// #4158).
    Same {
        /// How long a returning chat waits for its previous agent.
        wait_s: u32,
    },
    /// Never the previous agent.
    New,
}

/// A queue's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// Which queue.
    pub id: QueueId,
    /// How an agent is picked.
    pub selection: Selection,
    /// `true`: higher `priority` is served first, FIFO within a priority; `false`: plain FIFO.
    pub priority_ordering: bool,
    /// Returning visitors (R3).
    pub repeat: RepeatMode,
    /// The queue's length limit: a new chat beyond it is turned away offline. At most
    /// [`QUEUE_WAITING_MAX`].
    pub waiting_max: u32,
}

impl Queue {
    /// A FIFO queue with the given selection, no repeat preference and the largest length.
    pub fn new(id: QueueId, selection: Selection) -> Self {
        Self {
            id,
            selection,
            priority_ordering: false,
            repeat: RepeatMode::Any,
            waiting_max: QUEUE_WAITING_MAX,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RouteError> {
        if self.waiting_max > QUEUE_WAITING_MAX {
            return Err(RouteError::TooLarge {
                field: "queue.waiting_max",
                value: self.waiting_max as usize,
                max: QUEUE_WAITING_MAX as usize,
            });
        }
        Ok(())
    }
}

/// A module's opening state as the host evaluated it from its time-zone-aware schedule: open or
/// closed now, and valid `until` the next change. Deciding at or after `until` is refused
/// ([`RouteError::StaleOpening`]) so stale hours can never slip through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// Open for new chats.
    pub open: bool,
    /// The next instant the state changes; `None`: never (always open or always closed).
    pub until: Option<DateTime<Utc>>,
}

impl Opening {
    /// Open, with no change ahead.
    pub const ALWAYS: Self = Self {
        open: true,
        until: None,
    };
}

/// A condition over one routing variable (R5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// The variable equals `value`.
    Equals {
        /// Variable name.
        variable: String,
        /// Expected value.
        value: String,
    },
    /// The variable is one of `values`.
    OneOf {
        /// Variable name.
        variable: String,
        /// Accepted values.
        values: BTreeSet<String>,
    },
    /// The variable contains `value` as a substring.
    Contains {
        /// Variable name.
        variable: String,
        /// Substring searched for.
        value: String,
    },
    /// The variable is set (to anything).
    Present {
        /// Variable name.
        variable: String,
    },
}

impl Condition {
    fn holds(&self, variables: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals { variable, value } => variables.get(variable) == Some(value),
            Self::OneOf { variable, values } => {
                variables.get(variable).is_some_and(|v| values.contains(v))
            }
            Self::Contains { variable, value } => variables
                .get(variable)
                .is_some_and(|v| v.contains(value.as_str())),
            Self::Present { variable } => variables.contains_key(variable),
        }
    }

    fn strings(&self) -> Vec<&str> {
        match self {
            Self::Equals { variable, value } | Self::Contains { variable, value } => {
                vec![variable, value]
            }
            Self::OneOf { variable, values } => std::iter::once(variable.as_str())
                .chain(values.iter().map(String::as_str))
                .collect(),
            Self::Present { variable } => vec![variable],
        }
    }
}

/// A smart-routing rule (R5): when every condition holds, the chat goes to `queue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// All must hold (an empty list always holds); at most [`CONDITIONS_MAX`].
    pub all: Vec<Condition>,
    /// Where matching chats go.
    pub queue: QueueId,
}

/// A chat module as routing sees it: hours, concurrency cap, and smart routing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Which module.
    pub id: ModuleId,
    /// Opening hours, evaluated by the host (C2).
    pub opening: Opening,
    /// Maximum concurrent open chats (waiting + active) for the module; `None`: no cap (C2).
    pub open_chats_max: Option<u32>,
    /// Open chats now (waiting + active). The snapshot keeps it up to date as decisions apply.
    pub open_chats: u32,
    /// Smart routing, first match wins; at most [`RULES_MAX`].
    pub rules: Vec<Rule>,
    /// Where a chat goes when no rule matches.
    pub default_queue: QueueId,
}

impl Module {
    /// An always-open module without a cap or rules, routing everything to `queue`.
    pub fn new(id: ModuleId, queue: QueueId) -> Self {
        Self {
            id,
            opening: Opening::ALWAYS,
            open_chats_max: None,
            open_chats: 0,
            rules: Vec::new(),
            default_queue: queue,
        }
    }

    /// The queue smart routing chooses for these variables, and the index of the rule that chose
    /// it (`None`: the default queue).
    pub fn choose_queue(&self, variables: &BTreeMap<String, String>) -> (QueueId, Option<usize>) {
        self.rules
            .iter()
            .position(|rule| rule.all.iter().all(|c| c.holds(variables)))
            .map_or((self.default_queue, None), |i| {
                (self.rules[i].queue, Some(i))
            })
    }

    pub(crate) fn validate(&self) -> Result<(), RouteError> {
        check_count("module.rules", self.rules.len(), RULES_MAX)?;
        for rule in &self.rules {
            check_count("module.rules.all", rule.all.len(), CONDITIONS_MAX)?;
            for condition in &rule.all {
                for text in condition.strings() {
                    check_count("module.rules.all.value", text.len(), VARIABLE_BYTES_MAX)?;
                }
            }
        }
        Ok(())
    }
}

/// How a chat came to need an agent. It decides which levels may serve it (R1) and whether the
/// repeat-visitor mode applies (R3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Started by a visitor: level 1 only.
    Customer,
    /// Transferred by an agent: level 1 or 2; the repeat mode does not apply.
    Transfer,
    /// Resumed by the visitor after it ended (C7): visitor-started, so level 1 only.
    Resume,
}

impl Origin {
    /// Whether this chat was started by the visitor (so level 2 may not take it).
    pub fn is_visitor_started(self) -> bool {
        self != Self::Transfer
    }
}

/// A chat that needs an agent, as routing sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingChat {
    /// Which chat.
    pub id: ChatId,
    /// The version of the chat's stream the host read; decisions are conditional on it.
    pub version: u64,
    /// The module it came through.
    pub module: ModuleId,
    /// The queue it waits in.
    pub queue: QueueId,
    /// When it entered this queue (FIFO order; the start of a sticky-agent wait).
    pub arrived_at: DateTime<Utc>,
    /// Higher first, in queues with `priority_ordering`.
    pub priority: u8,
    /// How it came here.
    pub origin: Origin,
    /// The agent who served this visitor last time (resume or known contact).
    pub previous_agent: Option<AgentId>,
    /// Routing variables from forms and page data (R5); at most [`VARIABLES_MAX`].
    pub variables: BTreeMap<String, String>,
    /// Agents who must not get this chat (e.g. the one transferring it); at most
    /// [`EXCLUDED_AGENTS_MAX`].
    pub excluded_agents: BTreeSet<AgentId>,
}

impl WaitingChat {
    pub(crate) fn validate(&self) -> Result<(), RouteError> {
        check_count("chat.variables", self.variables.len(), VARIABLES_MAX)?;
        for (name, value) in &self.variables {
            check_count("chat.variables.name", name.len(), VARIABLE_BYTES_MAX)?;
            check_count("chat.variables.value", value.len(), VARIABLE_BYTES_MAX)?;
        }
        check_count(
            "chat.excluded_agents",
            self.excluded_agents.len(),
            EXCLUDED_AGENTS_MAX,
        )
    }

    /// The instant a sticky wait for the previous agent ends, if this chat has one in `queue`.
    pub(crate) fn sticky_until(&self, queue: &Queue) -> Option<DateTime<Utc>> {
        match (queue.repeat, self.previous_agent, self.origin) {
            (RepeatMode::Same { wait_s }, Some(_), origin) if origin != Origin::Transfer => {
                Some(self.arrived_at + chrono::Duration::seconds(i64::from(wait_s)))
            }
            _ => None,
        }
    }
}

fn check_count(field: &'static str, value: usize, max: usize) -> Result<(), RouteError> {
    if value > max {
        Err(RouteError::TooLarge { field, value, max })
    } else {
        Ok(())
    }
}
