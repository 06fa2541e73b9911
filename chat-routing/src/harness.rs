//! The public invariant harness: model-based property tests for any [`Policy`].
//!
//! Why public: a team that writes its own policy should be able to prove it keeps the promises
//! of `docs/ROUTING.md` with one call ([`check_policy`]), the same way this crate proves its
//! built-in policies. A random [`Scenario`] is a world (agents, queues with levels and repeat
//! modes, modules with hours, caps and smart-routing rules; small by default, see [`Sizes`]) and a
//! sequence of operations — new chats, presence changes, ends, abandons, transfers, resumes, clock
//! advances, queue reconfigurations, capacity changes. A simulated
//! host runs it: it asks the router, commits each decision to the snapshot, drains after every
//! change, and keeps its own model of where each chat is. After every step the harness checks the
//! invariants below against an oracle written independently of the router, so a bug in the
//! router's eligibility rule cannot hide itself.
//!
//! The operations refer to agents and chats by index into what exists at that point, so every
//! generated sequence is valid and shrinks to a short one. (This is the "equivalent" of
//! proptest-state-machine the issue allows: which chat is waiting or active depends on the
//! policy's own decisions, which a reference state machine cannot predict.)
//!
//! Invariants checked (names as reported in a [`Violation`]):
//! `capacity`, `online-only`, `members-only`, `level-two-transfers-only`, `one-agent-per-chat`,
//! `no-chat-lost`, `outside-hours-offline`, `module-cap`, `fifo-within-priority`,
//! `work-conservation`, `unmanaged-only-when-nobody`, `least-busy`, `longest-idle` and
//! `round-robin` (opt-in, [`Options::builtin_selection`]), `same-agent`,
//! `new-agent`, `excluded-agents`, `determinism`, `input-order`, `offline-agent-changes-nothing`,
//! `drain-equals-single-decisions`, `explain-agrees`, `next-wakeup`, `queue-limit`; and
//! `no-error`, `apply`, `setup` when the router refuses a valid request or commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::{
    Agent, AgentId, ChatId, Condition, Decision, IncomingChat, Level, Module, ModuleId,
    OfflineReason, Opening, Origin, Outcome, Policy, Presence, Queue, QueueId, RepeatMode, Request,
    RouteError, Router, Rule, Selection, Snapshot, Target, Verdict, WaitReason, WaitingChat,
};

/// Property-test cases to run: 10,000 when the environment variable `CI` is `true`, 256
/// otherwise (the project's rule; one helper so every test agrees).
pub fn cases() -> u32 {
    if std::env::var("CI").as_deref() == Ok("true") {
        10_000
    } else {
        256
    }
}

/// What to check beyond the invariants every policy must keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Also check that each queue's configured [`Selection`] is obeyed exactly — least busy,
    /// longest idle, round robin, with their tie-breaks. True for
    /// [`QueueSelection`](crate::QueueSelection); a custom policy chooses otherwise.
    pub builtin_selection: bool,
}

/// A broken promise: at which step, which invariant, and the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Index of the operation in the scenario (`ops.len()` for the initial drain's checks).
    pub step: usize,
    /// The invariant's name (see the module documentation).
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {}: invariant `{}` broken: {}",
            self.step, self.invariant, self.detail
        )
    }
}

/// How often a run reached each kind of decision: proof that the scenarios exercise what the
/// invariants talk about (a harness that never turns a chat away proves nothing about hours).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Chats given to an agent on request (new, resume, transfer).
    pub assigned: u64,
    /// Chats given to an agent by a drain.
    pub drained: u64,
    /// Chats put in a queue.
    pub enqueued: u64,
    /// Newcomers queued behind waiting chats.
    pub behind_waiting: u64,
    /// Returning chats held for their previous agent.
    pub held_for_previous: u64,
    /// Returning chats given back to their previous agent in same-agent mode.
    pub returned_to_previous: u64,
    /// Transferred chats given to a level-2 agent.
    pub level_two_transfers: u64,
    /// Transfers refused because the named agent could not take the chat.
    pub transfers_refused: u64,
    /// Chats turned away outside hours.
    pub offline_outside_hours: u64,
    /// Chats turned away at the module's cap.
    pub offline_module_cap: u64,
    /// Chats turned away by a full queue.
    pub offline_queue_full: u64,
    /// Chats nobody online could take.
    pub unmanaged: u64,
}

impl Coverage {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Coverage) {
        self.assigned += other.assigned;
        self.drained += other.drained;
        self.enqueued += other.enqueued;
        self.behind_waiting += other.behind_waiting;
        self.held_for_previous += other.held_for_previous;
        self.returned_to_previous += other.returned_to_previous;
        self.level_two_transfers += other.level_two_transfers;
        self.transfers_refused += other.transfers_refused;
        self.offline_outside_hours += other.offline_outside_hours;
        self.offline_module_cap += other.offline_module_cap;
        self.offline_queue_full += other.offline_queue_full;
        self.unmanaged += other.unmanaged;
    }
}

/// One generated agent: presence at the start, capacity, level per queue (by queue index).
#[derive(Clone, Debug)]
struct AgentSpec {
    presence: Presence,
    capacity: u32,
    levels: Vec<Option<Level>>,
}

/// One generated module: default queue, topic rules, cap, and closed windows in seconds after
/// the start (`(from_s, to_s)`, sorted, disjoint).
#[derive(Clone, Debug)]
struct ModuleSpec {
    default_queue: usize,
    rules: Vec<(u8, usize)>,
    cap: Option<u32>,
    closed: Vec<(i64, i64)>,
}

/// A random world and a sequence of operations on it. Generate with [`scenario`]; run with
/// [`run`]. Its `Debug` output is the replayable counterexample.
#[derive(Clone, Debug)]
pub struct Scenario {
    agents: Vec<AgentSpec>,
    queues: Vec<Queue>,
    modules: Vec<ModuleSpec>,
    ops: Vec<Op>,
}

/// What happens next in a scenario. Indices are taken modulo what exists at that point.
#[derive(Clone, Debug)]
enum Op {
    NewChat {
        module: usize,
        priority: u8,
        topic: Option<u8>,
        returning: Option<usize>,
    },
    SetPresence {
        agent: usize,
        presence: Presence,
    },
    End {
        pick: usize,
    },
    Abandon {
        pick: usize,
    },
    Transfer {
        pick: usize,
        to_queue: Option<usize>,
        to_agent: usize,
    },
    Resume {
        pick: usize,
    },
    Advance {
        secs: u32,
    },
    /// The admin changes a queue's ordering and repeat mode while chats wait in it.
    ConfigureQueue {
        queue: usize,
        priority_ordering: bool,
        repeat: RepeatMode,
    },
    /// The admin changes an agent's capacity (never below their current load here, so the
    /// capacity invariant stays about routing, not about the admin).
    SetCapacity {
        agent: usize,
        capacity: u32,
    },
}

const TOPICS: [&str; 2] = ["sales", "support"];
const TOPIC: &str = "topic";
const OFFLINE_AGENT: AgentId = AgentId::from_u128(999);

fn presence() -> impl Strategy<Value = Presence> {
    prop_oneof![
        6 => Just(Presence::Online),
        1 => Just(Presence::Away),
        1 => Just(Presence::Offline),
    ]
}

fn level() -> impl Strategy<Value = Option<Level>> {
    prop_oneof![
        1 => Just(None),
        3 => Just(Some(Level::One)),
        1 => Just(Some(Level::Two)),
    ]
}

fn queue_config(index: usize) -> impl Strategy<Value = Queue> {
    let selection = prop_oneof![
        Just(Selection::LongestIdle),
        Just(Selection::LeastBusy),
        Just(Selection::RoundRobin),
    ];
    (selection, any::<bool>(), repeat_mode(), 1u32..=6).prop_map(
        move |(selection, priority_ordering, repeat, waiting_max)| Queue {
            id: QueueId::from_u128(index as u128 + 1),
            selection,
            priority_ordering,
            repeat,
            waiting_max,
        },
    )
}

fn repeat_mode() -> impl Strategy<Value = RepeatMode> {
    prop_oneof![
        Just(RepeatMode::Any),
        prop_oneof![Just(0u32), 1u32..=120].prop_map(|wait_s| RepeatMode::Same { wait_s }),
        Just(RepeatMode::New),
    ]
}

fn module_spec(queues: usize) -> impl Strategy<Value = ModuleSpec> {
    (
        0..queues,
        prop::collection::vec((0u8..2, 0..queues), 0..=2),
        prop::option::weighted(0.5, 1u32..=5),
        prop::collection::vec((30i64..=900, 1i64..=300), 0..=2),
    )
        .prop_map(|(default_queue, rules, cap, gaps)| {
            let mut closed = Vec::new();
            let mut at = 0;
            for (gap, len) in gaps {
                closed.push((at + gap, at + gap + len));
                at += gap + len + 1;
            }
            ModuleSpec {
                default_queue,
                rules,
                cap,
                closed,
            }
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..64, 0u8..3, prop::option::of(0u8..2), prop::option::weighted(0.3, 0usize..64))
            .prop_map(|(module, priority, topic, returning)| Op::NewChat { module, priority, topic, returning }),
        2 => (0usize..64, presence()).prop_map(|(agent, presence)| Op::SetPresence { agent, presence }),
        2 => (0usize..64).prop_map(|pick| Op::End { pick }),
        1 => (0usize..64).prop_map(|pick| Op::Abandon { pick }),
        1 => (0usize..64, prop::option::of(0usize..64), 0usize..64)
            .prop_map(|(pick, to_queue, to_agent)| Op::Transfer { pick, to_queue, to_agent }),
        1 => (0usize..64).prop_map(|pick| Op::Resume { pick }),
        1 => (1u32..=200).prop_map(|secs| Op::Advance { secs }),
        1 => (0usize..64, any::<bool>(), repeat_mode())
            .prop_map(|(queue, priority_ordering, repeat)| Op::ConfigureQueue { queue, priority_ordering, repeat }),
        1 => (0usize..64, 0u32..=4).prop_map(|(agent, capacity)| Op::SetCapacity { agent, capacity }),
    ]
}

/// How large generated scenarios may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Agents, at least 1.
    pub agents_max: usize,
    /// Queues, at least 1.
    pub queues_max: usize,
    /// Modules, at least 1.
    pub modules_max: usize,
    /// Operations after the initial drain.
    pub ops_max: usize,
}

impl Default for Sizes {
    /// Small worlds: 1–5 agents, 1–3 queues, 1–2 modules, up to 40 operations. Small worlds
    /// shrink to readable counterexamples and still reach every kind of decision.
    fn default() -> Self {
        Self {
            agents_max: 5,
            queues_max: 3,
            modules_max: 2,
            ops_max: 40,
        }
    }
}

/// Random scenarios of the default [`Sizes`].
pub fn scenario() -> impl Strategy<Value = Scenario> {
    scenario_with(Sizes::default())
}

/// Random scenarios up to the given sizes (larger worlds reach index paths small ones do not,
/// such as long walks past excluded agents).
pub fn scenario_with(sizes: Sizes) -> impl Strategy<Value = Scenario> {
    (
        1..=sizes.queues_max.max(1),
        1..=sizes.agents_max.max(1),
        1..=sizes.modules_max.max(1),
    )
        .prop_flat_map(move |(queues, agents, modules)| {
            let queue_configs: Vec<_> = (0..queues).map(queue_config).collect();
            let capacity = prop_oneof![1 => Just(0u32), 6 => 1u32..=3];
            let agent = (presence(), capacity, prop::collection::vec(level(), queues)).prop_map(
                |(presence, capacity, levels)| AgentSpec {
                    presence,
                    capacity,
                    levels,
                },
            );
            (
                queue_configs,
                prop::collection::vec(agent, agents),
                prop::collection::vec(module_spec(queues), modules),
                prop::collection::vec(op(), 0..=sizes.ops_max),
            )
        })
        .prop_map(|(queues, agents, modules, ops)| Scenario {
            agents,
            queues,
            modules,
            ops,
        })
}

/// Runs [`scenario`]s against `policy` with [`cases`] cases and panics with the shrunk
/// counterexample if any invariant breaks. For a persisted regression file, use
/// [`scenario`] and [`run`] inside your own `proptest!` block instead.
pub fn check_policy<P: Policy>(policy: &P, options: &Options) {
    let mut config = Config::with_cases(cases());
    config.failure_persistence = None;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&scenario(), |s| {
        run(policy, &s, options)
            .map(|_| ())
            .map_err(|v| TestCaseError::fail(v.to_string()))
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, scenario)) => {
            panic!("routing invariant broken: {why}\nminimal scenario: {scenario:#?}")
        }
        Err(TestError::Abort(why)) => panic!("harness aborted: {why}"),
    }
}

/// Where the simulated host believes a chat is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Waiting,
    Active(AgentId),
    Ended { last_agent: Option<AgentId> },
}

#[derive(Clone, Debug)]
struct Tracked {
    module: ModuleId,
    queue: QueueId,
    priority: u8,
    topic: Option<u8>,
    version: u64,
    place: Place,
    /// The agent who served this visitor last, for resumes.
    previous: Option<AgentId>,
}

struct Host<'a, P: Policy> {
    router: Router<&'a P>,
    options: &'a Options,
    scenario: &'a Scenario,
    snapshot: Snapshot,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    chats: BTreeMap<ChatId, Tracked>,
    /// The last agent each queue gave a chat to, as the host saw it (round robin's oracle).
    last_assignee: BTreeMap<QueueId, AgentId>,
    created: u128,
    step: usize,
    coverage: std::cell::RefCell<Coverage>,
}

/// Runs one scenario against `policy`; the first broken invariant is the error, otherwise what
/// the run exercised.
pub fn run<P: Policy>(
    policy: &P,
    scenario: &Scenario,
    options: &Options,
) -> Result<Coverage, Violation> {
    let start = Utc.with_ymd_and_hms(2026, 3, 28, 23, 0, 0).unwrap();
    let mut host = Host {
        router: Router::new(policy),
        options,
        scenario,
        snapshot: Snapshot::new(),
        start,
        now: start,
        chats: BTreeMap::new(),
        last_assignee: BTreeMap::new(),
        created: 0,
        step: scenario.ops.len(),
        coverage: Default::default(),
    };
    host.build()
        .map_err(|e| host.violation("setup", e.to_string()))?;
    host.drain()?;
    for (step, op) in scenario.ops.iter().enumerate() {
        host.step = step;
        host.apply(op)?;
        host.drain()?;
        host.check_world()?;
    }
    Ok(host.coverage.into_inner())
}

fn agent_id(index: usize) -> AgentId {
    AgentId::from_u128(index as u128 + 1)
}

fn module_id(index: usize) -> ModuleId {
    ModuleId::from_u128(index as u128 + 1)
}

impl<P: Policy> Host<'_, P> {
    fn violation(&self, invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation {
            step: self.step,
            invariant,
            detail: detail.into(),
        }
    }

    fn ensure(
        &self,
        ok: bool,
        invariant: &'static str,
        detail: impl FnOnce() -> String,
    ) -> Result<(), Violation> {
        if ok {
            Ok(())
        } else {
            Err(self.violation(invariant, detail()))
        }
    }

    fn opening(&self, index: usize) -> Opening {
        let spec = &self.scenario.modules[index];
        let offset = (self.now - self.start).num_seconds();
        let at = |s: i64| self.start + Duration::seconds(s);
        for &(from, to) in &spec.closed {
            if offset < from {
                return Opening {
                    open: true,
                    until: Some(at(from)),
                };
            }
            if offset < to {
                return Opening {
                    open: false,
                    until: Some(at(to)),
                };
            }
        }
        Opening::ALWAYS
    }

    fn build(&mut self) -> Result<(), RouteError> {
        for queue in &self.scenario.queues {
            self.snapshot.upsert_queue(queue.clone())?;
        }
        for (i, spec) in self.scenario.modules.iter().enumerate() {
            let queue = |q: usize| self.scenario.queues[q % self.scenario.queues.len()].id;
            let module = Module {
                id: module_id(i),
                opening: self.opening(i),
                open_chats_max: spec.cap,
                open_chats: 0,
                rules: spec
                    .rules
                    .iter()
                    .map(|&(topic, q)| Rule {
                        all: vec![Condition::Equals {
                            variable: TOPIC.into(),
                            value: TOPICS[topic as usize].into(),
                        }],
                        queue: queue(q),
                    })
                    .collect(),
                default_queue: queue(spec.default_queue),
            };
            self.snapshot.upsert_module(module)?;
        }
        for (i, spec) in self.scenario.agents.iter().enumerate() {
            let mut agent = Agent::online(agent_id(i), spec.capacity);
            agent.presence = spec.presence;
            for (q, level) in spec.levels.iter().enumerate() {
                if let Some(level) = level {
                    agent.memberships.insert(self.scenario.queues[q].id, *level);
                }
            }
            self.snapshot.upsert_agent(agent)?;
        }
        Ok(())
    }

    fn picked(&self, pick: usize, wanted: impl Fn(&Place) -> bool) -> Option<ChatId> {
        let ids: Vec<ChatId> = self
            .chats
            .iter()
            .filter(|(_, t)| wanted(&t.place))
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| ids[pick % ids.len()])
    }

    fn incoming(&self, id: ChatId, tracked: &Tracked) -> IncomingChat {
        let mut chat = IncomingChat::new(id, tracked.module);
        chat.version = tracked.version;
        chat.priority = tracked.priority;
        chat.previous_agent = tracked.previous;
        if let Some(topic) = tracked.topic {
            chat.variables
                .insert(TOPIC.into(), TOPICS[topic as usize].into());
        }
        chat
    }

    fn apply(&mut self, op: &Op) -> Result<(), Violation> {
        let agents = self.scenario.agents.len();
        match *op {
            Op::NewChat {
                module,
                priority,
                topic,
                returning,
            } => {
                self.created += 1;
                let id = ChatId::from_u128(1000 + self.created);
                let module = module % self.scenario.modules.len();
                let tracked = Tracked {
                    module: module_id(module),
                    queue: QueueId::from_u128(0),
                    priority,
                    topic,
                    version: 0,
                    place: Place::Ended { last_agent: None },
                    previous: returning.map(|a| agent_id(a % agents)),
                };
                let request = Request::New(self.incoming(id, &tracked));
                self.chats.insert(id, tracked);
                self.route(id, &request)?;
            }
            Op::SetPresence { agent, presence } => {
                let id = agent_id(agent % agents);
                self.snapshot
                    .set_presence(id, presence)
                    .map_err(|e| self.violation("setup", e.to_string()))?;
            }
            Op::End { pick } => {
                if let Some(id) = self.picked(pick, |p| matches!(p, Place::Active(_))) {
                    let tracked = self.chats.get_mut(&id).expect("picked");
                    let Place::Active(agent) = tracked.place else {
                        unreachable!("picked an active chat")
                    };
                    tracked.place = Place::Ended {
                        last_agent: Some(agent),
                    };
                    tracked.previous = Some(agent);
                    tracked.version += 1;
                    let module = tracked.module;
                    self.snapshot
                        .end_chat(agent, module)
                        .map_err(|e| self.violation("setup", e.to_string()))?;
                }
            }
            Op::Abandon { pick } => {
                if let Some(id) = self.picked(pick, |p| *p == Place::Waiting) {
                    let removed = self.snapshot.remove_waiting(id);
                    self.ensure(removed.is_some(), "no-chat-lost", || {
                        format!("{id:?} is waiting for the host but not in the snapshot")
                    })?;
                    let tracked = self.chats.get_mut(&id).expect("picked");
                    tracked.place = Place::Ended {
                        last_agent: tracked.previous,
                    };
                    tracked.version += 1;
                }
            }
            Op::Transfer {
                pick,
                to_queue,
                to_agent,
            } => {
                if let Some(id) = self.picked(pick, |p| matches!(p, Place::Active(_))) {
                    let tracked = &self.chats[&id];
                    let Place::Active(from) = tracked.place else {
                        unreachable!("picked an active chat")
                    };
                    let queues = &self.scenario.queues;
                    let to = match to_queue {
                        Some(q) => Target::Queue(queues[q % queues.len()].id),
                        None => Target::Agent(agent_id(to_agent % agents)),
                    };
                    let mut chat = self.incoming(id, tracked);
                    chat.previous_agent = None;
                    let request = Request::Transfer {
                        chat,
                        queue: tracked.queue,
                        from,
                        to,
                    };
                    self.route(id, &request)?;
                }
            }
            Op::Resume { pick } => {
                if let Some(id) = self.picked(pick, |p| matches!(p, Place::Ended { .. })) {
                    let tracked = &self.chats[&id];
                    let (module, topic) = (tracked.module, tracked.topic);
                    let index = self.snapshot.module(module).map(|m| {
                        let mut vars = BTreeMap::new();
                        if let Some(t) = topic {
                            vars.insert(TOPIC.to_string(), TOPICS[t as usize].to_string());
                        }
                        m.choose_queue(&vars).0
                    });
                    let queue = if tracked.queue == QueueId::from_u128(0) {
                        index.expect("module exists")
                    } else {
                        tracked.queue
                    };
                    let request = Request::Resume {
                        chat: self.incoming(id, tracked),
                        queue,
                    };
                    self.route(id, &request)?;
                }
            }
            Op::Advance { secs } => {
                self.now += Duration::seconds(i64::from(secs));
                for i in 0..self.scenario.modules.len() {
                    let opening = self.opening(i);
                    self.snapshot
                        .set_opening(module_id(i), opening)
                        .map_err(|e| self.violation("setup", e.to_string()))?;
                }
                let wakeup = self.router.next_wakeup(&self.snapshot, self.now);
                self.ensure(wakeup.is_none_or(|t| t > self.now), "next-wakeup", || {
                    format!("next_wakeup {wakeup:?} is not after now {}", self.now)
                })?;
            }
            Op::ConfigureQueue {
                queue,
                priority_ordering,
                repeat,
            } => {
                let id = self.scenario.queues[queue % self.scenario.queues.len()].id;
                let mut config = self.snapshot.queue(id).expect("queue exists").clone();
                config.priority_ordering = priority_ordering;
                config.repeat = repeat;
                self.snapshot
                    .upsert_queue(config)
                    .map_err(|e| self.violation("setup", e.to_string()))?;
            }
            Op::SetCapacity { agent, capacity } => {
                let id = agent_id(agent % agents);
                let mut config = self.snapshot.agent(id).expect("agent exists").clone();
                config.capacity = capacity.max(config.load);
                self.snapshot
                    .upsert_agent(config)
                    .map_err(|e| self.violation("setup", e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Asks the router about one request, checks the answer, commits it, updates the model.
    fn route(&mut self, id: ChatId, request: &Request) -> Result<(), Violation> {
        let before = self.snapshot.clone();
        let result = self.router.decide(&before, request, self.now);
        self.check_metamorphic_single(request, &result)?;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(RouteError::TransferTargetIneligible { agent, why }) => {
                // A refused transfer is fine only if the target really cannot take the chat.
                let Request::Transfer {
                    chat, queue, from, ..
                } = request
                else {
                    unreachable!("only transfers name a target")
                };
                let waiting = as_waiting(chat, *queue, Origin::Transfer, Some(*from), self.now);
                let target = before.agent(agent).expect("target exists");
                self.coverage.borrow_mut().transfers_refused += 1;
                return self.ensure(!oracle_eligible(&before, &waiting, target, self.now), "explain-agrees", || {
                    format!("transfer of {id:?} to {agent:?} refused ({why:?}) but the oracle finds them eligible")
                });
            }
            Err(e) => return Err(self.violation("no-error", e.to_string())),
        };
        self.check_decision(&before, request, &outcome)?;
        let assigned = outcome.decision.assigned_agent().is_some();
        self.coverage.borrow_mut().assigned += u64::from(assigned);
        self.snapshot
            .apply(&outcome.decision)
            .map_err(|c| self.violation("apply", c.to_string()))?;
        let tracked = self.chats.get_mut(&id).expect("tracked");
        match &outcome.decision {
            Decision::Assign(a) => {
                tracked.place = Place::Active(a.agent);
                tracked.queue = a.chat.queue;
                tracked.version = a.expect.chat_version + 1;
                self.last_assignee.insert(a.chat.queue, a.agent);
            }
            Decision::Enqueue(e) => {
                tracked.place = Place::Waiting;
                tracked.queue = e.chat.queue;
                tracked.version = e.chat.version;
            }
            // A refused transfer leaves the chat with its agent; a refused start ends it.
            Decision::Offline { .. } | Decision::Unmanaged { .. } => {
                if !matches!(request, Request::Transfer { .. }) {
                    tracked.place = Place::Ended {
                        last_agent: tracked.previous,
                    };
                    tracked.version += 1;
                }
            }
        }
        Ok(())
    }

    /// Drains, checks the drain against single decisions and metamorphic variants, commits.
    fn drain(&mut self) -> Result<(), Violation> {
        let mut drained = self.snapshot.clone();
        let outcomes = self
            .router
            .drain(&mut drained, self.now)
            .map_err(|e| self.violation("no-error", e.to_string()))?;

        let mut again = self.snapshot.clone();
        let second = self.router.drain(&mut again, self.now).ok();
        self.ensure(
            second.as_ref() == Some(&outcomes) && again == drained,
            "determinism",
            || "two drains of the same snapshot differ".into(),
        )?;

        let mut reversed = rebuilt_in_reverse(&self.snapshot);
        self.ensure(reversed == self.snapshot, "input-order", || {
            "rebuilding the snapshot in reverse order changed it".into()
        })?;
        let permuted = self.router.drain(&mut reversed, self.now).ok();
        self.ensure(permuted.as_ref() == Some(&outcomes), "input-order", || {
            format!("drain differs when input order is reversed: {permuted:?} vs {outcomes:?}")
        })?;

        let mut with_offline = self.snapshot.clone();
        with_offline
            .upsert_agent(offline_agent(&self.scenario.queues))
            .map_err(|e| self.violation("setup", e.to_string()))?;
        let padded = self.router.drain(&mut with_offline, self.now).ok();
        self.ensure(
            padded.as_ref() == Some(&outcomes),
            "offline-agent-changes-nothing",
            || format!("drain differs with an extra offline agent: {padded:?} vs {outcomes:?}"),
        )?;

        let mut single = self.snapshot.clone();
        let mut singles = Vec::new();
        'next: loop {
            let waiting: Vec<ChatId> = single.waiting().map(|c| c.id).collect();
            for id in waiting {
                let outcome = self
                    .router
                    .decide(&single, &Request::Waiting(id), self.now)
                    .map_err(|e| self.violation("no-error", e.to_string()))?;
                if let Decision::Assign(_) = outcome.decision {
                    single
                        .apply(&outcome.decision)
                        .map_err(|c| self.violation("apply", c.to_string()))?;
                    singles.push(outcome);
                    continue 'next;
                }
            }
            break;
        }
        self.ensure(
            singles == outcomes && single == drained,
            "drain-equals-single-decisions",
            || format!("drain {outcomes:?} but single decisions {singles:?}"),
        )?;

        for outcome in &outcomes {
            let Decision::Assign(a) = &outcome.decision else {
                return Err(self.violation("drain", "drain returned a non-assignment"));
            };
            let before = self.snapshot.clone();
            self.check_decision(&before, &Request::Waiting(a.chat.id), outcome)?;
            self.coverage.borrow_mut().drained += 1;
            self.snapshot
                .apply(&outcome.decision)
                .map_err(|c| self.violation("apply", c.to_string()))?;
            let place = self.chats.get(&a.chat.id).map(|t| t.place);
            self.ensure(place == Some(Place::Waiting), "one-agent-per-chat", || {
                format!(
                    "drain assigned {:?}, which the host has as {place:?}",
                    a.chat.id
                )
            })?;
            let tracked = self.chats.get_mut(&a.chat.id).expect("tracked");
            tracked.place = Place::Active(a.agent);
            tracked.version += 1;
            self.last_assignee.insert(a.chat.queue, a.agent);
        }

        // Nothing may change before next_wakeup without new input: a drain just before it (or
        // a day later, when nothing is scheduled) serves nobody.
        let wakeup = self.router.next_wakeup(&self.snapshot, self.now);
        let before_wakeup =
            wakeup.map_or(self.now + Duration::days(1), |w| w - Duration::seconds(1));
        if before_wakeup > self.now {
            let mut later = self.snapshot.clone();
            let served = self.router.drain(&mut later, before_wakeup).ok();
            self.ensure(
                served.as_ref().is_some_and(Vec::is_empty),
                "next-wakeup",
                || {
                    format!(
                        "next_wakeup {wakeup:?}, yet a drain at {before_wakeup} serves {served:?}"
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Single decisions: determinism, an extra offline agent, and explain agreeing with decide.
    fn check_metamorphic_single(
        &self,
        request: &Request,
        result: &Result<Outcome, RouteError>,
    ) -> Result<(), Violation> {
        let again = self.router.decide(&self.snapshot, request, self.now);
        self.ensure(&again == result, "determinism", || {
            format!("{request:?} decided twice differently")
        })?;
        let mut with_offline = self.snapshot.clone();
        with_offline
            .upsert_agent(offline_agent(&self.scenario.queues))
            .map_err(|e| self.violation("setup", e.to_string()))?;
        let padded = self.router.decide(&with_offline, request, self.now);
        self.ensure(
            padded.as_ref().map(|o| &o.decision).ok() == result.as_ref().map(|o| &o.decision).ok()
                && padded.is_ok() == result.is_ok(),
            "offline-agent-changes-nothing",
            || format!("{request:?}: {padded:?} vs {result:?}"),
        )?;
        let explained = self.router.explain(&self.snapshot, request, self.now);
        let (Ok(explained), Ok(decided)) = (&explained, result) else {
            return self.ensure(
                explained.is_err() == result.is_err(),
                "explain-agrees",
                || format!("explain {explained:?} vs decide {result:?}"),
            );
        };
        self.ensure(
            explained.decision == decided.decision
                && explained.trace.complete
                && explained.trace.agents.len() == self.snapshot.agents().count(),
            "explain-agrees",
            || format!("explain {explained:?} vs decide {decided:?}"),
        )
    }

    /// Everything one decision must respect, judged on the snapshot it was made on.
    fn check_decision(
        &self,
        before: &Snapshot,
        request: &Request,
        outcome: &Outcome,
    ) -> Result<(), Violation> {
        let now = self.now;
        let chat = match request {
            Request::Waiting(id) => before.waiting_chat(*id).cloned().expect("waiting"),
            Request::New(c) => {
                let module = before.module(c.module).expect("module");
                let queue = module.choose_queue(&c.variables).0;
                as_waiting(c, queue, Origin::Customer, None, now)
            }
            Request::Resume { chat, queue } => as_waiting(chat, *queue, Origin::Resume, None, now),
            Request::Transfer {
                chat,
                queue,
                from,
                to,
            } => {
                let queue = match to {
                    Target::Queue(q) => *q,
                    Target::Agent(_) => *queue,
                };
                as_waiting(chat, queue, Origin::Transfer, Some(*from), now)
            }
        };
        let admitted = matches!(request, Request::New(_) | Request::Resume { .. });
        let module = before.module(chat.module).expect("module");
        let queue = before.queue(chat.queue).expect("queue");
        if admitted {
            let closed = !module.opening.open;
            let outside = matches!(
                outcome.decision,
                Decision::Offline {
                    reason: OfflineReason::OutsideHours { .. },
                    ..
                }
            );
            self.ensure(closed == outside, "outside-hours-offline", || {
                format!(
                    "module open={} but decision {:?}",
                    module.opening.open, outcome.decision
                )
            })?;
            let full = module
                .open_chats_max
                .is_some_and(|max| module.open_chats >= max);
            let at_cap = matches!(
                outcome.decision,
                Decision::Offline {
                    reason: OfflineReason::ModuleAtCapacity { .. },
                    ..
                }
            );
            self.ensure(closed || full == at_cap, "module-cap", || {
                format!(
                    "module {} of {:?} open but decision {:?}",
                    module.open_chats, module.open_chats_max, outcome.decision
                )
            })?;
        }
        let anyone_eligible = before
            .agents()
            .any(|a| oracle_eligible(before, &chat, a, now));
        let anyone_ever = before.agents().any(|a| oracle_could_ever(before, &chat, a));
        self.count(before, &chat, &outcome.decision);
        match &outcome.decision {
            Decision::Assign(a) => self.check_assignment(before, &chat, a.agent, request)?,
            Decision::Enqueue(e) => {
                let behind = e.reason == WaitReason::BehindWaitingChats;
                let ahead = before
                    .waiting()
                    .any(|other| other.queue == chat.queue && oracle_ahead(queue, other, &chat));
                self.ensure(
                    behind == (ahead && !matches!(request, Request::Waiting(_))),
                    "fifo-within-priority",
                    || {
                        format!(
                            "{:?} enqueued with {:?}; chats ahead waiting: {ahead}",
                            chat.id, e.reason
                        )
                    },
                )?;
                // A newcomer behind waiting chats waits for the drain, which the host runs next.
                self.ensure(!anyone_eligible || behind, "work-conservation", || {
                    format!("{:?} enqueued while an eligible agent has room", chat.id)
                })?;
                self.ensure(anyone_ever, "unmanaged-only-when-nobody", || {
                    format!(
                        "{:?} enqueued though nobody online could ever take it",
                        chat.id
                    )
                })?;
            }
            Decision::Unmanaged { .. } => {
                self.ensure(!anyone_ever, "unmanaged-only-when-nobody", || {
                    format!(
                        "{:?} unmanaged though an online agent could take it",
                        chat.id
                    )
                })?;
            }
            Decision::Offline { reason, .. } => {
                if let OfflineReason::QueueFull { .. } = reason {
                    self.ensure(
                        before.queue_len(queue.id) >= queue.waiting_max,
                        "queue-limit",
                        || format!("{:?} turned away from a queue that is not full", chat.id),
                    )?;
                }
                self.ensure(
                    admitted || matches!(reason, OfflineReason::QueueFull { .. }),
                    "outside-hours-offline",
                    || format!("{request:?} is not an admission but was turned away: {reason:?}"),
                )?;
            }
        }
        let explained = self
            .router
            .explain(before, request, now)
            .map_err(|e| self.violation("explain-agrees", e.to_string()))?;
        for (id, verdict) in &explained.trace.agents {
            let agent = before.agent(*id).expect("listed agents exist");
            let eligible = oracle_eligible(before, &chat, agent, now);
            let agrees = match verdict {
                Verdict::Chosen => outcome.decision.assigned_agent() == Some(*id),
                Verdict::Eligible => eligible,
                Verdict::Excluded(_) => !eligible,
            };
            self.ensure(agrees, "explain-agrees", || {
                format!(
                    "{id:?} has verdict {verdict:?} for {:?}; oracle eligible: {eligible}",
                    chat.id
                )
            })?;
        }
        Ok(())
    }

    fn count(&self, before: &Snapshot, chat: &WaitingChat, decision: &Decision) {
        let mut c = self.coverage.borrow_mut();
        match decision {
            Decision::Assign(a) => {
                let level = before
                    .agent(a.agent)
                    .and_then(|agent| agent.memberships.get(&chat.queue).copied());
                c.level_two_transfers += u64::from(level == Some(Level::Two));
                let same_mode = before
                    .queue(chat.queue)
                    .is_some_and(|q| matches!(q.repeat, RepeatMode::Same { .. }));
                c.returned_to_previous += u64::from(
                    same_mode
                        && chat.origin != Origin::Transfer
                        && chat.previous_agent == Some(a.agent),
                );
            }
            Decision::Enqueue(e) => {
                c.enqueued += 1;
                c.behind_waiting += u64::from(e.reason == WaitReason::BehindWaitingChats);
                c.held_for_previous += u64::from(matches!(
                    e.reason,
                    WaitReason::WaitingForPreviousAgent { .. }
                ));
            }
            Decision::Offline { reason, .. } => match reason {
                OfflineReason::OutsideHours { .. } => c.offline_outside_hours += 1,
                OfflineReason::ModuleAtCapacity { .. } => c.offline_module_cap += 1,
                OfflineReason::QueueFull { .. } => c.offline_queue_full += 1,
            },
            Decision::Unmanaged { .. } => c.unmanaged += 1,
        }
    }

    fn check_assignment(
        &self,
        before: &Snapshot,
        chat: &WaitingChat,
        agent: AgentId,
        request: &Request,
    ) -> Result<(), Violation> {
        let now = self.now;
        let queue = before.queue(chat.queue).expect("queue");
        let a = before
            .agent(agent)
            .ok_or_else(|| self.violation("members-only", format!("unknown agent {agent:?}")))?;
        self.ensure(a.presence == Presence::Online, "online-only", || {
            format!("{:?} given to {agent:?} who is {:?}", chat.id, a.presence)
        })?;
        let level = a.memberships.get(&queue.id);
        self.ensure(level.is_some(), "members-only", || {
            format!("{:?} given to non-member {agent:?}", chat.id)
        })?;
        self.ensure(
            !(level == Some(&Level::Two) && chat.origin != Origin::Transfer),
            "level-two-transfers-only",
            || format!("visitor-started {:?} given to level-2 {agent:?}", chat.id),
        )?;
        self.ensure(a.load < a.capacity, "capacity", || {
            format!("{agent:?} at {}/{} got {:?}", a.load, a.capacity, chat.id)
        })?;
        self.ensure(
            !chat.excluded_agents.contains(&agent),
            "excluded-agents",
            || format!("{:?} given to excluded {agent:?}", chat.id),
        )?;
        let repeat = chat.origin != Origin::Transfer;
        let mut sticky_choice = false;
        if let (true, Some(previous)) = (repeat, chat.previous_agent) {
            match queue.repeat {
                RepeatMode::Same { .. } => {
                    let previous_ok = before
                        .agent(previous)
                        .is_some_and(|p| oracle_eligible(before, chat, p, now));
                    self.ensure(!previous_ok || agent == previous, "same-agent", || {
                        format!(
                            "{:?} given to {agent:?} while previous {previous:?} is eligible",
                            chat.id
                        )
                    })?;
                    sticky_choice = agent == previous;
                }
                RepeatMode::New => self.ensure(agent != previous, "new-agent", || {
                    format!(
                        "{:?} given back to previous {previous:?} in new-agent mode",
                        chat.id
                    )
                })?,
                RepeatMode::Any => {}
            }
        }
        self.ensure(
            oracle_eligible(before, chat, a, now),
            "explain-agrees",
            || {
                format!(
                    "{:?} given to {agent:?} whom the oracle finds ineligible",
                    chat.id
                )
            },
        )?;
        // A transfer to a named agent is the sender's choice, not the queue's: no order applies.
        let direct = matches!(
            request,
            Request::Transfer {
                to: Target::Agent(_),
                ..
            }
        );
        if !direct {
            for other in before.waiting() {
                if other.id == chat.id || other.queue != chat.queue {
                    continue;
                }
                let ahead = oracle_ahead(queue, other, chat);
                self.ensure(!(ahead && oracle_eligible(before, other, a, now)), "fifo-within-priority", || {
                    format!("{:?} given to {agent:?} while {:?}, ahead of it, could have been served", chat.id, other.id)
                })?;
            }
            if self.options.builtin_selection && !sticky_choice {
                let cursor = self.last_assignee.get(&queue.id).copied();
                let key = |x: &Agent| match queue.selection {
                    Selection::LeastBusy => (x.load, x.last_assigned_at, false, x.id),
                    Selection::LongestIdle => (0, x.last_assigned_at, false, x.id),
                    Selection::RoundRobin => (0, None, cursor.is_some_and(|c| x.id <= c), x.id),
                };
                let expected = before
                    .agents()
                    .filter(|x| oracle_eligible(before, chat, x, now))
                    .min_by_key(|x| key(x));
                let invariant = match queue.selection {
                    Selection::LeastBusy => "least-busy",
                    Selection::LongestIdle => "longest-idle",
                    Selection::RoundRobin => "round-robin",
                };
                self.ensure(expected.map(|x| x.id) == Some(agent), invariant, || {
                    format!(
                        "{:?} given to {agent:?}, expected {:?}",
                        chat.id,
                        expected.map(|x| x.id)
                    )
                })?;
            }
        }
        Ok(())
    }

    /// After each step: the host's model and the snapshot agree, and nobody waits needlessly.
    fn check_world(&self) -> Result<(), Violation> {
        let s = &self.snapshot;
        let mut loads: BTreeMap<AgentId, u32> = BTreeMap::new();
        let mut open: BTreeMap<ModuleId, u32> = BTreeMap::new();
        let mut waiting = BTreeSet::new();
        for (id, tracked) in &self.chats {
            match tracked.place {
                Place::Active(agent) => {
                    *loads.entry(agent).or_default() += 1;
                    *open.entry(tracked.module).or_default() += 1;
                }
                Place::Waiting => {
                    waiting.insert(*id);
                    *open.entry(tracked.module).or_default() += 1;
                }
                Place::Ended { .. } => {}
            }
        }
        for agent in s.agents() {
            let active = loads.get(&agent.id).copied().unwrap_or(0);
            self.ensure(agent.load == active, "one-agent-per-chat", || {
                format!(
                    "{:?} has load {} but {active} active chats",
                    agent.id, agent.load
                )
            })?;
            self.ensure(agent.load <= agent.capacity, "capacity", || {
                format!(
                    "{:?} has {} chats, capacity {}",
                    agent.id, agent.load, agent.capacity
                )
            })?;
        }
        let in_snapshot: BTreeSet<ChatId> = s.waiting().map(|c| c.id).collect();
        self.ensure(in_snapshot == waiting, "no-chat-lost", || {
            format!("snapshot waits for {in_snapshot:?}, host for {waiting:?}")
        })?;
        for module in s.modules() {
            let count = open.get(&module.id).copied().unwrap_or(0);
            self.ensure(module.open_chats == count, "module-cap", || {
                format!(
                    "{:?} counts {} open chats, host {count}",
                    module.id, module.open_chats
                )
            })?;
            self.ensure(
                module.open_chats_max.is_none_or(|max| count <= max),
                "module-cap",
                || {
                    format!(
                        "{:?} has {count} open chats over its cap {:?}",
                        module.id, module.open_chats_max
                    )
                },
            )?;
        }
        for queue in s.queues() {
            let cursor = s.round_robin_cursor(queue.id);
            let last = self.last_assignee.get(&queue.id).copied();
            self.ensure(cursor == last, "round-robin", || {
                format!(
                    "{:?}: snapshot's cursor {cursor:?}, host's last assignee {last:?}",
                    queue.id
                )
            })?;
        }
        for chat in s.waiting() {
            let eligible = s.agents().find(|a| oracle_eligible(s, chat, a, self.now));
            self.ensure(eligible.is_none(), "work-conservation", || {
                format!(
                    "{:?} waits while {:?} could take it",
                    chat.id,
                    eligible.map(|a| a.id)
                )
            })?;
        }
        Ok(())
    }
}

/// The waiting chat a request should become. Written again here rather than shared with the
/// router's own conversion, so that the oracle does not inherit a router bug (module doc).
fn as_waiting(
    chat: &IncomingChat,
    queue: QueueId,
    origin: Origin,
    from: Option<AgentId>,
    now: DateTime<Utc>,
) -> WaitingChat {
    let mut excluded_agents = chat.excluded_agents.clone();
    excluded_agents.extend(from);
    WaitingChat {
        id: chat.id,
        version: chat.version,
        module: chat.module,
        queue,
        arrived_at: now,
        priority: chat.priority,
        origin,
        previous_agent: chat.previous_agent,
        variables: chat.variables.clone(),
        excluded_agents,
    }
}

/// The oracle's eligibility, written from `docs/ROUTING.md` without the router's code.
fn oracle_eligible(s: &Snapshot, chat: &WaitingChat, agent: &Agent, now: DateTime<Utc>) -> bool {
    let Some(queue) = s.queue(chat.queue) else {
        return false;
    };
    if !oracle_could_ever(s, chat, agent)
        || agent.presence != Presence::Online
        || agent.load >= agent.capacity
    {
        return false;
    }
    match (chat.origin, chat.previous_agent, queue.repeat) {
        (Origin::Transfer, _, _) | (_, None, _) => true,
        (_, Some(previous), RepeatMode::Same { wait_s }) => {
            agent.id == previous || now >= chat.arrived_at + Duration::seconds(i64::from(wait_s))
        }
        _ => true,
    }
}

/// The oracle's queue order: higher priority first where the queue orders by priority, then
/// first come, first served (ties by chat id).
fn oracle_ahead(queue: &Queue, a: &WaitingChat, b: &WaitingChat) -> bool {
    if queue.priority_ordering && a.priority != b.priority {
        return a.priority > b.priority;
    }
    (a.arrived_at, a.id) < (b.arrived_at, b.id)
}

/// The oracle's "could this online agent take the chat once they have room" (C3).
fn oracle_could_ever(s: &Snapshot, chat: &WaitingChat, agent: &Agent) -> bool {
    let Some(queue) = s.queue(chat.queue) else {
        return false;
    };
    let level_ok = match agent.memberships.get(&chat.queue) {
        None => false,
        Some(Level::One) => true,
        Some(Level::Two) => chat.origin == Origin::Transfer,
    };
    let previous_barred = chat.origin != Origin::Transfer
        && queue.repeat == RepeatMode::New
        && chat.previous_agent == Some(agent.id);
    agent.presence == Presence::Online
        && level_ok
        && !chat.excluded_agents.contains(&agent.id)
        && !previous_barred
}

fn offline_agent(queues: &[Queue]) -> Agent {
    let mut agent = Agent::online(OFFLINE_AGENT, 3);
    agent.presence = Presence::Offline;
    for queue in queues {
        agent.memberships.insert(queue.id, Level::One);
    }
    agent
}

/// The same data loaded in the opposite order: routing must not notice.
fn rebuilt_in_reverse(s: &Snapshot) -> Snapshot {
    let mut r = Snapshot::new();
    for q in s.queues().collect::<Vec<_>>().into_iter().rev() {
        r.upsert_queue(q.clone()).expect("valid queue");
        if let Some(cursor) = s.round_robin_cursor(q.id) {
            r.set_round_robin_cursor(q.id, cursor);
        }
    }
    for m in s.modules().collect::<Vec<_>>().into_iter().rev() {
        r.upsert_module(m.clone()).expect("valid module");
    }
    for a in s.agents().collect::<Vec<_>>().into_iter().rev() {
        r.upsert_agent(a.clone()).expect("valid agent");
    }
    for c in s.waiting().collect::<Vec<_>>().into_iter().rev() {
        r.insert_waiting(c.clone()).expect("valid chat");
    }
    r
}
