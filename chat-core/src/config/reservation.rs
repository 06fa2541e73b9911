//! Reference uniqueness under concurrency (M2, T1, R1): one tiny aggregate per reference.
//!
//! Two admins creating the same reference at once both see "free" in any projection, so a
//! projection cannot enforce uniqueness. The store can: each reference has its own stream
//! (`modref-<reference>`, see [`reservation_stream`]), and the host appends the reservation
//! event *in the same atomic multi-stream append* as the owner's creation, with the expected
//! version it read from the reservation stream (`NoStream` for a never-used reference). Exactly
//! one of two concurrent appends passes that check; the loser gets a concurrency conflict, reloads,
//! and this decider then refuses with [`ConfigRejection::DuplicateReference`]. The pattern is
//! written out in `docs/CONFIGURATION.md`.

use super::common::{ConfigRejection, check_reference, stamped_decider};
use crate::EventKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which namespace a reference lives in: a module and a queue may share a reference, two modules
/// may not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ReferenceKind {
    /// Chat modules (M2).
    Module,
    /// Trigger strategies (T1).
    Strategy,
    /// Queues (R1).
    Queue,
}

impl ReferenceKind {
    /// The stream-name prefix of this namespace.
    pub const fn stream_prefix(self) -> &'static str {
        match self {
            Self::Module => "modref",
            Self::Strategy => "stratref",
            Self::Queue => "queueref",
        }
    }
}

/// The stream that reserves `reference` in `kind`'s namespace, e.g. `modref-sales.eu`.
///
/// References are unique regardless of letter case (`Sales` and `sales` would confuse people),
/// so the stream name uses the ASCII-lowercased reference; the owner keeps the spelling it was
/// given. The reference must already have passed [`check_reference`], which keeps the name
/// within the store's stream-id limit (a 64-character reference plus a short prefix).
pub fn reservation_stream(kind: ReferenceKind, reference: &str) -> String {
    format!(
        "{}-{}",
        kind.stream_prefix(),
        reference.to_ascii_lowercase()
    )
}

/// The state of one reference's stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    /// The owner's UUID (module, strategy or queue id) while the reference is taken.
    pub holder: Option<Uuid>,
}

/// What can be asked of a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservationCommand {
    /// Take the reference for `owner` (appended together with the owner's creation or rename).
    Reserve {
        /// The namespace.
        kind: ReferenceKind,
        /// The reference as the admin spelled it.
        reference: String,
        /// The id of the module, strategy or queue that takes it.
        owner: Uuid,
    },
    /// Free the reference (appended together with the owner's deletion or rename).
    Release {
        /// The current holder; a release by anyone else is refused.
        owner: Uuid,
    },
}

/// What happened to a reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationEvent {
    /// The reference now belongs to `owner`.
    Reserved {
        /// The namespace.
        kind: ReferenceKind,
        /// The reference as spelled by its owner.
        reference: String,
        /// The owner's id.
        owner: Uuid,
    },
    /// The reference is free again.
    Released {
        /// The former owner's id.
        owner: Uuid,
    },
}

impl EventKind for ReservationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Reserved { .. } => "ReferenceReserved",
            Self::Released { .. } => "ReferenceReleased",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

stamped_decider!(Reservation {
    state: Reservation,
    command: ReservationCommand,
    event: ReservationEvent,
    decide: decide,
    evolve: evolve,
});

fn decide(
    state: &Reservation,
    command: &ReservationCommand,
) -> Result<Vec<ReservationEvent>, ConfigRejection> {
    Ok(match command {
        ReservationCommand::Reserve {
            kind,
            reference,
            owner,
        } => {
            check_reference(reference)?;
            match state.holder {
                // Retried by the same owner: nothing more to record (C9).
                Some(holder) if holder == *owner => vec![],
                Some(_) => {
                    return Err(ConfigRejection::DuplicateReference {
                        reference: reference.clone(),
                    });
                }
                None => vec![ReservationEvent::Reserved {
                    kind: *kind,
                    reference: reference.clone(),
                    owner: *owner,
                }],
            }
        }
        ReservationCommand::Release { owner } => match state.holder {
            Some(holder) if holder == *owner => {
                vec![ReservationEvent::Released { owner: *owner }]
            }
            _ => {
                return Err(ConfigRejection::Missing {
                    field: "reservation".to_owned(),
                    value: owner.to_string(),
                });
            }
        },
    })
}

fn evolve(state: &mut Reservation, event: &ReservationEvent) {
    match event {
        ReservationEvent::Reserved { owner, .. } => state.holder = Some(*owner),
        ReservationEvent::Released { .. } => state.holder = None,
    }
}
