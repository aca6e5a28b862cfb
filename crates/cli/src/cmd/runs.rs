//! `lifeboat runs` and `lifeboat logs`: the run history.

use anyhow::Result;
use chrono::Local;
use lifeboat_ops::records::{Run, RunOutcome};
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

pub fn logs(c: &Ctx, a: &LogsArgs) -> Result<i32> {
    let f = RunFilter { source: a.source.clone(), since: Some(a.since.clone()), ..Default::default() };
    let lines = runs::logs(&c.session, &f, &a.level, a.tail)?;
    output::show(c.g, &lines, || {
        for l in &lines {
            let source = l.source.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
            let t = l.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S");
            println!("{t}  {:<7} {}{source}: {}", l.level, l.kind.name(), l.message);
        }
    })
    .map(|_| exit::OK)
}
