//! Prune: delete the data no snapshot references any more, and repack packs that are mostly
//! unused.
//!
//! The caller holds an exclusive lock, so no backup is running: every pack that no index lists
//! was left by an interrupted backup and can go. The order of writes keeps the repository
//! consistent at every instant, so a crash (kill -9) at any point leaves a repository that
//! `check` passes and that still restores every snapshot:
//!
//! 1. mark: walk every snapshot's trees (each tree once) and collect the blobs they use;
//!    any referenced blob missing from the index aborts prune before anything is touched;
//! 2. repack: copy the used blobs of the packs chosen for repacking into new packs (each blob is
//!    decrypted and hash-checked on the way, so damage is never copied);
//! 3. write a new index describing every pack that stays, plus the new ones;
//! 4. delete the old index files (the new index is complete, so readers never miss a blob);
//! 5. delete the packs that are unused, repacked, or not indexed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lifeboat_backend::FileType;
use lifeboat_format::{BlobType, Id, IndexBlob, IndexFile, IndexPack, NodeType};

use crate::index::{CompactIdSet, IdMap, IdSet, Index};
use crate::packer::{write_index_of, Packer, TARGET_PACK_SIZE};
use crate::{util, RepoError, Repository, Result};

/// How prune decides and acts.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Plan only: report what would be deleted and repacked, change nothing.
    pub dry_run: bool,
    /// Repack a partly used pack when less than this share of its bytes is still used
    /// (0.0 = never repack, 1.0 = repack every pack with any unused byte).
    pub repack_below: f64,
    /// Threads for reading trees and packs.
    pub threads: usize,
    /// Set to stop between steps (before anything is deleted when possible).
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { dry_run: false, repack_below: DEFAULT_REPACK_BELOW, threads: 4, interrupt: None }
    }
}

/// Default [`PruneOptions::repack_below`]: packs less than 80 % used are repacked.
pub const DEFAULT_REPACK_BELOW: f64 = 0.8;

/// What prune found and did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PruneStats {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Trees reached from the snapshots.
    pub trees: usize,
    /// Packs in the repository before prune.
    pub packs_before: usize,
    /// Bytes of all packs before prune.
    pub bytes_before: u64,
    /// Blobs (copies) still used.
    pub used_blobs: usize,
    /// Stored bytes of the used blobs.
    pub used_bytes: u64,
    /// Blob copies no snapshot uses (including duplicate copies).
    pub unused_blobs: usize,
    /// Packs whose blobs are all unused: deleted.
    pub packs_unused: usize,
    /// Bytes of those packs.
    pub bytes_unused: u64,
    /// Packs no index lists (left by interrupted backups): deleted.
    pub packs_unindexed: usize,
    /// Bytes of those packs.
    pub bytes_unindexed: u64,
    /// Partly used packs repacked.
    pub packs_repacked: usize,
    /// Bytes of the repacked packs (deleted after their used blobs were copied).
    pub bytes_repacked: u64,
    /// Used blobs copied into new packs.
    pub blobs_copied: usize,
    /// Bytes of the new packs written.
    pub bytes_written: u64,
    /// New packs written.
    pub packs_written: usize,
    /// Partly used packs kept as they are (used share at or above the threshold).
    pub packs_partly_used_kept: usize,
    /// Unused bytes left in those packs.
    pub bytes_unused_kept: u64,
    /// Index files replaced.
    pub index_files_removed: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Packs left after prune.
    pub packs_after: usize,
    /// Bytes of all packs after prune.
    pub bytes_after: u64,
    /// Temporary files of interrupted writes removed (a dry run: that would be removed).
    pub temporary_removed: usize,
    /// Their total size.
    pub temporary_bytes_removed: u64,
    /// Temporary files kept because another process holds a lock (it may still be writing them).
    pub temporary_kept: usize,
}

impl PruneStats {
    /// Bytes freed (or that would be freed).
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// What the mark phase found: the blobs every snapshot uses, and the index it found them in.
struct Used {
    data: Marks,
    tree: Marks,
    snapshots: usize,
    index: Arc<Index>,
}

impl Used {
    fn contains(&self, b: &IndexBlob) -> bool {
        match b.blob_type {
            BlobType::Data => self.data.contains(&self.index, BlobType::Data, &b.id),
            BlobType::Tree => self.tree.contains(&self.index, BlobType::Tree, &b.id),
        }
    }

    /// Whether this is the copy of the blob prune keeps: the index's location of it, which is
    /// the first pack (in listing order) that has it.
    fn first_copy(&self, pack: &Id, b: &IndexBlob) -> bool {
        self.index.get(b.blob_type, &b.id).is_some_and(|l| l.pack == *pack && l.offset == b.offset)
    }
}

/// Blobs of one type marked as used: one bit per blob of the index's sorted table (10 million
/// blobs: 1.2 MB, where a set of ids took 400 MB), and a set for any blob outside it.
struct Marks {
    bits: Vec<u64>,
    other: CompactIdSet,
    count: usize,
}

impl Marks {
    fn new(index: &Index, t: BlobType) -> Self {
        Marks { bits: vec![0; index.sorted_len(t).div_ceil(64)], other: CompactIdSet::default(), count: 0 }
    }

    /// Mark `id`; `true` if it was not marked yet.
    fn insert(&mut self, index: &Index, t: BlobType, id: Id) -> bool {
        let new = match index.position(t, &id).and_then(|i| Some((self.bits.get_mut(i / 64)?, 1u64 << (i % 64)))) {
            Some((word, bit)) => {
                let new = *word & bit == 0;
                *word |= bit;
                new
            }
            None => self.other.insert(id),
        };
        self.count += usize::from(new);
        new
    }

    fn contains(&self, index: &Index, t: BlobType, id: &Id) -> bool {
        match index.position(t, id) {
            Some(i) => self.bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1),
            None => self.other.contains(id),
        }
    }

    fn len(&self) -> usize {
        self.count
    }
}

/// What happens to one pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Delete,
    Repack,
}

/// The decided plan.
struct Plan {
    /// Every indexed pack, its blobs (from the index files, duplicates included) and stored size.
    packs: Vec<(IndexPack, u64, Fate)>,
    /// Blob copies to keep, per pack: the first copy of each used blob.
    keep_copy: IdMap<Vec<bool>>,
    /// Packs stored but not indexed.
    unindexed: Vec<(String, u64)>,
    /// Index files to replace.
    index_files: Vec<String>,
}

fn interrupted(opts: &PruneOptions) -> Result<()> {
    match &opts.interrupt {
        Some(f) if f.load(Ordering::Relaxed) => Err(RepoError::Interrupted),
        _ => Ok(()),
    }
}

/// Prune the repository. The caller must hold an exclusive lock.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneStats> {
    let started = std::time::SystemTime::now();
    let mut stats = PruneStats { dry_run: opts.dry_run, ..PruneStats::default() };
    let (index_files, files) = load_index_files(repo, opts.threads)?;
    let used = mark(repo, &files, opts)?;
    stats.snapshots = used.snapshots;
    stats.trees = used.tree.len();
    interrupted(opts)?;
    let plan = decide(repo, files, index_files, &used, opts, &mut stats)?;
    let temps = stale_temporaries(repo, started, &mut stats)?;
    if opts.dry_run {
        return Ok(stats);
    }
    interrupted(opts)?;
    let new_packs = repack(repo, &plan, opts, &mut stats)?;
    interrupted(opts)?;
    rewrite_index(repo, &plan, new_packs, &mut stats)?;
    delete_obsolete(repo, &plan)?;
    for t in &temps {
        repo.backend().remove_temporary(&t.name)?;
    }
    Ok(stats)
}

/// The temporary files of interrupted writes that can go: those last modified before this
/// prune started, whose writer (the PID in the name, `.tmp-PID-…`) is not a live process on
/// this host, and only while no process but this one holds a lock.
///
/// The caller's exclusive lock rules out live writers of packs, indexes and snapshots — but not
/// a process that is just saving its *lock file*: that temporary exists before the lock does.
/// The PID check keeps those (a campaign with four writers and a prune loop found the race).
fn stale_temporaries(
    repo: &Repository,
    started: std::time::SystemTime,
    stats: &mut PruneStats,
) -> Result<Vec<lifeboat_backend::TemporaryFile>> {
    let temps = repo.backend().list_temporary()?;
    if temps.is_empty() {
        return Ok(temps);
    }
    let (host, pid) = (util::hostname(), std::process::id() as i64);
    let others =
        crate::lock::list(repo)?.into_iter().any(|l| !l.stale && (l.lock.hostname != host || l.lock.pid != pid));
    if others {
        stats.temporary_kept = temps.len();
        return Ok(Vec::new());
    }
    let writer_alive = |name: &str| {
        let file = name.rsplit('/').next().unwrap_or(name);
        let pid = file.strip_prefix(".tmp-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<i64>().ok());
        pid.is_some_and(util::process_alive)
    };
    let (old, young): (Vec<_>, Vec<_>) =
        temps.into_iter().partition(|t| t.modified <= started && !writer_alive(&t.name));
    stats.temporary_kept = young.len();
    stats.temporary_removed = old.len();
    stats.temporary_bytes_removed = old.iter().map(|t| t.size).sum();
    Ok(old)
}

/// Read every index file; an unreadable one aborts (prune must know every pack's content).
fn load_index_files(repo: &Repository, threads: usize) -> Result<(Vec<String>, Vec<IndexFile>)> {
    let names: Vec<String> = repo.backend().list(FileType::Index)?.into_iter().map(|(n, _)| n).collect();
    let files = util::parallel_map(names.clone(), threads * 2, |n| repo.load_json::<IndexFile>(FileType::Index, &n))?;
    Ok((names, files))
}

/// Trees the mark phase loads and holds at once.
const MARK_TREES_AT_ONCE: usize = 256;

/// Walk all snapshots' trees level by level, loading each tree once, in parallel.
fn mark(repo: &Repository, files: &[IndexFile], opts: &PruneOptions) -> Result<Used> {
    // Each pack as its first listing has it (as `decide` reads them), so the index's location of
    // a blob is the copy `decide` keeps.
    let mut index = crate::index::Index::new();
    index.add_first_listings_compact(files);
    index.sort();
    let index = repo.set_index(index);
    let (snaps, bad) = crate::snapshots::list(repo)?;
    if let Some((name, e)) = bad.into_iter().next() {
        return Err(RepoError::Invalid(format!(
            "snapshot {} cannot be read ({e}); nothing was deleted — run `lifeboat check`, then remove or repair it",
            name.get(..8).unwrap_or(&name)
        )));
    }
    let mut used = Used {
        data: Marks::new(&index, BlobType::Data),
        tree: Marks::new(&index, BlobType::Tree),
        snapshots: snaps.len(),
        index: index.clone(),
    };
    let mut frontier: Vec<Id> = Vec::new();
    for s in &snaps {
        if used.tree.insert(&index, BlobType::Tree, s.snapshot.tree) {
            frontier.push(s.snapshot.tree);
        }
    }
    while !frontier.is_empty() {
        interrupted(opts)?;
        for id in &frontier {
            if !index.contains(BlobType::Tree, id) {
                return Err(missing(BlobType::Tree, id));
            }
        }
        // A few hundred trees at a time: a whole level of a wide tree at once (10,000
        // directories of 100 files) held every node of it in memory.
        let level = std::mem::take(&mut frontier);
        for part in level.chunks(MARK_TREES_AT_ONCE) {
            let trees = util::parallel_map(part.to_vec(), opts.threads, |id| repo.load_tree(&id))?;
            for t in trees {
                for node in t.nodes {
                    if node.node_type == NodeType::Dir {
                        if let Some(sub) = node.subtree {
                            if used.tree.insert(&index, BlobType::Tree, sub) {
                                frontier.push(sub);
                            }
                        }
                    }
                    for id in node.content.unwrap_or_default() {
                        if used.data.insert(&index, BlobType::Data, id) && !index.contains(BlobType::Data, &id) {
                            return Err(missing(BlobType::Data, &id));
                        }
                    }
                }
            }
        }
    }
    Ok(used)
}

fn missing(t: BlobType, id: &Id) -> RepoError {
    RepoError::Invalid(format!(
        "a snapshot uses {t} blob {} which is in no index; nothing was deleted — run `lifeboat check`",
        id.short()
    ))
}

/// Choose each pack's fate.
fn decide(
    repo: &Repository,
    files: Vec<IndexFile>,
    index_files: Vec<String>,
    used: &Used,
    opts: &PruneOptions,
    stats: &mut PruneStats,
) -> Result<Plan> {
    let stored: Vec<(String, u64)> = repo.backend().list(FileType::Pack)?;
    let sizes: IdMap<u64> = stored.iter().filter_map(|(n, s)| Some((n.parse().ok()?, *s))).collect();
    stats.packs_before = stored.len();
    stats.bytes_before = stored.iter().map(|(_, s)| s).sum();

    // A pack may be listed by several index files (a crash between writing an index and
    // deleting the one it replaces): the first listing is the pack's content.
    let mut seen_packs = IdSet::default();
    let mut plan = Plan { packs: Vec::new(), keep_copy: IdMap::default(), unindexed: Vec::new(), index_files };
    for pack in files.into_iter().flat_map(|f| f.packs) {
        if !seen_packs.insert(pack.id) {
            continue;
        }
        let Some(&size) = sizes.get(&pack.id) else {
            return Err(RepoError::Invalid(format!(
                "pack {} is in the index but missing from the repository; nothing was deleted — run `lifeboat check`",
                pack.id.short()
            )));
        };
        let keep: Vec<bool> = pack.blobs.iter().map(|b| used.contains(b) && used.first_copy(&pack.id, b)).collect();
        let used_bytes: u64 = pack.blobs.iter().zip(&keep).filter(|(_, k)| **k).map(|(b, _)| b.length as u64).sum();
        let n_used = keep.iter().filter(|k| **k).count();
        stats.used_blobs += n_used;
        stats.used_bytes += used_bytes;
        stats.unused_blobs += keep.len() - n_used;
        let fate = if n_used == 0 {
            stats.packs_unused += 1;
            stats.bytes_unused += size;
            Fate::Delete
        } else if n_used == keep.len() {
            Fate::Keep
        } else if (used_bytes as f64) < opts.repack_below * size as f64 {
            stats.packs_repacked += 1;
            stats.bytes_repacked += size;
            stats.blobs_copied += n_used;
            Fate::Repack
        } else {
            stats.packs_partly_used_kept += 1;
            stats.bytes_unused_kept += size.saturating_sub(used_bytes);
            Fate::Keep
        };
        plan.keep_copy.insert(pack.id, keep);
        plan.packs.push((pack, size, fate));
    }
    for (name, size) in stored {
        if name.parse::<Id>().map(|id| !seen_packs.contains(&id)).unwrap_or(true) {
            stats.packs_unindexed += 1;
            stats.bytes_unindexed += size;
            plan.unindexed.push((name, size));
        }
    }
    // Estimate the result for the dry run: repacked blobs land in new packs of their own size.
    let kept: u64 = plan.packs.iter().filter(|p| p.2 == Fate::Keep).map(|p| p.1).sum();
    let copied: u64 =
        plan.packs.iter().filter(|p| p.2 == Fate::Repack).map(|(p, _, _)| used_bytes_of(p, &plan.keep_copy)).sum();
    stats.bytes_after = kept + copied;
    stats.packs_after =
        plan.packs.iter().filter(|p| p.2 == Fate::Keep).count() + (copied as usize).div_ceil(TARGET_PACK_SIZE);
    Ok(plan)
}

fn used_bytes_of(p: &IndexPack, keep: &IdMap<Vec<bool>>) -> u64 {
    let k = keep.get(&p.id).map(Vec::as_slice).unwrap_or_default();
    p.blobs.iter().zip(k).filter(|(_, k)| **k).map(|(b, _)| b.length as u64).sum()
}

/// Copy the used blobs of the packs to repack into new packs; returns the new packs' entries.
fn repack(repo: &Repository, plan: &Plan, opts: &PruneOptions, stats: &mut PruneStats) -> Result<Vec<IndexPack>> {
    let work: Vec<&(IndexPack, u64, Fate)> = plan.packs.iter().filter(|p| p.2 == Fate::Repack).collect();
    if work.is_empty() {
        return Ok(Vec::new());
    }
    // One open pack per blob type, shared by the reader threads; full packs are written by the
    // thread that filled them, outside the lock.
    let open: [Mutex<Packer>; 2] = [Mutex::new(Packer::new()), Mutex::new(Packer::new())];
    let written: Mutex<Vec<IndexPack>> = Mutex::new(Vec::new());
    let bytes = AtomicU64::new(0);
    let store = |p: Packer| -> Result<()> {
        let f = p.finish(repo.key());
        repo.backend().save(FileType::Pack, &f.id.to_hex(), &f.data)?;
        bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
        written.lock().map_err(|_| RepoError::Invalid("repack writer panicked".into()))?.push(f.index);
        Ok(())
    };
    util::parallel_map(work, opts.threads.min(4), |(pack, _, _)| {
        interrupted(opts)?;
        let keep = plan.keep_copy.get(&pack.id).map(Vec::as_slice).unwrap_or_default();
        let data = repo.backend().load(FileType::Pack, &pack.id.to_hex())?;
        for (b, _) in pack.blobs.iter().zip(keep).filter(|(_, k)| **k) {
            let stored = data.get(b.offset as usize..b.offset as usize + b.length as usize).ok_or_else(|| {
                RepoError::corrupt(format!("pack {}", pack.id.short()), "shorter than its index says")
            })?;
            let loc = crate::index::BlobLocation {
                pack: pack.id,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            };
            // Verify before copying: prune must never carry damage into a new pack.
            repo.decode_blob(&b.id, &loc, stored)?;
            let slot = usize::from(b.blob_type == BlobType::Tree);
            let full = {
                let mut p = open[slot].lock().map_err(|_| RepoError::Invalid("repack thread panicked".into()))?;
                p.add(b.blob_type, b.id, stored, b.uncompressed_length);
                (p.size() >= TARGET_PACK_SIZE).then(|| std::mem::take(&mut *p))
            };
            if let Some(p) = full {
                store(p)?;
            }
        }
        Ok(())
    })?;
    for m in open {
        let p = m.into_inner().map_err(|_| RepoError::Invalid("repack thread panicked".into()))?;
        if !p.is_empty() {
            store(p)?;
        }
    }
    let written = written.into_inner().map_err(|_| RepoError::Invalid("repack writer panicked".into()))?;
    stats.packs_written = written.len();
    stats.bytes_written = bytes.load(Ordering::Relaxed);
    Ok(written)
}

/// Write one index for everything that stays, then remove the index files it replaces.
fn rewrite_index(repo: &Repository, plan: &Plan, new_packs: Vec<IndexPack>, stats: &mut PruneStats) -> Result<()> {
    let kept = || plan.packs.iter().filter(|p| p.2 == Fate::Keep);
    stats.packs_after = kept().count() + new_packs.len();
    stats.bytes_after = kept().map(|p| p.1).sum::<u64>() + stats.bytes_written;
    let unchanged = plan.unindexed.is_empty() && plan.packs.iter().all(|p| p.2 == Fate::Keep);
    if unchanged && plan.index_files.len() <= 1 {
        return Ok(());
    }
    let written = write_index_of(
        repo,
        kept().map(|p| std::borrow::Cow::Borrowed(&p.0)).chain(new_packs.into_iter().map(std::borrow::Cow::Owned)),
        INDEX_BLOBS_PER_FILE,
    )?;
    stats.index_files_written = written.len();
    let new: IdSet = written.into_iter().collect();
    // An old file with identical content has the same name: it is part of the new index.
    let old: Vec<String> = plan
        .index_files
        .iter()
        .filter(|n| !n.parse::<Id>().map(|id| new.contains(&id)).unwrap_or(false))
        .cloned()
        .collect();
    stats.index_files_removed = old.len();
    repo.backend().remove_many(FileType::Index, &old)?;
    Ok(())
}

/// Blobs per index file written by prune (restic writes at most 50,000 per file as well).
const INDEX_BLOBS_PER_FILE: usize = 50_000;

/// Delete unused, repacked and unindexed packs (only after the new index is durable).
fn delete_obsolete(repo: &Repository, plan: &Plan) -> Result<()> {
    let doomed: Vec<String> = plan
        .packs
        .iter()
        .filter(|p| p.2 != Fate::Keep)
        .map(|p| p.0.id.to_hex())
        .chain(plan.unindexed.iter().map(|(n, _)| n.clone()))
        .collect();
    repo.backend().remove_many(FileType::Pack, &doomed)?;
    Ok(())
}
