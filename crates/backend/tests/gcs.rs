//! The GCS backend against fake-gcs-server (see `support/gcs_server.rs`): the conformance suite
//! (plain and through retries and the pack cache) and one-line errors for a missing bucket and
//! an unreachable endpoint.

#[path = "support/gcs_server.rs"]
mod gcs_server;
#[path = "support/rest_server.rs"]
mod rest_server;

use gcs_server::GcsServer;
use lifeboat_backend::{conformance, gcs, Backend, FileType, GcsOptions, PackCache, RetryBackend, RetryPolicy};

fn options(server: &GcsServer) -> GcsOptions {
    GcsOptions { endpoint: Some(server.endpoint()), ..Default::default() }
}

#[test]
fn gcs_backend_conforms() {
    let Some(server) = GcsServer::start() else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(gcs::open(&format!("gs:lifeboat-test:/c{i}"), &options(&server)).expect("backend")) as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn gcs_through_retry_and_pack_cache_conforms() {
    let Some(server) = GcsServer::start() else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let b = gcs::open(&format!("gs:lifeboat-test:/d{i}"), &options(&server)).expect("backend");
        Box::new(RetryBackend::new(PackCache::new(b), RetryPolicy::default())) as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn gcs_errors_are_one_line() {
    let Some(server) = GcsServer::start() else { return };
    let b = gcs::open("gs:no-such-bucket:/repo", &options(&server)).expect("backend");
    assert!(!b.has_config().expect("a missing bucket holds no repository"));
    let e = b.save(FileType::Key, "abcd", b"x").expect_err("no bucket").to_string();
    assert!(e.starts_with("gs:no-such-bucket:/repo: saving keys/abcd: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let port = rest_server::free_port();
    let gone = GcsOptions { endpoint: Some(format!("http://127.0.0.1:{port}")), ..Default::default() };
    let e = gcs::open("gs:lifeboat-test:/repo", &gone).expect("backend").has_config().expect_err("unreachable");
    assert!(e.to_string().contains("cannot reach the GCS endpoint"), "{e}");
    assert!(e.is_retryable(), "{e:?}");
}
