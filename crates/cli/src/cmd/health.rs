//! `lifeboat health [--source NAME…] [--json]`: per config source the newest backup against its
//! RPO, the newest verification, the newest drill; the overall grade is the exit code (0 ok,
//! 1 warning, 2 critical; 3 unknown when health cannot be determined).

use anyhow::Result;
use chrono::{DateTime, Utc};
use lifeboat_ops::health::{short_duration, Status, Thresholds};
use lifeboat_service::health::{self, Row};
use serde::Serialize;

use super::Ctx;
use crate::args::HealthArgs;
use crate::{exit, output};

/// Exit code when the health cannot be determined (monitoring-plugin UNKNOWN).
pub const UNKNOWN: i32 = 3;

/// Run `health`; any error is reported on one line and exits with [`UNKNOWN`].
pub fn run(c: &Ctx, a: &HealthArgs) -> Result<i32> {
    match check(c, a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("lifeboat: health unknown: {}", exit::message(&e));
            Ok(UNKNOWN)
        }
    }
}

fn check(c: &Ctx, a: &HealthArgs) -> Result<i32> {
    let age = lifeboat_service::config::parse_duration(&a.max_verification_age)
        .map_err(|e| anyhow::anyhow!("--max-verification-age: {e}"))?;
    let th = Thresholds { rpo_warning_percent: a.rpo_warning, verification_max_age: age };
    let r = health::health(&c.session, &a.sources, &th)?;
    if c.g.json {
        output::json(&serde_json::json!({
            "status": r.status, "exit_code": r.status.exit_code(), "time": r.time, "thresholds": r.thresholds,
            "sources": r.sources,
        }))?;
    } else if !c.g.quiet || r.status != Status::Ok {
        print_table(&r.sources, r.status, r.time);
    }
    Ok(r.status.exit_code())
}

fn ago(age: Option<i64>) -> String {
    age.map(|a| format!("{} ago", short_duration(a.unsigned_abs()))).unwrap_or_else(|| "never".into())
}

fn word<T: Serialize>(o: &Option<T>) -> String {
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
