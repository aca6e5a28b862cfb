//! Command-line definitions (clap). Only shapes and help texts live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Lifeboat backs up every stateful part of a service into one encrypted, deduplicated,
/// compressed repository (restic format v2), proves the backups restore, and restores them.
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, long_about = None, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok, 1 failure, 2 usage error, 3 partial (some files unreadable), \
10 repository missing, 11 repository locked, 12 wrong password, 130 interrupted.\n\
The password is never taken from the command line: use LIFEBOAT_PASSWORD, --password-file or --password-command.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Config file (default: ./lifeboat.toml when it exists)
    #[arg(long, env = "LIFEBOAT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository location: a directory (or `local:DIR`, `file:///DIR`)
    #[arg(short = 'r', long = "repo", env = "LIFEBOAT_REPOSITORY", global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the repository password from this file (first line)
    #[arg(long, env = "LIFEBOAT_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password
    #[arg(long, env = "LIFEBOAT_PASSWORD_COMMAND", global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Compression for new data: auto, max, off, or a zstd level 1-22 [default: auto]
    #[arg(long, env = "LIFEBOAT_COMPRESSION", global = true, value_name = "MODE")]
    pub compression: Option<String>,
    /// Print machine-readable JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors (no progress, no summary)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail (e.g. every file that could not be read)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files and directories, or the sources of the config file, into new snapshots
    Backup(BackupArgs),
    /// List the config file's sources with their last backup
    Sources,
    /// Work with the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List files in a snapshot
    Ls(LsArgs),
    /// Restore a snapshot into a directory
    Restore(RestoreArgs),
    /// Check the repository for damage (names each damaged pack, blob, index or snapshot)
    Check(CheckArgs),
    /// Manage the repository's keys (passwords)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove stale locks (or all locks with --remove-all)
    Unlock(UnlockArgs),
    /// Back up, restore and verify a directory in a local repository: a self-contained tour
    Demo(DemoArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell
    Completions {
        /// Shell to generate completions for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout
    Man,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// scrypt cost parameter N for the first key (power of two; restic uses 32768)
    #[arg(long, default_value_t = 32768, hide = true)]
    pub kdf_n: u32,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Only snapshots with this tag (repeatable; all must match)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots from this host
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots of this config source
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Parse and validate the config file; print its sources
    Check,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up, or names of sources from the config file
    #[arg(value_name = "PATH|SOURCE", required_unless_present = "all")]
    pub paths: Vec<PathBuf>,
    /// Back up every source of the config file (each into its own snapshot)
    #[arg(long, conflicts_with = "paths")]
    pub all: bool,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Exclude paths matching this glob (repeatable); without '/' it matches file names anywhere
    #[arg(long = "exclude", short = 'e', value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Stay on the file system of each path (mount points are kept, empty)
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Host name to record (default: this host)
    #[arg(long)]
    pub host: Option<String>,
    /// Use this snapshot as parent instead of the latest one with the same paths
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id, prefix, or "latest"
    pub snapshot: String,
    /// Only list below this path inside the snapshot
    pub path: Option<String>,
    /// Long listing: mode, owner, size, modification time
    #[arg(short, long)]
    pub long: bool,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, prefix, or "latest"
    pub snapshot: String,
    /// Directory to restore into (created if missing)
    #[arg(long, short = 't', value_name = "DIR")]
    pub target: PathBuf,
    /// Only restore this path from the snapshot, and what is below it (repeatable)
    #[arg(long = "include", short = 'i', value_name = "PATH")]
    pub include: Vec<String>,
    /// Show what would be restored without writing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Allow restoring into a non-empty target, replacing files that exist there
    #[arg(long)]
    pub overwrite: bool,
    /// Read restored files back and compare them with the snapshot
    #[arg(long)]
    pub verify: bool,
    /// nats: restore only this stream of the backup (repeatable; default: every stream)
    #[arg(long = "stream", value_name = "NAME")]
    pub streams: Vec<String>,
    /// nats: only messages stored at or after TIME (RFC 3339, e.g. 2024-01-15T00:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// nats: only messages stored before TIME (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// postgres: first apply the snapshot's roles and tablespaces (globals.sql) to the server
    #[arg(long)]
    pub globals: bool,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read every pack and verify every blob (slow: reads the whole repository)
    #[arg(long)]
    pub read_data: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List keys
    List,
    /// Add a key; the new password comes from LIFEBOAT_NEW_PASSWORD, --new-password-file or a prompt
    Add(NewPassword),
    /// Remove a key (not the one in use)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password of the key in use
    Passwd(NewPassword),
}

#[derive(Args, Debug)]
pub struct NewPassword {
    /// Read the new password from this file
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones (only when no other lifeboat/restic is running!)
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory to back up (default: this program's own source tree if present, else /usr/share/doc)
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to keep the demo repository (default: ./lifeboat-demo)
    #[arg(long, default_value = "lifeboat-demo")]
    pub workdir: PathBuf,
}
