//! The S3 backend against a real S3 server (SeaweedFS, see `support/s3_server.rs`): the
//! conformance suite, restic's key layout, pagination, error classification and retries.

#[path = "support/s3_server.rs"]
mod s3_server;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_backend::{conformance, Backend, FileType, RetryBackend, RetryPolicy, S3Backend, S3Options};

#[test]
fn s3_backend_conforms() {
    if !s3_server::available() {
        return;
    }
    let made = std::sync::Mutex::new(Vec::new());
    let make = || {
        let prefix = s3_server::unique_prefix("conformance");
        made.lock().expect("lock").push(prefix.clone());
        Box::new(s3_server::backend(&prefix)) as Box<dyn Backend>
    };
    conformance::run_all(&make);
    for prefix in made.lock().expect("lock").iter() {
        s3_server::wipe(&s3_server::backend(prefix));
    }
}

#[test]
fn retry_over_s3_conforms_with_prefix_at_bucket_form() {
    if !s3_server::available() {
        return;
    }
    // The same suite through the `s3://bucket/prefix` form with the endpoint as an option, and
    // through RetryBackend as the CLI uses it.
    let opts = S3Options { endpoint: Some(s3_server::ENDPOINT.into()), ..s3_server::options() };
    let make = || {
        let url = format!("s3://{}/{}", s3_server::BUCKET, s3_server::unique_prefix("bucket-form"));
        let b = S3Backend::new(&url, &opts).expect("backend");
        assert_eq!(b.location(), url);
        Box::new(RetryBackend::new(b, RetryPolicy::default())) as Box<dyn Backend>
    };
    for (name, check) in
        conformance::CHECKS.iter().filter(|(n, _)| ["round_trip_each_type", "list", "remove"].contains(n))
    {
        let b = make();
        eprintln!("conformance: {name} on {}", b.location());
        check(&*b);
        s3_server::wipe(&*b);
    }
}

/// An OpenDAL operator on the test bucket and a runtime to drive it, bypassing the backend.
fn raw() -> (opendal::Operator, tokio::runtime::Runtime) {
    let builder = opendal::services::S3::default()
        .bucket(s3_server::BUCKET)
        .endpoint(s3_server::ENDPOINT)
        .region("us-east-1")
        .access_key_id(s3_server::ACCESS_KEY_ID)
        .secret_access_key(s3_server::SECRET_ACCESS_KEY)
        .disable_config_load()
        .disable_ec2_metadata();
    let op = opendal::Operator::new(builder).expect("operator").finish();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    (op, rt)
}

/// Reads raw keys of the bucket with OpenDAL directly, to see where objects land.
fn raw_keys(prefix: &str) -> Vec<(String, u64)> {
    let (op, rt) = raw();
    let opts = opendal::options::ListOptions { recursive: true, ..Default::default() };
    let entries = rt.block_on(op.list_options(&format!("{prefix}/"), opts)).expect("list");
    let mut keys: Vec<(String, u64)> = entries
        .into_iter()
        .filter(|e| e.metadata().mode().is_file())
        .map(|e| (e.path().to_owned(), e.metadata().content_length()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn objects_land_at_restic_keys() {
    if !s3_server::available() {
        return;
    }
    let prefix = format!("{}/nested", s3_server::unique_prefix("layout"));
    let b = s3_server::backend(&prefix);
    b.create().expect("create");
    assert!(raw_keys(&prefix).is_empty(), "create writes nothing on S3");
    let id = "ab".repeat(32);
    for ft in FileType::ALL {
        let name = if ft == FileType::Lifeboat { format!("verifications/{id}") } else { id.clone() };
        b.save(ft, &name, ft.as_str().as_bytes()).expect("save");
    }
    let want: Vec<(String, u64)> = [
        "config".to_owned(),
        format!("data/ab/{id}"),
        format!("index/{id}"),
        format!("keys/{id}"),
        format!("lifeboat/verifications/{id}"),
        format!("locks/{id}"),
        format!("snapshots/{id}"),
    ]
    .into_iter()
    .map(|k| {
        let len = match k.split('/').next() {
            Some("config") => 6,
            Some("data") => 4,
            Some("index") => 5,
            Some("keys") => 3,
            Some("lifeboat") => 8,
            Some("locks") => 4,
            _ => 8,
        };
        (format!("{prefix}/{k}"), len)
    })
    .collect();
    assert_eq!(raw_keys(&prefix), want);
    s3_server::wipe(&b);
}

#[test]
fn listing_pages_past_1000_objects() {
    if !s3_server::available() {
        return;
    }
    let b = s3_server::backend(&s3_server::unique_prefix("paging"));
    const N: usize = 1010;
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= N {
                    break;
                }
                let name = format!("{:064x}", i * 7919);
                b.save(FileType::Pack, &name, &[1; 3]).expect("save pack");
                b.save(FileType::Index, &name, &[2; 5]).expect("save index");
            });
        }
    });
    let packs = b.list(FileType::Pack).expect("list packs");
    assert_eq!(packs.len(), N, "packs spread over data/xx, more than one page");
    assert!(packs.iter().all(|(_, size)| *size == 3));
    let index = b.list(FileType::Index).expect("list index");
    assert_eq!(index.len(), N, "one directory with more than one page");
    assert!(index.iter().all(|(_, size)| *size == 5));
    // Batched deletes: more than one DeleteObjects request, missing names ignored.
    let mut names: Vec<String> = packs.into_iter().map(|(n, _)| n).collect();
    names.push("ff".repeat(32));
    b.remove_many(FileType::Pack, &names).expect("remove_many");
    assert!(b.list(FileType::Pack).expect("list").is_empty());
    s3_server::wipe(&b);
}

#[test]
fn large_objects_use_multipart_upload() {
    if !s3_server::available() {
        return;
    }
    let prefix = s3_server::unique_prefix("multipart");
    let b = s3_server::backend(&prefix);
    // Two full parts and a short last one.
    let len = 2 * lifeboat_backend::s3::MULTIPART_CHUNK + 12345;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
    let name = "cd".repeat(32);
    b.save(FileType::Pack, &name, &data).expect("multipart save");
    // Multipart uploads get an ETag of the form "<md5 of part md5s>-<parts>".
    let (op, rt) = raw();
    let key = format!("{prefix}/data/cd/{name}");
    let etag = rt.block_on(op.stat(&key)).expect("stat").etag().map(str::to_owned);
    assert!(etag.as_deref().is_some_and(|e| e.trim_matches('"').ends_with("-3")), "ETag {etag:?}");
    // A full-size pack is still one PUT.
    let single = "ce".repeat(32);
    b.save(FileType::Pack, &single, &data[..lifeboat_backend::s3::MULTIPART_CHUNK]).expect("single save");
    let etag = rt.block_on(op.stat(&format!("{prefix}/data/ce/{single}"))).expect("stat").etag().map(str::to_owned);
    assert!(etag.as_deref().is_some_and(|e| !e.contains('-')), "ETag {etag:?}");
    assert_eq!(b.size(FileType::Pack, &name).expect("size"), len as u64);
    assert!(b.load(FileType::Pack, &name).expect("load") == data);
    let off = lifeboat_backend::s3::MULTIPART_CHUNK - 10;
    assert!(b.load_range(FileType::Pack, &name, off as u64, 20).expect("range across parts") == data[off..off + 20]);
    s3_server::wipe(&b);
}

#[test]
fn missing_bucket_is_one_clear_permanent_error() {
    if !s3_server::available() {
        return;
    }
    let url = format!("s3:{}/no-such-bucket-{}/p", s3_server::ENDPOINT, std::process::id());
    let b = S3Backend::new(&url, &s3_server::options()).expect("backend");
    for e in [b.has_config().expect_err("has_config"), b.create().expect_err("create")] {
        let msg = e.to_string();
        assert!(msg.contains("does not exist (create it first)"), "{msg}");
        assert!(msg.starts_with(&url), "{msg}");
        assert!(!e.is_retryable() && !e.is_not_found(), "{msg}");
    }
}

#[test]
fn wrong_credentials_are_permanent_and_secret_free() {
    if !s3_server::available() {
        return;
    }
    let opts = S3Options { secret_access_key: Some("Wr0ngSecretValue".into()), ..s3_server::options() };
    let b = S3Backend::new(&s3_server::url("p"), &opts).expect("backend");
    let e = b.has_config().expect_err("wrong secret");
    let msg = e.to_string();
    assert!(msg.contains("access denied"), "{msg}");
    assert!(!msg.contains("Wr0ngSecretValue") && !msg.contains(s3_server::SECRET_ACCESS_KEY), "{msg}");
    assert!(!e.is_retryable());
    let e = b.save(FileType::Index, "abcd", b"x").expect_err("save with wrong secret");
    assert!(e.to_string().contains("SignatureDoesNotMatch") || e.to_string().contains("access denied"), "{e}");
    let unknown = S3Options { access_key_id: Some("nobody".into()), ..s3_server::options() };
    let e = S3Backend::new(&s3_server::url("p"), &unknown).expect("backend").has_config().expect_err("unknown key");
    assert!(e.to_string().contains("access denied"), "{e}");
}

#[test]
fn bogus_ca_bundle_does_not_matter_for_http() {
    if !s3_server::available() {
        return;
    }
    // Only this test sets it, and only in its own process (nextest runs one test per process;
    // under `cargo test` other S3 tests use http endpoints and never read it either).
    std::env::set_var("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem");
    let b = s3_server::backend(&s3_server::unique_prefix("ca-bundle"));
    b.save(FileType::Key, "k1", b"key").expect("save with a bogus AWS_CA_BUNDLE");
    assert_eq!(b.load(FileType::Key, "k1").expect("load"), b"key");
    s3_server::wipe(&b);
    // For https endpoints the bundle is read, and a bad one is a clear error at open.
    let e = S3Backend::new("s3:https://127.0.0.1:1/b/p", &s3_server::options()).expect_err("bogus bundle");
    assert!(e.to_string().contains("AWS_CA_BUNDLE: cannot read /nonexistent/ca-bundle.pem"), "{e}");
    std::env::remove_var("AWS_CA_BUNDLE");
}

#[test]
fn unreachable_endpoint_is_retryable_and_bounded() {
    // Nothing listens on a port we just released.
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let b = S3Backend::new(&format!("s3:http://127.0.0.1:{port}/b/p"), &s3_server::options()).expect("backend");
    let e = b.has_config().expect_err("nobody listens");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    let retries = Arc::new(AtomicUsize::new(0));
    let seen = retries.clone();
    let retry = RetryBackend::new(b, RetryPolicy::immediate(3)).with_notify(move |_, _, _| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let start = Instant::now();
    let e = retry.load(FileType::Config, "config").expect_err("still unreachable");
    assert!(e.is_retryable(), "{e}");
    assert_eq!(retries.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// A TCP proxy to the S3 server that answers `503 ServiceUnavailable` on the connections whose
/// number is in `fail`, closes those in `drop` without a word, and forwards all others byte for
/// byte.
fn flaky_proxy(fail: &'static [usize], drop: &'static [usize]) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { break };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if drop.contains(&n) {
                let _ = client.shutdown(std::net::Shutdown::Both);
                continue;
            }
            if fail.contains(&n) {
                let mut buf = [0u8; 65536];
                let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = client.read(&mut buf);
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code>\
                    <Message>Please try again.</Message></Error>";
                let _ = write!(
                    client,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                continue;
            }
            let Ok(server) = TcpStream::connect("127.0.0.1:8333") else { continue };
            let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else { continue };
            let mut server = server;
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut server);
                let _ = server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, count)
}

#[test]
fn server_errors_are_retried_with_backoff() {
    if !s3_server::available() {
        return;
    }
    let (port, connections) = flaky_proxy(&[0, 1, 3], &[]);
    let url = format!("s3:http://127.0.0.1:{port}/{}/{}", s3_server::BUCKET, s3_server::unique_prefix("flaky"));
    let raw = S3Backend::new(&url, &s3_server::options()).expect("backend");
    let e = raw.has_config().expect_err("first connection fails");
    assert!(e.is_retryable(), "{e}");
    // HEAD responses have no body: only the status tells.
    assert!(e.to_string().ends_with("checking for config: HTTP 503"), "{e}");
    let retries = Arc::new(AtomicUsize::new(0));
    let seen = retries.clone();
    let policy =
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(5), max_delay: Duration::from_millis(50) };
    let b = RetryBackend::new(raw, policy).with_notify(move |e, _, _| {
        assert!(e.is_retryable());
        seen.fetch_add(1, Ordering::SeqCst);
    });
    b.create().expect("create through retries");
    b.save(FileType::Index, "abcd", b"through a flaky proxy").expect("save through retries");
    assert_eq!(b.load(FileType::Index, "abcd").expect("load"), b"through a flaky proxy");
    assert!(retries.load(Ordering::SeqCst) >= 1, "errors were retried");
    assert!(connections.load(Ordering::SeqCst) >= 3);
    s3_server::wipe(&b);
}

#[test]
fn dropped_connections_are_retried() {
    if !s3_server::available() {
        return;
    }
    let (port, _) = flaky_proxy(&[], &[0, 1, 2]);
    let url = format!("s3:http://127.0.0.1:{port}/{}/{}", s3_server::BUCKET, s3_server::unique_prefix("dropped"));
    let raw = S3Backend::new(&url, &s3_server::options()).expect("backend");
    let e = raw.has_config().expect_err("connection closed");
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    let b = RetryBackend::new(raw, RetryPolicy::immediate(5));
    b.save(FileType::Snapshot, "abcd", b"after two dropped connections").expect("save through retries");
    assert_eq!(b.load(FileType::Snapshot, "abcd").expect("load"), b"after two dropped connections");
    s3_server::wipe(&b);
}

/// Object Lock: the bucket's settings are read back; with the credentials one can hide objects
/// (delete markers) and write new versions, but not destroy a locked version or shorten its
/// lock; an as-of view reads the objects as they were; retention extends (never shortens).
#[test]
fn object_lock_keeps_versions_a_credential_holder_cannot_destroy() {
    use lifeboat_backend::{DefaultRetention, LockMode, Versioning};
    if !s3_server::available() {
        return;
    }
    let prefix = s3_server::unique_prefix("object-lock");
    let b = s3_server::locked_backend(&prefix);
    let status = b.object_lock().expect("lock status");
    assert_eq!(status.versioning, Versioning::Enabled);
    assert!(status.lock_enabled);
    assert_eq!(status.default_retention, Some(DefaultRetention { mode: LockMode::Compliance, days: 1 }));

    b.save(FileType::Key, "k1", b"the real key").expect("save");
    b.save(FileType::Pack, &"ab".repeat(32), b"pack data").expect("save");
    // S3 times have one-second precision: keep the clean state in its own second.
    std::thread::sleep(Duration::from_millis(1100));
    let clean = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(1100));

    // The attacker: overwrite, hide, then try to destroy every version.
    b.save(FileType::Key, "k1", b"garbage").expect("overwrite makes a new version");
    b.remove(FileType::Pack, &"ab".repeat(32)).expect("delete makes a delete marker");
    b.save(FileType::Snapshot, &"cd".repeat(32), b"written later").expect("save");
    assert!(b.list(FileType::Pack).expect("list").is_empty());
    let versions = b.versions().expect("versions");
    let data_versions: Vec<_> = versions.iter().filter(|v| !v.deleted).collect();
    assert_eq!(data_versions.len(), 4, "{versions:?}");
    for v in &data_versions {
        let err = b.delete_version(&v.key, &v.version).expect_err("a locked version must not be deletable");
        assert!(err.to_string().contains("access denied"), "{err}");
    }

    // The view as of the clean time sees the clean state, and refuses writes.
    let view = s3_server::locked_backend(&prefix).as_of(clean);
    assert_eq!(view.load(FileType::Key, "k1").expect("old version"), b"the real key");
    assert_eq!(view.list(FileType::Pack).expect("list"), vec![("ab".repeat(32), 9)]);
    assert_eq!(view.load_range(FileType::Pack, &"ab".repeat(32), 5, 4).expect("range"), b"data");
    assert!(view.list(FileType::Snapshot).expect("list").is_empty(), "later objects are hidden");
    assert!(view.load(FileType::Snapshot, &"cd".repeat(32)).expect_err("hidden").is_not_found());
    let err = view.save(FileType::Key, "k2", b"x").expect_err("read-only");
    assert!(err.to_string().contains("read-only view"), "{err}");
    assert!(view.location().contains("as of"), "{}", view.location());
    // The live backend still sees the attacker's state.
    assert_eq!(b.load(FileType::Key, "k1").expect("load"), b"garbage");

    // Extending: every current object version (2: k1's newest and the later snapshot) gets
    // the later date; asking for an earlier one leaves them as they are.
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    let report = b.extend_retention(LockMode::Compliance, later).expect("extend");
    assert_eq!((report.objects, report.extended, report.already_later), (2, 2, 0), "{report:?}");
    let earlier = chrono::Utc::now() + chrono::Duration::hours(36);
    let report = b.extend_retention(LockMode::Compliance, earlier).expect("extend");
    assert_eq!((report.objects, report.extended, report.already_later), (2, 0, 2), "{report:?}");
}

/// A bucket without versioning says so, and an as-of view on it is refused with a reason.
#[test]
fn as_of_needs_a_versioned_bucket() {
    use lifeboat_backend::Versioning;
    if !s3_server::available() {
        return;
    }
    let b = s3_server::backend(&s3_server::unique_prefix("no-versions"));
    let status = b.object_lock().expect("status");
    assert_eq!(status.versioning, Versioning::Off);
    assert!(!status.lock_enabled);
    assert_eq!(status.default_retention, None);
    let view = s3_server::backend(&s3_server::unique_prefix("no-versions")).as_of(std::time::SystemTime::now());
    let err = view.list(FileType::Snapshot).expect_err("refused");
    assert!(err.to_string().contains("keeps no versions"), "{err}");
}
