//! What happened to a chat: the only thing stored (C8).
//!
//! Every event carries the [`CommandId`] of the command that produced it (so the state rebuilt
//! from the log still recognises retries, C9) and its instant `at` (so deadlines are derived from
//! the log alone, C5). The list of events, their fields and when each happens is in
//! `docs/EVENTS.md`, section "Conversation".

use super::model::{
    AssignVia, CaseData, ChatMessage, ChatSettings, Disposition, Origin, Party, QueueCause,
    utc_timestamp,
};
use crate::PageData;
use crate::{AgentId, ChatId, CommandId, ContactId, EventKind, FieldValue, MessageId, ModuleId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The payload of [`ChatEvent::ChatStarted`]: the chat record as the visitor opened it.
///
/// These are the fields of [`StartChat`](super::StartChat) that are stored. It is a type of its
/// own, not the command itself, because the command's admission facts and retry id are inputs to
/// one decision, while this record is read by every replay of the log for ever.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// The chat's id.
    pub chat: ChatId,
    /// The module it came through.
    pub module: ModuleId,
    /// The contact.
    pub contact: ContactId,
    /// The contact's e-mail, when known.
    pub contact_email: Option<String>,
    /// The resume token (C1).
    pub resume_token: String,
    /// Page data (M6).
    pub page: PageData,
    /// Pre-chat form answers.
    pub form_answers: BTreeMap<String, FieldValue>,
    /// Routing variables.
    pub routing_vars: BTreeMap<String, String>,
    /// Widget or link (M9).
    pub origin: Origin,
    /// The settings snapshot.
    pub settings: ChatSettings,
}

/// Everything that can happen to a chat. Schema version 1 for every variant.
///
/// Every variant's instant is read with [`utc_timestamp`] (a message's through
/// [`ChatMessage`]): a replay reads one per event, and chrono's general parser would be a
/// quarter of decoding one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatEvent {
    /// The chat exists; episode 1 begins. Always followed by `ChatQueued` or an offline
    /// `EpisodeEnded` from the same command.
    ChatStarted {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The chat record (boxed: it is the largest payload).
        record: Box<ChatRecord>,
    },
    /// The chat waits for an agent (start, resume or transfer to a queue).
    ChatQueued {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// Why it is queued.
        cause: QueueCause,
    },
    /// Nobody can take the chat, and the module allows asynchronous chatting (C3).
    AsyncChattingStarted {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
    },
    /// An agent now holds the chat.
    AgentAssigned {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// The agent.
        agent: AgentId,
        /// Routing, manual pick or transfer.
        via: AssignVia,
    },
    /// A message was accepted.
    MessagePosted {
        /// Producing command.
        command_id: CommandId,
        /// The message (its `at` is the event's instant, its `redaction` is `None`).
        message: Box<ChatMessage>,
    },
    /// The first agent reply of an asynchronous episode: the outbox e-mails the visitor (C3).
    AsyncReplyEmailRequested {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// The visitor's e-mail.
        to: String,
        /// The reply that triggered it.
        message_id: MessageId,
    },
    /// The episode ended with its one disposition (C6).
    EpisodeEnded {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// How it ended.
        disposition: Disposition,
        /// Who ended it (`System` for timeouts, offline and no-agent outcomes).
        by: Party,
    },
    /// The outbox e-mails the transcript of the episode to the visitor (O2).
    TranscriptEmailRequested {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// The visitor's e-mail.
        to: String,
    },
    /// The visitor rated an ended episode (X3).
    ChatRated {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode rated.
        episode: u32,
        /// The last agent of that episode (for per-agent statistics).
        agent: AgentId,
        /// 1 to 5.
        score: u8,
        /// Free text.
        comment: Option<String>,
    },
    /// The visitor resumed the ended chat: a new episode begins (C7). Always followed by
    /// `ChatQueued` or an offline `EpisodeEnded` from the same command.
    ChatResumed {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The new episode's number.
        episode: u32,
    },
    /// An agent blocked the visitor (F5).
    ContactBlocked {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The contact.
        contact: ContactId,
        /// The agent.
        by: AgentId,
    },
    /// A case was created from the chat (A6); followed by `EpisodeEnded` with disposition case.
    CaseCreated {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The episode.
        episode: u32,
        /// What the ticketing system needs.
        case: Box<CaseData>,
    },
    /// A message's content was redacted (X4).
    MessageRedacted {
        /// Producing command.
        command_id: CommandId,
        /// When.
        #[serde(deserialize_with = "utc_timestamp")]
        at: DateTime<Utc>,
        /// The message.
        message_id: MessageId,
        /// The agent.
        by: AgentId,
    },
}

impl ChatEvent {
    /// The command that produced the event.
    pub fn command_id(&self) -> CommandId {
        match self {
            Self::ChatStarted { command_id, .. }
            | Self::ChatQueued { command_id, .. }
            | Self::AsyncChattingStarted { command_id, .. }
            | Self::AgentAssigned { command_id, .. }
            | Self::MessagePosted { command_id, .. }
            | Self::AsyncReplyEmailRequested { command_id, .. }
            | Self::EpisodeEnded { command_id, .. }
            | Self::TranscriptEmailRequested { command_id, .. }
            | Self::ChatRated { command_id, .. }
            | Self::ChatResumed { command_id, .. }
            | Self::ContactBlocked { command_id, .. }
            | Self::CaseCreated { command_id, .. }
            | Self::MessageRedacted { command_id, .. } => *command_id,
        }
    }

    /// When the event happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::MessagePosted { message, .. } => message.at,
            Self::ChatStarted { at, .. }
            | Self::ChatQueued { at, .. }
            | Self::AsyncChattingStarted { at, .. }
            | Self::AgentAssigned { at, .. }
            | Self::AsyncReplyEmailRequested { at, .. }
            | Self::EpisodeEnded { at, .. }
            | Self::TranscriptEmailRequested { at, .. }
            | Self::ChatRated { at, .. }
            | Self::ChatResumed { at, .. }
            | Self::ContactBlocked { at, .. }
            | Self::CaseCreated { at, .. }
            | Self::MessageRedacted { at, .. } => *at,
        }
    }
}

impl EventKind for ChatEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ChatStarted { .. } => "ChatStarted",
            Self::ChatQueued { .. } => "ChatQueued",
            Self::AsyncChattingStarted { .. } => "AsyncChattingStarted",
            Self::AgentAssigned { .. } => "AgentAssigned",
            Self::MessagePosted { .. } => "MessagePosted",
            Self::AsyncReplyEmailRequested { .. } => "AsyncReplyEmailRequested",
            Self::EpisodeEnded { .. } => "EpisodeEnded",
            Self::TranscriptEmailRequested { .. } => "TranscriptEmailRequested",
            Self::ChatRated { .. } => "ChatRated",
            Self::ChatResumed { .. } => "ChatResumed",
            Self::ContactBlocked { .. } => "ContactBlocked",
            Self::CaseCreated { .. } => "CaseCreated",
            Self::MessageRedacted { .. } => "MessageRedacted",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}
