//! One module per command; `run` dispatches and returns the exit code.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use crate::args::{Cli, Command};

mod backup;
mod check;
mod compare;
mod copy;
mod demo;
mod drill;
mod forget;
mod health;
mod init;
pub(crate) mod key;
mod ls;
pub mod repair;
mod restore;
mod snapshots;
pub mod sources;
pub mod storage;
mod verify;

/// Run the parsed command line.
pub fn run(cli: Cli, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::run(g, &a),
        Command::Backup(a) => backup::run(g, &a, interrupt),
        Command::Snapshots(a) => snapshots::run(g, &a),
        Command::Sources => sources::list(g),
        Command::Config(crate::args::ConfigCommand::Check) => sources::config_check(g),
        Command::Ls(a) => ls::run(g, &a),
        Command::Restore(a) => restore::run(g, &a, interrupt),
        Command::Health(a) => health::run(g, &a),
        Command::Check(a) => check::run(g, &a, interrupt),
        Command::Verify(a) => verify::run(g, &a, interrupt),
        Command::Compare(a) => compare::run(g, &a),
        Command::Drill(a) => drill::run(g, &a, interrupt),
        Command::Storage(c) => storage::run(g, &c),
        Command::Key(k) => key::run(g, k),
        Command::Repair(c) => repair::run(g, &c, interrupt),
        Command::Unlock(a) => key::unlock(g, &a),
        Command::Forget(a) => forget::forget(g, &a, interrupt),
        Command::Prune(a) => forget::prune(g, &a, interrupt),
        Command::ApplyRetention(a) => forget::apply_retention(g, &a, interrupt),
        Command::Audit(a) => forget::audit_log(g, &a),
        Command::Copy(a) => copy::run(g, &a, interrupt),
        Command::AppendOnly { state } => forget::append_only(g, state.as_deref()),
        Command::Demo(a) => demo::run(g, &a, interrupt),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "lifeboat", &mut std::io::stdout());
            Ok(crate::exit::OK)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(crate::exit::OK)
        }
    }
}

/// Build a snapshot filter from the CLI flags.
pub fn filter(f: &crate::args::SnapshotFilter) -> Result<lifeboat_repository::snapshots::Filter> {
    let now = chrono::Utc::now();
    let time = |t: &Option<String>| t.as_deref().map(|t| lifeboat_ops::duration::parse_time(t, now)).transpose();
    Ok(lifeboat_repository::snapshots::Filter {
        tags: f.tags.clone(),
        host: f.host.clone(),
        source: f.source.clone(),
        paths: f.paths.clone(),
        since: time(&f.since)?,
        before: time(&f.before)?,
    })
}
