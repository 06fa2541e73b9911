//! Deciding: the rules every policy obeys, and the policies that choose among what is left.
//!
//! The split matters. The engine alone decides *who may* take a chat — membership, level (R1),
//! presence (A1), capacity (R2), per-chat exclusions, the repeat-visitor mode (R3) and queue
//! order (R4) — in one function, [`exclusion`]. A [`Policy`] only chooses *among* eligible
//! agents, and the engine re-checks its choice. So a custom policy can be unfair, but it can never
//! overfill an agent, wake an offline one or hand a visitor to level 2; the public harness
//! (feature `testing`) checks exactly that for any policy.

use std::collections::Bound;

use chrono::{DateTime, Utc};

use crate::decision::{
    Assignment, Decision, Enqueued, Exclusion, OfflineReason, Outcome, Preconditions, QueueChoice,
    Trace, Verdict, WaitReason,
};
use crate::error::RouteError;
use crate::model::{
    Agent, AgentId, ChatId, Level, ModuleId, Origin, Presence, Queue, QueueId, RepeatMode,
    Selection, WaitingChat,
};
use crate::snapshot::{Pool, Snapshot};

/// A chat that is not waiting yet, as the host describes it in a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingChat {
    /// Which chat.
    pub id: ChatId,
    /// The version of the chat's stream the host read.
    pub version: u64,
    /// The module it belongs to.
    pub module: ModuleId,
    /// Its priority (used by queues that order by priority).
    pub priority: u8,
    /// The agent who served this visitor last (resumed chat or known contact), for R3.
    pub previous_agent: Option<AgentId>,
    /// Routing variables (R5).
    pub variables: std::collections::BTreeMap<String, String>,
    /// Agents who must not get it.
    pub excluded_agents: std::collections::BTreeSet<AgentId>,
}

impl IncomingChat {
    /// A chat with no variables, exclusions, history or priority (fixtures and examples).
    pub fn new(id: ChatId, module: ModuleId) -> Self {
        Self {
            id,
            version: 0,
            module,
            priority: 0,
            previous_agent: None,
            variables: Default::default(),
            excluded_agents: Default::default(),
        }
    }
}

/// Where a transfer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any eligible agent of this queue (level 2 included).
    Queue(QueueId),
    /// This agent, who must be an eligible member of the chat's current queue.
    Agent(AgentId),
}

/// What the host asks routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A visitor starts a chat (C2): hours, module cap, smart routing, then an agent or the queue.
    New(IncomingChat),
    /// A visitor resumes an ended chat (C7): it re-enters `queue`, hours and cap apply again.
    Resume {
        /// The chat.
        chat: IncomingChat,
        /// The queue it re-enters.
        queue: QueueId,
    },
    /// An agent transfers an active chat (A3). The sender is excluded and released.
    Transfer {
        /// The chat.
        chat: IncomingChat,
        /// Its current queue (used for a transfer to an agent).
        queue: QueueId,
        /// The agent handing it over.
        from: AgentId,
        /// Where it goes.
        to: Target,
    },
    /// Ask again for a chat that already waits.
    Waiting(ChatId),
}

/// Chooses one agent among those the engine found eligible for a chat.
///
/// Return `None` to leave the chat waiting — but the harness's work-conservation check will flag a
/// policy that leaves a chat waiting while someone eligible has room.
pub trait Policy {
    /// The chosen agent; it must be one of `candidates` (the engine refuses anyone else with
    /// [`RouteError::PolicyChoseIneligible`]).
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId>;
}

impl<P: Policy + ?Sized> Policy for &P {
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId> {
        (**self).select(candidates)
    }
}

/// The built-in policy: the queue's own [`Selection`] (longest idle, least busy, round robin),
/// each answered from an index in O(log agents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSelection;

impl Policy for QueueSelection {
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates
            .first_by(candidates.queue().selection)
            .map(|agent| agent.id)
    }
}

/// The eligible agents for one chat, as a policy sees them.
pub struct Candidates<'a> {
    snapshot: &'a Snapshot,
    chat: &'a WaitingChat,
    queue: &'a Queue,
    now: DateTime<Utc>,
}

impl<'a> Candidates<'a> {
    /// The chat being routed.
    pub fn chat(&self) -> &'a WaitingChat {
        self.chat
    }

    /// Its queue.
    pub fn queue(&self) -> &'a Queue {
        self.queue
    }

    /// The decision's `now`.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The round-robin position of the queue.
    pub fn round_robin_cursor(&self) -> Option<AgentId> {
        self.snapshot.round_robin_cursor(self.queue.id)
    }

    /// The first eligible agent in a built-in order, from the snapshot's indexes: O(log agents +
    /// agents the chat excludes).
    pub fn first_by(&self, selection: Selection) -> Option<&'a Agent> {
        let cursor = self.round_robin_cursor();
        self.pools()
            .filter_map(|pool| self.first_in_pool(pool, selection, cursor))
            .min_by_key(|agent| selection_key(agent, selection, cursor))
    }

    /// Every eligible agent, by id: O(agents in the queue). For policies that need to look at
    /// everyone.
    pub fn eligible(&self) -> Vec<&'a Agent> {
        let mut all: Vec<&'a Agent> = self
            .pools()
            .flat_map(|pool| pool.by_id.iter())
            .filter_map(|id| self.if_eligible(*id))
            .collect();
        all.sort_by_key(|agent| agent.id);
        all
    }

    fn pools(&self) -> impl Iterator<Item = &'a Pool> + use<'a> {
        let snapshot = self.snapshot;
        let queue = self.queue.id;
        levels(self.chat.origin)
            .iter()
            .filter_map(move |level| snapshot.pool(queue, *level))
    }

    fn if_eligible(&self, id: AgentId) -> Option<&'a Agent> {
        let agent = self.snapshot.agent(id)?;
        exclusion(agent, self.chat, self.queue, self.now)
            .is_none()
            .then_some(agent)
    }

    fn first_in_pool(
        &self,
        pool: &'a Pool,
        selection: Selection,
        cursor: Option<AgentId>,
    ) -> Option<&'a Agent> {
        match selection {
            Selection::LeastBusy => pool
                .by_load
                .iter()
                .find_map(|&(_, _, id)| self.if_eligible(id)),
            Selection::LongestIdle => pool
                .by_idle
                .iter()
                .find_map(|&(_, id)| self.if_eligible(id)),
            Selection::RoundRobin => {
                let after = match cursor {
                    Some(c) => pool.by_id.range((Bound::Excluded(c), Bound::Unbounded)),
                    None => pool.by_id.range(..),
                };
                after
                    .chain(pool.by_id.iter())
                    .find_map(|&id| self.if_eligible(id))
            }
        }
    }
}

/// The total order of a selection, ending in the agent id so ties never depend on input order.
fn selection_key(
    agent: &Agent,
    selection: Selection,
    cursor: Option<AgentId>,
) -> (u32, Option<DateTime<Utc>>, AgentId) {
    match selection {
        Selection::LeastBusy => (agent.load, agent.last_assigned_at, agent.id),
        Selection::LongestIdle => (0, agent.last_assigned_at, agent.id),
        Selection::RoundRobin => {
            let wrapped = cursor.is_some_and(|c| agent.id <= c);
            (u32::from(wrapped), None, agent.id)
        }
    }
}

/// The membership levels that may serve a chat (R1): level 2 only receives transfers.
fn levels(origin: Origin) -> &'static [Level] {
    if origin.is_visitor_started() {
        &[Level::One]
    } else {
        &[Level::One, Level::Two]
    }
}

/// Why `agent` may not take `chat` in `queue` at `now`; `None`: eligible. The single source of
/// truth for eligibility: selection, the re-check of a policy's choice, transfers to an agent and
/// [`Router::explain`] all go through it.
pub fn exclusion(
    agent: &Agent,
    chat: &WaitingChat,
    queue: &Queue,
    now: DateTime<Utc>,
) -> Option<Exclusion> {
    static_exclusion(agent, chat, queue)
        .or_else(|| {
            (agent.presence != Presence::Online).then_some(Exclusion::NotOnline(agent.presence))
        })
        .or_else(|| {
            (agent.load >= agent.capacity).then_some(Exclusion::AtCapacity {
                load: agent.load,
                capacity: agent.capacity,
            })
        })
        .or_else(|| match (chat.sticky_until(queue), chat.previous_agent) {
            (Some(until), Some(previous)) if previous != agent.id && now < until => {
                Some(Exclusion::HeldForPreviousAgent { until })
            }
            _ => None,
        })
}

/// The exclusions that neither time nor load can lift: membership, level, the chat's own list,
/// new-agent mode. An online agent without one of these "could take the chat some time" (C3).
fn static_exclusion(agent: &Agent, chat: &WaitingChat, queue: &Queue) -> Option<Exclusion> {
    let Some(&level) = agent.memberships.get(&queue.id) else {
        return Some(Exclusion::NotMember);
    };
    if level == Level::Two && chat.origin.is_visitor_started() {
        return Some(Exclusion::LevelTwoTakesOnlyTransfers);
    }
    if chat.excluded_agents.contains(&agent.id) {
        return Some(Exclusion::ExcludedForChat);
    }
    let repeat_applies = chat.origin != Origin::Transfer;
    if repeat_applies && queue.repeat == RepeatMode::New && chat.previous_agent == Some(agent.id) {
        return Some(Exclusion::PreviousAgentInNewMode);
    }
    None
}

/// The chat resolved from a request, with what committing it would change.
struct Resolved {
    chat: WaitingChat,
    waiting: bool,
    admit: bool,
    release: Option<AgentId>,
    queue_choice: QueueChoice,
    target: Option<AgentId>,
}

/// Routing: a policy plus the rules no policy may break. Holds no state; every answer is a pure
/// function of (snapshot, request, now).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Router<P = QueueSelection> {
    policy: P,
}

impl Default for Router<QueueSelection> {
    /// The built-in policy: each queue's own [`Selection`].
    fn default() -> Self {
        Self::new(QueueSelection)
    }
}

impl<P: Policy> Router<P> {
    /// A router with this policy.
    pub fn new(policy: P) -> Self {
        Self { policy }
    }

    /// Decides one request. O(log agents + agents the chat excludes) with the built-in policy.
    /// The trace names the queue choice; use [`Router::explain`] for every agent's verdict.
    pub fn decide(
        &self,
        snapshot: &Snapshot,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RouteError> {
        let resolved = self.resolve(snapshot, request, now)?;
        let queue_choice = resolved.queue_choice;
        let decision = self.decide_resolved(snapshot, resolved, now)?;
        Ok(Outcome {
            decision,
            trace: Trace {
                queue_choice,
                agents: Vec::new(),
                complete: false,
            },
        })
    }

    /// The same decision as [`Router::decide`], with every agent's verdict in the trace: chosen,
    /// eligible, or excluded and why. O(agents).
    pub fn explain(
        &self,
        snapshot: &Snapshot,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Outcome, RouteError> {
        let resolved = self.resolve(snapshot, request, now)?;
        let (chat, queue_choice) = (resolved.chat.clone(), resolved.queue_choice);
        let decision = self.decide_resolved(snapshot, resolved, now)?;
        let queue = queue_of(snapshot, chat.queue)?;
        let chosen = decision.assigned_agent();
        let agents = snapshot
            .agents()
            .map(|agent| {
                let verdict = if Some(agent.id) == chosen {
                    Verdict::Chosen
                } else {
                    exclusion(agent, &chat, queue, now).map_or(Verdict::Eligible, Verdict::Excluded)
                };
                (agent.id, verdict)
            })
            .collect();
        Ok(Outcome {
            decision,
            trace: Trace {
                queue_choice,
                agents,
                complete: true,
            },
        })
    }

    /// Serves every waiting chat that can be served now, in service order (priority, arrival,
    /// id), applying each assignment to `snapshot` as it goes so the next one sees it. Returns
    /// the assignments in order; their preconditions chain, so a host commits them in order.
    ///
    /// A chat nobody can take now is skipped, not allowed to block the chats behind it; since
    /// assigning only ever takes capacity away, a skipped chat cannot become servable later in
    /// the same drain, so one pass equals repeated single decisions.
    pub fn drain(
        &self,
        snapshot: &mut Snapshot,
        now: DateTime<Utc>,
    ) -> Result<Vec<Outcome>, RouteError> {
        let mut served = Vec::new();
        let mut after = None;
        while snapshot.anyone_has_spare_capacity() {
            let next = match after {
                None => snapshot.order().iter().next(),
                Some(key) => snapshot
                    .order()
                    .range((Bound::Excluded(key), Bound::Unbounded))
                    .next(),
            };
            let Some(&key) = next else { break };
            after = Some(key);
            if !self.anyone_has_room(snapshot, key.2) {
                continue;
            }
            let outcome = self.decide(snapshot, &Request::Waiting(key.2), now)?;
            if let Decision::Assign(_) = &outcome.decision {
                snapshot
                    .apply(&outcome.decision)
                    .expect("a decision made on this snapshot applies to it");
                served.push(outcome);
            }
        }
        Ok(served)
    }

    /// The next instant at which a decision could change with no new input: a module's opening
    /// state expiring, or a returning chat's wait for its previous agent ending. `None`: nothing
    /// is scheduled. An instant at or before `now` means the host's opening data is stale.
    pub fn next_wakeup(&self, snapshot: &Snapshot, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let opening = snapshot.modules().filter_map(|m| m.opening.until).min();
        let last_id = ChatId::from_u128(u128::MAX);
        let hold = snapshot
            .holds()
            .range((Bound::Excluded((now, last_id)), Bound::Unbounded))
            .next()
            .map(|&(until, _)| until);
        opening.into_iter().chain(hold).min()
    }

    /// Cheap pre-check for drain: does the chat's queue have anyone with room at a level that
    /// may serve it?
    fn anyone_has_room(&self, snapshot: &Snapshot, chat: ChatId) -> bool {
        snapshot.waiting_chat(chat).is_some_and(|c| {
            levels(c.origin).iter().any(|level| {
                snapshot
                    .pool(c.queue, *level)
                    .is_some_and(|p| !p.by_id.is_empty())
            })
        })
    }

    fn resolve(
        &self,
        snapshot: &Snapshot,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Result<Resolved, RouteError> {
        let incoming = |chat: &IncomingChat, queue: QueueId, origin: Origin| WaitingChat {
            id: chat.id,
            version: chat.version,
            module: chat.module,
            queue,
            arrived_at: now,
            priority: chat.priority,
            origin,
            previous_agent: chat.previous_agent,
            variables: chat.variables.clone(),
            excluded_agents: chat.excluded_agents.clone(),
        };
        let resolved = match request {
            Request::New(chat) => {
                let module = snapshot
                    .module(chat.module)
                    .ok_or(RouteError::UnknownModule(chat.module))?;
                let (queue, rule) = module.choose_queue(&chat.variables);
                Resolved {
                    chat: incoming(chat, queue, Origin::Customer),
                    waiting: false,
                    admit: true,
                    release: None,
                    queue_choice: rule.map_or(QueueChoice::ModuleDefault, QueueChoice::Rule),
                    target: None,
                }
            }
            Request::Resume { chat, queue } => Resolved {
                chat: incoming(chat, *queue, Origin::Resume),
                waiting: false,
                admit: true,
                release: None,
                queue_choice: QueueChoice::Requested,
                target: None,
            },
            Request::Transfer {
                chat,
                queue,
                from,
                to,
            } => {
                let (queue, target) = match *to {
                    Target::Queue(q) => (q, None),
                    Target::Agent(a) => (*queue, Some(a)),
                };
                let mut resolved = incoming(chat, queue, Origin::Transfer);
                resolved.excluded_agents.insert(*from);
                Resolved {
                    chat: resolved,
                    waiting: false,
                    admit: false,
                    release: Some(*from),
                    queue_choice: QueueChoice::Requested,
                    target,
                }
            }
            Request::Waiting(id) => Resolved {
                chat: snapshot
                    .waiting_chat(*id)
                    .ok_or(RouteError::UnknownChat(*id))?
                    .clone(),
                waiting: true,
                admit: false,
                release: None,
                queue_choice: QueueChoice::Requested,
                target: None,
            },
        };
        resolved.chat.validate()?;
        if !resolved.waiting && snapshot.waiting_chat(resolved.chat.id).is_some() {
            return Err(RouteError::AlreadyWaiting(resolved.chat.id));
        }
        if snapshot.module(resolved.chat.module).is_none() {
            return Err(RouteError::UnknownModule(resolved.chat.module));
        }
        queue_of(snapshot, resolved.chat.queue)?;
        Ok(resolved)
    }

    fn decide_resolved(
        &self,
        snapshot: &Snapshot,
        resolved: Resolved,
        now: DateTime<Utc>,
    ) -> Result<Decision, RouteError> {
        let Resolved {
            chat,
            waiting: was_waiting,
            admit,
            release,
            target,
            ..
        } = resolved;
        let queue = queue_of(snapshot, chat.queue)?;
        let module = snapshot
            .module(chat.module)
            .ok_or(RouteError::UnknownModule(chat.module))?;
        if admit {
            if let Some(until) = module.opening.until
                && now >= until
            {
                return Err(RouteError::StaleOpening {
                    module: module.id,
                    until,
                });
            }
            let reason = if !module.opening.open {
                Some(OfflineReason::OutsideHours {
                    next_change: module.opening.until,
                })
            } else {
                module
                    .open_chats_max
                    .filter(|&max| module.open_chats >= max)
                    .map(|open_chats_max| OfflineReason::ModuleAtCapacity { open_chats_max })
            };
            if let Some(reason) = reason {
                return Ok(Decision::Offline {
                    chat: chat.id,
                    module: module.id,
                    reason,
                });
            }
        }
        let module_open_chats =
            (admit && module.open_chats_max.is_some()).then_some((module.id, module.open_chats));
        let expect = |agent: Option<&Agent>| Preconditions {
            chat: chat.id,
            chat_version: chat.version,
            chat_waiting: was_waiting,
            agent_load: agent.map(|a| (a.id, a.load)),
            module_open_chats,
        };

        let chosen = match target {
            Some(target) => {
                let agent = snapshot
                    .agent(target)
                    .ok_or(RouteError::UnknownAgent(target))?;
                if let Some(why) = exclusion(agent, &chat, queue, now) {
                    return Err(RouteError::TransferTargetIneligible { agent: target, why });
                }
                Ok(agent)
            }
            None if !was_waiting && snapshot.waiting_ahead(&chat) => {
                Err(WaitReason::BehindWaitingChats)
            }
            None => self.select(snapshot, &chat, queue, now)?,
        };
        match chosen {
            Ok(agent) => {
                let expect = expect(Some(agent));
                Ok(Decision::Assign(Assignment {
                    chat,
                    agent: agent.id,
                    at: now,
                    admitted: admit,
                    release,
                    expect,
                }))
            }
            Err(reason) => {
                if !could_ever_take(snapshot, &chat, queue) {
                    return Ok(Decision::Unmanaged {
                        chat: chat.id,
                        queue: queue.id,
                    });
                }
                if !was_waiting && snapshot.queue_len(queue.id) >= queue.waiting_max {
                    return Ok(Decision::Offline {
                        chat: chat.id,
                        module: module.id,
                        reason: OfflineReason::QueueFull {
                            queue: queue.id,
                            waiting_max: queue.waiting_max,
                        },
                    });
                }
                let expect = expect(None);
                let mut waiting = chat;
                if !was_waiting {
                    // The host appends the "queued" event: the chat waits at the next version.
                    waiting.version += 1;
                }
                Ok(Decision::Enqueue(Enqueued {
                    chat: waiting,
                    reason,
                    admitted: admit,
                    release,
                    expect,
                }))
            }
        }
    }

    /// The repeat-visitor rules (R3), then the policy, whose choice is re-checked.
    fn select<'a>(
        &self,
        snapshot: &'a Snapshot,
        chat: &WaitingChat,
        queue: &Queue,
        now: DateTime<Utc>,
    ) -> Result<Result<&'a Agent, WaitReason>, RouteError> {
        if let (RepeatMode::Same { .. }, Some(previous), true) = (
            queue.repeat,
            chat.previous_agent,
            chat.origin != Origin::Transfer,
        ) {
            let agent = snapshot.agent(previous);
            if let Some(agent) = agent
                && exclusion(agent, chat, queue, now).is_none()
            {
                return Ok(Ok(agent));
            }
            if let Some(until) = chat.sticky_until(queue)
                && now < until
            {
                return Ok(Err(WaitReason::WaitingForPreviousAgent {
                    agent: previous,
                    until,
                }));
            }
        }
        let candidates = Candidates {
            snapshot,
            chat,
            queue,
            now,
        };
        let Some(id) = self.policy.select(&candidates) else {
            let anyone = candidates.first_by(Selection::RoundRobin).is_some();
            return Ok(Err(if anyone {
                WaitReason::PolicyDeclined
            } else {
                WaitReason::AllBusy
            }));
        };
        let agent = snapshot.agent(id).ok_or(RouteError::UnknownAgent(id))?;
        match exclusion(agent, chat, queue, now) {
            None => Ok(Ok(agent)),
            Some(why) => Err(RouteError::PolicyChoseIneligible { agent: id, why }),
        }
    }
}

/// Is there an online agent who could take this chat once they have room (C3)?
fn could_ever_take(snapshot: &Snapshot, chat: &WaitingChat, queue: &Queue) -> bool {
    levels(chat.origin).iter().any(|level| {
        snapshot.pool(queue.id, *level).is_some_and(|pool| {
            pool.online.iter().any(|id| {
                snapshot
                    .agent(*id)
                    .is_some_and(|agent| static_exclusion(agent, chat, queue).is_none())
            })
        })
    })
}

fn queue_of(snapshot: &Snapshot, queue: QueueId) -> Result<&Queue, RouteError> {
    snapshot.queue(queue).ok_or(RouteError::UnknownQueue(queue))
}
