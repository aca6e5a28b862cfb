//! `kind = "postgres"`: `pg_dump` (custom format streamed, or directory format with parallel
//! jobs) in an exported snapshot with per-table row counts; optionally the roles and tablespaces.
//! Restores with `pg_restore` into a named database (created; dropped first with --overwrite).

use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::Location;
use lifeboat_ops::verify::scratch;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::{client, postgres};
use serde::Deserialize;
use serde_json::json;

use super::{
    artifact, client_connection, manifest_of, rows, server_of, setting, Archive, Comparison, Found, Generated,
    PreparedRestore, RestoreRequest, Restored, RunContext, Settings, Source, TargetCheck,
};
use crate::error::{Result, ServiceError};
use crate::human::duration;
use crate::plan::{self, Step};

/// Settings of a postgres source.
#[derive(Debug, Default, Deserialize)]
pub struct Postgres {
    /// Database name.
    pub database: Option<String>,
    /// Server host or socket directory.
    pub host: Option<String>,
    /// Server port.
    pub port: Option<u16>,
    /// Role.
    pub user: Option<String>,
    /// Password; use `${VAR}` to take it from the environment.
    pub password: Option<String>,
    /// Directory of `psql`/`pg_dump`/`pg_restore` (default: PATH).
    pub bin_dir: Option<String>,
    /// Also back up roles and tablespaces (`pg_dumpall --globals-only`).
    #[serde(default)]
    pub globals: bool,
    /// Dump format, `custom` (default; streamed) or `directory` (parallel `jobs`).
    pub format: Option<String>,
    /// Parallel dump/restore jobs (directory format).
    pub jobs: Option<u32>,
    /// `pg_dump --compress` level (default 0: the repository compresses, and uncompressed dumps
    /// deduplicate).
    pub compress: Option<u32>,
    /// Where the directory format's dump is written before it is backed up (default: the system
    /// temp directory).
    pub tmp_dir: Option<String>,
}

impl Settings for Postgres {
    const NAME: &'static str = "postgres";
}

impl Postgres {
    fn connection(&self, name: &str) -> Result<client::Connection> {
        client_connection(name, &self.host, self.port, &self.user, &self.password, &self.bin_dir)
    }

    fn directory(&self) -> bool {
        self.format.as_deref() == Some("directory")
    }

    fn dump_options(&self, name: &str) -> Result<postgres::DumpOptions> {
        Ok(postgres::DumpOptions {
            format: if self.directory() { postgres::Format::Directory } else { postgres::Format::Custom },
            jobs: self.jobs.unwrap_or(1),
            compress: self.compress.unwrap_or(0),
            globals: self.globals,
            tmp_dir: setting(name, &self.tmp_dir)?.map(Into::into),
        })
    }
}

impl Source for Postgres {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        if self.database.is_none() {
            return Err("a postgres source needs `database = \"name\"`".into());
        }
        let directory = match self.format.as_deref() {
            None | Some("custom") => false,
            Some("directory") => true,
            Some(f) => return Err(format!("format {f:?} is unknown (expected \"custom\" or \"directory\")")),
        };
        match self.jobs {
            Some(0) => return Err("jobs must be at least 1".into()),
            Some(j) if j > 1 && !directory => {
                return Err(format!("jobs = {j} needs format = \"directory\" (pg_dump runs parallel jobs only there)"))
            }
            _ => {}
        }
        if self.compress.is_some_and(|c| c > 9) {
            return Err("compress must be 0 (none) to 9".into());
        }
        if self.tmp_dir.is_some() && !directory {
            return Err("tmp_dir is only used with format = \"directory\"".into());
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let database = setting(name, &self.database)?.unwrap_or_default();
        let started = postgres::start(&self.connection(name)?, &database, &self.dump_options(name)?)?;
        let manifest = Some(serde_json::to_value(&started.manifest)?);
        // What is left of `started` keeps a directory-format dump's temporary directory until
        // the backup is done (the end of this function).
        archive(Generated {
            paths: started.paths,
            entries: Box::new(started.entries),
            manifest,
            finish: Some(started.finish),
            excludes: Vec::new(),
            chunk_sizes: Some(lifeboat_sources::DUMP_CHUNK_SIZES),
            scan: None,
        })
    }

    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, postgres::Manifest) = manifest_of(snap)?;
        let node = artifact(repo, snap, &manifest.file)?;
        let conn = self.connection(name)?;
        let globals = match (&manifest.globals, req.globals) {
            (Some(gl), true) => Some(artifact(repo, snap, &gl.file)?),
            (None, true) => {
                return Err(ServiceError::msg(format!(
                    "snapshot {} has no globals (back up with `globals = true` in the source)",
                    snap.id.short()
                )))
            }
            (_, false) => None,
        };
        let ropts = postgres::RestoreOptions {
            overwrite: req.overwrite,
            jobs: self.jobs,
            tmp_dir: setting(name, &self.tmp_dir)?.map(Into::into),
        };
        let database = req.target_text();
        let load = format!(
            "load {} ({} format, {} tables) with pg_restore",
            manifest.file,
            manifest.format,
            manifest.tables.len()
        );
        let mut plan = plan::database(snap, server_of(&conn, 5432), &database, load, node.size, req.overwrite);
        if let Some(gnode) = &globals {
            let what = "apply the snapshot's roles and tablespaces (globals.sql) to the server".into();
            plan.steps.insert(0, Step { action: "apply-globals", what, bytes: Some(gnode.size) });
        }
        plan.detail("format", &manifest.format).detail("globals", globals.is_some()).detail("tables", &manifest.tables);
        plan.verify =
            req.verify.then(|| format!("row counts of {} tables against the backup's manifest", manifest.tables.len()));
        let source = src.name.clone();
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            let applied = match &globals {
                Some(gnode) => Some(postgres::globals::restore(repo, gnode, &conn)?),
                None => None,
            };
            postgres::restore(repo, &node, &manifest, &conn, &database, &ropts)?;
            let v = if req.verify { Some(postgres::verify(&conn, &database, &manifest)?) } else { None };
            let line = format!(
                "restored {} from snapshot {} into database {database} in {}{}",
                manifest.file,
                snap.id.short(),
                duration(started.elapsed()),
                if v.is_some() {
                    format!("; {} tables' row counts checked", manifest.tables.len())
                } else {
                    String::new()
                }
            );
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": source, "database": database, "verification": v,
                    "globals": applied, "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines: vec![line],
                mismatches: v.map(|v| v.mismatches).unwrap_or_default(),
                what: "database",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// `pg_restore` into a scratch database on the source's server, then row counts per table.
    fn restore_test(
        &self,
        name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        let (_, m): (_, postgres::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let node = artifact(repo, snap, &m.file).map_err(|e| e.to_string())?;
        let conn = self.connection(name).map_err(|e| e.to_string())?;
        let db = scratch::Database::new(scratch::Server::Postgres, &conn);
        let tmp_dir = match setting(name, &self.tmp_dir).map_err(|e| e.to_string())? {
            Some(d) => Some(d.into()),
            None => tmp.map(Path::to_path_buf),
        };
        let opts = postgres::RestoreOptions { overwrite: false, jobs: self.jobs, tmp_dir };
        postgres::restore(repo, &node, &m, &conn, &db.name, &opts).map_err(|e| e.to_string())?;
        let v = postgres::verify(&conn, &db.name, &m).map_err(|e| e.to_string())?;
        let mut t = super::tested(format!("database {}", db.name), v.mismatches, json!({"tables": v.tables}))?;
        t.verify_command = check(&db.name);
        Ok(t)
    }

    fn compare(&self, name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, postgres::Manifest) = manifest_of(snap)?;
        let v = postgres::verify(&self.connection(name)?, target, &m)?;
        Ok(Comparison { what: "table", rows: rows(&m.tables, &v.tables) })
    }

    fn compares(&self) -> bool {
        true
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        match root {
            Some(_) => Ok(Some(super::restored_database(name))),
            None => setting(name, &self.database),
        }
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        let conn = self.connection(name)?;
        let database = setting(name, &self.database)?.unwrap_or_default();
        Ok(Some(Location::Database { server: server_of(&conn, 5432), name: database }))
    }
}
