//! The state of one chat, folded from its events, and the deadline derived from it.
//!
//! `evolve` is total: a stored event is a fact, so it is applied whatever the state looks like.
//! Everything `decide` needs is here, including the accepted command ids (C9) and the instant the
//! chat became unattended (C5), so that a state rebuilt after a restart decides exactly like the
//! live one.

use super::event::{ChatEvent, ChatRecord};
use super::model::{ChatMessage, Disposition, Party, QueueCause, Redaction};
use crate::{AgentId, CommandId, QueueId};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Where a chat is in its life. Offline, unmanaged, timed out and so on are not phases but the
/// [`Disposition`] of an `Ended` episode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Phase {
    /// No chat yet (the empty stream).
    #[default]
    NotStarted,
    /// Waiting for an agent.
    Queued,
    /// Nobody is available, asynchronous chatting is on: the visitor may keep writing (C3).
    AsyncOpen,
    /// One agent holds the chat (C4).
    Active,
    /// The current episode has ended; the chat may be rated or resumed.
    Ended,
}

/// The state of one chat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatState {
    /// Number of events applied; the stream version.
    pub version: u64,
    /// Where the chat is.
    pub phase: Phase,
    /// The chat record (`None` before the start).
    pub record: Option<ChatRecord>,
    /// The current episode (1 after the start, +1 per resume).
    pub episode: u32,
    /// The agent holding the chat now.
    pub agent: Option<AgentId>,
    /// The last agent who held the chat in the current episode (kept after the end, for rating).
    pub episode_agent: Option<AgentId>,
    /// The queue it waits in, after a transfer to a queue.
    pub queue: Option<QueueId>,
    /// The disposition of the current episode, once ended.
    pub disposition: Option<Disposition>,
    /// Whether the current episode is rated.
    pub rated: bool,
    /// Whether the visitor was blocked in this chat (F5).
    pub blocked: bool,
    /// The episode went asynchronous and no agent has replied yet (C3).
    pub awaiting_async_reply: bool,
    /// Since when the chat is unattended (the clock of C5); `None` when nothing waits for an
    /// agent. See [`next_deadline`].
    pub unattended_since: Option<DateTime<Utc>>,
    /// Messages posted in the current episode.
    pub episode_messages: u32,
    /// Every message, in order, with redaction records.
    pub messages: Vec<ChatMessage>,
    /// Ids of accepted commands (C9), bounded by the per-chat limits.
    pub accepted_commands: BTreeSet<CommandId>,
}

impl ChatState {
    /// Whether the current episode is open (queued, asynchronous or active).
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Queued | Phase::AsyncOpen | Phase::Active)
    }

    /// Applies one event: the one fold, behind both `Conversation::evolve` (a borrowed event)
    /// and `Conversation::evolve_owned` (an owned one).
    ///
    /// Why a `Cow`: the state keeps two parts of an event whole, the chat record and each
    /// message. Folding a borrowed event has to clone them; a replay decodes owned events and
    /// drops them right after, so it moves them instead (no allocation, no copy of the text).
    /// The rules read the event by reference ([`Self::follow`]); only keeping those two parts
    /// ([`Self::keep`]) depends on who owns it, so the rules exist once.
    pub(crate) fn apply(&mut self, event: Cow<'_, ChatEvent>) {
        self.follow(&event);
        self.keep(event);
    }

    /// Stores the parts of `event` the state keeps whole: moved out of an owned event, cloned
    /// out of a borrowed one. Independent of [`Self::follow`], which reads only `Copy` fields.
    fn keep(&mut self, event: Cow<'_, ChatEvent>) {
        match event {
            Cow::Owned(ChatEvent::ChatStarted { record, .. }) => self.record = Some(*record),
            Cow::Borrowed(ChatEvent::ChatStarted { record, .. }) => {
                self.record = Some((**record).clone());
            }
            Cow::Owned(ChatEvent::MessagePosted { message, .. }) => self.messages.push(*message),
            Cow::Borrowed(ChatEvent::MessagePosted { message, .. }) => {
                self.messages.push((**message).clone());
            }
            Cow::Owned(_) | Cow::Borrowed(_) => {}
        }
    }

    /// Every rule of the fold except keeping the record and the messages ([`Self::keep`]).
    fn follow(&mut self, event: &ChatEvent) {
        self.version += 1;
        self.accepted_commands.insert(event.command_id());
        match event {
            ChatEvent::ChatStarted { at, .. } => {
                self.episode = 1;
                self.enter_queue(*at, None);
            }
            ChatEvent::ChatResumed { at, episode, .. } => {
                self.episode = *episode;
                self.episode_agent = None;
                self.disposition = None;
                self.rated = false;
                self.awaiting_async_reply = false;
                self.episode_messages = 0;
                self.enter_queue(*at, None);
            }
            ChatEvent::ChatQueued { at, cause, .. } => {
                let queue = match cause {
                    QueueCause::Transferred { queue, .. } => Some(*queue),
                    QueueCause::Started | QueueCause::Resumed => None,
                };
                self.enter_queue(*at, queue);
            }
            ChatEvent::AsyncChattingStarted { .. } => {
                self.phase = Phase::AsyncOpen;
                self.unattended_since = None;
                self.awaiting_async_reply = true;
            }
            ChatEvent::AgentAssigned { at, agent, .. } => {
                self.phase = Phase::Active;
                self.agent = Some(*agent);
                self.episode_agent = Some(*agent);
                self.queue = None;
                // The new agent gets the full unattended time to answer.
                self.unattended_since = Some(*at);
            }
            ChatEvent::MessagePosted { message, .. } => {
                match message.author {
                    Party::Agent(_) => {
                        self.unattended_since = None;
                        self.awaiting_async_reply = false;
                    }
                    Party::Visitor if matches!(self.phase, Phase::Queued | Phase::Active) => {
                        // The oldest unanswered visitor message starts the clock.
                        self.unattended_since.get_or_insert(message.at);
                    }
                    Party::Visitor | Party::System => {}
                }
                self.episode_messages += 1;
            }
            ChatEvent::EpisodeEnded { disposition, .. } => {
                self.phase = Phase::Ended;
                self.disposition = Some(*disposition);
                self.agent = None;
                self.queue = None;
                self.unattended_since = None;
                self.awaiting_async_reply = false;
            }
            ChatEvent::ChatRated { .. } => self.rated = true,
            ChatEvent::ContactBlocked { .. } => self.blocked = true,
            ChatEvent::MessageRedacted {
                at, message_id, by, ..
            } => {
                if let Some(message) = self.messages.iter_mut().find(|m| m.id == *message_id) {
                    message.redaction = Some(Redaction { by: *by, at: *at });
                }
            }
            ChatEvent::AsyncReplyEmailRequested { .. }
            | ChatEvent::TranscriptEmailRequested { .. }
            | ChatEvent::CaseCreated { .. } => {}
        }
    }

    fn enter_queue(&mut self, at: DateTime<Utc>, queue: Option<QueueId>) {
        self.phase = Phase::Queued;
        self.agent = None;
        self.queue = queue;
        self.unattended_since = Some(at);
    }
}

/// The instant at which the chat times out if nothing happens before (C5), derived from the
/// state alone so a host rebuilds its timers from the log after a restart.
///
/// The clock runs only in `Queued` and `Active`: it starts when the chat enters the queue (start,
/// resume, transfer to a queue), restarts when an agent is assigned, stops when an agent posts a
/// message, and restarts at the first visitor message after that. `AsyncOpen` has no deadline
/// (asynchronous chats wait for agents by design), nor has an ended chat or a module without a
/// timeout.
pub fn next_deadline(state: &ChatState) -> Option<DateTime<Utc>> {
    if !matches!(state.phase, Phase::Queued | Phase::Active) {
        return None;
    }
    let timeout_s = state.record.as_ref()?.settings.unattended_timeout_s?;
    let since = state.unattended_since?;
    since.checked_add_signed(TimeDelta::seconds(i64::from(timeout_s)))
}
