//! Continuous replication of SQLite sources (`continuous = true`): `lifeboat replicate` in the
//! foreground and the daemon run the same [`replicate`].
//!
//! Each source is followed by a [`Follower`] in a thread of its own. A generation starts with a
//! base, a snapshot of the source made from a copy that matches the write-ahead log page for
//! page; from then on every poll ships the transactions committed since the last one as one
//! segment (see [`lifeboat_ops::replica`]), and when the log grows past a threshold replication
//! restarts it itself. Killed and started again, it goes on from the last segment when the log
//! still holds that position, and otherwise starts a new generation and says why: there is
//! never a silent gap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_ops::replica as store;
use lifeboat_repository::snapshots;
use lifeboat_repository::Repository;
use lifeboat_sources::sqlite::replica::{Continuity, Follower};
use lifeboat_sources::sqlite::segment::{Segment, Shipped};
use lifeboat_sources::sqlite::walfile::Position;
use lifeboat_sources::sqlite::watch::LogWatch;
use lifeboat_sources::sqlite::{self, ReplicaBase};
use lifeboat_sources::SourceError;
use serde::Serialize;

use crate::config::{Config, SourceConfig};
use crate::error::{Result, ServiceError};
use crate::kinds::Generated;
use crate::progress::Observer;
use crate::session::{one_line, Session};

/// How replication runs.
#[derive(Clone, Debug)]
pub struct ReplicateOptions {
    /// How often the log is read while transactions wait to be shipped (a transaction's time
    /// is when it was read: a shorter interval gives `restore --at` finer times, for more
    /// wake-ups), and how often a quiet log is looked at where inotify is not available (with
    /// inotify, a quiet follower sleeps until the log is written).
    pub interval: Duration,
    /// Transactions are shipped this long after the first write seen after the last
    /// shipment (each shipment is a durable write: batching saves CPU); the lag of a
    /// transaction stays below it, and so does how much later than its commit its recorded
    /// time is.
    pub max_delay: Duration,
    /// Restart the log once it holds this many frames (SQLite's own default is 1000).
    pub checkpoint_frames: u32,
    /// At most this many frames' worth of transactions in one segment.
    pub segment_frames: u32,
    /// How long a checkpoint waits for the application's writer.
    pub busy: Duration,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        ReplicateOptions {
            interval: Duration::from_millis(200),
            max_delay: Duration::from_millis(200),
            checkpoint_frames: 1000,
            segment_frames: 4096,
            busy: Duration::from_secs(5),
        }
    }
}

/// What replication reports as it goes.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReplicaEvent {
    /// Following a source, from where it was left (`resumed`) or from a new base.
    Started {
        /// Source.
        source: String,
        /// Generation.
        generation: String,
        /// Last shipped transaction id.
        txid: u64,
        /// Whether it went on from the last segment.
        resumed: bool,
    },
    /// A new generation started with a base snapshot.
    Generation {
        /// Source.
        source: String,
        /// Generation.
        generation: String,
        /// The base snapshot.
        snapshot: String,
        /// The base's transaction id.
        txid: u64,
        /// Why a new generation.
        reason: String,
        /// Time taken for the base.
        seconds: f64,
    },
    /// A segment was shipped.
    Shipped {
        /// Source.
        source: String,
        /// First transaction id.
        first: u64,
        /// Last transaction id.
        last: u64,
        /// Pages shipped.
        pages: usize,
        /// Seconds from seeing the first of them to their segment being durable.
        seconds: f64,
    },
    /// Something failed; replication of the source tries again after `retry_seconds`.
    Error {
        /// Source.
        source: String,
        /// What.
        message: String,
        /// When it tries again.
        retry_seconds: f64,
    },
    /// Replication of the source stopped (asked to).
    Stopped {
        /// Source.
        source: String,
        /// Last shipped transaction id.
        txid: u64,
    },
}

/// Receives [`ReplicaEvent`]s (from several threads).
pub type ReplicaObserver = dyn Fn(&ReplicaEvent) + Send + Sync;

/// The configured sources replicated continuously, among `names` (all of them when empty): an
/// error names a selected source that is not continuous.
pub fn continuous_sources<'c>(cfg: &'c Config, names: &[String]) -> Result<Vec<(&'c SourceConfig, PathBuf)>> {
    let mut out = Vec::new();
    for src in cfg.select(names, names.is_empty())? {
        match src.source.continuous(&src.name)? {
            Some(path) => out.push((src, path)),
            None if !names.is_empty() => {
                return Err(ServiceError::usage(format!(
                    "source {} is not replicated continuously (only sqlite sources with `continuous = true` are)",
                    src.name
                )))
            }
            None => {}
        }
    }
    if out.is_empty() {
        return Err(ServiceError::usage(format!(
            "no source in {} is replicated continuously: add `continuous = true` to a sqlite source",
            cfg.path.display()
        )));
    }
    Ok(out)
}

/// Replicate `names` (every continuous source when empty) until `stop` is set; each source in
/// a thread of its own, retrying after errors with a growing pause.
pub fn replicate(
    session: &Session,
    names: &[String],
    opts: &ReplicateOptions,
    stop: &Arc<AtomicBool>,
    on: &ReplicaObserver,
) -> Result<()> {
    let cfg = session.require_config("continuous replication needs the config file's sources")?;
    let selected = continuous_sources(&cfg, names)?;
    // Fail early on a repository that cannot be opened, a missing database or one not in
    // WAL mode; later errors (a busy disk, a lost connection to S3) are retried.
    drop(session.open()?);
    let mut locks = Vec::new();
    for (src, path) in &selected {
        Follower::open(path, opts.busy).map_err(|e| ServiceError::msg(format!("source {}: {e}", src.name)))?;
        locks.push(lock(&src.name, path)?);
    }
    std::thread::scope(|scope| {
        for (src, path) in &selected {
            scope.spawn(move || follow_with_retries(session, src, path, opts, stop, on));
        }
    });
    Ok(())
}

/// One replicator per database: an exclusive `flock` on `<database>-lifeboat-lock` beside it,
/// held while replication runs (released when the process ends, however it ends).
fn lock(source: &str, db: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let mut name = db.as_os_str().to_owned();
    name.push("-lifeboat-lock");
    let path = PathBuf::from(name);
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| {
            ServiceError::io(format!("source {source}: cannot open the lock file {}", path.display()), e)
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        ServiceError::msg(format!(
            "source {source}: {} is already being replicated by another process ({}: {e})",
            db.display(),
            path.display()
        ))
    })
}

fn follow_with_retries(
    session: &Session,
    src: &SourceConfig,
    path: &Path,
    opts: &ReplicateOptions,
    stop: &Arc<AtomicBool>,
    on: &ReplicaObserver,
) {
    let mut pause = Duration::from_secs(1);
    let mut txid = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        match follow(session, src, path, opts, stop, on, &mut txid) {
            Ok(()) => break,
            Err(e) => {
                if started.elapsed() > Duration::from_secs(60) {
                    pause = Duration::from_secs(1);
                }
                on(&ReplicaEvent::Error {
                    source: src.name.clone(),
                    message: one_line(&e),
                    retry_seconds: pause.as_secs_f64(),
                });
                sleep_unless(stop, pause);
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
    on(&ReplicaEvent::Stopped { source: src.name.clone(), txid });
}

/// Sleep `d`, waking every [`IDLE_WAIT`] at most to look at the stop flag.
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(IDLE_WAIT));
    }
}

/// Where a source's replication stands in the repository.
#[derive(Clone, Debug)]
pub struct State {
    /// The newest generation.
    pub generation: String,
    /// Its last shipped transaction.
    pub txid: u64,
    /// The log position after it.
    pub position: Position,
    /// When it was shipped (or the base taken).
    pub time: DateTime<Utc>,
}

/// The bases of continuous replication of `source` among `snaps`, oldest first.
pub fn bases(snaps: &[snapshots::SnapshotEntry], source: &str) -> Vec<(snapshots::SnapshotEntry, ReplicaBase)> {
    let mut v: Vec<_> = snaps
        .iter()
        .filter(|s| s.snapshot.source.as_ref().is_some_and(|i| i.name == source && i.kind == "sqlite"))
        .filter_map(|s| Some((s.clone(), replica_base(s)?)))
        .collect();
    v.sort_by(|a, b| a.1.generation.cmp(&b.1.generation));
    v
}

/// The replication base a snapshot holds, if it is one.
pub fn replica_base(s: &snapshots::SnapshotEntry) -> Option<ReplicaBase> {
    let m = s.snapshot.source.as_ref()?.manifest.as_ref()?;
    serde_json::from_value(m.get("replica")?.clone()).ok()
}

/// The last shipped state of `source`, `None` before its first base.
pub fn state(repo: &Repository, source: &str) -> Result<Option<State>> {
    let snaps = snapshots::list_intact(repo)?;
    let Some((_, base)) = bases(&snaps, source).pop() else { return Ok(None) };
    let segs = store::list(repo, source)?;
    match segs.iter().filter(|s| s.generation == base.generation).max_by_key(|s| s.last) {
        Some(last) => {
            let seg = store::load(repo, source, last)?;
            Ok(Some(State { generation: base.generation, txid: last.last, position: seg.end, time: last.shipped }))
        }
        None => {
            Ok(Some(State { generation: base.generation, txid: base.txid, position: base.position, time: base.time }))
        }
    }
}

fn src_err(e: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: "repository".into(), message: e.to_string() }
}

fn follow(
    session: &Session,
    src: &SourceConfig,
    path: &Path,
    opts: &ReplicateOptions,
    stop: &Arc<AtomicBool>,
    on: &ReplicaObserver,
    txid: &mut u64,
) -> Result<()> {
    let repo = session.open()?;
    let mut f = Follower::open(path, opts.busy)?;
    let name = src.name.clone();
    // What a killed replicator was appending to is finished first (its torn tail, never
    // reported durable, left out), so the state below is the last durable shipment.
    store::seal(&repo, &name)?;
    let mut generation = match state(&repo, &name)? {
        Some(st) if f.resume(&st.position)? => {
            *txid = st.txid;
            on(&ReplicaEvent::Started {
                source: name.clone(),
                generation: st.generation.clone(),
                txid: st.txid,
                resumed: true,
            });
            st.generation
        }
        st => {
            let reason = match &st {
                Some(st) => {
                    *txid = st.txid;
                    format!(
                        "the write-ahead log no longer holds transaction {} of generation {}: it was checkpointed or \
                         restarted while replication was not running",
                        st.txid, st.generation
                    )
                }
                None => "first run".to_string(),
            };
            let g = new_generation(session, &repo, src, path, &mut f, txid, &reason, stop, on)?;
            on(&ReplicaEvent::Started { source: name.clone(), generation: g.clone(), txid: *txid, resumed: false });
            g
        }
    };
    let mut last_checkpoint = Instant::now();
    let mut batch = Batch {
        repo: &repo,
        source: &name,
        on,
        shipper: store::Shipper::new(&name),
        commits: Vec::new(),
        end: None,
        pages: 0,
        since: None,
    };
    let mut watch = LogWatch::new(f.wal());
    let mut last_read = Instant::now();
    let mut look = true;
    while !stop.load(Ordering::Relaxed) {
        if look {
            // Changes from here on wake the next wait.
            if watch.drain().replaced {
                f.log_replaced();
            }
            last_read = Instant::now();
            // Read what is new: stamped with the time it was seen, kept in memory until shipped.
            let (mut sync, _) = f.poll(opts.segment_frames, &mut |c, e| {
                batch.add(c, e, txid);
                Ok(())
            })?;
            if sync == Continuity::Continuous
                && f.log_frames() >= opts.checkpoint_frames
                && last_checkpoint.elapsed() >= Duration::from_secs(1)
            {
                last_checkpoint = Instant::now();
                // Everything read is durable before the log restarts, and what comes in under the
                // write lock is shipped at once.
                batch.flush(&generation)?;
                sync = f.checkpoint(&mut |c, e| {
                    batch.add(c, e, txid);
                    batch.flush(&generation)
                })?;
            }
            if let Continuity::Lost(why) = sync {
                batch.flush(&generation)?;
                batch.shipper.finish(&repo)?;
                generation = new_generation(session, &repo, src, path, &mut f, txid, &why, stop, on)?;
                continue;
            }
        }
        // A busy database is shipped in batches (fewer, larger segments: less CPU and fewer
        // objects), each transaction at most `max_delay` after it was seen (a millisecond of
        // slack: the sleep below ends on the due time, not necessarily after it).
        if batch.since.is_some_and(|t| t.elapsed() + Duration::from_millis(1) >= opts.max_delay)
            || batch.pages >= opts.segment_frames as usize
        {
            batch.flush(&generation)?;
        }
        look = match batch.since {
            // Transactions wait to be shipped: read the log every interval (by default only
            // once, right before they are shipped: a transaction's time is when it was read).
            Some(t) => {
                let due = opts.max_delay.saturating_sub(t.elapsed());
                sleep_unless(stop, opts.interval.min(due));
                true
            }
            // Idle: wait for the log to be written, then let the batch's clock run from that
            // write (so a lone transaction is read and shipped `max_delay` after it, in two
            // wake-ups). The log is read at least every second all the same (a missed
            // notification costs a second at most).
            None if watch.notified() => {
                let change = watch.wait(IDLE_WAIT);
                if change.replaced {
                    f.log_replaced();
                }
                if change.written || change.replaced {
                    batch.since = Some(Instant::now());
                }
                batch.since.is_none() && last_read.elapsed() >= Duration::from_secs(1)
            }
            // Without inotify: poll.
            None => {
                sleep_unless(stop, opts.interval);
                true
            }
        };
    }
    batch.flush(&generation)?;
    batch.shipper.finish(&repo)?;
    Ok(())
}

/// The longest an idle follower waits for a notification before it looks at the stop flag.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Transactions read but not shipped yet.
struct Batch<'a> {
    repo: &'a Repository,
    source: &'a str,
    on: &'a ReplicaObserver,
    /// Appends shipments to one object where the repository can.
    shipper: store::Shipper,
    commits: Vec<Shipped>,
    end: Option<Position>,
    pages: usize,
    /// When the oldest of them was seen.
    since: Option<Instant>,
}

impl Batch<'_> {
    /// Add transactions just read, numbering them after `txid`.
    fn add(&mut self, commits: Vec<lifeboat_sources::sqlite::walfile::Commit>, end: Position, txid: &mut u64) {
        let seen = Utc::now();
        for commit in commits {
            *txid += 1;
            self.pages += commit.pages.len();
            self.commits.push(Shipped { txid: *txid, time: seen, commit });
        }
        self.end = Some(end);
        self.since.get_or_insert_with(Instant::now);
    }

    /// Ship them as one segment of `generation`; durable when this returns.
    fn flush(&mut self, generation: &str) -> std::result::Result<(), SourceError> {
        let (Some(end), Some(first), Some(last)) =
            (self.end, self.commits.first().map(|c| c.txid), self.commits.last().map(|c| c.txid))
        else {
            // A write was seen but no transaction came of it (yet): the clock starts again.
            self.since = None;
            return Ok(());
        };
        let seg = Segment { generation: generation.to_string(), commits: std::mem::take(&mut self.commits), end };
        self.shipper.ship(self.repo, &seg, Utc::now()).map_err(src_err)?;
        (self.on)(&ReplicaEvent::Shipped {
            source: self.source.to_string(),
            first,
            last,
            pages: self.pages,
            seconds: self.since.map(|t| t.elapsed().as_secs_f64()).unwrap_or_default(),
        });
        self.end = None;
        self.pages = 0;
        self.since = None;
        Ok(())
    }
}

/// Start a new generation: pin the log, copy the database as of its last transaction, back
/// the copy up as the generation's base.
#[allow(clippy::too_many_arguments)]
fn new_generation(
    session: &Session,
    repo: &Repository,
    src: &SourceConfig,
    path: &Path,
    f: &mut Follower,
    txid: &mut u64,
    reason: &str,
    stop: &Arc<AtomicBool>,
    on: &ReplicaObserver,
) -> Result<String> {
    let started = Instant::now();
    f.reset();
    loop {
        match f.checkpoint(&mut |_, _| Ok(()))? {
            Continuity::Busy if !stop.load(Ordering::Relaxed) => std::thread::sleep(Duration::from_millis(200)),
            Continuity::Busy => return Err(ServiceError::msg("stopped before the first base")),
            _ => break,
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("lifeboat-replica-")
        .tempdir()
        .map_err(|e| ServiceError::io("cannot make a temporary directory", e))?;
    let (copy, position) = f.base(dir.path())?;
    let now = Utc::now();
    let generation = store::new_generation(now);
    let base = ReplicaBase { generation: generation.clone(), txid: *txid + 1, time: now, position };
    let prepared = sqlite::prepare_base(path, copy, dir, base)?;
    let g = Generated {
        paths: prepared.paths.clone(),
        entries: Box::new(prepared.entries),
        manifest: Some(serde_json::to_value(&prepared.manifest)?),
        finish: None,
        excludes: Vec::new(),
        chunk_sizes: Some(sqlite::CHUNK_SIZES),
        scan: None,
    };
    let observer: Arc<Observer> = Arc::new(|_: &crate::progress::Event| {});
    let tags = vec!["replica-base".to_string()];
    let stats = crate::backup::generated(session, repo, src, g, &tags, stop, &observer)?;
    *txid += 1;
    on(&ReplicaEvent::Generation {
        source: src.name.clone(),
        generation: generation.clone(),
        snapshot: stats.snapshot_id.short(),
        txid: *txid,
        reason: reason.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(generation)
}
