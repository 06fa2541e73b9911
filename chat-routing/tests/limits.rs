//! Every named limit and every refusal: bad input gets a typed error naming the field or rule,
//! and the snapshot is left as it was.

use std::collections::{BTreeMap, BTreeSet};

use chat_routing::*;
use chrono::{DateTime, TimeZone, Utc};

const Q: QueueId = QueueId::from_u128(1);
const M: ModuleId = ModuleId::from_u128(1);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn world() -> Snapshot {
    let mut s = Snapshot::new();
    s.upsert_queue(Queue::new(Q, Selection::LeastBusy)).unwrap();
    s.upsert_module(Module::new(M, Q)).unwrap();
    s.upsert_agent(Agent::online(AgentId::from_u128(1), 2).member_of(Q, Level::One))
        .unwrap();
    s
}

/// A new chat `id` arriving through module [`M`].
fn new_chat(id: u128) -> Request {
    Request::New(IncomingChat::new(ChatId::from_u128(id), M))
}

/// The default router's decision for chat 1 on `s`, which [`world`] lets agent 1 take.
fn first_decision(s: &Snapshot) -> Decision {
    Router::default()
        .decide(s, &new_chat(1), now())
        .unwrap()
        .decision
}

fn too_large(field: &'static str, value: usize, max: usize) -> RouteError {
    RouteError::TooLarge { field, value, max }
}

#[test]
fn r2_agent_capacity_is_limited() {
    let mut s = world();
    let before = s.clone();
    let mut agent = Agent::online(AgentId::from_u128(2), AGENT_CAPACITY_MAX + 1);
    assert_eq!(
        s.upsert_agent(agent.clone()),
        Err(too_large(
            "agent.capacity",
            AGENT_CAPACITY_MAX as usize + 1,
            AGENT_CAPACITY_MAX as usize
        ))
    );
    assert_eq!(s, before, "a refused agent changes nothing");
    agent.capacity = AGENT_CAPACITY_MAX;
    assert_eq!(s.upsert_agent(agent), Ok(()));
}

#[test]
fn r1_memberships_per_agent_are_limited() {
    let mut s = world();
    let mut agent = Agent::online(AgentId::from_u128(2), 1);
    for q in 0..MEMBERSHIPS_MAX as u128 {
        agent = agent.member_of(QueueId::from_u128(1000 + q), Level::One);
    }
    assert_eq!(s.upsert_agent(agent.clone()), Ok(()));
    agent = agent.member_of(QueueId::from_u128(5000), Level::Two);
    assert_eq!(
        s.upsert_agent(agent),
        Err(too_large(
            "agent.memberships",
            MEMBERSHIPS_MAX + 1,
            MEMBERSHIPS_MAX
        ))
    );
}

#[test]
fn r2_agents_queues_and_modules_per_snapshot_are_limited() {
    let mut s = Snapshot::new();
    for n in 0..AGENTS_MAX as u128 {
        s.upsert_agent(Agent::online(AgentId::from_u128(n), 1))
            .unwrap();
    }
    // Replacing an existing agent is always allowed; adding one more is not.
    assert_eq!(
        s.upsert_agent(Agent::online(AgentId::from_u128(0), 2)),
        Ok(())
    );
    assert_eq!(
        s.upsert_agent(Agent::online(AgentId::from_u128(u128::MAX), 1)),
        Err(too_large("snapshot.agents", AGENTS_MAX + 1, AGENTS_MAX))
    );
    for n in 0..QUEUES_MAX as u128 {
        s.upsert_queue(Queue::new(QueueId::from_u128(n), Selection::LeastBusy))
            .unwrap();
    }
    assert_eq!(
        s.upsert_queue(Queue::new(
            QueueId::from_u128(u128::MAX),
            Selection::LeastBusy
        )),
        Err(too_large("snapshot.queues", QUEUES_MAX + 1, QUEUES_MAX))
    );
    for n in 0..MODULES_MAX as u128 {
        s.upsert_module(Module::new(ModuleId::from_u128(n), Q))
            .unwrap();
    }
    assert_eq!(
        s.upsert_module(Module::new(ModuleId::from_u128(u128::MAX), Q)),
        Err(too_large("snapshot.modules", MODULES_MAX + 1, MODULES_MAX))
    );
}

#[test]
fn c2_queue_length_is_limited_and_a_full_queue_turns_chats_away() {
    let mut s = world();
    let mut queue = Queue::new(Q, Selection::LeastBusy);
    queue.waiting_max = QUEUE_WAITING_MAX + 1;
    assert_eq!(
        s.upsert_queue(queue.clone()),
        Err(too_large(
            "queue.waiting_max",
            QUEUE_WAITING_MAX as usize + 1,
            QUEUE_WAITING_MAX as usize
        ))
    );
    queue.waiting_max = 1;
    s.upsert_queue(queue).unwrap();
    s.set_presence(AgentId::from_u128(1), Presence::Online)
        .unwrap();
    let mut busy = s.agent(AgentId::from_u128(1)).unwrap().clone();
    busy.load = busy.capacity;
    s.upsert_agent(busy).unwrap();

    let router = Router::default();
    let first = router.decide(&s, &new_chat(1), now()).unwrap();
    assert!(matches!(first.decision, Decision::Enqueue(_)));
    s.apply(&first.decision).unwrap();
    let second = router.decide(&s, &new_chat(2), now()).unwrap();
    assert_eq!(
        second.decision,
        Decision::Offline {
            chat: ChatId::from_u128(2),
            module: M,
            reason: OfflineReason::QueueFull {
                queue: Q,
                waiting_max: 1
            }
        }
    );
    let mut loaded = s.waiting_chat(ChatId::from_u128(1)).unwrap().clone();
    loaded.id = ChatId::from_u128(3);
    assert_eq!(
        s.insert_waiting(loaded),
        Err(too_large("queue.waiting", 2, 1))
    );
}

fn chat_with(change: impl FnOnce(&mut IncomingChat)) -> Request {
    let mut c = IncomingChat::new(ChatId::from_u128(1), M);
    change(&mut c);
    Request::New(c)
}

#[test]
fn r5_routing_variables_are_limited_in_count_and_size() {
    let s = world();
    let router = Router::default();
    let ok = chat_with(|c| {
        c.variables = (0..VARIABLES_MAX)
            .map(|i| (format!("v{i}"), "x".repeat(VARIABLE_BYTES_MAX)))
            .collect();
    });
    assert!(router.decide(&s, &ok, now()).is_ok());
    let many = chat_with(|c| {
        c.variables = (0..=VARIABLES_MAX)
            .map(|i| (format!("v{i}"), String::new()))
            .collect();
    });
    assert_eq!(
        router.decide(&s, &many, now()),
        Err(too_large(
            "chat.variables",
            VARIABLES_MAX + 1,
            VARIABLES_MAX
        ))
    );
    let long_value = chat_with(|c| {
        c.variables = BTreeMap::from([("v".into(), "x".repeat(VARIABLE_BYTES_MAX + 1))]);
    });
    assert_eq!(
        router.decide(&s, &long_value, now()),
        Err(too_large(
            "chat.variables.value",
            VARIABLE_BYTES_MAX + 1,
            VARIABLE_BYTES_MAX
        ))
    );
    let long_name = chat_with(|c| {
        c.variables = BTreeMap::from([("n".repeat(VARIABLE_BYTES_MAX + 1), String::new())]);
    });
    assert_eq!(
        router.decide(&s, &long_name, now()),
        Err(too_large(
            "chat.variables.name",
            VARIABLE_BYTES_MAX + 1,
            VARIABLE_BYTES_MAX
        ))
    );
}

#[test]
fn r2_excluded_agents_per_chat_are_limited() {
    let s = world();
    let router = Router::default();
    let excluded =
        |n: u128| -> BTreeSet<AgentId> { (100..100 + n).map(AgentId::from_u128).collect() };
    let ok = chat_with(|c| c.excluded_agents = excluded(EXCLUDED_AGENTS_MAX as u128));
    assert!(
        router
            .decide(&s, &ok, now())
            .unwrap()
            .decision
            .assigned_agent()
            .is_some()
    );
    let over = chat_with(|c| c.excluded_agents = excluded(EXCLUDED_AGENTS_MAX as u128 + 1));
    assert_eq!(
        router.decide(&s, &over, now()),
        Err(too_large(
            "chat.excluded_agents",
            EXCLUDED_AGENTS_MAX + 1,
            EXCLUDED_AGENTS_MAX
        ))
    );
}

#[test]
fn r5_rules_and_conditions_are_limited() {
    let mut s = world();
    let rule = |conditions: usize| Rule {
        all: (0..conditions)
            .map(|i| Condition::Present {
                variable: format!("v{i}"),
            })
            .collect(),
        queue: Q,
    };
    let mut module = Module::new(M, Q);
    module.rules = vec![rule(CONDITIONS_MAX); RULES_MAX];
    assert_eq!(s.upsert_module(module.clone()), Ok(()));
    module.rules.push(rule(0));
    assert_eq!(
        s.upsert_module(module.clone()),
        Err(too_large("module.rules", RULES_MAX + 1, RULES_MAX))
    );
    module.rules = vec![rule(CONDITIONS_MAX + 1)];
    assert_eq!(
        s.upsert_module(module.clone()),
        Err(too_large(
            "module.rules.all",
            CONDITIONS_MAX + 1,
            CONDITIONS_MAX
        ))
    );
    module.rules = vec![Rule {
        all: vec![Condition::Equals {
            variable: "v".into(),
            value: "x".repeat(VARIABLE_BYTES_MAX + 1),
        }],
        queue: Q,
    }];
    assert_eq!(
        s.upsert_module(module),
        Err(too_large(
            "module.rules.all.value",
            VARIABLE_BYTES_MAX + 1,
            VARIABLE_BYTES_MAX
        ))
    );
}

#[test]
fn r6_unknown_ids_and_duplicate_chats_are_named() {
    let mut s = world();
    let router = Router::default();
    let missing_module = ModuleId::from_u128(9);
    assert_eq!(
        router.decide(
            &s,
            &Request::New(IncomingChat::new(ChatId::from_u128(1), missing_module)),
            now()
        ),
        Err(RouteError::UnknownModule(missing_module))
    );
    let resume = Request::Resume {
        chat: IncomingChat::new(ChatId::from_u128(1), M),
        queue: QueueId::from_u128(9),
    };
    assert_eq!(
        router.decide(&s, &resume, now()),
        Err(RouteError::UnknownQueue(QueueId::from_u128(9)))
    );
    assert_eq!(
        router.decide(&s, &Request::Waiting(ChatId::from_u128(5)), now()),
        Err(RouteError::UnknownChat(ChatId::from_u128(5)))
    );
    let mut busy = s.agent(AgentId::from_u128(1)).unwrap().clone();
    busy.load = 2;
    s.upsert_agent(busy).unwrap();
    let new = new_chat(1);
    let queued = router.decide(&s, &new, now()).unwrap();
    s.apply(&queued.decision).unwrap();
    assert_eq!(
        router.decide(&s, &new, now()),
        Err(RouteError::AlreadyWaiting(ChatId::from_u128(1)))
    );
    assert_eq!(
        s.apply(&queued.decision),
        Err(Conflict::ChatAlreadyWaiting(ChatId::from_u128(1)))
    );
}

#[test]
fn a3_transfer_to_an_agent_who_cannot_take_it_is_refused_with_the_reason() {
    let mut s = world();
    s.upsert_agent(Agent::online(AgentId::from_u128(2), 1).member_of(Q, Level::Two))
        .unwrap();
    s.set_presence(AgentId::from_u128(2), Presence::Away)
        .unwrap();
    let transfer = |to: u128| Request::Transfer {
        chat: IncomingChat::new(ChatId::from_u128(1), M),
        queue: Q,
        from: AgentId::from_u128(1),
        to: Target::Agent(AgentId::from_u128(to)),
    };
    let router = Router::default();
    assert_eq!(
        router.decide(&s, &transfer(2), now()),
        Err(RouteError::TransferTargetIneligible {
            agent: AgentId::from_u128(2),
            why: Exclusion::NotOnline(Presence::Away)
        })
    );
    assert_eq!(
        router.decide(&s, &transfer(1), now()),
        Err(RouteError::TransferTargetIneligible {
            agent: AgentId::from_u128(1),
            why: Exclusion::ExcludedForChat
        })
    );
    assert_eq!(
        router.decide(&s, &transfer(3), now()),
        Err(RouteError::UnknownAgent(AgentId::from_u128(3)))
    );
    s.set_presence(AgentId::from_u128(2), Presence::Online)
        .unwrap();
    let d = router.decide(&s, &transfer(2), now()).unwrap().decision;
    assert_eq!(
        d.assigned_agent(),
        Some(AgentId::from_u128(2)),
        "level 2 takes transfers"
    );
}

/// A policy that always names agent 1, eligible or not.
struct Rogue;

impl Policy for Rogue {
    fn select(&self, _: &Candidates<'_>) -> Option<AgentId> {
        Some(AgentId::from_u128(1))
    }
}

#[test]
fn r2_a_policy_cannot_overfill_an_agent() {
    let mut s = world();
    let mut full = s.agent(AgentId::from_u128(1)).unwrap().clone();
    full.load = 2;
    s.upsert_agent(full).unwrap();
    s.upsert_agent(Agent::online(AgentId::from_u128(2), 1).member_of(Q, Level::One))
        .unwrap();
    assert_eq!(
        Router::new(Rogue).decide(&s, &new_chat(1), now()),
        Err(RouteError::PolicyChoseIneligible {
            agent: AgentId::from_u128(1),
            why: Exclusion::AtCapacity {
                load: 2,
                capacity: 2
            }
        })
    );
}

#[test]
fn r2_a_commit_to_an_agent_who_went_offline_is_refused() {
    let mut s = world();
    let d = first_decision(&s);
    s.set_presence(AgentId::from_u128(1), Presence::Offline)
        .unwrap();
    assert_eq!(
        s.apply(&d),
        Err(Conflict::AgentUnavailable(AgentId::from_u128(1)))
    );
    assert_eq!(s.agent(AgentId::from_u128(1)).unwrap().load, 0);
}

#[test]
fn c6_ending_a_chat_of_an_unknown_agent_or_module_changes_nothing() {
    let mut s = world();
    let d = first_decision(&s);
    s.apply(&d).unwrap();
    let before = s.clone();
    assert_eq!(
        s.end_chat(AgentId::from_u128(9), M),
        Err(RouteError::UnknownAgent(AgentId::from_u128(9)))
    );
    assert_eq!(
        s.end_chat(AgentId::from_u128(1), ModuleId::from_u128(9)),
        Err(RouteError::UnknownModule(ModuleId::from_u128(9)))
    );
    assert_eq!(s, before);
    assert_eq!(s.end_chat(AgentId::from_u128(1), M), Ok(()));
    assert_eq!(s.agent(AgentId::from_u128(1)).unwrap().load, 0);
    assert_eq!(s.module(M).unwrap().open_chats, 0);
}

#[test]
fn a1_a_removed_agent_leaves_no_trace_and_is_never_chosen() {
    let mut s = world();
    let removed = s.remove_agent(AgentId::from_u128(1));
    assert_eq!(removed.map(|a| a.id), Some(AgentId::from_u128(1)));
    assert_eq!(s.remove_agent(AgentId::from_u128(1)), None);
    // Indistinguishable from a world that never had the agent: no index still points at them.
    let mut never = Snapshot::new();
    never
        .upsert_queue(Queue::new(Q, Selection::LeastBusy))
        .unwrap();
    never.upsert_module(Module::new(M, Q)).unwrap();
    assert_eq!(s, never);
    assert_eq!(
        Router::default()
            .decide(&s, &new_chat(1), now())
            .unwrap()
            .decision
            .assigned_agent(),
        None
    );
}
