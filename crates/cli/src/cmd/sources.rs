//! `lifeboat sources` and `lifeboat config check`.

use anyhow::Result;
use chrono::Local;
use lifeboat_service::config::Config;
use lifeboat_service::inventory;

use super::Ctx;
use crate::{exit, output};

/// `lifeboat sources`: every source with its last snapshot.
pub fn list(c: &Ctx) -> Result<i32> {
    let (cfg, last) = inventory::sources(&c.session)?;
    let mut rows = Vec::new();
    for (src, last) in cfg.sources().zip(&last) {
        rows.push(serde_json::json!({
            "name": src.name, "kind": src.kind(), "tags": src.tags, "rpo": src.rpo, "rto": src.rto,
            "schedule": src.schedule, "last_snapshot": last.as_ref().map(|s| s.id),
            "last_backup": last.as_ref().map(|s| s.snapshot.time),
        }));
        if !c.g.json {
            let when = last
                .as_ref()
                .map(|s| {
                    format!("{} ({})", s.snapshot.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"), s.id.short())
                })
                .unwrap_or_else(|| "never".into());
            println!("{:<20} {:<8} last backup: {when}", src.name, src.kind());
        }
    }
    if c.g.json {
        output::json(&rows)?;
    }
    Ok(exit::OK)
}

/// `lifeboat config check`: the file parses, every source is valid for its kind, every
/// schedule and objective parses; `${VAR}`s that are not set here are listed as a warning (the
/// daemon's or the job's environment may set them).
pub fn config_check(c: &Ctx) -> Result<i32> {
    let cfg = c.session.require_config("no config file")?;
    let text = std::fs::read_to_string(&cfg.path).unwrap_or_default();
    let undefined = Config::undefined_variables(&text);
    let sources: Vec<_> = cfg
        .sources()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "kind": s.kind(), "tags": s.tags, "schedule": s.schedule, "rpo": s.rpo,
                "rto": s.rto, "protected": s.protected, "after": s.after, "hooks": s.hooks.names(),
                "retention": s.retention_table.as_ref().and_then(|r| serde_json::to_value(r).ok()),
                "next_run": s.schedule.as_ref().and_then(|x| x.next_after(chrono::Utc::now())),
            })
        })
        .collect();
    if c.g.json {
        output::json(&serde_json::json!({
            "file": cfg.path, "ok": true, "sources": sources, "copy_destinations": cfg.copies.len(),
            "notify_targets": cfg.notify.len(), "server": cfg.server.is_some(), "undefined_variables": undefined,
        }))?;
    } else if !c.g.quiet {
        println!(
            "{}: ok — {}, {}, {}{}",
            cfg.path.display(),
            output::count(cfg.sources.len(), "source"),
            output::count(cfg.copies.len(), "copy destination"),
            output::count(cfg.notify.len(), "notify target"),
            if cfg.server.is_some() { ", server configured" } else { "" }
        );
        for s in cfg.sources() {
            let extra = [
                s.schedule.as_ref().map(|x| format!("schedule {}", x.text())),
                s.rpo.as_ref().map(|x| format!("rpo {}", x.text)),
                s.rto.as_ref().map(|x| format!("rto {}", x.text)),
                s.retention.as_ref().map(|_| "retention".to_string()),
                s.protected.then(|| "protected".to_string()),
                (!s.after.is_empty()).then(|| format!("after {}", s.after.join(","))),
                (!s.hooks.is_empty()).then(|| format!("hooks {}", s.hooks.names().join(","))),
            ];
            let extra: Vec<String> = extra.into_iter().flatten().collect();
            println!("  {:<20} {:<8} {}", s.name, s.kind(), extra.join(", "));
        }
    }
    if !undefined.is_empty() {
        eprintln!(
            "lifeboat: warning: {}: {} not set here: {} (a backup in this environment would fail)",
            cfg.path.display(),
            if undefined.len() == 1 { "environment variable" } else { "environment variables" },
            undefined.join(", ")
        );
    }
    Ok(exit::OK)
}
