//! What every configuration aggregate shares: the admin stamp on commands and events (M7, written
//! once in `stamped_decider!`), the create-once / refuse-after-delete rule (`check_absent`,
//! `live`), the one rejection type, and the small text rules (names, references, tags, colours,
//! e-mail, glob).
//!
//! They live in one place so that a reference, a name or a colour means the same thing in a
//! module, a trigger strategy and a queue, and so that the history of any object reads the same
//! way: who, when, what.

use crate::{AgentId, ChatId, EventKind, ModuleId, StrategyId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest display name (module, strategy, queue, agent, canned response title), in characters.
pub const NAME_CHARS_MAX: usize = 100;
/// Longest reference, in characters. References become stream names and URL parts.
pub const REFERENCE_CHARS_MAX: usize = 64;
/// Longest free text (module description, canned response body), in characters.
pub const TEXT_CHARS_MAX: usize = 4000;
/// Longest URL the configuration stores (avatar, base URL, URL rule), in characters.
pub const URL_CHARS_MAX: usize = 2048;
/// Longest identifier-like key (form field name, routing variable, contact field, event name).
pub const KEY_CHARS_MAX: usize = 64;

/// Longest e-mail address [`is_valid_email`] accepts, in bytes (RFC 5321's path limit less the
/// angle brackets).
const EMAIL_ADDRESS_BYTES_MAX: usize = 254;
/// Longest local part (before the `@`) of an e-mail address, in bytes (RFC 5321).
const EMAIL_LOCAL_BYTES_MAX: usize = 64;
/// Longest label of a host name, in bytes (RFC 1035).
const DNS_LABEL_BYTES_MAX: usize = 63;

/// Who did it and when: the envelope of every configuration event, so that an object's own event
/// stream is its history (M7) without a separate audit table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<E> {
    /// The admin (or agent) whose command produced the event.
    pub by: AgentId,
    /// When the host says the command was decided.
    pub at: DateTime<Utc>,
    /// What changed.
    pub event: E,
}

impl<E: EventKind> EventKind for Stamped<E> {
    fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    fn schema_version(&self) -> u16 {
        self.event.schema_version()
    }
}

/// A configuration command with the admin who issues it; the time comes with `decide`'s `now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminCommand<C> {
    /// Who asks (recorded on every resulting event).
    pub by: AgentId,
    /// What is asked.
    pub command: C,
}

impl<C> AdminCommand<C> {
    /// Wraps a command issued by `by`.
    pub fn new(by: AgentId, command: C) -> Self {
        Self { by, command }
    }

    /// Stamps the events decided for this command at `now`.
    pub(crate) fn stamp<E>(&self, now: DateTime<Utc>, events: Vec<E>) -> Vec<Stamped<E>> {
        events
            .into_iter()
            .map(|event| Stamped {
                by: self.by,
                at: now,
                event,
            })
            .collect()
    }
}

/// Implements [`Decider`](crate::Decider) for a configuration aggregate from two plain functions,
/// `decide(&State, &Command) -> Result<Vec<Event>, ConfigRejection>` and
/// `evolve(&mut State, &Event)`. Commands arrive as [`AdminCommand`] and events leave
/// [`Stamped`] with the admin and the decision time: written once here, so that every object's
/// history reads the same way (M7) and no aggregate can forget to stamp.
macro_rules! stamped_decider {
    (
        $decider:ty {
            state: $state:ty,
            command: $command:ty,
            event: $event:ty,
            decide: $decide:expr,
            evolve: $evolve:expr $(,)?
        }
    ) => {
        impl $crate::Decider for $decider {
            type State = $state;
            type Command = $crate::config::AdminCommand<$command>;
            type Event = $crate::config::Stamped<$event>;
            type Rejection = $crate::config::ConfigRejection;

            fn decide(
                state: &Self::State,
                command: &Self::Command,
                now: ::chrono::DateTime<::chrono::Utc>,
            ) -> Result<Vec<Self::Event>, Self::Rejection> {
                let events = ($decide)(state, &command.command)?;
                Ok(command.stamp(now, events))
            }

            fn evolve(state: &mut Self::State, event: &Self::Event) {
                ($evolve)(state, &event.event);
            }
        }
    };
}
pub(crate) use stamped_decider;

/// Refuses a creation on a stream that already holds an `object`, live or deleted: a stream is
/// one object's whole history, so its id is never reused.
pub(crate) fn check_absent<T>(
    object: &'static str,
    current: Option<&T>,
) -> Result<(), ConfigRejection> {
    if current.is_some() {
        return Err(ConfigRejection::AlreadyExists { object });
    }
    Ok(())
}

/// The `object` a change applies to: refused while the stream holds none, and once it was
/// deleted (its stream is then history only).
pub(crate) fn live<'a, T>(
    object: &'static str,
    current: Option<&'a T>,
    deleted: bool,
) -> Result<&'a T, ConfigRejection> {
    let current = current.ok_or(ConfigRejection::NotFound { object })?;
    if deleted {
        return Err(ConfigRejection::Deleted { object });
    }
    Ok(current)
}

/// Something that still depends on a module, listed by a refused deletion (M8).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dependant {
    /// A trigger strategy still attached to the module.
    Strategy(StrategyId),
    /// A conversation of the module that has not ended.
    OpenChat(ChatId),
    /// A registered external use, e.g. an SMS campaign linking to the module (M9).
    ExternalUse(ExternalUse),
    /// A module a strategy is still attached to (T4).
    Module(ModuleId),
}

impl std::fmt::Display for Dependant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Strategy(id) => write!(f, "trigger strategy {id}"),
            Self::OpenChat(id) => write!(f, "open chat {id}"),
            Self::ExternalUse(u) => write!(f, "{} {}", u.kind, u.id),
            Self::Module(id) => write!(f, "module {id}"),
        }
    }
}

/// A use of a module from outside the engine (an SMS campaign, a mailing, a QR code), registered
/// so that deleting the module is refused while it is live (M8, M9).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExternalUse {
    /// What kind of use, e.g. `sms_campaign` (a key: lowercase letters, digits, `_`).
    pub kind: String,
    /// The user's own id for it, e.g. the campaign id.
    pub id: String,
}

/// Why a configuration command was refused. Each variant names the field or rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigRejection {
    /// The object does not exist (or its stream is empty).
    #[error("{object} does not exist")]
    NotFound {
        /// Which kind of object.
        object: &'static str,
    },
    /// A create command hit a stream that already holds the object.
    #[error("{object} already exists")]
    AlreadyExists {
        /// Which kind of object.
        object: &'static str,
    },
    /// The object was deleted; its stream is history only.
    #[error("{object} was deleted")]
    Deleted {
        /// Which kind of object.
        object: &'static str,
    },
    /// A required text is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: String,
    },
    /// A text is longer than its limit.
    #[error("{field} is longer than {chars_max} characters")]
    TooLong {
        /// The field.
        field: String,
        /// The limit.
        chars_max: usize,
    },
    /// A text is longer than its limit in bytes (texts that travel into chats are bounded in
    /// bytes, like the lifecycle's limits).
    #[error("{field} is longer than {bytes_max} bytes")]
    TooManyBytes {
        /// The field.
        field: String,
        /// The limit.
        bytes_max: usize,
    },
    /// A list has more entries than its limit.
    #[error("{field} has more than {max} entries")]
    TooMany {
        /// The list.
        field: String,
        /// The limit.
        max: usize,
    },
    /// A number is outside its allowed range.
    #[error("{field} must be between {min} and {max}, got {value}")]
    OutOfRange {
        /// The field.
        field: String,
        /// Lowest allowed.
        min: u64,
        /// Highest allowed.
        max: u64,
        /// What was given.
        value: u64,
    },
    /// A reference contains a character outside letters, digits and `_+.@-` (M2).
    #[error("reference {reference:?} may contain only letters, digits and _+.@- (found {found:?})")]
    InvalidReference {
        /// The reference given.
        reference: String,
        /// The first offending character.
        found: char,
    },
    /// The reference is reserved by another object (M2); see [`Reservation`](super::Reservation).
    #[error("reference {reference:?} is already used")]
    DuplicateReference {
        /// The reference given.
        reference: String,
    },
    /// A key (field name, variable, tag…) has characters outside its charset.
    #[error("{field} {value:?} may contain only {allowed}")]
    InvalidKey {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The allowed charset, in words.
        allowed: &'static str,
    },
    /// A colour is not `#rgb` or `#rrggbb` (M4).
    #[error("{field} {value:?} is not a colour like #1a2b3c")]
    InvalidColour {
        /// The field.
        field: String,
        /// The value given.
        value: String,
    },
    /// The time-zone name is not in the IANA database that chrono-tz ships (S1).
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
    /// A language tag is not like `fr` or `pt-BR`.
    #[error("language {value:?} is not a tag like fr or pt-BR")]
    InvalidLanguage {
        /// The value given.
        value: String,
    },
    /// A value is malformed for its field (URL, e-mail, time range, file type…).
    #[error("{field} {value:?} is invalid: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// What is wrong, in words.
        reason: &'static str,
    },
    /// Display = no together with open = no would attach a strategy that does nothing (T3).
    #[error("a strategy attachment cannot have display = no while open = no")]
    DisplayAndOpenBothOff,
    /// The object is still used; the refusal lists every dependant (M8, T4).
    #[error("still used by {}", list(dependants))]
    HasDependants {
        /// Everything that still depends on the object, in a stable order.
        dependants: Vec<Dependant>,
    },
    /// The module has no routing configuration, so it cannot take chats (M10).
    #[error("the module has no smart routing configured")]
    NoRouting,
    /// A member, tag, attachment or use that the command names is not there.
    #[error("{field} {value:?} is not present")]
    Missing {
        /// The collection.
        field: String,
        /// The entry asked for.
        value: String,
    },
    /// A member, tag, attachment or use that the command adds is already there.
    #[error("{field} {value:?} is already present")]
    Duplicate {
        /// The collection.
        field: String,
        /// The entry given.
        value: String,
    },
}

fn list(dependants: &[Dependant]) -> String {
    dependants
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a required display name.
pub(crate) fn check_name(field: &str, value: &str) -> Result<(), ConfigRejection> {
    check_text(field, value, NAME_CHARS_MAX)?;
    if value.trim().is_empty() {
        return Err(ConfigRejection::Empty {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Checks the length of a free text (empty allowed).
pub(crate) fn check_text(
    field: &str,
    value: &str,
    chars_max: usize,
) -> Result<(), ConfigRejection> {
    if value.chars().count() > chars_max {
        return Err(ConfigRejection::TooLong {
            field: field.to_owned(),
            chars_max,
        });
    }
    Ok(())
}

/// Checks a count against its limit.
pub(crate) fn check_count(field: &str, count: usize, max: usize) -> Result<(), ConfigRejection> {
    if count > max {
        return Err(ConfigRejection::TooMany {
            field: field.to_owned(),
            max,
        });
    }
    Ok(())
}

/// Checks a reference: 1..=[`REFERENCE_CHARS_MAX`] characters among ASCII letters, digits and
/// `_+.@-` (M2). ASCII only, so that a reference is also a safe stream-name and URL part.
pub fn check_reference(reference: &str) -> Result<(), ConfigRejection> {
    if reference.is_empty() {
        return Err(ConfigRejection::Empty {
            field: "reference".to_owned(),
        });
    }
    check_text("reference", reference, REFERENCE_CHARS_MAX)?;
    if let Some(found) = reference
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+.@-".contains(*c)))
    {
        return Err(ConfigRejection::InvalidReference {
            reference: reference.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Checks a key: 1..=[`KEY_CHARS_MAX`] characters among lowercase ASCII letters, digits and `_`.
/// Keys name things in code and in routing rules, so they must be stable and unambiguous.
pub(crate) fn check_key(field: &str, value: &str) -> Result<(), ConfigRejection> {
    if value.is_empty() {
        return Err(ConfigRejection::Empty {
            field: field.to_owned(),
        });
    }
    check_text(field, value, KEY_CHARS_MAX)?;
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ConfigRejection::InvalidKey {
            field: field.to_owned(),
            value: value.to_owned(),
            allowed: "lowercase letters, digits and _",
        });
    }
    Ok(())
}

/// Checks an absolute http(s) URL without spaces: enough to refuse typos, not a URL parser.
pub(crate) fn check_url(field: &str, value: &str) -> Result<(), ConfigRejection> {
    check_text(field, value, URL_CHARS_MAX)?;
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let ok = rest.is_some_and(|rest| {
        !rest.is_empty()
            && !rest.starts_with('/')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !ok {
        return Err(ConfigRejection::Invalid {
            field: field.to_owned(),
            value: value.to_owned(),
            reason: "not an absolute http(s) URL",
        });
    }
    Ok(())
}

/// Parses an IANA time-zone name; an unknown name is a typed refusal (S1).
pub fn parse_time_zone(name: &str) -> Result<chrono_tz::Tz, ConfigRejection> {
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| ConfigRejection::UnknownTimeZone {
            name: name.to_owned(),
        })
}

/// Checks a language tag in the common BCP 47 shape: a 2–3 letter language, then up to three
/// subtags of 2–8 letters or digits (`fr`, `pt-BR`, `zh-Hant-TW`). Lenient on purpose: the host's
/// translations decide what is supported; this refuses only what cannot be a tag.
pub(crate) fn check_language(value: &str) -> Result<(), ConfigRejection> {
    let mut parts = value.split('-');
    let language = parts.next().unwrap_or("");
    let subtags: Vec<&str> = parts.collect();
    let ok = (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && subtags.len() <= 3
        && subtags
            .iter()
            .all(|s| (2..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if !ok {
        return Err(ConfigRejection::InvalidLanguage {
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Whether `address` looks like an e-mail address a person can receive mail at: one `@`, a
/// non-empty local part without spaces, and a domain of at least two dot-separated labels of
/// letters, digits and `-`. Deliberately simpler than RFC 5322: quoted local parts and IP-literal
/// domains are refused, which no visitor types into a chat form.
pub fn is_valid_email(address: &str) -> bool {
    if address.len() > EMAIL_ADDRESS_BYTES_MAX {
        return false;
    }
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= EMAIL_LOCAL_BYTES_MAX
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| is_dns_label(label))
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// One label of a host name: 1–63 ASCII letters, digits and inner `-`. Shared by the e-mail
/// domain check and the origin check, so that a domain an admin authorises and a domain a visitor
/// types follow the same rule.
pub(crate) fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= DNS_LABEL_BYTES_MAX
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Glob matching over characters: `*` matches any run (including `/`), `?` exactly one
/// character, everything else itself. Linear-time backtracking (the classic two-pointer
/// algorithm), so a hostile pattern cannot make evaluation slow.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t]))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Parses a colour given as `#rgb` or `#rrggbb` (case-insensitive) and returns it normalised to
/// lowercase `#rrggbb`, so two spellings of one colour are stored the same (M4). `field` names the
/// field in the refusal.
pub fn normalise_colour(field: &str, value: &str) -> Result<String, ConfigRejection> {
    let invalid = || ConfigRejection::InvalidColour {
        field: field.to_owned(),
        value: value.to_owned(),
    };
    let digits = value.strip_prefix('#').ok_or_else(invalid)?;
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let six = match digits.len() {
        3 => digits.chars().flat_map(|c| [c, c]).collect::<String>(),
        6 => digits.to_owned(),
        _ => return Err(invalid()),
    };
    Ok(format!("#{}", six.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_question_marks() {
        assert!(glob_matches(
            "https://shop.example.com/*",
            "https://shop.example.com/a/b"
        ));
        assert!(glob_matches("*/checkout?", "https://x/checkout2"));
        assert!(!glob_matches("*/checkout?", "https://x/checkout"));
        assert!(glob_matches("a*b*c", "aXbYbZc"));
        assert!(!glob_matches("a*b*c", "aXbYbZ"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("", "x"));
        assert!(glob_matches("exact", "exact"));
    }

    #[test]
    fn email_check_accepts_ordinary_addresses_and_refuses_typos() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "x_y@a-b.fr"] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.co",
            "a@b",
            "a b@c.de",
            "a@@b.co",
            "a@b..co",
            "a@-b.co",
            "a@b.c0",
            ".a@b.co",
            "a..b@c.de",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }

    #[test]
    fn email_and_host_label_lengths_are_bounded() {
        let label = "a".repeat(DNS_LABEL_BYTES_MAX);
        assert!(is_dns_label(&label));
        assert!(!is_dns_label(&format!("{label}a")));
        let local = "l".repeat(EMAIL_LOCAL_BYTES_MAX);
        assert!(is_valid_email(&format!("{local}@example.com")));
        assert!(!is_valid_email(&format!("{local}l@example.com")));
        // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 bytes, every part within its own limit.
        let at_limit = format!("{local}@{label}.{label}.{}.com", "d".repeat(57));
        assert_eq!(at_limit.len(), EMAIL_ADDRESS_BYTES_MAX);
        assert!(is_valid_email(&at_limit));
        let past = format!("{local}@{label}.{label}.{}.com", "d".repeat(58));
        assert!(!is_valid_email(&past));
    }

    #[test]
    fn colours_normalise_and_refuse_garbage() {
        assert_eq!(normalise_colour("c", "#ABC").unwrap(), "#aabbcc");
        assert_eq!(normalise_colour("c", "#12aB3c").unwrap(), "#12ab3c");
        for bad in ["123456", "#12345", "#ggg", "#1234567", "red", "", "#"] {
            assert!(normalise_colour("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn languages_accept_common_tags() {
        for ok in ["fr", "pt-BR", "zh-Hant-TW", "fil"] {
            assert!(check_language(ok).is_ok(), "{ok}");
        }
        for bad in ["", "f", "french", "fr_FR", "fr-", "fr-x"] {
            assert!(check_language(bad).is_err(), "{bad}");
        }
    }
}
