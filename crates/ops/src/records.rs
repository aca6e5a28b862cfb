//! Proof records stored in the repository (under `lifeboat/`, encrypted with the master key, so
//! every machine that opens the repository sees them): verification runs and drills.
//!
//! Layout (one object per record; records are never rewritten):
//! - `lifeboat/verify/<snapshot id>/<time>-<rand>.json` — a [`Verification`];
//! - `lifeboat/drills/<time>-<rand>.json` — a [`DrillSummary`] (the full signed report is stored
//!   under `lifeboat/drill-reports/` by the drill command).

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

fn load_all<T: serde::de::DeserializeOwned>(repo: &Repository, prefix: &str) -> Result<Vec<T>, OpsError> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lifeboat).map_err(RepoError::from)? {
        if name.starts_with(prefix) && name.ends_with(".json") {
            out.push(repo.load_json::<T>(FileType::Lifeboat, &name)?);
        }
    }
    Ok(out)
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
