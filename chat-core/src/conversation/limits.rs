//! Named limits of one chat.
//!
//! Every size and count a visitor or agent controls has a bound here, so a runaway client becomes
//! a clear [`Rejection::LimitExceeded`](super::Rejection::LimitExceeded) instead of an unbounded
//! stream, an event the store refuses (`chat_store::EVENT_BYTES_MAX` is 1 MiB) or a state that
//! no longer fits in memory. The values are documented in `docs/LIFECYCLE.md`.

/// Longest message text, in bytes (UTF-8). Live-chat messages are short; 4 KiB is a long one.
pub const MESSAGE_TEXT_BYTES_MAX: usize = 4096;
/// Most attachments (metadata only) on one message.
pub const ATTACHMENTS_PER_MESSAGE_MAX: usize = 10;
/// Most quick replies on one message.
pub const QUICK_REPLIES_PER_MESSAGE_MAX: usize = 10;
/// Longest quick-reply label, in bytes.
pub const QUICK_REPLY_BYTES_MAX: usize = 128;
/// Longest article title, in bytes.
pub const ARTICLE_TITLE_BYTES_MAX: usize = 256;
/// Longest article body, in bytes.
pub const ARTICLE_BODY_BYTES_MAX: usize = 4096;
/// Longest link (article link, video-call link), in bytes.
pub const LINK_BYTES_MAX: usize = 2048;
/// Most messages in one chat, over all its episodes. The state keeps every message (the case
/// snapshot and redaction need them), so this bounds the state's memory.
pub const MESSAGES_PER_CHAT_MAX: usize = 1000;
/// Most accepted commands of one chat that make it grow (everything but the commands that end an
/// episode, which stay possible so a full chat can always be closed). It bounds the set of
/// remembered command ids (C9).
pub const COMMANDS_PER_CHAT_MAX: usize = 4096;
/// Most episodes (the first one plus resumptions, C7) of one chat.
pub const EPISODES_PER_CHAT_MAX: u32 = 50;
/// Longest resume token, in bytes.
pub const RESUME_TOKEN_BYTES_MAX: usize = 256;
/// Longest contact e-mail address, in bytes (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Most form answers passed at start.
pub const FORM_ANSWERS_MAX: usize = 50;
/// Most routing variables passed at start.
pub const ROUTING_VARS_MAX: usize = 50;
/// Highest rating score; the lowest is [`RATING_SCORE_MIN`].
pub const RATING_SCORE_MAX: u8 = 5;
/// Lowest rating score.
pub const RATING_SCORE_MIN: u8 = 1;
/// Longest rating comment, in bytes.
pub const RATING_COMMENT_BYTES_MAX: usize = 2000;
/// Longest unattended timeout a module may set, in seconds (7 days).
pub const UNATTENDED_TIMEOUT_S_MAX: u32 = 7 * 24 * 3600;
/// Most messages a case snapshot carries (the latest ones); the ticketing system reads older ones
/// from the chat's log. Keeps `CaseCreated` well under the store's event size limit.
pub const CASE_MESSAGES_MAX: usize = 100;
/// Most template fields on a case.
pub const CASE_TEMPLATE_FIELDS_MAX: usize = 50;
