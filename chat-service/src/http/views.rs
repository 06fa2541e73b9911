//! Response shapes shared by the visitor and the agent APIs: a chat and its messages as a reader
//! may see them (X4: a redacted message keeps its id, author, time and the redaction record, and
//! loses its content — through [`ChatMessage::for_readers`], the one place that rule lives).

use chat_core::conversation::{ChatMessage, ChatState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One message as readers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// The message id.
    pub id: String,
    /// The episode it belongs to (a resumed chat has several).
    pub episode: u32,
    /// `Visitor`, `System` or `{"Agent": "<id>"}`.
    #[schema(value_type = Object)]
    pub author: Value,
    /// When it was accepted (RFC 3339).
    pub at: String,
    /// The text (empty when redacted).
    pub text: String,
    /// Attachments: id, file name, content type, size.
    #[schema(value_type = Vec<Object>)]
    pub attachments: Value,
    /// Quick replies offered with it.
    pub quick_replies: Vec<String>,
    /// An article (title and link or body).
    #[schema(value_type = Option<Object>)]
    pub article: Option<Value>,
    /// A video-call link.
    pub video_call_link: Option<String>,
    /// Set when redacted: who and when.
    #[schema(value_type = Option<Object>)]
    pub redaction: Option<Value>,
}

impl From<&ChatMessage> for MessageView {
    fn from(message: &ChatMessage) -> Self {
        let message = message.for_readers();
        Self {
            id: message.id.to_string(),
            episode: message.episode,
            author: serde_json::to_value(message.author).unwrap_or(Value::Null),
            at: message.at.to_rfc3339(),
            text: message.body.text,
            attachments: serde_json::to_value(&message.body.attachments).unwrap_or(Value::Null),
            quick_replies: message.body.quick_replies,
            article: message
                .body
                .article
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
            video_call_link: message.body.video_call_link,
            redaction: message.redaction.and_then(|r| serde_json::to_value(r).ok()),
        }
    }
}

/// A chat as a reader sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatView {
    /// The chat id.
    pub chat: String,
    /// The module.
    pub module: Option<String>,
    /// The contact.
    pub contact: Option<String>,
    /// `NotStarted`, `Waiting`, `Active`, `Ended` … (chat-core's phase).
    pub phase: String,
    /// The last episode's disposition once ended (`Managed`, `Offline`, `Unmanaged`, `Timeout` …).
    pub disposition: Option<String>,
    /// The agent holding it.
    pub agent: Option<String>,
    /// The queue it waits in.
    pub queue: Option<String>,
    /// The current episode (1 for a chat never resumed).
    pub episode: u32,
    /// Whether the current episode was rated.
    pub rated: bool,
    /// Whether the visitor is blocked.
    pub blocked: bool,
    /// The chat stream's version (send it back as `expected_version` to act only on this state).
    pub version: u64,
    /// The pre-chat form answers.
    #[schema(value_type = Object)]
    pub form_answers: Value,
    /// Page data (M6: firstname, lastname, message, vars).
    #[schema(value_type = Object)]
    pub page: Value,
    /// Every message, redactions applied.
    pub messages: Vec<MessageView>,
}

impl From<&ChatState> for ChatView {
    fn from(state: &ChatState) -> Self {
        let record = state.record.as_ref();
        Self {
            chat: record.map(|r| r.chat.to_string()).unwrap_or_default(),
            module: record.map(|r| r.module.to_string()),
            contact: record.map(|r| r.contact.to_string()),
            phase: format!("{:?}", state.phase),
            disposition: state.disposition.map(|d| format!("{d:?}")),
            agent: state.agent.map(|a| a.to_string()),
            queue: state.queue.map(|q| q.to_string()),
            episode: state.episode,
            rated: state.rated,
            blocked: state.blocked,
            version: state.version,
            form_answers: record
                .and_then(|r| serde_json::to_value(&r.form_answers).ok())
                .unwrap_or(Value::Null),
            page: record
                .and_then(|r| serde_json::to_value(&r.page).ok())
                .unwrap_or(Value::Null),
            messages: state.messages.iter().map(MessageView::from).collect(),
        }
    }
}
