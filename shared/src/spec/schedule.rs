//! Schedules: 5-field cron expressions and `rate(N unit)`, in an IANA time zone.

use chrono::{DateTime, Utc};
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
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.cadence {
            Cadence::Rate(every) => {
                let step = i64::try_from(every.as_millis()).ok()?.max(1);
                let t = after.timestamp_millis();
                let next = (t.div_euclid(step) + 1) * step;
                DateTime::from_timestamp_millis(next)
            }
            Cadence::Cron(cron) => {
                let local = after.with_timezone(&self.timezone);
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
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
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
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

    #[test]
    fn paris_schedule_fires_at_local_two_across_dst() {
        let s = Schedule::parse("0 2 * * *", Some("Europe/Paris")).unwrap();
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
    fn rates_align_to_their_period() {
        let s = Schedule::parse("rate(5 minutes)", None).unwrap();
        let t = s
            .next_after(Utc.with_ymd_and_hms(2026, 1, 1, 0, 7, 30).unwrap())
            .unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).unwrap());
    }
}
