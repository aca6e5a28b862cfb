//! `lifeboat drill`, `drill keygen` and `drill check-report`, end to end: a signed report (JSON
//! and one self-contained HTML page) in the report directory and in the repository, a drill
//! summary and verification records, tampering named by field, a foreign key refused, a source
//! without a snapshot failing the drill, and database sources timed against their RTO with
//! their scratch targets removed.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use lifeboat_backend::{Backend, FileType};
use scratch::*;
use serde_json::{json, Value};
use servers::*;

#[track_caller]
/// Write a changed copy of a report and run check-report on it.
fn check_tampered(dir: &Path, report: &Path, key: &Path, f: impl FnOnce(&mut Value)) -> Run {
    let mut v: Value = serde_json::from_slice(&fs::read(report).unwrap()).unwrap();
    f(&mut v);
    let copy = dir.join("tampered.json");
    fs::write(&copy, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    run(bare().args(["drill", "check-report"]).arg(&copy).arg("--public-key").arg(key))
}

fn sqlite_db(path: &Path) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    let t = c.transaction().unwrap();
    t.execute_batch("CREATE TABLE ledger(id INTEGER PRIMARY KEY, entry TEXT);").unwrap();
    for i in 0..2000 {
        t.execute("INSERT INTO ledger(entry) VALUES (?1)", [format!("entry {i}")]).unwrap();
    }
    t.commit().unwrap();
}

#[test]
fn drill_signs_its_report_and_check_report_names_what_was_changed() {
    let dir = tempdir();
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let key = keys.join("drill.key");
    let r = run(bare().args(["drill", "keygen", "--out"]).arg(&key)).ok();
    assert!(r.stdout.contains("lifeboat-ed25519-public:"), "{}", r.stdout);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let public = keys.join("drill.key.pub");
    assert!(fs::read_to_string(&public).unwrap().starts_with("lifeboat-ed25519-public:"));
    let again = run(bare().args(["drill", "keygen", "--out"]).arg(&key)).code(1);
    assert!(again.one_error_line().contains("exists already"), "{}", again.stderr);

    let data = dir.path().join("proofs");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("proof.bin"), 1 << 20, 3);
    let db = dir.path().join("memory.db");
    sqlite_db(&db);
    let body = format!(
        "[drill]\nsigning_key = \"{}\"\n\n[[source]]\nname = \"proofs\"\nkind = \"files\"\npaths = [\"{}\"]\nrto = \"10m\"\n\n[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\nrto = \"5m\"\n",
        key.display(),
        data.display(),
        db.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "--all"]).ok();

    let out = dir.path().join("drill-out");
    let r = lbt(&cfg, &tmp, &["drill", "--report-dir", s(&out), "--json"]).ok();
    let j = r.json();
    assert_eq!(j["signed"], true);
    assert_eq!(j["report"]["outcome"], "ok", "{j:#}");
    let sources = j["report"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 2);
    for s in sources {
        assert_eq!(s["outcome"], "ok", "{s:#}");
        assert!(s["rto_seconds"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(sources[1]["rto_target_seconds"], 300.0);
    assert_eq!(sources[1]["details"]["tables"]["ledger"], 2000);
    assert_clean(&tmp);

    // The HTML page is self-contained.
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("memory-db") && html.contains("proofs"));
    for external in ["http://", "https://", "<script", "src=", "<link"] {
        assert!(!html.contains(external), "the page refers to something outside it: {external}");
    }

    // The untouched report checks out against the trusted key.
    let report = out.join("report.json");
    let ok = run(bare().args(["drill", "check-report"]).arg(&report).arg("--public-key").arg(&public)).ok();
    assert!(ok.stdout.contains("signature valid"), "{}", ok.stdout);

    // Tampering is named: a field of a source, a report field, a removed source, the signature.
    let r =
        check_tampered(dir.path(), &report, &public, |v| v["report"]["sources"][1]["rto_seconds"] = json!(1.0)).code(1);
    assert!(r.stdout.contains("source memory-db: field rto_seconds changed after signing"), "{}", r.stdout);
    assert!(!r.stdout.contains("signature is invalid"), "{}", r.stdout);
    let r = check_tampered(dir.path(), &report, &public, |v| v["report"]["host"] = json!("elsewhere")).code(1);
    assert!(r.stdout.contains("report field host changed after signing"), "{}", r.stdout);
    let r = check_tampered(dir.path(), &report, &public, |v| {
        v["report"]["sources"].as_array_mut().unwrap().remove(0);
    })
    .code(1);
    assert!(r.stdout.contains("source proofs: field outcome removed after signing"), "{}", r.stdout);
    let r = check_tampered(dir.path(), &report, &public, |v| {
        let sig = v["signature"]["value"].as_str().unwrap().to_string();
        let flipped = if sig.ends_with('0') { "1" } else { "0" };
        v["signature"]["value"] = json!(format!("{}{flipped}", &sig[..sig.len() - 1]));
    })
    .code(1);
    assert!(r.stdout.contains("the signature is invalid"), "{}", r.stdout);
    // Re-signing with another key does not pass against the trusted key.
    let other = keys.join("other.key");
    run(bare().args(["drill", "keygen", "--out"]).arg(&other)).ok();
    let r =
        run(bare().args(["drill", "check-report"]).arg(&report).arg("--public-key").arg(keys.join("other.key.pub")))
            .code(1);
    assert!(r.stdout.contains("not with the trusted key"), "{}", r.stdout);

    // Stored in the repository: the same signed JSON, the page, a drill summary.
    let repo = open_repo(&dir.path().join("repo"));
    let names: Vec<String> = repo.backend().list(FileType::Lifeboat).unwrap().into_iter().map(|(n, _)| n).collect();
    let stored = names.iter().find(|n| n.starts_with("drill-reports/") && n.ends_with(".json")).unwrap();
    assert_eq!(repo.load_unpacked(FileType::Lifeboat, stored).unwrap(), fs::read(&report).unwrap());
    assert!(names.iter().any(|n| n.starts_with("drill-reports/") && n.ends_with(".html")), "{names:?}");
    let drills = lifeboat_ops::records::drills(&repo).unwrap();
    assert_eq!(drills.len(), 1);
    assert_eq!(drills[0].outcome, lifeboat_ops::records::Outcome::Ok);
    assert_eq!(drills[0].report.as_deref(), Some(stored.as_str()));
    // Each drilled snapshot counts as verified.
    let v = lbc(&cfg, &["snapshots", "--verified-only", "--json"]).ok().json();
    assert_eq!(v.as_array().unwrap().len(), 2, "{v:#}");
    assert_eq!(v[0]["verification"]["checks"], json!(["restore-test", "drill"]));
}

#[test]
fn drill_fails_a_source_without_snapshot_and_an_unsigned_report_does_not_check() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_text(&data.join("a.txt"), 3000, "a");
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{d}\"]\n\n[[source]]\nname = \"never\"\nkind = \"files\"\npaths = [\"{d}\"]\nrto = \"1h\"\n",
        d = data.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "docs"]).ok();
    let out = dir.path().join("r1");
    let r = lbt(&cfg, &tmp, &["drill", "--report-dir", s(&out)]).code(1);
    assert!(r.stderr.contains("the report is not signed"), "{}", r.stderr);
    let never = r.stdout.lines().find(|l| l.starts_with("never")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(never.contains("FAILED"), "{}", r.stdout);
    assert!(r.stdout.contains("no snapshot of this source"), "{}", r.stdout);
    let c = run(bare().args(["drill", "check-report"]).arg(out.join("report.json"))).code(1);
    assert!(c.stdout.contains("not signed"), "{}", c.stdout);
    // Only the source that has a backup: ok.
    lbt(&cfg, &tmp, &["drill", "--source", "docs", "--report-dir", s(&dir.path().join("r2"))]).ok();
    assert_clean(&tmp);
    // Bad input: one line each.
    let r = lbt(&cfg, &tmp, &["drill", "--source", "nope"]).code(1);
    assert!(r.one_error_line().contains("no source named \"nope\""), "{}", r.stderr);
    let r = run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .current_dir(dir.path().join("data"))
        .args(["--repo", "x", "drill"]))
    .code(1);
    assert!(r.one_error_line().contains("needs a config file"), "{}", r.stderr);
    let r = run(bare().args(["drill", "check-report"]).arg(&cfg)).code(1);
    assert!(r.one_error_line().contains("drill report"), "{}", r.stderr);
}

#[test]
fn drill_of_database_sources_times_each_verified_restore_against_its_rto() {
    if !postgres_up() || !redis_up() || !service("redis-server binary", Command::new("redis-server").arg("--version")) {
        return;
    }
    let tag = unique_tag();
    let src = format!("lb_drill_{tag}");
    let _db = PgDbs(vec![src.clone()]);
    psql("postgres", &format!("CREATE DATABASE {src}"));
    psql(&src, "CREATE TABLE orders(id serial PRIMARY KEY, total int); INSERT INTO orders(total) SELECT g FROM generate_series(1, 20000) g;");
    let prefix = format!("lbdrill{tag}:");
    let _keys = RedisKeys { prefix: prefix.clone(), dbs: vec![10] };
    let pipe: String = (0..500).map(|i| format!("SET {prefix}{i} {i}\n")).collect();
    redis_pipe(10, &pipe);
    let dir = tempdir();
    let db = dir.path().join("ledger.db");
    sqlite_db(&db);
    let files = dir.path().join("models");
    fs::create_dir_all(&files).unwrap();
    write_random(&files.join("weights.bin"), 8 << 20, 9);
    let body = format!(
        "[[source]]\nname = \"orders-db\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\nrto = \"30m\"\n\n\
         [[source]]\nname = \"cache\"\nkind = \"redis\"\nhost = \"127.0.0.1\"\ndatabases = [10]\npattern = \"{prefix}*\"\nrto = \"5m\"\n\n\
         [[source]]\nname = \"ledger\"\nkind = \"sqlite\"\npath = \"{}\"\nrto = \"1m\"\n\n\
         [[source]]\nname = \"models\"\nkind = \"files\"\npaths = [\"{}\"]\nrto = \"10m\"\n",
        db.display(),
        files.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "--all"]).ok();
    let out = dir.path().join("report");
    let r = lbt(&cfg, &tmp, &["drill", "--report-dir", s(&out)]).ok();
    println!("{}", r.stdout);
    for name in ["orders-db", "cache", "ledger", "models"] {
        let line = r.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {}", r.stdout));
        assert!(line.contains(" ok "), "{line}");
    }
    let report: Value = serde_json::from_slice(&fs::read(out.join("report.json")).unwrap()).unwrap();
    let pg = &report["report"]["sources"][0];
    assert_eq!(pg["details"]["tables"]["public.orders"], 20000, "{pg:#}");
    let scratch = pg["scratch_target"].as_str().unwrap().strip_prefix("database ").unwrap().to_string();
    assert_eq!(psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'")), "0");
    assert_eq!(report["report"]["sources"][1]["details"]["keys"]["10"], 500);
    assert_clean(&tmp);
}
