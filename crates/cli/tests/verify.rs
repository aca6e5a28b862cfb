//! `lifeboat verify`, the verification state in `snapshots`, and `lifeboat compare`, end to end:
//! files (a byte flipped in a pack on disk is named with its snapshot and file path), sqlite,
//! postgres, redis and nats restore tests into scratch targets (which must be gone afterwards:
//! no temporary directory, no `lifeboat_verify_*` database, no throwaway server, no
//! `LIFEBOAT_VERIFY_*` stream), and a backup whose data does not match its manifest.
//!
//! How a backup "whose data does not match its manifest" is made: the snapshot is re-written
//! through the engine with one manifest count changed ([`falsify`]) — the repository key
//! encrypts it as any snapshot, so only the restore test can tell. That is the failure a restore
//! test exists for (a manifest and data that disagree), made without a test-only hook in the
//! binary.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use lifeboat_backend::FileType;
use scratch::*;
use serde_json::Value;
use servers::*;

/// Nothing may be left in the scratch TMPDIR.
#[track_caller]
/// Re-write snapshot `id` with its manifest changed by `f`; returns the new snapshot's id.
fn falsify(repo: &Path, id: &str, f: impl FnOnce(&mut Value)) -> String {
    let r = open_repo(repo);
    let mut snap: Value = r.load_json(FileType::Snapshot, id).unwrap();
    f(&mut snap["lifeboat"]["manifest"]);
    let new = r.save_unpacked(FileType::Snapshot, &serde_json::to_vec(&snap).unwrap()).unwrap();
    r.backend().remove(FileType::Snapshot, id).unwrap();
    new.to_hex()
}

/// The verification records of a `verify --json` run, by snapshot id.
fn outcomes(r: &Run) -> Vec<(String, String)> {
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let rec = &v["verification"];
            (rec["snapshot"].as_str().unwrap().to_string(), rec["outcome"].as_str().unwrap().to_string())
        })
        .collect()
}

fn ids(r: &Run) -> Vec<String> {
    r.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// The pack files of a repository, largest first.
fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> =
        list_tree(&repo.join("data")).into_iter().map(|p| repo.join("data").join(p)).filter(|p| p.is_file()).collect();
    all.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    all
}

#[test]
fn verify_files_names_a_damaged_blob_with_snapshot_and_path_and_snapshots_filters_by_status() {
    let dir = tempdir();
    let (data, docs) = (dir.path().join("data"), dir.path().join("docs"));
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::create_dir_all(&docs).unwrap();
    write_random(&data.join("sub/model.bin"), 3 << 20, 11);
    write_text(&data.join("notes.txt"), 2000, "notes");
    write_text(&docs.join("readme.txt"), 500, "readme");
    let body = format!(
        "[[source]]\nname = \"models\"\nkind = \"files\"\npaths = [\"{}\"]\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\n",
        data.display(),
        docs.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    let b = lbc(&cfg, &["backup", "--all", "--json"]).ok().json();
    let (models, docs_id) =
        (b[0]["snapshot_id"].as_str().unwrap().to_string(), b[1]["snapshot_id"].as_str().unwrap().to_string());

    // Everything checks out; the scratch directory of the restore tests is gone.
    let r = lbt(&cfg, &tmp, &["verify", "--read-data", "--restore-test", "--json"]).ok();
    let mut got = outcomes(&r);
    got.sort();
    let mut want = vec![(models.clone(), "ok".to_string()), (docs_id.clone(), "ok".to_string())];
    want.sort();
    assert_eq!(got, want, "{}", r.stdout);
    assert_clean(&tmp);
    let listed = lbc(&cfg, &["snapshots", "--verified-only", "--json"]).ok();
    assert_eq!(ids(&listed).len(), 2, "{}", listed.stdout);
    assert_eq!(
        listed.json()[0]["verification"]["checks"],
        serde_json::json!(["structure", "read-data", "restore-test"])
    );

    // Flip one byte inside the data pack holding model.bin (the largest pack).
    let pack = packs(&dir.path().join("repo")).remove(0);
    let mut bytes = fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&pack, bytes).unwrap();

    // The structure check does not read data: still ok. --read-data names snapshot and path.
    lbt(&cfg, &tmp, &["verify", "--source", "models"]).ok();
    let r = lbt(&cfg, &tmp, &["verify", "--all", "--read-data"]).code(1);
    let line = r.stdout.lines().find(|l| l.contains("is damaged")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains(&format!("snapshot {}", &models[..8])), "{line}");
    assert!(line.contains(&format!("{}/sub/model.bin", data.display())), "{line}");
    assert!(
        !r.stdout.contains(&format!("{}/notes.txt", data.display())),
        "only the damaged file is named: {}",
        r.stdout
    );
    assert!(r.stdout.contains("2 snapshots verified: 1 ok, 1 failed"), "{}", r.stdout);

    // A restore test of the damaged snapshot fails too, and cleans up after itself.
    let r = lbt(&cfg, &tmp, &["verify", &models[..8], "--restore-test"]).code(1);
    assert!(r.stdout.contains("restore test:") && r.stdout.contains("damaged"), "{}", r.stdout);
    assert_clean(&tmp);

    // snapshots: the latest verification decides the status.
    assert_eq!(ids(&lbc(&cfg, &["snapshots", "--status", "failed", "--json"]).ok()), [models.as_str()]);
    assert_eq!(ids(&lbc(&cfg, &["snapshots", "--verified-only", "--json"]).ok()), [docs_id.as_str()]);
    assert!(ids(&lbc(&cfg, &["snapshots", "--status", "unverified", "--json"]).ok()).is_empty());
    let table = lbc(&cfg, &["snapshots"]).ok().stdout;
    assert!(
        table.contains("verified") && table.contains("failed just now") && table.contains("ok just now"),
        "{table}"
    );
    // A new, never verified snapshot; --limit keeps the newest.
    write_text(&docs.join("more.txt"), 100, "more");
    let newest = backup_json(&dir.path().join("repo"), &["--host", "other", s(&docs)])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ids(&lbc(&cfg, &["snapshots", "--status", "unverified", "--json"]).ok()), [newest.as_str()]);
    assert_eq!(ids(&lbc(&cfg, &["snapshots", "--limit", "1", "--json"]).ok()), [newest]);
    assert_eq!(
        lbc(&cfg, &["snapshots", "--limit", "2", "--status", "ok", "--json"]).ok().json().as_array().unwrap().len(),
        1
    );
}

#[test]
fn verify_bad_input_is_one_line() {
    let dir = tempdir();
    let (cfg, tmp) = setup(dir.path(), "");
    let r = lbt(&cfg, &tmp, &["verify"]).code(1);
    assert!(r.one_error_line().contains("no snapshot matches"), "{}", r.stderr);
    let r = lbt(&cfg, &tmp, &["verify", "deadbeef"]).code(1);
    assert!(r.one_error_line().contains("deadbeef"), "{}", r.stderr);
    let r = lbt(&cfg, &tmp, &["snapshots", "--status", "great"]).code(2);
    assert!(r.stderr.contains("great"), "{}", r.stderr);
}

fn make_sqlite(path: &Path, rows: usize) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    let t = c.transaction().unwrap();
    t.execute_batch("CREATE TABLE ledger(id INTEGER PRIMARY KEY, entry TEXT); CREATE TABLE proofs(h TEXT);").unwrap();
    for i in 0..rows {
        t.execute("INSERT INTO ledger(entry) VALUES (?1)", [format!("entry {i}")]).unwrap();
    }
    t.execute("INSERT INTO proofs VALUES ('abc')", []).unwrap();
    t.commit().unwrap();
}

#[test]
fn verify_sqlite_restore_test_catches_a_manifest_that_does_not_match_the_data() {
    let dir = tempdir();
    let db = dir.path().join("memory.db");
    make_sqlite(&db, 1500);
    let (cfg, tmp) = setup(
        dir.path(),
        &format!("[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\n", db.display()),
    );
    let id = lbc(&cfg, &["backup", "memory-db", "--json"]).ok().json()[0]["snapshot_id"].as_str().unwrap().to_string();

    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    assert_eq!(r.json()[0]["restore_test"]["details"]["tables"]["ledger"], 1500, "{}", r.stdout);
    assert_eq!(r.json()[0]["restore_test"]["details"]["integrity"], serde_json::json!(["ok"]));
    assert_clean(&tmp);

    // compare: equal now; a row more in the live database is named.
    let r = lbc(&cfg, &["compare", "latest", s(&db), "--source", "memory-db"]).ok();
    assert!(r.stdout.contains("2 of 2 counts equal"), "{}", r.stdout);
    rusqlite::Connection::open(&db).unwrap().execute("INSERT INTO ledger(entry) VALUES ('late')", []).unwrap();
    let r = lbc(&cfg, &["compare", "latest", s(&db), "--json"]).code(1);
    let rows = r.json()["rows"].clone();
    assert_eq!(rows[0], serde_json::json!({"name": "ledger", "backup": 1500, "live": 1501, "ok": false}), "{rows:#}");
    let r = lbc(&cfg, &["compare", "latest", s(&dir.path().join("nope.db"))]).code(1);
    assert!(r.one_error_line().contains("no such database file"), "{}", r.stderr);

    // A backup whose manifest says 1499 ledger rows: the data restores, the counts do not match.
    let bad = falsify(&dir.path().join("repo"), &id, |m| m["tables"]["ledger"] = 1499.into());
    let r = lbt(&cfg, &tmp, &["verify", &bad, "--restore-test"]).code(1);
    assert!(r.stdout.contains("restore test: ledger: expected 1499 rows, found 1500"), "{}", r.stdout);
    assert_clean(&tmp);
    assert_eq!(ids(&lbc(&cfg, &["snapshots", "--status", "failed", "--json"]).ok()), [bad]);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn scratch_database(r: &Run) -> String {
    let t = r.json()[0]["restore_test"]["target"].as_str().unwrap().to_string();
    t.strip_prefix("database ").unwrap_or_else(|| panic!("{t}")).to_string()
}

#[test]
fn verify_postgres_restore_test_uses_a_scratch_database_that_is_dropped_even_on_failure() {
    if !postgres_up() {
        return;
    }
    let src = format!("lb_vsrc_{}", unique_tag());
    let _drop = PgDbs(vec![src.clone()]);
    psql("postgres", &format!("CREATE DATABASE {src}"));
    psql(&src, "CREATE TABLE accounts(id serial PRIMARY KEY, balance int); INSERT INTO accounts(balance) SELECT g FROM generate_series(1, 5000) g; CREATE TABLE audit(x text);");
    let dir = tempdir();
    let body = format!("[[source]]\nname = \"app-db\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\nrto = \"30m\"\n");
    let (cfg, tmp) = setup(dir.path(), &body);
    let id = lbc(&cfg, &["backup", "app-db", "--json"]).ok().json()[0]["snapshot_id"].as_str().unwrap().to_string();

    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    let scratch = scratch_database(&r);
    assert!(scratch.starts_with("lifeboat_verify_"), "{scratch}");
    assert_eq!(r.json()[0]["restore_test"]["details"]["tables"]["public.accounts"], 5000);
    let exists = |d: &str| psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{d}'"));
    assert_eq!(exists(&scratch), "0", "scratch database {scratch} was left behind");

    // compare against the live database: equal, then a difference named per table.
    lbc(&cfg, &["compare", "latest", &src]).ok();
    psql(&src, "DELETE FROM accounts WHERE id <= 10");
    let r = lbc(&cfg, &["compare", "latest", &src]).code(1);
    assert!(
        r.stdout.lines().any(|l| l.contains("public.accounts") && l.contains("-10") && l.contains("DIFFERS")),
        "{}",
        r.stdout
    );

    // Falsified manifest: the restore test fails and its scratch database is still dropped.
    let bad = falsify(&dir.path().join("repo"), &id, |m| m["tables"]["public.accounts"] = 4000.into());
    let r = lbt(&cfg, &tmp, &["verify", &bad, "--restore-test", "--json"]).code(1);
    let findings = r.json()[0]["verification"]["findings"].to_string();
    assert!(findings.contains("public.accounts: expected 4000 rows, found 5000"), "{findings}");
    assert_eq!(exists(&scratch_database(&r)), "0");
    assert_clean(&tmp);
}

// ---------------------------------------------------------------------------------------------
// Redis

#[test]
fn verify_redis_restore_test_uses_a_throwaway_server_and_leaves_the_live_one_alone() {
    if !redis_up() {
        return;
    }
    if !service("redis-server binary", Command::new("redis-server").arg("--version")) {
        return;
    }
    let prefix = format!("lbverify{}:", unique_tag());
    let _cleanup = RedisKeys { prefix: prefix.clone(), dbs: (0..16).collect() };
    let mut pipe: String = (0..300).map(|i| format!("SET {prefix}k{i} v{i}\n")).collect();
    pipe.push_str(&format!("HSET {prefix}h a 1\nSET {prefix}short-lived v PX 3000\n"));
    let set_at = std::time::Instant::now();
    redis_pipe(11, &pipe);
    let dir = tempdir();
    let body = format!("[[source]]\nname = \"cache\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\ndatabases = [11]\npattern = \"{prefix}*\"\n");
    let (cfg, tmp) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "cache"]).ok();
    let count_live = || -> usize {
        (0..16)
            .map(|db| {
                redis_cli(db, &["--scan", "--pattern", &format!("{prefix}*")]).lines().filter(|l| !l.is_empty()).count()
            })
            .sum()
    };
    // The backup holds 302 keys; one expires before the restore test, which must allow for it.
    std::thread::sleep(std::time::Duration::from_millis(3500).saturating_sub(set_at.elapsed()));
    assert_eq!(count_live(), 301);

    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    let t = &r.json()[0]["restore_test"];
    assert_eq!(t["details"]["keys"]["11"], 301, "{t:#}");
    assert_eq!(t["details"]["expired_since_backup"]["11"], 1, "{t:#}");
    assert!(t["target"].as_str().unwrap().starts_with("throwaway redis-server"), "{t:#}");
    assert_eq!(count_live(), 301, "the live server must not get the restored keys");
    assert_clean(&tmp);
    // compare shows live counts as they are: the expired key is a difference.
    let r = lbc(&cfg, &["compare", "latest", "redis://127.0.0.1:6379/11", "--json"]).code(1);
    assert_eq!(r.json()["rows"][0], serde_json::json!({"name": "db11 keys", "backup": 302, "live": 301, "ok": false}));
}

// ---------------------------------------------------------------------------------------------
// NATS

#[test]
fn verify_nats_restore_test_uses_a_new_stream_that_is_deleted_afterwards() {
    use lifeboat_sources::nats::client::Client;
    use lifeboat_sources::nats::Connection;
    use serde_json::json;
    if !service("NATS on 127.0.0.1:4222", Command::new("bash").args(["-c", "exec 3<>/dev/tcp/127.0.0.1/4222"])) {
        return;
    }
    let tag = unique_tag();
    let (stream, subject) = (format!("LBV_ORDERS_{tag}"), format!("lbv.orders.{tag}"));
    let conn = Connection::parse("nats://127.0.0.1:4222").unwrap();
    let mut c = Client::connect(&conn).unwrap();
    c.js(
        &format!("STREAM.CREATE.{stream}"),
        &json!({"name": stream, "subjects": [format!("{subject}.>")], "storage": "file"}),
        None,
    )
    .unwrap();
    struct Gone(Connection, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            if let Ok(mut c) = Client::connect(&self.0) {
                let _ = c.js_raw(&format!("STREAM.DELETE.{}", self.1), &Value::Null);
            }
        }
    }
    let _gone = Gone(conn.clone(), stream.clone());
    for i in 0..200 {
        let reply = c.request(&format!("{subject}.{}", i % 3), format!("{{\"order\":{i}}}").as_bytes()).unwrap();
        assert!(!String::from_utf8_lossy(&reply.payload).contains("error"));
    }
    let dir = tempdir();
    let body = format!(
        "[[source]]\nname = \"events\"\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\nstreams = [\"{stream}\"]\n"
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "events"]).ok();

    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    let streams = r.json()[0]["restore_test"]["details"]["streams"].clone();
    assert_eq!(streams[0]["messages"], 200, "{streams:#}");
    let scratch = streams[0]["scratch"].as_str().unwrap().to_string();
    assert!(scratch.starts_with("LIFEBOAT_VERIFY_"), "{scratch}");
    let info = c.js_raw(&format!("STREAM.INFO.{scratch}"), &Value::Null).unwrap();
    assert!(info.is_err(), "scratch stream {scratch} was left behind");
    let names = c.js("STREAM.NAMES", &Value::Null, None).unwrap().to_string();
    assert!(!names.contains(&scratch), "{names}");
    let r = lbc(&cfg, &["compare", "latest", &stream]).ok();
    assert!(r.stdout.contains("3 of 3 counts equal"), "{}", r.stdout);
    assert_clean(&tmp);
}

// ---------------------------------------------------------------------------------------------
// MariaDB

#[test]
fn verify_mariadb_restore_test_uses_a_scratch_database_that_is_dropped_even_on_failure() {
    if !mariadb_up() {
        return;
    }
    let src = format!("lb_vmsrc_{}", unique_tag());
    let _drop = MariaDbs(vec![src.clone()]);
    mariadb("", &format!("CREATE DATABASE {src}"));
    mariadb(&src, "CREATE TABLE orders(id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(50)); INSERT INTO orders(note) SELECT CONCAT('o', seq) FROM seq_1_to_3000;");
    let dir = tempdir();
    let body = format!("[[source]]\nname = \"shop\"\nkind = \"mariadb\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nuser = \"root\"\n");
    let (cfg, tmp) = setup(dir.path(), &body);
    let id = lbc(&cfg, &["backup", "shop", "--json"]).ok().json()[0]["snapshot_id"].as_str().unwrap().to_string();
    let exists =
        |d: &str| mariadb("", &format!("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = '{d}'"));

    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    assert_eq!(r.json()[0]["restore_test"]["details"]["tables"]["orders"], 3000, "{}", r.stdout);
    let scratch = scratch_database(&r);
    assert!(scratch.starts_with("lifeboat_verify_"), "{scratch}");
    assert_eq!(exists(&scratch), "0", "scratch database {scratch} was left behind");
    lbc(&cfg, &["compare", "latest", &src]).ok();

    let bad = falsify(&dir.path().join("repo"), &id, |m| m["tables"]["orders"] = 2999.into());
    let r = lbt(&cfg, &tmp, &["verify", &bad, "--restore-test", "--json"]).code(1);
    assert!(
        r.json()[0]["verification"]["findings"].to_string().contains("orders: expected 2999 rows, found 3000"),
        "{}",
        r.stdout
    );
    assert_eq!(exists(&scratch_database(&r)), "0");
    assert_clean(&tmp);
}
