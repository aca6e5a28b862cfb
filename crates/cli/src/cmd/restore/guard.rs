//! The gate every restore passes before it changes anything: print the plan and stop
//! (`--dry-run`), or, for a guarded restore (a `protected` source, or the source's own live data),
//! require `--force` and the source's name typed back (prompt or `--confirm`). The decision rules
//! are in [`lifeboat_ops::guard`]; this module gathers the facts and talks to the operator.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use lifeboat_ops::guard::{self, Location, Refusal, Server};
use lifeboat_repository::Repository;

use super::plan::{resolve, Guarded, Plan};
use crate::args::{Global, RestoreArgs};
use crate::config::{substitute, SourceSection};
use crate::{context, exit};

/// Where a configured source's live data is: `None` when Lifeboat cannot know (a `command`
/// source, a redis source in RDB mode whose server file is not in the config).
pub fn live_location(s: &SourceSection) -> Result<Option<Location>> {
    let what = format!("source {}", s.name);
    let sub = |v: &str| substitute(v, &what);
    let server = |default_host: Option<&str>, default_port: u16| -> Result<Server> {
        let host = s.host.as_deref().map(sub).transpose()?;
        Ok(Server::new(host.as_deref().or(default_host), s.port.unwrap_or(default_port)))
    };
    Ok(match s.kind.as_str() {
        "files" | "sqlite" => {
            let paths = s.paths.iter().chain(s.path.iter()).map(|p| Ok(resolve(Path::new(&sub(p)?))));
            Some(Location::Paths(paths.collect::<Result<_>>()?))
        }
        "postgres" | "mariadb" => {
            let port = if s.kind == "postgres" { 5432 } else { 3306 };
            let name = sub(s.database.as_deref().unwrap_or_default())?;
            Some(Location::Database { server: server(None, port)?, name })
        }
        "redis" if s.mode.as_deref() == Some("rdb") => None,
        "redis" => {
            let dbs = (!s.databases.is_empty()).then(|| s.databases.clone());
            Some(Location::Redis { server: server(Some("127.0.0.1"), 6379)?, dbs })
        }
        "nats" => {
            let url = sub(s.url.as_deref().unwrap_or(crate::cmd::sources::nats::DEFAULT_URL))?;
            let conn = lifeboat_sources::nats::Connection::parse(&url)?;
            let servers = conn.servers.iter().map(|(h, p)| Server::new(Some(h), *p)).collect();
            let names = (!s.streams.is_empty()).then(|| s.streams.clone());
            Some(Location::Streams { servers, names })
        }
        _ => None,
    })
}

/// The config entry of the plan's source, if the config has one.
fn section(g: &Global, plan: &Plan) -> Result<Option<SourceSection>> {
    let Some(name) = &plan.source else { return Ok(None) };
    Ok(context::config(g)?.and_then(|c| c.find(name).ok().cloned()))
}

/// Mark the plan guarded when its source is protected or it writes to the source's live data.
fn assess(g: &Global, plan: &mut Plan) -> Result<()> {
    let (Some(s), Some(name)) = (section(g, plan)?, plan.source.clone()) else { return Ok(()) };
    let live = live_location(&s)?;
    let reasons = match &plan.writes_to {
        Some(to) => guard::reasons(s.protected, live.as_ref(), to),
        None => guard::reasons(s.protected, None, &Location::Paths(Vec::new())),
    };
    if !reasons.is_empty() {
        plan.guarded = Some(Guarded { reasons, rerun_with: format!("--force --confirm {name}") });
    }
    Ok(())
}

/// Pass a restore through the gate: `Some(exit code)` when it must stop here (a dry run, printed;
/// or a guarded restore that was not confirmed, refused with one line), `None` to go ahead.
pub fn gate(g: &Global, a: &RestoreArgs, repo: &Repository, mut plan: Plan) -> Result<Option<i32>> {
    assess(g, &mut plan)?;
    if a.dry_run {
        plan.print(g)?;
        return Ok(Some(exit::OK));
    }
    let (Some(guarded), Some(name)) = (&plan.guarded, &plan.source) else { return Ok(None) };
    let typed = match (&a.confirm, a.force) {
        (Some(c), _) => Some(c.clone()),
        (None, true) if interactive() => Some(prompt(&plan, guarded, name)?),
        _ => None,
    };
    match guard::confirm(name, a.force, typed.as_deref()) {
        Ok(()) => {
            audit(repo, &plan, guarded);
            Ok(None)
        }
        Err(r) => {
            eprintln!("lifeboat: {}", refusal(&plan, guarded, name, &r));
            Ok(Some(exit::REFUSED))
        }
    }
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn reasons(guarded: &Guarded) -> String {
    let r: Vec<String> = guarded.reasons.iter().map(ToString::to_string).collect();
    r.join(" and ")
}

/// Ask for the source's name on the terminal.
fn prompt(plan: &Plan, guarded: &Guarded, name: &str) -> Result<String> {
    let mut err = std::io::stderr();
    writeln!(err, "{}.", plan.summary())?;
    writeln!(err, "This restore is guarded because {}.", reasons(guarded))?;
    write!(err, "Type the source name ({name}) to go ahead: ")?;
    err.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the confirmation")?;
    Ok(line)
}

/// The one-line refusal: what would have happened, why it is guarded, how to go ahead.
fn refusal(plan: &Plan, guarded: &Guarded, name: &str, r: &Refusal) -> String {
    let how = match r {
        Refusal::NoForce | Refusal::NoConfirmation => format!("rerun with --force --confirm {name}"),
        Refusal::Mismatch { given } => {
            format!("the confirmation {given:?} does not match the source name; rerun with --force --confirm {name}")
        }
    };
    format!("refused: {}; it is guarded because {}; nothing was changed; {how}", plan.summary(), reasons(guarded))
}

/// Record a confirmed guarded restore in the audit log (a failure to record is a warning).
fn audit(repo: &Repository, plan: &Plan, guarded: &Guarded) {
    let details = serde_json::json!({
        "snapshot": plan.snapshot, "source": plan.source, "kind": plan.kind, "target": plan.target,
        "reasons": guarded.reasons, "plan": plan.summary(),
    });
    let event = lifeboat_ops::audit::Event::new("restore (guarded)", details);
    if let Err(e) = lifeboat_ops::audit::record(repo, &event) {
        eprintln!("lifeboat: warning: the guarded restore could not be recorded in the audit log: {e}");
    }
}
