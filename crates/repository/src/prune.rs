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
use lifeboat_format::{BlobType, Id, IndexFile, IndexPack, NodeType};

use crate::index::{CompactIdSet, IdMap, IdSet, Index};
use crate::packer::{IndexWriter, Packer, TARGET_PACK_SIZE};
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

/// What the mark phase found: the blobs every snapshot uses, as marks over the index's sorted
/// tables, and that index (each pack's first listing, so a blob's location in it is the one copy
/// prune keeps).
struct Used {
    data: Marks,
    tree: Marks,
    snapshots: usize,
    index: Arc<Index>,
}

impl Used {
    fn marks(&self, t: BlobType) -> &Marks {
        match t {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.tree,
        }
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

    /// Whether the blob at `position` of the index's sorted table is marked.
    fn at(&self, position: usize) -> bool {
        self.bits.get(position / 64).is_some_and(|w| w >> (position % 64) & 1 == 1)
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

/// One indexed pack as prune sees it: its first listing.
struct PackPlan {
    id: Id,
    /// Stored size.
    size: u64,
    /// Blob copies its listing has (duplicates included).
    blobs: usize,
    /// Of those, the copies prune keeps: the index's location of a used blob.
    used: usize,
    /// Their stored bytes.
    used_bytes: u64,
    fate: Fate,
}

/// The decided plan.
struct Plan {
    /// Every indexed pack, numbered as in the index.
    packs: Vec<PackPlan>,
    /// The blobs to copy out of the packs to repack: (pack number, type, position in the
    /// index's sorted table), grouped by pack. A dozen bytes a blob, where the packs' listings
    /// took sixty.
    copies: Vec<(usize, BlobType, usize)>,
    /// Packs stored but not indexed.
    unindexed: Vec<(String, u64)>,
    /// Index files to replace (name, stored size), in the order they were read.
    index_files: Vec<(String, u64)>,
}

impl Plan {
    fn kept(&self) -> impl Iterator<Item = &PackPlan> {
        self.packs.iter().filter(|p| p.fate == Fate::Keep)
    }
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
    let index_files = repo.backend().list(FileType::Index)?;
    let (index, listed) = load_index(repo, &index_files, opts.threads)?;
    // Prune's own index: the numbers in `listed` are its packs'. The repository's index (for
    // loading trees) is this one unless one was loaded before.
    let index = Arc::new(index);
    repo.set_index_shared(index.clone());
    let used = mark(repo, index, opts)?;
    stats.snapshots = used.snapshots;
    stats.trees = used.tree.len();
    interrupted(opts)?;
    let plan = decide(repo, index_files, &listed, &used, opts, &mut stats)?;
    drop(listed);
    let temps = stale_temporaries(repo, started, &mut stats)?;
    if opts.dry_run {
        return Ok(stats);
    }
    interrupted(opts)?;
    let new_packs = repack(repo, &plan, &used.index, opts, &mut stats)?;
    interrupted(opts)?;
    rewrite_index(repo, &plan, &used.index, new_packs, opts, &mut stats)?;
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

/// Index files read and parsed at once: at most this many…
const INDEX_FILES_AT_ONCE: usize = 16;
/// …and this many stored bytes (four of the 50,000-blob files a big backup writes).
const INDEX_BYTES_AT_ONCE: u64 = 8 << 20;

/// Read the index files (`listed`: name and stored size) a group at a time, in order, and call
/// `each` with every group; an unreadable file aborts (prune must know every pack's content).
fn for_index_groups(
    repo: &Repository,
    listed: &[(String, u64)],
    threads: usize,
    mut each: impl FnMut(Vec<IndexFile>) -> Result<()>,
) -> Result<()> {
    for group in crate::repo::groups(listed, INDEX_FILES_AT_ONCE, INDEX_BYTES_AT_ONCE) {
        each(util::parallel_map(group, threads.max(1), |n| repo.load_json_listed::<IndexFile>(FileType::Index, &n))?)?;
    }
    Ok(())
}

/// Load the index from each pack's first listing (as `decide` and `rewrite_index` read them
/// again, so a blob's location in it is the copy prune keeps); returns it with the number of
/// blob copies each pack's listing has, by pack number. The parsed files are dropped group by
/// group: only the compact tables (48 bytes a blob) stay.
fn load_index(repo: &Repository, listed: &[(String, u64)], threads: usize) -> Result<(Index, Vec<usize>)> {
    let mut index = Index::new();
    let mut blobs = Vec::new();
    for_index_groups(repo, listed, threads, |files| {
        blobs.extend(index.add_first_listings_compact(&files).iter().map(|p| p.blobs.len()));
        Ok(())
    })?;
    index.sort();
    Ok((index, blobs))
}

/// Trees the mark phase loads and holds at once.
const MARK_TREES_AT_ONCE: usize = 256;

/// Walk all snapshots' trees level by level, loading each tree once, in parallel.
fn mark(repo: &Repository, index: Arc<Index>, opts: &PruneOptions) -> Result<Used> {
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

/// Choose each pack's fate from the marks: a used blob's copy is the index's location of it,
/// so each pack's used share is counted from the index's tables alone.
fn decide(
    repo: &Repository,
    index_files: Vec<(String, u64)>,
    listed: &[usize],
    used: &Used,
    opts: &PruneOptions,
    stats: &mut PruneStats,
) -> Result<Plan> {
    let index = &used.index;
    let stored: Vec<(String, u64)> = repo.backend().list(FileType::Pack)?;
    let sizes: IdMap<u64> = stored.iter().filter_map(|(n, s)| Some((n.parse().ok()?, *s))).collect();
    stats.packs_before = stored.len();
    stats.bytes_before = stored.iter().map(|(_, s)| s).sum();

    let mut packs = Vec::with_capacity(index.packs().len());
    for (id, &blobs) in index.packs().iter().zip(listed) {
        let Some(&size) = sizes.get(id) else {
            return Err(RepoError::Invalid(format!(
                "pack {} is in the index but missing from the repository; nothing was deleted — run `lifeboat check`",
                id.short()
            )));
        };
        packs.push(PackPlan { id: *id, size, blobs, used: 0, used_bytes: 0, fate: Fate::Keep });
    }
    for t in [BlobType::Data, BlobType::Tree] {
        let marks = used.marks(t);
        for (position, (pack, b)) in index.sorted_blobs(t).enumerate() {
            if marks.at(position) {
                let p = packs.get_mut(pack).ok_or_else(|| RepoError::Invalid("index names an unknown pack".into()))?;
                p.used += 1;
                p.used_bytes += u64::from(b.length);
            }
        }
    }
    for p in &mut packs {
        stats.used_blobs += p.used;
        stats.used_bytes += p.used_bytes;
        stats.unused_blobs += p.blobs.saturating_sub(p.used);
        p.fate = if p.used == 0 {
            stats.packs_unused += 1;
            stats.bytes_unused += p.size;
            Fate::Delete
        } else if p.used >= p.blobs {
            Fate::Keep
        } else if (p.used_bytes as f64) < opts.repack_below * p.size as f64 {
            stats.packs_repacked += 1;
            stats.bytes_repacked += p.size;
            stats.blobs_copied += p.used;
            Fate::Repack
        } else {
            stats.packs_partly_used_kept += 1;
            stats.bytes_unused_kept += p.size.saturating_sub(p.used_bytes);
            Fate::Keep
        };
    }
    let mut copies = Vec::with_capacity(stats.blobs_copied);
    if stats.packs_repacked > 0 {
        for t in [BlobType::Data, BlobType::Tree] {
            let marks = used.marks(t);
            for (position, (pack, _)) in index.sorted_blobs(t).enumerate() {
                if marks.at(position) && packs.get(pack).is_some_and(|p| p.fate == Fate::Repack) {
                    copies.push((pack, t, position));
                }
            }
        }
        copies.sort_unstable_by_key(|c| c.0);
    }
    let unindexed: Vec<(String, u64)> = stored
        .into_iter()
        .filter(|(name, _)| name.parse::<Id>().map(|id| index.pack_index(&id).is_none()).unwrap_or(true))
        .collect();
    stats.packs_unindexed = unindexed.len();
    stats.bytes_unindexed = unindexed.iter().map(|(_, s)| s).sum();
    let plan = Plan { packs, copies, unindexed, index_files };
    // Estimate the result for the dry run: repacked blobs land in new packs of their own size.
    let kept: u64 = plan.kept().map(|p| p.size).sum();
    let copied: u64 = plan.packs.iter().filter(|p| p.fate == Fate::Repack).map(|p| p.used_bytes).sum();
    stats.bytes_after = kept + copied;
    stats.packs_after = plan.kept().count() + (copied as usize).div_ceil(TARGET_PACK_SIZE);
    Ok(plan)
}

/// Copy the used blobs of the packs to repack into new packs; returns the new packs' entries.
fn repack(
    repo: &Repository,
    plan: &Plan,
    index: &Index,
    opts: &PruneOptions,
    stats: &mut PruneStats,
) -> Result<Vec<IndexPack>> {
    let work: Vec<&[(usize, BlobType, usize)]> = plan.copies.chunk_by(|a, b| a.0 == b.0).collect();
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
    util::parallel_map(work, opts.threads.min(4), |copies| {
        interrupted(opts)?;
        let pack = copies.first().and_then(|c| plan.packs.get(c.0)).map(|p| p.id).unwrap_or_default();
        let data = repo.backend().load(FileType::Pack, &pack.to_hex())?;
        for &(_, t, position) in copies {
            let (_, b) = index
                .sorted_blob(t, position)
                .ok_or_else(|| RepoError::Invalid("a blob to repack is not in the index".into()))?;
            let stored = data
                .get(b.offset as usize..b.offset as usize + b.length as usize)
                .ok_or_else(|| RepoError::corrupt(format!("pack {}", pack.short()), "shorter than its index says"))?;
            let loc = crate::index::BlobLocation {
                pack,
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

/// Write one index for everything that stays, then remove the index files it replaces. The
/// kept packs' listings are read again from the old index files, a group at a time, and written
/// out as they come.
fn rewrite_index(
    repo: &Repository,
    plan: &Plan,
    index: &Index,
    new_packs: Vec<IndexPack>,
    opts: &PruneOptions,
    stats: &mut PruneStats,
) -> Result<()> {
    stats.packs_after = plan.kept().count() + new_packs.len();
    stats.bytes_after = plan.kept().map(|p| p.size).sum::<u64>() + stats.bytes_written;
    let unchanged = plan.unindexed.is_empty() && plan.packs.iter().all(|p| p.fate == Fate::Keep);
    if unchanged && plan.index_files.len() <= 1 {
        return Ok(());
    }
    let mut out = IndexWriter::new(INDEX_BLOBS_PER_FILE);
    let mut first = vec![true; plan.packs.len()];
    for_index_groups(repo, &plan.index_files, opts.threads, |files| {
        for pack in files.into_iter().flat_map(|f| f.packs) {
            // The first listing of a pack is its content (as `load_index` read it).
            let Some(n) = index.pack_index(&pack.id).filter(|&n| first.get(n).copied().unwrap_or(false)) else {
                continue;
            };
            first[n] = false;
            if plan.packs[n].fate == Fate::Keep {
                out.push(repo, pack)?;
            }
        }
        Ok(())
    })?;
    for p in new_packs {
        out.push(repo, p)?;
    }
    let written = out.finish(repo)?;
    stats.index_files_written = written.len();
    let new: IdSet = written.into_iter().collect();
    // An old file with identical content has the same name: it is part of the new index.
    let old: Vec<String> = plan
        .index_files
        .iter()
        .map(|(n, _)| n)
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
        .filter(|p| p.fate != Fate::Keep)
        .map(|p| p.id.to_hex())
        .chain(plan.unindexed.iter().map(|(n, _)| n.clone()))
        .collect();
    repo.backend().remove_many(FileType::Pack, &doomed)?;
    Ok(())
}
