//! `health`: per config source — the newest backup against its RPO, the newest verification,
//! the newest drill — graded by [`lifeboat_ops::health`], and the overall grade.

use chrono::{DateTime, Utc};
use lifeboat_ops::health::{self, short_duration, Facts, SourceHealth, Status, Thresholds};
use lifeboat_ops::records::{self, DrillSummary, Run, RunKind, RunOutcome, Verification};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use serde::Serialize;

use crate::config::SourceConfig;
use crate::error::Result;
use crate::session::Session;

/// One source in the report.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Source name.
    pub name: String,
    /// Source kind.
    pub kind: &'static str,
    /// RPO as written.
    pub rpo: Option<String>,
    /// RTO as written.
    pub rto: Option<String>,
    /// The grades.
    #[serde(flatten)]
    pub health: SourceHealth,
    /// What is wrong, in words.
    pub problems: Vec<String>,
}

/// The health of the selected sources.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The worst status.
    pub status: Status,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// Each source.
    pub sources: Vec<Row>,
    /// A local repository's free space (below the threshold is a warning).
    pub free_space: Option<crate::storage::FreeSpace>,
    /// The newest kept sample of each configured probe (a critical one makes the report
    /// critical; a warning or one without a value, a warning).
    pub probes: Vec<lifeboat_ops::probe::Sample>,
}

/// The health of `names` (every config source when empty).
pub fn health(session: &Session, names: &[String], th: &Thresholds) -> Result<Report> {
    let cfg = session.require_config("no config file")?;
    // A config with probes and no sources (a canister's cycles monitor) has a health too.
    let selected = match names.is_empty() && cfg.sources.is_empty() && !cfg.probes.is_empty() {
        true => Vec::new(),
        false => cfg.select(names, names.is_empty())?,
    };
    let repo = session.open()?;
    let (snaps, _) = snapshots::list(&repo)?;
    let verifications = records::verifications(&repo)?;
    let drills = records::drills(&repo)?;
    let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
    let backups = last_backup_runs(&repo, &names)?;
    let wal = lifeboat_ops::wal::last_pushes(&repo, &names)?;
    let records =
        Records { snapshots: &snaps, verifications: &verifications, drills: &drills, runs: &backups, wal: Some(&wal) };
    let mut report = assess(&selected, &records, Utc::now(), th);
    report.free_space = crate::storage::free_space(session)?;
    if report.free_space.as_ref().is_some_and(|f| f.low) {
        report.status = report.status.max(Status::Warning);
    }
    if !cfg.probes.is_empty() {
        let mut latest = lifeboat_ops::probe::latest(&repo)?;
        latest.retain(|p| cfg.probes.iter().any(|c| c.name == p.probe));
        for p in &latest {
            use lifeboat_ops::probe::ProbeStatus as P;
            let grade = if p.status == P::Critical {
                Status::Critical
            } else if p.status == P::Ok {
                Status::Ok
            } else {
                Status::Warning
            };
            report.status = report.status.max(grade);
        }
        report.probes = latest;
    }
    Ok(report)
}

/// The newest runs, read newest first until every source in `names` has a finished backup run
/// (what [`assess`] grades; it keeps only backup runs): a status check costs a few records, not
/// the whole run history.
fn last_backup_runs(repo: &lifeboat_repository::Repository, names: &[&str]) -> Result<Vec<Run>> {
    let mut missing: std::collections::HashSet<&str> = names.iter().copied().collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let tags = names.iter().map(|n| records::run_tag(repo, RunKind::Backup, Some(n))).collect();
    let runs = records::recent_runs(repo, &tags, |r| {
        if r.kind == RunKind::Backup && r.finished.is_some() {
            if let Some(s) = r.source.as_deref() {
                missing.remove(s);
            }
        }
        !missing.is_empty()
    })?;
    Ok(runs)
}

/// The records a health report is graded from (all oldest first).
#[derive(Clone, Copy, Debug)]
pub struct Records<'a> {
    /// Every snapshot.
    pub snapshots: &'a [SnapshotEntry],
    /// Every verification record.
    pub verifications: &'a [Verification],
    /// Every drill summary.
    pub drills: &'a [DrillSummary],
    /// The run history (runs of other kinds are ignored).
    pub runs: &'a [Run],
    /// Point-in-time sources: when each archived its newest WAL file (`None`: not read).
    pub wal: Option<&'a std::collections::HashMap<String, DateTime<Utc>>>,
}

/// Grade `selected` sources from records already read (the dashboard keeps them in memory).
pub fn assess(selected: &[&SourceConfig], records: &Records<'_>, now: DateTime<Utc>, th: &Thresholds) -> Report {
    let Records { snapshots: snaps, verifications, drills, runs, wal } = *records;
    let mut rows = selected
        .iter()
        .map(|s| row(s, snaps, verifications, drills, wal.and_then(|w| w.get(&s.name).copied()), now, th))
        .collect::<Vec<_>>();
    let backups: Vec<&Run> = runs.iter().filter(|r| r.kind == RunKind::Backup).collect();
    for r in rows.iter_mut() {
        let last = backups.iter().rev().find(|b| b.source.as_deref() == Some(&r.name) && b.finished.is_some());
        if let Some(run) = last.filter(|b| b.outcome == RunOutcome::Failed) {
            // A failed last run is at least a warning, even while the previous snapshot is
            // still inside the RPO.
            r.health.status = r.health.status.max(Status::Warning);
            let when = run.started.format("%Y-%m-%d %H:%M:%S UTC");
            r.problems.push(format!("last backup run failed ({when}): {}", run.error.as_deref().unwrap_or("")));
        }
    }
    let status = health::overall(rows.iter().map(|r| &r.health));
    Report { status, time: now, thresholds: th.clone(), sources: rows, free_space: None, probes: Vec::new() }
}

/// Gather one source's facts and grade them.
fn row(
    s: &SourceConfig,
    snaps: &[SnapshotEntry],
    verifications: &[Verification],
    drills: &[DrillSummary],
    last_wal: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Row {
    let own: Vec<&SnapshotEntry> =
        snaps.iter().filter(|e| e.snapshot.source.as_ref().is_some_and(|x| x.name == s.name)).collect();
    let ids: Vec<_> = own.iter().map(|e| e.id).collect();
    let facts = Facts {
        rpo: s.rpo.as_ref().map(|o| o.duration),
        rto: s.rto.as_ref().map(|o| o.duration),
        last_backup: own.iter().max_by_key(|e| e.snapshot.time).map(|e| (e.snapshot.time, e.id)),
        last_wal,
        last_verification: health::latest_verification(verifications, &s.name, &ids),
        last_drill: health::latest_drill(drills, &s.name),
    };
    let h = health::evaluate(&facts, now, th);
    Row {
        name: s.name.clone(),
        kind: s.kind(),
        rpo: s.rpo.as_ref().map(|o| o.text.clone()),
        rto: s.rto.as_ref().map(|o| o.text.clone()),
        problems: h.problems().into_iter().map(String::from).collect(),
        health: h,
    }
}

fn ago(age: Option<i64>) -> String {
    age.map(|a| format!("{} ago", short_duration(a.unsigned_abs()))).unwrap_or_else(|| "never".into())
}

fn word<T: Serialize>(o: &Option<T>) -> String {
    o.as_ref().and_then(|o| serde_json::to_value(o).ok()).and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// The report as a table for people, with the overall line last.
pub fn table_lines(r: &Report) -> Vec<String> {
    let (rows, overall, now) = (&r.sources, r.status, r.time);
    let mut out = Vec::new();
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    out.push(format!(
        "{:<w$}  {:<8}  {:<8}  {:<14}  {:<6}  {:<18}  {:<18}  PROBLEMS",
        "SOURCE", "KIND", "STATUS", "LAST BACKUP", "RPO", "VERIFIED", "DRILL"
    ));
    for r in rows {
        let h = &r.health;
        let verified = match &h.verification.outcome {
            Some(_) => format!("{} {}", word(&h.verification.outcome), ago(h.verification.age_seconds)),
            None => "never".into(),
        };
        let drill = match (h.drill.last, h.drill.rto_seconds) {
            (Some(t), Some(took)) => format!(
                "{} {} ({})",
                word(&h.drill.outcome),
                ago(Some((now - t).num_seconds().max(0))),
                short_duration(took.max(0.0).round() as u64)
            ),
            _ => "never".into(),
        };
        out.push(format!(
            "{:<w$}  {:<8}  {:<8}  {:<14}  {:<6}  {:<18}  {:<18}  {}",
            r.name,
            r.kind,
            h.status.label(),
            ago(h.backup.age_seconds),
            r.rpo.as_deref().unwrap_or("-"),
            verified,
            drill,
            if r.problems.is_empty() { "-".to_string() } else { r.problems.join("; ") }
        ));
    }
    if let Some(f) = &r.free_space {
        out.push(f.line().replacen("free space    ", "free space:", 1));
    }
    for p in &r.probes {
        let value = p.value.map(crate::probe::human_number).unwrap_or_else(|| "no value".into());
        let age = ago(Some((now - p.time).num_seconds().max(0)));
        let why = p.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
        out.push(format!("probe {}: {} {value} ({age}){why}", p.probe, p.status.label()));
    }
    let count = |s: Status| rows.iter().filter(|r| r.health.status == s).count();
    out.push(format!(
        "overall: {} ({} critical, {} warning, {} ok)",
        overall.label(),
        count(Status::Critical),
        count(Status::Warning),
        count(Status::Ok)
    ));
    out
}
