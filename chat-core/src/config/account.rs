//! Account settings: the defaults every module falls back to (time zone, language), the
//! authorised domains (M5), the unattended-chat timeout (C5) and the contact matching field (F4).
//!
//! One aggregate in one stream ([`ACCOUNT_SETTINGS_STREAM`]): the engine serves one account, and
//! a single stream keeps every change to security-relevant settings in one ordered history.

use super::common::{
    ConfigRejection, check_count, check_language, parse_time_zone, stamped_decider,
};
use super::contact::ContactField;
use super::snippet::DomainPattern;
use crate::EventKind;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The stream holding the account's settings.
pub const ACCOUNT_SETTINGS_STREAM: &str = "account-settings";
/// Most authorised domains.
pub const AUTHORISED_DOMAINS_MAX: usize = 100;
/// Shortest unattended-chat timeout, in seconds.
pub const UNATTENDED_TIMEOUT_S_MIN: u32 = 60;
/// Longest unattended-chat timeout, in seconds: the chat lifecycle's own bound, so an account
/// setting can never hold a value a chat would refuse.
pub use crate::conversation::UNATTENDED_TIMEOUT_S_MAX;
/// The timeout of a new account, in seconds (15 minutes).
pub const UNATTENDED_TIMEOUT_S_DEFAULT: u32 = 15 * 60;

/// The account's settings (the state of [`ACCOUNT_SETTINGS_STREAM`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// Zone of modules set to `Default`.
    pub default_time_zone: Tz,
    /// Language of modules set to `Default`.
    pub default_language: String,
    /// Origins the widget and visitor API accept (M5).
    pub authorised_domains: BTreeSet<DomainPattern>,
    /// A chat unattended this long is closed with disposition timeout (C5).
    pub unattended_timeout_s: u32,
    /// The contact field submissions are matched on (F4).
    pub contact_match_field: ContactField,
}

impl Default for AccountSettings {
    /// UTC, English, no authorised domain (so no origin passes until an admin adds one),
    /// 15 minutes, match on e-mail.
    fn default() -> Self {
        Self {
            default_time_zone: Tz::UTC,
            default_language: "en".to_owned(),
            authorised_domains: BTreeSet::new(),
            unattended_timeout_s: UNATTENDED_TIMEOUT_S_DEFAULT,
            contact_match_field: ContactField::email(),
        }
    }
}

/// What an admin can change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCommand {
    /// Set the default time zone (an IANA name).
    SetDefaultTimeZone {
        /// The name.
        name: String,
    },
    /// Set the default language.
    SetDefaultLanguage {
        /// A tag like `fr`.
        language: String,
    },
    /// Authorise a domain pattern (see [`DomainPattern`]).
    AuthoriseDomain {
        /// The pattern as typed.
        pattern: String,
    },
    /// Revoke a domain pattern.
    RevokeDomain {
        /// The pattern as typed.
        pattern: String,
    },
    /// Set the unattended-chat timeout.
    SetUnattendedTimeout {
        /// Seconds.
        timeout_s: u32,
    },
    /// Set the contact matching field.
    SetContactMatchField {
        /// A contact field name.
        field: String,
    },
}

/// What changed in the account's settings. Stored inside [`Stamped`](super::Stamped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// Default time zone set.
    DefaultTimeZoneSet {
        /// The zone.
        time_zone: Tz,
    },
    /// Default language set.
    DefaultLanguageSet {
        /// The tag.
        language: String,
    },
    /// A domain was authorised.
    DomainAuthorised {
        /// The pattern (normalised).
        pattern: DomainPattern,
    },
    /// A domain was revoked.
    DomainRevoked {
        /// The pattern (normalised).
        pattern: DomainPattern,
    },
    /// Unattended-chat timeout set.
    UnattendedTimeoutSet {
        /// Seconds.
        timeout_s: u32,
    },
    /// Contact matching field set.
    ContactMatchFieldSet {
        /// The field.
        field: ContactField,
    },
}

impl EventKind for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::DefaultTimeZoneSet { .. } => "AccountDefaultTimeZoneSet",
            Self::DefaultLanguageSet { .. } => "AccountDefaultLanguageSet",
            Self::DomainAuthorised { .. } => "AccountDomainAuthorised",
            Self::DomainRevoked { .. } => "AccountDomainRevoked",
            Self::UnattendedTimeoutSet { .. } => "AccountUnattendedTimeoutSet",
            Self::ContactMatchFieldSet { .. } => "AccountContactMatchFieldSet",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

stamped_decider!(AccountSettings {
    state: AccountSettings,
    command: AccountCommand,
    event: AccountEvent,
    decide: decide,
    evolve: evolve,
});

/// Every setting holds one value, so a command records at most one event, and none when it
/// asks for the value already set.
fn decide(
    state: &AccountSettings,
    command: &AccountCommand,
) -> Result<Vec<AccountEvent>, ConfigRejection> {
    let event = match command {
        AccountCommand::SetDefaultTimeZone { name } => {
            let time_zone = parse_time_zone(name)?;
            (time_zone != state.default_time_zone)
                .then_some(AccountEvent::DefaultTimeZoneSet { time_zone })
        }
        AccountCommand::SetDefaultLanguage { language } => {
            check_language(language)?;
            (*language != state.default_language).then(|| AccountEvent::DefaultLanguageSet {
                language: language.clone(),
            })
        }
        AccountCommand::AuthoriseDomain { pattern } => {
            let pattern = DomainPattern::parse(pattern)?;
            if state.authorised_domains.contains(&pattern) {
                None
            } else {
                check_count(
                    "authorised domains",
                    state.authorised_domains.len() + 1,
                    AUTHORISED_DOMAINS_MAX,
                )?;
                Some(AccountEvent::DomainAuthorised { pattern })
            }
        }
        AccountCommand::RevokeDomain { pattern } => {
            let parsed = DomainPattern::parse(pattern)?;
            if !state.authorised_domains.contains(&parsed) {
                return Err(ConfigRejection::Missing {
                    field: "authorised domains".to_owned(),
                    value: pattern.clone(),
                });
            }
            Some(AccountEvent::DomainRevoked { pattern: parsed })
        }
        AccountCommand::SetUnattendedTimeout { timeout_s } => {
            if !(UNATTENDED_TIMEOUT_S_MIN..=UNATTENDED_TIMEOUT_S_MAX).contains(timeout_s) {
                return Err(ConfigRejection::OutOfRange {
                    field: "unattended_timeout_s".to_owned(),
                    min: u64::from(UNATTENDED_TIMEOUT_S_MIN),
                    max: u64::from(UNATTENDED_TIMEOUT_S_MAX),
                    value: u64::from(*timeout_s),
                });
            }
            (*timeout_s != state.unattended_timeout_s).then_some(
                AccountEvent::UnattendedTimeoutSet {
                    timeout_s: *timeout_s,
                },
            )
        }
        AccountCommand::SetContactMatchField { field } => {
            let field = ContactField::new(field)?;
            (field != state.contact_match_field)
                .then_some(AccountEvent::ContactMatchFieldSet { field })
        }
    };
    Ok(event.into_iter().collect())
}

fn evolve(state: &mut AccountSettings, event: &AccountEvent) {
    match event {
        AccountEvent::DefaultTimeZoneSet { time_zone } => state.default_time_zone = *time_zone,
        AccountEvent::DefaultLanguageSet { language } => {
            state.default_language = language.clone();
        }
        AccountEvent::DomainAuthorised { pattern } => {
            state.authorised_domains.insert(pattern.clone());
        }
        AccountEvent::DomainRevoked { pattern } => {
            state.authorised_domains.remove(pattern);
        }
        AccountEvent::UnattendedTimeoutSet { timeout_s } => {
            state.unattended_timeout_s = *timeout_s;
        }
        AccountEvent::ContactMatchFieldSet { field } => {
            state.contact_match_field = field.clone();
        }
    }
}
