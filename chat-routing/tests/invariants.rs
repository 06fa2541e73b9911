//! R6 and the routing side of C2, C3, C7: the public harness run on the built-in policies, plus
//! properties that need a world of their own (identical agents under least-busy).

use chat_routing::harness::{self, Options};
use chat_routing::*;
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(harness::cases())
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
