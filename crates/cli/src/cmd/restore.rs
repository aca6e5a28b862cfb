//! `lifeboat restore SNAPSHOT --target DIR`: file trees here; database-like kinds in
//! [`crate::cmd::sources`]. Every kind builds a [`plan::Plan`] and passes [`guard::gate`] first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use lifeboat_repository::archiver::Progress;
use lifeboat_repository::restorer::{restore, RestoreOptions};
use lifeboat_repository::snapshots;

use crate::args::{Global, RestoreArgs};
use crate::{context, exit, output};

pub mod guard;
pub mod plan;

pub fn run(g: &Global, a: &RestoreArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let repo = context::open(g)?;
    let _lock = context::lock_read_only(g, &repo)?;
    let snap = snapshots::find(&repo, &a.snapshot, &crate::cmd::filter(&a.filter)?)?;
    if let Some(code) = crate::cmd::sources::restore(g, a, &repo, &snap)? {
        return Ok(code);
    }
    let include: Vec<String> = a.include.iter().map(|p| format!("/{}", p.trim_matches('/'))).collect();
    let mut opts =
        RestoreOptions { include, overwrite: a.overwrite, dry_run: true, verify: a.verify, ..Default::default() };
    // Plan first: it gives the totals for the progress bar and the dry-run output.
    let plan = restore(&repo, &snap.snapshot.tree, &a.target, &opts)?;
    let mut steps = plan::files(&snap, &a.target, &opts.include, &plan, a.overwrite);
    steps.verify = a.verify.then(|| "read every restored file back and compare it with the snapshot".to_string());
    if let Some(code) = guard::gate(g, a, &repo, steps)? {
        return Ok(code);
    }
    let progress = Arc::new(Progress::default());
    let pb = output::bar(
        output::interactive(g.json, g.quiet),
        plan.bytes.max(1),
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    );
    let ticker = {
        let (p, pb) = (progress.clone(), pb.clone());
        output::Ticker::start(std::time::Duration::from_millis(150), move || {
            pb.set_position(p.bytes.load(Ordering::Relaxed));
            pb.set_message(format!("{} files", p.files.load(Ordering::Relaxed)));
        })
    };
    opts.dry_run = false;
    opts.interrupt = Some(interrupt);
    opts.progress = Some(progress);
    let start = Instant::now();
    let r = restore(&repo, &snap.snapshot.tree, &a.target, &opts);
    ticker.stop();
    pb.finish_and_clear();
    let stats = r?;
    for w in &stats.warnings {
        eprintln!("lifeboat: warning: {w}");
    }
    for f in &stats.failed {
        eprintln!("lifeboat: not restored (damaged): {f}");
    }
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "target": a.target, "stats": stats,
            "duration_seconds": start.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files ({}), {} directories in {}{}",
            snap.id.short(),
            a.target.display(),
            stats.files.saturating_sub(stats.files_failed),
            output::size(stats.bytes),
            stats.dirs,
            output::duration(start.elapsed()),
            if a.verify { format!("; {} files verified", stats.verified) } else { String::new() }
        );
        if stats.files_failed > 0 {
            println!("{} files not restored: their data is damaged (named above; exit code 1)", stats.files_failed);
        }
    }
    Ok(if stats.failed.is_empty() { exit::OK } else { exit::FAILURE })
}
