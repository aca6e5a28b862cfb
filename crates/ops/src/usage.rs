//! Storage usage: what the repository holds and how well deduplication and compression work,
//! per source and over time. Computed from the index and the snapshots' summaries only (no pack
//! is read), so it is cheap even on object storage.

use std::collections::BTreeMap;

use chrono::{DateTime, Local, Utc};
use lifeboat_backend::FileType;
use lifeboat_format::BlobType;
use lifeboat_repository::snapshots;
use lifeboat_repository::Repository;
use serde::Serialize;

use crate::OpsError;

/// The whole report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// Bytes of all pack files.
    pub pack_bytes: u64,
    /// Pack files.
    pub packs: usize,
    /// Bytes of everything else (index, snapshots, keys, Lifeboat objects).
    pub metadata_bytes: u64,
    /// Data blobs (unique chunks).
    pub data_blobs: usize,
    /// Tree blobs.
    pub tree_blobs: usize,
    /// Plaintext bytes of all unique blobs.
    pub unique_bytes: u64,
    /// Stored (compressed, encrypted) bytes of all blobs.
    pub stored_bytes: u64,
    /// Snapshots.
    pub snapshots: usize,
    /// Sum of every snapshot's size as backed up (what a full copy of each would take).
    pub logical_bytes: u64,
    /// `logical_bytes / unique_bytes`: how many times each stored byte is reused.
    pub dedup_ratio: f64,
    /// `unique_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// Per source (or `host: paths` for plain backups).
    pub sources: Vec<SourceUsage>,
    /// Data added per day, oldest first.
    pub growth: Vec<Growth>,
}

/// Usage of one source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceUsage {
    /// Source name, or `host:/paths` for backups without a source.
    pub source: String,
    /// Snapshots kept.
    pub snapshots: usize,
    /// Size of the newest snapshot as backed up.
    pub latest_bytes: u64,
    /// Stored bytes the kept snapshots added when they were taken (after dedup and compression).
    pub added_bytes: u64,
    /// Newest snapshot time.
    pub latest: Option<DateTime<Utc>>,
}

/// Bytes added on one day (local time).
#[derive(Clone, Debug, Serialize)]
pub struct Growth {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Snapshots taken that day (still kept).
    pub snapshots: usize,
    /// Stored bytes they added.
    pub added_bytes: u64,
}

/// Compute the report.
pub fn usage(repo: &Repository) -> Result<Usage, OpsError> {
    let (snaps, _) = snapshots::list(repo)?;
    usage_of(repo, &snaps)
}

/// Compute the report with the snapshots already loaded (the dashboard keeps them in memory).
pub fn usage_of(repo: &Repository, snaps: &[snapshots::SnapshotEntry]) -> Result<Usage, OpsError> {
    let mut u = Usage::default();
    let b = repo.backend();
    let packs = b.list(FileType::Pack).map_err(lifeboat_repository::RepoError::from)?;
    u.packs = packs.len();
    u.pack_bytes = packs.iter().map(|(_, s)| s).sum();
    for ft in [FileType::Index, FileType::Snapshot, FileType::Key, FileType::Lifeboat] {
        u.metadata_bytes +=
            b.list(ft).map_err(lifeboat_repository::RepoError::from)?.iter().map(|(_, s)| s).sum::<u64>();
    }
    let index = repo.index()?;
    u.data_blobs = index.len(BlobType::Data);
    u.tree_blobs = index.len(BlobType::Tree);
    for blobs in index.blobs_by_pack().values() {
        for blob in blobs {
            u.stored_bytes += blob.length as u64;
            u.unique_bytes += blob.uncompressed_length.map_or(blob.length.saturating_sub(32) as u64, u64::from);
        }
    }
    u.snapshots = snaps.len();
    let mut per: BTreeMap<String, SourceUsage> = BTreeMap::new();
    let mut days: BTreeMap<String, Growth> = BTreeMap::new();
    for s in snaps {
        let sn = &s.snapshot;
        let (size, added) =
            sn.summary.as_ref().map(|x| (x.total_bytes_processed, x.data_added_packed)).unwrap_or_default();
        u.logical_bytes += size;
        let key = match &sn.source {
            Some(src) => src.name.clone(),
            None => format!("{}:{}", sn.hostname, sn.paths.join(",")),
        };
        let e = per.entry(key.clone()).or_insert_with(|| SourceUsage { source: key, ..SourceUsage::default() });
        e.snapshots += 1;
        e.added_bytes += added;
        if e.latest.is_none_or(|t| sn.time >= t) {
            e.latest = Some(sn.time);
            e.latest_bytes = size;
        }
        let day = sn.time.with_timezone(&Local).format("%Y-%m-%d").to_string();
        let g = days.entry(day.clone()).or_insert(Growth { day, snapshots: 0, added_bytes: 0 });
        g.snapshots += 1;
        g.added_bytes += added;
    }
    u.sources = per.into_values().collect();
    u.growth = days.into_values().collect();
    u.dedup_ratio = ratio(u.logical_bytes, u.unique_bytes);
    u.compression_ratio = ratio(u.unique_bytes, u.stored_bytes);
    Ok(u)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
