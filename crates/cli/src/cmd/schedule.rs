//! `lifeboat schedule [show|print|install|uninstall]`: the config's jobs, their next runs, and
//! the same jobs for cron, systemd or Kubernetes when no daemon runs.

use anyhow::{anyhow, Result};
use lifeboat_daemon::units::{self, Target};

use super::Ctx;
use crate::args::ScheduleArgs;
use crate::{exit, output};

pub fn run(c: &Ctx, a: &ScheduleArgs) -> Result<i32> {
    let cfg = c.session.require_config("schedule needs a config file")?;
    let config = std::path::absolute(&cfg.path)?.display().to_string();
    let t = Target { binary: a.binary.clone(), config, user: a.user.clone() };
    if a.action == "show" {
        let rows = units::show(&cfg, &t);
        if c.g.json {
            output::json(&rows)?;
        } else {
            for r in &rows {
                let (job, every, next) = (&r["job"], &r["schedule"], &r["next_local"]);
                println!(
                    "{:<28} {:<20} next {}",
                    job.as_str().unwrap_or(""),
                    every.as_str().unwrap_or(""),
                    next.as_str().unwrap_or("-")
                );
            }
        }
        return Ok(exit::OK);
    }
    let flags = [(a.systemd, "systemd"), (a.cron, "cron"), (a.kubernetes, "kubernetes")];
    let format = flags.into_iter().find(|f| f.0).map_or(a.format.as_str(), |f| f.1);
    let default_dir = if format == "cron" { "/etc/cron.d" } else { "/etc/systemd/system" };
    let dir = a.dir.clone().unwrap_or_else(|| default_dir.into());
    let files = units::files(format, &cfg, &t, &a.image).map_err(|e| anyhow!(e))?;
    let done = match a.action.as_str() {
        "print" => {
            for (name, text) in &files {
                println!("# --- {name}\n{text}");
            }
            return Ok(exit::OK);
        }
        "install" => units::install(&dir, &files),
        _ => units::uninstall(&dir),
    };
    for p in done.map_err(|e| anyhow!(e))? {
        println!("{} {}", if a.action == "install" { "wrote" } else { "removed" }, p.display());
    }
    Ok(exit::OK)
}
