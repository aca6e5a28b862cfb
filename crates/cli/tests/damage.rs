//! Damage never goes unnoticed and never blocks recovery of what is intact (issue 16), end to
//! end against the real binary and, where it matters, restic:
//!
//! - special files (FIFO, socket, device node) restore without ever being opened, so a restore
//!   and a restore test end;
//! - a damaged snapshot file is named by every snapshot selection instead of being skipped.
//!
//! Every command that could hang runs under a timeout guard ([`run_limited`]).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// How long any single command of these tests may take before the test fails as hung.
const LIMIT: Duration = Duration::from_secs(60);

/// Run a command, killing it and failing the test if it takes longer than [`LIMIT`].
#[track_caller]
fn run_limited(cmd: &mut Command) -> Run {
    let what = format!("{cmd:?}");
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let err_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file.reopen().unwrap())
        .stderr(err_file.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within {LIMIT:?} (hung)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        what,
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(out_file.path()).unwrap_or_default(),
        stderr: fs::read_to_string(err_file.path()).unwrap_or_default(),
    }
}

/// `lifeboat --repo REPO ARGS…` under the timeout guard.
#[track_caller]
/// Without the metadata cache: these tests damage files of the repository and look at what
/// every command makes of them when no good copy is kept locally (with one, a command reads the
/// good copy: tests/cache.rs).
fn lbt(repo: &Path, args: &[&str]) -> Run {
    run_limited(lifeboat(repo).arg("--no-cache").args(args))
}

fn mkfifo(p: &Path) {
    run(Command::new("mkfifo").arg(p)).ok();
}

/// Bind a unix socket at `p` (the socket file stays after the process ends).
fn make_socket(p: &Path) {
    let _l = std::os::unix::net::UnixListener::bind(p).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Part 1: special files.

#[test]
fn restore_with_fifo_socket_and_device_ends_and_recreates_them() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("out"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("plain.txt"), b"plain file next to a fifo\n").unwrap();
    mkfifo(&src.join("pipe"));
    chmod(&src.join("pipe"), 0o640);
    make_socket(&src.join("sock"));
    let device = is_root() && run(Command::new("mknod").arg(src.join("null")).args(["c", "1", "3"])).code == 0;
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();

    let r = lbt(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    let out = under(&target, &src);
    let pipe = fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo(), "pipe restored as {:?}", pipe.file_type());
    assert_eq!(pipe.permissions().mode() & 0o777, 0o640);
    assert_eq!(fs::read(out.join("plain.txt")).unwrap(), b"plain file next to a fifo\n");
    // Sockets are recorded in the snapshot but not recreated, as restic does.
    assert!(fs::symlink_metadata(out.join("sock")).is_err(), "a socket was recreated");
    assert!(!r.stderr.contains("sock"), "the skipped socket is not a warning: {}", r.stderr);
    if device {
        let m = fs::symlink_metadata(out.join("null")).unwrap();
        assert!(m.file_type().is_char_device(), "device restored as {:?}", m.file_type());
        assert_eq!(m.rdev(), fs::symlink_metadata(src.join("null")).unwrap().rdev());
    } else {
        println!("note: not root (or mknod refused): device nodes not tested");
    }
    assert!(leftover_tmp(&target).is_empty(), "temporaries left: {:?}", leftover_tmp(&target));

    // The restore test of `verify` restores into scratch and reads files back: it must end too.
    let v = lbt(&repo, &["verify", "latest", "--restore-test"]);
    assert_eq!(v.code, 0, "verify --restore-test: {v:?}");

    // A second restore over the first (a FIFO already at the path) ends as well.
    lbt(&repo, &["restore", "latest", "--target", s(&target), "--overwrite"]).ok();
    assert!(fs::symlink_metadata(out.join("pipe")).unwrap().file_type().is_fifo());
}

// ---------------------------------------------------------------------------------------------
// Part 2: a damaged snapshot file is never skipped silently.

/// The path of snapshot file `id` (full hex) in a local repository.
fn snapshot_file(repo: &Path, id: &str) -> PathBuf {
    repo.join("snapshots").join(id)
}

/// Garble a repository file in place (works on read-only files too).
fn garble(path: &Path) {
    let mode = fs::metadata(path).unwrap().mode();
    chmod(path, mode | 0o200);
    let mut data = fs::read(path).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 8] {
        *b ^= 0x5a;
    }
    fs::write(path, data).unwrap();
    chmod(path, mode & 0o7777);
}

/// Two snapshots of `src` (different content); returns their full ids, oldest first.
fn two_snapshots(repo: &Path, src: &Path) -> (String, String) {
    fs::create_dir_all(src).unwrap();
    fs::write(src.join("a.txt"), b"first version\n").unwrap();
    init(repo);
    let first = backup_json(repo, &[s(src)])["snapshot_id"].as_str().unwrap().to_string();
    fs::write(src.join("a.txt"), b"second version\n").unwrap();
    let second = backup_json(repo, &[s(src)])["snapshot_id"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    (first, second)
}

#[test]
fn damaged_newest_snapshot_is_named_by_every_selection() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let (first, second) = two_snapshots(&repo, &src);
    garble(&snapshot_file(&repo, &second));

    // restore latest: an error naming the damaged file, never the older snapshot.
    let target = tmp.path().join("t1");
    let r = lbt(&repo, &["restore", "latest", "--target", s(&target)]).code(1);
    let line = r.one_error_line();
    assert!(line.contains(&second), "the error must name the damaged file: {line}");
    assert!(!under(&target, &src).join("a.txt").exists(), "an older snapshot was restored silently");

    // ls latest and an explicit prefix of the damaged snapshot fail the same way.
    let r = lbt(&repo, &["ls", "latest"]).code(1);
    assert!(r.stderr.contains(&second), "{}", r.stderr);
    let r = lbt(&repo, &["restore", &second[..8], "--target", s(&target)]).code(1);
    assert!(r.stderr.contains(&second), "{}", r.stderr);

    // snapshots: lists the intact one, names the damaged one, exits 1.
    let r = lbt(&repo, &["snapshots"]).code(1);
    assert!(r.stdout.contains(&first[..8]), "{}", r.stdout);
    assert!(r.stderr.contains(&second), "{}", r.stderr);
    let r = lbt(&repo, &["snapshots", "--json"]).code(1);
    assert!(r.stderr.contains(&second), "{}", r.stderr);

    // verify at every level reports it and fails.
    for args in [
        &["verify"][..],
        &["verify", "--all"],
        &["verify", "--all", "--read-data"],
        &["verify", "latest"],
        &["verify", "--restore-test"],
    ] {
        let r = lbt(&repo, args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stdout.contains(&second) || r.stderr.contains(&second), "{args:?} must name the file: {r:?}");
    }

    // check names it too; the intact snapshot is still restorable by its id.
    let r = lbt(&repo, &["check"]).code(1);
    assert!(r.stdout.contains(&second[..8]) || r.stderr.contains(&second[..8]), "{r:?}");
    let target = tmp.path().join("t2");
    lbt(&repo, &["restore", &first, "--target", s(&target)]).ok();
    assert_eq!(fs::read(under(&target, &src).join("a.txt")).unwrap(), b"first version\n");

    // The repair: a dry run names it, --forget removes the damaged file; then all is well.
    let r = lbt(&repo, &["repair", "snapshots", "--dry-run"]).code(1);
    assert!(r.stderr.contains(&second), "{r:?}");
    assert!(snapshot_file(&repo, &second).exists());
    let r = lbt(&repo, &["repair", "snapshots", "--forget"]).ok();
    assert!(r.stderr.contains(&second) && r.stderr.contains("removed"), "{r:?}");
    lbt(&repo, &["check"]).ok();
    lbt(&repo, &["snapshots"]).ok();
    lbt(&repo, &["restore", "latest", "--target", s(&tmp.path().join("t3"))]).ok();
}

// ---------------------------------------------------------------------------------------------
// Part 3: a restore goes on past damage.

/// Pack files of a local repository, biggest first.
fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let data = repo.join("data");
    let mut v: Vec<PathBuf> = list_tree(&data).into_iter().map(|p| data.join(p)).filter(|p| p.is_file()).collect();
    v.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    v
}

/// Flip one byte of a repository file in place.
fn flip(path: &Path, at: usize) {
    let mode = fs::metadata(path).unwrap().mode();
    chmod(path, mode | 0o200);
    let mut data = fs::read(path).unwrap();
    data[at] ^= 0xff;
    fs::write(path, data).unwrap();
    chmod(path, mode & 0o7777);
}

#[test]
fn restore_goes_on_past_a_damaged_blob_and_names_the_file() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("out"));
    fs::create_dir(&src).unwrap();
    for i in 0..200u64 {
        write_random(&src.join(format!("f{i:03}.bin")), 4000 + i as usize, i + 1);
    }
    write_random(&src.join("big.bin"), 3 << 20, 999);
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    let pack = pack_files(&repo).into_iter().next().unwrap();
    let pack_id = pack.file_name().unwrap().to_string_lossy().into_owned();
    flip(&pack, fs::metadata(&pack).unwrap().len() as usize / 2);

    let r = lbt(&repo, &["restore", "latest", "--target", s(&target)]);
    assert_eq!(r.code, 1, "a restore with a damaged file exits 1: {r:?}");
    let named: Vec<&str> = r.stderr.lines().filter(|l| l.contains("not restored")).collect();
    assert_eq!(named.len(), 1, "exactly the one damaged file is named: {}", r.stderr);
    assert!(named[0].contains(&format!("in pack {pack_id}")), "the pack is named: {}", named[0]);
    assert!(named[0].contains(": blob "), "the blob is named: {}", named[0]);
    assert!(r.stdout.contains("1 files not restored"), "the summary counts it: {}", r.stdout);

    // Every other file is restored byte for byte; the damaged one is absent, never half-written.
    let out = under(&target, &src);
    let mut missing = Vec::new();
    for rel in list_tree(&src) {
        let (a, b) = (src.join(&rel), out.join(&rel));
        match fs::read(&b) {
            Ok(got) => assert_eq!(got, fs::read(&a).unwrap(), "{} restored wrong", rel.display()),
            Err(_) => missing.push(rel.to_string_lossy().into_owned()),
        }
    }
    assert_eq!(missing.len(), 1, "one file left out: {missing:?}");
    assert!(named[0].contains(&missing[0]), "the named file is the missing one: {} vs {missing:?}", named[0]);
    assert!(leftover_tmp(&target).is_empty(), "temporaries left: {:?}", leftover_tmp(&target));

    // --json carries the same as data.
    let target2 = tmp.path().join("out2");
    let r = lbt(&repo, &["--json", "restore", "latest", "--target", s(&target2)]).code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stats"]["files_failed"], 1, "{v:#}");
    assert_eq!(v["stats"]["failed"][0]["pack"], pack_id.as_str(), "{v:#}");

    // The restore test of verify reports the damage as a failure and still ends.
    let v = lbt(&repo, &["verify", "latest", "--restore-test"]);
    assert_eq!(v.code, 1, "{v:?}");
}

// ---------------------------------------------------------------------------------------------
// Part 4: temporary files of killed writes are reported and removed.

/// `.tmp-…` files anywhere in a repository.
fn temporaries(repo: &Path) -> Vec<PathBuf> {
    list_tree(repo)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".tmp-")))
        .collect()
}

#[test]
fn check_reports_and_prune_removes_temporary_files_of_killed_writes() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    write_random(&src.join("a.bin"), 2 << 20, 5);
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    write_random(&src.join("b.bin"), 2 << 20, 6);
    // Killed while saving its first pack: half of it stays behind as `data/xx/.tmp-PID-…`.
    let killed = run_limited(lifeboat(&repo).env("LIFEBOAT_FAULTS", "kill-on-save:pack:1").args(["backup", s(&src)]));
    assert_eq!(killed.code, -1, "the backup should have been killed: {killed:?}");
    let temps = temporaries(&repo);
    assert!(!temps.is_empty(), "the killed save left no temporary file");
    let bytes: u64 = temps.iter().map(|p| fs::metadata(repo.join(p)).unwrap().len()).sum();

    let c = lbt(&repo, &["check"]).ok();
    assert!(
        c.stderr.contains(&format!("{} files", temps.len())) && c.stderr.contains(&format!("{bytes} bytes")),
        "check must report the count and size of the temporary files: {c:?}"
    );
    let j = lbt(&repo, &["--json", "check"]).ok().json();
    assert_eq!(num(&j, "temporary_files"), temps.len() as u64, "{j:#}");
    assert_eq!(num(&j, "temporary_bytes"), bytes, "{j:#}");

    let dry = lbt(&repo, &["--json", "prune", "--dry-run"]).ok().json();
    assert_eq!(num(&dry, "temporary_removed"), temps.len() as u64, "{dry:#}");
    assert_eq!(temporaries(&repo).len(), temps.len(), "a dry run removes nothing");
    let p = lbt(&repo, &["prune"]).ok();
    assert!(p.stdout.contains("temporary files"), "{}", p.stdout);
    assert!(temporaries(&repo).is_empty(), "left after prune: {:?}", temporaries(&repo));
    let j = lbt(&repo, &["--json", "check", "--read-data"]).ok().json();
    assert_eq!(num(&j, "temporary_files"), 0, "{j:#}");
    assert!(rs(&repo, &["check", "--read-data"]).code == 0, "restic check after prune");
}

// ---------------------------------------------------------------------------------------------
// Part 5: private repositories.

#[test]
fn local_repositories_are_private_and_check_warns_about_readable_keys() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    write_random(&src.join("a.bin"), 100_000, 8);
    // Under the usual umask 022, which used to give 755 directories and 644 files.
    let init_run = run_limited(
        Command::new("sh")
            .args(["-c", "umask 022 && exec \"$@\"", "sh", BIN, "--repo", s(&repo), "init", "--kdf-n", "1024"])
            .env("LIFEBOAT_PASSWORD", PASSWORD),
    );
    assert_eq!(init_run.code, 0, "{init_run:?}");
    let backup = run_limited(
        Command::new("sh")
            .args(["-c", "umask 022 && exec \"$@\"", "sh", BIN, "--repo", s(&repo), "backup", s(&src)])
            .env("LIFEBOAT_PASSWORD", PASSWORD),
    );
    assert_eq!(backup.code, 0, "{backup:?}");
    let mut seen = (0, 0);
    for rel in std::iter::once(PathBuf::new()).chain(list_tree(&repo)) {
        let m = fs::symlink_metadata(repo.join(&rel)).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        if m.is_dir() {
            assert_eq!(mode, 0o700, "directory {} has mode {mode:o}", rel.display());
            seen.0 += 1;
        } else {
            assert_eq!(mode, 0o400, "file {} has mode {mode:o}", rel.display());
            seen.1 += 1;
        }
    }
    assert!(seen.0 > 256 && seen.1 >= 5, "walked {seen:?}");
    let c = lbt(&repo, &["check"]).ok();
    assert!(!c.stderr.contains("warning"), "{c:?}");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0, "restic accepts the private repository");

    // A key file made world-readable is warned about (not an error).
    let key = repo.join("keys").join(&list_tree(&repo.join("keys"))[0]);
    chmod(&key, 0o644);
    let c = lbt(&repo, &["check"]).ok();
    let name = key.file_name().unwrap().to_string_lossy().into_owned();
    let w = c.stderr.lines().find(|l| l.starts_with("warning: key")).unwrap_or_else(|| panic!("no warning: {c:?}"));
    assert!(w.contains(&name[..8]) && w.contains("0644") && w.contains("readable by other users"), "{w}");
    let j = lbt(&repo, &["--json", "check"]).ok().json();
    assert_eq!(j["warnings"][0]["kind"], "key", "{j:#}");
    chmod(&key, 0o400);
    assert!(!lbt(&repo, &["check"]).ok().stderr.contains("warning"));
}

// ---------------------------------------------------------------------------------------------
// Part 6: `repair index`.

/// Index files of a local repository.
fn index_files(repo: &Path) -> Vec<PathBuf> {
    list_tree(&repo.join("index")).into_iter().map(|p| repo.join("index").join(p)).collect()
}

/// A source tree of a few files (some sharing a pack, one of several blobs) and its backup.
fn backed_up(tmp: &Path) -> (PathBuf, PathBuf) {
    let (repo, src) = (tmp.join("repo"), tmp.join("src"));
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20u64 {
        write_random(&src.join(format!("sub/f{i}.bin")), 3000 + i as usize * 100, i + 40);
    }
    write_random(&src.join("big.bin"), 5 << 20, 77);
    write_compressible(&src.join("text.txt"), 200_000);
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    fs::write(src.join("sub/later.txt"), b"a second snapshot\n").unwrap();
    lbt(&repo, &["backup", s(&src)]).ok();
    (repo, src)
}

#[test]
fn repair_index_rebuilds_a_deleted_index_that_restic_accepts() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    for f in index_files(&repo) {
        fs::remove_file(f).unwrap();
    }

    // Without an index nothing restores, and check points at the repair (not at a prune).
    let r = lbt(&repo, &["restore", "latest", "--target", s(&tmp.path().join("t0"))]);
    assert_eq!(r.code, 1, "{r:?}");
    let c = lbt(&repo, &["check"]).code(1);
    assert!(c.stderr.contains("lifeboat repair index"), "check must name the repair: {}", c.stderr);
    assert!(!c.stderr.contains("left by an interrupted backup"), "{}", c.stderr);
    // prune refuses to delete what only the lost index described.
    let packs_before = list_tree(&repo.join("data")).len();
    lbt(&repo, &["prune"]).code(1);
    assert_eq!(list_tree(&repo.join("data")).len(), packs_before, "prune deleted packs");

    // A dry run changes nothing.
    let dry = lbt(&repo, &["--json", "repair", "index", "--dry-run"]).ok().json();
    assert!(num(&dry, "packs_added") >= 2, "{dry:#}");
    assert_eq!(num(&dry, "index_files_written"), 0, "{dry:#}");
    assert!(index_files(&repo).is_empty(), "a dry run wrote an index");

    let r = lbt(&repo, &["repair", "index"]).ok();
    assert!(r.stdout.contains("index files written"), "{}", r.stdout);
    assert!(!index_files(&repo).is_empty());
    lbt(&repo, &["check", "--read-data"]).ok();
    let rc = rs(&repo, &["check", "--read-data"]);
    assert_eq!(rc.code, 0, "restic check --read-data after repair index: {rc:?}");
    let target = tmp.path().join("t1");
    lbt(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::CONTENT);
    // restic restores from the rebuilt index too.
    let target = tmp.path().join("t2");
    let rr = rs(&repo, &["restore", "latest", "--target", s(&target)]);
    assert_eq!(rr.code, 0, "{rr:?}");
    assert_same_tree(&src, &under(&target, &src), Compare::CONTENT);
    // A second repair finds nothing to do.
    let again = lbt(&repo, &["--json", "repair", "index"]).ok().json();
    assert_eq!(num(&again, "packs_added"), 0, "{again:#}");
    assert_eq!(num(&again, "packs_read"), 0, "{again:#}");
}

#[test]
fn repair_index_replaces_a_damaged_index_file() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    let damaged = index_files(&repo).into_iter().next().unwrap();
    garble(&damaged);
    let c = lbt(&repo, &["check"]).code(1);
    assert!(c.stderr.contains("lifeboat repair index"), "{}", c.stderr);
    let j = lbt(&repo, &["--json", "repair", "index", "--read-all-packs"]).ok().json();
    assert_eq!(num(&j, "index_files_damaged"), 1, "{j:#}");
    assert!(!damaged.exists(), "the damaged index file was not replaced");
    lbt(&repo, &["check", "--read-data"]).ok();
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0, "restic check after repair");
    let target = tmp.path().join("t");
    lbt(&repo, &["restore", "latest", "--target", s(&target)]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::CONTENT);
}

// ---------------------------------------------------------------------------------------------
// Part 7: read-only access and usage errors.

#[test]
fn a_repository_that_cannot_be_written_is_read_without_a_lock() {
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        println!("note: needs root and setpriv to read as another user; skipped");
        return;
    }
    let tmp = tempdir();
    chmod(tmp.path(), 0o755);
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    write_random(&src.join("a.bin"), 300_000, 3);
    fs::write(src.join("b.txt"), b"read-only access\n").unwrap();
    chmod(&src, 0o755);
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    // Readable by everyone, writable by root only: `nobody` can read but not lock.
    run(Command::new("chmod").args(["-R", "a+rX", s(&repo)])).ok();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65534), Some(65534)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_REPOSITORY")
            .arg("--repo")
            .arg(&repo)
            .args(args);
        run_limited(&mut c)
    };
    let r = as_nobody(&["restore", "latest", "--target", s(&out)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("notice: the repository cannot be written"), "{}", r.stderr);
    assert_same_tree(&src, &under(&out, &src), Compare::CONTENT);
    let c = as_nobody(&["check"]);
    assert_eq!(c.code, 0, "{c:?}");
    let c = as_nobody(&["--no-lock", "check"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(!c.stderr.contains("notice: the repository cannot be written"), "--no-lock does not try: {}", c.stderr);
    // Writing still fails as it must.
    let b = as_nobody(&["backup", s(&src)]);
    assert_ne!(b.code, 0, "{b:?}");
}

#[test]
fn no_lock_is_refused_by_commands_that_write_and_bad_compression_is_a_usage_error() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"x\n").unwrap();
    init(&repo);
    let r = lbt(&repo, &["--no-lock", "backup", s(&src)]).code(1);
    assert!(r.one_error_line().contains("--no-lock"), "{r:?}");
    lbt(&repo, &["backup", s(&src)]).ok();
    // Readers accept it (that they take no lock at all is shown by the read-only test above:
    // there, with --no-lock, no lock is even attempted).
    lbt(&repo, &["--no-lock", "check"]).ok();
    assert!(list_tree(&repo.join("locks")).is_empty());
    lbt(&repo, &["--no-lock", "restore", "latest", "--target", s(&tmp.path().join("out"))]).ok();
    for bad in ["99", "fast", "zstd:0"] {
        let r = lbt(&repo, &["--compression", bad, "backup", s(&src)]);
        assert_eq!(r.code, 2, "--compression {bad}: {r:?}");
        let r = run_limited(lifeboat(&repo).env("LIFEBOAT_COMPRESSION", bad).args(["backup", s(&src)]));
        assert_eq!(r.code, 2, "LIFEBOAT_COMPRESSION={bad}: {r:?}");
    }
    lbt(&repo, &["--compression", "max", "backup", s(&src)]).ok();
}

#[test]
fn sparse_files_restore_sparse_and_identical() {
    let tmp = tempdir();
    let (repo, src, target) = (tmp.path().join("repo"), tmp.path().join("src"), tmp.path().join("out"));
    fs::create_dir(&src).unwrap();
    // 256 MiB apparent size: 1 MiB of data at 100 MiB, a few bytes at the very end, holes else.
    let sparse = src.join("disk.img");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&sparse).unwrap();
        f.seek(SeekFrom::Start(100 << 20)).unwrap();
        f.write_all(&random_bytes(1 << 20, 12)).unwrap();
        f.set_len(256 << 20).unwrap();
        f.seek(SeekFrom::Start((256 << 20) - 5)).unwrap();
        f.write_all(b"tail!").unwrap();
    }
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    if allocated(&sparse) > 16 << 20 {
        println!("note: this file system does not keep holes; skipped");
        return;
    }
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    lbt(&repo, &["restore", "latest", "--target", s(&target), "--verify"]).ok();
    let restored = under(&target, &src).join("disk.img");
    assert_eq!(fs::metadata(&restored).unwrap().len(), 256 << 20);
    assert_same_tree(&src, &under(&target, &src), Compare::CONTENT);
    assert!(
        allocated(&restored) < 16 << 20,
        "the restored file takes {} bytes on disk for 1 MiB of data",
        allocated(&restored)
    );
}

// ---------------------------------------------------------------------------------------------
// Part 7: `repair snapshots`.

/// Snapshot ids (full) in the repository, sorted.
fn snapshot_ids(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        list_tree(&repo.join("snapshots")).into_iter().map(|p| p.to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// The files below `src` that a restore of `snapshot` into a fresh target gives back identical,
/// and the ones missing; panics on a file restored with wrong content.
fn restore_and_sort(repo: &Path, snapshot: &str, src: &Path, target: &Path) -> (usize, Vec<String>) {
    lbt(repo, &["restore", snapshot, "--target", s(target)]).ok();
    let out = under(target, src);
    let (mut same, mut missing) = (0, Vec::new());
    for rel in list_tree(src).into_iter().filter(|r| src.join(r).is_file()) {
        match fs::read(out.join(&rel)) {
            Ok(got) => {
                assert_eq!(got, fs::read(src.join(&rel)).unwrap(), "{} restored wrong", rel.display());
                same += 1;
            }
            Err(_) => missing.push(rel.to_string_lossy().into_owned()),
        }
    }
    (same, missing)
}

#[test]
fn repair_snapshots_leaves_out_files_of_a_damaged_blob() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    let pack = pack_files(&repo).into_iter().next().unwrap();
    flip(&pack, fs::metadata(&pack).unwrap().len() as usize / 2);
    let c = lbt(&repo, &["check", "--read-data"]).code(1);
    assert!(c.stderr.contains("lifeboat repair snapshots --read-data"), "check names the repair: {}", c.stderr);
    let before = snapshot_ids(&repo);

    // Without --read-data the index still lists the blob: nothing to repair.
    let j = lbt(&repo, &["--json", "repair", "snapshots"]).ok().json();
    assert_eq!(j["repaired"].as_array().unwrap().len(), 0, "{j:#}");
    let dry = lbt(&repo, &["--json", "repair", "snapshots", "--read-data", "--dry-run"]).ok().json();
    assert_eq!(dry["repaired"].as_array().unwrap().len(), 2, "both snapshots use the damaged blob: {dry:#}");
    assert_eq!(snapshot_ids(&repo), before, "a dry run wrote a snapshot");

    let r = lbt(&repo, &["repair", "snapshots", "--read-data"]).ok();
    assert!(r.stdout.contains("left out (data lost)"), "{}", r.stdout);
    let after = snapshot_ids(&repo);
    assert_eq!(after.len(), 4, "originals kept, two copies added: {after:?}");
    let snaps = lbt(&repo, &["--json", "snapshots", "--tag", "repaired"]).ok().json();
    let repaired = snaps.as_array().unwrap();
    assert_eq!(repaired.len(), 2, "{snaps:#}");
    let newest = repaired.iter().max_by_key(|s| s["time"].as_str().unwrap().to_string()).unwrap();
    assert!(before.contains(&newest["original"].as_str().unwrap().to_string()), "{newest:#}");

    // The repaired copy restores without an error: every file intact, the damaged one absent.
    // It has its original's time and is `latest`.
    let (same, missing) = restore_and_sort(&repo, "latest", &src, &tmp.path().join("t"));
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(r.stdout.contains(&missing[0]), "the left-out file is named: {}", r.stdout);
    assert_eq!(same, list_tree(&src).into_iter().filter(|p| src.join(p).is_file()).count() - 1);

    // --forget removes the originals; a second repair has nothing left to do.
    lbt(&repo, &["repair", "snapshots", "--read-data", "--forget", &before[0][..8], &before[1][..8]]).ok();
    let now = snapshot_ids(&repo);
    assert!(before.iter().all(|b| !now.contains(b)), "--forget kept an original: {now:?}");
    assert_eq!(now.len(), 4, "the first two copies and two new ones: {now:?}");
    let j = lbt(&repo, &["--json", "repair", "snapshots", "--read-data"]).ok().json();
    assert_eq!(j["repaired"].as_array().unwrap().len(), 0, "{j:#}");
    assert_eq!(rs(&repo, &["check"]).code, 0, "restic accepts the repaired repository");
}

#[test]
fn a_lost_pack_is_repaired_with_repair_index_then_repair_snapshots() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    // Lose the biggest data pack altogether.
    let pack = pack_files(&repo).into_iter().next().unwrap();
    fs::remove_file(&pack).unwrap();
    let c = lbt(&repo, &["check"]).code(1);
    assert!(c.stderr.contains("lifeboat repair index"), "{}", c.stderr);
    lbt(&repo, &["repair", "index"]).ok();
    let c = lbt(&repo, &["check"]).code(1);
    assert!(c.stderr.contains("lifeboat repair snapshots"), "{}", c.stderr);
    lbt(&repo, &["repair", "snapshots", "--forget"]).ok();
    lbt(&repo, &["check", "--read-data"]).ok();
    let rc = rs(&repo, &["check", "--read-data"]);
    assert_eq!(rc.code, 0, "restic check --read-data after the repairs: {rc:?}");
    let (same, missing) = restore_and_sort(&repo, "latest", &src, &tmp.path().join("t"));
    assert!(same > 0 && !missing.is_empty(), "{same} restored, {missing:?} lost");
    let rr = rs(&repo, &["restore", "latest", "--target", s(&tmp.path().join("t2"))]);
    assert_eq!(rr.code, 0, "restic restores the repaired snapshot: {rr:?}");
}

#[test]
fn a_damaged_pack_is_salvaged_and_the_repository_passes_restic_check_read_data() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    let pack = pack_files(&repo).into_iter().next().unwrap();
    let pack_id = pack.file_name().unwrap().to_string_lossy().into_owned();
    flip(&pack, fs::metadata(&pack).unwrap().len() as usize / 2);
    let c = lbt(&repo, &["check", "--read-data"]).code(1);
    assert!(c.stderr.contains(&format!("lifeboat repair packs {pack_id}")), "{}", c.stderr);

    let dry = lbt(&repo, &["--json", "repair", "packs", "--dry-run"]).ok().json();
    assert_eq!(dry["damaged"].as_array().unwrap().len(), 1, "{dry:#}");
    assert_eq!(dry["damaged"][0]["lost"].as_array().unwrap().len(), 1, "{dry:#}");
    assert!(pack.exists(), "a dry run deleted the pack");

    let r = lbt(&repo, &["repair", "packs", &pack_id]).ok();
    assert!(r.stdout.contains("1 lost"), "{}", r.stdout);
    assert!(!pack.exists(), "the damaged pack is still there");
    // Now the lost blob is missing from the index: check names the snapshot repair.
    let c = lbt(&repo, &["check"]).code(1);
    assert!(c.stderr.contains("lifeboat repair snapshots"), "{}", c.stderr);
    lbt(&repo, &["repair", "snapshots", "--forget"]).ok();
    lbt(&repo, &["prune"]).ok();
    lbt(&repo, &["check", "--read-data"]).ok();
    let rc = rs(&repo, &["check", "--read-data"]);
    assert_eq!(rc.code, 0, "restic check --read-data after the repairs: {rc:?}");
    let (same, missing) = restore_and_sort(&repo, "latest", &src, &tmp.path().join("t"));
    assert_eq!(missing.len(), 1, "only the file of the damaged blob is lost: {missing:?}");
    assert!(same > 20, "{same}");
}

// ---------------------------------------------------------------------------------------------
// Part 7: smaller points of issue 16.

#[test]
fn short_snapshot_prefixes_are_looked_up_and_ambiguous_ones_said_so() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    let mut ids = Vec::new();
    fs::create_dir(&src).unwrap();
    init(&repo);
    // Enough snapshots that some one-character prefix is shared.
    for i in 0..20 {
        fs::write(src.join("a.txt"), format!("version {i}\n")).unwrap();
        ids.push(backup_json(&repo, &[s(&src)])["snapshot_id"].as_str().unwrap().to_string());
    }
    for len in [1, 2, 3] {
        for id in &ids {
            let prefix = &id[..len];
            let matching = ids.iter().filter(|o| o.starts_with(prefix)).count();
            let r = lbt(&repo, &["ls", prefix]);
            if matching == 1 {
                assert_eq!(r.code, 0, "{prefix} names one snapshot: {r:?}");
            } else {
                assert_eq!(r.code, 1, "{r:?}");
                assert!(r.one_error_line().contains("ambiguous"), "{prefix} matches {matching}: {}", r.stderr);
            }
        }
    }
}

#[test]
fn a_key_file_without_optional_fields_opens_as_in_restic() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    assert_eq!(rs(&repo, &["init"]).code, 0);
    let key = repo.join("keys").join(&list_tree(&repo.join("keys"))[0]);
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&key).unwrap()).unwrap();
    for field in ["username", "hostname", "created"] {
        v.as_object_mut().unwrap().remove(field);
    }
    chmod(&key, 0o600);
    fs::write(&key, serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(rs(&repo, &["snapshots"]).code, 0, "restic opens it");
    lbt(&repo, &["snapshots"]).ok();
    lbt(&repo, &["key", "list"]).ok();
}

#[test]
fn a_file_that_grows_during_backup_is_reported_with_exit_3() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    let log = src.join("growing.log");
    write_random(&log, 64 << 20, 21);
    fs::write(src.join("still.txt"), b"unchanged\n").unwrap();
    init(&repo);
    // A writer appends to the file for as long as the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(&[b'x'; 512]).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let r = lbt(&repo, &["backup", s(&src)]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("growing.log") && r.stderr.contains("changed while it was read"), "{}", r.stderr);
    assert!(!r.stderr.contains("still.txt"), "{}", r.stderr);
    // The snapshot was written, with the file as read.
    let out = tmp.path().join("out");
    lbt(&repo, &["restore", "latest", "--target", s(&out)]).ok();
    assert_eq!(fs::read(under(&out, &src).join("still.txt")).unwrap(), b"unchanged\n");
    assert!(fs::metadata(under(&out, &src).join("growing.log")).unwrap().len() >= 64 << 20);
    // A second backup of files nobody writes is clean.
    lbt(&repo, &["backup", s(&src)]).ok();
}

#[test]
fn an_interrupted_copy_resumes_from_the_packs_it_wrote() {
    let tmp = tempdir();
    let (repo, dst, src) = (tmp.path().join("repo"), tmp.path().join("dst"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    write_random(&src.join("big.bin"), 12 << 20, 31);
    write_random(&src.join("small.bin"), 20_000, 32);
    init(&repo);
    init(&dst);
    lbt(&repo, &["backup", s(&src)]).ok();
    let pw = tmp.path().join("pw");
    fs::write(&pw, PASSWORD).unwrap();
    let copy = |faults: Option<&str>| {
        let mut c = lifeboat(&repo);
        c.env("LIFEBOAT_TO_PASSWORD_FILE", &pw);
        if let Some(f) = faults {
            c.env("LIFEBOAT_FAULTS", f);
        }
        run_limited(c.args(["--json", "copy", "--to", s(&dst)]))
    };
    // Killed after its packs are stored, before its index.
    let killed = copy(Some("kill-on-save:index:1"));
    assert_eq!(killed.code, -1, "{killed:?}");
    let stored = list_tree(&dst.join("data")).into_iter().filter(|p| dst.join("data").join(p).is_file()).count();
    assert!(stored >= 2, "the killed copy stored {stored} packs");
    let again = copy(None);
    assert_eq!(again.code, 0, "{again:?}");
    let j: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(num(&j, "packs_resumed"), stored as u64, "{j:#}");
    assert_eq!(num(&j, "bytes_stored"), 0, "nothing stored twice: {j:#}");
    lbt(&dst, &["check", "--read-data"]).ok();
    assert_eq!(rs(&dst, &["check", "--read-data"]).code, 0);
    let out = tmp.path().join("out");
    lbt(&dst, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::CONTENT);
}

#[test]
fn prune_keeps_the_temporary_file_of_a_live_writer() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    init(&repo);
    lbt(&repo, &["backup", s(&src)]).ok();
    // A process saving its lock file has a temporary in locks/ before its lock exists: it
    // must survive a prune. This test process stands in for that writer (it is alive).
    let live = repo.join("locks").join(format!(".tmp-{}-0-0000abcd", std::process::id()));
    fs::write(&live, b"half a lock").unwrap();
    // A writer that is gone: a process that has exited.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead = repo.join("locks").join(format!(".tmp-{dead_pid}-0-0000dcba"));
    fs::write(&dead, b"half a lock").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let j = lbt(&repo, &["--json", "prune"]).ok().json();
    assert!(live.exists(), "the live writer's temporary was removed: {j:#}");
    assert!(!dead.exists(), "the dead writer's temporary was kept: {j:#}");
    assert_eq!((num(&j, "temporary_removed"), num(&j, "temporary_kept")), (1, 1), "{j:#}");
}

#[test]
fn a_damaged_key_file_does_not_lock_out_the_other_keys() {
    let tmp = tempdir();
    let (repo, src) = (tmp.path().join("repo"), tmp.path().join("src"));
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a\n").unwrap();
    init(&repo);
    let first = list_tree(&repo.join("keys"))[0].to_string_lossy().into_owned();
    let other_pw = "a second, independent password";
    let added =
        run_limited(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", other_pw).args(["--json", "key", "add"])).ok().json();
    let second = added["id"].as_str().unwrap().to_string();
    assert!(repo.join("keys").join(&second).exists(), "{added:#}");
    // Damage the key file that is listed first, so the intact one comes after it.
    let (damaged, damaged_pw, good_pw) =
        if first < second { (first, PASSWORD, other_pw) } else { (second, other_pw, PASSWORD) };
    let path = repo.join("keys").join(&damaged);
    chmod(&path, 0o600);
    let text = fs::read(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();

    run_limited(lifeboat_pw(&repo, good_pw).args(["backup", s(&src)])).ok();
    let r = run_limited(lifeboat_pw(&repo, damaged_pw).args(["snapshots"]));
    assert_eq!(r.code, 1, "{r:?}");
    let line = r.one_error_line();
    assert!(line.contains(&damaged[..8]) && line.contains("damaged"), "{line}");
    let r = run_limited(lifeboat_pw(&repo, "not any key's password").args(["snapshots"]));
    assert_eq!(r.code, 1, "a damaged key is named even for an unknown password: {r:?}");
}

#[test]
fn include_of_undamaged_paths_restores_with_a_damaged_index_after_repair_index() {
    let tmp = tempdir();
    let (repo, src) = backed_up(tmp.path());
    for f in index_files(&repo) {
        garble(&f);
    }
    // Every index file is damaged: the restore cannot find the blobs.
    let target = tmp.path().join("before");
    let sub = format!("{}/sub", s(&src));
    let r = lbt(&repo, &["restore", "latest", "--include", &sub, "--target", s(&target)]);
    assert_ne!(r.code, 0, "{r:?}");
    lbt(&repo, &["repair", "index"]).ok();
    let target = tmp.path().join("after");
    lbt(&repo, &["restore", "latest", "--include", &sub, "--target", s(&target)]).ok();
    assert_same_tree(&src.join("sub"), &under(&target, &src).join("sub"), Compare::CONTENT);
    assert!(!under(&target, &src).join("big.bin").exists(), "--include restored only the path asked for");
}

#[test]
fn a_key_file_with_a_damaged_salt_is_named_not_reported_as_a_wrong_password() {
    let tmp = tempdir();
    let (repo, _) = backed_up(tmp.path());
    let key = list_tree(&repo.join("keys")).into_iter().map(|p| repo.join("keys").join(p)).next().unwrap();
    let mode = fs::metadata(&key).unwrap().mode();
    chmod(&key, mode | 0o200);
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&key).unwrap()).unwrap();
    v["salt"] = serde_json::json!("!!not base64!!");
    fs::write(&key, serde_json::to_vec(&v).unwrap()).unwrap();
    chmod(&key, mode & 0o7777);
    let r = lbt(&repo, &["snapshots"]).code(1);
    let line = r.one_error_line();
    assert!(!line.contains("wrong password"), "{line}");
    assert!(
        line.contains(&key.file_name().unwrap().to_string_lossy().to_string()) || line.contains("damaged"),
        "{line}"
    );
}
