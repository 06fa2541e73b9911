//! M2 (and T1, R1, which share the path) at runtime: a reference is unique even when two engines
//! on one store create objects with it at the same instant. The engine appends the owner's
//! creation and the reference's reservation in one `append_multi`; the loser conflicts, reloads,
//! and gets the typed `DuplicateReference`.

mod engine_common;

use chat_core::ModuleId;
use chat_core::config::{
    AdminCommand, ConfigRejection, ModuleCommand, ModuleDecider, ModuleEvent, ModuleSettings,
    ReservationEvent,
};
use chat_service::engine::{Codec, DomainEvent, Engine, EngineOptions, ManualClock};
use chat_store::{EventStore, READ_COUNT_MAX};
use engine_common::*;
use std::sync::Arc;

const RACERS: u128 = 24;
const REFERENCE: &str = "sales.eu";

async fn create(engine: &Engine, module: ModuleId, reference: &str) -> Result<(), ConfigRejection> {
    engine
        .handle::<ModuleDecider>(
            &module.stream_name(),
            &AdminCommand::new(
                ADMIN,
                ModuleCommand::Create {
                    id: module,
                    reference: reference.into(),
                    settings: ModuleSettings::named("Sales EU"),
                },
            ),
        )
        .await
        .expect("no engine error")
        .map(|_| ())
}

/// (reserved, released) events on the module reference streams, and module creations, in the log.
async fn reservation_log(
    store: &Arc<dyn EventStore>,
) -> (Vec<(String, uuid::Uuid)>, Vec<uuid::Uuid>, Vec<ModuleId>) {
    let codec = Codec::default();
    let (mut reserved, mut released, mut created) = (Vec::new(), Vec::new(), Vec::new());
    let mut position = 0;
    loop {
        let page = store.read_all(position + 1, READ_COUNT_MAX).await.unwrap();
        let Some(last) = page.last() else { break };
        position = last.global_position;
        for recorded in &page {
            match codec.decode(recorded).unwrap() {
                DomainEvent::Reservation(stamped) => match stamped.event {
                    ReservationEvent::Reserved {
                        reference, owner, ..
                    } => reserved.push((reference, owner)),
                    ReservationEvent::Released { owner } => released.push(owner),
                },
                DomainEvent::Module { module, event } => {
                    if let ModuleEvent::Created { .. } = event.event {
                        created.push(module);
                    }
                }
                _ => {}
            }
        }
    }
    (reserved, released, created)
}

async fn m2_two_admins_racing_for_one_reference_one_wins(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = backend.open().await;
    let second_store = match &backend {
        // sled allows one opener per directory: the second engine shares the store.
        Backend::Sled(_) => store.clone(),
        Backend::Postgres(..) => backend.open().await,
    };
    let one = start(store.clone(), clock.clone(), EngineOptions::default()).await;
    let two = start(second_store, clock.clone(), EngineOptions::default()).await;

    let mut tasks = Vec::new();
    for n in 1..=RACERS {
        let engine = if n % 2 == 0 { one.clone() } else { two.clone() };
        let module = ModuleId::from_u128(0x3_0000 + n);
        tasks.push(tokio::spawn(async move {
            (module, create(&engine, module, REFERENCE).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (module, outcome) = task.await.unwrap();
        match outcome {
            Ok(()) => winners.push(module),
            Err(rejection) => assert_eq!(
                rejection,
                ConfigRejection::DuplicateReference {
                    reference: REFERENCE.into()
                }
            ),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creation wins: {winners:?}");
    let winner = winners[0];
    let (reserved, released, created) = reservation_log(&store).await;
    assert_eq!(reserved, vec![(REFERENCE.to_owned(), winner.as_uuid())]);
    assert!(released.is_empty());
    assert_eq!(created, vec![winner], "no losing module was created");

    // M3: the winner moves to a new reference; the old one is freed, so a loser may take it,
    // and the new one is now refused to others.
    one.handle::<ModuleDecider>(
        &winner.stream_name(),
        &AdminCommand::new(
            ADMIN,
            ModuleCommand::ChangeReference {
                reference: "sales.emea".into(),
            },
        ),
    )
    .await
    .unwrap()
    .expect("reference changed");
    let latecomer = ModuleId::from_u128(0x3_0000 + RACERS + 1);
    create(&two, latecomer, REFERENCE)
        .await
        .expect("the freed reference can be taken");
    assert_eq!(
        create(
            &one,
            ModuleId::from_u128(0x3_0000 + RACERS + 2),
            "sales.emea"
        )
        .await,
        Err(ConfigRejection::DuplicateReference {
            reference: "sales.emea".into()
        })
    );
    let (reserved, released, created) = reservation_log(&store).await;
    assert_eq!(
        reserved,
        vec![
            (REFERENCE.to_owned(), winner.as_uuid()),
            ("sales.emea".to_owned(), winner.as_uuid()),
            (REFERENCE.to_owned(), latecomer.as_uuid()),
        ]
    );
    assert_eq!(released, vec![winner.as_uuid()]);
    assert_eq!(created, vec![winner, latecomer]);

    one.shutdown().await;
    two.shutdown().await;
    assert!(one.failures().is_empty(), "{:?}", one.failures());
    assert!(two.failures().is_empty(), "{:?}", two.failures());
    backend.clean_up().await;
}
on_every_store!(m2_two_admins_racing_for_one_reference_one_wins);
