//! When a scheduled workflow fires: the pure planner behind the cron tick and
//! `braid backfill`.
//!
//! The tick runs about once a minute and calls [`due`] for each schedule trigger with
//! the last instant it handled; it starts a run for each instant in [`Due::fire`] (after
//! asking [`overlap_decision`] what to do about runs still active) and stores
//! [`Due::handled_until`] for the next tick. Keeping the cursor rather than "the last
//! run" is what makes catch-up exact: an outage leaves the cursor behind, and the next
//! tick sees precisely the instants it missed. The instants are deterministic, so a
//! caller that crashes before storing the cursor can recognise a run it already started
//! by its instant.

use crate::Schedule;
use crate::decl::{CatchupPolicy, OverlapPolicy};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::time::Duration;

/// How late an instant may be seen and still count as on time rather than missed.
///
/// The tick runs every minute, so an instant is normally seen up to a minute after it;
/// a second minute absorbs a tick that starts late or takes a while. Under `catchup:
/// none` an instant this fresh still fires; anything older is a missed run.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(120);

/// The most instants one call of [`due`] fires. A long outage under `catchup: all` is
/// worked off over several ticks instead of starting thousands of runs in one.
pub const MAX_FIRE_PER_CALL: usize = 1000;

/// Where the count in [`Due::skipped`] stops. It is for logs and metrics; counting a
/// minutely schedule's month-long outage one instant at a time would cost more than the
/// tick itself.
pub const SKIP_COUNT_LIMIT: usize = 10_000;

/// Where [`backfill_instants`] stops counting a range that is over its limit.
const BACKFILL_COUNT_LIMIT: usize = 100_000;

/// What one tick should do for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The instants to start a run for, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Due instants that will never fire: missed under the catch-up policy, or older
    /// than the catch-up window. Saturates at [`SKIP_COUNT_LIMIT`].
    pub skipped: usize,
    /// What to pass as `last_fired` next time: every instant up to here is dealt with.
    /// It is `now` unless [`Due::more`] is set, when it is the last instant fired.
    pub handled_until: DateTime<Utc>,
    /// Instants are still due: the [`MAX_FIRE_PER_CALL`] cap was reached, and the next
    /// call, from `handled_until`, continues where this one stopped.
    pub more: bool,
    /// The first instant after `handled_until`: when this schedule next needs a tick.
    /// At or before `now` exactly when `more` is set.
    pub next: Option<DateTime<Utc>>,
}

/// The instants of `schedule` to fire now.
///
/// `last_fired` is the last instant already handled ([`Due::handled_until`] of the
/// previous call). `None` means the schedule was just registered: nothing before `now`
/// fires and the cursor starts at `now`. Registration should store its own time as the
/// cursor instead when an instant between registering and the first tick must not be
/// lost to tick lag.
///
/// The instants due are those in `(last_fired, now]`. Those older than `window` (with
/// `window` never less than [`ON_TIME_GRACE`]: the instant due right now always counts)
/// are skipped under every policy. Of the rest:
/// - `none` fires the latest if it is on time (within [`ON_TIME_GRACE`] of `now`), and
///   nothing else: missed runs are not made up;
/// - `latest` fires the latest, on time or not: one run stands in for all missed ones;
/// - `all` fires each, oldest first, at most [`MAX_FIRE_PER_CALL`] per call.
pub fn due(
    schedule: &Schedule,
    catchup: CatchupPolicy,
    window: Duration,
    last_fired: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Due {
    let last = match last_fired {
        Some(last) if last < now => last,
        // Just registered, or a cursor ahead of this clock: nothing is due.
        other => {
            let handled_until = other.map_or(now, |last| last.max(now));
            return Due {
                fire: Vec::new(),
                skipped: 0,
                handled_until,
                more: false,
                next: schedule.next_after(handled_until),
            };
        }
    };
    let window = delta(window.max(ON_TIME_GRACE));
    let cutoff = now
        .checked_sub_signed(window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let start = last.max(cutoff);

    let mut fire = Vec::new();
    let mut handled_until = now;
    let mut more = false;
    match catchup {
        CatchupPolicy::All => {
            let mut instants = schedule.occurrences(start, now);
            fire.extend(instants.by_ref().take(MAX_FIRE_PER_CALL));
            if instants.next().is_some() {
                more = true;
                handled_until = *fire.last().expect("the cap is above zero");
            }
        }
        CatchupPolicy::Latest | CatchupPolicy::None => {
            let on_time = |t: &DateTime<Utc>| now - *t <= delta(ON_TIME_GRACE);
            let latest = latest_between(schedule, start, now)
                .filter(|t| catchup == CatchupPolicy::Latest || on_time(t));
            fire.extend(latest);
        }
    }
    // Every instant in (last, handled_until] is either fired or skipped.
    let handled = schedule
        .occurrences(last, handled_until)
        .take(SKIP_COUNT_LIMIT + fire.len())
        .count();
    Due {
        skipped: handled.saturating_sub(fire.len()),
        next: schedule.next_after(handled_until),
        fire,
        handled_until,
        more,
    }
}

/// The last instant in `(after, until]`, found by looking back over growing spans from
/// `until`, so a long window of a frequent schedule is not walked from its start.
fn latest_between(
    schedule: &Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut span = TimeDelta::hours(1);
    loop {
        let from = until
            .checked_sub_signed(span)
            .map_or(after, |from| from.max(after));
        if let Some(t) = schedule.occurrences(from, until).last() {
            return Some(t);
        }
        if from == after {
            return None;
        }
        span = span.checked_mul(4).unwrap_or(TimeDelta::MAX);
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// What to do with a scheduled instant while runs of its workflow are still active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Start the run now.
    Start,
    /// Do not start a run for this instant.
    Skip,
    /// Start the run, but let it wait for the active ones: the caller admits it as if
    /// the workflow's concurrency were 1.
    Queue,
}

/// Applies a schedule's `overlap` policy. With nothing active there is nothing to
/// overlap, so every policy starts; `allow` starts regardless.
///
/// The caller counts the runs it starts in the same tick as active, so that a
/// catch-up of several instants under `skip` starts one run, not several.
pub fn overlap_decision(policy: OverlapPolicy, active_runs_of_workflow: usize) -> Overlap {
    if active_runs_of_workflow == 0 {
        return Overlap::Start;
    }
    match policy {
        OverlapPolicy::Allow => Overlap::Start,
        OverlapPolicy::Skip => Overlap::Skip,
        OverlapPolicy::Queue => Overlap::Queue,
    }
}

/// The instants of `schedule` from `from` to `to`, both included, for
/// `braid backfill --from --to`: one run each, oldest first.
///
/// Refuses an inverted range, and a range of more than `limit` instants (saying how
/// many there are), since a mistyped year would otherwise start a flood of runs.
pub fn backfill_instants(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<DateTime<Utc>>, String> {
    let show = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    if from > to {
        return Err(format!(
            "nothing to backfill: --from {} is after --to {}",
            show(from),
            show(to)
        ));
    }
    // Instants never carry a fraction of a nanosecond, so "after just before `from`"
    // is "at or after `from`".
    let before = from
        .checked_sub_signed(TimeDelta::nanoseconds(1))
        .unwrap_or(from);
    let mut instants = schedule.occurrences(before, to);
    let picked: Vec<_> = instants.by_ref().take(limit).collect();
    let rest = instants.take(BACKFILL_COUNT_LIMIT).count();
    if rest == 0 {
        return Ok(picked);
    }
    let total = picked.len() + rest;
    let count = if rest == BACKFILL_COUNT_LIMIT {
        format!("at least {total}")
    } else {
        total.to_string()
    };
    Err(format!(
        "`{}` fires {count} times from {} to {}, more than the limit of {limit}: narrow --from/--to",
        schedule.expression,
        show(from),
        show(to)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CatchupPolicy::{All, Latest, None as NoCatchup};

    fn at(instant: &str) -> DateTime<Utc> {
        instant.parse().unwrap()
    }

    fn instants(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|i| at(i)).collect()
    }

    fn hourly() -> Schedule {
        Schedule::parse("0 * * * *", None).unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);
    const MINUTE: TimeDelta = TimeDelta::minutes(1);

    /// Ticks once a day at noon UTC from `first` for `days` days, firing whatever is due.
    fn daily_ticks(
        s: &Schedule,
        policy: CatchupPolicy,
        first: &str,
        days: i64,
    ) -> Vec<DateTime<Utc>> {
        let mut last = Some(at(first) - TimeDelta::days(1));
        let mut fired = Vec::new();
        for day in 0..days {
            let d = due(s, policy, DAY, last, at(first) + TimeDelta::days(day));
            fired.extend(d.fire);
            last = Some(d.handled_until);
        }
        fired
    }

    /// Ticks every minute, 20 seconds past it, from `first` until `until`.
    fn minute_ticks(s: &Schedule, first: &str, until: &str) -> Vec<DateTime<Utc>> {
        let mut now = at(first) + TimeDelta::seconds(20);
        let mut last = Some(at(first));
        let mut fired = Vec::new();
        while now <= at(until) {
            let d = due(s, NoCatchup, DAY, last, now);
            fired.extend(d.fire);
            last = Some(d.handled_until);
            now += MINUTE;
        }
        fired
    }

    #[test]
    fn two_am_paris_fires_at_the_right_instants_across_both_dst_changes() {
        let s = Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
        let spring = [
            "2026-03-27T01:00:00Z",
            "2026-03-28T01:00:00Z",
            "2026-03-29T01:00:00Z", // 03:00 CEST: 02:00 does not exist
            "2026-03-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
        ];
        let fall = [
            "2026-10-23T00:00:00Z",
            "2026-10-24T00:00:00Z",
            "2026-10-25T00:00:00Z", // 02:00 CEST, and not 02:00 CET (01:00Z)
            "2026-10-26T01:00:00Z",
            "2026-10-27T01:00:00Z",
        ];
        for policy in [Latest, All] {
            let got = daily_ticks(&s, policy, "2026-03-27T12:00:00Z", 5);
            assert_eq!(got, instants(&spring), "{policy:?}");
            let got = daily_ticks(&s, policy, "2026-10-23T12:00:00Z", 5);
            assert_eq!(got, instants(&fall), "{policy:?}");
        }
        // A tick every minute fires each on time, under `none` too.
        let got = minute_ticks(&s, "2026-03-28T12:00:00Z", "2026-03-30T12:00:00Z");
        assert_eq!(got, instants(&spring[2..4]));
        let got = minute_ticks(&s, "2026-10-24T12:00:00Z", "2026-10-26T12:00:00Z");
        assert_eq!(got, instants(&fall[2..4]));
    }

    #[test]
    fn an_on_time_tick_fires_the_one_instant_due() {
        for policy in [NoCatchup, Latest, All] {
            let d = due(
                &hourly(),
                policy,
                DAY,
                Some(at("2026-05-01T01:00:00Z")),
                at("2026-05-01T02:00:40Z"),
            );
            assert_eq!(d.fire, instants(&["2026-05-01T02:00:00Z"]), "{policy:?}");
            assert_eq!(d.skipped, 0);
            assert_eq!(d.handled_until, at("2026-05-01T02:00:40Z"));
            assert!(!d.more);
            assert_eq!(d.next, Some(at("2026-05-01T03:00:00Z")));
        }
    }

    #[test]
    fn after_a_three_hour_outage_each_policy_fires_what_it_promises() {
        let last = Some(at("2026-05-01T01:00:00Z"));
        let now = at("2026-05-01T04:30:00Z"); // missed 02:00, 03:00, 04:00
        let none = due(&hourly(), NoCatchup, DAY, last, now);
        assert_eq!((none.fire.len(), none.skipped), (0, 3));
        let latest = due(&hourly(), Latest, DAY, last, now);
        assert_eq!(latest.fire, instants(&["2026-05-01T04:00:00Z"]));
        assert_eq!(latest.skipped, 2);
        let all = due(&hourly(), All, DAY, last, now);
        let missed = [
            "2026-05-01T02:00:00Z",
            "2026-05-01T03:00:00Z",
            "2026-05-01T04:00:00Z",
        ];
        assert_eq!(all.fire, instants(&missed));
        assert_eq!(all.skipped, 0);
        for d in [none, latest, all] {
            assert_eq!(d.handled_until, now);
            assert_eq!(d.next, Some(at("2026-05-01T05:00:00Z")));
        }
    }

    #[test]
    fn an_outage_ending_just_after_an_instant_still_fires_that_one_under_none() {
        let last = Some(at("2026-05-01T01:00:00Z"));
        let now = at("2026-05-01T05:00:30Z");
        let none = due(&hourly(), NoCatchup, DAY, last, now);
        assert_eq!(none.fire, instants(&["2026-05-01T05:00:00Z"]));
        assert_eq!(none.skipped, 3);
        let all = due(&hourly(), All, DAY, last, now);
        assert_eq!(all.fire.len(), 4);
    }

    #[test]
    fn on_time_means_within_the_grace() {
        let last = Some(at("2026-05-01T01:00:00Z"));
        let d = due(&hourly(), NoCatchup, DAY, last, at("2026-05-01T02:02:00Z"));
        assert_eq!(d.fire, instants(&["2026-05-01T02:00:00Z"]));
        let d = due(&hourly(), NoCatchup, DAY, last, at("2026-05-01T02:02:01Z"));
        assert_eq!((d.fire, d.skipped), (vec![], 1));
    }

    #[test]
    fn the_window_limits_catch_up_but_never_the_instant_due_now() {
        let last = Some(at("2026-05-01T01:00:00Z"));
        let now = at("2026-05-01T04:30:00Z");
        let two_hours = Duration::from_secs(7200);
        let all = due(&hourly(), All, two_hours, last, now);
        let recent = ["2026-05-01T03:00:00Z", "2026-05-01T04:00:00Z"];
        assert_eq!((all.fire, all.skipped), (instants(&recent), 1));
        let latest = due(&hourly(), Latest, Duration::from_secs(1200), last, now);
        assert_eq!((latest.fire, latest.skipped), (vec![], 3));
        // A window shorter than the grace still lets an on-time instant fire.
        let d = due(
            &hourly(),
            All,
            Duration::ZERO,
            last,
            at("2026-05-01T02:00:30Z"),
        );
        assert_eq!(d.fire, instants(&["2026-05-01T02:00:00Z"]));
    }

    #[test]
    fn catching_up_all_is_capped_per_call_and_the_next_call_continues() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        let start = at("2026-05-01T00:00:00Z");
        let now = start + MINUTE * 1500;
        let first = due(&s, All, DAY * 2, Some(start), now);
        assert_eq!(first.fire.len(), MAX_FIRE_PER_CALL);
        assert_eq!(first.fire[0], start + MINUTE);
        assert!(first.more);
        assert_eq!(first.handled_until, start + MINUTE * 1000);
        assert_eq!(first.next, Some(start + MINUTE * 1001));
        assert_eq!(first.skipped, 0);
        let second = due(&s, All, DAY * 2, Some(first.handled_until), now);
        assert_eq!(second.fire.len(), 500);
        assert_eq!(second.fire[0], start + MINUTE * 1001);
        assert_eq!(second.fire.last(), Some(&now));
        assert!(!second.more);
        assert_eq!(second.handled_until, now);
    }

    #[test]
    fn the_skipped_count_saturates() {
        let s = Schedule::parse("* * * * *", None).unwrap();
        let last = at("2026-04-01T00:00:00Z");
        let now = last + TimeDelta::days(30) + TimeDelta::seconds(30);
        let d = due(&s, NoCatchup, DAY * 60, Some(last), now);
        assert_eq!(d.fire, vec![last + TimeDelta::days(30)]);
        assert_eq!(d.skipped, SKIP_COUNT_LIMIT);
    }

    #[test]
    fn a_schedule_just_registered_fires_nothing_from_the_past() {
        let now = at("2026-05-01T02:00:30Z");
        let d = due(&hourly(), All, DAY, None, now);
        assert_eq!((d.fire, d.skipped, d.handled_until), (vec![], 0, now));
        assert_eq!(d.next, Some(at("2026-05-01T03:00:00Z")));
        // A cursor ahead of the clock is kept, not moved back.
        let ahead = at("2026-05-01T02:10:00Z");
        let d = due(&hourly(), All, DAY, Some(ahead), now);
        assert_eq!((d.fire, d.handled_until), (vec![], ahead));
    }

    #[test]
    fn overlap_policies_decide_only_when_runs_are_active() {
        use OverlapPolicy::{Allow, Queue, Skip};
        for policy in [Allow, Queue, Skip] {
            assert_eq!(overlap_decision(policy, 0), Overlap::Start, "{policy:?}");
        }
        assert_eq!(overlap_decision(Allow, 3), Overlap::Start);
        assert_eq!(overlap_decision(Skip, 1), Overlap::Skip);
        assert_eq!(overlap_decision(Queue, 2), Overlap::Queue);
    }

    #[test]
    fn backfill_takes_the_range_inclusively_with_dst_rules() {
        let s = Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
        let got = backfill_instants(
            &s,
            at("2026-03-28T01:00:00Z"),
            at("2026-03-30T00:00:00Z"),
            10,
        );
        let want = [
            "2026-03-28T01:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:00:00Z",
        ];
        assert_eq!(got, Ok(instants(&want)));
        let one = at("2026-03-29T01:00:00Z");
        assert_eq!(backfill_instants(&s, one, one, 1), Ok(vec![one]));
        let none = backfill_instants(
            &s,
            at("2026-03-29T01:00:01Z"),
            at("2026-03-29T23:00:00Z"),
            1,
        );
        assert_eq!(none, Ok(vec![]));
    }

    #[test]
    fn backfill_refuses_an_inverted_range() {
        let err = backfill_instants(
            &hourly(),
            at("2026-05-02T00:00:00Z"),
            at("2026-05-01T00:00:00Z"),
            10,
        )
        .unwrap_err();
        assert!(
            err.contains("--from 2026-05-02T00:00:00Z is after --to 2026-05-01T00:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn backfill_refuses_more_than_the_limit_and_says_how_many() {
        let (from, to) = (at("2026-05-01T00:00:00Z"), at("2026-05-02T00:00:00Z"));
        let err = backfill_instants(&hourly(), from, to, 10).unwrap_err();
        assert!(err.contains("fires 25 times"), "{err}");
        assert!(err.contains("limit of 10"), "{err}");
        assert_eq!(
            backfill_instants(&hourly(), from, to, 25).map(|v| v.len()),
            Ok(25)
        );
        let every_minute = Schedule::parse("rate(1 minute)", None).unwrap();
        let err =
            backfill_instants(&every_minute, from, at("2027-05-01T00:00:00Z"), 10).unwrap_err();
        assert!(err.contains("at least 100010 times"), "{err}");
    }
}
