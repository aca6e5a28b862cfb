#![allow(clippy::unwrap_used)]
//! Crash safety: `lifeboat backup` is SIGKILLed at several points, and afterwards
//!
//! * no snapshot appeared (a snapshot is written only after its packs and index are durable),
//! * `lifeboat check --read-data` and `restic check --read-data` pass (unreferenced packs and
//!   half-written temporary files are no damage),
//! * every earlier snapshot restores byte-identically (with lifeboat and with restic),
//! * the stale lock of the dead process does not block the next backup (no `unlock`), and that
//!   backup succeeds, passes both checks and restores byte-identically.
//!
//! Two crash mechanisms:
//! * `LIFEBOAT_FAULTS=kill-on-save:TYPE:N`: on the Nth save of TYPE the process writes half the
//!   object to a temporary file beside its final path and SIGKILLs itself (a crash mid-write at
//!   a precise point: taking the lock, first pack, second pack, index, snapshot);
//! * a real external SIGKILL (`Child::kill`) of a backup of ~200 MB at timed moments.

#[path = "support/crash_common.rs"]
mod crash_common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crash_common::*;

/// Above 40 MB of incompressible data: several 16 MiB packs.
const BIG: usize = 44_000_000;
/// The new file of the second backup: at least two more full packs.
const BIG2: usize = 40_000_000;

/// Corpus A: a big random file, a chunked medium file, small and empty files, a compressible
/// log, a nested directory and an empty directory.
fn make_corpus_a(dir: &Path, seed: u64) {
    write_random(&dir.join("big.bin"), BIG, seed);
    write_random(&dir.join("medium.bin"), 3_000_000, seed ^ 0x55);
    write_random(&dir.join("docs/deep/nested/blob.bin"), 300_000, seed ^ 0xaa);
    fs::write(dir.join("notes.txt"), b"first version of the notes\n").expect("write");
    fs::write(dir.join("gone.txt"), b"this file is deleted before the second backup\n").expect("write");
    fs::write(dir.join("empty.txt"), b"").expect("write");
    let log: String = (0..20_000).map(|i| format!("{i:06} INFO request served in {} ms\n", i % 97)).collect();
    fs::write(dir.join("docs/app.log"), log).expect("write");
    fs::write(dir.join("docs/readme.md"), b"# corpus A\n").expect("write");
    fs::create_dir_all(dir.join("emptydir")).expect("mkdir");
}

/// The second state of the corpus: a new 40 MB random file, a changed, an added and a removed
/// small file, and a medium file changed in the middle (new inodes, so hard-linked copies of
/// corpus A keep their content).
fn modify_corpus(dir: &Path, seed: u64) {
    write_random(&dir.join("new/big2.bin"), BIG2, seed.wrapping_add(1));
    replace_file(&dir.join("notes.txt"), b"second version of the notes, somewhat longer\n");
    replace_file(&dir.join("docs/added.txt"), b"added after the first snapshot\n");
    fs::remove_file(dir.join("gone.txt")).expect("remove");
    let mut medium = fs::read(dir.join("medium.bin")).expect("read");
    for b in &mut medium[1_500_000..1_500_100] {
        *b = !*b;
    }
    replace_file(&dir.join("medium.bin"), &medium);
}

/// How many packs no index references after the crash (`lifeboat check` notices).
#[derive(Clone, Copy, Debug)]
enum Orphans {
    /// Depends on timing between the two pack writer threads.
    Any,
    /// All new packs were stored before the crash but none is indexed.
    AtLeast(usize),
    /// Nothing was left unreferenced.
    None,
}

/// One `kill-on-save` crash point.
struct CrashPoint {
    /// `LIFEBOAT_FAULTS` value.
    faults: &'static str,
    /// Top-level repository directory receiving the half-written object.
    partial_in: &'static str,
    /// Whether the killed process held a lock (it is left behind, stale).
    stale_lock: bool,
    /// Unreferenced packs expected.
    orphans: Orphans,
    /// Whether the index of the new data must already be durable (then the retried backup
    /// finds every data blob in it and stores none).
    index_durable: bool,
}

/// The whole scenario for one crash point; see the module documentation.
fn crash_scenario(tag: &str, seed: u64, point: &CrashPoint) {
    let ctx = format!("[{}]", point.faults);
    let tmp = scratch(tag);
    let work = canonical(tmp.path());
    let corpus = work.join("corpus");
    let expected_a = work.join("expected-a");
    let repo = work.join("repo");

    // S1 of corpus A; keep a copy of A to compare restores of S1 with.
    make_corpus_a(&corpus, seed);
    clone_tree_hardlinked(&corpus, &expected_a);
    init_repo(&repo);
    let (s1, _) = backup(&repo, &corpus);
    assert!(pack_count(&repo) >= 3, "{ctx}: corpus A should fill several packs");
    let indexes_before = index_files(&repo);
    modify_corpus(&corpus, seed);

    // The crashing backup.
    let what = format!("{ctx}: crashing lifeboat backup");
    let out = run(lifeboat(&repo).env("LIFEBOAT_FAULTS", point.faults).arg("backup").arg(&corpus), &what);
    assert_sigkilled(out.status, &describe(&what, &out));

    // The repository as the crash left it (these commands take no lock and change nothing).
    assert_eq!(snapshot_ids(&repo), vec![s1.clone()], "{ctx}: a snapshot appeared although the backup was killed");
    let temps = temp_files(&repo);
    assert!(
        temps.iter().any(|p| p.starts_with(point.partial_in)),
        "{ctx}: expected a half-written temporary file in {}/, found {temps:?}",
        point.partial_in
    );
    assert_eq!(assert_repo_names_valid(&repo, &ctx), temps.len());
    let stale = lock_files(&repo);
    if point.stale_lock {
        assert_eq!(stale.len(), 1, "{ctx}: the killed backup's lock should be left behind");
    } else {
        assert!(stale.is_empty(), "{ctx}: no lock was stored before the crash, found {stale:?}");
    }
    let indexes_after = index_files(&repo);
    if point.index_durable {
        assert_eq!(indexes_after.len(), indexes_before.len() + 1, "{ctx}: the new index should be durable");
    } else {
        assert_eq!(indexes_after, indexes_before, "{ctx}: no index may be written before the crash point");
    }

    // Check and restore a frozen copy of the crashed repository (hard links: cheap), so that
    // the original still has the stale lock for the resumed backup below.
    let crashed = work.join("crashed-repo");
    clone_tree_hardlinked(&repo, &crashed);
    let cctx = format!("{ctx} after the crash");
    restic_check(&crashed, true, &cctx);
    let report = lifeboat_check(&crashed, &cctx);
    let orphans = report.notices.iter().filter(|n| n.contains("not referenced by any index")).count();
    // The half-written temporary file is reported too (issue 16), once, with its count.
    let temp_notices =
        report.notices.iter().filter(|n| n.contains("temporary files left by interrupted writes")).count();
    assert_eq!(temp_notices, 1, "{cctx}: the temporary files are not reported: {:?}", report.notices);
    assert_eq!(orphans + 1, report.notices.len(), "{cctx}: unexpected notices {:?}", report.notices);
    match point.orphans {
        Orphans::Any => {}
        Orphans::AtLeast(n) => assert!(orphans >= n, "{cctx}: expected ≥ {n} unreferenced packs: {:?}", report.notices),
        Orphans::None => assert_eq!(orphans, 0, "{cctx}: unexpected unreferenced packs: {:?}", report.notices),
    }
    assert!(report.packs_read >= 3, "{cctx}: check --read-data read only {} packs", report.packs_read);
    assert!(lock_files(&crashed).is_empty(), "{cctx}: lifeboat check should have removed the stale lock");
    // Now that the stale lock is gone restic can lock the repository itself.
    restic_check(&crashed, false, &cctx);
    lifeboat_restore_matches(&crashed, &s1, &corpus, &expected_a, &work, &cctx);
    restic_restore_matches(&crashed, &s1, &corpus, &expected_a, &work, &cctx);
    // restic's own recovery path: prune deletes the unreferenced packs (and skips the
    // temporary files); lifeboat reads the index restic rewrote.
    run_ok(restic(&crashed).arg("prune"), &format!("{cctx}: restic prune"));
    let pruned = lifeboat_check(&crashed, &format!("{cctx}, pruned by restic"));
    assert!(
        pruned.notices.len() == 1 && pruned.notices[0].contains("temporary files"),
        "{cctx}: after restic prune only the temporary files should be left: {:?}",
        pruned.notices
    );
    lifeboat_restore_matches(&crashed, &s1, &corpus, &expected_a, &work, &format!("{cctx}, pruned by restic"));
    // lifeboat prune removes the temporary files restic leaves.
    run_ok(lifeboat(&crashed).arg("prune"), &format!("{cctx}: lifeboat prune"));
    assert!(temp_files(&crashed).is_empty(), "{cctx}: temporary files after prune: {:?}", temp_files(&crashed));
    let clean = lifeboat_check(&crashed, &format!("{cctx}, pruned by lifeboat"));
    assert!(clean.notices.is_empty(), "{cctx}: notices after lifeboat prune: {:?}", clean.notices);
    restic_check(&crashed, false, &format!("{cctx}, pruned by lifeboat"));

    // restic recognises the lock of the killed lifeboat as stale (same host, dead PID).
    if point.stale_lock {
        let other = work.join("crashed-repo-restic-unlock");
        clone_tree_hardlinked(&repo, &other);
        run_ok(restic(&other).arg("unlock"), &format!("{cctx}: restic unlock"));
        assert!(lock_files(&other).is_empty(), "{cctx}: restic unlock kept lifeboat's stale lock");
        fs::remove_dir_all(&other).expect("remove clone");
    }

    // Resume on the original: the first command after the crash is the next backup, facing the
    // stale lock. It must succeed without `unlock`.
    let rctx = format!("{ctx} resumed");
    let (s2, summary) = backup(&repo, &corpus);
    if point.index_durable {
        assert_eq!(summary["data_blobs"], 0, "{rctx}: the durable index should make every data blob known");
    }
    assert!(lock_files(&repo).is_empty(), "{rctx}: locks left after a successful backup: {:?}", lock_files(&repo));
    assert_eq!(snapshot_ids(&repo), sorted(&[&s1, &s2]), "{rctx}: snapshots");
    assert_repo_names_valid(&repo, &rctx);
    lifeboat_check(&repo, &rctx);
    restic_check(&repo, false, &rctx);
    lifeboat_restore_matches(&repo, &s2, &corpus, &corpus, &work, &rctx);
    restic_restore_matches(&repo, &s2, &corpus, &corpus, &work, &rctx);
    lifeboat_restore_matches(&repo, &s1, &corpus, &expected_a, &work, &rctx);
}

/// Earliest point: killed while storing its lock (nothing else stored yet).
#[test]
fn sigkill_while_storing_the_lock() {
    crash_scenario(
        "lock",
        0x1001,
        &CrashPoint {
            faults: "kill-on-save:lock:1",
            partial_in: "locks",
            stale_lock: false,
            orphans: Orphans::None,
            index_durable: false,
        },
    );
}

/// Early: killed while writing the first pack.
#[test]
fn sigkill_while_writing_the_first_pack() {
    crash_scenario(
        "pack1",
        0x2002,
        &CrashPoint {
            faults: "kill-on-save:pack:1",
            partial_in: "data",
            stale_lock: true,
            orphans: Orphans::Any,
            index_durable: false,
        },
    );
}

/// Mid-pack: killed while writing the second pack (the first may be stored or half-written).
#[test]
fn sigkill_while_writing_the_second_pack() {
    crash_scenario(
        "pack2",
        0x3003,
        &CrashPoint {
            faults: "kill-on-save:pack:2",
            partial_in: "data",
            stale_lock: true,
            orphans: Orphans::Any,
            index_durable: false,
        },
    );
}

/// Killed while writing the index: every new pack is stored, none is indexed.
#[test]
fn sigkill_while_writing_the_index() {
    crash_scenario(
        "index",
        0x4004,
        &CrashPoint {
            faults: "kill-on-save:index:1",
            partial_in: "index",
            stale_lock: true,
            // 40 MB of new random data: two full data packs, a partial one and a tree pack.
            orphans: Orphans::AtLeast(3),
            index_durable: false,
        },
    );
}

/// Just before / while writing the snapshot: packs and index are durable, so nothing is
/// unreferenced and the retried backup stores no data blob again.
#[test]
fn sigkill_while_writing_the_snapshot() {
    crash_scenario(
        "snapshot",
        0x5005,
        &CrashPoint {
            faults: "kill-on-save:snapshot:1",
            partial_in: "snapshots",
            stale_lock: true,
            orphans: Orphans::None,
            index_durable: true,
        },
    );
}

/// When to kill the external backup process.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// After this long.
    After(Duration),
    /// Once this many new packs are stored (it is then writing the next ones).
    Packs(usize),
}

/// A real SIGKILL from outside (`Child::kill`) while `lifeboat backup` of ~200 MB runs, at
/// several timed moments (with random jitter, printed on failure), each crash on top of the
/// previous ones; after each: no new snapshot (unless the backup completed first), both checks
/// pass, S1 restores. Finally a backup completes and everything restores byte-identically.
#[test]
fn external_sigkill_at_timed_moments() {
    let tmp = scratch("timed");
    let work = canonical(tmp.path());
    let corpus = work.join("corpus");
    let expected_a = work.join("expected-a");
    let repo = work.join("repo");

    write_random(&corpus.join("base.bin"), 3_000_000, 0x6006);
    fs::write(corpus.join("readme.txt"), b"timed kill corpus\n").expect("write");
    clone_tree_hardlinked(&corpus, &expected_a);
    init_repo(&repo);
    let (s1, _) = backup(&repo, &corpus);
    for i in 0..4u64 {
        write_random(&corpus.join(format!("bulk/part{i}.bin")), 50_000_000, 0x7007 + i);
    }

    let jitter_seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
    let mut rng = Rng::new(jitter_seed);
    let mut jitter = || Duration::from_millis(rng.next_u64() % 100);
    let triggers = [
        Trigger::After(Duration::from_millis(60) + jitter()),
        Trigger::After(Duration::from_millis(300) + jitter()),
        Trigger::Packs(4),
        Trigger::After(Duration::from_millis(650) + jitter()),
    ];

    let mut known = vec![s1.clone()];
    let mut completed: Vec<String> = Vec::new();
    let mut kills = 0;
    let mut log: Vec<String> = Vec::new();
    for (i, trigger) in triggers.iter().enumerate() {
        let ctx = format!("[timed kill #{i}: {trigger:?}, jitter seed {jitter_seed:#x}]");
        let packs_before = pack_count(&repo);
        let stderr = fs::File::create(work.join(format!("backup-{i}.stderr"))).expect("stderr file");
        let mut child = lifeboat(&repo)
            .arg("backup")
            .arg(&corpus)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn lifeboat backup");
        let start = Instant::now();
        let exited_early = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            let fire = match *trigger {
                Trigger::After(d) => start.elapsed() >= d,
                Trigger::Packs(n) => pack_count(&repo) >= packs_before + n,
            };
            if fire {
                break None;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "{ctx}: backup takes too long");
            std::thread::sleep(Duration::from_millis(3));
        };
        let elapsed = start.elapsed();
        let status = match exited_early {
            Some(s) => s,
            None => {
                child.kill().expect("SIGKILL the backup");
                // Reap it: a zombie's /proc entry would make its lock look alive.
                child.wait().expect("wait for the killed backup")
            }
        };
        let new_packs = pack_count(&repo) - packs_before;
        let temps = temp_files(&repo).len();
        if status.success() {
            log.push(format!("{ctx}: completed in {elapsed:?} before the kill"));
        } else {
            assert_sigkilled(status, &ctx);
            kills += 1;
            log.push(format!("{ctx}: killed after {elapsed:?}, {new_packs} packs stored, {temps} temp files in repo"));
        }
        let ctx = format!("{ctx} ({})", log.last().map(String::as_str).unwrap_or_default());

        // No snapshot may appear unless the backup got to store it (then it must be complete,
        // which the checks and the final restore verify).
        let ids = snapshot_ids(&repo);
        let new: Vec<&String> = ids.iter().filter(|id| !known.contains(id)).collect();
        assert!(known.iter().all(|k| ids.contains(k)), "{ctx}: a snapshot vanished");
        if status.success() {
            assert_eq!(new.len(), 1, "{ctx}: a completed backup stores one snapshot");
        } else {
            assert!(new.len() <= 1, "{ctx}: snapshots {new:?} appeared");
        }
        for id in new {
            completed.push(id.clone());
            known.push(id.clone());
        }
        assert_repo_names_valid(&repo, &ctx);
        restic_check(&repo, true, &ctx);
        lifeboat_check(&repo, &ctx);
        assert!(lock_files(&repo).is_empty(), "{ctx}: stale lock not removed by lifeboat check");
        restic_check(&repo, false, &ctx);
        lifeboat_restore_matches(&repo, &s1, &corpus, &expected_a, &work, &ctx);
    }
    eprintln!("{}", log.join("\n"));
    assert!(
        kills >= 2,
        "only {kills} of the timed kills hit a running backup (machine too fast?):\n{}",
        log.join("\n")
    );

    // Finally a backup that completes, on top of all the debris.
    let ctx = format!("[after the timed kills]\n{}", log.join("\n"));
    let (last, _) = backup(&repo, &corpus);
    known.push(last.clone());
    completed.push(last);
    let mut want: Vec<&str> = known.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(snapshot_ids(&repo), sorted(&want), "{ctx}");
    assert!(lock_files(&repo).is_empty(), "{ctx}: locks left after a successful backup");
    assert_repo_names_valid(&repo, &ctx);
    lifeboat_check(&repo, &ctx);
    restic_check(&repo, false, &ctx);
    for id in &completed {
        lifeboat_restore_matches(&repo, id, &corpus, &corpus, &work, &ctx);
    }
    let last = completed.last().map(String::as_str).unwrap_or_default();
    restic_restore_matches(&repo, last, &corpus, &corpus, &work, &ctx);
    lifeboat_restore_matches(&repo, &s1, &corpus, &expected_a, &work, &ctx);
    restic_restore_matches(&repo, &s1, &corpus, &expected_a, &work, &ctx);
}
