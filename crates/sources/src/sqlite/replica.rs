//! Following a live SQLite database's write-ahead log, the way Litestream does, so every
//! committed transaction can be shipped within a fraction of a second.
//!
//! - A read transaction is held open (the *pin*): while it is, no checkpoint can restart the
//!   log, so frames not yet shipped cannot be overwritten; other checkpoints can only copy
//!   frames into the database file, which is harmless.
//! - Replication takes over restarting the log ([`Follower::checkpoint`]): a passive
//!   checkpoint, then under the write lock it ships what is new, drops the pin and makes a
//!   write that changes nothing (`PRAGMA user_version` set to its own value), so that SQLite
//!   restarts the log while replication knows every frame of the old one; then it pins the
//!   new log.
//! - Any other change of the log (another process's `wal_checkpoint(TRUNCATE)` while
//!   replication was not running, a deleted `-wal`) is seen as a different log header:
//!   continuity is lost and the caller starts a new generation from a new base. There is no
//!   silent gap.
//! - A base ([`Follower::base`]) is a copy of the database file made while pinned, with every
//!   frame of the current log applied to it: the database as of the last commit in the log,
//!   page for page, so later frames apply to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::walfile::{self, Commit, Position, Tail, WalHeader};
use crate::SourceError;

/// What a sync found.
#[derive(Debug, PartialEq, Eq)]
pub enum Continuity {
    /// All is shipped up to the position.
    Continuous,
    /// Another writer held the lock: try again later.
    Busy,
    /// The log is not the one replication was following: start a new generation.
    Lost(String),
}

/// Ships transactions: gets them with the position after the last one, and must make them
/// durable before it returns `Ok`.
pub type Ship<'a> = dyn FnMut(Vec<Commit>, Position) -> Result<(), SourceError> + 'a;

/// A follower of one database's log.
pub struct Follower {
    db: PathBuf,
    wal: PathBuf,
    /// Two connections for the pin, so a newer pin is taken before the older one is dropped.
    pins: [Connection; 2],
    /// The one holding the pin.
    pinned: Option<usize>,
    writer: Connection,
    pos: Option<Position>,
    /// The log file held open for reading, with its inode; opened again when the file at the
    /// log's path is another one ([`Follower::log_replaced`], or seen at most a second later).
    log: Option<(std::fs::File, u64)>,
    /// When the log's path was last compared with the file held open.
    checked: std::time::Instant,
}

fn err(path: &Path, e: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: path.display().to_string(), message: e.to_string() }
}

impl Follower {
    /// Open `db` (which must be in WAL mode) for following. `busy` bounds how long the write
    /// lock is waited for in [`Follower::checkpoint`].
    pub fn open(db: &Path, busy: Duration) -> Result<Follower, SourceError> {
        let db = std::path::absolute(db).map_err(|e| SourceError::Path { path: db.into(), source: e })?;
        if !db.is_file() {
            return Err(err(&db, "no such database file"));
        }
        let open = || -> Result<Connection, SourceError> {
            let c =
                Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                    .map_err(|e| err(&db, e))?;
            c.busy_timeout(busy).map_err(|e| err(&db, e))?;
            // Replication's own connections never checkpoint on their own, not even when the
            // last of them closes (which would fold the log into the database and delete it, and
            // the next start could not go on from it).
            c.pragma_update(None, "wal_autocheckpoint", 0).map_err(|e| err(&db, e))?;
            c.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .map_err(|e| err(&db, e))?;
            Ok(c)
        };
        let pin = open()?;
        let mode: String = pin.query_row("PRAGMA journal_mode", [], |r| r.get(0)).map_err(|e| err(&db, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(err(
                &db,
                format!(
                    "journal_mode is {mode}: continuous replication follows the write-ahead log \
                     (run `PRAGMA journal_mode=WAL` once, as the application's owner)"
                ),
            ));
        }
        let writer = open()?;
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let pins = [pin, open()?];
        Ok(Follower {
            db,
            wal: PathBuf::from(wal),
            pins,
            pinned: None,
            writer,
            pos: None,
            log: None,
            checked: std::time::Instant::now(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db
    }

    /// The write-ahead log's path.
    pub fn wal(&self) -> &Path {
        &self.wal
    }

    /// Where shipping stands; `None` before a base or a resume.
    pub fn position(&self) -> Option<Position> {
        self.pos
    }

    /// How many frames the current log has past the shipped position's start (what the next
    /// checkpoint would fold into the database file).
    pub fn log_frames(&self) -> u32 {
        self.pos.map(|p| p.frames).unwrap_or(0)
    }

    fn begin_read(&self, i: usize) -> Result<(), SourceError> {
        let c = &self.pins[i];
        c.execute_batch("BEGIN").map_err(|e| err(&self.db, e))?;
        if let Err(e) = c.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())) {
            let _ = c.execute_batch("ROLLBACK");
            return Err(err(&self.db, format!("cannot hold a read transaction: {e}")));
        }
        Ok(())
    }

    /// Hold the log (no-op when held).
    fn pin(&mut self) -> Result<(), SourceError> {
        if self.pinned.is_none() {
            self.begin_read(0)?;
            self.pinned = Some(0);
        }
        Ok(())
    }

    /// Move the pin to the log's current end: the new read transaction starts before the old
    /// one ends, so the log is held throughout.
    fn repin(&mut self) -> Result<(), SourceError> {
        match self.pinned {
            None => self.pin(),
            Some(old) => {
                let new = 1 - old;
                self.begin_read(new)?;
                let _ = self.pins[old].execute_batch("ROLLBACK");
                self.pinned = Some(new);
                Ok(())
            }
        }
    }

    fn unpin(&mut self) {
        if let Some(i) = self.pinned.take() {
            let _ = self.pins[i].execute_batch("ROLLBACK");
        }
    }

    /// Continue from `pos` (a position shipped earlier, before a restart of replication) if
    /// the log still holds it: the same log, with the same frames up to it. `false` when it
    /// does not (the caller starts a new generation).
    pub fn resume(&mut self, pos: &Position) -> Result<bool, SourceError> {
        self.pin()?;
        let still = walfile::still_at(&self.wal, pos).map_err(|e| err(&self.wal, e))?;
        if still {
            self.pos = Some(*pos);
        }
        Ok(still)
    }

    /// Ship the transactions committed since the shipped position (at most about `max_frames`
    /// frames' worth; call again when it returns with more to come). `Lost` when the log was
    /// restarted by someone else.
    pub fn poll(&mut self, max_frames: u32, ship: &mut Ship<'_>) -> Result<(Continuity, usize), SourceError> {
        let Some(pos) = self.pos else { return Ok((Continuity::Lost("no shipped position".into()), 0)) };
        self.pin()?;
        let tail = match self.log_file() {
            Ok(Some(f)) => walfile::read_from_file(f, &pos, max_frames),
            Ok(None) => Ok(Tail::Other(None)),
            Err(e) => Err(e),
        };
        let tail = tail.map_err(|e| err(&self.wal, e))?;
        match tail {
            Tail::Same(commits, next) => {
                let n = commits.len();
                if n > 0 {
                    ship(commits, next)?;
                    self.pos = Some(next);
                }
                Ok((Continuity::Continuous, n))
            }
            Tail::Other(h) => {
                self.log = None;
                Ok((Continuity::Lost(lost_why(&pos.header, h.as_ref())), 0))
            }
        }
    }

    /// The file at the log's path may be another one now (it was created, deleted or renamed
    /// over): the next read opens it again.
    pub fn log_replaced(&mut self) {
        self.log = None;
    }

    /// The log file, held open; `None` when there is none. Once a second the file at the
    /// log's path is compared with the one held (a replaced log is read from its path).
    fn log_file(&mut self) -> std::io::Result<Option<&std::fs::File>> {
        use std::os::unix::fs::MetadataExt;
        if self.log.is_some() && self.checked.elapsed() >= Duration::from_secs(1) {
            self.checked = std::time::Instant::now();
            let at_path = match std::fs::metadata(&self.wal) {
                Ok(m) => Some(m.ino()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            if at_path != self.log.as_ref().map(|(_, ino)| *ino) {
                self.log = None;
            }
        }
        if self.log.is_none() {
            let f = match std::fs::File::open(&self.wal) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let ino = f.metadata()?.ino();
            self.checked = std::time::Instant::now();
            self.log = Some((f, ino));
        }
        Ok(self.log.as_ref().map(|(f, _)| f))
    }

    /// Restart the log under replication's control (see the module documentation): ships
    /// what is new through `ship` first. With no shipped position yet (a new generation), it
    /// only makes sure the log is pinned for [`Follower::base`].
    ///
    /// The order matters. The passive checkpoint runs while the pin still holds the log (so
    /// it copies only shipped frames), before the write lock is taken: a transaction that
    /// starts on a fully copied log reads from the database file alone, and only such a
    /// writer restarts the log. Then, under the write lock, whatever came in between is
    /// shipped, the pin is dropped and the no-op write made. Right after its commit the log
    /// is either the same one (someone still reads the old log: no restart this time) or a
    /// new one whose checkpoint sequence is exactly one more (restarted by that write, after
    /// every frame of the old log was shipped); anything else is lost continuity.
    pub fn checkpoint(&mut self, ship: &mut Ship<'_>) -> Result<Continuity, SourceError> {
        // Hold the log at its end, so the checkpoint can copy all of it.
        self.repin()?;
        if let Some(lost) = self.ship_all(ship)? {
            return Ok(lost);
        }
        // Busy when an application checkpoint runs at the same time: then no restart now.
        let _ = self.writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        match self.writer.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
            {
                return Ok(Continuity::Busy)
            }
            Err(e) => return Err(err(&self.db, e)),
        }
        let under_lock = (|| -> Result<Option<Continuity>, SourceError> {
            if let Some(lost) = self.ship_all(ship)? {
                return Ok(Some(lost));
            }
            self.unpin();
            let uv: i64 =
                self.writer.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| err(&self.db, e))?;
            self.writer.execute_batch(&format!("PRAGMA user_version = {uv}")).map_err(|e| err(&self.db, e))?;
            Ok(None)
        })();
        let outcome = match under_lock {
            Ok(None) => self.writer.execute_batch("COMMIT").map_err(|e| err(&self.db, e)),
            other => {
                let _ = self.writer.execute_batch("ROLLBACK");
                self.pin()?;
                return other.map(|s| s.unwrap_or(Continuity::Continuous));
            }
        };
        // The log as the no-op commit left it, read before and after pinning it again: both
        // must agree.
        let before = walfile::header(&self.wal).map_err(|e| err(&self.wal, e));
        self.pin()?;
        outcome?;
        let before = before?;
        let after = walfile::header(&self.wal).map_err(|e| err(&self.wal, e))?;
        let Some(pos) = self.pos else { return Ok(Continuity::Continuous) };
        match (before, after) {
            (Some(b), Some(a)) if b.same_log(&a) && b.same_log(&pos.header) => Ok(Continuity::Continuous),
            (Some(b), Some(a))
                if b.same_log(&a)
                    && b.checkpoint_seq == pos.header.checkpoint_seq.wrapping_add(1)
                    && b.salt1 == pos.header.salt1.wrapping_add(1)
                    && b.page_size == pos.header.page_size =>
            {
                self.pos = Some(Position::start(b));
                Ok(Continuity::Continuous)
            }
            (_, a) => Ok(Continuity::Lost(lost_why(&pos.header, a.as_ref()))),
        }
    }

    /// Ship everything committed after the shipped position (if there is one); `Some(Lost)`
    /// when the log is not the one it was in.
    fn ship_all(&mut self, ship: &mut Ship<'_>) -> Result<Option<Continuity>, SourceError> {
        let Some(pos) = self.pos else { return Ok(None) };
        match walfile::read_from(&self.wal, &pos, u32::MAX).map_err(|e| err(&self.wal, e))? {
            Tail::Same(commits, next) => {
                if !commits.is_empty() {
                    ship(commits, next)?;
                    self.pos = Some(next);
                }
                Ok(None)
            }
            Tail::Other(h) => Ok(Some(Continuity::Lost(lost_why(&pos.header, h.as_ref())))),
        }
    }

    /// A base for a new generation, written to `dir` under the database's file name: the
    /// database as of the last transaction in the log, and the position after it (shipping
    /// goes on from there). Call after [`Follower::checkpoint`], which pins the log.
    pub fn base(&mut self, dir: &Path) -> Result<(PathBuf, Position), SourceError> {
        self.pin()?;
        let name = self.db.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "database.db".into());
        let copy = dir.join(name);
        let header = walfile::header(&self.wal)
            .map_err(|e| err(&self.wal, e))?
            .ok_or_else(|| err(&self.wal, "the write-ahead log has no valid header after a checkpoint"))?;
        std::fs::copy(&self.db, &copy).map_err(|e| err(&self.db, format!("cannot copy the database: {e}")))?;
        let (commits, end) = match walfile::read_from(&self.wal, &Position::start(header), u32::MAX) {
            Ok(Tail::Same(c, end)) => (c, end),
            Ok(Tail::Other(_)) => return Err(err(&self.wal, "the log changed while the base was made")),
            Err(e) => return Err(err(&self.wal, e)),
        };
        let mut f = std::fs::OpenOptions::new().write(true).open(&copy).map_err(|e| err(&copy, e))?;
        walfile::apply(&mut f, header.page_size, &commits).map_err(|e| err(&copy, e))?;
        f.sync_all().map_err(|e| err(&copy, e))?;
        drop(f);
        match walfile::header(&self.wal).map_err(|e| err(&self.wal, e))? {
            Some(h) if h.same_log(&header) => {}
            _ => return Err(err(&self.wal, "the log was restarted while the base was made")),
        }
        self.pos = Some(end);
        Ok((copy, end))
    }

    /// Forget the shipped position (a new generation follows).
    pub fn reset(&mut self) {
        self.pos = None;
        self.log = None;
    }
}

fn lost_why(was: &WalHeader, now: Option<&WalHeader>) -> String {
    match now {
        None => "the write-ahead log is gone or empty (checkpointed with TRUNCATE, or deleted)".into(),
        Some(h) => format!(
            "the write-ahead log was restarted by another process (checkpoint sequence {} → {})",
            was.checkpoint_seq, h.checkpoint_seq
        ),
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.unpin();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app(db: &Path) -> Connection {
        let c = Connection::open(db).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute_batch("CREATE TABLE IF NOT EXISTS t(x INTEGER PRIMARY KEY, y TEXT)").unwrap();
        c
    }

    fn count(db: &Path) -> i64 {
        let c = Connection::open(db).unwrap();
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn base_plus_shipped_commits_rebuild_the_database_across_log_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let a = app(&db);
        for i in 0..100 {
            a.execute("INSERT INTO t(y) VALUES (?1)", [format!("before {i}")]).unwrap();
        }
        let mut f = Follower::open(&db, Duration::from_secs(5)).unwrap();
        let mut shipped: Vec<Commit> = Vec::new();
        assert_eq!(f.checkpoint(&mut |_, _| panic!("nothing to ship before a base")).unwrap(), Continuity::Continuous);
        let out = tempfile::tempdir().unwrap();
        let (base, _) = f.base(out.path()).unwrap();
        let page_size = f.position().unwrap().header.page_size;
        assert_eq!(count(&base), 100);
        for round in 0..5 {
            for i in 0..50 {
                a.execute("INSERT INTO t(y) VALUES (?1)", [format!("round {round} {i}")]).unwrap();
            }
            let (s, n) = f
                .poll(u32::MAX, &mut |c, _| {
                    shipped.extend(c);
                    Ok(())
                })
                .unwrap();
            // After a checkpoint, its no-op commit comes first.
            assert_eq!((s, n), (Continuity::Continuous, 50 + usize::from(round > 0)));
            if round == 0 {
                // An application checkpoint cannot restart the log while it is pinned.
                a.busy_timeout(Duration::from_millis(50)).unwrap();
                let busy: i64 = a.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0)).unwrap();
                assert_eq!(busy, 1, "the pin keeps RESTART busy");
                a.busy_timeout(Duration::from_secs(5)).unwrap();
            }
            assert_eq!(
                f.checkpoint(&mut |c, _| {
                    shipped.extend(c);
                    Ok(())
                })
                .unwrap(),
                Continuity::Continuous
            );
            assert_eq!(f.log_frames(), 0, "with no other reader, the log restarts");
        }
        a.execute("DELETE FROM t WHERE x % 2 = 0", []).unwrap();
        f.poll(u32::MAX, &mut |c, _| {
            shipped.extend(c);
            Ok(())
        })
        .unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&base).unwrap();
        walfile::apply(&mut file, page_size, &shipped).unwrap();
        drop(file);
        assert_eq!(count(&base), count(&db));
        let c = Connection::open(&base).unwrap();
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn a_log_restarted_while_not_following_is_lost_continuity() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let a = app(&db);
        a.execute("INSERT INTO t(y) VALUES ('one')", []).unwrap();
        let pos = {
            let mut f = Follower::open(&db, Duration::from_secs(5)).unwrap();
            f.checkpoint(&mut |_, _| Ok(())).unwrap();
            let out = tempfile::tempdir().unwrap();
            f.base(out.path()).unwrap().1
        };
        a.execute("INSERT INTO t(y) VALUES ('two')", []).unwrap();
        let _: i64 = a.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
        a.execute("INSERT INTO t(y) VALUES ('three')", []).unwrap();
        let mut f = Follower::open(&db, Duration::from_secs(5)).unwrap();
        assert!(!f.resume(&pos).unwrap());
    }

    #[test]
    fn a_database_not_in_wal_mode_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("plain.db");
        Connection::open(&db).unwrap().execute_batch("CREATE TABLE t(x)").unwrap();
        let e = Follower::open(&db, Duration::from_secs(1)).err().unwrap().to_string();
        assert!(e.contains("journal_mode is delete"), "{e}");
    }
}
