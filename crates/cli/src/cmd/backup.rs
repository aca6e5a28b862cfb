//! `lifeboat backup PATH…`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use lifeboat_repository::archiver::{backup, BackupOptions, Progress};
use lifeboat_repository::{snapshots, util};
use lifeboat_sources::files::{walk, FilesOptions};

use crate::args::{BackupArgs, Global};
use crate::{context, exit, output};

pub fn run(g: &Global, a: &BackupArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    if g.as_of.is_some() {
        anyhow::bail!("--as-of gives a read-only view of the past: back up into the live repository (without --as-of)");
    }
    // Source mode: --all, or every argument names a source of the config file.
    if let Some(cfg) = context::config(g)? {
        let named: Vec<&str> = a.paths.iter().filter_map(|p| p.to_str()).filter(|p| cfg.find(p).is_ok()).collect();
        if a.all || (!a.paths.is_empty() && named.len() == a.paths.len()) {
            return crate::cmd::sources::backup(g, a, &cfg, interrupt);
        }
        if !named.is_empty() {
            anyhow::bail!("do not mix source names ({}) and paths in one backup", named.join(", "));
        }
    } else if a.all {
        anyhow::bail!("--all needs a config file: create {} or pass --config FILE", context::DEFAULT_CONFIG);
    }
    let repo = context::open(g)?;
    let _lock = context::lock(g, &repo, false)?;
    let opts =
        FilesOptions { paths: a.paths.clone(), excludes: a.excludes.clone(), one_file_system: a.one_file_system };
    let (paths, walker) = walk(&opts)?;
    let host = a.host.clone().unwrap_or_else(util::hostname);
    let parent = match (&a.parent, a.force) {
        (_, true) => None,
        (Some(p), false) => Some(snapshots::find(&repo, p, &Default::default())?.id),
        (None, false) => snapshots::find_parent(&repo, &host, &paths, None)?,
    };
    let progress = Arc::new(Progress::default());
    let pb = output::bar(output::interactive(g.json, g.quiet), 0, "{spinner} {elapsed} {msg}");
    let ticker = {
        let (progress, pb) = (progress.clone(), pb.clone());
        output::Ticker::start(std::time::Duration::from_millis(150), move || {
            pb.set_message(format!(
                "{} files, {} read, {} new",
                progress.files.load(Ordering::Relaxed),
                output::size(progress.bytes.load(Ordering::Relaxed)),
                output::size(progress.bytes_new.load(Ordering::Relaxed))
            ));
        })
    };
    let bopts = BackupOptions {
        paths: paths.clone(),
        tags: a.tags.clone(),
        hostname: Some(host),
        excludes: a.excludes.clone(),
        parent,
        interrupt: Some(interrupt),
        progress: Some(progress),
        ..Default::default()
    };
    let result = backup(&repo, walker, &bopts);
    ticker.stop();
    pb.finish_and_clear();
    let stats = result?;
    let s = &stats.summary;
    if g.json {
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
        if !g.quiet {
            if let Some(p) = stats.snapshot.parent {
                println!("using parent snapshot {}", p.short());
            }
            println!("files: {} new, {} changed, {} unmodified", s.files_new, s.files_changed, s.files_unmodified);
            println!("dirs:  {} new, {} changed, {} unmodified", s.dirs_new, s.dirs_changed, s.dirs_unmodified);
            println!(
                "added to the repository: {} ({} stored)",
                output::size(s.data_added),
                output::size(s.data_added_packed)
            );
            println!(
                "processed {} files, {} in {}",
                s.total_files_processed,
                output::size(s.total_bytes_processed),
                output::duration(stats.duration)
            );
            println!("snapshot {} saved", stats.snapshot_id.short());
        }
    }
    if !stats.errors.is_empty() {
        eprintln!(
            "lifeboat: warning: {} entries could not be read; the snapshot does not contain them",
            stats.errors.len()
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::OK)
}
