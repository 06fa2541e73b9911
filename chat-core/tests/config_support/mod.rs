//! Helpers shared by the `config_*` test files: fixed ids, instants, the admin's stamp and the
//! property-test budget.
#![allow(dead_code)]

use chat_core::AgentId;
use chat_core::config::Stamped;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// The admin who issues every command in these tests.
pub(crate) const ADMIN: AgentId = AgentId::from_u128(900);

/// Property-test cases: 10,000 in CI (`CI=true`), fewer locally to keep iteration quick.
pub(crate) fn cases() -> u32 {
    if std::env::var("CI").as_deref() == Ok("true") {
        10_000
    } else {
        500
    }
}

/// A UTC instant.
pub(crate) fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// A calendar date.
pub(crate) fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, mo, d).unwrap()
}

/// A fixed "now" for commands whose time does not matter.
pub(crate) fn now() -> DateTime<Utc> {
    utc(2026, 3, 2, 9, 0)
}

/// An event as [`ADMIN`] records it at [`now`]: what every decider in these tests emits.
pub(crate) fn stamp<E>(event: E) -> Stamped<E> {
    Stamped {
        by: ADMIN,
        at: now(),
        event,
    }
}
