//! The S3 server the tests use: SeaweedFS (`weed mini`) on 127.0.0.1:8333 with bucket
//! `lifeboat-test`, started on demand by `.ci/start-seaweedfs` (one shared instance per machine,
//! whichever test process or `.ci/run` gets there first; it keeps running afterwards).
//!
//! [`available`] returns false (after printing why) when no server can be had; in CI (`CI`
//! set) it panics instead, so a missing server fails the run. Included with
//! `#[path = "…/support/s3_server.rs"] mod s3_server;` from the backend and CLI tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lifeboat_backend::{Backend, FileType, S3Backend, S3Options};

/// The S3 endpoint.
pub const ENDPOINT: &str = "http://127.0.0.1:8333";
/// The bucket `weed mini` creates at start.
pub const BUCKET: &str = "lifeboat-test";
/// Test credentials (also in `.ci/start-seaweedfs`, which starts the server with them).
pub const ACCESS_KEY_ID: &str = "lifeboat-test-key";
/// Test credentials (also in `.ci/start-seaweedfs`).
pub const SECRET_ACCESS_KEY: &str = "lifeboat-test-secret";

/// Options with the test credentials.
pub fn options() -> S3Options {
    S3Options {
        access_key_id: Some(ACCESS_KEY_ID.into()),
        secret_access_key: Some(SECRET_ACCESS_KEY.into()),
        ..Default::default()
    }
}

/// A prefix no other test (or earlier run) uses: `NAME-PID-NANOS-N`.
pub fn unique_prefix(name: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{name}-{}-{nanos}-{n}", std::process::id())
}

/// The repository URL (restic's form) for `prefix` in the test bucket.
pub fn url(prefix: &str) -> String {
    format!("s3:{ENDPOINT}/{BUCKET}/{prefix}")
}

/// A backend on `prefix` in the test bucket.
pub fn backend(prefix: &str) -> S3Backend {
    S3Backend::new(&url(prefix), &options()).expect("S3 backend")
}

fn start_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/start-seaweedfs")
}

/// Whether the test server is up (starting it if needed). Outside CI a missing server skips
/// the calling test with a printed reason; in CI it fails it.
pub fn available() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    match READY.get_or_init(start) {
        Ok(()) => true,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "the S3 test server must be available in CI: {why}");
            eprintln!("skipping: no S3 test server: {why}");
            false
        }
    }
}

fn start() -> Result<(), String> {
    let out = Command::new("bash")
        .arg(start_script())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", start_script().display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().replace('\n', " | "));
    }
    // The port answers a little before the bucket exists: wait for a real request to pass.
    let probe = backend("readiness-probe");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe.has_config() {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(format!("server not ready after 30 s: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Removes every object of a test repository (best effort, 8 threads), to keep the server
/// small.
pub fn wipe(b: &dyn Backend) {
    let objects: Vec<(FileType, String)> = FileType::ALL
        .into_iter()
        .flat_map(|ft| b.list(ft).unwrap_or_default().into_iter().map(move |(name, _)| (ft, name)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while let Some((ft, name)) = objects.get(next.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) {
                    let _ = b.remove(*ft, name);
                }
            });
        }
    });
}

/// A bucket with Object Lock on the test server (created on first use, default retention
/// COMPLIANCE for one day: what is written there cannot be deleted for a day, by anyone).
pub const LOCKED_BUCKET: &str = "lifeboat-locked";

/// The repository URL (restic's form) for `prefix` in [`LOCKED_BUCKET`].
pub fn locked_url(prefix: &str) -> String {
    format!("s3:{ENDPOINT}/{LOCKED_BUCKET}/{prefix}")
}

/// A backend on `prefix` in [`LOCKED_BUCKET`], creating the bucket (with Object Lock and a
/// one-day compliance default retention) if needed.
pub fn locked_backend(prefix: &str) -> S3Backend {
    use lifeboat_backend::{DefaultRetention, LockMode};
    let b = S3Backend::new(&locked_url(prefix), &options()).expect("S3 backend");
    b.create_bucket(true).expect("create the locked bucket");
    b.set_default_retention(Some(DefaultRetention { mode: LockMode::Compliance, days: 1 }))
        .expect("set the default retention");
    b
}
