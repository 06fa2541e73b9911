//! Peers' routing bugs, replayed as scenarios that this design makes impossible.
//!
//! Multi-instance bugs (Rocket.Chat #37776, #22206) are played with several hosts deciding on
//! the same snapshot and committing to one shared store (a `Snapshot` standing in for it: its
//! `apply` checks the same preconditions a database transaction would). The others replay the
//! peer's situation and assert our answer.

use std::collections::BTreeMap;

use chat_routing::*;
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Europe::Paris;

const Q: QueueId = QueueId::from_u128(1);
const M: ModuleId = ModuleId::from_u128(1);

fn agent(n: u128) -> AgentId {
    AgentId::from_u128(n)
}

fn chat(n: u128) -> ChatId {
    ChatId::from_u128(n)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn world(queue: Queue, agents: &[(u128, u32)]) -> Snapshot {
    let mut s = Snapshot::new();
    s.upsert_queue(queue).unwrap();
    s.upsert_module(Module::new(M, Q)).unwrap();
    for &(id, capacity) in agents {
        s.upsert_agent(Agent::online(agent(id), capacity).member_of(Q, Level::One))
            .unwrap();
    }
    s
}

fn new_chat(n: u128) -> Request {
    Request::New(IncomingChat::new(chat(n), M))
}

fn decide(s: &Snapshot, request: &Request, now: DateTime<Utc>) -> Decision {
    Router::default().decide(s, request, now).unwrap().decision
}

/// Rocket.Chat PR #37776: three instances, limit 3, an agent got 4 chats. Here three hosts read
/// the same snapshot (the agent at 2 of 3), each routes a different new chat to that agent, and
/// commits to the shared store: only the first commit holds, the others see the load changed,
/// re-read, and enqueue instead.
#[test]
fn r2_rocket_chat_37776_three_instances_never_exceed_the_limit() {
    let mut store = world(Queue::new(Q, Selection::LeastBusy), &[(1, 3)]);
    for n in 1..=2 {
        let d = decide(&store, &new_chat(n), t0());
        store.apply(&d).unwrap();
    }
    assert_eq!(store.agent(agent(1)).unwrap().load, 2);

    let hosts: Vec<Snapshot> = (0..3).map(|_| store.clone()).collect();
    let decisions: Vec<Decision> = hosts
        .iter()
        .zip(10..)
        .map(|(host, n)| decide(host, &new_chat(n), t0()))
        .collect();
    for d in &decisions {
        assert_eq!(
            d.assigned_agent(),
            Some(agent(1)),
            "each host alone sees room"
        );
    }

    assert_eq!(store.apply(&decisions[0]), Ok(()));
    for (d, n) in decisions[1..].iter().zip(11..) {
        assert_eq!(
            store.apply(d),
            Err(Conflict::AgentLoadChanged {
                agent: agent(1),
                expected: 2
            }),
            "the losing host's commit is refused"
        );
        // The loser re-reads the store and asks again: the agent is full now.
        let retry = decide(&store, &new_chat(n), t0());
        assert!(
            matches!(&retry, Decision::Enqueue(e) if e.reason == WaitReason::BehindWaitingChats || e.reason == WaitReason::AllBusy)
        );
        store.apply(&retry).unwrap();
    }
    assert_eq!(store.agent(agent(1)).unwrap().load, 3);
    assert_eq!(store.waiting_len(), 2);
}

/// Rocket.Chat #22206: one inquiry taken by several agents. Two hosts route the same waiting
/// chat — each to a different agent, because their views differ — and both commit: the chat's
/// version precondition lets exactly one through.
#[test]
fn r2_rocket_chat_22206_one_waiting_chat_is_taken_once() {
    let mut store = world(Queue::new(Q, Selection::LongestIdle), &[(1, 1), (2, 1)]);
    for n in [100, 101] {
        let d = decide(&store, &new_chat(n), t0());
        store.apply(&d).unwrap();
    }
    let queued = decide(&store, &new_chat(7), t0());
    store.apply(&queued).unwrap();
    assert!(
        store.waiting_chat(chat(7)).is_some(),
        "both agents are busy"
    );

    // Agent 1's chat ends on host A while agent 2's ends on host B; the store gets both.
    let mut host_a = store.clone();
    host_a.end_chat(agent(1), M).unwrap();
    let mut host_b = store.clone();
    host_b.end_chat(agent(2), M).unwrap();
    store.end_chat(agent(1), M).unwrap();
    store.end_chat(agent(2), M).unwrap();

    let a = Router::default().drain(&mut host_a, t0()).unwrap();
    let b = Router::default().drain(&mut host_b, t0()).unwrap();
    assert_eq!(a[0].decision.assigned_agent(), Some(agent(1)));
    assert_eq!(b[0].decision.assigned_agent(), Some(agent(2)));

    assert_eq!(store.apply(&a[0].decision), Ok(()));
    assert_eq!(
        store.apply(&b[0].decision),
        Err(Conflict::ChatMoved {
            chat: chat(7),
            expected: 1
        })
    );
    let loads: Vec<u32> = store.agents().map(|a| a.load).collect();
    assert_eq!(loads, vec![1, 0], "only one agent holds the chat");
    assert_eq!(store.waiting_len(), 0);
}

/// C2 across hosts: a module capped at 1 open chat; two hosts each admit a different visitor on
/// the same snapshot; the module-count precondition refuses the second.
#[test]
fn c2_module_cap_holds_when_two_hosts_admit_at_once() {
    // The only agent is busy, so both visitors are queued: admission alone is contended.
    let mut store = world(Queue::new(Q, Selection::LeastBusy), &[(1, 0)]);
    let mut module = store.module(M).unwrap().clone();
    module.open_chats_max = Some(1);
    store.upsert_module(module).unwrap();
    let first = decide(&store.clone(), &new_chat(1), t0());
    let second = decide(&store.clone(), &new_chat(2), t0());
    assert!(matches!(first, Decision::Enqueue(_)) && matches!(second, Decision::Enqueue(_)));
    store.apply(&first).unwrap();
    assert_eq!(
        store.apply(&second),
        Err(Conflict::ModuleCountChanged {
            module: M,
            expected: 0
        })
    );
    assert!(matches!(
        decide(&store, &new_chat(2), t0()),
        Decision::Offline {
            reason: OfflineReason::ModuleAtCapacity { open_chats_max: 1 },
            ..
        }
    ));
}

/// Rocket.Chat #13134: a lifetime counter flooded an agent back from holiday. Routing has no
/// lifetime counter; least busy looks at the current load only. Two colleagues with 2 chats each
/// and a long history, one agent back from a month away: she gets 2 chats to catch up, then all
/// three take turns.
#[test]
fn r4_rocket_chat_13134_agent_back_from_holiday_gets_a_fair_share() {
    let mut s = world(
        Queue::new(Q, Selection::LeastBusy),
        &[(1, 10), (2, 10), (3, 10)],
    );
    for (id, load, last) in [(2, 2, 1), (3, 2, 2)] {
        let mut a = s.agent(agent(id)).unwrap().clone();
        a.load = load;
        a.last_assigned_at = Some(t0() - Duration::minutes(last));
        s.upsert_agent(a).unwrap();
    }
    let mut back = s.agent(agent(1)).unwrap().clone();
    back.last_assigned_at = Some(t0() - Duration::days(30));
    s.upsert_agent(back).unwrap();

    let mut given = Vec::new();
    for n in 1..=8 {
        let d = decide(&s, &new_chat(n), t0() + Duration::seconds(n as i64));
        given.push(d.assigned_agent().unwrap());
        s.apply(&d).unwrap();
    }
    assert_eq!(&given[..2], &[agent(1), agent(1)]);
    let loads: Vec<u32> = s.agents().map(|a| a.load).collect();
    assert_eq!(loads, vec![4, 4, 4]);
}

/// Chatwoot #10583: a queued chat stayed unassigned when capacity freed while a later one was
/// served. Here capacity frees while a new visitor arrives: the newcomer may not overtake, and
/// the drain serves the queue in arrival order.
#[test]
fn r4_chatwoot_10583_freed_capacity_serves_the_queue_in_order() {
    let mut s = world(Queue::new(Q, Selection::LeastBusy), &[(1, 1)]);
    for n in 1..=3 {
        let d = decide(&s, &new_chat(n), t0() + Duration::seconds(n as i64));
        s.apply(&d).unwrap();
    }
    assert_eq!(s.agent(agent(1)).unwrap().load, 1);
    assert_eq!(
        s.waiting().map(|c| c.id).collect::<Vec<_>>(),
        [chat(2), chat(3)]
    );

    let now = t0() + Duration::minutes(5);
    s.end_chat(agent(1), M).unwrap();
    // The host happens to handle a new visitor before it drains: the newcomer waits its turn.
    let newcomer = decide(&s, &new_chat(4), now);
    assert!(
        matches!(&newcomer, Decision::Enqueue(e) if e.reason == WaitReason::BehindWaitingChats)
    );
    s.apply(&newcomer).unwrap();

    let served = Router::default().drain(&mut s, now).unwrap();
    let order: Vec<ChatId> = served
        .iter()
        .map(|o| match &o.decision {
            Decision::Assign(a) => a.chat.id,
            other => panic!("drain returned {other:?}"),
        })
        .collect();
    assert_eq!(order, [chat(2)], "the longest-waiting chat is served first");

    s.end_chat(agent(1), M).unwrap();
    let served = Router::default().drain(&mut s, now).unwrap();
    assert_eq!(served[0].decision.assigned_agent(), Some(agent(1)));
    assert!(matches!(&served[0].decision, Decision::Assign(a) if a.chat.id == chat(3)));
}

fn returning(previous: u128) -> Request {
    let mut c = IncomingChat::new(chat(9), M);
    c.previous_agent = Some(agent(previous));
    Request::Resume { chat: c, queue: Q }
}

/// Chatwoot #4158: returning chats were routed to the offline previous agent. In same-agent mode
/// the chat waits for the previous agent (never routed to them while offline), and falls back to
/// anyone when the wait ends — `next_wakeup` says when.
#[test]
fn r3_chatwoot_4158_returning_chat_never_goes_to_an_offline_previous_agent() {
    let mut queue = Queue::new(Q, Selection::LongestIdle);
    queue.repeat = RepeatMode::Same { wait_s: 60 };
    let mut s = world(queue, &[(1, 2), (2, 2)]);
    s.set_presence(agent(1), Presence::Offline).unwrap();
    let router = Router::default();

    let d = decide(&s, &returning(1), t0());
    let until = t0() + Duration::seconds(60);
    assert!(
        matches!(&d, Decision::Enqueue(e) if e.reason == WaitReason::WaitingForPreviousAgent { agent: agent(1), until })
    );
    s.apply(&d).unwrap();
    assert_eq!(router.next_wakeup(&s, t0()), Some(until));

    let mut still_waiting = s.clone();
    assert!(
        router
            .drain(&mut still_waiting, t0() + Duration::seconds(59))
            .unwrap()
            .is_empty()
    );

    let mut expired = s.clone();
    let served = router.drain(&mut expired, until).unwrap();
    assert_eq!(served[0].decision.assigned_agent(), Some(agent(2)));

    let mut back = s.clone();
    back.set_presence(agent(1), Presence::Online).unwrap();
    let served = router
        .drain(&mut back, t0() + Duration::seconds(20))
        .unwrap();
    assert_eq!(
        served[0].decision.assigned_agent(),
        Some(agent(1)),
        "the previous agent, once back"
    );
}

/// R3: the three repeat modes with the previous agent online and free.
#[test]
fn r3_repeat_modes_any_same_new() {
    let decide_with = |repeat: RepeatMode| {
        let mut queue = Queue::new(Q, Selection::LongestIdle);
        queue.repeat = repeat;
        let mut s = world(queue, &[(1, 2), (2, 2)]);
        // Agent 1 was busier lately, so the policy alone would prefer agent 2.
        let mut a = s.agent(agent(1)).unwrap().clone();
        a.last_assigned_at = Some(t0());
        s.upsert_agent(a).unwrap();
        decide(&s, &returning(1), t0()).assigned_agent()
    };
    assert_eq!(decide_with(RepeatMode::Any), Some(agent(2)));
    assert_eq!(decide_with(RepeatMode::Same { wait_s: 0 }), Some(agent(1)));
    assert_eq!(decide_with(RepeatMode::New), Some(agent(2)));
}

/// The host's side of opening hours: Monday to Friday 09:00–17:00 in Europe/Paris, evaluated
/// with chrono-tz into the `Opening` routing takes as data.
fn paris_office_hours(now: DateTime<Utc>) -> Opening {
    let local_day = now.with_timezone(&Paris).date_naive();
    let mut bounds = Vec::new();
    for offset in -1..=8 {
        let day = local_day + Duration::days(offset);
        if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            continue;
        }
        let at = |h| {
            Paris
                .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(h, 0, 0).unwrap()))
                .single()
                .unwrap()
                .with_timezone(&Utc)
        };
        bounds.push((at(9), at(17)));
    }
    let open = bounds.iter().any(|&(from, to)| from <= now && now < to);
    let until = bounds
        .iter()
        .flat_map(|&(from, to)| [from, to])
        .filter(|&t| t > now)
        .min();
    Opening { open, until }
}

/// Rocket.Chat #4898: business hours were off by an hour after DST. Routing holds no schedule:
/// the host evaluates it in the module's time zone and passes the result; the weekend of
/// 28–29 March 2026 moves Paris from UTC+1 to UTC+2, and 09:30 local is served on both sides.
#[test]
fn c2_rocket_chat_4898_opening_hours_hold_across_a_dst_change() {
    let router = Router::default();
    let cases = [
        // (instant in UTC, local time, open?)
        (
            Utc.with_ymd_and_hms(2026, 3, 27, 8, 30, 0).unwrap(),
            "Fri 09:30 CET",
            true,
        ),
        (
            Utc.with_ymd_and_hms(2026, 3, 27, 15, 30, 0).unwrap(),
            "Fri 16:30 CET",
            true,
        ),
        (
            Utc.with_ymd_and_hms(2026, 3, 30, 6, 30, 0).unwrap(),
            "Mon 08:30 CEST",
            false,
        ),
        (
            Utc.with_ymd_and_hms(2026, 3, 30, 7, 30, 0).unwrap(),
            "Mon 09:30 CEST",
            true,
        ),
        (
            Utc.with_ymd_and_hms(2026, 3, 30, 15, 30, 0).unwrap(),
            "Mon 17:30 CEST",
            false,
        ),
    ];
    for (now, local, open) in cases {
        let mut s = world(Queue::new(Q, Selection::LeastBusy), &[(1, 3)]);
        let opening = paris_office_hours(now);
        s.set_opening(M, opening).unwrap();
        let d = decide(&s, &new_chat(1), now);
        if open {
            assert_eq!(d.assigned_agent(), Some(agent(1)), "{local} is open");
        } else {
            assert!(
                matches!(
                    d,
                    Decision::Offline {
                        reason: OfflineReason::OutsideHours { .. },
                        ..
                    }
                ),
                "{local} is closed, got {d:?}"
            );
        }
        assert_eq!(router.next_wakeup(&s, now), opening.until);
    }

    // Friday 17:00 CET closes at 16:00 UTC; Monday opens at 07:00 UTC (09:00 CEST), not 08:00.
    let friday_evening = Utc.with_ymd_and_hms(2026, 3, 27, 16, 0, 0).unwrap();
    let opening = paris_office_hours(friday_evening);
    assert_eq!(
        opening,
        Opening {
            open: false,
            until: Some(Utc.with_ymd_and_hms(2026, 3, 30, 7, 0, 0).unwrap())
        }
    );

    // Opening data used past its validity is refused, not trusted.
    let mut s = world(Queue::new(Q, Selection::LeastBusy), &[(1, 3)]);
    s.set_opening(M, opening).unwrap();
    let monday = Utc.with_ymd_and_hms(2026, 3, 30, 7, 30, 0).unwrap();
    assert_eq!(
        Router::default().decide(&s, &new_chat(1), monday),
        Err(RouteError::StaleOpening {
            module: M,
            until: opening.until.unwrap()
        })
    );
}

/// R1: level 2 receives transfers only — a visitor's chat waits (or is unmanaged) rather than
/// going to level 2, and a transfer reaches level 2.
#[test]
fn r1_level_two_only_receives_transfers() {
    let mut s = Snapshot::new();
    s.upsert_queue(Queue::new(Q, Selection::LeastBusy)).unwrap();
    s.upsert_module(Module::new(M, Q)).unwrap();
    s.upsert_agent(Agent::online(agent(2), 3).member_of(Q, Level::Two))
        .unwrap();
    s.upsert_agent(Agent::online(agent(1), 3)).unwrap();
    assert!(matches!(
        decide(&s, &new_chat(1), t0()),
        Decision::Unmanaged { .. }
    ));

    let transfer = Request::Transfer {
        chat: IncomingChat::new(chat(1), M),
        queue: Q,
        from: agent(1),
        to: Target::Queue(Q),
    };
    let d = decide(&s, &transfer, t0());
    assert_eq!(d.assigned_agent(), Some(agent(2)));
    assert!(matches!(&d, Decision::Assign(a) if a.release == Some(agent(1))));
}

/// R5: smart routing rules over routing variables choose the queue; the trace says which rule.
#[test]
fn r5_smart_routing_rules_choose_the_queue() {
    let sales = QueueId::from_u128(2);
    let mut s = world(Queue::new(Q, Selection::LeastBusy), &[(1, 3)]);
    s.upsert_queue(Queue::new(sales, Selection::LeastBusy))
        .unwrap();
    s.upsert_agent(Agent::online(agent(2), 3).member_of(sales, Level::One))
        .unwrap();
    let mut module = Module::new(M, Q);
    module.rules = vec![Rule {
        all: vec![Condition::OneOf {
            variable: "topic".into(),
            values: ["pricing".to_string(), "sales".to_string()].into(),
        }],
        queue: sales,
    }];
    s.upsert_module(module).unwrap();

    let mut c = IncomingChat::new(chat(1), M);
    c.variables = BTreeMap::from([("topic".to_string(), "pricing".to_string())]);
    let outcome = Router::default()
        .decide(&s, &Request::New(c), t0())
        .unwrap();
    assert_eq!(outcome.decision.assigned_agent(), Some(agent(2)));
    assert_eq!(outcome.trace.queue_choice, QueueChoice::Rule(0));

    let outcome = Router::default().decide(&s, &new_chat(2), t0()).unwrap();
    assert_eq!(outcome.decision.assigned_agent(), Some(agent(1)));
    assert_eq!(outcome.trace.queue_choice, QueueChoice::ModuleDefault);
}

/// The trace: `explain` gives every agent's verdict and the same decision as `decide`.
#[test]
fn r6_explain_says_why_each_agent_was_excluded() {
    let mut s = world(
        Queue::new(Q, Selection::LeastBusy),
        &[(1, 1), (2, 1), (3, 1)],
    );
    s.set_presence(agent(2), Presence::Away).unwrap();
    s.upsert_agent(Agent::online(agent(4), 1)).unwrap();
    let mut full = s.agent(agent(3)).unwrap().clone();
    full.load = 1;
    s.upsert_agent(full).unwrap();
    let router = Router::default();
    let explained = router.explain(&s, &new_chat(1), t0()).unwrap();
    assert_eq!(
        explained.decision,
        router.decide(&s, &new_chat(1), t0()).unwrap().decision
    );
    assert!(explained.trace.complete);
    assert_eq!(
        explained.trace.agents,
        vec![
            (agent(1), Verdict::Chosen),
            (
                agent(2),
                Verdict::Excluded(Exclusion::NotOnline(Presence::Away))
            ),
            (
                agent(3),
                Verdict::Excluded(Exclusion::AtCapacity {
                    load: 1,
                    capacity: 1
                })
            ),
            (agent(4), Verdict::Excluded(Exclusion::NotMember)),
        ]
    );
}
