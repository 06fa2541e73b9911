//! The outbox's errors: bad settings are refused with the field named; a broken store or an
//! undecodable event stops the outbox (it never skips what it cannot read).

use chat_store::StoreError;

/// Why an outbox operation failed. Delivery failures (an SMTP server down, a webhook answering
/// 500) are not errors: they are recorded outcomes in the log, retried with backoff.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// A settings field breaks its rule.
    #[error("outbox settings: {field} {reason}")]
    InvalidSettings {
        /// The field, e.g. `webhooks[crm].url`.
        field: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A settings field or a payload is over its named limit.
    #[error("outbox: {field} is {actual}, over {limit} = {max}")]
    LimitExceeded {
        /// The field or payload.
        field: String,
        /// The limit's constant name.
        limit: &'static str,
        /// The limit.
        max: usize,
        /// What was found.
        actual: usize,
    },
    /// The store failed.
    #[error("outbox store: {0}")]
    Store(#[from] StoreError),
    /// A recorded event could not be decoded; the outbox stops rather than skip it.
    #[error("outbox: cannot decode {event_type} at position {position}: {reason}")]
    Decode {
        /// The event's type.
        event_type: String,
        /// Its global position.
        position: u64,
        /// Why.
        reason: String,
    },
    /// A [`CrashPoint`](super::CrashPoint) stopped the outbox on purpose (tests of restarts).
    #[error("outbox stopped at the simulated crash point {0}")]
    SimulatedCrash(&'static str),
    /// The outbox's configuration (not the recorded settings) is unusable.
    #[error("outbox configuration: {0}")]
    Config(String),
}
