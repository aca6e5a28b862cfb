//! Copying snapshots into a second repository (the "2" and "1" of 3-2-1).
//!
//! Blobs move as they are: the chunks of the source are not re-chunked, only decrypted with the
//! source's master key and compressed and encrypted again with the destination's. A blob the
//! destination already has is not copied. Each copied snapshot records the source snapshot in
//! its `original` field, which makes copying idempotent: a snapshot whose original is already
//! in the destination is skipped. Durability order as in backup: packs, then index, then the
//! snapshot, so an interrupted copy leaves no snapshot pointing at missing data.
//!
//! An interrupted copy resumes: the packs it stored before it was stopped are in no index yet,
//! so each copy first reads the headers of the destination's unindexed packs and counts their
//! blobs as present (they are indexed with the copy's own packs). A complete pack is the same
//! whoever wrote it, so a pack a concurrent backup has not indexed yet is only indexed twice,
//! which is harmless.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lifeboat_backend::FileType;
use lifeboat_format::{BlobType, Id, NodeType, Snapshot};

use crate::index::{IdMap, IdSet};
use crate::packer::{write_index, BlobSaver};
use crate::snapshots::SnapshotEntry;
use crate::{util, RepoError, Repository, Result};

/// Options of [`copy`].
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Plan only: report what would be copied.
    pub dry_run: bool,
    /// Set to stop at the next snapshot (nothing half-copied is recorded).
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What happened to one snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CopiedSnapshot {
    /// Id in the source repository.
    pub source_id: Id,
    /// Id in the destination (`None` when skipped or in a dry run).
    pub copied_id: Option<Id>,
    /// Whether the destination already had it.
    pub skipped: bool,
    /// Blobs that had to be copied for it.
    pub blobs_copied: u64,
    /// Plaintext bytes of those blobs.
    pub bytes_copied: u64,
}

/// Results of [`copy`].
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CopyStats {
    /// One entry per snapshot considered, in the order given.
    pub snapshots: Vec<CopiedSnapshot>,
    /// Blobs copied in total.
    pub blobs_copied: u64,
    /// Plaintext bytes copied in total.
    pub bytes_copied: u64,
    /// Bytes stored in the destination (after compression and encryption).
    pub bytes_stored: u64,
    /// Packs an interrupted copy had stored, found unindexed and reused.
    pub packs_resumed: usize,
}

/// The id that identifies a snapshot across copies: its own original if it is itself a copy.
fn origin(e: &SnapshotEntry) -> Id {
    e.snapshot.original.unwrap_or(e.id)
}

/// Copy `snapshots` of `src` into `dst`. The caller holds a shared lock on both.
pub fn copy(src: &Repository, dst: &Repository, snapshots: &[SnapshotEntry], opts: &CopyOptions) -> Result<CopyStats> {
    let (existing, _) = crate::snapshots::list(dst)?;
    let present: IdSet = existing.iter().map(origin).collect();
    let src_index = src.index()?;
    let dst_index = dst.index()?;
    let mut stats = CopyStats::default();
    // Packs of an interrupted copy (or backup): complete, but in no index yet.
    let mut resumed: Vec<lifeboat_format::IndexPack> = Vec::new();
    for (name, size) in dst.backend().list(FileType::Pack)? {
        let Ok(id) = name.parse::<Id>() else { continue };
        if !dst_index.has_pack(&id) {
            if let Ok(blobs) = crate::repair::read_pack_index(dst, &id, size) {
                resumed.push(lifeboat_format::IndexPack { id, blobs });
            }
        }
    }
    stats.packs_resumed = resumed.len();
    let dst_index = if resumed.is_empty() {
        dst_index
    } else {
        let mut index = crate::index::Index::new();
        for (id, blobs) in dst_index.blobs_by_pack() {
            index.add_pack(&lifeboat_format::IndexPack { id, blobs });
        }
        for p in &resumed {
            index.add_pack(p);
        }
        Arc::new(index)
    };
    let saver = BlobSaver::new(dst, dst_index.clone(), 2);
    let mut pending: Vec<(Id, Snapshot)> = Vec::new();
    for e in snapshots {
        if opts.interrupt.as_ref().is_some_and(|i| i.load(Ordering::Relaxed)) {
            return Err(RepoError::Interrupted);
        }
        if present.contains(&origin(e)) {
            stats.snapshots.push(CopiedSnapshot {
                source_id: e.id,
                copied_id: None,
                skipped: true,
                blobs_copied: 0,
                bytes_copied: 0,
            });
            continue;
        }
        let needed = needed_blobs(src, &e.snapshot.tree, &saver)?;
        let (n, bytes) = (needed.len() as u64, needed.iter().map(|(_, _, len)| *len as u64).sum::<u64>());
        if !opts.dry_run {
            copy_blobs(src, &src_index, &saver, needed)?;
        }
        stats.blobs_copied += n;
        stats.bytes_copied += bytes;
        let mut snap = e.snapshot.clone();
        snap.original = Some(origin(e));
        pending.push((e.id, snap));
        stats.snapshots.push(CopiedSnapshot {
            source_id: e.id,
            copied_id: None,
            skipped: false,
            blobs_copied: n,
            bytes_copied: bytes,
        });
    }
    stats.bytes_stored = saver.stats().bytes_stored.load(Ordering::Relaxed);
    let mut packs = saver.finish()?;
    if opts.dry_run {
        return Ok(stats);
    }
    packs.extend(resumed);
    write_index(dst, packs, 50_000)?;
    for (source_id, snap) in pending {
        let json = serde_json::to_vec(&snap).map_err(|e| RepoError::Invalid(e.to_string()))?;
        let id = dst.save_unpacked(FileType::Snapshot, &json)?;
        if let Some(c) = stats.snapshots.iter_mut().find(|c| c.source_id == source_id) {
            c.copied_id = Some(id);
        }
    }
    Ok(stats)
}

/// Blobs reachable from `root` that the destination neither has nor has claimed; claims them.
/// Returns (type, id, plaintext length).
fn needed_blobs(src: &Repository, root: &Id, saver: &BlobSaver) -> Result<Vec<(BlobType, Id, u32)>> {
    let index = src.index()?;
    let mut out = Vec::new();
    let mut seen = IdSet::default();
    let mut frontier = vec![*root];
    seen.insert(*root);
    let length = |t: BlobType, id: &Id| {
        index.get(t, id).map(|l| l.data_length()).ok_or(RepoError::BlobNotFound { id: *id, blob_type: t })
    };
    while !frontier.is_empty() {
        for id in &frontier {
            if saver.claim(BlobType::Tree, id) {
                out.push((BlobType::Tree, *id, length(BlobType::Tree, id)?));
            }
        }
        let trees = util::parallel_map(std::mem::take(&mut frontier), 4, |id| src.load_tree(&id))?;
        for t in trees {
            for node in t.nodes {
                if let (NodeType::Dir, Some(sub)) = (node.node_type, node.subtree) {
                    if seen.insert(sub) {
                        frontier.push(sub);
                    }
                }
                for id in node.content.unwrap_or_default() {
                    if seen.insert(id) && saver.claim(BlobType::Data, &id) {
                        out.push((BlobType::Data, id, length(BlobType::Data, &id)?));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Read the needed blobs pack by pack (one read per source pack) and store them in the
/// destination.
fn copy_blobs(
    src: &Repository,
    index: &crate::index::Index,
    saver: &BlobSaver,
    needed: Vec<(BlobType, Id, u32)>,
) -> Result<()> {
    let mut by_pack: IdMap<Vec<(BlobType, Id)>> = IdMap::default();
    for (t, id, _) in needed {
        let loc = index.get(t, &id).ok_or(RepoError::BlobNotFound { id, blob_type: t })?;
        by_pack.entry(loc.pack).or_default().push((t, id));
    }
    let work: Vec<(Id, Vec<(BlobType, Id)>)> = by_pack.into_iter().collect();
    util::parallel_map(work, 4, |(pack, blobs)| {
        let locs: Vec<_> = blobs
            .iter()
            .map(|(t, id)| {
                index.get(*t, id).map(|l| (*t, *id, l)).ok_or(RepoError::BlobNotFound { id: *id, blob_type: *t })
            })
            .collect::<Result<_>>()?;
        let start = locs.iter().map(|(_, _, l)| l.offset).min().unwrap_or(0);
        let end = locs.iter().map(|(_, _, l)| l.offset + l.length).max().unwrap_or(0);
        let data = src.backend().load_range(FileType::Pack, &pack.to_hex(), start as u64, end - start)?;
        for (t, id, l) in locs {
            let at = (l.offset - start) as usize;
            let plain = src.decode_blob(&id, &l, &data[at..at + l.length as usize])?;
            saver.store(t, id, &plain)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Copy Lifeboat's own objects (`lifeboat/…`: settings, audit log, verification records, drill
/// reports, replication segments) into `dst`, re-encrypted with its master key; objects `dst`
/// already has are kept, and framed objects still being appended to wait for the next copy.
/// Returns how many were copied.
pub fn copy_lifeboat_objects(src: &Repository, dst: &Repository) -> Result<usize> {
    let have: std::collections::HashSet<String> =
        dst.backend().list(FileType::Lifeboat)?.into_iter().map(|(n, _)| n).collect();
    let mut n = 0;
    for (name, _) in src.backend().list(FileType::Lifeboat)? {
        if have.contains(&name) {
            continue;
        }
        if name.ends_with(crate::frames::OPEN_SUFFIX) {
            // Still being appended to: copied once finished (under its final name).
            continue;
        }
        let data = if name.ends_with(crate::frames::FRAMED_SUFFIX) {
            let raw = src.backend().load(FileType::Lifeboat, &name)?;
            let decoded = crate::frames::decode(src, &name, &raw, crate::frames::Tail::Strict)?;
            decoded.frames.iter().flat_map(|f| crate::frames::encode(dst, f)).collect()
        } else {
            dst.encode_unpacked(&src.load_unpacked(FileType::Lifeboat, &name)?)
        };
        dst.backend().save(FileType::Lifeboat, &name, &data)?;
        n += 1;
    }
    Ok(n)
}
