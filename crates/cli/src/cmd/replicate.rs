//! `lifeboat replicate [SOURCE…]`: continuous replication of sqlite sources in the foreground,
//! one line (or JSON object) per event, until Ctrl-C or SIGTERM.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Result};
use lifeboat_service::replicate::{self, ReplicaEvent, ReplicateOptions};

use super::Ctx;
use crate::args::ReplicateArgs;
use crate::exit;

/// `50ms`, or anything `parse_duration` reads (`1s`, `2m`).
fn interval(flag: &str, text: &str) -> Result<Duration> {
    let bad = || anyhow!("{flag} {text:?}: expected a duration like 50ms, 250ms or 1s");
    let d = match text.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| bad())?),
        None => lifeboat_service::config::parse_duration(text).map_err(|_| bad())?,
    };
    if d < Duration::from_millis(1) || d > Duration::from_secs(60) {
        return Err(anyhow!("{flag} {text:?}: between 1ms and 60s"));
    }
    Ok(d)
}

pub fn run(c: &Ctx, a: &ReplicateArgs) -> Result<i32> {
    let (interval, max_delay) = match (interval("--interval", &a.interval), interval("--max-delay", &a.max_delay)) {
        (Ok(i), Ok(m)) => (i, m),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("lifeboat: {e}");
            return Ok(exit::USAGE);
        }
    };
    let opts =
        ReplicateOptions { interval, max_delay, checkpoint_frames: a.checkpoint_frames.max(1), ..Default::default() };
    // SIGTERM (systemd, Kubernetes) stops like Ctrl-C: what is shipped stays shipped.
    signal_hook::flag::register(signal_hook::consts::SIGTERM, c.interrupt.clone())
        .map_err(|e| anyhow!("cannot install the SIGTERM handler: {e}"))?;
    let json = c.g.json;
    let quiet = c.g.quiet;
    let on = move |e: &ReplicaEvent| {
        let mut out = std::io::stdout().lock();
        if json {
            let _ = serde_json::to_writer(&mut out, e);
            let _ = writeln!(out);
        } else if !quiet || matches!(e, ReplicaEvent::Error { .. } | ReplicaEvent::Generation { .. }) {
            let _ = writeln!(out, "{}", line(e));
        }
        let _ = out.flush();
    };
    replicate::replicate(&c.session, &a.sources, &opts, &c.interrupt, &on)?;
    Ok(exit::OK)
}

fn line(e: &ReplicaEvent) -> String {
    match e {
        ReplicaEvent::Started { source, generation, txid, resumed: true } => {
            format!("{source}: resumed generation {generation} after transaction {txid}")
        }
        ReplicaEvent::Started { source, generation, txid, resumed: false } => {
            format!("{source}: replicating generation {generation} from transaction {txid}")
        }
        ReplicaEvent::Generation { source, generation, snapshot, txid, reason, seconds } => format!(
            "{source}: new generation {generation} (base snapshot {snapshot}, transaction {txid}, {seconds:.2}s): {reason}"
        ),
        ReplicaEvent::Shipped { source, first, last, pages, seconds } => {
            let n = last - first + 1;
            format!(
                "{source}: shipped {n} transaction{} ({first}–{last}, {pages} pages) in {:.0} ms",
                if n == 1 { "" } else { "s" },
                seconds * 1000.0
            )
        }
        ReplicaEvent::Error { source, message, retry_seconds } => {
            format!("{source}: error: {message} (trying again in {retry_seconds:.0}s)")
        }
        ReplicaEvent::Stopped { source, txid } => format!("{source}: stopped after transaction {txid}"),
    }
}
