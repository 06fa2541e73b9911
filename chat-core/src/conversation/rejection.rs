//! Why a chat refused a command: an ordinary value whose message names the rule.

use crate::{AgentId, MessageId};
use chrono::{DateTime, Utc};

/// A refused chat command. Nothing was recorded; the caller may show the message as it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Any command but `Start` on an empty stream.
    #[error("chat has not started: only Start is accepted")]
    NotStarted,
    /// `Start` on a started chat.
    #[error("chat has already started: Start is accepted once per chat")]
    AlreadyStarted,
    /// Start or resume by a blocked contact (F5).
    #[error("contact is blocked: a blocked visitor cannot start or resume a chat")]
    ContactBlocked,
    /// A command that needs an open episode, on an ended one.
    #[error("chat has ended: {refused} are refused")]
    ChatEnded {
        /// What was refused, in the plural ("messages").
        refused: &'static str,
    },
    /// A command that needs an ended episode, on an open one.
    #[error("chat is still open: {refused} need an ended chat")]
    ChatOpen {
        /// What was refused ("ratings", "resumes").
        refused: &'static str,
    },
    /// A command for a waiting chat on one that is not waiting.
    #[error("chat is not waiting for an agent: {refused} are refused")]
    NotWaiting {
        /// What was refused.
        refused: &'static str,
    },
    /// Assignment of a chat that already has an agent (C4, R2).
    #[error("chat is already assigned to agent {agent}: double assignment refused")]
    AlreadyAssigned {
        /// The agent holding it.
        agent: AgentId,
    },
    /// A command that needs an agent on a chat that has none.
    #[error("chat has no agent: {refused} are refused")]
    NotAssigned {
        /// What was refused ("transfers", "agent messages").
        refused: &'static str,
    },
    /// An agent acting for a chat someone else holds.
    #[error("agent {agent} does not hold this chat: only the assigned agent may {action}")]
    NotTheAssignedAgent {
        /// The agent who tried.
        agent: AgentId,
        /// What they tried ("post messages").
        action: &'static str,
    },
    /// Transfer to the agent who already holds the chat.
    #[error("transfer to the chat's own agent {agent} is refused")]
    TransferToSelf {
        /// The agent.
        agent: AgentId,
    },
    /// A tick before the deadline, or in a state without one (C5).
    #[error("unattended timeout is not due: deadline {}", deadline.map_or_else(|| "none".to_owned(), |d| d.to_rfc3339()))]
    TimeoutNotDue {
        /// The current deadline, if any.
        deadline: Option<DateTime<Utc>>,
    },
    /// A second rating of the same episode (X3).
    #[error("episode already rated: one rating per episode")]
    AlreadyRated,
    /// A rating of an episode no agent took part in.
    #[error("nothing to rate: no agent took part in this episode")]
    NoAgentToRate,
    /// A score outside 1..=5.
    #[error("rating score {score} is outside {min}..={max}", min = super::RATING_SCORE_MIN, max = super::RATING_SCORE_MAX)]
    RatingOutOfRange {
        /// The refused score.
        score: u8,
    },
    /// A second block of the same visitor in this chat.
    #[error("visitor is already blocked in this chat")]
    AlreadyBlocked,
    /// Redaction of a message the chat does not have.
    #[error("message {message_id} is not in this chat: redaction refused")]
    UnknownMessage {
        /// The id.
        message_id: MessageId,
    },
    /// Redaction of a redacted message.
    #[error("message {message_id} is already redacted")]
    AlreadyRedacted {
        /// The id.
        message_id: MessageId,
    },
    /// A message id used twice in the chat.
    #[error("message id {message_id} is already used in this chat")]
    DuplicateMessageId {
        /// The id.
        message_id: MessageId,
    },
    /// A message with no content at all.
    #[error("message is empty: text, an attachment, an article or a video-call link is needed")]
    EmptyMessage,
    /// A visitor sending what only agents and the system may send.
    #[error("visitors cannot send {what}: only agents and the system may")]
    VisitorCannotSend {
        /// What ("quick replies", "articles", "video-call links").
        what: &'static str,
    },
    /// A field that is present but unusable.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A named limit was exceeded (see the `*_MAX` constants and `docs/LIFECYCLE.md`).
    #[error("limit exceeded: {limit} is {max}, got {actual}")]
    LimitExceeded {
        /// The limit's name in snake case, unit last (`message_text_bytes_max`).
        limit: &'static str,
        /// Its value.
        max: u64,
        /// What the command had.
        actual: u64,
    },
}
