//! Contacts (F4, F5): match by e-mail or a configured field, create when none matches, reuse a
//! known e-mail, and block.

mod config_support;

use chat_core::config::{
    CONTACT_FIELDS_MAX, ConfigRejection, Contact, ContactCommand, ContactDirectory, ContactEvent,
    ContactField, ContactMatch,
};
use chat_core::{AgentId, ContactId, Decider, given};
use config_support::now;
use std::collections::BTreeMap;

const ADA: ContactId = ContactId::from_u128(1);
const AGENT: AgentId = AgentId::from_u128(5);

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<ContactField, String> {
    pairs
        .iter()
        .map(|(k, v)| (ContactField::new(k).unwrap(), (*v).to_owned()))
        .collect()
}

fn created() -> ContactEvent {
    ContactEvent::Created {
        id: ADA,
        fields: fields(&[("email", "ada@example.org"), ("customer_no", "C-42")]),
        at: now(),
    }
}

#[test]
fn f4_a_contact_is_created_when_none_matches() {
    let directory = ContactDirectory::default();
    let submitted = fields(&[("email", "ada@example.org")]);
    assert_eq!(
        directory.resolve(&ContactField::email(), &submitted),
        ContactMatch::New
    );
    given::<Contact>(&[])
        .when(
            &ContactCommand::Create {
                id: ADA,
                fields: submitted.clone(),
            },
            now(),
        )
        .then_events(&[ContactEvent::Created {
            id: ADA,
            fields: submitted,
            at: now(),
        }]);
    given::<Contact>(&[created()])
        .when(
            &ContactCommand::Create {
                id: ADA,
                fields: BTreeMap::new(),
            },
            now(),
        )
        .then_rejected(ConfigRejection::AlreadyExists { object: "contact" });
}

#[test]
fn f4_a_known_email_is_reused_ignoring_case_and_spaces() {
    let mut directory = ContactDirectory::default();
    directory.record(ADA, &created());
    let again = fields(&[("email", "  ADA@Example.org ")]);
    assert_eq!(
        directory.resolve(&ContactField::email(), &again),
        ContactMatch::Existing(ADA)
    );
    // Even when the account matches on another field, a known e-mail is reused.
    let by_other = ContactField::new("customer_no").unwrap();
    let with_new_number = fields(&[("email", "ada@example.org"), ("customer_no", "C-99")]);
    assert_eq!(
        directory.resolve(&by_other, &with_new_number),
        ContactMatch::Existing(ADA)
    );
}

#[test]
fn f4_contacts_match_on_the_configured_field() {
    let mut directory = ContactDirectory::default();
    directory.record(ADA, &created());
    let by_number = ContactField::new("customer_no").unwrap();
    let submitted = fields(&[("customer_no", "c-42"), ("email", "other@example.org")]);
    assert_eq!(
        directory.resolve(&by_number, &submitted),
        ContactMatch::Existing(ADA)
    );
    let unknown = fields(&[("customer_no", "C-43")]);
    assert_eq!(directory.resolve(&by_number, &unknown), ContactMatch::New);
    // Matching by e-mail alone ignores the other field.
    assert_eq!(
        directory.resolve(&ContactField::email(), &fields(&[("customer_no", "C-42")])),
        ContactMatch::New
    );
}

#[test]
fn f4_updates_record_only_changed_fields_and_check_the_email() {
    given::<Contact>(&[created()])
        .when(
            &ContactCommand::Update {
                fields: fields(&[("email", "ada@example.org"), ("firstname", "Ada")]),
            },
            now(),
        )
        .then_events(&[ContactEvent::Updated {
            fields: fields(&[("firstname", "Ada")]),
            at: now(),
        }]);
    given::<Contact>(&[created()])
        .when(
            &ContactCommand::Update {
                fields: fields(&[("email", "not-an-address")]),
            },
            now(),
        )
        .then_rejected(ConfigRejection::Invalid {
            field: "email".into(),
            value: "not-an-address".into(),
            reason: "not an e-mail address",
        });
    given::<Contact>(&[])
        .when(
            &ContactCommand::Update {
                fields: BTreeMap::new(),
            },
            now(),
        )
        .then_rejected(ConfigRejection::NotFound { object: "contact" });
}

#[test]
fn f4_contact_fields_are_limited() {
    let many: BTreeMap<ContactField, String> = (0..=CONTACT_FIELDS_MAX)
        .map(|i| (ContactField::new(&format!("f{i}")).unwrap(), "v".to_owned()))
        .collect();
    let at_limit: BTreeMap<_, _> = many.clone().into_iter().take(CONTACT_FIELDS_MAX).collect();
    assert!(
        Contact::decide(
            &Contact::default(),
            &ContactCommand::Create {
                id: ADA,
                fields: at_limit
            },
            now()
        )
        .is_ok()
    );
    given::<Contact>(&[])
        .when(
            &ContactCommand::Create {
                id: ADA,
                fields: many,
            },
            now(),
        )
        .then_rejected(ConfigRejection::TooMany {
            field: "contact fields".into(),
            max: CONTACT_FIELDS_MAX,
        });
    assert!(ContactField::new("Email Address").is_err());
    let long = fields(&[("note", &"n".repeat(chat_core::FIELD_TEXT_BYTES_MAX + 1))]);
    given::<Contact>(&[])
        .when(
            &ContactCommand::Create {
                id: ADA,
                fields: long,
            },
            now(),
        )
        .then_rejected(ConfigRejection::TooManyBytes {
            field: "note".into(),
            bytes_max: chat_core::FIELD_TEXT_BYTES_MAX,
        });
}

#[test]
fn f5_a_blocked_contact_may_not_chat_until_unblocked() {
    let state = given::<Contact>(&[created()])
        .when(&ContactCommand::Block { by: AGENT }, now())
        .then_events(&[ContactEvent::Blocked {
            by: AGENT,
            at: now(),
        }]);
    assert!(!state.may_chat());
    assert_eq!(state.blocked_by, Some(AGENT));
    let blocked = [
        created(),
        ContactEvent::Blocked {
            by: AGENT,
            at: now(),
        },
    ];
    given::<Contact>(&blocked)
        .when(&ContactCommand::Block { by: AGENT }, now())
        .then_events(&[]);
    let state = given::<Contact>(&blocked)
        .when(&ContactCommand::Unblock { by: AGENT }, now())
        .then_events(&[ContactEvent::Unblocked {
            by: AGENT,
            at: now(),
        }]);
    assert!(state.may_chat());
}
