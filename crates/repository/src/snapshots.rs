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
    ok.sort_by_key(|e| order(e.snapshot.time, e.snapshot.original.is_some(), e.id));
    Ok((ok, bad))
}

/// The order of snapshots, oldest first, for [`list`] and [`briefs`] alike: by time, then a
/// repaired copy (which has its original's time) after its original, so `latest` is the copy,
/// then by id.
fn order(time: chrono::DateTime<chrono::Utc>, repaired: bool, id: Id) -> (chrono::DateTime<chrono::Utc>, bool, Id) {
    (time, repaired, id)
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
    Ok(parent_in(&briefs(repo)?, host, paths, source))
}

/// [`find_parent`] over snapshots already loaded (a run over many sources lists them once).
pub fn parent_in(all: &[Brief], host: &str, paths: &[String], source: Option<&str>) -> Option<Id> {
    let mut sorted_paths = paths.to_vec();
    sorted_paths.sort();
    all.iter().rfind(|b| b.hostname == host && b.paths == sorted_paths && b.source.as_deref() == source).map(|b| b.id)
}

/// What a parent lookup needs of a snapshot.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Brief {
    /// Snapshot id.
    pub id: Id,
    /// Its time.
    pub time: chrono::DateTime<chrono::Utc>,
    /// Its host.
    pub hostname: String,
    /// Its paths, sorted.
    pub paths: Vec<String>,
    /// The config source it is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Whether it is a repaired copy of another.
    #[serde(default)]
    pub repaired: bool,
}

impl Brief {
    /// The brief of snapshot `s` stored as `id`.
    pub fn of(id: Id, s: &Snapshot) -> Brief {
        let mut paths = s.paths.clone();
        paths.sort();
        Brief {
            id,
            time: s.time,
            hostname: s.hostname.clone(),
            paths,
            source: s.source.as_ref().map(|src| src.name.clone()),
            repaired: s.original.is_some(),
        }
    }
}

/// The metadata cache's file of briefs (see [`briefs`]).
const BRIEFS: &str = "snapshot-briefs";

/// Every readable snapshot's [`Brief`], oldest first (the order of [`list`]).
///
/// With the metadata cache, the briefs of snapshots read before are kept in one file of the
/// cache, encrypted with the repository's key: a parent lookup among 10,000 snapshots lists the
/// snapshot names, reads that file and decrypts only the snapshots it does not know yet, instead
/// of all 10,000. The repository stays the authority: a brief is used only while the listing
/// has its snapshot, and it is made from a snapshot file that was authenticated. A file that is
/// missing, damaged or of another key counts as empty. Without the cache, every snapshot is
/// read, as [`list`] does.
pub fn briefs(repo: &Repository) -> Result<Vec<Brief>> {
    let Some(cache) = repo.cache() else {
        let (all, _) = list(repo)?;
        return Ok(all.iter().map(|e| Brief::of(e.id, &e.snapshot)).collect());
    };
    let names: Vec<String> = repo.backend().list(FileType::Snapshot)?.into_iter().map(|(n, _)| n).collect();
    // Cached copies of snapshots another machine forgot go, as `list` has them go.
    repo.cache_retain(FileType::Snapshot, &names.iter().cloned().collect());
    let kept: Vec<Brief> = cache
        .get_own(BRIEFS)
        .and_then(|stored| repo.decode_unpacked(&stored).ok())
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .unwrap_or_default();
    let known_before = kept.len();
    let mut by_id: std::collections::HashMap<Id, Brief> = kept.into_iter().map(|b| (b.id, b)).collect();
    let listed: std::collections::HashSet<Id> = names.iter().filter_map(|n| n.parse().ok()).collect();
    by_id.retain(|id, _| listed.contains(id));
    let mut changed = by_id.len() != known_before;
    let todo: Vec<String> =
        names.into_iter().filter(|n| n.parse::<Id>().map_or(true, |id| !by_id.contains_key(&id))).collect();
    let loaded = util::parallel_map(todo, 8, |name| {
        let r = repo.load_json_listed::<Snapshot>(FileType::Snapshot, &name);
        Ok((name, r))
    })?;
    // A snapshot that cannot be read is left out, as `list` leaves it out of its entries; it is
    // tried again next time.
    for (name, r) in loaded {
        if let (Ok(s), Ok(id)) = (r, name.parse::<Id>()) {
            by_id.insert(id, Brief::of(id, &s));
            changed = true;
        }
    }
    let mut all: Vec<Brief> = by_id.into_values().collect();
    all.sort_by_key(|b| order(b.time, b.repaired, b.id));
    if changed {
        if let Ok(plain) = serde_json::to_vec(&all) {
            cache.put_own(BRIEFS, &repo.encode_unpacked(&plain));
        }
    }
    Ok(all)
}
