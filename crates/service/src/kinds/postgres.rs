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
use lifeboat_sources::postgres::pitr;
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
    /// Point-in-time recovery: back up the whole cluster physically (`pg_basebackup`) instead of
    /// dumping `database`; WAL reaches the repository through `archive_command = 'lifeboat
    /// wal-push --source NAME %p'` (docs/pitr.md). `database` is then the one whose rows a
    /// verified restore counts (default `postgres`).
    #[serde(default)]
    pub pitr: bool,
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
        if self.pitr {
            let dump_only = [
                ("format", self.format.is_some()),
                ("jobs", self.jobs.is_some()),
                ("compress", self.compress.is_some()),
                ("tmp_dir", self.tmp_dir.is_some()),
                ("globals", self.globals),
            ];
            if let Some((f, _)) = dump_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "{f} is a pg_dump setting: a pitr = true source backs up the whole cluster with pg_basebackup (roles included)"
                ));
            }
            return Ok(());
        }
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
        if self.pitr {
            let (started, manifest) = pitr::base_backup(&self.connection(name)?)?;
            return archive(Generated {
                paths: started.paths,
                entries: Box::new(started.entries),
                manifest: Some(serde_json::to_value(&manifest)?),
                finish: Some(started.finish),
                excludes: Vec::new(),
                chunk_sizes: None,
                scan: None,
            });
        }
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
        if let Some(p) = &req.pitr {
            return self.prepare_pitr(name, repo, snap, req, p);
        }
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

    /// `pg_restore` into a scratch database on the source's server, then row counts per table;
    /// a base backup is unpacked into a scratch directory and replayed to the end of its archive
    /// (no `verify_command` there: the replayed cluster is on a scratch port only while it runs).
    fn restore_test(
        &self,
        name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        if snap.snapshot.source.as_ref().and_then(|s| s.manifest.as_ref()).is_some_and(pitr::is_base) {
            return self.replay_test(name, repo, snap, tmp);
        }
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
        if self.pitr {
            // A base backup becomes a new data directory, never the live cluster's.
            return Ok(root.map(|r| super::under(r, name)));
        }
        match root {
            Some(_) => Ok(Some(super::restored_database(name))),
            None => setting(name, &self.database),
        }
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        if self.pitr {
            // A point-in-time restore writes a new data directory, never into the live server.
            return Ok(None);
        }
        let conn = self.connection(name)?;
        let database = setting(name, &self.database)?.unwrap_or_default();
        Ok(Some(Location::Database { server: server_of(&conn, 5432), name: database }))
    }
}

/// How long a replayed cluster may take to start and finish recovery.
const REPLAY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

impl Postgres {
    /// The database a verified point-in-time restore counts rows in.
    fn count_database(&self, name: &str) -> Result<String> {
        Ok(setting(name, &self.database)?.unwrap_or_else(|| "postgres".into()))
    }

    /// Restore a base backup into a new data directory, configured to replay the archived WAL
    /// up to `p.at`; with `--verify`, start it on a scratch port, wait for the end of recovery
    /// and count rows.
    fn prepare_pitr<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
        p: &crate::kinds::Pitr,
    ) -> Result<PreparedRestore<'a>> {
        let (src, m): (_, pitr::BaseManifest) = manifest_of(snap)?;
        let node = artifact(repo, snap, &m.file)?;
        let dir = req.target.clone();
        let mut plan = plan::Plan::new(snap, dir.display().to_string());
        plan.bytes = node.size;
        let nonempty = std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false);
        if nonempty {
            plan.blockers.push(format!(
                "{} is not empty: a data directory is restored only into a new or empty directory",
                dir.display()
            ));
        }
        plan.step(
            "unpack-base",
            format!("unpack {} ({} base backup) into {}", m.file, m.server_version, dir.display()),
            Some(node.size),
        );
        let until = match p.at {
            Some(t) => format!("replay archived WAL up to {} (recovery_target_time), then promote", t.to_rfc3339()),
            None => "replay all archived WAL, then promote".to_string(),
        };
        plan.step(
            "configure-recovery",
            format!("write recovery.signal and restore_command (lifeboat wal-fetch); {until}"),
            None,
        );
        plan.headline =
            format!("would restore {} as a new data directory {} (point in time):", plan.subject(), dir.display());
        plan.writes_to = Some(Location::Paths(vec![plan::resolve(&dir)]));
        plan.detail("base_started", m.started).detail("base_finished", m.finished).detail("at", p.at);
        plan.detail("timeline", m.timeline).detail("start_wal", &m.start_wal);
        let database = self.count_database(name)?;
        plan.verify = req
            .verify
            .then(|| format!("start it on a scratch port, wait for recovery to end, count the rows of {database}"));
        let bin = pitr::server_bin(self.bin_dir.as_deref(), &m.server_version);
        if req.verify && bin.is_none() {
            plan.blockers.push(format!(
                "--verify needs the PostgreSQL {} server programs (pg_ctl): set bin_dir",
                m.server_version
            ));
        }
        if req.verify && lifeboat_repository::util::current_uid() == 0 {
            plan.blockers.push("--verify starts PostgreSQL, which refuses to run as root: run the restore as the data directory's owner (e.g. runuser -u postgres --)".into());
        }
        let recovery = pitr::Recovery {
            restore_command: format!("{} wal-fetch --source {} %f \"%p\"", p.fetch, shell_word(&src.name)),
            target_time: p.at,
        };
        let source = src.name.clone();
        let verify = req.verify;
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            pitr::restore_base(repo, &node, &dir, &recovery)?;
            let mut lines = vec![format!(
                "restored base backup {} of snapshot {} into {} in {}; recovery {}",
                m.file,
                snap.id.short(),
                dir.display(),
                duration(started.elapsed()),
                match recovery.target_time {
                    Some(t) => format!("stops at {}", t.to_rfc3339()),
                    None => "replays the whole archive".into(),
                }
            )];
            let replay = match (verify, &bin) {
                (true, Some(bin)) => {
                    let port = free_port()?;
                    let r = pitr::replay(bin, &dir, port, &database, REPLAY_TIMEOUT)?;
                    lines.push(format!(
                        "replayed in {} (last transaction {}); {} tables in {database}: {}",
                        duration(std::time::Duration::from_secs_f64(r.seconds)),
                        r.last_replayed.as_deref().unwrap_or("none"),
                        r.tables.len(),
                        r.tables.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
                    ));
                    Some(r)
                }
                _ => None,
            };
            if replay.is_none() {
                lines.push(format!("start it with: pg_ctl -D {} start (the server needs the repository password in its environment to fetch WAL, see docs/pitr.md)", dir.display()));
            }
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": source, "data_directory": dir, "at": recovery.target_time,
                    "base": m, "replay": replay, "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines,
                what: "data directory",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// Unpack a base backup into a scratch directory with every archived WAL file it may need
    /// fetched beside it, replay to the end and count rows.
    fn replay_test(&self, name: &str, repo: &Repository, snap: &SnapshotEntry, tmp: Option<&Path>) -> Found {
        let (src, m): (_, pitr::BaseManifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let Some(bin) = pitr::server_bin(self.bin_dir.as_deref(), &m.server_version) else {
            return super::skipped(
                Path::new("(scratch data directory)"),
                format!("the PostgreSQL {} server programs (pg_ctl) are not installed: set bin_dir", m.server_version),
            );
        };
        if lifeboat_repository::util::current_uid() == 0 {
            return super::skipped(
                Path::new("(scratch data directory)"),
                "PostgreSQL refuses to run as root: run the restore test as another user",
            );
        }
        let work = match tmp {
            Some(t) => tempfile::tempdir_in(t),
            None => tempfile::tempdir(),
        }
        .map_err(|e| format!("scratch directory: {e}"))?;
        let wal = work.path().join("wal");
        std::fs::create_dir(&wal).map_err(|e| e.to_string())?;
        let keep_from = m.start_wal.get(8..).unwrap_or_default().to_string();
        for (f, _) in lifeboat_ops::wal::list(repo, &src.name).map_err(|e| e.to_string())? {
            let needed = f.ends_with(".history") || f.get(8..24).is_some_and(|p| p >= keep_from.as_str());
            if needed {
                let data =
                    lifeboat_ops::wal::fetch(repo, &src.name, &f).map_err(|e| e.to_string())?.unwrap_or_default();
                std::fs::write(wal.join(&f), data).map_err(|e| e.to_string())?;
            }
        }
        let node = artifact(repo, snap, &m.file).map_err(|e| e.to_string())?;
        let dir = work.path().join("data");
        let recovery = pitr::Recovery {
            restore_command: format!("cp {}/%f \"%p\"", shell_word(&wal.to_string_lossy())),
            target_time: None,
        };
        pitr::restore_base(repo, &node, &dir, &recovery).map_err(|e| e.to_string())?;
        let database = self.count_database(name).map_err(|e| e.to_string())?;
        let r = pitr::replay(&bin, &dir, free_port().map_err(|e| e.to_string())?, &database, REPLAY_TIMEOUT)
            .map_err(|e| e.to_string())?;
        super::tested(
            format!("data directory {} replayed in {:.1} s", dir.display(), r.seconds),
            Vec::new(),
            json!({"tables": r.tables, "replay_seconds": r.seconds, "last_replayed": r.last_replayed}),
        )
    }
}

/// A word for `sh -c`, single-quoted unless it is plain.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A free TCP port number on loopback (for a scratch server's socket name).
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| ServiceError::msg(format!("no free port: {e}")))?;
    Ok(l.local_addr().map_err(|e| ServiceError::msg(e.to_string()))?.port())
}
