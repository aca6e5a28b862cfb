//! `restore --all` (whole-service recovery), end to end: a files, a sqlite and a PostgreSQL
//! source restored in `after` order (checked with hook marker times) under `--target-root`,
//! each compared with the original; `--dry-run` plans without touching anything; the summary
//! with RTO (also `--json`); the first failure stops the run unless `--keep-going`; guarded
//! targets refused unless each is confirmed, then a live sqlite database brought back; bad input
//! as one line with its exit code.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::Path;

use common::*;
use scratch::*;
use serde_json::Value;
use servers::*;

/// A hook that appends `NAME nanoseconds` to `dir/order` (the time it ran).
fn marker(dir: &Path, name: &str) -> String {
    format!("before_restore = [\"sh\", \"-c\", \"echo {name} $(date +%s%N) >> {}/order\"]\n", dir.display())
}

fn sqlite_db(path: &Path, rows: usize) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    let t = c.transaction().unwrap();
    t.execute_batch("CREATE TABLE ledger(id INTEGER PRIMARY KEY, entry TEXT);").unwrap();
    for i in 0..rows {
        t.execute("INSERT INTO ledger(entry) VALUES (?1)", [format!("entry {i}")]).unwrap();
    }
    t.commit().unwrap();
}

fn sqlite_rows(path: &Path) -> i64 {
    rusqlite::Connection::open(path).unwrap().query_row("SELECT count(*) FROM ledger", [], |r| r.get(0)).unwrap()
}

fn rows(j: &Value) -> Vec<(String, String)> {
    j["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["source"].as_str().unwrap().to_string(), r["status"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn restore_all_brings_back_files_sqlite_and_postgres_in_after_order() {
    if !postgres_up() {
        return;
    }
    let dir = tempdir();
    let tag = unique_tag();
    let db = format!("lb_all_{tag}");
    let pg_source = format!("pg{tag}");
    let restored_db = format!("{pg_source}_restored");
    let _cleanup = PgDbs(vec![db.clone(), restored_db.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE orders(id serial PRIMARY KEY, item text); INSERT INTO orders(item) SELECT 'item' || g FROM generate_series(1, 5000) g;");
    let files = dir.path().join("assets");
    fs::create_dir_all(files.join("img")).unwrap();
    write_random(&files.join("img/logo.bin"), 200_000, 7);
    fs::write(files.join("index.html"), "<h1>shop</h1>").unwrap();
    let sqlite = dir.path().join("memory.db");
    sqlite_db(&sqlite, 1500);
    // File order is the reverse of the restore order `after` asks for.
    let body = format!(
        "[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\nafter = [\"{pg_source}\"]\nrto = \"5m\"\n{}\n\
         [[source]]\nname = \"{pg_source}\"\nkind = \"postgres\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\nafter = [\"assets\"]\nrto = \"10m\"\n{}\n\
         [[source]]\nname = \"assets\"\nkind = \"files\"\npaths = [\"{}\"]\nrto = \"1s\"\n{}",
        sqlite.display(),
        marker(dir.path(), "memory-db"),
        marker(dir.path(), &pg_source),
        files.display(),
        marker(dir.path(), "assets"),
    );
    let (cfg, _) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "--all"]).ok();
    let root = dir.path().join("dr");

    // The plan: order, snapshot, target, size; nothing touched.
    let plan = lbc(&cfg, &["restore", "--all", "--target-root", s(&root), "--dry-run"]).ok();
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert!(lines[0].contains("would restore 3 sources in this order"), "{}", plan.stdout);
    let order: Vec<&str> = lines[2..5].iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(order, ["assets", pg_source.as_str(), "memory-db"], "{}", plan.stdout);
    assert!(plan.stdout.contains(&format!("{}/memory-db/memory.db", root.display())), "{}", plan.stdout);
    assert!(plan.stdout.contains(&restored_db), "{}", plan.stdout);
    assert!(lines[2..5].iter().all(|l| l.contains("planned")), "{}", plan.stdout);
    assert!(!root.exists() && !dir.path().join("order").exists(), "a dry run touched something");
    assert_eq!(psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{restored_db}'")), "0");
    let pj = lbc(&cfg, &["restore", "--all", "--target-root", s(&root), "--dry-run", "--json"]).ok().json();
    assert_eq!(pj["dry_run"], true);
    assert!(pj["sources"][0]["bytes"].as_u64().unwrap() >= 200_000, "{pj:#}");
    assert_eq!(pj["sources"][2]["snapshot"].as_str().unwrap().len(), 64);

    // The real run, in order, each compared with its original.
    let r = lbc(&cfg, &["restore", "--all", "--target-root", s(&root), "--json"]).ok();
    let j = r.json();
    assert_eq!(
        rows(&j),
        [("assets".into(), "ok".into()), (pg_source.clone(), "ok".into()), ("memory-db".into(), "ok".into())]
    );
    for row in j["sources"].as_array().unwrap() {
        assert!(row["seconds"].as_f64().unwrap() > 0.0, "{row:#}");
        assert!(row["rto_seconds"].as_f64().is_some());
    }
    assert_eq!((&j["sources"][1]["rto"], &j["sources"][1]["within_rto"]), (&Value::from("10m"), &Value::from(true)));
    let marks = fs::read_to_string(dir.path().join("order")).unwrap();
    let mut seen: Vec<(u128, String)> = marks
        .lines()
        .map(|l| {
            let (n, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), n.to_string())
        })
        .collect();
    seen.sort();
    let by_time: Vec<&str> = seen.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(by_time, ["assets", pg_source.as_str(), "memory-db"], "hooks ran in this order: {marks}");
    assert_same_tree(&files, &under(&root.join("assets"), &files), Compare::CONTENT);
    assert_eq!(sqlite_rows(&root.join("memory-db/memory.db")), 1500);
    assert_eq!(psql(&restored_db, "SELECT count(*) FROM orders"), "5000");

    // The table for people: every source, seconds and RTO.
    let table = lbc(&cfg, &["restore", "--all", "--target-root", s(&root), "--overwrite"]).ok();
    let head = table.stdout.lines().find(|l| l.starts_with("#   SOURCE")).unwrap();
    for col in ["SOURCE", "SNAPSHOT", "SECONDS", "RTO", "STATUS", "TARGET"] {
        assert!(head.contains(col), "{head}");
    }
    let ok_rows = table.stdout.lines().filter(|l| l.starts_with(char::is_numeric) && l.contains(" ok ")).count();
    assert_eq!(ok_rows, 3, "{}", table.stdout);
}

#[test]
fn restore_all_stops_at_the_first_failure_unless_keep_going() {
    let dir = tempdir();
    let mut body = String::new();
    for (i, name) in ["one", "two", "three"].iter().enumerate() {
        let data = dir.path().join(name);
        fs::create_dir_all(&data).unwrap();
        write_random(&data.join("f.bin"), 5000, i as u64);
        let hook = if *name == "two" {
            format!(
                "before_restore = [\"sh\", \"-c\", \"echo service two will not stop >&2; exit 5\"]\n\
                 on_failure = [\"sh\", \"-c\", \"echo \\\"$LIFEBOAT_OPERATION $LIFEBOAT_TARGET $LIFEBOAT_ERROR\\\" >> {}/two-failed\"]\n",
                dir.path().display()
            )
        } else {
            String::new()
        };
        body += &format!("[[source]]\nname = \"{name}\"\nkind = \"files\"\npaths = [\"{}\"]\n{hook}\n", data.display());
    }
    let (cfg, _) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "--all"]).ok();
    let root = dir.path().join("dr");
    let r = lbc(&cfg, &["restore", "--all", "--target-root", s(&root), "--json"]).code(1);
    let j = r.json();
    assert_eq!(
        rows(&j),
        [("one".into(), "ok".into()), ("two".into(), "failed".into()), ("three".into(), "not_started".into())]
    );
    assert!(j["sources"][1]["error"].as_str().unwrap().contains("service two will not stop"), "{j:#}");
    assert!(root.join("one").exists() && !root.join("two").exists() && !root.join("three").exists());
    let alarm = fs::read_to_string(dir.path().join("two-failed")).unwrap();
    assert!(alarm.starts_with(&format!("restore {}/two before_restore failed", root.display())), "{alarm}");
    // --keep-going restores the rest; the failure still makes exit 1.
    let root2 = dir.path().join("dr2");
    let r = lbc(&cfg, &["restore", "--all", "--target-root", s(&root2), "--keep-going"]).code(1);
    assert!(r.stdout.contains("FAILED") && r.stdout.contains("two: before_restore failed"), "{}", r.stdout);
    assert!(root2.join("one").exists() && root2.join("three").exists() && !root2.join("two").exists());
    // --sources picks some, still in order.
    let root3 = dir.path().join("dr3");
    let j =
        lbc(&cfg, &["restore", "--all", "--sources", "three,one", "--target-root", s(&root3), "--json"]).ok().json();
    assert_eq!(rows(&j), [("one".into(), "ok".into()), ("three".into(), "ok".into())]);
}

#[test]
fn restore_all_refuses_guarded_targets_unless_each_is_confirmed() {
    let dir = tempdir();
    let live = dir.path().join("memory.db");
    sqlite_db(&live, 800);
    let docs = dir.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    fs::write(docs.join("a.txt"), "hello").unwrap();
    let restore_to = dir.path().join("docs-restored");
    // memory-db goes back to its live file (guarded); docs to its restore_target, but protected.
    let body = format!(
        "[[source]]\nname = \"memory-db\"\nkind = \"sqlite\"\npath = \"{}\"\n\n\
         [[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nprotected = true\nrestore_target = \"{}\"\n",
        live.display(),
        docs.display(),
        restore_to.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "--all"]).ok();
    // The live database loses rows.
    rusqlite::Connection::open(&live).unwrap().execute("DELETE FROM ledger WHERE id > 100", []).unwrap();
    let r = lbc(&cfg, &["restore", "--all", "--overwrite"]).code(4);
    let line = r.one_error_line();
    assert!(line.starts_with("lifeboat: refused: restore --all includes guarded restores: memory-db ("), "{line}");
    assert!(line.contains("docs (the source is protected)"), "{line}");
    assert!(line.ends_with("nothing was changed; rerun with --force --confirm memory-db,docs"), "{line}");
    assert_eq!(sqlite_rows(&live), 100, "a refused run changed the live database");
    assert!(!restore_to.exists());
    // Confirming one of them is not enough.
    lbc(&cfg, &["restore", "--all", "--overwrite", "--force", "--confirm", "docs"]).code(4);
    assert_eq!(sqlite_rows(&live), 100);
    // Both confirmed: the live database is whole again, docs is at its restore_target.
    let r = lbc(&cfg, &["restore", "--all", "--overwrite", "--force", "--confirm", "memory-db,docs"]).ok();
    assert!(r.stdout.contains("memory-db: guarded because"), "{}", r.stdout);
    assert_eq!(sqlite_rows(&live), 800);
    assert_eq!(fs::read_to_string(under(&restore_to, &docs).join("a.txt")).unwrap(), "hello");
}

#[test]
fn restore_all_bad_input_is_one_line() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("x"), "x").unwrap();
    let body = format!(
        "[[source]]\nname = \"a\"\nkind = \"files\"\npaths = [\"{}\"]\n\n[[source]]\nname = \"out\"\nkind = \"command\"\ncommand = [\"echo\", \"hi\"]\n\n[[source]]\nname = \"never\"\nkind = \"files\"\npaths = [\"{}\"]\n",
        data.display(),
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    lbc(&cfg, &["backup", "a", "out"]).ok();
    // An unknown name in --sources: usage error.
    let r = lbc(&cfg, &["restore", "--all", "--sources", "a,nope", "--dry-run"]).code(2);
    assert!(r.one_error_line().contains("--sources: no source named \"nope\""), "{}", r.stderr);
    // --all with a snapshot is a usage error.
    lbc(&cfg, &["restore", "latest", "--all"]).code(2);
    // A source without a snapshot and a command source without a target: the plan says so and
    // nothing is restored.
    let r = lbc(&cfg, &["restore", "--all", "--json"]).code(1);
    let j = r.json();
    assert_eq!(
        j["sources"][1]["error"],
        "a command source has no target of its own: set `restore_target` in its [[source]]"
    );
    assert_eq!(j["sources"][2]["error"], "no snapshot of this source to restore");
    assert!(j["sources"].as_array().unwrap().iter().all(|s| s["status"] != "ok"), "{j:#}");

    // `after` naming an unknown source, or a cycle: config errors with file and line.
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nafter = [\"b\"]\n").unwrap();
    let r = lbc(&bad, &["config", "check"]).code(1);
    assert!(
        r.one_error_line().contains("bad.toml:5: source \"a\": after: no source named \"b\" (sources: a)"),
        "{}",
        r.stderr
    );
    fs::write(
        &bad,
        "[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nafter = [\"c\"]\n\n[[source]]\nname = \"b\"\nkind = \"files\"\npath = \"/y\"\nafter = [\"a\"]\n\n[[source]]\nname = \"c\"\nkind = \"files\"\npath = \"/z\"\nafter = [\"b\"]\n",
    )
    .unwrap();
    let r = lbc(&bad, &["restore", "--all", "--dry-run"]).code(1);
    assert!(r.one_error_line().contains("bad.toml:5: source \"a\": after: a cycle: a → c → b → a"), "{}", r.stderr);
}
