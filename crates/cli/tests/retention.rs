//! End-to-end tests of retention and prune: `forget` (policy and ids, dry run), `prune` (unused,
//! repacked and unindexed packs), `apply-retention` from the config, append-only mode, the
//! ransomware scenario, and concurrent backups with a prune attempt. Every repository is checked
//! afterwards by `lifeboat check --read-data` and by restic, the interop oracle.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Both checkers must pass.
#[track_caller]
fn both_checks_pass(repo: &Path) {
    lb(repo, &["check", "--read-data"]).ok();
    rs(repo, &["check", "--read-data"]).ok();
}

fn snapshot_ids(repo: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["snapshots", "--json"];
    args.extend_from_slice(extra);
    lb(repo, &args)
        .ok()
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").into())
        .collect()
}

fn pack_bytes(repo: &Path) -> u64 {
    let mut total = 0;
    for sub in fs::read_dir(repo.join("data")).expect("data dir") {
        for f in fs::read_dir(sub.expect("entry").path()).expect("subdir") {
            total += f.expect("pack").metadata().expect("meta").len();
        }
    }
    total
}

#[test]
fn forget_dry_run_names_the_keeping_rule_then_prune_frees_the_data_of_removed_snapshots() {
    let dir = tempdir();
    let (repo, src, out) = (dir.path().join("repo"), dir.path().join("src"), dir.path().join("out"));
    init(&repo);
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("stable.bin"), 2 << 20, 1);
    // Five backups, each with a 1 MiB file of its own that later backups no longer have.
    for i in 0..5u64 {
        let _ = fs::remove_file(src.join(format!("gen{}.bin", i.wrapping_sub(1))));
        write_random(&src.join(format!("gen{i}.bin")), 1 << 20, 100 + i);
        let tag = if i == 1 { "pre-upgrade" } else { "nightly" };
        backup_json(&repo, &["--tag", tag, s(&src)]);
    }
    let ids = snapshot_ids(&repo, &[]);
    assert_eq!(ids.len(), 5);

    // Dry run: every snapshot with its verdict; nothing changes.
    let plan =
        lb(&repo, &["forget", "--keep-last", "2", "--keep-tag", "pre-upgrade", "--dry-run", "--json"]).ok().json();
    let verdicts: Vec<(String, bool, Vec<String>)> = plan["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let reasons = d["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (d["id"].as_str().unwrap().to_string(), d["keep"].as_bool().unwrap(), reasons)
        })
        .collect();
    // Newest first: two by `last`, the tagged one by its tag, two removed.
    let expect = [
        (&ids[4], true, vec!["last"]),
        (&ids[3], true, vec!["last"]),
        (&ids[2], false, vec![]),
        (&ids[1], true, vec!["tag pre-upgrade"]),
        (&ids[0], false, vec![]),
    ];
    for ((id, keep, reasons), got) in expect.iter().zip(&verdicts) {
        assert_eq!((id.as_str(), *keep), (got.0.as_str(), got.1), "{plan:#}");
        assert_eq!(reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(), got.2);
    }
    let human = lb(&repo, &["forget", "--keep-last", "2", "--keep-tag", "pre-upgrade", "--dry-run"]).ok().stdout;
    assert!(human.contains("keep (tag pre-upgrade)") && human.contains("would remove 2 of 5"), "{human}");
    assert_eq!(snapshot_ids(&repo, &[]).len(), 5, "a dry run removed snapshots");

    // Prune dry run states the bytes; the real forget + prune frees them.
    let before = pack_bytes(&repo);
    let dry = lb(&repo, &["prune", "--dry-run", "--json"]).ok().json();
    assert_eq!(num(&dry, "packs_unused") + num(&dry, "packs_repacked"), 0, "nothing is unused yet: {dry:#}");
    let done = lb(&repo, &["forget", "--keep-last", "2", "--keep-tag", "pre-upgrade", "--prune", "--json"]).ok().json();
    assert_eq!(done["removed"], 2);
    assert_eq!(snapshot_ids(&repo, &[]), vec![ids[1].clone(), ids[3].clone(), ids[4].clone()]);
    let after = pack_bytes(&repo);
    // gen0 and gen2 (1 MiB each, incompressible) were only in the removed snapshots.
    assert!(before - after >= 2 * 1000 * 1000, "prune freed only {} bytes", before - after);
    assert_eq!(num(&done["prune"], "bytes_after"), after, "{done:#}");
    both_checks_pass(&repo);

    // The kept snapshots restore byte-identically (gen1 exists only in the tagged one).
    lb(&repo, &["restore", &ids[1], "--target", s(&out)]).ok();
    let restored = under(&out, &src);
    assert_eq!(fs::read(restored.join("gen1.bin")).unwrap(), random_bytes(1 << 20, 101));
    assert_eq!(fs::read(restored.join("stable.bin")).unwrap(), random_bytes(2 << 20, 1));

    // A second prune has nothing left to do.
    let again = lb(&repo, &["prune", "--json"]).ok().json();
    assert_eq!(num(&again, "packs_unused") + num(&again, "packs_repacked") + num(&again, "packs_unindexed"), 0);
}

#[test]
fn prune_repacks_partly_used_packs_and_keeps_every_remaining_file() {
    let dir = tempdir();
    let (repo, src, out) = (dir.path().join("repo"), dir.path().join("src"), dir.path().join("out"));
    init(&repo);
    // 400 small files share packs; removing three quarters leaves those packs 25 % used.
    for i in 0..400u64 {
        let d = src.join(format!("d{}", i % 10));
        fs::create_dir_all(&d).unwrap();
        write_random(&d.join(format!("f{i}")), 20_000, i);
    }
    backup_json(&repo, &[s(&src)]);
    for i in (0..400u64).filter(|i| i % 4 != 0) {
        fs::remove_file(src.join(format!("d{}/f{i}", i % 10))).unwrap();
    }
    backup_json(&repo, &[s(&src)]);
    let first = snapshot_ids(&repo, &[])[0].clone();
    lb(&repo, &["forget", &first]).ok();

    // With the threshold at 0 nothing is repacked: the packs stay, partly used.
    let keep = lb(&repo, &["prune", "--repack-below", "0", "--dry-run", "--json"]).ok().json();
    assert_eq!(num(&keep, "packs_repacked"), 0);
    assert!(num(&keep, "packs_partly_used_kept") > 0, "{keep:#}");

    let before = pack_bytes(&repo);
    let st = lb(&repo, &["prune", "--json"]).ok().json();
    assert!(num(&st, "packs_repacked") > 0, "{st:#}");
    // The 100 remaining files; the second backup's trees sit in a tree pack of their own that is
    // fully used, and the first backup's trees in one that is now wholly unused.
    assert_eq!(num(&st, "blobs_copied"), 100, "{st:#}");
    assert_eq!(num(&st, "packs_unused"), 1, "{st:#}");
    let after = pack_bytes(&repo);
    assert!(after * 3 < before, "repacking should free most of {before} bytes, left {after}");
    both_checks_pass(&repo);
    lb(&repo, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::CONTENT);
    let rout = dir.path().join("restic-out");
    rs(&repo, &["restore", "latest", "--target", s(&rout)]).ok();
    assert_same_tree(&src, &under(&rout, &src), Compare::CONTENT);
}

#[test]
fn prune_removes_packs_left_by_a_killed_backup() {
    let dir = tempdir();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    init(&repo);
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a.bin"), 3 << 20, 7);
    backup_json(&repo, &[s(&src)]);
    // The second backup dies right before its index is stored: its packs are not indexed.
    write_random(&src.join("b.bin"), 3 << 20, 8);
    let killed = run(lifeboat(&repo).env("LIFEBOAT_FAULTS", "kill-on-save:index:1").args(["backup", s(&src)]));
    assert_ne!(killed.code, 0, "the fault should have killed the backup");
    let dry = lb(&repo, &["prune", "--dry-run", "--json"]).ok().json();
    assert!(num(&dry, "packs_unindexed") >= 1, "{dry:#}");
    assert!(num(&dry, "bytes_unindexed") >= 3 << 20, "{dry:#}");
    lb(&repo, &["prune"]).ok();
    let notices = lb(&repo, &["check", "--json"]).ok().json();
    assert!(notices["notices"].as_array().unwrap().is_empty(), "unindexed packs remain: {notices:#}");
    both_checks_pass(&repo);
}

#[test]
fn apply_retention_uses_each_sources_policy_and_leaves_sources_without_one_alone() {
    let dir = tempdir();
    let (repo, a, b) = (dir.path().join("repo"), dir.path().join("a"), dir.path().join("b"));
    init(&repo);
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let cfg = dir.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = {:?}\n\n[[source]]\nname = \"ledger\"\nkind = \"files\"\npath = {:?}\nretention = {{ last = 2, keep_tags = [\"pre-upgrade\"] }}\n\n[[source]]\nname = \"proofs\"\nkind = \"files\"\npath = {:?}\n",
            s(&repo),
            s(&a),
            s(&b)
        ),
    )
    .unwrap();
    for i in 0..4u64 {
        write_random(&a.join("ledger.db"), 100_000, i);
        write_random(&b.join("proof.bin"), 100_000, 50 + i);
        let tag = if i == 0 { "pre-upgrade" } else { "nightly" };
        run(lifeboat(&repo).env("LIFEBOAT_CONFIG", &cfg).args(["backup", "--all", "--tag", tag])).ok();
    }
    let conf = |args: &[&str]| run(lifeboat(&repo).env("LIFEBOAT_CONFIG", &cfg).args(args));
    let dry = conf(&["apply-retention", "--dry-run", "--json"]).ok().json();
    let sources = dry["sources"].as_array().unwrap();
    assert_eq!(sources[0]["removed"], 1, "{dry:#}"); // ledger: 2 last + tagged first = 3 kept
    assert!(sources[1]["policy"].is_null(), "{dry:#}");
    assert_eq!(snapshot_ids(&repo, &[]).len(), 8);
    conf(&["apply-retention"]).ok();
    assert_eq!(snapshot_ids(&repo, &["--source", "ledger"]).len(), 3);
    assert_eq!(snapshot_ids(&repo, &["--source", "proofs"]).len(), 4);
    both_checks_pass(&repo);

    // A policy that keeps nothing is rejected with the file and line.
    fs::write(&cfg, "[[source]]\nname = \"x\"\nkind = \"files\"\npath = \"/tmp\"\nretention = { dialy = 3 }\n")
        .unwrap();
    let bad = conf(&["config", "check"]).code(1);
    let line = bad.one_error_line();
    assert!(line.contains("lifeboat.toml:1") && line.contains("dialy"), "{line}");
}

#[test]
fn append_only_refuses_deletion_and_the_last_clean_snapshot_before_an_infection_restores() {
    let dir = tempdir();
    let (repo, src, out) = (dir.path().join("repo"), dir.path().join("src"), dir.path().join("out"));
    init(&repo);
    fs::create_dir_all(&src).unwrap();
    write_text(&src.join("memory.txt"), 50_000, "clean");
    backup_json(&repo, &[s(&src)]);
    write_text(&src.join("memory.txt"), 60_000, "clean-v2");
    backup_json(&repo, &[s(&src)]);
    let clean = fs::read(src.join("memory.txt")).unwrap();
    lb(&repo, &["append-only", "on"]).ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let infected_at = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // "Infection": the files are encrypted by ransomware and the nightly backup takes them in.
    fs::write(src.join("memory.txt"), random_bytes(60_000, 666)).unwrap();
    backup_json(&repo, &[s(&src)]);
    // The attacker (holding the repository password) tries to destroy the backups.
    for args in [&["forget", "--keep-last", "1"][..], &["prune"], &["forget", "latest"]] {
        let r = lb(&repo, args).code(1);
        assert!(r.one_error_line().contains("append-only"), "{}", r.stderr);
    }
    let keys = lb(&repo, &["key", "list", "--json"]).ok().json();
    let id = keys[0]["id"].as_str().unwrap().to_string();
    assert!(lb(&repo, &["key", "remove", &id]).code(1).one_error_line().contains("append-only"));
    assert_eq!(snapshot_ids(&repo, &[]).len(), 3);

    // Recovery: list what was taken before the infection, restore the newest of those.
    let before = snapshot_ids(&repo, &["--before", &infected_at]);
    assert_eq!(before.len(), 2);
    lb(&repo, &["restore", "latest", "--before", &infected_at, "--target", s(&out)]).ok();
    assert_eq!(fs::read(under(&out, &src).join("memory.txt")).unwrap(), clean);
    let status = lb(&repo, &["append-only", "--json"]).ok().json();
    assert_eq!(status["append_only"], true);
    both_checks_pass(&repo);
}

#[test]
fn three_concurrent_backups_and_a_prune_attempt_leave_a_clean_repository() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    init(&repo);
    let mut srcs = Vec::new();
    for n in 0..3u64 {
        let src = dir.path().join(format!("src{n}"));
        for i in 0..40u64 {
            let d = src.join(format!("d{}", i % 4));
            fs::create_dir_all(&d).unwrap();
            // Shared content across the three sources too, so their dedup races.
            write_random(&d.join(format!("f{i}")), 50_000 + (i as usize % 3) * 100_000, i % 20 + n * (i % 2));
        }
        srcs.push(src);
    }
    // One earlier snapshot to forget, so the prune has real work.
    backup_json(&repo, &[s(&srcs[0])]);
    let old = snapshot_ids(&repo, &[])[0].clone();
    lb(&repo, &["forget", &old]).ok();

    let mut children: Vec<(String, std::process::Child)> = srcs
        .iter()
        .map(|src| {
            // Backups wait for a prune that holds the lock (as a cron job should); the prune
            // does not wait, so it either runs first or is refused.
            let child = lifeboat(&repo)
                .args(["--retry-lock", "2m", "backup", "--json", s(src)])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (format!("backup {}", s(src)), child)
        })
        .collect();
    let prune = lifeboat(&repo)
        .args(["prune"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    children.push(("prune".into(), prune));
    let mut ok_backups = 0;
    for (what, child) in children {
        let out = child.wait_with_output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let err = String::from_utf8_lossy(&out.stderr);
        // Each either succeeds or is refused because the other side holds the lock (exit 11).
        assert!(code == 0 || code == 11, "{what}: exit {code}: {err}");
        if code == 11 {
            assert!(err.contains("locked"), "{what}: {err}");
        } else if what.starts_with("backup") {
            ok_backups += 1;
        }
    }
    assert_eq!(ok_backups, 3, "every backup should get through (waiting for the lock if needed)");
    both_checks_pass(&repo);
    // Every snapshot restores and matches its source.
    for id in snapshot_ids(&repo, &[]) {
        let out = dir.path().join(format!("out-{id}"));
        lb(&repo, &["restore", &id, "--target", s(&out)]).ok();
        let snap = lb(&repo, &["snapshots", "--json"]).ok().json();
        let path = snap.as_array().unwrap().iter().find(|x| x["id"] == id.as_str()).unwrap()["paths"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert_same_tree(Path::new(&path), &under(&out, Path::new(&path)), Compare::CONTENT);
    }
}

#[test]
fn prune_killed_at_any_step_leaves_a_repository_that_checks_clean_and_restores() {
    let dir = tempdir();
    let (base, src) = (dir.path().join("base"), dir.path().join("src"));
    init(&base);
    for i in 0..200u64 {
        let d = src.join(format!("d{}", i % 5));
        fs::create_dir_all(&d).unwrap();
        write_random(&d.join(format!("f{i}")), 30_000, i);
    }
    backup_json(&base, &[s(&src)]);
    for i in (0..200u64).filter(|i| i % 3 != 0) {
        fs::remove_file(src.join(format!("d{}/f{i}", i % 5))).unwrap();
    }
    write_random(&src.join("late.bin"), 2 << 20, 999);
    backup_json(&base, &[s(&src)]);
    let first = snapshot_ids(&base, &[])[0].clone();
    lb(&base, &["forget", &first]).ok();

    // Every kind of write prune makes: a repacked pack, the new index, removing an old index,
    // removing the first and a later obsolete pack.
    for fault in [
        "kill-on-save:pack:1",
        "kill-on-save:index:1",
        "kill-on-remove:index:1",
        "kill-on-remove:pack:1",
        "kill-on-remove:pack:2",
    ] {
        let repo = dir.path().join(fault.replace(':', "-"));
        run(std::process::Command::new("cp").arg("-a").arg(&base).arg(&repo)).ok();
        let killed = run(lifeboat(&repo).env("LIFEBOAT_FAULTS", fault).args(["prune"]));
        assert_eq!(killed.code, -1, "{fault}: prune should have been killed: {}", killed.stderr);
        both_checks_pass(&repo);
        let out = dir.path().join(format!("out-{}", fault.replace(':', "-")));
        lb(&repo, &["restore", "latest", "--target", s(&out)]).ok();
        assert_same_tree(&src, &under(&out, &src), Compare::CONTENT);
        // The next prune finishes the job.
        lb(&repo, &["prune"]).ok();
        let check = lb(&repo, &["check", "--read-data", "--json"]).ok().json();
        assert!(check["notices"].as_array().unwrap().is_empty(), "{fault}: {check:#}");
        let again = lb(&repo, &["prune", "--dry-run", "--json"]).ok().json();
        assert_eq!(num(&again, "bytes_before"), num(&again, "bytes_after"), "{fault}: {again:#}");
    }
}
