//! Disaster-recovery drills: per source, the latest (or a chosen) snapshot restored into a
//! scratch target and verified natively ([`crate::verify::restore_test`]), the wall time to that
//! verified restore measured as the recovery time and compared with the source's RTO; the
//! result is a [`Report`], signed ([`sign`]) and rendered as one self-contained HTML page
//! ([`html`]).
//!
//! The signed file (`report.json`) is `{"report": …, "integrity": …, "signature": …}`:
//! `integrity` holds a SHA-256 per field of the report (`report.time`,
//! `sources[main-db].rto_seconds`, …) and `signature` is an Ed25519 signature over the canonical
//! JSON of `integrity`, with the public key. So `check-report` can say *which* field of which
//! source was changed after signing, or that the signature (or the hash list) itself was altered.

pub mod html;
pub mod sign;

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_format::Id;
use lifeboat_repository::{RepoError, Repository};
use serde::{Deserialize, Serialize};

use crate::records::{DrillSource, DrillSummary, Outcome};
use crate::verify::RestoreTest;
use crate::OpsError;

/// Format marker of reports this version writes.
pub const FORMAT: &str = "lifeboat-drill-report/1";

/// A drill's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// Unique id (time and a random suffix), also the name of the stored copy.
    pub id: String,
    /// When the drill started.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub time: DateTime<Utc>,
    /// Host it ran on.
    pub host: String,
    /// Repository id (from its config).
    pub repository: String,
    /// Version of Lifeboat that ran it.
    pub lifeboat_version: String,
    /// Worst outcome of the sources.
    pub outcome: Outcome,
    /// Per source, in the order drilled.
    pub sources: Vec<SourceResult>,
}

/// One source in a drill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceResult {
    /// Source name.
    pub source: String,
    /// Source kind.
    pub kind: String,
    /// Snapshot restored (none when the source has no snapshot).
    pub snapshot: Option<Id>,
    /// When that snapshot was taken.
    pub snapshot_time: Option<DateTime<Utc>>,
    /// Result: `ok` only when the verified restore succeeded within the RTO.
    pub outcome: Outcome,
    /// Measured recovery time: wall time from the start of the restore to a verified copy.
    pub rto_seconds: f64,
    /// The source's configured RTO, in seconds.
    pub rto_target_seconds: Option<f64>,
    /// The scratch target (removed after the drill).
    pub scratch_target: String,
    /// What went wrong, one line each.
    pub findings: Vec<String>,
    /// What the native verification found (row counts, keys, messages, files).
    pub details: serde_json::Value,
    /// The source's `verify_command`, run against the scratch target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_command: Option<crate::records::HookRun>,
}

impl SourceResult {
    /// Judge a restore test against the source's RTO.
    pub fn judge(
        source: &str,
        snap: &lifeboat_repository::snapshots::SnapshotEntry,
        test: RestoreTest,
        rto_target: Option<f64>,
    ) -> SourceResult {
        let mut findings = test.problems.clone();
        findings.extend(test.skipped.iter().map(|s| format!("not tested: {s}")));
        let mut outcome = test.outcome();
        if let Some(t) = rto_target.filter(|t| test.seconds > *t) {
            findings.push(format!("recovery took {:.1} s, more than the RTO of {t:.0} s", test.seconds));
            outcome = Outcome::Failed;
        }
        SourceResult {
            source: source.to_string(),
            kind: test.kind,
            snapshot: Some(snap.id),
            snapshot_time: Some(snap.snapshot.time),
            outcome,
            rto_seconds: test.seconds,
            rto_target_seconds: rto_target,
            scratch_target: test.target,
            findings,
            details: test.details,
            verify_command: test.verify_command,
        }
    }

    /// A source that could not be drilled at all (no snapshot, unreadable repository data…).
    pub fn failed(source: &str, kind: &str, why: String, rto_target: Option<f64>) -> SourceResult {
        SourceResult {
            source: source.to_string(),
            kind: kind.to_string(),
            snapshot: None,
            snapshot_time: None,
            outcome: Outcome::Failed,
            rto_seconds: 0.0,
            rto_target_seconds: rto_target,
            scratch_target: String::new(),
            findings: vec![why],
            details: serde_json::Value::Null,
            verify_command: None,
        }
    }
}

/// The worst of some outcomes (`failed` > `partial` > `ok`; none is `ok`).
pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    outcomes.into_iter().fold(Outcome::Ok, |acc, o| match (acc, o) {
        (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
        (Outcome::Partial, _) | (_, Outcome::Partial) => Outcome::Partial,
        _ => Outcome::Ok,
    })
}

impl Report {
    /// A report of `sources`, stamped now.
    pub fn new(started: DateTime<Utc>, repository: String, sources: Vec<SourceResult>) -> Report {
        let time = Utc::now();
        Report {
            format: FORMAT.into(),
            id: crate::records::stamp(time),
            started,
            time,
            host: crate::records::host(),
            repository,
            lifeboat_version: env!("CARGO_PKG_VERSION").into(),
            outcome: worst(sources.iter().map(|s| s.outcome)),
            sources,
        }
    }

    /// The summary record (`lifeboat/drills/…`) pointing at the stored report.
    pub fn summary(&self, stored_as: Option<String>) -> DrillSummary {
        let sources = self
            .sources
            .iter()
            .map(|s| DrillSource {
                source: s.source.clone(),
                snapshot: s.snapshot.unwrap_or(Id([0; 32])),
                outcome: s.outcome,
                rto_seconds: s.rto_seconds,
                rto_target_seconds: s.rto_target_seconds,
                findings: s.findings.clone(),
            })
            .collect();
        DrillSummary { time: self.time, host: self.host.clone(), outcome: self.outcome, sources, report: stored_as }
    }
}

/// Store the signed report and its HTML page under `lifeboat/drill-reports/<id>.json|.html`
/// (encrypted like every Lifeboat object); returns the JSON's object name.
pub fn store_report(repo: &Repository, id: &str, signed_json: &[u8], html: &str) -> Result<String, OpsError> {
    let name = format!("drill-reports/{id}.json");
    let save = |n: &str, data: &[u8]| {
        repo.backend().save(FileType::Lifeboat, n, &repo.encode_unpacked(data)).map_err(RepoError::from)
    };
    save(&format!("drill-reports/{id}.html"), html.as_bytes())?;
    save(&name, signed_json)?;
    Ok(name)
}

/// Names of the stored reports (`drill-reports/<id>.json`), oldest first.
pub fn stored_reports(repo: &Repository) -> Result<Vec<String>, OpsError> {
    crate::records::names(repo, "drill-reports/")
}

/// A stored report's bytes (the signed JSON, or the HTML page).
pub fn load_stored(repo: &Repository, name: &str) -> Result<Vec<u8>, OpsError> {
    Ok(repo.load_unpacked(FileType::Lifeboat, name)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeboat_repository::snapshots::SnapshotEntry;

    fn snap() -> SnapshotEntry {
        let json = r#"{"time":"2026-01-01T00:00:00Z","tree":"0000000000000000000000000000000000000000000000000000000000000000","paths":["/x"],"hostname":"h","username":"u"}"#;
        SnapshotEntry { id: Id([1; 32]), snapshot: serde_json::from_str(json).unwrap() }
    }

    fn test(seconds: f64, problems: &[&str], skipped: &[&str]) -> RestoreTest {
        RestoreTest {
            kind: "files".into(),
            seconds,
            problems: problems.iter().map(|s| s.to_string()).collect(),
            skipped: skipped.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_verified_restore_within_the_rto_passes_and_a_slow_one_fails() {
        let ok = SourceResult::judge("a", &snap(), test(12.0, &[], &[]), Some(30.0));
        assert_eq!((ok.outcome, ok.findings.len()), (Outcome::Ok, 0));
        let slow = SourceResult::judge("a", &snap(), test(45.0, &[], &[]), Some(30.0));
        assert_eq!(slow.outcome, Outcome::Failed);
        assert_eq!(slow.findings, ["recovery took 45.0 s, more than the RTO of 30 s"]);
        let no_rto = SourceResult::judge("a", &snap(), test(4500.0, &[], &[]), None);
        assert_eq!(no_rto.outcome, Outcome::Ok);
        let skipped = SourceResult::judge("a", &snap(), test(1.0, &[], &["no redis-server"]), Some(30.0));
        assert_eq!((skipped.outcome, skipped.findings[0].as_str()), (Outcome::Partial, "not tested: no redis-server"));
        let bad = SourceResult::judge("a", &snap(), test(1.0, &["t: expected 2 rows, found 1"], &[]), None);
        assert_eq!(bad.outcome, Outcome::Failed);
        let r = Report::new(Utc::now(), "r".into(), vec![ok, skipped]);
        assert_eq!(r.outcome, Outcome::Partial);
        assert_eq!(worst([Outcome::Ok, Outcome::Failed, Outcome::Partial]), Outcome::Failed);
        assert_eq!(r.summary(Some("drill-reports/x.json".into())).sources.len(), 2);
    }
}
