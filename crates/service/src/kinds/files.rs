//! `kind = "files"`: directories and files, and plain `backup PATH…` snapshots. Restores into a
//! directory (files land at TARGET/<absolute path>); the restore test restores into a scratch
//! directory and reads every file back against the tree.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lifeboat_ops::guard::Location;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::restorer::{self, RestoreOptions};
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::files::{walk, FilesOptions};
use serde::Deserialize;
use serde_json::json;

use super::{
    Archive, Found, Generated, PreparedRestore, RestoreRequest, Restored, RunContext, Settings, Source, TargetCheck,
};
use crate::error::Result;
use crate::human::{duration, size};
use crate::plan::{self, resolve};
use crate::progress::{Event, Ticker};
use crate::vars::substitute;

/// Settings of a files source.
#[derive(Debug, Default, Deserialize)]
pub struct Files {
    /// Paths to back up.
    #[serde(default)]
    pub paths: Vec<String>,
    /// A single path (shorthand for `paths = [path]`).
    pub path: Option<String>,
    /// Exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Stay on one file system.
    #[serde(default)]
    pub one_file_system: bool,
}

impl Settings for Files {
    const NAME: &'static str = "files";
}

impl Files {
    fn all_paths(&self, name: &str) -> Result<Vec<String>> {
        let what = format!("source {name}");
        self.paths.iter().chain(self.path.iter()).map(|p| substitute(p, &what)).collect()
    }
}

impl Source for Files {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        if self.paths.is_empty() && self.path.is_none() {
            return Err("a files source needs `paths = [...]` (or `path`)".into());
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let paths: Vec<PathBuf> = self.all_paths(name)?.into_iter().map(Into::into).collect();
        let opts = FilesOptions { paths, excludes: self.exclude.clone(), one_file_system: self.one_file_system };
        let (paths, walker) = walk(&opts)?;
        let scan = Some(FilesOptions { paths: opts.paths.clone(), excludes: opts.excludes.clone(), ..opts });
        archive(Generated {
            manifest: Some(json!({ "paths": paths, "excludes": self.exclude })),
            paths,
            entries: Box::new(walker.read_ahead()),
            finish: None,
            excludes: self.exclude.clone(),
            chunk_sizes: None,
            scan,
        })
    }

    fn prepare_restore<'a>(
        &'a self,
        _name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let include: Vec<String> = req.include.iter().map(|p| format!("/{}", p.trim_matches('/'))).collect();
        let opts = RestoreOptions {
            include: include.clone(),
            overwrite: req.overwrite,
            dry_run: true,
            verify: req.verify,
            ..Default::default()
        };
        // The engine's dry run gives the plan and the totals for progress.
        let stats = restorer::restore(repo, &snap.snapshot.tree, &req.target, &opts)?;
        let mut plan = plan::files(snap, Self::NAME, &req.target, &include, &stats, req.overwrite);
        plan.verify = req.verify.then(|| "read every restored file back and compare it with the snapshot".to_string());
        let total = plan.bytes;
        let run = move |ctx: &RunContext| -> Result<Restored> {
            let counters = std::sync::Arc::new(lifeboat_repository::archiver::Progress::default());
            (ctx.observer)(&Event::Totals { files: stats.files, bytes: total });
            let ticker = Ticker::counters(counters.clone(), ctx.observer.clone());
            let opts =
                RestoreOptions { dry_run: false, interrupt: ctx.interrupt.clone(), progress: Some(counters), ..opts };
            let start = Instant::now();
            let r = restorer::restore(repo, &snap.snapshot.tree, &req.target, &opts);
            ticker.stop();
            let stats = r?;
            let mut lines = vec![format!(
                "restored snapshot {} to {}: {} files ({}), {} directories in {}{}",
                snap.id.short(),
                req.target.display(),
                stats.files.saturating_sub(stats.files_failed),
                size(stats.bytes),
                stats.dirs,
                duration(start.elapsed()),
                if req.verify { format!("; {} files verified", stats.verified) } else { String::new() }
            )];
            if stats.files_failed > 0 {
                lines.push(format!(
                    "{} files not restored: their data is damaged (named above; exit code 1)",
                    stats.files_failed
                ));
            }
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "target": req.target, "stats": stats,
                    "duration_seconds": start.elapsed().as_secs_f64(),
                }),
                lines,
                warnings: stats.warnings.clone(),
                mismatches: Vec::new(),
                what: "files",
                failed: stats.failed.iter().map(ToString::to_string).collect(),
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    fn restore_test(
        &self,
        _name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        restore_files(repo, snap, tmp, check).map(|(t, _)| t)
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        // Files land at TARGET/<absolute path>: `/` puts them back where they were.
        Ok(Some(root.map(|r| super::under(r, name)).unwrap_or_else(|| "/".into())))
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        let paths = self.all_paths(name)?.iter().map(|p| resolve(Path::new(p))).collect();
        Ok(Some(Location::Paths(paths)))
    }
}

/// Restore a file snapshot into a scratch directory with every file read back and hash-checked
/// against the tree (sizes included: a longer or shorter file fails); also returns the content
/// of the only file when there is exactly one (a command's output).
pub(crate) fn restore_files(
    repo: &Repository,
    snap: &SnapshotEntry,
    tmp: Option<&Path>,
    check: &TargetCheck<'_>,
) -> std::result::Result<(lifeboat_ops::verify::RestoreTest, Vec<u8>), String> {
    let dir = super::scratch_dir(tmp)?;
    let target = dir.path().join("restore");
    let opts = RestoreOptions { verify: true, ..Default::default() };
    let stats = restorer::restore(repo, &snap.snapshot.tree, &target, &opts).map_err(|e| format!("restore: {e}"))?;
    let mut problems: Vec<String> =
        stats.failed.iter().map(|f| format!("not restored, its data is damaged: {f}")).collect();
    if stats.verified != stats.files {
        problems.push(format!("{} of {} restored files were verified", stats.verified, stats.files));
    }
    let details = json!({"files": stats.files, "dirs": stats.dirs, "bytes": stats.bytes, "verified": stats.verified, "warnings": stats.warnings});
    let only = only_file(&target);
    let mut test = super::tested(dir.path().display().to_string(), problems, details)?;
    test.verify_command = check(&target.display().to_string());
    Ok((test, only))
}

/// The content of the only file below `dir`, if there is exactly one.
fn only_file(dir: &Path) -> Vec<u8> {
    let mut files = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file());
    match (files.next(), files.next()) {
        (Some(p), None) => std::fs::read(p).unwrap_or_default(),
        _ => Vec::new(),
    }
}
