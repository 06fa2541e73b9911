//! The world routing decides over, kept indexed so one decision costs O(log agents).
//!
//! A naive router scans every agent per decision; at 10,000 agents and 100,000 waiting chats a
//! drain would then cost a billion checks. The snapshot instead keeps, per (queue, level), the
//! available agents (online, spare capacity) in each selection order — `(load, last_assigned, id)`,
//! `(last_assigned, id)` and `id` — so a selection is the first entry that the chat does not
//! exclude. Waiting chats are kept in service order (priority, arrival, id). Every index is a
//! `BTreeSet`: iteration order is a total order on the data, never on hashing or insertion.
//!
//! The host owns the snapshot: it loads it from its projections, feeds it changes (presence,
//! ended chats, configuration) and applies the decisions it managed to commit.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::decision::{Decision, Preconditions};
use crate::error::{Conflict, RouteError};
use crate::limits::{AGENTS_MAX, MODULES_MAX, QUEUES_MAX};
use crate::model::{
    Agent, AgentId, ChatId, Level, Module, ModuleId, Opening, Presence, Queue, QueueId, WaitingChat,
};

/// The service order of waiting chats: higher priority first (when the queue orders by
/// priority), then earlier arrival, then chat id.
pub(crate) type OrderKey = (Reverse<u8>, DateTime<Utc>, ChatId);

/// The agents of one (queue, level), indexed for each selection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pool {
    /// Online members, whatever their load: "could anybody ever take this chat?" (C3).
    pub(crate) online: BTreeSet<AgentId>,
    /// Online members with spare capacity, by id (round robin, custom policies).
    pub(crate) by_id: BTreeSet<AgentId>,
    /// The same, longest idle first.
    pub(crate) by_idle: BTreeSet<(Option<DateTime<Utc>>, AgentId)>,
    /// The same, least busy first, then longest idle.
    pub(crate) by_load: BTreeSet<(u32, Option<DateTime<Utc>>, AgentId)>,
}

/// Agents, queues, modules and waiting chats at one instant, with the indexes routing needs.
///
/// Equality compares the data, not the indexes (they are derived from it).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    agents: BTreeMap<AgentId, Agent>,
    queues: BTreeMap<QueueId, Queue>,
    modules: BTreeMap<ModuleId, Module>,
    waiting: BTreeMap<ChatId, WaitingChat>,
    cursors: BTreeMap<QueueId, AgentId>,
    order: BTreeSet<OrderKey>,
    by_queue: BTreeSet<(QueueId, OrderKey)>,
    queue_lengths: BTreeMap<QueueId, u32>,
    holds: BTreeSet<(DateTime<Utc>, ChatId)>,
    pools: BTreeMap<(QueueId, Level), Pool>,
    spare: BTreeSet<AgentId>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.agents == other.agents
            && self.queues == other.queues
            && self.modules == other.modules
            && self.waiting == other.waiting
            && self.cursors == other.cursors
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// An empty world.
    pub fn new() -> Self {
        Self::default()
    }

    // ----- reading -------------------------------------------------------------------------

    /// One agent.
    pub fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// Every agent, by id.
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// One queue.
    pub fn queue(&self, id: QueueId) -> Option<&Queue> {
        self.queues.get(&id)
    }

    /// Every queue, by id.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    /// One module.
    pub fn module(&self, id: ModuleId) -> Option<&Module> {
        self.modules.get(&id)
    }

    /// Every module, by id.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.values()
    }

    /// One waiting chat.
    pub fn waiting_chat(&self, id: ChatId) -> Option<&WaitingChat> {
        self.waiting.get(&id)
    }

    /// Every waiting chat in service order (the order `drain` serves them in).
    pub fn waiting(&self) -> impl Iterator<Item = &WaitingChat> {
        self.order.iter().map(|key| &self.waiting[&key.2])
    }

    /// How many chats wait.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// How many chats wait in one queue.
    pub fn queue_len(&self, queue: QueueId) -> u32 {
        self.queue_lengths.get(&queue).copied().unwrap_or(0)
    }

    /// The last agent round robin gave a chat to in this queue.
    pub fn round_robin_cursor(&self, queue: QueueId) -> Option<AgentId> {
        self.cursors.get(&queue).copied()
    }

    pub(crate) fn pool(&self, queue: QueueId, level: Level) -> Option<&Pool> {
        self.pools.get(&(queue, level))
    }

    pub(crate) fn order(&self) -> &BTreeSet<OrderKey> {
        &self.order
    }

    /// Whether a chat already waits in `chat`'s queue ahead of it (same or higher priority,
    /// earlier arrival): then a newcomer must not overtake it (Chatwoot #10583).
    pub(crate) fn waiting_ahead(&self, chat: &WaitingChat) -> bool {
        let key = self.order_key(chat);
        let first = (
            Reverse(u8::MAX),
            DateTime::<Utc>::MIN_UTC,
            ChatId::from_u128(0),
        );
        self.by_queue
            .range((chat.queue, first)..(chat.queue, key))
            .next()
            .is_some()
    }

    pub(crate) fn holds(&self) -> &BTreeSet<(DateTime<Utc>, ChatId)> {
        &self.holds
    }

    pub(crate) fn anyone_has_spare_capacity(&self) -> bool {
        !self.spare.is_empty()
    }

    // ----- host changes --------------------------------------------------------------------

    /// Adds or replaces an agent (presence, capacity, load, memberships …).
    pub fn upsert_agent(&mut self, agent: Agent) -> Result<(), RouteError> {
        agent.validate()?;
        if !self.agents.contains_key(&agent.id) && self.agents.len() >= AGENTS_MAX {
            return Err(too_many("snapshot.agents", AGENTS_MAX));
        }
        if let Some(old) = self.agents.remove(&agent.id) {
            self.unindex_agent(&old);
        }
        self.index_agent(&agent);
        self.agents.insert(agent.id, agent);
        Ok(())
    }

    /// Removes an agent (deleted account); their chats are the host's business.
    pub fn remove_agent(&mut self, id: AgentId) -> Option<Agent> {
        let agent = self.agents.remove(&id)?;
        self.unindex_agent(&agent);
        Some(agent)
    }

    /// An agent went online, away or offline (A1).
    pub fn set_presence(&mut self, id: AgentId, presence: Presence) -> Result<(), RouteError> {
        self.update_agent(id, |agent| agent.presence = presence)
    }

    /// An agent's active chat ended (or was handed elsewhere by the host): one less load, one less
    /// open chat for the module.
    pub fn end_chat(&mut self, agent: AgentId, module: ModuleId) -> Result<(), RouteError> {
        // Both looked up before either changes: a refused call leaves the snapshot as it was.
        if !self.agents.contains_key(&agent) {
            return Err(RouteError::UnknownAgent(agent));
        }
        let m = self
            .modules
            .get_mut(&module)
            .ok_or(RouteError::UnknownModule(module))?;
        m.open_chats = m.open_chats.saturating_sub(1);
        self.update_agent(agent, |a| a.load = a.load.saturating_sub(1))
    }

    /// Adds or replaces a queue; its waiting chats are re-indexed if its ordering or repeat mode
    /// changed.
    pub fn upsert_queue(&mut self, queue: Queue) -> Result<(), RouteError> {
        queue.validate()?;
        if !self.queues.contains_key(&queue.id) && self.queues.len() >= QUEUES_MAX {
            return Err(too_many("snapshot.queues", QUEUES_MAX));
        }
        let members: Vec<WaitingChat> = self
            .waiting
            .values()
            .filter(|c| c.queue == queue.id)
            .cloned()
            .collect();
        for chat in &members {
            self.unindex_chat(chat);
        }
        self.queues.insert(queue.id, queue);
        for chat in &members {
            self.index_chat(chat);
        }
        Ok(())
    }

    /// Adds or replaces a module (hours, cap, smart-routing rules, open-chat count).
    pub fn upsert_module(&mut self, module: Module) -> Result<(), RouteError> {
        module.validate()?;
        if !self.modules.contains_key(&module.id) && self.modules.len() >= MODULES_MAX {
            return Err(too_many("snapshot.modules", MODULES_MAX));
        }
        self.modules.insert(module.id, module);
        Ok(())
    }

    /// The host re-evaluated a module's schedule (at `opening.until` of the previous state, or
    /// after a configuration change).
    pub fn set_opening(&mut self, module: ModuleId, opening: Opening) -> Result<(), RouteError> {
        let m = self
            .modules
            .get_mut(&module)
            .ok_or(RouteError::UnknownModule(module))?;
        m.opening = opening;
        Ok(())
    }

    /// Loads a chat that already waits (from the host's projection). Its module's open-chat count
    /// is the host's and is not changed.
    pub fn insert_waiting(&mut self, chat: WaitingChat) -> Result<(), RouteError> {
        chat.validate()?;
        if self.waiting.contains_key(&chat.id) {
            return Err(RouteError::AlreadyWaiting(chat.id));
        }
        let queue = self
            .queues
            .get(&chat.queue)
            .ok_or(RouteError::UnknownQueue(chat.queue))?;
        if self.queue_len(chat.queue) >= queue.waiting_max {
            return Err(RouteError::TooLarge {
                field: "queue.waiting",
                value: self.queue_len(chat.queue) as usize + 1,
                max: queue.waiting_max as usize,
            });
        }
        self.index_chat(&chat);
        self.waiting.insert(chat.id, chat);
        Ok(())
    }

    /// A waiting chat left the queue without an agent (abandoned, timed out, ended unmanaged).
    pub fn remove_waiting(&mut self, id: ChatId) -> Option<WaitingChat> {
        let chat = self.waiting.remove(&id)?;
        self.unindex_chat(&chat);
        if let Some(m) = self.modules.get_mut(&chat.module) {
            m.open_chats = m.open_chats.saturating_sub(1);
        }
        Some(chat)
    }

    /// Loads the round-robin position of a queue (from the host's projection).
    pub fn set_round_robin_cursor(&mut self, queue: QueueId, agent: AgentId) {
        self.cursors.insert(queue, agent);
    }

    /// Whether a decision's preconditions still hold here. A host backed by a shared store checks
    /// the same things inside its commit; this is the in-memory version.
    pub fn check(&self, expect: &Preconditions) -> Result<(), Conflict> {
        match (expect.chat_waiting, self.waiting.get(&expect.chat)) {
            (true, Some(c)) if c.version == expect.chat_version => {}
            (true, _) => {
                return Err(Conflict::ChatMoved {
                    chat: expect.chat,
                    expected: expect.chat_version,
                });
            }
            (false, Some(_)) => return Err(Conflict::ChatAlreadyWaiting(expect.chat)),
            (false, None) => {}
        }
        if let Some((agent, load)) = expect.agent_load {
            let a = self.agents.get(&agent).ok_or(Conflict::Missing)?;
            if a.load != load {
                return Err(Conflict::AgentLoadChanged {
                    agent,
                    expected: load,
                });
            }
        }
        if let Some((module, count)) = expect.module_open_chats {
            let m = self.modules.get(&module).ok_or(Conflict::Missing)?;
            if m.open_chats != count {
                return Err(Conflict::ModuleCountChanged {
                    module,
                    expected: count,
                });
            }
        }
        Ok(())
    }

    /// Commits a decision to this snapshot if its preconditions hold: the chosen agent's load
    /// grows, the chat leaves (or joins) the queue, the module's count and the round-robin
    /// cursor move. Offline and unmanaged decisions change nothing.
    pub fn apply(&mut self, decision: &Decision) -> Result<(), Conflict> {
        match decision {
            Decision::Assign(a) => {
                self.check(&a.expect)?;
                let agent = self.agents.get(&a.agent).ok_or(Conflict::Missing)?;
                if !agent.has_spare_capacity() || !agent.memberships.contains_key(&a.chat.queue) {
                    return Err(Conflict::AgentUnavailable(a.agent));
                }
                if a.expect.chat_waiting
                    && let Some(chat) = self.waiting.remove(&a.chat.id)
                {
                    self.unindex_chat(&chat);
                }
                self.release(a.release);
                let at = a.at;
                self.update_agent(a.agent, |agent| {
                    agent.load += 1;
                    agent.last_assigned_at = Some(agent.last_assigned_at.map_or(at, |t| t.max(at)));
                })
                .map_err(|_| Conflict::Missing)?;
                assert!(
                    self.agents[&a.agent].load <= self.agents[&a.agent].capacity,
                    "capacity exceeded"
                );
                self.cursors.insert(a.chat.queue, a.agent);
                if a.admitted {
                    self.admit(a.chat.module);
                }
                Ok(())
            }
            Decision::Enqueue(e) => {
                self.check(&e.expect)?;
                if e.expect.chat_waiting {
                    return Ok(());
                }
                if !self.queues.contains_key(&e.chat.queue) {
                    return Err(Conflict::Missing);
                }
                self.release(e.release);
                self.index_chat(&e.chat);
                self.waiting.insert(e.chat.id, e.chat.clone());
                if e.admitted {
                    self.admit(e.chat.module);
                }
                Ok(())
            }
            Decision::Offline { .. } | Decision::Unmanaged { .. } => Ok(()),
        }
    }

    fn release(&mut self, agent: Option<AgentId>) {
        if let Some(id) = agent {
            // The releasing agent may have been removed meanwhile; nothing to release then.
            let _ = self.update_agent(id, |a| a.load = a.load.saturating_sub(1));
        }
    }

    fn admit(&mut self, module: ModuleId) {
        if let Some(m) = self.modules.get_mut(&module) {
            m.open_chats += 1;
        }
    }

    // ----- indexes -------------------------------------------------------------------------

    fn update_agent(
        &mut self,
        id: AgentId,
        change: impl FnOnce(&mut Agent),
    ) -> Result<(), RouteError> {
        let mut agent = self
            .agents
            .remove(&id)
            .ok_or(RouteError::UnknownAgent(id))?;
        self.unindex_agent(&agent);
        change(&mut agent);
        self.index_agent(&agent);
        self.agents.insert(id, agent);
        Ok(())
    }

    fn index_agent(&mut self, agent: &Agent) {
        let online = agent.presence == Presence::Online;
        let spare = agent.has_spare_capacity();
        if spare {
            self.spare.insert(agent.id);
        }
        for (&queue, &level) in &agent.memberships {
            let pool = self.pools.entry((queue, level)).or_default();
            if online {
                pool.online.insert(agent.id);
            }
            if spare {
                pool.by_id.insert(agent.id);
                pool.by_idle.insert((agent.last_assigned_at, agent.id));
                pool.by_load
                    .insert((agent.load, agent.last_assigned_at, agent.id));
            }
        }
    }

    fn unindex_agent(&mut self, agent: &Agent) {
        self.spare.remove(&agent.id);
        for (&queue, &level) in &agent.memberships {
            if let Some(pool) = self.pools.get_mut(&(queue, level)) {
                pool.online.remove(&agent.id);
                pool.by_id.remove(&agent.id);
                pool.by_idle.remove(&(agent.last_assigned_at, agent.id));
                pool.by_load
                    .remove(&(agent.load, agent.last_assigned_at, agent.id));
            }
        }
    }

    pub(crate) fn order_key(&self, chat: &WaitingChat) -> OrderKey {
        let by_priority = self
            .queues
            .get(&chat.queue)
            .is_some_and(|q| q.priority_ordering);
        let priority = if by_priority { chat.priority } else { 0 };
        (Reverse(priority), chat.arrived_at, chat.id)
    }

    fn index_chat(&mut self, chat: &WaitingChat) {
        let key = self.order_key(chat);
        self.order.insert(key);
        self.by_queue.insert((chat.queue, key));
        *self.queue_lengths.entry(chat.queue).or_default() += 1;
        if let Some(until) = self
            .queues
            .get(&chat.queue)
            .and_then(|q| chat.sticky_until(q))
        {
            self.holds.insert((until, chat.id));
        }
    }

    fn unindex_chat(&mut self, chat: &WaitingChat) {
        let key = self.order_key(chat);
        self.order.remove(&key);
        self.by_queue.remove(&(chat.queue, key));
        if let Some(n) = self.queue_lengths.get_mut(&chat.queue) {
            *n = n.saturating_sub(1);
        }
        if let Some(until) = self
            .queues
            .get(&chat.queue)
            .and_then(|q| chat.sticky_until(q))
        {
            self.holds.remove(&(until, chat.id));
        }
    }
}

fn too_many(field: &'static str, max: usize) -> RouteError {
    RouteError::TooLarge {
        field,
        value: max + 1,
        max,
    }
}
