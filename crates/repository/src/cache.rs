//! A local cache of a repository's metadata: index files, snapshot files and tree packs, kept
//! exactly as stored (encrypted), under one directory per repository id, and a few files of its
//! own derived from them (encrypted with the repository's key, [`OWN_FILES`]).
//!
//! What a backup, `snapshots`, `ls` or a restore reads before it touches data — the index, the
//! snapshots and the trees — is small and never changes under its name (every file is named by
//! the SHA-256 of its bytes), so it can be kept on the local disk and read from there instead of
//! from the repository: a cold re-backup reads its parent's trees from a few local files instead
//! of one ranged read per tree, and on S3 `snapshots` costs one listing instead of a request per
//! snapshot.
//!
//! The repository stays the authority:
//! - names always come from a listing of the repository, so a file another machine removed is
//!   never read from the cache, and cached files the listing no longer has are deleted;
//! - every cached file is checked against its name (its SHA-256) before it is used, and is
//!   authenticated and hash-checked again when decoded; a file that fails is deleted and read
//!   from the repository;
//! - the cache is an optimisation only: a cache that cannot be created, read or written is
//!   skipped without an error;
//! - `check`, `repair` and drills do not use it: they must read the repository itself.
//!
//! Files are written to a unique temporary name and renamed, so processes sharing a cache never
//! see a partial file. Nothing is fsynced: a file lost in a crash is fetched again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lifeboat_backend::FileType;
use lifeboat_crypto::sha256;
use lifeboat_format::Id;

/// Tree packs larger than this are not cached (trees are packed apart from data, so a tree pack
/// is at most one pack; anything bigger is not a tree pack of ours).
pub const MAX_CACHED_PACK: u64 = 64 * 1024 * 1024;

/// Cache directories of repositories not opened for this long are removed when another
/// repository's cache is opened.
pub const UNUSED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);

const TAG: &str = "CACHEDIR.TAG";
const TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by Lifeboat.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Counters of one process's use of the cache (for tests and `--verbose` output).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Files served from the cache.
    pub hits: AtomicU64,
    /// Files read from the repository and then cached.
    pub stored: AtomicU64,
    /// Cached files that did not match their name or did not decode, and were deleted.
    pub discarded: AtomicU64,
}

/// The metadata cache of one repository (see the [module docs](self)).
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    stats: CacheStats,
    /// Held while a pack is fetched whole, by pack name's first byte: threads that miss the
    /// same pack wait for one fetch instead of each fetching it.
    fetching: [std::sync::Mutex<()>; 16],
    /// Cached packs kept open, by name.
    open: std::sync::Mutex<HashMap<String, Arc<std::fs::File>>>,
}

/// The cache's own files, beside its copies of the repository's: `snapshot-briefs` holds what a
/// parent lookup needs of each snapshot (see `snapshots::briefs`).
pub const OWN_FILES: &[&str] = &["snapshot-briefs"];

/// Cached packs kept open at most.
const OPEN_PACKS: usize = 64;

fn subdir(ft: FileType) -> Option<&'static str> {
    match ft {
        FileType::Index => Some("index"),
        FileType::Snapshot => Some("snapshots"),
        FileType::Pack => Some("packs"),
        _ => None,
    }
}

/// A name is safe as a file name in the cache only when it is an id (64 hex digits).
fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Cache {
    /// The default base directory: systemd's `$CACHE_DIRECTORY` (a unit with
    /// `CacheDirectory=lifeboat`), else `$XDG_CACHE_HOME/lifeboat`, else `$HOME/.cache/lifeboat`.
    pub fn default_base() -> Option<PathBuf> {
        // systemd may list several directories, separated by colons: the first is ours.
        if let Some(d) = std::env::var("CACHE_DIRECTORY").ok().and_then(|d| d.split(':').next().map(str::to_owned)) {
            if !d.is_empty() {
                return Some(PathBuf::from(d));
            }
        }
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
            return Some(PathBuf::from(x).join("lifeboat"));
        }
        std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache").join("lifeboat"))
    }

    /// Open (creating it if needed) the cache of repository `repo_id` under `base`. Returns
    /// `None` when the directory cannot be created or written: the repository is then read
    /// without a cache. Removes the caches of repositories unused for [`UNUSED_FOR`].
    pub fn open(base: &Path, repo_id: &str) -> Option<Cache> {
        if !is_id(repo_id) {
            return None;
        }
        let dir = base.join(repo_id);
        for sub in ["index", "snapshots", "packs"] {
            std::fs::create_dir_all(dir.join(sub)).ok()?;
        }
        let tag = base.join(TAG);
        if !tag.exists() {
            let _ = write_atomic(&tag, TAG_TEXT.as_bytes());
        }
        // The directory's time says when the repository was last used.
        let now = filetime::FileTime::now();
        let _ = filetime::set_file_mtime(&dir, now);
        remove_unused(base, repo_id);
        Some(Cache { dir, stats: CacheStats::default(), fetching: Default::default(), open: Default::default() })
    }

    /// The directory of this repository's cache.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters of this process's use.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    fn path(&self, ft: FileType, name: &str) -> Option<PathBuf> {
        let sub = subdir(ft)?;
        is_id(name).then(|| self.dir.join(sub).join(name))
    }

    /// The cached bytes of file `name`, only if they match their name (else the file is
    /// deleted).
    pub fn get(&self, ft: FileType, name: &str) -> Option<Vec<u8>> {
        let path = self.path(ft, name)?;
        let data = std::fs::read(&path).ok()?;
        if Id(sha256(&data)).to_hex() != name {
            self.discard(ft, name);
            return None;
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(data)
    }

    /// `length` bytes at `offset` of cached pack `name`, if it is cached and long enough. The
    /// bytes are not checked here: the caller authenticates the blob and calls
    /// [`Cache::discard`] when it fails.
    pub fn get_range(&self, name: &str, offset: u64, length: u32) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let f = self.open_pack(name)?;
        let mut buf = vec![0u8; length as usize];
        f.read_exact_at(&mut buf, offset).ok()?;
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(buf)
    }

    /// Cached pack `name`, opened once and kept open (a walk reads hundreds of trees from one
    /// pack).
    fn open_pack(&self, name: &str) -> Option<Arc<std::fs::File>> {
        let mut open = self.open.lock().ok()?;
        if let Some(f) = open.get(name) {
            return Some(f.clone());
        }
        let f = Arc::new(std::fs::File::open(self.path(FileType::Pack, name)?).ok()?);
        if open.len() >= OPEN_PACKS {
            open.clear();
        }
        open.insert(name.to_owned(), f.clone());
        Some(f)
    }

    /// Held while pack `name` is fetched whole to be cached (see [`Cache::get_range`]).
    pub fn fetch_guard(&self, name: &str) -> Option<std::sync::MutexGuard<'_, ()>> {
        let stripe = usize::from(name.as_bytes().first().copied().unwrap_or(0)) % self.fetching.len();
        self.fetching[stripe].lock().ok()
    }

    /// Keep `data` as file `name`, if it matches its name (best effort).
    pub fn put(&self, ft: FileType, name: &str, data: &[u8]) {
        if ft == FileType::Pack && data.len() as u64 > MAX_CACHED_PACK {
            return;
        }
        let Some(path) = self.path(ft, name) else { return };
        if path.exists() || Id(sha256(data)).to_hex() != name {
            return;
        }
        if write_atomic(&path, data).is_ok() {
            self.stats.stored.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The cache's own file `name` (one of [`OWN_FILES`]): something derived from the
    /// repository's files, encrypted with its key by the caller, which must authenticate it and
    /// treat a missing or damaged file as empty.
    pub fn get_own(&self, name: &str) -> Option<Vec<u8>> {
        if !OWN_FILES.contains(&name) {
            return None;
        }
        std::fs::read(self.dir.join(name)).ok()
    }

    /// Replace the cache's own file `name` (one of [`OWN_FILES`]) with `data` (best effort).
    pub fn put_own(&self, name: &str, data: &[u8]) {
        if OWN_FILES.contains(&name) {
            let _ = write_atomic(&self.dir.join(name), data);
        }
    }

    /// Delete cached file `name` (it failed to decode, or the repository no longer has it).
    pub fn discard(&self, ft: FileType, name: &str) {
        if ft == FileType::Pack {
            if let Ok(mut open) = self.open.lock() {
                open.remove(name);
            }
        }
        if let Some(path) = self.path(ft, name) {
            if std::fs::remove_file(path).is_ok() {
                self.stats.discarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delete every cached file of type `ft` whose name is not in `keep` (what a listing of the
    /// repository returned, or the packs its index names).
    pub fn retain(&self, ft: FileType, keep: &HashSet<String>) {
        let Some(sub) = subdir(ft) else { return };
        let Ok(rd) = std::fs::read_dir(self.dir.join(sub)) else { return };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !keep.contains(name) {
                // Temporaries of other processes are left alone unless stale.
                if name.contains(".tmp-") && !is_stale(&e.path()) {
                    continue;
                }
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn is_stale(p: &Path) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > Duration::from_secs(3600))
}

/// Write `data` to a unique temporary beside `path` and rename it into place.
fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let tmp = PathBuf::from(tmp);
    let r = std::fs::write(&tmp, data).and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Remove the caches (directories named by a repository id) under `base` not used for
/// [`UNUSED_FOR`], except `current`'s.
fn remove_unused(base: &Path, current: &str) {
    let Ok(rd) = std::fs::read_dir(base) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == current || !is_id(name) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > UNUSED_FOR);
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id_of(data: &[u8]) -> String {
        Id(sha256(data)).to_hex()
    }

    #[test]
    fn files_are_served_only_when_they_match_their_name() {
        let base = tempfile::tempdir().unwrap();
        let repo_id = "ab".repeat(32);
        let c = Cache::open(base.path(), &repo_id).unwrap();
        assert!(base.path().join(TAG).exists());
        let data = b"an encrypted index file".to_vec();
        let name = id_of(&data);
        assert_eq!(c.get(FileType::Index, &name), None);
        c.put(FileType::Index, &name, &data);
        assert_eq!(c.get(FileType::Index, &name), Some(data.clone()));
        // Bytes that do not match the name are never stored…
        let other = id_of(b"other");
        c.put(FileType::Index, &other, b"not other");
        assert_eq!(c.get(FileType::Index, &other), None);
        // …and a cached file damaged on disk is deleted, not served.
        let path = c.dir().join("index").join(&name);
        std::fs::write(&path, b"damaged").unwrap();
        assert_eq!(c.get(FileType::Index, &name), None);
        assert!(!path.exists());
        assert_eq!(c.stats().discarded.load(Ordering::Relaxed), 1);
        // Names that are not ids and types that are not cached are refused.
        c.put(FileType::Index, "../escape", b"x");
        c.put(FileType::Lock, &id_of(b"lock"), b"lock");
        assert!(!base.path().join(&repo_id).join("escape").exists());
        assert_eq!(std::fs::read_dir(c.dir()).unwrap().count(), 3);
    }

    #[test]
    fn retain_removes_what_the_repository_no_longer_lists() {
        let base = tempfile::tempdir().unwrap();
        let c = Cache::open(base.path(), &"cd".repeat(32)).unwrap();
        let (a, b) = (b"snapshot a".to_vec(), b"snapshot b".to_vec());
        c.put(FileType::Snapshot, &id_of(&a), &a);
        c.put(FileType::Snapshot, &id_of(&b), &b);
        c.retain(FileType::Snapshot, &HashSet::from([id_of(&b)]));
        assert_eq!(c.get(FileType::Snapshot, &id_of(&a)), None);
        assert_eq!(c.get(FileType::Snapshot, &id_of(&b)), Some(b));
    }

    #[test]
    fn packs_are_read_by_range_and_big_ones_are_not_kept() {
        let base = tempfile::tempdir().unwrap();
        let c = Cache::open(base.path(), &"ef".repeat(32)).unwrap();
        let pack: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let name = id_of(&pack);
        c.put(FileType::Pack, &name, &pack);
        assert!(c.dir().join("packs").join(&name).exists());
        assert_eq!(c.get_range(&name, 10, 5).unwrap(), pack[10..15].to_vec());
        assert_eq!(c.get_range(&name, 998, 5), None, "a range past the end is a miss");
    }

    #[test]
    fn caches_of_repositories_unused_for_a_month_are_removed() {
        let base = tempfile::tempdir().unwrap();
        let old = "01".repeat(32);
        let recent = "02".repeat(32);
        drop(Cache::open(base.path(), &old).unwrap());
        drop(Cache::open(base.path(), &recent).unwrap());
        let long_ago = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(base.path().join(&old), long_ago).unwrap();
        drop(Cache::open(base.path(), &"03".repeat(32)).unwrap());
        assert!(!base.path().join(&old).exists());
        assert!(base.path().join(&recent).exists());
        assert!(Cache::open(base.path(), "not-an-id").is_none());
    }
}
