//! `lifeboat snapshots`.

use std::collections::HashMap;

use anyhow::Result;
use chrono::Local;
use lifeboat_format::Id;
use lifeboat_ops::records::{self, Outcome, Verification};
use lifeboat_repository::snapshots;

use crate::args::{Global, SnapshotsArgs};
use crate::{context, output};

pub fn run(g: &Global, a: &SnapshotsArgs) -> Result<i32> {
    let repo = context::open(g)?;
    let (all, bad) = snapshots::list(&repo)?;
    // A damaged snapshot file is named and makes the listing fail (exit 1) after it is printed.
    let code = if bad.is_empty() { crate::exit::OK } else { crate::exit::FAILURE };
    for (name, e) in bad {
        eprintln!("lifeboat: {}", snapshots::damaged(name, e));
    }
    let f = crate::cmd::filter(&a.filter)?;
    let latest = latest_verifications(&repo);
    let mut list: Vec<_> =
        all.into_iter().filter(|s| f.matches(&s.snapshot) && status_matches(a, latest.get(&s.id))).collect();
    if let Some(n) = a.limit {
        list.drain(..list.len().saturating_sub(n));
    }
    if g.json {
        let mut out = Vec::new();
        for s in &list {
            let mut v = serde_json::to_value(s)?;
            v["verification"] = serde_json::to_value(latest.get(&s.id))?;
            out.push(v);
        }
        output::json(&out)?;
        return Ok(code);
    }
    println!(
        "{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  {:<18}  paths",
        "ID", "time", "host", "tags", "size", "added", "verified"
    );
    let source_of =
        |sn: &lifeboat_format::Snapshot| sn.source.as_ref().map(|s| format!("[{}] ", s.name)).unwrap_or_default();
    for s in &list {
        let sn = &s.snapshot;
        let (size, added) = sn
            .summary
            .as_ref()
            .map(|x| (output::size(x.total_bytes_processed), output::size(x.data_added_packed)))
            .unwrap_or_default();
        println!(
            "{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  {:<18}  {}{}",
            s.id.short(),
            sn.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            sn.hostname,
            sn.tags.join(","),
            size,
            added,
            verified(latest.get(&s.id)),
            source_of(sn),
            sn.paths.join(", ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(code)
}

/// The newest verification record of each snapshot (a listing still works when they cannot be
/// read: the column then says `unverified`, with a warning).
fn latest_verifications(repo: &lifeboat_repository::Repository) -> HashMap<Id, Verification> {
    match records::verifications(repo) {
        Ok(all) => all.into_iter().map(|v| (v.snapshot, v)).collect(),
        Err(e) => {
            eprintln!("lifeboat: warning: cannot read verification records: {e}");
            HashMap::new()
        }
    }
}

/// `--verified-only` (latest verification ok) and `--status ok|failed|partial|unverified`.
fn status_matches(a: &SnapshotsArgs, v: Option<&Verification>) -> bool {
    let word = v.map(|v| outcome_word(v.outcome)).unwrap_or("unverified");
    (!a.verified_only || word == "ok") && a.status.as_deref().is_none_or(|s| s == word)
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
    }
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
    format!("{} {age}", outcome_word(v.outcome))
}
