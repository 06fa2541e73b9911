//! Working intervals (S1, S2): several ranges a day, overnight ranges, week wrap, dated exceptions,
//! DST gaps and folds in Europe/Paris, America/New_York and Australia/Lord_Howe, and a property
//! test that `is_open` and `next_change` agree.

mod config_support;

use chat_core::config::{
    ConfigRejection, DayHours, EXCEPTIONS_MAX, RANGES_PER_DAY_MAX, Schedule, TimeRange,
    WorkingHours,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use config_support::{cases, date, utc};
use proptest::prelude::*;

fn range(text: &str) -> TimeRange {
    TimeRange::parse(text).unwrap()
}

/// Weekly hours from `(weekday index Monday = 0, "HH:MM-HH:MM")` pairs.
fn weekly(ranges: &[(usize, &str)]) -> WorkingHours {
    let mut hours = WorkingHours::closed();
    for (day, text) in ranges {
        hours.weekly[*day].push(range(text));
    }
    hours
}

fn schedule(zone: &str, hours: WorkingHours) -> Schedule {
    Schedule::new(zone, hours).unwrap()
}

/// Asserts the schedule is open exactly on `[from, to)` around those instants.
#[track_caller]
fn assert_open_exactly(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) {
    let second = Duration::seconds(1);
    assert!(!s.is_open(from - second), "open before {from}");
    assert!(s.is_open(from), "closed at {from}");
    assert!(s.is_open(to - second), "closed just before {to}");
    assert!(!s.is_open(to), "still open at {to}");
    assert_eq!(s.next_change(from - Duration::minutes(30)), Some(from));
    assert_eq!(s.next_change(from), Some(to));
}

#[test]
fn s1_unknown_time_zone_is_refused() {
    assert_eq!(
        Schedule::new("Europe/Atlantis", WorkingHours::always_open()),
        Err(ConfigRejection::UnknownTimeZone {
            name: "Europe/Atlantis".to_owned()
        })
    );
}

#[test]
fn s1_time_ranges_parse_and_refuse_nonsense() {
    assert_eq!(range("09:00-17:30"), TimeRange::new(540, 1050).unwrap());
    assert_eq!(range("22:00-24:00").end_min, 1440);
    assert!(range("22:00-02:00").crosses_midnight());
    for bad in [
        "9:00-17:00",
        "09:00-09:00",
        "24:00-01:00",
        "09:60-10:00",
        "0900-1000",
        "-",
    ] {
        assert!(TimeRange::parse(bad).is_err(), "{bad}");
    }
    assert!(TimeRange::new(0, 0).is_err());
    assert!(TimeRange::new(1440, 10).is_err());
}

#[test]
fn s1_limits_on_ranges_per_day_and_exceptions() {
    let mut hours = WorkingHours::closed();
    hours.weekly[0] = (0..RANGES_PER_DAY_MAX as u16)
        .map(|i| TimeRange::new(i * 60, i * 60 + 30).unwrap())
        .collect();
    assert!(hours.validate().is_ok());
    hours.weekly[0].push(range("23:00-23:30"));
    assert_eq!(
        hours.validate(),
        Err(ConfigRejection::TooMany {
            field: "ranges per day".to_owned(),
            max: RANGES_PER_DAY_MAX
        })
    );

    let mut hours = WorkingHours::closed();
    let first = date(2026, 1, 1);
    for i in 0..EXCEPTIONS_MAX as u64 {
        hours
            .exceptions
            .insert(first + chrono::Days::new(i), DayHours::Closed);
    }
    assert!(hours.validate().is_ok());
    hours.exceptions.insert(
        first + chrono::Days::new(EXCEPTIONS_MAX as u64),
        DayHours::Closed,
    );
    assert!(matches!(
        hours.validate(),
        Err(ConfigRejection::TooMany {
            max: EXCEPTIONS_MAX,
            ..
        })
    ));
}

#[test]
fn s2_several_ranges_a_day_in_paris() {
    // Monday 2026-03-02, Paris is UTC+1 in winter.
    let s = schedule(
        "Europe/Paris",
        weekly(&[(0, "09:00-12:00"), (0, "14:00-18:00")]),
    );
    assert_open_exactly(&s, utc(2026, 3, 2, 8, 0), utc(2026, 3, 2, 11, 0));
    assert_open_exactly(&s, utc(2026, 3, 2, 13, 0), utc(2026, 3, 2, 17, 0));
    assert!(!s.is_open(utc(2026, 3, 2, 12, 0)));
    // After Monday's last range the next change is next Monday's opening.
    assert_eq!(
        s.next_change(utc(2026, 3, 2, 17, 0)),
        Some(utc(2026, 3, 9, 8, 0))
    );
    assert_eq!(
        s.next_opening(utc(2026, 3, 2, 12, 0)),
        Some(utc(2026, 3, 2, 13, 0))
    );
    assert_eq!(
        s.next_opening(utc(2026, 3, 2, 9, 0)),
        Some(utc(2026, 3, 2, 9, 0))
    );
}

#[test]
fn s2_overnight_range_closes_the_next_day() {
    // Friday 22:00 – Saturday 02:00 in New York (UTC-5 in January).
    let s = schedule("America/New_York", weekly(&[(4, "22:00-02:00")]));
    assert_open_exactly(&s, utc(2026, 1, 10, 3, 0), utc(2026, 1, 10, 7, 0));
    assert!(s.is_open(utc(2026, 1, 10, 6, 0)), "Saturday 01:00 local");
}

#[test]
fn s2_week_wraps_from_sunday_to_monday() {
    // Sunday 22:00 – Monday 02:00 UTC, and Monday 02:00 – 04:00: one opening across the wrap.
    let s = schedule("UTC", weekly(&[(6, "22:00-02:00"), (0, "02:00-04:00")]));
    assert_open_exactly(&s, utc(2026, 1, 4, 22, 0), utc(2026, 1, 5, 4, 0));
    // From a Tuesday the next change wraps to the following Sunday.
    assert_eq!(
        s.next_change(utc(2026, 1, 6, 12, 0)),
        Some(utc(2026, 1, 11, 22, 0))
    );
}

#[test]
fn s1_exceptions_close_a_day_and_open_a_special_one() {
    let mut hours = weekly(&[(0, "09:00-17:00"), (6, "22:00-02:00")]);
    // Monday 2026-01-05 is a holiday; Saturday 2026-01-10 has a special opening.
    hours.exceptions.insert(date(2026, 1, 5), DayHours::Closed);
    hours.exceptions.insert(
        date(2026, 1, 10),
        DayHours::Open(vec![range("10:00-14:00")]),
    );
    let s = schedule("UTC", hours);
    assert!(!s.is_open(utc(2026, 1, 5, 10, 0)), "holiday");
    // Sunday's overnight range belongs to Sunday and still runs into the Monday holiday.
    assert!(s.is_open(utc(2026, 1, 5, 1, 0)));
    assert_eq!(
        s.next_change(utc(2026, 1, 5, 1, 0)),
        Some(utc(2026, 1, 5, 2, 0))
    );
    assert_eq!(
        s.next_change(utc(2026, 1, 5, 2, 0)),
        Some(utc(2026, 1, 10, 10, 0))
    );
    assert_open_exactly(&s, utc(2026, 1, 10, 10, 0), utc(2026, 1, 10, 14, 0));
    // The following Monday is an ordinary Monday again.
    assert!(s.is_open(utc(2026, 1, 12, 10, 0)));
}

#[test]
fn s2_never_changing_schedules_have_no_next_change() {
    let always = schedule("Europe/Paris", WorkingHours::always_open());
    let never = schedule("Europe/Paris", WorkingHours::closed());
    // Across the spring-forward night: always open stays open.
    for t in [
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 10, 25, 0, 30),
    ] {
        assert!(always.is_open(t));
        assert!(!never.is_open(t));
        assert_eq!(always.next_change(t), None);
        assert_eq!(never.next_change(t), None);
        assert_eq!(never.next_opening(t), None);
    }
    // A far-away exception is still found.
    let mut hours = WorkingHours::closed();
    hours
        .exceptions
        .insert(date(2031, 6, 2), DayHours::Open(vec![range("09:00-10:00")]));
    let s = schedule("UTC", hours);
    assert_eq!(
        s.next_change(utc(2026, 1, 1, 0, 0)),
        Some(utc(2031, 6, 2, 9, 0))
    );
}

#[test]
fn s1_paris_gap_opens_at_the_end_of_the_gap() {
    // Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    let s = schedule("Europe/Paris", weekly(&[(6, "02:30-04:00")]));
    assert_open_exactly(&s, utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0));
    // A range entirely inside the gap does not open that day; the next opening is a week later.
    let s = schedule("Europe/Paris", weekly(&[(6, "02:10-02:50")]));
    assert!(!s.is_open(utc(2026, 3, 29, 1, 0)));
    assert_eq!(
        s.next_change(utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 4, 5, 0, 10))
    );
}

#[test]
fn s1_paris_fold_uses_the_first_occurrence() {
    // Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00 UTC); 02:00–03:00 happens twice.
    let s = schedule("Europe/Paris", weekly(&[(6, "01:00-02:30")]));
    // Opens 01:00 CEST (23:00 UTC Saturday), closes the first time the clock shows 02:30.
    assert_open_exactly(&s, utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 30));
    assert!(
        !s.is_open(utc(2026, 10, 25, 1, 15)),
        "02:15 CET, second pass"
    );
    let s = schedule("Europe/Paris", weekly(&[(6, "02:30-05:00")]));
    // Opens at the first 02:30 (CEST), closes 05:00 CET: three and a half hours.
    assert_open_exactly(&s, utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4, 0));
}

#[test]
fn s1_new_york_gap_and_fold() {
    // Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    let s = schedule("America/New_York", weekly(&[(6, "01:00-02:30")]));
    assert_open_exactly(&s, utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0));
    let s = schedule("America/New_York", weekly(&[(6, "02:00-03:00")]));
    assert!(
        !s.is_open(utc(2026, 3, 8, 7, 0)),
        "the whole range is in the gap"
    );
    // Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST (06:00 UTC); 01:00–02:00 twice.
    let s = schedule("America/New_York", weekly(&[(6, "00:00-01:30")]));
    assert_open_exactly(&s, utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 5, 30));
    assert!(
        !s.is_open(utc(2026, 11, 1, 6, 15)),
        "01:15 EST, second pass"
    );
    // An overnight range across the fold lasts one hour longer than on the wall clock.
    let s = schedule("America/New_York", weekly(&[(5, "22:00-06:00")]));
    assert_open_exactly(&s, utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0));
}

#[test]
fn s1_lord_howe_half_hour_gap_and_fold() {
    // Sunday 2026-10-04: 02:00 LHST (+10:30) jumps to 02:30 LHDT (+11), i.e. 15:30 UTC Saturday.
    let s = schedule("Australia/Lord_Howe", weekly(&[(6, "02:00-03:00")]));
    assert_open_exactly(&s, utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 16, 0));
    let s = schedule("Australia/Lord_Howe", weekly(&[(6, "02:05-02:25")]));
    assert!(
        !s.is_open(utc(2026, 10, 3, 15, 30)),
        "inside the 30-minute gap"
    );
    // Sunday 2026-04-05: 02:00 LHDT (+11) falls back to 01:30 LHST (+10:30) at 15:00 UTC
    // Saturday; 01:30–02:00 happens twice. 01:45 first occurs at 14:45 UTC; 02:15 is unique.
    let s = schedule("Australia/Lord_Howe", weekly(&[(6, "01:45-02:15")]));
    assert_open_exactly(&s, utc(2026, 4, 4, 14, 45), utc(2026, 4, 4, 15, 45));
}

fn arb_range() -> impl Strategy<Value = TimeRange> {
    // Half-hour steps land boundaries on and inside every DST gap and fold of the zones below.
    (0u16..48, 1u16..=48)
        .prop_filter("start != end", |(s, e)| s != e)
        .prop_map(|(s, e)| TimeRange::new(s * 30, e * 30).unwrap())
}

fn arb_day() -> impl Strategy<Value = Vec<TimeRange>> {
    prop::collection::vec(arb_range(), 0..3)
}

fn arb_schedule() -> impl Strategy<Value = Schedule> {
    let zones = prop::sample::select(vec![
        "UTC",
        "Europe/Paris",
        "America/New_York",
        "Australia/Lord_Howe",
        "America/Sao_Paulo",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ]);
    let exception = prop_oneof![Just(DayHours::Closed), arb_day().prop_map(DayHours::Open),];
    (
        zones,
        prop::array::uniform7(arb_day()),
        prop::collection::btree_map(0u64..120, exception, 0..6),
    )
        .prop_map(|(zone, weekly, exceptions)| {
            let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            let hours = WorkingHours {
                weekly,
                exceptions: exceptions
                    .into_iter()
                    .map(|(d, h)| (base + chrono::Days::new(d), h))
                    .collect(),
            };
            Schedule::new(zone, hours).unwrap()
        })
}

fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2026 at minute resolution, plus a few seconds so instants also fall between boundaries.
    (0i64..365 * 24 * 60, 0i64..60)
        .prop_map(|(m, s)| utc(2026, 1, 1, 0, 0) + Duration::minutes(m) + Duration::seconds(s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn s2_is_open_agrees_with_next_change(
        s in arb_schedule(),
        t in arb_instant(),
        probes in prop::collection::vec(0.0f64..1.0, 8),
    ) {
        let open = s.is_open(t);
        match s.next_change(t) {
            Some(change) => {
                prop_assert!(change > t);
                prop_assert_ne!(s.is_open(change), open, "no change at {}", change);
                prop_assert_eq!(s.is_open(change - Duration::seconds(1)), open);
                let span = (change - t).num_seconds();
                for p in probes {
                    let probe = t + Duration::seconds((span as f64 * p) as i64);
                    prop_assert_eq!(s.is_open(probe), open, "changed before {} at {}", change, probe);
                }
            }
            None => {
                for p in probes {
                    let probe = t + Duration::seconds((200.0 * 86_400.0 * p) as i64);
                    prop_assert_eq!(s.is_open(probe), open, "changed at {} with no next change", probe);
                }
            }
        }
    }
}

#[test]
fn s2_extreme_instants_do_not_panic() {
    let hours = weekly(&[(0, "09:00-17:00"), (6, "22:00-02:00")]);
    for zone in ["Europe/Paris", "America/New_York", "Pacific/Kiritimati"] {
        let s = schedule(zone, hours.clone());
        for t in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
            let open = s.is_open(t);
            if let Some(change) = s.next_change(t) {
                assert!(change > t);
                assert_ne!(s.is_open(change), open);
            }
        }
    }
}
