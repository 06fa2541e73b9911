//! The vocabulary of a chat: the values its commands and events carry.
//!
//! They are plain serde data because events are stored (MessagePack with named fields, E4) and
//! replayed forever: a field here is a promise to every reader of the log.

use crate::{AgentId, AttachmentMeta, CaseId, ChatId, ContactId, FieldValue, MessageId, PageData};
use crate::{ModuleId, QueueId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// Who did something in a chat: the author of a message, the party that ended an episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Party {
    /// The visitor (the contact behind the chat).
    Visitor,
    /// A human agent.
    Agent(AgentId),
    /// The engine itself (timeouts, routing outcomes, bots).
    System,
}

/// Who may end a chat on purpose; the engine ends it through other commands (tick, no agent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndedBy {
    /// The visitor closed the chat.
    Visitor,
    /// The assigned agent left, which ends it for the visitor too (C6).
    Agent(AgentId),
}

/// Where the visitor came from (M9): the widget on a page, or a link (e.g. in an SMS campaign).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// The embedded widget.
    Widget,
    /// The module's public chat link.
    Link,
}

/// The module and account settings the chat itself needs, snapshotted at start so that a later
/// configuration change never rewrites how an existing chat behaves on replay.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSettings {
    /// Asynchronous chatting (C3): the visitor may keep writing while no agent is available.
    pub async_chatting: bool,
    /// A6: when no agent can take the chat, turn it into a case instead of leaving it unmanaged.
    pub case_when_no_agent: bool,
    /// C5: seconds a chat may stay unattended before it ends with disposition timeout; `None`
    /// disables the timeout. At most [`UNATTENDED_TIMEOUT_S_MAX`](super::UNATTENDED_TIMEOUT_S_MAX).
    pub unattended_timeout_s: Option<u32>,
    /// O2: e-mail the transcript to the visitor at the end of an episode (when an e-mail is known).
    pub transcript_email: bool,
    /// A5: largest attachment a message may carry, in bytes; 0 refuses attachments.
    pub attachment_bytes_max: u64,
}

/// Facts the host established just before a start or a resume (C2, F5). chat-core cannot know
/// them (they come from the schedule, the module's open-chat count and the contact), so they come
/// in as data and the decision is made, and explained, in `decide`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admission {
    /// Whether the module is inside its working intervals now (S2).
    pub within_working_hours: bool,
    /// The module's open chats now, not counting this one.
    pub open_chats: u32,
    /// The module's maximum of concurrent chats; `None` is unlimited.
    pub open_chats_max: Option<u32>,
    /// Whether the contact is blocked (F5).
    pub contact_blocked: bool,
}

/// Why a chat went offline at start or resume (C2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineReason {
    /// Outside the module's working intervals.
    OutsideWorkingHours,
    /// The module already had its maximum of concurrent chats.
    ModuleAtCapacity {
        /// Open chats when the decision was made.
        open_chats: u32,
        /// The module's maximum.
        open_chats_max: u32,
    },
}

/// How an episode ended (C6). Exactly one per ended episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// An agent handled the chat and it was ended by either side.
    Managed,
    /// The chat went offline at start or resume (O1 handles the offline message).
    Offline {
        /// Why.
        reason: OfflineReason,
    },
    /// No agent could take it and neither async chatting nor cases were on (C3).
    Unmanaged,
    /// Unattended for longer than the module's timeout (C5).
    Timeout,
    /// The visitor left before any agent took the chat.
    Abandoned,
    /// An agent blocked the visitor (F5).
    Blocked,
    /// The chat became a case (A6).
    Case {
        /// The case created.
        case_id: CaseId,
    },
}

/// Why a chat (re-)entered the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueCause {
    /// A new chat was admitted: inside working hours and below the module's maximum (C2).
    Started,
    /// The visitor resumed an ended chat (C7).
    Resumed,
    /// The assigned agent transferred the chat to a queue (A3); level-2 members may take it (R1).
    Transferred {
        /// The agent who gave the chat away.
        from: AgentId,
        /// The target queue.
        queue: QueueId,
    },
}

/// How an agent came to hold a chat (A2, A3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssignVia {
    /// Automatic routing chose the agent.
    Routing,
    /// The agent took a waiting chat themselves.
    ManualPick,
    /// Another agent transferred it directly.
    Transfer {
        /// The previous agent.
        from: AgentId,
    },
}

/// An article sent in a chat (A3): a title and a link, a body, or both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    /// The title.
    pub title: String,
    /// Where the article lives.
    pub link: Option<String>,
    /// The article's text, when sent inline.
    pub body: Option<String>,
}

/// The content of one message (C4, A3). Attachments are metadata; bytes live with the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBody {
    /// The text (may be empty when something else is sent).
    pub text: String,
    /// Attached files' metadata.
    pub attachments: Vec<AttachmentMeta>,
    /// Persistent quick replies offered to the visitor (agents and the system only).
    pub quick_replies: Vec<String>,
    /// An article (agents and the system only).
    pub article: Option<Article>,
    /// A video-call link (agents and the system only).
    pub video_call_link: Option<String>,
}

impl MessageBody {
    /// A text-only message: the common case.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// That a message was redacted, by whom and when (X4): the audit keeps this forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// The agent who redacted it.
    pub by: AgentId,
    /// When. Read with [`utc_timestamp`], like every instant of an event.
    #[serde(deserialize_with = "utc_timestamp")]
    pub at: DateTime<Utc>,
}

/// One message as the chat keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The host-minted id.
    pub id: MessageId,
    /// The episode it was posted in.
    pub episode: u32,
    /// Who wrote it.
    pub author: Party,
    /// When it was accepted. Read with [`utc_timestamp`]: four events in five of a chat are
    /// messages, and this is their only timestamp.
    #[serde(deserialize_with = "utc_timestamp")]
    pub at: DateTime<Utc>,
    /// Its content; see [`ChatMessage::for_readers`] for what readers may see.
    pub body: MessageBody,
    /// Set once the message is redacted.
    pub redaction: Option<Redaction>,
}

impl ChatMessage {
    /// The message as every reader sees it: a redacted message keeps its id, author, time and the
    /// redaction record, and loses its content (X4). The one place this rule lives; the view and
    /// the case snapshot both use it.
    pub fn for_readers(&self) -> Self {
        let mut message = self.clone();
        if message.redaction.is_some() {
            message.body = MessageBody::default();
        }
        message
    }
}

/// Deserialises a `DateTime<Utc>` exactly as chrono's own `Deserialize` does, faster.
///
/// Why: chrono stores an instant as an RFC 3339 string, and its general parser (offsets, spaces,
/// lower-case separators, leap seconds) costs about a quarter of decoding a whole message event,
/// so every replay pays it once per event. It is the one reader of every instant a chat event
/// stores (each variant's `at`, a message's, a redaction's). The form chrono writes for a
/// `DateTime<Utc>`,
/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` with up to 9 fraction digits, is read here directly; any other
/// string goes to chrono's `Deserialize`, so what is accepted, what it means and the errors stay
/// chrono's (the stored bytes are unchanged; `Serialize` is chrono's). Checked against chrono
/// by the property tests below.
pub(super) fn utc_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 date and time")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<DateTime<Utc>, E> {
            match canonical_utc(value) {
                Some(at) => Ok(at),
                None => DateTime::<Utc>::deserialize(value.into_deserializer()),
            }
        }
    }
    deserializer.deserialize_str(Visitor)
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` (1 to 9 fraction digits, seconds 00–59) as an instant; `None`
/// for anything else, including invalid dates, so that chrono decides about those.
fn canonical_utc(value: &str) -> Option<DateTime<Utc>> {
    fn number(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    }
    let bytes = value.as_bytes();
    let (head, fraction) = bytes.split_at_checked(19)?;
    let fraction = fraction.strip_suffix(b"Z")?;
    if [head[4], head[7], head[10], head[13], head[16]] != *b"--T::" {
        return None;
    }
    let nanos = match fraction {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let second = number(&head[17..19])?;
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&head[0..4])?).ok()?,
        number(&head[5..7])?,
        number(&head[8..10])?,
    )?;
    let time = date.and_hms_nano_opt(
        number(&head[11..13])?,
        number(&head[14..16])?,
        second,
        nanos,
    )?;
    Some(time.and_utc())
}

/// Everything a ticketing system needs to open a case from a chat (A6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseData {
    /// The case id (minted by the host).
    pub case_id: CaseId,
    /// The chat it comes from.
    pub chat: ChatId,
    /// The module the chat came through.
    pub module: ModuleId,
    /// The contact.
    pub contact: ContactId,
    /// The contact's e-mail, when known.
    pub contact_email: Option<String>,
    /// The agent who asked for it; `None` when no agent was available (module option).
    pub requested_by: Option<AgentId>,
    /// The start form's answers.
    pub form_answers: BTreeMap<String, FieldValue>,
    /// The page data (M6).
    pub page: PageData,
    /// The latest messages (at most [`CASE_MESSAGES_MAX`](super::CASE_MESSAGES_MAX)), redactions
    /// applied.
    pub messages: Vec<ChatMessage>,
    /// How many messages the chat had in total (more than `messages.len()` when truncated).
    pub messages_total: u32,
    /// The configured template fields (A6).
    pub template: BTreeMap<String, FieldValue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{ChatEvent, ChatRecord};
    use crate::{CommandId, EventKind};
    use chrono::{FixedOffset, TimeZone};
    use proptest::prelude::*;

    /// What chrono's own `Deserialize` makes of a string (the reference).
    fn by_chrono(value: &str) -> Result<DateTime<Utc>, serde::de::value::Error> {
        DateTime::<Utc>::deserialize(value.into_deserializer())
    }

    fn by_us(value: &str) -> Result<DateTime<Utc>, serde::de::value::Error> {
        let deserializer: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            value.into_deserializer();
        utc_timestamp(deserializer)
    }

    /// One event of every variant, each at `at` (a message, the redaction in a case's message
    /// and every other variant's own `at`): what the property below reads back.
    fn every_event_at(at: DateTime<Utc>) -> Vec<ChatEvent> {
        let (command_id, agent) = (CommandId::from_u128(1), AgentId::from_u128(2));
        let message = ChatMessage {
            id: MessageId::from_u128(3),
            episode: 1,
            author: Party::Visitor,
            at,
            body: MessageBody::text("hi"),
            redaction: Some(Redaction { by: agent, at }),
        };
        let record = ChatRecord {
            chat: ChatId::from_u128(4),
            module: ModuleId::from_u128(5),
            contact: ContactId::from_u128(6),
            contact_email: None,
            resume_token: "token".into(),
            page: PageData::default(),
            form_answers: BTreeMap::new(),
            routing_vars: BTreeMap::new(),
            origin: Origin::Widget,
            settings: ChatSettings::default(),
        };
        let case = CaseData {
            case_id: CaseId::from_u128(7),
            chat: record.chat,
            module: record.module,
            contact: record.contact,
            contact_email: None,
            requested_by: Some(agent),
            form_answers: BTreeMap::new(),
            page: PageData::default(),
            messages: vec![message.clone()],
            messages_total: 1,
            template: BTreeMap::new(),
        };
        vec![
            ChatEvent::ChatStarted {
                command_id,
                at,
                record: Box::new(record),
            },
            ChatEvent::ChatQueued {
                command_id,
                at,
                episode: 1,
                cause: QueueCause::Started,
            },
            ChatEvent::AsyncChattingStarted {
                command_id,
                at,
                episode: 1,
            },
            ChatEvent::AgentAssigned {
                command_id,
                at,
                episode: 1,
                agent,
                via: AssignVia::Routing,
            },
            ChatEvent::MessagePosted {
                command_id,
                message: Box::new(message.clone()),
            },
            ChatEvent::AsyncReplyEmailRequested {
                command_id,
                at,
                episode: 1,
                to: "v@example.com".into(),
                message_id: message.id,
            },
            ChatEvent::EpisodeEnded {
                command_id,
                at,
                episode: 1,
                disposition: Disposition::Managed,
                by: Party::Agent(agent),
            },
            ChatEvent::TranscriptEmailRequested {
                command_id,
                at,
                episode: 1,
                to: "v@example.com".into(),
            },
            ChatEvent::ChatRated {
                command_id,
                at,
                episode: 1,
                agent,
                score: 5,
                comment: None,
            },
            ChatEvent::ChatResumed {
                command_id,
                at,
                episode: 2,
            },
            ChatEvent::ContactBlocked {
                command_id,
                at,
                contact: case.contact,
                by: agent,
            },
            ChatEvent::CaseCreated {
                command_id,
                at,
                episode: 2,
                case: Box::new(case),
            },
            ChatEvent::MessageRedacted {
                command_id,
                at,
                message_id: message.id,
                by: agent,
            },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Given any instant chrono can write (years 0–9999, any nanosecond, leap seconds),
        /// when it is written by chrono and read back through MessagePack, then the fast reader
        /// gives the very same instant.
        #[test]
        fn every_instant_chrono_writes_reads_back_the_same(
            seconds in -62_167_219_200i64..253_402_300_800,
            nanos in 0u32..2_000_000_000,
        ) {
            let Some(at) = Utc.timestamp_opt(seconds, nanos).single() else {
                return Ok(()); // a leap second chrono cannot place there
            };
            let message = ChatMessage {
                id: MessageId::from_u128(1),
                episode: 1,
                author: Party::Visitor,
                at,
                body: MessageBody::text("hi"),
                redaction: None,
            };
            let bytes = rmp_serde::to_vec_named(&message).unwrap();
            let back: ChatMessage = rmp_serde::from_slice(&bytes).unwrap();
            prop_assert_eq!(back, message);
            // Every other instant of an event is read by the same helper.
            for event in every_event_at(at) {
                let bytes = rmp_serde::to_vec_named(&event).unwrap();
                let back: ChatEvent = rmp_serde::from_slice(&bytes).unwrap();
                prop_assert_eq!(back, event);
            }
            let written: String = rmp_serde::from_slice(&rmp_serde::to_vec(&at).unwrap()).unwrap();
            prop_assert_eq!(by_us(&written).ok(), Some(at));
        }

        /// Given strings close to the canonical form (other separators, offsets, lower case,
        /// out-of-range fields, no or too many fraction digits), when read, then the result is
        /// chrono's: the same instant, or an error from both.
        #[test]
        fn any_near_canonical_string_reads_as_chrono_reads_it(
            (year, month, day) in (0u32..=10_000, 0u32..=13, 0u32..=32),
            (hour, minute, second) in (0u32..=24, 0u32..=60, 0u32..=61),
            separator in prop::sample::select(vec!["T", "t", " ", "_"]),
            fraction in prop::option::of("[0-9]{0,12}"),
            suffix in prop::sample::select(vec!["Z", "z", "", "+01:00", "-00:00", "Z "]),
        ) {
            let fraction = fraction.map(|digits| format!(".{digits}")).unwrap_or_default();
            let value = format!(
                "{year:04}-{month:02}-{day:02}{separator}{hour:02}:{minute:02}:{second:02}\
                 {fraction}{suffix}"
            );
            prop_assert_eq!(by_us(&value).ok(), by_chrono(&value).ok(), "{}", value);
        }
    }

    #[test]
    fn every_event_at_builds_every_variant() {
        let types: std::collections::BTreeSet<_> = every_event_at(DateTime::UNIX_EPOCH)
            .iter()
            .map(EventKind::event_type)
            .collect();
        assert_eq!(types.len(), 13, "one event of every variant: {types:?}");
    }

    #[test]
    fn the_canonical_form_is_read_without_chrono_and_the_rest_by_chrono() {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 20).unwrap();
        assert_eq!(canonical_utc("2026-03-02T09:00:20Z"), Some(at));
        assert_eq!(
            canonical_utc("2026-03-02T09:00:20.5Z"),
            Some(at + chrono::TimeDelta::milliseconds(500))
        );
        // Not canonical: chrono decides, and means the same instant.
        assert_eq!(canonical_utc("2026-03-02T10:00:20+01:00"), None);
        let offset = FixedOffset::east_opt(3600).unwrap();
        assert_eq!(
            by_us("2026-03-02T10:00:20+01:00").unwrap(),
            offset.with_ymd_and_hms(2026, 3, 2, 10, 0, 20).unwrap()
        );
        assert_eq!(canonical_utc("2026-02-30T09:00:20Z"), None);
        assert!(
            by_us("2026-02-30T09:00:20Z").is_err(),
            "chrono refuses it too"
        );
        assert_eq!(canonical_utc("2016-12-31T23:59:60Z"), None, "a leap second");
        assert_eq!(
            by_us("2016-12-31T23:59:60Z").ok(),
            by_chrono("2016-12-31T23:59:60Z").ok()
        );
    }
}
