//! Redaction and contact erasure by crypto-shredding (X4): the log records who erased what and
//! when; the keys of the erased content are destroyed in the store's key vault, so the content
//! can no longer be read from the log, its copies, or the store's files.

use crate::engine::{ChatOutcome, DomainEvent, Engine, EngineError, Refusal};
use chat_core::config::{ConfigRejection, Contact, ContactCommand, ContactEvent};
use chat_core::conversation::{ChatCommand, ChatEvent, Rejection};
use chat_core::{AgentId, ChatId, ContactId};
use std::collections::BTreeSet;

/// After a chat command: a recorded redaction (or a retry of one, or one refused because the
/// message is already redacted) destroys the message's key. Idempotent, so a redaction recorded
/// by a process that crashed before shredding is completed by the retry of the command.
pub(crate) async fn shred_after_chat_command(
    engine: &Engine,
    _chat: ChatId,
    command: &ChatCommand,
    outcome: &Result<ChatOutcome, Refusal>,
) -> Result<(), EngineError> {
    let ChatCommand::Redact { message_id, .. } = command else {
        return Ok(());
    };
    let recorded = match outcome {
        Ok(_) => true,
        Err(Refusal::Chat(Rejection::AlreadyRedacted { .. })) => true,
        Err(_) => false,
    };
    if let (true, Some(vault)) = (recorded, engine.store().key_vault()) {
        vault.shred(&[message_id.as_uuid()]).await?;
    }
    Ok(())
}

/// What an erasure destroyed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    /// The contact's chats whose visitor content was erased.
    pub chats: BTreeSet<ChatId>,
    /// Keys destroyed now (0 when a previous run already destroyed them).
    pub keys_destroyed: u64,
}

/// Erases everything `contact` wrote across chats (X4): records `ContactErased` (by whom, when)
/// on the contact's stream, then destroys the keys of the contact's fields and of every chat of
/// the contact (the chat record: page data, form answers, e-mail, rating comments; and every
/// visitor message). Agents' messages stay. Running it again re-destroys whatever a crash left.
///
/// The contact's chats are found by one pass over the log (erasure is rare; no index is kept
/// for it).
pub async fn erase_contact(
    engine: &Engine,
    contact: ContactId,
    by: AgentId,
) -> Result<Result<Erasure, ConfigRejection>, EngineError> {
    let stream = contact.stream_name();
    let handled = engine
        .handle::<Contact>(&stream, &ContactCommand::Erase { by })
        .await?;
    if let Err(rejection) = handled {
        return Ok(Err(rejection));
    }
    let mut chats = BTreeSet::new();
    let mut follower = engine.follower(0);
    loop {
        let page = follower.read_page().await?;
        if page.is_empty() {
            break;
        }
        for followed in &page {
            if let DomainEvent::Chat {
                chat,
                event: ChatEvent::ChatStarted { record, .. },
            } = &followed.event
                && record.contact == contact
            {
                chats.insert(*chat);
            }
        }
    }
    let mut keys_destroyed = 0;
    if let Some(vault) = engine.store().key_vault() {
        keys_destroyed += vault.shred_owner(contact.as_uuid()).await?;
        for chat in &chats {
            keys_destroyed += vault.shred_owner(chat.as_uuid()).await?;
        }
    }
    Ok(Ok(Erasure {
        chats,
        keys_destroyed,
    }))
}

/// Whether `event` erases content that projections may hold (their checkpoints' keys must go).
pub fn erases_content(event: &DomainEvent) -> bool {
    matches!(
        event,
        DomainEvent::Chat {
            event: ChatEvent::MessageRedacted { .. },
            ..
        }
    ) || matches!(event, DomainEvent::Contact { event, .. } if matches!(**event, ContactEvent::Erased { .. }))
}
