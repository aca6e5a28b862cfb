//! `lifeboat verify [SNAPSHOT|latest] [--all] [--read-data] [--restore-test]`: prove snapshots
//! (structure, every blob read back, a restore into a scratch target with the kind's native
//! verification) and record each result in the repository.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use chrono::{Local, Utc};
use lifeboat_ops::records::{self, Outcome, Verification};
use lifeboat_ops::verify::{self, CheckOptions, RestoreTest, Scratch, SnapshotCheck};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{RepoError, Repository};
use lifeboat_sources::nats;

use crate::args::{Global, VerifyArgs};
use crate::cmd::sources as src;
use crate::{context, exit, output};

/// Run `verify`.
pub fn run(g: &Global, a: &VerifyArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let repo = context::open(g)?;
    let _lock = context::lock(g, &repo, false)?;
    let (snaps, damaged) = select(&repo, a)?;
    let started = Instant::now();
    let opts = CheckOptions { read_data: a.read_data, threads: None, interrupt: Some(interrupt.clone()) };
    let checks = verify::check_snapshots(&repo, &snaps, &opts)?;
    let share = started.elapsed().as_secs_f64() / snaps.len().max(1) as f64;
    let mut results = Vec::new();
    for (snap, check) in snaps.iter().zip(checks) {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted.into());
        }
        let test = if a.restore_test { Some(verify::restore_test(&repo, snap, &scratch_for(g, snap)?)) } else { None };
        let record = record(snap, a, &check, test.as_ref(), share);
        records::record_verification(&repo, &record)?;
        if !g.json && !g.quiet {
            print(snap, &record, test.as_ref());
        }
        results.push(serde_json::json!({"verification": record, "check": check, "restore_test": test}));
    }
    let mut outcomes: Vec<Outcome> =
        results.iter().filter_map(|r| serde_json::from_value(r["verification"]["outcome"].clone()).ok()).collect();
    // Damaged snapshot files are failures of their own: the newest of a source may be among them.
    for e in &damaged {
        outcomes.push(Outcome::Failed);
        if !g.json && !g.quiet {
            println!("FAILED    {e}");
        }
        results.push(serde_json::json!({"damaged_snapshot": e.to_string(), "verification": {"outcome": "failed"}}));
    }
    if g.json {
        output::json(&results)?;
    } else if !g.quiet {
        let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
        println!(
            "{} snapshots verified: {} ok, {} failed, {} partial",
            outcomes.len(),
            count(Outcome::Ok),
            count(Outcome::Failed),
            count(Outcome::Partial)
        );
    }
    Ok(code(lifeboat_ops::drill::worst(outcomes)))
}

/// The exit code of an outcome: 0 ok, 1 failed, 3 partial.
pub fn code(o: Outcome) -> i32 {
    match o {
        Outcome::Ok => exit::OK,
        Outcome::Failed => exit::FAILURE,
        Outcome::Partial => exit::PARTIAL,
    }
}

/// The snapshots to verify: the one named, every match with `--all`, else the newest of each
/// source (plain backups: of each host and path set) among the matches; and the snapshot files
/// that cannot be read (each a failure: it may be the newest of its source).
fn select(repo: &Repository, a: &VerifyArgs) -> Result<(Vec<SnapshotEntry>, Vec<RepoError>)> {
    let f = crate::cmd::filter(&a.filter)?;
    if let Some(s) = &a.snapshot {
        return Ok((vec![snapshots::find(repo, s, &f)?], Vec::new()));
    }
    let (all, bad) = snapshots::list(repo)?;
    let damaged: Vec<RepoError> = bad.into_iter().map(|(n, e)| snapshots::damaged(n, e)).collect();
    let matching: Vec<SnapshotEntry> = all.into_iter().filter(|s| f.matches(&s.snapshot)).collect();
    if matching.is_empty() && damaged.is_empty() {
        anyhow::bail!("no snapshot matches (see `lifeboat snapshots`)");
    }
    if a.all {
        return Ok((matching, damaged));
    }
    let mut newest: Vec<SnapshotEntry> = Vec::new();
    for s in matching.into_iter().rev() {
        if !newest.iter().any(|n| group(n) == group(&s)) {
            newest.push(s);
        }
    }
    newest.reverse();
    Ok((newest, damaged))
}

/// What "the same backup" means for picking the newest: the source, else host and paths.
fn group(s: &SnapshotEntry) -> (String, Vec<String>) {
    match &s.snapshot.source {
        Some(src) => (src.name.clone(), Vec::new()),
        None => {
            let mut p = s.snapshot.paths.clone();
            p.sort();
            (s.snapshot.hostname.clone(), p)
        }
    }
}

/// Where a snapshot's restore test makes its scratch target: its source's configured servers
/// (and postgres `jobs`/`tmp_dir`), else the local defaults.
pub fn scratch_for(g: &Global, snap: &SnapshotEntry) -> Result<Scratch> {
    let mut s = Scratch { nats: nats::Connection::parse(src::nats::DEFAULT_URL)?, ..Default::default() };
    let section = match &snap.snapshot.source {
        Some(info) => src::configured(g, &info.name)?,
        None => None,
    };
    let Some(sec) = section else { return Ok(s) };
    match sec.kind.as_str() {
        "postgres" => {
            s.postgres = src::client_connection(&sec)?;
            s.jobs = sec.jobs;
            s.tmp_dir = src::setting(&sec, &sec.tmp_dir)?.map(Into::into);
        }
        "mariadb" => s.mariadb = src::client_connection(&sec)?,
        "nats" => s.nats = src::nats::connection(&sec)?,
        _ => {}
    }
    Ok(s)
}

fn record(
    snap: &SnapshotEntry,
    a: &VerifyArgs,
    check: &SnapshotCheck,
    test: Option<&RestoreTest>,
    share: f64,
) -> Verification {
    let mut checks = vec!["structure".to_string()];
    if a.read_data {
        checks.push("read-data".into());
    }
    let mut findings = check.findings.clone();
    let mut outcome = if findings.is_empty() { Outcome::Ok } else { Outcome::Failed };
    if let Some(t) = test {
        checks.push("restore-test".into());
        findings.extend(t.problems.iter().map(|p| format!("restore test: {p}")));
        findings.extend(t.skipped.iter().map(|p| format!("restore test not done: {p}")));
        outcome = lifeboat_ops::drill::worst([outcome, t.outcome()]);
    }
    Verification {
        time: Utc::now(),
        host: records::host(),
        snapshot: snap.id,
        source: snap.snapshot.source.as_ref().map(|s| s.name.clone()),
        checks,
        outcome,
        findings,
        duration_seconds: share + test.map(|t| t.seconds).unwrap_or(0.0),
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "FAILED",
        Outcome::Partial => "partial",
    }
}

/// What a snapshot is, for people: `[source] kind` or its paths.
pub fn label(snap: &SnapshotEntry) -> String {
    match &snap.snapshot.source {
        Some(s) => format!("[{}] {}", s.name, s.kind),
        None => snap.snapshot.paths.join(", "),
    }
}

fn print(snap: &SnapshotEntry, r: &Verification, test: Option<&RestoreTest>) {
    println!(
        "{}  {}  {:<28}  {:<30}  {:<7}  {}",
        snap.id.short(),
        snap.snapshot.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
        label(snap),
        r.checks.join("+"),
        outcome_word(r.outcome),
        output::duration(std::time::Duration::from_secs_f64(r.duration_seconds))
    );
    if let Some(t) = test.filter(|t| t.problems.is_empty() && t.skipped.is_empty()) {
        println!("          restore test: {} ({}), removed again", t.target, summary(&t.details));
    }
    for f in &r.findings {
        println!("          {f}");
    }
}

/// `3 tables, 40012 rows` / `2 databases, 3005 keys` / `12 files, 3.0 MiB` from a test's details.
pub fn summary(d: &serde_json::Value) -> String {
    let total =
        |v: &serde_json::Value| v.as_object().map(|m| (m.len(), m.values().filter_map(|x| x.as_u64()).sum::<u64>()));
    if let Some((n, rows)) = total(&d["tables"]) {
        return format!("{n} tables, {rows} rows as in the manifest");
    }
    if let Some((n, keys)) = total(&d["keys"]) {
        return format!("{n} databases, {keys} keys as in the manifest");
    }
    if let Some(list) = d["streams"].as_array() {
        let msgs: u64 = list.iter().filter_map(|s| s["messages"].as_u64()).sum();
        return format!("{} streams, {msgs} messages as in the manifest", list.len());
    }
    format!(
        "{} files, {} read back and hash-checked",
        d["files"].as_u64().unwrap_or(0),
        output::size(d["bytes"].as_u64().unwrap_or(0))
    )
}
