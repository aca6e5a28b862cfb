//! `lifeboat health [--source NAME…] [--json]`: per config source the newest backup against its
//! RPO, the newest verification, the newest drill; the overall grade is the exit code (0 ok,
//! 1 warning, 2 critical; 3 unknown when health cannot be determined).

use anyhow::Result;
use lifeboat_ops::health::{Status, Thresholds};
use lifeboat_service::health;

use super::Ctx;
use crate::args::HealthArgs;
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
            "sources": r.sources, "free_space": r.free_space,
        }))?;
    } else if !c.g.quiet || r.status != Status::Ok {
        for l in health::table_lines(&r) {
            println!("{l}");
        }
    }
    Ok(r.status.exit_code())
}
