//! The live model the runtime decides from: configuration, agents, chats and pending deadlines,
//! folded from the whole log by the runtime's follower.
//!
//! Why a fold and not queries: routing, admission (C2) and timers (C5) must see the same facts
//! the log holds, in log order, and must be rebuilt after a restart by replaying it (E3). The
//! world is rebuilt from position 1 at start (see docs/ENGINE.md for why it takes no checkpoint
//! yet). Chat states are kept slim — messages and command ids are dropped after each fold —
//! because routing and timers need only the phase, the agent and the deadline inputs.

use crate::engine::codec::DomainEvent;
use crate::engine::follow::Followed;
use chat_core::agent::{Agent, AgentEvent, AgentState};
use chat_core::config::{
    AccountSettings, ContactEvent, ModuleDecider, ModuleState, QueueDecider, QueueState,
};
use chat_core::conversation::{
    ChatEvent, ChatState, Conversation, Phase, QueueCause, next_deadline,
};
use chat_core::{AgentId, ChatId, ContactId, Decider, ModuleId, QueueId};
use chat_store::GlobalPosition;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// One chat as routing and timers see it.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChatEntry {
    /// The slim state (no messages, no command ids).
    pub(crate) state: ChatState,
    /// When it last entered a queue, and why.
    pub(crate) queued: Option<(DateTime<Utc>, QueueCause)>,
    /// The agent who held it in the latest earlier episode (R3, same-agent policy).
    pub(crate) previous_agent: Option<AgentId>,
    /// Its current deadline, as indexed in [`World::deadlines`].
    deadline: Option<DateTime<Utc>>,
}

/// One agent: the aggregate's state plus when it last got a chat (longest idle).
#[derive(Clone, Debug, Default)]
pub(crate) struct AgentEntry {
    pub(crate) state: AgentState,
    pub(crate) last_assigned_at: Option<DateTime<Utc>>,
}

/// Everything the runtime decides from.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// The last global position folded.
    pub(crate) position: GlobalPosition,
    pub(crate) chats: BTreeMap<ChatId, ChatEntry>,
    pub(crate) agents: BTreeMap<AgentId, AgentEntry>,
    pub(crate) modules: BTreeMap<ModuleId, ModuleState>,
    pub(crate) queues: BTreeMap<QueueId, QueueState>,
    pub(crate) account: AccountSettings,
    /// The chats waiting in a queue (phase `Queued`), so a routing pass reads these and not
    /// every chat the log has ever held.
    pub(crate) queued: BTreeSet<ChatId>,
    /// Pending unattended deadlines (C5), earliest first.
    pub(crate) deadlines: BTreeSet<(DateTime<Utc>, ChatId)>,
    /// Open chats per module (C2's count).
    pub(crate) open_chats: BTreeMap<ModuleId, u32>,
    /// Contacts who may not start or resume a chat (F5): blocked on their contact stream or by
    /// an agent in any chat, and not unblocked on the contact stream since, in log order.
    pub(crate) blocked_contacts: BTreeSet<ContactId>,
}

impl World {
    /// Folds one followed event. Takes it by value: the follower's page is read for the world
    /// alone, so a chat event is moved into the fold instead of cloned (see `apply_chat`).
    pub(crate) fn apply(&mut self, followed: Followed) {
        self.position = followed.position();
        match followed.event {
            DomainEvent::Chat { chat, event } => self.apply_chat(chat, event),
            DomainEvent::Agent { agent, event } => {
                let entry = self.agents.entry(agent).or_default();
                Agent::evolve(&mut entry.state, &event);
                if let AgentEvent::ChatClaimed { at, .. } = event {
                    entry.last_assigned_at = Some(entry.last_assigned_at.map_or(at, |t| t.max(at)));
                }
            }
            DomainEvent::Module { module, event } => {
                ModuleDecider::evolve(self.modules.entry(module).or_default(), &event);
            }
            DomainEvent::Queue { queue, event } => {
                QueueDecider::evolve(self.queues.entry(queue).or_default(), &event);
            }
            DomainEvent::Account(event) => AccountSettings::evolve(&mut self.account, &event),
            DomainEvent::Contact { contact, event } => match *event {
                ContactEvent::Blocked { .. } => {
                    self.blocked_contacts.insert(contact);
                }
                ContactEvent::Unblocked { .. } => {
                    self.blocked_contacts.remove(&contact);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Folds a chat event by value (`evolve_owned`): the state would keep the chat record and
    /// every message, and folding a borrowed event would clone each message body only for the
    /// world to drop it again (it keeps slim states).
    fn apply_chat(&mut self, chat: ChatId, event: ChatEvent) {
        let entry = self.chats.entry(chat).or_default();
        let was_open = entry.state.is_open();
        if let ChatEvent::ChatResumed { .. } = event {
            entry.previous_agent = entry.state.episode_agent.or(entry.previous_agent);
        }
        if let ChatEvent::ChatQueued { at, cause, .. } = event {
            entry.queued = Some((at, cause));
        }
        if let ChatEvent::ContactBlocked { contact, .. } = event {
            self.blocked_contacts.insert(contact);
        }
        Conversation::evolve_owned(&mut entry.state, event);
        entry.state.messages.clear();
        entry.state.accepted_commands.clear();
        if let Some(old) = entry.deadline.take() {
            self.deadlines.remove(&(old, chat));
        }
        entry.deadline = next_deadline(&entry.state);
        if let Some(new) = entry.deadline {
            self.deadlines.insert((new, chat));
        }
        if entry.state.phase == Phase::Queued {
            self.queued.insert(chat);
        } else {
            self.queued.remove(&chat);
        }
        let is_open = entry.state.is_open();
        if let Some(module) = entry.state.record.as_ref().map(|r| r.module) {
            let count = self.open_chats.entry(module).or_default();
            match (was_open, is_open) {
                (false, true) => *count += 1,
                (true, false) => *count = count.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// The module's open chats now.
    pub(crate) fn open_chats(&self, module: ModuleId) -> u32 {
        self.open_chats.get(&module).copied().unwrap_or(0)
    }
}
