//! `lifeboat backup PATH…` and `lifeboat backup --all|SOURCE…`.

use anyhow::{bail, Result};
use lifeboat_repository::archiver::BackupStats;
use lifeboat_service::backup::{self, PathsRequest, SourcesReport, SourcesRequest};

use super::Ctx;
use crate::args::BackupArgs;
use crate::output::{self, duration, size, Progress};
use crate::{exit, DEFAULT_CONFIG};

pub fn run(c: &Ctx, a: &BackupArgs) -> Result<i32> {
    if c.g.as_of.is_some() {
        bail!("--as-of gives a read-only view of the past: back up into the live repository (without --as-of)");
    }
    // Source mode: --all, or every argument names a source of the config file.
    if let Some(cfg) = c.session.config()? {
        let named: Vec<String> =
            a.paths.iter().filter_map(|p| p.to_str()).filter(|p| cfg.find(p).is_ok()).map(String::from).collect();
        if a.all || (!a.paths.is_empty() && named.len() == a.paths.len()) {
            let selected = cfg.select(&named, a.all)?;
            let progress = Progress::new(c.g);
            let req = SourcesRequest { tags: a.tags.clone(), force: a.force };
            let report = backup::sources(&c.session, &cfg, &selected, &req, &c.interrupt, progress.observer())?;
            progress.finish();
            return sources(c, &report);
        }
        if !named.is_empty() {
            bail!("do not mix source names ({}) and paths in one backup", named.join(", "));
        }
    } else if a.all {
        bail!("--all needs a config file: create {DEFAULT_CONFIG} or pass --config FILE");
    }
    let req = PathsRequest {
        paths: a.paths.clone(),
        excludes: a.excludes.clone(),
        one_file_system: a.one_file_system,
        tags: a.tags.clone(),
        host: a.host.clone(),
        parent: a.parent.clone(),
        force: a.force,
    };
    let progress = Progress::new(c.g);
    let result = backup::paths(&c.session, &req, &c.interrupt, progress.observer());
    progress.finish();
    paths(c, &result?)
}

/// Report a backup of config sources; the exit code is the worst outcome.
fn sources(c: &Ctx, report: &SourcesReport) -> Result<i32> {
    let human = !c.g.json && !c.g.quiet;
    for s in &report.sources {
        match &s.result {
            Ok(stats) => {
                for e in &stats.errors {
                    eprintln!("lifeboat: source {}: cannot read {}: {}", s.source, e.path, e.message);
                }
                if human {
                    let x = &stats.summary;
                    println!(
                        "source {} ({}): snapshot {} — {}, {} processed, {} added ({} stored) in {}",
                        s.source,
                        s.kind,
                        stats.snapshot_id.short(),
                        output::count(x.total_files_processed as usize, "file"),
                        size(x.total_bytes_processed),
                        size(x.data_added),
                        size(x.data_added_packed),
                        duration(stats.duration)
                    );
                }
            }
            Err(e) => {
                // The service's message may already name the source: say it once.
                let e = e.strip_prefix(&format!("source {}: ", s.source)).unwrap_or(e);
                eprintln!("lifeboat: source {}: {e} (no snapshot recorded)", s.source);
            }
        }
    }
    for (label, stats) in &report.copies {
        if human {
            output::copy_report(label, stats, false);
        }
    }
    for f in &report.copy_failures {
        eprintln!("lifeboat: copy to {}: {} (the snapshots are kept here)", f.destination, f.error);
    }
    if c.g.json {
        output::json(&report.sources.iter().map(|s| s.to_json()).collect::<Vec<_>>())?;
    } else if human {
        let ok = report.sources.iter().filter(|s| s.result.is_ok()).count();
        let took: f64 = report.sources.iter().map(|s| s.seconds).sum();
        println!(
            "{ok} of {} backed up, {} failed, in {}",
            output::count(report.sources.len(), "source"),
            report.sources.len() - ok,
            duration(std::time::Duration::from_secs_f64(took))
        );
    }
    Ok(if report.failed() {
        exit::FAILURE
    } else if report.partial() {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// Report a backup of paths.
fn paths(c: &Ctx, stats: &BackupStats) -> Result<i32> {
    let s = &stats.summary;
    if c.g.json {
        output::json(&serde_json::json!({
            "snapshot_id": stats.snapshot_id,
            "parent": stats.snapshot.parent,
            "paths": stats.snapshot.paths,
            "tags": stats.snapshot.tags,
            "files_new": s.files_new, "files_changed": s.files_changed, "files_unmodified": s.files_unmodified,
            "dirs_new": s.dirs_new, "dirs_changed": s.dirs_changed, "dirs_unmodified": s.dirs_unmodified,
            "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs,
            "data_added": s.data_added, "data_added_packed": s.data_added_packed,
            "total_files_processed": s.total_files_processed, "total_bytes_processed": s.total_bytes_processed,
            "duration_seconds": stats.duration.as_secs_f64(),
            "errors": stats.errors,
        }))?;
    } else {
        for e in &stats.errors {
            eprintln!("lifeboat: cannot read {}: {}", e.path, e.message);
        }
        if !c.g.quiet {
            if let Some(p) = stats.snapshot.parent {
                println!("using parent snapshot {}", p.short());
            }
            println!("files: {} new, {} changed, {} unmodified", s.files_new, s.files_changed, s.files_unmodified);
            println!("dirs:  {} new, {} changed, {} unmodified", s.dirs_new, s.dirs_changed, s.dirs_unmodified);
            println!("added to the repository: {} ({} stored)", size(s.data_added), size(s.data_added_packed));
            println!(
                "processed {}, {} in {}",
                output::count(s.total_files_processed as usize, "file"),
                size(s.total_bytes_processed),
                duration(stats.duration)
            );
            println!("snapshot {} saved", stats.snapshot_id.short());
        }
    }
    if !stats.errors.is_empty() {
        eprintln!(
            "lifeboat: warning: {} could not be read; the snapshot does not contain them",
            output::count(stats.errors.len(), "entry")
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
