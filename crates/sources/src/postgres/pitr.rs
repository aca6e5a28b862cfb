//! Point-in-time recovery for PostgreSQL: a physical base backup of the whole cluster
//! (`pg_basebackup` in tar format, streamed into the repository) plus the WAL archive that
//! `archive_command = 'lifeboat wal-push %p'` fills; a restore unpacks a base backup into a new
//! data directory and configures recovery (`restore_command`, `recovery_target_time`,
//! `recovery.signal`), and can start that cluster on a scratch port to replay it and count rows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_format::Node;
use lifeboat_repository::archiver::{Content, Entry, ManifestHook};
use lifeboat_repository::{restorer, Repository};
use serde::{Deserialize, Serialize};

use super::{collect_stderr, counts, db_err, last_line, Connection, PgClients, Session};
use crate::SourceError;

/// The base backup's file in the snapshot.
pub const BASE_FILE: &str = "base.tar";
/// The manifest's `mode` of a base backup.
pub const MODE: &str = "pitr-base";

/// What a base backup records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BaseManifest {
    /// Always [`MODE`].
    pub mode: String,
    /// The tar file in the snapshot.
    pub file: String,
    /// `SHOW server_version`.
    pub server_version: String,
    /// The cluster's system identifier (WAL of another cluster does not apply).
    pub system_identifier: String,
    /// WAL segment size in bytes.
    pub wal_segment_size: u64,
    /// Timeline the backup started on.
    pub timeline: u32,
    /// WAL position the backup starts at (recovery needs WAL from here).
    pub start_lsn: String,
    /// The WAL segment holding `start_lsn`: older segments are not needed by this base.
    pub start_wal: String,
    /// The server's WAL position when the backup had ended (at or past the earliest consistent
    /// point).
    pub end_lsn: String,
    /// When the backup started.
    pub started: DateTime<Utc>,
    /// When it ended (recovery can stop at a time after this).
    pub finished: Option<DateTime<Utc>>,
}

/// Whether a snapshot's source manifest is a base backup.
pub fn is_base(manifest: &serde_json::Value) -> bool {
    manifest.get("mode").and_then(|m| m.as_str()) == Some(MODE)
}

/// Parse `X/Y` into a 64-bit position.
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The name of the WAL segment holding `lsn` on `timeline`.
pub fn segment_name(timeline: u32, lsn: u64, segment_size: u64) -> String {
    let segno = lsn / segment_size.max(1);
    let per_id = 0x1_0000_0000 / segment_size.max(1);
    format!("{timeline:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

/// `16MB` / `1GB` (as `SHOW wal_segment_size` prints) in bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "kB" => n << 10,
        "MB" => n << 20,
        "GB" => n << 30,
        "" | "B" => n,
        _ => return None,
    })
}

/// Start a base backup of the cluster `conn` reaches: checks that WAL archiving is on (a base
/// without its WAL cannot be recovered), then streams `pg_basebackup --format=tar`; the finish
/// hook waits for it (which waits until the WAL the backup needs is archived) and completes the
/// manifest with the start and end positions. Returns the started backup and its manifest as
/// known before the copy.
pub fn base_backup(conn: &Connection) -> Result<(crate::artifact::Started, BaseManifest), SourceError> {
    let mut s = Session::open(conn, "postgres")?;
    let info = s.query(
        "SHOW server_version;\nSELECT system_identifier FROM pg_control_system();\nSHOW wal_segment_size;\n\
         SHOW archive_mode;\nSHOW archive_command;\nSHOW wal_level;",
    )?;
    s.close();
    let target = conn.target("postgres");
    let get = |i: usize| info.get(i).cloned().unwrap_or_default();
    if get(3) == "off" || get(4).trim().is_empty() || get(4) == "(disabled)" {
        return Err(db_err(
            &target,
            "WAL archiving is off: a point-in-time source needs archive_mode = on and \
             archive_command = 'lifeboat wal-push --source NAME %p' in postgresql.conf (see docs/pitr.md)",
        ));
    }
    if get(5) == "minimal" {
        return Err(db_err(&target, "wal_level is minimal: a base backup needs wal_level = replica"));
    }
    let segment = parse_size(&get(2)).unwrap_or(16 << 20);
    let mut c = conn.command("pg_basebackup");
    c.args(["-D", "-", "--format=tar", "--wal-method=none", "--checkpoint=fast", "--verbose"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = conn.spawn(c, "pg_basebackup", "postgres")?;
    let err = collect_stderr(&mut child);
    let stdout = child.stdout.take().ok_or_else(|| db_err(&target, "pg_basebackup has no stdout"))?;
    // The server sends backup_label first: its START WAL LOCATION is where recovery begins.
    let head = Arc::new(Mutex::new(Vec::new()));
    let reader = Head { inner: stdout, head: head.clone() };
    let now = Utc::now();
    let node = crate::artifact::node(BASE_FILE, 0o600, now);
    let entries = vec![Entry::File { node, content: Content::Reader(Box::new(reader)) }];
    let conn = conn.clone();
    let manifest = BaseManifest {
        mode: MODE.into(),
        file: BASE_FILE.into(),
        server_version: get(0),
        system_identifier: get(1),
        wal_segment_size: segment,
        timeline: 0,
        start_lsn: String::new(),
        start_wal: String::new(),
        end_lsn: String::new(),
        started: now,
        finished: None,
    };
    let initial = manifest.clone();
    let state = Mutex::new(Some(child));
    let finish: ManifestHook = Arc::new(move || {
        let Some(mut child) = state.lock().ok().and_then(|mut g| g.take()) else {
            return Err(format!("{target}: already finished"));
        };
        let status = child.wait().map_err(|e| format!("{target}: pg_basebackup: {e}"))?;
        if !status.success() {
            return Err(format!("{target}: pg_basebackup failed ({status}): {}", last_line(&err)));
        }
        let mut m = manifest.clone();
        let label = head.lock().ok().and_then(|g| tar_file(&g, "backup_label")).unwrap_or_default();
        for line in label.lines() {
            if let Some(rest) = line.split("START WAL LOCATION: ").nth(1) {
                m.start_lsn = rest.split_whitespace().next().unwrap_or_default().to_string();
            }
            if let Some(rest) = line.split("START TIMELINE: ").nth(1) {
                m.timeline = rest.trim().parse().unwrap_or(0);
            }
        }
        let start = parse_lsn(&m.start_lsn)
            .filter(|_| m.timeline > 0)
            .ok_or_else(|| format!("{target}: the base backup has no backup_label with its start position"))?;
        m.start_wal = segment_name(m.timeline, start, m.wal_segment_size);
        // The backup has ended (and its WAL is archived): the current position is past its end.
        let mut s = Session::open(&conn, "postgres").map_err(|e| e.to_string())?;
        m.end_lsn =
            s.query("SELECT pg_current_wal_lsn();").map_err(|e| e.to_string())?.into_iter().next().unwrap_or_default();
        s.close();
        m.finished = Some(Utc::now());
        serde_json::to_value(&m).map(Some).map_err(|e| e.to_string())
    });
    let started =
        crate::artifact::Started { paths: vec![format!("/{BASE_FILE}")], entries: entries.into_iter(), finish };
    Ok((started, initial))
}

/// The content of the file `name` among the tar entries that fit in `head` (a data directory
/// may also hold a `backup_label.old` from an earlier recovery: only the exact name counts).
fn tar_file(head: &[u8], name: &str) -> Option<String> {
    let mut at = 0;
    while at + 512 <= head.len() {
        let h = &head[at..at + 512];
        if h.iter().all(|b| *b == 0) {
            return None;
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            String::from_utf8_lossy(&f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())]).trim().to_string()
        };
        let size = u64::from_str_radix(&field(124..136), 8).ok()? as usize;
        let data = at + 512;
        if field(0..100) == name && h[156] != b'L' {
            return head.get(data..data + size).map(|d| String::from_utf8_lossy(d).into_owned());
        }
        at = data + size.div_ceil(512) * 512;
    }
    None
}

/// Passes a stream through, keeping its first [`HEAD`] bytes.
struct Head<R> {
    inner: R,
    head: Arc<Mutex<Vec<u8>>>,
}

/// How much of the tar stream is kept to find `backup_label` in.
const HEAD: usize = 1 << 20;

impl<R: std::io::Read> std::io::Read for Head<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut h) = self.head.lock() {
            let room = HEAD.saturating_sub(h.len()).min(n);
            h.extend_from_slice(&buf[..room]);
        }
        Ok(n)
    }
}

/// How a restored cluster finds its WAL and where it stops.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The `restore_command` (with `%f` and `%p`).
    pub restore_command: String,
    /// Stop replaying at this time (`None`: replay all archived WAL).
    pub target_time: Option<DateTime<Utc>>,
}

/// Unpack the base backup `node` into `dir` (which must not exist, or be empty) and configure
/// recovery. The directory is made 0700, as PostgreSQL requires.
pub fn restore_base(repo: &Repository, node: &Node, dir: &Path, recovery: &Recovery) -> Result<(), SourceError> {
    let what = dir.display().to_string();
    let fail = |m: String| db_err(&what, m);
    if dir.exists() && std::fs::read_dir(dir).map_err(|e| fail(e.to_string()))?.next().is_some() {
        return Err(fail(
            "the target directory is not empty: a data directory is restored only into an empty one".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| fail(e.to_string()))?;
    let mut tar = Command::new("tar")
        .args(["-x", "-f", "-", "-C"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run tar: {e}")))?;
    let err = collect_stderr(&mut tar);
    let index = repo.index().map_err(|e| fail(e.to_string()))?;
    let copied = {
        let mut stdin = tar.stdin.take().ok_or_else(|| fail("tar has no stdin".into()))?;
        let r = restorer::copy_content(repo, &index, node, &mut stdin);
        let _ = stdin.flush();
        r
    };
    let status = tar.wait().map_err(|e| fail(format!("tar: {e}")))?;
    copied.map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("tar failed ({status}): {}", last_line(&err))));
    }
    // Settings after the base's own (postgresql.auto.conf is read last: later lines win).
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join("postgresql.auto.conf"))
        .map_err(|e| fail(format!("postgresql.auto.conf: {e}")))?;
    let mut text = String::from("\n# Added by lifeboat restore (point-in-time recovery)\n");
    text.push_str(&format!("restore_command = '{}'\n", recovery.restore_command.replace('\'', "''")));
    text.push_str("archive_mode = 'off'\n");
    // Exactly one target: a base taken from an earlier point-in-time restore carries that
    // restore's settings, which later lines override (empty means unset).
    for unset in ["recovery_target", "recovery_target_lsn", "recovery_target_name", "recovery_target_xid"] {
        text.push_str(&format!("{unset} = ''\n"));
    }
    match recovery.target_time {
        Some(t) => {
            text.push_str(&format!("recovery_target_time = '{}'\n", t.format("%Y-%m-%d %H:%M:%S%.6f+00")));
            text.push_str("recovery_target_inclusive = 'false'\n");
        }
        None => text.push_str("recovery_target_time = ''\n"),
    }
    text.push_str("recovery_target_timeline = 'latest'\n");
    text.push_str("recovery_target_action = 'promote'\n");
    conf.write_all(text.as_bytes())
        .and_then(|_| conf.sync_all())
        .map_err(|e| fail(format!("postgresql.auto.conf: {e}")))?;
    std::fs::write(dir.join("recovery.signal"), b"").map_err(|e| fail(format!("recovery.signal: {e}")))?;
    Ok(())
}

/// The server programs (`pg_ctl`) for a cluster of `server_version`: `bin_dir` when it has
/// them, else the newest `/usr/lib/postgresql/<major>/bin` of that major version.
pub fn server_bin(bin_dir: Option<&str>, server_version: &str) -> Option<PathBuf> {
    if let Some(d) = bin_dir {
        if Path::new(d).join("pg_ctl").exists() {
            return Some(d.into());
        }
    }
    let major = server_version.split(['.', ' ']).next().unwrap_or_default();
    let candidate = Path::new("/usr/lib/postgresql").join(major).join("bin");
    candidate.join("pg_ctl").exists().then_some(candidate)
}

/// The outcome of replaying a restored data directory.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    /// Seconds from start to the end of recovery.
    pub seconds: f64,
    /// Rows per table of the database counted afterwards.
    pub tables: std::collections::BTreeMap<String, u64>,
    /// The time of the last transaction replayed, as the server reports it.
    pub last_replayed: Option<String>,
}

/// Start the restored cluster in `dir` on `port` (socket in `dir`, no TCP), wait until recovery
/// has ended (within `timeout`), count `database`'s rows, stop it.
pub fn replay(bin: &Path, dir: &Path, port: u16, database: &str, timeout: Duration) -> Result<Replay, SourceError> {
    let what = format!("restored cluster {}", dir.display());
    let fail = |m: String| db_err(&what, m);
    let started = Instant::now();
    let log = dir.join("lifeboat-replay.log");
    let opts = format!("-p {port} -k {} -c listen_addresses='' -c archive_mode=off", dir.display());
    let out = Command::new(bin.join("pg_ctl"))
        .args(["-D"])
        .arg(dir)
        .args(["-o", &opts, "-l"])
        .arg(&log)
        .args(["-w", "-t", &timeout.as_secs().max(1).to_string(), "start"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("cannot run pg_ctl: {e}")))?;
    let tail =
        || std::fs::read_to_string(&log).unwrap_or_default().lines().rev().take(3).collect::<Vec<_>>().join(" | ");
    if !out.status.success() {
        return Err(fail(format!("did not start: {} {}", String::from_utf8_lossy(&out.stderr).trim(), tail())));
    }
    let stop = || {
        let _ = Command::new(bin.join("pg_ctl")).arg("-D").arg(dir).args(["-m", "fast", "-w", "stop"]).output();
    };
    let conn = Connection {
        host: Some(dir.display().to_string()),
        port: Some(port),
        user: None,
        password: None,
        bin_dir: Some(bin.display().to_string()),
    };
    let result = (|| {
        loop {
            let mut s = Session::open(&conn, "postgres")?;
            let rows = s.query("SELECT pg_is_in_recovery();")?;
            s.close();
            if rows.first().map(String::as_str) == Some("f") {
                break;
            }
            if started.elapsed() > timeout {
                return Err(fail(format!("recovery did not end within {} s: {}", timeout.as_secs(), tail())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut s = Session::open(&conn, database)?;
        let tables = counts(&mut s)?;
        let last = s.query("SELECT coalesce(pg_last_xact_replay_timestamp()::text, '');")?;
        s.close();
        Ok(Replay { seconds, tables, last_replayed: last.into_iter().next().filter(|l| !l.is_empty()) })
    })();
    stop();
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_one_file_in_a_tar_stream() {
        let entry = |name: &str, body: &[u8]| {
            let mut h = vec![0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            let size = format!("{:011o}\0", body.len());
            h[124..136].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            let mut v = h;
            v.extend_from_slice(body);
            v.resize(v.len().div_ceil(512) * 512, 0);
            v
        };
        let mut tar = entry("backup_label.old", b"START WAL LOCATION: 0/1 (file x)\n");
        tar.extend(entry("backup_label", b"START WAL LOCATION: 0/4000028 (file y)\nSTART TIMELINE: 2\n"));
        tar.extend(vec![0u8; 1024]);
        assert_eq!(
            tar_file(&tar, "backup_label").unwrap(),
            "START WAL LOCATION: 0/4000028 (file y)\nSTART TIMELINE: 2\n"
        );
        assert_eq!(tar_file(&tar, "missing"), None);
        assert_eq!(tar_file(&tar[..700], "backup_label"), None);
    }

    #[test]
    fn positions_and_segment_names() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x"), None);
        assert_eq!(segment_name(1, 0x2000028, 16 << 20), "000000010000000000000002");
        assert_eq!(segment_name(2, (5 << 32) | 0xFF00_0000, 16 << 20), "0000000200000005000000FF");
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
    }
}
