//! `schedule = "…"` of a source: when the daemon runs its backup.
//!
//! Accepted forms: a 5-field cron expression (`30 2 * * *`, minute granularity, POSIX/Vixie
//! syntax with names and steps), the aliases `@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`, an interval `every 30s` / `every 15m` / `every 1h30m`, and `continuous` (for sources
//! that replicate continuously).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::Serialize;

/// A parsed schedule.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Schedule {
    /// A cron expression (aliases are expanded by the parser).
    Cron {
        /// As written in the config.
        text: String,
        /// Parsed.
        cron: Box<Cron>,
    },
    /// A fixed interval from the previous run.
    Every(Duration),
    /// Runs all the time (continuous replication).
    Continuous,
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Schedule, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("continuous") {
            return Ok(Schedule::Continuous);
        }
        if let Some(rest) = t.strip_prefix("every ") {
            let d = lifeboat_ops::duration::parse(rest.trim()).map_err(|e| format!("schedule {s:?}: {e}"))?;
            if d < Duration::from_secs(1) {
                return Err(format!("schedule {s:?}: the interval must be at least 1s"));
            }
            return Ok(Schedule::Every(d));
        }
        let hint = "expected a 5-field cron expression like \"30 2 * * *\", @hourly, @daily, @weekly, @monthly, \
                    @yearly, \"every 15m\" or \"continuous\"";
        if !t.starts_with('@') && t.split_whitespace().count() != 5 {
            return Err(format!("schedule {s:?} is not valid: {hint}"));
        }
        let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
        let cron = parser.parse(t).map_err(|e| format!("schedule {s:?} is not valid ({e}): {hint}"))?;
        Ok(Schedule::Cron { text: t.to_string(), cron: Box::new(cron) })
    }
}

impl Schedule {
    /// The next time after `after` (for intervals: `after` plus the interval; `None` for
    /// continuous schedules and cron expressions that never match again).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, .. } => {
                let local = after.with_timezone(&chrono::Local);
                cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
            }
            Schedule::Every(d) => chrono::Duration::from_std(*d).ok().map(|d| after + d),
            Schedule::Continuous => None,
        }
    }

    /// The schedule as written (normalised for intervals).
    pub fn text(&self) -> String {
        match self {
            Schedule::Cron { text, .. } => text.clone(),
            Schedule::Every(d) => format!("every {}", lifeboat_ops::health::short_duration(d.as_secs())),
            Schedule::Continuous => "continuous".into(),
        }
    }
}

impl Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn forms_that_parse_and_forms_that_do_not() {
        for ok in ["@hourly", "@daily", "@weekly", "@monthly", "30 2 * * *", "*/15 * * * 1-5", "every 15m", "every 30s"]
        {
            assert!(ok.parse::<Schedule>().is_ok(), "{ok}");
        }
        for bad in ["every blue moon", "hourly", "61 * * * *", "* * * *", "0 0 * * * *", "every 0s", ""] {
            let e = bad.parse::<Schedule>().unwrap_err();
            assert!(e.contains("schedule"), "{bad}: {e}");
        }
    }

    #[test]
    fn next_times() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:07:00Z").unwrap().with_timezone(&Utc);
        let every: Schedule = "every 15m".parse().unwrap();
        assert_eq!(every.next_after(t).unwrap(), t + chrono::Duration::minutes(15));
        let hourly: Schedule = "@hourly".parse().unwrap();
        let next = hourly.next_after(t).unwrap();
        assert!(next > t && next - t <= chrono::Duration::hours(1), "{next}");
        assert_eq!(next.timestamp() % 60, 0);
    }
}
