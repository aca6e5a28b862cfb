//! `lifeboat check [--read-data]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use lifeboat_backend::FileType;
use lifeboat_repository::checker::{check, CheckOptions};

use crate::args::{CheckArgs, Global};
use crate::{context, exit, output};

pub fn run(g: &Global, a: &CheckArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let repo = context::open(g)?;
    let _lock = context::lock_read_only(g, &repo)?;
    let packs_done = Arc::new(AtomicU64::new(0));
    let total = if a.read_data { repo.backend().list(FileType::Pack)?.len() as u64 } else { 0 };
    let show = output::interactive(g.json, g.quiet) && a.read_data;
    let pb = output::bar(show, total.max(1), "{elapsed_precise} [{bar:30}] {pos}/{len} packs read");
    let ticker = {
        let (p, pb) = (packs_done.clone(), pb.clone());
        output::Ticker::start(std::time::Duration::from_millis(150), move || pb.set_position(p.load(Ordering::Relaxed)))
    };
    let r = check(
        &repo,
        &CheckOptions {
            read_data: a.read_data,
            interrupt: Some(interrupt),
            packs_done: Some(packs_done),
            ..Default::default()
        },
    );
    ticker.stop();
    pb.finish_and_clear();
    let res = r?;
    if g.json {
        output::json(&res)?;
    } else {
        for n in &res.notices {
            if g.verbose > 0 || !g.quiet {
                eprintln!("notice: {n}");
            }
        }
        for w in &res.warnings {
            eprintln!("warning: {w}");
        }
        for e in &res.errors {
            eprintln!("error: {e}");
        }
        if !g.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs{}",
                res.snapshots,
                res.trees,
                res.packs,
                if a.read_data {
                    format!(", read {} ({} packs)", output::size(res.bytes_read), res.packs_read)
                } else {
                    String::new()
                }
            );
        }
        if res.is_ok() {
            if !g.quiet {
                println!("no errors were found");
            }
        } else {
            eprintln!("lifeboat: {} errors found: the repository is damaged", res.errors.len());
        }
    }
    Ok(if res.is_ok() { exit::OK } else { exit::FAILURE })
}
