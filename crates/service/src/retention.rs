//! `forget`, `prune`, `apply-retention`, append-only mode and the audit log.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lifeboat_backend::{ExtendReport, FileType};
use lifeboat_ops::records::{RunKind, RunOutcome};
use lifeboat_ops::retention::{self, Decision, Policy};
use lifeboat_repository::prune::{PruneOptions, PruneStats};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::Repository;
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::filter::{find_snapshot, FilterSpec};
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// Prune settings.
#[derive(Clone, Copy, Debug)]
pub struct PruneSettings {
    /// Only report what would happen.
    pub dry_run: bool,
    /// Repack packs less than this share used (0..1).
    pub repack_below: f64,
}

fn prune_options(p: PruneSettings, interrupt: &Arc<AtomicBool>) -> PruneOptions {
    PruneOptions {
        dry_run: p.dry_run,
        repack_below: p.repack_below,
        interrupt: Some(interrupt.clone()),
        ..PruneOptions::default()
    }
}

/// What `forget` was asked.
#[derive(Clone, Debug, Default)]
pub struct ForgetRequest {
    /// Snapshots named (id, prefix, latest); else the policy decides.
    pub snapshots: Vec<String>,
    /// Keep rules.
    pub policy: Policy,
    /// Which snapshots the policy sees.
    pub filter: FilterSpec,
    /// Only report.
    pub dry_run: bool,
    /// Also prune, with these settings.
    pub prune: Option<PruneSettings>,
}

/// What `forget` did.
#[derive(Debug, Serialize)]
pub struct Forgotten {
    /// Only reported.
    pub dry_run: bool,
    /// Keep or remove, per snapshot.
    pub snapshots: Vec<Decision>,
    /// How many were (or would be) removed.
    pub removed: usize,
    /// The prune after it.
    pub prune: Option<PruneStats>,
}

/// `forget`: remove snapshots by id or by policy, then prune if asked.
pub fn forget(
    session: &Session,
    req: &ForgetRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Forgotten> {
    if !req.snapshots.is_empty() && !req.policy.is_empty() {
        return Err(ServiceError::usage("give snapshot ids or --keep-* rules, not both"));
    }
    if req.snapshots.is_empty() {
        req.policy.validate()?;
    }
    let repo = session.open()?;
    if !req.dry_run {
        session.refuse_if_append_only(&repo, "forget")?;
    }
    let _lock = session.lock(&repo, !req.dry_run)?;
    let decisions = if req.snapshots.is_empty() {
        let filter = req.filter.filter()?;
        let (all, bad) = snapshots::list(&repo)?;
        warn_unreadable(&bad, observer.as_ref());
        let chosen: Vec<SnapshotEntry> = all.into_iter().filter(|s| filter.matches(&s.snapshot)).collect();
        retention::apply(&chosen, &req.policy)?
    } else {
        by_id(&repo, &req.snapshots, &req.filter)?
    };
    let removed = remove(&repo, &decisions, req.dry_run)?;
    let stats = match req.prune {
        Some(p) => Some(lifeboat_repository::prune::prune(&repo, &prune_options(p, interrupt))?),
        None => None,
    };
    if !req.dry_run {
        audit_forget(&repo, "forget", &decisions, stats.as_ref(), observer.as_ref());
    }
    Ok(Forgotten { dry_run: req.dry_run, snapshots: decisions, removed, prune: stats })
}

/// Decisions for snapshots named on the command line: each is removed.
fn by_id(repo: &Repository, ids: &[String], spec: &FilterSpec) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> = Vec::new();
    for r in ids {
        let s = find_snapshot(repo, r, spec)?;
        if out.iter().any(|d| d.id == s.id) {
            continue;
        }
        out.push(Decision {
            id: s.id,
            time: s.snapshot.time,
            group: retention::group_of(&s.snapshot),
            keep: false,
            reasons: Vec::new(),
        });
    }
    Ok(out)
}

fn warn_unreadable(bad: &snapshots::Unreadable, observer: &Observer) {
    for (name, e) in bad {
        observer(&Event::Warning {
            message: format!("skipping snapshot {} (kept): {e}", name.get(..8).unwrap_or(name)),
        });
    }
}

/// Delete the snapshot files of the removed decisions; returns how many (would be) removed.
fn remove(repo: &Repository, decisions: &[Decision], dry_run: bool) -> Result<usize> {
    let doomed: Vec<&Decision> = decisions.iter().filter(|d| !d.keep).collect();
    if !dry_run {
        // One durable batch: a removed snapshot must not come back after a crash once prune has
        // deleted its data.
        let names: Vec<String> = doomed.iter().map(|d| d.id.to_hex()).collect();
        repo.backend().remove_many(FileType::Snapshot, &names)?;
    }
    Ok(doomed.len())
}

/// `prune`.
pub fn prune(
    session: &Session,
    p: PruneSettings,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<PruneStats> {
    let repo = session.open()?;
    if !p.dry_run {
        session.refuse_if_append_only(&repo, "prune")?;
    }
    let _lock = session.lock(&repo, !p.dry_run)?;
    let stats = lifeboat_repository::prune::prune(&repo, &prune_options(p, interrupt))?;
    if !p.dry_run {
        audit_forget(&repo, "prune", &[], Some(&stats), observer.as_ref());
    }
    Ok(stats)
}

/// One source's line in the `apply-retention` report.
#[derive(Debug, Serialize)]
pub struct SourceRetention {
    /// Source name.
    pub source: String,
    /// The policy in one line; `None` when the source has none (all its snapshots are kept).
    pub policy: Option<String>,
    /// Snapshots kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<usize>,
    /// Snapshots removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<usize>,
    /// Point-in-time sources: archived WAL files removed (older than the oldest kept base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_removed: Option<usize>,
}

/// What `apply-retention` did.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// Only reported.
    pub dry_run: bool,
    /// Per source.
    pub sources: Vec<SourceRetention>,
    /// Keep or remove, per snapshot.
    pub snapshots: Vec<Decision>,
    /// The prune after it.
    pub prune: Option<PruneStats>,
    /// S3 Object Lock extension after it.
    pub object_lock: Option<ExtendReport>,
}

/// `apply-retention`: each config source's policy, then prune (unless `prune` is `None`), then
/// extend S3 object locks.
pub fn apply(
    session: &Session,
    dry_run: bool,
    prune: Option<PruneSettings>,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Applied> {
    let Some(cfg) = session.config()? else {
        return Err(ServiceError::msg(
            "apply-retention needs a config file with retention policies (see --config); use `forget --keep-…` without one",
        ));
    };
    let repo = session.open()?;
    if !dry_run {
        session.refuse_if_append_only(&repo, "apply-retention")?;
    }
    let _lock = session.lock(&repo, !dry_run)?;
    if dry_run {
        return apply_locked(session, &repo, &cfg, true, prune, interrupt, observer);
    }
    let run = crate::runs::begin(&repo, session, RunKind::ApplyRetention, None, observer.as_ref());
    let result = apply_locked(session, &repo, &cfg, false, prune, interrupt, observer);
    match &result {
        Ok(a) => {
            let mut run = run;
            run.bytes = a.prune.as_ref().map(|p| p.bytes_freed());
            let removed = a.snapshots.iter().filter(|d| !d.keep).count();
            run.say("info", format!("removed {removed} snapshots"));
            crate::runs::end(&repo, run, RunOutcome::Ok, None, observer.as_ref());
        }
        Err(e) => {
            crate::runs::end(&repo, run, RunOutcome::Failed, Some(one_line(e)), observer.as_ref());
        }
    }
    result
}

fn apply_locked(
    session: &Session,
    repo: &Repository,
    cfg: &crate::config::Config,
    dry_run: bool,
    prune: Option<PruneSettings>,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Applied> {
    let (all, bad) = snapshots::list(repo)?;
    warn_unreadable(&bad, observer.as_ref());
    let mut report = Vec::new();
    let mut decisions = Vec::new();
    for src in cfg.sources() {
        let Some(policy) = &src.retention else {
            report.push(SourceRetention {
                source: src.name.clone(),
                policy: None,
                kept: None,
                removed: None,
                wal_removed: None,
            });
            continue;
        };
        let mine: Vec<SnapshotEntry> =
            all.iter().filter(|s| s.snapshot.source.as_ref().is_some_and(|i| i.name == src.name)).cloned().collect();
        let d = retention::apply(&mine, policy)?;
        report.push(SourceRetention {
            source: src.name.clone(),
            policy: Some(policy.describe()),
            kept: Some(d.iter().filter(|d| d.keep).count()),
            removed: Some(d.iter().filter(|d| !d.keep).count()),
            wal_removed: None,
        });
        decisions.extend(d);
    }
    remove(repo, &decisions, dry_run)?;
    for r in report.iter_mut() {
        r.wal_removed = prune_wal(repo, &r.source, &all, &decisions, dry_run)?;
    }
    let stats = match prune {
        Some(p) => Some(lifeboat_repository::prune::prune(repo, &prune_options(p, interrupt))?),
        None => None,
    };
    if !dry_run {
        audit_forget(repo, "apply-retention", &decisions, stats.as_ref(), observer.as_ref());
    }
    let locks = if dry_run { None } else { crate::storage::extend_after_retention(session)? };
    Ok(Applied { dry_run, sources: report, snapshots: decisions, prune: stats, object_lock: locks })
}

/// A point-in-time source's archived WAL older than its oldest kept base backup (no kept base
/// can need it): removed, or counted on a dry run. `None` for sources without archived WAL or
/// without a kept base (then nothing is removed: WAL without a base waits for the first one).
fn prune_wal(
    repo: &Repository,
    source: &str,
    all: &[SnapshotEntry],
    decisions: &[lifeboat_ops::retention::Decision],
    dry_run: bool,
) -> Result<Option<usize>> {
    let removed: std::collections::HashSet<_> = decisions.iter().filter(|d| !d.keep).map(|d| d.id).collect();
    let oldest_start = all
        .iter()
        .filter(|s| !removed.contains(&s.id))
        .filter_map(|s| s.snapshot.source.as_ref().filter(|i| i.name == source))
        .filter_map(|i| i.manifest.as_ref())
        .filter(|m| lifeboat_sources::postgres::pitr::is_base(m))
        .filter_map(|m| m.get("start_wal").and_then(|w| w.as_str()).map(String::from))
        .filter(|w| w.len() == 24)
        .min_by(|a, b| a[8..].cmp(&b[8..]));
    let Some(start) = oldest_start else { return prune_segments(repo, source, all, &removed, dry_run) };
    let names: Vec<String> = lifeboat_ops::wal::list(repo, source)?.into_iter().map(|(n, _)| n).collect();
    let old = lifeboat_ops::wal::prunable(&names, &start);
    if !dry_run && !old.is_empty() {
        lifeboat_ops::wal::remove(repo, source, &old)?;
    }
    Ok(Some(old.len()))
}

/// A continuously replicated sqlite source's segments of generations older than the oldest
/// kept base (no kept base can replay them): removed, or counted on a dry run. A kept base's
/// own generation, and every later one, stays whole. `None` without a kept base.
fn prune_segments(
    repo: &Repository,
    source: &str,
    all: &[SnapshotEntry],
    removed: &std::collections::HashSet<lifeboat_format::Id>,
    dry_run: bool,
) -> Result<Option<usize>> {
    let kept: Vec<SnapshotEntry> = all.iter().filter(|s| !removed.contains(&s.id)).cloned().collect();
    let Some((_, oldest)) = crate::replicate::bases(&kept, source).into_iter().next() else { return Ok(None) };
    let old: Vec<_> =
        lifeboat_ops::replica::list(repo, source)?.into_iter().filter(|s| s.generation < oldest.generation).collect();
    if !dry_run && !old.is_empty() {
        lifeboat_ops::replica::remove(repo, source, &old)?;
    }
    Ok(Some(old.len()))
}

/// Record an audit event; a failure to record is a warning and does not undo the operation.
pub fn audit(repo: &Repository, action: &str, details: serde_json::Value, observer: &Observer) {
    crate::audit::record(repo, None, lifeboat_ops::audit::Event::new(action, details), observer);
}

/// Record what a forget/prune removed (snapshot ids and bytes, never contents).
fn audit_forget(repo: &Repository, action: &str, decisions: &[Decision], stats: Option<&PruneStats>, o: &Observer) {
    let removed: Vec<String> = decisions.iter().filter(|d| !d.keep).map(|d| d.id.to_hex()).collect();
    if removed.is_empty() && stats.is_none_or(|s| s.bytes_freed() == 0) {
        return;
    }
    let details = serde_json::json!({
        "removed_snapshots": removed,
        "bytes_freed": stats.map(|s| s.bytes_freed()),
        "packs_deleted": stats.map(|s| s.packs_unused + s.packs_unindexed + s.packs_repacked),
    });
    audit(repo, action, details, o);
}

/// `append-only [on|off]`: show or set the repository's append-only mode.
pub fn append_only(
    session: &Session,
    state: Option<bool>,
    observer: &Observer,
) -> Result<lifeboat_repository::settings::RepoSettings> {
    use lifeboat_repository::settings;
    let repo = session.open()?;
    let mut s = settings::load(&repo)?;
    if let Some(on) = state {
        let _lock = session.lock(&repo, true)?;
        s.append_only = on;
        s = settings::save(&repo, s)?;
        let word = if on { "on" } else { "off" };
        audit(&repo, &format!("append-only {word}"), serde_json::json!({}), observer);
    }
    Ok(s)
}

/// Audit records that cannot be read: (name, why).
pub type Unreadable = Vec<(String, String)>;

/// The audit log since a time (`30d`, a date), and the records that cannot be read.
pub fn audit_log(session: &Session, since: Option<&str>) -> Result<(Vec<lifeboat_ops::audit::Event>, Unreadable)> {
    let repo = session.open()?;
    let since = since
        .map(|t| lifeboat_ops::duration::parse_time(t, chrono::Utc::now()))
        .transpose()
        .map_err(|e| ServiceError::usage(format!("--since: {e}")))?;
    let (events, bad) = lifeboat_ops::audit::list(&repo, since)?;
    Ok((events, bad.into_iter().map(|(n, e)| (n, e.to_string())).collect()))
}

/// What a prune did (or would do), in lines for people.
pub fn prune_lines(s: &PruneStats) -> Vec<String> {
    let mut out = Vec::new();
    let would = if s.dry_run { "would " } else { "" };
    out.push(format!(
        "{}, {}; {} in use ({}), {} unused",
        crate::human::count(s.snapshots, "snapshot"),
        crate::human::count(s.trees, "tree"),
        crate::human::count(s.used_blobs, "blob"),
        crate::human::size(s.used_bytes),
        s.unused_blobs
    ));
    out.push(format!(
        "{would}delete {} unused packs ({}) and {} packs no index lists ({})",
        s.packs_unused,
        crate::human::size(s.bytes_unused),
        s.packs_unindexed,
        crate::human::size(s.bytes_unindexed)
    ));
    out.push(format!(
        "{would}repack {} packs ({}), copying {} blobs",
        s.packs_repacked,
        crate::human::size(s.bytes_repacked),
        s.blobs_copied
    ));
    if s.temporary_removed + s.temporary_kept > 0 {
        out.push(format!(
            "{would}remove {} temporary files of interrupted writes ({}); {} kept (another process holds a lock)",
            s.temporary_removed,
            crate::human::size(s.temporary_bytes_removed),
            s.temporary_kept
        ));
    }
    if s.packs_partly_used_kept > 0 {
        out.push(format!(
            "keep {} partly used packs as they are ({} unused in them, above the repack threshold)",
            s.packs_partly_used_kept,
            crate::human::size(s.bytes_unused_kept)
        ));
    }
    out.push(format!(
        "{}: {} in {} packs → {} in {} packs ({} {})",
        if s.dry_run { "repository would go" } else { "repository" },
        crate::human::size(s.bytes_before),
        s.packs_before,
        crate::human::size(s.bytes_after),
        s.packs_after,
        crate::human::size(s.bytes_freed()),
        if s.dry_run { "to free" } else { "freed" }
    ));
    out
}
