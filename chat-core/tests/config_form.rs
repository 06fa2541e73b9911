//! Forms (F1–F3): definition rules, field-by-field validation, the contact / routing mapping, and
//! the property that valid submissions pass while each single-field corruption is reported
//! against that field and only that field.

mod config_support;

use chat_core::config::{
    ATTACHMENT_BYTES_DEFAULT, ATTACHMENT_BYTES_MAX, AdminCommand, ConfigRejection, ContactField,
    FIELDS_PER_FORM_MAX, FILES_PER_FIELD_MAX, FieldDef, FieldError, FieldKind, FieldProblem,
    FieldTarget, FileType, FormDefinition, FormKind, InputKind, ModuleCommand, ModuleDecider,
    ModuleEvent, ModuleSettings, OPTIONS_PER_FIELD_MAX, Submission, public_path,
    validate_submission,
};
use chat_core::{AttachmentMeta, FIELD_TEXT_BYTES_MAX, FieldValue, ModuleId, given};
use config_support::{ADMIN, cases, now, stamp};
use proptest::prelude::*;

fn field(name: &str, kind: FieldKind, required: bool) -> FieldDef {
    FieldDef {
        name: name.to_owned(),
        label: format!("Label of {name}"),
        kind,
        required,
        target: FieldTarget::Nowhere,
    }
}

fn options(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text(value.to_owned())
}

fn file(name: &str, content_type: &str, size_bytes: u64) -> AttachmentMeta {
    AttachmentMeta {
        file_name: name.to_owned(),
        content_type: content_type.to_owned(),
        size_bytes,
        storage_key: format!("blob/{name}"),
    }
}

fn attachment(files_max: usize, accept: &str) -> FieldKind {
    FieldKind::Attachment {
        files_max,
        file_bytes_max: ATTACHMENT_BYTES_DEFAULT,
        accept: FileType::parse_accept(accept).unwrap(),
    }
}

fn contact_form() -> FormDefinition {
    let mut email = field(
        "email",
        FieldKind::Input {
            input: InputKind::Email,
        },
        true,
    );
    email.target = FieldTarget::Contact(ContactField::email());
    let mut first = field(
        "first",
        FieldKind::Input {
            input: InputKind::Text,
        },
        false,
    );
    first.target = FieldTarget::Contact(ContactField::firstname());
    let mut topic = field(
        "topic",
        FieldKind::Select {
            options: options(&["billing", "sales"]),
        },
        true,
    );
    topic.target = FieldTarget::Routing("topic".to_owned());
    let mut products = field(
        "products",
        FieldKind::Checkboxes {
            options: options(&["a", "b", "c"]),
        },
        false,
    );
    products.target = FieldTarget::Routing("products".to_owned());
    let mut terms = field("terms", FieldKind::Agreement, true);
    terms.target = FieldTarget::Routing("terms".to_owned());
    FormDefinition {
        fields: vec![
            field("intro", FieldKind::Label, false),
            email,
            first,
            topic,
            products,
            terms,
            field("files", attachment(2, ".pdf,image/*"), false),
        ],
    }
}

#[test]
fn f3_valid_submission_maps_to_contact_fields_and_routing_variables() {
    let form = contact_form();
    assert_eq!(form.validate(), Ok(()));
    let submission = Submission::from([
        ("email".to_owned(), text("ada@example.org")),
        ("first".to_owned(), text("Ada")),
        ("topic".to_owned(), text("sales")),
        (
            "products".to_owned(),
            FieldValue::Many(options(&["c", "a"])),
        ),
        ("terms".to_owned(), FieldValue::Agreed(true)),
        (
            "files".to_owned(),
            FieldValue::Files(vec![file("spec.PDF", "application/octet-stream", 10)]),
        ),
    ]);
    let valid = validate_submission(&form, &submission).unwrap();
    assert_eq!(valid.values.len(), 6);
    // F1: checkboxes come back in the form's option order.
    assert_eq!(
        valid.values["products"],
        FieldValue::Many(options(&["a", "c"]))
    );
    assert_eq!(valid.contact[&ContactField::email()], "ada@example.org");
    assert_eq!(valid.contact[&ContactField::firstname()], "Ada");
    assert_eq!(valid.routing["topic"], "sales");
    assert_eq!(valid.routing["products"], "a,c");
    assert_eq!(valid.routing["terms"], "true");
    assert_eq!(valid.routing.len(), 3);
}

#[test]
fn f2_errors_name_every_bad_field_in_form_order() {
    let form = contact_form();
    let submission = Submission::from([
        ("email".to_owned(), text("ada(at)example.org")),
        ("topic".to_owned(), text("refunds")),
        ("terms".to_owned(), FieldValue::Agreed(false)),
        ("intro".to_owned(), text("typed into a label")),
        ("nickname".to_owned(), text("unknown field")),
    ]);
    let errors = validate_submission(&form, &submission).unwrap_err().errors;
    assert_eq!(
        errors,
        vec![
            FieldError {
                field: "intro".into(),
                problem: FieldProblem::NotExpected
            },
            FieldError {
                field: "email".into(),
                problem: FieldProblem::NotAnEmail
            },
            FieldError {
                field: "topic".into(),
                problem: FieldProblem::NotAnOption {
                    value: "refunds".into()
                }
            },
            FieldError {
                field: "terms".into(),
                problem: FieldProblem::Required
            },
            FieldError {
                field: "nickname".into(),
                problem: FieldProblem::NotExpected
            },
        ]
    );
    let message = validate_submission(&form, &submission)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("\"email\" is not an e-mail address"),
        "{message}"
    );
}

#[test]
fn f2_blank_text_counts_as_missing() {
    let form = FormDefinition {
        fields: vec![field(
            "name",
            FieldKind::Input {
                input: InputKind::Text,
            },
            true,
        )],
    };
    let errors = validate_submission(&form, &Submission::from([("name".into(), text("   "))]))
        .unwrap_err()
        .errors;
    assert_eq!(
        errors,
        vec![FieldError {
            field: "name".into(),
            problem: FieldProblem::Required
        }]
    );
}

#[test]
fn f1_attachments_check_count_size_and_type() {
    assert_eq!(ATTACHMENT_BYTES_DEFAULT, 10 * 1024 * 1024);
    let form = FormDefinition {
        fields: vec![field("files", attachment(2, ".pdf,image/*"), true)],
    };
    let check = |files: Vec<AttachmentMeta>| {
        validate_submission(
            &form,
            &Submission::from([("files".into(), FieldValue::Files(files))]),
        )
        .map(|_| ())
        .map_err(|e| e.errors[0].problem.clone())
    };
    assert_eq!(
        check(vec![file(
            "a.pdf",
            "application/pdf",
            ATTACHMENT_BYTES_DEFAULT
        )]),
        Ok(())
    );
    assert_eq!(
        check(vec![
            file("a.png", "image/png", 1),
            file("b.jpg", "image/jpeg", 1)
        ]),
        Ok(())
    );
    assert_eq!(
        check(vec![file(
            "a.pdf",
            "application/pdf",
            ATTACHMENT_BYTES_DEFAULT + 1
        )]),
        Err(FieldProblem::FileTooLarge {
            file_name: "a.pdf".into(),
            bytes_max: ATTACHMENT_BYTES_DEFAULT
        })
    );
    assert_eq!(
        check(vec![file("a.exe", "application/x-msdownload", 1)]),
        Err(FieldProblem::FileTypeNotAccepted {
            file_name: "a.exe".into()
        })
    );
    assert_eq!(
        check(vec![file("a.pdf", "application/pdf", 1); 3]),
        Err(FieldProblem::TooManyFiles { max: 2 })
    );
    assert_eq!(check(vec![]), Err(FieldProblem::Required));
}

#[test]
fn f1_definition_rules_and_limits() {
    let many = |n: usize| FormDefinition {
        fields: (0..n)
            .map(|i| field(&format!("f{i}"), FieldKind::Textarea, false))
            .collect(),
    };
    assert_eq!(many(FIELDS_PER_FORM_MAX).validate(), Ok(()));
    assert_eq!(
        many(FIELDS_PER_FORM_MAX + 1).validate(),
        Err(ConfigRejection::TooMany {
            field: "fields".into(),
            max: FIELDS_PER_FORM_MAX
        })
    );
    let with_options = |n: usize| FormDefinition {
        fields: vec![field(
            "pick",
            FieldKind::Radio {
                options: (0..n).map(|i| format!("o{i}")).collect(),
            },
            false,
        )],
    };
    assert_eq!(with_options(OPTIONS_PER_FIELD_MAX).validate(), Ok(()));
    assert_eq!(
        with_options(OPTIONS_PER_FIELD_MAX + 1).validate(),
        Err(ConfigRejection::TooMany {
            field: "pick.options".into(),
            max: OPTIONS_PER_FIELD_MAX
        })
    );
    assert_eq!(
        with_options(0).validate(),
        Err(ConfigRejection::Empty {
            field: "pick.options".into()
        })
    );
    let twice = FormDefinition {
        fields: vec![
            field("a", FieldKind::Textarea, false),
            field("a", FieldKind::Agreement, true),
        ],
    };
    assert_eq!(
        twice.validate(),
        Err(ConfigRejection::Duplicate {
            field: "field name".into(),
            value: "a".into()
        })
    );
    let mut email_from_text = field(
        "mail",
        FieldKind::Input {
            input: InputKind::Text,
        },
        true,
    );
    email_from_text.target = FieldTarget::Contact(ContactField::email());
    assert!(matches!(
        FormDefinition { fields: vec![email_from_text] }.validate(),
        Err(ConfigRejection::Invalid { field, .. }) if field == "mail.target"
    ));
    let mut routed_file = field("cv", attachment(1, ""), false);
    routed_file.target = FieldTarget::Routing("cv".into());
    assert!(matches!(
        FormDefinition { fields: vec![routed_file] }.validate(),
        Err(ConfigRejection::Invalid { field, .. }) if field == "cv.target"
    ));
    let big = |files_max, file_bytes_max| FormDefinition {
        fields: vec![field(
            "cv",
            FieldKind::Attachment {
                files_max,
                file_bytes_max,
                accept: vec![],
            },
            false,
        )],
    };
    assert_eq!(
        big(FILES_PER_FIELD_MAX, ATTACHMENT_BYTES_MAX).validate(),
        Ok(())
    );
    assert!(matches!(
        big(FILES_PER_FIELD_MAX + 1, 1).validate(),
        Err(ConfigRejection::OutOfRange { field, .. }) if field == "cv.files_max"
    ));
    assert!(matches!(
        big(1, ATTACHMENT_BYTES_MAX + 1).validate(),
        Err(ConfigRejection::OutOfRange { field, .. }) if field == "cv.file_bytes_max"
    ));
    assert!(matches!(
        FormDefinition {
            fields: vec![field("Bad Name", FieldKind::Textarea, false)]
        }
        .validate(),
        Err(ConfigRejection::InvalidKey { .. })
    ));
}

#[test]
fn f1_a_module_refuses_an_invalid_form_and_stores_a_valid_one() {
    let module = ModuleId::from_u128(1);
    let created = stamp(ModuleEvent::Created {
        id: module,
        reference: "m".into(),
        settings: ModuleSettings::named("m"),
        public_path: public_path(module),
        duplicated_from: None,
    });
    let set = |form: FormDefinition| {
        AdminCommand::new(
            ADMIN,
            ModuleCommand::SetForm {
                kind: FormKind::Offline,
                form: Some(form),
            },
        )
    };
    let bad = FormDefinition {
        fields: vec![field("pick", FieldKind::Select { options: vec![] }, true)],
    };
    given::<ModuleDecider>(std::slice::from_ref(&created))
        .when(&set(bad), now())
        .then_rejected(ConfigRejection::Empty {
            field: "pick.options".into(),
        });
    let state = given::<ModuleDecider>(&[created])
        .when(&set(contact_form()), now())
        .then_events(&[stamp(ModuleEvent::FormSet {
            kind: FormKind::Offline,
            form: Some(contact_form()),
        })]);
    assert_eq!(
        state.module.unwrap().forms[&FormKind::Offline],
        contact_form()
    );
}

// ---- property: valid passes, each single-field corruption names exactly that field ----

fn arb_options() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z]{1,6}", 1..5).prop_map(|s| s.into_iter().collect())
}

fn arb_kind() -> impl Strategy<Value = FieldKind> {
    prop_oneof![
        Just(FieldKind::Label),
        arb_options().prop_map(|options| FieldKind::Select { options }),
        Just(FieldKind::Input {
            input: InputKind::Text
        }),
        Just(FieldKind::Input {
            input: InputKind::Number
        }),
        Just(FieldKind::Input {
            input: InputKind::Email
        }),
        Just(FieldKind::Textarea),
        arb_options().prop_map(|options| FieldKind::Radio { options }),
        arb_options().prop_map(|options| FieldKind::Checkboxes { options }),
        Just(FieldKind::Agreement),
        (
            1..4usize,
            prop::sample::select(vec!["", ".pdf", ".pdf,image/*"])
        )
            .prop_map(|(files_max, accept)| FieldKind::Attachment {
                files_max,
                file_bytes_max: 1000,
                accept: FileType::parse_accept(accept).unwrap(),
            }),
    ]
}

fn arb_form() -> impl Strategy<Value = FormDefinition> {
    prop::collection::vec((arb_kind(), any::<bool>()), 1..10).prop_map(|fields| FormDefinition {
        fields: fields
            .into_iter()
            .enumerate()
            .map(|(i, (kind, required))| {
                let required = required && kind != FieldKind::Label;
                field(&format!("f{i}"), kind, required)
            })
            .collect(),
    })
}

/// A valid value for `field` derived from `seed`, or `None` to leave an optional field out.
fn valid_value(field: &FieldDef, seed: u64) -> Option<FieldValue> {
    if field.kind == FieldKind::Label || (!field.required && seed.is_multiple_of(3)) {
        return None;
    }
    let pick = |options: &[String]| options[(seed as usize) % options.len()].clone();
    Some(match &field.kind {
        FieldKind::Label => return None,
        FieldKind::Select { options } | FieldKind::Radio { options } => {
            FieldValue::Text(pick(options))
        }
        FieldKind::Input {
            input: InputKind::Text,
        }
        | FieldKind::Textarea => FieldValue::Text(format!("text {seed}")),
        FieldKind::Input {
            input: InputKind::Number,
        } => FieldValue::Text(format!("{}.5", seed as i64 - 1000)),
        FieldKind::Input {
            input: InputKind::Email,
        } => FieldValue::Text(format!("v{seed}@example.org")),
        FieldKind::Checkboxes { options } => FieldValue::Many(
            options
                .iter()
                .enumerate()
                .filter(|(i, _)| *i == 0 || (seed >> i) & 1 == 1)
                .map(|(_, o)| o.clone())
                .collect(),
        ),
        FieldKind::Agreement => FieldValue::Agreed(field.required || seed.is_multiple_of(2)),
        FieldKind::Attachment {
            files_max,
            file_bytes_max,
            ..
        } => FieldValue::Files(
            (0..1 + (seed as usize) % files_max)
                .map(|i| {
                    file(
                        &format!("doc{i}.pdf"),
                        "application/pdf",
                        file_bytes_max - i as u64,
                    )
                })
                .collect(),
        ),
    })
}

/// Every way this test knows to break `field`'s value: `Some(value)` replaces it, `None` drops it.
fn corruptions(field: &FieldDef) -> Vec<Option<FieldValue>> {
    let mut out = Vec::new();
    if field.required {
        out.push(None);
    }
    match &field.kind {
        FieldKind::Label => out.push(Some(text("a value for a label"))),
        FieldKind::Select { .. } | FieldKind::Radio { .. } => {
            out.push(Some(text("NOT-AN-OPTION")));
            out.push(Some(FieldValue::Agreed(true)));
        }
        FieldKind::Input { input } => {
            out.push(Some(FieldValue::Many(vec!["x".into()])));
            out.push(Some(FieldValue::Text("x".repeat(FIELD_TEXT_BYTES_MAX + 1))));
            match input {
                InputKind::Text => {}
                InputKind::Number => out.push(Some(text("twelve"))),
                InputKind::Email => out.push(Some(text("not an e-mail"))),
            }
        }
        FieldKind::Textarea => {
            out.push(Some(FieldValue::Text("x".repeat(FIELD_TEXT_BYTES_MAX + 1))));
            out.push(Some(FieldValue::Files(vec![file(
                "a.pdf",
                "application/pdf",
                1,
            )])));
        }
        FieldKind::Checkboxes { options } => {
            out.push(Some(FieldValue::Many(vec!["NOT-AN-OPTION".into()])));
            out.push(Some(FieldValue::Many(vec![
                options[0].clone(),
                options[0].clone(),
            ])));
            out.push(Some(text("a")));
        }
        FieldKind::Agreement => {
            out.push(Some(text("yes")));
            if field.required {
                out.push(Some(FieldValue::Agreed(false)));
            }
        }
        FieldKind::Attachment {
            files_max,
            file_bytes_max,
            accept,
        } => {
            out.push(Some(FieldValue::Files(vec![
                file(
                    "a.pdf",
                    "application/pdf",
                    1
                );
                files_max + 1
            ])));
            out.push(Some(FieldValue::Files(vec![file(
                "a.pdf",
                "application/pdf",
                file_bytes_max + 1,
            )])));
            if !accept.is_empty() {
                out.push(Some(FieldValue::Files(vec![file(
                    "a.zip",
                    "application/zip",
                    1,
                )])));
            }
            out.push(Some(text("a.pdf")));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn f2_valid_submissions_pass_and_each_single_field_corruption_names_only_that_field(
        form in arb_form(),
        seeds in prop::collection::vec(any::<u64>(), 10),
        target in any::<prop::sample::Index>(),
        how in any::<prop::sample::Index>(),
    ) {
        prop_assert_eq!(form.validate(), Ok(()));
        let mut submission = Submission::new();
        for (field, seed) in form.fields.iter().zip(&seeds) {
            if let Some(value) = valid_value(field, *seed) {
                submission.insert(field.name.clone(), value);
            }
        }
        let valid = validate_submission(&form, &submission);
        prop_assert!(valid.is_ok(), "valid submission refused: {:?}", valid);
        let valid = valid.unwrap();
        for name in submission.keys() {
            prop_assert!(valid.values.contains_key(name), "{} lost", name);
        }

        let field = target.get(&form.fields);
        let options = corruptions(field);
        if options.is_empty() {
            return Ok(());
        }
        let mut corrupted = submission.clone();
        match how.get(&options) {
            Some(value) => corrupted.insert(field.name.clone(), value.clone()),
            None => corrupted.remove(&field.name),
        };
        let errors = validate_submission(&form, &corrupted);
        prop_assert!(errors.is_err(), "corruption of {} passed: {:?}", field.name, corrupted.get(&field.name));
        let errors = errors.unwrap_err().errors;
        prop_assert_eq!(errors.len(), 1, "{:?}", errors);
        prop_assert_eq!(&errors[0].field, &field.name);
    }
}
