//! End-to-end tests of key rotation, re-encryption under a new master key, and the audit log
//! that records every key operation (time, host, key id — never the secret).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;

use common::*;

const NEW: &str = "the rotated password, never logged";

fn audit(repo: &Path, password: &str) -> Vec<serde_json::Value> {
    lb_pw(repo, password, &["audit", "--json"]).ok().json().as_array().unwrap().clone()
}

#[test]
fn key_rotate_proves_the_new_key_removes_the_old_and_is_audited() {
    let dir = tempdir();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    init(&repo);
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a.bin"), 100_000, 1);
    backup_json(&repo, &[s(&src)]);
    let before = lb(&repo, &["key", "list", "--json"]).ok().json();
    let old_id = before[0]["id"].as_str().unwrap().to_string();

    let out = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", NEW).args(["key", "rotate", "--json"])).ok().json();
    assert_eq!(out["removed"], old_id.as_str());
    assert_eq!(out["proved"], true);
    let new_id = out["id"].as_str().unwrap().to_string();
    lb(&repo, &["snapshots"]).code(12);
    let keys = lb_pw(&repo, NEW, &["key", "list", "--json"]).ok().json();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["id"], new_id.as_str());
    // restic agrees: the new password opens it, the old one does not.
    assert_eq!(run(restic(&repo).env("RESTIC_PASSWORD", NEW).args(["snapshots"])).code, 0);
    assert_ne!(rs(&repo, &["snapshots"]).code, 0);

    // Add and remove a second key; all three operations are in the audit log with ids.
    let added = run(lifeboat_pw(&repo, NEW).env("LIFEBOAT_NEW_PASSWORD", "second key").args(["key", "add", "--json"]))
        .ok()
        .json();
    let added = added["id"].as_str().unwrap().to_string();
    lb_pw(&repo, NEW, &["key", "remove", &added[..8]]).ok();
    let events: Vec<_> = audit(&repo, NEW).into_iter().filter(|e| e["action"] != "backup").collect();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["key rotate", "key add", "key remove"]);
    assert_eq!(events[0]["details"]["new_key"], new_id.as_str());
    assert_eq!(events[0]["details"]["removed_key"], old_id.as_str());
    assert_eq!(events[1]["details"]["key"], added.as_str());
    for e in &events {
        assert!(e["time"].is_string() && e["host"].is_string() && e["user"].is_string(), "{e:#}");
    }
    let text = lb_pw(&repo, NEW, &["audit"]).ok().stdout;
    assert!(!text.contains(NEW) && !text.contains("second key") && !text.contains(PASSWORD), "{text}");
    // Audit records are encrypted in the repository: no plaintext action names on disk.
    for f in fs::read_dir(repo.join("lifeboat/audit")).unwrap() {
        let raw = fs::read(f.unwrap().path()).unwrap();
        assert!(!raw.windows(10).any(|w| w == b"key rotate"), "an audit record is stored in plaintext");
    }
}

#[test]
fn rotate_master_reencrypts_everything_verifies_and_swaps() {
    let dir = tempdir();
    let (repo, src, out) = (dir.path().join("repo"), dir.path().join("src"), dir.path().join("out"));
    init(&repo);
    fs::create_dir_all(src.join("d")).unwrap();
    write_random(&src.join("big.bin"), 3 << 20, 5);
    write_text(&src.join("d/t.txt"), 30_000, "master");
    backup_json(&repo, &["--tag", "x", s(&src)]);
    write_random(&src.join("more.bin"), 500_000, 6);
    backup_json(&repo, &[s(&src)]);
    lb(&repo, &["append-only", "off"]).ok(); // a settings object to carry over
    let old_config = fs::read(repo.join("config")).unwrap();
    let old_key = fs::read_dir(repo.join("keys")).unwrap().next().unwrap().unwrap().path();

    let new_loc = dir.path().join("repo.new");
    let r = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", NEW).args([
        "key",
        "rotate-master",
        "--to",
        s(&new_loc),
        "--swap",
        "--json",
    ]))
    .ok()
    .json();
    assert_eq!(r["verified"], true);
    let retired = Path::new(r["retired"].as_str().unwrap()).to_path_buf();
    assert!(!new_loc.exists(), "the new repository was moved into place");
    assert_ne!(fs::read(repo.join("config")).unwrap(), old_config);

    // The repository at the old path is the new one: new password, same snapshots and data.
    lb(&repo, &["snapshots"]).code(12);
    let snaps = lb_pw(&repo, NEW, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    lb_pw(&repo, NEW, &["check", "--read-data"]).ok();
    assert_eq!(run(restic(&repo).env("RESTIC_PASSWORD", NEW).args(["check", "--read-data"])).code, 0);
    lb_pw(&repo, NEW, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
    // Lifeboat's own objects came along, and the rotation is audited in both repositories.
    assert_eq!(lb_pw(&repo, NEW, &["append-only", "--json"]).ok().json()["append_only"], false);
    let events = audit(&repo, NEW);
    assert!(events.iter().any(|e| e["action"] == "append-only off"), "{events:?}");
    assert!(events.iter().any(|e| e["action"] == "key rotate-master"), "{events:?}");
    assert!(audit(&retired, PASSWORD).iter().any(|e| e["action"] == "key rotate-master (retired)"));

    // The old master key is useless against the new repository even with its key file: the
    // key decrypts, but to a master key that does not open the new config.
    let name = old_key.file_name().unwrap();
    fs::copy(retired.join("keys").join(name), repo.join("keys").join(name)).unwrap();
    let stolen = lb(&repo, &["snapshots"]);
    assert_ne!(stolen.code, 0);
    stolen.one_error_line();

    // Refuses an existing destination.
    let again = run(lifeboat_pw(&repo, NEW).env("LIFEBOAT_NEW_PASSWORD", NEW).args([
        "key",
        "rotate-master",
        "--to",
        s(&retired),
    ]));
    assert!(again.code(1).one_error_line().contains("already holds a repository"));
}

#[test]
fn an_archiver_key_with_a_cheap_kdf_needs_a_long_password_and_is_tried_first() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    // The user's key with restic's default cost (init's --kdf-n is hidden and for tests).
    lb(&repo, &["init"]).ok();
    let short = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "short").args(["key", "add", "--kdf-n", "1024"]));
    let e = short.code(2).one_error_line();
    assert!(e.contains("32 characters"), "{e}");
    let e = run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", "x".repeat(40)).args(["key", "add", "--kdf-n", "1000"]))
        .code(2)
        .one_error_line();
    assert!(e.contains("power of two"), "{e}");
    let archiver = "c0ffee".repeat(8);
    run(lifeboat(&repo).env("LIFEBOAT_NEW_PASSWORD", &archiver).args(["key", "add", "--kdf-n", "1024"])).ok();
    // The cheap key opens the repository without the expensive derivation first: well under
    // the ~100 ms scrypt N=32768 takes (debug build: measured, not asserted tightly).
    let keys = lb(&repo, &["key", "list", "--json"]).ok().json();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    let t = std::time::Instant::now();
    lb_pw(&repo, &archiver, &["snapshots"]).ok();
    let cheap = t.elapsed();
    let t = std::time::Instant::now();
    lb(&repo, &["snapshots"]).ok();
    let dear = t.elapsed();
    assert!(cheap < dear, "the archiver's key ({cheap:?}) must open faster than the user's ({dear:?})");
    // restic opens it with the archiver's password too.
    assert_eq!(run(restic(&repo).env("RESTIC_PASSWORD", &archiver).args(["snapshots"])).code, 0);
}
