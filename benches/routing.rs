//! How long does routing take as the team grows? One decision and a full drain at 100, 1,000 and
//! 10,000 agents with ten times as many waiting chats, against a same-process baseline: the same
//! engine with a naive policy that scans every eligible agent (what a straightforward router
//! does). Figures and the command are in docs/PERFORMANCE.md.

use std::hint::black_box;

use chat_routing::{
    Agent, AgentId, Candidates, ChatId, Level, Module, ModuleId, Origin, Policy, Queue, QueueId,
    Request, Router, Selection, Snapshot, WaitingChat,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};

const QUEUE: QueueId = QueueId::from_u128(1);
const MODULE: ModuleId = ModuleId::from_u128(1);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// `agents` online agents of capacity 4 with loads 0–4 spread deterministically (a fifth are
/// full), distinct idle times, one least-busy queue, and `10 × agents` waiting chats.
fn world(agents: u128) -> Snapshot {
    let mut s = Snapshot::new();
    s.upsert_queue(Queue::new(QUEUE, Selection::LeastBusy))
        .unwrap();
    s.upsert_module(Module::new(MODULE, QUEUE)).unwrap();
    for n in 0..agents {
        let mut agent = Agent::online(AgentId::from_u128(n + 1), 4).member_of(QUEUE, Level::One);
        agent.load = ((n * 7) % 5) as u32;
        agent.last_assigned_at = Some(start() - Duration::seconds((n * 13 % 997) as i64));
        s.upsert_agent(agent).unwrap();
    }
    for n in 0..agents * 10 {
        s.insert_waiting(WaitingChat {
            id: ChatId::from_u128(n + 1),
            version: 1,
            module: MODULE,
            queue: QUEUE,
            arrived_at: start() - Duration::seconds((agents * 10 - n) as i64),
            priority: 0,
            origin: Origin::Customer,
            previous_agent: None,
            variables: Default::default(),
            excluded_agents: Default::default(),
        })
        .unwrap();
    }
    s
}

/// The baseline: least busy by scanning every eligible agent, as a router without indexes does.
struct LinearScan;

impl Policy for LinearScan {
    fn select(&self, candidates: &Candidates<'_>) -> Option<AgentId> {
        candidates
            .eligible()
            .into_iter()
            .min_by_key(|a| (a.load, a.last_assigned_at, a.id))
            .map(|a| a.id)
    }
}

fn routing(c: &mut Criterion) {
    let sizes = [100u128, 1_000, 10_000];
    let worlds: Vec<(u128, Snapshot)> = sizes.iter().map(|&n| (n, world(n))).collect();
    let now = start();

    let mut group = c.benchmark_group("routing/decide");
    for (n, snapshot) in &worlds {
        let head = Request::Waiting(snapshot.waiting().next().unwrap().id);
        group.bench_with_input(BenchmarkId::new("indexed", n), &head, |b, request| {
            b.iter(|| Router::default().decide(black_box(snapshot), black_box(request), now))
        });
        group.bench_with_input(BenchmarkId::new("linear_scan", n), &head, |b, request| {
            b.iter(|| Router::new(LinearScan).decide(black_box(snapshot), black_box(request), now))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("routing/drain");
    group.sample_size(10);
    for (n, snapshot) in &worlds {
        group.bench_with_input(BenchmarkId::new("indexed", n), snapshot, |b, snapshot| {
            b.iter_batched(
                || snapshot.clone(),
                // Return the snapshot too: criterion drops outputs outside the measurement.
                |mut s| {
                    let served = Router::default().drain(&mut s, now).unwrap();
                    (s, served)
                },
                BatchSize::LargeInput,
            )
        });
        // The naive drain is quadratic; at 10,000 agents one run takes minutes.
        if *n <= 1_000 {
            group.bench_with_input(
                BenchmarkId::new("linear_scan", n),
                snapshot,
                |b, snapshot| {
                    b.iter_batched(
                        || snapshot.clone(),
                        |mut s| {
                            let served = Router::new(LinearScan).drain(&mut s, now).unwrap();
                            (s, served)
                        },
                        BatchSize::LargeInput,
                    )
                },
            );
        }
        group.bench_with_input(
            BenchmarkId::new("clone_only", n),
            snapshot,
            |b, snapshot| b.iter(|| black_box(snapshot).clone()),
        );
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
