//! The postgres source against the real server (127.0.0.1:5432, trust auth): backup while a
//! writer runs, restore into a fresh database, native verification, refusal and overwrite,
//! and the failure paths. Throwaway databases are dropped even when a test fails.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/pgcluster.rs"]
mod pgcluster;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use pgcluster::*;
use servers::*;

fn config(dir: &Path, repo: &Path, body: &str) -> std::path::PathBuf {
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, format!("[repository]\nurl = \"{}\"\n\n{body}", repo.display())).unwrap();
    cfg
}

#[test]
fn postgres_backup_under_writes_restores_and_verifies() {
    if !postgres_up() {
        return;
    }
    let tag = unique_tag();
    let (src, dst) = (format!("lb_src_{tag}"), format!("lb_dst_{tag}"));
    let _cleanup = PgDbs(vec![src.clone(), dst.clone()]);
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
    if !postgres_up() {
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

fn pgbench_installed() -> bool {
    service("the pgbench program", Command::new("pgbench").arg("--version"))
}

/// Drops the named roles of the shared server when dropped.
struct Roles(Vec<String>);
impl Drop for Roles {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("psql")
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"])
                .args(["-c", &format!("DROP ROLE IF EXISTS \"{r}\"")])
                .output();
        }
    }
}

#[test]
fn postgres_directory_format_with_parallel_jobs_under_pgbench_restores_and_verifies() {
    if !postgres_up() || !pgbench_installed() {
        return;
    }
    let tag = unique_tag();
    let (src, dst) = (format!("lb_pgb_{tag}"), format!("lb_pgbr_{tag}"));
    let _cleanup = PgDbs(vec![src.clone(), dst.clone()]);
    psql("postgres", &format!("CREATE DATABASE {src}"));
    run(Command::new("pgbench").args(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-U", "postgres", &src])).ok();
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let cfg = config(
        tmp.path(),
        &repo,
        &format!(
            "[[source]]\nname = \"bench\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\n\
             user = \"postgres\"\nformat = \"directory\"\njobs = 2\ntmp_dir = \"{}\"\n",
            work.display()
        ),
    );
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // pgbench keeps updating accounts and appending history during the backup.
    let mut bench = Command::new("pgbench")
        .args(["-T", "6", "-c", "2", "-n", "-h", "127.0.0.1", "-U", "postgres", &src])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let b = lbc(&cfg, &["backup", "bench", "--json"]).ok().json();
    let m = &b[0]["manifest"];
    assert_eq!(m["format"], "directory", "{m:#}");
    assert_eq!(m["jobs"], 2, "{m:#}");
    assert_eq!(m["file"], format!("{src}.dir"), "{m:#}");
    assert_eq!(m["tables"]["public.pgbench_accounts"], 100_000, "{m:#}");
    let history = m["tables"]["public.pgbench_history"].as_u64().unwrap();
    assert!(bench.wait().unwrap().success());
    let after = psql(&src, "SELECT count(*) FROM pgbench_history").parse::<u64>().unwrap();
    assert!(history > 0 && history < after, "the backup must be taken while pgbench writes: {history} vs {after}");
    assert_eq!(fs::read_dir(&work).unwrap().count(), 0, "the temporary dump directory must be deleted");
    let ls = lbc(&cfg, &["ls", "latest", "--source", "bench"]).ok();
    assert!(ls.stdout.contains(&format!("/{src}.dir/toc.dat")), "{}", ls.stdout);

    // Restore with parallel jobs into a new database: counts equal the manifest's, which were
    // taken inside the snapshot pg_dump used (not the later state of the source).
    let r = lbc(&cfg, &["restore", "latest", "--source", "bench", "--target", &dst, "--verify", "--json"]).ok().json();
    assert_eq!(r["verification"]["ok"], true, "{r:#}");
    assert_eq!(psql(&dst, "SELECT count(*) FROM pgbench_history").parse::<u64>().unwrap(), history);
    let sum_accounts = psql(&dst, "SELECT sum(abalance) FROM pgbench_accounts");
    let sum_tellers = psql(&dst, "SELECT sum(tbalance) FROM pgbench_tellers");
    assert_eq!(sum_accounts, sum_tellers, "accounts and tellers must come from the same transaction-consistent state");
    assert_eq!(rs(&repo, &["check", "--read-data"]).code, 0);
}

#[test]
fn postgres_globals_round_trip_into_a_throwaway_cluster() {
    if !postgres_up() {
        return;
    }
    let Some(bin) = server_bin() else { return };
    let tag = unique_tag();
    let (src, role) = (format!("lb_gsrc_{tag}"), format!("lb_role_{tag}"));
    // Declared first, dropped last: the role can only go once the database granting to it is gone.
    let _roles = Roles(vec![role.clone()]);
    let _dbs = PgDbs(vec![src.clone()]);
    psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw-role-3d9a'"));
    psql("postgres", &format!("CREATE DATABASE {src}"));
    psql(
        &src,
        &format!("CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 500); GRANT SELECT ON t TO {role};"),
    );
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let source = |port: u16| {
        format!(
            "[[source]]\nname = \"db\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             user = \"postgres\"\nglobals = true\n\n\
             [[source]]\nname = \"plain\"\nkind = \"postgres\"\ndatabase = \"{src}\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"postgres\"\n"
        )
    };
    let cfg = config(tmp.path(), &repo, &source(5432));
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let b = lbc(&cfg, &["backup", "db", "plain", "--json"]).ok().json();
    let g = &b[0]["manifest"]["globals"];
    assert_eq!(g["file"], "globals.sql", "{g:#}");
    assert_eq!(g["role_passwords"], true, "superusers dump password hashes: {g:#}");
    assert!(g["roles"].as_array().unwrap().iter().any(|r| r == role.as_str()), "{g:#}");
    assert!(b[1]["manifest"]["globals"].is_null());

    // Restore into a cluster where the role does not exist: globals first, then the database.
    let cluster = Cluster::start(&bin);
    let cfg2 = tmp.path().join("cluster.toml");
    fs::write(&cfg2, format!("[repository]\nurl = \"{}\"\n\n{}", repo.display(), source(cluster.port))).unwrap();
    let exists = format!("SELECT rolcanlogin AND rolpassword LIKE 'SCRAM%' FROM pg_authid WHERE rolname = '{role}'");
    assert_eq!(cluster.psql(&exists), "");
    let r = lbc(&cfg2, &["restore", "latest", "--source", "db", "--target", "copy", "--globals", "--verify", "--json"])
        .ok()
        .json();
    assert_eq!(r["verification"]["ok"], true, "{r:#}");
    assert!(r["globals"]["already_existed"].as_u64().unwrap() >= 1, "the postgres role exists already: {r:#}");
    assert_eq!(cluster.psql(&exists), "t", "the role, with its password, exists after restoring the globals");
    // Applying them again changes nothing and is not an error.
    lbc(&cfg2, &["restore", "latest", "--source", "db", "--target", "copy", "--globals", "--overwrite"]).ok();
    // A snapshot without globals says so in one line.
    let none = lbc(&cfg2, &["restore", "latest", "--source", "plain", "--target", "copy2", "--globals"]);
    assert_eq!(none.code, 1);
    assert!(none.one_error_line().contains("globals = true"), "{}", none.stderr);
}
