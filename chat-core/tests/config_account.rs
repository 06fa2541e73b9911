//! Account settings (default zone and language, authorised domains, unattended timeout, contact
//! matching) and the embed snippet with its origin check (M5, M6).

mod config_support;

use chat_core::config::{
    AUTHORISED_DOMAINS_MAX, AccountCommand, AccountEvent, AccountSettings, AdminCommand,
    ConfigRejection, ContactField, DomainPattern, Module, ModuleDecider, ModuleEvent,
    ModuleSettings, OriginRefused, UNATTENDED_TIMEOUT_S_DEFAULT, UNATTENDED_TIMEOUT_S_MAX,
    UNATTENDED_TIMEOUT_S_MIN, check_origin, public_path, render_snippet,
};
use chat_core::{Decider, ModuleId, PAGE_VAR_NAME_BYTES_MAX, PAGE_VARS_MAX, PageData, given};
use config_support::{ADMIN, now, stamp};
use std::collections::{BTreeMap, BTreeSet};

fn account(command: AccountCommand) -> AdminCommand<AccountCommand> {
    AdminCommand::new(ADMIN, command)
}

#[test]
fn account_defaults_are_utc_english_no_domain_and_fifteen_minutes() {
    let settings = AccountSettings::default();
    assert_eq!(settings.default_time_zone, chrono_tz::UTC);
    assert_eq!(settings.default_language, "en");
    assert!(settings.authorised_domains.is_empty());
    assert_eq!(settings.unattended_timeout_s, UNATTENDED_TIMEOUT_S_DEFAULT);
    assert_eq!(settings.contact_match_field, ContactField::email());
}

#[test]
fn account_default_time_zone_refuses_unknown_names() {
    given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::SetDefaultTimeZone {
                name: "Europe/Paris".into(),
            }),
            now(),
        )
        .then_events(&[stamp(AccountEvent::DefaultTimeZoneSet {
            time_zone: chrono_tz::Europe::Paris,
        })]);
    given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::SetDefaultTimeZone {
                name: "Paris".into(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::UnknownTimeZone {
            name: "Paris".into(),
        });
    given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::SetDefaultLanguage {
                language: "de-CH".into(),
            }),
            now(),
        )
        .then_events(&[stamp(AccountEvent::DefaultLanguageSet {
            language: "de-CH".into(),
        })]);
}

#[test]
fn c5_unattended_timeout_is_bounded() {
    for ok in [UNATTENDED_TIMEOUT_S_MIN, UNATTENDED_TIMEOUT_S_MAX] {
        given::<AccountSettings>(&[])
            .when(
                &account(AccountCommand::SetUnattendedTimeout { timeout_s: ok }),
                now(),
            )
            .then_events(&[stamp(AccountEvent::UnattendedTimeoutSet { timeout_s: ok })]);
    }
    for bad in [UNATTENDED_TIMEOUT_S_MIN - 1, UNATTENDED_TIMEOUT_S_MAX + 1] {
        given::<AccountSettings>(&[])
            .when(
                &account(AccountCommand::SetUnattendedTimeout { timeout_s: bad }),
                now(),
            )
            .then_rejected(ConfigRejection::OutOfRange {
                field: "unattended_timeout_s".into(),
                min: u64::from(UNATTENDED_TIMEOUT_S_MIN),
                max: u64::from(UNATTENDED_TIMEOUT_S_MAX),
                value: u64::from(bad),
            });
    }
}

#[test]
fn f4_contact_match_field_is_an_account_setting() {
    let state = given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::SetContactMatchField {
                field: "customer_no".into(),
            }),
            now(),
        )
        .then_events(&[stamp(AccountEvent::ContactMatchFieldSet {
            field: ContactField::new("customer_no").unwrap(),
        })]);
    assert_eq!(state.contact_match_field.as_str(), "customer_no");
}

#[test]
fn m5_authorised_domains_are_normalised_limited_and_revocable() {
    let state = given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::AuthoriseDomain {
                pattern: "*.Example.COM".into(),
            }),
            now(),
        )
        .then_events(&[stamp(AccountEvent::DomainAuthorised {
            pattern: DomainPattern::parse("*.example.com").unwrap(),
        })]);
    assert_eq!(
        state
            .authorised_domains
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["*.example.com"]
    );
    let authorised = [stamp(AccountEvent::DomainAuthorised {
        pattern: DomainPattern::parse("*.example.com").unwrap(),
    })];
    given::<AccountSettings>(&authorised)
        .when(
            &account(AccountCommand::AuthoriseDomain {
                pattern: "*.example.com".into(),
            }),
            now(),
        )
        .then_events(&[]);
    given::<AccountSettings>(&authorised)
        .when(
            &account(AccountCommand::RevokeDomain {
                pattern: "*.EXAMPLE.com".into(),
            }),
            now(),
        )
        .then_events(&[stamp(AccountEvent::DomainRevoked {
            pattern: DomainPattern::parse("*.example.com").unwrap(),
        })]);
    given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::RevokeDomain {
                pattern: "example.com".into(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Missing {
            field: "authorised domains".into(),
            value: "example.com".into(),
        });
    given::<AccountSettings>(&[])
        .when(
            &account(AccountCommand::AuthoriseDomain {
                pattern: "exa mple.com".into(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::Invalid {
            field: "authorised domain".into(),
            value: "exa mple.com".into(),
            reason: "expected [scheme://][*.]host[:port]",
        });
    let full: Vec<_> = (0..AUTHORISED_DOMAINS_MAX)
        .map(|i| {
            stamp(AccountEvent::DomainAuthorised {
                pattern: DomainPattern::parse(&format!("site{i}.example.com")).unwrap(),
            })
        })
        .collect();
    given::<AccountSettings>(&full)
        .when(
            &account(AccountCommand::AuthoriseDomain {
                pattern: "one-more.example".into(),
            }),
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "authorised domains".into(),
            max: AUTHORISED_DOMAINS_MAX,
        });
}

fn patterns(list: &[&str]) -> BTreeSet<DomainPattern> {
    list.iter()
        .map(|p| DomainPattern::parse(p).unwrap())
        .collect()
}

#[test]
fn m5_origin_check_is_host_wildcard_scheme_and_port_aware() {
    let authorised = patterns(&[
        "example.com",
        "*.shop.example",
        "https://secure.example.org",
        "http://localhost:8080",
    ]);
    let table = [
        ("https://example.com", true),
        ("http://example.com", true),
        ("https://EXAMPLE.com", true),
        ("https://example.com:443", true),
        ("https://example.com:8443", false),
        ("https://www.example.com", false),
        ("https://a.shop.example", true),
        ("https://a.b.shop.example", true),
        ("https://shop.example", false),
        ("https://evilshop.example", false),
        ("https://secure.example.org", true),
        ("http://secure.example.org", false),
        ("http://localhost:8080", true),
        ("http://localhost", false),
        ("https://localhost:8080", false),
        ("https://example.com.evil.net", false),
    ];
    for (origin, expected) in table {
        assert_eq!(
            check_origin(origin, &authorised).is_ok(),
            expected,
            "{origin}"
        );
    }
    assert_eq!(
        check_origin("https://other.net", &authorised),
        Err(OriginRefused::NotAuthorised {
            origin: "https://other.net".into()
        })
    );
    for malformed in [
        "null",
        "example.com",
        "ftp://example.com",
        "https://example.com/path",
        "https://example.com:+443",
        "https://",
    ] {
        assert_eq!(
            check_origin(malformed, &authorised),
            Err(OriginRefused::Malformed {
                origin: malformed.into()
            }),
            "{malformed}"
        );
    }
    assert!(
        check_origin("https://example.com", &BTreeSet::new()).is_err(),
        "no domain, no origin"
    );
}

fn module() -> Module {
    let id = ModuleId::from_u128(0xabc);
    ModuleDecider::replay(&[stamp(ModuleEvent::Created {
        id,
        reference: "sales.eu".into(),
        settings: ModuleSettings::named("Sales"),
        public_path: public_path(id),
        duplicated_from: None,
    })])
    .module
    .unwrap()
}

#[test]
fn m5_snippet_names_the_module_and_loads_the_widget() {
    let m = module();
    let html = render_snippet(&m, "https://chat.example.com/", &PageData::default()).unwrap();
    assert!(html.contains(&format!("\"module\":\"{}\"", m.id)), "{html}");
    assert!(html.contains("\"reference\":\"sales.eu\""), "{html}");
    assert!(
        html.contains("\"baseUrl\":\"https://chat.example.com\""),
        "{html}"
    );
    assert!(
        html.contains("<script async src=\"https://chat.example.com/widget.js\""),
        "{html}"
    );
    assert!(
        !html.contains("\"data\""),
        "no data, no data object: {html}"
    );
    assert!(matches!(
        render_snippet(&m, "javascript:alert(1)", &PageData::default()),
        Err(ConfigRejection::Invalid { field, .. }) if field == "base_url"
    ));
}

#[test]
fn m6_snippet_passes_page_data_escaped() {
    let data = PageData {
        firstname: Some("Ada".into()),
        lastname: Some("Lovelace".into()),
        message: Some("</script><script>alert(\"x\")</script>".into()),
        vars: BTreeMap::from([
            ("order".into(), "A-1".into()),
            ("plan".into(), "pro & co".into()),
        ]),
    };
    let html = render_snippet(&module(), "https://chat.example.com", &data).unwrap();
    assert!(
        html.contains("\"firstname\":\"Ada\",\"lastname\":\"Lovelace\""),
        "{html}"
    );
    assert!(
        html.contains("\\u003c/script\\u003e\\u003cscript\\u003ealert(\\\"x\\\")"),
        "{html}"
    );
    assert!(html.contains("\"vars\":[{\"name\":\"order\",\"value\":\"A-1\"},{\"name\":\"plan\",\"value\":\"pro \\u0026 co\"}]"), "{html}");
    // The only closing script tags are the snippet's own two.
    assert_eq!(html.matches("</script>").count(), 2, "{html}");
}

#[test]
fn m6_page_data_limits_are_enforced() {
    let too_many = PageData {
        vars: (0..=PAGE_VARS_MAX)
            .map(|i| (format!("v{i}"), "x".into()))
            .collect(),
        ..PageData::default()
    };
    assert_eq!(
        render_snippet(&module(), "https://chat.example.com", &too_many),
        Err(ConfigRejection::TooMany {
            field: "vars".into(),
            max: PAGE_VARS_MAX
        })
    );
    let at_limit = PageData {
        vars: (0..PAGE_VARS_MAX)
            .map(|i| (format!("v{i}"), "x".into()))
            .collect(),
        ..PageData::default()
    };
    assert!(render_snippet(&module(), "https://chat.example.com", &at_limit).is_ok());
    let long_message = PageData {
        message: Some("x".repeat(chat_core::FIELD_TEXT_BYTES_MAX + 1)),
        ..PageData::default()
    };
    assert!(matches!(
        render_snippet(&module(), "https://chat.example.com", &long_message),
        Err(ConfigRejection::TooManyBytes { field, bytes_max: chat_core::FIELD_TEXT_BYTES_MAX }) if field == "message"
    ));
}

#[test]
fn m6_page_var_names_are_bounded_in_bytes() {
    let named = |name: String| PageData {
        vars: [(name, "x".into())].into_iter().collect(),
        ..PageData::default()
    };
    let at_limit = named("é".repeat(PAGE_VAR_NAME_BYTES_MAX / 2));
    assert!(render_snippet(&module(), "https://chat.example.com", &at_limit).is_ok());
    assert_eq!(
        render_snippet(
            &module(),
            "https://chat.example.com",
            &named("n".repeat(PAGE_VAR_NAME_BYTES_MAX + 1))
        ),
        Err(ConfigRejection::TooManyBytes {
            field: "vars name".into(),
            bytes_max: PAGE_VAR_NAME_BYTES_MAX
        })
    );
}
