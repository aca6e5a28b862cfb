//! The repository's records kept in memory and refreshed incrementally: each refresh lists the
//! snapshot, index and `lifeboat/` objects and loads only the ones it has not seen (a forgotten
//! snapshot is dropped), so a dashboard page never reads the repository and a refresh with
//! nothing new costs three listings.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_format::{Id, Snapshot};
use lifeboat_ops::records::{DrillSummary, Run, RunOutcome, Verification};
use lifeboat_ops::usage::Usage;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::{util, RepoError, Repository};

use crate::error::Result;

/// What the repository holds, as last refreshed.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Every readable snapshot, oldest first (the order of `snapshots::list`).
    pub snapshots: Vec<SnapshotEntry>,
    /// Snapshot files that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// The run history, oldest first; a run whose process died shows as failed.
    pub runs: Vec<Run>,
    /// Verification records, oldest first.
    pub verifications: Vec<Verification>,
    /// Drill summaries, oldest first.
    pub drills: Vec<DrillSummary>,
    /// Storage usage (recomputed when the index or the snapshots change).
    pub usage: Option<Usage>,
    /// When the last refresh finished (`None`: never yet).
    pub refreshed: Option<DateTime<Utc>>,
    /// Why the last refresh failed, if it did (the previous data stays).
    pub error: Option<String>,
    /// Point-in-time sources: when each archived its newest WAL file or replication segment
    /// (see [`Catalog::refresh_wal`]).
    pub wal: std::collections::HashMap<String, DateTime<Utc>>,
    seen_snapshots: HashSet<String>,
    seen_records: HashSet<String>,
    index_files: Vec<String>,
    runs_by_id: BTreeMap<String, Run>,
}

impl Catalog {
    /// Read when each of `sources` last archived WAL (one listing of `lifeboat/`); whether it
    /// changed.
    pub fn refresh_wal(&mut self, repo: &Repository, sources: &[&str]) -> Result<bool> {
        let wal = lifeboat_ops::wal::last_pushes(repo, sources)?;
        let changed = wal != self.wal;
        self.wal = wal;
        Ok(changed)
    }

    /// Load what is new since the last refresh. Returns whether anything changed.
    pub fn refresh(&mut self, repo: &mut Repository) -> Result<bool> {
        let r = self.load(repo);
        self.error = r.as_ref().err().map(|e| crate::session::one_line(e));
        self.refreshed = Some(Utc::now());
        r
    }

    fn load(&mut self, repo: &mut Repository) -> Result<bool> {
        let snaps_changed = self.load_snapshots(repo)?;
        let records_changed = self.load_records(repo)?;
        let mut index: Vec<String> =
            repo.backend().list(FileType::Index).map_err(RepoError::from)?.into_iter().map(|(n, _)| n).collect();
        index.sort();
        let index_changed = index != self.index_files;
        if index_changed {
            repo.reset_index();
            self.index_files = index;
        }
        if index_changed || snaps_changed || self.usage.is_none() {
            self.usage = Some(lifeboat_ops::usage::usage_of(repo, &self.snapshots)?);
        }
        Ok(snaps_changed || records_changed || index_changed)
    }

    fn load_snapshots(&mut self, repo: &Repository) -> Result<bool> {
        let names: HashSet<String> =
            repo.backend().list(FileType::Snapshot).map_err(RepoError::from)?.into_iter().map(|(n, _)| n).collect();
        let gone = self.seen_snapshots.iter().any(|n| !names.contains(n));
        let new: Vec<String> = names.iter().filter(|n| !self.seen_snapshots.contains(*n)).cloned().collect();
        if !gone && new.is_empty() {
            return Ok(false);
        }
        if gone {
            self.snapshots.retain(|s| names.contains(&s.id.to_hex()));
            self.unreadable.retain(|(n, _)| names.contains(n));
        }
        let loaded = util::parallel_map(new, 8, |name| {
            let r = repo.load_json::<Snapshot>(FileType::Snapshot, &name);
            Ok((name, r))
        })?;
        for (name, r) in loaded {
            match (r, name.parse::<Id>()) {
                (Ok(snapshot), Ok(id)) => self.snapshots.push(SnapshotEntry { id, snapshot }),
                (Err(e), _) => self.unreadable.push((name, e.to_string())),
                (Ok(_), Err(e)) => self.unreadable.push((name, e.to_string())),
            }
        }
        // The order of `snapshots::list`: a repaired copy sorts after its original.
        self.snapshots.sort_by(|a, b| {
            a.snapshot
                .time
                .cmp(&b.snapshot.time)
                .then(a.snapshot.original.is_some().cmp(&b.snapshot.original.is_some()))
                .then(a.id.cmp(&b.id))
        });
        self.seen_snapshots = names;
        Ok(true)
    }

    /// Runs, verifications and drill summaries under `lifeboat/` (records are never rewritten,
    /// except a run's start record that its end record supersedes).
    fn load_records(&mut self, repo: &Repository) -> Result<bool> {
        // Only these folders are listed: `wal/` and `audit/` grow far faster.
        let mut names = Vec::new();
        for folder in ["runs/", "verify/", "drills/"] {
            for (n, _) in repo.backend().list_prefix(FileType::Lifeboat, folder).map_err(RepoError::from)? {
                if n.ends_with(".json") && !self.seen_records.contains(&n) {
                    names.push(n);
                }
            }
        }
        // A run's start record sorts before its end record: the end wins.
        names.sort();
        let mut changed = false;
        let mut runs_changed = false;
        for name in names {
            if name.starts_with("runs/") {
                let run: Run = repo.load_json(FileType::Lifeboat, &name)?;
                if self.runs_by_id.get(&run.id).is_none_or(|r| r.finished.is_none()) {
                    self.runs_by_id.insert(run.id.clone(), run);
                    runs_changed = true;
                }
            } else if name.starts_with("verify/") {
                self.verifications.push(repo.load_json(FileType::Lifeboat, &name)?);
                self.verifications.sort_by_key(|v| v.time);
            } else {
                self.drills.push(repo.load_json(FileType::Lifeboat, &name)?);
                self.drills.sort_by_key(|d| d.time);
            }
            self.seen_records.insert(name);
            changed = true;
        }
        // A run still "running" whose process is gone is shown as failed (as `runs` does); it
        // is re-checked at every refresh, since the process may end between two.
        let dead = self.runs.iter().any(|r| r.outcome == RunOutcome::Running && crate::runs::is_dead(r));
        if runs_changed || dead {
            let mut v: Vec<Run> = self.runs_by_id.values().cloned().collect();
            for r in v.iter_mut() {
                if r.outcome == RunOutcome::Running && crate::runs::is_dead(r) {
                    r.outcome = RunOutcome::Failed;
                    r.error = Some(crate::runs::DIED.into());
                }
            }
            v.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
            self.runs = v;
            changed = true;
        }
        Ok(changed)
    }
}
