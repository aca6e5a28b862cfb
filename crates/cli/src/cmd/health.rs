//! `lifeboat health [--source NAME…] [--json]`: one line per config source — the newest backup
//! against its RPO, the newest verification, the newest drill — graded by
//! [`lifeboat_ops::health`], and the overall grade as the exit code (0 ok, 1 warning,
//! 2 critical; 3 unknown when health cannot be determined).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lifeboat_ops::health::{self, short_duration, Facts, SourceHealth, Status, Thresholds};
use lifeboat_ops::records::{self, DrillSummary, Verification};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use serde::Serialize;

use crate::args::{Global, HealthArgs};
use crate::config::{parse_duration, SourceSection};
use crate::{context, exit, output};

/// Exit code when the health cannot be determined (monitoring-plugin UNKNOWN).
pub const UNKNOWN: i32 = 3;

/// One source in the report.
#[derive(Serialize)]
struct Row {
    name: String,
    kind: String,
    rpo: Option<String>,
    rto: Option<String>,
    #[serde(flatten)]
    health: SourceHealth,
    problems: Vec<String>,
}

/// Run `health`; any error is reported on one line and exits with [`UNKNOWN`].
pub fn run(g: &Global, a: &HealthArgs) -> Result<i32> {
    match check(g, a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("lifeboat: health unknown: {}", exit::message(&e));
            Ok(UNKNOWN)
        }
    }
}

fn thresholds(a: &HealthArgs) -> Result<Thresholds> {
    let age = parse_duration(&a.max_verification_age).map_err(|e| anyhow::anyhow!("--max-verification-age: {e}"))?;
    Ok(Thresholds { rpo_warning_percent: a.rpo_warning, verification_max_age: age })
}

fn check(g: &Global, a: &HealthArgs) -> Result<i32> {
    let th = thresholds(a)?;
    let cfg = context::config(g)?
        .with_context(|| format!("no config file: create {} or pass --config FILE", context::DEFAULT_CONFIG))?;
    let selected: Vec<&SourceSection> = if a.sources.is_empty() {
        cfg.sources().collect()
    } else {
        a.sources.iter().map(|n| cfg.find(n)).collect::<Result<_>>()?
    };
    if selected.is_empty() {
        anyhow::bail!("{} defines no sources", cfg.path.display());
    }
    let repo = context::open(g)?;
    let (snaps, _) = snapshots::list(&repo)?;
    let verifications = records::verifications(&repo)?;
    let drills = records::drills(&repo)?;
    let now = Utc::now();
    let rows =
        selected.into_iter().map(|s| row(s, &snaps, &verifications, &drills, now, &th)).collect::<Result<Vec<_>>>()?;
    let overall = health::overall(rows.iter().map(|r| &r.health));
    if g.json {
        output::json(&serde_json::json!({
            "status": overall, "exit_code": overall.exit_code(), "time": now, "thresholds": th, "sources": rows,
        }))?;
    } else if !g.quiet || overall != Status::Ok {
        print_table(&rows, overall, now);
    }
    Ok(overall.exit_code())
}

/// Gather one source's facts and grade them.
fn row(
    s: &SourceSection,
    snaps: &[SnapshotEntry],
    verifications: &[Verification],
    drills: &[DrillSummary],
    now: DateTime<Utc>,
    th: &Thresholds,
) -> Result<Row> {
    let what = |field: &str| format!("source {}: {field}", s.name);
    let dur = |v: &Option<String>, field: &str| {
        v.as_deref().map(|v| parse_duration(v).map_err(|e| anyhow::anyhow!("{}: {e}", what(field)))).transpose()
    };
    let own: Vec<&SnapshotEntry> =
        snaps.iter().filter(|e| e.snapshot.source.as_ref().is_some_and(|x| x.name == s.name)).collect();
    let ids: Vec<_> = own.iter().map(|e| e.id).collect();
    let facts = Facts {
        rpo: dur(&s.rpo, "rpo")?,
        rto: dur(&s.rto, "rto")?,
        last_backup: own.iter().max_by_key(|e| e.snapshot.time).map(|e| (e.snapshot.time, e.id)),
        last_verification: health::latest_verification(verifications, &s.name, &ids),
        last_drill: health::latest_drill(drills, &s.name),
    };
    let h = health::evaluate(&facts, now, th);
    Ok(Row {
        name: s.name.clone(),
        kind: s.kind.clone(),
        rpo: s.rpo.clone(),
        rto: s.rto.clone(),
        problems: h.problems().into_iter().map(String::from).collect(),
        health: h,
    })
}

fn ago(age: Option<i64>) -> String {
    age.map(|a| format!("{} ago", short_duration(a.unsigned_abs()))).unwrap_or_else(|| "never".into())
}

fn outcome_word<T: Serialize>(o: &Option<T>) -> String {
    o.as_ref().and_then(|o| serde_json::to_value(o).ok()).and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn print_table(rows: &[Row], overall: Status, now: DateTime<Utc>) {
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(6).max(6);
    println!(
        "{:<w$}  {:<8}  {:<8}  {:<14}  {:<6}  {:<18}  {:<18}  PROBLEMS",
        "SOURCE", "KIND", "STATUS", "LAST BACKUP", "RPO", "VERIFIED", "DRILL"
    );
    for r in rows {
        let h = &r.health;
        let verified = match &h.verification.outcome {
            Some(_) => format!("{} {}", outcome_word(&h.verification.outcome), ago(h.verification.age_seconds)),
            None => "never".into(),
        };
        let drill = match (h.drill.last, h.drill.rto_seconds) {
            (Some(t), Some(took)) => format!(
                "{} {} ({})",
                outcome_word(&h.drill.outcome),
                ago(Some((now - t).num_seconds().max(0))),
                short_duration(took.max(0.0).round() as u64)
            ),
            _ => "never".into(),
        };
        println!(
            "{:<w$}  {:<8}  {:<8}  {:<14}  {:<6}  {:<18}  {:<18}  {}",
            r.name,
            r.kind,
            h.status.label(),
            ago(h.backup.age_seconds),
            r.rpo.as_deref().unwrap_or("-"),
            verified,
            drill,
            if r.problems.is_empty() { "-".to_string() } else { r.problems.join("; ") }
        );
    }
    let count = |s: Status| rows.iter().filter(|r| r.health.status == s).count();
    println!(
        "overall: {} ({} critical, {} warning, {} ok)",
        overall.label(),
        count(Status::Critical),
        count(Status::Warning),
        count(Status::Ok)
    );
}
