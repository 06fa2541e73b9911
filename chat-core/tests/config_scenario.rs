//! One admin's setup and one visitor's arrival, end to end through the configuration side: the
//! account, a module with hours, a form and a trigger, then the origin check, the trigger decision,
//! the working-hours admission, the form and the contact match that a chat's start needs.

mod config_support;

use chat_core::config::{
    AccountCommand, AccountSettings, AdminCommand, AttachmentFlags, Combinator, Contact,
    ContactCommand, ContactDirectory, ContactField, ContactMatch, DayHours, Display, FieldDef,
    FieldKind, FieldTarget, FormKind, InputKind, ModuleCommand, ModuleDecider, ModuleSettings,
    Reason, Rule, RuleSet, StrategyCommand, StrategyDecider, Submission, TimeRange, UrlMatch,
    VisitorContext, WorkingHours, check_origin, evaluate, render_snippet, validate_submission,
};
use chat_core::{ContactId, Decider, FieldValue, ModuleId, PageData, QueueId, StrategyId};
use config_support::{ADMIN, date, utc};
use std::collections::BTreeSet;

/// Decides and folds into `state`, the way a host does after a successful append.
fn apply<D: Decider>(state: &mut D::State, command: &D::Command, now: chrono::DateTime<chrono::Utc>)
where
    D::Rejection: std::fmt::Debug,
{
    let events = D::decide(state, command, now).expect("command accepted");
    for event in &events {
        D::evolve(state, event);
    }
}

#[test]
fn c1_a_configured_module_admits_a_visitor_with_form_data_and_a_matched_contact() {
    let setup = utc(2026, 3, 1, 12, 0);

    let mut account = AccountSettings::default();
    for command in [
        AccountCommand::SetDefaultTimeZone {
            name: "Europe/Paris".into(),
        },
        AccountCommand::AuthoriseDomain {
            pattern: "*.shop.example".into(),
        },
    ] {
        apply::<AccountSettings>(&mut account, &AdminCommand::new(ADMIN, command), setup);
    }

    let module_id = ModuleId::from_u128(1);
    let strategy_id = StrategyId::from_u128(2);
    let mut settings = ModuleSettings::named("Shop");
    settings.routing = Some(QueueId::from_u128(3));
    let mut hours = WorkingHours::closed();
    for day in &mut hours.weekly[0..5] {
        day.push(TimeRange::parse("09:00-18:00").unwrap());
    }
    hours.exceptions.insert(date(2026, 4, 6), DayHours::Closed); // Easter Monday
    let email = FieldDef {
        name: "email".into(),
        label: "Your e-mail".into(),
        kind: FieldKind::Input {
            input: InputKind::Email,
        },
        required: true,
        target: FieldTarget::Contact(ContactField::email()),
    };
    let topic = FieldDef {
        name: "topic".into(),
        label: "Topic".into(),
        kind: FieldKind::Radio {
            options: vec!["order".into(), "return".into()],
        },
        required: true,
        target: FieldTarget::Routing("topic".into()),
    };
    let form = chat_core::config::FormDefinition {
        fields: vec![email, topic],
    };

    let mut module = Default::default();
    for command in [
        ModuleCommand::Create {
            id: module_id,
            reference: "shop".into(),
            settings,
        },
        ModuleCommand::SetWorkingHours { hours },
        ModuleCommand::SetForm {
            kind: FormKind::PreChat,
            form: Some(form),
        },
        ModuleCommand::AttachStrategy {
            strategy: strategy_id,
            flags: AttachmentFlags {
                display: true,
                open: true,
            },
        },
    ] {
        apply::<ModuleDecider>(&mut module, &AdminCommand::new(ADMIN, command), setup);
    }
    let mut strategy = Default::default();
    for command in [
        StrategyCommand::Create {
            id: strategy_id,
            name: "Cart".into(),
            reference: "cart".into(),
            rules: RuleSet {
                combinator: Combinator::All,
                rules: vec![
                    Rule::Url(UrlMatch::Glob("https://*.shop.example/cart*".into())),
                    Rule::TimeOnPage { seconds_min: 20 },
                ],
            },
        },
        StrategyCommand::LinkModule { module: module_id },
    ] {
        apply::<StrategyDecider>(&mut strategy, &AdminCommand::new(ADMIN, command), setup);
    }
    let module = module.module.unwrap();
    let strategy = strategy.strategy.unwrap();

    // The page embeds the snippet; the widget's requests come from the shop's origin.
    let snippet =
        render_snippet(&module, "https://chat.example.net", &PageData::default()).unwrap();
    assert!(snippet.contains(&module_id.to_string()));
    assert!(check_origin("https://www.shop.example", &account.authorised_domains).is_ok());
    assert!(check_origin("https://www.elsewhere.example", &account.authorised_domains).is_err());

    // Monday 2026-03-02 10:30 in Paris, 25 s on the cart page: the chat opens.
    let now = utc(2026, 3, 2, 9, 30);
    let visitor = VisitorContext {
        url: "https://www.shop.example/cart?id=9".into(),
        time_on_page_s: 25,
        pages_viewed: 2,
        returning: false,
        events: BTreeSet::new(),
    };
    let decision = evaluate(&module, std::slice::from_ref(&strategy), &visitor, now);
    assert_eq!(decision.display, Display::OpenChat);
    assert_eq!(decision.reason, Reason::Matched(strategy_id));
    let early = VisitorContext {
        time_on_page_s: 5,
        ..visitor
    };
    assert_eq!(
        evaluate(&module, &[strategy], &early, now).display,
        Display::Hidden
    );

    // Admission facts the chat's start needs (C2, M10).
    let schedule = module.schedule(account.default_time_zone);
    assert!(schedule.is_open(now));
    assert!(!schedule.is_open(utc(2026, 4, 6, 9, 30)), "Easter Monday");
    assert_eq!(module.can_take_chats(), Ok(QueueId::from_u128(3)));

    // The pre-chat form, then the contact (F2–F4).
    let form = &module.forms[&FormKind::PreChat];
    let submission = Submission::from([
        ("email".into(), FieldValue::Text("ada@example.org".into())),
        ("topic".into(), FieldValue::Text("return".into())),
    ]);
    let valid = validate_submission(form, &submission).unwrap();
    assert_eq!(valid.routing["topic"], "return");
    let mut directory = ContactDirectory::default();
    assert_eq!(
        directory.resolve(&account.contact_match_field, &valid.contact),
        ContactMatch::New
    );
    let contact_id = ContactId::from_u128(4);
    let events = Contact::decide(
        &Contact::default(),
        &ContactCommand::Create {
            id: contact_id,
            fields: valid.contact.clone(),
        },
        now,
    )
    .unwrap();
    for event in &events {
        directory.record(contact_id, event);
    }
    let again = Submission::from([
        ("email".into(), FieldValue::Text("ADA@example.org".into())),
        ("topic".into(), FieldValue::Text("order".into())),
    ]);
    let valid_again = validate_submission(form, &again).unwrap();
    assert_eq!(
        directory.resolve(&account.contact_match_field, &valid_again.contact),
        ContactMatch::Existing(contact_id)
    );
}
