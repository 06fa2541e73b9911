//! Live fan-out over real stores: subscribers get events with their global positions, resume
//! from their last position after a disconnect with no gap and no duplicate, a slow subscriber
//! is disconnected with a clear reason without delaying the others, and the named limits hold.

mod support;

use chat_core::conversation::{ChatSettings, Party};
use chat_core::{AgentId, ChatId, ModuleId};
use chat_service::engine::{Codec, DomainEvent, ShutdownTrigger};
use chat_service::fanout::{
    Audience, Disconnect, Fanout, FanoutError, FanoutOptions, LAG_GRACE_MS_MAX,
    SUBSCRIBER_BUFFER_EVENTS_MAX, SUBSCRIBERS_MAX, Subscription,
};
use chat_store::{EventStore, GlobalPosition};
use std::sync::Arc;
use std::time::Duration;
use support::{Backend, Driver, WAIT, backends, read_log};
use uuid::Uuid;

async fn fanout(store: Arc<dyn EventStore>, options: FanoutOptions) -> (Fanout, ShutdownTrigger) {
    let (trigger, shutdown) = ShutdownTrigger::new();
    let fanout = Fanout::start(store, Arc::new(Codec::default()), options, shutdown)
        .await
        .expect("fan-out");
    (fanout, trigger)
}

async fn next(sub: &mut Subscription) -> Result<GlobalPosition, FanoutError> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .map(|e| e.position())
}

/// Positions of every chat and agent event in the log (what a board must see).
async fn board_positions(store: &dyn EventStore) -> Vec<GlobalPosition> {
    read_log(store)
        .await
        .iter()
        .filter(|r| {
            let s = r.stream_id.as_str();
            s.starts_with("chat-") || s.starts_with("agent-")
        })
        .map(|r| r.global_position)
        .collect()
}

/// Many small chats, written while the subscriber reads, disconnects and resumes.
async fn traffic(driver: &Driver, chats: usize, agent: AgentId) {
    let module = ModuleId::from_uuid(Uuid::now_v7());
    for i in 0..chats {
        let chat = ChatId::from_uuid(Uuid::now_v7());
        driver
            .start(chat, module, None, &[], ChatSettings::default(), true)
            .await;
        if i % 3 == 0 {
            driver.assign(chat, agent).await;
            driver.say(chat, Party::Agent(agent), "hello").await;
            driver.end_by_agent(chat, agent).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_a_subscriber_that_disconnects_and_resumes_misses_nothing_and_sees_nothing_twice() {
    for backend in backends().await {
        let store = backend.store();
        let driver = Arc::new(Driver::new(store.clone()));
        let agent = AgentId::from_uuid(Uuid::now_v7());
        driver.online_agent(agent).await;
        // History before the fan-out starts: a resume must read it from the log.
        traffic(&driver, 5, agent).await;
        let (fanout, trigger) = fanout(store.clone(), FanoutOptions::default()).await;
        let writer = {
            let driver = driver.clone();
            tokio::spawn(async move { traffic(&driver, 30, agent).await })
        };
        let mut seen: Vec<GlobalPosition> = Vec::new();
        let mut sub = fanout
            .subscribe(Audience::Board, 0)
            .await
            .expect("subscribe");
        let mut reconnects = 0;
        let mut reconnected_at = None;
        let mut done_writing = false;
        loop {
            // Disconnect every 17 events (a dropped WebSocket), resume from the last position.
            if seen.len() % 17 == 16 && reconnected_at != Some(seen.len()) {
                reconnected_at = Some(seen.len());
                let last = sub.last_position();
                assert_eq!(Some(&last), seen.last());
                drop(sub);
                sub = fanout
                    .subscribe(Audience::Board, last)
                    .await
                    .expect("resume");
                reconnects += 1;
            }
            if !done_writing && writer.is_finished() {
                done_writing = true;
            }
            if done_writing {
                let expected = board_positions(&*store).await;
                if seen.len() == expected.len() {
                    assert_eq!(
                        seen,
                        expected,
                        "{}: every event once, in order",
                        backend.name()
                    );
                    break;
                }
            }
            if !done_writing && seen.len() == board_positions(&*store).await.len() {
                // Everything written so far is seen, and the writer may be returning without
                // another event: waiting in `next` here could wait for an event that never
                // comes. Look at the writer again shortly instead.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            seen.push(next(&mut sub).await.expect("event"));
        }
        assert!(
            reconnects >= 3,
            "the test really reconnected ({reconnects})"
        );
        // Nothing beyond the log arrives (no duplicate), and asking for more switches the
        // caught-up subscription from reading the log to the live hub.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), sub.next())
                .await
                .is_err(),
            "no event beyond the log"
        );
        assert!(sub.is_live(), "after catching up the subscription is live");
        writer.await.expect("writer");
        trigger.trigger();
        drop(sub);
        drop(fanout);
        drop(driver);
        drop(store);
        backend.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_a_slow_subscriber_is_disconnected_as_lagged_and_does_not_block_others() {
    let backend = Backend::sled();
    let store = backend.store();
    let driver = Driver::new(store.clone());
    let options = FanoutOptions {
        subscribers_max: 10,
        subscriber_buffer_events: 4,
        lag_grace_ms: 1_000,
    };
    let (fanout, _trigger) = fanout(store.clone(), options).await;
    let head = store.head_position().await.expect("head");
    let mut slow = fanout.subscribe(Audience::Board, head).await.expect("slow");
    let mut fast = fanout.subscribe(Audience::Board, head).await.expect("fast");
    // Both catch up (nothing to read) and go live before the traffic.
    let probe = tokio::time::timeout(Duration::from_millis(200), slow.next()).await;
    assert!(probe.is_err(), "nothing yet");
    let probe = tokio::time::timeout(Duration::from_millis(200), fast.next()).await;
    assert!(probe.is_err(), "nothing yet");
    assert!(slow.is_live() && fast.is_live());

    // The fast one reads as events come; the slow one reads nothing for now.
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_secs(3), fast.next()).await {
            seen.push(event.position());
        }
        seen
    });
    let agent = AgentId::from_uuid(Uuid::now_v7());
    driver.online_agent(agent).await;
    traffic(&driver, 6, agent).await;
    let expected = board_positions(&*store).await;
    assert!(expected.len() > 8);
    let fast_seen = fast_reader.await.expect("fast reader");
    assert_eq!(fast_seen, expected, "the fast subscriber got everything");

    // The slow one gets what fitted in its buffer, then the reason.
    let mut slow_seen = Vec::new();
    let error = loop {
        match next(&mut slow).await {
            Ok(position) => slow_seen.push(position),
            Err(error) => break error,
        }
    };
    assert_eq!(slow_seen, expected[..4]);
    match error {
        FanoutError::Disconnected {
            reason: Disconnect::Lagged { buffer_events },
            resume_after,
        } => {
            assert_eq!(buffer_events, 4);
            assert_eq!(resume_after, expected[3]);
        }
        other => panic!("expected a lagged disconnect, got {other:?}"),
    }
    // Resuming from the reported position yields the rest, no gap.
    drop(slow);
    let mut resumed = fanout
        .subscribe(Audience::Board, expected[3])
        .await
        .expect("resume");
    for want in &expected[4..] {
        assert_eq!(next(&mut resumed).await.expect("rest"), *want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_audiences_receive_their_chat_and_their_inbox() {
    let backend = Backend::sled();
    let store = backend.store();
    let driver = Driver::new(store.clone());
    let (fanout, _trigger) = fanout(store.clone(), FanoutOptions::default()).await;
    let module = ModuleId::from_uuid(Uuid::now_v7());
    let ada = AgentId::from_uuid(Uuid::now_v7());
    let bob = AgentId::from_uuid(Uuid::now_v7());
    driver.online_agent(ada).await;
    driver.online_agent(bob).await;
    let mine = ChatId::from_uuid(Uuid::now_v7());
    let other = ChatId::from_uuid(Uuid::now_v7());
    driver
        .start(mine, module, None, &[], ChatSettings::default(), true)
        .await;
    driver
        .start(other, module, None, &[], ChatSettings::default(), true)
        .await;
    driver.assign(mine, ada).await;
    driver.assign(other, bob).await;
    driver.say(mine, Party::Visitor, "mine").await;
    driver.say(other, Party::Visitor, "other").await;
    driver.end_by_agent(mine, ada).await;
    // After the release, later events of the chat are no longer Ada's.
    driver.rate(mine, 4).await;
    let log = read_log(&*store).await;
    let head = log.last().map(|r| r.global_position).unwrap_or(0);

    let mut visitor = fanout
        .subscribe(Audience::Chat(mine), 0)
        .await
        .expect("visitor");
    let mut inbox = fanout
        .subscribe(Audience::AgentInbox(ada), 0)
        .await
        .expect("inbox");
    let mut visitor_got = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), visitor.next()).await
    {
        visitor_got.push(event);
    }
    let mut inbox_got = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), inbox.next()).await {
        inbox_got.push(event);
    }
    let mine_stream = mine.stream_name();
    let expected_visitor: Vec<_> = log
        .iter()
        .filter(|r| r.stream_id.as_str() == mine_stream)
        .map(|r| r.global_position)
        .collect();
    assert_eq!(
        visitor_got.iter().map(|e| e.position()).collect::<Vec<_>>(),
        expected_visitor
    );
    assert!(inbox_got.iter().all(|e| match &e.event {
        DomainEvent::Chat { chat, .. } => *chat == mine,
        DomainEvent::Agent { agent, .. } => *agent == ada,
        _ => false,
    }));
    let inbox_types: Vec<&str> = inbox_got
        .iter()
        .map(|e| e.recorded.event_type.as_str())
        .collect();
    assert!(inbox_types.contains(&"MessagePosted"), "{inbox_types:?}");
    assert!(inbox_types.contains(&"EpisodeEnded"), "{inbox_types:?}");
    assert!(
        !inbox_types.contains(&"ChatRated"),
        "after the release the chat left the inbox: {inbox_types:?}"
    );
    assert!(inbox_got.iter().all(|e| e.position() <= head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_fanout_limits_are_named_and_enforced() {
    let backend = Backend::sled();
    let store = backend.store();
    let (trigger, shutdown) = ShutdownTrigger::new();
    let base = FanoutOptions::default();
    for (options, field) in [
        (
            FanoutOptions {
                subscribers_max: SUBSCRIBERS_MAX + 1,
                ..base
            },
            "subscribers_max",
        ),
        (
            FanoutOptions {
                subscriber_buffer_events: SUBSCRIBER_BUFFER_EVENTS_MAX + 1,
                ..base
            },
            "subscriber_buffer_events",
        ),
        (
            FanoutOptions {
                subscriber_buffer_events: 0,
                ..base
            },
            "subscriber_buffer_events",
        ),
        (
            FanoutOptions {
                lag_grace_ms: LAG_GRACE_MS_MAX + 1,
                ..base
            },
            "lag_grace_ms",
        ),
    ] {
        match Fanout::start(
            store.clone(),
            Arc::new(Codec::default()),
            options,
            shutdown.clone(),
        )
        .await
        {
            Err(FanoutError::InvalidOption { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected InvalidOption for {field}, got {other:?}"),
        }
    }
    let at_limit = FanoutOptions {
        subscribers_max: SUBSCRIBERS_MAX,
        subscriber_buffer_events: SUBSCRIBER_BUFFER_EVENTS_MAX,
        lag_grace_ms: LAG_GRACE_MS_MAX,
    };
    Fanout::start(
        store.clone(),
        Arc::new(Codec::default()),
        at_limit,
        shutdown.clone(),
    )
    .await
    .expect("the limits themselves are accepted");

    let options = FanoutOptions {
        subscribers_max: 2,
        subscriber_buffer_events: 8,
        lag_grace_ms: 0,
    };
    let fanout = Fanout::start(store.clone(), Arc::new(Codec::default()), options, shutdown)
        .await
        .expect("fan-out");
    let a = fanout.subscribe(Audience::Board, 0).await.expect("first");
    let _b = fanout.subscribe(Audience::Board, 0).await.expect("second");
    match fanout.subscribe(Audience::Board, 0).await {
        Err(FanoutError::TooManySubscribers { max }) => assert_eq!(max, 2),
        other => panic!("expected TooManySubscribers, got {other:?}"),
    }
    assert_eq!(fanout.subscribers(), 2);
    drop(a);
    assert_eq!(fanout.subscribers(), 1);
    let mut c = fanout
        .subscribe(Audience::Board, 0)
        .await
        .expect("room again");

    // Shutdown ends live subscriptions with a reason.
    let probe = tokio::time::timeout(Duration::from_millis(200), c.next()).await;
    assert!(probe.is_err());
    trigger.trigger();
    match tokio::time::timeout(WAIT, c.next()).await.expect("ends") {
        Err(FanoutError::Disconnected {
            reason: Disconnect::Shutdown,
            ..
        }) => {}
        other => panic!("expected a shutdown disconnect, got {other:?}"),
    }
}
