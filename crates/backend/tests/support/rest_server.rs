//! A REST server for the tests: `rclone serve restic` (Debian `rclone`, installed by `.ci/run`)
//! on a free loopback port, serving a temporary directory, optionally `--append-only` and with
//! basic authentication. Each [`RestServer`] is its own process, stopped when dropped.
//!
//! [`RestServer::start`] returns `None` (after printing why) when `rclone` is missing; in CI
//! (`CI` set) it panics instead, so a missing server fails the run. Included with
//! `#[path = "…/support/rest_server.rs"] mod rest_server;` from the backend and CLI tests.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Test credentials for servers started with authentication.
pub const USER: &str = "lifeboat-rest-user";
/// Test credentials for servers started with authentication.
pub const PASSWORD: &str = "lifeboat-rest-S3cret";

/// A running `rclone serve restic`.
pub struct RestServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The directory it serves (removed on drop).
    dir: tempfile::TempDir,
}

/// How to start a server.
#[derive(Clone, Copy, Default)]
pub struct Mode {
    /// Refuse deletions (`--append-only`).
    pub append_only: bool,
    /// Require [`USER`] / [`PASSWORD`].
    pub auth: bool,
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skips (outside CI, printing `why`) or fails (in CI) a test whose tool is missing.
pub fn missing(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why} (CI installs it: .ci/run)");
    eprintln!("SKIPPED: {why}");
}

impl RestServer {
    /// Starts a server, or `None` when `rclone` is not installed (outside CI).
    pub fn start(mode: Mode) -> Option<RestServer> {
        if !have("rclone") {
            missing("rclone is not installed: the REST backend tests need `rclone serve restic`");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let mut c = Command::new("rclone");
            c.args(["serve", "restic", "--addr", &format!("127.0.0.1:{port}")])
                .arg(dir.path())
                .env("RCLONE_CONFIG", "/dev/null")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if mode.append_only {
                c.arg("--append-only");
            }
            if mode.auth {
                c.args(["--user", USER, "--pass", PASSWORD]);
            }
            let mut child = c.spawn().expect("spawn rclone");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(RestServer { child, port, dir });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("rclone serve restic did not start");
    }

    /// `rest:http://127.0.0.1:PORT/PATH/`.
    pub fn url(&self, path: &str) -> String {
        format!("rest:http://127.0.0.1:{}/{path}/", self.port)
    }

    /// The URL with the test credentials in it.
    pub fn url_with_auth(&self, path: &str) -> String {
        format!("rest:http://{USER}:{PASSWORD}@127.0.0.1:{}/{path}/", self.port)
    }

    /// The directory a repository at `path` is kept in on the server's disk.
    pub fn dir(&self, path: &str) -> PathBuf {
        self.dir.path().join(path)
    }

    /// The served directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
