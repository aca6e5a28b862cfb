//! End-to-end tests of config-driven backups: `lifeboat.toml`, `backup --all|SOURCE…`,
//! `sources`, `config check`, `snapshots --source`, and the `files` and `command` source kinds.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;

use common::*;

const SECRET: &str = "tok-3f9a1c77";

/// A service directory with a config file; returns (config path, repo path).
fn service(dir: &Path, extra: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    fs::create_dir_all(data.join("proofs")).unwrap();
    write_text(&data.join("proofs/p1.json"), 5000, "proof");
    write_random(&data.join("proofs/model.bin"), 3 << 20, 5);
    let repo = dir.join("repo");
    let cfg = dir.join("lifeboat.toml");
    let text = format!(
        r#"[repository]
url = "{repo}"
password_command = "echo ${{TEST_LB_PASSWORD}}"

[[source]]
name = "proofs"
kind = "files"
paths = ["{proofs}"]
exclude = ["*.tmp"]
tags = ["daily"]
rpo = "1h"

[[source]]
name = "canister-status"
kind = "command"
command = ["sh", "-c", "echo status: running; echo token: $0", "${{TEST_LB_SECRET}}"]
filename = "status.txt"
{extra}"#,
        repo = repo.display(),
        proofs = data.join("proofs").display(),
    );
    fs::write(&cfg, text).unwrap();
    (cfg, repo)
}

fn lbc(cfg: &Path, args: &[&str]) -> Run {
    let mut c = bare();
    c.env("TEST_LB_PASSWORD", PASSWORD).env("TEST_LB_SECRET", SECRET).arg("--config").arg(cfg).args(args);
    run(&mut c)
}

#[test]
fn backup_all_runs_every_source_and_failures_do_not_stop_the_others() {
    let tmp = tempdir();
    let extra = r#"
[[source]]
name = "broken"
kind = "command"
command = ["sh", "-c", "echo half; echo database unreachable >&2; exit 4"]

[[source]]
name = "missing-binary"
kind = "command"
command = ["lifeboat-no-such-program", "status"]
"#;
    let (cfg, repo) = service(tmp.path(), extra);
    fs::write(tmp.path().join("data/proofs/skip.tmp"), b"x").unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let r = lbc(&cfg, &["backup", "--all", "--json"]);
    assert_eq!(r.code, 1, "a failed source makes the run fail: {r:?}");
    assert!(
        r.stderr.contains("source broken:")
            && r.stderr.contains("exit status 4")
            && r.stderr.contains("database unreachable"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("source missing-binary:") && r.stderr.contains("lifeboat-no-such-program"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"));
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let ok: Vec<&str> =
        report.as_array().unwrap().iter().filter(|x| x["ok"] == true).map(|x| x["source"].as_str().unwrap()).collect();
    assert_eq!(ok, ["proofs", "canister-status"]);

    // Exactly one snapshot per good source, each carrying its source name and kind.
    let snaps: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["snapshots", "--json"]).ok().stdout).unwrap();
    let mut names: Vec<String> =
        snaps.as_array().unwrap().iter().map(|s| s["lifeboat"]["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["canister-status", "proofs"]);
    let status: serde_json::Value =
        serde_json::from_str(&lbc(&cfg, &["snapshots", "--source", "canister-status", "--json"]).ok().stdout).unwrap();
    let status = &status.as_array().unwrap()[0];
    assert_eq!(status["lifeboat"]["kind"], "command");
    assert_eq!(status["lifeboat"]["manifest"]["exit_status"], 0);
    // The manifest records the command as configured, never the substituted secret.
    let raw = serde_json::to_string(status).unwrap();
    assert!(raw.contains("${TEST_LB_SECRET}"), "{raw}");
    assert!(!raw.contains(SECRET), "secret leaked into snapshot metadata: {raw}");

    // The command's output restores byte for byte (and it did see the secret).
    let out = tmp.path().join("out");
    lbc(&cfg, &["restore", "latest", "--source", "canister-status", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(out.join("status.txt")).unwrap(), format!("status: running\ntoken: {SECRET}\n"));
    // The files source honours its excludes and restores identically.
    let out2 = tmp.path().join("out2");
    lbc(&cfg, &["restore", "latest", "--source", "proofs", "--target", out2.to_str().unwrap()]).ok();
    let proofs = tmp.path().join("data/proofs");
    // Drop the excluded file from the original for the comparison, keeping the directory's mtime.
    let m = fs::metadata(&proofs).unwrap().modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
    fs::remove_file(proofs.join("skip.tmp")).unwrap();
    set_mtime(&proofs, m.as_secs(), m.subsec_nanos());
    assert_same_tree(&proofs, &under(&out2, &proofs), Compare::ALL);

    // `sources` shows the last backup of each source and "never" for the failed ones.
    let list: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["sources", "--json"]).ok().stdout).unwrap();
    let last = |n: &str| list.as_array().unwrap().iter().find(|s| s["name"] == n).unwrap()["last_snapshot"].clone();
    assert!(last("proofs").is_string());
    assert!(last("broken").is_null());
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0, "restic must accept config-driven snapshots");
}

#[test]
fn named_sources_use_their_own_parent_and_deduplicate() {
    let tmp = tempdir();
    let (cfg, _repo) = service(tmp.path(), "");
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    lbc(&cfg, &["backup", "proofs"]).ok();
    let second: serde_json::Value =
        serde_json::from_str(&lbc(&cfg, &["backup", "proofs", "--json"]).ok().stdout).unwrap();
    let s = &second[0]["summary"];
    assert_eq!(s["files_unmodified"], 2, "{second:#}");
    assert_eq!(s["data_blobs"], 0, "{second:#}");
    // Mixing a source name and a path is refused rather than guessed.
    let mixed = lbc(&cfg, &["backup", "proofs", "/etc/hostname"]);
    assert_eq!(mixed.code, 1);
    assert_eq!(mixed.stderr.trim().lines().count(), 1, "{}", mixed.stderr);
}

#[test]
fn config_errors_name_file_and_line() {
    let tmp = tempdir();
    let (cfg, _) = service(tmp.path(), "\n[[source]]\nname = \"x\"\nkind = \"files\"\npathz = [\"/srv\"]\n");
    let r = lbc(&cfg, &["config", "check"]);
    assert_eq!(r.code, 1);
    let line = r.stderr.trim();
    assert_eq!(line.lines().count(), 1, "{line}");
    let expected_line = fs::read_to_string(&cfg).unwrap().lines().position(|l| l.starts_with("pathz")).unwrap() + 1;
    assert!(line.contains(&format!("lifeboat.toml:{expected_line}:")), "{line}");
    assert!(line.contains("pathz"), "{line}");
    // A missing ${VAR} names the variable and the source, never a value.
    let (cfg2, _) = service(&tmp.path().join("b"), "");
    let mut c = bare();
    c.env("TEST_LB_PASSWORD", PASSWORD).arg("--config").arg(&cfg2);
    run(c.args(["init", "--kdf-n", "1024"])).ok();
    let mut c = bare();
    c.env("TEST_LB_PASSWORD", PASSWORD).arg("--config").arg(&cfg2).args(["backup", "canister-status"]);
    let r = run(&mut c);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("TEST_LB_SECRET is not set") && r.stderr.contains("canister-status"), "{}", r.stderr);
}

#[test]
fn every_example_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let r = run(bare().arg("--config").arg(&p).args(["config", "check", "--json"]));
            assert_eq!(r.code, 0, "{} does not parse: {}", p.display(), r.stderr);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            assert!(!v["sources"].as_array().unwrap().is_empty(), "{} has no sources", p.display());
            n += 1;
        }
    }
    assert!(n >= 1, "no example configs found in {}", dir.display());
}

fn sqlite_db(path: &Path, rows: usize) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE memories(id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE \"odd \"\"name\"\"\"(x INT); INSERT INTO \"odd \"\"name\"\"\" VALUES (1),(2),(3);",
    )
    .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute("INSERT INTO memories(body) VALUES (?1)", [format!("memory {i} {}", "x".repeat(i % 200))]).unwrap();
    }
    tx.commit().unwrap();
}

fn count(path: &Path, table: &str) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0)).unwrap() as u64
}

#[test]
fn sqlite_backup_while_writing_restores_consistently_and_verifies() {
    let tmp = tempdir();
    let db = tmp.path().join("memory.db");
    sqlite_db(&db, 60_000);
    let repo = tmp.path().join("repo");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\npassword_command = \"echo ${{TEST_LB_PASSWORD}}\"\n\n[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\n",
            repo.display(),
            db.display()
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // A writer commits continuously while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = rusqlite::Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.execute("INSERT INTO memories(body) VALUES ('live')", []).unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let first: serde_json::Value =
        serde_json::from_str(&lbc(&cfg, &["backup", "memory-db", "--json"]).ok().stdout).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer must have been running");
    let manifest = &first[0]["manifest"];
    let backed_up = manifest["tables"]["memories"].as_u64().unwrap();
    assert!(backed_up >= 60_000, "{manifest:#}");
    assert_eq!(manifest["tables"]["odd \"name\""], 3, "{manifest:#}");

    // Restore into a fresh path, natively verified: counts equal the manifest, not the live db.
    let target = tmp.path().join("restored/memory.db");
    let r = lbc(
        &cfg,
        &["restore", "latest", "--source", "memory-db", "--target", target.to_str().unwrap(), "--verify", "--json"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(v["verification"]["integrity"], serde_json::json!(["ok"]));
    assert_eq!(count(&target, "memories"), backed_up);
    assert!(count(&db, "memories") > backed_up || written == 0);

    // An existing target is refused without --overwrite, untouched, and replaced atomically with it.
    fs::write(&target, b"not a database").unwrap();
    let refused = lbc(&cfg, &["restore", "latest", "--source", "memory-db", "--target", target.to_str().unwrap()]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--overwrite"), "{}", refused.stderr);
    assert_eq!(fs::read(&target).unwrap(), b"not a database");
    lbc(
        &cfg,
        &[
            "restore",
            "latest",
            "--source",
            "memory-db",
            "--target",
            target.to_str().unwrap(),
            "--overwrite",
            "--verify",
        ],
    )
    .ok();
    assert_eq!(count(&target, "memories"), backed_up);
    let leftovers: Vec<_> = fs::read_dir(target.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("lifeboat-tmp"))
        .collect();
    assert!(leftovers.is_empty());

    // A second backup after a small change (1 % of rows updated in place, 1 % appended) stores a
    // small fraction of a full copy.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("UPDATE memories SET body = upper(body) WHERE id BETWEEN 30000 AND 30600", []).unwrap();
    c.execute("INSERT INTO memories(body) SELECT 'appended ' || id FROM memories WHERE id <= 600", []).unwrap();
    drop(c);
    let second: serde_json::Value =
        serde_json::from_str(&lbc(&cfg, &["backup", "memory-db", "--json"]).ok().stdout).unwrap();
    let size = second[0]["summary"]["total_bytes_processed"].as_u64().unwrap();
    let added = second[0]["summary"]["data_added"].as_u64().unwrap();
    assert!(added * 5 < size, "second backup added {added} of {size} bytes");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}
