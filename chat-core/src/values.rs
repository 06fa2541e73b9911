//! Plain values shared by the lifecycle and the configuration side of chat-core.
//!
//! They live in one place because the same data crosses both: a form field's validated value
//! (configuration, F1–F3) becomes part of a chat's start (lifecycle, C1), an attachment's metadata
//! is checked by a form or module limit and carried by a message (A5), and the page data of the
//! embed snippet (M6) arrives with the chat's start.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest text of a single-valued field or page variable value, in bytes.
pub const FIELD_TEXT_BYTES_MAX: usize = 4096;
/// Most page variables (`vars`) a page may pass in (M6).
pub const PAGE_VARS_MAX: usize = 50;
/// Longest page variable name, in bytes.
pub const PAGE_VAR_NAME_BYTES_MAX: usize = 64;

/// The value of one form field after validation (F1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// Input (text, number, e-mail), textarea, select or radio: one text value.
    Text(String),
    /// Checkboxes: the options ticked, in the form's option order.
    Many(Vec<String>),
    /// Agreement: ticked or not.
    Agreed(bool),
    /// Attachment field: the files' metadata (the bytes live outside the log).
    Files(Vec<AttachmentMeta>),
}

/// Metadata of an uploaded file. The event log keeps only this; the content is stored by the host
/// under `storage_key`, which keeps events small and lets redaction delete content (X4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AttachmentMeta {
    /// The file name as the visitor or agent gave it.
    pub file_name: String,
    /// The MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Where the host keeps the bytes (opaque to chat-core).
    pub storage_key: String,
}

/// Data the page passes to the widget (M6): shown to the agent at the start and during the chat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageData {
    /// The contact's first name.
    pub firstname: Option<String>,
    /// The contact's last name.
    pub lastname: Option<String>,
    /// A message shown to the agent at the start of the conversation.
    pub message: Option<String>,
    /// Name/value pairs shown to the agent during the chat, in a stable order.
    pub vars: BTreeMap<String, String>,
}
