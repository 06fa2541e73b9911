//! Queues and memberships with levels (R1) and canned responses (A4).

mod config_support;

use chat_core::config::{
    AdminCommand, CANNED_LOOKUP_RESULTS_MAX, CannedCommand, CannedContent, CannedDecider,
    CannedEvent, CannedLibrary, CannedScope, ConfigRejection, Level, MEMBERS_PER_QUEUE_MAX,
    QueueCommand, QueueDecider, QueueEvent, QueuePolicy, RepeatMode, SAME_AGENT_WAIT_S_MAX,
    Selection, Stamped,
};
use chat_core::{AgentId, CannedResponseId, Decider, QueueId, given};
use config_support::{ADMIN, now, stamp};

const QUEUE: QueueId = QueueId::from_u128(1);
const ANNA: AgentId = AgentId::from_u128(10);
const BORIS: AgentId = AgentId::from_u128(11);

fn queue_created() -> Stamped<QueueEvent> {
    stamp(QueueEvent::Created {
        id: QUEUE,
        name: "Sales".into(),
        reference: "sales".into(),
    })
}

fn queue(command: QueueCommand) -> AdminCommand<QueueCommand> {
    AdminCommand::new(ADMIN, command)
}

#[test]
fn r1_members_have_levels_and_level_two_only_gets_transfers() {
    let history = [
        queue_created(),
        stamp(QueueEvent::MemberSet {
            agent: ANNA,
            level: Level::One,
        }),
        stamp(QueueEvent::MemberSet {
            agent: BORIS,
            level: Level::Two,
        }),
    ];
    let q = QueueDecider::replay(&history).queue.unwrap();
    assert_eq!(q.eligible(false).collect::<Vec<_>>(), vec![ANNA]);
    assert_eq!(q.eligible(true).collect::<Vec<_>>(), vec![ANNA, BORIS]);
    given::<QueueDecider>(&history)
        .when(
            &queue(QueueCommand::SetMember {
                agent: BORIS,
                level: Level::One,
            }),
            now(),
        )
        .then_events(&[stamp(QueueEvent::MemberSet {
            agent: BORIS,
            level: Level::One,
        })]);
    given::<QueueDecider>(&history)
        .when(
            &queue(QueueCommand::SetMember {
                agent: ANNA,
                level: Level::One,
            }),
            now(),
        )
        .then_events(&[]);
    given::<QueueDecider>(&history)
        .when(&queue(QueueCommand::RemoveMember { agent: ANNA }), now())
        .then_events(&[stamp(QueueEvent::MemberRemoved { agent: ANNA })]);
    given::<QueueDecider>(&[queue_created()])
        .when(&queue(QueueCommand::RemoveMember { agent: ANNA }), now())
        .then_rejected(ConfigRejection::Missing {
            field: "members".into(),
            value: ANNA.to_string(),
        });
}

#[test]
fn r3_r4_a_queue_policy_is_configuration_with_a_bounded_wait() {
    let same = |wait_s| QueuePolicy {
        selection: Selection::RoundRobin,
        repeat: RepeatMode::Same { wait_s },
    };
    let created = QueueDecider::replay(&[queue_created()]).queue.unwrap();
    assert_eq!(created.policy, QueuePolicy::default());
    assert_eq!(created.policy.selection, Selection::LongestIdle);
    given::<QueueDecider>(&[queue_created()])
        .when(
            &queue(QueueCommand::SetPolicy {
                policy: same(SAME_AGENT_WAIT_S_MAX),
            }),
            now(),
        )
        .then_events(&[stamp(QueueEvent::PolicySet {
            policy: same(SAME_AGENT_WAIT_S_MAX),
        })]);
    given::<QueueDecider>(&[queue_created()])
        .when(
            &queue(QueueCommand::SetPolicy {
                policy: same(SAME_AGENT_WAIT_S_MAX + 1),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::OutOfRange {
            field: "policy.repeat.wait_s".into(),
            min: 0,
            max: u64::from(SAME_AGENT_WAIT_S_MAX),
            value: u64::from(SAME_AGENT_WAIT_S_MAX) + 1,
        });
    let set = [
        queue_created(),
        stamp(QueueEvent::PolicySet { policy: same(60) }),
    ];
    assert_eq!(QueueDecider::replay(&set).queue.unwrap().policy, same(60));
    given::<QueueDecider>(&set)
        .when(&queue(QueueCommand::SetPolicy { policy: same(60) }), now())
        .then_events(&[]);
}

#[test]
fn r1_queue_references_and_member_counts_are_checked() {
    given::<QueueDecider>(&[])
        .when(
            &queue(QueueCommand::Create {
                id: QUEUE,
                name: "Sales".into(),
                reference: "sales team".into(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::InvalidReference {
            reference: "sales team".into(),
            found: ' ',
        });
    let mut history = vec![queue_created()];
    history.extend((0..MEMBERS_PER_QUEUE_MAX as u128).map(|i| {
        stamp(QueueEvent::MemberSet {
            agent: AgentId::from_u128(1000 + i),
            level: Level::One,
        })
    }));
    given::<QueueDecider>(&history)
        .when(
            &queue(QueueCommand::SetMember {
                agent: ANNA,
                level: Level::One,
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "members".into(),
            max: MEMBERS_PER_QUEUE_MAX,
        });
    // Changing an existing member's level is not an addition.
    given::<QueueDecider>(&history)
        .when(
            &queue(QueueCommand::SetMember {
                agent: AgentId::from_u128(1000),
                level: Level::Two,
            }),
            now(),
        )
        .then_events(&[stamp(QueueEvent::MemberSet {
            agent: AgentId::from_u128(1000),
            level: Level::Two,
        })]);
    let deleted = [queue_created(), stamp(QueueEvent::Deleted)];
    given::<QueueDecider>(&deleted)
        .when(&queue(QueueCommand::Rename { name: "x".into() }), now())
        .then_rejected(ConfigRejection::Deleted { object: "queue" });
}

fn canned(
    id: u128,
    scope: CannedScope,
    shortcut: &str,
) -> (CannedResponseId, Stamped<CannedEvent>) {
    let id = CannedResponseId::from_u128(id);
    (
        id,
        stamp(CannedEvent::Created {
            id,
            scope,
            content: CannedContent {
                shortcut: shortcut.into(),
                title: shortcut.into(),
                body: format!("Body of {shortcut}"),
            },
        }),
    )
}

#[test]
fn a4_canned_responses_are_found_by_shortcut_prefix_personal_first() {
    let mut library = CannedLibrary::default();
    for (id, event) in [
        canned(1, CannedScope::Team, "greeting"),
        canned(2, CannedScope::Personal(ANNA), "greet_anna"),
        canned(3, CannedScope::Personal(BORIS), "greet_boris"),
        canned(4, CannedScope::Team, "goodbye"),
        canned(5, CannedScope::Team, "refund"),
    ] {
        library.record(id, &event);
    }
    fn shortcuts(library: &CannedLibrary, agent: AgentId, typed: &str) -> Vec<String> {
        library
            .lookup(agent, typed)
            .iter()
            .map(|r| r.content.shortcut.clone())
            .collect()
    }
    assert_eq!(
        shortcuts(&library, ANNA, "/gre"),
        vec!["greet_anna", "greeting"]
    );
    assert_eq!(
        shortcuts(&library, BORIS, "/gre"),
        vec!["greet_boris", "greeting"]
    );
    assert_eq!(
        shortcuts(&library, ANNA, "/g"),
        vec!["greet_anna", "goodbye", "greeting"]
    );
    assert_eq!(
        shortcuts(&library, ANNA, "/GRE"),
        vec!["greet_anna", "greeting"]
    );
    assert_eq!(shortcuts(&library, ANNA, "gre"), Vec::<String>::new());
    assert_eq!(shortcuts(&library, ANNA, "/xyz"), Vec::<String>::new());
    library.record(CannedResponseId::from_u128(1), &stamp(CannedEvent::Deleted));
    assert_eq!(shortcuts(&library, ANNA, "/gre"), vec!["greet_anna"]);
}

#[test]
fn a4_lookup_results_are_limited() {
    let mut library = CannedLibrary::default();
    for i in 0..CANNED_LOOKUP_RESULTS_MAX as u128 + 5 {
        let (id, event) = canned(100 + i, CannedScope::Team, &format!("s{i:03}"));
        library.record(id, &event);
    }
    assert_eq!(library.lookup(ANNA, "/s").len(), CANNED_LOOKUP_RESULTS_MAX);
}

#[test]
fn a4_canned_content_is_validated() {
    let create = |shortcut: &str, body: &str| {
        AdminCommand::new(
            ANNA,
            CannedCommand::Create {
                id: CannedResponseId::from_u128(1),
                scope: CannedScope::Personal(ANNA),
                content: CannedContent {
                    shortcut: shortcut.into(),
                    title: "t".into(),
                    body: body.into(),
                },
            },
        )
    };
    given::<CannedDecider>(&[])
        .when(&create("/hello", "Hi"), now())
        .then_rejected(ConfigRejection::InvalidKey {
            field: "shortcut".into(),
            value: "/hello".into(),
            allowed: "lowercase letters, digits and _",
        });
    given::<CannedDecider>(&[])
        .when(&create("hello", " "), now())
        .then_rejected(ConfigRejection::Empty {
            field: "body".into(),
        });
    let events = CannedDecider::decide(&Default::default(), &create("hello", "Hi"), now()).unwrap();
    assert_eq!(
        events[0].by, ANNA,
        "a personal response is stamped with its author"
    );
}
