//! The SFTP backend against a real SSH server (`sshd` started by the test, see
//! `support/sftp_server.rs`): the conformance suite (plain and through retries and the pack
//! cache), restic's layout on disk, and one-line errors for an unknown host key, a refused key
//! and an unreachable host.

#[path = "support/rest_server.rs"]
mod rest_server;
#[path = "support/sftp_server.rs"]
mod sftp_server;

use lifeboat_backend::{
    conformance, Backend, FileType, PackCache, RetryBackend, RetryPolicy, SftpBackend, SftpOptions,
};
use sftp_server::SftpServer;

fn options(server: &SftpServer) -> SftpOptions {
    SftpOptions { args: Some(server.ssh_args()), command: None }
}

#[test]
fn sftp_backend_conforms() {
    let Some(server) = SftpServer::start() else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::new(SftpBackend::new(&server.url(&format!("c{i}")), &options(&server)).expect("backend"))
            as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn sftp_through_retry_and_pack_cache_conforms() {
    let Some(server) = SftpServer::start() else { return };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let b = SftpBackend::new(&server.url(&format!("d{i}")), &options(&server)).expect("backend");
        Box::new(RetryBackend::new(PackCache::new(b), RetryPolicy::default())) as Box<dyn Backend>
    };
    conformance::run_all(&make);
}

#[test]
fn objects_land_in_restics_layout() {
    let Some(server) = SftpServer::start() else { return };
    let b = SftpBackend::new(&server.url("layout"), &options(&server)).expect("backend");
    b.create().expect("create");
    let dir = server.repo_dir("layout");
    for d in ["keys", "snapshots", "index", "locks", "data/00", "data/ff"] {
        assert!(dir.join(d).is_dir(), "{d}");
    }
    let pack = "ab".to_owned() + &"0".repeat(62);
    b.save(FileType::Pack, &pack, b"pack").expect("save");
    assert_eq!(std::fs::read(dir.join("data/ab").join(&pack)).expect("on disk"), b"pack");
    b.save(FileType::Config, "config", b"cfg").expect("save config");
    assert_eq!(std::fs::read(dir.join("config")).expect("config on disk"), b"cfg");
    assert!(b.create().expect_err("again").is_already_exists());
}

#[test]
fn ssh_failures_are_one_line_naming_the_cause() {
    let Some(server) = SftpServer::start() else { return };
    let op_err = |opts: SftpOptions| {
        let e = SftpBackend::new(&server.url("errs"), &opts).expect("backend").has_config().expect_err("must fail");
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with(&format!("{}: checking for config: ", server.url("errs"))), "{text}");
        (text, e.is_retryable())
    };
    // Unknown host key: an empty known_hosts.
    let empty = server.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").expect("write");
    let args = format!(
        "-F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
        server.dir().join("id").display(),
        empty.display()
    );
    let (text, retry) = op_err(SftpOptions { args: Some(args), command: None });
    assert!(text.contains("the host key is unknown"), "{text}");
    assert!(!retry);
    // A key the server does not know.
    let other = server.dir().join("other_id");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .expect("keygen");
    assert!(ok.success());
    let args = format!(
        "-F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={}",
        other.display(),
        server.dir().join("known_hosts").display()
    );
    let (text, retry) = op_err(SftpOptions { args: Some(args), command: None });
    assert!(text.contains("authentication refused"), "{text}");
    assert!(!retry);
    // Nothing listening.
    let port = rest_server::free_port();
    let url = format!("sftp://{}@127.0.0.1:{port}//tmp/nothing", server.user);
    let e = SftpBackend::new(&url, &options(&server)).expect("backend").has_config().expect_err("unreachable");
    assert!(e.to_string().contains("host unreachable"), "{e}");
    assert!(e.is_retryable());
}
