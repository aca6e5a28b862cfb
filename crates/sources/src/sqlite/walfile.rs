//! Reading a SQLite write-ahead log from the outside, as SQLite itself validates it: the 32-byte
//! header, then frames of a 24-byte header and one page each, every frame carrying the header's
//! salts and a checksum that chains from the header through all frames before it. Only frames
//! up to the last valid commit frame count; the first frame that fails the chain ends the log
//! (the rest is left over from an earlier log, or a write in progress).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Magic of a log whose checksums use little-endian words.
const MAGIC_LE: u32 = 0x377f_0682;
/// Magic of a log whose checksums use big-endian words.
const MAGIC_BE: u32 = 0x377f_0683;
/// Size of the log header.
pub const HEADER: u64 = 32;
/// Size of a frame header.
pub const FRAME_HEADER: u64 = 24;

/// The header of a log: which log this is (salts and checkpoint sequence change on every
/// restart of the log) and how its frames are checksummed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalHeader {
    /// Checksums in big-endian words.
    pub big_endian: bool,
    /// Database page size.
    pub page_size: u32,
    /// Checkpoint sequence number (one more on each restart of the log).
    pub checkpoint_seq: u32,
    /// First salt (one more on each restart).
    pub salt1: u32,
    /// Second salt (random on each restart).
    pub salt2: u32,
    /// The header's checksum, where the frames' chain starts.
    pub checksum: [u32; 2],
}

impl WalHeader {
    /// Parse and check a header; `None` when the bytes are not a valid log header (an empty
    /// or truncated log, or garbage).
    pub fn parse(b: &[u8]) -> Option<WalHeader> {
        if b.len() < HEADER as usize {
            return None;
        }
        let big_endian = match be(b, 0) {
            MAGIC_LE => false,
            MAGIC_BE => true,
            _ => return None,
        };
        let page_size = match be(b, 8) {
            1 => 65536,
            n if (512..=65536).contains(&n) && n.is_power_of_two() => n,
            _ => return None,
        };
        let checksum = [be(b, 24), be(b, 28)];
        if checksum_of(big_endian, [0, 0], &b[..24]) != checksum {
            return None;
        }
        Some(WalHeader {
            big_endian,
            page_size,
            checkpoint_seq: be(b, 12),
            salt1: be(b, 16),
            salt2: be(b, 20),
            checksum,
        })
    }

    /// Whether `other` is the same log (same salts and checkpoint sequence).
    pub fn same_log(&self, other: &WalHeader) -> bool {
        self.salt1 == other.salt1 && self.salt2 == other.salt2 && self.checkpoint_seq == other.checkpoint_seq
    }

    /// Size of one frame.
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER + u64::from(self.page_size)
    }
}

/// Where a reader is in a log: after `frames` frames (the last of them a commit), with the
/// checksum chain at `checksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The log.
    pub header: WalHeader,
    /// Frames read (all of them belong to committed transactions).
    pub frames: u32,
    /// The checksum after the last frame read.
    pub checksum: [u32; 2],
}

impl Position {
    /// The start of the log `header` begins.
    pub fn start(header: WalHeader) -> Position {
        Position { header, frames: 0, checksum: header.checksum }
    }
}

/// One committed transaction: the pages it wrote, in log order (a page written twice appears
/// twice; the later one wins), and the database size in pages after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    /// `(page number, page)` pairs.
    pub pages: Vec<(u32, Vec<u8>)>,
    /// Database size in pages after the commit.
    pub db_pages: u32,
}

/// What [`read_from`] found.
#[derive(Debug)]
pub enum Tail {
    /// The log is the one `from` was in: the transactions committed after `from` (maybe none)
    /// and the new position.
    Same(Vec<Commit>, Position),
    /// The log is another one now (restarted, or truncated and started again), or gone: its
    /// header, when it has a valid one.
    Other(Option<WalHeader>),
}

/// The header of the log at `wal`, `None` when there is no valid one (no file, empty, torn).
pub fn header(wal: &Path) -> std::io::Result<Option<WalHeader>> {
    let mut f = match std::fs::File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut b = [0u8; HEADER as usize];
    match f.read_exact(&mut b) {
        Ok(()) => Ok(WalHeader::parse(&b)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Read the transactions committed in the log at `wal` after `from`, at most `max_frames`
/// frames' worth (a transaction is never split: the limit is checked between transactions).
pub fn read_from(wal: &Path, from: &Position, max_frames: u32) -> std::io::Result<Tail> {
    match std::fs::File::open(wal) {
        Ok(f) => read_from_file(&f, from, max_frames),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tail::Other(None)),
        Err(e) => Err(e),
    }
}

/// [`read_from`] on a log file held open (positioned reads: three system calls when a
/// transaction or two is new, where a follower reads many times a second).
pub fn read_from_file(f: &std::fs::File, from: &Position, max_frames: u32) -> std::io::Result<Tail> {
    use std::os::unix::fs::FileExt;
    let mut hb = [0u8; HEADER as usize];
    match f.read_exact_at(&mut hb, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Tail::Other(None)),
        Err(e) => return Err(e),
    }
    let h = match WalHeader::parse(&hb) {
        Some(h) if h.same_log(&from.header) && h.page_size == from.header.page_size => h,
        other => return Ok(Tail::Other(other)),
    };
    let len = f.metadata()?.len();
    let frame = h.frame_size();
    let start = HEADER + u64::from(from.frames) * frame;
    let available = len.saturating_sub(start) / frame;
    if available == 0 {
        return Ok(Tail::Same(Vec::new(), *from));
    }
    // Read in pieces of at most 1 MiB (a poll usually finds a frame or two: one read).
    let per_read = ((1u64 << 20) / frame).max(1);
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_first = 0u64;
    let mut pos = *from;
    let mut commits = Vec::new();
    let mut pending: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut chain = from.checksum;
    for i in 0..available {
        if i >= buf_first + (buf.len() as u64) / frame {
            let n = (available - i).min(per_read).min(u64::from(max_frames).saturating_add(1));
            buf.resize((n * frame) as usize, 0);
            let got = read_at_most(f, &mut buf, start + i * frame)?;
            buf.truncate(got - got % frame as usize);
            buf_first = i;
            if buf.is_empty() {
                break;
            }
        }
        let at = ((i - buf_first) * frame) as usize;
        let fh = &buf[at..at + FRAME_HEADER as usize];
        let page = &buf[at + FRAME_HEADER as usize..at + frame as usize];
        if be(fh, 8) != h.salt1 || be(fh, 12) != h.salt2 {
            break;
        }
        let sum = checksum_of(h.big_endian, checksum_of(h.big_endian, chain, &fh[..8]), page);
        if sum != [be(fh, 16), be(fh, 20)] {
            break;
        }
        chain = sum;
        pending.push((be(fh, 0), page.to_vec()));
        let db_pages = be(fh, 4);
        if db_pages != 0 {
            commits.push(Commit { pages: std::mem::take(&mut pending), db_pages });
            pos = Position { header: h, frames: from.frames + (i as u32) + 1, checksum: chain };
            if pos.frames - from.frames >= max_frames {
                break;
            }
        }
    }
    Ok(Tail::Same(commits, pos))
}

/// Fill as much of `buf` as the file has from `offset`; how many bytes that was.
fn read_at_most(f: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Replay the chain of the log at `wal` from its start to frame `frames` and say whether it
/// ends at `checksum`, the test that a log is still the one a position was taken in, with the
/// same frames (a log is only ever appended to until it restarts).
pub fn still_at(wal: &Path, pos: &Position) -> std::io::Result<bool> {
    match read_from(wal, &Position::start(pos.header), pos.frames)? {
        Tail::Same(_, p) => Ok(p.frames == pos.frames && p.checksum == pos.checksum),
        Tail::Other(_) => Ok(false),
    }
}

fn be(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// SQLite's log checksum over `data` (a multiple of 8 bytes), continuing from `s`.
pub fn checksum_of(big_endian: bool, s: [u32; 2], data: &[u8]) -> [u32; 2] {
    let (mut s1, mut s2) = (s[0], s[1]);
    for w in data.chunks_exact(8) {
        let (a, b) = if big_endian {
            (u32::from_be_bytes([w[0], w[1], w[2], w[3]]), u32::from_be_bytes([w[4], w[5], w[6], w[7]]))
        } else {
            (u32::from_le_bytes([w[0], w[1], w[2], w[3]]), u32::from_le_bytes([w[4], w[5], w[6], w[7]]))
        };
        s1 = s1.wrapping_add(a).wrapping_add(s2);
        s2 = s2.wrapping_add(b).wrapping_add(s1);
    }
    [s1, s2]
}

/// Apply `commits` to the database file `db` (opened for writing): each page written at its
/// place, the file cut or grown to the size after the last commit.
pub fn apply(db: &mut std::fs::File, page_size: u32, commits: &[Commit]) -> std::io::Result<()> {
    use std::io::Write;
    let Some(last) = commits.last() else { return Ok(()) };
    for c in commits {
        for (pgno, page) in &c.pages {
            if *pgno == 0 {
                continue;
            }
            db.seek(SeekFrom::Start(u64::from(pgno - 1) * u64::from(page_size)))?;
            db.write_all(page)?;
        }
    }
    db.set_len(u64::from(last.db_pages) * u64::from(page_size))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn wal_db(dir: &Path) -> (Connection, std::path::PathBuf) {
        let db = dir.join("w.db");
        let c = Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "wal").unwrap();
        c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        c.execute_batch("CREATE TABLE t(x INTEGER PRIMARY KEY, y TEXT)").unwrap();
        (c, dir.join("w.db-wal"))
    }

    #[test]
    fn reads_committed_transactions_and_stops_at_the_chain_end() {
        let dir = tempfile::tempdir().unwrap();
        let (c, wal) = wal_db(dir.path());
        let h = header(&wal).unwrap().unwrap();
        let Tail::Same(first, p1) = read_from(&wal, &Position::start(h), u32::MAX).unwrap() else { panic!() };
        assert_eq!(first.len(), 1, "the CREATE TABLE");
        for i in 0..10 {
            c.execute("INSERT INTO t(y) VALUES (?1)", [format!("{i}")]).unwrap();
        }
        let Tail::Same(more, p2) = read_from(&wal, &p1, u32::MAX).unwrap() else { panic!() };
        assert_eq!(more.len(), 10);
        assert!(p2.frames > p1.frames);
        assert!(still_at(&wal, &p2).unwrap());
        let Tail::Same(none, p3) = read_from(&wal, &p2, u32::MAX).unwrap() else { panic!() };
        assert!(none.is_empty());
        assert_eq!(p3, p2);
        // Limited reads never split a transaction and resume where they stopped.
        let Tail::Same(two, q) = read_from(&wal, &p1, 2).unwrap() else { panic!() };
        assert_eq!(two.len(), 2);
        let Tail::Same(rest, q2) = read_from(&wal, &q, u32::MAX).unwrap() else { panic!() };
        assert_eq!(rest.len(), 8);
        assert_eq!(q2, p2);
    }

    #[test]
    fn a_restarted_log_is_another_log() {
        let dir = tempfile::tempdir().unwrap();
        let (c, wal) = wal_db(dir.path());
        let h = header(&wal).unwrap().unwrap();
        let Tail::Same(_, p) = read_from(&wal, &Position::start(h), u32::MAX).unwrap() else { panic!() };
        c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
        c.execute("INSERT INTO t(y) VALUES ('after')", []).unwrap();
        match read_from(&wal, &p, u32::MAX).unwrap() {
            Tail::Other(Some(h2)) => {
                assert_eq!(h2.checkpoint_seq, h.checkpoint_seq + 1);
                assert_eq!(h2.salt1, h.salt1.wrapping_add(1));
            }
            other => panic!("{other:?}"),
        }
        assert!(!still_at(&wal, &p).unwrap());
    }

    #[test]
    fn applying_the_log_to_a_copy_rebuilds_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (c, wal) = wal_db(dir.path());
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let base = std::fs::read(dir.path().join("w.db")).unwrap();
        for i in 0..500 {
            c.execute("INSERT INTO t(y) VALUES (?1)", [format!("row {i} {}", "x".repeat(200))]).unwrap();
        }
        c.execute("DELETE FROM t WHERE x % 3 = 0", []).unwrap();
        let h = header(&wal).unwrap().unwrap();
        let Tail::Same(commits, _) = read_from(&wal, &Position::start(h), u32::MAX).unwrap() else { panic!() };
        let copy = dir.path().join("copy.db");
        std::fs::write(&copy, &base).unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        apply(&mut f, h.page_size, &commits).unwrap();
        drop(f);
        let r = Connection::open(&copy).unwrap();
        let n: i64 = r.query_row("SELECT COUNT(*) FROM t", [], |x| x.get(0)).unwrap();
        assert_eq!(n, 500 - 166);
        let ok: String = r.query_row("PRAGMA integrity_check", [], |x| x.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }

    #[test]
    fn garbage_is_no_header() {
        assert!(WalHeader::parse(&[0u8; 32]).is_none());
        assert!(WalHeader::parse(&[1u8; 10]).is_none());
    }
}
