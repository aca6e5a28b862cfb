//! Repairs: `repair index` rebuilds the index from the packs themselves.
//!
//! Every pack ends with an encrypted header listing its blobs (type, length, id), so the index
//! is redundant: it can always be rebuilt by reading the headers, which is what restic's
//! `repair index` (formerly `rebuild-index`) does. The order of writes keeps the repository
//! usable at every instant: the new index files are written first, then the old ones deleted,
//! so a crash in between only leaves duplicate entries (harmless; the next repair or prune
//! removes them).
//!
//! A pack whose index entry is intact and whose stored size matches it is taken from the index
//! without reading it (fast); with [`RepairIndexOptions::read_all_packs`], or when no readable
//! index lists it, or its size differs, its header is read. A pack whose header cannot be read
//! is left out of the index and named: `repair packs` territory, never guessed at.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lifeboat_backend::FileType;
use lifeboat_format::{Id, IndexBlob, IndexFile, IndexPack};

use crate::index::IdMap;
use crate::packer::write_index;
use crate::{util, RepoError, Repository, Result};

/// Blobs per index file written by a repair (as prune and restic).
const INDEX_BLOBS_PER_FILE: usize = 50_000;

/// How `repair index` works.
#[derive(Clone, Debug, Default)]
pub struct RepairIndexOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
    /// Read the header of every pack, even of packs an intact index file already describes.
    pub read_all_packs: bool,
    /// Threads reading pack headers (0 = a default).
    pub threads: usize,
    /// Set to stop before anything is written.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// A pack whose header cannot be read: it stays out of the index.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnreadablePack {
    /// Pack id (file name).
    pub pack: String,
    /// Why.
    pub reason: String,
}

/// What `repair index` found and did (or would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairIndexStats {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Packs in the repository.
    pub packs: usize,
    /// Pack headers read.
    pub packs_read: usize,
    /// Packs taken from an intact index file without reading them.
    pub packs_from_index: usize,
    /// Packs no readable index file listed (or listed with a wrong size), now indexed.
    pub packs_added: usize,
    /// Packs the old index listed but that are not in the repository: dropped from the index.
    pub packs_missing: usize,
    /// Packs whose header cannot be read: left out of the index.
    pub unreadable: Vec<UnreadablePack>,
    /// Index files that could not be read.
    pub index_files_damaged: usize,
    /// Old index files deleted (or to delete).
    pub index_files_removed: usize,
    /// New index files written (a dry run: 0).
    pub index_files_written: usize,
    /// Packs in the new index.
    pub packs_indexed: usize,
    /// Blobs in the new index.
    pub blobs: usize,
}

impl RepairIndexStats {
    /// Whether the old index already described every readable pack exactly.
    pub fn index_was_complete(&self) -> bool {
        self.packs_added == 0 && self.packs_missing == 0 && self.index_files_damaged == 0
    }
}

/// Rebuild the index from pack headers. The caller must hold an exclusive lock.
pub fn repair_index(repo: &Repository, opts: &RepairIndexOptions) -> Result<RepairIndexStats> {
    // Damage must be found in the repository itself, never hidden by a cached copy.
    repo.set_cache(None);
    let threads = if opts.threads == 0 { 4 } else { opts.threads };
    let mut stats = RepairIndexStats { dry_run: opts.dry_run, ..Default::default() };
    let stopped = || opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));

    // What the old index says, from every index file that can still be read.
    let index_names: Vec<String> = repo.backend().list(FileType::Index)?.into_iter().map(|(n, _)| n).collect();
    let loaded =
        util::parallel_map(index_names.clone(), threads * 2, |n| Ok(repo.load_json::<IndexFile>(FileType::Index, &n)))?;
    let mut indexed: IdMap<Vec<IndexBlob>> = IdMap::default();
    for r in loaded {
        match r {
            Ok(f) => {
                for p in f.packs {
                    indexed.entry(p.id).or_insert(p.blobs);
                }
            }
            Err(RepoError::Backend(e)) if !e.is_not_found() => return Err(RepoError::Backend(e)),
            Err(_) => stats.index_files_damaged += 1,
        }
    }

    // What the storage holds.
    let stored: Vec<(Id, u64)> =
        repo.backend().list(FileType::Pack)?.into_iter().filter_map(|(n, s)| Some((n.parse().ok()?, s))).collect();
    stats.packs = stored.len();
    let stored_ids: crate::index::IdSet = stored.iter().map(|(id, _)| *id).collect();
    stats.packs_missing = indexed.keys().filter(|p| !stored_ids.contains(*p)).count();

    let mut packs: Vec<IndexPack> = Vec::with_capacity(stored.len());
    // (pack, size, its entry in a readable index file if any)
    let mut to_read: Vec<(Id, u64, Option<Vec<IndexBlob>>)> = Vec::new();
    for (id, size) in stored {
        match indexed.remove(&id) {
            Some(mut blobs) if !opts.read_all_packs && expected_size(&blobs) == size => {
                blobs.sort_by_key(|b| b.offset);
                stats.packs_from_index += 1;
                packs.push(IndexPack { id, blobs });
            }
            old => to_read.push((id, size, old)),
        }
    }
    if stopped() {
        return Err(RepoError::Interrupted);
    }
    stats.packs_read = to_read.len();
    let read = util::parallel_map(to_read, threads, |(id, size, old)| {
        let r = read_pack_index(repo, &id, size);
        Ok((id, size, old, r))
    })?;
    for (id, size, old, r) in read {
        match (r, old) {
            (Ok(blobs), old) => {
                stats.packs_added += usize::from(old.is_none());
                packs.push(IndexPack { id, blobs });
            }
            // The header is damaged but the old index describes the pack as it is stored: keep
            // that description (the blobs themselves are checked when read).
            (Err(reason), Some(mut blobs)) if expected_size(&blobs) == size => {
                blobs.sort_by_key(|b| b.offset);
                stats.unreadable.push(UnreadablePack {
                    pack: id.to_hex(),
                    reason: format!("{reason} (its entry in the old index is kept)"),
                });
                packs.push(IndexPack { id, blobs });
            }
            (Err(reason), _) => stats.unreadable.push(UnreadablePack { pack: id.to_hex(), reason }),
        }
    }
    stats.unreadable.sort_by(|a, b| a.pack.cmp(&b.pack));
    stats.blobs = packs.iter().map(|p| p.blobs.len()).sum();
    stats.packs_indexed = packs.len();
    packs.sort_by_key(|p| p.id);
    stats.index_files_removed = index_names.len();
    if opts.dry_run {
        return Ok(stats);
    }
    if stopped() {
        return Err(RepoError::Interrupted);
    }
    let written = if packs.is_empty() { Vec::new() } else { write_index(repo, packs, INDEX_BLOBS_PER_FILE)? };
    stats.index_files_written = written.len();
    let new: crate::index::IdSet = written.into_iter().collect();
    // An old file with identical content has the same name: it is part of the new index.
    let old: Vec<String> =
        index_names.into_iter().filter(|n| !n.parse::<Id>().map(|id| new.contains(&id)).unwrap_or(false)).collect();
    stats.index_files_removed = old.len();
    repo.backend().remove_many(FileType::Index, &old)?;
    Ok(stats)
}

/// Size of a pack implied by its index entries (blobs, header entries, header MAC/nonce and the
/// 4-byte header length).
fn expected_size(blobs: &[IndexBlob]) -> u64 {
    use lifeboat_format::pack::{ENTRY_SIZE_COMPRESSED, ENTRY_SIZE_PLAIN};
    let data: u64 = blobs.iter().map(|b| b.length as u64).sum();
    let header: u64 = blobs
        .iter()
        .map(|b| if b.uncompressed_length.is_some() { ENTRY_SIZE_COMPRESSED } else { ENTRY_SIZE_PLAIN } as u64)
        .sum();
    data + header + 32 + 4
}

/// Read a pack's header (its last bytes only) and turn it into index entries; the blobs' total
/// length must fill the pack exactly up to the header, or the header is not this pack's.
pub fn read_pack_index(repo: &Repository, pack: &Id, size: u64) -> std::result::Result<Vec<IndexBlob>, String> {
    let name = pack.to_hex();
    if size < 4 {
        return Err(format!("{size} bytes: too short to hold a header"));
    }
    let tail = repo.backend().load_range(FileType::Pack, &name, size - 4, 4).map_err(|e| e.to_string())?;
    let hlen = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if hlen + 4 > size {
        return Err(format!("header length {hlen} exceeds the pack size {size}"));
    }
    let raw =
        repo.backend().load_range(FileType::Pack, &name, size - 4 - hlen, hlen as u32).map_err(|e| e.to_string())?;
    let plain = repo.key().decrypt(&raw).map_err(|e| format!("header cannot be decrypted: {e}"))?;
    let entries = lifeboat_format::pack::decode_header(&plain).map_err(|e| format!("header cannot be decoded: {e}"))?;
    let mut offset = 0u64;
    let mut blobs = Vec::with_capacity(entries.len());
    for e in entries {
        blobs.push(IndexBlob {
            id: e.id,
            blob_type: e.blob_type,
            offset: offset as u32,
            length: e.length,
            uncompressed_length: e.uncompressed_length,
        });
        offset += e.length as u64;
    }
    if offset + hlen + 4 != size {
        return Err(format!("the header lists {offset} bytes of blobs, the pack holds {}", size - hlen - 4));
    }
    Ok(blobs)
}

/// How `repair snapshots` works.
#[derive(Clone, Debug, Default)]
pub struct RepairSnapshotsOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
    /// Remove each original snapshot once its repaired copy is saved.
    pub forget: bool,
    /// Also read every data blob the snapshots use (once each): a blob that fails decryption or
    /// its hash counts as lost, not only blobs the index or the storage no longer has.
    pub read_data: bool,
    /// Only these snapshots (full ids); empty = all.
    pub snapshots: Vec<Id>,
    /// Threads reading blobs (0 = a default).
    pub threads: usize,
}

/// One snapshot `repair snapshots` rewrote (or would rewrite).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairedSnapshot {
    /// The damaged original.
    pub original: Id,
    /// Its repaired copy (a dry run: the id it would have).
    pub repaired: Option<Id>,
    /// Files left out of the copy because some of their data is lost.
    pub removed_files: Vec<String>,
    /// Directories whose tree cannot be read: empty in the copy.
    pub emptied_dirs: Vec<String>,
}

/// What `repair snapshots` found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairSnapshotsStats {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Snapshots looked at.
    pub snapshots: usize,
    /// Snapshots that needed a repair, with what was left out.
    pub repaired: Vec<RepairedSnapshot>,
    /// Snapshots that cannot be repaired (file unreadable, root tree lost), with why.
    pub unrepairable: Vec<(String, String)>,
    /// Data blobs read (with `read_data`).
    pub blobs_read: usize,
    /// Data blobs counted as lost.
    pub blobs_lost: usize,
    /// Originals removed (with `forget`), including those in `removed`.
    pub forgotten: usize,
    /// Snapshots removed outright (with `forget`) because nothing of them can be read: their
    /// root tree is lost.
    pub removed: Vec<(String, String)>,
}

/// The tag of every snapshot written by `repair snapshots` (as restic).
pub const REPAIRED_TAG: &str = "repaired";

/// Rewrite damaged snapshots without their lost parts: a file missing any data blob is left
/// out (never kept shorter, which would restore wrong content without an error), a directory
/// whose tree cannot be read becomes empty. The copy has the original's time, host and paths,
/// the tag [`REPAIRED_TAG`] and `original` pointing at the damaged snapshot, which is kept
/// unless `forget` is set. Unchanged trees keep their ids. The caller holds an exclusive lock.
pub fn repair_snapshots(repo: &Repository, opts: &RepairSnapshotsOptions) -> Result<RepairSnapshotsStats> {
    // Damage must be found in the repository itself, never hidden by a cached copy.
    repo.set_cache(None);
    let threads = if opts.threads == 0 { 4 } else { opts.threads };
    let mut stats = RepairSnapshotsStats { dry_run: opts.dry_run, ..Default::default() };
    let index = repo.index()?;
    let (all, bad) = crate::snapshots::list(repo)?;
    for (name, e) in bad {
        if !(opts.snapshots.is_empty() || opts.snapshots.iter().any(|id| id.to_hex() == name)) {
            continue;
        }
        let why = format!("the snapshot file cannot be read: {e}");
        // Damaged (not merely unreachable): nothing in it can be trusted, not even which tree
        // it names. With `forget` it goes; the data it shares with others stays.
        if matches!(e, RepoError::Corrupt { .. }) && opts.forget && !opts.dry_run {
            repo.backend().remove(FileType::Snapshot, &name)?;
            stats.forgotten += 1;
            stats.removed.push((name, format!("{why}; removed (--forget)")));
        } else {
            stats.unrepairable.push((name, why));
        }
    }
    let chosen: Vec<_> =
        all.into_iter().filter(|s| opts.snapshots.is_empty() || opts.snapshots.contains(&s.id)).collect();
    stats.snapshots = chosen.len();

    // Lost data blobs: not in the index, in a pack the storage no longer has, or (read_data)
    // failing decryption or the hash.
    let stored: crate::index::IdSet =
        repo.backend().list(FileType::Pack)?.into_iter().filter_map(|(n, _)| n.parse().ok()).collect();
    let mut used = crate::index::IdSet::default();
    let mut seen_trees = crate::index::IdSet::default();
    for s in &chosen {
        collect_data_blobs(repo, s.snapshot.tree, &mut seen_trees, &mut used);
    }
    let mut lost = crate::index::IdSet::default();
    let mut present = Vec::new();
    for id in used {
        match index.get(lifeboat_format::BlobType::Data, &id) {
            Some(loc) if stored.contains(&loc.pack) => present.push(id),
            _ => {
                lost.insert(id);
            }
        }
    }
    if opts.read_data {
        stats.blobs_read = present.len();
        let damaged = util::parallel_map(present, threads, |id| {
            Ok(repo.load_blob(lifeboat_format::BlobType::Data, &id).err().map(|_| id))
        })?;
        lost.extend(damaged.into_iter().flatten());
    }
    stats.blobs_lost = lost.len();

    let saver = (!opts.dry_run).then(|| crate::packer::BlobSaver::new(repo, index.clone(), 1));
    let mut fixes = Vec::new();
    for s in chosen {
        let mut fix = RepairedSnapshot { original: s.id, ..Default::default() };
        let mut rw = Rewriter { repo, lost: &lost, saver: saver.as_ref(), fix: &mut fix };
        let root = match repo.load_tree(&s.snapshot.tree) {
            Ok(t) => t,
            Err(e) => {
                // Nothing of it can be restored. With `forget` it goes (as restic does).
                let mut why = format!("its root tree cannot be read: {e}");
                if opts.forget && !opts.dry_run {
                    repo.backend().remove(FileType::Snapshot, &s.id.to_hex())?;
                    stats.forgotten += 1;
                    why.push_str("; nothing of it can be restored, so it was removed (--forget)");
                    stats.removed.push((s.id.to_hex(), why));
                } else {
                    stats.unrepairable.push((s.id.to_hex(), why));
                }
                continue;
            }
        };
        if let Some(tree) = rw.rewrite(root, "")? {
            fixes.push((s, tree, fix));
        }
    }
    if let Some(saver) = saver {
        let packs = saver.finish()?;
        write_index(repo, packs, INDEX_BLOBS_PER_FILE)?;
    }
    for (s, tree, mut fix) in fixes {
        let mut snap = s.snapshot.clone();
        snap.tree = tree;
        snap.original = Some(snap.original.unwrap_or(s.id));
        if !snap.tags.iter().any(|t| t == REPAIRED_TAG) {
            snap.tags.push(REPAIRED_TAG.into());
        }
        let json = serde_json::to_vec(&snap).map_err(|e| RepoError::Invalid(e.to_string()))?;
        fix.repaired = Some(if opts.dry_run {
            Id(lifeboat_crypto::sha256(&repo.encode_unpacked(&json)))
        } else {
            let id = repo.save_unpacked(FileType::Snapshot, &json)?;
            if opts.forget {
                repo.backend().remove(FileType::Snapshot, &s.id.to_hex())?;
                stats.forgotten += 1;
            }
            id
        });
        stats.repaired.push(fix);
    }
    Ok(stats)
}

/// Every data blob below `tree` (trees that cannot be read are skipped: the rewrite names them).
fn collect_data_blobs(repo: &Repository, tree: Id, seen: &mut crate::index::IdSet, out: &mut crate::index::IdSet) {
    if !seen.insert(tree) {
        return;
    }
    let Ok(t) = repo.load_tree(&tree) else { return };
    for n in t.nodes {
        out.extend(n.content.unwrap_or_default());
        if let (lifeboat_format::NodeType::Dir, Some(sub)) = (n.node_type, n.subtree) {
            collect_data_blobs(repo, sub, seen, out);
        }
    }
}

/// Rewrites one snapshot's trees.
struct Rewriter<'a> {
    repo: &'a Repository,
    lost: &'a crate::index::IdSet,
    saver: Option<&'a crate::packer::BlobSaver>,
    fix: &'a mut RepairedSnapshot,
}

impl Rewriter<'_> {
    /// The id of the repaired tree when something in or below `tree` changed, `None` when it is
    /// intact. A subtree that cannot be read becomes an empty directory.
    fn rewrite(&mut self, mut tree: lifeboat_format::Tree, path: &str) -> Result<Option<Id>> {
        let mut changed = false;
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        for mut node in std::mem::take(&mut tree.nodes) {
            let p = format!("{}/{}", path, node.name);
            match node.node_type {
                lifeboat_format::NodeType::File
                    if node.content.as_deref().unwrap_or_default().iter().any(|b| self.lost.contains(b)) =>
                {
                    self.fix.removed_files.push(p);
                    changed = true;
                    continue;
                }
                lifeboat_format::NodeType::Dir => {
                    if let Some(sub) = node.subtree {
                        let new = match self.repo.load_tree(&sub) {
                            Ok(t) => self.rewrite(t, &p)?,
                            Err(_) => {
                                self.fix.emptied_dirs.push(p);
                                Some(self.save(&lifeboat_format::Tree { nodes: Vec::new() })?)
                            }
                        };
                        if let Some(new) = new {
                            node.subtree = Some(new);
                            changed = true;
                        }
                    }
                }
                _ => {}
            }
            nodes.push(node);
        }
        if !changed {
            return Ok(None);
        }
        Ok(Some(self.save(&lifeboat_format::Tree { nodes })?))
    }

    /// Store a tree blob (a dry run only computes its id).
    fn save(&self, tree: &lifeboat_format::Tree) -> Result<Id> {
        let blob = tree.to_blob();
        match self.saver {
            Some(s) => Ok(s.save(lifeboat_format::BlobType::Tree, &blob)?.0),
            None => Ok(Id(lifeboat_crypto::sha256(&blob))),
        }
    }
}

/// How `repair packs` works.
#[derive(Clone, Debug, Default)]
pub struct RepairPacksOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
    /// The packs to salvage (full ids); empty = read every pack and take those whose content
    /// does not match their id.
    pub packs: Vec<Id>,
    /// Threads reading packs (0 = a default).
    pub threads: usize,
}

/// One damaged pack and what became of its blobs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SalvagedPack {
    /// The damaged pack.
    pub pack: Id,
    /// Blobs read intact and stored again in new packs.
    pub salvaged: usize,
    /// Blobs that cannot be read: lost (`repair snapshots` then writes snapshots without them).
    pub lost: Vec<Id>,
}

/// What `repair packs` found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairPacksStats {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Packs read to find damaged ones.
    pub packs_read: usize,
    /// The damaged packs.
    pub damaged: Vec<SalvagedPack>,
    /// New packs written with the salvaged blobs.
    pub packs_written: usize,
    /// Index files written.
    pub index_files_written: usize,
}

/// Salvage the readable blobs of damaged packs: each intact blob is stored again in a new pack,
/// a new index describes every other pack plus the new ones, then the old index files and the
/// damaged packs are deleted (in that order, so the repository is usable at every instant).
/// Blobs that cannot be read are reported lost. The caller holds an exclusive lock.
pub fn repair_packs(repo: &Repository, opts: &RepairPacksOptions) -> Result<RepairPacksStats> {
    // Damage must be found in the repository itself, never hidden by a cached copy.
    repo.set_cache(None);
    let threads = if opts.threads == 0 { 4 } else { opts.threads };
    let mut stats = RepairPacksStats { dry_run: opts.dry_run, ..Default::default() };
    let index_names: Vec<String> = repo.backend().list(FileType::Index)?.into_iter().map(|(n, _)| n).collect();
    let files =
        util::parallel_map(index_names.clone(), threads * 2, |n| repo.load_json::<IndexFile>(FileType::Index, &n))
            .map_err(|e| RepoError::Invalid(format!("{e}; run `lifeboat repair index` first")))?;
    let mut listed: IdMap<Vec<IndexBlob>> = IdMap::default();
    for f in &files {
        for p in &f.packs {
            listed.entry(p.id).or_insert_with(|| p.blobs.clone());
        }
    }
    let damaged: Vec<Id> = if opts.packs.is_empty() {
        let stored: Vec<Id> =
            repo.backend().list(FileType::Pack)?.into_iter().filter_map(|(n, _)| n.parse().ok()).collect();
        stats.packs_read = stored.len();
        let bad = util::parallel_map(stored, threads, |id| {
            let ok = repo
                .backend()
                .load(FileType::Pack, &id.to_hex())
                .map(|d| Id(lifeboat_crypto::sha256(&d)) == id)
                .unwrap_or(false);
            Ok((!ok).then_some(id))
        })?;
        bad.into_iter().flatten().collect()
    } else {
        opts.packs.clone()
    };
    if damaged.is_empty() {
        return Ok(stats);
    }
    let damaged_set: crate::index::IdSet = damaged.iter().copied().collect();

    // Every blob of the damaged packs that still reads intact.
    let mut good: Vec<(lifeboat_format::BlobType, Vec<u8>)> = Vec::new();
    for pack in &damaged {
        let mut entry = SalvagedPack { pack: *pack, ..Default::default() };
        let data = repo.backend().load(FileType::Pack, &pack.to_hex()).unwrap_or_default();
        let blobs = match listed.get(pack) {
            Some(b) => b.clone(),
            None => read_pack_index(repo, pack, data.len() as u64).unwrap_or_default(),
        };
        for b in blobs {
            let loc = crate::index::BlobLocation {
                pack: *pack,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length,
            };
            let stored = data.get(b.offset as usize..b.offset as usize + b.length as usize);
            match stored.map(|s| repo.decode_blob(&b.id, &loc, s)) {
                Some(Ok(plain)) => {
                    entry.salvaged += 1;
                    good.push((b.blob_type, plain));
                }
                _ => entry.lost.push(b.id),
            }
        }
        stats.damaged.push(entry);
    }
    if opts.dry_run {
        return Ok(stats);
    }

    // The index without the damaged packs; the saver stores each salvaged blob not found
    // intact elsewhere.
    let mut kept: Vec<IndexPack> = Vec::new();
    let mut index = crate::index::Index::new();
    for (id, blobs) in listed {
        if !damaged_set.contains(&id) {
            let p = IndexPack { id, blobs };
            index.add_pack(&p);
            kept.push(p);
        }
    }
    let saver = crate::packer::BlobSaver::new(repo, Arc::new(index), 1);
    for (t, plain) in good {
        saver.save(t, &plain)?;
    }
    let new = saver.finish()?;
    stats.packs_written = new.len();
    kept.extend(new);
    kept.sort_by_key(|p| p.id);
    let written = write_index(repo, kept, INDEX_BLOBS_PER_FILE)?;
    stats.index_files_written = written.len();
    let new_ids: crate::index::IdSet = written.into_iter().collect();
    let old: Vec<String> =
        index_names.into_iter().filter(|n| !n.parse::<Id>().map(|id| new_ids.contains(&id)).unwrap_or(false)).collect();
    repo.backend().remove_many(FileType::Index, &old)?;
    let doomed: Vec<String> = damaged.iter().map(Id::to_hex).collect();
    repo.backend().remove_many(FileType::Pack, &doomed)?;
    Ok(stats)
}
