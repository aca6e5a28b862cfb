//! Health of a source: its last backup against its RPO, its last verification and its last
//! drill, graded `ok` / `warning` / `critical` like a monitoring plugin (exit codes 0 / 1 / 2).
//!
//! Rules (thresholds in [`Thresholds`]):
//! - **backup**: critical when there is none, or the newest is older than the RPO; warning when
//!   it is older than `rpo_warning_percent` (80 %) of the RPO; without an RPO its age is only
//!   reported.
//! - **verification**: critical when the newest verification record of the source failed;
//!   warning when there is none, it was partial, or it is older than `verification_max_age`
//!   (30 days).
//! - **drill**: critical when the newest drill of the source failed; warning when it was
//!   partial or its measured recovery time exceeded the RTO; never having been drilled is only
//!   reported.
//!
//! The source's status is the worst of the three; the overall status the worst of the sources.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lifeboat_format::Id;
use serde::Serialize;

use crate::records::{DrillSource, DrillSummary, Outcome, Verification};

/// A grade, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Within every objective.
    Ok,
    /// Needs attention soon.
    Warning,
    /// An objective is breached or a proof failed.
    Critical,
}

impl Status {
    /// The monitoring-plugin exit code: 0, 1 or 2.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
        }
    }

    /// `OK`, `WARNING` or `CRITICAL`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
        }
    }
}

/// When a check turns to warning.
#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    /// A backup older than this share of the RPO (percent) is a warning.
    pub rpo_warning_percent: u8,
    /// A last verification older than this is a warning.
    #[serde(serialize_with = "seconds")]
    pub verification_max_age: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { rpo_warning_percent: 80, verification_max_age: Duration::from_secs(30 * 86_400) }
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// What is known about one source.
#[derive(Clone, Debug, Default)]
pub struct Facts<'a> {
    /// Recovery point objective.
    pub rpo: Option<Duration>,
    /// Recovery time objective from the config (a drill record's own target wins).
    pub rto: Option<Duration>,
    /// Time and id of the newest snapshot.
    pub last_backup: Option<(DateTime<Utc>, Id)>,
    /// Point-in-time sources: when the newest WAL file was archived (the recovery point then
    /// moves with the archive, not with the base backups).
    pub last_wal: Option<DateTime<Utc>>,
    /// Newest verification record of the source.
    pub last_verification: Option<&'a Verification>,
    /// Newest drill that included the source: its time and the source's part in it.
    pub last_drill: Option<(DateTime<Utc>, &'a DrillSource)>,
}

/// The backup check.
#[derive(Clone, Debug, Serialize)]
pub struct BackupHealth {
    /// Grade.
    pub status: Status,
    /// Time of the newest snapshot.
    pub last: Option<DateTime<Utc>>,
    /// Its id.
    pub snapshot: Option<Id>,
    /// Its age in seconds.
    pub age_seconds: Option<i64>,
    /// The RPO in seconds.
    pub rpo_seconds: Option<u64>,
    /// In words.
    pub message: String,
}

/// The verification check.
#[derive(Clone, Debug, Serialize)]
pub struct VerificationHealth {
    /// Grade.
    pub status: Status,
    /// When the newest verification finished.
    pub last: Option<DateTime<Utc>>,
    /// Snapshot it verified.
    pub snapshot: Option<Id>,
    /// Its outcome.
    pub outcome: Option<Outcome>,
    /// Its age in seconds.
    pub age_seconds: Option<i64>,
    /// In words.
    pub message: String,
}

/// The drill check.
#[derive(Clone, Debug, Serialize)]
pub struct DrillHealth {
    /// Grade.
    pub status: Status,
    /// When the newest drill finished.
    pub last: Option<DateTime<Utc>>,
    /// Its outcome for this source.
    pub outcome: Option<Outcome>,
    /// Measured recovery time, seconds.
    pub rto_seconds: Option<f64>,
    /// The RTO it was measured against, seconds.
    pub rto_target_seconds: Option<f64>,
    /// In words.
    pub message: String,
}

/// One source's health.
#[derive(Clone, Debug, Serialize)]
pub struct SourceHealth {
    /// Worst of the checks.
    pub status: Status,
    /// Backup age against the RPO.
    pub backup: BackupHealth,
    /// Newest verification.
    pub verification: VerificationHealth,
    /// Newest drill.
    pub drill: DrillHealth,
}

impl SourceHealth {
    /// The messages of the checks that are not ok, worst first.
    pub fn problems(&self) -> Vec<&str> {
        let mut v = [
            (self.backup.status, &self.backup.message),
            (self.verification.status, &self.verification.message),
            (self.drill.status, &self.drill.message),
        ];
        v.sort_by_key(|(s, _)| std::cmp::Reverse(*s));
        v.iter().filter(|(s, _)| *s != Status::Ok).map(|(_, m)| m.as_str()).collect()
    }
}

/// `45s`, `12m`, `3h 05m`, `2d 04h`: a duration in its two largest units.
pub fn short_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m:02}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h:02}h"),
    }
}

fn age_of(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - t).num_seconds().max(0)
}

/// Grade the newest backup against the RPO.
pub fn backup(facts: &Facts<'_>, now: DateTime<Utc>, th: &Thresholds) -> BackupHealth {
    let rpo_seconds = facts.rpo.map(|r| r.as_secs());
    let Some((base_time, id)) = facts.last_backup else {
        return BackupHealth {
            status: Status::Critical,
            last: None,
            snapshot: None,
            age_seconds: None,
            rpo_seconds,
            message: "never backed up".into(),
        };
    };
    let (time, what) = match facts.last_wal {
        Some(w) if w > base_time => (w, "last archived WAL"),
        _ => (base_time, "last backup"),
    };
    let age = age_of(time, now);
    let shown = short_duration(age.unsigned_abs());
    let (status, message) = match rpo_seconds {
        None => (Status::Ok, format!("{what} {shown} ago (no RPO set)")),
        Some(rpo) if age.unsigned_abs() > rpo => {
            (Status::Critical, format!("{what} {shown} ago is older than the RPO of {}", short_duration(rpo)))
        }
        Some(rpo) if age.unsigned_abs() * 100 > rpo * u64::from(th.rpo_warning_percent) => (
            Status::Warning,
            format!(
                "last backup {shown} ago is at {} % of the RPO of {}",
                age.unsigned_abs() * 100 / rpo.max(1),
                short_duration(rpo)
            ),
        ),
        Some(rpo) => (Status::Ok, format!("{what} {shown} ago (RPO {})", short_duration(rpo))),
    };
    BackupHealth { status, last: Some(time), snapshot: Some(id), age_seconds: Some(age), rpo_seconds, message }
}

fn first_finding(findings: &[String]) -> String {
    match findings.first() {
        Some(f) if findings.len() > 1 => format!(": {f} (and {} more)", findings.len() - 1),
        Some(f) => format!(": {f}"),
        None => String::new(),
    }
}

/// Grade the newest verification.
pub fn verification(facts: &Facts<'_>, now: DateTime<Utc>, th: &Thresholds) -> VerificationHealth {
    let Some(v) = facts.last_verification else {
        return VerificationHealth {
            status: Status::Warning,
            last: None,
            snapshot: None,
            outcome: None,
            age_seconds: None,
            message: "never verified".into(),
        };
    };
    let age = age_of(v.time, now);
    let shown = short_duration(age.unsigned_abs());
    let snap = v.snapshot.short();
    let (status, message) = match v.outcome {
        Outcome::Failed => (
            Status::Critical,
            format!("last verification ({shown} ago, snapshot {snap}) failed{}", first_finding(&v.findings)),
        ),
        Outcome::Partial => (
            Status::Warning,
            format!("last verification ({shown} ago, snapshot {snap}) was partial{}", first_finding(&v.findings)),
        ),
        Outcome::Ok if age.unsigned_abs() > th.verification_max_age.as_secs() => (
            Status::Warning,
            format!(
                "last verification {shown} ago is older than {}",
                short_duration(th.verification_max_age.as_secs())
            ),
        ),
        Outcome::Ok => (Status::Ok, format!("verified {shown} ago (snapshot {snap})")),
    };
    VerificationHealth {
        status,
        last: Some(v.time),
        snapshot: Some(v.snapshot),
        outcome: Some(v.outcome),
        age_seconds: Some(age),
        message,
    }
}

/// Grade the newest drill.
pub fn drill(facts: &Facts<'_>, now: DateTime<Utc>) -> DrillHealth {
    let Some((time, d)) = facts.last_drill else {
        return DrillHealth {
            status: Status::Ok,
            last: None,
            outcome: None,
            rto_seconds: None,
            rto_target_seconds: None,
            message: "never drilled".into(),
        };
    };
    let shown = short_duration(age_of(time, now).unsigned_abs());
    let target = d.rto_target_seconds.or(facts.rto.map(|r| r.as_secs_f64()));
    let took = short_duration(d.rto_seconds.max(0.0).round() as u64);
    let (status, message) = match (d.outcome, target) {
        (Outcome::Failed, _) => {
            (Status::Critical, format!("last drill ({shown} ago) failed{}", first_finding(&d.findings)))
        }
        (Outcome::Partial, _) => {
            (Status::Warning, format!("last drill ({shown} ago) was partial{}", first_finding(&d.findings)))
        }
        (Outcome::Ok, Some(t)) if d.rto_seconds > t => (
            Status::Warning,
            format!("last drill ({shown} ago) took {took}, over the RTO of {}", short_duration(t.round() as u64)),
        ),
        (Outcome::Ok, Some(t)) => {
            (Status::Ok, format!("drilled {shown} ago: recovered in {took} (RTO {})", short_duration(t.round() as u64)))
        }
        (Outcome::Ok, None) => (Status::Ok, format!("drilled {shown} ago: recovered in {took} (no RTO set)")),
    };
    DrillHealth {
        status,
        last: Some(time),
        outcome: Some(d.outcome),
        rto_seconds: Some(d.rto_seconds),
        rto_target_seconds: target,
        message,
    }
}

/// Grade one source.
pub fn evaluate(facts: &Facts<'_>, now: DateTime<Utc>, th: &Thresholds) -> SourceHealth {
    let backup = backup(facts, now, th);
    let verification = verification(facts, now, th);
    let drill = drill(facts, now);
    let status = backup.status.max(verification.status).max(drill.status);
    SourceHealth { status, backup, verification, drill }
}

/// The worst status (ok for none).
pub fn overall<'a>(sources: impl IntoIterator<Item = &'a SourceHealth>) -> Status {
    sources.into_iter().map(|s| s.status).max().unwrap_or(Status::Ok)
}

/// The newest verification of `source`: a record naming it, or one of a snapshot in
/// `snapshots` (records written without a source name). `records` are oldest first.
pub fn latest_verification<'a>(
    records: &'a [Verification],
    source: &str,
    snapshots: &[Id],
) -> Option<&'a Verification> {
    records.iter().rev().find(|v| match &v.source {
        Some(s) => s == source,
        None => snapshots.contains(&v.snapshot),
    })
}

/// The newest drill that included `source`, with the source's part in it. `drills` are oldest
/// first.
pub fn latest_drill<'a>(drills: &'a [DrillSummary], source: &str) -> Option<(DateTime<Utc>, &'a DrillSource)> {
    drills.iter().rev().find_map(|d| d.sources.iter().find(|s| s.source == source).map(|s| (d.time, s)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn ago(secs: i64) -> DateTime<Utc> {
        now() - chrono::Duration::seconds(secs)
    }

    fn verif(secs_ago: i64, outcome: Outcome, source: Option<&str>) -> Verification {
        Verification {
            time: ago(secs_ago),
            host: "h".into(),
            snapshot: Id::default(),
            source: source.map(Into::into),
            checks: vec!["read-data".into()],
            outcome,
            findings: vec!["pack 1a2b: hash mismatch".into()],
            duration_seconds: 1.0,
            verify_command: None,
        }
    }

    fn drilled(outcome: Outcome, took: f64, target: Option<f64>) -> DrillSource {
        DrillSource {
            source: "db".into(),
            snapshot: Id::default(),
            outcome,
            rto_seconds: took,
            rto_target_seconds: target,
            findings: vec![],
        }
    }

    #[test]
    fn backup_age_against_the_rpo() {
        let th = Thresholds::default();
        let hour = Some(Duration::from_secs(3600));
        let at = |secs, rpo| {
            backup(&Facts { rpo, last_backup: Some((ago(secs), Id::default())), ..Default::default() }, now(), &th)
        };
        assert_eq!(at(600, hour).status, Status::Ok);
        assert_eq!(at(600, hour).message, "last backup 10m ago (RPO 1h)");
        let w = at(3000, hour);
        assert_eq!(
            (w.status, w.message.as_str()),
            (Status::Warning, "last backup 50m ago is at 83 % of the RPO of 1h")
        );
        let c = at(3 * 3600 + 120, hour);
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Critical, "last backup 3h 02m ago is older than the RPO of 1h")
        );
        assert_eq!(at(400 * 86_400, None).status, Status::Ok, "no RPO: age is informational");
        let none = backup(&Facts { rpo: hour, ..Default::default() }, now(), &th);
        assert_eq!((none.status, none.message.as_str()), (Status::Critical, "never backed up"));
        assert_eq!(at(-50, hour).age_seconds, Some(0), "a clock ahead of us is not a negative age");
    }

    #[test]
    fn verification_outcome_and_age() {
        let th = Thresholds::default();
        let grade =
            |v: Option<&Verification>| verification(&Facts { last_verification: v, ..Default::default() }, now(), &th);
        assert_eq!(grade(None).status, Status::Warning);
        assert_eq!(grade(None).message, "never verified");
        assert_eq!(grade(Some(&verif(86_400, Outcome::Ok, None))).status, Status::Ok);
        let old = grade(Some(&verif(31 * 86_400, Outcome::Ok, None)));
        assert_eq!(
            (old.status, old.message.as_str()),
            (Status::Warning, "last verification 31d ago is older than 30d")
        );
        let failed = grade(Some(&verif(60, Outcome::Failed, None)));
        assert_eq!(failed.status, Status::Critical);
        assert!(failed.message.ends_with("failed: pack 1a2b: hash mismatch"), "{}", failed.message);
        assert_eq!(grade(Some(&verif(60, Outcome::Partial, None))).status, Status::Warning);
    }

    #[test]
    fn archived_wal_moves_the_recovery_point_of_a_pitr_source() {
        let th = Thresholds::default();
        let rpo = Some(Duration::from_secs(3600));
        let old_base = Some((ago(86_400), Id::default()));
        let late = backup(&Facts { rpo, last_backup: old_base, ..Default::default() }, now(), &th);
        assert_eq!(late.status, Status::Critical);
        let fresh =
            backup(&Facts { rpo, last_backup: old_base, last_wal: Some(ago(60)), ..Default::default() }, now(), &th);
        assert_eq!(fresh.status, Status::Ok, "{}", fresh.message);
        assert!(fresh.message.starts_with("last archived WAL 1m"), "{}", fresh.message);
        assert_eq!(fresh.age_seconds, Some(60));
    }

    #[test]
    fn drill_outcome_and_rto() {
        let grade = |d: &DrillSource, rto| {
            drill(&Facts { rto, last_drill: Some((ago(3 * 86_400), d)), ..Default::default() }, now())
        };
        assert_eq!(drill(&Facts::default(), now()).status, Status::Ok, "never drilled is informational");
        let ok = grade(&drilled(Outcome::Ok, 130.0, Some(1800.0)), None);
        assert_eq!((ok.status, ok.message.as_str()), (Status::Ok, "drilled 3d ago: recovered in 2m 10s (RTO 30m)"));
        let slow = grade(&drilled(Outcome::Ok, 2700.0, None), Some(Duration::from_secs(1800)));
        assert_eq!(
            (slow.status, slow.message.as_str()),
            (Status::Warning, "last drill (3d ago) took 45m, over the RTO of 30m")
        );
        assert_eq!(grade(&drilled(Outcome::Failed, 10.0, None), None).status, Status::Critical);
        assert_eq!(grade(&drilled(Outcome::Partial, 10.0, None), None).status, Status::Warning);
    }

    #[test]
    fn source_and_overall_take_the_worst() {
        let th = Thresholds::default();
        let v = verif(60, Outcome::Failed, Some("db"));
        let facts = Facts {
            rpo: Some(Duration::from_secs(3600)),
            last_backup: Some((ago(3000), Id::default())),
            last_verification: Some(&v),
            ..Default::default()
        };
        let h = evaluate(&facts, now(), &th);
        assert_eq!(h.status, Status::Critical);
        assert_eq!(h.problems().len(), 2);
        assert!(h.problems()[0].contains("failed"), "worst first: {:?}", h.problems());
        let good = evaluate(
            &Facts {
                last_backup: Some((ago(10), Id::default())),
                last_verification: Some(&verif(60, Outcome::Ok, None)),
                ..Default::default()
            },
            now(),
            &th,
        );
        assert_eq!(good.status, Status::Ok);
        assert_eq!(overall([&good, &h]), Status::Critical);
        assert_eq!(overall([&good]).exit_code(), 0);
        assert_eq!(overall(std::iter::empty()), Status::Ok);
    }

    #[test]
    fn latest_records_per_source() {
        let mut other = Id::default();
        other.0[0] = 7;
        let records = vec![verif(300, Outcome::Ok, Some("db")), verif(200, Outcome::Failed, Some("files")), {
            let mut v = verif(100, Outcome::Partial, None);
            v.snapshot = other;
            v
        }];
        assert_eq!(latest_verification(&records, "db", &[]).map(|v| v.outcome), Some(Outcome::Ok));
        assert_eq!(latest_verification(&records, "db", &[other]).map(|v| v.outcome), Some(Outcome::Partial));
        assert!(latest_verification(&records, "cache", &[]).is_none());
        let d = |secs, src: &str| DrillSummary {
            time: ago(secs),
            host: "h".into(),
            outcome: Outcome::Ok,
            sources: vec![DrillSource { source: src.into(), ..drilled(Outcome::Ok, 1.0, None) }],
            report: None,
        };
        let drills = vec![d(500, "db"), d(100, "files")];
        assert_eq!(latest_drill(&drills, "db").map(|(t, _)| t), Some(ago(500)));
        assert!(latest_drill(&drills, "cache").is_none());
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(720), "12m");
        assert_eq!(short_duration(130), "2m 10s");
        assert_eq!(short_duration(3600), "1h");
        assert_eq!(short_duration(3 * 3600 + 300), "3h 05m");
        assert_eq!(short_duration(2 * 86_400 + 4 * 3600), "2d 04h");
        assert_eq!(short_duration(30 * 86_400), "30d");
    }
}
