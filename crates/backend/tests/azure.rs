//! The Azure Blob backend against Azurite (see `support/azurite.rs`): the conformance suite
//! (plain and through retries and the pack cache), the container created by `create`, and
//! one-line errors for a missing container, a wrong key and an unreachable endpoint.

#[path = "support/azurite.rs"]
mod azurite;
#[path = "support/rest_server.rs"]
mod rest_server;

use azurite::Azurite;
use lifeboat_backend::{azure, conformance, AzureOptions, Backend, FileType, PackCache, RetryBackend, RetryPolicy};

fn options(server: &Azurite) -> AzureOptions {
    AzureOptions {
        account_name: Some(azurite::ACCOUNT.into()),
        account_key: Some(azurite::KEY.into()),
        endpoint: Some(server.endpoint()),
        ..Default::default()
    }
}

#[test]
fn azure_backend_conforms() {
    let Some(server) = Azurite::start() else { return };
    // The suite wants an existing container (a missing one is an error, not "no repository").
    azure::open("azure:conformance:/setup", &options(&server)).expect("backend").create().expect("container");
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(azure::open(&format!("azure:conformance:/c{i}"), &options(&server)).expect("backend"))
            as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn azure_through_retry_and_pack_cache_conforms() {
    let Some(server) = Azurite::start() else { return };
    azure::open("azure:decorated:/setup", &options(&server)).expect("backend").create().expect("container");
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let b = azure::open(&format!("azure:decorated:/d{i}"), &options(&server)).expect("backend");
        Box::new(RetryBackend::new(PackCache::new(b), RetryPolicy::default())) as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn azure_errors_are_one_line() {
    let Some(server) = Azurite::start() else { return };
    // A missing container: named, and `create` makes it.
    let b = azure::open("azure:missing:/repo", &options(&server)).expect("backend");
    let e = b.save(FileType::Key, "abcd", b"x").expect_err("no container").to_string();
    assert!(e.starts_with("azure:missing:/repo: saving keys/abcd: the container \"missing\" does not exist"), "{e}");
    b.create().expect("create makes the container");
    b.save(FileType::Key, "abcd", b"x").expect("save");
    // A wrong key.
    let wrong = AzureOptions { account_key: Some("V3JvbmdLZXlXcm9uZ0tleQ==".into()), ..options(&server) };
    let e = azure::open("azure:missing:/repo", &wrong)
        .expect("backend")
        .load(FileType::Key, "abcd")
        .expect_err("wrong key");
    let text = e.to_string();
    assert!(text.contains("refused access") && text.contains("AZURE_ACCOUNT_KEY"), "{text}");
    assert!(!text.contains("V3JvbmdLZXlXcm9uZ0tleQ") && !text.contains('\n'), "{text}");
    // Nothing listening.
    let port = rest_server::free_port();
    let gone =
        AzureOptions { endpoint: Some(format!("http://127.0.0.1:{port}/{}", azurite::ACCOUNT)), ..options(&server) };
    let e = azure::open("azure:missing:/repo", &gone).expect("backend").has_config().expect_err("unreachable");
    assert!(e.to_string().contains("cannot reach the Azure Blob endpoint"), "{e}");
    assert!(e.is_retryable(), "{e:?}");
}
