//! The REST backend against a real REST server (`rclone serve restic`, see
//! `support/rest_server.rs`): the conformance suite (plain, through retries and the pack
//! cache), restic's layout on the server's disk, basic authentication, append-only refusals
//! and one-line errors for an unreachable server.

#[path = "support/rest_server.rs"]
mod rest_server;

use lifeboat_backend::{
    conformance, Backend, FileType, PackCache, RestBackend, RestOptions, RetryBackend, RetryPolicy,
};
use rest_server::{Mode, RestServer};

fn backend(url: &str) -> RestBackend {
    RestBackend::new(url, &RestOptions::default()).expect("backend")
}

#[test]
fn rest_backend_conforms() {
    let Some(server) = RestServer::start(Mode::default()) else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(backend(&server.url(&format!("conformance-{i}")))) as Box<dyn Backend>
    };
    conformance::run_all_but(&make, RCLONE_CANNOT);
}

/// Checks the test server cannot pass: rclone 1.60 (Debian's) writes an upload into its final
/// name as it arrives, so two racing uploads of one name can interleave. Lifeboat never races
/// two different contents under one name (pack, index and snapshot names are their content's
/// hash; locks and run records have names of their own), so no repository depends on it.
const RCLONE_CANNOT: &[&str] = &["racing_saves_leave_one_version"];

#[test]
fn rest_through_retry_and_pack_cache_conforms_with_auth() {
    let Some(server) = RestServer::start(Mode { auth: true, ..Mode::default() }) else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let url = server.url_with_auth(&format!("decorated-{i}"));
        let b = RestBackend::new(&url, &RestOptions::default()).expect("backend");
        assert!(!b.location().contains(rest_server::PASSWORD), "{}", b.location());
        Box::new(RetryBackend::new(PackCache::new(b), RetryPolicy::default())) as Box<dyn Backend>
    };
    conformance::run_all_but(&make, RCLONE_CANNOT);
}

#[test]
fn objects_land_in_restics_layout() {
    let Some(server) = RestServer::start(Mode::default()) else { return };
    let b = backend(&server.url("layout"));
    b.create().expect("create");
    let pack = "ab".to_owned() + &"0".repeat(62);
    b.save(FileType::Pack, &pack, b"pack").expect("save pack");
    b.save(FileType::Snapshot, &"1".repeat(64), b"snap").expect("save snapshot");
    b.save(FileType::Config, "config", b"cfg").expect("save config");
    let dir = server.dir("layout");
    assert_eq!(std::fs::read(dir.join("data/ab").join(&pack)).expect("pack on disk"), b"pack");
    assert_eq!(std::fs::read(dir.join("snapshots").join("1".repeat(64))).expect("snapshot"), b"snap");
    assert_eq!(std::fs::read(dir.join("config")).expect("config"), b"cfg");
    assert!(b.has_config().expect("has config"));
    assert!(b.create().expect_err("second create").is_already_exists());
}

#[test]
fn credentials_come_from_options_and_wrong_ones_are_one_line() {
    let Some(server) = RestServer::start(Mode { auth: true, ..Mode::default() }) else { return };
    let good = RestOptions { username: Some(rest_server::USER.into()), password: Some(rest_server::PASSWORD.into()) };
    let b = RestBackend::new(&server.url("opts"), &good).expect("backend");
    b.create().expect("create with credentials from options");
    let none = backend(&server.url("opts"));
    let e = none.has_config().expect_err("no credentials").to_string();
    assert!(e.contains("refused the credentials (HTTP 401)"), "{e}");
    let wrong = RestOptions { username: Some(rest_server::USER.into()), password: Some("Wr0ngPassw0rd".into()) };
    let e =
        RestBackend::new(&server.url("opts"), &wrong).expect("backend").has_config().expect_err("wrong").to_string();
    assert!(e.starts_with(&format!("rest:http://127.0.0.1:{}/opts: checking for config: ", server.port)), "{e}");
    assert!(!e.contains("Wr0ngPassw0rd") && !e.contains('\n'), "{e}");
    // A password in the URL never shows.
    let url = format!("rest:http://{}:Wr0ngPassw0rd@127.0.0.1:{}/opts/", rest_server::USER, server.port);
    let e = backend(&url).load(FileType::Config, "config").expect_err("wrong").to_string();
    assert!(!e.contains("Wr0ngPassw0rd"), "{e}");
}

#[test]
fn append_only_server_refuses_deletion_cleanly() {
    let Some(server) = RestServer::start(Mode { append_only: true, ..Mode::default() }) else { return };
    let b = backend(&server.url("ao"));
    b.create().expect("create");
    let name = "2".repeat(64);
    b.save(FileType::Snapshot, &name, b"snap").expect("save");
    let e = b.remove(FileType::Snapshot, &name).expect_err("append-only");
    assert!(e.is_append_only(), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "rest:http://127.0.0.1:{}/ao: the REST server is append-only: deleting snapshots/{name} refused",
            server.port
        )
    );
    assert!(!e.is_retryable());
    assert_eq!(b.load(FileType::Snapshot, &name).expect("still there"), b"snap");
    // Through the retry decorator it fails at once, without retrying.
    let r = RetryBackend::new(backend(&server.url("ao")), RetryPolicy::default());
    let t = std::time::Instant::now();
    assert!(r.remove_many(FileType::Snapshot, &[name]).expect_err("append-only").is_append_only());
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn unreachable_server_is_one_retryable_line() {
    let port = rest_server::free_port();
    let b = backend(&format!("rest:http://u:SeCrEt@127.0.0.1:{port}/x/"));
    let e = b.has_config().expect_err("nothing listens");
    assert!(e.is_retryable(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("rest:http://127.0.0.1:{port}/x: checking for config: cannot reach the REST server")),
        "{text}"
    );
    assert!(!text.contains("SeCrEt") && !text.contains('\n'), "{text}");
}
