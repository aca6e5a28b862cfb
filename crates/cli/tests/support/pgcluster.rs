//! Throwaway PostgreSQL clusters of a test's own (initdb and pg_ctl as the `postgres` user when
//! the test runs as root), stopped when dropped.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The server binaries (initdb, pg_ctl) of the newest installed PostgreSQL.
pub fn server_bin() -> Option<PathBuf> {
    let mut dirs: Vec<_> = fs::read_dir("/usr/lib/postgresql").ok()?.flatten().map(|e| e.path().join("bin")).collect();
    dirs.sort();
    let found = dirs.into_iter().rev().find(|d| d.join("initdb").exists());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "the PostgreSQL server binaries (initdb) must be installed in CI");
        eprintln!("skipping: initdb is not installed");
    }
    found
}

/// Run a server program as the `postgres` user when we are root (initdb refuses root).
pub fn as_postgres(program: &Path, args: &[&str]) -> Run {
    as_postgres_env(program, args, &[])
}

/// [`as_postgres`] with extra environment variables (passed through `env`, as runuser keeps
/// the caller's environment only partly).
pub fn as_postgres_env(program: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "env"]);
        c
    } else {
        Command::new("env")
    };
    for (k, v) in vars {
        c.arg(format!("{k}={v}"));
    }
    run(c.arg(program).args(args))
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A PostgreSQL cluster of the test's own (trust auth, 127.0.0.1 and a socket in its
/// directory), stopped when dropped.
pub struct Cluster {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    pub fn start(bin: &Path) -> Cluster {
        let dir = tempdir();
        if is_root() {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path())).ok();
        }
        let data = dir.path().join("data");
        as_postgres(&bin.join("initdb"), &["-D", s(&data), "-A", "trust", "-U", "postgres", "--no-sync"]).ok();
        let mut c =
            Cluster { bin: bin.to_path_buf(), data, port: free_port(), dir: dir.path().to_path_buf(), _dir: Some(dir) };
        c.run_server("-c fsync=off", &[]);
        c
    }

    /// A cluster over an existing data directory `data` (e.g. a restored one), its socket and
    /// log in `dir`, started with `opts` and `vars`; not removed when dropped.
    pub fn existing(bin: &Path, data: &Path, dir: &Path, opts: &str, vars: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster {
            bin: bin.to_path_buf(),
            data: data.to_path_buf(),
            port: free_port(),
            dir: dir.to_path_buf(),
            _dir: None,
        };
        c.run_server(opts, vars);
        c
    }

    /// Start (or restart) the server with `opts` added and `vars` in its environment.
    pub fn run_server(&mut self, opts: &str, vars: &[(&str, &str)]) {
        let all = format!("-p {} -k {} -c listen_addresses=127.0.0.1 {opts}", self.port, s(&self.dir));
        let log = self.dir.join(format!("log-{}", self.port));
        as_postgres_env(
            &self.bin.join("pg_ctl"),
            &["-D", s(&self.data), "-o", &all, "-l", s(&log), "-w", "start"],
            vars,
        )
        .ok();
    }

    pub fn stop(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", s(&self.data), "-m", "fast", "-w", "stop"]);
    }

    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
            .args(["-d", "postgres", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"), &["-D", s(&self.data), "-m", "immediate", "stop"]);
    }
}
