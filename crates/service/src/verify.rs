//! Proving snapshots: structure, every blob read back (`read_data`), a restore into a scratch
//! target with the kind's native verification (`restore_test`); each result is recorded in the
//! repository.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use lifeboat_ops::records::{self, Outcome, RunKind, RunOutcome, Verification};
use lifeboat_ops::verify::{self, CheckOptions, RestoreTest, SnapshotCheck};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{RepoError, Repository};

use crate::config::Config;
use crate::error::{Result, ServiceError};
use crate::filter::FilterSpec;
use crate::hooks::HookEnv;
use crate::kinds;
use crate::progress::{Event, Observer};
use crate::session::Session;

/// What to verify and how deeply.
#[derive(Clone, Debug, Default)]
pub struct VerifyRequest {
    /// One snapshot (`latest`, id or prefix); else the newest of each source among the matches.
    pub snapshot: Option<String>,
    /// Which snapshots.
    pub filter: FilterSpec,
    /// Every matching snapshot instead of the newest of each source.
    pub all: bool,
    /// Read every data blob back.
    pub read_data: bool,
    /// Restore into a scratch target and verify natively.
    pub restore_test: bool,
}

/// One snapshot's verification.
#[derive(Debug)]
pub struct Verified {
    /// The snapshot.
    pub snapshot: SnapshotEntry,
    /// The record stored in the repository.
    pub record: Verification,
    /// Structure (and data) check.
    pub check: SnapshotCheck,
    /// The restore test, when asked for.
    pub test: Option<RestoreTest>,
}

/// What `verify` found: each snapshot's verification, and the snapshot files that cannot be
/// read (each a failure: it may be the newest of its source).
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Per snapshot.
    pub results: Vec<Verified>,
    /// Damaged snapshot files, named.
    pub damaged: Vec<String>,
}

impl VerifyReport {
    /// The worst outcome (a damaged snapshot file is a failure).
    pub fn worst(&self) -> Outcome {
        let damaged = (!self.damaged.is_empty()).then_some(Outcome::Failed);
        lifeboat_ops::drill::worst(self.results.iter().map(|r| r.record.outcome).chain(damaged))
    }
}

/// Verify the snapshots `req` selects; `each` sees every result as soon as it is recorded.
pub fn verify(
    session: &Session,
    req: &VerifyRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
    each: &mut dyn FnMut(&Verified),
) -> Result<VerifyReport> {
    let repo = session.open_uncached()?;
    let _lock = session.lock(&repo, false)?;
    let (snaps, damaged) = select(&repo, req)?;
    let cfg = session.config()?;
    let started = Instant::now();
    let opts = CheckOptions { read_data: req.read_data, threads: None, interrupt: Some(interrupt.clone()) };
    let checks = verify::check_snapshots(&repo, &snaps, &opts)?;
    let share = started.elapsed().as_secs_f64() / snaps.len().max(1) as f64;
    let mut results = Vec::new();
    for (snap, check) in snaps.into_iter().zip(checks) {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted.into());
        }
        let test =
            if req.restore_test { Some(restore_test(cfg.as_deref(), &repo, &snap, observer.as_ref())) } else { None };
        let record = record(&snap, req.read_data, &check, test.as_ref(), share);
        records::record_verification(&repo, &record)?;
        record_run(&repo, session, &snap, &record, req.restore_test, observer.as_ref());
        let details = serde_json::json!({ "checks": record.checks, "outcome": crate::inventory::status_word(record.outcome),
            "findings": record.findings.len(), "trigger": session.trigger });
        let source = snap.snapshot.source.as_ref().map(|s| s.name.as_str());
        let event = lifeboat_ops::audit::Event::new("verify", details).about(source, Some(snap.id.to_hex()));
        crate::audit::record(&repo, Some(session), event, observer.as_ref());
        let v = Verified { snapshot: snap, record, check, test };
        each(&v);
        results.push(v);
    }
    Ok(VerifyReport { results, damaged })
}

/// Record a verification as a run (its start is the verification's start).
fn record_run(repo: &Repository, session: &Session, snap: &SnapshotEntry, v: &Verification, test: bool, o: &Observer) {
    let kind = if test { RunKind::RestoreTest } else { RunKind::Verify };
    let source = snap.snapshot.source.as_ref().map(|s| s.name.as_str());
    let mut run = crate::runs::begin(repo, session, kind, source, o);
    run.snapshot = Some(snap.id);
    for f in &v.findings {
        run.say("warning", f.clone());
    }
    let outcome = match v.outcome {
        Outcome::Ok => RunOutcome::Ok,
        Outcome::Partial => RunOutcome::Partial,
        Outcome::Failed => RunOutcome::Failed,
    };
    let error = (outcome == RunOutcome::Failed).then(|| v.findings.first().cloned().unwrap_or_default());
    crate::runs::end(repo, run, outcome, error, o);
}

/// Restore `snap` into a scratch target of its kind (on its configured source's servers) and
/// verify it natively; the target is gone afterwards. Emits start and end events.
pub fn restore_test(cfg: Option<&Config>, repo: &Repository, snap: &SnapshotEntry, observer: &Observer) -> RestoreTest {
    let started = Instant::now();
    let label = label(snap);
    let kind = kinds::of_snapshot(snap).map(|k| k.name()).unwrap_or("unknown");
    observer(&Event::Started {
        step: "restore test",
        source: label.clone(),
        kind: kind.into(),
        detail: format!("restoring snapshot {} into a scratch target", snap.id.short()),
    });
    // The configured source's verify_command runs against the scratch target before it goes.
    let name = snap.snapshot.source.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    let configured = cfg.and_then(|c| c.find(&name).ok()).filter(|s| s.kind() == kind);
    let verify_command = configured.and_then(|s| s.hooks.verify_command.as_ref());
    let check = |target: &str| {
        verify_command.map(|hook| {
            let env = HookEnv {
                snapshot: Some(snap.id.to_hex()),
                target: Some(target.to_string()),
                ..HookEnv::new(&name, "restore-test")
            };
            crate::hooks::run("verify_command", hook, &env)
        })
    };
    let result = crate::config::source_for(cfg, snap)
        .map_err(|e| e.to_string())
        .and_then(|r| r.source().restore_test(&r.name, repo, snap, None::<&Path>, &check));
    let mut t = result.unwrap_or_else(|p| RestoreTest { problems: vec![p], ..Default::default() });
    match (&t.verify_command, verify_command) {
        (Some(v), _) if !v.ok => t.problems.push(format!("verify_command {}", v.line())),
        (None, Some(_)) if t.problems.is_empty() => t
            .skipped
            .push(format!("verify_command was not run: a {kind} restore test has no scratch target to hand it")),
        _ => {}
    }
    t.kind = kind.into();
    t.seconds = started.elapsed().as_secs_f64();
    observer(&Event::Finished {
        step: "restore test",
        source: label,
        ok: t.outcome() == Outcome::Ok,
        seconds: t.seconds,
        detail: t.problems.first().or(t.skipped.first()).cloned().unwrap_or_else(|| "ok".into()),
    });
    t
}

/// The snapshots to verify: the one named, every match with `all`, else the newest of each
/// source (plain backups: of each host and path set) among the matches.
fn select(repo: &Repository, req: &VerifyRequest) -> Result<(Vec<SnapshotEntry>, Vec<String>)> {
    if let Some(s) = &req.snapshot {
        return Ok((vec![crate::filter::find_snapshot(repo, s, &req.filter)?], Vec::new()));
    }
    let f = req.filter.filter()?;
    let (all, bad) = snapshots::list(repo)?;
    let damaged: Vec<String> = bad.into_iter().map(|(n, e)| snapshots::damaged(n, e).to_string()).collect();
    let matching: Vec<SnapshotEntry> = all.into_iter().filter(|s| f.matches(&s.snapshot)).collect();
    if matching.is_empty() && damaged.is_empty() {
        return Err(ServiceError::msg("no snapshot matches (see `lifeboat snapshots`)"));
    }
    if req.all {
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

fn record(
    snap: &SnapshotEntry,
    read_data: bool,
    check: &SnapshotCheck,
    test: Option<&RestoreTest>,
    share: f64,
) -> Verification {
    let mut checks = vec!["structure".to_string()];
    if read_data {
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
        verify_command: test.and_then(|t| t.verify_command.clone()),
    }
}

/// What a snapshot is, for people: `[source] kind` or its paths.
pub fn label(snap: &SnapshotEntry) -> String {
    match &snap.snapshot.source {
        Some(s) => format!("[{}] {}", s.name, s.kind),
        None => snap.snapshot.paths.join(", "),
    }
}

/// `3 tables, 40012 rows` / `2 databases, 3005 keys` / `12 files, 3.0 MiB` from a test's details.
pub fn test_summary(d: &serde_json::Value) -> String {
    let total =
        |v: &serde_json::Value| v.as_object().map(|m| (m.len(), m.values().filter_map(|x| x.as_u64()).sum::<u64>()));
    if let Some((n, rows)) = total(&d["tables"]) {
        return format!("{}, {rows} rows as in the manifest", crate::human::count(n, "table"));
    }
    if let Some((n, keys)) = total(&d["keys"]) {
        return format!("{}, {keys} keys as in the manifest", crate::human::count(n, "database"));
    }
    if let Some(list) = d["streams"].as_array() {
        let msgs: u64 = list.iter().filter_map(|s| s["messages"].as_u64()).sum();
        return format!("{}, {msgs} messages as in the manifest", crate::human::count(list.len(), "stream"));
    }
    format!(
        "{}, {} read back and hash-checked",
        crate::human::count(d["files"].as_u64().unwrap_or(0) as usize, "file"),
        crate::human::size(d["bytes"].as_u64().unwrap_or(0))
    )
}
