//! An Azure Blob server for the tests: Azurite (npm `azurite`, installed by `.ci/run`) on a
//! free loopback port with its data in a temporary directory and telemetry off, stopped when
//! dropped. Uses the emulator's well-known development account.
//!
//! [`Azurite::start`] returns `None` (after printing why) when `azurite-blob` is missing; in CI
//! it panics instead.

#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rest_server::{free_port, have, missing};

/// The emulator's development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known development key (public, in Azurite's documentation).
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running `azurite-blob`.
pub struct Azurite {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Azurite {
    /// Starts Azurite, or `None` when it is not installed (outside CI).
    pub fn start() -> Option<Azurite> {
        if !have("azurite-blob") {
            missing("azurite is not installed (npm install -g azurite): the Azure Blob tests need it");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("azurite-blob")
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--location"])
                .arg(dir.path())
                .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn azurite");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Azurite { child, port, dir });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("azurite did not start");
    }

    /// The blob endpoint (`AZURE_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The variables that point Lifeboat at this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_ACCOUNT_NAME", ACCOUNT.to_owned()),
            ("AZURE_ACCOUNT_KEY", KEY.to_owned()),
            ("AZURE_ENDPOINT", self.endpoint()),
        ]
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
