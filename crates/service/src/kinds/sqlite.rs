//! `kind = "sqlite"`: a consistent copy of a live database (`VACUUM INTO`) with per-table
//! row counts. Restores replace the target file atomically after `PRAGMA integrity_check`.

use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::Location;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::sqlite;
use serde::Deserialize;
use serde_json::json;

use super::{
    artifact, manifest_of, rows, Archive, Comparison, Found, Generated, PreparedRestore, RestoreRequest, Restored,
    RunContext, Settings, Source, TargetCheck,
};
use crate::error::{Result, ServiceError};
use crate::human::{count, duration};
use crate::plan::{self, resolve};
use crate::vars::substitute;

/// Settings of a sqlite source.
#[derive(Debug, Default, Deserialize)]
pub struct Sqlite {
    /// The database file.
    pub path: Option<String>,
}

impl Settings for Sqlite {
    const NAME: &'static str = "sqlite";
}

impl Source for Sqlite {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        if self.path.is_none() {
            return Err("a sqlite source needs `path = \"/var/lib/app/db.sqlite\"`".into());
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let path = substitute(self.path.as_deref().unwrap_or_default(), &format!("source {name}"))?;
        // `prepared` owns the temporary copy: it lives until the backup is done.
        let prepared = sqlite::prepare(Path::new(&path))?;
        let manifest = Some(serde_json::to_value(&prepared.manifest)?);
        archive(Generated {
            paths: prepared.paths.clone(),
            entries: Box::new(prepared.entries),
            manifest,
            finish: None,
            excludes: Vec::new(),
            chunk_sizes: Some(sqlite::CHUNK_SIZES),
            scan: None,
        })
    }

    fn prepare_restore<'a>(
        &'a self,
        _name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, sqlite::Manifest) = manifest_of(snap)?;
        let node = artifact(repo, snap, &manifest.file)?;
        let contents = count(manifest.tables.len(), "table");
        let mut plan = plan::file(snap, &req.target, &manifest.file, node.size, &contents, req.overwrite);
        plan.detail("tables", &manifest.tables);
        plan.verify = Some(if req.verify {
            format!(
                "PRAGMA integrity_check and row counts of {} tables against the backup's manifest",
                manifest.tables.len()
            )
        } else {
            "PRAGMA integrity_check before the swap (add --verify to also compare row counts)".to_string()
        });
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            let v = sqlite::restore(repo, &node, &manifest, &req.target, req.overwrite)?;
            let line = format!(
                "restored {} from snapshot {} to {} in {} (integrity_check ok{})",
                manifest.file,
                snap.id.short(),
                req.target.display(),
                duration(started.elapsed()),
                if req.verify {
                    format!(", {} tables' row counts checked", manifest.tables.len())
                } else {
                    String::new()
                }
            );
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": src.name, "target": req.target, "verification": v,
                    "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines: vec![line],
                mismatches: if req.verify { v.mismatches.clone() } else { Vec::new() },
                what: "database",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// Restored to a scratch file (`PRAGMA integrity_check`, then row counts per table).
    fn restore_test(
        &self,
        _name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        let (_, m): (_, sqlite::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let node = artifact(repo, snap, &m.file).map_err(|e| e.to_string())?;
        let dir = super::scratch_dir(tmp)?;
        let file = dir.path().join(&m.file);
        let v = sqlite::restore(repo, &node, &m, &file, false).map_err(|e| e.to_string())?;
        let mut problems = v.mismatches.clone();
        if v.integrity != ["ok"] {
            problems.push(format!("integrity_check: {}", v.integrity.join("; ")));
        }
        let mut t =
            super::tested(file.display().to_string(), problems, json!({"tables": v.tables, "integrity": v.integrity}))?;
        t.verify_command = check(&file.display().to_string());
        Ok(t)
    }

    fn compare(&self, _name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, sqlite::Manifest) = manifest_of(snap)?;
        if !Path::new(target).is_file() {
            return Err(ServiceError::msg(format!("{target}: no such database file")));
        }
        Ok(Comparison { what: "table", rows: rows(&m.tables, &sqlite::counts(Path::new(target))?) })
    }

    fn compares(&self) -> bool {
        true
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        let Some(path) = super::setting(name, &self.path)? else { return Ok(None) };
        Ok(Some(match root {
            Some(r) => {
                let file = Path::new(&path).file_name().map(|f| f.to_string_lossy().into_owned());
                Path::new(&super::under(r, name)).join(file.unwrap_or_else(|| "db.sqlite".into())).display().to_string()
            }
            None => path,
        }))
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        let what = format!("source {name}");
        let paths = self.path.iter().map(|p| Ok(resolve(Path::new(&substitute(p, &what)?)))).collect::<Result<_>>()?;
        Ok(Some(Location::Paths(paths)))
    }
}
