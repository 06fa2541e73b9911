//! Every named limit of the configuration side not already exercised next to its rule: accepted
//! at the limit, refused one past it, with the refusal naming the field.

mod config_support;

use chat_core::config::{
    APPEARANCE_TEXT_CHARS_MAX, AdminCommand, Appearance, Combinator, ConfigRejection, ContactField,
    FieldDef, FieldKind, FieldTarget, FormDefinition, KEY_CHARS_MAX, LABEL_CHARS_MAX,
    MODULES_PER_STRATEGY_MAX, ModuleCommand, ModuleDecider, ModuleEvent, ModuleSettings,
    ModuleState, OPTION_CHARS_MAX, PAGES_VIEWED_MAX, Rule, RuleSet, StrategyCommand,
    StrategyDecider, StrategyEvent, Style, TAG_CHARS_MAX, TEXT_CHARS_MAX, URL_CHARS_MAX,
    VISITOR_EVENTS_MAX, VisitorContext, public_path,
};
use chat_core::{Decider, ModuleId, StrategyId, given};
use config_support::{ADMIN, now, stamp};

fn create(settings: ModuleSettings) -> Result<(), ConfigRejection> {
    let command = AdminCommand::new(
        ADMIN,
        ModuleCommand::Create {
            id: ModuleId::from_u128(1),
            reference: "m".into(),
            settings,
        },
    );
    ModuleDecider::decide(&ModuleState::default(), &command, now()).map(|_| ())
}

fn too_long(field: &str, chars_max: usize) -> Result<(), ConfigRejection> {
    Err(ConfigRejection::TooLong {
        field: field.into(),
        chars_max,
    })
}

#[test]
fn m1_description_is_limited() {
    let mut settings = ModuleSettings::named("m");
    settings.description = Some("d".repeat(TEXT_CHARS_MAX));
    assert_eq!(create(settings.clone()), Ok(()));
    settings.description = Some("d".repeat(TEXT_CHARS_MAX + 1));
    assert_eq!(create(settings), too_long("description", TEXT_CHARS_MAX));
}

fn advanced(avatar: String, heading: String) -> ModuleSettings {
    let mut settings = ModuleSettings::named("m");
    settings.appearance = Appearance {
        style: Style::Advanced {
            avatars: vec![avatar],
            heading,
            button_title: "Chat".into(),
        },
        ..Appearance::default()
    };
    settings
}

#[test]
fn m4_avatar_url_and_heading_are_limited() {
    let url = |len: usize| {
        let head = "https://cdn.example.com/";
        format!("{head}{}", "a".repeat(len - head.len()))
    };
    assert_eq!(create(advanced(url(URL_CHARS_MAX), "h".into())), Ok(()));
    assert_eq!(
        create(advanced(url(URL_CHARS_MAX + 1), "h".into())),
        too_long("avatars", URL_CHARS_MAX)
    );
    let heading = |n| "h".repeat(n);
    assert_eq!(
        create(advanced(url(40), heading(APPEARANCE_TEXT_CHARS_MAX))),
        Ok(())
    );
    assert_eq!(
        create(advanced(url(40), heading(APPEARANCE_TEXT_CHARS_MAX + 1))),
        too_long("heading", APPEARANCE_TEXT_CHARS_MAX)
    );
}

#[test]
fn m3_tag_length_is_limited() {
    let id = ModuleId::from_u128(1);
    let created = stamp(ModuleEvent::Created {
        id,
        reference: "m".into(),
        settings: ModuleSettings::named("m"),
        public_path: public_path(id),
        duplicated_from: None,
    });
    let add = |tag: String| AdminCommand::new(ADMIN, ModuleCommand::AddTag { tag });
    let state = ModuleDecider::replay(std::slice::from_ref(&created));
    assert!(ModuleDecider::decide(&state, &add("t".repeat(TAG_CHARS_MAX)), now()).is_ok());
    given::<ModuleDecider>(&[created])
        .when(&add("t".repeat(TAG_CHARS_MAX + 1)), now())
        .then_rejected(ConfigRejection::TooLong {
            field: "tag".into(),
            chars_max: TAG_CHARS_MAX,
        });
}

#[test]
fn t1_modules_per_strategy_and_rule_thresholds_are_limited() {
    let strategy = StrategyId::from_u128(1);
    let mut history = vec![stamp(StrategyEvent::Created {
        id: strategy,
        name: "s".into(),
        reference: "s".into(),
        rules: RuleSet {
            combinator: Combinator::All,
            rules: vec![Rule::PagesViewed {
                pages_min: PAGES_VIEWED_MAX,
            }],
        },
    })];
    history.extend((0..MODULES_PER_STRATEGY_MAX as u128).map(|i| {
        stamp(StrategyEvent::ModuleLinked {
            module: ModuleId::from_u128(100 + i),
        })
    }));
    let link = AdminCommand::new(
        ADMIN,
        StrategyCommand::LinkModule {
            module: ModuleId::from_u128(1),
        },
    );
    given::<StrategyDecider>(&history)
        .when(&link, now())
        .then_rejected(ConfigRejection::TooMany {
            field: "modules".into(),
            max: MODULES_PER_STRATEGY_MAX,
        });
    let update = AdminCommand::new(
        ADMIN,
        StrategyCommand::Update {
            name: "s".into(),
            rules: RuleSet {
                combinator: Combinator::All,
                rules: vec![Rule::PagesViewed {
                    pages_min: PAGES_VIEWED_MAX + 1,
                }],
            },
        },
    );
    given::<StrategyDecider>(&history)
        .when(&update, now())
        .then_rejected(ConfigRejection::OutOfRange {
            field: "pages viewed".into(),
            min: 0,
            max: u64::from(PAGES_VIEWED_MAX),
            value: u64::from(PAGES_VIEWED_MAX + 1),
        });
}

#[test]
fn t2_visitor_context_is_limited() {
    let mut visitor = VisitorContext {
        url: "u".repeat(URL_CHARS_MAX),
        events: (0..VISITOR_EVENTS_MAX).map(|i| format!("e{i}")).collect(),
        ..VisitorContext::default()
    };
    assert_eq!(visitor.check(), Ok(()));
    visitor.events.insert("one_more".into());
    assert_eq!(
        visitor.check(),
        Err(ConfigRejection::TooMany {
            field: "events".into(),
            max: VISITOR_EVENTS_MAX
        })
    );
    let long_url = VisitorContext {
        url: "u".repeat(URL_CHARS_MAX + 1),
        ..VisitorContext::default()
    };
    assert_eq!(long_url.check(), too_long("url", URL_CHARS_MAX));
    let bad_event = VisitorContext {
        events: ["Bad Event".to_owned()].into(),
        ..VisitorContext::default()
    };
    assert!(matches!(
        bad_event.check(),
        Err(ConfigRejection::InvalidKey { .. })
    ));
}

#[test]
fn f1_labels_options_and_keys_are_limited() {
    let form = |label: String, option: String, name: String| FormDefinition {
        fields: vec![FieldDef {
            name,
            label,
            kind: FieldKind::Select {
                options: vec![option],
            },
            required: false,
            target: FieldTarget::Nowhere,
        }],
    };
    let ok = || "a".repeat(5);
    assert_eq!(
        form(
            "l".repeat(LABEL_CHARS_MAX),
            "o".repeat(OPTION_CHARS_MAX),
            "k".repeat(KEY_CHARS_MAX)
        )
        .validate(),
        Ok(())
    );
    assert_eq!(
        form("l".repeat(LABEL_CHARS_MAX + 1), ok(), "f".into()).validate(),
        too_long("f.label", LABEL_CHARS_MAX)
    );
    assert_eq!(
        form(ok(), "o".repeat(OPTION_CHARS_MAX + 1), "f".into()).validate(),
        too_long("f.options", OPTION_CHARS_MAX)
    );
    assert_eq!(
        form(ok(), ok(), "k".repeat(KEY_CHARS_MAX + 1)).validate(),
        too_long("field name", KEY_CHARS_MAX)
    );
    assert!(ContactField::new(&"c".repeat(KEY_CHARS_MAX)).is_ok());
    assert!(ContactField::new(&"c".repeat(KEY_CHARS_MAX + 1)).is_err());
}
