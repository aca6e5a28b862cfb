//! `lifeboat compare SNAPSHOT TARGET`: a backup's manifest counts beside a live target's.

use anyhow::Result;
use lifeboat_service::compare::{self, Compared};

use super::Ctx;
use crate::args::CompareArgs;
use crate::{exit, output};

pub fn run(c: &Ctx, a: &CompareArgs) -> Result<i32> {
    let r = compare::compare(&c.session, &a.snapshot, &super::filter(&a.filter), &a.target)?;
    if c.g.json {
        let info = r.snapshot.snapshot.source.as_ref();
        output::json(&serde_json::json!({
            "snapshot": r.snapshot.id, "source": info.map(|s| &s.name), "kind": info.map(|s| &s.kind),
            "target": a.target, "ok": r.differ() == 0, "rows": r.rows,
        }))?;
    } else {
        print(&r, &a.target);
    }
    Ok(if r.differ() == 0 { exit::OK } else { exit::FAILURE })
}

fn print(r: &Compared, target: &str) {
    let what = r.what;
    println!("snapshot {} ({}) against {target}", r.snapshot.id.short(), lifeboat_service::verify::label(&r.snapshot));
    let width = r.rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(what.len());
    println!("{what:<width$}  {:>12}  {:>12}  {:>10}", "backup", "live", "difference");
    let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into());
    for row in &r.rows {
        let diff = match (row.backup, row.live) {
            (Some(b), Some(l)) => format!("{:+}", l as i128 - b as i128),
            _ => String::new(),
        };
        let flag = if row.ok { "" } else { "  DIFFERS" };
        println!("{:<width$}  {:>12}  {:>12}  {diff:>10}{flag}", row.name, show(row.backup), show(row.live));
    }
    let differ = r.differ();
    println!(
        "{} of {} counts equal{}",
        r.rows.len() - differ,
        r.rows.len(),
        if differ > 0 { format!(", {differ} differ") } else { String::new() }
    );
}
