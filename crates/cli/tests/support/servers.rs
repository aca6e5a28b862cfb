//! The real servers the database tests talk to (PostgreSQL :5432, MariaDB :3306, Redis :6379 on
//! 127.0.0.1): probes that skip outside CI, one-shot clients that assert success, and guards that
//! remove what a test created even when it fails.
//!
//! Included after `common` with `#[path = "support/servers.rs"] mod servers;`.

#![allow(dead_code)]

use std::process::{Command, Stdio};

use crate::common::service;

/// Whether PostgreSQL answers (skips with a reason outside CI; fails in CI).
pub fn postgres_up() -> bool {
    service("PostgreSQL on 127.0.0.1:5432", Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", "5432"]))
}

/// Whether MariaDB answers.
pub fn mariadb_up() -> bool {
    service(
        "MariaDB on 127.0.0.1:3306",
        Command::new("mariadb").args(["-h", "127.0.0.1", "--protocol=TCP", "-u", "root", "-e", "SELECT 1"]),
    )
}

/// Whether Redis answers.
pub fn redis_up() -> bool {
    service("Redis on 127.0.0.1:6379", Command::new("redis-cli").args(["-h", "127.0.0.1", "ping"]))
}

fn output(what: &str, c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Run `sql` in database `db` as postgres; returns the unaligned, tuples-only output.
pub fn psql(db: &str, sql: &str) -> String {
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", sql]);
    output(&format!("psql {sql}"), &mut c)
}

/// Drops the named PostgreSQL databases when dropped.
pub struct PgDbs(pub Vec<String>);

impl Drop for PgDbs {
    fn drop(&mut self) {
        for d in &self.0 {
            let sql = format!("DROP DATABASE IF EXISTS \"{d}\" WITH (FORCE)");
            let _ = Command::new("psql")
                .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", &sql])
                .output();
        }
    }
}

/// Run `q` as root (in database `db` unless empty); returns the batch output without headers.
pub fn mariadb(db: &str, q: &str) -> String {
    let mut c = Command::new("mariadb");
    c.args(["-h", "127.0.0.1", "--protocol=TCP", "-u", "root", "-N", "-B"]);
    if !db.is_empty() {
        c.args(["-D", db]);
    }
    c.args(["-e", q]);
    output(&format!("mariadb {q}"), &mut c)
}

/// Drops the named MariaDB databases when dropped.
pub struct MariaDbs(pub Vec<String>);

impl Drop for MariaDbs {
    fn drop(&mut self) {
        for d in &self.0 {
            let q = format!("DROP DATABASE IF EXISTS `{d}`");
            let _ =
                Command::new("mariadb").args(["-h", "127.0.0.1", "--protocol=TCP", "-u", "root", "-e", &q]).output();
        }
    }
}

/// Run one redis-cli command against database `db`.
pub fn redis_cli(db: u32, args: &[&str]) -> String {
    let mut c = Command::new("redis-cli");
    c.args(["-h", "127.0.0.1", "-n", &db.to_string()]).args(args);
    output(&format!("redis-cli {args:?}"), &mut c)
}

/// Feed newline-separated commands to redis-cli for database `db` (bulk loading test data).
pub fn redis_pipe(db: u32, commands: &str) {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-n", &db.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(commands.as_bytes()).expect("write to redis-cli");
    }
    assert!(child.wait().expect("redis-cli").success(), "redis-cli failed to load the commands");
}

/// Deletes the keys starting with `prefix` in the given databases when dropped.
pub struct RedisKeys {
    /// Key prefix the test used.
    pub prefix: String,
    /// Databases to clean.
    pub dbs: Vec<u32>,
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let script = "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 1";
        for db in &self.dbs {
            let _ = Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-n", &db.to_string(), "EVAL", script, "0", &format!("{}*", self.prefix)])
                .output();
        }
    }
}
