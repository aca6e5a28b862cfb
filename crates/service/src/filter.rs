//! Which snapshots an operation works on: filters as the command line spells them, and one
//! snapshot by reference (`latest`, an id or a prefix) with an error that names the filter.

use crate::error::{Result, ServiceError};

/// Build a snapshot filter from command-line style values (times as `2026-11-20`, `24h`, …).
#[derive(Clone, Debug, Default)]
pub struct FilterSpec {
    /// Tags (all must match).
    pub tags: Vec<String>,
    /// Host.
    pub host: Option<String>,
    /// Source name.
    pub source: Option<String>,
    /// Paths (all must be included).
    pub paths: Vec<String>,
    /// Taken at or after.
    pub since: Option<String>,
    /// Taken before.
    pub before: Option<String>,
}

impl FilterSpec {
    /// The engine's filter, times parsed.
    pub fn filter(&self) -> Result<lifeboat_repository::snapshots::Filter> {
        let now = chrono::Utc::now();
        let time = |t: &Option<String>, flag: &str| {
            t.as_deref()
                .map(|t| lifeboat_ops::duration::parse_time(t, now))
                .transpose()
                .map_err(|e| ServiceError::usage(format!("{flag}: {e}")))
        };
        Ok(lifeboat_repository::snapshots::Filter {
            tags: self.tags.clone(),
            host: self.host.clone(),
            source: self.source.clone(),
            paths: self.paths.clone(),
            since: time(&self.since, "--since")?,
            before: time(&self.before, "--before")?,
        })
    }

    /// The filter in words, for "no snapshot matches" (`--source db --before 2026-11-20`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for t in &self.tags {
            parts.push(format!("--tag {t}"));
        }
        if let Some(h) = &self.host {
            parts.push(format!("--host {h}"));
        }
        if let Some(s) = &self.source {
            parts.push(format!("--source {s}"));
        }
        for p in &self.paths {
            parts.push(format!("--path {p}"));
        }
        if let Some(s) = &self.since {
            parts.push(format!("--since {s}"));
        }
        if let Some(b) = &self.before {
            parts.push(format!("--before {b}"));
        }
        parts.join(" ")
    }
}

/// Find one snapshot (`latest`, an id or a prefix) among those the filter passes; when none
/// matches, the error names the filter.
pub fn find_snapshot(
    repo: &lifeboat_repository::Repository,
    reference: &str,
    spec: &FilterSpec,
) -> Result<lifeboat_repository::snapshots::SnapshotEntry> {
    let filter = spec.filter()?;
    lifeboat_repository::snapshots::find(repo, reference, &filter).map_err(|e| {
        let described = spec.describe();
        match e {
            lifeboat_repository::RepoError::SnapshotNotFound(r) if !described.is_empty() => {
                ServiceError::msg(format!("no snapshot matches {r:?} with {described}"))
            }
            e => e.into(),
        }
    })
}
