//! `lifeboat runs` and `lifeboat logs`: the run history.

use anyhow::Result;
use chrono::Local;
use lifeboat_ops::records::{Run, RunMessage, RunOutcome};
use lifeboat_service::runs::{self, RunFilter};

use super::Ctx;
use crate::args::{LogsArgs, RunsArgs};
use crate::{exit, output};

pub fn list(c: &Ctx, a: &RunsArgs) -> Result<i32> {
    let f = RunFilter {
        source: a.source.clone(),
        failed: a.failed,
        since: a.since.clone(),
        kind: a.kind.as_deref().map(runs::kind_named).transpose()?,
    };
    let mut list = runs::list(&c.session, &f)?;
    if let Some(n) = a.limit {
        list.drain(..list.len().saturating_sub(n));
    }
    if c.g.json {
        output::json(&list)?;
        return Ok(exit::OK);
    }
    println!(
        "{:<19}  {:<15} {:<20} {:<8} {:>9} {:>10}  {:<7} DETAIL",
        "STARTED", "KIND", "SOURCE", "OUTCOME", "TOOK", "BYTES", "BY"
    );
    for r in &list {
        println!(
            "{:<19}  {:<15} {:<20} {:<8} {:>9} {:>10}  {:<7} {}",
            r.started.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            r.kind.name(),
            r.source.as_deref().unwrap_or("-"),
            r.outcome.name(),
            if r.finished.is_some() {
                output::duration(std::time::Duration::from_secs_f64(r.seconds))
            } else {
                "-".into()
            },
            r.bytes.map(output::size).unwrap_or_default(),
            r.trigger,
            detail(r)
        );
    }
    let failed = list.iter().filter(|r| r.outcome == RunOutcome::Failed).count();
    println!("{}, {failed} failed", output::count(list.len(), "run"));
    Ok(exit::OK)
}

fn detail(r: &Run) -> String {
    match (&r.error, r.snapshot) {
        (Some(e), _) => e.clone(),
        (None, Some(id)) => format!("snapshot {}", id.short()),
        (None, None) => String::new(),
    }
}

fn rank(level: &str) -> u8 {
    match level {
        "error" => 2,
        "warning" => 1,
        _ => 0,
    }
}

pub fn logs(c: &Ctx, a: &LogsArgs) -> Result<i32> {
    let f = RunFilter { source: a.source.clone(), since: Some(a.since.clone()), ..Default::default() };
    let list = runs::list(&c.session, &f)?;
    let min = rank(&a.level);
    let mut lines = Vec::new();
    for r in &list {
        for m in r.messages.iter().filter(|m| rank(&m.level) >= min) {
            lines.push((m.time, r, m.clone()));
        }
        if r.outcome == RunOutcome::Failed && r.messages.is_empty() {
            // A run that died has no messages of its own: its error is the message.
            if let Some(e) = &r.error {
                let m = RunMessage { time: r.started, level: "error".into(), text: e.clone() };
                lines.push((r.started, r, m));
            }
        }
    }
    lines.sort_by_key(|(t, _, _)| *t);
    if let Some(n) = a.tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    if c.g.json {
        let out: Vec<_> = lines
            .iter()
            .map(|(t, r, m)| serde_json::json!({"time": t, "level": m.level, "run": r.id, "kind": r.kind, "source": r.source, "message": m.text}))
            .collect();
        output::json(&out)?;
        return Ok(exit::OK);
    }
    for (t, r, m) in &lines {
        println!(
            "{}  {:<7} {}{}: {}",
            t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            m.level,
            r.kind.name(),
            r.source.as_ref().map(|s| format!(" {s}")).unwrap_or_default(),
            m.text
        );
    }
    Ok(exit::OK)
}
