//! `lifeboat repair index [--dry-run] [--read-all-packs]`: rebuild the index from the packs.
//! The engine does the work ([`lifeboat_repository::repair`]); this prints what it did.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat_repository::repair::{repair_index, RepairIndexOptions};

use crate::args::Global;
use crate::{context, exit, output};

/// `lifeboat repair …`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (after an index file was deleted or damaged)
    Index(RepairIndexArgs),
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
    let RepairCommand::Index(a) = c;
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
