//! Command-line definitions (clap). Only shapes and help texts live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Lifeboat backs up every stateful part of a service into one encrypted, deduplicated,
/// compressed repository (restic format v2), proves the backups restore, and restores them.
#[derive(Parser, Debug)]
#[command(name = "lifeboat", version, about, long_about = None, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 ok, 1 failure, 2 usage error, 3 partial (some files unreadable), \
4 guarded restore refused, 10 repository missing, 11 repository locked, 12 wrong password, \
130 interrupted; `health`: 0 ok, 1 warning, 2 critical, 3 unknown.\n\
The password is never taken from the command line: use LIFEBOAT_PASSWORD, --password-file or --password-command.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// `--compression`: checked while parsing, so a bad value is a usage error (exit 2).
fn compression(s: &str) -> Result<String, String> {
    s.parse::<lifeboat_repository::Compression>().map(|_| s.to_string())
}

/// Options every command accepts (listed after each command's own options).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Config file (default: ./lifeboat.toml when it exists)
    #[arg(long, env = "LIFEBOAT_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Repository location: a directory (or `local:DIR`, `file:///DIR`), or S3:
    /// `s3:http://HOST:PORT/BUCKET/PREFIX`, `s3://BUCKET/PREFIX` (credentials from AWS_* variables)
    #[arg(short = 'r', long = "repo", env = "LIFEBOAT_REPOSITORY", global = true, value_name = "URL")]
    pub repo: Option<String>,
    /// Read the repository password from this file (first line)
    #[arg(long, env = "LIFEBOAT_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password
    #[arg(long, env = "LIFEBOAT_PASSWORD_COMMAND", global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Compression for new data: auto, max, off, or a zstd level 1-22 [default: auto]
    #[arg(long, env = "LIFEBOAT_COMPRESSION", global = true, value_name = "MODE", value_parser = compression)]
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
    /// When the repository is locked by another process, keep trying for this long (e.g. 30s, 10m)
    /// instead of failing at once with exit code 11
    #[arg(long, env = "LIFEBOAT_RETRY_LOCK", global = true, value_name = "DURATION")]
    pub retry_lock: Option<String>,
    /// Take no lock: for read-only commands (restore, check) on a repository this user cannot
    /// write (used automatically then, with a notice). Commands that write refuse it
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Read the repository without the local metadata cache (index files, snapshot files and
    /// tree packs kept under the cache directory). check, repair, verify and drills never use it
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Directory of the metadata caches, one per repository id [default: $CACHE_DIRECTORY under
    /// systemd, else $XDG_CACHE_HOME/lifeboat, else ~/.cache/lifeboat]
    #[arg(long, global = true, value_name = "DIR", env = "LIFEBOAT_CACHE_DIR")]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Read the repository as it was at this time (2026-11-20, "2026-11-20 14:30", RFC 3339, or
    /// a duration ago such as 6h): every object's version from then, read-only, no lock taken.
    /// For S3 buckets with versioning (Object Lock), after objects were deleted or overwritten
    #[arg(long, env = "LIFEBOAT_AS_OF", global = true, value_name = "TIME")]
    pub as_of: Option<String>,
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
    /// What changed between two snapshots: files added, removed, changed (and a text diff of command outputs)
    Diff(DiffArgs),
    /// Restore a snapshot: files into a directory, a database, a redis server, a stream
    #[command(after_help = RESTORE_HELP)]
    Restore(RestoreArgs),
    /// Per source: last backup against its RPO, last verification, last drill (exit 0 ok, 1 warning, 2 critical)
    #[command(after_help = HEALTH_HELP)]
    Health(HealthArgs),
    /// Run the config's probes now (or those named) and keep their values; `probe history NAME` shows the trend (exit 0 ok, 1 warning, 2 critical, 3 unknown)
    Probe(ProbeArgs),
    /// Report on a period: per source backups ok/failed, RPO compliance, sizes and growth, dedup, verifications, drills with RTO (table, --json, --html FILE)
    #[command(after_help = REPORT_HELP)]
    Report(ReportArgs),
    /// Check the repository for damage (names each damaged pack, blob, index or snapshot)
    Check(CheckArgs),
    /// Prove snapshots: structure, every blob read back (--read-data), a restore into a scratch target (--restore-test)
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Compare a backup's counts (rows per table, keys per database, messages per stream) with a live target
    #[command(after_help = COMPARE_HELP)]
    Compare(CompareArgs),
    /// Disaster-recovery drill: restore each source into scratch, verify, time it against its RTO, write a signed report
    #[command(after_help = DRILL_HELP)]
    Drill(DrillArgs),
    /// Check the storage the repository lives on (works before `init`, needs no password)
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Manage the repository's keys (passwords)
    #[command(subcommand)]
    Key(KeyCommand),
    /// Repair a damaged repository: `repair index` rebuilds the index from the packs
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Remove stale locks (or all locks with --remove-all)
    Unlock(UnlockArgs),
    /// Remove snapshots by a retention policy (or by id); with --prune also delete their data
    #[command(after_help = FORGET_EXAMPLES)]
    Forget(ForgetArgs),
    /// Delete data no snapshot uses any more and repack packs that are mostly unused
    Prune(PruneArgs),
    /// Apply every config source's retention policy, then prune (the nightly clean-up)
    ApplyRetention(ApplyRetentionArgs),
    /// Show the audit log (backups, restores, verifications, drills, forget/prune, copies, key and append-only changes); `audit verify` checks its hash chain
    Audit(AuditArgs),
    /// List recorded runs (backups, verifications, restore tests, drills, retention, copies, checks), failed ones too
    #[command(after_help = RUNS_HELP)]
    Runs(RunsArgs),
    /// Show the messages of recorded runs (errors, warnings, what each run did)
    Logs(LogsArgs),
    /// Copy snapshots into a second repository (3-2-1) without re-chunking; a second run copies nothing
    #[command(after_help = COPY_EXAMPLES)]
    Copy(CopyArgs),
    /// Replicate sqlite sources with `continuous = true` in the foreground: every transaction shipped within a fraction of a second (the daemon does the same)
    #[command(after_help = REPLICATE_HELP)]
    Replicate(ReplicateArgs),
    /// PostgreSQL `archive_command` of a `pitr = true` source: archive one WAL file (`lifeboat wal-push --source NAME %p`)
    WalPush(WalPushArgs),
    /// PostgreSQL `restore_command`: fetch one archived WAL file (`lifeboat wal-fetch --source NAME %f %p`); exit 1 when it was never archived, 126 on errors (recovery stops)
    WalFetch(WalFetchArgs),
    /// Show or set the repository's append-only mode (no forget, prune or key removal while on)
    AppendOnly {
        /// `on`, `off`, or nothing to show the current mode
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
    /// Run the config's schedules in the foreground: backups, retention, checks, verification, drills, copies; alerts, metrics, API
    #[command(after_help = DAEMON_HELP)]
    Daemon(DaemonArgs),
    /// Send a test alert to the config's [[notify]] targets
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// Next runs of the config's jobs, or the jobs as cron, systemd or Kubernetes files (no daemon)
    Schedule(ScheduleArgs),
    /// Back up, restore and verify a directory in a local repository: a self-contained tour
    Demo(DemoArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell
    Completions {
        /// Shell to generate completions for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into a directory
    Man {
        /// Write lifeboat.1, lifeboat-backup.1, … into this directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
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
    /// Only snapshots taken at or after TIME (2026-11-20, "2026-11-20 14:30", RFC 3339, or 24h = a day ago)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only snapshots taken before TIME (same forms as --since); e.g. the last clean one before an incident
    #[arg(long, value_name = "TIME")]
    pub before: Option<String>,
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
    /// Only snapshots whose latest verification passed
    #[arg(long, conflicts_with = "status")]
    pub verified_only: bool,
    /// Only snapshots whose latest verification had this result (`unverified`: never verified)
    #[arg(long, value_parser = ["ok", "failed", "partial", "unverified"])]
    pub status: Option<String>,
    /// Only the newest N of the snapshots that pass the other filters
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
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
    /// Show each file's SHA-256 of its whole content, from the stored data (as sha256sum prints it)
    #[arg(long)]
    pub hash: bool,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot (id, prefix, or "latest")
    pub first: String,
    /// The newer snapshot
    pub second: String,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, prefix, or "latest"
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub snapshot: Option<String>,
    /// Where to restore: a directory (created if missing), or the kind's target (see below)
    #[arg(long, short = 't', value_name = "TARGET", required_unless_present = "all", conflicts_with = "all")]
    pub target: Option<PathBuf>,
    /// Whole-service recovery: every source of the config (or --sources), in `after` order, each
    /// from its newest snapshot to its restore_target, its live data, or under --target-root
    #[arg(long)]
    pub all: bool,
    /// With --all: only these sources (comma-separated)
    #[arg(long, value_name = "A,B", value_delimiter = ',', requires = "all")]
    pub sources: Vec<String>,
    /// With --all: restore each source to a place of its own below DIR (databases: <source>_restored)
    #[arg(long, value_name = "DIR", requires = "all")]
    pub target_root: Option<PathBuf>,
    /// With --all: go on after a source failed (default: stop; later sources are not started)
    #[arg(long, requires = "all")]
    pub keep_going: bool,
    /// Only restore this path from the snapshot, and what is below it (repeatable)
    #[arg(long = "include", short = 'i', value_name = "PATH", conflicts_with = "all")]
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
    #[arg(long = "stream", value_name = "NAME", conflicts_with = "all")]
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
    /// Point-in-time recovery to this moment (RFC 3339 with fractional seconds, local
    /// "2026-11-20 13:55:00", or `latest`). postgres with `pitr = true`: from the newest base
    /// backup that ended before it, into a new data directory (--target); --verify replays it
    /// on a scratch port. sqlite with `continuous = true`: the database as of the last
    /// transaction seen committed at or before it, written atomically to --target
    #[arg(long, value_name = "TIME", conflicts_with = "all")]
    pub at: Option<String>,
    /// sqlite with `continuous = true`: the database as of this transaction id (as
    /// `lifeboat replicate` numbers them; `restore --at … --json` shows the one it reached)
    #[arg(long, value_name = "N", conflicts_with_all = ["all", "at"])]
    pub txid: Option<u64>,
    /// Go ahead with a guarded restore (a `protected` source, or the source's own live data);
    /// the source's name must also be typed at the prompt or given with --confirm
    #[arg(long)]
    pub force: bool,
    /// The source's name, confirming a guarded restore without a prompt (scripts, no terminal);
    /// with --all the names of every guarded source, comma-separated
    #[arg(long, value_name = "SOURCE")]
    pub confirm: Option<String>,
    /// files, command: after restoring, PATH (inside the snapshot) must have this SHA-256, else exit 1 (repeatable)
    #[arg(long = "checksum", value_name = "PATH=sha256:HEX", conflicts_with = "all", value_parser = lifeboat_service::restore::parse_checksum)]
    pub checksums: Vec<(String, String)>,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct ReplicateArgs {
    /// Sources to replicate (default: every source with `continuous = true`)
    pub sources: Vec<String>,
    /// How often the write-ahead log is read while transactions wait to be shipped; a
    /// transaction's recorded time (what restore --at compares) is when it was read, so a
    /// shorter interval gives finer times for more CPU. Also how often a quiet log is looked at
    /// where inotify is not available (with inotify, replication sleeps until the log is written)
    #[arg(long, value_name = "DURATION", default_value = "200ms")]
    pub interval: String,
    /// Ship transactions this long after the first write seen since the last shipment: one
    /// segment per shipment, so fewer, larger segments for less CPU; a transaction's lag
    /// stays below it
    #[arg(long, value_name = "DURATION", default_value = "200ms")]
    pub max_delay: String,
    /// Restart the write-ahead log once it holds this many frames (pages)
    #[arg(long, value_name = "FRAMES", default_value_t = 1000)]
    pub checkpoint_frames: u32,
}

const REPLICATE_HELP: &str = "\
Examples:
  lifeboat replicate                      # every sqlite source with `continuous = true`
  lifeboat replicate ledger --json        # one JSON object per event
  lifeboat restore latest --source ledger --at '2026-11-20 13:55:00' --target /tmp/ledger.db
  lifeboat restore latest --source ledger --txid 4711 --target /tmp/ledger.db

Each generation starts with a base snapshot (tagged replica-base). Replication sleeps until
the write-ahead log is written (inotify), then ships what was committed as one encrypted
segment --max-delay later; a transaction's recorded time is never before its commit and at
most --max-delay after it. Stopped with Ctrl-C or SIGTERM, or killed,
it goes on from the last shipped transaction when the write-ahead log still holds it, and
otherwise starts a new generation and says why. Exit codes: 0 stopped, 1 error, 2 usage.";

#[derive(Args, Debug)]
pub struct WalPushArgs {
    /// The `pitr = true` source the WAL belongs to
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// The WAL file (`%p`: a path relative to the data directory, or absolute)
    pub path: PathBuf,
}

#[derive(Args, Debug)]
pub struct WalFetchArgs {
    /// The `pitr = true` source the WAL belongs to
    #[arg(long, value_name = "NAME")]
    pub source: String,
    /// The WAL file's name (`%f`)
    pub name: String,
    /// Where to write it (`%p`)
    pub dest: PathBuf,
}

const RESTORE_HELP: &str = include_str!("../help/restore-help.txt");

const HEALTH_HELP: &str = include_str!("../help/health-help.txt");

const REPORT_HELP: &str = include_str!("../help/report-help.txt");

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The last 7 days (the default)
    #[arg(long)]
    pub week: bool,
    /// The last 30 days
    #[arg(long, conflicts_with = "week")]
    pub month: bool,
    /// Since this time: a duration ago (30d, 12h) or a date (2026-11-01, RFC 3339)
    #[arg(long, value_name = "TIME", conflicts_with_all = ["week", "month"])]
    pub since: Option<String>,
    /// Also write the report as one self-contained HTML file (inline CSS and SVG charts)
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Only this source (repeatable; default: every source of the config and the repository)
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Only this source (repeatable; default: every source of the config file)
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// A successful verification older than this is a warning
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub max_verification_age: String,
    /// A backup older than this percentage of the RPO is a warning
    #[arg(long, default_value_t = 80, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub rpo_warning: u8,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ProbeArgs {
    #[command(subcommand)]
    pub history: Option<ProbeCommand>,
    /// Only these probes (default: every `[[probe]]` of the config file)
    pub names: Vec<String>,
    /// Do not keep the values in the repository
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProbeCommand {
    /// A probe's kept values, the trend per day and when it reaches its critical threshold
    History {
        /// The probe
        name: String,
        /// Values since (a duration ago such as 30d, or a date)
        #[arg(long, default_value = "30d", value_name = "TIME")]
        since: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Write, read, list and delete a probe object under lifeboat/ and print each step's latency
    Test(StorageTestArgs),
    /// Total size, packs, blobs, dedup and compression ratios, size per source and growth per day
    Usage,
    /// Create the repository's S3 bucket, optionally with Object Lock and a default retention
    CreateBucket(CreateBucketArgs),
    /// S3 Object Lock: show the bucket's versioning and default retention; `set` it, or
    /// `extend` the lock of every object the repository holds (apply-retention does this too)
    #[command(after_help = LOCK_HELP)]
    Lock {
        /// What to do (nothing: show the status)
        #[command(subcommand)]
        action: Option<LockAction>,
    },
}

const LOCK_HELP: &str = include_str!("../help/lock-help.txt");

/// `storage create-bucket` options.
#[derive(Args, Debug)]
pub struct CreateBucketArgs {
    /// Enable Object Lock (and versioning); only possible when the bucket is created
    #[arg(long)]
    pub object_lock: bool,
    /// With --object-lock: lock every new object for this many days by default
    #[arg(long, value_name = "DAYS", requires = "object_lock", value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// governance (users with bypass permission may still delete) or compliance (nobody can)
    #[arg(long, default_value = "compliance", value_parser = ["governance", "compliance"], requires = "days")]
    pub mode: String,
}

/// `storage lock` actions.
#[derive(Subcommand, Debug)]
pub enum LockAction {
    /// Set the bucket's default retention for new objects (the bucket must have Object Lock)
    Set {
        /// Retention period in days
        #[arg(long, value_name = "DAYS", required_unless_present = "off", value_parser = clap::value_parser!(u32).range(1..))]
        days: Option<u32>,
        /// governance (users with bypass permission may still delete) or compliance (nobody can)
        #[arg(long, default_value = "compliance", value_parser = ["governance", "compliance"])]
        mode: String,
        /// Remove the default retention (objects already written stay locked)
        #[arg(long, conflicts_with = "days")]
        off: bool,
    },
    /// Lock every current object of the repository until now + DAYS (default: the bucket's
    /// default retention); versions locked longer are left as they are
    Extend {
        /// Days from now [default: the bucket's default retention]
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        days: Option<u32>,
        /// Lock mode [default: the bucket's default retention mode, else compliance]
        #[arg(long, value_parser = ["governance", "compliance"])]
        mode: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct StorageTestArgs {
    /// Size of the probe object: bytes, or with a K, M or G suffix (powers of 1024)
    #[arg(long, default_value = "4M", value_parser = parse_size, value_name = "SIZE")]
    pub size: u64,
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
    Add(AddKeyArgs),
    /// Remove a key (not the one in use)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password of the key in use
    Passwd(NewPassword),
    /// Rotate the key in use: add a key for the new password, prove it opens the repository, remove the old key
    Rotate(NewPassword),
    /// Re-encrypt everything under a NEW master key: copy into a fresh repository, verify it, optionally swap it in
    #[command(after_help = ROTATE_MASTER_HELP)]
    RotateMaster(RotateMasterArgs),
}

const ROTATE_MASTER_HELP: &str = include_str!("../help/rotate-master-help.txt");

#[derive(Args, Debug)]
pub struct RotateMasterArgs {
    /// Where to create the re-encrypted repository (must not exist yet)
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Local repositories only: afterwards, move the old repository aside and the new one into its place
    #[arg(long)]
    pub swap: bool,
    #[command(flatten)]
    pub new: NewPassword,
}

#[derive(Args, Debug)]
pub struct NewPassword {
    /// Read the new password from this file
    #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE", value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AddKeyArgs {
    #[command(flatten)]
    pub new: NewPassword,
    /// scrypt cost N of the new key (default 32768). Below that, only for a random password of
    /// 32 characters or more (stretching adds nothing to one): an archiver's key, so that each
    /// `wal-push` does not spend ~100 ms deriving it
    #[arg(long, value_name = "N")]
    pub kdf_n: Option<u32>,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones (only when no other lifeboat/restic is running!)
    #[arg(long)]
    pub remove_all: bool,
}

const DAEMON_HELP: &str = include_str!("../help/daemon-help.txt");

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// Log lines as text or one JSON object per line
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Listen here instead of [server] listen (e.g. 127.0.0.1:9848)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// show: next run of each job; print: the files on stdout; install/uninstall: into --dir
    #[arg(value_parser = ["show", "print", "install", "uninstall"], default_value = "show")]
    pub action: String,
    /// For print/install: cron (one /etc/cron.d file), systemd (service + timer per job),
    /// kubernetes (a CronJob per job), kubernetes-daemon (a Deployment running the daemon)
    #[arg(long, value_parser = ["cron", "systemd", "kubernetes", "kubernetes-daemon"], default_value = "systemd")]
    pub format: String,
    /// Short for --format systemd
    #[arg(long, conflicts_with_all = ["cron", "kubernetes"])]
    pub systemd: bool,
    /// Short for --format cron
    #[arg(long, conflicts_with = "kubernetes")]
    pub cron: bool,
    /// Short for --format kubernetes
    #[arg(long)]
    pub kubernetes: bool,
    /// install/uninstall: where (default /etc/systemd/system or /etc/cron.d)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The lifeboat binary the jobs run
    #[arg(long, default_value = "/usr/local/bin/lifeboat", value_name = "PATH")]
    pub binary: String,
    /// The user the jobs run as (cron, systemd)
    #[arg(long, default_value = "root")]
    pub user: String,
    /// The container image (kubernetes)
    #[arg(long, default_value = "lifeboat:latest")]
    pub image: String,
}

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a test alert to every [[notify]] target, or to the one named
    Test {
        /// A target's name (default: all)
        name: Option<String>,
    },
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

const FORGET_EXAMPLES: &str = include_str!("../help/forget-examples.txt");

/// Keep rules of a retention policy.
#[derive(Args, Debug, Default, Clone)]
pub struct KeepRules {
    /// Keep the newest N snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have one
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot younger than this, measured from the group's newest (e.g. 30d, 1y)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep every snapshot with this tag, forever (repeatable)
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
}

/// How prune repacks.
#[derive(Args, Debug, Clone)]
pub struct PruneOpts {
    /// Repack a pack when less than this percentage of it is still used (0 = never repack)
    #[arg(long, value_name = "PERCENT", default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub repack_below: u8,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove by id or prefix (instead of a policy)
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub keep: KeepRules,
    #[command(flatten)]
    pub filter: SnapshotFilter,
    /// Show every snapshot with the rule that keeps it, or "remove"; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also delete the data only the removed snapshots used (runs prune)
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_opts: PruneOpts,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// State the packs and bytes that would be deleted and repacked; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    #[command(flatten)]
    pub opts: PruneOpts,
}

#[derive(Args, Debug)]
pub struct ApplyRetentionArgs {
    /// Show what each source's policy keeps and removes, and what prune would free; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Only forget; leave the data for a later prune
    #[arg(long)]
    pub no_prune: bool,
    #[command(flatten)]
    pub opts: PruneOpts,
}

const COPY_EXAMPLES: &str = include_str!("../help/copy-examples.txt");

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Snapshots to copy (ids, prefixes or "latest"; default: every snapshot matching the filters)
    pub snapshots: Vec<String>,
    /// Destination: a [[copy]] name from the config file, or a repository URL
    #[arg(long, value_name = "NAME|URL")]
    pub to: String,
    /// Create the destination if it does not exist (with this repository's chunker parameters)
    #[arg(long)]
    pub init: bool,
    /// Read the destination's password from this file
    #[arg(long, env = "LIFEBOAT_TO_PASSWORD_FILE", value_name = "FILE")]
    pub to_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub filter: SnapshotFilter,
    /// Show what would be copied; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

const RUNS_HELP: &str = include_str!("../help/runs-help.txt");

#[derive(Args, Debug)]
pub struct RunsArgs {
    /// Only runs of this source
    #[arg(long)]
    pub source: Option<String>,
    /// Only failed runs
    #[arg(long)]
    pub failed: bool,
    /// Only runs that started at or after TIME (24h = a day ago, 2026-11-20, RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only runs of this kind
    #[arg(long, value_parser = ["backup", "verify", "restore_test", "drill", "apply_retention", "copy", "check", "restore"])]
    pub kind: Option<String>,
    /// Only the newest N
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only messages of runs that started at or after TIME (default: 24h)
    #[arg(long, value_name = "TIME", default_value = "24h")]
    pub since: String,
    /// Only messages at this level or worse
    #[arg(long, value_parser = ["error", "warning", "info"], default_value = "info")]
    pub level: String,
    /// Only the last N messages
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Only messages of runs of this source
    #[arg(long)]
    pub source: Option<String>,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: Option<AuditCommand>,
    /// Only events at or after TIME (2026-11-20, RFC 3339, or 30d = thirty days ago)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: exit 1 naming the first broken link (a record deleted, edited or moved)
    Verify {
        /// Checkpoints must be signed by this key (public or secret key file) [default: [drill] signing_key]
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

const VERIFY_HELP: &str = include_str!("../help/verify-help.txt");

const COMPARE_HELP: &str = include_str!("../help/compare-help.txt");

const DRILL_HELP: &str = include_str!("../help/drill-help.txt");

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Snapshot id, prefix or "latest" (default: the newest snapshot of each source)
    pub snapshot: Option<String>,
    /// Every snapshot the filters select (e.g. --all --since 7d)
    #[arg(long, conflicts_with = "snapshot")]
    pub all: bool,
    /// Read back and hash-check every blob the snapshots use
    #[arg(long)]
    pub read_data: bool,
    /// Restore into a scratch target and run the kind's native verification
    #[arg(long)]
    pub restore_test: bool,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Snapshot id, prefix, or "latest"
    pub snapshot: String,
    /// The live target: a database name or file, redis://HOST:PORT[/DB], nats://HOST:PORT[/STREAM]
    pub target: String,
    #[command(flatten)]
    pub filter: SnapshotFilter,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub command: Option<DrillCommand>,
    #[command(flatten)]
    pub run: DrillRunArgs,
}

#[derive(Args, Debug)]
pub struct DrillRunArgs {
    /// Only this source of the config file (default: every source)
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Every source of the config file (the default)
    #[arg(long, conflicts_with = "source")]
    pub all: bool,
    /// Restore this snapshot (id or prefix) instead of the source's latest (with --source)
    #[arg(long, value_name = "ID", requires = "source")]
    pub snapshot: Option<String>,
    /// Where to write report.json and report.html (default: ./lifeboat-drill-TIME)
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
    /// Ed25519 key file to sign the report with (from `lifeboat drill keygen`)
    #[arg(long, env = "LIFEBOAT_DRILL_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Restore a random snapshot of each source instead of its newest (old ones must restore too)
    #[arg(long, visible_alias = "random", conflicts_with = "snapshot")]
    pub random_snapshot: bool,
}

#[derive(Subcommand, Debug)]
pub enum DrillCommand {
    /// Make an Ed25519 key pair for signing reports: FILE (secret, mode 0600) and FILE.pub
    Keygen {
        /// Secret key file to create (never replaced); the public key goes to FILE.pub
        #[arg(long, default_value = "lifeboat-drill.key", value_name = "FILE")]
        out: PathBuf,
    },
    /// Check a report's signature and name every field changed since it was signed
    CheckReport {
        /// The report.json a drill wrote
        file: PathBuf,
        /// The public key the report must be signed with (FILE.pub from keygen)
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

/// Parses a size such as `4M`, `512K`, `16MiB` or `1000` (bytes) for `--size`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().map_err(|_| format!("invalid size {s:?} (examples: 4M, 512K, 1000)"))?;
    let unit: u64 = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => return Err(format!("invalid size {s:?}: unknown unit {u:?} (use K, M or G)")),
    };
    let bytes = n.checked_mul(unit).ok_or_else(|| format!("size {s:?} is too large"))?;
    if bytes > 1 << 30 {
        return Err(format!("size {s:?} is too large (at most 1G)"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("2G").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("M").is_err());
    }
}

/// `lifeboat repair …`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers (after an index file was deleted or damaged)
    Index(RepairIndexArgs),
    /// Write copies of damaged snapshots without their lost files (tagged `repaired`; originals kept unless --forget)
    Snapshots(RepairSnapshotsArgs),
    /// Salvage the readable blobs of damaged packs into new packs, then delete the damaged packs
    Packs(RepairPacksArgs),
}

/// `lifeboat repair packs`
#[derive(Args, Debug)]
pub struct RepairPacksArgs {
    /// Damaged packs (full ids, as `check` names them); default: read every pack and take the damaged ones
    pub packs: Vec<String>,
    /// Show what would be salvaged and lost; write and delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// `lifeboat repair snapshots`
#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Snapshots to repair (ids or prefixes); default: every snapshot
    pub snapshots: Vec<String>,
    /// Show what would change; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Remove each original once its repaired copy is saved
    #[arg(long)]
    pub forget: bool,
    /// Also read every data blob the snapshots use: damaged blobs count as lost, not only missing ones
    #[arg(long)]
    pub read_data: bool,
}

/// `lifeboat repair index`
#[derive(Args, Debug)]
pub struct RepairIndexArgs {
    /// Show what would change; write and delete nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Read the header of every pack, also of packs an intact index file describes
    #[arg(long)]
    pub read_all_packs: bool,
}
