//! Contacts (F4, F5): the visitor behind chats, matched by e-mail or a configured field, and
//! blockable by an agent.
//!
//! A contact is its own aggregate (`contact-<uuid>`) so that blocking is a recorded fact with an
//! author, and so that a later chat can be refused for a blocked contact by reading one stream.
//! Matching is a projection ([`ContactDirectory`]) because it looks across contacts; the host
//! resolves, then appends to the chosen contact's stream.

use super::common::{ConfigRejection, check_absent, check_count, check_key, is_valid_email, live};
use crate::{AgentId, ContactId, EventKind, FIELD_TEXT_BYTES_MAX};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most fields one contact holds.
pub const CONTACT_FIELDS_MAX: usize = 50;

/// The name of a contact field: `email`, `firstname`, `lastname`, `phone`, `company` or any
/// other key (lowercase letters, digits, `_`, at most [`KEY_CHARS_MAX`](super::KEY_CHARS_MAX) characters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContactField(String);

impl ContactField {
    /// The e-mail address: the default matching field (F4).
    pub fn email() -> Self {
        Self("email".to_owned())
    }

    /// First name (also fed by the page's `firstname`, M6).
    pub fn firstname() -> Self {
        Self("firstname".to_owned())
    }

    /// Last name (also fed by the page's `lastname`, M6).
    pub fn lastname() -> Self {
        Self("lastname".to_owned())
    }

    /// A checked field name.
    pub fn new(name: &str) -> Result<Self, ConfigRejection> {
        check_key("contact field", name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the e-mail field (whose values must be e-mail addresses).
    pub fn is_email(&self) -> bool {
        self.0 == "email"
    }
}

impl TryFrom<String> for ContactField {
    type Error = ConfigRejection;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<ContactField> for String {
    fn from(field: ContactField) -> Self {
        field.0
    }
}

/// A contact's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    /// Set by the first event; `None` for an empty stream.
    pub id: Option<ContactId>,
    /// Everything known about the contact.
    pub fields: BTreeMap<ContactField, String>,
    /// Who blocked the contact, if blocked (F5).
    pub blocked_by: Option<AgentId>,
    /// Who erased the contact's data, if erased (X4): its fields are gone, and the host has
    /// destroyed the keys of everything it wrote.
    pub erased_by: Option<AgentId>,
}

impl Contact {
    /// Whether the contact may start or resume a chat (F5): the lifecycle asks this.
    pub fn may_chat(&self) -> bool {
        self.blocked_by.is_none()
    }
}

/// What can be asked of a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactCommand {
    /// Create the contact from validated form data (F4: nobody matched).
    Create {
        /// Minted by the host.
        id: ContactId,
        /// The contact fields of the validated form.
        fields: BTreeMap<ContactField, String>,
    },
    /// Merge newer values into a matched contact (a known e-mail is reused, F4).
    Update {
        /// Fields to set; fields not named keep their value.
        fields: BTreeMap<ContactField, String>,
    },
    /// An agent blocks the contact (F5).
    Block {
        /// The agent.
        by: AgentId,
    },
    /// An agent lifts the block.
    Unblock {
        /// The agent.
        by: AgentId,
    },
    /// An authorised user erases everything the contact wrote (X4). Recorded once; the host
    /// destroys the keys of the contact's content when it is recorded.
    Erase {
        /// The user.
        by: AgentId,
    },
}

/// What happened to a contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactEvent {
    /// The contact exists.
    Created {
        /// Its id.
        id: ContactId,
        /// Its first fields.
        fields: BTreeMap<ContactField, String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Some fields changed (only the changed ones are listed).
    Updated {
        /// New values.
        fields: BTreeMap<ContactField, String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Blocked by an agent.
    Blocked {
        /// The agent.
        by: AgentId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Unblocked by an agent.
    Unblocked {
        /// The agent.
        by: AgentId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Everything the contact wrote was erased (X4): who and when stay in the log.
    Erased {
        /// The user.
        by: AgentId,
        /// When.
        at: DateTime<Utc>,
    },
}

impl EventKind for ContactEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "ContactCreated",
            Self::Updated { .. } => "ContactUpdated",
            Self::Blocked { .. } => "ContactBlockRecorded",
            Self::Unblocked { .. } => "ContactBlockLifted",
            Self::Erased { .. } => "ContactErased",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

fn check_fields(fields: &BTreeMap<ContactField, String>) -> Result<(), ConfigRejection> {
    check_count("contact fields", fields.len(), CONTACT_FIELDS_MAX)?;
    for (field, value) in fields {
        if value.len() > FIELD_TEXT_BYTES_MAX {
            return Err(ConfigRejection::TooManyBytes {
                field: field.as_str().to_owned(),
                bytes_max: FIELD_TEXT_BYTES_MAX,
            });
        }
        if field.is_email() && !is_valid_email(value) {
            return Err(ConfigRejection::Invalid {
                field: field.as_str().to_owned(),
                value: value.clone(),
                reason: "not an e-mail address",
            });
        }
    }
    Ok(())
}

impl crate::Decider for Contact {
    type State = Contact;
    type Command = ContactCommand;
    type Event = ContactEvent;
    type Rejection = ConfigRejection;

    fn decide(
        state: &Self::State,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Rejection> {
        const OBJECT: &str = "contact";
        // A contact has no deletion, so once created it stays live.
        let existing = || live(OBJECT, state.id.as_ref(), false);
        Ok(match command {
            ContactCommand::Create { id, fields } => {
                check_absent(OBJECT, state.id.as_ref())?;
                check_fields(fields)?;
                vec![ContactEvent::Created {
                    id: *id,
                    fields: fields.clone(),
                    at: now,
                }]
            }
            ContactCommand::Update { fields } => {
                existing()?;
                let changed: BTreeMap<_, _> = fields
                    .iter()
                    .filter(|(k, v)| state.fields.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                check_fields(&changed)?;
                let new_keys = changed
                    .keys()
                    .filter(|k| !state.fields.contains_key(*k))
                    .count();
                check_count(
                    "contact fields",
                    state.fields.len() + new_keys,
                    CONTACT_FIELDS_MAX,
                )?;
                if changed.is_empty() {
                    vec![]
                } else {
                    vec![ContactEvent::Updated {
                        fields: changed,
                        at: now,
                    }]
                }
            }
            ContactCommand::Block { by } => {
                existing()?;
                if state.blocked_by.is_some() {
                    vec![]
                } else {
                    vec![ContactEvent::Blocked { by: *by, at: now }]
                }
            }
            ContactCommand::Unblock { by } => {
                existing()?;
                if state.blocked_by.is_none() {
                    vec![]
                } else {
                    vec![ContactEvent::Unblocked { by: *by, at: now }]
                }
            }
            ContactCommand::Erase { by } => {
                existing()?;
                if state.erased_by.is_some() {
                    vec![]
                } else {
                    vec![ContactEvent::Erased { by: *by, at: now }]
                }
            }
        })
    }

    fn evolve(state: &mut Self::State, event: &Self::Event) {
        match event {
            ContactEvent::Created { id, fields, .. } => {
                state.id = Some(*id);
                state.fields = fields.clone();
            }
            ContactEvent::Updated { fields, .. } => {
                state
                    .fields
                    .extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            ContactEvent::Blocked { by, .. } => state.blocked_by = Some(*by),
            ContactEvent::Unblocked { .. } => state.blocked_by = None,
            ContactEvent::Erased { by, .. } => {
                state.fields.clear();
                state.erased_by = Some(*by);
            }
        }
    }
}

/// Who a submission belongs to (F4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactMatch {
    /// An existing contact: update it, do not create another.
    Existing(ContactId),
    /// Nobody matches: create a contact.
    New,
}

/// The lookup side of contacts: (field, normalised value) → contact, folded from contact events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactDirectory {
    index: BTreeMap<(ContactField, String), ContactId>,
}

impl ContactDirectory {
    /// Folds one event of `contact`'s stream into the index.
    pub fn record(&mut self, contact: ContactId, event: &ContactEvent) {
        let fields = match event {
            ContactEvent::Created { fields, .. } | ContactEvent::Updated { fields, .. } => fields,
            ContactEvent::Blocked { .. }
            | ContactEvent::Unblocked { .. }
            | ContactEvent::Erased { .. } => return,
        };
        for (field, value) in fields {
            // A changed value leaves the old one pointing at the contact too: an address someone
            // used once still finds them.
            self.index
                .entry((field.clone(), normalise(value)))
                .or_insert(contact);
        }
    }

    /// Matches a submission's contact fields: first by the configured field, then by e-mail, so
    /// a known e-mail is reused even when the account matches on another field (F4). Values are
    /// compared trimmed and case-insensitively.
    pub fn resolve(
        &self,
        match_field: &ContactField,
        fields: &BTreeMap<ContactField, String>,
    ) -> ContactMatch {
        let email = ContactField::email();
        [match_field, &email]
            .into_iter()
            .filter_map(|field| {
                let value = fields.get(field)?;
                self.index.get(&(field.clone(), normalise(value))).copied()
            })
            .next()
            .map_or(ContactMatch::New, ContactMatch::Existing)
    }
}

fn normalise(value: &str) -> String {
    value.trim().to_lowercase()
}
