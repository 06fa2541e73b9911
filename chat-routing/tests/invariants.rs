//! R6 and the routing side of C2, C3, C7: the public harness run on the built-in policies, plus
//! properties that need a world of their own (identical agents under least-busy).

use chat_routing::harness::{self, Options};
use chat_routing::*;
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(harness::cases())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(harness::cases() / 10))]

    /// The same invariants in larger worlds (up to 12 agents, 4 queues, 3 modules, 150
    /// operations), where walks past excluded agents, round-robin wrap-around across levels and
    /// long queues occur. A tenth of the cases (1,000 in CI): each is about forty times larger.
    #[test]
    fn r6_larger_worlds_keep_every_harness_invariant(
        scenario in harness::scenario_with(harness::Sizes {
            agents_max: 12,
            queues_max: 4,
            modules_max: 3,
            ops_max: 150,
        })
    ) {
        let result = harness::run(&QueueSelection, &scenario, &Options { builtin_selection: true });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every invariant of the harness (capacity, presence, membership, levels, one agent per
    /// chat, no chat lost, hours, module cap, FIFO, work conservation, least busy, same/new agent,
    /// determinism, input order, offline agents, drain = single decisions, explain) holds for the
    /// built-in policies over random worlds and operation sequences.
    #[test]
    fn r6_builtin_policies_keep_every_harness_invariant(scenario in harness::scenario()) {
        let result = harness::run(&QueueSelection, &scenario, &Options { builtin_selection: true });
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }

    /// R4: under least busy, identical agents never drift more than one chat apart while chats
    /// arrive, whatever their number and the agents' capacity.
    #[test]
    fn r4_least_busy_keeps_identical_agents_within_one_chat(
        agents in 2u128..=8,
        capacity in 1u32..=6,
        chats in 0u128..=60,
        idle in prop::collection::vec(prop::option::of(0i64..100), 8),
    ) {
        let queue = QueueId::from_u128(1);
        let module = ModuleId::from_u128(1);
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        let mut snapshot = Snapshot::new();
        snapshot.upsert_queue(Queue::new(queue, Selection::LeastBusy)).unwrap();
        snapshot.upsert_module(Module::new(module, queue)).unwrap();
        for a in 0..agents {
            let mut agent = Agent::online(AgentId::from_u128(a + 1), capacity).member_of(queue, Level::One);
            // Different histories must not matter: only the current load does (Rocket.Chat #13134).
            agent.last_assigned_at = idle[a as usize].map(|s| start - Duration::minutes(s));
            snapshot.upsert_agent(agent).unwrap();
        }
        let router = Router::default();
        for c in 0..chats {
            let now = start + Duration::seconds(c as i64);
            let request = Request::New(IncomingChat::new(ChatId::from_u128(c + 1), module));
            let outcome = router.decide(&snapshot, &request, now).unwrap();
            snapshot.apply(&outcome.decision).unwrap();
            let loads: Vec<u32> = snapshot.agents().map(|a| a.load).collect();
            let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            prop_assert!(max - min <= 1, "loads {loads:?} after {} chats", c + 1);
        }
    }
}

/// The harness proves nothing about a kind of decision it never reaches: across 256 generated
/// scenarios (a fixed seed), every kind occurs.
#[test]
fn r6_the_harness_reaches_every_kind_of_decision() {
    let mut runner = TestRunner::deterministic();
    let mut total = harness::Coverage::default();
    for _ in 0..256 {
        let scenario = harness::scenario()
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        let coverage = harness::run(
            &QueueSelection,
            &scenario,
            &Options {
                builtin_selection: true,
            },
        )
        .unwrap_or_else(|v| panic!("{v}"));
        total.add(&coverage);
    }
    let counts = [
        ("assigned", total.assigned),
        ("drained", total.drained),
        ("enqueued", total.enqueued),
        ("behind_waiting", total.behind_waiting),
        ("held_for_previous", total.held_for_previous),
        ("returned_to_previous", total.returned_to_previous),
        ("level_two_transfers", total.level_two_transfers),
        ("transfers_refused", total.transfers_refused),
        ("offline_outside_hours", total.offline_outside_hours),
        ("offline_module_cap", total.offline_module_cap),
        ("offline_queue_full", total.offline_queue_full),
        ("unmanaged", total.unmanaged),
    ];
    println!("{counts:?}");
    for (kind, count) in counts {
        assert!(count > 0, "no scenario reached `{kind}`: {total:?}");
    }
}

/// A policy that is fair in its own way (the highest id first) is still safe: the public entry
/// point accepts it.
struct HighestId;

impl Policy for HighestId {
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates.eligible().last().map(|agent| agent.id)
    }
}

#[test]
fn r6_the_harness_accepts_a_valid_custom_policy() {
    harness::check_policy(
        &HighestId,
        &Options {
            builtin_selection: false,
        },
    );
}

/// A policy that leaves chats waiting while agents have room is caught by the public entry point.
struct Lazy;

impl Policy for Lazy {
    fn select(&self, _: &Candidates<'_>) -> Option<AgentId> {
        None
    }
}

#[test]
#[should_panic(expected = "work-conservation")]
fn r6_the_harness_catches_a_policy_that_leaves_chats_waiting() {
    harness::check_policy(
        &Lazy,
        &Options {
            builtin_selection: false,
        },
    );
}
