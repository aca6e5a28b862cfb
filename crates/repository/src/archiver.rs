//! The backup pipeline: a stream of entries from a source becomes trees, blobs, packs, index
//! files and finally a snapshot.
//!
//! Stages, each on its own threads so both cores stay busy with bounded memory:
//! 1. the assembler (calling thread) pulls [`Entry`] values from the source in tree order, keeps
//!    the directory stack, reuses unchanged files from the parent snapshot, and hands changed
//!    files to file workers in batches;
//! 2. file workers read, chunk, hash and deduplicate; small files are compressed, encrypted and
//!    packed right there, new chunks of big files go on to the blob workers;
//! 3. blob workers compress, encrypt and pack; writer threads store full packs;
//! 4. when the last directory is finished, the index is written, and only then the snapshot.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use lifeboat_backend::FileType;
use lifeboat_crypto::{sha256, Chunker, ChunkerParams};
use lifeboat_format::{BlobType, Id, Node, NodeType, Snapshot, SnapshotSummary, SourceInfo, Tree};

use crate::index::Index;
use crate::packer::{write_index, BlobSaver};
use crate::{util, RepoError, Repository, Result};

/// Where a file's bytes come from.
pub enum Content {
    /// Open and read this path (done by a worker, so open files stay few).
    Path(PathBuf),
    /// Read this stream (database dumps, command output).
    Reader(Box<dyn Read + Send>),
}

/// One item produced by a source, in depth-first tree order.
pub enum Entry {
    /// A directory begins; entries up to the matching [`Entry::DirEnd`] are its children.
    DirStart(Node),
    /// The current directory ends.
    DirEnd,
    /// A regular file.
    File {
        /// Metadata (size, mtime… used to detect unchanged files).
        node: Node,
        /// Where to read it.
        content: Content,
    },
    /// A symlink, device, fifo or socket: metadata only.
    Special(Node),
    /// Something that could not be read; the backup goes on and reports it.
    Error {
        /// Path of the entry.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Live counters a caller can poll to draw progress.
#[derive(Default, Debug)]
pub struct Progress {
    /// Files finished (read or reused).
    pub files: AtomicU64,
    /// Bytes finished (read or reused).
    pub bytes: AtomicU64,
    /// Bytes of new data stored (after dedup, before compression).
    pub bytes_new: AtomicU64,
}

/// Options of one backup run.
#[derive(Clone, Default)]
pub struct BackupOptions {
    /// Paths recorded in the snapshot.
    pub paths: Vec<String>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name recorded (defaults to this host).
    pub hostname: Option<String>,
    /// Exclude patterns recorded in the snapshot.
    pub excludes: Vec<String>,
    /// Parent snapshot whose unchanged files are reused without reading.
    pub parent: Option<Id>,
    /// Snapshot time (defaults to the start of the backup).
    pub time: Option<DateTime<Utc>>,
    /// Source name, kind and manifest.
    pub source: Option<SourceInfo>,
    /// Worker threads (defaults to the number of cores).
    pub threads: Option<usize>,
    /// Set to stop the backup early (Ctrl-C).
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Counters updated while running.
    pub progress: Option<Arc<Progress>>,
    /// Chunk sizes (min, average, max) instead of restic's 512 KiB / 1 MiB / 8 MiB. Databases
    /// change a few pages at a time: smaller chunks let a second backup store only those.
    pub chunk_sizes: Option<(u32, u32, u32)>,
    /// Called after the source's entries are consumed and before the snapshot is written: the
    /// source's final manifest (e.g. a command's exit status). An error records no snapshot.
    pub finish: Option<ManifestHook>,
}

/// See [`BackupOptions::finish`].
pub type ManifestHook = Arc<dyn Fn() -> std::result::Result<Option<serde_json::Value>, String> + Send + Sync>;

/// One entry that could not be backed up.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EntryError {
    /// Its path.
    pub path: String,
    /// Why.
    pub message: String,
}

/// What a backup did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupStats {
    /// The new snapshot.
    pub snapshot_id: Id,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Counters, as stored in the snapshot.
    pub summary: SnapshotSummary,
    /// Entries skipped because they could not be read, and files stored but changed while they
    /// were read (their message says which).
    pub errors: Vec<EntryError>,
    /// Wall time.
    pub duration: Duration,
}

struct FileJob {
    dir: usize,
    slot: usize,
    /// Whether the file was in the parent snapshot (changed) or not (new).
    existed: bool,
    content: Content,
    expected_size: u64,
}

struct FileResult {
    dir: usize,
    slot: usize,
    existed: bool,
    outcome: std::result::Result<(Vec<Id>, u64), String>,
    /// The file changed while it was read (size or modification time): what, for a warning.
    changed: Option<String>,
}

struct PendingDir {
    node: Option<Node>,
    old_subtree: Option<Id>,
    children: Vec<Option<Node>>,
    pending: usize,
    parent: Option<(usize, usize)>,
    closed: bool,
}

/// Files no larger than this are read in one go instead of through the chunker (they are
/// one chunk anyway, and the chunker's buffer would cost more than the file).
const SMALL_FILE: u64 = 512 * 1024;

/// A batch of small files is handed over once it holds this many bytes.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Blobs per index file (restic's full index files hold 50,000 too).
const INDEX_FILE_BLOBS: usize = 50_000;

/// Small files are handed to the workers in batches of this many, to keep channel traffic low.
const BATCH_FILES: usize = 64;

#[derive(Default)]
struct Batch {
    jobs: Vec<FileJob>,
    bytes: u64,
}

/// Run a backup of `entries` into `repo`. The entries are pulled on the calling thread, in
/// order; reading file content happens on worker threads.
pub fn backup<I>(repo: &Repository, entries: I, opts: &BackupOptions) -> Result<BackupStats>
where
    I: Iterator<Item = Entry>,
{
    let start = Instant::now();
    let started_at = Utc::now();
    let index = repo.backup_index()?;
    let parent_tree = match opts.parent {
        Some(id) => {
            let snap: Snapshot = repo.load_json(FileType::Snapshot, &id.to_hex())?;
            repo.load_tree(&snap.tree).ok().map(Arc::new)
        }
        None => None,
    };
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    // Two writers: one can fsync while the other writes; a single writer puts fsync latency on
    // the critical path (measured: 30-130 % slower on this disk).
    let saver = BlobSaver::new(repo, index.clone(), 2);
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let progress = opts.progress.clone().unwrap_or_default();
    let polynomial = repo.config().polynomial().unwrap_or(0);
    let mut params = ChunkerParams::restic_sizes(polynomial);
    if let Some((min, avg, max)) = opts.chunk_sizes {
        params = ChunkerParams { min, avg, max, ..params };
    }

    let stop = AtomicBool::new(false);
    // One file chunked per two cores: its chunks are compressed by every blob worker, and each
    // holds the chunk being read (up to the maximum chunk size, 8 MiB; most end within 2 MiB).
    let big_files = util::Semaphore::new((threads / 2).max(1));
    let outcome = std::thread::scope(|s| {
        let (job_tx, job_rx) = bounded::<Vec<FileJob>>(threads * 2);
        // Chunks of big files waiting for a blob worker: one per worker (each up to 8 MiB).
        let (chunk_tx, chunk_rx) = bounded::<(Id, Vec<u8>)>(threads);
        let (res_tx, res_rx) = unbounded::<Vec<FileResult>>();
        // More readers than cores: on a cold page cache reading is bound by I/O latency, and
        // several outstanding reads keep the disk (and the compressing cores) busy.
        for _ in 0..(threads * 4).max(8) {
            let (job_rx, chunk_tx, res_tx) = (job_rx.clone(), chunk_tx.clone(), res_tx.clone());
            let ctx = WorkerCtx {
                saver: &saver,
                big_files: &big_files,
                params,
                stop: &stop,
                interrupt: &interrupt,
                progress: &progress,
            };
            s.spawn(move || file_worker(job_rx, chunk_tx, res_tx, ctx));
        }
        drop((job_rx, res_tx));
        for _ in 0..threads {
            let chunk_rx = chunk_rx.clone();
            let (saver, stop) = (&saver, &stop);
            s.spawn(move || {
                for (id, data) in chunk_rx {
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    if saver.store(BlobType::Data, id, &data).is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        drop((chunk_rx, chunk_tx));
        let mut asm = Assembler::new(repo, &index, &saver, parent_tree, &interrupt, &progress);
        let r = asm.run(entries, job_tx, res_rx);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r.map(|root| (root, asm.summary, asm.errors))
    });
    let (root, mut summary, errors) = match outcome {
        Ok(v) => v,
        Err(e) => {
            let real = saver.take_error();
            drop(saver);
            return Err(if interrupt.load(Ordering::Relaxed) { RepoError::Interrupted } else { real.unwrap_or(e) });
        }
    };
    let st = saver.stats();
    summary.data_blobs = st.data_blobs.load(Ordering::Relaxed);
    summary.tree_blobs = st.tree_blobs.load(Ordering::Relaxed);
    summary.data_added = st.bytes_added.load(Ordering::Relaxed);
    summary.data_added_packed = st.bytes_stored.load(Ordering::Relaxed);
    let packs = saver.finish()?;
    if interrupt.load(Ordering::Relaxed) {
        return Err(RepoError::Interrupted);
    }
    // Durability order: packs (stored by finish) → index → snapshot.
    write_index(repo, packs, INDEX_FILE_BLOBS)?;
    let mut source = opts.source.clone();
    if let Some(hook) = &opts.finish {
        let manifest = hook().map_err(RepoError::SourceFailed)?;
        if let (Some(src), Some(m)) = (source.as_mut(), manifest) {
            src.manifest = Some(m);
        }
    }
    summary.backup_start = Some(started_at);
    summary.backup_end = Some(Utc::now());
    let snapshot = Snapshot {
        time: opts.time.unwrap_or(started_at),
        parent: opts.parent,
        tree: root,
        paths: opts.paths.clone(),
        hostname: opts.hostname.clone().unwrap_or_else(util::hostname),
        username: util::username(),
        uid: util::current_uid(),
        gid: util::current_gid(),
        excludes: opts.excludes.clone(),
        tags: opts.tags.clone(),
        original: None,
        program_version: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary.clone()),
        source,
    };
    let json = serde_json::to_vec(&snapshot).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let snapshot_id = repo.save_unpacked(FileType::Snapshot, &json)?;
    Ok(BackupStats { snapshot_id, snapshot, summary, errors, duration: start.elapsed() })
}

/// What a file worker needs besides its channels.
#[derive(Clone, Copy)]
struct WorkerCtx<'a> {
    saver: &'a BlobSaver,
    /// Files that go through the chunker hold the chunk being read (up to their size, at most
    /// the maximum chunk size): one is chunked per two cores (the many small files still read in
    /// parallel), which bounds memory.
    big_files: &'a util::Semaphore,
    params: ChunkerParams,
    stop: &'a AtomicBool,
    interrupt: &'a AtomicBool,
    progress: &'a Progress,
}

fn file_worker(
    jobs: Receiver<Vec<FileJob>>,
    chunks: Sender<(Id, Vec<u8>)>,
    results: Sender<Vec<FileResult>>,
    ctx: WorkerCtx<'_>,
) {
    for batch in jobs {
        let mut out = Vec::with_capacity(batch.len());
        for job in batch {
            if ctx.stop.load(Ordering::Relaxed) || ctx.interrupt.load(Ordering::Relaxed) {
                out.push(FileResult {
                    dir: job.dir,
                    slot: job.slot,
                    existed: job.existed,
                    outcome: Err("backup stopped".into()),
                    changed: None,
                });
                continue;
            }
            // Files on disk: their state just before reading, to compare with after.
            let before = match &job.content {
                Content::Path(p) => std::fs::metadata(p).ok().map(|m| (p.clone(), m)),
                Content::Reader(_) => None,
            };
            let outcome = read_file(job.content, job.expected_size, &chunks, ctx);
            let changed = match (&outcome, before) {
                (Ok((_, read)), Some((p, m))) => changed_while_read(&p, job.expected_size, &m, *read),
                _ => None,
            };
            ctx.progress.files.fetch_add(1, Ordering::Relaxed);
            out.push(FileResult { dir: job.dir, slot: job.slot, existed: job.existed, outcome, changed });
        }
        if results.send(out).is_err() {
            return;
        }
    }
}

/// Whether a file changed while it was read: its size when scanned, the bytes read and its size
/// and modification time now must all agree. A snapshot of a file being written may hold a mix
/// of old and new content, so this is reported (restic does too).
///
/// Compared: the size when scanned, the bytes read, and the size and modification time just
/// before and just after reading (not the node's time: generated artifacts carry their own).
fn changed_while_read(
    path: &std::path::Path,
    scanned_size: u64,
    before: &std::fs::Metadata,
    read: u64,
) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::metadata(path).ok()?;
    if read != scanned_size || now.len() != scanned_size {
        Some(format!(
            "changed while it was read: {scanned_size} bytes when scanned, {read} read, {} now; the snapshot holds what was read",
            now.len()
        ))
    } else if (now.mtime(), now.mtime_nsec()) != (before.mtime(), before.mtime_nsec()) {
        Some("changed while it was read (modified meanwhile); the snapshot holds what was read".into())
    } else {
        None
    }
}

/// Read, chunk, hash and deduplicate one file. Files that go through the chunker (and streams)
/// are chunked one at a time per two cores and their new chunks go to the blob workers, so one
/// file still uses every core and only one chunker buffer is held per two cores; small files
/// are stored right here, which saves a channel hop per file.
fn read_file(
    content: Content,
    expected: u64,
    chunks: &Sender<(Id, Vec<u8>)>,
    ctx: WorkerCtx<'_>,
) -> std::result::Result<(Vec<Id>, u64), String> {
    let fan_out = matches!(content, Content::Reader(_)) || expected >= SMALL_FILE;
    let _permit = fan_out.then(|| ctx.big_files.acquire());
    let mut reader: Box<dyn Read + Send> = match content {
        Content::Path(p) => Box::new(util::open_noatime(&p, nix::fcntl::OFlag::empty()).map_err(|e| e.to_string())?),
        Content::Reader(r) => r,
    };
    let mut ids = Vec::new();
    let mut size = 0u64;
    let mut emit = |chunk: Vec<u8>| -> std::result::Result<(), String> {
        let id = Id(sha256(&chunk));
        size += chunk.len() as u64;
        ctx.progress.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if ctx.saver.claim(BlobType::Data, &id) {
            ctx.progress.bytes_new.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if fan_out {
                chunks.send((id, chunk)).map_err(|_| "backup stopped".to_string())?;
            } else {
                ctx.saver.store(BlobType::Data, id, &chunk).map_err(|e| e.to_string())?;
            }
        }
        ids.push(id);
        Ok(())
    };
    if expected < SMALL_FILE && !fan_out {
        let mut buf = Vec::with_capacity(expected as usize + 1);
        (&mut reader).take(SMALL_FILE).read_to_end(&mut buf).map_err(|e| e.to_string())?;
        if (buf.len() as u64) < SMALL_FILE {
            if !buf.is_empty() {
                emit(buf)?;
            }
            return Ok((ids, size));
        }
        // The file grew past the small-file limit while we read it: chunk it normally.
        reader = Box::new(std::io::Cursor::new(buf).chain(reader));
    }
    for chunk in Chunker::new(reader, ctx.params).with_size_hint(expected) {
        if ctx.interrupt.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        emit(chunk.map_err(|e| e.to_string())?)?;
    }
    Ok((ids, size))
}

struct Assembler<'a> {
    repo: &'a Repository,
    index: &'a Index,
    saver: &'a BlobSaver,
    interrupt: &'a AtomicBool,
    progress: &'a Progress,
    dirs: Vec<Option<PendingDir>>,
    /// Stack of open directories with the matching parent-snapshot tree.
    stack: Vec<(usize, Option<Arc<Tree>>)>,
    root: Option<Id>,
    summary: SnapshotSummary,
    errors: Vec<EntryError>,
}

impl<'a> Assembler<'a> {
    fn new(
        repo: &'a Repository,
        index: &'a Index,
        saver: &'a BlobSaver,
        parent: Option<Arc<Tree>>,
        interrupt: &'a AtomicBool,
        progress: &'a Progress,
    ) -> Self {
        let root =
            PendingDir { node: None, old_subtree: None, children: Vec::new(), pending: 0, parent: None, closed: false };
        Assembler {
            repo,
            index,
            saver,
            interrupt,
            progress,
            dirs: vec![Some(root)],
            stack: vec![(0, parent)],
            root: None,
            summary: SnapshotSummary::default(),
            errors: Vec::new(),
        }
    }

    fn run<I: Iterator<Item = Entry>>(
        &mut self,
        entries: I,
        jobs: Sender<Vec<FileJob>>,
        results: Receiver<Vec<FileResult>>,
    ) -> Result<Id> {
        let mut batch = Batch::default();
        for e in entries {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(RepoError::Interrupted);
            }
            self.entry(e, &mut batch)?;
            if batch.jobs.len() >= BATCH_FILES || batch.bytes >= BATCH_BYTES {
                self.send(&mut batch, &jobs)?;
            }
            while let Ok(r) = results.try_recv() {
                self.results(r)?;
            }
            // Packs already durable get their index file now: the entries of a backup of
            // millions of files are not all held until the end. (An index file naming packs of
            // a backup that then fails is harmless: prune removes what no snapshot uses.)
            if let Some(packs) = self.saver.take_written(INDEX_FILE_BLOBS) {
                write_index(self.repo, packs, INDEX_FILE_BLOBS)?;
            }
        }
        self.send(&mut batch, &jobs)?;
        drop(jobs);
        if self.stack.len() != 1 {
            return Err(RepoError::Invalid("source ended inside a directory".into()));
        }
        self.close(0)?;
        while self.root.is_none() {
            if self.interrupt.load(Ordering::Relaxed) {
                return Err(RepoError::Interrupted);
            }
            match results.recv_timeout(Duration::from_millis(200)) {
                Ok(r) => self.results(r)?,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => self.saver.check()?,
                Err(_) => return Err(RepoError::Invalid("file workers stopped".into())),
            }
        }
        self.root.ok_or_else(|| RepoError::Invalid("no root tree".into()))
    }

    fn send(&mut self, batch: &mut Batch, jobs: &Sender<Vec<FileJob>>) -> Result<()> {
        if batch.jobs.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(batch);
        jobs.send(b.jobs).map_err(|_| RepoError::Invalid("file workers stopped".into()))?;
        self.saver.check()
    }

    fn results(&mut self, batch: Vec<FileResult>) -> Result<()> {
        for r in batch {
            self.result(r)?;
        }
        Ok(())
    }

    fn dir(&mut self, i: usize) -> Result<&mut PendingDir> {
        self.dirs
            .get_mut(i)
            .and_then(Option::as_mut)
            .ok_or_else(|| RepoError::Invalid("directory already finished".into()))
    }

    fn push_child(&mut self, node: Option<Node>, pending: bool) -> Result<(usize, usize)> {
        let cur = self.stack.last().map(|s| s.0).unwrap_or(0);
        let d = self.dir(cur)?;
        d.children.push(node);
        if pending {
            d.pending += 1;
        }
        Ok((cur, d.children.len() - 1))
    }

    fn old_node(&self, name: &str) -> Option<Node> {
        self.stack.last().and_then(|(_, t)| t.as_ref()).and_then(|t| t.find(name)).cloned()
    }

    fn entry(&mut self, e: Entry, batch: &mut Batch) -> Result<()> {
        match e {
            Entry::DirStart(node) => {
                let old = self.old_node(&node.name);
                let old_subtree = old.as_ref().filter(|n| n.node_type == NodeType::Dir).and_then(|n| n.subtree);
                let old_tree = old_subtree.and_then(|id| self.repo.load_tree(&id).ok()).map(Arc::new);
                if old.is_none() {
                    self.summary.dirs_new += 1;
                }
                let (parent, slot) = self.push_child(None, true)?;
                self.dirs.push(Some(PendingDir {
                    node: Some(node),
                    old_subtree,
                    children: Vec::new(),
                    pending: 0,
                    parent: Some((parent, slot)),
                    closed: false,
                }));
                self.stack.push((self.dirs.len() - 1, old_tree));
            }
            Entry::DirEnd => {
                let (i, _) = self.stack.pop().ok_or_else(|| RepoError::Invalid("unbalanced directory end".into()))?;
                if self.stack.is_empty() {
                    return Err(RepoError::Invalid("unbalanced directory end".into()));
                }
                self.close(i)?;
            }
            Entry::File { mut node, content } => {
                self.summary.total_files_processed += 1;
                let old = self.old_node(&node.name);
                if let Some(old) = old.as_ref().filter(|o| self.unchanged(o, &node)) {
                    node.content = old.content.clone();
                    self.summary.files_unmodified += 1;
                    self.summary.total_bytes_processed += node.size;
                    self.progress.files.fetch_add(1, Ordering::Relaxed);
                    self.progress.bytes.fetch_add(node.size, Ordering::Relaxed);
                    self.push_child(Some(node), false)?;
                    return Ok(());
                }
                if old.is_some() {
                    self.summary.files_changed += 1;
                } else {
                    self.summary.files_new += 1;
                }
                let expected_size = node.size;
                let (dir, slot) = self.push_child(Some(node), true)?;
                batch.bytes += expected_size;
                batch.jobs.push(FileJob { dir, slot, existed: old.is_some(), content, expected_size });
            }
            Entry::Special(node) => {
                self.push_child(Some(node), false)?;
            }
            Entry::Error { path, message } => self.errors.push(EntryError { path, message }),
        }
        Ok(())
    }

    /// restic's change detection: same type, size, mtime, ctime and inode, and every content
    /// blob still in the index.
    fn unchanged(&self, old: &Node, new: &Node) -> bool {
        old.node_type == NodeType::File
            && old.size == new.size
            && old.mtime == new.mtime
            && old.ctime == new.ctime
            && old.inode == new.inode
            && old.content.as_ref().is_some_and(|c| {
                c.iter().all(|id| self.index.contains(BlobType::Data, id) || self.saver.known(BlobType::Data, id))
            })
    }

    fn result(&mut self, r: FileResult) -> Result<()> {
        let d = self.dir(r.dir)?;
        d.pending -= 1;
        match r.outcome {
            Ok((ids, size)) => {
                let mut name = String::new();
                if let Some(Some(node)) = d.children.get_mut(r.slot) {
                    node.content = Some(ids);
                    node.size = size;
                    name = node.name.clone();
                }
                self.summary.total_bytes_processed += size;
                if let Some(message) = r.changed {
                    // Stored, but named like an unreadable file: the backup is partial (exit 3).
                    let path = self.dir_path(r.dir, &name);
                    self.errors.push(EntryError { path, message });
                }
            }
            Err(message) => {
                let name = d.children.get_mut(r.slot).and_then(Option::take).map(|n| n.name).unwrap_or_default();
                let path = self.dir_path(r.dir, &name);
                if self.interrupt.load(Ordering::Relaxed) {
                    return Err(RepoError::Interrupted);
                }
                self.saver.check()?;
                // Not in the snapshot, so not counted as backed up.
                self.summary.total_files_processed -= 1;
                if r.existed {
                    self.summary.files_changed -= 1;
                } else {
                    self.summary.files_new -= 1;
                }
                self.errors.push(EntryError { path, message });
            }
        }
        self.try_finish(r.dir)
    }

    fn dir_path(&self, mut i: usize, name: &str) -> String {
        let lossy =
            |n: &str| String::from_utf8_lossy(&lifeboat_format::name::unquote(n).unwrap_or_default()).into_owned();
        let mut parts = vec![lossy(name)];
        while let Some(Some(d)) = self.dirs.get(i) {
            if let Some(n) = &d.node {
                parts.push(lossy(&n.name));
            }
            match d.parent {
                Some((p, _)) => i = p,
                None => break,
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn close(&mut self, i: usize) -> Result<()> {
        self.dir(i)?.closed = true;
        self.try_finish(i)
    }

    fn try_finish(&mut self, mut i: usize) -> Result<()> {
        loop {
            let d = self.dir(i)?;
            if !d.closed || d.pending > 0 {
                return Ok(());
            }
            let Some(d) = self.dirs[i].take() else { return Ok(()) };
            let mut nodes: Vec<Node> = d.children.into_iter().flatten().collect();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            nodes.dedup_by(|a, b| a.name == b.name);
            let blob = Tree { nodes }.to_blob();
            let (id, _) = self.saver.save(BlobType::Tree, &blob)?;
            match (d.parent, d.node) {
                (Some((p, slot)), Some(mut node)) => {
                    if d.old_subtree == Some(id) {
                        self.summary.dirs_unmodified += 1;
                    } else if d.old_subtree.is_some() {
                        self.summary.dirs_changed += 1;
                    }
                    node.subtree = Some(id);
                    let parent = self.dir(p)?;
                    parent.children[slot] = Some(node);
                    parent.pending -= 1;
                    i = p;
                }
                _ => {
                    self.root = Some(id);
                    return Ok(());
                }
            }
        }
    }
}
