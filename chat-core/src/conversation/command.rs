//! What callers may ask of a chat. Every command carries a [`CommandId`] so a retry is recognised
//! (C9); ids, tokens and facts the core cannot know come in as data.

use super::model::{Admission, ChatSettings, EndedBy, MessageBody, Origin, Party};
use crate::{AgentId, CaseId, ChatId, CommandId, ContactId, FieldValue, MessageId, ModuleId};
use crate::{PageData, QueueId};
use std::collections::BTreeMap;

/// A visitor asks for a chat (C1, C2, M6, M9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartChat {
    /// Retry id.
    pub command_id: CommandId,
    /// The new chat's id (its stream is `chat-<id>`).
    pub chat: ChatId,
    /// The module the visitor came through.
    pub module: ModuleId,
    /// The matched or created contact (F4).
    pub contact: ContactId,
    /// The contact's e-mail, when known (async replies and transcripts go there).
    pub contact_email: Option<String>,
    /// Opaque token the host gave the visitor to re-enter the chat (C1).
    pub resume_token: String,
    /// Data the page passed in (M6).
    pub page: PageData,
    /// The validated pre-chat form's answers (F1–F3).
    pub form_answers: BTreeMap<String, FieldValue>,
    /// Routing variables from the form and the page (F3, R5).
    pub routing_vars: BTreeMap<String, String>,
    /// Widget or link.
    pub origin: Origin,
    /// The settings this chat lives by.
    pub settings: ChatSettings,
    /// The host's facts for the offline / queued decision.
    pub admission: Admission,
}

/// Everything a caller can ask of a chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatCommand {
    /// Start the chat (boxed: it is much larger than the other commands).
    Start(Box<StartChat>),
    /// Routing found nobody who can ever take this queued chat (C3, A6). `case_id` and
    /// `case_template` are used only when the module turns such chats into cases.
    NoAgentAvailable {
        /// Retry id.
        command_id: CommandId,
        /// The case id to use if a case is created.
        case_id: CaseId,
        /// The module's case template fields.
        case_template: BTreeMap<String, FieldValue>,
    },
    /// Give a waiting chat to an agent (routing or manual pick, A2). The host appends the agent's
    /// claim atomically with the resulting event.
    Assign {
        /// Retry id.
        command_id: CommandId,
        /// The agent.
        agent: AgentId,
        /// `true` for a manual pick, `false` for automatic routing.
        manual_pick: bool,
    },
    /// Post a message (C4, A3).
    PostMessage {
        /// Retry id.
        command_id: CommandId,
        /// The message's id.
        message_id: MessageId,
        /// Who writes.
        author: Party,
        /// The content.
        body: MessageBody,
    },
    /// The assigned agent hands the chat to another agent (A3).
    TransferToAgent {
        /// Retry id.
        command_id: CommandId,
        /// The assigned agent.
        by: AgentId,
        /// The new agent.
        to: AgentId,
    },
    /// The assigned agent puts the chat back into a queue (A3).
    TransferToQueue {
        /// Retry id.
        command_id: CommandId,
        /// The assigned agent.
        by: AgentId,
        /// The target queue.
        queue: QueueId,
    },
    /// End the chat (C6).
    End {
        /// Retry id.
        command_id: CommandId,
        /// Visitor, or the assigned agent.
        by: EndedBy,
    },
    /// The host's timer fired: end the chat with disposition timeout if its unattended deadline
    /// (see `next_deadline`) has passed at `now` (C5).
    Tick {
        /// Retry id.
        command_id: CommandId,
    },
    /// The visitor rates the ended episode (X3).
    Rate {
        /// Retry id.
        command_id: CommandId,
        /// 1 to 5.
        score: u8,
        /// Optional free text.
        comment: Option<String>,
    },
    /// The visitor resumes an ended chat (C7): a new episode of the same chat.
    Resume {
        /// Retry id.
        command_id: CommandId,
        /// The host's facts, as at start.
        admission: Admission,
    },
    /// An agent blocks the visitor (F5); an open episode ends with disposition blocked.
    Block {
        /// Retry id.
        command_id: CommandId,
        /// The agent.
        by: AgentId,
    },
    /// An agent turns the open chat into a case (A6).
    ConvertToCase {
        /// Retry id.
        command_id: CommandId,
        /// The agent.
        by: AgentId,
        /// The case id (minted by the host).
        case_id: CaseId,
        /// The template fields.
        template: BTreeMap<String, FieldValue>,
    },
    /// An agent redacts a message (X4).
    Redact {
        /// Retry id.
        command_id: CommandId,
        /// The agent.
        by: AgentId,
        /// The message.
        message_id: MessageId,
    },
}

impl ChatCommand {
    /// The command's retry id (C9).
    pub fn command_id(&self) -> CommandId {
        match self {
            Self::Start(start) => start.command_id,
            Self::NoAgentAvailable { command_id, .. }
            | Self::Assign { command_id, .. }
            | Self::PostMessage { command_id, .. }
            | Self::TransferToAgent { command_id, .. }
            | Self::TransferToQueue { command_id, .. }
            | Self::End { command_id, .. }
            | Self::Tick { command_id }
            | Self::Rate { command_id, .. }
            | Self::Resume { command_id, .. }
            | Self::Block { command_id, .. }
            | Self::ConvertToCase { command_id, .. }
            | Self::Redact { command_id, .. } => *command_id,
        }
    }

    /// Whether the command can end an episode. Such commands stay possible when the chat has
    /// reached [`COMMANDS_PER_CHAT_MAX`](super::COMMANDS_PER_CHAT_MAX), so a full chat can always
    /// be closed; they are bounded anyway (one end per episode).
    pub(crate) fn ends_episode(&self) -> bool {
        matches!(
            self,
            Self::NoAgentAvailable { .. }
                | Self::End { .. }
                | Self::Tick { .. }
                | Self::Block { .. }
                | Self::ConvertToCase { .. }
        )
    }
}
