//! `kind = "sqlite"`: a consistent online backup of a live database (its pages, read once in
//! one transaction) with per-table row counts. Restores replace the target file atomically
//! after `PRAGMA quick_check` (`integrity_check` with `--verify`, in restore tests and drills).

use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::Location;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::sqlite;
use serde::Deserialize;
use serde_json::json;

use super::{
    artifact, manifest_of, rows, Archive, Comparison, Found, Generated, PreparedRestore, RestoreRequest, Restored,
    RunContext, Settings, Source, TargetCheck,
};
use crate::error::{Result, ServiceError};
use crate::human::{count, duration};
use crate::plan::{self, resolve};
use crate::vars::substitute;

/// Settings of a sqlite source.
#[derive(Debug, Default, Deserialize)]
pub struct Sqlite {
    /// The database file.
    pub path: Option<String>,
    /// Replicate the write-ahead log continuously (`lifeboat replicate`, the daemon): every
    /// committed transaction is shipped within a fraction of a second, and `restore --at` /
    /// `--txid` rebuild the database as of any moment since the first base.
    #[serde(default)]
    pub continuous: bool,
}

impl Settings for Sqlite {
    const NAME: &'static str = "sqlite";
}

impl Source for Sqlite {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        if self.path.is_none() {
            return Err("a sqlite source needs `path = \"/var/lib/app/db.sqlite\"`".into());
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let path = substitute(self.path.as_deref().unwrap_or_default(), &format!("source {name}"))?;
        // The pages, read once in one transaction, straight to the archiver.
        if let Some(started) = sqlite::pages::start(Path::new(&path))? {
            let mut g = Generated::from(started);
            g.chunk_sizes = Some(sqlite::CHUNK_SIZES);
            return archive(g);
        }
        // Without `sqlite_dbpage`: a copy first. `prepared` owns it: it lives until the backup
        // is done.
        let prepared = sqlite::prepare(Path::new(&path))?;
        let manifest = Some(serde_json::to_value(&prepared.manifest)?);
        archive(Generated {
            paths: prepared.paths.clone(),
            entries: Box::new(prepared.entries),
            manifest,
            finish: None,
            excludes: Vec::new(),
            chunk_sizes: Some(sqlite::CHUNK_SIZES),
            scan: None,
        })
    }

    fn prepare_restore<'a>(
        &'a self,
        _name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, sqlite::Manifest) = manifest_of(snap)?;
        let node = artifact(repo, snap, &manifest.file)?;
        let contents = count(manifest.tables.len(), "table");
        let mut plan = plan::file(snap, &req.target, &manifest.file, node.size, &contents, req.overwrite);
        plan.detail("tables", &manifest.tables);
        plan.verify = Some(if req.verify {
            format!(
                "PRAGMA integrity_check and row counts of {} tables against the backup's manifest",
                manifest.tables.len()
            )
        } else {
            "PRAGMA quick_check before the swap (add --verify for integrity_check and the row counts)".to_string()
        });
        let check = if req.verify { sqlite::Check::Full } else { sqlite::Check::Quick };
        let replay = match (&req.pitr, &manifest.replica) {
            (Some(p), Some(base)) => Some(replay_plan(repo, &src.name, base, p.at, p.txid)?),
            (Some(_), None) => {
                return Err(ServiceError::usage(format!(
                    "snapshot {} is not the base of continuous replication: --at and --txid need one",
                    snap.id.short()
                )))
            }
            _ => None,
        };
        if let Some(r) = &replay {
            plan.step("replay", r.describe(), None);
            plan.detail("replay", r.json());
            plan.verify = Some(format!("PRAGMA {} after the replay, then the row counts found", check.pragma()));
        }
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            let Some(r) = replay else {
                return restore_base(repo, snap, &src.name, &node, &manifest, req, started, check);
            };
            let page_size = manifest.replica.as_ref().map(|b| b.position.header.page_size).unwrap_or(4096);
            let mut applied = 0u64;
            let mut replay_fn = replayer(repo, &src.name, &r, page_size, &mut applied);
            let v = sqlite::restore_replayed(
                repo,
                &node,
                &manifest,
                &req.target,
                req.overwrite,
                Some(&mut replay_fn),
                check,
            )?;
            drop(replay_fn);
            let line = format!(
                "restored {} to {} as of transaction {} ({}) from base {} and {} replayed in {} ({} ok; {})",
                manifest.file,
                req.target.display(),
                r.txid,
                r.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                snap.id.short(),
                count(applied as usize, "transaction"),
                duration(started.elapsed()),
                check.pragma(),
                v.tables.iter().map(|(t, n)| format!("{t}: {n} rows")).collect::<Vec<_>>().join(", ")
            );
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": src.name, "target": req.target, "verification": v,
                    "txid": r.txid, "time": r.time, "replayed": applied, "generation": r.generation,
                    "duration_seconds": started.elapsed().as_secs_f64(),
                }),
                lines: vec![line],
                what: "database",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// Restored to a scratch file (`PRAGMA integrity_check`, then row counts per table).
    fn restore_test(
        &self,
        _name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        tmp: Option<&Path>,
        check: &TargetCheck<'_>,
    ) -> Found {
        let (src, m): (_, sqlite::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let node = artifact(repo, snap, &m.file).map_err(|e| e.to_string())?;
        let dir = super::scratch_dir(tmp)?;
        let file = dir.path().join(&m.file);
        // The base of continuous replication is replayed to its generation's last shipped
        // transaction (what a restore --at latest would give), and the replay is timed.
        let (v, replay) = match &m.replica {
            Some(base) => {
                let started = Instant::now();
                let r = replay_plan(repo, &src.name, base, None, None).map_err(|e| e.to_string())?;
                let mut applied = 0u64;
                let mut f = replayer(repo, &src.name, &r, base.position.header.page_size, &mut applied);
                let v = sqlite::restore_replayed(repo, &node, &m, &file, false, Some(&mut f), sqlite::Check::Full)
                    .map_err(|e| e.to_string())?;
                drop(f);
                let j = json!({"txid": r.txid, "time": r.time, "transactions": applied,
                               "seconds": started.elapsed().as_secs_f64(), "generation": r.generation});
                (v, Some(j))
            }
            None => {
                (sqlite::restore(repo, &node, &m, &file, false, sqlite::Check::Full).map_err(|e| e.to_string())?, None)
            }
        };
        let mut problems = v.mismatches.clone();
        if v.integrity != ["ok"] {
            problems.push(format!("integrity_check: {}", v.integrity.join("; ")));
        }
        let mut details = json!({"tables": v.tables, "integrity": v.integrity});
        if let Some(r) = replay {
            details["replay"] = r;
        }
        let mut t = super::tested(file.display().to_string(), problems, details)?;
        t.verify_command = check(&file.display().to_string());
        Ok(t)
    }

    fn compare(&self, _name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, sqlite::Manifest) = manifest_of(snap)?;
        if !Path::new(target).is_file() {
            return Err(ServiceError::msg(format!("{target}: no such database file")));
        }
        Ok(Comparison { what: "table", rows: rows(&m.tables, &sqlite::counts(Path::new(target))?) })
    }

    fn compares(&self) -> bool {
        true
    }

    fn whole_restore_target(&self, name: &str, root: Option<&Path>) -> Result<Option<String>> {
        let Some(path) = super::setting(name, &self.path)? else { return Ok(None) };
        Ok(Some(match root {
            Some(r) => {
                let file = Path::new(&path).file_name().map(|f| f.to_string_lossy().into_owned());
                Path::new(&super::under(r, name)).join(file.unwrap_or_else(|| "db.sqlite".into())).display().to_string()
            }
            None => path,
        }))
    }

    fn continuous(&self, name: &str) -> Result<Option<std::path::PathBuf>> {
        if !self.continuous {
            return Ok(None);
        }
        Ok(super::setting(name, &self.path)?.map(std::path::PathBuf::from))
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        let what = format!("source {name}");
        let paths = self.path.iter().map(|p| Ok(resolve(Path::new(&substitute(p, &what)?)))).collect::<Result<_>>()?;
        Ok(Some(Location::Paths(paths)))
    }
}

/// Restore a sqlite snapshot as it is.
#[allow(clippy::too_many_arguments)]
fn restore_base(
    repo: &Repository,
    snap: &SnapshotEntry,
    source: &str,
    node: &lifeboat_format::Node,
    manifest: &sqlite::Manifest,
    req: &RestoreRequest,
    started: Instant,
    check: sqlite::Check,
) -> Result<Restored> {
    let v = sqlite::restore(repo, node, manifest, &req.target, req.overwrite, check)?;
    let line = format!(
        "restored {} from snapshot {} to {} in {} ({} ok{})",
        manifest.file,
        snap.id.short(),
        req.target.display(),
        duration(started.elapsed()),
        check.pragma(),
        if req.verify { format!(", {} tables' row counts checked", manifest.tables.len()) } else { String::new() }
    );
    Ok(Restored {
        json: json!({
            "snapshot": snap.id, "source": source, "target": req.target, "verification": v,
            "duration_seconds": started.elapsed().as_secs_f64(),
        }),
        lines: vec![line],
        mismatches: if req.verify { v.mismatches.clone() } else { Vec::new() },
        what: "database",
        ..Default::default()
    })
}

/// The transactions a point-in-time restore replays over a base.
struct ReplayPlan {
    generation: String,
    /// The segments to read (the last one maybe only in part).
    segments: Vec<lifeboat_ops::replica::Stored>,
    /// Replay up to and including this transaction.
    txid: u64,
    /// When it was seen committed.
    time: chrono::DateTime<chrono::Utc>,
    /// Transactions replayed.
    transactions: u64,
}

impl ReplayPlan {
    fn describe(&self) -> String {
        format!(
            "replay {} of generation {} up to transaction {} (seen committed at {})",
            count(self.transactions as usize, "transaction"),
            self.generation,
            self.txid,
            self.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"generation": self.generation, "txid": self.txid, "time": self.time,
               "transactions": self.transactions, "segments": self.segments.len()})
    }
}

/// Which transactions of `base`'s generation bring the database to `at` (the last one seen
/// committed at or before it) or to `txid`; to the last one shipped when neither is given.
fn replay_plan(
    repo: &Repository,
    source: &str,
    base: &sqlite::ReplicaBase,
    at: Option<chrono::DateTime<chrono::Utc>>,
    txid: Option<u64>,
) -> Result<ReplayPlan> {
    let all: Vec<_> =
        lifeboat_ops::replica::list(repo, source)?.into_iter().filter(|s| s.generation == base.generation).collect();
    let mut plan = ReplayPlan {
        generation: base.generation.clone(),
        segments: Vec::new(),
        txid: base.txid,
        time: base.time,
        transactions: 0,
    };
    if let Some(n) = txid {
        let last = all.last().map(|s| s.last).unwrap_or(base.txid);
        if n > last {
            return Err(ServiceError::msg(format!(
                "transaction {n} was never shipped: generation {} of source {source} ends at transaction {last}",
                base.generation
            )));
        }
    }
    let mut last_whole = None;
    for stored in all {
        if stored.last <= base.txid {
            continue;
        }
        if txid.is_some_and(|n| stored.first > n) {
            break;
        }
        if stored.first != plan.txid + 1 {
            // Never restore something other than what was asked: a missing segment is an error.
            return Err(ServiceError::msg(format!(
                "generation {} of source {source} misses transactions {} to {}: its segments are damaged or were \
                 removed (restore to an earlier point, or run `lifeboat check`)",
                base.generation,
                plan.txid + 1,
                stored.first - 1
            )));
        }
        // Transactions are seen committed before their segment is shipped: a segment shipped
        // at or before `at` (and ending at or before `txid`) is wholly in, from its name.
        if txid.is_none_or(|n| stored.last <= n) && at.is_none_or(|t| stored.shipped <= t) {
            plan.transactions += stored.last - stored.first + 1;
            plan.txid = stored.last;
            last_whole = Some(stored.clone());
            plan.segments.push(stored);
            continue;
        }
        // The first segment partly in: read it to find out.
        let seg = lifeboat_ops::replica::load(repo, source, &stored)?;
        let mut took = 0;
        for c in &seg.commits {
            if txid.is_some_and(|n| c.txid > n) || at.is_some_and(|t| c.time > t) {
                break;
            }
            plan.txid = c.txid;
            plan.time = c.time;
            took += 1;
        }
        if took > 0 {
            plan.transactions += took;
            plan.segments.push(stored);
            last_whole = None;
        }
        break;
    }
    if let Some(stored) = last_whole {
        // The exact time of the last transaction replayed.
        let seg = lifeboat_ops::replica::load(repo, source, &stored)?;
        if let Some(c) = seg.commits.last() {
            plan.time = c.time;
        }
    }
    Ok(plan)
}

/// Applies the transactions of `r` to a restored base, counting them in `applied`.
fn replayer<'a>(
    repo: &'a Repository,
    source: &'a str,
    r: &'a ReplayPlan,
    page_size: u32,
    applied: &'a mut u64,
) -> impl FnMut(&mut std::fs::File) -> std::result::Result<(), lifeboat_sources::SourceError> + 'a {
    move |f| {
        let db = |what: &str, e: String| lifeboat_sources::SourceError::Database { target: what.into(), message: e };
        for stored in &r.segments {
            let seg = lifeboat_ops::replica::load(repo, source, stored).map_err(|e| db("repository", e.to_string()))?;
            let commits: Vec<_> = seg.commits.into_iter().filter(|c| c.txid <= r.txid).map(|c| c.commit).collect();
            *applied += commits.len() as u64;
            lifeboat_sources::sqlite::walfile::apply(f, page_size, &commits)
                .map_err(|e| db("restore", e.to_string()))?;
        }
        Ok(())
    }
}
