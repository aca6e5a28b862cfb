//! `kind = "mariadb"`: a consistent `mariadb-dump` (single transaction) with per-table row
//! counts; restores load it with the mariadb client into a named database.

use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::Location;
use lifeboat_ops::verify::scratch;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::{client, mariadb};
use serde::Deserialize;
use serde_json::json;

use super::{
    artifact, client_connection, manifest_of, rows, server_of, setting, Archive, Comparison, Found, Generated,
    PreparedRestore, RestoreRequest, Restored, RunContext, Settings, Source, TargetCheck,
};
use crate::error::Result;
use crate::human::duration;
use crate::plan;

/// Settings of a mariadb source.
#[derive(Debug, Default, Deserialize)]
pub struct Mariadb {
    /// Database name.
    pub database: Option<String>,
    /// Server host or socket.
    pub host: Option<String>,
    /// Server port.
    pub port: Option<u16>,
    /// User.
    pub user: Option<String>,
    /// Password; use `${VAR}` to take it from the environment.
    pub password: Option<String>,
    /// Directory of the `mariadb`/`mariadb-dump` clients (default: PATH).
    pub bin_dir: Option<String>,
}

impl Settings for Mariadb {
    const NAME: &'static str = "mariadb";
}

impl Mariadb {
    fn connection(&self, name: &str) -> Result<client::Connection> {
        client_connection(name, &self.host, self.port, &self.user, &self.password, &self.bin_dir)
    }
}

impl Source for Mariadb {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        if self.database.is_none() {
            return Err("a mariadb source needs `database = \"name\"`".into());
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let database = setting(name, &self.database)?.unwrap_or_default();
        let started = mariadb::start(&self.connection(name)?, &database)?;
        let mut g = Generated::from(started);
        g.chunk_sizes = Some(lifeboat_sources::DUMP_CHUNK_SIZES);
        archive(g)
    }

    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, mariadb::Manifest) = manifest_of(snap)?;
        let node = artifact(repo, snap, &manifest.file)?;
        let conn = self.connection(name)?;
        let database = req.target_text();
        let load = format!("load {} ({} tables) with the mariadb client", manifest.file, manifest.tables.len());
        let mut plan = plan::database(snap, server_of(&conn, 3306), &database, load, node.size, req.overwrite);
        plan.detail("tables", &manifest.tables);
        plan.verify =
            req.verify.then(|| format!("row counts of {} tables against the backup's manifest", manifest.tables.len()));
        let source = src.name.clone();
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            mariadb::restore(repo, &node, &conn, &database, req.overwrite)?;
            let v = if req.verify { Some(mariadb::verify(&conn, &database, &manifest)?) } else { None };
            let line = format!(
                "restored {} from snapshot {} into database {database} in {}",
                manifest.file,
                snap.id.short(),
                duration(started.elapsed())
            );
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": source, "database": database,
                    "verification": v.as_ref().map(|(ok, m)| json!({"ok": ok, "mismatches": m})),
                    "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines: vec![line],
                mismatches: v.map(|(_, m)| m).unwrap_or_default(),
                what: "database",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// The dump loaded into a scratch database on the source's server, then row counts.
    fn restore_test(
        &self,
        name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        _tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        let (_, m): (_, mariadb::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let node = artifact(repo, snap, &m.file).map_err(|e| e.to_string())?;
        let conn = self.connection(name).map_err(|e| e.to_string())?;
        let db = scratch::Database::new(scratch::Server::Mariadb, &conn);
        mariadb::restore(repo, &node, &conn, &db.name, false).map_err(|e| e.to_string())?;
        let found = mariadb::counts(&conn, &db.name).map_err(|e| e.to_string())?;
        let (_, problems) = mariadb::verify(&conn, &db.name, &m).map_err(|e| e.to_string())?;
        let mut t = super::tested(format!("database {}", db.name), problems, json!({"tables": found}))?;
        t.verify_command = check(&db.name);
        Ok(t)
    }

    fn compare(&self, name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, mariadb::Manifest) = manifest_of(snap)?;
        let mut live = mariadb::counts(&self.connection(name)?, target)?;
        // Empty tables are not in a mariadb manifest (the dump has no INSERT for them).
        live.retain(|t, n| *n > 0 || m.tables.contains_key(t));
        Ok(Comparison { what: "table", rows: rows(&m.tables, &live) })
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
        Ok(Some(Location::Database { server: server_of(&conn, 3306), name: database }))
    }
}
