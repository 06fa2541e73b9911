//! The chat's rules: which command is accepted in which state, and what it records.
//!
//! The allowed commands per phase are tabulated in `docs/LIFECYCLE.md`; the property test
//! `tests/lifecycle_properties.rs` checks this code against an independent copy of that table.

use super::command::{ChatCommand, StartChat};
use super::event::{ChatEvent, ChatRecord};
use super::limits::*;
use super::model::{
    Admission, AssignVia, CaseData, ChatMessage, Disposition, EndedBy, MessageBody, OfflineReason,
    Party, QueueCause,
};
use super::rejection::Rejection;
use super::state::{ChatState, Phase, next_deadline};
use crate::{AgentId, CaseId, CommandId, Decider, FieldValue, PAGE_VARS_MAX};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The conversation aggregate: one stream per chat (`chat-<uuid>`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Conversation;

impl Decider for Conversation {
    type State = ChatState;
    type Command = ChatCommand;
    type Event = ChatEvent;
    type Rejection = Rejection;

    fn decide(
        state: &ChatState,
        command: &ChatCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ChatEvent>, Rejection> {
        let command_id = command.command_id();
        if state.accepted_commands.contains(&command_id) {
            // C9: a retry of an accepted command records nothing new.
            return Ok(Vec::new());
        }
        if !command.ends_episode() {
            limit(
                "commands_per_chat_max",
                COMMANDS_PER_CHAT_MAX,
                state.accepted_commands.len() + 1,
            )?;
        }
        let Some(record) = &state.record else {
            return match command {
                ChatCommand::Start(start) => decide_start(start, now),
                _ => Err(Rejection::NotStarted),
            };
        };
        let ctx = Ctx {
            state,
            record,
            command_id,
            now,
        };
        match command {
            ChatCommand::Start(_) => Err(Rejection::AlreadyStarted),
            ChatCommand::NoAgentAvailable {
                case_id,
                case_template,
                ..
            } => ctx.no_agent_available(*case_id, case_template),
            ChatCommand::Assign {
                agent, manual_pick, ..
            } => ctx.assign(*agent, *manual_pick),
            ChatCommand::PostMessage {
                message_id,
                author,
                body,
                ..
            } => ctx.post_message(*message_id, *author, body),
            ChatCommand::TransferToAgent { by, to, .. } => ctx.transfer_to_agent(*by, *to),
            ChatCommand::TransferToQueue { by, queue, .. } => {
                ctx.holding_agent(*by, "transfers", "transfer the chat")?;
                Ok(vec![ChatEvent::ChatQueued {
                    command_id,
                    at: now,
                    episode: state.episode,
                    cause: QueueCause::Transferred {
                        from: *by,
                        queue: *queue,
                    },
                }])
            }
            ChatCommand::End { by, .. } => ctx.end(*by),
            ChatCommand::Tick { .. } => ctx.tick(),
            ChatCommand::Rate { score, comment, .. } => ctx.rate(*score, comment.as_deref()),
            ChatCommand::Resume { admission, .. } => ctx.resume(admission),
            ChatCommand::Block { by, .. } => ctx.block(*by),
            ChatCommand::ConvertToCase {
                by,
                case_id,
                template,
                ..
            } => {
                ctx.open("cases")?;
                ctx.case(*case_id, Some(*by), template, Party::Agent(*by))
            }
            ChatCommand::Redact { by, message_id, .. } => ctx.redact(*by, *message_id),
        }
    }

    fn evolve(state: &mut ChatState, event: &ChatEvent) {
        state.apply(Cow::Borrowed(event));
    }

    /// Moves the chat record and messages into the state instead of cloning them (replay).
    fn evolve_owned(state: &mut ChatState, event: ChatEvent) {
        state.apply(Cow::Owned(event));
    }
}

/// Refuses `actual` above `max`, naming the limit.
fn limit(name: &'static str, max: usize, actual: usize) -> Result<(), Rejection> {
    if actual > max {
        return Err(Rejection::LimitExceeded {
            limit: name,
            max: max as u64,
            actual: actual as u64,
        });
    }
    Ok(())
}

fn decide_start(start: &StartChat, now: DateTime<Utc>) -> Result<Vec<ChatEvent>, Rejection> {
    if start.resume_token.is_empty() {
        return Err(Rejection::InvalidField {
            field: "resume_token",
            reason: "must not be empty",
        });
    }
    limit(
        "resume_token_bytes_max",
        RESUME_TOKEN_BYTES_MAX,
        start.resume_token.len(),
    )?;
    if let Some(email) = &start.contact_email {
        limit("email_bytes_max", EMAIL_BYTES_MAX, email.len())?;
        if !email.contains('@') {
            return Err(Rejection::InvalidField {
                field: "contact_email",
                reason: "must contain @",
            });
        }
    }
    limit(
        "form_answers_max",
        FORM_ANSWERS_MAX,
        start.form_answers.len(),
    )?;
    limit(
        "routing_vars_max",
        ROUTING_VARS_MAX,
        start.routing_vars.len(),
    )?;
    limit("page_vars_max", PAGE_VARS_MAX, start.page.vars.len())?;
    if let Some(timeout_s) = start.settings.unattended_timeout_s {
        limit(
            "unattended_timeout_s_max",
            UNATTENDED_TIMEOUT_S_MAX as usize,
            timeout_s as usize,
        )?;
    }
    let admitted = admit(
        start.command_id,
        now,
        1,
        &start.admission,
        false,
        QueueCause::Started,
    )?;
    let record = ChatRecord {
        chat: start.chat,
        module: start.module,
        contact: start.contact,
        contact_email: start.contact_email.clone(),
        resume_token: start.resume_token.clone(),
        page: start.page.clone(),
        form_answers: start.form_answers.clone(),
        routing_vars: start.routing_vars.clone(),
        origin: start.origin,
        settings: start.settings.clone(),
    };
    Ok(vec![
        ChatEvent::ChatStarted {
            command_id: start.command_id,
            at: now,
            record: Box::new(record),
        },
        admitted,
    ])
}

/// The start / resume decision (C2, F5): blocked contacts are refused; outside working hours or
/// at the module's maximum the episode ends offline, with the reason; otherwise it is queued.
fn admit(
    command_id: CommandId,
    now: DateTime<Utc>,
    episode: u32,
    admission: &Admission,
    blocked_here: bool,
    cause: QueueCause,
) -> Result<ChatEvent, Rejection> {
    if admission.contact_blocked || blocked_here {
        return Err(Rejection::ContactBlocked);
    }
    let offline = if !admission.within_working_hours {
        Some(OfflineReason::OutsideWorkingHours)
    } else {
        admission
            .open_chats_max
            .filter(|max| admission.open_chats >= *max)
            .map(|open_chats_max| OfflineReason::ModuleAtCapacity {
                open_chats: admission.open_chats,
                open_chats_max,
            })
    };
    Ok(match offline {
        Some(reason) => ChatEvent::EpisodeEnded {
            command_id,
            at: now,
            episode,
            disposition: Disposition::Offline { reason },
            by: Party::System,
        },
        None => ChatEvent::ChatQueued {
            command_id,
            at: now,
            episode,
            cause,
        },
    })
}

/// Validates a message's content: not empty, the author's rights, then the limits.
fn validate_body(
    author: Party,
    body: &MessageBody,
    attachment_bytes_max: u64,
) -> Result<(), Rejection> {
    if body.text.is_empty()
        && body.attachments.is_empty()
        && body.article.is_none()
        && body.video_call_link.is_none()
    {
        return Err(Rejection::EmptyMessage);
    }
    // Rights before sizes: a visitor's quick reply is refused as such, whatever its length.
    if author == Party::Visitor {
        let what = if !body.quick_replies.is_empty() {
            Some("quick replies")
        } else if body.article.is_some() {
            Some("articles")
        } else if body.video_call_link.is_some() {
            Some("video-call links")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Rejection::VisitorCannotSend { what });
        }
    }
    limit(
        "message_text_bytes_max",
        MESSAGE_TEXT_BYTES_MAX,
        body.text.len(),
    )?;
    limit(
        "attachments_per_message_max",
        ATTACHMENTS_PER_MESSAGE_MAX,
        body.attachments.len(),
    )?;
    for attachment in &body.attachments {
        if attachment.size_bytes > attachment_bytes_max {
            return Err(Rejection::LimitExceeded {
                limit: "attachment_bytes_max",
                max: attachment_bytes_max,
                actual: attachment.size_bytes,
            });
        }
    }
    limit(
        "quick_replies_per_message_max",
        QUICK_REPLIES_PER_MESSAGE_MAX,
        body.quick_replies.len(),
    )?;
    for reply in &body.quick_replies {
        limit("quick_reply_bytes_max", QUICK_REPLY_BYTES_MAX, reply.len())?;
    }
    if let Some(article) = &body.article {
        if article.title.is_empty() {
            return Err(Rejection::InvalidField {
                field: "article.title",
                reason: "must not be empty",
            });
        }
        limit(
            "article_title_bytes_max",
            ARTICLE_TITLE_BYTES_MAX,
            article.title.len(),
        )?;
        let link = article.link.as_deref().unwrap_or_default();
        limit("link_bytes_max", LINK_BYTES_MAX, link.len())?;
        let text = article.body.as_deref().unwrap_or_default();
        limit("article_body_bytes_max", ARTICLE_BODY_BYTES_MAX, text.len())?;
    }
    if let Some(link) = &body.video_call_link {
        limit("link_bytes_max", LINK_BYTES_MAX, link.len())?;
    }
    Ok(())
}

/// One decision's context: the state, the started chat's record, the command id and `now`.
struct Ctx<'a> {
    state: &'a ChatState,
    record: &'a ChatRecord,
    command_id: CommandId,
    now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// Refuses the command on an ended episode.
    fn open(&self, refused: &'static str) -> Result<(), Rejection> {
        if self.state.phase == Phase::Ended {
            return Err(Rejection::ChatEnded { refused });
        }
        Ok(())
    }

    /// Requires that `agent` holds the open chat.
    fn holding_agent(
        &self,
        agent: AgentId,
        refused: &'static str,
        action: &'static str,
    ) -> Result<(), Rejection> {
        self.open(refused)?;
        match self.state.agent {
            None => Err(Rejection::NotAssigned { refused }),
            Some(holder) if holder != agent => {
                Err(Rejection::NotTheAssignedAgent { agent, action })
            }
            Some(_) => Ok(()),
        }
    }

    /// Ends the episode, and asks for the transcript e-mail when the module wants one (O2).
    fn end_episode(&self, disposition: Disposition, by: Party) -> Vec<ChatEvent> {
        let mut events = vec![ChatEvent::EpisodeEnded {
            command_id: self.command_id,
            at: self.now,
            episode: self.state.episode,
            disposition,
            by,
        }];
        if let Some(to) = &self.record.contact_email
            && self.record.settings.transcript_email
            && self.state.episode_messages > 0
            && disposition != Disposition::Blocked
        {
            events.push(ChatEvent::TranscriptEmailRequested {
                command_id: self.command_id,
                at: self.now,
                episode: self.state.episode,
                to: to.clone(),
            });
        }
        events
    }

    fn no_agent_available(
        &self,
        case_id: CaseId,
        case_template: &BTreeMap<String, FieldValue>,
    ) -> Result<Vec<ChatEvent>, Rejection> {
        self.open("no-agent reports")?;
        if self.state.phase != Phase::Queued {
            return Err(Rejection::NotWaiting {
                refused: "no-agent reports",
            });
        }
        let settings = &self.record.settings;
        if settings.async_chatting {
            Ok(vec![ChatEvent::AsyncChattingStarted {
                command_id: self.command_id,
                at: self.now,
                episode: self.state.episode,
            }])
        } else if settings.case_when_no_agent {
            self.case(case_id, None, case_template, Party::System)
        } else {
            Ok(self.end_episode(Disposition::Unmanaged, Party::System))
        }
    }

    fn assign(&self, agent: AgentId, manual_pick: bool) -> Result<Vec<ChatEvent>, Rejection> {
        self.open("assignments")?;
        if let Some(holder) = self.state.agent {
            return Err(Rejection::AlreadyAssigned { agent: holder });
        }
        Ok(vec![ChatEvent::AgentAssigned {
            command_id: self.command_id,
            at: self.now,
            episode: self.state.episode,
            agent,
            via: if manual_pick {
                AssignVia::ManualPick
            } else {
                AssignVia::Routing
            },
        }])
    }

    fn post_message(
        &self,
        message_id: crate::MessageId,
        author: Party,
        body: &MessageBody,
    ) -> Result<Vec<ChatEvent>, Rejection> {
        self.open("messages")?;
        if let Party::Agent(agent) = author {
            self.holding_agent(agent, "agent messages", "post agent messages")?;
        }
        if self.state.messages.iter().any(|m| m.id == message_id) {
            return Err(Rejection::DuplicateMessageId { message_id });
        }
        limit(
            "messages_per_chat_max",
            MESSAGES_PER_CHAT_MAX,
            self.state.messages.len() + 1,
        )?;
        validate_body(author, body, self.record.settings.attachment_bytes_max)?;
        let mut events = vec![ChatEvent::MessagePosted {
            command_id: self.command_id,
            message: Box::new(ChatMessage {
                id: message_id,
                episode: self.state.episode,
                author,
                at: self.now,
                body: body.clone(),
                redaction: None,
            }),
        }];
        if let (Party::Agent(_), true, Some(to)) = (
            author,
            self.state.awaiting_async_reply,
            &self.record.contact_email,
        ) {
            events.push(ChatEvent::AsyncReplyEmailRequested {
                command_id: self.command_id,
                at: self.now,
                episode: self.state.episode,
                to: to.clone(),
                message_id,
            });
        }
        Ok(events)
    }

    fn transfer_to_agent(&self, by: AgentId, to: AgentId) -> Result<Vec<ChatEvent>, Rejection> {
        self.holding_agent(by, "transfers", "transfer the chat")?;
        if to == by {
            return Err(Rejection::TransferToSelf { agent: to });
        }
        Ok(vec![ChatEvent::AgentAssigned {
            command_id: self.command_id,
            at: self.now,
            episode: self.state.episode,
            agent: to,
            via: AssignVia::Transfer { from: by },
        }])
    }

    fn end(&self, by: EndedBy) -> Result<Vec<ChatEvent>, Rejection> {
        self.open("ends")?;
        let party = match by {
            EndedBy::Visitor => Party::Visitor,
            EndedBy::Agent(agent) => {
                self.holding_agent(agent, "agent ends", "end the chat")?;
                Party::Agent(agent)
            }
        };
        let disposition = if self.state.episode_agent.is_some() {
            Disposition::Managed
        } else {
            Disposition::Abandoned
        };
        Ok(self.end_episode(disposition, party))
    }

    fn tick(&self) -> Result<Vec<ChatEvent>, Rejection> {
        self.open("timeouts")?;
        match next_deadline(self.state) {
            Some(deadline) if self.now >= deadline => {
                Ok(self.end_episode(Disposition::Timeout, Party::System))
            }
            deadline => Err(Rejection::TimeoutNotDue { deadline }),
        }
    }

    fn rate(&self, score: u8, comment: Option<&str>) -> Result<Vec<ChatEvent>, Rejection> {
        if self.state.is_open() {
            return Err(Rejection::ChatOpen { refused: "ratings" });
        }
        if self.state.rated {
            return Err(Rejection::AlreadyRated);
        }
        let Some(agent) = self.state.episode_agent else {
            return Err(Rejection::NoAgentToRate);
        };
        if !(RATING_SCORE_MIN..=RATING_SCORE_MAX).contains(&score) {
            return Err(Rejection::RatingOutOfRange { score });
        }
        limit(
            "rating_comment_bytes_max",
            RATING_COMMENT_BYTES_MAX,
            comment.map_or(0, str::len),
        )?;
        Ok(vec![ChatEvent::ChatRated {
            command_id: self.command_id,
            at: self.now,
            episode: self.state.episode,
            agent,
            score,
            comment: comment.map(str::to_owned),
        }])
    }

    fn resume(&self, admission: &Admission) -> Result<Vec<ChatEvent>, Rejection> {
        if self.state.is_open() {
            return Err(Rejection::ChatOpen { refused: "resumes" });
        }
        let episode = self.state.episode + 1;
        limit(
            "episodes_per_chat_max",
            EPISODES_PER_CHAT_MAX as usize,
            episode as usize,
        )?;
        let admitted = admit(
            self.command_id,
            self.now,
            episode,
            admission,
            self.state.blocked,
            QueueCause::Resumed,
        )?;
        Ok(vec![
            ChatEvent::ChatResumed {
                command_id: self.command_id,
                at: self.now,
                episode,
            },
            admitted,
        ])
    }

    fn block(&self, by: AgentId) -> Result<Vec<ChatEvent>, Rejection> {
        if self.state.blocked {
            return Err(Rejection::AlreadyBlocked);
        }
        let mut events = vec![ChatEvent::ContactBlocked {
            command_id: self.command_id,
            at: self.now,
            contact: self.record.contact,
            by,
        }];
        if self.state.is_open() {
            events.extend(self.end_episode(Disposition::Blocked, Party::Agent(by)));
        }
        Ok(events)
    }

    /// Creates a case from the open chat and ends the episode with disposition case (A6).
    fn case(
        &self,
        case_id: CaseId,
        requested_by: Option<AgentId>,
        template: &BTreeMap<String, FieldValue>,
        by: Party,
    ) -> Result<Vec<ChatEvent>, Rejection> {
        limit(
            "case_template_fields_max",
            CASE_TEMPLATE_FIELDS_MAX,
            template.len(),
        )?;
        let messages = &self.state.messages;
        let skip = messages.len().saturating_sub(CASE_MESSAGES_MAX);
        let case = CaseData {
            case_id,
            chat: self.record.chat,
            module: self.record.module,
            contact: self.record.contact,
            contact_email: self.record.contact_email.clone(),
            requested_by,
            form_answers: self.record.form_answers.clone(),
            page: self.record.page.clone(),
            messages: messages[skip..]
                .iter()
                .map(ChatMessage::for_readers)
                .collect(),
            messages_total: u32::try_from(messages.len()).unwrap_or(u32::MAX),
            template: template.clone(),
        };
        let mut events = vec![ChatEvent::CaseCreated {
            command_id: self.command_id,
            at: self.now,
            episode: self.state.episode,
            case: Box::new(case),
        }];
        events.extend(self.end_episode(Disposition::Case { case_id }, by));
        Ok(events)
    }

    fn redact(
        &self,
        by: AgentId,
        message_id: crate::MessageId,
    ) -> Result<Vec<ChatEvent>, Rejection> {
        let Some(message) = self.state.messages.iter().find(|m| m.id == message_id) else {
            return Err(Rejection::UnknownMessage { message_id });
        };
        if message.redaction.is_some() {
            return Err(Rejection::AlreadyRedacted { message_id });
        }
        Ok(vec![ChatEvent::MessageRedacted {
            command_id: self.command_id,
            at: self.now,
            message_id,
            by,
        }])
    }
}
