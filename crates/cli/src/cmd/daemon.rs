//! `lifeboat daemon` and `lifeboat notify test`.

use anyhow::{bail, Result};
use lifeboat_daemon::log::{Format, Log};
use lifeboat_daemon::notify::{self, Alert, Retry};

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
    let targets: Vec<_> = cfg.notify.iter().filter(|t| name.is_none_or(|n| t.label() == n)).collect();
    if targets.is_empty() {
        match name {
            Some(n) => bail!("no [[notify]] target named {n:?} in {}", cfg.path.display()),
            None => bail!("{} has no [[notify]] targets", cfg.path.display()),
        }
    }
    let alert = Alert::new("test", None, "a test alert from `lifeboat notify test`".into(), serde_json::json!({}));
    let log = Log::new(Format::Text);
    let retry = Retry { attempts: 1, backoff: std::time::Duration::ZERO };
    let mut failed = 0;
    for t in targets {
        let ok = notify::deliver(t, &alert, log, retry);
        if !c.g.quiet {
            println!("{:<20} {:<12} {}", t.label(), t.kind, if ok { "delivered" } else { "FAILED" });
        }
        failed += usize::from(!ok);
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
}
