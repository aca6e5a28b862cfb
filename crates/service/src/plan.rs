//! What a restore will do, in one shape for every kind: shown by `--dry-run` (a table, or
//! `--json`) and quoted by the guard when it refuses a restore.

use std::path::Path;

use lifeboat_format::Id;
use lifeboat_ops::guard::{Location, Reason, Server};
use lifeboat_repository::restorer::RestoreStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use serde::Serialize;

use crate::human::{count, size};

/// One thing a restore does.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// `write`, `replace`, `delete`, `drop-database`, `create-database`, `load`,
    /// `apply-globals`, `restore-keys`, `write-file`, `replace-file`, `create-stream`,
    /// `replace-stream`.
    pub action: &'static str,
    /// In words, as a verb phrase (`drop database app on localhost:5432`).
    pub what: String,
    /// Bytes written by the step, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// Why a restore is guarded and how to go ahead.
#[derive(Debug, Serialize)]
pub struct Guarded {
    /// Why.
    pub reasons: Vec<Reason>,
    /// The flags a real run needs.
    pub rerun_with: String,
}

/// A restore's plan.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// Always true in printed plans (the same object is used before real runs).
    pub dry_run: bool,
    /// Snapshot restored.
    pub snapshot: Id,
    /// Its source, if it has one.
    pub source: Option<String>,
    /// Source kind (`files` for plain file snapshots).
    pub kind: String,
    /// The target as given.
    pub target: String,
    /// What happens, in order.
    pub steps: Vec<Step>,
    /// Bytes of backed-up data restored.
    pub bytes: u64,
    /// What would make a real run fail (e.g. a non-empty target without `--overwrite`).
    pub blockers: Vec<String>,
    /// What `--verify` checks afterwards (`None` without `--verify`).
    pub verify: Option<String>,
    /// Set when the restore is guarded.
    pub guarded: Option<Guarded>,
    /// Kind-specific details (tables, keys per database, streams, the engine's counts).
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
    /// Where the restore writes, for the guard.
    #[serde(skip)]
    pub writes_to: Option<Location>,
    /// The first line of the human output.
    #[serde(skip)]
    pub headline: String,
}

impl Plan {
    /// An empty plan for `snap` into `target`.
    pub fn new(snap: &SnapshotEntry, target: impl Into<String>) -> Plan {
        let src = snap.snapshot.source.as_ref();
        Plan {
            dry_run: true,
            snapshot: snap.id,
            source: src.map(|s| s.name.clone()),
            kind: src.map(|s| s.kind.clone()).unwrap_or_default(),
            target: target.into(),
            steps: Vec::new(),
            bytes: 0,
            blockers: Vec::new(),
            verify: None,
            guarded: None,
            details: serde_json::Map::new(),
            writes_to: None,
            headline: String::new(),
        }
    }

    /// Add a step.
    pub fn step(&mut self, action: &'static str, what: impl Into<String>, bytes: Option<u64>) -> &mut Self {
        self.steps.push(Step { action, what: what.into(), bytes });
        self
    }

    /// Add a kind-specific detail (kept under its own key in the JSON).
    pub fn detail(&mut self, key: &str, value: impl Serialize) -> &mut Self {
        self.details.insert(key.to_string(), serde_json::to_value(value).unwrap_or_default());
        self
    }

    /// The steps as one sentence: `would drop database app …, then load app.dump …`.
    pub fn summary(&self) -> String {
        let steps: Vec<&str> = self.steps.iter().map(|s| s.what.as_str()).collect();
        format!("restoring snapshot {} would {}", self.snapshot.short(), steps.join(", then "))
    }

    /// The plan for people: a headline, a table of steps with sizes, what `--verify` checks,
    /// what blocks a real run, and why it is guarded.
    pub fn lines(&self) -> Vec<String> {
        let headline = if self.headline.is_empty() {
            format!("would restore {} to {}:", self.subject(), self.target)
        } else {
            self.headline.clone()
        };
        let mut out = vec![headline, format!("  {:<16} {:>10}  WHAT", "ACTION", "SIZE")];
        for s in &self.steps {
            out.push(format!("  {:<16} {:>10}  {}", s.action, s.bytes.map(size).unwrap_or_default(), s.what));
        }
        if let Some(v) = &self.verify {
            out.push(format!("  {:<16} {:>10}  {v}", "verify", ""));
        }
        for b in &self.blockers {
            out.push(format!("  blocked: {b}"));
        }
        if let Some(gd) = &self.guarded {
            let why: Vec<String> = gd.reasons.iter().map(ToString::to_string).collect();
            out.push(format!("  guarded because {}: a real run needs {}", why.join(" and "), gd.rerun_with));
        }
        out
    }

    /// `snapshot 1a2b3c4d (postgres source app-db)`.
    pub fn subject(&self) -> String {
        match &self.source {
            Some(s) => format!("snapshot {} ({} source {s})", self.snapshot.short(), self.kind),
            None => format!("snapshot {}", self.snapshot.short()),
        }
    }
}

/// `path` as an absolute path with symbolic links of its existing part resolved (the rest is
/// normalised lexically), so that two spellings of one place compare equal.
pub fn resolve(path: &Path) -> std::path::PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let abs = lifeboat_ops::guard::normalize(path, &cwd);
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// The plan of a file-tree restore, from the engine's dry run.
pub fn files(
    snap: &SnapshotEntry,
    kind: &str,
    target: &Path,
    include: &[String],
    stats: &RestoreStats,
    overwrite: bool,
) -> Plan {
    let mut p = Plan::new(snap, target.display().to_string());
    if p.kind.is_empty() {
        p.kind = kind.to_string();
    }
    p.headline = format!(
        "would restore {} to {}: {} files ({}), {} directories, {} other entries",
        p.subject(),
        target.display(),
        stats.files,
        size(stats.bytes),
        stats.dirs,
        stats.others
    );
    p.bytes = stats.bytes;
    let others =
        if stats.others > 0 { format!(", {}", count(stats.others as usize, "other entry")) } else { String::new() };
    let what = format!(
        "write {} and {}{others} under {}",
        count(stats.files as usize, "file"),
        count(stats.dirs as usize, "directory"),
        target.display()
    );
    p.step("write", what, Some(stats.bytes));
    if stats.replaced > 0 {
        p.step(
            "replace",
            format!("replace {} existing files or links in the target", stats.replaced),
            Some(stats.replaced_bytes),
        );
    }
    if stats.deleted > 0 {
        p.step(
            "delete",
            format!("delete {} entries in directories that stand where the snapshot has a file", stats.deleted),
            None,
        );
    }
    if stats.target_not_empty && !overwrite {
        p.blockers.push(format!("{} is not empty: a real run needs --overwrite", target.display()));
    }
    let roots: Vec<String> = if include.is_empty() { snap.snapshot.paths.clone() } else { include.to_vec() };
    let root = resolve(target);
    let written = lifeboat_ops::guard::file_restore_roots(&root, &roots).iter().map(|r| resolve(r)).collect();
    p.writes_to = Some(Location::Paths(written));
    p.detail("plan", stats);
    p
}

/// The plan of a restore into one file replaced atomically (sqlite, redis RDB).
pub fn file(snap: &SnapshotEntry, target: &Path, artifact: &str, bytes: u64, contents: &str, overwrite: bool) -> Plan {
    let mut p = Plan::new(snap, target.display().to_string());
    p.bytes = bytes;
    let exists = target.exists();
    let (action, verb) = if exists { ("replace-file", "replace") } else { ("write-file", "write") };
    p.step(action, format!("{verb} {} atomically with {artifact} ({contents})", target.display()), Some(bytes));
    if exists && !overwrite {
        p.blockers.push(format!("{} exists: a real run needs --overwrite", target.display()));
    }
    p.writes_to = Some(Location::Paths(vec![resolve(target)]));
    p.detail("action", if exists { "replace atomically" } else { "create" });
    p
}

/// The plan of a restore into a database (postgres, mariadb).
pub fn database(
    snap: &SnapshotEntry,
    server: Server,
    database: &str,
    load: String,
    bytes: u64,
    overwrite: bool,
) -> Plan {
    let mut p = Plan::new(snap, database);
    p.bytes = bytes;
    let at = format!("database {database} on {server}");
    if overwrite {
        p.step("drop-database", format!("drop {at} if it exists"), None);
        p.step("create-database", format!("create {at}"), None);
    } else {
        p.step("create-database", format!("create {at} (refused if it exists: --overwrite drops it first)"), None);
    }
    p.step("load", load, Some(bytes));
    p.headline = format!("would restore {} into {at}:", p.subject());
    p.writes_to = Some(Location::Database { server, name: database.to_string() });
    p.detail("database", database);
    p.detail("action", if overwrite { "drop (if it exists) and recreate, then load" } else { "create, then load" });
    p
}

/// The plan of a logical redis restore: each backed-up database's keys into `target_db` (or
/// into its own index) on `server`.
pub fn redis_keys(
    snap: &SnapshotEntry,
    target: &str,
    server: Server,
    keys: &std::collections::BTreeMap<u32, u64>,
    target_db: Option<u32>,
    sizes: &std::collections::BTreeMap<u32, u64>,
    overwrite: bool,
) -> Plan {
    let mut p = Plan::new(snap, target);
    p.bytes = sizes.values().sum();
    let how = if overwrite {
        "with RESTORE … REPLACE (keys of the same name are replaced, other keys stay)"
    } else {
        "with RESTORE (refused if the database holds keys: --overwrite replaces them)"
    };
    let mut moves = Vec::new();
    for (db, n) in keys {
        let to = target_db.unwrap_or(*db);
        let what = format!("restore {} of db{db} into db{to} on redis {server} {how}", count(*n as usize, "key"));
        p.step("restore-keys", what, sizes.get(db).copied());
        moves.push(serde_json::json!({"from_db": db, "to_db": to, "keys": n}));
    }
    p.headline = format!("would restore {} into redis {server}:", p.subject());
    let dbs = keys.keys().map(|db| target_db.unwrap_or(*db)).collect();
    p.writes_to = Some(Location::Redis { server: server.clone(), dbs: Some(dbs) });
    p.detail("server", server.to_string()).detail("plan", moves).detail("overwrite", overwrite);
    p
}
