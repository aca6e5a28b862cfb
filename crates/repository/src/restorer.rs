//! Restoring a snapshot (or part of it) into a directory.
//!
//! Files are written beside their final name (`.name.lifeboat-tmp`) and renamed into place once
//! complete, with metadata applied; so an interrupted restore never leaves a half-written file
//! under its real name. A directory's metadata is applied once everything below it is written,
//! deepest first. The walk of the snapshot's trees runs one batch of entries ahead of the
//! writing, so memory does not grow with the number of files.
//!
//! Damage does not stop a restore: a file whose data cannot be read intact (a blob missing from
//! the index, a pack missing or short, a blob that fails decryption or its hash) is left out —
//! its temporary is removed, nothing is written under its name — and returned in
//! [`RestoreStats::failed`] with its path, blob and pack; a directory whose tree cannot be read
//! is created empty and named the same way. Every other file is restored.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use filetime::FileTime;
use lifeboat_backend::FileType;
use lifeboat_crypto::sha256;
use lifeboat_format::mode::unix_permissions_from_go;
use lifeboat_format::{BlobType, Id, Node, NodeType};

use crate::index::{BlobLocation, Index};
use crate::tree::WalkEntry;
use crate::{util, RepoError, Repository, Result};

/// Options of a restore.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Only restore these snapshot paths (and what is below them). Empty = everything.
    pub include: Vec<String>,
    /// Replace existing files in a non-empty target.
    pub overwrite: bool,
    /// Only plan; write nothing.
    pub dry_run: bool,
    /// Read every restored file back and compare it with the snapshot.
    pub verify: bool,
    /// Worker threads (defaults to the number of cores).
    pub threads: Option<usize>,
    /// Set to stop early.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Counters updated while running.
    pub progress: Option<Arc<crate::archiver::Progress>>,
}

/// What a restore did (or would do, for a dry run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    /// Files written (or to write).
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks, FIFOs, device nodes and sockets in the snapshot.
    pub others: u64,
    /// Socket entries, which are not recreated (like restic): a socket only means something
    /// while a process listens on it.
    pub sockets_skipped: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Files verified after writing.
    pub verified: u64,
    /// Problems that did not stop the restore (e.g. ownership not settable).
    pub warnings: Vec<String>,
    /// Dry run: entries of the snapshot that exist in the target already and would be replaced
    /// (existing directories are kept and filled, so they are not counted).
    pub replaced: u64,
    /// Dry run: size of the existing files that would be replaced.
    pub replaced_bytes: u64,
    /// Dry run: entries in the target that would be deleted (what is inside a directory that
    /// stands where the snapshot has a file or a link). Nothing else in the target is deleted.
    pub deleted: u64,
    /// Dry run: the target exists and is not empty, so a real run needs `overwrite`.
    pub target_not_empty: bool,
    /// Files (and directories whose tree is damaged) left out because their data cannot be
    /// read intact; nothing was written under their names.
    pub files_failed: u64,
    /// Each of them: path, blob, pack and why.
    pub failed: Vec<FailedFile>,
}

/// An entry a restore left out because the repository cannot give its data intact.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FailedFile {
    /// Path inside the snapshot.
    pub path: String,
    /// The blob (data, or tree for a directory) that could not be read.
    pub blob: Option<Id>,
    /// The pack the index places that blob in; `None` when the index does not list it.
    pub pack: Option<Id>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for FailedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(b) = &self.blob {
            write!(f, ": blob {b}")?;
        }
        match &self.pack {
            Some(p) => write!(f, " in pack {p}")?,
            None if self.blob.is_some() => write!(f, " (in no index)")?,
            None => {}
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why one file's data could not be read: the blob, its pack and the error.
struct Damage {
    blob: Id,
    pack: Option<Id>,
    error: RepoError,
}

impl Damage {
    fn into_failed(self, path: &str) -> FailedFile {
        let reason = match &self.error {
            RepoError::Corrupt { reason, .. } => reason.clone(),
            e => e.to_string(),
        };
        FailedFile { path: path.to_string(), blob: Some(self.blob), pack: self.pack, reason }
    }
}

/// Whether a backend error means the stored data is gone or cut short (damage), rather than the
/// storage being unreachable (which stops the restore).
fn is_damage(e: &lifeboat_backend::BackendError) -> bool {
    e.is_not_found() || matches!(e, lifeboat_backend::BackendError::ShortRead { .. })
}

fn matches_include(path: &str, include: &[String]) -> (bool, bool) {
    // (restore this entry, descend into it)
    if include.is_empty() {
        return (true, true);
    }
    let mut take = false;
    let mut descend = false;
    for inc in include {
        let inc = inc.trim_end_matches('/');
        if path == inc || path.starts_with(&format!("{inc}/")) {
            take = true;
            descend = true;
        } else if inc.starts_with(&format!("{path}/")) {
            descend = true;
        }
    }
    (take, descend)
}

/// Entries handed from the walk of the snapshot's trees to the writers at once. The walk runs at
/// most one batch ahead, so a restore's memory does not grow with the number of files: what it
/// keeps for the whole run is the index, the hard-linked files' first paths and the failures.
const BATCH: usize = 8192;

/// What the walk of the selected entries reports, in order.
enum Visit<'e> {
    /// An entry to restore (or a directory on the way to one), before anything below it.
    Enter(&'e WalkEntry),
    /// A directory entered earlier, once everything below it has been entered.
    Leave(&'e WalkEntry),
    /// A directory whose tree cannot be read (it is restored empty).
    Unreadable(FailedFile),
}

/// A slice of the walk: entries in walk order, and the directories whose whole subtree is in
/// this batch or an earlier one (deepest first), whose metadata can be applied once the batch is
/// written.
#[derive(Default)]
struct Batch {
    entries: Vec<WalkEntry>,
    finished: Vec<WalkEntry>,
    failed: Vec<FailedFile>,
}

/// Restore `tree` (the snapshot root) into `target`.
pub fn restore(repo: &Repository, tree: &Id, target: &Path, opts: &RestoreOptions) -> Result<RestoreStats> {
    let index = repo.index()?;
    let root = repo.load_tree(tree)?;
    if !opts.include.is_empty() {
        check_includes(repo, &index, root.clone(), &opts.include)?;
    }
    if opts.dry_run {
        let mut stats = RestoreStats {
            target_not_empty: std::fs::read_dir(target).is_ok_and(|mut rd| rd.next().is_some()),
            ..Default::default()
        };
        let mut failed = Vec::new();
        walk_selected(repo, &index, root, "", Path::new(""), &opts.include, &mut |v| {
            match v {
                Visit::Enter(e) => {
                    count(&mut stats, &e.node);
                    impact(target, e, &mut stats);
                }
                Visit::Leave(_) => {}
                Visit::Unreadable(f) => failed.push(f),
            }
            true
        });
        failed.sort_by(|a, b| a.path.cmp(&b.path));
        stats.files_failed = failed.len() as u64;
        stats.failed = failed;
        return Ok(stats);
    }
    // Into an empty target nothing can be overwritten and no temporary of an earlier restore
    // is left: files are written unnamed and linked in when complete (see `write_file`).
    let fresh = check_target(target, opts.overwrite)?;
    std::fs::create_dir_all(target).map_err(|e| RepoError::io(target, e))?;
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let writer = Writer {
        repo,
        index: &index,
        target,
        opts,
        fresh,
        threads,
        interrupt: opts.interrupt.clone().unwrap_or_default(),
        progress: opts.progress.clone().unwrap_or_default(),
        warnings: Mutex::new(Vec::new()),
        error: Mutex::new(None),
        spare_decoders: AtomicUsize::new(threads.saturating_sub(1)),
    };
    let mut out = Written::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(1);
    std::thread::scope(|s| {
        let index = &index;
        s.spawn(move || {
            let mut batch = Batch::default();
            let mut stopped = false;
            walk_selected(repo, index, root, "", Path::new(""), &opts.include, &mut |v| {
                if stopped {
                    return false;
                }
                match v {
                    Visit::Enter(e) => batch.entries.push(e.clone()),
                    Visit::Leave(e) => batch.finished.push(e.clone()),
                    Visit::Unreadable(f) => batch.failed.push(f),
                }
                // The writer stopped (an error, an interrupt): so does the walk.
                if batch.entries.len() >= BATCH && tx.send(std::mem::take(&mut batch)).is_err() {
                    stopped = true;
                }
                !stopped
            });
            if !stopped {
                let _ = tx.send(batch);
            }
        });
        // `rx` is dropped when this returns, which stops the walk early on an error.
        writer.run(rx, &mut out)
    })?;
    let mut stats = out.stats;
    let mut failed = out.failed;
    failed.sort_by(|a, b| a.path.cmp(&b.path));
    stats.files_failed = failed.len() as u64;
    stats.failed = failed;
    stats.warnings = writer.warnings.into_inner().unwrap_or_default();
    Ok(stats)
}

/// Every include must name something in the snapshot: a typo must not "succeed" quietly (unless
/// it lies below a directory whose tree is damaged: that one is named already). Checked before
/// anything is written; the walk goes only where an include not found yet may lie.
fn check_includes(repo: &Repository, index: &Index, root: lifeboat_format::Tree, include: &[String]) -> Result<()> {
    let include: Vec<&str> = include.iter().map(|i| i.trim_end_matches('/')).collect();
    let mut found = vec![false; include.len()];
    let mut unreadable = Vec::new();
    walk_selected(repo, index, root, "", Path::new(""), &[], &mut |v| match v {
        Visit::Enter(e) => {
            let mut below = false;
            for (inc, f) in include.iter().zip(found.iter_mut()) {
                if e.path == *inc {
                    *f = true;
                } else if !*f && inc.starts_with(&format!("{}/", e.path)) {
                    below = true;
                }
            }
            below
        }
        Visit::Leave(_) => true,
        Visit::Unreadable(f) => {
            unreadable.push(f.path);
            true
        }
    });
    for (inc, f) in include.iter().zip(found) {
        let below_damage = unreadable.iter().any(|p| inc == p || inc.starts_with(&format!("{p}/")));
        if !f && !below_damage {
            return Err(RepoError::PathNotFound(inc.to_string()));
        }
    }
    Ok(())
}

/// Add one entry to the totals.
fn count(stats: &mut RestoreStats, node: &Node) {
    match node.node_type {
        NodeType::File => {
            stats.files += 1;
            stats.bytes += node.size;
        }
        NodeType::Dir => stats.dirs += 1,
        NodeType::Socket => {
            stats.others += 1;
            stats.sockets_skipped += 1;
        }
        _ => stats.others += 1,
    }
}

/// Batches being written at once, at most: the writers go on with the next batch while the last
/// files of one are still being written (no pause at batch ends), and memory stays bounded.
const BATCHES_IN_FLIGHT: usize = 4;

/// A batch handed to the writer threads, until its last file is written.
struct Pending {
    batch: Batch,
    /// Hard links to make once the batch is written: (first path, its snapshot path, link,
    /// the link's snapshot path).
    links: Vec<(PathBuf, String, PathBuf, String)>,
    /// Work items not finished yet, plus one while they are still being handed out.
    left: AtomicUsize,
    failed: Mutex<Vec<FailedFile>>,
    verified: AtomicU64,
}

/// The writing side of a restore. The walk's batches come in order; each batch's directories
/// are created, its files handed to the writer threads, and once all of a batch's files (and
/// all earlier batches') are written, its hard links and special files are made and the
/// metadata of the directories it completed applied (deepest first, so writing children does
/// not change their times).
struct Writer<'a> {
    repo: &'a Repository,
    index: &'a Index,
    target: &'a Path,
    opts: &'a RestoreOptions,
    fresh: bool,
    threads: usize,
    interrupt: Arc<AtomicBool>,
    progress: Arc<crate::archiver::Progress>,
    warnings: Mutex<Vec<String>>,
    /// The first error of a writer thread; everything stops.
    error: Mutex<Option<RepoError>>,
    /// Decoding threads a large file may take beside its writer's own (see [`restore_file`]).
    spare_decoders: AtomicUsize,
}

/// What the restore's own thread keeps while the writers work.
#[derive(Default)]
struct Written {
    /// Hard links: the first path of an inode is written, later ones are linked to it.
    first_of_inode: HashMap<(u64, u64), (PathBuf, String)>,
    failed: Vec<FailedFile>,
    stats: RestoreStats,
}

impl Writer<'_> {
    /// Write every batch the walk sends.
    fn run(&self, batches: std::sync::mpsc::Receiver<Batch>, out: &mut Written) -> Result<()> {
        let (work_tx, work_rx) = crossbeam_channel::bounded::<(Arc<Pending>, Work)>(self.threads * 4);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        let this = self;
        std::thread::scope(|s| {
            for _ in 0..self.threads + 1 {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                s.spawn(move || {
                    for (p, w) in work_rx {
                        if !this.stopped() {
                            if let Err(e) = this.work(&p, w) {
                                this.fail(e);
                            }
                        }
                        if p.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                            let _ = done_tx.send(());
                        }
                    }
                });
            }
            drop(work_rx);
            let mut in_flight: std::collections::VecDeque<Arc<Pending>> = Default::default();
            for batch in batches.iter() {
                if self.stopped() {
                    break;
                }
                let (pending, work) = match self.start(batch, out) {
                    Ok(p) => p,
                    Err(e) => {
                        self.fail(e);
                        break;
                    }
                };
                let pending = Arc::new(pending);
                for w in work {
                    pending.left.fetch_add(1, Ordering::AcqRel);
                    if work_tx.send((pending.clone(), w)).is_err() {
                        break;
                    }
                }
                pending.left.fetch_sub(1, Ordering::AcqRel);
                in_flight.push_back(pending);
                if let Err(e) = self.finish_ready(&mut in_flight, &done_rx, BATCHES_IN_FLIGHT, out) {
                    self.fail(e);
                    break;
                }
            }
            drop(work_tx);
            // Dropping the walk's end stops it, if it is still going.
            drop(batches);
            if let Err(e) = self.finish_ready(&mut in_flight, &done_rx, 0, out) {
                self.fail(e);
            }
        });
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(e) => Err(e),
            None if self.interrupt.load(Ordering::Relaxed) => Err(RepoError::Interrupted),
            None => Ok(()),
        }
    }

    /// Keep the first error; every thread stops at its next item.
    fn fail(&self, e: RepoError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn stopped(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed) || self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    /// Finish the written batches at the front of `in_flight`, waiting until at most `keep` are
    /// left.
    fn finish_ready(
        &self,
        in_flight: &mut std::collections::VecDeque<Arc<Pending>>,
        done: &crossbeam_channel::Receiver<()>,
        keep: usize,
        out: &mut Written,
    ) -> Result<()> {
        loop {
            // Stopped (an error, an interrupt): unfinished batches stay so; their files may not
            // have been written, so no links or directory metadata are made for them.
            if self.stopped() {
                return Ok(());
            }
            match in_flight.front() {
                Some(p) if p.left.load(Ordering::Acquire) == 0 => {
                    if let Some(p) = in_flight.pop_front() {
                        self.finish(p, out)?;
                    }
                }
                Some(_) if in_flight.len() > keep => {
                    // Woken each time a batch's last item is done.
                    let _ = done.recv_timeout(std::time::Duration::from_millis(100));
                }
                _ => return Ok(()),
            }
        }
    }

    /// Take one batch: count it, create its directories, and plan its files' work.
    fn start(&self, batch: Batch, out: &mut Written) -> Result<(Pending, Vec<Work>)> {
        for e in &batch.entries {
            count(&mut out.stats, &e.node);
        }
        // Directories first, so files have a place to go.
        for e in batch.entries.iter().filter(|e| e.node.node_type == NodeType::Dir) {
            let p = self.target.join(&e.raw);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    // A file or symlink where the snapshot has a directory (only with
                    // --overwrite): replace it, and never follow a symlink out of the target.
                    std::fs::remove_file(&p).map_err(|err| RepoError::io(&p, err))?;
                    std::fs::create_dir(&p).map_err(|err| RepoError::io(&p, err))?;
                }
                Err(_) => std::fs::create_dir(&p).map_err(|err| RepoError::io(&p, err))?,
            }
            // Writable while we fill it; the final mode is applied when it is complete.
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
        }
        let mut files = Vec::new();
        let mut links = Vec::new();
        for (i, e) in batch.entries.iter().enumerate().filter(|(_, e)| e.node.node_type == NodeType::File) {
            if e.node.links > 1 && e.node.inode != 0 {
                let p = self.target.join(&e.raw);
                if let Some((first, first_path)) = out.first_of_inode.get(&(e.node.device_id, e.node.inode)) {
                    links.push((first.clone(), first_path.clone(), p, e.path.clone()));
                    continue;
                }
                out.first_of_inode.insert((e.node.device_id, e.node.inode), (p, e.path.clone()));
            }
            files.push(i);
        }
        let work = plan_work(self.index, &batch.entries, files);
        let pending = Pending {
            batch,
            links,
            left: std::sync::atomic::AtomicUsize::new(1),
            failed: Mutex::new(Vec::new()),
            verified: AtomicU64::new(0),
        };
        Ok((pending, work))
    }

    /// One work item of a batch, on a writer thread.
    fn work(&self, p: &Pending, w: Work) -> Result<()> {
        let item = |i: usize| {
            let e = &p.batch.entries[i];
            Item { dest: self.target.join(&e.raw), node: &e.node, path: &e.path }
        };
        let (done, damaged) = match w {
            Work::File(i) => {
                let item = item(i);
                match restore_file(self.repo, self.index, &item, &self.warnings, self.fresh, &self.spare_decoders)? {
                    None => (vec![item], Vec::new()),
                    Some(d) => (Vec::new(), vec![d.into_failed(item.path)]),
                }
            }
            Work::Pack(pack, files) => {
                let files = files.into_iter().map(item).collect();
                restore_small_files(self.repo, self.index, &pack, files, &self.warnings, self.fresh)?
            }
        };
        if !damaged.is_empty() {
            if let Ok(mut f) = p.failed.lock() {
                f.extend(damaged);
            }
        }
        for item in done {
            if self.opts.verify {
                verify_file(self.index, &item.dest, item.node)?;
                p.verified.fetch_add(1, Ordering::Relaxed);
            }
            self.progress.files.fetch_add(1, Ordering::Relaxed);
            self.progress.bytes.fetch_add(item.node.size, Ordering::Relaxed);
        }
        Ok(())
    }

    /// A batch whose files (and every earlier batch's) are written: its hard links, special
    /// files, and the metadata of the directories it completed.
    fn finish(&self, p: Arc<Pending>, out: &mut Written) -> Result<()> {
        // A writer thread may still hold its clone for a moment after its last item: read the
        // batch through the shared reference.
        out.stats.verified += p.verified.load(Ordering::Relaxed);
        out.failed.extend(p.failed.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default());
        out.failed.extend(p.batch.failed.iter().cloned());
        for (first, first_path, link, path) in &p.links {
            if out.failed.iter().any(|f| f.path == *first_path) {
                // The first path of the inode could not be restored: its links cannot be either.
                out.failed.push(FailedFile {
                    path: path.clone(),
                    blob: None,
                    pack: None,
                    reason: format!("hard link to {first_path}, which could not be restored"),
                });
                continue;
            }
            replace_with(link, |tmp| std::fs::hard_link(first, tmp))?;
        }
        let target = self.target;
        for e in p.batch.entries.iter().filter(|e| !matches!(e.node.node_type, NodeType::File | NodeType::Dir)) {
            restore_special(&target.join(&e.raw), &e.node, &self.warnings)?;
        }
        for e in &p.batch.finished {
            apply_metadata(&target.join(&e.raw), &e.node, &self.warnings)?;
        }
        Ok(())
    }
}

/// What restoring `e` would do to what is in the target already (for a dry run).
fn impact(target: &Path, e: &WalkEntry, stats: &mut RestoreStats) {
    let Ok(m) = std::fs::symlink_metadata(target.join(&e.raw)) else { return };
    match (e.node.node_type == NodeType::Dir, m.is_dir()) {
        (true, true) => {}
        (false, true) => stats.deleted += count_below(&target.join(&e.raw)),
        _ => {
            stats.replaced += 1;
            if m.is_file() {
                stats.replaced_bytes += m.len();
            }
        }
    }
}

/// Entries in a directory tree, the directory included (symbolic links are not followed).
fn count_below(dir: &Path) -> u64 {
    let below: u64 = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| if e.file_type().is_ok_and(|t| t.is_dir()) { count_below(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0);
    below + 1
}

/// Whether a restore may write into `target`; `Ok(true)` when it is empty or missing.
fn check_target(target: &Path, overwrite: bool) -> Result<bool> {
    match std::fs::read_dir(target) {
        Ok(mut rd) => {
            let empty = rd.next().is_none();
            if !empty && !overwrite {
                return Err(RepoError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(empty)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(RepoError::io(target, e)),
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    // Built from the raw bytes: two names that differ only in invalid UTF-8 must not share one.
    let mut name = std::ffi::OsString::from(".");
    name.push(p.file_name().unwrap_or_default());
    name.push(".lifeboat-tmp");
    p.with_file_name(name)
}

/// Create the entry at a temporary name with `make`, then rename it over `p`.
fn replace_with(p: &Path, make: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let tmp = tmp_path(p);
    let _ = std::fs::remove_file(&tmp);
    make(&tmp).map_err(|e| RepoError::io(&tmp, e))?;
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(p).map_err(|e| RepoError::io(p, e))?;
    }
    std::fs::rename(&tmp, p).map_err(|e| RepoError::io(p, e))
}

/// A file to restore: where it goes, its node, and its path inside the snapshot.
struct Item<'a> {
    dest: PathBuf,
    node: &'a Node,
    path: &'a str,
}

/// A unit of restore work, naming files by their place in the batch.
enum Work {
    /// A file of several blobs, restored on its own (big files first).
    File(usize),
    /// Files of at most one blob each, all in one pack: one read serves them all.
    Pack(Id, Vec<usize>),
}

/// Group one-blob files by pack (restic's trick: read each pack once, not once per file) and
/// order the work so big files start first. A file whose blob is in no index is restored on its
/// own, which names it as failed.
fn plan_work(index: &Index, entries: &[WalkEntry], files: Vec<usize>) -> Vec<Work> {
    let mut by_pack: crate::index::IdMap<Vec<usize>> = Default::default();
    let mut big = Vec::new();
    let mut empty = Vec::new();
    for i in files {
        match entries[i].node.content.as_deref().unwrap_or_default() {
            [] => empty.push(i),
            [one] => match index.get(BlobType::Data, one) {
                Some(loc) => by_pack.entry(loc.pack).or_default().push(i),
                None => big.push(i),
            },
            _ => big.push(i),
        }
    }
    big.sort_by_key(|&i| std::cmp::Reverse(entries[i].node.size));
    let mut work: Vec<Work> = big.into_iter().map(Work::File).collect();
    work.extend(by_pack.into_iter().map(|(pack, files)| Work::Pack(pack, files)));
    work.extend(empty.into_iter().map(Work::File));
    work
}

/// Walk the entries that `include` selects (all when it is empty) below `tree`, in order,
/// telling `visit` each one, each directory again once everything below it is done, and each
/// directory whose tree cannot be read (it is still visited, so it is created, and the walk goes
/// on). `visit` returns whether to go down into an entered directory.
fn walk_selected(
    repo: &Repository,
    index: &Index,
    tree: lifeboat_format::Tree,
    prefix: &str,
    raw_prefix: &Path,
    include: &[String],
    visit: &mut dyn FnMut(Visit<'_>) -> bool,
) {
    use std::os::unix::ffi::OsStrExt;
    for node in tree.nodes {
        let bytes = node.name_bytes();
        let path = format!("{}/{}", prefix.trim_end_matches('/'), String::from_utf8_lossy(&bytes));
        let (take, descend) = matches_include(&path, include);
        let is_dir = node.node_type == NodeType::Dir;
        if !(take || descend && is_dir) {
            continue;
        }
        let raw = raw_prefix.join(std::ffi::OsStr::from_bytes(&bytes));
        let subtree = node.subtree.filter(|_| is_dir);
        let entry = WalkEntry { path, raw, node };
        if !visit(Visit::Enter(&entry)) || !descend {
            continue;
        }
        if let Some(sub) = subtree {
            match repo.load_tree(&sub) {
                Ok(t) => walk_selected(repo, index, t, &entry.path, &entry.raw, include, visit),
                Err(e) => {
                    let failed = FailedFile {
                        path: entry.path.clone(),
                        blob: Some(sub),
                        pack: index.get(BlobType::Tree, &sub).map(|l| l.pack),
                        reason: format!(
                            "directory contents cannot be read ({}); the directory is restored empty",
                            match e {
                                RepoError::Corrupt { reason, .. } => reason,
                                e => e.to_string(),
                            }
                        ),
                    };
                    visit(Visit::Unreadable(failed));
                }
            }
        }
        if is_dir {
            visit(Visit::Leave(&entry));
        }
    }
}

/// Restore files of one blob each from one pack, reading the span they occupy once; returns
/// the files restored and those left out. When the span cannot be read (a pack missing or cut
/// short), each file is tried on its own, so what can be read still is.
fn restore_small_files<'a>(
    repo: &Repository,
    index: &Index,
    pack: &Id,
    mut files: Vec<Item<'a>>,
    warnings: &Mutex<Vec<String>>,
    fresh: bool,
) -> Result<(Vec<Item<'a>>, Vec<FailedFile>)> {
    let mut done = Vec::with_capacity(files.len());
    let mut failed = Vec::new();
    let mut located = Vec::with_capacity(files.len());
    for item in files.drain(..) {
        let id = item.node.content.as_deref().and_then(<[Id]>::first).copied().unwrap_or_default();
        match index.get(BlobType::Data, &id) {
            Some(loc) => located.push((loc.offset, id, loc, item)),
            None => failed.push(
                Damage { blob: id, pack: None, error: RepoError::BlobNotFound { id, blob_type: BlobType::Data } }
                    .into_failed(item.path),
            ),
        }
    }
    located.sort_by_key(|l| l.0);
    let start = located.first().map(|l| l.2.offset).unwrap_or(0);
    let end = located.iter().map(|l| l.2.offset + l.2.length).max().unwrap_or(0);
    let buf = match repo.backend().load_range(FileType::Pack, &pack.to_hex(), start as u64, end - start) {
        Ok(buf) => buf,
        Err(e) if is_damage(&e) => {
            for (_, _, _, item) in located {
                match restore_file(repo, index, &item, warnings, fresh, &AtomicUsize::new(0))? {
                    None => done.push(item),
                    Some(d) => failed.push(d.into_failed(item.path)),
                }
            }
            return Ok((done, failed));
        }
        Err(e) => return Err(e.into()),
    };
    for (_, id, loc, item) in located {
        let at = (loc.offset - start) as usize;
        match repo.decode_blob(&id, &loc, &buf[at..at + loc.length as usize]) {
            Ok(data) => {
                write_file(&item.dest, item.node, warnings, fresh, |w, tmp| {
                    w.write_all(&data).map_err(|e| RepoError::io(tmp, e))
                })?;
                done.push(item);
            }
            Err(error) => failed.push(Damage { blob: id, pack: Some(loc.pack), error }.into_failed(item.path)),
        }
    }
    Ok((done, failed))
}

/// Write a file beside its final name, apply its metadata, then rename it into place. Into a
/// `fresh` target (empty when the restore began) the file is written without a name
/// (`O_TMPFILE`), its metadata set through its descriptor, and linked in under its name once
/// complete: two fewer names to create and remove per file, and an interrupted restore leaves no
/// temporary behind. File systems without `O_TMPFILE` take the temporary name.
fn write_file(
    path: &Path,
    node: &Node,
    warnings: &Mutex<Vec<String>>,
    fresh: bool,
    fill: impl FnOnce(&mut std::fs::File, &Path) -> Result<()>,
) -> Result<()> {
    if fresh {
        if let Some(mut f) = unnamed_file(path) {
            fill(&mut f, path)?;
            apply_metadata_fd(&f, path, node, warnings)?;
            return link_unnamed(&f, path);
        }
    }
    let tmp = tmp_path(path);
    let result = (|| -> Result<()> {
        // A leftover temporary of an interrupted restore could be anything (even a FIFO, which
        // would block an open): remove it and create a fresh file, never following a link.
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| RepoError::io(&tmp, e))?;
        fill(&mut f, &tmp)?;
        drop(f);
        apply_metadata(&tmp, node, warnings)?;
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path).map_err(|e| RepoError::io(path, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| RepoError::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An unnamed file in `path`'s directory, or `None` where the file system cannot make one or
/// `/proc` (through which it gets its name) is not mounted.
fn unnamed_file(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return None;
    }
    let dir = path.parent()?;
    std::fs::OpenOptions::new().write(true).mode(0o600).custom_flags(nix::fcntl::OFlag::O_TMPFILE.bits()).open(dir).ok()
}

/// Give the unnamed file `f` its name `path` (an error if the name exists).
fn link_unnamed(f: &std::fs::File, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let proc = format!("/proc/self/fd/{}", f.as_raw_fd());
    nix::unistd::linkat(
        nix::fcntl::AT_FDCWD,
        proc.as_str(),
        nix::fcntl::AT_FDCWD,
        path,
        nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
    )
    .map_err(|e| RepoError::io(path, std::io::Error::from(e)))
}

/// Restore one file; `Ok(Some(damage))` when its data cannot be read intact (then nothing is
/// left at its name or its temporary).
///
/// A file of more than a few blobs is decoded on a thread beside the one writing it, plus as
/// many of the `spare` decoding threads as are free (given back when it is written): one large
/// file (a model's weights, a database) is decoded on every core, while many files written at
/// once do not start more threads than the cores can run.
fn restore_file(
    repo: &Repository,
    index: &Index,
    item: &Item<'_>,
    warnings: &Mutex<Vec<String>>,
    fresh: bool,
    spare: &AtomicUsize,
) -> Result<Option<Damage>> {
    let blobs = item.node.content.as_ref().map_or(0, Vec::len);
    // Given back when the file is done, also when it could not even be created.
    let extra = SpareDecoders::take(spare, if blobs > DECODE_BESIDE { blobs.min(MAX_DECODERS - 1) } else { 0 });
    let mut damage = None;
    let r = write_file(&item.dest, item.node, warnings, fresh, |f, tmp| {
        let mut w = Sparse::new(f);
        match copy_blobs(repo, index, item.node, &mut w, 1 + extra.n) {
            Ok(Ok(_)) => {}
            Ok(Err(d)) => {
                damage = Some(d);
                return Err(RepoError::Invalid("damaged".into()));
            }
            Err(RepoError::Io { source, .. }) => return Err(RepoError::io(tmp, source)),
            Err(e) => return Err(e),
        }
        w.finish().map_err(|e| RepoError::io(tmp, e))
    });
    match damage {
        Some(d) => Ok(Some(d)),
        None => r.map(|()| None),
    }
}

/// Decoding threads taken from a restore's spare ones for one file; given back when dropped.
struct SpareDecoders<'a> {
    from: &'a AtomicUsize,
    n: usize,
}

impl<'a> SpareDecoders<'a> {
    /// Up to `want` of the spare decoders in `from` (as many as are free).
    fn take(from: &'a AtomicUsize, want: usize) -> Self {
        let free = from.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n - n.min(want)));
        SpareDecoders { from, n: free.map_or(0, |n| n.min(want)) }
    }
}

impl Drop for SpareDecoders<'_> {
    fn drop(&mut self) {
        self.from.fetch_add(self.n, Ordering::AcqRel);
    }
}

/// A writer into a fresh file that leaves holes for blocks of zeros, so sparse files are restored
/// sparse (and runs of zeros in any file take no space): a whole aligned [`Sparse::BLOCK`] of
/// zeros only moves the position; [`Sparse::finish`] sets the length.
struct Sparse<'f> {
    out: std::io::BufWriter<&'f mut std::fs::File>,
    /// Bytes written or skipped so far (the logical position).
    pos: u64,
    /// Zero bytes skipped since the last real write.
    hole: u64,
}

impl<'f> Sparse<'f> {
    /// Holes are made of whole, aligned blocks of this size (a file system block or a multiple).
    const BLOCK: u64 = 4096;

    fn new(f: &'f mut std::fs::File) -> Self {
        Sparse { out: std::io::BufWriter::with_capacity(1 << 20, f), pos: 0, hole: 0 }
    }

    /// Move past the zeros skipped so far.
    fn close_hole(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        if self.hole > 0 {
            self.out.flush()?;
            let skip = i64::try_from(self.hole).map_err(std::io::Error::other)?;
            self.out.get_mut().seek(std::io::SeekFrom::Current(skip))?;
            self.hole = 0;
        }
        Ok(())
    }

    /// Write out what is buffered and give the file its full length (a trailing hole included).
    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_mut().set_len(self.pos)
    }
}

impl Write for Sparse<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut i = 0;
        while i < buf.len() {
            let in_block = (self.pos % Self::BLOCK) as usize;
            let n = (Self::BLOCK as usize - in_block).min(buf.len() - i);
            let seg = &buf[i..i + n];
            if n == Self::BLOCK as usize && seg.iter().all(|b| *b == 0) {
                self.hole += n as u64;
            } else {
                self.close_hole()?;
                self.out.write_all(seg)?;
            }
            i += n;
            self.pos += n as u64;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Stream a file node's content into `w`, checking every blob; returns the bytes written.
/// Runs of blobs stored next to each other in one pack are read with one request, and the blobs
/// are decoded on every core (at most [`MAX_DECODERS`]) while this thread writes them in order
/// (the source restores: a database file or dump is one large file, and decoding is most of the
/// work).
pub fn copy_content(repo: &Repository, index: &Index, node: &Node, w: &mut dyn Write) -> Result<u64> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    copy_blobs(repo, index, node, w, cores)?.map_err(|d| d.error)
}

/// A file with more blobs than this is decoded on threads of its own while it is written.
const DECODE_BESIDE: usize = 4;

/// Decoding threads for one file, at most: what is in flight grows with them (up to
/// `2 × 8 + 2` blobs, each at most the maximum chunk size), and a few cores already decode
/// faster than a disk writes.
const MAX_DECODERS: usize = 8;

/// [`copy_content`] with `decoders` decoding threads, telling damage (the inner error: a blob
/// that cannot be read intact) from failures that stop everything (the outer one: the output
/// cannot be written, the storage cannot be reached).
///
/// A file of more than a few blobs is restored in stages: one thread reads runs of blobs from
/// their packs, `decoders` threads decode (decrypt, decompress, check the hash of) them, and this
/// one writes them in order; a large file goes at the pace of the slowest stage rather than the
/// sum of all. At most `2 × decoders + 2` blobs are between reading and writing (decoders at
/// most [`MAX_DECODERS`]).
fn copy_blobs(
    repo: &Repository,
    index: &Index,
    node: &Node,
    w: &mut dyn Write,
    decoders: usize,
) -> Result<std::result::Result<u64, Damage>> {
    let content = node.content.as_deref().unwrap_or_default();
    // Write one decoded blob: its length, or where the file stops.
    let mut write = |d: Decoded| -> Result<std::result::Result<u64, Damage>> {
        match d {
            Decoded::Data(data) => {
                w.write_all(&data).map_err(|e| RepoError::io("(output)", e))?;
                Ok(Ok(data.len() as u64))
            }
            Decoded::Damage(d) => Ok(Err(d)),
            Decoded::Failed(e) => Err(e),
        }
    };
    let mut written = 0u64;
    if content.len() <= DECODE_BESIDE {
        let mut stop = None;
        each_stored(repo, index, content, &mut |stored| {
            let (d, go) = stored.decode(repo);
            match write(d) {
                Ok(Ok(n)) => {
                    written += n;
                    go
                }
                other => {
                    stop = Some(other);
                    false
                }
            }
        });
        return match stop {
            Some(Err(e)) => Err(e),
            Some(Ok(Err(d))) => Ok(Err(d)),
            _ => Ok(Ok(written)),
        };
    }
    let decoders = decoders.clamp(1, MAX_DECODERS);
    let window = 2 * decoders + 2;
    std::thread::scope(|s| {
        let (jobs, queue) = crossbeam_channel::bounded::<(Stored, crossbeam_channel::Sender<Decoded>)>(window);
        // Each blob's place in the file: a one-slot channel its decoder answers on, queued in
        // order; the bound on the queue bounds what is in flight.
        let (order, slots) = crossbeam_channel::bounded::<crossbeam_channel::Receiver<Decoded>>(window);
        // Sending fails once the writer stopped (its output failed, a blob was damaged): nothing
        // more to read.
        s.spawn(move || {
            each_stored(repo, index, content, &mut |stored| {
                let (answer, slot) = crossbeam_channel::bounded(1);
                if order.send(slot).is_err() {
                    return false;
                }
                match stored {
                    Stored::Stop(d) => {
                        let _ = answer.send(d);
                        false
                    }
                    blob => jobs.send((blob, answer)).is_ok(),
                }
            })
        });
        for _ in 0..decoders {
            let queue = queue.clone();
            s.spawn(move || {
                for (blob, answer) in queue {
                    let _ = answer.send(blob.decode(repo).0);
                }
            });
        }
        drop(queue);
        for slot in slots {
            let d =
                slot.recv().unwrap_or_else(|_| Decoded::Failed(RepoError::Invalid("a decoding thread stopped".into())));
            match write(d)? {
                Ok(n) => written += n,
                Err(d) => return Ok(Err(d)),
            }
        }
        Ok(Ok(written))
    })
}

/// A blob of a file, read and decoded, or why the file cannot be read on.
enum Decoded {
    /// The blob's plaintext.
    Data(Vec<u8>),
    /// A blob that cannot be read intact (the file is damaged from here on).
    Damage(Damage),
    /// The storage cannot be reached.
    Failed(RepoError),
}

/// A blob of a file as read from its pack, not decoded yet, or why the file cannot be read on.
enum Stored {
    /// The blob at `at` in `run` (the bytes of a run of blobs read with one request).
    Blob { id: Id, loc: BlobLocation, run: Arc<Vec<u8>>, at: usize },
    /// Where the file stops (handed over last).
    Stop(Decoded),
}

impl Stored {
    /// The blob decoded, and whether the file can go on after it.
    fn decode(self, repo: &Repository) -> (Decoded, bool) {
        match self {
            Stored::Blob { id, loc, run, at } => {
                match repo.decode_blob(&id, &loc, &run[at..at + loc.length as usize]) {
                    Ok(d) => (Decoded::Data(d), true),
                    Err(error) => (Decoded::Damage(Damage { blob: id, pack: Some(loc.pack), error }), false),
                }
            }
            Stored::Stop(d) => (d, false),
        }
    }
}

/// Hand each blob of `content`, as stored, to `f` in order, until `f` returns `false` or a blob
/// cannot be had (handed over last, as [`Stored::Stop`]). Blobs stored next to each other in one
/// pack (up to 32 MiB) are read with one request.
fn each_stored(repo: &Repository, index: &Index, content: &[Id], f: &mut dyn FnMut(Stored) -> bool) {
    let missing = |id: &Id| {
        Stored::Stop(Decoded::Damage(Damage {
            blob: *id,
            pack: None,
            error: RepoError::BlobNotFound { id: *id, blob_type: BlobType::Data },
        }))
    };
    let mut i = 0;
    while i < content.len() {
        let Some(first) = index.get(BlobType::Data, &content[i]) else {
            f(missing(&content[i]));
            return;
        };
        let mut j = i + 1;
        let mut end = first.offset as u64 + first.length as u64;
        while j < content.len() && end - (first.offset as u64) < 32 << 20 {
            match index.get(BlobType::Data, &content[j]) {
                Some(l) if l.pack == first.pack && l.offset as u64 == end => {
                    end += l.length as u64;
                    j += 1;
                }
                _ => break,
            }
        }
        let len = (end - first.offset as u64) as u32;
        let run = match repo.backend().load_range(FileType::Pack, &first.pack.to_hex(), first.offset as u64, len) {
            Ok(b) => Arc::new(b),
            Err(e) if is_damage(&e) => {
                f(Stored::Stop(Decoded::Damage(Damage { blob: content[i], pack: Some(first.pack), error: e.into() })));
                return;
            }
            Err(e) => {
                f(Stored::Stop(Decoded::Failed(e.into())));
                return;
            }
        };
        for id in &content[i..j] {
            let Some(loc) = index.get(BlobType::Data, id) else {
                f(missing(id));
                return;
            };
            let at = (loc.offset - first.offset) as usize;
            if !f(Stored::Blob { id: *id, loc, run: Arc::clone(&run), at }) {
                return;
            }
        }
        i = j;
    }
}

fn verify_file(index: &Index, path: &Path, node: &Node) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| RepoError::io(path, e))?;
    let mut buf = Vec::new();
    for id in node.content.as_deref().unwrap_or_default() {
        let loc =
            index.get(BlobType::Data, id).ok_or(RepoError::BlobNotFound { id: *id, blob_type: BlobType::Data })?;
        buf.resize(loc.data_length() as usize, 0);
        f.read_exact(&mut buf).map_err(|e| RepoError::io(path, e))?;
        if Id(sha256(&buf)) != *id {
            return Err(RepoError::corrupt(
                format!("restored file {}", path.display()),
                format!("content differs from blob {}", id.short()),
            ));
        }
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest).map_err(|e| RepoError::io(path, e))? != 0 {
        return Err(RepoError::corrupt(format!("restored file {}", path.display()), "longer than in the snapshot"));
    }
    Ok(())
}

/// Recreate a symlink, FIFO, device node or socket entry. Special files are created with
/// `mkfifo`/`mknod` and never opened (opening a FIFO blocks until a writer comes).
///
/// Sockets are not recreated, as restic does not: a socket file is only meaningful while a
/// process listens on it, and the process recreates it when it starts. They are counted in
/// [`RestoreStats::sockets_skipped`]. Device nodes need root (`mknod`); without it they are
/// skipped with a warning.
fn restore_special(path: &Path, node: &Node, warnings: &Mutex<Vec<String>>) -> Result<()> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let create = |kind: SFlag, dev: u64| {
        replace_with(path, |tmp| mknod(tmp, kind, Mode::from_bits_truncate(0o600), dev).map_err(std::io::Error::from))
    };
    match node.node_type {
        NodeType::Symlink => replace_with(path, |tmp| std::os::unix::fs::symlink(&node.linktarget, tmp))?,
        NodeType::Fifo => create(SFlag::S_IFIFO, 0)?,
        NodeType::Dev | NodeType::Chardev => {
            if util::current_uid() != 0 {
                warn(warnings, format!("{}: device nodes can only be restored by root; skipped", path.display()));
                return Ok(());
            }
            let kind = if node.node_type == NodeType::Dev { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
            create(kind, node.device)?
        }
        NodeType::Socket => return Ok(()),
        _ => {
            warn(warnings, format!("{}: {:?} nodes are not restored", path.display(), node.node_type));
            return Ok(());
        }
    }
    apply_metadata(path, node, warnings)
}

fn warn(w: &Mutex<Vec<String>>, msg: String) {
    if let Ok(mut w) = w.lock() {
        w.push(msg);
    }
}

/// [`apply_metadata`] through the open descriptor of a regular file (no path lookups).
fn apply_metadata_fd(f: &std::fs::File, path: &Path, node: &Node, warnings: &Mutex<Vec<String>>) -> Result<()> {
    use xattr::FileExt;
    if util::current_uid() == 0 {
        if let Err(e) = std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid)) {
            warn(warnings, format!("{}: cannot set owner: {e}", path.display()));
        }
    }
    if let Some(xattrs) = &node.extended_attributes {
        for x in xattrs {
            if let Err(e) = f.set_xattr(&x.name, &x.value) {
                warn(warnings, format!("{}: cannot set xattr {}: {e}", path.display(), x.name));
            }
        }
    }
    let mode = unix_permissions_from_go(node.mode);
    f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|e| RepoError::io(path, e))?;
    if let Some((a, m)) = file_times(node) {
        filetime::set_file_handle_times(f, Some(a), Some(m)).map_err(|e| RepoError::io(path, e))?;
    }
    Ok(())
}

/// A node's access and modification times (the access time defaults to the modification
/// time), when it has them.
fn file_times(node: &Node) -> Option<(FileTime, FileTime)> {
    let ft = |t: chrono::DateTime<chrono::Utc>| FileTime::from_unix_time(t.timestamp(), t.timestamp_subsec_nanos());
    let m = ft(node.mtime?);
    Some((node.atime.map_or(m, ft), m))
}

fn apply_metadata(path: &Path, node: &Node, warnings: &Mutex<Vec<String>>) -> Result<()> {
    let is_link = node.node_type == NodeType::Symlink;
    if util::current_uid() == 0 {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            warn(warnings, format!("{}: cannot set owner: {e}", path.display()));
        }
    }
    if let Some(xattrs) = &node.extended_attributes {
        for x in xattrs {
            if let Err(e) = xattr::set(path, &x.name, &x.value) {
                warn(warnings, format!("{}: cannot set xattr {}: {e}", path.display(), x.name));
            }
        }
    }
    if !is_link {
        let mode = unix_permissions_from_go(node.mode);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| RepoError::io(path, e))?;
    }
    if let Some((a, m)) = file_times(node) {
        // By path, never following a link and never opening the file: `filetime::set_file_times`
        // opens it, which blocks forever on a FIFO (and would open a device node).
        filetime::set_symlink_file_times(path, a, m).map_err(|e| RepoError::io(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lifeboat_backend::LocalBackend;

    use super::*;
    use crate::archiver::{backup, BackupOptions, Content, Entry};
    use crate::InitOptions;

    fn pseudo_random(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// `data` backed up as one file in chunks of 4–16 KiB: the repository and the file's node.
    fn stored(dir: &Path, data: &[u8]) -> (Repository, Node) {
        let backend = Arc::new(LocalBackend::new(dir));
        let opts = InitOptions { kdf: lifeboat_crypto::KdfParams { n: 1024, r: 8, p: 1 }, chunker_polynomial: None };
        let mut repo = Repository::init(backend, b"pw", &opts).unwrap();
        let node = Node::from_raw_name(b"big", NodeType::File);
        let entries =
            vec![Entry::File { node, content: Content::Reader(Box::new(std::io::Cursor::new(data.to_vec()))) }];
        let opts = BackupOptions {
            paths: vec!["/big".into()],
            tags: vec![],
            hostname: None,
            excludes: vec![],
            parent: None,
            time: None,
            source: None,
            threads: None,
            interrupt: None,
            progress: None,
            chunk_sizes: Some((4096, 8192, 16384)),
            finish: None,
        };
        let stats = backup(&repo, entries.into_iter(), &opts).unwrap();
        repo.reset_index();
        let node = repo.load_tree(&stats.snapshot.tree).unwrap().nodes.remove(0);
        (repo, node)
    }

    /// A writer that fails once it has taken `limit` bytes.
    struct FailsAfter {
        taken: Vec<u8>,
        limit: usize,
    }

    impl Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.taken.len() + buf.len() > self.limit {
                return Err(std::io::Error::other("disk full"));
            }
            self.taken.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn spare_decoders_are_shared_out_as_far_as_they_go_and_come_back_when_dropped() {
        let spare = AtomicUsize::new(3);
        let a = SpareDecoders::take(&spare, 5);
        let b = SpareDecoders::take(&spare, 2);
        assert_eq!((a.n, b.n, spare.load(Ordering::Relaxed)), (3, 0, 0));
        drop(a);
        let c = SpareDecoders::take(&spare, 2);
        assert_eq!((c.n, spare.load(Ordering::Relaxed)), (2, 1));
        drop((b, c));
        assert_eq!(spare.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_file_decoded_on_several_threads_is_written_in_order_and_stops_at_damage_or_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        // Half random, half text: compressed and uncompressed blobs.
        let mut data = pseudo_random(600_000, 7);
        data.extend("a line of text that compresses well\n".repeat(20_000).bytes());
        let (repo, node) = stored(dir.path(), &data);
        let index = repo.index().unwrap();
        let content = node.content.clone().unwrap();
        assert!(content.len() > 40, "{} blobs", content.len());
        for decoders in [1, 2, 3, 8] {
            let mut out = Vec::new();
            let Ok(Ok(n)) = copy_blobs(&repo, &index, &node, &mut out, decoders) else { panic!("{decoders} decoders") };
            assert_eq!((n, out.len()), (data.len() as u64, data.len()), "{decoders} decoders");
            assert!(out == data, "{decoders} decoders: the bytes differ");
        }

        // The output fails part way: the error comes back (no thread is left waiting).
        let mut w = FailsAfter { taken: Vec::new(), limit: data.len() / 3 };
        let Err(e) = copy_blobs(&repo, &index, &node, &mut w, 3) else { panic!("the failed write was not reported") };
        assert!(e.to_string().contains("disk full"), "{e}");
        assert!(w.taken.len() <= data.len() / 3 && data.starts_with(&w.taken));

        // A damaged blob in the middle: everything before it is written, nothing after it, and
        // the damage names that blob.
        let bad = content[content.len() / 2];
        let loc = index.get(BlobType::Data, &bad).unwrap();
        let pack = dir.path().join("data").join(&loc.pack.to_hex()[..2]).join(loc.pack.to_hex());
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[loc.offset as usize + loc.length as usize / 2] ^= 1;
        std::fs::write(&pack, bytes).unwrap();
        let before: u64 = content[..content.len() / 2]
            .iter()
            .map(|id| index.get(BlobType::Data, id).unwrap().data_length() as u64)
            .sum();
        for decoders in [1, 3] {
            let mut out = Vec::new();
            let Ok(Err(damage)) = copy_blobs(&repo, &index, &node, &mut out, decoders) else {
                panic!("no damage found")
            };
            assert_eq!(damage.blob, bad, "{decoders} decoders");
            assert_eq!(out.len() as u64, before, "{decoders} decoders");
            assert!(data.starts_with(&out));
            let e = copy_content(&repo, &index, &node, &mut Vec::new()).unwrap_err().to_string();
            assert!(e.contains(&bad.short()), "{e}");
        }
    }
}
