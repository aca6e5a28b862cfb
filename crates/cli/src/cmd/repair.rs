//! `lifeboat repair index [--dry-run] [--read-all-packs]`: rebuild the index from the packs.
//! The engine does the work ([`lifeboat_repository::repair`]); this prints what it did.

use anyhow::Result;
use lifeboat_service::repair;

use super::Ctx;
use crate::args::{RepairCommand, RepairPacksArgs, RepairSnapshotsArgs};
use crate::{exit, output};

/// Run `repair`.
pub fn run(c: &Ctx, r: &RepairCommand) -> Result<i32> {
    let a = match r {
        RepairCommand::Index(a) => a,
        RepairCommand::Snapshots(a) => return snapshots(c, a),
        RepairCommand::Packs(a) => return packs(c, a),
    };
    // It replaces every index file: nothing else may read or write meanwhile.
    let stats = repair::index(&c.session, a.dry_run, a.read_all_packs, &c.interrupt)?;
    let g = c.g;
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
fn snapshots(c: &Ctx, a: &RepairSnapshotsArgs) -> Result<i32> {
    let stats = repair::snapshots(&c.session, &a.snapshots, a.dry_run, a.forget, a.read_data)?;
    let g = c.g;
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
fn packs(c: &Ctx, a: &RepairPacksArgs) -> Result<i32> {
    let stats = repair::packs(&c.session, &a.packs, a.dry_run)?;
    let g = c.g;
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
