//! `lifeboat forget`, `prune`, `apply-retention`, `append-only` and `audit`.

use anyhow::Result;
use chrono::Local;
use lifeboat_ops::retention::{Decision, Policy};
use lifeboat_service::retention::{self, ForgetRequest, PruneSettings};

use super::Ctx;
use crate::args::{ApplyRetentionArgs, AuditArgs, ForgetArgs, KeepRules, PruneArgs, PruneOpts};
use crate::exit;
use crate::output::{self, Progress};

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

fn settings(o: &PruneOpts, dry_run: bool) -> PruneSettings {
    PruneSettings { dry_run, repack_below: f64::from(o.repack_below) / 100.0 }
}

/// `lifeboat forget`.
pub fn forget(c: &Ctx, a: &ForgetArgs) -> Result<i32> {
    let req = ForgetRequest {
        snapshots: a.snapshots.clone(),
        policy: policy_of(&a.keep),
        filter: super::filter(&a.filter),
        dry_run: a.dry_run,
        prune: a.prune.then(|| settings(&a.prune_opts, a.dry_run)),
    };
    let progress = Progress::new(c.g);
    let f = retention::forget(&c.session, &req, &c.interrupt, progress.observer())?;
    if c.g.json {
        output::json(&f)?;
    } else if !c.g.quiet {
        print_decisions(&f.snapshots, a.dry_run);
        if let Some(s) = &f.prune {
            for l in lifeboat_service::retention::prune_lines(s) {
                println!("{l}");
            }
        }
    }
    Ok(exit::OK)
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
    println!("{verb} {removed} of {}", output::count(decisions.len(), "snapshot"));
}

/// `lifeboat prune`.
pub fn prune(c: &Ctx, a: &PruneArgs) -> Result<i32> {
    let progress = Progress::new(c.g);
    let stats = retention::prune(&c.session, settings(&a.opts, a.dry_run), &c.interrupt, progress.observer())?;
    if c.g.json {
        output::json(&stats)?;
    } else if !c.g.quiet {
        for l in retention::prune_lines(&stats) {
            println!("{l}");
        }
    }
    Ok(exit::OK)
}

/// `lifeboat apply-retention`: each config source's policy, then prune.
pub fn apply_retention(c: &Ctx, a: &ApplyRetentionArgs) -> Result<i32> {
    let prune = (!a.no_prune).then(|| settings(&a.opts, a.dry_run));
    let progress = Progress::new(c.g);
    let r = retention::apply(&c.session, a.dry_run, prune, &c.interrupt, progress.observer())?;
    if c.g.json {
        output::json(&r)?;
        return Ok(exit::OK);
    }
    if !c.g.quiet {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        for s in &r.sources {
            match (&s.policy, s.kept, s.removed) {
                (Some(p), Some(kept), Some(removed)) => println!("{}: {p} → keep {kept}, {verb} {removed}", s.source),
                _ => println!("{}: no retention policy, all snapshots kept", s.source),
            }
            if let Some(n) = s.wal_removed {
                println!("{}: {verb} {n} archived WAL files older than the oldest kept base backup", s.source);
            }
        }
        if c.g.verbose > 0 {
            print_decisions(&r.snapshots, a.dry_run);
        }
        if let Some(s) = &r.prune {
            for l in lifeboat_service::retention::prune_lines(s) {
                println!("{l}");
            }
        }
        if let Some(l) = &r.object_lock {
            println!("{}", output::extend_line(l));
        }
    }
    Ok(exit::OK)
}

/// `lifeboat append-only [on|off]`.
pub fn append_only(c: &Ctx, state: Option<&str>) -> Result<i32> {
    let progress = Progress::new(c.g);
    let s = retention::append_only(&c.session, state.map(|s| s == "on"), progress.observer().as_ref())?;
    if c.g.json {
        output::json(&s)?;
    } else if !c.g.quiet {
        let by = match (&s.changed_by, &s.changed_at) {
            (Some(b), Some(t)) => format!(" (set by {b} at {})", t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S")),
            _ => String::new(),
        };
        println!("append-only: {}{by}", if s.append_only { "on" } else { "off" });
    }
    Ok(exit::OK)
}

/// `lifeboat audit` and `audit verify`.
pub fn audit_log(c: &Ctx, a: &AuditArgs) -> Result<i32> {
    if let Some(crate::args::AuditCommand::Verify { public_key }) = &a.action {
        let v = lifeboat_service::audit::verify(&c.session, public_key.as_deref())?;
        output::show(c.g, &v, || print!("{}", v.text()))?;
        return Ok(if v.ok() { exit::OK } else { exit::FAILURE });
    }
    let (events, bad) = retention::audit_log(&c.session, a.since.as_deref())?;
    for (name, e) in &bad {
        eprintln!("lifeboat: audit record {name} cannot be read (tampered or damaged?): {e}");
    }
    output::show(c.g, &events, || {
        events.iter().for_each(|e| println!("{}", lifeboat_service::audit::line(e)));
        println!("{}", output::count(events.len(), "event"));
    })?;
    Ok(if bad.is_empty() { exit::OK } else { exit::FAILURE })
}
