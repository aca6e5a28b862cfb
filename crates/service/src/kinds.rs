//! Source kinds: one module per kind implements [`Source`] once — back up, restore (with its
//! plan), restore test into a scratch target, compare with a live target, and where its live data
//! is for the guard. [`REGISTRY`] maps kind names to implementations; no other code looks at kind
//! names.
//!
//! Adding a kind: a module here with a settings struct (`#[derive(Deserialize, Default)]`, its
//! fields are the kind's config fields) implementing [`Settings`] and [`Source`], and one line in
//! [`REGISTRY`]. See docs/architecture.md.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lifeboat_format::{Node, SourceInfo};
use lifeboat_ops::guard::Location;
use lifeboat_ops::verify::RestoreTest;
use lifeboat_repository::archiver::{BackupStats, Entry, ManifestHook};
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, ServiceError};
use crate::plan::Plan;
use crate::progress::Observer;

pub mod command;
pub mod files;
mod introspect;
pub mod mariadb;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod sqlite;

/// A kind of source: its name, its config fields, and how to read its settings.
pub trait Kind: Sync {
    /// The name used in `kind = "…"` and recorded in snapshots.
    fn name(&self) -> &'static str;
    /// The kind's own config fields (beyond [`crate::config::COMMON_FIELDS`]).
    fn fields(&self) -> &'static [&'static str];
    /// Read the kind's settings from its `[[source]]` table.
    fn parse(&self, de: toml::de::ValueDeserializer<'_>) -> Result<Box<dyn Source>, toml::de::Error>;
    /// Settings for a snapshot whose source is not in the config: the local defaults.
    fn defaults(&self) -> Box<dyn Source>;
}

/// A kind's settings struct: its fields are the kind's config fields.
pub trait Settings: Source + DeserializeOwned + Default + 'static {
    /// The kind's name.
    const NAME: &'static str;
}

/// The [`Kind`] of a settings type.
pub struct KindOf<T>(PhantomData<fn() -> T>);

impl<T: Settings> Kind for KindOf<T> {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn fields(&self) -> &'static [&'static str] {
        introspect::fields_of::<T>()
    }

    fn parse(&self, de: toml::de::ValueDeserializer<'_>) -> Result<Box<dyn Source>, toml::de::Error> {
        Ok(Box::new(T::deserialize(de)?))
    }

    fn defaults(&self) -> Box<dyn Source> {
        Box::new(T::default())
    }
}

/// Every kind this build knows, in the order help texts list them.
pub static REGISTRY: &[&dyn Kind] = &[
    &KindOf::<files::Files>(PhantomData),
    &KindOf::<command::Command>(PhantomData),
    &KindOf::<sqlite::Sqlite>(PhantomData),
    &KindOf::<postgres::Postgres>(PhantomData),
    &KindOf::<mariadb::Mariadb>(PhantomData),
    &KindOf::<redis::Redis>(PhantomData),
    &KindOf::<nats::Nats>(PhantomData),
];

/// Every kind.
pub fn all() -> &'static [&'static dyn Kind] {
    REGISTRY
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// The names of every kind.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|k| k.name()).collect()
}

/// The kind of a snapshot: its source's kind, or `files` for a plain backup of paths.
pub fn of_snapshot(snap: &SnapshotEntry) -> Result<&'static dyn Kind> {
    match &snap.snapshot.source {
        None => Ok(REGISTRY[0]),
        Some(s) => kind(&s.kind).ok_or_else(|| {
            ServiceError::msg(format!(
                "snapshot {} is of a {:?} source, which this version does not know",
                snap.id.short(),
                s.kind
            ))
        }),
    }
}

/// What a source's backup hands the engine.
pub struct Generated {
    /// Snapshot paths.
    pub paths: Vec<String>,
    /// The entries (a walk of files, or generated data that streams when read).
    pub entries: Box<dyn Iterator<Item = Entry>>,
    /// The manifest, when known before the data is read.
    pub manifest: Option<serde_json::Value>,
    /// Produces (or completes) the manifest once the data is read.
    pub finish: Option<ManifestHook>,
    /// Exclude patterns recorded in the snapshot.
    pub excludes: Vec<String>,
    /// Chunk sizes for generated files (database dumps); `None` for the repository's.
    pub chunk_sizes: Option<(u32, u32, u32)>,
    /// Files whose total size a second walk can tell in advance (for progress with an ETA).
    pub scan: Option<lifeboat_sources::files::FilesOptions>,
}

impl From<lifeboat_sources::Started> for Generated {
    /// A started backup whose manifest is produced only once the data is read.
    fn from(s: lifeboat_sources::Started) -> Generated {
        Generated {
            paths: s.paths,
            entries: Box::new(s.entries),
            manifest: None,
            finish: Some(s.finish),
            excludes: Vec::new(),
            chunk_sizes: None,
            scan: None,
        }
    }
}

/// Hands a source's [`Generated`] to the engine; the source keeps what the data needs (a
/// temporary copy, a dump directory) alive until it returns.
pub type Archive<'a> = dyn FnMut(Generated) -> Result<BackupStats> + 'a;

/// What a restore was asked to do (the command line's restore options).
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// The target as given (a directory, a file, a database name, a URL).
    pub target: PathBuf,
    /// Only these paths of a file snapshot.
    pub include: Vec<String>,
    /// Replace what is there.
    pub overwrite: bool,
    /// Check the restored data afterwards.
    pub verify: bool,
    /// nats: only these streams.
    pub streams: Vec<String>,
    /// nats: messages stored at or after this time.
    pub from: Option<String>,
    /// nats: messages stored before this time.
    pub until: Option<String>,
    /// postgres: apply the snapshot's roles and tablespaces first.
    pub globals: bool,
    /// files and command: `(path inside the snapshot, hex SHA-256)` each restored file must have.
    pub checksums: Vec<(String, String)>,
    /// Point-in-time recovery to this time (`--at`, as given; the service resolves it into
    /// [`RestoreRequest::pitr`]).
    pub at: Option<String>,
    /// Point-in-time recovery up to and including this transaction id (`--txid`, continuous
    /// sqlite sources).
    pub txid: Option<u64>,
    /// Point-in-time recovery, resolved by the service (kinds read this, not `at`).
    pub pitr: Option<Pitr>,
}

/// A point-in-time restore as the service resolved it.
#[derive(Clone, Debug)]
pub struct Pitr {
    /// Replay to this time (`None`: to the end of the archive).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Replay up to and including this transaction (continuous sqlite sources).
    pub txid: Option<u64>,
    /// The command a restored server runs to fetch archived WAL (this program with the same
    /// config or repository), to which the kind appends `wal-fetch --source NAME %f %p`.
    pub fetch: String,
}

impl RestoreRequest {
    /// The target as text.
    pub fn target_text(&self) -> String {
        self.target.to_string_lossy().into_owned()
    }
}

/// What running a restore needs besides the plan.
pub struct RunContext {
    /// Set on Ctrl-C / SIGTERM.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Progress events.
    pub observer: Arc<Observer>,
}

/// The second half of a restore, run after the plan passed the guard.
pub type RunRestore<'a> = Box<dyn FnOnce(&RunContext) -> Result<Restored> + 'a>;

/// A restore ready to run: its plan (for `--dry-run` and the guard) and the work.
pub struct PreparedRestore<'a> {
    /// What it will do.
    pub plan: Plan,
    /// Does it.
    pub run: RunRestore<'a>,
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// For `--json`.
    pub json: serde_json::Value,
    /// For people, one line each.
    pub lines: Vec<String>,
    /// Things the restore could not do exactly (printed as warnings).
    pub warnings: Vec<String>,
    /// Differences `--verify` found between the restored data and the manifest.
    pub mismatches: Vec<String>,
    /// What the mismatches are about (`database`, `keys`, `stream`).
    pub what: &'static str,
    /// Files not restored because their data is damaged (path, blob, pack); the rest was.
    pub failed: Vec<String>,
}

impl Restored {
    /// An error when `--verify` found differences.
    pub fn check(&self) -> Result<()> {
        if self.mismatches.is_empty() {
            return Ok(());
        }
        Err(ServiceError::msg(format!(
            "restored {} does not match the backup's manifest ({} differences)",
            self.what,
            self.mismatches.len()
        )))
    }
}

/// One compared count of `compare`.
#[derive(Debug, Serialize)]
pub struct Row {
    /// Table, database or stream (and what is counted when not obvious).
    pub name: String,
    /// In the backup's manifest (`None`: not in the backup).
    pub backup: Option<u64>,
    /// In the live target (`None`: missing there).
    pub live: Option<u64>,
    /// Whether they are equal.
    pub ok: bool,
}

impl Row {
    /// A row; `ok` when both sides agree.
    pub fn new(name: String, backup: Option<u64>, live: Option<u64>) -> Row {
        Row { name, ok: backup == live, backup, live }
    }
}

/// Rows for counts keyed by name (tables); names on either side only are rows too.
pub fn rows(
    backup: &std::collections::BTreeMap<String, u64>,
    live: &std::collections::BTreeMap<String, u64>,
) -> Vec<Row> {
    let mut names: Vec<&String> = backup.keys().chain(live.keys()).collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| Row::new(n.clone(), backup.get(n).copied(), live.get(n).copied())).collect()
}

/// What `compare` found.
#[derive(Debug)]
pub struct Comparison {
    /// What a row is (`table`, `database`, `stream`).
    pub what: &'static str,
    /// The rows.
    pub rows: Vec<Row>,
}

/// A configured source of one kind (or a kind's defaults, for a snapshot whose source is not in
/// the config). Every operation on data of the kind goes through here.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// The kind's name.
    fn kind(&self) -> &'static str;

    /// Rules across fields, checked when the config is read (`name` is the source's name).
    fn validate(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    /// Back up: produce the entries and manifest and hand them to `archive`.
    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats>;

    /// Prepare a restore of `snap` (a snapshot of this kind) as `req` asks.
    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>>;

    /// Restore `snap` into a scratch target made below `tmp` (or on the source's servers) and
    /// verify it natively, then hand the target to `check` (the source's `verify_command`) and
    /// keep its outcome in [`RestoreTest::verify_command`]; the target is gone afterwards. `Err`
    /// is one problem that stopped it.
    fn restore_test(
        &self,
        name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found;

    /// Compare the snapshot's manifest counts with a live `target`.
    fn compare(&self, _name: &str, _repo: &Repository, snap: &SnapshotEntry, _target: &str) -> Result<Comparison> {
        Err(ServiceError::msg(format!(
            "snapshot {} is of a {} source, which has no counts to compare",
            snap.id.short(),
            self.kind()
        )))
    }

    /// Whether [`Source::compare`] is implemented.
    fn compares(&self) -> bool {
        false
    }

    /// Where `restore --all` restores the source, as `--target` would name it: a place of its own
    /// below `root` (`--target-root`) when given, else its own live data. `None`: the kind has
    /// no such place (the source needs `restore_target`, or cannot go under a directory).
    fn whole_restore_target(&self, _name: &str, _root: Option<&Path>) -> Result<Option<String>> {
        Ok(None)
    }

    /// Where the configured source's live data is, for the guard: `None` when Lifeboat cannot
    /// know (a command's output, a redis RDB whose server file is not configured).
    fn live_location(&self, name: &str) -> Result<Option<Location>>;

    /// The database file of a source replicated continuously (`lifeboat replicate`, the
    /// daemon); `None` for every other source.
    fn continuous(&self, _name: &str) -> Result<Option<std::path::PathBuf>> {
        Ok(None)
    }
}

/// Runs a source's `verify_command` against a restore test's scratch target (a directory, a
/// file, a database name); `None` when the source has none.
pub type TargetCheck<'a> = dyn Fn(&str) -> Option<lifeboat_ops::records::HookRun> + 'a;

/// What a restore test returns; `Err` is one problem that stopped it.
pub type Found = std::result::Result<RestoreTest, String>;

/// A passed (or failed, with `problems`) restore test.
pub fn tested(target: String, problems: Vec<String>, details: serde_json::Value) -> Found {
    Ok(RestoreTest { target, problems, details, ..Default::default() })
}

/// A restore test that could not be done here (partial).
pub fn skipped(target: &Path, e: impl std::fmt::Display) -> Found {
    Ok(RestoreTest { target: target.display().to_string(), skipped: vec![e.to_string()], ..Default::default() })
}

/// The snapshot's source and its manifest, decoded as the kind's manifest type.
pub fn manifest_of<T: DeserializeOwned>(snap: &SnapshotEntry) -> Result<(&SourceInfo, T)> {
    let src = snap.snapshot.source.as_ref().ok_or_else(|| ServiceError::msg("snapshot has no source"))?;
    let manifest = serde_json::from_value(src.manifest.clone().unwrap_or_default()).map_err(|e| {
        ServiceError::msg(format!("snapshot {} has no usable {} manifest: {e}", snap.id.short(), src.kind))
    })?;
    Ok((src, manifest))
}

/// The generated file of a database-like snapshot: stored at the root, under its file name.
pub fn artifact(repo: &Repository, snap: &SnapshotEntry, file: &str) -> Result<Node> {
    lifeboat_repository::tree::find_node(repo, &snap.snapshot.tree, file)?
        .ok_or_else(|| ServiceError::msg(format!("snapshot {} does not contain {file}", snap.id.short())))
}

/// A setting with `${VAR}` substituted (errors name the source, never the value).
pub fn setting(name: &str, v: &Option<String>) -> Result<Option<String>> {
    v.as_deref().map(|x| crate::vars::substitute(x, &format!("source {name}"))).transpose()
}

/// A scratch directory for a restore test.
pub fn scratch_dir(tmp: Option<&Path>) -> std::result::Result<tempfile::TempDir, String> {
    lifeboat_ops::verify::scratch::dir(tmp)
}

/// A postgres or mariadb client connection from a source's settings, secrets substituted.
pub fn client_connection(
    name: &str,
    host: &Option<String>,
    port: Option<u16>,
    user: &Option<String>,
    password: &Option<String>,
    bin_dir: &Option<String>,
) -> Result<lifeboat_sources::client::Connection> {
    Ok(lifeboat_sources::client::Connection {
        host: setting(name, host)?,
        port,
        user: setting(name, user)?,
        password: setting(name, password)?,
        bin_dir: setting(name, bin_dir)?,
    })
}

/// A database name for `restore --all --target-root`: the source's name with `_restored`, in
/// letters, digits and `_`.
pub fn restored_database(name: &str) -> String {
    let base: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{base}_restored")
}

/// `root/<source name>`, as text.
pub fn under(root: &Path, name: &str) -> String {
    root.join(name).display().to_string()
}

/// A postgres or mariadb connection's server, for plans and the guard.
pub fn server_of(conn: &lifeboat_sources::client::Connection, default_port: u16) -> lifeboat_ops::guard::Server {
    lifeboat_ops::guard::Server::new(conn.host.as_deref(), conn.port.unwrap_or(default_port))
}
