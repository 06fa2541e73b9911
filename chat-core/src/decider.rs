//! The decider: the one shape every aggregate in chat-core takes.
//!
//! `decide(state, command, now) -> events | rejection` and `evolve(state, event)` (the fmodel
//! style). Keeping every aggregate in this shape is what lets the engine load, decide, append and
//! retry generically, and what lets a test read as `given(events).when(command).then(...)`.

use chrono::{DateTime, Utc};

/// A pure aggregate: no I/O, no clock (time is `now`), no randomness (ids come in commands).
pub trait Decider {
    /// The state folded from the aggregate's events. `Default` is the state of an empty stream.
    type State: Default + Clone;
    /// What a caller asks for.
    type Command;
    /// What happened; the only thing that is stored.
    type Event: Clone;
    /// Why a command was refused: an ordinary value, never a panic.
    type Rejection;

    /// Decides which events a command produces in `state` at instant `now`.
    ///
    /// An empty `Ok` means "nothing to do" (for instance a retried command, C9).
    fn decide(
        state: &Self::State,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Applies one event to the state. Must be total: a stored event is a fact and is never
    /// refused here.
    fn evolve(state: &mut Self::State, event: &Self::Event);

    /// Applies one event the caller owns: the same fold as [`evolve`](Decider::evolve), allowed
    /// to move parts of the event into the state instead of cloning them. Why: a replay decodes
    /// every event into an owned value and drops it right after, so cloning what the state keeps
    /// (a message's text, say) is pure waste there. The default borrows and calls `evolve`; an
    /// aggregate that keeps large parts overrides it, through the same code as `evolve` (one
    /// fold, two ways in), so the two can never disagree.
    fn evolve_owned(state: &mut Self::State, event: Self::Event) {
        Self::evolve(state, &event);
    }

    /// Folds a history into a state: what every reader of the log does (C8).
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        let mut state = Self::State::default();
        for event in events {
            Self::evolve(&mut state, event);
        }
        state
    }
}

/// What the store needs to know about an event besides its payload: the name it is stored under
/// and the schema version of its payload (E4). Every aggregate's event enum implements it.
pub trait EventKind {
    /// The stable type name, e.g. `"ChatStarted"`. Never reuse a name for a different meaning.
    fn event_type(&self) -> &'static str;
    /// The payload's schema version; bump it (and register an upcaster) when a change is not
    /// backward compatible. Adding an optional field is compatible (payloads have named fields).
    fn schema_version(&self) -> u16;
}

/// Given/when/then for deciders (the cqrs-es `TestFramework` idea), public so that embedders can
/// test their own commands the same way.
///
/// ```text
/// given::<Conversation>(&[started]).when(&command, now).then_events(&[expected]);
/// ```
pub fn given<D: Decider>(events: &[D::Event]) -> Given<D> {
    Given {
        state: D::replay(events.iter()),
    }
}

/// The state built by [`given`], waiting for a command.
pub struct Given<D: Decider> {
    state: D::State,
}

impl<D: Decider> Given<D> {
    /// Runs the command against the given history.
    pub fn when(self, command: &D::Command, now: DateTime<Utc>) -> Then<D> {
        let result = D::decide(&self.state, command, now);
        Then {
            state: self.state,
            result,
        }
    }
}

/// The outcome of [`Given::when`], with assertions.
pub struct Then<D: Decider> {
    state: D::State,
    result: Result<Vec<D::Event>, D::Rejection>,
}

impl<D: Decider> Then<D>
where
    D::Event: PartialEq + std::fmt::Debug,
    D::Rejection: PartialEq + std::fmt::Debug,
{
    /// Asserts the exact events produced, and returns the state after them.
    #[track_caller]
    pub fn then_events(self, expected: &[D::Event]) -> D::State {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                let mut state = self.state;
                for event in &events {
                    D::evolve(&mut state, event);
                }
                state
            }
            Err(rejection) => panic!("expected events {expected:?}, got rejection {rejection:?}"),
        }
    }

    /// Asserts the command was refused with exactly this rejection.
    #[track_caller]
    pub fn then_rejected(self, expected: D::Rejection) {
        match self.result {
            Ok(events) => panic!("expected rejection {expected:?}, got events {events:?}"),
            Err(rejection) => assert_eq!(rejection, expected, "unexpected rejection"),
        }
    }

    /// The raw outcome, for assertions the helpers above do not cover.
    pub fn result(self) -> Result<Vec<D::Event>, D::Rejection> {
        self.result
    }
}
