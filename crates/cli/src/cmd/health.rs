//! `lifeboat health [--source NAME…] [--json]`: per config source the newest backup against its
//! RPO, the newest verification, the newest drill; the overall grade is the exit code (0 ok,
//! 1 warning, 2 critical; 3 unknown when health cannot be determined).

use anyhow::Result;
use lifeboat_ops::health::{Status, Thresholds};
use lifeboat_service::health;

use super::Ctx;
use crate::args::{HealthArgs, ProbeArgs, ProbeCommand};
use crate::{exit, output};

/// Exit code when the health cannot be determined (monitoring-plugin UNKNOWN).
pub const UNKNOWN: i32 = 3;

/// Run `health`; any error is reported on one line and exits with [`UNKNOWN`].
pub fn run(c: &Ctx, a: &HealthArgs) -> Result<i32> {
    match check(c, a) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("lifeboat: health unknown: {}", exit::message(&e));
            Ok(UNKNOWN)
        }
    }
}

fn check(c: &Ctx, a: &HealthArgs) -> Result<i32> {
    let age = lifeboat_service::config::parse_duration(&a.max_verification_age)
        .map_err(|e| anyhow::anyhow!("--max-verification-age: {e}"))?;
    let th = Thresholds { rpo_warning_percent: a.rpo_warning, verification_max_age: age };
    let r = health::health(&c.session, &a.sources, &th)?;
    if c.g.json {
        output::json(&serde_json::json!({
            "status": r.status, "exit_code": r.status.exit_code(), "time": r.time, "thresholds": r.thresholds,
            "sources": r.sources, "free_space": r.free_space, "probes": r.probes,
        }))?;
    } else if !c.g.quiet || r.status != Status::Ok {
        for l in health::table_lines(&r) {
            println!("{l}");
        }
    }
    Ok(r.status.exit_code())
}

/// `probe [NAME…]` and `probe history NAME`: exit codes as `health`'s (an error is 3, unknown).
pub fn probe(c: &Ctx, a: &ProbeArgs) -> Result<i32> {
    let r = (|| -> Result<i32> {
        let print = |lines: Vec<String>| lines.iter().for_each(|l| println!("{l}"));
        if let Some(ProbeCommand::History { name, since }) = &a.history {
            let h = lifeboat_service::probe::history(&c.session, name, Some(since))?;
            return output::show(c.g, &h, || print(h.lines())).map(|_| 0);
        }
        let progress = output::Progress::new(c.g);
        let r = lifeboat_service::probe::run(&c.session, &a.names, !a.no_record, &**progress.observer())?;
        output::show(c.g, &r, || print(r.lines())).map(|_| r.status.exit_code())
    })();
    r.or_else(|e| {
        eprintln!("lifeboat: probe unknown: {}", exit::message(&e));
        Ok(UNKNOWN)
    })
}
