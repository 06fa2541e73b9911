//! A routing policy of your own, proven with the public invariant harness.
//!
//! The built-in policies compare absolute loads; a team with agents of very different capacity
//! may prefer to fill everyone to the same *fraction* of their capacity. That is a few lines of
//! [`Policy`]: the engine still decides who is eligible (presence, membership, level, capacity,
//! repeat-visitor mode, queue order), the policy only chooses among them — and
//! `harness::check_policy` runs thousands of random worlds against it to show it keeps every
//! invariant in `docs/ROUTING.md`.
//!
//! Run: `cargo run -p chat-examples --example custom_policy` (set `CI=true` for 10,000 cases).

use chat_routing::harness::{self, Options};
use chat_routing::{
    Agent, AgentId, Candidates, ChatId, Decision, IncomingChat, Level, Module, ModuleId, Policy,
    Queue, QueueId, Request, Router, Selection, Snapshot,
};
use chrono::{TimeZone, Utc};

/// Lowest load relative to capacity first; ties go to the longest idle, then the lowest id, so
/// the choice never depends on input order.
struct LowestUtilisation;

impl Policy for LowestUtilisation {
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates
            .eligible()
            .into_iter()
            .min_by(|a, b| {
                // a.load / a.capacity < b.load / b.capacity, without floating point.
                let left = u64::from(a.load) * u64::from(b.capacity);
                let right = u64::from(b.load) * u64::from(a.capacity);
                left.cmp(&right)
                    .then(a.last_assigned_at.cmp(&b.last_assigned_at))
                    .then(a.id.cmp(&b.id))
            })
            .map(|agent| agent.id)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One decision, to see the policy at work: a senior agent with room for 8 chats and 3 open
    // is at 37 %; a junior with room for 2 and 1 open is at 50 %. The senior gets the chat,
    // though least busy (absolute load) would pick the junior.
    let (queue, module) = (QueueId::from_u128(1), ModuleId::from_u128(1));
    let mut snapshot = Snapshot::new();
    snapshot.upsert_queue(Queue::new(queue, Selection::LeastBusy))?;
    snapshot.upsert_module(Module::new(module, queue))?;
    let (senior, junior) = (AgentId::from_u128(1), AgentId::from_u128(2));
    let mut agent = Agent::online(senior, 8).member_of(queue, Level::One);
    agent.load = 3;
    snapshot.upsert_agent(agent)?;
    let mut agent = Agent::online(junior, 2).member_of(queue, Level::One);
    agent.load = 1;
    snapshot.upsert_agent(agent)?;

    let now = Utc.with_ymd_and_hms(2026, 3, 30, 9, 0, 0).unwrap();
    let request = Request::New(IncomingChat::new(ChatId::from_u128(1), module));
    let ours = Router::new(LowestUtilisation).decide(&snapshot, &request, now)?;
    let builtin = Router::default().decide(&snapshot, &request, now)?;
    println!(
        "lowest utilisation gives the chat to {:?}",
        ours.decision.assigned_agent()
    );
    println!(
        "least busy would give it to      {:?}",
        builtin.decision.assigned_agent()
    );
    assert_eq!(ours.decision.assigned_agent(), Some(senior));
    assert_eq!(builtin.decision.assigned_agent(), Some(junior));
    if let Decision::Assign(assignment) = &ours.decision {
        println!("commit only if still true: {:?}", assignment.expect);
    }

    // Now the proof: random worlds and operation sequences, every invariant checked after every
    // step. `builtin_selection: false` because this policy deliberately is not least busy.
    println!(
        "running the invariant harness ({} cases)…",
        harness::cases()
    );
    harness::check_policy(
        &LowestUtilisation,
        &Options {
            builtin_selection: false,
        },
    );
    println!("all routing invariants hold for LowestUtilisation");
    Ok(())
}
