//! End to end on the remote stores beyond S3, each against a real server started by the test
//! (see `crates/backend/tests/support/`): on each, init, two backups, a byte-identical restore,
//! `check --read-data`, `forget --prune`, `copy` into it and out of it, `storage test`, and
//! restic reading the repository where restic speaks the protocol; plus the one-line errors
//! (append-only refusals, wrong credentials, unreachable servers).

#[path = "../../backend/tests/support/azurite.rs"]
mod azurite;
#[path = "support/common.rs"]
mod common;
#[path = "../../backend/tests/support/gcs_server.rs"]
mod gcs_server;
#[path = "../../backend/tests/support/rest_server.rs"]
mod rest_server;
#[path = "../../backend/tests/support/sftp_server.rs"]
mod sftp_server;

use std::fs;
use std::path::Path;

use azurite::Azurite;
use common::*;
use gcs_server::GcsServer;
use rest_server::{Mode, RestServer};
use sftp_server::SftpServer;

/// Variables that would give the binary or restic credentials the test did not mean.
const STORE_VARS: &[&str] = &[
    "RESTIC_REST_USERNAME",
    "RESTIC_REST_PASSWORD",
    "LIFEBOAT_SFTP_ARGS",
    "LIFEBOAT_SFTP_COMMAND",
    "AZURE_ACCOUNT_NAME",
    "AZURE_ACCOUNT_KEY",
    "AZURE_ACCOUNT_SAS",
    "AZURE_ENDPOINT",
    "AZURE_ENDPOINT_SUFFIX",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_ACCESS_TOKEN",
    "GCS_ENDPOINT",
];

/// `lifeboat --repo URL ARGS…` with the test password and `env`.
fn lbr(url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = lifeboat(Path::new(url));
    for v in STORE_VARS {
        c.env_remove(v);
    }
    c.envs(env.iter().copied()).args(args);
    run(&mut c)
}

/// `restic -r URL --no-cache ARGS…` with the test password and `env`.
fn restic_at(url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut c = restic(Path::new(url));
    for v in STORE_VARS {
        c.env_remove(v);
    }
    c.envs(env.iter().copied()).args(args);
    run(&mut c)
}

/// A tree with a few packs' worth of random data, text, nesting and an empty file.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
    write_random(&src.join("big.bin"), 6 << 20, 7);
    write_text(&src.join("sub/notes.txt"), 50_000, "backends");
    write_random(&src.join("sub/deeper/small.bin"), 10_000, 8);
    fs::write(src.join("empty"), b"").expect("write");
}

/// `restic -r URL -o sftp.command=… ARGS…` against the test SSH server.
fn restic_sftp(server: &SftpServer, url: &str, args: &[&str]) -> Run {
    let mut c = restic(Path::new(url));
    c.arg("-o").arg(format!("sftp.command={}", server.restic_command())).args(args);
    run(&mut c)
}

/// The whole life of a repository at `url` (which must not exist yet): init, backups, restore,
/// checks, forget + prune, copy in and out, storage test, and restic's check and restore
/// through `restic_url` (the same repository as restic reaches it) when given.
fn exercise(url: &str, env: &[(&str, &str)], restic_url: Option<&str>) {
    let dir = tempdir();
    let src = dir.path().join("src");
    build_tree(&src);

    lbr(url, env, &["init", "--kdf-n", "1024"]).ok();
    let again = lbr(url, env, &["init", "--kdf-n", "1024"]);
    assert_ne!(again.code, 0);
    again.one_error_line();
    lbr(url, env, &["backup", "--json", "--tag", "first", s(&src)]).ok();
    write_random(&src.join("second.bin"), 1 << 20, 9);
    lbr(url, env, &["backup", "--json", "--tag", "second", s(&src)]).ok();

    let out = dir.path().join("out");
    lbr(url, env, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
    lbr(url, env, &["check", "--read-data"]).ok();

    if let Some(rurl) = restic_url {
        let r = restic_at(rurl, env, &["check", "--read-data"]);
        assert_eq!(r.code, 0, "restic check on {url}: {}\n{}", r.stdout, r.stderr);
        let rout = dir.path().join("restic-out");
        let r = restic_at(rurl, env, &["restore", "latest", "--target", s(&rout)]);
        assert_eq!(r.code, 0, "restic restore: {}", r.stderr);
        assert_same_tree(&src, &under(&rout, &src), Compare::CONTENT);
    }

    // forget + prune: the first snapshot and the data only it used go.
    lbr(url, env, &["forget", "--keep-last", "1", "--prune"]).ok();
    let snaps = lbr(url, env, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1), "{snaps:#}");
    lbr(url, env, &["check", "--read-data"]).ok();

    // copy out of the store into a local repository, and from a local one into the store.
    let local = dir.path().join("local");
    let mut c = lifeboat(Path::new(url));
    c.envs(env.iter().copied()).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args(["copy", "--to", s(&local), "--init"]);
    run(&mut c).ok();
    let out2 = dir.path().join("out2");
    lb(&local, &["restore", "latest", "--target", s(&out2)]).ok();
    assert_same_tree(&src, &under(&out2, &src), Compare::ALL);
    let other = dir.path().join("other");
    init(&other);
    let src2 = dir.path().join("src2");
    fs::create_dir_all(&src2).expect("mkdir");
    write_random(&src2.join("x.bin"), 300_000, 11);
    lb(&other, &["backup", s(&src2)]).ok();
    let mut c = lifeboat(&other);
    c.envs(env.iter().copied()).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args(["copy", "--to", url]);
    run(&mut c).ok();
    let snaps = lbr(url, env, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(2), "{snaps:#}");
    lbr(url, env, &["check", "--read-data"]).ok();

    let t = lbr(url, env, &["storage", "test", "--json", "--size", "2M"]).ok().json();
    assert_eq!(t["ok"], true, "{t:#}");
}

#[test]
fn rest_server_end_to_end_and_restic_reads_it() {
    let Some(server) = RestServer::start(Mode::default()) else { return };
    let url = server.url("e2e");
    exercise(&url, &[], Some(&url));
}

#[test]
fn rest_server_with_basic_auth_from_env_config_and_url() {
    let Some(server) = RestServer::start(Mode { auth: true, ..Mode::default() }) else { return };
    let creds = [("RESTIC_REST_USERNAME", rest_server::USER), ("RESTIC_REST_PASSWORD", rest_server::PASSWORD)];
    // Credentials from restic's variables (restic 0.14 here only reads them from the URL).
    exercise(&server.url("env"), &creds, Some(&server.url_with_auth("env")));

    // From the URL; never shown.
    let url = server.url_with_auth("inurl");
    lbr(&url, &[], &["init", "--kdf-n", "1024"]).ok();
    let r = lbr(&url, &[], &["snapshots"]).ok();
    assert!(!r.stdout.contains(rest_server::PASSWORD) && !r.stderr.contains(rest_server::PASSWORD));

    // From [repository] rest with ${VAR}.
    let dir = tempdir();
    let cfg = dir.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\nrest = {{ username = \"{}\", password = \"${{TEST_REST_PW}}\" }}\n",
            server.url("cfg"),
            rest_server::USER
        ),
    )
    .expect("config");
    let with_cfg = |args: &[&str], pw: &str| {
        let mut c = bare();
        for v in STORE_VARS {
            c.env_remove(v);
        }
        run(c.env("LIFEBOAT_PASSWORD", PASSWORD).env("TEST_REST_PW", pw).arg("--config").arg(&cfg).args(args))
    };
    with_cfg(&["init", "--kdf-n", "1024"], rest_server::PASSWORD).ok();
    with_cfg(&["snapshots"], rest_server::PASSWORD).ok();
    let wrong = with_cfg(&["snapshots"], "Wr0ngPassw0rd").code(1);
    let line = wrong.one_error_line();
    assert!(line.contains("refused the credentials (HTTP 401)"), "{line}");
    assert!(!line.contains("Wr0ngPassw0rd"), "{line}");
}

#[test]
fn append_only_rest_server_keeps_backups_and_refuses_prune_in_one_line() {
    let Some(server) = RestServer::start(Mode { append_only: true, ..Mode::default() }) else { return };
    let url = server.url("ao");
    let dir = tempdir();
    let src = dir.path().join("src");
    build_tree(&src);
    lbr(&url, &[], &["init", "--kdf-n", "1024"]).ok();
    lbr(&url, &[], &["backup", s(&src)]).ok();
    write_random(&src.join("more.bin"), 500_000, 12);
    lbr(&url, &[], &["backup", s(&src)]).ok();
    let f = lbr(&url, &[], &["forget", "--keep-last", "1", "--prune"]).code(1);
    let line = f.one_error_line();
    assert!(line.contains("the REST server is append-only: deleting snapshots/"), "{line}");
    // Nothing was lost, the repository is consistent, and restic agrees.
    let snaps = lbr(&url, &[], &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().map(Vec::len), Some(2), "{snaps:#}");
    lbr(&url, &[], &["check", "--read-data"]).ok();
    let r = restic_at(&url, &[], &["check", "--read-data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = dir.path().join("out");
    lbr(&url, &[], &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
}

#[test]
fn unreachable_rest_server_is_one_line_with_exit_1() {
    let port = rest_server::free_port();
    let url = format!("rest:http://someone:SeCrEt@127.0.0.1:{port}/nothing/");
    let r = lbr(&url, &[], &["snapshots"]).code(1);
    let line = r.one_error_line();
    assert!(
        line.contains(&format!("rest:http://127.0.0.1:{port}/nothing"))
            && line.contains("cannot reach the REST server"),
        "{line}"
    );
    assert!(!line.contains("SeCrEt"), "{line}");
    let bad = lbr("rest:ftp://h/x", &[], &["snapshots"]).code(1);
    assert!(bad.one_error_line().contains("rest:http://HOST:PORT/PATH"), "{}", bad.stderr);
}

#[test]
fn sftp_end_to_end_and_restic_reads_it() {
    let Some(server) = SftpServer::start() else { return };
    let url = server.url("e2e");
    let args = server.ssh_args();
    exercise(&url, &[("LIFEBOAT_SFTP_ARGS", &args)], None);
    // restic (which spawns ssh the same way) checks and restores what Lifeboat wrote.
    let r = restic_sftp(&server, &url, &["check", "--read-data"]);
    assert_eq!(r.code, 0, "restic check over sftp: {}\n{}", r.stdout, r.stderr);
    let dir = tempdir();
    let r = restic_sftp(&server, &url, &["restore", "latest", "--target", s(dir.path())]);
    assert_eq!(r.code, 0, "restic restore over sftp: {}", r.stderr);
}

#[test]
fn copy_local_to_sftp_to_rest_and_config_sftp_args() {
    let Some(sftp) = SftpServer::start() else { return };
    let Some(rest) = RestServer::start(Mode::default()) else { return };
    let dir = tempdir();
    let src = dir.path().join("src");
    build_tree(&src);
    let local = dir.path().join("local");
    init(&local);
    lb(&local, &["backup", s(&src)]).ok();
    // [repository] sftp args from the config (with ${VAR}); copy local → SFTP → REST.
    let cfg = dir.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!("[repository]\nurl = \"{}\"\nsftp = {{ args = \"${{TEST_SSH_ARGS}}\" }}\n", sftp.url("nas")),
    )
    .expect("config");
    let args = sftp.ssh_args();
    let mut c = lifeboat(&local);
    c.env("LIFEBOAT_SFTP_ARGS", &args).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args([
        "copy",
        "--to",
        &sftp.url("nas"),
        "--init",
    ]);
    run(&mut c).ok();
    let with_cfg = |a: &[&str]| {
        let mut c = bare();
        for v in STORE_VARS {
            c.env_remove(v);
        }
        c.env("LIFEBOAT_PASSWORD", PASSWORD).env("LIFEBOAT_TO_PASSWORD", PASSWORD).env("TEST_SSH_ARGS", &args);
        run(c.arg("--config").arg(&cfg).args(a))
    };
    with_cfg(&["check", "--read-data"]).ok();
    with_cfg(&["copy", "--to", &rest.url("offsite"), "--init"]).ok();
    let out = dir.path().join("out");
    lbr(&rest.url("offsite"), &[], &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
    let t = with_cfg(&["storage", "test", "--json", "--size", "1M"]).ok().json();
    assert_eq!(t["ok"], true, "{t:#}");
}

#[test]
fn sftp_errors_are_one_line_with_exit_1() {
    let Some(server) = SftpServer::start() else { return };
    // No known_hosts entry for the server: the host key is unknown.
    let empty = server.dir().join("no_known_hosts");
    fs::write(&empty, "").expect("write");
    let args = format!(
        "-F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={}",
        server.dir().join("id").display(),
        empty.display()
    );
    let r = lbr(&server.url("x"), &[("LIFEBOAT_SFTP_ARGS", &args)], &["init", "--kdf-n", "1024"]).code(1);
    let line = r.one_error_line();
    assert!(line.contains(&server.url("x")) && line.contains("the host key is unknown"), "{line}");
    let port = rest_server::free_port();
    let url = format!("sftp://{}@127.0.0.1:{port}//tmp/none", server.user);
    let r = lbr(&url, &[("LIFEBOAT_SFTP_ARGS", &server.ssh_args())], &["snapshots"]).code(1);
    assert!(r.one_error_line().contains("host unreachable"), "{}", r.stderr);
    let r = lbr("sftp:nohost", &[], &["snapshots"]).code(1);
    assert!(r.one_error_line().contains("sftp:USER@HOST:/PATH"), "{}", r.stderr);
}

#[test]
fn azure_end_to_end_with_azurite() {
    let Some(server) = Azurite::start() else { return };
    let env = server.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // `init` creates the missing container, as restic does. (restic 0.14 cannot be pointed at
    // the emulator: it builds https://ACCOUNT.blob.SUFFIX and has no endpoint setting.)
    exercise("azure:lifeboat-e2e:/repo", &env, None);
    // A missing container holds no repository (exit 10, naming it).
    let r = lbr("azure:nothere:/repo", &env, &["snapshots"]).code(10);
    let line = r.one_error_line();
    assert!(line.contains("azure:nothere:/repo"), "{line}");
    // No credentials at all.
    let r = lbr("azure:lifeboat-e2e:/repo", &[], &["snapshots"]).code(1);
    assert!(r.one_error_line().contains("AZURE_ACCOUNT_NAME"), "{}", r.stderr);
}

#[test]
fn copy_local_to_sftp_to_azure() {
    let Some(sftp) = SftpServer::start() else { return };
    let Some(az) = Azurite::start() else { return };
    let dir = tempdir();
    let src = dir.path().join("src");
    build_tree(&src);
    let local = dir.path().join("local");
    init(&local);
    lb(&local, &["backup", s(&src)]).ok();
    let mut env = az.env();
    env.push(("LIFEBOAT_SFTP_ARGS", sftp.ssh_args()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let nas = sftp.url("nas2");
    let mut c = lifeboat(&local);
    c.envs(env.iter().copied()).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args(["copy", "--to", &nas, "--init"]);
    run(&mut c).ok();
    let mut c = lifeboat(Path::new(&nas));
    c.envs(env.iter().copied()).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args([
        "copy",
        "--to",
        "azure:offsite:/lifeboat",
        "--init",
    ]);
    run(&mut c).ok();
    lbr("azure:offsite:/lifeboat", &env, &["check", "--read-data"]).ok();
    let out = dir.path().join("out");
    lbr("azure:offsite:/lifeboat", &env, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
}

#[test]
fn gcs_end_to_end_with_fake_gcs_server_and_copy_from_azure() {
    let Some(gcs) = GcsServer::start() else { return };
    let endpoint = gcs.endpoint();
    let env = [("GCS_ENDPOINT", endpoint.as_str())];
    exercise("gs:lifeboat-e2e:/repo", &env, None);
    // A bucket that does not exist holds no repository (exit 10).
    let r = lbr("gs:no-such-bucket:/repo", &env, &["snapshots"]).code(10);
    assert!(r.one_error_line().contains("gs:no-such-bucket:/repo"), "{}", r.stderr);
    // Azure → GCS.
    let Some(az) = Azurite::start() else { return };
    let mut all = az.env();
    all.push(("GCS_ENDPOINT", endpoint.clone()));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempdir();
    let src = dir.path().join("src");
    build_tree(&src);
    lbr("azure:from:/repo", &all, &["init", "--kdf-n", "1024"]).ok();
    lbr("azure:from:/repo", &all, &["backup", s(&src)]).ok();
    let mut c = lifeboat(Path::new("azure:from:/repo"));
    c.envs(all.iter().copied()).env("LIFEBOAT_TO_PASSWORD", PASSWORD).args([
        "copy",
        "--to",
        "gs:offsite:/copy",
        "--init",
    ]);
    run(&mut c).ok();
    let out = dir.path().join("out");
    lbr("gs:offsite:/copy", &all, &["restore", "latest", "--target", s(&out)]).ok();
    assert_same_tree(&src, &under(&out, &src), Compare::ALL);
}
