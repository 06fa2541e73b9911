//! Pre-chat and offline forms (F1–F3): definitions, and the field-by-field validation of a
//! visitor's submission.
//!
//! Validation is a pure function from (definition, submission) to either a [`ValidatedForm`] —
//! the values, the contact fields and the routing variables, ready for a chat's start command —
//! or every field's problem at once, each naming its field (F2). Nothing is kept from an invalid
//! submission because nothing is produced: the host has no events to append.

use super::common::{ConfigRejection, check_count, check_key, check_text, is_valid_email};
use super::contact::ContactField;
use crate::{AttachmentMeta, FIELD_TEXT_BYTES_MAX, FieldValue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most fields on one form.
pub const FIELDS_PER_FORM_MAX: usize = 30;
/// Most options of one select, radio or checkboxes field.
pub const OPTIONS_PER_FIELD_MAX: usize = 50;
/// Longest option, in characters.
pub const OPTION_CHARS_MAX: usize = 200;
/// Longest label (or static text), in characters.
pub const LABEL_CHARS_MAX: usize = 1000;
/// Default largest file of an attachment field (F1: 10 MB).
pub const ATTACHMENT_BYTES_DEFAULT: u64 = 10 * 1024 * 1024;
/// Largest file any attachment field may allow.
pub const ATTACHMENT_BYTES_MAX: u64 = 50 * 1024 * 1024;
/// Most files one attachment field may allow.
pub const FILES_PER_FIELD_MAX: usize = 10;
/// Most file type specifiers in one `accept` list.
pub const ACCEPT_SPECIFIERS_MAX: usize = 20;

/// Which of a module's two forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FormKind {
    /// Asked before a chat starts.
    PreChat,
    /// Asked when the module is offline (the visitor leaves a message).
    Offline,
}

/// The three kinds of single-line input (F1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    /// Any text.
    Text,
    /// A decimal number (`42`, `-3.5`, `1e3`).
    Number,
    /// An e-mail address.
    Email,
}

/// One HTML "unique file type specifier" of an `accept` list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FileType {
    /// `.pdf`: the file name ends with this extension (case-insensitive; stored lowercase).
    Extension(String),
    /// `image/*`: any subtype of this type (stored lowercase, without `/*`).
    AnySubtype(String),
    /// `application/pdf`: exactly this MIME type (stored lowercase).
    Mime(String),
}

impl FileType {
    /// Parses an `accept` list such as `.pdf,image/*` (whitespace around entries is ignored).
    pub fn parse_accept(accept: &str) -> Result<Vec<FileType>, ConfigRejection> {
        let entries: Vec<&str> = accept
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        check_count("accept", entries.len(), ACCEPT_SPECIFIERS_MAX)?;
        entries.into_iter().map(Self::parse).collect()
    }

    fn parse(entry: &str) -> Result<FileType, ConfigRejection> {
        let invalid = || ConfigRejection::Invalid {
            field: "accept".to_owned(),
            value: entry.to_owned(),
            reason: "expected .ext, type/* or type/subtype",
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= ACCEPT_TOKEN_BYTES_MAX
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
        };
        let lower = entry.to_ascii_lowercase();
        if let Some(ext) = lower.strip_prefix('.') {
            return if token(ext) {
                Ok(Self::Extension(format!(".{ext}")))
            } else {
                Err(invalid())
            };
        }
        let (kind, subtype) = lower.split_once('/').ok_or_else(invalid)?;
        if !token(kind) {
            return Err(invalid());
        }
        if subtype == "*" {
            Ok(Self::AnySubtype(kind.to_owned()))
        } else if token(subtype) {
            Ok(Self::Mime(lower))
        } else {
            Err(invalid())
        }
    }

    /// Whether a file with this name and content type is accepted by this specifier.
    pub fn accepts(&self, file: &AttachmentMeta) -> bool {
        let content_type = file
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match self {
            Self::Extension(ext) => file.file_name.to_ascii_lowercase().ends_with(ext.as_str()),
            Self::AnySubtype(kind) => content_type.split_once('/').is_some_and(|(k, _)| k == kind),
            Self::Mime(mime) => content_type == *mime,
        }
    }
}

/// Longest type or extension token in an `accept` entry, in bytes.
const ACCEPT_TOKEN_BYTES_MAX: usize = 127;

/// What kind of field, with its kind-specific settings (F1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// Static text shown to the visitor (its label); takes no value.
    Label,
    /// A drop-down: one of `options`.
    Select {
        /// The choices, in display order.
        options: Vec<String>,
    },
    /// A single-line input.
    Input {
        /// Text, number or e-mail.
        input: InputKind,
    },
    /// Multi-line text.
    Textarea,
    /// Radio buttons: one of `options`.
    Radio {
        /// The choices, in display order.
        options: Vec<String>,
    },
    /// Checkboxes: any of `options`.
    Checkboxes {
        /// The choices, in display order.
        options: Vec<String>,
    },
    /// One checkbox that must be ticked when the field is required (terms, consent).
    Agreement,
    /// One or more files.
    Attachment {
        /// Most files.
        files_max: usize,
        /// Largest file, in bytes.
        file_bytes_max: u64,
        /// Accepted types; empty accepts every type.
        accept: Vec<FileType>,
    },
}

impl FieldKind {
    fn options(&self) -> Option<&[String]> {
        match self {
            Self::Select { options } | Self::Radio { options } | Self::Checkboxes { options } => {
                Some(options)
            }
            _ => None,
        }
    }

    /// Whether the validated value is one text (so it can feed a contact field).
    fn is_single_text(&self) -> bool {
        matches!(
            self,
            Self::Select { .. } | Self::Input { .. } | Self::Textarea | Self::Radio { .. }
        )
    }
}

/// Where a field's value goes besides the chat's form data (F3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldTarget {
    /// Only into the chat's form data.
    Nowhere,
    /// Into this contact field (used to match and update the contact, F4).
    Contact(ContactField),
    /// Into this routing variable (read by smart routing, R5).
    Routing(String),
}

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    /// The key the submission uses (lowercase letters, digits, `_`).
    pub name: String,
    /// What the visitor reads (for [`FieldKind::Label`], the whole text).
    pub label: String,
    /// The kind and its settings.
    pub kind: FieldKind,
    /// Whether a value must be given (for an agreement: must be ticked).
    pub required: bool,
    /// Where the value goes (F3).
    pub target: FieldTarget,
}

/// A pre-chat or offline form: fields in display order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormDefinition {
    /// The fields.
    pub fields: Vec<FieldDef>,
}

impl FormDefinition {
    /// Checks the definition against every rule and limit; the refusal names the field.
    pub fn validate(&self) -> Result<(), ConfigRejection> {
        check_count("fields", self.fields.len(), FIELDS_PER_FORM_MAX)?;
        let mut names = BTreeSet::new();
        let mut contact_fields = BTreeSet::new();
        let mut variables = BTreeSet::new();
        for field in &self.fields {
            check_key("field name", &field.name)?;
            let at = |what: &str| format!("{}.{what}", field.name);
            if !names.insert(field.name.as_str()) {
                return Err(ConfigRejection::Duplicate {
                    field: "field name".to_owned(),
                    value: field.name.clone(),
                });
            }
            check_text(&at("label"), &field.label, LABEL_CHARS_MAX)?;
            if let Some(options) = field.kind.options() {
                check_count(&at("options"), options.len(), OPTIONS_PER_FIELD_MAX)?;
                if options.is_empty() {
                    return Err(ConfigRejection::Empty {
                        field: at("options"),
                    });
                }
                let mut seen = BTreeSet::new();
                for option in options {
                    check_text(&at("options"), option, OPTION_CHARS_MAX)?;
                    if option.trim().is_empty() {
                        return Err(ConfigRejection::Empty {
                            field: at("options"),
                        });
                    }
                    if !seen.insert(option) {
                        return Err(ConfigRejection::Duplicate {
                            field: at("options"),
                            value: option.clone(),
                        });
                    }
                }
            }
            if let FieldKind::Attachment {
                files_max,
                file_bytes_max,
                accept,
            } = &field.kind
            {
                if !(1..=FILES_PER_FIELD_MAX).contains(files_max) {
                    return Err(out_of_range(
                        at("files_max"),
                        1,
                        FILES_PER_FIELD_MAX as u64,
                        *files_max as u64,
                    ));
                }
                if !(1..=ATTACHMENT_BYTES_MAX).contains(file_bytes_max) {
                    return Err(out_of_range(
                        at("file_bytes_max"),
                        1,
                        ATTACHMENT_BYTES_MAX,
                        *file_bytes_max,
                    ));
                }
                check_count(&at("accept"), accept.len(), ACCEPT_SPECIFIERS_MAX)?;
            }
            let bad_target = |reason| ConfigRejection::Invalid {
                field: at("target"),
                value: format!("{:?}", field.target),
                reason,
            };
            match &field.target {
                FieldTarget::Nowhere => {}
                FieldTarget::Contact(contact) => {
                    if !field.kind.is_single_text() {
                        return Err(bad_target("only a one-text field can feed a contact field"));
                    }
                    if contact.is_email()
                        && field.kind
                            != (FieldKind::Input {
                                input: InputKind::Email,
                            })
                    {
                        return Err(bad_target("the e-mail contact field needs an e-mail input"));
                    }
                    if !contact_fields.insert(contact) {
                        return Err(ConfigRejection::Duplicate {
                            field: "contact field".to_owned(),
                            value: contact.as_str().to_owned(),
                        });
                    }
                }
                FieldTarget::Routing(variable) => {
                    check_key("routing variable", variable)?;
                    if matches!(field.kind, FieldKind::Label | FieldKind::Attachment { .. }) {
                        return Err(bad_target("labels and attachments carry no routing value"));
                    }
                    if !variables.insert(variable) {
                        return Err(ConfigRejection::Duplicate {
                            field: "routing variable".to_owned(),
                            value: variable.clone(),
                        });
                    }
                }
            }
            if field.kind == FieldKind::Label && field.target != FieldTarget::Nowhere {
                return Err(bad_target("a label takes no value"));
            }
        }
        Ok(())
    }
}

fn out_of_range(field: String, min: u64, max: u64, value: u64) -> ConfigRejection {
    ConfigRejection::OutOfRange {
        field,
        min,
        max,
        value,
    }
}

/// What a visitor sends: field name → raw value, in the shapes of [`FieldValue`].
pub type Submission = BTreeMap<String, FieldValue>;

/// A submission that passed validation: what goes into a chat's start command (C1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedForm {
    /// Every answered field, by name (checkboxes in the form's option order).
    pub values: BTreeMap<String, FieldValue>,
    /// Values of fields mapped to contact fields (F3, F4).
    pub contact: BTreeMap<ContactField, String>,
    /// Values of fields mapped to routing variables (F3, R5); checkboxes join with `,`,
    /// agreements read `true`/`false`.
    pub routing: BTreeMap<String, String>,
}

/// What is wrong with one submitted field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldProblem {
    /// Required and missing (for an agreement: not ticked).
    #[error("is required")]
    Required,
    /// The value has the wrong shape for the field (e.g. a list for a text input).
    #[error("expects {expected}")]
    WrongKind {
        /// The shape the field takes.
        expected: &'static str,
    },
    /// The text is longer than the limit.
    #[error("is longer than {bytes_max} bytes")]
    TooLong {
        /// The limit.
        bytes_max: usize,
    },
    /// The value is not one of the field's options.
    #[error("{value:?} is not one of the options")]
    NotAnOption {
        /// The value given.
        value: String,
    },
    /// The same option was ticked twice.
    #[error("{value:?} is ticked twice")]
    DuplicateChoice {
        /// The option.
        value: String,
    },
    /// Not a number.
    #[error("is not a number")]
    NotANumber,
    /// Not an e-mail address.
    #[error("is not an e-mail address")]
    NotAnEmail,
    /// More files than allowed.
    #[error("has more than {max} files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// A file is larger than allowed.
    #[error("file {file_name:?} is larger than {bytes_max} bytes")]
    FileTooLarge {
        /// The file.
        file_name: String,
        /// The limit.
        bytes_max: u64,
    },
    /// A file's type is not in the accept list.
    #[error("file {file_name:?} is not an accepted type")]
    FileTypeNotAccepted {
        /// The file.
        file_name: String,
    },
    /// A value for a field that takes none (a label) or that the form does not have.
    #[error("is not a field of this form")]
    NotExpected,
}

/// One field's problem, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?} {problem}")]
pub struct FieldError {
    /// The field's name.
    pub field: String,
    /// What is wrong.
    pub problem: FieldProblem,
}

/// Every problem of a refused submission, in form order, then unknown fields by name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the form has {} invalid field(s): {}", errors.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct FormErrors {
    /// The problems; never empty.
    pub errors: Vec<FieldError>,
}

/// Validates a submission field by field (F2) and maps it to contact fields and routing
/// variables (F3). Empty text, an empty list and an absent key all count as "not answered".
pub fn validate_submission(
    form: &FormDefinition,
    submission: &Submission,
) -> Result<ValidatedForm, FormErrors> {
    let mut out = ValidatedForm::default();
    let mut errors = Vec::new();
    for field in &form.fields {
        match validate_field(field, submission.get(&field.name)) {
            Ok(None) => {}
            Ok(Some(value)) => {
                match (&field.target, &value) {
                    (FieldTarget::Contact(contact), FieldValue::Text(text)) => {
                        out.contact.insert(contact.clone(), text.clone());
                    }
                    (FieldTarget::Routing(variable), value) => {
                        if let Some(text) = routing_text(value) {
                            out.routing.insert(variable.clone(), text);
                        }
                    }
                    _ => {}
                }
                out.values.insert(field.name.clone(), value);
            }
            Err(problem) => errors.push(FieldError {
                field: field.name.clone(),
                problem,
            }),
        }
    }
    let known: BTreeSet<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    errors.extend(
        submission
            .keys()
            .filter(|name| !known.contains(name.as_str()))
            .map(|name| FieldError {
                field: name.clone(),
                problem: FieldProblem::NotExpected,
            }),
    );
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(FormErrors { errors })
    }
}

fn routing_text(value: &FieldValue) -> Option<String> {
    match value {
        FieldValue::Text(text) => Some(text.clone()),
        FieldValue::Many(items) => Some(items.join(",")),
        FieldValue::Agreed(agreed) => Some(agreed.to_string()),
        FieldValue::Files(_) => None,
    }
}

fn is_unanswered(value: &FieldValue) -> bool {
    match value {
        FieldValue::Text(text) => text.trim().is_empty(),
        FieldValue::Many(items) => items.is_empty(),
        FieldValue::Files(files) => files.is_empty(),
        FieldValue::Agreed(_) => false,
    }
}

/// `Ok(None)`: not answered and not required.
fn validate_field(
    field: &FieldDef,
    value: Option<&FieldValue>,
) -> Result<Option<FieldValue>, FieldProblem> {
    if field.kind == FieldKind::Label {
        return match value {
            None => Ok(None),
            Some(_) => Err(FieldProblem::NotExpected),
        };
    }
    let value = match value {
        Some(value) if !is_unanswered(value) => value,
        _ if field.required => return Err(FieldProblem::Required),
        // An unanswered field is still checked for shape so a wrong shape is never silent.
        Some(value) => {
            check_shape(&field.kind, value)?;
            return Ok(None);
        }
        None => return Ok(None),
    };
    check_shape(&field.kind, value)?;
    match (&field.kind, value) {
        (FieldKind::Select { options } | FieldKind::Radio { options }, FieldValue::Text(text)) => {
            if !options.contains(text) {
                return Err(FieldProblem::NotAnOption {
                    value: text.clone(),
                });
            }
            Ok(Some(value.clone()))
        }
        (FieldKind::Input { input }, FieldValue::Text(text)) => {
            check_text_bytes(text)?;
            match input {
                InputKind::Text => {}
                InputKind::Number => {
                    if !text.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                        return Err(FieldProblem::NotANumber);
                    }
                }
                InputKind::Email => {
                    if !is_valid_email(text) {
                        return Err(FieldProblem::NotAnEmail);
                    }
                }
            }
            Ok(Some(value.clone()))
        }
        (FieldKind::Textarea, FieldValue::Text(text)) => {
            check_text_bytes(text)?;
            Ok(Some(value.clone()))
        }
        (FieldKind::Checkboxes { options }, FieldValue::Many(ticked)) => {
            let mut seen = BTreeSet::new();
            for choice in ticked {
                if !options.contains(choice) {
                    return Err(FieldProblem::NotAnOption {
                        value: choice.clone(),
                    });
                }
                if !seen.insert(choice) {
                    return Err(FieldProblem::DuplicateChoice {
                        value: choice.clone(),
                    });
                }
            }
            let ordered = options
                .iter()
                .filter(|o| seen.contains(o))
                .cloned()
                .collect();
            Ok(Some(FieldValue::Many(ordered)))
        }
        (FieldKind::Agreement, FieldValue::Agreed(agreed)) => {
            if field.required && !agreed {
                return Err(FieldProblem::Required);
            }
            Ok(Some(value.clone()))
        }
        (
            FieldKind::Attachment {
                files_max,
                file_bytes_max,
                accept,
            },
            FieldValue::Files(files),
        ) => {
            if files.len() > *files_max {
                return Err(FieldProblem::TooManyFiles { max: *files_max });
            }
            for file in files {
                if file.size_bytes > *file_bytes_max {
                    return Err(FieldProblem::FileTooLarge {
                        file_name: file.file_name.clone(),
                        bytes_max: *file_bytes_max,
                    });
                }
                if !accept.is_empty() && !accept.iter().any(|a| a.accepts(file)) {
                    return Err(FieldProblem::FileTypeNotAccepted {
                        file_name: file.file_name.clone(),
                    });
                }
            }
            Ok(Some(value.clone()))
        }
        // check_shape has ruled out every other pairing.
        _ => Err(FieldProblem::WrongKind {
            expected: expected_shape(&field.kind),
        }),
    }
}

fn check_text_bytes(text: &str) -> Result<(), FieldProblem> {
    if text.len() > FIELD_TEXT_BYTES_MAX {
        return Err(FieldProblem::TooLong {
            bytes_max: FIELD_TEXT_BYTES_MAX,
        });
    }
    Ok(())
}

fn expected_shape(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Label => "no value",
        FieldKind::Select { .. }
        | FieldKind::Input { .. }
        | FieldKind::Textarea
        | FieldKind::Radio { .. } => "one text",
        FieldKind::Checkboxes { .. } => "a list of options",
        FieldKind::Agreement => "ticked or not",
        FieldKind::Attachment { .. } => "files",
    }
}

fn check_shape(kind: &FieldKind, value: &FieldValue) -> Result<(), FieldProblem> {
    let ok = match value {
        FieldValue::Text(_) => kind.is_single_text(),
        FieldValue::Many(_) => matches!(kind, FieldKind::Checkboxes { .. }),
        FieldValue::Agreed(_) => *kind == FieldKind::Agreement,
        FieldValue::Files(_) => matches!(kind, FieldKind::Attachment { .. }),
    };
    if ok {
        Ok(())
    } else {
        Err(FieldProblem::WrongKind {
            expected: expected_shape(kind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content_type: &str) -> AttachmentMeta {
        AttachmentMeta {
            file_name: name.to_owned(),
            content_type: content_type.to_owned(),
            size_bytes: 1,
            storage_key: "k".to_owned(),
        }
    }

    #[test]
    fn f1_accept_lists_match_extensions_wildcards_and_exact_types() {
        let accept = FileType::parse_accept(".pdf, image/*,text/plain").unwrap();
        let ok = |f: &AttachmentMeta| accept.iter().any(|a| a.accepts(f));
        assert!(ok(&file("Report.PDF", "application/octet-stream")));
        assert!(ok(&file("cat", "image/png")));
        assert!(ok(&file("a.txt", "text/plain; charset=utf-8")));
        assert!(!ok(&file("a.html", "text/html")));
        assert!(!ok(&file("pdf", "application/zip")));
        for bad in ["pdf", "image/", "/png", ".", "image/png/x", ". pdf"] {
            assert!(FileType::parse_accept(bad).is_err(), "{bad}");
        }
        let too_many = vec![".a"; ACCEPT_SPECIFIERS_MAX + 1].join(",");
        assert!(FileType::parse_accept(&too_many).is_err());
        let at_limit = vec![".a"; ACCEPT_SPECIFIERS_MAX].join(",");
        assert!(FileType::parse_accept(&at_limit).is_ok());
        let token = |n| format!(".{}", "x".repeat(n));
        assert!(FileType::parse_accept(&token(ACCEPT_TOKEN_BYTES_MAX)).is_ok());
        assert!(FileType::parse_accept(&token(ACCEPT_TOKEN_BYTES_MAX + 1)).is_err());
    }
}
