//! Proof records stored in the repository (under `lifeboat/`, encrypted with the master key, so
//! every machine that opens the repository sees them): verification runs and drills.
//!
//! Layout (one object per record; records are never rewritten):
//! - `lifeboat/verify/<snapshot id>/<time>-<rand>.json` — a [`Verification`];
//! - `lifeboat/drills/<time>-<rand>.json` — a [`DrillSummary`] (the full signed report is stored
//!   under `lifeboat/drill-reports/` by the drill command);
//! - `lifeboat/runs/<time>-<rand>.start.json` when a run begins and `lifeboat/runs/<time>-<rand>.json`
//!   when it ends — a [`Run`] (a start without an end is a run whose process died).

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_format::Id;
use lifeboat_repository::{util, RepoError, Repository};
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// Outcome of a verification or a drill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Everything checked out.
    Ok,
    /// Some checks failed.
    Failed,
    /// Part of the work could not be done (e.g. a scratch target was unavailable).
    Partial,
}

/// One verification of one snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// When it finished.
    pub time: DateTime<Utc>,
    /// Host it ran on.
    pub host: String,
    /// Snapshot verified.
    pub snapshot: Id,
    /// Source name, if the snapshot has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What was done: `read-data` (every blob read and hash-checked) and/or `restore-test`.
    pub checks: Vec<String>,
    /// Result.
    pub outcome: Outcome,
    /// What was wrong (damaged blobs with their paths, count mismatches, …).
    #[serde(default)]
    pub findings: Vec<String>,
    /// Wall time in seconds.
    pub duration_seconds: f64,
    /// The source's `verify_command`, run against the restore test's scratch target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_command: Option<HookRun>,
}

/// One run of a hook (`before_backup`, …, `on_failure`), of a `verify_command` or of a
/// `healthcheck_url` check: what ran and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HookRun {
    /// `before_backup`, `after_backup`, `before_restore`, `after_restore`, `on_failure`,
    /// `verify_command` or `healthcheck`.
    pub hook: String,
    /// The program (or the URL without credentials and query), for people.
    pub program: String,
    /// Whether it passed (exit 0; the expected HTTP status).
    pub ok: bool,
    /// Its exit code (`None` when killed or not started; the HTTP status for a healthcheck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Wall time.
    pub seconds: f64,
    /// Why it failed, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last lines of its standard error (at most 2 KiB).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
}

impl HookRun {
    /// One line for people and run messages: `before_restore stop.sh: ok (0.1s)` or its error.
    pub fn line(&self) -> String {
        match &self.error {
            None => format!("{} {}: ok ({:.1}s)", self.hook, self.program, self.seconds),
            Some(e) => format!("{} {}: {e}", self.hook, self.program),
        }
    }
}

/// A drill's summary: per source, whether a verified restore succeeded within its RTO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    /// When it finished.
    pub time: DateTime<Utc>,
    /// Host it ran on.
    pub host: String,
    /// Overall result.
    pub outcome: Outcome,
    /// Per source.
    pub sources: Vec<DrillSource>,
    /// Name of the stored signed report under `lifeboat/` (if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// One source in a drill.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillSource {
    /// Source name.
    pub source: String,
    /// Snapshot restored.
    pub snapshot: Id,
    /// Result.
    pub outcome: Outcome,
    /// Measured recovery time (wall time to a verified restore), seconds.
    pub rto_seconds: f64,
    /// Configured RTO, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_seconds: Option<f64>,
    /// What went wrong.
    #[serde(default)]
    pub findings: Vec<String>,
}

fn store<T: Serialize>(repo: &Repository, name: &str, value: &T) -> Result<(), OpsError> {
    let json = serde_json::to_vec(value).map_err(|e| RepoError::Invalid(e.to_string()))?;
    repo.backend().save(FileType::Lifeboat, name, &repo.encode_unpacked(&json)).map_err(RepoError::from)?;
    Ok(())
}

pub(crate) fn stamp(time: DateTime<Utc>) -> String {
    let r: [u8; 4] = lifeboat_crypto::random_bytes();
    format!("{}-{}", time.format("%Y%m%dT%H%M%S%.6fZ"), hex::encode(r))
}

/// Names of the JSON records under `lifeboat/PREFIX`, sorted (records named by time sort oldest
/// first).
pub fn names(repo: &Repository, prefix: &str) -> Result<Vec<String>, OpsError> {
    let mut names: Vec<String> = repo
        .backend()
        .list(FileType::Lifeboat)
        .map_err(RepoError::from)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    names.sort();
    Ok(names)
}

fn load_all<T: serde::de::DeserializeOwned>(repo: &Repository, prefix: &str) -> Result<Vec<T>, OpsError> {
    names(repo, prefix)?.iter().map(|n| Ok(repo.load_json::<T>(FileType::Lifeboat, n)?)).collect()
}

/// Store a verification record.
pub fn record_verification(repo: &Repository, v: &Verification) -> Result<(), OpsError> {
    store(repo, &format!("verify/{}/{}.json", v.snapshot.to_hex(), stamp(v.time)), v)
}

/// Every verification record, oldest first.
pub fn verifications(repo: &Repository) -> Result<Vec<Verification>, OpsError> {
    let mut v: Vec<Verification> = load_all(repo, "verify/")?;
    v.sort_by_key(|r| r.time);
    Ok(v)
}

/// Store a drill summary; returns its object name (under `lifeboat/`).
pub fn record_drill(repo: &Repository, d: &DrillSummary) -> Result<String, OpsError> {
    let name = format!("drills/{}.json", stamp(d.time));
    store(repo, &name, d)?;
    Ok(name)
}

/// Every drill summary, oldest first.
pub fn drills(repo: &Repository) -> Result<Vec<DrillSummary>, OpsError> {
    let mut v: Vec<DrillSummary> = load_all(repo, "drills/")?;
    v.sort_by_key(|r| r.time);
    Ok(v)
}

/// This host's name (for new records).
pub fn host() -> String {
    util::hostname()
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A backup of one source (or of paths).
    Backup,
    /// `verify` (structure, read-data).
    Verify,
    /// A restore test.
    RestoreTest,
    /// A drill.
    Drill,
    /// `apply-retention` (forget + prune).
    ApplyRetention,
    /// `copy` to a second repository.
    Copy,
    /// `check`.
    Check,
    /// A restore of one source (`restore`, `restore --all`).
    Restore,
}

impl RunKind {
    /// `backup`, `restore_test`, … (as in metrics and the API).
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Backup => "backup",
            RunKind::Verify => "verify",
            RunKind::RestoreTest => "restore_test",
            RunKind::Drill => "drill",
            RunKind::ApplyRetention => "apply_retention",
            RunKind::Copy => "copy",
            RunKind::Check => "check",
            RunKind::Restore => "restore",
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still going (only in a start record).
    Running,
    /// Done.
    Ok,
    /// Done, but part of the work could not be done (unreadable files, a skipped test).
    Partial,
    /// Failed: see the error.
    Failed,
    /// Not started: the previous run of the same job was still going.
    Skipped,
}

impl RunOutcome {
    /// `ok`, `failed`, … (as in metrics and the API).
    pub fn name(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Ok => "ok",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
            RunOutcome::Skipped => "skipped",
        }
    }
}

/// One message of a run (for `lifeboat logs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMessage {
    /// When.
    pub time: DateTime<Utc>,
    /// `error`, `warning` or `info`.
    pub level: String,
    /// One line.
    pub text: String,
}

/// One run of an operation, by the CLI or the daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `<time>-<rand>`, also the object name.
    pub id: String,
    /// What ran.
    pub kind: RunKind,
    /// The source, when the run is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who started it: `cli`, `daemon`, `api`.
    pub trigger: String,
    /// Host and process.
    pub host: String,
    /// Process id (to tell a dead run from a running one on the same host).
    pub pid: u32,
    /// Start.
    pub started: DateTime<Utc>,
    /// End (`None` while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// Wall time in seconds.
    #[serde(default)]
    pub seconds: f64,
    /// Result.
    pub outcome: RunOutcome,
    /// Bytes the run added (backups) or read (checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The snapshot made or tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    /// Why it failed (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it said along the way.
    #[serde(default)]
    pub messages: Vec<RunMessage>,
}

impl Run {
    /// A run that starts now.
    pub fn start(kind: RunKind, source: Option<String>, trigger: &str) -> Run {
        let started = Utc::now();
        Run {
            id: stamp(started),
            kind,
            source,
            trigger: if trigger.is_empty() { "cli".into() } else { trigger.into() },
            host: host(),
            pid: std::process::id(),
            started,
            finished: None,
            seconds: 0.0,
            outcome: RunOutcome::Running,
            bytes: None,
            snapshot: None,
            error: None,
            messages: Vec::new(),
        }
    }

    /// Add a message.
    pub fn say(&mut self, level: &str, text: impl Into<String>) {
        self.messages.push(RunMessage { time: Utc::now(), level: level.into(), text: text.into() });
    }

    /// End the run now with `outcome`.
    pub fn finish(&mut self, outcome: RunOutcome) {
        let now = Utc::now();
        self.finished = Some(now);
        self.seconds = (now - self.started).num_milliseconds().max(0) as f64 / 1000.0;
        self.outcome = outcome;
    }
}

/// Store a run: its start record while it is running, its end record once finished.
pub fn record_run(repo: &Repository, run: &Run) -> Result<(), OpsError> {
    let suffix = if run.finished.is_some() { "json" } else { "start.json" };
    store(repo, &format!("runs/{}.{suffix}", run.id), run)
}

/// The runs' ids with whether each has its end record, oldest first; only those that started at
/// or after `since` when given (the id begins with the start time).
fn run_ids(repo: &Repository, since: Option<DateTime<Utc>>) -> Result<Vec<(String, bool)>, OpsError> {
    let cutoff = since.map(|t| t.format("%Y%m%dT%H%M%S").to_string());
    let mut ids: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
    for (name, _) in repo.backend().list(FileType::Lifeboat).map_err(RepoError::from)? {
        let Some(rest) = name.strip_prefix("runs/") else { continue };
        let (id, ended) = match rest.strip_suffix(".start.json") {
            Some(id) => (id, false),
            None => match rest.strip_suffix(".json") {
                Some(id) => (id, true),
                None => continue,
            },
        };
        if cutoff.as_ref().is_some_and(|c| id.get(..15).is_none_or(|t| t < c.as_str())) {
            continue;
        }
        *ids.entry(id.to_string()).or_default() |= ended;
    }
    Ok(ids.into_iter().collect())
}

/// Read runs by id (the end record when there is one, else the start record), several at a time:
/// the records are small, so the time goes to opening objects, not to decrypting them.
fn load_runs(repo: &Repository, ids: &[(String, bool)]) -> Result<Vec<Run>, OpsError> {
    let load = |(id, ended): &(String, bool)| -> Result<Run, OpsError> {
        let name = if *ended { format!("runs/{id}.json") } else { format!("runs/{id}.start.json") };
        Ok(repo.load_json::<Run>(FileType::Lifeboat, &name)?)
    };
    if ids.len() < 32 {
        return ids.iter().map(load).collect();
    }
    let threads = 8.min(ids.len().div_ceil(16));
    let per = ids.len().div_ceil(threads);
    let parts: Vec<Result<Vec<Run>, OpsError>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            ids.chunks(per).map(|chunk| scope.spawn(move || chunk.iter().map(load).collect())).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(RepoError::Invalid("a run reader panicked".into()).into())))
            .collect()
    });
    let mut out = Vec::with_capacity(ids.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn by_start(v: &mut [Run]) {
    v.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
}

/// Runs that started at or after `since` (all with `None`), oldest first. A run with a start
/// record and no end record is returned as it started (outcome `running`).
pub fn runs(repo: &Repository, since: Option<DateTime<Utc>>) -> Result<Vec<Run>, OpsError> {
    let mut v = load_runs(repo, &run_ids(repo, since)?)?;
    by_start(&mut v);
    Ok(v)
}

/// Runs with a start record and no end record (running, or their process died), oldest first.
pub fn unfinished_runs(repo: &Repository) -> Result<Vec<Run>, OpsError> {
    let ids: Vec<(String, bool)> = run_ids(repo, None)?.into_iter().filter(|(_, ended)| !ended).collect();
    let mut v = load_runs(repo, &ids)?;
    by_start(&mut v);
    Ok(v)
}

/// Runs newest first, read a batch at a time until `more` (called with each run in turn) returns
/// `false` or the history ends: what the daemon reads at start instead of the whole history.
/// Returns the runs read, oldest first.
pub fn recent_runs(repo: &Repository, mut more: impl FnMut(&Run) -> bool) -> Result<Vec<Run>, OpsError> {
    let mut ids = run_ids(repo, None)?;
    ids.reverse();
    let mut out = Vec::new();
    // Batches double (64, 128, … 4096): a short history costs one small read, a long one few.
    let (mut at, mut size) = (0, 64);
    while at < ids.len() {
        let end = (at + size).min(ids.len());
        let mut got = load_runs(repo, &ids[at..end])?;
        (at, size) = (end, (size * 2).min(4096));
        // Ids sort by start time: newest first within the batch too.
        got.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
        for r in got {
            let go_on = more(&r);
            out.push(r);
            if !go_on {
                by_start(&mut out);
                return Ok(out);
            }
        }
    }
    by_start(&mut out);
    Ok(out)
}
