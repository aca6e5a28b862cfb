//! `kind = "redis"`: logical (`SCAN` + `DUMP` + `PTTL` per database, restored online with
//! `RESTORE … ABSTTL`) or RDB mode (one point-in-time RDB over the replication protocol,
//! restored as the file of a stopped server).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::{Location, Server};
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::redis;
use serde::Deserialize;
use serde_json::json;

use super::{
    artifact, manifest_of, setting, Archive, Comparison, Found, Generated, PreparedRestore, RestoreRequest, Restored,
    Row, RunContext, Settings, Source, TargetCheck,
};
use crate::error::{Result, ServiceError};
use crate::human::{duration, size};
use crate::plan;

/// Settings of a redis source.
#[derive(Debug, Default, Deserialize)]
pub struct Redis {
    /// Server host (default 127.0.0.1) or unix socket path.
    pub host: Option<String>,
    /// Server port (default 6379).
    pub port: Option<u16>,
    /// ACL user.
    pub user: Option<String>,
    /// Password; use `${VAR}` to take it from the environment.
    pub password: Option<String>,
    /// Database indexes to back up (default: every non-empty one).
    #[serde(default)]
    pub databases: Vec<u32>,
    /// Only keys matching this glob (e.g. `"app:*"`).
    pub pattern: Option<String>,
    /// `logical` (default: SCAN + DUMP) or `rdb` (one point-in-time RDB over the replication
    /// protocol).
    pub mode: Option<String>,
}

impl Settings for Redis {
    const NAME: &'static str = "redis";
}

impl Redis {
    fn connection(&self, name: &str) -> Result<redis::Connection> {
        let d = redis::Connection::default();
        Ok(redis::Connection {
            host: setting(name, &self.host)?.unwrap_or(d.host),
            port: self.port.unwrap_or(d.port),
            user: setting(name, &self.user)?,
            password: setting(name, &self.password)?,
        })
    }

    fn rdb(&self) -> bool {
        self.mode.as_deref() == Some("rdb")
    }

    /// `redis://HOST:PORT[/DB]` (on that server, with this source's credentials) or a database
    /// index on the source's server.
    fn target(&self, name: &str, target: &str, hint: &str) -> Result<(redis::Connection, Option<u32>)> {
        let mut conn = self.connection(name)?;
        let Some(rest) = target.strip_prefix("redis://") else {
            let db = target.parse::<u32>().map_err(|_| ServiceError::msg(hint.to_string()))?;
            return Ok((conn, Some(db)));
        };
        let (hostport, db) = rest.split_once('/').map(|(h, d)| (h, Some(d))).unwrap_or((rest, None));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
        conn.host = host.to_string();
        conn.port = port.parse().map_err(|_| ServiceError::msg(format!("bad port in {target}")))?;
        let db = db
            .filter(|d| !d.is_empty())
            .map(str::parse::<u32>)
            .transpose()
            .map_err(|_| ServiceError::msg(format!("bad database index in {target}")))?;
        Ok((conn, db))
    }
}

impl Source for Redis {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        match self.mode.as_deref() {
            None | Some("logical") => Ok(()),
            Some("rdb") if !self.databases.is_empty() || self.pattern.is_some() => {
                Err("mode = \"rdb\" backs up every database: remove `databases`/`pattern` (or use mode = \"logical\")"
                    .into())
            }
            Some("rdb") => Ok(()),
            Some(m) => Err(format!("mode {m:?} is unknown (expected \"logical\" or \"rdb\")")),
        }
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let conn = self.connection(name)?;
        let started = if self.rdb() {
            redis::start_rdb(&conn)?
        } else {
            redis::start(&conn, &self.databases, self.pattern.as_deref())?
        };
        let mut g = Generated::from(started);
        g.chunk_sizes = Some(lifeboat_sources::sqlite::CHUNK_SIZES);
        archive(g)
    }

    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, redis::Manifest) = manifest_of(snap)?;
        if manifest.mode == "rdb" {
            return restore_rdb(repo, snap, req, src.name.clone(), manifest);
        }
        let target = req.target_text();
        let hint = "--target for a redis source is redis://HOST:PORT[/DB] or a database index";
        let (conn, target_db) = self.target(name, &target, hint)?;
        let mut files = Vec::new();
        for (db, file) in &manifest.files {
            files.push((*db, artifact(repo, snap, file)?));
        }
        let server = Server::new(Some(&conn.host), conn.port);
        let sizes = files.iter().map(|(db, n)| (*db, n.size)).collect();
        let mut plan = plan::redis_keys(snap, &target, server, &manifest.keys, target_db, &sizes, req.overwrite);
        plan.verify = req.verify.then(|| "keys per database against the backup's manifest".to_string());
        let source = src.name.clone();
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            let restored = redis::restore(repo, &files, &conn, target_db, manifest.pattern.as_deref(), req.overwrite)?;
            let verification = if req.verify { Some(redis::verify(&conn, &manifest, target_db)?) } else { None };
            let total: u64 = restored.values().sum();
            let line = format!(
                "restored {total} keys from snapshot {} to {}:{} in {}",
                snap.id.short(),
                conn.host,
                conn.port,
                duration(started.elapsed())
            );
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": source, "restored": restored,
                    "verification": verification.as_ref().map(|(ok, m)| json!({"ok": ok, "mismatches": m})),
                    "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines: vec![line],
                mismatches: verification.map(|(_, m)| m).unwrap_or_default(),
                what: "keys",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// Logical backups go into an empty throwaway `redis-server` on a unix socket (the live
    /// server is never touched) and keys are counted per database; an RDB is written to a
    /// scratch file, its checksum and key counts checked, and loaded by a throwaway server.
    fn restore_test(
        &self,
        _name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        _check: &TargetCheck<'_>,
    ) -> Found {
        let (_, m): (_, redis::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        if let Some(rdb) = &m.rdb {
            let node = artifact(repo, snap, &rdb.file).map_err(|e| e.to_string())?;
            let dir = super::scratch_dir(tmp)?;
            let file = dir.path().join("dump.rdb");
            return match redis::restore_rdb(repo, &node, &m, &file, false, true) {
                Err(e) if e.to_string().contains("is not installed") => super::skipped(&file, e),
                Err(e) => Err(e.to_string()),
                Ok(r) => {
                    let v = r.verification.map(|v| (v.mismatches, v.keys)).unwrap_or_default();
                    let target = format!("file {} loaded by a throwaway redis-server", file.display());
                    super::tested(target, v.0, json!({"keys": v.1}))
                }
            };
        }
        let mut files = Vec::new();
        for (db, file) in &m.files {
            files.push((*db, artifact(repo, snap, file).map_err(|e| e.to_string())?));
        }
        let top = m.keys.keys().chain(m.files.keys()).max().copied().unwrap_or(0);
        let server = match redis::Throwaway::empty((top + 1).max(16)) {
            Err(e) if e.to_string().contains("is not installed") => {
                return super::skipped(Path::new("redis-server"), e)
            }
            r => r.map_err(|e| e.to_string())?,
        };
        let sock = server.socket();
        let conn = redis::Connection { host: sock.display().to_string(), port: 0, user: None, password: None };
        let mut expiries = BTreeMap::new();
        for (db, node) in &files {
            expiries.insert(*db, redis::expiries(repo, node).map_err(|e| e.to_string())?);
        }
        let before = chrono::Utc::now().timestamp_millis();
        redis::restore(repo, &files, &conn, None, m.pattern.as_deref(), false).map_err(|e| e.to_string())?;
        let mut c = redis::Client::connect(&conn).map_err(|e| e.to_string())?;
        let (mut problems, mut found, mut expired) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
        for (db, want) in &m.keys {
            let got = c.count(*db, m.pattern.as_deref()).map_err(|e| e.to_string())?;
            let after = chrono::Utc::now().timestamp_millis();
            let passed_by = |t: i64| expiries.get(db).map_or(0, |e| e.iter().filter(|x| **x <= t).count() as u64);
            // Keys whose expiry passed before the restore are not restored; those expiring
            // during it may or may not be there.
            let (most, least) = (want.saturating_sub(passed_by(before)), want.saturating_sub(passed_by(after)));
            if got < least || got > most {
                let range = if least == most { most.to_string() } else { format!("{least}–{most}") };
                problems.push(format!("db{db}: expected {range} keys, found {got}"));
            }
            found.insert(*db, got);
            expired.insert(*db, passed_by(before));
        }
        let details = json!({"keys": found, "expired_since_backup": expired});
        super::tested(format!("throwaway redis-server {}", sock.display()), problems, details)
    }

    fn compare(&self, name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, redis::Manifest) = manifest_of(snap)?;
        let (conn, target_db) =
            self.target(name, target, "a redis target is redis://HOST:PORT[/DB] or a database index")?;
        if target_db.is_some() && m.keys.len() > 1 {
            return Err(ServiceError::msg(format!(
                "the backup holds {} databases; compare with redis://HOST:PORT (no database index)",
                m.keys.len()
            )));
        }
        let mut c = redis::Client::connect(&conn)?;
        let mut out = Vec::new();
        for (db, want) in &m.keys {
            let to = target_db.unwrap_or(*db);
            let got = c.count(to, m.pattern.as_deref())?;
            let name = if to == *db { format!("db{db} keys") } else { format!("db{db} → db{to} keys") };
            out.push(Row::new(name, Some(*want), Some(got)));
        }
        Ok(Comparison { what: "database", rows: out })
    }

    fn compares(&self) -> bool {
        true
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        // An RDB file can go below a directory; keys go to a server (set `restore_target`).
        Ok(root
            .filter(|_| self.rdb())
            .map(|r| Path::new(&super::under(r, name)).join("dump.rdb").display().to_string()))
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        if self.rdb() {
            return Ok(None);
        }
        let conn = self.connection(name)?;
        let dbs = (!self.databases.is_empty()).then(|| self.databases.clone());
        Ok(Some(Location::Redis { server: Server::new(Some(&conn.host), conn.port), dbs }))
    }
}

/// An RDB-mode snapshot becomes a file for a *stopped* server (`--target
/// /var/lib/redis/dump.rdb`), replaced atomically, optionally verified first by a throwaway
/// `redis-server` that loads it.
fn restore_rdb<'a>(
    repo: &'a Repository,
    snap: &'a SnapshotEntry,
    req: &'a RestoreRequest,
    source: String,
    manifest: redis::Manifest,
) -> Result<PreparedRestore<'a>> {
    let rdb = manifest.rdb.clone().ok_or_else(|| {
        ServiceError::msg(format!("snapshot {} has no RDB description in its manifest", snap.id.short()))
    })?;
    let target = req.target_text();
    if target.starts_with("redis://") || target.parse::<u32>().is_ok() {
        return Err(ServiceError::msg(format!(
            "snapshot {} is an RDB dump: restore it to the file of a stopped server (--target \
             /var/lib/redis/dump.rdb) and start the server on it; restores into a running server \
             need mode = \"logical\"",
            snap.id.short()
        )));
    }
    let node = artifact(repo, snap, &rdb.file)?;
    let keys: u64 = manifest.keys.values().sum();
    let contents = format!("{keys} keys in {} databases", manifest.keys.len());
    let mut plan = plan::file(snap, &req.target, &rdb.file, node.size, &contents, req.overwrite);
    plan.detail("mode", "rdb").detail("keys", &manifest.keys);
    plan.verify =
        req.verify.then(|| "a throwaway redis-server loads the file and counts its keys per database".to_string());
    let run = move |_: &RunContext| -> Result<Restored> {
        let started = Instant::now();
        let r = redis::restore_rdb(repo, &node, &manifest, &req.target, req.overwrite, req.verify)?;
        let keys: u64 = r.keys.values().sum();
        let line = format!(
            "restored {} ({}, {keys} keys) from snapshot {} to {} in {}{}; start redis-server on it",
            rdb.file,
            size(r.bytes),
            snap.id.short(),
            req.target.display(),
            duration(started.elapsed()),
            if r.verification.is_some() { " (loaded and counted by a throwaway redis-server)" } else { "" }
        );
        Ok(Restored {
            json: json!({
                "snapshot": snap.id, "source": source, "target": req.target, "bytes": r.bytes,
                "checksum": r.checksum, "keys": r.keys, "verification": r.verification,
                "duration_seconds": started.elapsed().as_secs_f64(),
            }),
            lines: vec![line],
            what: "keys",
            ..Default::default()
        })
    };
    Ok(PreparedRestore { plan, run: Box::new(run) })
}
