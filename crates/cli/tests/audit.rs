//! The audit log as a hash chain, end to end: every operation that reads or changes backups is
//! recorded (backup, restore — of files and of a PostgreSQL database on the real server —,
//! verify, forget, copy, key and append-only changes, drills) with time, host, user, source and
//! snapshot; `audit verify` passes on the intact chain and exits 1 naming the first broken link
//! when a record is deleted, edited (re-encrypted with the key, so only the chain can tell),
//! moved or reordered; legacy unchained records still read; checkpoints are signed with the
//! drill key; two concurrent writers do not fork the chain; restic still checks the repository.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use lifeboat_backend::{Backend, FileType};
use scratch::*;
use servers::*;

/// The chained record files of a repository, by position.
fn chained(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo.join("lifeboat/audit"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 34 && n.as_bytes()[12] == b'-')
        .collect();
    names.sort();
    names
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `audit verify` on a copy of `repo` after `tamper` changed it.
fn verify_tampered(repo: &Path, name: &str, tamper: impl FnOnce(&Path)) -> Run {
    let copy = repo.parent().unwrap().join(name);
    copy_dir(repo, &copy);
    tamper(&copy);
    lb(&copy, &["audit", "verify"])
}

/// Decrypt a record, change it with `f`, encrypt it again with the master key.
fn reencrypt(repo: &Path, name: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let r = open_repo(repo);
    let plain = r.load_unpacked(FileType::Lifeboat, &format!("audit/{name}")).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    f(&mut v);
    let plain = serde_json::to_vec(&v).unwrap();
    r.backend().save(FileType::Lifeboat, &format!("audit/{name}"), &r.encode_unpacked(&plain)).unwrap();
    plain
}

#[track_caller]
fn assert_first_break(r: &Run, seq: usize, words: &str) {
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let line = r.stdout.lines().find(|l| l.starts_with("BROKEN")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains(&format!("first broken link is record {seq}")), "{line}");
    assert!(line.contains(words), "{line}");
}

#[test]
fn every_operation_is_chained_and_verify_names_the_first_broken_link() {
    if !postgres_up() {
        return;
    }
    let dir = tempdir();
    let docs = dir.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    write_text(&docs.join("notes.txt"), 20_000, "audit");
    let db = format!("lb_audit_{}", unique_tag());
    let copy = format!("{db}_restored");
    let _dbs = PgDbs(vec![db.clone(), copy.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 500);");
    let (cfg, _tmp) = setup(
        dir.path(),
        &format!(
            "[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\n\n[[source]]\nname = \"orders-db\"\nkind = \"postgres\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\n",
            docs.display()
        ),
    );
    let repo = dir.path().join("repo");
    lbc(&cfg, &["backup", "--all"]).ok();
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().json();
    let id_of = |source: &str| {
        snaps.as_array().unwrap().iter().find(|s| s["lifeboat"]["name"] == source).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (docs_id, db_id) = (id_of("docs"), id_of("orders-db"));
    let out = dir.path().join("out");
    lbc(&cfg, &["restore", &docs_id[..8], "--target", out.to_str().unwrap()]).ok();
    lbc(&cfg, &["restore", &db_id[..8], "--target", &copy]).ok();
    assert_eq!(psql(&copy, "SELECT count(*) FROM t"), "500");
    lbc(&cfg, &["verify", "--source", "docs"]).ok();
    let second = dir.path().join("second");
    run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("LIFEBOAT_TO_PASSWORD", PASSWORD)
        .arg("--config")
        .arg(&cfg)
        .args(["copy", "--init", "--to", second.to_str().unwrap(), &docs_id[..8]]))
    .ok();
    run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("LIFEBOAT_NEW_PASSWORD", "another key")
        .arg("--config")
        .arg(&cfg)
        .args(["key", "add"]))
    .ok();
    lbc(&cfg, &["append-only", "on"]).ok();
    lbc(&cfg, &["append-only", "off"]).ok();
    lbc(&cfg, &["forget", &docs_id[..8]]).ok();

    // Every operation is there, in order, with time, host, user, source and snapshot.
    let events = lbc(&cfg, &["audit", "--json"]).ok().json();
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "backup",
            "backup",
            "restore",
            "restore",
            "verify",
            "copy",
            "key add",
            "append-only on",
            "append-only off",
            "forget"
        ],
        "{events:#?}"
    );
    for e in events {
        assert!(e["time"].is_string() && e["host"].is_string() && e["user"].is_string(), "{e:#}");
    }
    assert_eq!((events[0]["source"].as_str(), events[0]["snapshot"].as_str()), (Some("docs"), Some(docs_id.as_str())));
    assert_eq!(
        (events[1]["source"].as_str(), events[1]["snapshot"].as_str()),
        (Some("orders-db"), Some(db_id.as_str()))
    );
    assert_eq!(events[3]["snapshot"], db_id.as_str());
    assert_eq!(events[3]["details"]["target"], copy.as_str());
    assert_eq!(events[4]["snapshot"], docs_id.as_str());
    assert_eq!(events[9]["details"]["removed_snapshots"][0], docs_id.as_str());
    let text = lbc(&cfg, &["audit"]).ok().stdout;
    assert!(!text.contains("another key") && !text.contains(PASSWORD), "{text}");
    // The destination of the copy has its own chain that says what arrived.
    let received = lb(&second, &["audit", "--json"]).ok().json();
    assert_eq!(received[0]["action"], "copy (received)");
    lb(&second, &["audit", "verify"]).ok();

    // Intact: exit 0; restic ignores lifeboat/ and still checks every byte.
    let ok = lbc(&cfg, &["audit", "verify"]).ok();
    assert!(ok.stdout.contains("audit log: 10 chained records") && ok.stdout.contains("intact"), "{}", ok.stdout);
    let v = lbc(&cfg, &["audit", "verify", "--json"]).ok().json();
    assert_eq!(v["head"]["seq"], 10);
    assert!(v["broken"].as_array().unwrap().is_empty());
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);

    let names = chained(&repo);
    assert_eq!(names.len(), 10);
    assert!(names[0].starts_with("000000000001-") && names[9].starts_with("000000000010-"), "{names:?}");

    // Deleted: record 4 is missing.
    let r = verify_tampered(&repo, "deleted", |c| fs::remove_file(c.join("lifeboat/audit").join(&names[3])).unwrap());
    assert_first_break(&r, 4, "record 4 is missing (deleted)");

    // Edited in place and re-encrypted with the key: its content no longer matches its name.
    let r = verify_tampered(&repo, "edited", |c| {
        reencrypt(c, &names[2], |v| v["user"] = "someone-else".into());
    });
    assert_first_break(&r, 3, "changed after it was written");

    // Edited, re-encrypted and renamed to match its new hash: only the next link can tell.
    let r = verify_tampered(&repo, "rewritten", |c| {
        let plain = reencrypt(c, &names[2], |v| v["details"]["target"] = "/elsewhere".into());
        let hash = hex_of(&plain);
        let dir = c.join("lifeboat/audit");
        fs::rename(dir.join(&names[2]), dir.join(format!("000000000003-{}.json", &hash[..16]))).unwrap();
    });
    assert_first_break(&r, 4, "record 3 was edited, replaced or moved");

    // Moved to the end: its place is empty, and the listing says where it went.
    let r = verify_tampered(&repo, "moved", |c| {
        let dir = c.join("lifeboat/audit");
        fs::rename(dir.join(&names[1]), dir.join(names[1].replacen("000000000002", "000000000011", 1))).unwrap();
    });
    assert_first_break(&r, 2, "record 2 is missing (it was moved");

    // Two records swapped: record 3 now sits at position 2.
    let r = verify_tampered(&repo, "reordered", |c| {
        let dir = c.join("lifeboat/audit");
        let (a, b) = (&names[1], &names[2]);
        fs::rename(dir.join(a), dir.join("tmp")).unwrap();
        fs::rename(dir.join(b), dir.join(b.replacen("000000000003", "000000000002", 1))).unwrap();
        fs::rename(dir.join("tmp"), dir.join(a.replacen("000000000002", "000000000003", 1))).unwrap();
    });
    assert_first_break(&r, 2, "record 3 was moved to position 2");

    // The tail deleted: the chain is still consistent, but the head moved back (a copy of the
    // head kept elsewhere, or a later signed checkpoint, is what shows that).
    let r = verify_tampered(&repo, "truncated", |c| fs::remove_file(c.join("lifeboat/audit").join(&names[9])).unwrap());
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("head: record 9"), "{}", r.stdout);
}

fn hex_of(data: &[u8]) -> String {
    lifeboat_crypto::sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn legacy_records_are_a_prefix_whose_digest_the_chain_holds() {
    let dir = tempdir();
    let (repo, src) = (dir.path().join("repo"), dir.path().join("src"));
    init(&repo);
    fs::create_dir_all(&src).unwrap();
    write_random(&src.join("a.bin"), 50_000, 3);
    // Two records as Lifeboat wrote them before the chain: unchained, named by time.
    let r = open_repo(&repo);
    for (i, action) in ["key add", "append-only on"].iter().enumerate() {
        let ev = serde_json::json!({ "time": format!("2025-01-0{}T10:00:00Z", i + 1), "host": "old-host",
            "user": "old-user", "action": action, "details": {} });
        let name = format!("audit/2025010{}T100000.000000Z-0000000{i}.json", i + 1);
        r.backend().save(FileType::Lifeboat, &name, &r.encode_unpacked(&serde_json::to_vec(&ev).unwrap())).unwrap();
    }
    backup_json(&repo, &[s(&src)]);
    let events = lb(&repo, &["audit", "--json"]).ok().json();
    let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["key add", "append-only on", "backup"]);
    let ok = lb(&repo, &["audit", "verify"]).ok();
    assert!(ok.stdout.contains("legacy prefix: 2 unchained records") && ok.stdout.contains("intact"), "{}", ok.stdout);

    // Deleting a legacy record after the chain started breaks the first link.
    let r = verify_tampered(&repo, "legacy-deleted", |c| {
        fs::remove_file(c.join("lifeboat/audit/20250101T100000.000000Z-00000000.json")).unwrap()
    });
    assert_first_break(&r, 1, "the legacy records before the chain were changed, added or deleted");
}

#[test]
fn concurrent_writers_do_not_fork_the_chain() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    init(&repo);
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let repo: PathBuf = repo.clone();
            std::thread::spawn(move || {
                let r = open_repo(&repo);
                for i in 0..15 {
                    let ev = lifeboat_ops::audit::Event::new(format!("writer {w} event {i}"), serde_json::json!({}));
                    lifeboat_ops::audit::record(&r, &ev).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let v = lb(&repo, &["audit", "verify", "--json"]).ok().json();
    assert_eq!(v["records"], 30, "{v:#}");
    assert_eq!(v["head"]["seq"], 30);
    assert_eq!(chained(&repo).len(), 30);
}

#[test]
fn a_drill_signs_a_checkpoint_that_verify_checks_against_the_key() {
    let dir = tempdir();
    let docs = dir.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    write_text(&docs.join("a.txt"), 10_000, "drill");
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let key = keys.join("drill.key");
    run(bare().args(["drill", "keygen", "--out"]).arg(&key)).ok();
    let other = keys.join("other.key");
    run(bare().args(["drill", "keygen", "--out"]).arg(&other)).ok();
    let (cfg, tmp) = setup(
        dir.path(),
        &format!(
            "[drill]\nsigning_key = \"{}\"\nreport_dir = \"{}\"\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\nrto = \"10m\"\n",
            key.display(),
            dir.path().join("reports").display(),
            docs.display()
        ),
    );
    lbc(&cfg, &["backup", "--all"]).ok();
    lbt(&cfg, &tmp, &["drill"]).ok();
    let events = lbc(&cfg, &["audit", "--json"]).ok().json();
    let actions: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["backup", "drill", "drill report", "audit checkpoint"]);
    let ok = lbc(&cfg, &["audit", "verify"]).ok();
    assert!(ok.stdout.contains("signed checkpoints: 1, the last at record 4"), "{}", ok.stdout);
    // Checked against another key, the checkpoint is refused.
    let pubkey = format!("{}.pub", other.display());
    let bad = lbc(&cfg, &["audit", "verify", "--public-key", &pubkey]);
    assert_first_break(&bad, 4, "not by the trusted key");
    // A malformed key file is one clear line and exit 1.
    fs::write(dir.path().join("junk.pub"), "not a key").unwrap();
    let junk = lbc(&cfg, &["audit", "verify", "--public-key", dir.path().join("junk.pub").to_str().unwrap()]).code(1);
    assert!(junk.one_error_line().contains("public key file"), "{}", junk.stderr);
}
