//! Schedules: 5-field cron expressions and `rate(N unit)`, in an IANA time zone.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::time::Duration;

/// When a schedule fires.
#[derive(Debug, Clone)]
pub enum Cadence {
    Cron(Box<Cron>),
    Rate(Duration),
}

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expression: String,
    pub cadence: Cadence,
    pub timezone: Tz,
}

impl Schedule {
    /// Parses a cron or rate expression in a time zone (UTC when `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let timezone = match timezone {
            None => Tz::UTC,
            Some(name) => parse_timezone(name)?,
        };
        let cadence = parse_cadence(expression)?;
        Ok(Schedule {
            expression: expression.to_string(),
            cadence,
            timezone,
        })
    }

    /// The first instant strictly after `after`.
    ///
    /// A cron expression is read on the wall clock of the schedule's time zone, and a
    /// daylight-saving change is met as Vixie cron meets it (see `WallClock`): a
    /// fixed-time schedule fires once for each time of day it names, even when the
    /// clock skips or repeats that time, and a periodic one fires at every real instant
    /// its wall clock matches. A rate
    /// ignores the time zone: its instants are multiples of the period since the Unix
    /// epoch.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.cadence {
            Cadence::Rate(every) => {
                let step = i64::try_from(every.as_millis()).ok()?.max(1);
                let t = after.timestamp_millis();
                let next = (t.div_euclid(step) + 1) * step;
                DateTime::from_timestamp_millis(next)
            }
            Cadence::Cron(cron) => {
                next_cron_after(cron, self.timezone, WallClock::of(&self.expression), after)
            }
        }
    }

    /// The instants strictly after `after` and at or before `until`, in order.
    pub fn occurrences(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Iterator<Item = DateTime<Utc>> {
        std::iter::successors(self.next_after(after), |t| self.next_after(*t))
            .take_while(move |t| *t <= until)
    }
}

/// How a cron expression meets a daylight-saving change: the rule of Vixie cron, which
/// is what people who write crontabs expect.
///
/// croner 4 makes the same distinction but calls a schedule fixed-time only when its
/// hour and minute fields each hold a single value, so `30 2,14 * * *` loses its 02:30
/// run on the spring-forward day and runs twice on the fall-back day. Braid resolves
/// the wall clock itself and asks croner only which wall-clock times match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WallClock {
    /// Neither the minute nor the hour field starts with `*` (e.g. `30 2 * * *`,
    /// `0 2,14 * * 1-5`): the schedule names times of day. A time skipped by the clock
    /// going forward fires at the first instant after the gap; a time the clock passes
    /// twice fires the first time only.
    Fixed,
    /// The minute or the hour field starts with `*` (e.g. `0 * * * *`, `*/15 9-17 * * *`):
    /// the schedule names a rhythm. It fires at every real instant whose wall clock
    /// matches, so a skipped hour has no runs and a repeated hour has them twice, and an
    /// hourly schedule runs every real hour across both changes.
    Periodic,
}

impl WallClock {
    fn of(expression: &str) -> Self {
        let wild = |field: Option<&str>| field.is_some_and(|f| f.starts_with(['*', '?']));
        let mut fields = expression.split_whitespace();
        if wild(fields.next()) || wild(fields.next()) {
            WallClock::Periodic
        } else {
            WallClock::Fixed
        }
    }
}

/// The first instant strictly after `after` at which `cron` fires in `tz`.
///
/// croner walks wall-clock times (naive, so it never sees a change); each matching
/// wall time is then turned into the instants it stands for. Walls come in order but
/// their instants do not quite: in a repeated hour the second passes of all its wall
/// times come after the first passes, so a second pass is held back (`later`) until a
/// wall time that cannot precede it shows up.
fn next_cron_after(
    cron: &Cron,
    tz: Tz,
    kind: WallClock,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(&tz).naive_local();
    // When `after` lies in the first pass of a repeated hour, wall times from earlier in
    // that hour still have their second pass ahead: start the walk that much earlier.
    let lookback = match tz.from_local_datetime(&local) {
        LocalResult::Ambiguous(first, second) => second.signed_duration_since(first),
        _ => TimeDelta::zero(),
    };
    let mut wall = local.checked_sub_signed(lookback)?.with_nanosecond(0)?;
    let mut inclusive = true;
    let mut later: Option<DateTime<Utc>> = None;
    // Ends: walls only move forward, and a wall far enough ahead maps past `after`.
    loop {
        wall = cron.find_next_occurrence(&wall, inclusive).ok()?;
        inclusive = false;
        let found = match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, second) => {
                let (first, second) = (first.with_timezone(&Utc), second.with_timezone(&Utc));
                if first > after {
                    Some(first)
                } else {
                    if kind == WallClock::Periodic && second > after && later.is_none() {
                        later = Some(second);
                    }
                    None
                }
            }
            LocalResult::None => match kind {
                WallClock::Fixed => first_instant_after_gap(tz, wall),
                WallClock::Periodic => None,
            },
        };
        if let Some(t) = found.filter(|t| *t > after) {
            return Some(later.map_or(t, |l| l.min(t)));
        }
    }
}

/// The longest stretch of skipped wall-clock time searched for its end: a day, as when
/// Samoa skipped 30 December 2011.
const MAX_GAP_MINUTES: u32 = 26 * 60;

/// The instant at which the clock, going forward, jumps over the wall time `gap` (one
/// that does not exist in `tz`): the first instant after the gap.
fn first_instant_after_gap(tz: Tz, gap: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = gap;
    for _ in 0..MAX_GAP_MINUTES {
        probe = probe.checked_add_signed(TimeDelta::minutes(1))?;
        if let Some(t) = tz.from_local_datetime(&probe).earliest() {
            // The gap ended within the last minute: back up to the second it did.
            let mut t = t.with_timezone(&Utc);
            let second = TimeDelta::seconds(1);
            while (t - second).with_timezone(&tz).naive_local() > gap {
                t -= second;
            }
            return Some(t);
        }
    }
    None
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("unknown time zone `{name}`: use an IANA name such as `Europe/Paris` or `UTC`")
    })
}

/// The five cron fields with the numbers each accepts.
const CRON_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
];

/// Names the first cron field holding a number outside its range, which croner only
/// reports as "number out of bounds".
fn cron_field_problem(e: &str) -> Option<String> {
    for (text, (name, lo, hi)) in e.split_whitespace().zip(CRON_FIELDS) {
        for part in text.split(',') {
            // `a-b/step`, `n#k` (nth weekday): only the range bounds are field values.
            let range = part.split(['/', '#']).next().unwrap_or_default();
            for n in range.split('-').filter_map(|p| p.parse::<u32>().ok()) {
                if n < lo || n > hi {
                    return Some(format!(
                        "the {name} field is `{text}`, but {name} must be between {lo} and {hi}"
                    ));
                }
            }
        }
    }
    None
}

/// Lowercases the first letter and drops a final period, to fit Braid's messages.
fn quiet(msg: &str) -> String {
    let msg = msg.trim().trim_end_matches('.');
    let mut chars = msg.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn parse_cadence(expression: &str) -> Result<Cadence, String> {
    let e = expression.trim();
    if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad rate `{e}`: write e.g. `rate(5 minutes)`"));
        };
        let n: u64 =
            n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("bad rate `{e}`: the count must be a positive whole number")
            })?;
        let secs = match unit.trim_end_matches('s') {
            "minute" => 60,
            "hour" => 3600,
            "day" => 86400,
            _ => {
                return Err(format!(
                    "bad rate `{e}`: unit must be minutes, hours or days"
                ));
            }
        };
        return Ok(Cadence::Rate(Duration::from_secs(n * secs)));
    }
    if e.split_whitespace().count() != 5 {
        return Err(format!(
            "bad cron `{e}`: expected 5 fields (minute hour day-of-month month day-of-week) or `rate(N unit)`"
        ));
    }
    // Vixie cron (and cronie) combine day of month and day of week with OR only when
    // neither field starts with `*`: `0 0 */2 * MON` is every other day that is a
    // Monday, not every other day and every Monday.
    let fields: Vec<&str> = e.split_whitespace().collect();
    let starred = fields[2].starts_with('*') || fields[4].starts_with('*');
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(starred)
        .build()
        .parse(e)
        .map_err(|err| {
            let why = cron_field_problem(e).unwrap_or_else(|| quiet(&err.to_string()));
            format!("bad cron `{e}`: {why}")
        })?;
    Ok(Cadence::Cron(Box::new(cron)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_field_cron_and_rates_parse() {
        assert!(Schedule::parse("0 2 * * *", None).is_ok());
        assert!(Schedule::parse("rate(5 minutes)", None).is_ok());
        assert!(
            Schedule::parse("0 2 * *", None)
                .unwrap_err()
                .contains("5 fields")
        );
        assert!(Schedule::parse("0 0 2 * * *", None).is_err());
        assert!(Schedule::parse("99 2 * * *", None).is_err());
        assert!(Schedule::parse("0 2 * * *", Some("Mars/Base")).is_err());
        assert!(Schedule::parse("rate(0 minutes)", None).is_err());
    }

    #[test]
    fn a_cron_number_out_of_range_names_its_field() {
        let err = Schedule::parse("0 25 * * *", None).unwrap_err();
        assert!(err.contains("hour field is `25`"), "{err}");
        let err = Schedule::parse("*/5 * 1-32 * *", None).unwrap_err();
        assert!(err.contains("day-of-month"), "{err}");
    }

    fn at(instant: &str) -> DateTime<Utc> {
        instant.parse().unwrap()
    }

    fn paris(expression: &str) -> Schedule {
        Schedule::parse(expression, Some("Europe/Paris")).unwrap()
    }

    fn between(s: &Schedule, after: &str, until: &str) -> Vec<DateTime<Utc>> {
        s.occurrences(at(after), at(until)).collect()
    }

    fn instants(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|i| at(i)).collect()
    }

    #[test]
    fn paris_schedule_fires_at_local_two_across_dst() {
        let s = paris("0 2 * * *");
        let winter = s
            .next_after(Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap())
            .unwrap();
        assert_eq!(winter, Utc.with_ymd_and_hms(2026, 1, 11, 1, 0, 0).unwrap());
        let summer = s
            .next_after(Utc.with_ymd_and_hms(2026, 7, 10, 12, 0, 0).unwrap())
            .unwrap();
        assert_eq!(summer, Utc.with_ymd_and_hms(2026, 7, 11, 0, 0, 0).unwrap());
    }

    #[test]
    fn two_am_fires_at_three_cest_on_the_spring_forward_day() {
        let got = between(
            &paris("0 2 * * *"),
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
        );
        let want = [
            "2026-03-28T01:00:00Z",
            "2026-03-29T01:00:00Z", // 02:00 does not exist: 03:00 CEST
            "2026-03-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
        ];
        assert_eq!(got, instants(&want));
    }

    #[test]
    fn two_am_fires_once_in_cest_on_the_fall_back_day() {
        let got = between(
            &paris("0 2 * * *"),
            "2026-10-23T12:00:00Z",
            "2026-10-27T12:00:00Z",
        );
        let want = [
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z", // 02:00 CEST; not again at 02:00 CET (01:00Z)
            "2026-10-26T01:00:00Z",
            "2026-10-27T01:00:00Z",
        ];
        assert_eq!(got, instants(&want));
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_at_the_first_instant_after_the_gap() {
        let got = between(
            &paris("30 2 * * *"),
            "2026-03-27T12:00:00Z",
            "2026-03-31T12:00:00Z",
        );
        let want = [
            "2026-03-28T01:30:00Z",
            "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z",
        ];
        assert_eq!(got, instants(&want));
    }

    #[test]
    fn a_time_repeated_by_fall_back_fires_once_at_its_first_pass() {
        let s = paris("30 2 * * *");
        let got = between(&s, "2026-10-23T12:00:00Z", "2026-10-27T12:00:00Z");
        let want = [
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z", // 02:30 CEST; 02:30 CET (01:30Z) is skipped
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z",
        ];
        assert_eq!(got, instants(&want));
        // Asked from inside either pass of the repeated hour, the next run is the next day.
        for inside in ["2026-10-25T00:45:00Z", "2026-10-25T01:10:00Z"] {
            assert_eq!(s.next_after(at(inside)), Some(at("2026-10-26T01:30:00Z")));
        }
    }

    #[test]
    fn an_hourly_schedule_fires_every_real_hour_across_both_changes() {
        let s = paris("0 * * * *");
        // 00:00 CET, 01:00 CET, 03:00 CEST, 04:00 CEST, 05:00 CEST: 02:00 does not exist.
        let spring = between(&s, "2026-03-28T22:30:00Z", "2026-03-29T03:30:00Z");
        let want = [
            "2026-03-28T23:00:00Z",
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z",
            "2026-03-29T03:00:00Z",
        ];
        assert_eq!(spring, instants(&want));
        // 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET, 04:00 CET: 02:00 happens twice.
        let fall = between(&s, "2026-10-24T22:30:00Z", "2026-10-25T03:30:00Z");
        let want = [
            "2026-10-24T23:00:00Z",
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z",
        ];
        assert_eq!(fall, instants(&want));
    }

    #[test]
    fn a_periodic_schedule_runs_both_passes_of_a_repeated_hour_in_real_order() {
        let s = paris("*/30 * * * *");
        let got = between(&s, "2026-10-24T23:40:00Z", "2026-10-25T02:00:00Z");
        let want = [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:30:00Z", // 02:30 CET
            "2026-10-25T02:00:00Z", // 03:00 CET
        ];
        assert_eq!(got, instants(&want));
        // From late in the first pass, the next run is the start of the second pass.
        assert_eq!(
            s.next_after(at("2026-10-25T00:50:00Z")),
            Some(at("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-10-25T01:10:00Z")),
            Some(at("2026-10-25T01:30:00Z"))
        );
    }

    #[test]
    fn a_periodic_schedule_has_no_runs_in_a_skipped_hour() {
        let got = between(
            &paris("*/30 2 * * *"),
            "2026-03-28T12:00:00Z",
            "2026-03-30T12:00:00Z",
        );
        assert_eq!(
            got,
            instants(&["2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"])
        );
    }

    #[test]
    fn several_fixed_times_a_day_each_fire_once_across_dst() {
        // croner alone would drop 02:30 on the spring day and run it twice in the fall.
        let s = paris("30 2,14 * * *");
        let spring = between(&s, "2026-03-28T23:00:00Z", "2026-03-29T23:00:00Z");
        assert_eq!(
            spring,
            instants(&["2026-03-29T01:00:00Z", "2026-03-29T12:30:00Z"])
        );
        let fall = between(&s, "2026-10-24T22:00:00Z", "2026-10-25T22:00:00Z");
        assert_eq!(
            fall,
            instants(&["2026-10-25T00:30:00Z", "2026-10-25T13:30:00Z"])
        );
    }

    #[test]
    fn fixed_times_that_meet_after_a_gap_fire_once() {
        let got = between(
            &paris("0 2,3 * * *"),
            "2026-03-28T23:00:00Z",
            "2026-03-30T01:30:00Z",
        );
        assert_eq!(
            got,
            instants(&[
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:00:00Z",
                "2026-03-30T01:00:00Z"
            ])
        );
    }

    #[test]
    fn a_half_hour_gap_ends_where_the_clock_lands() {
        // Lord Howe Island goes from +10:30 to +11 at 02:00 local: 02:15 becomes 02:30.
        let s = Schedule::parse("15 2 * * *", Some("Australia/Lord_Howe")).unwrap();
        let got = between(&s, "2026-10-02T12:00:00Z", "2026-10-04T12:00:00Z");
        assert_eq!(
            got,
            instants(&["2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z"])
        );
    }

    #[test]
    fn rates_ignore_the_time_zone() {
        let s = Schedule::parse("rate(1 hour)", Some("Europe/Paris")).unwrap();
        let got = between(&s, "2026-03-28T23:30:00Z", "2026-03-29T02:00:00Z");
        assert_eq!(
            got,
            instants(&[
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z"
            ])
        );
    }

    #[test]
    fn occurrences_exclude_after_and_include_until() {
        let s = Schedule::parse("0 * * * *", None).unwrap();
        let got = between(&s, "2026-05-01T01:00:00Z", "2026-05-01T03:00:00Z");
        assert_eq!(
            got,
            instants(&["2026-05-01T02:00:00Z", "2026-05-01T03:00:00Z"])
        );
    }

    /// The rules read minute by minute: a periodic schedule fires at each instant whose
    /// wall clock matches; a fixed-time one at the first pass of each matching wall time,
    /// and at the end of a gap that swallowed one.
    fn by_the_minute(s: &Schedule, from: DateTime<Utc>, days: i64) -> Vec<DateTime<Utc>> {
        let Cadence::Cron(cron) = &s.cadence else {
            unreachable!()
        };
        let tz = s.timezone;
        let minute = TimeDelta::minutes(1);
        let wall = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
        let matches = |w: NaiveDateTime| cron.is_time_matching(&w).unwrap();
        let mut fired = Vec::new();
        for n in 1..=days * 1440 {
            let t = from + minute * n as i32;
            let w = wall(t);
            let first_pass = match tz.from_local_datetime(&w) {
                LocalResult::Ambiguous(first, _) => first == t,
                _ => true,
            };
            let fires = match WallClock::of(&s.expression) {
                WallClock::Periodic => matches(w),
                WallClock::Fixed => {
                    let mut skipped = wall(t - minute) + minute;
                    let mut swallowed = false;
                    while skipped < w {
                        swallowed |= matches(skipped);
                        skipped += minute;
                    }
                    (matches(w) && first_pass) || swallowed
                }
            };
            if fires {
                fired.push(t);
            }
        }
        fired
    }

    #[test]
    fn next_after_agrees_with_a_minute_by_minute_reading_around_transitions() {
        let around = [
            ("Europe/Paris", "2026-03-28T00:00:00Z"),
            ("Europe/Paris", "2026-10-24T00:00:00Z"),
            ("America/New_York", "2026-03-07T12:00:00Z"),
            ("America/New_York", "2026-10-31T12:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
            ("Australia/Lord_Howe", "2026-10-03T00:00:00Z"),
        ];
        let expressions = [
            "30 2 * * *",
            "0 1-3 * * *",
            "45 1,2,14 * * *",
            "*/20 * * * *",
            "10 * * * *",
            "*/15 2 * * *",
        ];
        for (zone, from) in around {
            for e in expressions {
                let s = Schedule::parse(e, Some(zone)).unwrap();
                let want = by_the_minute(&s, at(from), 3);
                let got: Vec<_> = s
                    .occurrences(at(from), at(from) + TimeDelta::days(3))
                    .collect();
                assert_eq!(got, want, "`{e}` in {zone} from {from}");
            }
        }
    }

    #[test]
    fn rates_align_to_their_period() {
        let s = Schedule::parse("rate(5 minutes)", None).unwrap();
        let t = s
            .next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 7, 30).unwrap())
            .unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).unwrap());
    }

    #[test]
    fn a_starred_day_field_combines_the_day_fields_with_and_as_vixie_cron_does() {
        let every_other_monday = Schedule::parse("0 0 */2 * MON", None).unwrap();
        let mut t = "2026-11-01T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
        let mut fired = Vec::new();
        for _ in 0..3 {
            t = every_other_monday.next_after(t).unwrap();
            fired.push(t.format("%Y-%m-%d %a").to_string());
        }
        // Odd days of the month (1, 3, 5, …) that are Mondays.
        assert_eq!(
            fired,
            ["2026-11-09 Mon", "2026-11-23 Mon", "2026-12-07 Mon"]
        );
        let first_or_monday = Schedule::parse("0 0 1 * MON", None).unwrap();
        let t = "2026-11-02T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
        assert_eq!(
            first_or_monday
                .next_after(t)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string(),
            "2026-11-09",
            "neither starred: the 1st or any Monday"
        );
    }
}
