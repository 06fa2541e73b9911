//! Trigger evaluation (T2–T4): a table per rule kind, per combination and per flag pair.

mod config_support;

use chat_core::config::{
    AttachmentFlags, Combinator, Decision, Display, Module, ModuleDecider, ModuleEvent,
    ModuleSettings, Reason, Rule, RuleSet, Schedule, Strategy, TimeRange, UrlMatch, VisitorContext,
    WorkingHours, evaluate, public_path,
};
use chat_core::{Decider, ModuleId, StrategyId};
use chrono::{DateTime, Utc};
use config_support::{now, stamp, utc};
use std::collections::BTreeSet;

const MODULE: ModuleId = ModuleId::from_u128(1);

fn module(attachments: &[(u128, AttachmentFlags)]) -> Module {
    let mut events = vec![stamp(ModuleEvent::Created {
        id: MODULE,
        reference: "m".to_owned(),
        settings: ModuleSettings::named("m"),
        public_path: public_path(MODULE),
        duplicated_from: None,
    })];
    events.extend(attachments.iter().map(|(id, flags)| {
        stamp(ModuleEvent::StrategyAttached {
            strategy: StrategyId::from_u128(*id),
            flags: *flags,
        })
    }));
    ModuleDecider::replay(&events).module.unwrap()
}

fn strategy(id: u128, combinator: Combinator, rules: Vec<Rule>) -> Strategy {
    Strategy {
        id: StrategyId::from_u128(id),
        name: format!("s{id}"),
        reference: format!("s{id}"),
        rules: RuleSet { combinator, rules },
        modules: BTreeSet::from([MODULE]),
    }
}

fn visitor() -> VisitorContext {
    VisitorContext {
        url: "https://shop.example.com/cart?step=2".to_owned(),
        time_on_page_s: 30,
        pages_viewed: 3,
        returning: true,
        events: BTreeSet::from(["added_to_cart".to_owned()]),
    }
}

/// Whether one rule matches, read through `evaluate` with one default attachment.
/// Checks each (rule, expected) row against the standard [`visitor`] at [`now`].
#[track_caller]
fn check_rules<const N: usize>(table: [(Rule, bool); N]) {
    for (rule, expected) in table {
        assert_eq!(
            rule_matches(rule.clone(), &visitor(), now()),
            expected,
            "{rule:?}"
        );
    }
}

fn rule_matches(rule: Rule, visitor: &VisitorContext, at: DateTime<Utc>) -> bool {
    let m = module(&[(1, AttachmentFlags::default())]);
    let decision = evaluate(&m, &[strategy(1, Combinator::All, vec![rule])], visitor, at);
    match decision.display {
        Display::ShowIcon => {
            assert_eq!(decision.reason, Reason::Matched(StrategyId::from_u128(1)));
            true
        }
        Display::Hidden => {
            assert_eq!(decision.reason, Reason::NoStrategyMatched);
            false
        }
        Display::OpenChat => panic!("default flags never open the chat"),
    }
}

#[test]
fn t2_url_rules_exact_prefix_glob() {
    let url = |m: UrlMatch| Rule::Url(m);
    let table = [
        (
            url(UrlMatch::Exact(
                "https://shop.example.com/cart?step=2".into(),
            )),
            true,
        ),
        (
            url(UrlMatch::Exact("https://shop.example.com/cart".into())),
            false,
        ),
        (
            url(UrlMatch::Prefix("https://shop.example.com/".into())),
            true,
        ),
        (
            url(UrlMatch::Prefix("https://blog.example.com/".into())),
            false,
        ),
        (
            url(UrlMatch::Glob("https://*.example.com/cart*".into())),
            true,
        ),
        (url(UrlMatch::Glob("*/checkout*".into())), false),
        (
            url(UrlMatch::Glob(
                "https://shop.example.com/cart?step=?".into(),
            )),
            true,
        ),
        (
            url(UrlMatch::Exact(
                "HTTPS://SHOP.EXAMPLE.COM/cart?step=2".into(),
            )),
            false,
        ),
    ];
    check_rules(table);
}

#[test]
fn t2_time_on_page_pages_viewed_returning_and_custom_event() {
    let table = [
        (Rule::TimeOnPage { seconds_min: 30 }, true),
        (Rule::TimeOnPage { seconds_min: 31 }, false),
        (Rule::TimeOnPage { seconds_min: 0 }, true),
        (Rule::PagesViewed { pages_min: 3 }, true),
        (Rule::PagesViewed { pages_min: 4 }, false),
        (Rule::ReturningVisitor { returning: true }, true),
        (Rule::ReturningVisitor { returning: false }, false),
        (
            Rule::CustomEvent {
                name: "added_to_cart".into(),
            },
            true,
        ),
        (
            Rule::CustomEvent {
                name: "asked_for_help".into(),
            },
            false,
        ),
    ];
    check_rules(table);
    let first_visit = VisitorContext {
        returning: false,
        ..visitor()
    };
    assert!(rule_matches(
        Rule::ReturningVisitor { returning: false },
        &first_visit,
        now()
    ));
}

#[test]
fn t2_time_window_uses_the_rules_own_time_zone() {
    let mut hours = WorkingHours::closed();
    for day in &mut hours.weekly[0..5] {
        day.push(TimeRange::parse("09:00-18:00").unwrap());
    }
    let window = Rule::TimeWindow(Schedule::new("America/New_York", hours).unwrap());
    // Monday 2026-03-02: 09:00 in New York is 14:00 UTC.
    let table = [
        (utc(2026, 3, 2, 13, 59), false),
        (utc(2026, 3, 2, 14, 0), true),
        (utc(2026, 3, 2, 22, 59), true),
        (utc(2026, 3, 2, 23, 0), false),
        (utc(2026, 3, 7, 15, 0), false), // Saturday
    ];
    for (at, expected) in table {
        assert_eq!(
            rule_matches(window.clone(), &visitor(), at),
            expected,
            "{at}"
        );
    }
}

#[test]
fn t2_all_and_any_combine_rules() {
    let yes = Rule::PagesViewed { pages_min: 1 };
    let no = Rule::PagesViewed { pages_min: 99 };
    let table = [
        (Combinator::All, vec![yes.clone(), yes.clone()], true),
        (Combinator::All, vec![yes.clone(), no.clone()], false),
        (Combinator::All, vec![no.clone(), no.clone()], false),
        (Combinator::Any, vec![yes.clone(), yes.clone()], true),
        (Combinator::Any, vec![no.clone(), yes.clone()], true),
        (Combinator::Any, vec![no.clone(), no.clone()], false),
        (Combinator::All, vec![yes.clone()], true),
        (Combinator::Any, vec![no.clone()], false),
    ];
    let m = module(&[(1, AttachmentFlags::default())]);
    for (combinator, rules, expected) in table {
        let s = strategy(1, combinator, rules.clone());
        let shown = evaluate(&m, &[s], &visitor(), now()).display == Display::ShowIcon;
        assert_eq!(shown, expected, "{combinator:?} {rules:?}");
    }
}

#[test]
fn t3_flags_decide_what_a_match_does() {
    let matching = vec![Rule::PagesViewed { pages_min: 1 }];
    let not_matching = vec![Rule::PagesViewed { pages_min: 99 }];
    let flags = |display, open| AttachmentFlags { display, open };
    let table = [
        (flags(true, false), &matching, Display::ShowIcon),
        (flags(true, true), &matching, Display::OpenChat),
        (flags(false, true), &matching, Display::OpenChat),
        (flags(true, false), &not_matching, Display::Hidden),
        (flags(true, true), &not_matching, Display::Hidden),
        (flags(false, true), &not_matching, Display::Hidden),
    ];
    for (f, rules, expected) in table {
        let m = module(&[(1, f)]);
        let decision = evaluate(
            &m,
            &[strategy(1, Combinator::All, rules.clone())],
            &visitor(),
            now(),
        );
        assert_eq!(decision.display, expected, "{f:?} {rules:?}");
    }
}

#[test]
fn t4_several_strategies_the_strongest_match_wins_with_its_reason() {
    let open = AttachmentFlags {
        display: true,
        open: true,
    };
    let m = module(&[(1, AttachmentFlags::default()), (2, open), (3, open)]);
    let yes = vec![Rule::PagesViewed { pages_min: 1 }];
    let no = vec![Rule::PagesViewed { pages_min: 99 }];
    let decide = |r1: &Vec<Rule>, r2: &Vec<Rule>, r3: &Vec<Rule>| {
        evaluate(
            &m,
            &[
                strategy(1, Combinator::All, r1.clone()),
                strategy(2, Combinator::All, r2.clone()),
                strategy(3, Combinator::All, r3.clone()),
            ],
            &visitor(),
            now(),
        )
    };
    let decision = |display, id: Option<u128>| Decision {
        display,
        reason: id.map_or(Reason::NoStrategyMatched, |id| {
            Reason::Matched(StrategyId::from_u128(id))
        }),
    };
    let table = [
        ((&yes, &no, &no), decision(Display::ShowIcon, Some(1))),
        ((&yes, &yes, &no), decision(Display::OpenChat, Some(2))),
        ((&no, &no, &yes), decision(Display::OpenChat, Some(3))),
        ((&yes, &yes, &yes), decision(Display::OpenChat, Some(2))),
        ((&no, &no, &no), decision(Display::Hidden, None)),
    ];
    for ((r1, r2, r3), expected) in table {
        assert_eq!(decide(r1, r2, r3), expected);
    }
}

#[test]
fn t4_without_attachments_the_icon_shows_and_unknown_strategies_never_match() {
    let bare = module(&[]);
    assert_eq!(
        evaluate(&bare, &[], &visitor(), now()),
        Decision {
            display: Display::ShowIcon,
            reason: Reason::NoStrategyAttached
        }
    );
    // Attached strategy 1, but the host passed only an unrelated strategy 9.
    let m = module(&[(1, AttachmentFlags::default())]);
    let unrelated = strategy(9, Combinator::All, vec![Rule::PagesViewed { pages_min: 0 }]);
    assert_eq!(
        evaluate(&m, &[unrelated], &visitor(), now()),
        Decision {
            display: Display::Hidden,
            reason: Reason::NoStrategyMatched
        }
    );
}
