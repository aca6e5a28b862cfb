//! Restoring an RDB snapshot: the dump is written as a file for a *stopped* server (atomically,
//! after its checksum and key counts were checked) and can be verified by loading it into a
//! throwaway `redis-server` that listens only on a unix socket in a temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use lifeboat_format::Node;
use lifeboat_repository::{restorer, Repository};
use serde::Serialize;

use super::rdb::{self, Checksum, Summary};
use super::{Client, Manifest, Reply};
use crate::SourceError;

/// What a restore of an RDB snapshot did.
#[derive(Clone, Debug, Serialize)]
pub struct RdbRestore {
    /// Bytes written.
    pub bytes: u64,
    /// `ok` or `disabled` (written by a server with `rdbchecksum no`).
    pub checksum: String,
    /// Keys per database in the written file.
    pub keys: BTreeMap<u32, u64>,
    /// The throwaway server's verdict, when asked for.
    pub verification: Option<RdbVerification>,
}

/// What a throwaway server found in an RDB file.
#[derive(Clone, Debug, Serialize)]
pub struct RdbVerification {
    /// Whether every database has the keys the manifest recorded.
    pub ok: bool,
    /// Differences, one line each (`db3: expected 1000 keys, found 990`).
    pub mismatches: Vec<String>,
    /// Keys per database after the server loaded the file (`INFO keyspace`).
    pub keys: BTreeMap<u32, u64>,
    /// Version of the `redis-server` that loaded it.
    pub server_version: String,
}

fn ferr(path: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: path.display().to_string(), message: e.to_string() }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Walk a file; a damaged trailer is an error.
fn check_file(path: &Path, at: i64) -> Result<(Summary, &'static str, u64), SourceError> {
    let f = std::fs::File::open(path).map_err(|e| SourceError::Path { path: path.into(), source: e })?;
    let (summary, checksum, bytes) = rdb::check(f, at).map_err(|e| ferr(path, e))?;
    let checksum = match checksum {
        Checksum::Ok => "ok",
        Checksum::Disabled => "disabled",
        Checksum::Mismatch { stored, computed } => {
            return Err(ferr(path, format!("checksum mismatch (stored {stored:016x}, computed {computed:016x})")))
        }
    };
    Ok((summary, checksum, bytes))
}

/// Differences between the keys a file holds and the manifest's.
fn file_mismatches(found: &BTreeMap<u32, u64>, manifest: &Manifest) -> Vec<String> {
    let dbs: std::collections::BTreeSet<u32> = found.keys().chain(manifest.keys.keys()).copied().collect();
    dbs.into_iter()
        .filter_map(|db| {
            let (want, got) = (manifest.keys.get(&db).copied().unwrap_or(0), found.get(&db).copied().unwrap_or(0));
            (want != got).then(|| format!("db{db}: the file holds {got} keys, the backup recorded {want}"))
        })
        .collect()
}

/// Write the snapshot's RDB to `target`: beside it first, checked (trailer and keys per database
/// against the manifest) and, with `verify`, loaded by a throwaway server ([`verify_rdb`]); only
/// when all of that passes is it renamed into place. An existing target is refused unless
/// `overwrite`. Nothing is left behind on failure and the old target stays as it was.
pub fn restore_rdb(
    repo: &Repository,
    node: &Node,
    manifest: &Manifest,
    target: &Path,
    overwrite: bool,
    verify: bool,
) -> Result<RdbRestore, SourceError> {
    if target.is_dir() {
        return Err(ferr(target, "is a directory (give the RDB file's path, e.g. /var/lib/redis/dump.rdb)"));
    }
    if target.exists() && !overwrite {
        return Err(ferr(target, "target exists (use --overwrite to replace it atomically; stop the server first)"));
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| SourceError::Path { path: dir.into(), source: e })?;
    }
    let tmp = aside(target);
    let result = (|| {
        let _ = std::fs::remove_file(&tmp); // a leftover of an interrupted restore
        write(repo, node, &tmp, target)?;
        let (summary, checksum, bytes) = check_file(&tmp, now_ms())?;
        let mismatches = file_mismatches(&summary.key_counts(), manifest);
        if !mismatches.is_empty() {
            return Err(ferr(target, format!("restored file does not match the backup: {}", mismatches.join("; "))));
        }
        let verification = if verify { Some(verify_rdb(&tmp, manifest)?) } else { None };
        if let Some(v) = verification.as_ref().filter(|v| !v.ok) {
            let why = v.mismatches.join("; ");
            return Err(ferr(target, format!("verification failed, target left unchanged: {why}")));
        }
        std::fs::rename(&tmp, target).map_err(|e| SourceError::Path { path: target.into(), source: e })?;
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(RdbRestore { bytes, checksum: checksum.into(), keys: summary.key_counts(), verification })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write the dump to `path` (mode 0600: it holds every value of the server), then give it the
/// mode and owner of the file it will replace, if there is one.
fn write(repo: &Repository, node: &Node, path: &Path, replaces: &Path) -> Result<(), SourceError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let io = |e: std::io::Error| SourceError::Path { path: path.into(), source: e };
    let index = repo.index().map_err(|e| ferr(path, e))?;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io)?;
    restorer::copy_content(repo, &index, node, &mut f).map_err(|e| ferr(path, e))?;
    if let Ok(old) = std::fs::metadata(replaces) {
        f.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777)).map_err(io)?;
        // Only root may give a file away; otherwise the restoring user keeps it.
        let _ = std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()));
    }
    f.sync_all().map_err(io)
}

fn aside(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".lifeboat-tmp");
    target.with_file_name(name)
}

/// A `redis-server` on a unix socket in a temporary directory (no TCP port), empty or loading
/// one RDB file; stopped (without saving) and its directory removed when dropped.
pub struct Throwaway {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect_unix(&self.dir.path().join("redis.sock")) {
            let _ = c.send(&[b"SHUTDOWN", b"NOSAVE"]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Throwaway {
    /// Start an empty server with `databases` databases and wait until it answers.
    pub fn empty(databases: u32) -> Result<Throwaway, SourceError> {
        let mut t = Throwaway::launch(None, databases)?;
        let sock = t.socket();
        t.ready(&sock, Duration::from_secs(30))?;
        Ok(t)
    }

    /// Its unix socket (a [`super::Connection`] whose `host` is this path reaches it).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn start(rdb: &Path, databases: u32) -> Result<Throwaway, SourceError> {
        Throwaway::launch(Some(rdb), databases)
    }

    fn launch(rdb: Option<&Path>, databases: u32) -> Result<Throwaway, SourceError> {
        let what = rdb.unwrap_or(Path::new("redis-server"));
        let dir = tempfile::Builder::new().prefix("lifeboat-redis-verify-").tempdir().map_err(|e| ferr(what, e))?;
        if let Some(rdb) = rdb {
            let abs = std::path::absolute(rdb).map_err(|e| SourceError::Path { path: rdb.into(), source: e })?;
            std::os::unix::fs::symlink(&abs, dir.path().join("dump.rdb")).map_err(|e| ferr(rdb, e))?;
        }
        let rdb = what;
        let d = dir.path().to_string_lossy().into_owned();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket", &format!("{d}/redis.sock"), "--unixsocketperm", "700"])
            .args(["--dir", &d, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"])
            .args(["--databases", &databases.to_string(), "--logfile", &format!("{d}/redis.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ferr(
                        rdb,
                        crate::client::missing_program(
                            "redis-server",
                            None,
                            "install redis-server: it is needed to verify a restore",
                        ),
                    )
                } else {
                    ferr(rdb, format!("cannot run redis-server: {e}"))
                }
            })?;
        Ok(Throwaway { child, dir })
    }

    /// Connect once the file is loaded; the server's log tail when it died instead.
    fn ready(&mut self, rdb: &Path, limit: Duration) -> Result<Client, SourceError> {
        let deadline = Instant::now() + limit;
        let sock = self.dir.path().join("redis.sock");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(2).collect();
                let why = tail.into_iter().rev().collect::<Vec<_>>().join(" / ");
                return Err(ferr(rdb, format!("redis-server could not load the file ({status}): {why}")));
            }
            if let Ok(mut c) = Client::connect_unix(&sock) {
                match c.call(&[b"PING"]) {
                    Ok(Reply::Error(e)) if e.starts_with("LOADING") => {}
                    Ok(Reply::Error(e)) => return Err(ferr(rdb, format!("verification server: {e}"))),
                    Ok(_) => return Ok(c),
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                return Err(ferr(rdb, format!("redis-server did not finish loading within {}s", limit.as_secs())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Load `path` into a throwaway `redis-server` and compare its keys per database with the
/// manifest. Keys with an expiry that passes during the check may be missing; every other
/// difference is reported (as data: the caller decides what a mismatch means).
pub fn verify_rdb(path: &Path, manifest: &Manifest) -> Result<RdbVerification, SourceError> {
    let t0 = now_ms();
    let (before, _, _) = check_file(path, t0)?;
    let mut mismatches = file_mismatches(&before.key_counts(), manifest);
    let top = before.keys.keys().chain(before.hints.keys()).chain(manifest.keys.keys()).max().copied().unwrap_or(0);
    let mut server = Throwaway::start(path, (top + 1).max(16))?;
    let mut c = server.ready(path, Duration::from_secs(600))?;
    let found = c.keyspace()?;
    let server_version = c.version();
    drop(c);
    drop(server);
    let after = if before.expires.is_empty() { before.clone() } else { check_file(path, now_ms())?.0 };
    let dbs: std::collections::BTreeSet<u32> = found.keys().chain(manifest.keys.keys()).copied().collect();
    for db in dbs {
        let keys = manifest.keys.get(&db).copied().unwrap_or(0);
        let most = keys.saturating_sub(before.expired.get(&db).copied().unwrap_or(0));
        let least = keys.saturating_sub(after.expired.get(&db).copied().unwrap_or(0));
        let got = found.get(&db).copied().unwrap_or(0);
        if got < least || got > most {
            let want = if least == most { most.to_string() } else { format!("{least}–{most}") };
            mismatches.push(format!("db{db}: expected {want} keys, the server loaded {got}"));
        }
    }
    Ok(RdbVerification { ok: mismatches.is_empty(), mismatches, keys: found, server_version })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manifest(keys: &[(u32, u64)]) -> Manifest {
        Manifest {
            mode: "rdb".into(),
            redis_version: String::new(),
            pattern: None,
            keys: keys.iter().copied().collect(),
            files: BTreeMap::new(),
            rdb: None,
        }
    }

    #[test]
    fn a_throwaway_server_loads_the_file_and_differences_come_back_as_data() {
        let have = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        if !have {
            assert!(std::env::var_os("CI").is_none(), "redis-server must be installed in CI");
            eprintln!("skipping: redis-server is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        // The expiring key is far in the future: the server keeps all three keys.
        std::fs::write(&path, rdb::tests::sample(now_ms() + 3_600_000)).unwrap();
        let v = verify_rdb(&path, &manifest(&[(0, 2), (3, 1)])).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.keys, [(0, 2), (3, 1)].into());
        assert!(v.server_version.starts_with(|c: char| c.is_ascii_digit()), "{v:?}");
        let v = verify_rdb(&path, &manifest(&[(0, 5), (3, 1), (7, 1)])).unwrap();
        assert!(!v.ok);
        assert_eq!(v.mismatches.len(), 4, "{v:?}"); // two file differences, two server differences
        assert!(v.mismatches.iter().any(|m| m == "db0: expected 5 keys, the server loaded 2"), "{v:?}");
        // An expired key is dropped at load: allowed, because the file says it has expired.
        std::fs::write(&path, rdb::tests::sample(1_000)).unwrap();
        let v = verify_rdb(&path, &manifest(&[(0, 2), (3, 1)])).unwrap();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.keys, [(0, 1), (3, 1)].into());
        // A damaged file is an error, not a verdict.
        let mut bad = std::fs::read(&path).unwrap();
        bad[30] ^= 0xff;
        std::fs::write(&path, bad).unwrap();
        assert!(verify_rdb(&path, &manifest(&[])).unwrap_err().to_string().contains("checksum mismatch"));
    }
}
