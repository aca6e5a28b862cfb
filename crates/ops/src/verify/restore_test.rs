//! Restore tests: a snapshot restored into a scratch target of its kind and checked there with
//! the kind's native verification against the backup's manifest (see [`super`]).
//!
//! Every kind reuses the restore and verification functions `lifeboat restore --verify` uses;
//! only the target differs. What goes wrong is returned as data: `problems` (the backup does
//! not restore, or what it restores differs from its manifest) make the test fail, `skipped`
//! (the test could not be done here, e.g. no `redis-server`) make it partial.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use lifeboat_format::Node;
use lifeboat_repository::restorer::{self, RestoreOptions};
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::{client, mariadb, nats, postgres, redis, sqlite};
use serde::Serialize;
use serde_json::json;

use super::scratch;
use crate::records::Outcome;

/// Where scratch targets are made: the servers of the snapshot's source (its configured
/// connection settings, so the test runs on the same kind of server the data came from) and a
/// directory for temporary files.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// PostgreSQL server for `lifeboat_verify_<random>` databases.
    pub postgres: client::Connection,
    /// MariaDB server for `lifeboat_verify_<random>` databases.
    pub mariadb: client::Connection,
    /// NATS server for `LIFEBOAT_VERIFY_<RANDOM>` streams.
    pub nats: nats::Connection,
    /// Parent of scratch directories and files (default: the system temp directory).
    pub tmp_dir: Option<PathBuf>,
    /// Parallel `pg_restore` jobs for directory-format dumps (default: the dump's).
    pub jobs: Option<u32>,
}

/// What a restore test found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreTest {
    /// Source kind (`files` for plain snapshots).
    pub kind: String,
    /// The scratch target used (already removed).
    pub target: String,
    /// Why the backup failed the test (empty when it passed).
    pub problems: Vec<String>,
    /// What could not be tested here.
    pub skipped: Vec<String>,
    /// What the native verification found (row counts, keys, messages, files).
    pub details: serde_json::Value,
    /// Wall time from the start of the restore to the end of the verification.
    pub seconds: f64,
}

impl RestoreTest {
    /// `failed` with problems, else `partial` when something was skipped, else `ok`.
    pub fn outcome(&self) -> Outcome {
        if !self.problems.is_empty() {
            Outcome::Failed
        } else if !self.skipped.is_empty() {
            Outcome::Partial
        } else {
            Outcome::Ok
        }
    }
}

/// What a kind's test returns; `Err` is one problem that stopped it.
type Found = Result<RestoreTest, String>;

/// Restore `snap` into a scratch target and verify it natively; the target is gone afterwards.
pub fn restore_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> RestoreTest {
    let started = Instant::now();
    let kind = snap.snapshot.source.as_ref().map(|x| x.kind.clone()).unwrap_or_else(|| "files".into());
    let result = match kind.as_str() {
        "sqlite" => sqlite_test(repo, snap, s),
        "postgres" => postgres_test(repo, snap, s),
        "mariadb" => mariadb_test(repo, snap, s),
        "redis" => redis_test(repo, snap, s),
        "nats" => nats_test(repo, snap, s),
        "command" => command_test(repo, snap, s),
        _ => files_test(repo, snap, s).map(|(t, _)| t),
    };
    let mut t = result.unwrap_or_else(|p| RestoreTest { problems: vec![p], ..Default::default() });
    t.kind = kind;
    t.seconds = started.elapsed().as_secs_f64();
    t
}

/// The snapshot's manifest as the kind's type.
fn manifest<T: serde::de::DeserializeOwned>(snap: &SnapshotEntry) -> Result<T, String> {
    let src = snap.snapshot.source.as_ref().ok_or("the snapshot has no source")?;
    serde_json::from_value(src.manifest.clone().unwrap_or_default())
        .map_err(|e| format!("the snapshot has no usable {} manifest: {e}", src.kind))
}

/// A file of a generated snapshot (stored at the root under its name).
fn artifact(repo: &Repository, snap: &SnapshotEntry, file: &str) -> Result<Node, String> {
    lifeboat_repository::tree::find_node(repo, &snap.snapshot.tree, file)
        .map_err(|e| format!("{file}: {e}"))?
        .ok_or_else(|| format!("the snapshot does not contain {file}"))
}

fn passed(target: String, problems: Vec<String>, details: serde_json::Value) -> Found {
    Ok(RestoreTest { target, problems, details, ..Default::default() })
}

/// Files: restored into a scratch directory, every file read back and hash-checked against the
/// tree (sizes included: a longer or shorter file fails).
fn files_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Result<(RestoreTest, Vec<u8>), String> {
    let dir = scratch::dir(s.tmp_dir.as_deref())?;
    let target = dir.path().join("restore");
    let opts = RestoreOptions { verify: true, ..Default::default() };
    let stats = restorer::restore(repo, &snap.snapshot.tree, &target, &opts).map_err(|e| format!("restore: {e}"))?;
    let mut problems: Vec<String> =
        stats.failed.iter().map(|f| format!("not restored, its data is damaged: {f}")).collect();
    if stats.verified != stats.files {
        problems.push(format!("{} of {} restored files were verified", stats.verified, stats.files));
    }
    let details = json!({"files": stats.files, "dirs": stats.dirs, "bytes": stats.bytes, "verified": stats.verified, "warnings": stats.warnings});
    let first = first_file(&target);
    Ok((RestoreTest { target: dir.path().display().to_string(), problems, details, ..Default::default() }, first))
}

/// The content of the only file below `dir`, if there is exactly one (a command's output).
fn first_file(dir: &std::path::Path) -> Vec<u8> {
    let mut files = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file());
    match (files.next(), files.next()) {
        (Some(p), None) => std::fs::read(p).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Command output: restored and hash-checked like files; the output's size and SHA-256 are
/// reported, and a non-zero exit status recorded in the manifest is a problem unless the source
/// allowed it (then the snapshot exists only because of `allow_failure`, and it is noted).
fn command_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let (mut t, output) = files_test(repo, snap, s)?;
    let m: serde_json::Value = snap.snapshot.source.as_ref().and_then(|x| x.manifest.clone()).unwrap_or_default();
    let status = m["exit_status"].as_i64();
    t.details["output_bytes"] = json!(output.len());
    t.details["output_sha256"] = json!(hex::encode(lifeboat_crypto::sha256(&output)));
    t.details["exit_status"] = json!(status);
    if status.is_some_and(|c| c != 0) {
        t.details["note"] = json!("the command exited non-zero when it was backed up (allow_failure)");
    }
    Ok(t)
}

/// SQLite: restored to a scratch file (`PRAGMA integrity_check`, then row counts per table).
fn sqlite_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let m: sqlite::Manifest = manifest(snap)?;
    let node = artifact(repo, snap, &m.file)?;
    let dir = scratch::dir(s.tmp_dir.as_deref())?;
    let file = dir.path().join(&m.file);
    let v = sqlite::restore(repo, &node, &m, &file, false).map_err(|e| e.to_string())?;
    let mut problems = v.mismatches.clone();
    if v.integrity != ["ok"] {
        problems.push(format!("integrity_check: {}", v.integrity.join("; ")));
    }
    passed(file.display().to_string(), problems, json!({"tables": v.tables, "integrity": v.integrity}))
}

/// PostgreSQL: `pg_restore` into a scratch database, then row counts per table.
fn postgres_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let m: postgres::Manifest = manifest(snap)?;
    let node = artifact(repo, snap, &m.file)?;
    let db = scratch::Database::new(scratch::Server::Postgres, &s.postgres);
    let opts = postgres::RestoreOptions { overwrite: false, jobs: s.jobs, tmp_dir: s.tmp_dir.clone() };
    postgres::restore(repo, &node, &m, &s.postgres, &db.name, &opts).map_err(|e| e.to_string())?;
    let v = postgres::verify(&s.postgres, &db.name, &m).map_err(|e| e.to_string())?;
    passed(format!("database {}", db.name), v.mismatches, json!({"tables": v.tables}))
}

/// MariaDB: the dump loaded into a scratch database, then row counts per table.
fn mariadb_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let m: mariadb::Manifest = manifest(snap)?;
    let node = artifact(repo, snap, &m.file)?;
    let db = scratch::Database::new(scratch::Server::Mariadb, &s.mariadb);
    mariadb::restore(repo, &node, &s.mariadb, &db.name, false).map_err(|e| e.to_string())?;
    let found = mariadb::counts(&s.mariadb, &db.name).map_err(|e| e.to_string())?;
    let (_, problems) = mariadb::verify(&s.mariadb, &db.name, &m).map_err(|e| e.to_string())?;
    passed(format!("database {}", db.name), problems, json!({"tables": found}))
}

/// Redis: logical backups go into an empty throwaway `redis-server` on a unix socket (the live
/// server is never touched) and keys are counted per database; an RDB is written to a scratch
/// file, its checksum and key counts checked, and loaded by a throwaway server.
fn redis_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let m: redis::Manifest = manifest(snap)?;
    if let Some(rdb) = &m.rdb {
        let node = artifact(repo, snap, &rdb.file)?;
        let dir = scratch::dir(s.tmp_dir.as_deref())?;
        let file = dir.path().join("dump.rdb");
        let r = redis::restore_rdb(repo, &node, &m, &file, false, true);
        return match r {
            Err(e) if e.to_string().contains("is not installed") => skipped(file, e),
            Err(e) => Err(e.to_string()),
            Ok(r) => {
                let v = r.verification.map(|v| (v.mismatches, v.keys)).unwrap_or_default();
                passed(format!("file {} loaded by a throwaway redis-server", file.display()), v.0, json!({"keys": v.1}))
            }
        };
    }
    let mut files = Vec::new();
    for (db, file) in &m.files {
        files.push((*db, artifact(repo, snap, file)?));
    }
    let top = m.keys.keys().chain(m.files.keys()).max().copied().unwrap_or(0);
    let server = match redis::Throwaway::empty((top + 1).max(16)) {
        Err(e) if e.to_string().contains("is not installed") => return skipped(PathBuf::from("redis-server"), e),
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
        // Keys whose expiry passed before the restore are not restored; those expiring during
        // it may or may not be there.
        let (most, least) = (want.saturating_sub(passed_by(before)), want.saturating_sub(passed_by(after)));
        if got < least || got > most {
            let range = if least == most { most.to_string() } else { format!("{least}–{most}") };
            problems.push(format!("db{db}: expected {range} keys, found {got}"));
        }
        found.insert(*db, got);
        expired.insert(*db, passed_by(before));
    }
    let details = json!({"keys": found, "expired_since_backup": expired});
    passed(format!("throwaway redis-server {}", sock.display()), problems, details)
}

fn skipped(target: PathBuf, e: impl std::fmt::Display) -> Found {
    Ok(RestoreTest { target: target.display().to_string(), skipped: vec![e.to_string()], ..Default::default() })
}

/// NATS: every stream of the backup republished into a new `LIFEBOAT_VERIFY_…` stream (its
/// subjects prefixed when they overlap with a live stream), then message count and sequences
/// checked; the scratch streams are deleted afterwards.
fn nats_test(repo: &Repository, snap: &SnapshotEntry, s: &Scratch) -> Found {
    let m: nats::Manifest = manifest(snap)?;
    let mut streams = scratch::Streams::new(&s.nats);
    let (mut problems, mut skipped, mut details) = (Vec::new(), Vec::new(), Vec::new());
    for (name, sm) in &m.streams {
        let b = nats::StreamBackup::load(repo, &snap.snapshot.tree, name, sm).map_err(|e| e.to_string())?;
        let opts = nats::RestoreOptions { rename: Some(streams.add()), overwrite: false, range: None };
        match nats::restore(repo, &b, &s.nats, &opts) {
            Err(e) if e.to_string().contains("under its original name") => skipped.push(e.to_string()),
            Err(e) => problems.push(e.to_string()),
            Ok(r) => {
                let v = nats::verify(&s.nats, &r.target, &r.expected_for(&b, &opts)).map_err(|e| e.to_string())?;
                problems.extend(v.mismatches);
                details.push(json!({"stream": name, "scratch": r.target, "messages": v.found.messages,
                    "first_seq": v.found.first_seq, "last_seq": v.found.last_seq}));
            }
        }
    }
    let target = format!("streams {} on {}", streams.names.join(", "), s.nats.server());
    Ok(RestoreTest { target, problems, skipped, details: json!({"streams": details}), ..Default::default() })
}
