//! Proof records stored in the repository (under `lifeboat/`, encrypted with the master key, so
//! every machine that opens the repository sees them): verification runs and drills.
//!
//! Layout (one object per record; records are never rewritten):
//! - `lifeboat/verify/<snapshot id>/<time>-<rand>.json` — a [`Verification`];
//! - `lifeboat/drills/<time>-<rand>.json` — a [`DrillSummary`] (the full signed report is stored
//!   under `lifeboat/drill-reports/` by the drill command);
//! - `lifeboat/runs/<time>-<rand>.start.json` when a run begins and
//!   `lifeboat/runs/<time>-<rand>.<tag>.json` when it ends — a [`Run`] (a start without an end is a
//!   run whose process died). The tag ([`run_tag`]) names the run's kind and source without
//!   revealing them, so that a reader looking for one source's runs skips the others unread;
//!   end records written before tags existed are `<time>-<rand>.json` and are always read.

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
        .list_prefix(FileType::Lifeboat, prefix)
        .map_err(RepoError::from)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".json"))
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
    let name = match run.finished {
        Some(_) => format!("runs/{}.{}.json", run.id, run_tag(repo, run.kind, run.source.as_deref())),
        None => format!("runs/{}.start.json", run.id),
    };
    store(repo, &name, run)
}

/// Length of a run tag in hex digits.
const TAG_LEN: usize = 12;

/// The tag in the name of a run's end record: a keyed hash of its kind and source (keyed with the
/// master key, so the storage does not learn source names), the same on every machine.
pub fn run_tag(repo: &Repository, kind: RunKind, source: Option<&str>) -> String {
    match source {
        Some(s) => keyed_tag(repo, "run", &format!("{}\0{s}", kind.name())),
        None => keyed_tag(repo, "run", kind.name()),
    }
}

/// A short keyed hash of `text` for `purpose` (keyed with the master key: the same on every
/// machine, meaningless to the storage), used in object names instead of source names.
pub fn keyed_tag(repo: &Repository, purpose: &str, text: &str) -> String {
    let key = repo.key();
    let mut msg = format!("lifeboat {purpose} tag\0").into_bytes();
    msg.extend_from_slice(key.encrypt_part());
    msg.extend_from_slice(key.mac_k());
    msg.extend_from_slice(key.mac_r());
    msg.extend_from_slice(text.as_bytes());
    let digest = lifeboat_crypto::sha256(&msg);
    hex::encode(&digest[..TAG_LEN / 2])
}

/// One run in the listing: its id, the name of its end record (if it has one) and that record's
/// tag (`None` for records written before tags).
#[derive(Default)]
struct RunName {
    id: String,
    end: Option<String>,
    tag: Option<String>,
}

/// The runs in the listing, oldest first; only those that started at or after `since` when given
/// (the id begins with the start time).
fn run_ids(repo: &Repository, since: Option<DateTime<Utc>>) -> Result<Vec<RunName>, OpsError> {
    let cutoff = since.map(|t| t.format("%Y%m%dT%H%M%S").to_string());
    let mut ids: std::collections::BTreeMap<String, RunName> = std::collections::BTreeMap::new();
    for (name, _) in repo.backend().list_prefix(FileType::Lifeboat, "runs/").map_err(RepoError::from)? {
        let Some(rest) = name.strip_prefix("runs/") else { continue };
        let (id, tag, ended) = match rest.strip_suffix(".start.json") {
            Some(id) => (id, None, false),
            None => match rest.strip_suffix(".json") {
                Some(stem) => match stem.rsplit_once('.') {
                    Some((id, tag)) if tag.len() == TAG_LEN && tag.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        (id, Some(tag), true)
                    }
                    _ => (stem, None, true),
                },
                None => continue,
            },
        };
        if cutoff.as_ref().is_some_and(|c| id.get(..15).is_none_or(|t| t < c.as_str())) {
            continue;
        }
        let entry = ids.entry(id.to_string()).or_insert_with(|| RunName { id: id.to_string(), ..RunName::default() });
        if ended {
            entry.end = Some(name.clone());
            entry.tag = tag.map(String::from);
        }
    }
    Ok(ids.into_values().collect())
}

/// Read runs (the end record when there is one, else the start record), several at a time: the
/// records are small, so the time goes to opening objects, not to decrypting them.
fn load_runs(repo: &Repository, ids: &[RunName]) -> Result<Vec<Run>, OpsError> {
    let load = |r: &RunName| -> Result<Run, OpsError> {
        let name = r.end.clone().unwrap_or_else(|| format!("runs/{}.start.json", r.id));
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
    let ids: Vec<RunName> = run_ids(repo, None)?.into_iter().filter(|r| r.end.is_none()).collect();
    let mut v = load_runs(repo, &ids)?;
    by_start(&mut v);
    Ok(v)
}

/// Runs newest first, read a batch at a time until `more` (called with each run in turn) returns
/// `false` or the history ends: what the daemon reads at start instead of the whole history.
/// Only ended runs whose tag is in `tags` ([`run_tag`] of the kinds and sources wanted) are read,
/// and those written before tags or not ended. Returns the runs read, oldest first.
pub fn recent_runs(
    repo: &Repository,
    tags: &std::collections::HashSet<String>,
    mut more: impl FnMut(&Run) -> bool,
) -> Result<Vec<Run>, OpsError> {
    let mut ids: Vec<RunName> =
        run_ids(repo, None)?.into_iter().filter(|r| r.tag.as_ref().is_none_or(|t| tags.contains(t))).collect();
    ids.reverse();
    let mut out = Vec::new();
    // Batches double (16, 32, … 4096): a short history costs one small read, a long one few.
    let (mut at, mut size) = (0, 16);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use lifeboat_crypto::KdfParams;
    use lifeboat_repository::InitOptions;
    use std::sync::Arc;

    fn repo(dir: &std::path::Path) -> Repository {
        let backend = Arc::new(lifeboat_backend::LocalBackend::new(dir));
        let opts = InitOptions { kdf: KdfParams { n: 1024, r: 8, p: 1 }, chunker_polynomial: None };
        Repository::init(backend, b"pw", &opts).unwrap()
    }

    fn ended(kind: RunKind, source: Option<&str>) -> Run {
        let mut r = Run::start(kind, source.map(String::from), "test");
        r.finish(RunOutcome::Ok);
        r
    }

    #[test]
    fn tagged_runs_are_skipped_unread_and_untagged_ones_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = repo(dir.path());
        for i in 0..40 {
            record_run(&repo, &ended(RunKind::Backup, Some(if i % 2 == 0 { "a" } else { "b" }))).unwrap();
        }
        record_run(&repo, &ended(RunKind::Check, None)).unwrap();
        // An end record as written before tags existed, and a run still going.
        let old = ended(RunKind::Backup, Some("b"));
        store(&repo, &format!("runs/{}.json", old.id), &old).unwrap();
        let going = Run::start(RunKind::Backup, Some("b".into()), "test");
        record_run(&repo, &going).unwrap();
        // Every reader sees all of them.
        assert_eq!(runs(&repo, None).unwrap().len(), 43);
        let a = run_tag(&repo, RunKind::Backup, Some("a"));
        assert_ne!(a, run_tag(&repo, RunKind::Backup, Some("b")));
        assert_ne!(a, run_tag(&repo, RunKind::Verify, Some("a")));
        assert_eq!(a, run_tag(&repo, RunKind::Backup, Some("a")));
        let tags = std::collections::HashSet::from([a]);
        let got = recent_runs(&repo, &tags, |_| true).unwrap();
        let sources: Vec<(Option<&str>, RunOutcome)> = got.iter().map(|r| (r.source.as_deref(), r.outcome)).collect();
        assert_eq!(got.len(), 22, "{sources:?}");
        assert_eq!(got.iter().filter(|r| r.source.as_deref() == Some("a")).count(), 20);
        assert!(got.iter().any(|r| r.id == old.id) && got.iter().any(|r| r.id == going.id));
        // The source names are not in the record names.
        let names = names(&repo, "runs/").unwrap();
        assert_eq!(names.len(), 43);
        assert!(names.iter().all(|n| !n.contains(".a.") && !n.contains(".b.")));
    }
}
