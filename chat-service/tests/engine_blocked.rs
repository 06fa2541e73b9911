//! F5 at runtime: a blocked contact cannot start a new chat nor resume an old one. The world
//! folds both facts that block a contact — an agent's block inside a chat and a block on the
//! contact's own stream — and an unblock on the contact stream lifts both.

mod engine_common;

use chat_core::config::{Contact, ContactCommand};
use chat_core::conversation::{ChatCommand, EndedBy, Rejection};
use chat_core::{AgentId, CommandId, ContactId};
use chat_service::engine::{Engine, EngineOptions, ManualClock, NewChat, Refusal};
use engine_common::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const ANN: AgentId = AgentId::from_u128(0xa1);

fn chat_of(n: u128, contact: ContactId) -> NewChat {
    NewChat {
        contact,
        ..new_chat(n)
    }
}

async fn contact(engine: &Engine, contact: ContactId, command: ContactCommand) {
    engine
        .handle::<Contact>(&contact.stream_name(), &command)
        .await
        .unwrap()
        .expect("contact command accepted");
}

fn blocked() -> Refusal {
    Refusal::Chat(Rejection::ContactBlocked)
}

async fn f5_a_blocked_contact_cannot_start_or_resume_a_chat(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = start(
        backend.open().await,
        clock.clone(),
        EngineOptions::default(),
    )
    .await;
    configure(&engine, true, &[ANN]).await;
    online(&engine, ANN, 3).await;

    // Blocked by an agent in a chat: the contact's later chats are refused too.
    let visitor = new_chat(1).contact;
    let first = chat_of(1, visitor);
    engine.start_chat(first.clone()).await.unwrap().unwrap();
    let end = ChatCommand::End {
        command_id: CommandId::from_u128(0xe7d),
        by: EndedBy::Visitor,
    };
    engine.chat(first.chat, end).await.unwrap().unwrap();
    let second = chat_of(2, visitor);
    engine.start_chat(second.clone()).await.unwrap().unwrap();
    engine.settle().await.unwrap();
    assert_eq!(chat_state(&engine, second.chat).await.agent, Some(ANN));
    let block = ChatCommand::Block {
        command_id: CommandId::from_u128(0xb10c),
        by: ANN,
    };
    engine.chat(second.chat, block).await.unwrap().unwrap();
    assert_eq!(
        engine.start_chat(chat_of(3, visitor)).await.unwrap().err(),
        Some(blocked()),
        "a new chat of the blocked contact is refused"
    );
    assert_eq!(
        engine
            .resume_chat(first.chat, CommandId::from_u128(0x7e5))
            .await
            .unwrap()
            .err(),
        Some(blocked()),
        "an earlier chat of the blocked contact cannot be resumed"
    );
    assert!(
        chat_state(&engine, chat_of(3, visitor).chat)
            .await
            .record
            .is_none()
    );

    // Blocked on the contact's own stream, then unblocked there.
    let other = new_chat(4).contact;
    contact(
        &engine,
        other,
        ContactCommand::Create {
            id: other,
            fields: BTreeMap::new(),
        },
    )
    .await;
    contact(&engine, other, ContactCommand::Block { by: ANN }).await;
    assert_eq!(
        engine.start_chat(chat_of(4, other)).await.unwrap().err(),
        Some(blocked())
    );
    contact(&engine, other, ContactCommand::Unblock { by: ANN }).await;
    engine
        .start_chat(chat_of(4, other))
        .await
        .unwrap()
        .expect("an unblocked contact may chat again");
    // Unblocking on the contact stream lifts a block made in a chat as well.
    contact(
        &engine,
        visitor,
        ContactCommand::Create {
            id: visitor,
            fields: BTreeMap::new(),
        },
    )
    .await;
    contact(&engine, visitor, ContactCommand::Block { by: ANN }).await;
    contact(&engine, visitor, ContactCommand::Unblock { by: ANN }).await;
    engine
        .resume_chat(first.chat, CommandId::from_u128(0x7e6))
        .await
        .unwrap()
        .expect("unblocked, the first chat resumes");

    engine.shutdown().await;
    assert!(engine.failures().is_empty(), "{:?}", engine.failures());
    backend.clean_up().await;
}
on_every_store!(f5_a_blocked_contact_cannot_start_or_resume_a_chat);
