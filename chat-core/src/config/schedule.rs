//! Working intervals (S1, S2): weekly opening ranges in a time zone, with dated exceptions.
//!
//! Opening hours are wall-clock rules ("Monday 09:00–17:00 in Paris"), but the engine decides on
//! instants. Every range is therefore turned into a UTC interval for each concrete local date,
//! and both [`Schedule::is_open`] and [`Schedule::next_change`] read those same intervals, so the
//! two can never disagree (a property test checks it).
//!
//! Choices where the requirements are silent (written out in `docs/CONFIGURATION.md`):
//! - A range belongs to the date it starts on. An overnight range (`22:00–02:00`) opens on its
//!   date and closes on the next one; an exception replaces the ranges that *start* on its date,
//!   so Monday's `22:00–02:00` still runs into a Tuesday holiday.
//! - A boundary that falls in a DST gap (a local time that does not exist) happens at the first
//!   instant after the gap; a range entirely inside a gap does not open that day.
//! - A boundary that falls in a DST fold (a local time that occurs twice) happens at its first
//!   occurrence: the shop opens or closes the first time the wall clock shows that time.

use super::common::{ConfigRejection, check_count, parse_time_zone};
use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Minutes in a local day; `end_min` may equal it (24:00).
pub const MINUTES_PER_DAY: u16 = 1440;
/// Most opening ranges on one day (weekly or exception).
pub const RANGES_PER_DAY_MAX: usize = 8;
/// Most dated exceptions in one set of working hours (a bit more than a year of days).
pub const EXCEPTIONS_MAX: usize = 400;
/// How many local dates one scan of [`Schedule::next_change`] reads at a time.
const SCAN_DAYS: u64 = 28;
/// Longest DST gap the gap resolution steps over, in minutes (tzdb's longest is a whole day).
const GAP_MINUTES_MAX: i64 = 48 * 60;

/// One opening range of a local day, in minutes since local midnight.
///
/// `start_min` is in `0..1440`, `end_min` in `1..=1440` and differs from `start_min`. When
/// `end_min < start_min` the range crosses midnight and closes on the next day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    /// Opening, in minutes after local midnight.
    pub start_min: u16,
    /// Closing, in minutes after local midnight (of the next day when before `start_min`).
    pub end_min: u16,
}

impl TimeRange {
    /// A checked range.
    pub fn new(start_min: u16, end_min: u16) -> Result<Self, ConfigRejection> {
        let range = Self { start_min, end_min };
        range.check()?;
        Ok(range)
    }

    /// Parses `HH:MM-HH:MM` (`24:00` allowed as an end; `22:00-02:00` crosses midnight).
    pub fn parse(text: &str) -> Result<Self, ConfigRejection> {
        let invalid = || ConfigRejection::Invalid {
            field: "time range".to_owned(),
            value: text.to_owned(),
            reason: "expected HH:MM-HH:MM",
        };
        let (start, end) = text.split_once('-').ok_or_else(invalid)?;
        let minutes = |hm: &str| -> Option<u16> {
            let (h, m) = hm.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        Self::new(
            minutes(start).ok_or_else(invalid)?,
            minutes(end).ok_or_else(invalid)?,
        )
    }

    /// Whether the range closes on the next local day.
    pub fn crosses_midnight(&self) -> bool {
        self.end_min < self.start_min
    }

    fn check(&self) -> Result<(), ConfigRejection> {
        if self.start_min >= MINUTES_PER_DAY
            || self.end_min == 0
            || self.end_min > MINUTES_PER_DAY
            || self.start_min == self.end_min
        {
            return Err(ConfigRejection::Invalid {
                field: "time range".to_owned(),
                value: format!("{}-{}", self.start_min, self.end_min),
                reason: "start in 0..1440, end in 1..=1440, start != end (minutes)",
            });
        }
        Ok(())
    }
}

/// What a dated exception does to its date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DayHours {
    /// Closed all day (a holiday); ranges of the previous day that cross midnight still run.
    Closed,
    /// Open with these ranges instead of the weekly ones (a special opening).
    Open(Vec<TimeRange>),
}

/// Weekly ranges plus dated exceptions, without a time zone: a module's own hours, resolved in
/// the module's (or the account's) zone by [`WorkingHours::in_zone`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingHours {
    /// Ranges per weekday, Monday first. Overlapping ranges simply add up.
    pub weekly: [Vec<TimeRange>; 7],
    /// Exceptions by local date.
    pub exceptions: BTreeMap<NaiveDate, DayHours>,
}

impl Default for WorkingHours {
    /// A new module is open around the clock until an admin says otherwise.
    fn default() -> Self {
        Self::always_open()
    }
}

impl WorkingHours {
    /// Open every day from 00:00 to 24:00, no exceptions.
    pub fn always_open() -> Self {
        let day = vec![TimeRange {
            start_min: 0,
            end_min: MINUTES_PER_DAY,
        }];
        Self {
            weekly: std::array::from_fn(|_| day.clone()),
            exceptions: BTreeMap::new(),
        }
    }

    /// Never open (every chat goes offline) until ranges are added.
    pub fn closed() -> Self {
        Self {
            weekly: Default::default(),
            exceptions: BTreeMap::new(),
        }
    }

    /// Checks every range and every limit.
    pub fn validate(&self) -> Result<(), ConfigRejection> {
        check_count("exceptions", self.exceptions.len(), EXCEPTIONS_MAX)?;
        let exception_days = self.exceptions.values().filter_map(|day| match day {
            DayHours::Closed => None,
            DayHours::Open(ranges) => Some(ranges),
        });
        for ranges in self.weekly.iter().chain(exception_days) {
            check_count("ranges per day", ranges.len(), RANGES_PER_DAY_MAX)?;
            for range in ranges {
                range.check()?;
            }
        }
        Ok(())
    }

    /// These hours in a time zone.
    pub fn in_zone(&self, time_zone: Tz) -> Schedule {
        Schedule {
            time_zone,
            hours: self.clone(),
        }
    }

    fn ranges_on(&self, date: NaiveDate) -> &[TimeRange] {
        match self.exceptions.get(&date) {
            Some(DayHours::Closed) => &[],
            Some(DayHours::Open(ranges)) => ranges,
            None => &self.weekly[date.weekday().num_days_from_monday() as usize],
        }
    }
}

/// Working hours in a time zone: the thing that answers "open at t?" and "when does that change?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// The zone the ranges are read in.
    pub time_zone: Tz,
    /// The ranges and exceptions.
    pub hours: WorkingHours,
}

impl Schedule {
    /// A checked schedule; an unknown zone name is [`ConfigRejection::UnknownTimeZone`].
    pub fn new(time_zone: &str, hours: WorkingHours) -> Result<Self, ConfigRejection> {
        let time_zone = parse_time_zone(time_zone)?;
        hours.validate()?;
        Ok(Self { time_zone, hours })
    }

    /// Whether `t` falls inside an opening (S2).
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let date = self.local_date(t);
        let intervals = self.intervals(sub_days(date, 3), add_days(date, 1));
        intervals.iter().any(|(start, end)| *start <= t && t < *end)
    }

    /// The first instant after `t` at which [`is_open`](Self::is_open) changes, or `None` when it
    /// never changes again (always open, or closed for good).
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut first = self.local_date(t);
        loop {
            let last = first.checked_add_days(Days::new(SCAN_DAYS - 1))?;
            let accept_until = self.resolve(add_days(last, 1), 0);
            let found = self
                .intervals(sub_days(first, 3), last)
                .into_iter()
                .flat_map(|(start, end)| [start, end])
                .find(|b| *b > t && *b < accept_until);
            if found.is_some() {
                return found;
            }
            let window_has_exception = self
                .hours
                .exceptions
                .range(sub_days(first, 3)..=last)
                .next()
                .is_some();
            let next = add_days(last, 1);
            // A window of only weekly days with no change means the weekly pattern is constant
            // (a weekly range recurs four times in 28 days, and a DST gap swallows at most one
            // occurrence), so the state can only change again at the next exception.
            first = if window_has_exception {
                next
            } else {
                let (exception, _) = self.hours.exceptions.range(next..).next()?;
                sub_days(*exception, 3).max(next)
            };
        }
    }

    /// The next instant at or after `t` at which the schedule opens, or `None` if it never does.
    pub fn next_opening(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            return Some(t);
        }
        self.next_change(t)
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        use chrono::Offset;
        let utc = t.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        // At the very ends of chrono's calendar the local time may not exist; the UTC date is
        // then the closest answer (and keeps this total).
        utc.checked_add_offset(offset).unwrap_or(utc).date()
    }

    /// The merged, sorted, non-adjacent UTC intervals of the ranges that start on `first..=last`.
    fn intervals(&self, first: NaiveDate, last: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut raw = Vec::new();
        let mut date = first;
        while date <= last {
            for range in self.hours.ranges_on(date) {
                let start = self.resolve(date, range.start_min);
                let end = if range.crosses_midnight() {
                    self.resolve(add_days(date, 1), range.end_min)
                } else {
                    self.resolve(date, range.end_min)
                };
                if start < end {
                    raw.push((start, end));
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        raw.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(raw.len());
        for (start, end) in raw {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// The instant of local `date` + `minutes` (up to 24:00): the first occurrence in a fold, the
    /// first instant after the gap in a gap.
    fn resolve(&self, date: NaiveDate, minutes: u16) -> DateTime<Utc> {
        let midnight = date.and_time(chrono::NaiveTime::MIN);
        // Saturates at the end of chrono's calendar (year 262142) instead of panicking.
        let local = midnight
            .checked_add_signed(Duration::minutes(i64::from(minutes)))
            .unwrap_or(NaiveDateTime::MAX);
        resolve_local(self.time_zone, local)
    }
}

fn resolve_local(time_zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..=GAP_MINUTES_MAX {
        if let Some(instant) = time_zone.from_local_datetime(&probe).earliest() {
            return instant.with_timezone(&Utc);
        }
        let Some(next) = probe.checked_add_signed(Duration::minutes(1)) else {
            break;
        };
        probe = next;
    }
    // No zone in tzdb has a gap this long; reading the wall clock as UTC keeps this total.
    Utc.from_utc_datetime(&local)
}

fn add_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

fn sub_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}
