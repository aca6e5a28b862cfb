//! Continuous replication of SQLite (`continuous = true`, `lifeboat replicate`): an application
//! writes timestamped rows in WAL mode while replication ships them; `restore --at` at random
//! moments between commits must bring back exactly the rows committed before each moment, and
//! `--txid` exactly a transaction. Replication is killed with SIGKILL mid-stream and goes on
//! without a gap; a checkpoint forced by another process while it is down starts a new
//! generation (and it says so) instead of leaving a silent gap. restic still checks the
//! repository with --read-data.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use rusqlite::Connection;

struct Setup {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    cfg: PathBuf,
    db: PathBuf,
}

fn setup() -> Setup {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    init(&repo);
    let db = dir.path().join("ledger.db");
    let cfg = dir.path().join("lifeboat.toml");
    std::fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"ledger\"\nkind = \"sqlite\"\npath = \"{}\"\ncontinuous = true\n",
            s(&repo),
            s(&db)
        ),
    )
    .unwrap();
    Setup { _dir: dir, repo, cfg, db }
}

/// The application: WAL mode, its own autocheckpoint left on.
fn app(db: &Path) -> Connection {
    let c = Connection::open(db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS filler(id INTEGER PRIMARY KEY, entry INTEGER, pad BLOB);",
    )
    .unwrap();
    c
}

/// One transaction: an entry and 20 rows of filler (a few pages); the time after the commit.
fn commit(c: &Connection, id: i64) -> DateTime<Utc> {
    c.execute_batch("BEGIN").unwrap();
    c.execute("INSERT INTO entries(id, at) VALUES (?1, ?2)", rusqlite::params![id, Utc::now().to_rfc3339()]).unwrap();
    for _ in 0..20 {
        c.execute("INSERT INTO filler(entry, pad) VALUES (?1, randomblob(900))", [id]).unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
    Utc::now()
}

struct Replicator {
    child: Child,
    events: Receiver<serde_json::Value>,
}

impl Replicator {
    fn start(cfg: &Path) -> Replicator {
        let mut child = bare()
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .args(["--config", s(cfg), "replicate", "--json", "--interval", "20ms", "--checkpoint-frames", "150"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Replicator { child, events: rx }
    }

    /// The next event of kind `kind`, with the ones before it.
    fn wait(&self, kind: &str, limit: Duration) -> (serde_json::Value, Vec<serde_json::Value>) {
        let until = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if e["event"] == kind => return (e, seen),
                Ok(e) => {
                    assert_ne!(e["event"], "error", "replication failed: {e}");
                    seen.push(e)
                }
                Err(_) => panic!("no {kind} event within {limit:?}; saw {seen:?}"),
            }
        }
    }

    /// Wait until transactions stop coming (nothing shipped for `quiet`); the last txid.
    fn settle(&self, quiet: Duration) -> u64 {
        let mut last = 0;
        while let Ok(e) = self.events.recv_timeout(quiet) {
            assert_ne!(e["event"], "error", "replication failed: {e}");
            if e["event"] == "shipped" {
                last = e["last"].as_u64().unwrap();
            }
        }
        last
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) -> Vec<serde_json::Value> {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "replicate exits 0 on SIGTERM");
        self.events.try_iter().collect()
    }
}

fn restore(st: &Setup, at: &[&str], name: &str) -> (Run, PathBuf) {
    let target = st.db.with_file_name(name);
    let mut args = vec!["restore", "latest", "--source", "ledger", "--target", s(&target), "--json"];
    args.extend_from_slice(at);
    (lbc(&st.cfg, &args), target)
}

fn entries(db: &Path) -> (i64, i64, i64) {
    let c = Connection::open(db).unwrap();
    let n: i64 = c.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0)).unwrap();
    let max: i64 = c.query_row("SELECT COALESCE(MAX(id), 0) FROM entries", [], |r| r.get(0)).unwrap();
    let filler: i64 = c.query_row("SELECT COUNT(*) FROM filler", [], |r| r.get(0)).unwrap();
    (n, max, filler)
}

#[test]
fn restores_exactly_the_rows_committed_before_each_moment_across_a_sigkill() {
    let st = setup();
    let a = app(&st.db);
    for id in 1..=5 {
        commit(&a, id);
    }
    let r = Replicator::start(&st.cfg);
    let (g, _) = r.wait("generation", Duration::from_secs(60));
    assert_eq!(g["reason"], "first run");
    r.wait("started", Duration::from_secs(10));
    let before_first_base = Utc::now() - chrono::Duration::seconds(3600);
    // Commits 600 ms apart; the time after each commit is what "committed before" means.
    let mut committed: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let mut r = r;
    for id in 6..=40 {
        if id == 21 {
            // Killed mid-stream; what is written while it is down stays in the log and is
            // shipped after the restart.
            r.kill();
        }
        committed.push((id, commit(&a, id)));
        std::thread::sleep(Duration::from_millis(600));
        if id == 23 {
            r = Replicator::start(&st.cfg);
            let (started, _) = r.wait("started", Duration::from_secs(30));
            assert_eq!(started["resumed"], true, "resumed without a new generation: {started}");
        }
    }
    let last_txid = r.settle(Duration::from_millis(1500));
    assert!(last_txid > 35, "transactions shipped: {last_txid}");
    let events = r.stop();
    assert!(events.iter().any(|e| e["event"] == "stopped"), "{events:?}");
    // On a local repository shipments were appended to open objects: the killed replicator's
    // was sealed at the restart, the last one finished at the stop; nothing is left open.
    let mut segments = Vec::new();
    let mut dirs = vec![st.repo.join("lifeboat/wal")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                segments.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(segments.iter().all(|n| n.ends_with(".frames")), "{segments:?}");
    assert!(segments.len() >= 2, "{segments:?}");

    // 20 random moments, each 300 ms after a commit (the next one is 600 ms later): replication
    // reads every 20 ms here, so a loaded machine has 300 ms to see each commit.
    let mut seed = 0x5eed_u64;
    for k in 0..20 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let (id, t) = committed[(seed >> 33) as usize % committed.len()];
        let at = (t + chrono::Duration::milliseconds(300)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (run, target) = restore(&st, &["--at", &at], &format!("at-{k}.db"));
        let j = run.ok().json();
        assert_eq!(entries(&target), (id, id, id * 20), "restore --at {at} must hold entries 1..={id}: {j}");
        assert_eq!(j["verification"]["integrity"][0], "ok", "{j}");
    }

    // --txid: exactly a transaction; the one --at reached is in the JSON.
    let (run, target) = restore(&st, &["--at", "latest"], "latest.db");
    let j = run.ok().json();
    assert_eq!(entries(&target), (40, 40, 800), "{j}");
    assert_eq!(j["txid"].as_u64(), Some(last_txid), "{j}");
    let (run, t2) = restore(&st, &["--txid", &(last_txid - 1).to_string()], "txid.db");
    let j2 = run.ok().json();
    assert_eq!(j2["txid"].as_u64(), Some(last_txid - 1), "{j2}");
    let (n, _, _) = entries(&t2);
    assert!(n == 39 || n == 40, "one transaction before the last: {n} entries");

    // Bad input: a transaction never shipped, a moment before the first base, both at once.
    let (run, _) = restore(&st, &["--txid", &(last_txid + 100).to_string()], "never.db");
    let e = run.code(1).one_error_line();
    assert!(e.contains("was never shipped"), "{e}");
    let at = before_first_base.to_rfc3339();
    let (run, _) = restore(&st, &["--at", &at], "early.db");
    let e = run.code(1).one_error_line();
    assert!(e.contains("no point-in-time base backup"), "{e}");
    let (run, _) = restore(&st, &["--at", "latest", "--txid", "3"], "both.db");
    run.code(2);
    // An existing target is refused without --overwrite (nothing half-written).
    let (run, _) = restore(&st, &["--at", "latest"], "latest.db");
    let e = run.code(1).one_error_line();
    assert!(e.contains("--overwrite"), "{e}");
    assert_eq!(entries(&target), (40, 40, 800));

    let out = restic(&st.repo).args(["check", "--read-data"]).output().unwrap();
    assert!(out.status.success(), "restic check: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_checkpoint_forced_while_replication_is_down_starts_a_new_generation() {
    let st = setup();
    let a = app(&st.db);
    for id in 1..=3 {
        commit(&a, id);
    }
    let mut r = Replicator::start(&st.cfg);
    r.wait("started", Duration::from_secs(60));
    for id in 4..=10 {
        commit(&a, id);
    }
    // While replication holds the log, another process cannot restart it.
    a.busy_timeout(Duration::from_millis(100)).unwrap();
    let busy: i64 = a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, 1, "TRUNCATE must be refused while replication pins the log");
    a.busy_timeout(Duration::from_secs(10)).unwrap();
    r.settle(Duration::from_millis(800));
    let first_gen_end = Utc::now();
    std::thread::sleep(Duration::from_millis(300));
    r.kill();
    // Replication is down: the application truncates the log, and goes on writing.
    let busy: i64 = a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, 0);
    for id in 11..=15 {
        commit(&a, id);
    }
    let r = Replicator::start(&st.cfg);
    let (g, _) = r.wait("generation", Duration::from_secs(60));
    assert!(g["reason"].as_str().unwrap().contains("no longer holds"), "{g}");
    let (started, _) = r.wait("started", Duration::from_secs(10));
    assert_eq!(started["resumed"], false);
    for id in 16..=18 {
        commit(&a, id);
    }
    r.settle(Duration::from_millis(800));
    r.stop();
    let at = first_gen_end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (run, old) = restore(&st, &["--at", &at], "first.db");
    run.ok();
    assert_eq!(entries(&old).0, 10, "the first generation ends at entry 10");
    let (run, new) = restore(&st, &["--at", "latest"], "second.db");
    run.ok();
    assert_eq!(entries(&new), (18, 18, 360));
    // Two bases, tagged.
    let snaps = lbc(&st.cfg, &["snapshots", "--json", "--tag", "replica-base"]).ok().json();
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");

    // Retention keeping one snapshot: the older base goes, and with it its generation's
    // segments (nothing kept can replay them); the kept base keeps its whole chain.
    let mut text = std::fs::read_to_string(&st.cfg).unwrap();
    text.push_str("retention = { last = 1 }\n");
    std::fs::write(&st.cfg, text).unwrap();
    let applied = lbc(&st.cfg, &["apply-retention", "--json"]).ok().json();
    let removed = applied["sources"][0]["wal_removed"].as_u64().unwrap_or_else(|| panic!("{applied}"));
    assert!(removed >= 1, "the first generation's segments are pruned: {applied}");
    let (run, again) = restore(&st, &["--at", "latest"], "after-retention.db");
    run.ok();
    assert_eq!(entries(&again), (18, 18, 360));
    let (run, _) = restore(&st, &["--at", &at], "gone.db");
    let e = run.code(1).one_error_line();
    assert!(e.contains("no point-in-time base backup"), "{e}");
    let out = restic(&st.repo).args(["check", "--read-data"]).output().unwrap();
    assert!(out.status.success(), "restic check: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sources_that_cannot_be_replicated_are_refused_with_one_line() {
    let st = setup();
    // Not in WAL mode.
    Connection::open(&st.db).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
    let e = lbc(&st.cfg, &["replicate"]).code(1).one_error_line();
    assert!(e.contains("journal_mode is delete"), "{e}");
    // Not a continuous source.
    let plain = st.cfg.with_file_name("plain.toml");
    std::fs::write(
        &plain,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            s(&st.repo),
            s(&st.db)
        ),
    )
    .unwrap();
    let e = lbc(&plain, &["replicate", "db"]).code(2).one_error_line();
    assert!(e.contains("not replicated continuously"), "{e}");
    let e = lbc(&plain, &["replicate"]).code(2).one_error_line();
    assert!(e.contains("continuous = true"), "{e}");
    let e = lbc(&st.cfg, &["replicate", "--interval", "soon"]).code(2).one_error_line();
    assert!(e.contains("--interval"), "{e}");
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(name))?.rsplit(' ').next()?.parse().ok()
}

#[test]
fn the_daemon_replicates_continuous_sources_and_exports_the_archive_age() {
    let st = setup();
    let a = app(&st.db);
    commit(&a, 1);
    let log = st.db.with_file_name("daemon.log");
    let mut child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .args(["--config", s(&st.cfg), "daemon", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let port: u16 = wait_for(Duration::from_secs(30), || {
        let text = read();
        let line = text.lines().find(|l| l.contains("server_listening"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    })
    .unwrap_or_else(|| panic!("no server_listening line:\n{}", read()));
    wait_for(Duration::from_secs(60), || read().contains("replication_started").then_some(()))
        .unwrap_or_else(|| panic!("replication did not start:\n{}", read()));
    assert!(read().contains("replication_generation"), "{}", read());
    for id in 2..=10 {
        commit(&a, id);
    }
    // The metrics follow the shipments without reading the repository.
    let txid = wait_for(Duration::from_secs(20), || {
        let m = http_get(port, "/metrics");
        let t = metric(&m, "lifeboat_replication_txid{source=\"ledger\"}")?;
        (t >= 10.0).then_some(m)
    })
    .unwrap_or_else(|| panic!("no replication_txid ≥ 10 in the metrics:\n{}", http_get(port, "/metrics")));
    let age = metric(&txid, "lifeboat_wal_archive_age_seconds{source=\"ledger\"}").unwrap();
    assert!(age < 5.0, "archive age {age}");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{}", read());
    assert!(read().contains("replication_stopped"), "{}", read());
    let (run, target) = restore(&st, &["--at", "latest"], "from-daemon.db");
    run.ok();
    assert_eq!(entries(&target), (10, 10, 200));
    // health counts the newest segment as the recovery point.
    let h = lbc(&st.cfg, &["health", "--json"]).json();
    assert_eq!(h["sources"][0]["name"], "ledger", "{h}");
}

#[test]
fn verify_restore_test_replays_a_generation_to_its_last_transaction() {
    let st = setup();
    let a = app(&st.db);
    commit(&a, 1);
    let r = Replicator::start(&st.cfg);
    r.wait("started", Duration::from_secs(60));
    for id in 2..=12 {
        commit(&a, id);
    }
    r.settle(Duration::from_millis(800));
    // The application closes first; then replication stops, as the last connection: it must
    // not fold the log into the database (SQLite's checkpoint on close), so the next start
    // goes on from it instead of taking a new base.
    drop(a);
    r.stop();
    assert!(st.db.with_file_name("ledger.db-wal").exists(), "the log survives replication's stop");
    let r = Replicator::start(&st.cfg);
    let (started, _) = r.wait("started", Duration::from_secs(60));
    assert_eq!(started["resumed"], true, "{started}");
    // A second replicator of the same database is refused while the first runs.
    let e = lbc(&st.cfg, &["replicate"]).code(1).one_error_line();
    assert!(e.contains("already being replicated"), "{e}");
    r.stop();
    let v = lbc(&st.cfg, &["verify", "--restore-test", "--json"]).ok().json();
    let text = v.to_string();
    assert!(text.contains("\"replay\""), "{text}");
    let found = text.contains("\"entries\":12");
    assert!(found, "the restore test replays to entry 12: {text}");
}
