//! Every configuration event survives the store's encoding (E4: named MessagePack) and has a
//! stable, unique type name, so that `docs/EVENTS.md` and the log agree.

mod config_support;

use chat_core::config::{
    AccountEvent, AttachmentFlags, CannedContent, CannedEvent, CannedScope, Combinator,
    ContactEvent, ContactField, DayHours, DomainPattern, ExternalUse, FieldDef, FieldKind,
    FieldTarget, FileType, FormDefinition, FormKind, InputKind, Level, ModuleEvent, ModuleSettings,
    QueueEvent, ReferenceKind, ReservationEvent, Rule, RuleSet, Schedule, Stamped, StrategyEvent,
    TimeRange, UrlMatch, WorkingHours, public_path,
};
use chat_core::{AgentId, CannedResponseId, ContactId, EventKind, ModuleId, QueueId, StrategyId};
use config_support::{date, now, stamp};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, BTreeSet};

fn roundtrip<E>(events: Vec<E>) -> Vec<&'static str>
where
    E: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + EventKind,
{
    events
        .into_iter()
        .map(|event| {
            let stamped = stamp(event);
            let bytes = rmp_serde::to_vec_named(&stamped).unwrap();
            let back: Stamped<E> = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back, stamped);
            assert_eq!(stamped.schema_version(), 1);
            stamped.event_type()
        })
        .collect()
}

fn rich_hours() -> WorkingHours {
    let mut hours = WorkingHours::closed();
    hours.weekly[4].push(TimeRange::parse("22:00-02:00").unwrap());
    hours
        .exceptions
        .insert(date(2026, 12, 25), DayHours::Closed);
    hours.exceptions.insert(
        date(2026, 12, 27),
        DayHours::Open(vec![TimeRange::parse("10:00-12:00").unwrap()]),
    );
    hours
}

fn rich_form() -> FormDefinition {
    FormDefinition {
        fields: vec![
            FieldDef {
                name: "email".into(),
                label: "E-mail".into(),
                kind: FieldKind::Input {
                    input: InputKind::Email,
                },
                required: true,
                target: FieldTarget::Contact(ContactField::email()),
            },
            FieldDef {
                name: "cv".into(),
                label: "CV".into(),
                kind: FieldKind::Attachment {
                    files_max: 2,
                    file_bytes_max: 1000,
                    accept: FileType::parse_accept(".pdf,image/*,text/plain").unwrap(),
                },
                required: false,
                target: FieldTarget::Nowhere,
            },
        ],
    }
}

#[test]
fn e4_every_configuration_event_roundtrips_with_a_unique_type_name() {
    let module = ModuleId::from_u128(1);
    let strategy = StrategyId::from_u128(2);
    let external = ExternalUse {
        kind: "sms_campaign".into(),
        id: "c1".into(),
    };
    let mut names = Vec::new();
    names.extend(roundtrip(vec![
        ModuleEvent::Created {
            id: module,
            reference: "r".into(),
            settings: ModuleSettings::named("n"),
            public_path: public_path(module),
            duplicated_from: Some(ModuleId::from_u128(9)),
        },
        ModuleEvent::Updated {
            settings: ModuleSettings::named("m"),
            changed: vec!["name".into()],
        },
        ModuleEvent::ReferenceChanged {
            from: "a".into(),
            to: "b".into(),
        },
        ModuleEvent::WorkingHoursSet {
            hours: rich_hours(),
        },
        ModuleEvent::FormSet {
            kind: FormKind::PreChat,
            form: Some(rich_form()),
        },
        ModuleEvent::TagAdded { tag: "vip".into() },
        ModuleEvent::TagRemoved { tag: "vip".into() },
        ModuleEvent::StrategyAttached {
            strategy,
            flags: AttachmentFlags::default(),
        },
        ModuleEvent::StrategyFlagsChanged {
            strategy,
            flags: AttachmentFlags {
                display: false,
                open: true,
            },
        },
        ModuleEvent::StrategyDetached { strategy },
        ModuleEvent::UseRegistered {
            external: external.clone(),
        },
        ModuleEvent::UseReleased { external },
        ModuleEvent::Deleted,
    ]));
    let rules = RuleSet {
        combinator: Combinator::Any,
        rules: vec![
            Rule::Url(UrlMatch::Glob("https://*.example.com/*".into())),
            Rule::TimeWindow(Schedule::new("Australia/Lord_Howe", rich_hours()).unwrap()),
            Rule::CustomEvent {
                name: "added_to_cart".into(),
            },
        ],
    };
    names.extend(roundtrip(vec![
        StrategyEvent::Created {
            id: strategy,
            name: "s".into(),
            reference: "s".into(),
            rules: rules.clone(),
        },
        StrategyEvent::Updated {
            name: "t".into(),
            rules,
        },
        StrategyEvent::ModuleLinked { module },
        StrategyEvent::ModuleUnlinked { module },
        StrategyEvent::Deleted,
    ]));
    names.extend(roundtrip(vec![
        ReservationEvent::Reserved {
            kind: ReferenceKind::Queue,
            reference: "q".into(),
            owner: uuid::Uuid::from_u128(3),
        },
        ReservationEvent::Released {
            owner: uuid::Uuid::from_u128(3),
        },
    ]));
    names.extend(roundtrip(vec![
        QueueEvent::Created {
            id: QueueId::from_u128(4),
            name: "q".into(),
            reference: "q".into(),
        },
        QueueEvent::Renamed { name: "r".into() },
        QueueEvent::MemberSet {
            agent: AgentId::from_u128(5),
            level: Level::Two,
        },
        QueueEvent::MemberRemoved {
            agent: AgentId::from_u128(5),
        },
        QueueEvent::Deleted,
    ]));
    let content = CannedContent {
        shortcut: "hi".into(),
        title: "Hi".into(),
        body: "Hello!".into(),
    };
    names.extend(roundtrip(vec![
        CannedEvent::Created {
            id: CannedResponseId::from_u128(6),
            scope: CannedScope::Personal(AgentId::from_u128(5)),
            content: content.clone(),
        },
        CannedEvent::Updated { content },
        CannedEvent::Deleted,
    ]));
    names.extend(roundtrip(vec![
        AccountEvent::DefaultTimeZoneSet {
            time_zone: chrono_tz::America::New_York,
        },
        AccountEvent::DefaultLanguageSet {
            language: "fr".into(),
        },
        AccountEvent::DomainAuthorised {
            pattern: DomainPattern::parse("https://*.example.com:8443").unwrap(),
        },
        AccountEvent::DomainRevoked {
            pattern: DomainPattern::parse("example.com").unwrap(),
        },
        AccountEvent::UnattendedTimeoutSet { timeout_s: 600 },
        AccountEvent::ContactMatchFieldSet {
            field: ContactField::new("phone").unwrap(),
        },
    ]));
    // Contact events carry their own actor and time (a visitor creates, an agent blocks).
    let contact_events = vec![
        ContactEvent::Created {
            id: ContactId::from_u128(7),
            fields: BTreeMap::from([(ContactField::email(), "a@b.co".to_owned())]),
            at: now(),
        },
        ContactEvent::Updated {
            fields: BTreeMap::new(),
            at: now(),
        },
        ContactEvent::Blocked {
            by: AgentId::from_u128(5),
            at: now(),
        },
        ContactEvent::Unblocked {
            by: AgentId::from_u128(5),
            at: now(),
        },
    ];
    for event in contact_events {
        let bytes = rmp_serde::to_vec_named(&event).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<ContactEvent>(&bytes).unwrap(),
            event
        );
        names.push(event.event_type());
    }
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate event type names in {names:?}"
    );
}

#[test]
fn e4_stored_values_that_fail_their_rules_do_not_load() {
    // Typed values refuse malformed stored text instead of loading it silently.
    let bad_domain = rmp_serde::to_vec_named(&"exa mple.com").unwrap();
    assert!(rmp_serde::from_slice::<DomainPattern>(&bad_domain).is_err());
    let bad_field = rmp_serde::to_vec_named(&"E Mail").unwrap();
    assert!(rmp_serde::from_slice::<ContactField>(&bad_field).is_err());
}
