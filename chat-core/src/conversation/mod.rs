//! The conversation aggregate: one chat from the visitor's first request to its end and
//! resumption (C1–C9, F5, A3, A6, X4), as a pure [`Decider`](crate::Decider).
//!
//! Why a single aggregate per chat: every rule of the lifecycle (double assignment, messages after
//! the end, the unattended timeout, one disposition per episode) is a rule about one chat's
//! history, so one stream (`chat-<uuid>`) with optimistic concurrency is enough to keep them under
//! any number of service processes. Rules that span aggregates (an agent's capacity) are kept by
//! the host appending the chat's and the agent's events atomically.
//!
//! The state machine, the timeout rule, the idempotency rule and every choice the requirements
//! left open are written down in `docs/LIFECYCLE.md`.

mod command;
mod decide;
mod event;
mod limits;
mod model;
mod rejection;
mod state;

pub use command::{ChatCommand, StartChat};
pub use decide::Conversation;
pub use event::{ChatEvent, ChatRecord};
pub use limits::{
    ARTICLE_BODY_BYTES_MAX, ARTICLE_TITLE_BYTES_MAX, ATTACHMENTS_PER_MESSAGE_MAX,
    CASE_MESSAGES_MAX, CASE_TEMPLATE_FIELDS_MAX, COMMANDS_PER_CHAT_MAX, EMAIL_BYTES_MAX,
    EPISODES_PER_CHAT_MAX, FORM_ANSWERS_MAX, LINK_BYTES_MAX, MESSAGE_TEXT_BYTES_MAX,
    MESSAGES_PER_CHAT_MAX, QUICK_REPLIES_PER_MESSAGE_MAX, QUICK_REPLY_BYTES_MAX,
    RATING_COMMENT_BYTES_MAX, RATING_SCORE_MAX, RATING_SCORE_MIN, RESUME_TOKEN_BYTES_MAX,
    ROUTING_VARS_MAX, UNATTENDED_TIMEOUT_S_MAX,
};
pub use model::{
    Admission, Article, AssignVia, CaseData, ChatMessage, ChatSettings, Disposition, EndedBy,
    MessageBody, OfflineReason, Origin, Party, QueueCause, Redaction,
};
pub use rejection::Rejection;
pub use state::{ChatState, Phase, next_deadline};
