//! The local metadata cache (issue 15, point 4), end to end against the real binary: what it
//! keeps, that a repository changed by another machine is read right through a stale cache,
//! that a damaged cached file is never used, that `check` is never fooled by it, and that
//! `--no-cache` leaves nothing behind.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// `lifeboat --cache-dir CACHE --repo REPO ARGS…`.
fn lbc_cached(repo: &Path, cache: &Path, args: &[&str]) -> Run {
    run(lifeboat(repo).arg("--cache-dir").arg(cache).args(args))
}

/// The one repository cache under `base` (named by the repository id).
fn repo_cache(base: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = fs::read_dir(base).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    assert_eq!(dirs.len(), 1, "one repository cache under {}: {dirs:?}", base.display());
    dirs[0].clone()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    v.sort();
    v
}

fn listed(repo: &Path, sub: &str) -> Vec<String> {
    names(&repo.join(sub))
}

/// Every cached file of `sub` is a file of the repository, byte for byte.
fn cached_as_stored(cache: &Path, repo: &Path, sub: &str, repo_sub: &str) {
    for n in names(&cache.join(sub)) {
        let stored =
            if repo_sub == "data" { repo.join("data").join(&n[..2]).join(&n) } else { repo.join(repo_sub).join(&n) };
        assert_eq!(fs::read(cache.join(sub).join(&n)).unwrap(), fs::read(&stored).unwrap(), "{sub}/{n}");
    }
}

fn source(dir: &Path) {
    for d in 0..6 {
        let sub = dir.join(format!("d{d}"));
        fs::create_dir_all(sub.join("inner")).unwrap();
        for f in 0..5 {
            write_text(&sub.join(format!("f{f}.txt")), 3000 + f * 100, &format!("{d}-{f}"));
            write_random(&sub.join("inner").join(format!("r{f}")), 20_000, (d * 10 + f) as u64);
        }
    }
}

/// A repository with one backup of [`source`] made with the cache at `<tmp>/cache`: (tmp, repo,
/// src, cache).
fn backed_up() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let t = tempdir();
    let (repo, src, cache) = (t.path().join("repo"), t.path().join("src"), t.path().join("cache"));
    source(&src);
    init(&repo);
    lbc_cached(&repo, &cache, &["backup", "--json", s(&src)]).ok();
    (t, repo, src, cache)
}

#[test]
fn the_cache_holds_index_snapshots_and_tree_packs_as_stored_and_no_cache_leaves_nothing() {
    let (t, repo, src, cache) = backed_up();
    let rc = repo_cache(&cache);
    assert!(cache.join("CACHEDIR.TAG").exists());
    assert_eq!(names(&rc.join("index")), listed(&repo, "index"), "index files are cached as written");
    assert_eq!(names(&rc.join("snapshots")), listed(&repo, "snapshots"), "snapshot files are cached as written");
    let packs = names(&rc.join("packs"));
    assert_eq!(packs.len(), 1, "the tree pack (and only it: data packs are not cached): {packs:?}");
    cached_as_stored(&rc, &repo, "index", "index");
    cached_as_stored(&rc, &repo, "snapshots", "snapshots");
    cached_as_stored(&rc, &repo, "packs", "data");

    // A second backup and a restore read the parent's trees through the cache, and the restore
    // is exact.
    write_text(&src.join("d0/new.txt"), 5000, "new");
    lbc_cached(&repo, &cache, &["backup", "--json", s(&src)]).ok();
    let target = t.path().join("restored");
    lbc_cached(&repo, &cache, &["restore", "latest", "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::ALL);

    // --no-cache creates nothing.
    let other = t.path().join("unused-cache");
    run(lifeboat(&repo).arg("--cache-dir").arg(&other).args(["--no-cache", "snapshots", "--json"])).ok();
    assert!(!other.exists(), "--no-cache must not create a cache");
}

#[test]
fn a_repository_changed_by_another_machine_is_read_right_through_a_stale_cache() {
    let t = tempdir();
    let (repo, src) = (t.path().join("repo"), t.path().join("src"));
    let (mine, theirs) = (t.path().join("mine"), t.path().join("theirs"));
    source(&src);
    init(&repo);
    let first = lbc_cached(&repo, &mine, &["backup", "--json", s(&src)]).ok().json();
    let first_id = first["snapshot_id"].as_str().unwrap().to_string();
    fs::remove_dir_all(src.join("d1")).unwrap();
    write_text(&src.join("d2/changed.txt"), 4000, "changed");
    lbc_cached(&repo, &mine, &["backup", "--json", s(&src)]).ok();
    let rc = repo_cache(&mine);
    assert_eq!(names(&rc.join("snapshots")).len(), 2);

    // Another machine forgets the newest snapshot and prunes: index files and the tree pack of
    // the second backup go, and the index is rewritten.
    let snaps = lbc_cached(&repo, &theirs, &["snapshots", "--json"]).ok().json();
    let newest = snaps.as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_string();
    lbc_cached(&repo, &theirs, &["forget", &newest, "--prune"]).ok();

    // This machine's cache still has the forgotten snapshot and the old index: every command
    // sees the repository as it is now.
    let now = lbc_cached(&repo, &mine, &["snapshots", "--json"]).ok().json();
    let ids: Vec<&str> = now.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "the forgotten snapshot is not listed from the cache: {ids:?}");
    assert_eq!(ids[0], first_id, "the first snapshot is the one left");
    assert_eq!(
        names(&rc.join("snapshots")),
        listed(&repo, "snapshots"),
        "the cached copy of the forgotten snapshot is deleted"
    );
    let target = t.path().join("restored");
    lbc_cached(&repo, &mine, &["restore", "latest", "--target", s(&target)]).ok();
    assert!(under(&target, &src).join("d1").exists(), "the remaining snapshot (with d1) is restored");
    assert_eq!(names(&rc.join("index")), listed(&repo, "index"), "cached index files follow the repository's");
    // And a new backup from the stale machine is complete: check with restic agrees.
    lbc_cached(&repo, &mine, &["backup", "--json", s(&src)]).ok();
    lb(&repo, &["check", "--read-data"]).ok();
    rs(&repo, &["check", "--read-data"]).ok();
}

/// The parent of snapshot `id`, from `snapshots --json` (no cache: the repository's word).
fn parent_of(repo: &Path, id: &str) -> Option<String> {
    let all = run(lifeboat(repo).args(["--no-cache", "snapshots", "--json"])).ok().json();
    let snap = all.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id} listed"));
    snap["parent"].as_str().map(String::from)
}

fn backup_id(repo: &Path, cache: &Path, src: &Path) -> String {
    lbc_cached(repo, cache, &["backup", "--json", s(src)]).ok().json()["snapshot_id"].as_str().unwrap().to_string()
}

/// A backup finds its parent through the cache's file of snapshot briefs, which is encrypted,
/// learns the snapshots other machines make, drops the ones they forget, and is rebuilt when
/// damaged: the parent is always the newest snapshot of the same host and paths.
#[test]
fn the_parent_is_found_through_the_caches_briefs_which_follow_the_repository() {
    let t = tempdir();
    let (repo, src, elsewhere) = (t.path().join("repo"), t.path().join("src"), t.path().join("elsewhere"));
    let (mine, theirs) = (t.path().join("mine"), t.path().join("theirs"));
    source(&src);
    source(&elsewhere);
    init(&repo);
    let a = backup_id(&repo, &mine, &src);
    assert_eq!(parent_of(&repo, &a), None);
    // Other paths are not a parent.
    let other = backup_id(&repo, &mine, &elsewhere);
    assert_eq!(parent_of(&repo, &other), None);
    // That lookup read the first snapshot and kept its brief.
    let briefs = repo_cache(&mine).join("snapshot-briefs");
    let stored = fs::read(&briefs).unwrap();
    let path_text = src.to_string_lossy().into_owned();
    assert!(
        !stored.windows(path_text.len()).any(|w| w == path_text.as_bytes()),
        "the briefs are encrypted: no path in clear"
    );
    // Another machine (its own cache) backs up the same paths: that is now the newest.
    write_text(&src.join("d0/b.txt"), 3000, "b");
    let b = backup_id(&repo, &theirs, &src);
    assert_eq!(parent_of(&repo, &b).as_deref(), Some(a.as_str()));
    write_text(&src.join("d0/c.txt"), 3000, "c");
    let c = backup_id(&repo, &mine, &src);
    assert_eq!(parent_of(&repo, &c).as_deref(), Some(b.as_str()), "the other machine's snapshot is learned");
    // The other machine forgets both: the parent goes back to the first.
    lbc_cached(&repo, &theirs, &["forget", &b, &c]).ok();
    let d = backup_id(&repo, &mine, &src);
    assert_eq!(parent_of(&repo, &d).as_deref(), Some(a.as_str()), "forgotten snapshots are dropped from the briefs");
    // A damaged file of briefs is read as empty and written again.
    fs::write(&briefs, b"not an encrypted file").unwrap();
    let e = backup_id(&repo, &mine, &src);
    assert_eq!(parent_of(&repo, &e).as_deref(), Some(d.as_str()));
    assert_ne!(fs::read(&briefs).unwrap(), b"not an encrypted file", "the briefs are rebuilt");
    // The same answers without the cache.
    write_text(&src.join("d0/f.txt"), 3000, "f");
    let f = run(lifeboat(&repo).args(["--no-cache", "backup", "--json", s(&src)])).ok().json();
    let f = f["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(parent_of(&repo, &f).as_deref(), Some(e.as_str()));
    let g = backup_id(&repo, &mine, &src);
    assert_eq!(parent_of(&repo, &g).as_deref(), Some(f.as_str()), "a snapshot made without the cache is learned");
}

#[test]
fn a_damaged_cached_file_is_never_used_and_check_is_never_fooled_by_the_cache() {
    let (t, repo, src, cache) = backed_up();
    let rc = repo_cache(&cache);

    // Damage every cached file: commands read the repository instead, and replace the copies.
    for sub in ["index", "snapshots", "packs"] {
        for n in names(&rc.join(sub)) {
            let p = rc.join(sub).join(&n);
            let mut b = fs::read(&p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0x55;
            fs::write(&p, b).unwrap();
        }
    }
    let target = t.path().join("restored");
    lbc_cached(&repo, &cache, &["restore", "latest", "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::ALL);
    cached_as_stored(&rc, &repo, "index", "index");
    cached_as_stored(&rc, &repo, "snapshots", "snapshots");
    cached_as_stored(&rc, &repo, "packs", "data");

    // Now the repository's tree pack is damaged while the cached copy is good: check reads the
    // repository and reports it.
    let pack = names(&rc.join("packs")).pop().unwrap();
    let stored = repo.join("data").join(&pack[..2]).join(&pack);
    let mut b = fs::read(&stored).unwrap();
    b[10] ^= 0xff;
    fs::write(&stored, b).unwrap();
    let check = lbc_cached(&repo, &cache, &["check", "--read-data"]);
    assert_ne!(check.code, 0, "check must find the damaged tree pack: {}", check.stdout);
    let verify = lbc_cached(&repo, &cache, &["verify", "--restore-test"]);
    assert_ne!(verify.code, 0, "a restore test reads the repository, not the cache: {verify:?}");
}

#[test]
fn a_damaged_snapshot_file_with_a_good_cached_copy_restores_exactly_that_snapshot() {
    let t = tempdir();
    let (repo, src, cache) = (t.path().join("repo"), t.path().join("src"), t.path().join("cache"));
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"first version\n").unwrap();
    init(&repo);
    lbc_cached(&repo, &cache, &["backup", "--json", s(&src)]).ok();
    fs::write(src.join("a.txt"), b"second version\n").unwrap();
    let second = lbc_cached(&repo, &cache, &["backup", "--json", s(&src)]).ok().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let file = repo.join("snapshots").join(&second);
    let mut b = fs::read(&file).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x5a;
    fs::write(&file, b).unwrap();
    // The newest snapshot is read from its cached copy (checked against its id): `latest` is
    // still the newest, never an older one.
    let target = t.path().join("t");
    lbc_cached(&repo, &cache, &["restore", "latest", "--target", s(&target)]).ok();
    assert_eq!(fs::read(under(&target, &src).join("a.txt")).unwrap(), b"second version\n");
    // check and verify read the repository, and name the damaged file.
    let r = lbc_cached(&repo, &cache, &["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(&second[..8]) || r.stderr.contains(&second[..8]), "{r:?}");
    let r = lbc_cached(&repo, &cache, &["verify", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    // Without the cache, the damage is named by the selection itself.
    let r = run(lifeboat(&repo).args(["--no-cache", "restore", "latest", "--target"]).arg(t.path().join("t2")));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&second), "{r:?}");
}
