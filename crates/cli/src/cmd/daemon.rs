//! `lifeboat daemon` and `lifeboat notify test`.

use anyhow::{anyhow, Result};
use lifeboat_daemon::log::{Format, Log};
use lifeboat_daemon::notify;

use super::Ctx;
use crate::args::DaemonArgs;
use crate::exit;

pub fn run(c: &Ctx, a: &DaemonArgs) -> Result<i32> {
    let log = if a.log_format == "json" { Format::Json } else { Format::Text };
    let opts = lifeboat_daemon::Options { log, listen: a.listen.clone() };
    Ok(lifeboat_daemon::run(c.session.clone(), opts)?)
}

pub fn notify_test(c: &Ctx, name: Option<&str>) -> Result<i32> {
    let cfg = c.session.require_config("notify test needs a config file with [[notify]] targets")?;
    let results =
        notify::test(&cfg.notify, name, Log::new(Format::Text)).map_err(|e| anyhow!("{}: {e}", cfg.path.display()))?;
    for (label, kind, ok) in &results {
        if !c.g.quiet {
            println!("{label:<20} {kind:<12} {}", if *ok { "delivered" } else { "FAILED" });
        }
    }
    Ok(if results.iter().all(|r| r.2) { exit::OK } else { exit::FAILURE })
}
