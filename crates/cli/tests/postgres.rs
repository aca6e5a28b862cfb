//! The postgres source against the real server (127.0.0.1:5432, trust auth): backup while a
//! writer runs, restore into a fresh database, native verification, refusal and overwrite,
//! and the failure paths. Throwaway databases are dropped even when a test fails.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn psql(db: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Skips (with a reason) when no server is reachable, except in CI where it must be.
fn server() -> bool {
    service("PostgreSQL on 127.0.0.1:5432", Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", "5432"]))
}

/// Drops the named databases when dropped.
struct Dbs(Vec<String>);
impl Drop for Dbs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS \"{d}\" WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn config(dir: &Path, repo: &Path, body: &str) -> std::path::PathBuf {
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n{body}", repo.display())).unwrap();
    cfg
}

#[test]
fn postgres_backup_under_writes_restores_and_verifies() {
    if !server() {
        return;
    }
    let tag = unique_tag();
    let (src, dst) = (format!("lb_src_{tag}"), format!("lb_dst_{tag}"));
    let _cleanup = Dbs(vec![src.clone(), dst.clone()]);
    psql("postgres", &format!("CREATE DATABASE {src}"));
    psql(
        &src,
        "CREATE TABLE accounts(id serial PRIMARY KEY, name text, balance int);
                CREATE SCHEMA app; CREATE TABLE app.\"Events\"(id bigserial PRIMARY KEY, body text);
                INSERT INTO accounts(name, balance) SELECT 'acct' || g, g FROM generate_series(1, 30000) g;
                INSERT INTO app.\"Events\"(body) SELECT repeat('e', 80) FROM generate_series(1, 10000);",
    );
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = config(tmp.path(), &repo, &format!("[[source]]\nname = \"main-db\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\n"));
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // A writer inserts in small transactions during the backup.
    let writer = {
        let src = src.clone();
        std::thread::spawn(move || {
            let sql: String = (0..400).map(|_| "INSERT INTO accounts(name, balance) VALUES ('live', 1);\n").collect();
            let mut child = Command::new("psql")
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", &src])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
            child.wait().unwrap();
        })
    };
    let b: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["backup", "main-db", "--json"]).ok().stdout).unwrap();
    writer.join().unwrap();
    let m = &b[0]["manifest"];
    let accounts = m["tables"]["public.accounts"].as_u64().unwrap();
    assert!(accounts >= 30_000, "{m:#}");
    assert_eq!(m["tables"]["app.Events"], 10_000, "{m:#}");
    assert!(m["server_version"].as_str().unwrap().starts_with(|c: char| c.is_ascii_digit()), "{m:#}");

    // Restore into a new database; counts equal the manifest (taken inside the dump's snapshot).
    let r = lbc(&cfg, &["restore", "latest", "--source", "main-db", "--target", &dst, "--verify", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verification"]["ok"], true, "{v:#}");
    assert_eq!(psql(&dst, "SELECT count(*) FROM accounts").parse::<u64>().unwrap(), accounts);
    assert_eq!(psql(&dst, "SELECT count(*) FROM app.\"Events\"").parse::<u64>().unwrap(), 10_000);

    // An existing database is refused and untouched; --overwrite drops and recreates it.
    psql(&dst, "INSERT INTO accounts(name, balance) VALUES ('marker', 0)");
    let refused = lbc(&cfg, &["restore", "latest", "--source", "main-db", "--target", &dst]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--overwrite"), "{}", refused.stderr);
    assert_eq!(psql(&dst, "SELECT count(*) FROM accounts WHERE name = 'marker'"), "1");
    lbc(&cfg, &["restore", "latest", "--source", "main-db", "--target", &dst, "--overwrite", "--verify"]).ok();
    assert_eq!(psql(&dst, "SELECT count(*) FROM accounts WHERE name = 'marker'"), "0");

    // A second backup of the unchanged database stores little.
    let b2: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["backup", "main-db", "--json"]).ok().stdout).unwrap();
    let (size, added) =
        (b2[0]["summary"]["total_bytes_processed"].as_u64().unwrap(), b2[0]["summary"]["data_added"].as_u64().unwrap());
    assert!(added * 4 < size, "second backup added {added} of {size} bytes");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn postgres_failures_name_the_source_and_record_nothing() {
    if !server() {
        return;
    }
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let cfg = config(
        tmp.path(),
        &repo,
        "[[source]]\nname = \"down\"\nkind = \"postgres\"\ndatabase = \"postgres\"\nhost = \"127.0.0.1\"\nport = 1\n\n\
         [[source]]\nname = \"missing-db\"\nkind = \"postgres\"\ndatabase = \"lb_no_such_database\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\n\n\
         [[source]]\nname = \"no-client\"\nkind = \"postgres\"\ndatabase = \"postgres\"\nbin_dir = \"/nonexistent\"\n\n\
         [[source]]\nname = \"files-ok\"\nkind = \"files\"\npath = \"/etc/hostname\"\n",
    );
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let r = lbc(&cfg, &["backup", "--all"]);
    assert_eq!(r.code, 1, "{r:?}");
    let lines: Vec<&str> = r.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 3, "one line per failed source: {}", r.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("source down:") && l.contains("127.0.0.1:1") && l.to_lowercase().contains("refused")),
        "{}",
        r.stderr
    );
    assert!(lines.iter().any(|l| l.contains("source missing-db:") && l.contains("does not exist")), "{}", r.stderr);
    assert!(lines.iter().any(|l| l.contains("source no-client:") && l.contains("not installed")), "{}", r.stderr);
    let snaps: serde_json::Value = serde_json::from_str(&lbc(&cfg, &["snapshots", "--json"]).ok().stdout).unwrap();
    let names: Vec<&str> = snaps.as_array().unwrap().iter().map(|s| s["lifeboat"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["files-ok"]);
}
