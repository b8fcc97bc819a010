//! Durations written as strings with units: `500ms`, `30s`, `5m`, `2h`, `1d`, `1h30m`.

use std::time::Duration;

/// Parses a duration; the error says what was expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. `30s`, `5m`, `2h`".into());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "bad duration `{s}`: expected a number then a unit (ms, s, m, h, d), e.g. `30s`"
            ));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration `{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let ms_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(format!(
                    "bad duration `{s}`: missing unit; write e.g. `{n}s` (units: ms, s, m, h, d)"
                ));
            }
            other => {
                let hint = match familiar_unit(other) {
                    Some(u) => format!("; write `{n}{u}`"),
                    None => String::new(),
                };
                return Err(format!(
                    "bad duration `{s}`: unknown unit `{other}`{hint} (units: ms, s, m, h, d)"
                ));
            }
        };
        total = total.saturating_add(n.saturating_mul(ms_per));
        rest = &rest[unit_len..];
    }
    let ms = u64::try_from(total).map_err(|_| format!("bad duration `{s}`: too large"))?;
    Ok(Duration::from_millis(ms))
}

/// The unit people mean by a spelled-out one.
fn familiar_unit(word: &str) -> Option<&'static str> {
    Some(match word.to_ascii_lowercase().as_str() {
        "millisecond" | "milliseconds" | "msec" => "ms",
        "sec" | "secs" | "second" | "seconds" => "s",
        "min" | "mins" | "minute" | "minutes" => "m",
        "hr" | "hrs" | "hour" | "hours" => "h",
        "day" | "days" => "d",
        _ => return None,
    })
}

/// Formats a duration the way users write them (`1h30m`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
    }

    #[test]
    fn bad_durations_say_why() {
        assert!(parse_duration("5").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("5 minutes")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_duration("m5")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("").is_err());
        let err = parse_duration("1 minute").unwrap_err();
        assert!(err.contains("unknown unit `minute`; write `1m`"), "{err}");
    }

    #[test]
    fn formatting_round_trips() {
        for s in ["1h30m", "250ms", "2s", "1d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
