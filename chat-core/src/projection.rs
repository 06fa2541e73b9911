//! Read models as pure folds over the log (C8, X1): the view of one conversation and the live
//! list of waiting and active chats.
//!
//! Why folds and not queries: the log is the ground state, so every screen is rebuilt by replaying
//! events, from the start or from a checkpoint, and two replays of the same log always agree. The
//! folds reuse the aggregates' own `evolve` so a view can never disagree with what `decide` saw.

use crate::agent::{Agent, AgentEvent, AgentState, Presence};
use crate::conversation::{
    ChatEvent, ChatMessage, ChatRecord, ChatState, Conversation, Disposition, Party, Phase,
    QueueCause,
};
use crate::{AgentId, ChatId, ContactId, Decider, ModuleId, QueueId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One rating as the view shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingView {
    /// The episode rated.
    pub episode: u32,
    /// The agent rated.
    pub agent: AgentId,
    /// 1 to 5.
    pub score: u8,
    /// Free text.
    pub comment: Option<String>,
}

/// What an agent or supervisor sees of one chat: its state, the ordered messages with redactions
/// applied, who took part, and the ratings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationView {
    state: ChatState,
    participants: BTreeSet<Party>,
    ratings: Vec<RatingView>,
}

impl ConversationView {
    /// Folds a chat's history.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a ChatEvent>) -> Self {
        let mut view = Self::default();
        for event in events {
            view.apply(event);
        }
        view
    }

    /// Applies the next event of the chat's stream.
    pub fn apply(&mut self, event: &ChatEvent) {
        Conversation::evolve(&mut self.state, event);
        match event {
            ChatEvent::ChatStarted { .. } => {
                self.participants.insert(Party::Visitor);
            }
            ChatEvent::AgentAssigned { agent, .. } => {
                self.participants.insert(Party::Agent(*agent));
            }
            ChatEvent::MessagePosted { message, .. } => {
                self.participants.insert(message.author);
            }
            ChatEvent::ChatRated {
                episode,
                agent,
                score,
                comment,
                ..
            } => self.ratings.push(RatingView {
                episode: *episode,
                agent: *agent,
                score: *score,
                comment: comment.clone(),
            }),
            _ => {}
        }
    }

    /// The chat's state (phase, episode, agent, deadline inputs).
    pub fn state(&self) -> &ChatState {
        &self.state
    }

    /// Where the chat is.
    pub fn phase(&self) -> Phase {
        self.state.phase
    }

    /// The chat record, once started.
    pub fn record(&self) -> Option<&ChatRecord> {
        self.state.record.as_ref()
    }

    /// The disposition of the current episode, once ended.
    pub fn disposition(&self) -> Option<Disposition> {
        self.state.disposition
    }

    /// The messages in order, as readers may see them (redacted content removed, X4).
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.state
            .messages
            .iter()
            .map(ChatMessage::for_readers)
            .collect()
    }

    /// Everyone who took part: the visitor, every agent who held the chat or wrote, the system.
    pub fn participants(&self) -> &BTreeSet<Party> {
        &self.participants
    }

    /// The ratings, one per rated episode, in order.
    pub fn ratings(&self) -> &[RatingView] {
        &self.ratings
    }
}

/// One event read from the log, from whichever stream.
#[derive(Clone, Copy, Debug)]
pub enum Recorded<'a> {
    /// An event of a chat's stream.
    Chat {
        /// The chat (from the stream name).
        chat: ChatId,
        /// The event.
        event: &'a ChatEvent,
    },
    /// An event of an agent's stream.
    Agent {
        /// The agent.
        agent: AgentId,
        /// The event.
        event: &'a AgentEvent,
    },
}

/// Where a live chat stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveStatus {
    /// In a queue, waiting for an agent.
    Waiting {
        /// The queue after a transfer, `None` for the module's routing.
        queue: Option<QueueId>,
    },
    /// Nobody available; the visitor may write asynchronously (C3).
    Asynchronous,
    /// An agent holds the chat.
    Active {
        /// The agent.
        agent: AgentId,
    },
}

/// One line of the live list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveChat {
    /// The chat.
    pub chat: ChatId,
    /// Its module.
    pub module: ModuleId,
    /// Its contact.
    pub contact: ContactId,
    /// The episode.
    pub episode: u32,
    /// Where it stands.
    pub status: LiveStatus,
    /// Since when it stands there.
    pub since: DateTime<Utc>,
}

/// The supervisor's live list (X1): chats waiting and in progress, and the agents' presence and
/// load, folded from every chat and agent stream in global order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveList {
    /// Module and contact of every chat seen (needed again when a chat is resumed). It grows
    /// with the number of chats ever started, 32 bytes each.
    directory: BTreeMap<ChatId, (ModuleId, ContactId)>,
    open: BTreeMap<ChatId, LiveChat>,
    agents: BTreeMap<AgentId, AgentState>,
}

impl LiveList {
    /// Applies the next event of the global log.
    pub fn apply(&mut self, recorded: Recorded<'_>) {
        match recorded {
            Recorded::Agent { agent, event } => {
                Agent::evolve(self.agents.entry(agent).or_default(), event);
            }
            Recorded::Chat { chat, event } => self.apply_chat(chat, event),
        }
    }

    fn apply_chat(&mut self, chat: ChatId, event: &ChatEvent) {
        let (episode, status) = match event {
            ChatEvent::ChatStarted { record, .. } => {
                self.directory.insert(chat, (record.module, record.contact));
                return;
            }
            ChatEvent::EpisodeEnded { .. } => {
                self.open.remove(&chat);
                return;
            }
            ChatEvent::ChatQueued { episode, cause, .. } => {
                let queue = match cause {
                    QueueCause::Transferred { queue, .. } => Some(*queue),
                    QueueCause::Started | QueueCause::Resumed => None,
                };
                (*episode, LiveStatus::Waiting { queue })
            }
            ChatEvent::AsyncChattingStarted { episode, .. } => (*episode, LiveStatus::Asynchronous),
            ChatEvent::AgentAssigned { episode, agent, .. } => {
                (*episode, LiveStatus::Active { agent: *agent })
            }
            // Messages, ratings, redactions, e-mail requests and the like do not move a chat
            // between the lists.
            _ => return,
        };
        let Some(&(module, contact)) = self.directory.get(&chat) else {
            // Only a log read from its middle without a checkpoint (the directory is part of the
            // list and of its serialised checkpoints) lacks the start; such a chat is left out
            // rather than shown without its module.
            return;
        };
        self.open.insert(
            chat,
            LiveChat {
                chat,
                module,
                contact,
                episode,
                status,
                since: event.at(),
            },
        );
    }

    /// Chats waiting for an agent (queued or asynchronous), longest-waiting first.
    pub fn waiting(&self) -> Vec<&LiveChat> {
        let mut waiting: Vec<&LiveChat> = self
            .open
            .values()
            .filter(|c| !matches!(c.status, LiveStatus::Active { .. }))
            .collect();
        waiting.sort_by_key(|c| (c.since, c.chat));
        waiting
    }

    /// Chats an agent holds, oldest assignment first.
    pub fn active(&self) -> Vec<&LiveChat> {
        let mut active: Vec<&LiveChat> = self
            .open
            .values()
            .filter(|c| matches!(c.status, LiveStatus::Active { .. }))
            .collect();
        active.sort_by_key(|c| (c.since, c.chat));
        active
    }

    /// Every agent seen, with presence, capacity and held chats.
    pub fn agents(&self) -> &BTreeMap<AgentId, AgentState> {
        &self.agents
    }

    /// Agents who are online, with room for one more chat.
    pub fn available_agents(&self) -> Vec<AgentId> {
        self.agents
            .iter()
            .filter(|(_, state)| state.presence == Presence::Online && state.can_take_chat())
            .map(|(agent, _)| *agent)
            .collect()
    }
}
