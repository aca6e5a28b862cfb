//! End-to-end tests of the `lifeboat` binary: real data is backed up, restored and compared byte
//! for byte and with its metadata; real restic 0.14 (`/usr/bin/restic`) is the interoperability
//! oracle in both directions. Every test has its own temporary directories.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const MIB: usize = 1 << 20;

/// What [`build_rich_tree`] made that tests look at specifically.
struct Rich {
    /// The file carrying `user.test`, if extended attributes work here.
    xattr_file: Option<PathBuf>,
    /// Regular files in the tree (hard links counted once per path).
    files: u64,
}

const XATTR_VALUE: &[u8] = b"lifeboat\x00xattr \xff value";

/// A tree exercising everything a restore must reproduce: nested and empty directories, an empty
/// file, a big incompressible and a compressible file, special permission bits, owners,
/// relative/absolute/dangling symlinks, a hard-link pair across directories, a read-only and a
/// sticky directory, an xattr, and distinct nanosecond mtimes on every entry.
fn build_rich_tree(src: &Path, big: usize) -> Rich {
    let mut files = 0;
    let mut file = |rel: &str, data: &[u8], mode: u32| {
        let p = src.join(rel);
        fs::write(&p, data).unwrap();
        chmod(&p, mode);
        files += 1;
    };
    fs::create_dir_all(src.join("docs/nested/deep")).unwrap();
    fs::create_dir(src.join("empty_dir")).unwrap();
    fs::create_dir(src.join("ro_dir")).unwrap();
    fs::create_dir(src.join("shared")).unwrap();
    file("docs/nested/deep/leaf.txt", b"a leaf deep down\n", 0o644);
    file("docs/readme.md", b"# docs\n", 0o644);
    file("empty_file", b"", 0o644);
    file("secret", b"top secret\n", 0o600);
    file("tool", b"#!/bin/sh\necho tool\n", 0o755);
    file("readonly", b"do not touch\n", 0o444);
    file("ro_dir/inside", b"inside a read-only directory\n", 0o640);
    file("shared/note", b"sticky\n", 0o666);
    file("hard_a", b"one inode, two names\n", 0o640);
    file("xattr_file", b"has an extended attribute\n", 0o644);
    file("owned_by_nobody", b"nobody's\n", 0o644);
    file("ünï cödé 🚀 'single quotes' & spaces.txt", b"a printable UTF-8 name\n", 0o644);
    if is_root() {
        file("suid", b"#!/bin/sh\n", 0o4755);
        std::os::unix::fs::chown(src.join("owned_by_nobody"), Some(65534), Some(65534)).unwrap();
    } else {
        println!("note: not root: no setuid file, no foreign owner");
    }
    fs::hard_link(src.join("hard_a"), src.join("docs/hard_b")).unwrap();
    files += 1;
    write_random(&src.join("random.bin"), big, 42);
    write_compressible(&src.join("compressible.txt"), 5 * MIB);
    files += 2;
    symlink("docs/nested/deep/leaf.txt", src.join("link_rel")).unwrap();
    symlink("../no/such/target", src.join("docs/link_dangling")).unwrap();
    symlink("/etc/hostname", src.join("link_abs")).unwrap();
    let xattr_file = set_xattr(&src.join("xattr_file"), "user.test", XATTR_VALUE).then(|| src.join("xattr_file"));
    chmod(&src.join("ro_dir"), 0o555);
    chmod(&src.join("shared"), 0o1777);
    chmod(&src.join("docs/nested"), 0o700);
    chmod(&src.join("empty_dir"), 0o750);
    set_tree_times(src);
    Rich { xattr_file, files }
}

/// Give every entry below and including `root` its own mtime with a nanosecond part, children
/// before their directories (so the directory times stay as set).
fn set_tree_times(root: &Path) {
    let all = list_tree(root);
    for (i, rel) in all.iter().enumerate().rev() {
        let i = i as u64;
        set_mtime(&root.join(rel), 1_500_000_000 + i * 86_400 + 17, ((i * 7_919 + 123_456_789) % 1_000_000_000) as u32);
    }
    set_mtime(root, 1_400_000_000, 987_654_321);
}

// -------------------------------------------------------------------------------------------
// 1. Round trip

#[test]
fn round_trip_preserves_content_and_metadata() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("restore"));
    fs::create_dir(&src).unwrap();
    let rich = build_rich_tree(&src, 20 * MIB);
    init(&repo);

    let b = backup_json(&repo, &[s(&src)]);
    assert_eq!(b["errors"].as_array().map(Vec::len), Some(0), "{b:#}");
    assert_eq!(num(&b, "files_new"), rich.files, "{b:#}");
    assert_eq!(num(&b, "total_files_processed"), rich.files, "{b:#}");
    // 20 MiB random + 5 MiB text: the text must compress (to well under 1 MiB) — the random
    // part cannot.
    let added = num(&b, "data_added_packed");
    assert!(added > 20 * MIB as u64, "random data cannot shrink: {b:#}");
    assert!(added < 21 * MIB as u64, "compressible file was not compressed: {b:#}");

    let r = lb(&repo, &["restore", "latest", "--target", s(&target), "--verify"]).ok();
    assert!(r.stderr.trim().is_empty(), "restore warned:\n{}", r.stderr);
    assert!(r.stdout.contains("files verified"), "{}", r.stdout);
    let restored = under(&target, &src);

    assert_same_tree(&src, &restored, Compare::ALL);
    // Spelled out, so a regression names the property.
    let empty = restored.join("empty_dir");
    assert!(empty.is_dir() && fs::read_dir(&empty).unwrap().next().is_none(), "empty dir not restored empty");
    assert_eq!(fs::metadata(restored.join("empty_file")).unwrap().len(), 0);
    assert_eq!(fs::read_link(restored.join("docs/link_dangling")).unwrap(), Path::new("../no/such/target"));
    assert_eq!(fs::read_link(restored.join("link_abs")).unwrap(), Path::new("/etc/hostname"));
    let (a, b2) = (fs::metadata(restored.join("hard_a")).unwrap(), fs::metadata(restored.join("docs/hard_b")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (b2.ino(), 2), "hard link pair not restored as one inode");
    if is_root() {
        assert_eq!(fs::metadata(restored.join("suid")).unwrap().mode() & 0o7777, 0o4755);
        let m = fs::metadata(restored.join("owned_by_nobody")).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534));
    }
    let ro = fs::metadata(restored.join("readonly")).unwrap();
    assert_eq!((ro.mode() & 0o7777, ro.mtime()), (0o444, fs::metadata(src.join("readonly")).unwrap().mtime()));
    match &rich.xattr_file {
        Some(f) => {
            let got = xattrs(&under(&target, f));
            assert_eq!(got.get("user.test").map(Vec::as_slice), Some(XATTR_VALUE), "xattr lost: {got:?}");
        }
        None => println!("note: xattrs unsupported on this file system; xattr round trip not checked"),
    }
    assert!(leftover_tmp(&target).is_empty(), "temporaries left: {:?}", leftover_tmp(&target));
}

// -------------------------------------------------------------------------------------------
// 2. Interoperability with restic

#[test]
fn restic_checks_and_restores_lifeboat_repository() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("restic-restore"));
    fs::create_dir(&src).unwrap();
    let rich = build_rich_tree(&src, 3 * MIB);
    init(&repo);
    let first = backup_json(&repo, &[s(&src)]);

    // Second backup with changes: one file grows, one is new, one is gone.
    let mut grown = fs::read(src.join("docs/readme.md")).unwrap();
    grown.extend_from_slice(&random_bytes(700 * 1024, 7));
    fs::write(src.join("docs/readme.md"), grown).unwrap();
    write_random(&src.join("docs/new.bin"), 1_200_000, 8);
    fs::remove_file(src.join("secret")).unwrap();
    set_tree_times(&src);
    let second = backup_json(&repo, &[s(&src)]);
    assert_eq!(second["parent"], first["snapshot_id"], "{second:#}");

    // Every compression mode writes blobs restic can read.
    let extra = tmp.path().join("extra");
    fs::create_dir(&extra).unwrap();
    for (mode, stored_max) in [("off", None), ("max", Some(64 * 1024)), ("7", Some(64 * 1024))] {
        write_text(&extra.join(format!("text-{mode}")), 2 * MIB, &format!("compression {mode}"));
        let b = backup_json(&repo, &["--compression", mode, s(&extra)]);
        let packed = num(&b, "data_added_packed");
        match stored_max {
            None => assert!(packed >= 2 * MIB as u64, "--compression off compressed: {b:#}"),
            Some(max) => assert!(packed < max, "--compression {mode} did not compress: {b:#}"),
        }
    }

    let c = rs(&repo, &["check", "--read-data"]);
    assert_eq!(c.code, 0, "restic check --read-data failed on a Lifeboat repository:\n{}\n{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("no errors were found"), "{}", c.stdout);
    let snaps = rs(&repo, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(5), "restic sees {snaps:#}");

    rs(&repo, &["restore", second["snapshot_id"].as_str().unwrap(), "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::ALL);
    let t2 = tmp.path().join("restic-restore-extra");
    rs(&repo, &["restore", "latest", "--target", s(&t2)]).ok();
    assert_same_tree(&extra, &under(&t2, &extra), Compare::ALL);
    if let Some(f) = &rich.xattr_file {
        let got = xattrs(&under(&target, f));
        assert_eq!(got.get("user.test").map(Vec::as_slice), Some(XATTR_VALUE), "restic restored xattrs {got:?}");
    }
}

#[test]
fn lifeboat_reads_restic_repository_with_max_compression() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("restore"));
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir(src.join("empty")).unwrap();
    write_random(&src.join("random.bin"), 3 * MIB, 3);
    write_compressible(&src.join("sub/text.txt"), 3 * MIB);
    fs::write(src.join("sub/deeper/small"), b"small file\n").unwrap();
    fs::write(src.join("empty_file"), b"").unwrap();
    chmod(&src.join("sub/deeper/small"), 0o600);
    chmod(&src.join("random.bin"), 0o755);
    symlink("sub/text.txt", src.join("link")).unwrap();
    symlink("dangling/target", src.join("dangling")).unwrap();
    fs::hard_link(src.join("sub/deeper/small"), src.join("hard")).unwrap();
    set_tree_times(&src);

    rs(&repo, &["init"]).ok();
    let cfg = rs(&repo, &["cat", "config"]).ok().json();
    assert_eq!(cfg["version"], 2, "restic 0.14 should create a v2 repository: {cfg:#}");
    rs(&repo, &["--compression", "max", "backup", s(&src)]).ok();

    lb(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::ALL);
    assert!(leftover_tmp(&target).is_empty());

    let c = lb(&repo, &["check", "--read-data"]).ok();
    assert!(c.stdout.contains("no errors were found"), "{}\n{}", c.stdout, c.stderr);

    // And back: a Lifeboat backup into the restic repository stays valid for restic.
    fs::write(src.join("added-by-lifeboat"), random_bytes(600_000, 9)).unwrap();
    let b = backup_json(&repo, &[s(&src)]);
    assert_eq!(num(&b, "files_new"), 1, "{b:#}");
    assert!(!b["parent"].is_null(), "restic's snapshot should be the parent: {b:#}");
    let c = rs(&repo, &["check", "--read-data"]);
    assert_eq!(c.code, 0, "restic check after a Lifeboat backup:\n{}\n{}", c.stdout, c.stderr);
}

/// Which blob of `pack` covers byte `offset`, according to restic's view of the index.
fn blob_at(repo: &Path, pack: &str, offset: u64) -> Option<String> {
    let ids = rs(repo, &["list", "index"]).ok().stdout;
    for idx in ids.lines().filter(|l| !l.trim().is_empty()) {
        let v = rs(repo, &["cat", "index", idx.trim()]).ok().json();
        for p in v["packs"].as_array().into_iter().flatten().filter(|p| p["id"] == pack) {
            for b in p["blobs"].as_array().into_iter().flatten() {
                let (o, l) = (num(b, "offset"), num(b, "length"));
                if o <= offset && offset < o + l {
                    return b["id"].as_str().map(String::from);
                }
            }
        }
    }
    None
}

fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        list_tree(&repo.join("data")).into_iter().map(|p| repo.join("data").join(p)).filter(|p| p.is_file()).collect();
    v.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    v
}

fn flip_byte(path: &Path, at: usize) {
    let mode = fs::metadata(path).unwrap().mode();
    chmod(path, mode | 0o200); // repository files may be stored read-only
    let mut data = fs::read(path).unwrap();
    data[at] ^= 0xff;
    fs::write(path, data).unwrap();
    chmod(path, mode & 0o7777);
}

#[test]
fn check_names_damaged_pack_blob_and_index() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    write_random(&src.join("data.bin"), 3 * MIB, 11);
    fs::write(src.join("small.txt"), b"small\n").unwrap();
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    lb(&repo, &["check", "--read-data"]).ok();

    // (a) one flipped byte in the middle of the biggest (data) pack.
    let pack = pack_files(&repo).into_iter().next().unwrap();
    let pack_id = pack.file_name().unwrap().to_string_lossy().into_owned();
    let size = fs::metadata(&pack).unwrap().len() as usize;
    let blob =
        blob_at(&repo, &pack_id, (size / 2) as u64).expect("restic's index has a blob at the middle of the pack");
    flip_byte(&pack, size / 2);
    let c = lb(&repo, &["check", "--read-data"]).code(1);
    assert!(c.stderr.contains(&format!("pack {}", &pack_id[..8])), "pack {} not named:\n{}", &pack_id[..8], c.stderr);
    assert!(c.stderr.contains(&format!("blob {}", &blob[..8])), "blob {} not named:\n{}", &blob[..8], c.stderr);
    assert!(!c.stderr.contains("panicked"), "{}", c.stderr);

    // A restore of the damaged file fails and leaves neither a wrong file nor temporaries.
    let target = tmp.path().join("restore");
    let r = lb(&repo, &["restore", "latest", "--target", s(&target)]);
    assert_ne!(r.code, 0, "restore of damaged data succeeded:\n{}", r.stdout);
    r.one_error_line();
    let restored = under(&target, &src.join("data.bin"));
    assert!(!restored.exists(), "a damaged file was left under its real name");
    assert!(leftover_tmp(&target).is_empty(), "temporaries left: {:?}", leftover_tmp(&target));

    flip_byte(&pack, size / 2);
    lb(&repo, &["check", "--read-data"]).ok();

    // (b) a missing pack is found without reading data.
    let aside = tmp.path().join("aside");
    fs::rename(&pack, &aside).unwrap();
    let c = lb(&repo, &["check"]).code(1);
    let line = c.stderr.lines().find(|l| l.contains(&format!("pack {}", &pack_id[..8])));
    assert!(line.is_some_and(|l| l.contains("missing")), "missing pack {} not named:\n{}", &pack_id[..8], c.stderr);
    fs::rename(&aside, &pack).unwrap();
    lb(&repo, &["check"]).ok();

    // (c) a damaged snapshot file is named by check and by snapshots, which fails (issue 16).
    let snap = list_tree(&repo.join("snapshots")).into_iter().next().map(|p| repo.join("snapshots").join(p)).unwrap();
    let snap_id = snap.file_name().unwrap().to_string_lossy().into_owned();
    let len = fs::metadata(&snap).unwrap().len() as usize;
    flip_byte(&snap, len / 2);
    let c = lb(&repo, &["check"]).code(1);
    assert!(
        c.stderr.contains(&format!("snapshot {}", &snap_id[..8])),
        "snapshot {} not named:\n{}",
        &snap_id[..8],
        c.stderr
    );
    // (Without the metadata cache: with it, the good cached copy is listed; tests/cache.rs.)
    let l = lb(&repo, &["--no-cache", "snapshots"]).code(1);
    assert!(l.stderr.contains(&snap_id), "damaged snapshot not reported:\n{}", l.stderr);
    flip_byte(&snap, len / 2);
    lb(&repo, &["check"]).ok();

    // (d) a truncated index file.
    let index = list_tree(&repo.join("index")).into_iter().next().map(|p| repo.join("index").join(p)).unwrap();
    let index_id = index.file_name().unwrap().to_string_lossy().into_owned();
    let data = fs::read(&index).unwrap();
    fs::write(&index, &data[..data.len() / 2]).unwrap();
    let c = lb(&repo, &["check"]).code(1);
    assert!(
        c.stderr.contains(&format!("index {}", &index_id[..8])),
        "index {} not named:\n{}",
        &index_id[..8],
        c.stderr
    );
}

// -------------------------------------------------------------------------------------------
// 3. Parent snapshots and deduplication

#[test]
fn unchanged_changed_forced_and_deduplicated_backups() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir_all(src.join("a/b")).unwrap();
    write_random(&src.join("big.bin"), 20 * MIB, 5);
    for i in 0..10 {
        let dir = if i % 2 == 0 { "a" } else { "a/b" };
        fs::write(src.join(format!("{dir}/f{i}.txt")), format!("file {i}\n").repeat(i + 1)).unwrap();
    }
    let files = 11;
    init(&repo);

    let b1 = backup_json(&repo, &[s(&src)]);
    assert_eq!((num(&b1, "files_new"), num(&b1, "files_unmodified")), (files, 0), "{b1:#}");
    assert!(b1["parent"].is_null());

    let b2 = backup_json(&repo, &[s(&src)]);
    assert_eq!(b2["parent"], b1["snapshot_id"], "{b2:#}");
    assert_eq!(num(&b2, "files_unmodified"), files, "{b2:#}");
    assert_eq!((num(&b2, "files_new"), num(&b2, "files_changed"), num(&b2, "data_blobs")), (0, 0, 0), "{b2:#}");
    assert!(num(&b2, "data_added") < 64 * 1024, "unchanged backup added data: {b2:#}");

    fs::write(src.join("a/b/f3.txt"), b"changed content, another size\n").unwrap();
    let b3 = backup_json(&repo, &[s(&src)]);
    assert_eq!(b3["parent"], b2["snapshot_id"], "{b3:#}");
    assert_eq!((num(&b3, "files_changed"), num(&b3, "files_unmodified")), (1, files - 1), "{b3:#}");
    assert_eq!(num(&b3, "files_new"), 0, "{b3:#}");

    let b4 = backup_json(&repo, &[s(&src), "--force"]);
    assert_eq!(num(&b4, "files_unmodified"), 0, "--force must read every file: {b4:#}");
    assert_eq!(num(&b4, "total_files_processed"), files, "{b4:#}");
    assert_eq!(num(&b4, "total_bytes_processed"), num(&b3, "total_bytes_processed"), "{b4:#}");
    assert_eq!(num(&b4, "data_blobs"), 0, "re-read data is already stored: {b4:#}");

    // The same 20 MiB under another path (no parent): deduplicated, not stored again.
    let other = tmp.path().join("other/place");
    fs::create_dir_all(&other).unwrap();
    fs::copy(src.join("big.bin"), other.join("renamed.bin")).unwrap();
    let b5 = backup_json(&repo, &[s(&other)]);
    assert!(b5["parent"].is_null(), "{b5:#}");
    assert_eq!(num(&b5, "files_new"), 1, "{b5:#}");
    assert!(num(&b5, "data_added_packed") < MIB as u64, "20 MiB copy was not deduplicated: {b5:#}");
    lb(&repo, &["check"]).ok();
}

// -------------------------------------------------------------------------------------------
// 4. Excludes

#[test]
fn excludes_remove_matching_entries() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    for d in ["sub/deeper", "cache/inner", "cache2"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in [
        "keep.txt",
        "app.log",
        "sub/deep.log",
        "sub/deeper/x.log",
        "sub/keep.md",
        "notes.log.txt",
        "cache/data",
        "cache/inner/more",
        "cache2/kept",
    ] {
        fs::write(src.join(f), f.as_bytes()).unwrap();
    }
    init(&repo);
    let cache = src.join("cache");
    let b = backup_json(&repo, &[s(&src), "--exclude", "*.log", "--exclude", s(&cache)]);
    assert_eq!(num(&b, "files_new"), 4, "{b:#}");

    let ls = lb(&repo, &["ls", "--json", "latest"]).ok().json();
    let paths: Vec<String> = ls.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect();
    let p = |rel: &str| format!("{}/{rel}", s(&src));
    for kept in ["keep.txt", "sub", "sub/deeper", "sub/keep.md", "notes.log.txt", "cache2", "cache2/kept"] {
        assert!(paths.contains(&p(kept)), "{kept} missing from {paths:#?}");
    }
    for gone in ["app.log", "sub/deep.log", "sub/deeper/x.log", "cache", "cache/data", "cache/inner"] {
        assert!(!paths.contains(&p(gone)), "{gone} should be excluded: {paths:#?}");
    }
    assert!(!paths.iter().any(|x| x.ends_with(".log")), "{paths:#?}");
    let snaps = lb(&repo, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps[0]["excludes"], serde_json::json!(["*.log", s(&cache)]), "{snaps:#}");
}

// -------------------------------------------------------------------------------------------
// 5. snapshots / ls / restore options

#[test]
fn snapshots_ls_and_restore_options() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir_all(src.join("a/inner")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a/x.txt"), b"x version 1\n").unwrap();
    fs::write(src.join("a/inner/y.txt"), b"y\n").unwrap();
    fs::write(src.join("b/z.txt"), b"z\n").unwrap();
    symlink("../a/x.txt", src.join("b/to_x")).unwrap();
    init(&repo);
    let s1 = backup_json(&repo, &[s(&src), "--tag", "daily", "--tag", "db"]);
    fs::write(src.join("a/x.txt"), b"x version 2, longer\n").unwrap();
    let s2 = backup_json(&repo, &[s(&src), "--tag", "weekly"]);
    let (id1, id2) = (s1["snapshot_id"].as_str().unwrap(), s2["snapshot_id"].as_str().unwrap());

    // snapshots --json and tag filters
    let all = lb(&repo, &["snapshots", "--json"]).ok().json();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id1, id2], "{all:#}");
    assert_eq!(all[0]["paths"], serde_json::json!([s(&src)]));
    assert_eq!(all[0]["tags"], serde_json::json!(["daily", "db"]));
    let ids_for = |tags: &[&str]| -> Vec<String> {
        let mut args = vec!["snapshots", "--json"];
        for t in tags {
            args.extend(["--tag", t]);
        }
        let v = lb(&repo, &args).ok().json();
        v.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids_for(&["daily"]), [id1]);
    assert_eq!(ids_for(&["weekly"]), [id2]);
    assert_eq!(ids_for(&["daily", "db"]), [id1]);
    assert!(ids_for(&["daily", "weekly"]).is_empty());
    assert!(ids_for(&["nope"]).is_empty());

    // ls --json of a snapshot by prefix, and of a subtree
    let ls = lb(&repo, &["ls", "--json", &id1[..8]]).ok().json();
    let entry = |v: &serde_json::Value, rel: &str| {
        let want = format!("{}/{rel}", s(&src));
        v.as_array().unwrap().iter().find(|e| e["path"] == want.as_str()).cloned()
    };
    let x = entry(&ls, "a/x.txt").expect("a/x.txt listed");
    assert_eq!((x["type"].as_str(), x["size"].as_u64()), (Some("file"), Some(12)), "{x:#}");
    assert_eq!(x["mode"].as_u64(), Some(0o644), "{x:#}");
    let l = entry(&ls, "b/to_x").expect("b/to_x listed");
    assert_eq!((l["type"].as_str(), l["linktarget"].as_str()), (Some("symlink"), Some("../a/x.txt")), "{l:#}");
    let sub = lb(&repo, &["ls", "--json", id2, &format!("{}/a", s(&src))]).ok().json();
    let sub_paths: Vec<&str> = sub.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    let want: Vec<String> =
        ["a/inner", "a/inner/y.txt", "a/x.txt"].iter().map(|r| format!("{}/{r}", s(&src))).collect();
    assert_eq!(sub_paths, want, "ls below a path");

    // restore --include: only that subtree
    let t_inc = tmp.path().join("t_inc");
    lb(&repo, &["restore", "latest", "--target", s(&t_inc), "--include", &format!("{}/a", s(&src))]).ok();
    let got = under(&t_inc, &src);
    assert_same_tree(&src.join("a"), &got.join("a"), Compare::ALL);
    assert!(!got.join("b").exists(), "b restored although only a was included");
    assert_eq!(list_tree(&got), [PathBuf::from("a"), "a/inner".into(), "a/inner/y.txt".into(), "a/x.txt".into()]);

    // restore by tag filter picks the older snapshot
    let t_old = tmp.path().join("t_old");
    lb(&repo, &["restore", "latest", "--tag", "daily", "--target", s(&t_old)]).ok();
    assert_eq!(fs::read(under(&t_old, &src.join("a/x.txt"))).unwrap(), b"x version 1\n");

    // --dry-run writes nothing
    let t_dry = tmp.path().join("t_dry");
    let d = lb(&repo, &["restore", "latest", "--target", s(&t_dry), "--dry-run"]).ok();
    assert!(d.stdout.contains("would restore") && d.stdout.contains("3 files"), "{}", d.stdout);
    assert!(!t_dry.exists(), "dry run created the target");

    // non-empty target: refused with one line naming --overwrite, nothing written
    let t_full = tmp.path().join("t_full");
    fs::create_dir(&t_full).unwrap();
    fs::write(t_full.join("stray"), b"was here first\n").unwrap();
    let r = lb(&repo, &["restore", "latest", "--target", s(&t_full)]).code(1);
    assert!(r.one_error_line().contains("--overwrite"), "{}", r.stderr);
    assert_eq!(list_tree(&t_full), [PathBuf::from("stray")], "refused restore wrote files");

    // --overwrite replaces existing files (including a directory where a file belongs)
    let x_dst = under(&t_full, &src.join("a/x.txt"));
    fs::create_dir_all(x_dst.parent().unwrap()).unwrap();
    fs::write(&x_dst, b"stale content that is longer than the real one\n").unwrap();
    fs::create_dir_all(under(&t_full, &src.join("b/z.txt")).join("a-dir")).unwrap();
    lb(&repo, &["restore", "latest", "--target", s(&t_full), "--overwrite"]).ok();
    assert_same_tree(&src, &under(&t_full, &src), Compare::ALL);
    assert_eq!(fs::read(t_full.join("stray")).unwrap(), b"was here first\n");

    for t in [&t_inc, &t_old, &t_full] {
        assert!(leftover_tmp(t).is_empty(), "temporaries left in {}: {:?}", t.display(), leftover_tmp(t));
    }
}

#[test]
fn restore_include_of_missing_path_is_an_error() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("t"));
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("a/x"), b"x").unwrap();
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    let missing = format!("{}/a/not-there", s(&src));
    let r = lb(&repo, &["restore", "latest", "--target", s(&target), "--include", &missing]).code(1);
    assert!(r.one_error_line().contains("not-there"), "{}", r.stderr);
    assert!(!target.exists() || list_tree(&target).is_empty(), "restored {:?}", list_tree(&target));
}

// -------------------------------------------------------------------------------------------
// File names restic escapes in trees (Go strconv.Quote: backslash, double quote, control
// characters, invalid UTF-8) and names that are not UTF-8.

const ODD_NAMES: &[&[u8]] =
    &[b"back\\slash", b"quo\"te", b"new\nline", b"tab\there", b"ctl\x01x", b"bad\xff", b"bad\xfe", b"plain"];

fn make_odd_names(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    fs::create_dir_all(dir).unwrap();
    for n in ODD_NAMES {
        fs::write(dir.join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
}

/// Every name of [`ODD_NAMES`] exists byte for byte in `dir`, with its own content, and nothing else.
#[track_caller]
fn assert_odd_names(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let mut got: Vec<Vec<u8>> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    got.sort();
    let mut want: Vec<Vec<u8>> = ODD_NAMES.iter().map(|n| n.to_vec()).collect();
    want.sort();
    let show =
        |v: &[Vec<u8>]| v.iter().map(|n| String::from_utf8_lossy(n).escape_debug().to_string()).collect::<Vec<_>>();
    assert_eq!(show(&got), show(&want), "restored names differ");
    assert_eq!(got, want, "restored names differ in bytes");
    for n in ODD_NAMES {
        assert_eq!(fs::read(dir.join(std::ffi::OsStr::from_bytes(n))).unwrap(), *n);
    }
}

#[test]
fn non_utf8_file_names_round_trip() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("t"));
    make_odd_names(&src);
    init(&repo);
    let b = backup_json(&repo, &[s(&src)]);
    assert_eq!(num(&b, "files_new"), ODD_NAMES.len() as u64, "{b:#}");
    lb(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_odd_names(&under(&target, &src));
}

#[test]
fn restic_reads_lifeboat_trees_with_escaped_names() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("t"));
    make_odd_names(&src);
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    let c = rs(&repo, &["check", "--read-data"]);
    assert_eq!(c.code, 0, "restic check fails on names Lifeboat wrote:\n{}\n{}", c.stdout, c.stderr);
    rs(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_odd_names(&under(&target, &src));
}

#[test]
fn lifeboat_restores_escaped_names_from_restic() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("t"));
    make_odd_names(&src);
    rs(&repo, &["init"]).ok();
    rs(&repo, &["backup", s(&src)]).ok();
    lb(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_odd_names(&under(&target, &src));
}

// -------------------------------------------------------------------------------------------
// 6. Bad input: one line, documented exit code

#[test]
fn bad_input_gives_one_line_and_documented_exit_code() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"f").unwrap();
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    let empty_dir = tmp.path().join("empty");
    fs::create_dir(&empty_dir).unwrap();
    let a_file = tmp.path().join("a-file");
    fs::write(&a_file, b"").unwrap();
    let missing = tmp.path().join("no-such-repo");

    struct Case<'a> {
        name: &'a str,
        run: Run,
        code: i32,
        says: &'a str,
    }
    let cases = [
        Case { name: "wrong password", run: lb_pw(&repo, "wrong", &["snapshots"]), code: 12, says: "wrong password" },
        Case {
            name: "wrong password on backup",
            run: lb_pw(&repo, "wrong", &["backup", s(&src)]),
            code: 12,
            says: "wrong password",
        },
        Case { name: "missing repository", run: lb(&missing, &["snapshots"]), code: 10, says: "no-such-repo" },
        Case { name: "empty dir as repository", run: lb(&empty_dir, &["backup", s(&src)]), code: 10, says: "init" },
        Case { name: "unknown flag", run: lb(&repo, &["backup", "--bogus", s(&src)]), code: 2, says: "--bogus" },
        Case { name: "unknown command", run: lb(&repo, &["frobnicate"]), code: 2, says: "frobnicate" },
        Case { name: "missing argument", run: lb(&repo, &["backup"]), code: 2, says: "PATH" },
        Case { name: "bad shell", run: run(bare().args(["completions", "banana"])), code: 2, says: "banana" },
        Case {
            name: "bad compression",
            run: lb(&repo, &["--compression", "banana", "backup", s(&src)]),
            code: 2, // a usage error since issue 16 (was 1)
            says: "banana",
        },
        Case {
            name: "bad kdf",
            run: lb(&tmp.path().join("r2"), &["init", "--kdf-n", "1000"]),
            code: 1,
            says: "--kdf-n",
        },
        Case {
            name: "missing source",
            run: lb(&repo, &["backup", s(&tmp.path().join("nope"))]),
            code: 1,
            says: "nope",
        },
        Case { name: "unknown snapshot", run: lb(&repo, &["ls", "deadbeef"]), code: 1, says: "deadbeef" },
        Case {
            name: "restore into /proc",
            run: lb(&repo, &["restore", "latest", "--target", "/proc/lifeboat-test"]),
            code: 1,
            says: "/proc/lifeboat-test",
        },
        Case {
            name: "restore onto a file",
            run: lb(&repo, &["restore", "latest", "--target", s(&a_file)]),
            code: 1,
            says: "a-file",
        },
        Case {
            name: "no password",
            run: run(bare().arg("--repo").arg(&repo).arg("snapshots")),
            code: 1,
            says: "LIFEBOAT_PASSWORD",
        },
        Case {
            name: "unreadable password file",
            run: run(bare()
                .arg("--repo")
                .arg(&repo)
                .arg("--password-file")
                .arg(tmp.path().join("nopw"))
                .arg("snapshots")),
            code: 1,
            says: "nopw",
        },
        Case {
            name: "no repository given",
            run: run(bare().env("LIFEBOAT_PASSWORD", "x").arg("snapshots")),
            code: 1,
            says: "--repo",
        },
        Case { name: "init twice", run: lb(&repo, &["init", "--kdf-n", "1024"]), code: 1, says: "already exists" },
        Case { name: "unknown key", run: lb(&repo, &["key", "remove", "ffffffff"]), code: 1, says: "ffffffff" },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let line = {
            let lines: Vec<&str> = c.run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() != 1 || c.run.stderr.contains("panicked") {
                failures.push(format!("{}: want one line on stderr, got {:?}", c.name, c.run.stderr));
                continue;
            }
            lines[0].to_string()
        };
        if c.run.code != c.code {
            failures.push(format!("{}: exit {} (want {}): {line}", c.name, c.run.code, c.code));
        }
        if !line.contains(c.says) {
            failures.push(format!("{}: message does not mention {:?}: {line}", c.name, c.says));
        }
        if !line.starts_with("lifeboat: ") {
            failures.push(format!("{}: message not prefixed with 'lifeboat: ': {line}", c.name));
        }
    }
    assert!(failures.is_empty(), "bad-input cases failed:\n  {}", failures.join("\n  "));
    // Failed commands left the repository as it was.
    let snaps = lb(&repo, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps:#}");
    assert!(!a_file.is_dir() && !tmp.path().join("r2").join("config").exists());
}

/// `lifeboat` run as user `nobody` (uid/gid 65534) through setpriv; None if that is impossible.
fn as_nobody(repo: &Path) -> Option<Command> {
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        println!("note: needs root and setpriv to drop privileges; skipped");
        return None;
    }
    let mut c = Command::new("/usr/bin/setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
    for v in ["LIFEBOAT_REPOSITORY", "LIFEBOAT_PASSWORD_FILE", "LIFEBOAT_PASSWORD_COMMAND", "LIFEBOAT_FAULTS"] {
        c.env_remove(v);
    }
    c.env("LIFEBOAT_PASSWORD", PASSWORD).arg("--repo").arg(repo);
    Some(c)
}

/// A tempdir others may enter, with an empty `repo` directory owned by `nobody`.
fn nobody_tempdir() -> tempfile::TempDir {
    let t = tempdir();
    chmod(t.path(), 0o755);
    fs::create_dir(t.path().join("repo")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(t.path().join("repo"), Some(65534), Some(65534)).unwrap();
    }
    t
}

#[test]
fn unreadable_file_gives_exit_3_and_a_partial_snapshot() {
    let tmp = nobody_tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let Some(mut init_cmd) = as_nobody(&repo) else { return };
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("ok.txt"), b"readable\n").unwrap();
    fs::write(src.join("sub/more.txt"), b"also readable\n").unwrap();
    let locked = src.join("sub/locked");
    fs::write(&locked, b"only root may read this\n").unwrap();
    chmod(&locked, 0o000);
    run(init_cmd.args(["init", "--kdf-n", "1024"])).ok();

    let r = run(as_nobody(&repo).unwrap().args(["backup", s(&src)])).code(3);
    assert!(r.stderr.contains(s(&locked)), "stderr does not name {}:\n{}", locked.display(), r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.stdout.contains("saved"), "{}", r.stdout);

    let j = run(as_nobody(&repo).unwrap().args(["backup", "--json", s(&src)])).code(3).json();
    let errors = j["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{j:#}");
    assert_eq!(errors[0]["path"], s(&locked), "{j:#}");

    let snaps = lb(&repo, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(2), "partial snapshots must exist: {snaps:#}");
    let ls = lb(&repo, &["ls", "--json", "latest"]).ok().json();
    let paths: Vec<&str> = ls.as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&s(&src.join("ok.txt"))) && paths.contains(&s(&src.join("sub/more.txt"))), "{paths:?}");
    assert!(!paths.contains(&s(&locked)), "the unreadable file is listed: {paths:?}");
    let target = tmp.path().join("restore");
    lb(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_eq!(fs::read(under(&target, &src.join("sub/more.txt"))).unwrap(), b"also readable\n");
    lb(&repo, &["check", "--read-data"]).ok();
}

#[test]
fn restore_into_unwritable_location_fails_with_one_line() {
    let tmp = nobody_tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let Some(mut init_cmd) = as_nobody(&repo) else { return };
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"content\n").unwrap();
    run(init_cmd.args(["init", "--kdf-n", "1024"])).ok();
    run(as_nobody(&repo).unwrap().args(["backup", s(&src)])).ok();
    let ro = tmp.path().join("read-only");
    fs::create_dir(&ro).unwrap();
    chmod(&ro, 0o555);
    for target in [ro.join("sub"), ro.clone()] {
        let r = run(as_nobody(&repo).unwrap().args(["restore", "latest", "--target", s(&target)]));
        assert_ne!(r.code, 0, "restore into {} succeeded", target.display());
        let line = r.one_error_line();
        assert!(line.contains(s(&ro)) && line.contains("ermission denied"), "{line}");
    }
    assert!(list_tree(&ro).is_empty(), "wrote into a read-only directory: {:?}", list_tree(&ro));
    assert!(lb(&repo, &["unlock", "--json"]).ok().json()["removed"] == 0, "a failed restore left its lock");
}

/// Kills and reaps a child process when dropped (also when the test fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    run(Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string())).ok();
}

fn lock_files(repo: &Path) -> Vec<String> {
    fs::read_dir(repo.join("locks"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn held_lock_blocks_key_change_and_stale_lock_is_unlocked() {
    let tmp = tempdir();
    let (repo, src, small) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("small"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&small).unwrap();
    fs::write(small.join("f"), b"small\n").unwrap();
    // A sparse 1 GiB file: reading it takes seconds, so the backup is still running when paused.
    fs::File::create(src.join("big")).unwrap().set_len(1 << 30).unwrap();
    init(&repo);

    let child = lifeboat(&repo)
        .args(["backup", "--quiet", s(&src)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    let lock = wait_for(Duration::from_secs(20), || lock_files(&repo).into_iter().next())
        .expect("the backup never created its lock");
    signal(pid, "STOP");
    assert!(child.0.try_wait().unwrap().is_none(), "the backup finished before it could be paused");

    let r = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "another").args(["key", "add"])).code(11);
    let line = r.one_error_line();
    assert!(line.contains(&format!("PID {pid}")), "lock holder not named: {line}");
    // Shared locks do not conflict: another backup may run at the same time.
    backup_json(&repo, &[s(&small)]);
    // The holder is alive (only stopped): its lock is not stale.
    assert_eq!(num(&lb(&repo, &["unlock", "--json"]).ok().json(), "removed"), 0);
    assert_eq!(lock_files(&repo), std::slice::from_ref(&lock));

    drop(child); // SIGKILL + reap: the lock is now stale
    assert_eq!(lock_files(&repo), [lock], "lock vanished with the killed process?");
    assert_eq!(num(&lb(&repo, &["unlock", "--json"]).ok().json(), "removed"), 1);
    assert!(lock_files(&repo).is_empty(), "unlock left {:?}", lock_files(&repo));
    run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "another").args(["key", "add"])).ok();
    lb(&repo, &["check"]).ok();
}

// -------------------------------------------------------------------------------------------
// 7. Keys

fn key_ids(repo: &Path, password: &str) -> Vec<(String, bool)> {
    let v = lb_pw(repo, password, &["key", "list", "--json"]).ok().json();
    v.as_array().unwrap().iter().map(|k| (k["id"].as_str().unwrap().to_string(), k["current"] == true)).collect()
}

fn restic_key_count(repo: &Path, password: &str) -> usize {
    let v = run(restic(repo).env("RESTIC_PASSWORD", password).args(["key", "list", "--json"])).ok().json();
    v.as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn key_add_remove_and_passwd() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"keyed\n").unwrap();
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    let first = key_ids(&repo, PASSWORD);
    assert_eq!(first.len(), 1);
    assert!(first[0].1, "the key in use is marked current");

    let add = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "second pw").args(["key", "add", "--json"])).ok().json();
    let second_id = add["id"].as_str().unwrap().to_string();
    assert_eq!(key_ids(&repo, PASSWORD).len(), 2);
    let via_second = key_ids(&repo, "second pw");
    assert!(via_second.contains(&(second_id.clone(), true)), "{via_second:?}");
    assert_eq!(lb_pw(&repo, "second pw", &["snapshots", "--json"]).ok().json().as_array().map(Vec::len), Some(1));
    assert_eq!(restic_key_count(&repo, PASSWORD), 2);
    assert_eq!(restic_key_count(&repo, "second pw"), 2, "restic opens the repository with the added key");

    // Removing the key in use is refused.
    let r = lb(&repo, &["key", "remove", &first[0].0[..8]]).code(1);
    assert!(r.one_error_line().contains("in use"), "{}", r.stderr);
    assert_eq!(key_ids(&repo, PASSWORD).len(), 2);

    // passwd replaces the second key: old password out, new one in, the first key untouched.
    run(lifeboat_pw(&repo, "second pw").env("LIFEBOAT_NEW_PASSWORD", "third pw").args(["key", "passwd"])).ok();
    let r = lb_pw(&repo, "second pw", &["snapshots"]).code(12);
    r.one_error_line();
    lb_pw(&repo, "third pw", &["snapshots"]).ok();
    lb(&repo, &["snapshots"]).ok();
    let keys = key_ids(&repo, "third pw");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(!keys.iter().any(|(id, _)| *id == second_id), "passwd kept the old key: {keys:?}");
    assert_eq!(restic_key_count(&repo, "third pw"), 2);
    assert_ne!(run(restic(&repo).env("RESTIC_PASSWORD", "second pw").args(["key", "list"])).code, 0);

    // The password may also come from a file (first line) or a command.
    let pw_file = tmp.path().join("pw");
    fs::write(&pw_file, "third pw\nignored second line\n").unwrap();
    run(bare().arg("--repo").arg(&repo).arg("--password-file").arg(&pw_file).arg("snapshots")).ok();
    run(bare().arg("--repo").arg(&repo).args(["--password-command", "printf 'third pw'", "snapshots"])).ok();

    // Remove the first key while opened with the new one.
    lb_pw(&repo, "third pw", &["key", "remove", &first[0].0]).ok();
    lb(&repo, &["snapshots"]).code(12);
    assert_eq!(key_ids(&repo, "third pw").len(), 1);
    assert_eq!(restic_key_count(&repo, "third pw"), 1);
    let t = tmp.path().join("t");
    lb_pw(&repo, "third pw", &["restore", "latest", "--target", s(&t)]).ok();
    assert_eq!(fs::read(under(&t, &src.join("f"))).unwrap(), b"keyed\n");
}

// -------------------------------------------------------------------------------------------
// 8. Smoke tests: completions and man page

#[test]
fn completions_and_man_page_smoke() {
    let c = run(bare().args(["completions", "bash"])).ok();
    assert!(c.stdout.contains("complete "), "not a bash completion script");
    for sub in ["init", "backup", "snapshots", "ls", "restore", "check", "key", "unlock"] {
        assert!(c.stdout.contains(sub), "completion lacks {sub}");
    }
    // clap_mangen puts two `.ie/.el` string definitions before the title: `.TH` must be the
    // first real request.
    let m = run(bare().arg("man")).ok();
    let first = m.stdout.lines().find(|l| !l.starts_with(".ie") && !l.starts_with(".el"));
    assert!(first.is_some_and(|l| l.starts_with(".TH lifeboat 1")), "not a man page: {:?}", first);
    assert!(m.stdout.contains(".SH NAME") && m.stdout.contains("backup"));
}

#[test]
fn interrupt_exits_130_and_leaves_a_clean_repository() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir_all(&src).unwrap();
    // A large sparse file keeps the backup busy long enough to be interrupted mid-way.
    let f = fs::File::create(src.join("big.img")).unwrap();
    f.set_len(16 << 30).unwrap();
    init(&repo);
    let child =
        lifeboat(&repo).args(["backup", s(&src)]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let locked = wait_for(Duration::from_secs(20), || {
        fs::read_dir(repo.join("locks")).ok().and_then(|mut d| d.next()).map(|_| ())
    });
    assert!(locked.is_some(), "backup never took its lock");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let snaps: serde_json::Value = serde_json::from_str(&lb(&repo, &["snapshots", "--json"]).ok().stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(0), "an interrupted backup must not record a snapshot");
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0, "the lock must be released");
    lb(&repo, &["check", "--read-data"]).ok();
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn one_file_system_keeps_mount_points_empty() {
    // /dev/shm is a tmpfs mounted below the devtmpfs /dev on Linux machines and containers.
    let shm = Path::new("/dev/shm");
    let same_fs = fs::metadata("/dev").unwrap().dev() == fs::metadata(shm).map(|m| m.dev()).unwrap_or(0);
    assert!(!same_fs, "this test needs /dev/shm to be a separate mount");
    let marker = shm.join(format!("lifeboat-onefs-{}", std::process::id()));
    fs::write(&marker, b"on another file system").unwrap();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    let listing = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["backup", "/dev/shm", "/dev/null"];
        args.extend_from_slice(extra);
        let code = lb(&repo, &args).code;
        assert!(code == 0 || code == 3, "backup failed with {code}");
        let v: serde_json::Value = serde_json::from_str(&lb(&repo, &["ls", "latest", "--json"]).ok().stdout).unwrap();
        v.as_array().unwrap().iter().filter_map(|e| e["path"].as_str().map(String::from)).collect()
    };
    let crossing = listing(&[]);
    let marker_path = marker.to_string_lossy().into_owned();
    assert!(crossing.contains(&marker_path), "without -x the tmpfs content is backed up: {crossing:?}");
    // Backing up /dev with -x: /dev/shm is another file system, kept as an empty directory.
    let mut args = vec!["backup", "/dev", "--one-file-system", "--exclude", "/dev/pts"];
    args.push("--tag");
    args.push("onefs");
    let code = lb(&repo, &args).code;
    let _ = fs::remove_file(&marker);
    assert!(code == 0 || code == 3, "backup failed with {code}");
    let v: serde_json::Value =
        serde_json::from_str(&lb(&repo, &["ls", "latest", "--tag", "onefs", "--json"]).ok().stdout).unwrap();
    let paths: Vec<&str> = v.as_array().unwrap().iter().filter_map(|e| e["path"].as_str()).collect();
    assert!(paths.contains(&"/dev/shm"), "the mount point itself is kept: {paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("/dev/shm/")), "nothing below the mount point: {paths:?}");
}

#[test]
fn demo_backs_up_restores_and_checks_a_directory() {
    let tmp = tempdir();
    let src = tmp.path().join("data");
    fs::create_dir_all(src.join("sub")).unwrap();
    write_random(&src.join("sub/blob.bin"), 3 << 20, 7);
    write_text(&src.join("notes.txt"), 10_000, "demo");
    let work = tmp.path().join("work");
    let out = run(bare().args(["demo", "--dir", s(&src), "--workdir", s(&work)])).ok();
    assert!(out.stdout.contains("demo passed"), "{}", out.stdout);
    assert!(out.stdout.contains("0 new, 2 unmodified"), "second backup must reuse the parent: {}", out.stdout);
    assert_same_tree(&src, &under(&work.join("restore"), &src), Compare::ALL);
    // The demo repository is a restic repository too.
    let mut cmd = Command::new("restic");
    cmd.env("RESTIC_PASSWORD", "lifeboat-demo-password").args(["-r", s(&work.join("repo")), "check", "--read-data"]);
    assert_eq!(run(&mut cmd).code, 0);
}

#[test]
fn full_disk_gives_one_line_and_leaves_the_repository_clean() {
    let tmp = tempdir();
    let mnt = tmp.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=3m", "tmpfs", s(&mnt)]).status();
    if !mounted.map(|m| m.success()).unwrap_or(false) {
        assert!(std::env::var_os("CI").is_none(), "CI must be able to mount a tmpfs for the full-disk test");
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    }
    let repo = mnt.join("repo");
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    init(&repo);
    write_random(&src.join("small.bin"), 200_000, 1);
    lb(&repo, &["backup", s(&src)]).ok();
    write_random(&src.join("big.bin"), 20 << 20, 2);
    let r = lb(&repo, &["backup", s(&src)]);
    let leftovers: Vec<_> = walk_files(&repo).into_iter().filter(|p| p.to_string_lossy().contains(".tmp")).collect();
    let check = lb(&repo, &["check"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&lb(&repo, &["snapshots", "--json"]).stdout).unwrap_or_default();
    let _ = Command::new("umount").arg(&mnt).status();
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    assert!(r.stderr.contains("no space"), "{}", r.stderr);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(check.code, 0, "the repository must stay consistent: {check:?}");
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "the failed backup must not record a snapshot");
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_closed_output_pipe_ends_quietly_without_a_panic() {
    // Completions are far larger than a pipe buffer, so `head` closes the pipe mid-write.
    let out = run(std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{BIN}' completions bash | head -c 100 >/dev/null")));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("Broken pipe"), "{}", out.stderr);
}

// -------------------------------------------------------------------------------------------
// Reading for a backup leaves access times alone

#[test]
fn a_backup_leaves_access_times_alone_and_an_unchanged_rebackup_stores_nothing() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    for d in 0..4 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..5 {
            write_random(&src.join(format!("d{d}/f{f}")), 1000 + f * 10, (d * 10 + f) as u64);
        }
    }
    // Access times older than the modification times: any read would move them (relatime).
    let files: Vec<PathBuf> =
        (0..4).flat_map(|d| (0..5).map(move |f| (d, f))).map(|(d, f)| src.join(format!("d{d}/f{f}"))).collect();
    for f in &files {
        run(Command::new("touch").args(["-a", "-d", "2020-01-01 00:00:00"]).arg(f)).ok();
    }
    let before: Vec<i64> = files.iter().map(|f| fs::metadata(f).unwrap().atime()).collect();
    init(&repo);
    backup_json(&repo, &[s(&src)]);
    let after: Vec<i64> = files.iter().map(|f| fs::metadata(f).unwrap().atime()).collect();
    assert_eq!(before, after, "reading files for a backup changed their access times");
    // So the next backup finds every node below src as it was: no tree of src or its five
    // directories is stored again (the directories above it, /tmp and the like, may have
    // changed meanwhile: at most one tree each).
    let second = backup_json(&repo, &[s(&src)]);
    assert_eq!(num(&second, "files_unmodified"), 20, "{second:#}");
    let above = tmp.path().components().count() as u64;
    assert!(num(&second, "tree_blobs") <= above, "an unchanged re-backup stored trees again: {second:#}");
}

#[test]
fn an_interrupted_restore_leaves_only_whole_files_and_a_rerun_completes_it() {
    // Restores stream in batches with writer threads working ahead: an interrupt must still
    // stop every thread, exit 130 with one line, and leave no file under its name that is not
    // whole. A second restore with --overwrite then gives the full tree.
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("target"));
    let mut n = 0u32;
    for d in 0..300 {
        let dir = src.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            n += 1;
            fs::write(dir.join(format!("f{f:02}")), format!("file {n} {}", "x".repeat((n % 3000) as usize))).unwrap();
        }
    }
    init(&repo);
    lb(&repo, &["backup", s(&src)]).ok();
    let child = lifeboat(&repo)
        .args(["restore", "latest", "--target", s(&target)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let restored = target.join(src.strip_prefix("/").unwrap());
    let started = wait_for(Duration::from_secs(30), || restored.join("d000").is_dir().then_some(()));
    assert!(started.is_some(), "the restore never created its first directory");
    signal(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "the restore finished before the interrupt: make the tree bigger");
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line expected: {stderr}");
    let partial = walk_files(&restored);
    assert!(partial.len() < 30_000, "an interrupted restore wrote everything ({})", partial.len());
    for f in &partial {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(!name.contains("lifeboat-tmp"), "a temporary was left: {}", f.display());
        let orig = src.join(f.strip_prefix(&restored).unwrap());
        assert_eq!(fs::read(f).unwrap(), fs::read(&orig).unwrap(), "{} is not whole", f.display());
    }
    lb(&repo, &["restore", "latest", "--target", s(&target), "--overwrite"]).ok();
    let full = walk_files(&restored);
    assert_eq!(full.len(), 30_000);
    for f in &full {
        let orig = src.join(f.strip_prefix(&restored).unwrap());
        assert_eq!(fs::read(f).unwrap(), fs::read(&orig).unwrap(), "{}", f.display());
    }
}
