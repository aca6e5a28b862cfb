//! `lifeboat copy`: snapshots into a second repository.

use anyhow::Result;
use lifeboat_service::copy::{self, CopyRequest};

use super::Ctx;
use crate::args::CopyArgs;
use crate::exit;
use crate::output::{self, Progress};

pub fn run(c: &Ctx, a: &CopyArgs) -> Result<i32> {
    let req = CopyRequest {
        to: a.to.clone(),
        to_password_file: a.to_password_file.clone(),
        snapshots: a.snapshots.clone(),
        filter: super::filter(&a.filter),
        init: a.init,
        dry_run: a.dry_run,
    };
    let progress = Progress::new(c.g);
    let (label, stats) = copy::run(&c.session, &req, &c.interrupt, progress.observer())?;
    progress.finish();
    if c.g.json {
        output::json(&stats)?;
    } else if !c.g.quiet {
        output::copy_report(&label, &stats, a.dry_run);
    }
    Ok(exit::OK)
}
