//! One module per command; `run` dispatches and returns the exit code. Commands parse their
//! arguments into service requests, call the service, and render what it returns.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use lifeboat_service::{FilterSpec, Session};

use crate::args::{Cli, Command, Global, SnapshotFilter};

mod backup;
mod check;
mod compare;
mod copy;
mod daemon;
mod demo;
mod drill;
mod forget;
mod health;
mod init;
mod key;
mod ls;
mod repair;
mod replicate;
mod restore;
mod runs;
mod schedule;
mod snapshots;
mod sources;
mod storage;
mod verify;

/// What every command gets.
pub struct Ctx<'a> {
    /// The global options.
    pub g: &'a Global,
    /// The service session built from them.
    pub session: Session,
    /// Set on Ctrl-C.
    pub interrupt: Arc<AtomicBool>,
}

/// Run the parsed command line.
pub fn run(cli: Cli, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let g = &cli.global;
    let c = Ctx { g, session: crate::context::session(g), interrupt };
    match cli.command {
        Command::Init(a) => init::run(&c, &a),
        Command::Backup(a) => backup::run(&c, &a),
        Command::Snapshots(a) => snapshots::run(&c, &a),
        Command::Sources => sources::list(&c),
        Command::Config(crate::args::ConfigCommand::Check) => sources::config_check(&c),
        Command::Ls(a) => ls::run(&c, &a),
        Command::Diff(a) => {
            let d = lifeboat_service::diff::diff(&c.session, &a.first, &a.second, &filter(&a.filter))?;
            crate::output::show(c.g, &d, || print!("{}", d.text())).map(|_| crate::exit::OK)
        }
        Command::Restore(a) => restore::run(&c, &a),
        Command::Health(a) => health::run(&c, &a),
        Command::Probe(a) => health::probe(&c, &a),
        Command::Report(a) => {
            use lifeboat_service::report::{self, PeriodSpec, Request};
            let period = PeriodSpec { week: a.week, month: a.month, since: a.since.clone() };
            let r = report::make(&c.session, &Request { period, sources: a.sources.clone() }, a.html.as_deref())?;
            crate::output::show(c.g, &r, || report::text_lines(&r).iter().for_each(|l| println!("{l}")))
                .map(|_| crate::exit::OK)
        }
        Command::Check(a) => check::run(&c, &a),
        Command::Verify(a) => verify::run(&c, &a),
        Command::Compare(a) => compare::run(&c, &a),
        Command::Drill(a) => drill::run(&c, &a),
        Command::Storage(s) => storage::run(&c, &s),
        Command::Key(k) => key::run(&c, k),
        Command::Repair(r) => repair::run(&c, &r),
        Command::Unlock(a) => key::unlock(&c, &a),
        Command::Forget(a) => forget::forget(&c, &a),
        Command::Prune(a) => forget::prune(&c, &a),
        Command::ApplyRetention(a) => forget::apply_retention(&c, &a),
        Command::Audit(a) => forget::audit_log(&c, &a),
        Command::Runs(a) => runs::list(&c, &a),
        Command::Logs(a) => runs::logs(&c, &a),
        Command::Copy(a) => copy::run(&c, &a),
        Command::Replicate(a) => replicate::run(&c, &a),
        Command::WalPush(a) => {
            let r = lifeboat_service::wal::push(&c.session, &a.source, &a.path)?;
            crate::output::show(c.g, &r, || {}).map(|_| crate::exit::OK)
        }
        Command::WalFetch(a) => {
            match lifeboat_service::wal::fetch(&c.session, &a.source, &a.name, &a.dest) {
                Ok(true) => Ok(crate::exit::OK),
                Ok(false) => {
                    eprintln!("lifeboat: {} is not archived for source {}", a.name, a.source);
                    Ok(crate::exit::FAILURE)
                }
                // Anything else must stop recovery rather than end it early: PostgreSQL treats an
                // exit status above 125 as fatal.
                Err(e) => {
                    eprintln!("lifeboat: {}", lifeboat_service::one_line(&e));
                    Ok(126)
                }
            }
        }
        Command::AppendOnly { state } => forget::append_only(&c, state.as_deref()),
        Command::Daemon(a) => daemon::run(&c, &a),
        Command::Notify(crate::args::NotifyCommand::Test { name }) => daemon::notify_test(&c, name.as_deref()),
        Command::Schedule(a) => schedule::run(&c, &a),
        Command::Demo(a) => demo::run(&c, &a),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "lifeboat", &mut std::io::stdout());
            Ok(crate::exit::OK)
        }
        Command::Man { dir } => crate::man::write(dir.as_deref()),
    }
}

/// The service's filter from the snapshot-filter flags.
pub fn filter(f: &SnapshotFilter) -> FilterSpec {
    FilterSpec {
        tags: f.tags.clone(),
        host: f.host.clone(),
        source: f.source.clone(),
        paths: f.paths.clone(),
        since: f.since.clone(),
        before: f.before.clone(),
    }
}
