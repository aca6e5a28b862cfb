//! Where continuous replication of a SQLite source keeps its segments: under the source's WAL
//! prefix (`lifeboat/wal/<tag>/`, see [`crate::wal`]), one directory per generation. Names sort
//! in transaction order (16 hex digits for the ids, 13 decimal digits for a time in
//! milliseconds), and every object is compressed and encrypted like every `lifeboat/` object:
//! * `<generation>/<first txid>-<last txid>-<unix ms>`: one shipment (stores that cannot append:
//!   S3 and the other object stores), the time it was shipped;
//! * `<generation>/<first txid>.open`: shipments appended one after the other as frames (see
//!   [`lifeboat_repository::frames`]) where the store can append (a local directory): one file
//!   and one `fdatasync` per shipment instead of a new file, a rename and two fsyncs;
//! * `<generation>/<first txid>-<last txid>-<unix ms>.frames`: such an object finished after
//!   [`FRAMES_PER_OBJECT`] shipments (or at a new generation, or when replication stops),
//!   renamed; the time is when its last transaction was seen committed.
//!
//! The newest shipment's time is known from the listing alone, except for an open object
//! (read, and at most [`FRAMES_PER_OBJECT`] frames long). A replicator killed while appending
//! leaves an open object, perhaps with a torn last frame; the next one [`seal`]s it before it
//! goes on: its whole frames are saved as a finished object, the torn tail (never reported
//! durable) left out.

use lifeboat_backend::FileType;
use lifeboat_repository::frames::{self, Tail, FRAMED_SUFFIX, OPEN_SUFFIX};
use lifeboat_repository::{RepoError, Repository};
use lifeboat_sources::sqlite::segment::Segment;

use crate::OpsError;

/// Shipments appended to one object before it is finished and the next begins (at four a
/// second, a new file every 16 seconds; readers of an open object read at most this many).
pub const FRAMES_PER_OBJECT: usize = 64;
/// ... or once it holds this many bytes.
const BYTES_PER_OBJECT: u64 = 16 << 20;

/// How a stored segment is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One shipment, one object.
    Single,
    /// Shipments appended as frames, finished.
    Framed,
    /// Shipments appended as frames, maybe still being appended to.
    Open,
}

/// A stored segment (or run of shipments), from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Generation.
    pub generation: String,
    /// First transaction id.
    pub first: u64,
    /// Last transaction id (of an open object: when it was listed).
    pub last: u64,
    /// When it was shipped (framed objects: when its last transaction was seen committed).
    pub shipped: chrono::DateTime<chrono::Utc>,
    /// The object name below the source's prefix.
    pub name: String,
    /// How it is kept.
    pub layout: Layout,
}

/// A new generation's name: the time it starts, in microseconds, as 16 hex digits (sorts by
/// time).
pub fn new_generation(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{:016x}", now.timestamp_micros().max(0))
}

fn valid_generation(g: &str) -> bool {
    g.len() == 16 && g.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn hex16(p: &str) -> Option<u64> {
    (p.len() == 16).then(|| u64::from_str_radix(p, 16).ok()).flatten()
}

/// Parse a name below the source's prefix; `None` for anything else (PostgreSQL WAL files).
/// An open object's `last` and `shipped` are not in its name: see [`resolve`].
pub fn parse(name: &str) -> Option<Stored> {
    let (generation, rest) = name.split_once('/')?;
    if !valid_generation(generation) {
        return None;
    }
    let stored = |first, last, shipped, layout| Stored {
        generation: generation.to_string(),
        first,
        last,
        shipped,
        name: name.to_string(),
        layout,
    };
    if let Some(first) = rest.strip_suffix(OPEN_SUFFIX) {
        return Some(stored(hex16(first)?, hex16(first)?, chrono::DateTime::UNIX_EPOCH, Layout::Open));
    }
    let (rest, layout) = match rest.strip_suffix(FRAMED_SUFFIX) {
        Some(r) => (r, Layout::Framed),
        None => (rest, Layout::Single),
    };
    let mut parts = rest.split('-');
    let first = hex16(parts.next()?)?;
    let last = hex16(parts.next()?)?;
    let ms = parts.next().filter(|p| p.len() == 13).and_then(|p| p.parse::<i64>().ok())?;
    if parts.next().is_some() || last < first {
        return None;
    }
    Some(stored(first, last, chrono::DateTime::from_timestamp_millis(ms)?, layout))
}

fn object(repo: &Repository, source: &str, name: &str) -> String {
    format!("{}{name}", crate::wal::prefix(repo, source))
}

fn check(seg: &Segment) -> Result<(u64, u64), OpsError> {
    let Some((first, last)) = seg.txids() else {
        return Err(OpsError::BadValue { what: "segment", text: "empty".into(), hint: "nothing to ship".into() });
    };
    if !valid_generation(&seg.generation) {
        return Err(OpsError::BadValue {
            what: "generation",
            text: seg.generation.clone(),
            hint: "16 lower-case hex digits".into(),
        });
    }
    Ok((first, last))
}

/// Store `seg` for `source` as an object of its own; durable when this returns.
pub fn save(
    repo: &Repository,
    source: &str,
    seg: &Segment,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Stored, OpsError> {
    let (first, last) = check(seg)?;
    let name = format!("{}/{first:016x}-{last:016x}-{:013}", seg.generation, now.timestamp_millis().max(0));
    repo.backend()
        .save(FileType::Lifeboat, &object(repo, source, &name), &repo.encode_unpacked(&seg.encode()))
        .map_err(RepoError::from)?;
    Ok(Stored { generation: seg.generation.clone(), first, last, shipped: now, name, layout: Layout::Single })
}

fn framed_name(generation: &str, first: u64, last: u64, time: chrono::DateTime<chrono::Utc>) -> String {
    format!("{generation}/{first:016x}-{last:016x}-{:013}{FRAMED_SUFFIX}", time.timestamp_millis().max(0))
}

/// An object being appended to.
struct Appending {
    appender: Box<dyn lifeboat_backend::Appender>,
    generation: String,
    first: u64,
    last: u64,
    time: chrono::DateTime<chrono::Utc>,
    frames: usize,
}

/// Ships the segments of one source: appended to an open object where the store can append,
/// one object each where it cannot. One per source (the replicator holds the source's lock).
pub struct Shipper {
    source: String,
    open: Option<Appending>,
}

impl Shipper {
    /// A shipper for `source`. Call [`seal`] first: it never appends to an object it did not
    /// create.
    pub fn new(source: &str) -> Shipper {
        Shipper { source: source.to_string(), open: None }
    }

    /// Store `seg`; durable when this returns. After an error the open object is left as it is
    /// (the next [`seal`] finishes it).
    pub fn ship(
        &mut self,
        repo: &Repository,
        seg: &Segment,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Stored, OpsError> {
        let (first, last) = check(seg)?;
        if self.open.as_ref().is_some_and(|o| {
            o.generation != seg.generation
                || o.last + 1 != first
                || o.frames >= FRAMES_PER_OBJECT
                || o.appender.len() >= BYTES_PER_OBJECT
        }) {
            self.finish(repo)?;
        }
        let name = format!("{}/{first:016x}{OPEN_SUFFIX}", seg.generation);
        if self.open.is_none() {
            let Some(appender) = repo
                .backend()
                .appender(FileType::Lifeboat, &object(repo, &self.source, &name))
                .map_err(RepoError::from)?
            else {
                return save(repo, &self.source, seg, now);
            };
            self.open = Some(Appending {
                appender,
                generation: seg.generation.clone(),
                first,
                last: first.saturating_sub(1),
                time: now,
                frames: 0,
            });
        }
        let frame = frames::encode(repo, &seg.encode());
        let Some(o) = self.open.as_mut() else { return save(repo, &self.source, seg, now) };
        if let Err(e) = o.appender.append(&frame) {
            self.open = None;
            return Err(RepoError::from(e).into());
        }
        o.last = last;
        o.time = seg.commits.last().map_or(now, |c| c.time);
        o.frames += 1;
        Ok(Stored {
            generation: seg.generation.clone(),
            first: o.first,
            last,
            shipped: o.time,
            name: format!("{}/{:016x}{OPEN_SUFFIX}", o.generation, o.first),
            layout: Layout::Open,
        })
    }

    /// Finish the open object, if any: renamed to its final name.
    pub fn finish(&mut self, repo: &Repository) -> Result<(), OpsError> {
        if let Some(o) = self.open.take() {
            let name = framed_name(&o.generation, o.first, o.last, o.time);
            o.appender.finish(&object(repo, &self.source, &name)).map_err(RepoError::from)?;
        }
        Ok(())
    }
}

/// A framed object's segments and its bytes without a torn tail.
type Frames = (Vec<Segment>, Vec<u8>);

/// The segments of a framed object and its bytes without a torn tail, `None` when it is gone.
fn read_frames(repo: &Repository, source: &str, stored: &Stored) -> Result<Option<Frames>, OpsError> {
    let mut raw = match repo.backend().load(FileType::Lifeboat, &object(repo, source, &stored.name)) {
        Ok(raw) => raw,
        Err(e) if e.is_not_found() && stored.layout == Layout::Open => return Ok(None),
        Err(e) => return Err(RepoError::from(e).into()),
    };
    let tail = if stored.layout == Layout::Open { Tail::MayBeTorn } else { Tail::Strict };
    let decoded = frames::decode(repo, &stored.name, &raw, tail)?;
    let segs = decoded
        .frames
        .iter()
        .map(|f| Segment::decode(f).map_err(|e| bad_segment(source, stored, e)))
        .collect::<Result<Vec<_>, _>>()?;
    raw.truncate(decoded.valid);
    Ok(Some((segs, raw)))
}

fn bad_segment(source: &str, stored: &Stored, e: impl std::fmt::Display) -> OpsError {
    OpsError::Conflict(format!("segment {} of source {source}: {e}", stored.name))
}

/// One segment of the transactions of `segs`, in order.
fn merge(segs: Vec<Segment>) -> Option<Segment> {
    let mut it = segs.into_iter();
    let mut out = it.next()?;
    for s in it {
        out.commits.extend(s.commits);
        out.end = s.end;
    }
    Some(out)
}

/// An open object's last transaction and its time, read from the object; `None` when it is
/// gone or holds no whole frame yet.
pub fn resolve(repo: &Repository, source: &str, stored: Stored) -> Result<Option<Stored>, OpsError> {
    if stored.layout != Layout::Open {
        return Ok(Some(stored));
    }
    let Some((segs, _)) = read_frames(repo, source, &stored)? else { return Ok(None) };
    let Some(c) = segs.last().and_then(|s| s.commits.last()) else { return Ok(None) };
    Ok(Some(Stored { last: c.txid, shipped: c.time, ..stored }))
}

/// Finish the open objects of `source` a stopped replicator left: each one's whole frames
/// saved as a finished object (its torn tail left out), then the open object removed. Only the
/// replicator of the source calls it, before it ships. Returns how many were finished.
pub fn seal(repo: &Repository, source: &str) -> Result<usize, OpsError> {
    let names: Vec<Stored> = crate::wal::list(repo, source)?.into_iter().filter_map(|(n, _)| parse(&n)).collect();
    let mut sealed = 0;
    for open in names.iter().filter(|s| s.layout == Layout::Open) {
        let done = names
            .iter()
            .any(|s| s.layout != Layout::Open && (&s.generation, s.first) == (&open.generation, open.first));
        if !done {
            if let Some((segs, whole)) = read_frames(repo, source, open)? {
                if let Some(c) = segs.last().and_then(|s| s.commits.last()) {
                    let name = framed_name(&open.generation, open.first, c.txid, c.time);
                    repo.backend()
                        .save(FileType::Lifeboat, &object(repo, source, &name), &whole)
                        .map_err(RepoError::from)?;
                    sealed += 1;
                }
            }
        }
        match repo.backend().remove(FileType::Lifeboat, &object(repo, source, &open.name)) {
            Err(e) if !e.is_not_found() => return Err(RepoError::from(e).into()),
            _ => {}
        }
    }
    Ok(sealed)
}

/// Every stored segment of `source`, in transaction order (open objects read for their last
/// transaction; one already finished under its final name is listed once).
pub fn list(repo: &Repository, source: &str) -> Result<Vec<Stored>, OpsError> {
    let mut v = Vec::new();
    let mut open = Vec::new();
    for s in crate::wal::list(repo, source)?.into_iter().filter_map(|(n, _)| parse(&n)) {
        if s.layout == Layout::Open {
            open.push(s);
        } else {
            v.push(s);
        }
    }
    for o in open {
        if v.iter().any(|s: &Stored| (&s.generation, s.first) == (&o.generation, o.first)) {
            continue;
        }
        if let Some(s) = resolve(repo, source, o)? {
            v.push(s);
        }
    }
    v.sort_by(|a, b| (a.first, &a.generation).cmp(&(b.first, &b.generation)));
    Ok(v)
}

/// Load a stored segment (all the transactions of a framed object, as one segment).
pub fn load(repo: &Repository, source: &str, stored: &Stored) -> Result<Segment, OpsError> {
    if stored.layout == Layout::Single {
        let data = repo.load_unpacked(FileType::Lifeboat, &object(repo, source, &stored.name))?;
        return Segment::decode(&data).map_err(|e| bad_segment(source, stored, e));
    }
    let segs = match read_frames(repo, source, stored)? {
        Some((segs, _)) => segs,
        None => {
            // Finished since it was listed: the same transactions and maybe more, under its
            // final name.
            let done = list(repo, source)?
                .into_iter()
                .find(|s| s.layout != Layout::Open && (&s.generation, s.first) == (&stored.generation, stored.first))
                .ok_or_else(|| bad_segment(source, stored, "it is gone"))?;
            return load(repo, source, &done);
        }
    };
    merge(segs).ok_or_else(|| bad_segment(source, stored, "no transactions"))
}

/// Remove stored segments (retention).
pub fn remove(repo: &Repository, source: &str, stored: &[Stored]) -> Result<(), OpsError> {
    let objects: Vec<String> = stored.iter().map(|s| object(repo, source, &s.name)).collect();
    repo.backend().remove_many(FileType::Lifeboat, &objects).map_err(RepoError::from)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeboat_sources::sqlite::segment::Shipped;
    use lifeboat_sources::sqlite::walfile::{Commit, Position, WalHeader};
    use std::sync::Arc;

    fn repo(dir: &std::path::Path) -> Repository {
        let backend = Arc::new(lifeboat_backend::LocalBackend::new(dir));
        let opts = lifeboat_repository::InitOptions {
            kdf: lifeboat_crypto::KdfParams { n: 1024, r: 8, p: 1 },
            chunker_polynomial: None,
        };
        Repository::init(backend, b"pw", &opts).unwrap()
    }

    const GEN: &str = "0000018c2d0f1e2a";

    /// A segment of transactions `txids`, each one page filled with its id.
    fn seg(generation: &str, txids: std::ops::RangeInclusive<u64>) -> Segment {
        let header =
            WalHeader { big_endian: false, page_size: 512, checkpoint_seq: 1, salt1: 2, salt2: 3, checksum: [4, 5] };
        let t0 = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let end = *txids.end() as u32;
        Segment {
            generation: generation.into(),
            commits: txids
                .map(|t| Shipped {
                    txid: t,
                    time: t0 + chrono::Duration::milliseconds(t as i64 * 10),
                    commit: Commit { db_pages: 9, pages: vec![(t as u32, vec![t as u8; 512])] },
                })
                .collect(),
            end: Position { header, frames: end, checksum: [end, !end] },
        }
    }

    fn txids(s: &Segment) -> Vec<u64> {
        s.commits.iter().map(|c| c.txid).collect()
    }

    fn objects(repo: &Repository) -> Vec<String> {
        let mut v: Vec<String> = crate::wal::list(repo, "app").unwrap().into_iter().map(|(n, _)| n).collect();
        v.sort();
        v
    }

    #[test]
    fn names_parse_and_sort_by_transaction() {
        let s = parse("0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123").expect("parses");
        assert_eq!((s.first, s.last, s.layout), (10, 15, Layout::Single));
        assert_eq!(s.shipped.timestamp_millis(), 1_700_000_000_123);
        let f = parse("0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123.frames").expect("parses");
        assert_eq!((f.first, f.last, f.layout), (10, 15, Layout::Framed));
        let o = parse("0000018c2d0f1e2a/000000000000000a.open").expect("parses");
        assert_eq!((o.first, o.layout), (10, Layout::Open));
        for bad in [
            "000000010000000000000003",
            "0000018c2d0f1e2a/000000000000000f-000000000000000a-1700000000123",
            "0000018c2d0f1e2A/000000000000000a-000000000000000f-1700000000123",
            "0000018c2d0f1e2a/000000000000000a-000000000000000f-170000000012",
            "0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123-x",
            "0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123.open",
            "0000018c2d0f1e2a/00000000000000a.open",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let g = new_generation(chrono::Utc::now());
        assert!(valid_generation(&g), "{g}");
    }

    #[test]
    fn shipments_append_to_one_object_that_reads_back_as_their_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let mut shipper = Shipper::new("app");
        let now = chrono::Utc::now();
        for r in [1..=2, 3..=3, 4..=6] {
            let st = shipper.ship(&repo, &seg(GEN, r.clone()), now).unwrap();
            assert_eq!((st.first, st.last, st.layout), (1, *r.end(), Layout::Open));
        }
        // One object, listed (and read) while open.
        assert_eq!(objects(&repo), vec![format!("{GEN}/0000000000000001.open")]);
        let listed = list(&repo, "app").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].first, listed[0].last), (1, 6));
        assert_eq!(listed[0].shipped, seg(GEN, 6..=6).commits[0].time, "the time its last transaction was seen");
        let whole = load(&repo, "app", &listed[0]).unwrap();
        assert_eq!(txids(&whole), (1..=6).collect::<Vec<_>>());
        assert_eq!(whole.end, seg(GEN, 4..=6).end, "the log position after the last shipment");
        // Open objects count for the recovery point.
        let pushed = crate::wal::last_pushes(&repo, &["app"]).unwrap();
        assert_eq!(pushed.get("app"), Some(&listed[0].shipped));
        // Finished: renamed, same transactions; a reader holding the open name still reads them.
        shipper.finish(&repo).unwrap();
        let framed = list(&repo, "app").unwrap();
        assert_eq!(framed.len(), 1);
        assert_eq!((framed[0].first, framed[0].last, framed[0].layout), (1, 6, Layout::Framed));
        assert_eq!(load(&repo, "app", &framed[0]).unwrap(), whole);
        assert_eq!(load(&repo, "app", &listed[0]).unwrap(), whole);
        // The next shipment starts the next object; a new generation finishes the open one.
        shipper.ship(&repo, &seg(GEN, 7..=7), now).unwrap();
        let g2 = "0000018c2d0f1e2b";
        shipper.ship(&repo, &seg(g2, 8..=9), now).unwrap();
        let all = list(&repo, "app").unwrap();
        let shape: Vec<(String, u64, u64, Layout)> =
            all.iter().map(|s| (s.generation.clone(), s.first, s.last, s.layout)).collect();
        assert_eq!(
            shape,
            vec![
                (GEN.to_string(), 1, 6, Layout::Framed),
                (GEN.to_string(), 7, 7, Layout::Framed),
                (g2.to_string(), 8, 9, Layout::Open)
            ]
        );
        // A copy of the repository re-encrypts finished objects frame by frame and leaves the
        // open one for later.
        let dir2 = tempfile::tempdir().unwrap();
        let dst = self::repo(dir2.path());
        lifeboat_repository::copy::copy_lifeboat_objects(&repo, &dst).unwrap();
        let names: Vec<String> = dst.backend().list(FileType::Lifeboat).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.iter().filter(|n| n.ends_with(FRAMED_SUFFIX)).count(), 2, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.ends_with(OPEN_SUFFIX)).count(), 0, "{names:?}");
    }

    #[test]
    fn an_object_is_finished_every_so_many_shipments() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let mut shipper = Shipper::new("app");
        let n = FRAMES_PER_OBJECT as u64 + 1;
        for t in 1..=n {
            shipper.ship(&repo, &seg(GEN, t..=t), chrono::Utc::now()).unwrap();
        }
        let all = list(&repo, "app").unwrap();
        let shape: Vec<(u64, u64, Layout)> = all.iter().map(|s| (s.first, s.last, s.layout)).collect();
        assert_eq!(shape, vec![(1, n - 1, Layout::Framed), (n, n, Layout::Open)]);
        assert_eq!(txids(&load(&repo, "app", &all[0]).unwrap()), (1..n).collect::<Vec<_>>());
    }

    #[test]
    fn a_killed_shippers_open_object_is_sealed_without_its_torn_tail() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        let mut shipper = Shipper::new("app");
        for r in [1..=2, 3..=4] {
            shipper.ship(&repo, &seg(GEN, r), chrono::Utc::now()).unwrap();
        }
        // Killed in the middle of its third append: half a frame at the end.
        drop(shipper);
        let open = objects(&repo).pop().unwrap();
        let path = dir.path().join("lifeboat").join(crate::wal::prefix(&repo, "app")).join(&open);
        let frame = frames::encode(&repo, &seg(GEN, 5..=5).encode());
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&frame[..frame.len() / 2]).unwrap();
        // Readers skip the torn tail.
        let listed = list(&repo, "app").unwrap();
        assert_eq!((listed[0].first, listed[0].last), (1, 4));
        // Sealed: the whole frames under a final name, nothing open.
        assert_eq!(seal(&repo, "app").unwrap(), 1);
        let names = objects(&repo);
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].ends_with(FRAMED_SUFFIX), "{names:?}");
        let all = list(&repo, "app").unwrap();
        assert_eq!(txids(&load(&repo, "app", &all[0]).unwrap()), vec![1, 2, 3, 4]);
        // A fresh shipper goes on after it; an open object with no whole frame is removed.
        let mut shipper = Shipper::new("app");
        shipper.ship(&repo, &seg(GEN, 5..=5), chrono::Utc::now()).unwrap();
        drop(shipper);
        let empty =
            repo.backend().appender(FileType::Lifeboat, &object(&repo, "app", &format!("{GEN}/0000000000000009.open")));
        assert!(empty.unwrap().is_some());
        assert_eq!(seal(&repo, "app").unwrap(), 1);
        let all = list(&repo, "app").unwrap();
        let shape: Vec<(u64, u64, Layout)> = all.iter().map(|s| (s.first, s.last, s.layout)).collect();
        assert_eq!(shape, vec![(1, 4, Layout::Framed), (5, 5, Layout::Framed)]);
        assert_eq!(objects(&repo).len(), 2);
        // A finished object whose frame is damaged is an error, not fewer transactions.
        let finished = dir.path().join("lifeboat").join(crate::wal::prefix(&repo, "app")).join(&all[0].name);
        let mut perms = std::fs::metadata(&finished).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&finished, perms).unwrap();
        let mut bytes = std::fs::read(&finished).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 1;
        std::fs::write(&finished, bytes).unwrap();
        assert!(load(&repo, "app", &all[0]).is_err());
    }
}
