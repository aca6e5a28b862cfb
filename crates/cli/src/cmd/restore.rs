//! `lifeboat restore SNAPSHOT --target …`: the plan, the gate (`--dry-run` prints the plan; a
//! guarded restore needs `--force` and the source's name typed back), then the restore.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context as _, Result};
use lifeboat_service::guard::confirm;
use lifeboat_service::kinds::RestoreRequest;
use lifeboat_service::plan::{Guarded, Plan};
use lifeboat_service::restore::{self, Decision};
use lifeboat_service::restore_all::{self, AllRequest};

use super::Ctx;
use crate::args::{Global, RestoreArgs};
use crate::exit;
use crate::output::{self, Progress};

pub fn run(c: &Ctx, a: &RestoreArgs) -> Result<i32> {
    if a.all {
        return all(c, a);
    }
    let req = RestoreRequest {
        target: a.target.clone().unwrap_or_default(),
        include: a.include.clone(),
        overwrite: a.overwrite,
        verify: a.verify,
        streams: a.streams.clone(),
        from: a.from.clone(),
        until: a.until.clone(),
        globals: a.globals,
        checksums: a.checksums.clone(),
        at: a.at.clone(),
        txid: a.txid,
        ..Default::default()
    };
    let mut code = exit::OK;
    let mut decide = |plan: &Plan| -> lifeboat_service::Result<Decision> {
        let d = gate(c.g, a, plan).map_err(|e| lifeboat_service::ServiceError::msg(exit::message(&e)))?;
        if let Some(stop) = d {
            code = stop;
            return Ok(Decision::Stop);
        }
        Ok(Decision::Go)
    };
    let progress = Progress::new(c.g);
    let spec = super::filter(&a.filter);
    let snapshot = a.snapshot.as_deref().unwrap_or("latest");
    let done = restore::restore(&c.session, snapshot, &spec, &req, &mut decide, &c.interrupt, progress.observer());
    progress.finish();
    let Some(r) = done? else { return Ok(code) };
    for w in &r.warnings {
        eprintln!("lifeboat: warning: {w}");
    }
    for f in &r.failed {
        eprintln!("lifeboat: not restored (damaged): {f}");
    }
    if c.g.json {
        output::json(&r.json)?;
    } else if !c.g.quiet {
        for l in &r.lines {
            println!("{l}");
        }
    }
    for m in &r.mismatches {
        eprintln!("lifeboat: verify: {m}");
    }
    r.check()?;
    Ok(if r.failed.is_empty() { exit::OK } else { exit::FAILURE })
}

/// `restore --all`: the service plans, gates and runs; this prints the summary.
fn all(c: &Ctx, a: &RestoreArgs) -> Result<i32> {
    let req = AllRequest {
        sources: a.sources.clone(),
        target_root: a.target_root.clone(),
        overwrite: a.overwrite,
        verify: a.verify,
        dry_run: a.dry_run,
        keep_going: a.keep_going,
        force: a.force,
        confirm: a.confirm.iter().flat_map(|c| c.split(',')).map(|s| s.trim().to_string()).collect(),
    };
    let progress = Progress::new(c.g);
    let report = restore_all::restore_all(&c.session, &req, &c.interrupt, progress.observer());
    progress.finish();
    let report = report?;
    if let Some(r) = report.refusal() {
        eprintln!("lifeboat: {r}");
    }
    if c.g.json {
        output::json(&report)?;
    } else if !c.g.quiet {
        report.lines().iter().for_each(|l| println!("{l}"));
    }
    Ok(report.exit_code())
}

/// `Some(exit code)` when the restore must stop here (a dry run, printed; or a guarded restore
/// that was not confirmed, refused with one line), `None` to go ahead.
fn gate(g: &Global, a: &RestoreArgs, plan: &Plan) -> Result<Option<i32>> {
    if a.dry_run {
        print(g, plan)?;
        return Ok(Some(exit::OK));
    }
    let (Some(guarded), Some(name)) = (&plan.guarded, &plan.source) else { return Ok(None) };
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let typed = match (&a.confirm, a.force) {
        (Some(c), _) => Some(c.clone()),
        (None, true) if interactive => Some(prompt(plan, guarded, name)?),
        _ => None,
    };
    match confirm(name, a.force, typed.as_deref()) {
        Ok(()) => Ok(None),
        Err(r) => {
            eprintln!("lifeboat: {}", lifeboat_service::guard::refusal(plan, guarded, name, &r));
            Ok(Some(exit::REFUSED))
        }
    }
}

/// Ask for the source's name on the terminal.
fn prompt(plan: &Plan, guarded: &Guarded, name: &str) -> Result<String> {
    let mut err = std::io::stderr();
    writeln!(err, "{}.", plan.summary())?;
    writeln!(err, "This restore is guarded because {}.", lifeboat_service::guard::reasons(guarded))?;
    write!(err, "Type the source name ({name}) to go ahead: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the confirmation")?;
    Ok(line)
}

/// Print the plan: JSON, or a headline and a table.
fn print(g: &Global, plan: &Plan) -> Result<()> {
    if g.json {
        return output::json(plan);
    }
    for l in plan.lines() {
        println!("{l}");
    }
    Ok(())
}
