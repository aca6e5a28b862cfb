//! `lifeboat snapshots`.

use anyhow::Result;
use chrono::Local;
use lifeboat_ops::records::Verification;
use lifeboat_service::inventory::{self, status_word, StatusFilter};

use super::Ctx;
use crate::args::SnapshotsArgs;
use crate::output::{self, Progress};

pub fn run(c: &Ctx, a: &SnapshotsArgs) -> Result<i32> {
    let status = StatusFilter { verified_only: a.verified_only, status: a.status.clone(), limit: a.limit };
    let progress = Progress::new(c.g);
    let (list, damaged) =
        inventory::snapshots(&c.session, &super::filter(&a.filter), &status, progress.observer().as_ref())?;
    // A damaged snapshot file is named and makes the listing fail (exit 1) after it is printed.
    let code = if damaged.is_empty() { crate::exit::OK } else { crate::exit::FAILURE };
    for d in &damaged {
        eprintln!("lifeboat: {d}");
    }
    if c.g.json {
        let mut out = Vec::new();
        for l in &list {
            let mut v = serde_json::to_value(&l.entry)?;
            v["verification"] = serde_json::to_value(&l.verification)?;
            out.push(v);
        }
        output::json(&out)?;
        return Ok(code);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  {:<18}  paths",
        "ID", "time", "host", "tags", "size", "added", "verified"
    );
    for l in &list {
        let sn = &l.entry.snapshot;
        let (size, added) = sn
            .summary
            .as_ref()
            .map(|x| (output::size(x.total_bytes_processed), output::size(x.data_added_packed)))
            .unwrap_or_default();
        println!(
            "{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  {:<18}  {}{}",
            l.entry.id.short(),
            sn.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            sn.hostname,
            sn.tags.join(","),
            size,
            added,
            verified(l.verification.as_ref()),
            sn.source.as_ref().map(|s| format!("[{}] ", s.name)).unwrap_or_default(),
            sn.paths.join(", ")
        );
    }
    println!("{}", output::count(list.len(), "snapshot"));
    Ok(code)
}

/// `ok 2h ago`, `failed 3d ago`, `unverified`.
fn verified(v: Option<&Verification>) -> String {
    let Some(v) = v else { return "unverified".into() };
    let secs = (chrono::Utc::now() - v.time).num_seconds().max(0);
    let age = match secs {
        s if s < 60 => "just now".to_string(),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    };
    format!("{} {age}", status_word(v.outcome))
}
