//! One module per command; `run` dispatches and returns the exit code.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use crate::args::{Cli, Command};

mod backup;
mod check;
mod demo;
mod init;
mod key;
mod ls;
mod restore;
mod snapshots;
pub mod sources;

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
        Command::Check(a) => check::run(g, &a, interrupt),
        Command::Key(k) => key::run(g, k),
        Command::Unlock(a) => key::unlock(g, &a),
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
pub fn filter(f: &crate::args::SnapshotFilter) -> lifeboat_repository::snapshots::Filter {
    lifeboat_repository::snapshots::Filter {
        tags: f.tags.clone(),
        host: f.host.clone(),
        source: f.source.clone(),
        paths: f.paths.clone(),
    }
}
