//! Repairs of a damaged repository: the index rebuilt from pack headers, snapshots rewritten
//! without their lost files, the readable blobs of damaged packs salvaged. The engine does the
//! work ([`lifeboat_repository::repair`]); this takes the locks and the append-only rules.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lifeboat_repository::repair::{
    self, RepairIndexOptions, RepairIndexStats, RepairPacksOptions, RepairPacksStats, RepairSnapshotsOptions,
    RepairSnapshotsStats,
};

use crate::error::{Result, ServiceError};
use crate::filter::{find_snapshot, FilterSpec};
use crate::session::Session;

/// `repair index`: every index file replaced by one built from the packs (exclusive lock).
pub fn index(
    session: &Session,
    dry_run: bool,
    read_all_packs: bool,
    interrupt: &Arc<AtomicBool>,
) -> Result<RepairIndexStats> {
    let repo = session.open()?;
    let _lock = session.lock(&repo, !dry_run)?;
    let opts = RepairIndexOptions { dry_run, read_all_packs, threads: 0, interrupt: Some(interrupt.clone()) };
    Ok(repair::repair_index(&repo, &opts)?)
}

/// `repair snapshots`: copies of damaged snapshots without their lost files.
pub fn snapshots(
    session: &Session,
    refs: &[String],
    dry_run: bool,
    forget: bool,
    read_data: bool,
) -> Result<RepairSnapshotsStats> {
    let repo = session.open()?;
    if forget && !dry_run {
        session.refuse_if_append_only(&repo, "repair snapshots --forget")?;
    }
    let _lock = session.lock(&repo, !dry_run)?;
    let mut ids = Vec::new();
    for r in refs {
        ids.push(find_snapshot(&repo, r, &FilterSpec::default())?.id);
    }
    let opts = RepairSnapshotsOptions { dry_run, forget, read_data, snapshots: ids, threads: 0 };
    Ok(repair::repair_snapshots(&repo, &opts)?)
}

/// `repair packs`: the readable blobs of damaged packs into new packs.
pub fn packs(session: &Session, packs: &[String], dry_run: bool) -> Result<RepairPacksStats> {
    let repo = session.open()?;
    if !dry_run {
        session.refuse_if_append_only(&repo, "repair packs")?;
    }
    let _lock = session.lock(&repo, !dry_run)?;
    let ids = packs
        .iter()
        .map(|p| p.parse().map_err(|e| ServiceError::usage(format!("pack {p:?}: {e} (give the full 64-character id)"))))
        .collect::<Result<Vec<_>>>()?;
    Ok(repair::repair_packs(&repo, &RepairPacksOptions { dry_run, packs: ids, threads: 0 })?)
}
