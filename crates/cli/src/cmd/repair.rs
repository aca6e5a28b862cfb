//! `lifeboat repair index [--dry-run] [--read-all-packs]`: rebuild the index from the packs.
//! The engine does the work ([`lifeboat_repository::repair`]); this prints what it did.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat_repository::repair::{
    repair_index, repair_packs, repair_snapshots, RepairIndexOptions, RepairPacksOptions, RepairSnapshotsOptions,
};

use crate::args::Global;
use crate::{context, exit, output};

/// `lifeboat repair …`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (after an index file was deleted or damaged)
    Index(RepairIndexArgs),
    /// Write copies of damaged snapshots without their lost files (tagged `repaired`; originals kept unless --forget)
    Snapshots(RepairSnapshotsArgs),
    /// Salvage the readable blobs of damaged packs into new packs, then delete the damaged packs
    Packs(RepairPacksArgs),
}

/// `lifeboat repair packs`
#[derive(Args, Debug)]
pub struct RepairPacksArgs {
    /// Damaged packs (full ids, as `check` names them); default: read every pack and take the damaged ones
    pub packs: Vec<String>,
    /// Show what would be salvaged and lost; write and delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `lifeboat repair snapshots`
#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Snapshots to repair (ids or prefixes); default: every snapshot
    pub snapshots: Vec<String>,
    /// Show what would change; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Remove each original once its repaired copy is saved
    #[arg(long)]
    pub forget: bool,
    /// Also read every data blob the snapshots use: damaged blobs count as lost, not only missing ones
    #[arg(long)]
    pub read_data: bool,
}

/// `lifeboat repair index`
#[derive(Args, Debug)]
pub struct RepairIndexArgs {
    /// Show what would change; write and delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Read the header of every pack, also of packs an intact index file describes
    #[arg(long)]
    pub read_all_packs: bool,
}

/// Run `repair`.
pub fn run(g: &Global, c: &RepairCommand, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let a = match c {
        RepairCommand::Index(a) => a,
        RepairCommand::Snapshots(a) => return snapshots(g, a),
        RepairCommand::Packs(a) => return packs(g, a),
    };
    let repo = context::open(g)?;
    // It replaces every index file: nothing else may read or write meanwhile.
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let opts = RepairIndexOptions {
        dry_run: a.dry_run,
        read_all_packs: a.read_all_packs,
        threads: 0,
        interrupt: Some(interrupt),
    };
    let stats = repair_index(&repo, &opts)?;
    if g.json {
        output::json(&stats)?;
    } else if !g.quiet {
        let would = if stats.dry_run { "would " } else { "" };
        println!(
            "{} packs: {} described by an intact index file, {} headers read; {} packs no index listed, {} indexed packs missing",
            stats.packs, stats.packs_from_index, stats.packs_read, stats.packs_added, stats.packs_missing
        );
        for u in &stats.unreadable {
            eprintln!("lifeboat: pack {}: {}", u.pack, u.reason);
        }
        println!(
            "{would}replace {} index files ({} damaged) with {} blobs in {} packs{}",
            stats.index_files_removed,
            stats.index_files_damaged,
            stats.blobs,
            stats.packs_indexed,
            if stats.dry_run { String::new() } else { format!(": {} index files written", stats.index_files_written) }
        );
        if stats.index_was_complete() && stats.unreadable.is_empty() {
            println!("the index already described every pack");
        }
    }
    Ok(if stats.unreadable.is_empty() { exit::OK } else { exit::FAILURE })
}

/// `repair snapshots`.
fn snapshots(g: &Global, a: &RepairSnapshotsArgs) -> Result<i32> {
    let repo = context::open(g)?;
    if a.forget && !a.dry_run {
        context::refuse_if_append_only(g, &repo, "repair snapshots --forget")?;
    }
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let mut ids = Vec::new();
    for r in &a.snapshots {
        ids.push(lifeboat_repository::snapshots::find(&repo, r, &Default::default())?.id);
    }
    let opts = RepairSnapshotsOptions {
        dry_run: a.dry_run,
        forget: a.forget,
        read_data: a.read_data,
        snapshots: ids,
        threads: 0,
    };
    let stats = repair_snapshots(&repo, &opts)?;
    for (id, why) in &stats.unrepairable {
        eprintln!("lifeboat: snapshot {id} cannot be repaired: {why}");
    }
    for (id, why) in &stats.removed {
        eprintln!("lifeboat: snapshot {id} removed: {why}");
    }
    if g.json {
        output::json(&stats)?;
    } else if !g.quiet {
        let would = if stats.dry_run { "would be " } else { "" };
        for r in &stats.repaired {
            let new = r.repaired.map(|i| i.short()).unwrap_or_default();
            println!("snapshot {} {would}repaired as {new}:", r.original.short());
            for f in &r.removed_files {
                println!("  file {f}: left out (data lost)");
            }
            for d in &r.emptied_dirs {
                println!("  dir {d}: empty (tree lost)");
            }
        }
        println!(
            "{} snapshots checked, {} {would}repaired{}; {} data blobs lost{}",
            stats.snapshots,
            stats.repaired.len(),
            if stats.forgotten > 0 { format!(" ({} originals removed)", stats.forgotten) } else { String::new() },
            stats.blobs_lost,
            if a.read_data { format!(" ({} read)", stats.blobs_read) } else { String::new() }
        );
    }
    Ok(if stats.unrepairable.is_empty() { exit::OK } else { exit::FAILURE })
}

/// `repair packs`.
fn packs(g: &Global, a: &RepairPacksArgs) -> Result<i32> {
    let repo = context::open(g)?;
    if !a.dry_run {
        context::refuse_if_append_only(g, &repo, "repair packs")?;
    }
    let _lock = context::lock(g, &repo, !a.dry_run)?;
    let ids = a
        .packs
        .iter()
        .map(|p| p.parse().map_err(|e| anyhow::anyhow!("pack {p:?}: {e} (give the full 64-character id)")))
        .collect::<Result<Vec<_>>>()?;
    let stats = repair_packs(&repo, &RepairPacksOptions { dry_run: a.dry_run, packs: ids, threads: 0 })?;
    if g.json {
        output::json(&stats)?;
    } else if !g.quiet {
        let would = if stats.dry_run { "would be " } else { "" };
        for d in &stats.damaged {
            println!("pack {}: {} blobs {would}salvaged, {} lost", d.pack, d.salvaged, d.lost.len());
            for b in &d.lost {
                println!("  blob {b}: lost");
            }
        }
        if stats.damaged.is_empty() {
            println!("no damaged pack found ({} read)", stats.packs_read);
        } else if !stats.dry_run {
            println!(
                "{} damaged packs replaced by {} new packs; next: `lifeboat repair snapshots` for the snapshots that used lost blobs",
                stats.damaged.len(),
                stats.packs_written
            );
        }
    }
    Ok(exit::OK)
}
