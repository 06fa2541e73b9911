//! Chat modules (M1–M4, M7, M8, M10), reference reservations (M2) and strategy attachments
//! (T1, T3, T4), as given/when/then on the deciders.

mod config_support;

use chat_core::config::{
    AVATARS_MAX, AdminCommand, Appearance, AttachmentFlags, CONCURRENT_CHATS_LIMIT_MAX, Combinator,
    ConfigRejection, DayHours, Dependant, EXTERNAL_USES_MAX, ExternalUse, FieldDef, FieldKind,
    FieldTarget, FormDefinition, FormKind, InputKind, LanguageSetting, Module, ModuleCatalogue,
    ModuleCommand, ModuleDecider, ModuleEvent, ModuleSettings, ModuleState, NAME_CHARS_MAX,
    REFERENCE_CHARS_MAX, ReferenceKind, Reservation, ReservationCommand, ReservationEvent, Rule,
    RuleSet, STRATEGIES_PER_MODULE_MAX, Stamped, StrategyCommand, StrategyDecider, StrategyEvent,
    Style, TAGS_PER_MODULE_MAX, TimeRange, WorkingHours, ZoneSetting, public_path,
    reservation_stream,
};
use chat_core::{AgentId, ChatId, Decider, EventKind, ModuleId, QueueId, StrategyId, given};
use chrono::Duration;
use config_support::{ADMIN, date, now, stamp};
use std::collections::BTreeSet;

const MODULE: ModuleId = ModuleId::from_u128(1);
const COPY: ModuleId = ModuleId::from_u128(2);
const STRATEGY: StrategyId = StrategyId::from_u128(3);
const OTHER_ADMIN: AgentId = AgentId::from_u128(901);

fn cmd(command: ModuleCommand) -> AdminCommand<ModuleCommand> {
    AdminCommand::new(ADMIN, command)
}

fn settings() -> ModuleSettings {
    let mut settings = ModuleSettings::named("Sales EU");
    settings.alias = "sales".to_owned();
    settings.time_zone = ZoneSetting::Named("Europe/Paris".to_owned());
    settings.language = LanguageSetting::Tag("fr".to_owned());
    settings.routing = Some(QueueId::from_u128(7));
    settings
}

fn created() -> Stamped<ModuleEvent> {
    stamp(ModuleEvent::Created {
        id: MODULE,
        reference: "sales.eu".to_owned(),
        settings: settings(),
        public_path: public_path(MODULE),
        duplicated_from: None,
    })
}

fn create(reference: &str, settings: ModuleSettings) -> AdminCommand<ModuleCommand> {
    cmd(ModuleCommand::Create {
        id: MODULE,
        reference: reference.to_owned(),
        settings,
    })
}

fn live(events: &[Stamped<ModuleEvent>]) -> Module {
    ModuleDecider::replay(events).module.unwrap()
}

#[test]
fn m1_create_records_every_field_with_actor_and_time() {
    let state = given::<ModuleDecider>(&[])
        .when(&create("sales.eu", settings()), now())
        .then_events(&[created()]);
    let module = state.module.unwrap();
    assert_eq!(module.reference, "sales.eu");
    assert_eq!(module.settings, settings());
    assert_eq!(module.working_hours, WorkingHours::always_open());
    assert_eq!(module.language("en"), "fr");
    assert_eq!(module.time_zone(chrono_tz::UTC), chrono_tz::Europe::Paris);
    assert_eq!(created().event.event_type(), "ModuleCreated");
}

#[test]
fn m1_default_zone_and_language_follow_the_account() {
    let module = live(&[stamp(ModuleEvent::Created {
        id: MODULE,
        reference: "r".to_owned(),
        settings: ModuleSettings::named("n"),
        public_path: public_path(MODULE),
        duplicated_from: None,
    })]);
    assert_eq!(
        module.time_zone(chrono_tz::Asia::Tokyo),
        chrono_tz::Asia::Tokyo
    );
    assert_eq!(module.language("de"), "de");
}

#[test]
fn m1_unknown_time_zone_is_refused() {
    let mut bad = settings();
    bad.time_zone = ZoneSetting::Named("Europe/Pariss".to_owned());
    given::<ModuleDecider>(&[])
        .when(&create("sales", bad), now())
        .then_rejected(ConfigRejection::UnknownTimeZone {
            name: "Europe/Pariss".to_owned(),
        });
}

#[test]
fn m1_bad_language_name_and_concurrency_limit_are_refused() {
    let mut bad = settings();
    bad.language = LanguageSetting::Tag("french".to_owned());
    given::<ModuleDecider>(&[])
        .when(&create("s", bad), now())
        .then_rejected(ConfigRejection::InvalidLanguage {
            value: "french".to_owned(),
        });
    let mut bad = settings();
    bad.name = "x".repeat(NAME_CHARS_MAX + 1);
    given::<ModuleDecider>(&[])
        .when(&create("s", bad), now())
        .then_rejected(ConfigRejection::TooLong {
            field: "name".to_owned(),
            chars_max: NAME_CHARS_MAX,
        });
    let mut at_limit = settings();
    at_limit.name = "x".repeat(NAME_CHARS_MAX);
    at_limit.concurrent_chats_max = Some(CONCURRENT_CHATS_LIMIT_MAX);
    assert!(ModuleDecider::decide(&ModuleState::default(), &create("s", at_limit), now()).is_ok());
    let mut files = settings();
    files.attachment_bytes_max = chat_core::config::ATTACHMENT_BYTES_MAX;
    assert!(
        ModuleDecider::decide(&ModuleState::default(), &create("s", files.clone()), now()).is_ok()
    );
    files.attachment_bytes_max += 1;
    given::<ModuleDecider>(&[])
        .when(&create("s", files), now())
        .then_rejected(ConfigRejection::OutOfRange {
            field: "attachment_bytes_max".to_owned(),
            min: 0,
            max: chat_core::config::ATTACHMENT_BYTES_MAX,
            value: chat_core::config::ATTACHMENT_BYTES_MAX + 1,
        });
    let mut over = settings();
    over.concurrent_chats_max = Some(CONCURRENT_CHATS_LIMIT_MAX + 1);
    assert!(matches!(
        ModuleDecider::decide(&ModuleState::default(), &create("s", over), now()),
        Err(ConfigRejection::OutOfRange { .. })
    ));
}

#[test]
fn m2_reference_with_bad_characters_is_refused() {
    for (reference, found) in [
        ("sales eu", ' '),
        ("ventes/fr", '/'),
        ("café", 'é'),
        ("a#b", '#'),
    ] {
        given::<ModuleDecider>(&[])
            .when(&create(reference, settings()), now())
            .then_rejected(ConfigRejection::InvalidReference {
                reference: reference.to_owned(),
                found,
            });
    }
    for ok in ["a_b+c.d@e-f", "Z9"] {
        assert!(
            ModuleDecider::decide(&ModuleState::default(), &create(ok, settings()), now()).is_ok()
        );
    }
    let longest = "r".repeat(REFERENCE_CHARS_MAX);
    assert!(
        ModuleDecider::decide(
            &ModuleState::default(),
            &create(&longest, settings()),
            now()
        )
        .is_ok()
    );
    given::<ModuleDecider>(&[])
        .when(&create(&format!("{longest}r"), settings()), now())
        .then_rejected(ConfigRejection::TooLong {
            field: "reference".to_owned(),
            chars_max: REFERENCE_CHARS_MAX,
        });
    given::<ModuleDecider>(&[])
        .when(&create("", settings()), now())
        .then_rejected(ConfigRejection::Empty {
            field: "reference".to_owned(),
        });
}

fn reserve(owner: u128, reference: &str) -> AdminCommand<ReservationCommand> {
    AdminCommand::new(
        ADMIN,
        ReservationCommand::Reserve {
            kind: ReferenceKind::Module,
            reference: reference.to_owned(),
            owner: uuid::Uuid::from_u128(owner),
        },
    )
}

fn reserved(owner: u128, reference: &str) -> Stamped<ReservationEvent> {
    stamp(ReservationEvent::Reserved {
        kind: ReferenceKind::Module,
        reference: reference.to_owned(),
        owner: uuid::Uuid::from_u128(owner),
    })
}

#[test]
fn m2_duplicate_reference_is_refused() {
    // The first creator's reservation is in the stream; the second creator is refused.
    given::<Reservation>(&[reserved(1, "sales")])
        .when(&reserve(2, "sales"), now())
        .then_rejected(ConfigRejection::DuplicateReference {
            reference: "sales".to_owned(),
        });
    // A retry by the holder records nothing more.
    given::<Reservation>(&[reserved(1, "sales")])
        .when(&reserve(1, "sales"), now())
        .then_events(&[]);
    // A fresh reference is reserved; a released one can be reserved again.
    given::<Reservation>(&[])
        .when(&reserve(1, "sales"), now())
        .then_events(&[reserved(1, "sales")]);
    let released = stamp(ReservationEvent::Released {
        owner: uuid::Uuid::from_u128(1),
    });
    given::<Reservation>(&[reserved(1, "sales"), released])
        .when(&reserve(2, "sales"), now())
        .then_events(&[reserved(2, "sales")]);
    // Only the holder may release.
    given::<Reservation>(&[reserved(1, "sales")])
        .when(
            &AdminCommand::new(
                ADMIN,
                ReservationCommand::Release {
                    owner: uuid::Uuid::from_u128(2),
                },
            ),
            now(),
        )
        .then_rejected(ConfigRejection::Missing {
            field: "reservation".to_owned(),
            value: uuid::Uuid::from_u128(2).to_string(),
        });
}

#[test]
fn m2_reservation_streams_ignore_case_and_separate_namespaces() {
    assert_eq!(
        reservation_stream(ReferenceKind::Module, "Sales.EU"),
        "modref-sales.eu"
    );
    assert_eq!(
        reservation_stream(ReferenceKind::Module, "sales.eu"),
        reservation_stream(ReferenceKind::Module, "SALES.eu")
    );
    assert_eq!(
        reservation_stream(ReferenceKind::Strategy, "x"),
        "stratref-x"
    );
    assert_eq!(reservation_stream(ReferenceKind::Queue, "x"), "queueref-x");
    // The longest reference still fits the store's stream-id limit (256 bytes).
    assert!(
        reservation_stream(ReferenceKind::Strategy, &"r".repeat(REFERENCE_CHARS_MAX)).len() <= 256
    );
}

#[test]
fn m2_public_url_is_generated_once_and_never_changes() {
    let mut edited = settings();
    edited.name = "Renamed".to_owned();
    let history = [
        created(),
        stamp(ModuleEvent::Updated {
            settings: edited,
            changed: vec!["name".to_owned()],
        }),
        stamp(ModuleEvent::ReferenceChanged {
            from: "sales.eu".to_owned(),
            to: "sales.europe".to_owned(),
        }),
    ];
    let module = live(&history);
    assert_eq!(module.public_path, public_path(MODULE));
    assert_eq!(
        module.public_chat_url("https://chat.example.com/"),
        format!("https://chat.example.com/chat/{MODULE}")
    );
    // A copy gets its own URL.
    assert_ne!(public_path(COPY), public_path(MODULE));
}

#[test]
fn m3_edit_records_which_fields_changed_and_nothing_when_unchanged() {
    let mut edited = settings();
    edited.alias = "sales-eu".to_owned();
    edited.transcript_email = true;
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::Update {
                settings: edited.clone(),
            }),
            now(),
        )
        .then_events(&[stamp(ModuleEvent::Updated {
            settings: edited,
            changed: vec!["alias".to_owned(), "transcript_email".to_owned()],
        })]);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::Update {
                settings: settings(),
            }),
            now(),
        )
        .then_events(&[]);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::ChangeReference {
                reference: "bad ref".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::InvalidReference {
            reference: "bad ref".to_owned(),
            found: ' ',
        });
}

#[test]
fn m3_tags_are_managed_with_a_limit() {
    let mut history = vec![created()];
    for i in 0..TAGS_PER_MODULE_MAX {
        let tag = format!("tag{i}");
        let events = ModuleDecider::decide(
            &ModuleDecider::replay(&history),
            &cmd(ModuleCommand::AddTag { tag: tag.clone() }),
            now(),
        )
        .unwrap();
        assert_eq!(events, vec![stamp(ModuleEvent::TagAdded { tag })]);
        history.extend(events);
    }
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::AddTag {
                tag: "one more".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "tags".to_owned(),
            max: TAGS_PER_MODULE_MAX,
        });
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::AddTag {
                tag: "tag0".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Duplicate {
            field: "tags".to_owned(),
            value: "tag0".to_owned(),
        });
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::RemoveTag {
                tag: "tag0".to_owned(),
            }),
            now(),
        )
        .then_events(&[stamp(ModuleEvent::TagRemoved {
            tag: "tag0".to_owned(),
        })]);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::RemoveTag {
                tag: "nope".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Missing {
            field: "tags".to_owned(),
            value: "nope".to_owned(),
        });
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::AddTag {
                tag: " padded".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Invalid {
            field: "tag".to_owned(),
            value: " padded".to_owned(),
            reason: "a tag is non-empty text without surrounding spaces",
        });
}

#[test]
fn m3_catalogue_lists_and_searches_by_name_alias_and_tag() {
    let mut catalogue = ModuleCatalogue::default();
    for event in [
        created(),
        stamp(ModuleEvent::TagAdded {
            tag: "vip".to_owned(),
        }),
    ] {
        catalogue.record(MODULE, &event);
    }
    let mut other = ModuleSettings::named("Support");
    other.alias = "helpdesk".to_owned();
    catalogue.record(
        COPY,
        &stamp(ModuleEvent::Created {
            id: COPY,
            reference: "support".to_owned(),
            settings: other,
            public_path: public_path(COPY),
            duplicated_from: None,
        }),
    );
    let ids = |modules: Vec<&Module>| modules.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(catalogue.list().count(), 2);
    assert_eq!(ids(catalogue.search("SALES")), vec![MODULE]);
    assert_eq!(ids(catalogue.search("desk")), vec![COPY]);
    assert_eq!(ids(catalogue.with_tag("vip")), vec![MODULE]);
    catalogue.record(COPY, &stamp(ModuleEvent::Deleted));
    assert_eq!(ids(catalogue.list().collect()), vec![MODULE]);
}

fn advanced(avatars: usize) -> ModuleSettings {
    let mut settings = settings();
    settings.appearance = Appearance {
        title: "Talk to us".to_owned(),
        module_colour: "#ABC".to_owned(),
        button_colour: "#00FF7f".to_owned(),
        button_icon: "bubble".to_owned(),
        style: Style::Advanced {
            avatars: (0..avatars)
                .map(|i| format!("https://cdn.example.com/a{i}.png"))
                .collect(),
            heading: "We answer in minutes".to_owned(),
            button_title: "Chat".to_owned(),
        },
    };
    settings
}

#[test]
fn m4_advanced_style_takes_three_avatars_and_normalises_colours() {
    let state = given::<ModuleDecider>(&[])
        .when(&create("s", advanced(AVATARS_MAX)), now())
        .result()
        .unwrap();
    let ModuleEvent::Created { settings, .. } = &state[0].event else {
        panic!("expected Created, got {state:?}");
    };
    assert_eq!(settings.appearance.module_colour, "#aabbcc");
    assert_eq!(settings.appearance.button_colour, "#00ff7f");
}

#[test]
fn m4_fourth_avatar_is_refused() {
    given::<ModuleDecider>(&[])
        .when(&create("s", advanced(AVATARS_MAX + 1)), now())
        .then_rejected(ConfigRejection::TooMany {
            field: "avatars".to_owned(),
            max: AVATARS_MAX,
        });
}

#[test]
fn m4_invalid_colour_is_refused() {
    let mut bad = advanced(1);
    bad.appearance.button_colour = "#12345".to_owned();
    given::<ModuleDecider>(&[])
        .when(&create("s", bad), now())
        .then_rejected(ConfigRejection::InvalidColour {
            field: "button_colour".to_owned(),
            value: "#12345".to_owned(),
        });
    let mut bad = settings();
    bad.appearance.module_colour = "blue".to_owned();
    given::<ModuleDecider>(&[created()])
        .when(&cmd(ModuleCommand::Update { settings: bad }), now())
        .then_rejected(ConfigRejection::InvalidColour {
            field: "module_colour".to_owned(),
            value: "blue".to_owned(),
        });
}

#[test]
fn m4_avatar_must_be_a_url() {
    let mut bad = advanced(1);
    if let Style::Advanced { avatars, .. } = &mut bad.appearance.style {
        avatars[0] = "javascript:alert(1)".to_owned();
    }
    assert!(matches!(
        ModuleDecider::decide(&ModuleState::default(), &create("s", bad), now()),
        Err(ConfigRejection::Invalid { field, .. }) if field == "avatars"
    ));
}

fn form() -> FormDefinition {
    FormDefinition {
        fields: vec![FieldDef {
            name: "email".to_owned(),
            label: "E-mail".to_owned(),
            kind: FieldKind::Input {
                input: InputKind::Email,
            },
            required: true,
            target: FieldTarget::Nowhere,
        }],
    }
}

#[test]
fn m7_duplicate_copies_settings_hours_forms_and_tags_under_a_new_id_and_reference() {
    let mut hours = WorkingHours::closed();
    hours.weekly[0].push(TimeRange::parse("09:00-17:00").unwrap());
    hours
        .exceptions
        .insert(date(2026, 12, 25), DayHours::Closed);
    let history = [
        created(),
        stamp(ModuleEvent::WorkingHoursSet {
            hours: hours.clone(),
        }),
        stamp(ModuleEvent::FormSet {
            kind: FormKind::PreChat,
            form: Some(form()),
        }),
        stamp(ModuleEvent::TagAdded {
            tag: "vip".to_owned(),
        }),
        stamp(ModuleEvent::StrategyAttached {
            strategy: STRATEGY,
            flags: AttachmentFlags::default(),
        }),
    ];
    let source = live(&history);
    let mut copied = settings();
    copied.name = "Sales EU (copy)".to_owned();
    let state = given::<ModuleDecider>(&[])
        .when(
            &cmd(source.duplicate(COPY, "sales.eu.copy", "Sales EU (copy)")),
            now(),
        )
        .then_events(&[
            stamp(ModuleEvent::Created {
                id: COPY,
                reference: "sales.eu.copy".to_owned(),
                settings: copied,
                public_path: public_path(COPY),
                duplicated_from: Some(MODULE),
            }),
            stamp(ModuleEvent::WorkingHoursSet { hours }),
            stamp(ModuleEvent::FormSet {
                kind: FormKind::PreChat,
                form: Some(form()),
            }),
            stamp(ModuleEvent::TagAdded {
                tag: "vip".to_owned(),
            }),
        ]);
    let copy = state.module.unwrap();
    assert!(copy.strategies.is_empty(), "links are not copied");
    assert_eq!(copy.duplicated_from, Some(MODULE));
    // The copy needs a valid reference of its own.
    given::<ModuleDecider>(&[])
        .when(&cmd(source.duplicate(COPY, "bad ref", "x")), now())
        .then_rejected(ConfigRejection::InvalidReference {
            reference: "bad ref".to_owned(),
            found: ' ',
        });
}

#[test]
fn m7_history_says_who_changed_what_and_when() {
    let later = now() + Duration::hours(2);
    let mut edited = settings();
    edited.description = Some("Europe".to_owned());
    let events = ModuleDecider::decide(
        &ModuleDecider::replay(&[created()]),
        &AdminCommand::new(OTHER_ADMIN, ModuleCommand::Update { settings: edited }),
        later,
    )
    .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].by, OTHER_ADMIN);
    assert_eq!(events[0].at, later);
    assert!(
        matches!(&events[0].event, ModuleEvent::Updated { changed, .. } if changed == &["description"])
    );
    // The history survives the store's encoding (named MessagePack).
    let bytes = rmp_serde::to_vec_named(&events[0]).unwrap();
    let back: Stamped<ModuleEvent> = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, events[0]);
}

fn external(id: &str) -> ExternalUse {
    ExternalUse {
        kind: "sms_campaign".to_owned(),
        id: id.to_owned(),
    }
}

#[test]
fn m8_delete_with_dependants_is_refused_and_lists_them() {
    let history = [
        created(),
        stamp(ModuleEvent::StrategyAttached {
            strategy: STRATEGY,
            flags: AttachmentFlags::default(),
        }),
        stamp(ModuleEvent::UseRegistered {
            external: external("spring-promo"),
        }),
    ];
    let chat = ChatId::from_u128(55);
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::Delete {
                open_chats: BTreeSet::from([chat]),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::HasDependants {
            dependants: vec![
                Dependant::Strategy(STRATEGY),
                Dependant::OpenChat(chat),
                Dependant::ExternalUse(external("spring-promo")),
            ],
        });
}

#[test]
fn m8_the_refusal_names_the_dependants_for_a_person() {
    let refusal = ConfigRejection::HasDependants {
        dependants: vec![
            Dependant::Strategy(STRATEGY),
            Dependant::ExternalUse(external("spring-promo")),
        ],
    };
    assert_eq!(
        refusal.to_string(),
        format!("still used by trigger strategy {STRATEGY}, sms_campaign spring-promo")
    );
}

#[test]
fn m8_delete_succeeds_once_every_dependant_is_gone() {
    let history = vec![
        created(),
        stamp(ModuleEvent::StrategyAttached {
            strategy: STRATEGY,
            flags: AttachmentFlags::default(),
        }),
        stamp(ModuleEvent::UseRegistered {
            external: external("spring-promo"),
        }),
        stamp(ModuleEvent::StrategyDetached { strategy: STRATEGY }),
        stamp(ModuleEvent::UseReleased {
            external: external("spring-promo"),
        }),
    ];
    let delete = cmd(ModuleCommand::Delete {
        open_chats: BTreeSet::new(),
    });
    let state = given::<ModuleDecider>(&history)
        .when(&delete, now())
        .then_events(&[stamp(ModuleEvent::Deleted)]);
    assert!(state.deleted);
    let mut all = history;
    all.push(stamp(ModuleEvent::Deleted));
    given::<ModuleDecider>(&all)
        .when(
            &cmd(ModuleCommand::AddTag {
                tag: "x".to_owned(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Deleted { object: "module" });
}

#[test]
fn m9_external_uses_are_registered_released_and_limited() {
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::ReleaseUse {
                external: external("x"),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Missing {
            field: "external uses".to_owned(),
            value: "x".to_owned(),
        });
    let mut history = vec![created()];
    history.extend((0..EXTERNAL_USES_MAX).map(|i| {
        stamp(ModuleEvent::UseRegistered {
            external: external(&format!("c{i}")),
        })
    }));
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::RegisterUse {
                external: external("more"),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "external uses".to_owned(),
            max: EXTERNAL_USES_MAX,
        });
    given::<ModuleDecider>(&history)
        .when(
            &cmd(ModuleCommand::RegisterUse {
                external: external("c0"),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Duplicate {
            field: "external uses".to_owned(),
            value: "c0".to_owned(),
        });
}

#[test]
fn m10_a_module_without_routing_cannot_take_chats() {
    let module = live(&[stamp(ModuleEvent::Created {
        id: MODULE,
        reference: "r".to_owned(),
        settings: ModuleSettings::named("n"),
        public_path: public_path(MODULE),
        duplicated_from: None,
    })]);
    assert_eq!(module.can_take_chats(), Err(ConfigRejection::NoRouting));
    assert_eq!(
        live(&[created()]).can_take_chats(),
        Ok(QueueId::from_u128(7))
    );
}

fn attach(display: bool, open: bool) -> AdminCommand<ModuleCommand> {
    cmd(ModuleCommand::AttachStrategy {
        strategy: STRATEGY,
        flags: AttachmentFlags { display, open },
    })
}

#[test]
fn t3_default_flags_are_display_yes_open_no() {
    assert_eq!(
        AttachmentFlags::default(),
        AttachmentFlags {
            display: true,
            open: false
        }
    );
}

#[test]
fn t3_open_yes_with_display_no_is_allowed() {
    given::<ModuleDecider>(&[created()])
        .when(&attach(false, true), now())
        .then_events(&[stamp(ModuleEvent::StrategyAttached {
            strategy: STRATEGY,
            flags: AttachmentFlags {
                display: false,
                open: true,
            },
        })]);
}

#[test]
fn t3_display_no_with_open_no_is_refused() {
    given::<ModuleDecider>(&[created()])
        .when(&attach(false, false), now())
        .then_rejected(ConfigRejection::DisplayAndOpenBothOff);
    let attached = stamp(ModuleEvent::StrategyAttached {
        strategy: STRATEGY,
        flags: AttachmentFlags::default(),
    });
    given::<ModuleDecider>(&[created(), attached.clone()])
        .when(
            &cmd(ModuleCommand::SetStrategyFlags {
                strategy: STRATEGY,
                flags: AttachmentFlags {
                    display: false,
                    open: false,
                },
            }),
            now(),
        )
        .then_rejected(ConfigRejection::DisplayAndOpenBothOff);
    given::<ModuleDecider>(&[created(), attached])
        .when(&attach(true, false), now())
        .then_rejected(ConfigRejection::Duplicate {
            field: "strategies".to_owned(),
            value: STRATEGY.to_string(),
        });
}

#[test]
fn t1_strategies_per_module_are_limited() {
    let mut history = vec![created()];
    history.extend((0..STRATEGIES_PER_MODULE_MAX as u128).map(|i| {
        stamp(ModuleEvent::StrategyAttached {
            strategy: StrategyId::from_u128(100 + i),
            flags: AttachmentFlags::default(),
        })
    }));
    given::<ModuleDecider>(&history)
        .when(&attach(true, false), now())
        .then_rejected(ConfigRejection::TooMany {
            field: "strategies".to_owned(),
            max: STRATEGIES_PER_MODULE_MAX,
        });
}

fn strategy_created() -> Stamped<StrategyEvent> {
    stamp(StrategyEvent::Created {
        id: STRATEGY,
        name: "Checkout".to_owned(),
        reference: "checkout".to_owned(),
        rules: RuleSet {
            combinator: Combinator::All,
            rules: vec![Rule::PagesViewed { pages_min: 2 }],
        },
    })
}

#[test]
fn t4_an_attached_strategy_cannot_be_deleted() {
    let linked = stamp(StrategyEvent::ModuleLinked { module: MODULE });
    let delete = AdminCommand::new(ADMIN, StrategyCommand::Delete);
    given::<StrategyDecider>(&[strategy_created(), linked.clone()])
        .when(&delete, now())
        .then_rejected(ConfigRejection::HasDependants {
            dependants: vec![Dependant::Module(MODULE)],
        });
    let unlinked = stamp(StrategyEvent::ModuleUnlinked { module: MODULE });
    given::<StrategyDecider>(&[strategy_created(), linked, unlinked])
        .when(&delete, now())
        .then_events(&[stamp(StrategyEvent::Deleted)]);
}

#[test]
fn t1_strategy_rules_are_validated() {
    let create = |rules: Vec<Rule>| {
        AdminCommand::new(
            ADMIN,
            StrategyCommand::Create {
                id: STRATEGY,
                name: "s".to_owned(),
                reference: "s".to_owned(),
                rules: RuleSet {
                    combinator: Combinator::Any,
                    rules,
                },
            },
        )
    };
    given::<StrategyDecider>(&[])
        .when(&create(vec![]), now())
        .then_rejected(ConfigRejection::Empty {
            field: "rules".to_owned(),
        });
    let many = vec![
        Rule::ReturningVisitor { returning: true };
        chat_core::config::RULES_PER_STRATEGY_MAX + 1
    ];
    given::<StrategyDecider>(&[])
        .when(&create(many), now())
        .then_rejected(ConfigRejection::TooMany {
            field: "rules".to_owned(),
            max: chat_core::config::RULES_PER_STRATEGY_MAX,
        });
    given::<StrategyDecider>(&[])
        .when(
            &create(vec![Rule::CustomEvent {
                name: "Added To Cart".to_owned(),
            }]),
            now(),
        )
        .then_rejected(ConfigRejection::InvalidKey {
            field: "custom event".to_owned(),
            value: "Added To Cart".to_owned(),
            allowed: "lowercase letters, digits and _",
        });
    given::<StrategyDecider>(&[])
        .when(
            &create(vec![Rule::TimeOnPage {
                seconds_min: chat_core::config::TIME_ON_PAGE_S_MAX + 1,
            }]),
            now(),
        )
        .then_rejected(ConfigRejection::OutOfRange {
            field: "time on page".to_owned(),
            min: 0,
            max: u64::from(chat_core::config::TIME_ON_PAGE_S_MAX),
            value: u64::from(chat_core::config::TIME_ON_PAGE_S_MAX + 1),
        });
    given::<StrategyDecider>(&[strategy_created()])
        .when(
            &create(vec![Rule::ReturningVisitor { returning: true }]),
            now(),
        )
        .then_rejected(ConfigRejection::AlreadyExists {
            object: "trigger strategy",
        });
}

#[test]
fn a6_the_case_template_is_bounded_keyed_and_copied_by_duplicate() {
    use chat_core::config::{CASE_TEMPLATE_FIELDS_MAX, CASE_TEMPLATE_VALUE_CHARS_MAX};
    use std::collections::BTreeMap;
    let template = |n: usize, value_chars: usize| -> BTreeMap<String, String> {
        (0..n)
            .map(|i| (format!("field_{i}"), "v".repeat(value_chars)))
            .collect()
    };
    let full = template(CASE_TEMPLATE_FIELDS_MAX, CASE_TEMPLATE_VALUE_CHARS_MAX);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::SetCaseTemplate {
                template: full.clone(),
            }),
            now(),
        )
        .then_events(&[stamp(ModuleEvent::CaseTemplateSet {
            template: full.clone(),
        })]);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::SetCaseTemplate {
                template: template(CASE_TEMPLATE_FIELDS_MAX + 1, 1),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "case_template".into(),
            max: CASE_TEMPLATE_FIELDS_MAX,
        });
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::SetCaseTemplate {
                template: template(1, CASE_TEMPLATE_VALUE_CHARS_MAX + 1),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooLong {
            field: "case_template.field_0".into(),
            chars_max: CASE_TEMPLATE_VALUE_CHARS_MAX,
        });
    let bad_key = BTreeMap::from([("Priority".to_owned(), "high".to_owned())]);
    given::<ModuleDecider>(&[created()])
        .when(
            &cmd(ModuleCommand::SetCaseTemplate { template: bad_key }),
            now(),
        )
        .then_rejected(ConfigRejection::InvalidKey {
            field: "case_template".into(),
            value: "Priority".into(),
            allowed: "lowercase letters, digits and _",
        });
    let history = [
        created(),
        stamp(ModuleEvent::CaseTemplateSet {
            template: full.clone(),
        }),
    ];
    assert_eq!(live(&history).case_template, full);
    let copy = ModuleDecider::decide(
        &ModuleState::default(),
        &cmd(ModuleCommand::Duplicate {
            id: COPY,
            reference: "copy".into(),
            name: "Copy".into(),
            source: Box::new(live(&history)),
        }),
        now(),
    )
    .expect("duplicated");
    assert!(copy.iter().any(|e| matches!(&e.event,
        ModuleEvent::CaseTemplateSet { template } if *template == full)));
}
