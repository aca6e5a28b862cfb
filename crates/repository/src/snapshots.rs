//! Listing snapshots and resolving a user's snapshot reference (`latest`, an id or a prefix).

use lifeboat_backend::FileType;
use lifeboat_format::{Id, Snapshot};

use crate::{util, RepoError, Repository, Result};

/// A snapshot and its id.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SnapshotEntry {
    /// Snapshot id.
    pub id: Id,
    /// Its content.
    #[serde(flatten)]
    pub snapshot: Snapshot,
}

/// Snapshots that could not be loaded, with why.
pub type Unreadable = Vec<(String, RepoError)>;

/// Snapshots already decoded, per repository id and file name, when [`keep_in_memory`] was
/// called: a snapshot file never changes (its name is the hash of its content), so a long-running
/// process (the daemon) decodes each only once, however often it lists them.
type Decoded = std::collections::HashMap<(String, String), Snapshot>;
static DECODED: std::sync::OnceLock<std::sync::Mutex<Decoded>> = std::sync::OnceLock::new();

/// Keep decoded snapshots in memory for later [`list`] calls of this process (only what the
/// newest listing of each repository holds is kept).
pub fn keep_in_memory() {
    let _ = DECODED.set(std::sync::Mutex::new(Decoded::new()));
}

/// Load every snapshot, oldest first. Unreadable snapshots are returned as errors in the second
/// list so listings can go on and `check` can name them.
pub fn list(repo: &Repository) -> Result<(Vec<SnapshotEntry>, Unreadable)> {
    let names: Vec<String> = repo.backend().list(FileType::Snapshot)?.into_iter().map(|(n, _)| n).collect();
    let repo_id = repo.config().id.clone();
    let mut known: Vec<(String, Result<Snapshot>)> = Vec::new();
    let mut todo = names.clone();
    if let Some(Ok(cache)) = DECODED.get().map(|c| c.lock()) {
        todo.retain(|n| match cache.get(&(repo_id.clone(), n.clone())) {
            Some(s) => {
                known.push((n.clone(), Ok(s.clone())));
                false
            }
            None => true,
        });
    }
    repo.cache_retain(FileType::Snapshot, &names.iter().cloned().collect());
    let mut loaded = util::parallel_map(todo, 8, |name| {
        let r = repo.load_json_listed::<Snapshot>(FileType::Snapshot, &name);
        Ok((name, r))
    })?;
    if let Some(Ok(mut cache)) = DECODED.get().map(|c| c.lock()) {
        let listed: std::collections::HashSet<&String> = names.iter().collect();
        cache.retain(|(id, n), _| id != &repo_id || listed.contains(n));
        for (n, r) in &loaded {
            if let Ok(s) = r {
                cache.insert((repo_id.clone(), n.clone()), s.clone());
            }
        }
    }
    loaded.append(&mut known);
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (name, r) in loaded {
        match (r, name.parse::<Id>()) {
            (Ok(snapshot), Ok(id)) => ok.push(SnapshotEntry { id, snapshot }),
            (Err(e), _) => bad.push((name, e)),
            (Ok(_), Err(e)) => bad.push((name.clone(), RepoError::corrupt(format!("snapshot {name}"), e))),
        }
    }
    // A repaired copy has its original's time: it sorts after it, so `latest` is the copy.
    ok.sort_by(|a, b| {
        a.snapshot
            .time
            .cmp(&b.snapshot.time)
            .then(a.snapshot.original.is_some().cmp(&b.snapshot.original.is_some()))
            .then(a.id.cmp(&b.id))
    });
    Ok((ok, bad))
}

/// Every snapshot, oldest first, or the first damaged snapshot file as
/// [`RepoError::DamagedSnapshot`]: for selections (`latest`, the newest of a source), where
/// skipping a damaged file would silently pick an older snapshot.
pub fn list_intact(repo: &Repository) -> Result<Vec<SnapshotEntry>> {
    let (all, bad) = list(repo)?;
    match bad.into_iter().next() {
        Some((name, e)) => Err(damaged(name, e)),
        None => Ok(all),
    }
}

/// A load error of snapshot file `name` as [`RepoError::DamagedSnapshot`] (other errors, such as
/// a backend that cannot be reached, are returned as they are).
pub fn damaged(name: String, e: RepoError) -> RepoError {
    match e {
        RepoError::Corrupt { reason, .. } => RepoError::DamagedSnapshot { name, reason },
        e => e,
    }
}

/// Filters for picking snapshots.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Every tag must be present.
    pub tags: Vec<String>,
    /// Host must match.
    pub host: Option<String>,
    /// Source name must match.
    pub source: Option<String>,
    /// Every path must be among the snapshot's paths.
    pub paths: Vec<String>,
    /// Only snapshots taken at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only snapshots taken before this time.
    pub before: Option<chrono::DateTime<chrono::Utc>>,
}

impl Filter {
    /// Whether a snapshot passes the filter.
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.tags.iter().all(|t| s.tags.contains(t))
            && self.host.as_ref().is_none_or(|h| &s.hostname == h)
            && self.source.as_ref().is_none_or(|n| s.source.as_ref().is_some_and(|src| &src.name == n))
            && self.paths.iter().all(|p| s.paths.contains(p))
            && self.since.is_none_or(|t| s.time >= t)
            && self.before.is_none_or(|t| s.time < t)
    }
}

/// Resolve `latest`, a full id or a unique prefix to one snapshot.
pub fn find(repo: &Repository, reference: &str, filter: &Filter) -> Result<SnapshotEntry> {
    if reference == "latest" {
        // A damaged snapshot file may be the newest: refuse rather than pick an older one.
        let all = list_intact(repo)?;
        return all
            .into_iter()
            .rfind(|e| filter.matches(&e.snapshot))
            .ok_or_else(|| RepoError::SnapshotNotFound(reference.into()));
    }
    if let Ok(id) = reference.parse::<Id>() {
        let snapshot = repo.load_json(FileType::Snapshot, &id.to_hex()).map_err(|e| match e {
            RepoError::Backend(b) if b.is_not_found() => RepoError::SnapshotNotFound(reference.into()),
            e => damaged(id.to_hex(), e),
        })?;
        return Ok(SnapshotEntry { id, snapshot });
    }
    // Any hex prefix is looked up: a short one that matches several snapshots is ambiguous (and
    // said so), never "not found".
    if reference.is_empty() || !reference.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(RepoError::SnapshotNotFound(reference.into()));
    }
    let names: Vec<String> = repo
        .backend()
        .list(FileType::Snapshot)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with(&reference.to_ascii_lowercase()))
        .collect();
    match names.as_slice() {
        [one] => find(repo, one, filter),
        [] => Err(RepoError::SnapshotNotFound(reference.into())),
        _ => Err(RepoError::AmbiguousSnapshot(reference.into())),
    }
}

/// The newest snapshot with the same host and paths (the parent for change detection).
pub fn find_parent(repo: &Repository, host: &str, paths: &[String], source: Option<&str>) -> Result<Option<Id>> {
    let (all, _) = list(repo)?;
    Ok(parent_in(&all, host, paths, source))
}

/// [`find_parent`] over snapshots already loaded (a run over many sources lists them once).
pub fn parent_in(all: &[SnapshotEntry], host: &str, paths: &[String], source: Option<&str>) -> Option<Id> {
    let mut sorted_paths = paths.to_vec();
    sorted_paths.sort();
    all.iter()
        .rfind(|e| {
            let mut p = e.snapshot.paths.clone();
            p.sort();
            e.snapshot.hostname == host
                && p == sorted_paths
                && e.snapshot.source.as_ref().map(|s| s.name.as_str()) == source
        })
        .map(|e| e.id)
}
