//! The delivery stream of one intent (`outbox-<intent id>`): every attempt and its outcome as
//! events, appended with exact expected versions.
//!
//! Why a stream per intent: the stream version is the lock. An engine starts attempt *n* by
//! appending `AttemptStarted` at the version it last saw; a second engine that saw the same
//! version gets a `Conflict` and does not send. The claim carries a lease: if its engine dies
//! before recording the outcome, another engine (or the restarted one) may start attempt *n+1*
//! once the lease has passed — which can send the same message a second time, with the same
//! Message-ID / delivery id (see docs/OUTBOX.md, "What is guaranteed").

use super::intent::IntentId;
use chat_core::EventKind;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Most attempts a [`RetryPolicy`] may allow.
pub const DELIVERY_ATTEMPTS_MAX: u32 = 50;
/// Longest backoff a [`RetryPolicy`] may wait between two attempts, in milliseconds (one day).
pub const BACKOFF_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// Longest error text kept in an `AttemptFailed` event, in bytes (longer texts are cut).
pub const DELIVERY_ERROR_BYTES_MAX: usize = 1024;

/// One fact about a delivery. Schema version 1 for every variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryEvent {
    /// An engine claimed attempt `attempt` and is sending until `lease_until`.
    AttemptStarted {
        /// The intent.
        intent: IntentId,
        /// 1 for the first attempt.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
        /// After this instant, without an outcome, the attempt counts as lost.
        lease_until: DateTime<Utc>,
    },
    /// The receiver accepted it: the intent is done.
    Delivered {
        /// The attempt.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
        /// The receiver's answer (SMTP reply, HTTP status).
        detail: String,
    },
    /// The attempt failed; another is due at `retry_at`.
    AttemptFailed {
        /// The attempt.
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
        /// Why (cut to [`DELIVERY_ERROR_BYTES_MAX`]).
        error: String,
        /// When the next attempt is due.
        retry_at: DateTime<Utc>,
    },
    /// No more attempts: the intent is closed without delivery (attempts exhausted, or it can
    /// never succeed, e.g. a payload over its limit).
    GaveUp {
        /// The last attempt (0 when none was made).
        attempt: u32,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        error: String,
    },
}

impl EventKind for DeliveryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AttemptStarted { .. } => "DeliveryAttemptStarted",
            Self::Delivered { .. } => "DeliveryDelivered",
            Self::AttemptFailed { .. } => "DeliveryAttemptFailed",
            Self::GaveUp { .. } => "DeliveryGaveUp",
        }
    }

    fn schema_version(&self) -> u16 {
        1
    }
}

/// Where a delivery stands, folded from its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Due at this instant (the intent's own time at first, then each `retry_at`).
    Due(DateTime<Utc>),
    /// Someone is sending attempt `attempt` until `lease_until`.
    InFlight {
        /// The attempt.
        attempt: u32,
        /// Its lease.
        lease_until: DateTime<Utc>,
    },
    /// Done.
    Delivered,
    /// Closed without delivery.
    GaveUp,
}

/// The fold of one delivery stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryState {
    /// The stream's version (the expectation of the next append).
    pub version: u64,
    /// Attempts started so far.
    pub attempts: u32,
    /// Where it stands.
    pub status: DeliveryStatus,
}

impl DeliveryState {
    /// A delivery nobody has attempted, due from `due`.
    pub fn new(due: DateTime<Utc>) -> Self {
        Self {
            version: 0,
            attempts: 0,
            status: DeliveryStatus::Due(due),
        }
    }

    /// Folds one event of the stream (in version order).
    pub fn apply(&mut self, event: &DeliveryEvent) {
        self.version += 1;
        self.status = match event {
            DeliveryEvent::AttemptStarted {
                attempt,
                lease_until,
                ..
            } => {
                self.attempts = self.attempts.max(*attempt);
                DeliveryStatus::InFlight {
                    attempt: *attempt,
                    lease_until: *lease_until,
                }
            }
            DeliveryEvent::Delivered { .. } => DeliveryStatus::Delivered,
            DeliveryEvent::AttemptFailed { retry_at, .. } => DeliveryStatus::Due(*retry_at),
            DeliveryEvent::GaveUp { .. } => DeliveryStatus::GaveUp,
        };
    }

    /// Whether nothing more will happen.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status,
            DeliveryStatus::Delivered | DeliveryStatus::GaveUp
        )
    }

    /// When an engine may next start an attempt: the due time, or the end of a lease (an attempt
    /// whose engine died). `None` once closed.
    pub fn next_action_at(&self) -> Option<DateTime<Utc>> {
        match self.status {
            DeliveryStatus::Due(at) => Some(at),
            DeliveryStatus::InFlight { lease_until, .. } => Some(lease_until),
            DeliveryStatus::Delivered | DeliveryStatus::GaveUp => None,
        }
    }
}

/// How often and how patiently to retry. Part of the runtime options (not of the log): the
/// outcome of each attempt, including when to retry, is recorded, so a rebuild does not need
/// the policy that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before giving up (1..=[`DELIVERY_ATTEMPTS_MAX`]).
    pub attempts_max: u32,
    /// The wait after the first failure, in milliseconds; doubled after each further failure.
    pub backoff_initial_ms: u64,
    /// The longest wait (≤ [`BACKOFF_MS_MAX`]).
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    /// 10 attempts, 1 s doubling to at most 1 hour (about 2.5 hours of retries in all).
    fn default() -> Self {
        Self {
            attempts_max: 10,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60 * 60 * 1000,
        }
    }
}

impl RetryPolicy {
    /// Checks the policy against its limits; the error names the field.
    pub fn validate(&self) -> Result<(), super::OutboxError> {
        let too_big = |field: &str, limit: &'static str, max: u64, actual: u64| {
            super::OutboxError::LimitExceeded {
                field: field.to_owned(),
                limit,
                max: usize::try_from(max).unwrap_or(usize::MAX),
                actual: usize::try_from(actual).unwrap_or(usize::MAX),
            }
        };
        if self.attempts_max == 0 {
            return Err(super::OutboxError::Config(
                "retry.attempts_max must be at least 1".to_owned(),
            ));
        }
        if self.attempts_max > DELIVERY_ATTEMPTS_MAX {
            return Err(too_big(
                "retry.attempts_max",
                "DELIVERY_ATTEMPTS_MAX",
                u64::from(DELIVERY_ATTEMPTS_MAX),
                u64::from(self.attempts_max),
            ));
        }
        if self.backoff_max_ms > BACKOFF_MS_MAX {
            return Err(too_big(
                "retry.backoff_max_ms",
                "BACKOFF_MS_MAX",
                BACKOFF_MS_MAX,
                self.backoff_max_ms,
            ));
        }
        if self.backoff_initial_ms > self.backoff_max_ms {
            return Err(super::OutboxError::Config(
                "retry.backoff_initial_ms must not exceed retry.backoff_max_ms".to_owned(),
            ));
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (1-based): `initial × 2^(attempt−1)`, capped.
    pub fn backoff(&self, attempt: u32) -> TimeDelta {
        let doublings = attempt.saturating_sub(1).min(63);
        let ms = self
            .backoff_initial_ms
            .saturating_mul(1_u64 << doublings)
            .min(self.backoff_max_ms);
        TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// Whether another attempt may follow failed attempt `attempt`.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts_max
    }
}

/// Cuts an error text to [`DELIVERY_ERROR_BYTES_MAX`] on a character boundary.
pub(crate) fn cut_error(mut error: String) -> String {
    if error.len() > DELIVERY_ERROR_BYTES_MAX {
        let mut end = DELIVERY_ERROR_BYTES_MAX;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
    }
    error
}
