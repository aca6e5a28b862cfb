//! Durations as people write them in configs and flags: `90s`, `20m`, `1h30m`, `7d`, `2w`, `1y`.

use std::time::Duration;

use crate::OpsError;

const HINT: &str = "examples: 90s, 20m, 1h, 7d, 2w, 1y (units s, m, h, d, w, y; combine as 1h30m)";

/// Parse a duration. A year is 365 days; `m` is minutes.
pub fn parse(s: &str) -> Result<Duration, OpsError> {
    let bad = |hint: &str| OpsError::BadValue { what: "duration", text: s.to_string(), hint: hint.to_string() };
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| bad(HINT))?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            'y' => 365 * 86_400,
            _ => return Err(bad(&format!("unknown unit {c:?}; {HINT}"))),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| bad("too large"))?;
    }
    if !num.is_empty() || total == 0 {
        return Err(bad(HINT));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn units_and_combinations() {
        assert_eq!(parse("90s").unwrap().as_secs(), 90);
        assert_eq!(parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse("7d").unwrap().as_secs(), 7 * 86_400);
        assert_eq!(parse("1y2w").unwrap().as_secs(), 365 * 86_400 + 14 * 86_400);
        for bad in ["", "5", "h", "3x", "0s", "99999999999999999999y"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

/// Parse a point in time: RFC 3339 (`2026-11-20T10:00:00Z`), a local `YYYY-MM-DD HH:MM[:SS[.fff]]` or
/// `YYYY-MM-DD` (midnight), or a duration meaning that long before `now` (`24h` = a day ago).
pub fn parse_time(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, OpsError> {
    use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
    let t = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let local = |n: NaiveDateTime| Local.from_local_datetime(&n).earliest().map(|d| d.with_timezone(&Utc));
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Some(d) = NaiveDateTime::parse_from_str(t, f).ok().and_then(local) {
            return Ok(d);
        }
    }
    if let Some(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).and_then(local)
    {
        return Ok(d);
    }
    match parse(t) {
        Ok(d) => Ok(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)),
        Err(_) => Err(OpsError::BadValue {
            what: "time",
            text: s.to_string(),
            hint: "use 2026-11-20, \"2026-11-20 14:30\", RFC 3339, or a duration ago such as 24h or 7d".into(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod time_tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn absolute_and_relative_times() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
        assert_eq!(
            parse_time("2026-11-20T10:00:00Z", now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
        );
        assert_eq!(parse_time("24h", now).unwrap(), Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap());
        assert!(parse_time("2026-11-20 14:30", now).is_ok());
        assert!(parse_time("2026-11-20", now).is_ok());
        assert!(parse_time("yesterday", now).is_err());
    }
}
