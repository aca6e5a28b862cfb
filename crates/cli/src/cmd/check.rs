//! `lifeboat check [--read-data]`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use lifeboat_service::inventory;
use lifeboat_service::progress::Ticker;

use super::Ctx;
use crate::args::CheckArgs;
use crate::{exit, output};

pub fn run(c: &Ctx, a: &CheckArgs) -> Result<i32> {
    let packs_done = Arc::new(AtomicU64::new(0));
    let show = output::interactive(c.g.json, c.g.quiet) && a.read_data;
    let pb = output::bar(show, 1, "{elapsed_precise} [{bar:30}] {pos}/{len} packs read");
    let ticker = {
        let (p, pb) = (packs_done.clone(), pb.clone());
        Ticker::start(std::time::Duration::from_millis(150), move || pb.set_position(p.load(Ordering::Relaxed)))
    };
    let notes = output::notes();
    let r = inventory::check(
        &c.session,
        a.read_data.then_some(100),
        &c.interrupt,
        packs_done,
        &mut |n| pb.set_length(n.max(1)),
        notes.as_ref(),
    );
    ticker.stop();
    pb.finish_and_clear();
    let res = r?;
    if c.g.json {
        output::json(&res)?;
    } else {
        for n in &res.notices {
            if c.g.verbose > 0 || !c.g.quiet {
                eprintln!("notice: {n}");
            }
        }
        for w in &res.warnings {
            eprintln!("warning: {w}");
        }
        for e in &res.errors {
            eprintln!("error: {e}");
        }
        if !c.g.quiet {
            println!(
                "checked {}, {}, {}{}",
                output::count(res.snapshots, "snapshot"),
                output::count(res.trees, "tree"),
                output::count(res.packs, "pack"),
                if a.read_data {
                    format!(", read {} ({} packs)", output::size(res.bytes_read), res.packs_read)
                } else {
                    String::new()
                }
            );
        }
        if res.is_ok() {
            if !c.g.quiet {
                println!("no errors were found");
            }
        } else {
            eprintln!("lifeboat: {} found: the repository is damaged", output::count(res.errors.len(), "error"));
        }
    }
    Ok(if res.is_ok() { exit::OK } else { exit::FAILURE })
}
