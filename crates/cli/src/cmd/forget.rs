//! `lifeboat forget`, `lifeboat prune` and `lifeboat apply-retention`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};
use chrono::Local;
use lifeboat_backend::FileType;
use lifeboat_ops::retention::{self, Decision, Policy};
use lifeboat_repository::prune::{PruneOptions, PruneStats};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::Repository;

use crate::args::{ApplyRetentionArgs, ForgetArgs, Global, KeepRules, PruneArgs, PruneOpts};
use crate::{context, exit, output};

/// The policy given by `--keep-*` flags.
fn policy_of(k: &KeepRules) -> Policy {
    Policy {
        last: k.keep_last,
        hourly: k.keep_hourly,
        daily: k.keep_daily,
        weekly: k.keep_weekly,
        monthly: k.keep_monthly,
        yearly: k.keep_yearly,
        within: k.keep_within.clone(),
        keep_tags: k.keep_tag.clone(),
    }
}

fn prune_options(o: &PruneOpts, dry_run: bool, interrupt: &Arc<AtomicBool>) -> PruneOptions {
    PruneOptions {
        dry_run,
        repack_below: f64::from(o.repack_below) / 100.0,
        interrupt: Some(interrupt.clone()),
        ..PruneOptions::default()
    }
}

/// `lifeboat forget`.
pub fn forget(g: &Global, a: &ForgetArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let policy = policy_of(&a.keep);
    if !a.snapshots.is_empty() && !policy.is_empty() {
        bail!("give snapshot ids or --keep-* rules, not both");
    }
    if a.snapshots.is_empty() {
        policy.validate()?;
    }
    let repo = context::open(g)?;
    if !a.dry_run {
        context::refuse_if_append_only(g, &repo, "forget")?;
    }
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let filter = crate::cmd::filter(&a.filter)?;
    let decisions = if a.snapshots.is_empty() {
        let (all, bad) = snapshots::list(&repo)?;
        warn_unreadable(&bad);
        let chosen: Vec<SnapshotEntry> = all.into_iter().filter(|s| filter.matches(&s.snapshot)).collect();
        retention::apply(&chosen, &policy)?
    } else {
        by_id(&repo, &a.snapshots, &filter)?
    };
    let removed = remove(&repo, &decisions, a.dry_run)?;
    let stats =
        if a.prune { Some(run_prune(&repo, prune_options(&a.prune_opts, a.dry_run, &interrupt))?) } else { None };
    if !a.dry_run {
        audit_forget(&repo, "forget", &decisions, stats.as_ref());
    }
    if g.json {
        output::json(
            &serde_json::json!({ "dry_run": a.dry_run, "snapshots": decisions, "removed": removed, "prune": stats }),
        )?;
    } else if !g.quiet {
        print_decisions(&decisions, a.dry_run);
        if let Some(s) = &stats {
            print_prune(s);
        }
    }
    Ok(exit::OK)
}

/// Decisions for snapshots named on the command line: each is removed.
fn by_id(repo: &Repository, ids: &[String], filter: &snapshots::Filter) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> = Vec::new();
    for r in ids {
        let s = snapshots::find(repo, r, filter)?;
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

fn warn_unreadable(bad: &snapshots::Unreadable) {
    for (name, e) in bad {
        eprintln!("lifeboat: skipping snapshot {} (kept): {e}", name.get(..8).unwrap_or(name));
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

fn print_decisions(decisions: &[Decision], dry_run: bool) {
    let mut group = None;
    for d in decisions {
        if group != Some(&d.group) {
            println!("{}:", d.group);
            group = Some(&d.group);
        }
        let verdict = if d.keep { format!("keep ({})", d.reasons.join(", ")) } else { "remove".to_string() };
        println!("  {}  {}  {verdict}", d.id.short(), d.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"));
    }
    let removed = decisions.iter().filter(|d| !d.keep).count();
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {removed} of {} snapshots", decisions.len());
}

/// Run prune under the caller's exclusive lock.
fn run_prune(repo: &Repository, opts: PruneOptions) -> Result<PruneStats> {
    Ok(lifeboat_repository::prune::prune(repo, &opts)?)
}

/// `lifeboat prune`.
pub fn prune(g: &Global, a: &PruneArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let repo = context::open(g)?;
    if !a.dry_run {
        context::refuse_if_append_only(g, &repo, "prune")?;
    }
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let stats = run_prune(&repo, prune_options(&a.opts, a.dry_run, &interrupt))?;
    if !a.dry_run {
        audit_forget(&repo, "prune", &[], Some(&stats));
    }
    if g.json {
        output::json(&stats)?;
    } else if !g.quiet {
        print_prune(&stats);
    }
    Ok(exit::OK)
}

fn print_prune(s: &PruneStats) {
    let sz = output::size;
    let would = if s.dry_run { "would " } else { "" };
    println!(
        "{} snapshots, {} trees; {} blobs in use ({}), {} unused",
        s.snapshots,
        s.trees,
        s.used_blobs,
        sz(s.used_bytes),
        s.unused_blobs
    );
    println!(
        "{would}delete {} unused packs ({}) and {} packs no index lists ({})",
        s.packs_unused,
        sz(s.bytes_unused),
        s.packs_unindexed,
        sz(s.bytes_unindexed)
    );
    println!("{would}repack {} packs ({}), copying {} blobs", s.packs_repacked, sz(s.bytes_repacked), s.blobs_copied);
    if s.temporary_removed + s.temporary_kept > 0 {
        println!(
            "{would}remove {} temporary files of interrupted writes ({}); {} kept (another process holds a lock)",
            s.temporary_removed,
            sz(s.temporary_bytes_removed),
            s.temporary_kept
        );
    }
    if s.packs_partly_used_kept > 0 {
        println!(
            "keep {} partly used packs as they are ({} unused in them, above the repack threshold)",
            s.packs_partly_used_kept,
            sz(s.bytes_unused_kept)
        );
    }
    println!(
        "{}: {} in {} packs → {} in {} packs ({} {})",
        if s.dry_run { "repository would go" } else { "repository" },
        sz(s.bytes_before),
        s.packs_before,
        sz(s.bytes_after),
        s.packs_after,
        sz(s.bytes_freed()),
        if s.dry_run { "to free" } else { "freed" }
    );
}

/// One source's line in the `apply-retention` report.
#[derive(serde::Serialize)]
struct SourceRetention {
    source: String,
    /// The policy in one line; `None` when the source has none (all its snapshots are kept).
    policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<usize>,
}

/// `lifeboat apply-retention`: each config source's policy, then prune.
pub fn apply_retention(g: &Global, a: &ApplyRetentionArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let Some(cfg) = context::config(g)? else {
        bail!("apply-retention needs a config file with retention policies (see --config); use `forget --keep-…` without one")
    };
    let repo = context::open(g)?;
    if !a.dry_run {
        context::refuse_if_append_only(g, &repo, "apply-retention")?;
    }
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let (all, bad) = snapshots::list(&repo)?;
    warn_unreadable(&bad);
    let mut report = Vec::new();
    let mut decisions = Vec::new();
    for src in cfg.sources() {
        let Some(policy) = src.retention_policy()? else {
            report.push(SourceRetention { source: src.name.clone(), policy: None, kept: None, removed: None });
            continue;
        };
        let mine: Vec<SnapshotEntry> =
            all.iter().filter(|s| s.snapshot.source.as_ref().is_some_and(|i| i.name == src.name)).cloned().collect();
        let d = retention::apply(&mine, &policy)?;
        report.push(SourceRetention {
            source: src.name.clone(),
            policy: Some(policy.describe()),
            kept: Some(d.iter().filter(|d| d.keep).count()),
            removed: Some(d.iter().filter(|d| !d.keep).count()),
        });
        decisions.extend(d);
    }
    remove(&repo, &decisions, a.dry_run)?;
    let stats = if a.no_prune { None } else { Some(run_prune(&repo, prune_options(&a.opts, a.dry_run, &interrupt))?) };
    if !a.dry_run {
        audit_forget(&repo, "apply-retention", &decisions, stats.as_ref());
    }
    let locks = if a.dry_run { None } else { crate::cmd::storage::lock::extend_after_retention(g)? };
    if g.json {
        output::json(&serde_json::json!({
            "dry_run": a.dry_run, "sources": report, "snapshots": decisions, "prune": stats, "object_lock": locks,
        }))?;
        return Ok(exit::OK);
    }
    if !g.quiet {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        for r in &report {
            match (&r.policy, r.kept, r.removed) {
                (Some(p), Some(kept), Some(removed)) => println!("{}: {p} → keep {kept}, {verb} {removed}", r.source),
                _ => println!("{}: no retention policy, all snapshots kept", r.source),
            }
        }
        if g.verbose > 0 {
            print_decisions(&decisions, a.dry_run);
        }
        if let Some(s) = &stats {
            print_prune(s);
        }
        if let Some(r) = &locks {
            println!("{}", crate::cmd::storage::lock::extend_line(r));
        }
    }
    Ok(exit::OK)
}

/// `lifeboat append-only [on|off]`.
pub fn append_only(g: &Global, state: Option<&str>) -> Result<i32> {
    use lifeboat_repository::settings;
    let repo = context::open(g)?;
    let mut s = settings::load(&repo)?;
    if let Some(state) = state {
        let _lock = context::lock(g, &repo, true)?;
        s.append_only = state == "on";
        s = settings::save(&repo, s)?;
        super::key::audit(&repo, &format!("append-only {state}"), serde_json::json!({}));
    }
    if g.json {
        output::json(&s)?;
    } else if !g.quiet {
        let by = match (&s.changed_by, &s.changed_at) {
            (Some(b), Some(t)) => format!(" (set by {b} at {})", t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S")),
            _ => String::new(),
        };
        println!("append-only: {}{by}", if s.append_only { "on" } else { "off" });
    }
    Ok(exit::OK)
}

/// Record what a forget/prune removed (snapshot ids and bytes, never contents).
fn audit_forget(repo: &Repository, action: &str, decisions: &[Decision], stats: Option<&PruneStats>) {
    let removed: Vec<String> = decisions.iter().filter(|d| !d.keep).map(|d| d.id.to_hex()).collect();
    if removed.is_empty() && stats.is_none_or(|s| s.bytes_freed() == 0) {
        return;
    }
    let details = serde_json::json!({
        "removed_snapshots": removed,
        "bytes_freed": stats.map(|s| s.bytes_freed()),
        "packs_deleted": stats.map(|s| s.packs_unused + s.packs_unindexed + s.packs_repacked),
    });
    super::key::audit(repo, action, details);
}

/// `lifeboat audit`.
pub fn audit_log(g: &Global, a: &crate::args::AuditArgs) -> Result<i32> {
    let repo = context::open(g)?;
    let since = a.since.as_deref().map(|t| lifeboat_ops::duration::parse_time(t, chrono::Utc::now())).transpose()?;
    let (events, bad) = lifeboat_ops::audit::list(&repo, since)?;
    for (name, e) in &bad {
        eprintln!("lifeboat: audit record {name} cannot be read (tampered or damaged?): {e}");
    }
    if g.json {
        output::json(&events)?;
    } else if !g.quiet {
        for e in &events {
            println!(
                "{}  {:<24} {:<22} {}",
                e.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
                format!("{}@{}", e.user, e.host),
                e.action,
                e.details
            );
        }
        println!("{} events", events.len());
    }
    Ok(if bad.is_empty() { exit::OK } else { exit::FAILURE })
}
