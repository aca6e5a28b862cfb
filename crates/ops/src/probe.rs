//! Probes as data: a number a command or an HTTP endpoint yields (a canister's cycles balance, a
//! queue's depth, a disk's free bytes), graded against warning and critical thresholds, kept in
//! the repository (`lifeboat/probes/NAME/TIME-RAND.json`, encrypted like every record), with the
//! burn rate per day and the forecast time until a critical threshold from its history.
//!
//! Running a probe (processes, HTTP) is the service layer's; this module only parses, grades,
//! stores and reads.

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_repository::{RepoError, Repository};
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// How a value stands against its thresholds. Ordered from good to bad, except that `Unknown`
/// (no value) sorts last, as the monitoring-plugin convention's exit code 3 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    /// Inside every threshold.
    Ok,
    /// Past a warning threshold.
    Warning,
    /// Past a critical threshold.
    Critical,
    /// No value (the probe failed or printed no number).
    Unknown,
}

impl ProbeStatus {
    /// The monitoring-plugin exit code: 0, 1, 2, 3.
    pub fn exit_code(self) -> i32 {
        match self {
            ProbeStatus::Ok => 0,
            ProbeStatus::Warning => 1,
            ProbeStatus::Critical => 2,
            ProbeStatus::Unknown => 3,
        }
    }

    /// `ok`, `warning`, `critical`, `unknown`.
    pub fn label(self) -> &'static str {
        match self {
            ProbeStatus::Ok => "ok",
            ProbeStatus::Warning => "warning",
            ProbeStatus::Critical => "critical",
            ProbeStatus::Unknown => "unknown",
        }
    }
}

/// Warning and critical bounds, below and above (any may be absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Warning when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_below: Option<f64>,
    /// Critical when the value is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_below: Option<f64>,
    /// Warning when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_above: Option<f64>,
    /// Critical when the value is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_above: Option<f64>,
}

impl Thresholds {
    /// Grade a value (`None`: unknown).
    pub fn grade(&self, value: Option<f64>) -> ProbeStatus {
        let Some(v) = value else { return ProbeStatus::Unknown };
        let below = |t: Option<f64>| t.is_some_and(|t| v < t);
        let above = |t: Option<f64>| t.is_some_and(|t| v > t);
        if below(self.critical_below) || above(self.critical_above) {
            ProbeStatus::Critical
        } else if below(self.warning_below) || above(self.warning_above) {
            ProbeStatus::Warning
        } else {
            ProbeStatus::Ok
        }
    }

    /// Bounds that contradict each other (a critical bound on the wrong side of its warning).
    pub fn check(&self) -> Result<(), String> {
        if let (Some(w), Some(c)) = (self.warning_below, self.critical_below) {
            if c > w {
                return Err(format!("critical_below ({c}) is above warning_below ({w})"));
            }
        }
        if let (Some(w), Some(c)) = (self.warning_above, self.critical_above) {
            if c < w {
                return Err(format!("critical_above ({c}) is below warning_above ({w})"));
            }
        }
        Ok(())
    }
}

/// Read a number the way people and tools print them: `3_100_000_000_000`, `3,100,000`,
/// `-12.5`, `1e9`, with surrounding blanks. `None` when it is not one number.
pub fn parse_number(text: &str) -> Option<f64> {
    let cleaned: String = text.trim().chars().filter(|c| *c != '_' && *c != ',').collect();
    if cleaned.is_empty() || cleaned.contains(char::is_whitespace) {
        return None;
    }
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// One measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The probe's name.
    pub probe: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// The number (`None` when the probe failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The grade.
    pub status: ProbeStatus,
    /// Why there is no value, or what crossed which threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Seconds the probe took.
    #[serde(default)]
    pub seconds: f64,
}

/// Store a sample.
pub fn record(repo: &Repository, s: &Sample) -> Result<(), OpsError> {
    let json = serde_json::to_vec(s).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let name = format!("probes/{}/{}.json", s.probe, crate::records::stamp(s.time));
    repo.backend().save(FileType::Lifeboat, &name, &repo.encode_unpacked(&json)).map_err(RepoError::from)?;
    Ok(())
}

/// A probe's samples taken at or after `since` (all with `None`), oldest first.
pub fn samples(repo: &Repository, probe: &str, since: Option<DateTime<Utc>>) -> Result<Vec<Sample>, OpsError> {
    let prefix = format!("probes/{probe}/");
    let cutoff = since.map(|t| t.format("%Y%m%dT%H%M%S").to_string());
    let mut names = crate::records::names(repo, &prefix)?;
    names.retain(|n| cutoff.as_ref().is_none_or(|c| n[prefix.len()..].get(..15).is_some_and(|t| t >= c.as_str())));
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(repo.load_json::<Sample>(FileType::Lifeboat, &n)?);
    }
    out.retain(|s| since.is_none_or(|t| s.time >= t));
    Ok(out)
}

/// The newest sample of each probe that has any, by probe name.
pub fn latest(repo: &Repository) -> Result<Vec<Sample>, OpsError> {
    let mut newest: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for (n, _) in repo.backend().list_prefix(FileType::Lifeboat, "probes/").map_err(RepoError::from)? {
        let Some(rest) = n.strip_prefix("probes/") else { continue };
        let Some((probe, _)) = rest.split_once('/') else { continue };
        let e = newest.entry(probe.to_string()).or_default();
        if n > *e {
            *e = n;
        }
    }
    newest.into_values().map(|n| repo.load_json::<Sample>(FileType::Lifeboat, &n).map_err(OpsError::from)).collect()
}

/// When a falling (or rising) value will cross its critical threshold at its current rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// `critical_below` or `critical_above`.
    pub threshold: String,
    /// The threshold's value.
    pub value: f64,
    /// When it will be crossed.
    pub at: DateTime<Utc>,
    /// Seconds from the newest sample until then.
    pub seconds: f64,
}

/// The trend of a probe's values: change per day by least squares over the samples with a value
/// (`None` with fewer than two, or all at one instant).
pub fn burn_per_day(samples: &[Sample]) -> Option<f64> {
    let pts: Vec<(f64, f64)> =
        samples.iter().filter_map(|s| s.value.map(|v| (s.time.timestamp_millis() as f64 / 86_400_000.0, v))).collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

/// When the newest value reaches its critical threshold at `per_day` (`None` when it moves away
/// from it, is already past it, or there is no such threshold).
pub fn forecast(samples: &[Sample], per_day: Option<f64>, th: &Thresholds) -> Option<Forecast> {
    let rate = per_day?;
    let last = samples.iter().rev().find(|s| s.value.is_some())?;
    let v = last.value?;
    let (name, bound, distance) = if rate < 0.0 {
        let c = th.critical_below?;
        ("critical_below", c, v - c)
    } else if rate > 0.0 {
        let c = th.critical_above?;
        ("critical_above", c, c - v)
    } else {
        return None;
    };
    if distance <= 0.0 {
        return None;
    }
    let seconds = distance / rate.abs() * 86_400.0;
    let at = last.time + chrono::Duration::milliseconds((seconds * 1000.0).min(1e15) as i64);
    Some(Forecast { threshold: name.into(), value: bound, at, seconds })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_dfx_and_people_print_them() {
        assert_eq!(parse_number("3_100_000_000_000"), Some(3_100_000_000_000.0));
        assert_eq!(parse_number(" 1,234.5 \n"), Some(1234.5));
        assert_eq!(parse_number("-7"), Some(-7.0));
        assert_eq!(parse_number("1e9"), Some(1e9));
        for bad in ["", "abc", "12 cycles", "NaN", "inf", "1.2.3"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn grades_against_both_sides() {
        let th = Thresholds {
            warning_below: Some(100.0),
            critical_below: Some(50.0),
            warning_above: Some(900.0),
            critical_above: Some(1000.0),
        };
        assert_eq!(th.grade(Some(500.0)), ProbeStatus::Ok);
        assert_eq!(th.grade(Some(99.0)), ProbeStatus::Warning);
        assert_eq!(th.grade(Some(49.0)), ProbeStatus::Critical);
        assert_eq!(th.grade(Some(950.0)), ProbeStatus::Warning);
        assert_eq!(th.grade(Some(1001.0)), ProbeStatus::Critical);
        assert_eq!(th.grade(None), ProbeStatus::Unknown);
        assert!(th.check().is_ok());
        let bad = Thresholds { warning_below: Some(10.0), critical_below: Some(20.0), ..Default::default() };
        assert!(bad.check().unwrap_err().contains("critical_below"));
        assert!(ProbeStatus::Unknown > ProbeStatus::Critical && ProbeStatus::Critical > ProbeStatus::Warning);
    }

    #[test]
    fn burn_rate_and_forecast_from_a_falling_balance() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        // 1,000 a day down from 10,000: at 5,000 (critical) after 5 days from the start.
        let samples: Vec<Sample> = (0..=4)
            .map(|d| Sample {
                probe: "c".into(),
                time: t0 + chrono::Duration::days(d),
                value: Some(10_000.0 - 1_000.0 * d as f64),
                status: ProbeStatus::Ok,
                message: None,
                seconds: 0.0,
            })
            .collect();
        let rate = burn_per_day(&samples).unwrap();
        assert!((rate + 1_000.0).abs() < 1e-6, "{rate}");
        let th = Thresholds { critical_below: Some(5_000.0), ..Default::default() };
        let f = forecast(&samples, Some(rate), &th).unwrap();
        assert_eq!(f.threshold, "critical_below");
        assert_eq!(f.at, t0 + chrono::Duration::days(5));
        assert!((f.seconds - 86_400.0).abs() < 1e-3);
        // Rising, or no threshold on that side: no forecast.
        assert!(forecast(&samples, Some(10.0), &th).is_none());
        assert!(forecast(&samples, Some(rate), &Thresholds::default()).is_none());
        assert!(burn_per_day(&samples[..1]).is_none());
    }
}
