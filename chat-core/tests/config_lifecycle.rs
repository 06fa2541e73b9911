//! The lifecycle rule every deletable configuration object shares (M7, M8; `docs/CONFIGURATION.md`,
//! "Shape"): created once, changed while live, history only once deleted, and these refusals come
//! before any field is validated; every event is stamped with the admin and the decision time.
//! One table per aggregate, one check for all four, because the rule is one piece of code
//! (`config/common.rs`).

mod config_support;

use chat_core::config::{
    AdminCommand, CannedCommand, CannedContent, CannedDecider, CannedEvent, CannedScope,
    Combinator, ConfigRejection, ModuleCommand, ModuleDecider, ModuleEvent, ModuleSettings,
    QueueCommand, QueueDecider, QueueEvent, Rule, RuleSet, Stamped, StrategyCommand,
    StrategyDecider, StrategyEvent, public_path,
};
use chat_core::{CannedResponseId, Decider, ModuleId, QueueId, StrategyId, given};
use config_support::{ADMIN, now, stamp};
use std::collections::BTreeSet;
use std::fmt::Debug;

/// One aggregate's side of the rule: its events and commands in each role.
struct Lifecycle<D: Decider> {
    object: &'static str,
    created: D::Event,
    deleted: D::Event,
    /// A valid creation.
    create: D::Command,
    /// A creation whose fields are invalid, to show the lifecycle refusal comes first.
    invalid_create: D::Command,
    /// Any valid change of a live object.
    change: D::Command,
}

fn check<D, E>(rule: Lifecycle<D>)
where
    D: Decider<Event = Stamped<E>, Rejection = ConfigRejection>,
    E: Clone + PartialEq + Debug,
{
    let object = rule.object;
    let live = [rule.created.clone()];
    let gone = [rule.created, rule.deleted];
    given::<D>(&[])
        .when(&rule.change, now())
        .then_rejected(ConfigRejection::NotFound { object });
    for history in [&live[..], &gone[..]] {
        for create in [&rule.create, &rule.invalid_create] {
            given::<D>(history)
                .when(create, now())
                .then_rejected(ConfigRejection::AlreadyExists { object });
        }
    }
    given::<D>(&gone)
        .when(&rule.change, now())
        .then_rejected(ConfigRejection::Deleted { object });
    assert!(
        given::<D>(&live).when(&rule.change, now()).result().is_ok(),
        "{object}: the change is valid on a live object"
    );
    // The invalid creation really is invalid on its own, so the refusals above show order.
    let invalid = given::<D>(&[]).when(&rule.invalid_create, now()).result();
    assert!(
        matches!(&invalid, Err(r) if !matches!(r, ConfigRejection::AlreadyExists { .. })),
        "{object}: the invalid creation is refused for its fields: {invalid:?}"
    );
    // The creation passes, stamped with the admin and the decision's own instant (M7).
    let later = now() + chrono::Duration::minutes(5);
    let created = given::<D>(&[])
        .when(&rule.create, later)
        .result()
        .unwrap_or_else(|r| panic!("{object}: the creation is valid on an empty stream: {r}"));
    assert!(!created.is_empty(), "{object}: a creation records an event");
    assert!(
        created.iter().all(|e| e.by == ADMIN && e.at == later),
        "{object}: every event is stamped with the admin and the decision time"
    );
}

fn admin<C>(command: C) -> AdminCommand<C> {
    AdminCommand::new(ADMIN, command)
}

#[test]
fn m7_a_queue_is_created_once_and_refuses_changes_after_deletion() {
    let create = |name: &str| {
        admin(QueueCommand::Create {
            id: QueueId::from_u128(1),
            name: name.into(),
            reference: "sales".into(),
        })
    };
    check::<QueueDecider, _>(Lifecycle {
        object: "queue",
        created: stamp(QueueEvent::Created {
            id: QueueId::from_u128(1),
            name: "Sales".into(),
            reference: "sales".into(),
        }),
        deleted: stamp(QueueEvent::Deleted),
        create: create("Sales"),
        invalid_create: create(""),
        change: admin(QueueCommand::Rename {
            name: "Sales EU".into(),
        }),
    });
}

#[test]
fn t1_a_strategy_is_created_once_and_refuses_changes_after_deletion() {
    let rules = RuleSet {
        combinator: Combinator::All,
        rules: vec![Rule::PagesViewed { pages_min: 2 }],
    };
    let create = |name: &str| {
        admin(StrategyCommand::Create {
            id: StrategyId::from_u128(1),
            name: name.into(),
            reference: "two_pages".into(),
            rules: rules.clone(),
        })
    };
    check::<StrategyDecider, _>(Lifecycle {
        object: "trigger strategy",
        created: stamp(StrategyEvent::Created {
            id: StrategyId::from_u128(1),
            name: "Two pages".into(),
            reference: "two_pages".into(),
            rules: rules.clone(),
        }),
        deleted: stamp(StrategyEvent::Deleted),
        create: create("Two pages"),
        invalid_create: create(""),
        change: admin(StrategyCommand::Update {
            name: "Two pages or more".into(),
            rules: rules.clone(),
        }),
    });
}

#[test]
fn m8_a_module_is_created_once_and_refuses_changes_after_deletion() {
    let id = ModuleId::from_u128(1);
    let create = |reference: &str| {
        admin(ModuleCommand::Create {
            id,
            reference: reference.into(),
            settings: ModuleSettings::named("Shop"),
        })
    };
    check::<ModuleDecider, _>(Lifecycle {
        object: "module",
        created: stamp(ModuleEvent::Created {
            id,
            reference: "shop".into(),
            settings: ModuleSettings::named("Shop"),
            public_path: public_path(id),
            duplicated_from: None,
        }),
        deleted: stamp(ModuleEvent::Deleted),
        create: create("shop"),
        invalid_create: create("shop front"),
        change: admin(ModuleCommand::Delete {
            open_chats: BTreeSet::new(),
        }),
    });
}

#[test]
fn a4_a_canned_response_is_created_once_and_refuses_changes_after_deletion() {
    let content = |title: &str| CannedContent {
        shortcut: "hello".into(),
        title: title.into(),
        body: "Hello, how can I help?".into(),
    };
    let create = |title: &str| {
        admin(CannedCommand::Create {
            id: CannedResponseId::from_u128(1),
            scope: CannedScope::Team,
            content: content(title),
        })
    };
    check::<CannedDecider, _>(Lifecycle {
        object: "canned response",
        created: stamp(CannedEvent::Created {
            id: CannedResponseId::from_u128(1),
            scope: CannedScope::Team,
            content: content("Hello"),
        }),
        deleted: stamp(CannedEvent::Deleted),
        create: create("Hello"),
        invalid_create: create(""),
        change: admin(CannedCommand::Update {
            content: content("Greeting"),
        }),
    });
}
