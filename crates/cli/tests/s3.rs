//! End to end on S3 (SeaweedFS started by the shared harness, see
//! `crates/backend/tests/support/s3_server.rs`): init / backup / restore / check on an
//! `s3:http://…` repository, restic reading it, the config's `[repository] s3` settings, one-line
//! errors for bad credentials, endpoints and buckets, and `storage test` on S3 and on a directory.

#[path = "support/common.rs"]
mod common;
#[path = "../../backend/tests/support/s3_server.rs"]
mod s3_server;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::*;

/// Variables that would change which S3 server, credentials or profile the binary uses.
const AWS_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];

/// `lifeboat --repo URL` with the test password, the test server's credentials in the standard
/// variables, and `AWS_CA_BUNDLE` pointing nowhere (it must not matter for `http` endpoints).
fn lifeboat_s3(url: &str) -> Command {
    let mut c = bare_s3();
    c.env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY)
        .arg("--repo")
        .arg(url);
    c
}

/// `lifeboat` without any AWS settings, with a bogus `AWS_CA_BUNDLE` and an empty HOME (no
/// `~/.aws`).
fn bare_s3() -> Command {
    let mut c = bare();
    for v in AWS_VARS {
        c.env_remove(v);
    }
    c.env("AWS_CA_BUNDLE", "/nonexistent/lifeboat-test-ca.pem").env("HOME", "/nonexistent-home");
    c
}

fn lbs(url: &str, args: &[&str]) -> Run {
    run(lifeboat_s3(url).args(args))
}

/// `restic -r URL --no-cache ARGS…` with the password in a file and the S3 credentials in the
/// environment (restic's S3 client does not take a bogus AWS_CA_BUNDLE: unset).
fn restic_s3(url: &str, password_file: &Path, args: &[&str]) -> Run {
    let mut c = Command::new("restic");
    for v in AWS_VARS.iter().chain(["RESTIC_PASSWORD", "RESTIC_REPOSITORY", "AWS_CA_BUNDLE"].iter()) {
        c.env_remove(v);
    }
    c.env("RESTIC_PASSWORD_FILE", password_file)
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY)
        .args(["--no-cache", "-r", url])
        .args(args);
    run(&mut c)
}

/// A tree with several packs' worth of random data, compressible text, nesting, a symlink, an
/// empty file and an empty directory, with fixed times.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("sub/deeper")).expect("mkdir");
    fs::create_dir(src.join("empty_dir")).expect("mkdir");
    write_random(&src.join("big.bin"), 40 * 1024 * 1024 + 123, 1);
    write_random(&src.join("sub/small.bin"), 70_000, 2);
    write_compressible(&src.join("sub/deeper/log.txt"), 3 * 1024 * 1024);
    fs::write(src.join("empty_file"), b"").expect("write");
    std::os::unix::fs::symlink("sub/small.bin", src.join("link")).expect("symlink");
    for p in list_tree(src).into_iter().rev() {
        set_mtime(&src.join(p), 1_700_000_000, 123_456_789);
    }
    set_mtime(src, 1_700_000_000, 0);
}

fn wipe(url: &str) {
    s3_server::wipe(&lifeboat_backend::S3Backend::new(url, &s3_server::options()).expect("backend"));
}

#[test]
fn s3_round_trip_and_restic_reads_it() {
    if !s3_server::available() {
        return;
    }
    let tmp = tempdir();
    let (src, target, restic_target) = (tmp.path().join("src"), tmp.path().join("t1"), tmp.path().join("t2"));
    build_tree(&src);
    let url = s3_server::url(&format!("{}/repo", s3_server::unique_prefix("e2e")));

    let r = lbs(&url, &["init", "--kdf-n", "1024", "--json"]).ok();
    assert_eq!(r.json()["location"], url.as_str());
    let b = lbs(&url, &["backup", "--json", s(&src)]).ok().json();
    assert_eq!(num(&b, "files_new"), 4, "{b:#}");
    lbs(&url, &["restore", "latest", "--target", s(&target), "--verify"]).ok();
    assert_same_tree(&src, &under(&target, &src), Compare::ALL);
    let c = lbs(&url, &["check", "--read-data"]).ok();
    assert!(c.stderr.trim().is_empty(), "{}", c.stderr);
    // A second backup reuses everything (parent, dedup) over S3 too.
    let b2 = lbs(&url, &["backup", "--json", s(&src)]).ok().json();
    assert_eq!(b2["parent"], b["snapshot_id"], "{b2:#}");
    assert_eq!(num(&b2, "files_unmodified"), 4, "{b2:#}");
    // Only tree blobs of changed parent directories (the temp dir gained restore targets).
    assert!(num(&b2, "data_added") < 64 * 1024, "{b2:#}");

    let pw = tmp.path().join("password");
    fs::write(&pw, PASSWORD).expect("write password file");
    let c = restic_s3(&url, &pw, &["check", "--read-data"]);
    assert_eq!(c.code, 0, "restic check --read-data on S3 failed:\n{}\n{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("no errors were found"), "{}", c.stdout);
    restic_s3(&url, &pw, &["restore", "latest", "--target", s(&restic_target)]).ok();
    assert_same_tree(&src, &under(&restic_target, &src), Compare::ALL);

    // And Lifeboat reads what restic adds to the same S3 repository.
    fs::write(src.join("sub/added-by-restic"), b"hello from restic").expect("write");
    restic_s3(&url, &pw, &["backup", s(&src)]).ok();
    let t3 = tmp.path().join("t3");
    lbs(&url, &["restore", "latest", "--target", s(&t3)]).ok();
    assert_eq!(fs::read(under(&t3, &src).join("sub/added-by-restic")).expect("read"), b"hello from restic");
    lbs(&url, &["check"]).ok();
    wipe(&url);
}

#[test]
fn s3_settings_from_the_config_file() {
    if !s3_server::available() {
        return;
    }
    let tmp = tempdir();
    let prefix = s3_server::unique_prefix("config");
    let cfg = tmp.path().join("lifeboat.toml");
    // The bucket form with the endpoint in the config; secrets through ${VAR}.
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"s3://{}/{prefix}\"\n\
             s3 = {{ endpoint = \"{}\", access_key_id = \"${{LB_TEST_S3_ID}}\", secret_access_key = \"${{LB_TEST_S3_SECRET}}\" }}\n",
            s3_server::BUCKET,
            s3_server::ENDPOINT
        ),
    )
    .expect("write config");
    let with_cfg = |args: &[&str]| {
        let mut c = bare_s3();
        c.env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("LB_TEST_S3_ID", s3_server::ACCESS_KEY_ID)
            .env("LB_TEST_S3_SECRET", s3_server::SECRET_ACCESS_KEY)
            .arg("--config")
            .arg(&cfg)
            .args(args);
        run(&mut c)
    };
    let r = with_cfg(&["init", "--kdf-n", "1024"]).ok();
    assert!(r.stdout.contains(&format!("s3://{}/{prefix}", s3_server::BUCKET)), "{}", r.stdout);
    with_cfg(&["snapshots"]).ok();
    let t = with_cfg(&["storage", "test", "--json", "--size", "64K"]).ok().json();
    assert_eq!(t["ok"], true, "{t:#}");
    // A variable the config names but the environment lacks: one line naming it.
    let mut c = bare_s3();
    c.env("LIFEBOAT_PASSWORD", PASSWORD).arg("--config").arg(&cfg).arg("snapshots");
    let r = run(&mut c).code(1);
    assert!(r.one_error_line().contains("LB_TEST_S3_ID is not set"), "{}", r.stderr);
    wipe(&format!("s3:{}/{}/{prefix}", s3_server::ENDPOINT, s3_server::BUCKET));
}

/// Runs `lifeboat` with `cmd`, expects exit `code` and one error line containing `want` and
/// none of `secrets`.
#[track_caller]
fn fails(mut cmd: Command, code: i32, want: &str, secrets: &[&str]) -> String {
    let r = run(&mut cmd).code(code);
    let line = r.one_error_line();
    assert!(line.starts_with("lifeboat: ") && line.contains(want), "want {want:?} in:\n{line}");
    for secret in secrets {
        assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret), "secret {secret:?} leaked:\n{}", r.stderr);
    }
    line
}

#[test]
fn s3_errors_are_one_clear_line() {
    if !s3_server::available() {
        return;
    }
    let url = s3_server::url(&s3_server::unique_prefix("errors"));
    let secret = "Wr0ngSecret-do-not-print";

    let mut c = lifeboat_s3(&url);
    c.env("AWS_SECRET_ACCESS_KEY", secret).arg("snapshots");
    fails(c, 1, "access denied", &[secret, s3_server::SECRET_ACCESS_KEY]);
    let mut c = lifeboat_s3(&url);
    c.env("AWS_SECRET_ACCESS_KEY", secret).args(["init", "--kdf-n", "1024"]);
    fails(c, 1, "access denied", &[secret]);

    let missing = format!("s3:{}/no-such-bucket-{}/repo", s3_server::ENDPOINT, std::process::id());
    let mut c = lifeboat_s3(&missing);
    c.args(["init", "--kdf-n", "1024"]);
    let line = fails(c, 1, "does not exist (create it first)", &[s3_server::SECRET_ACCESS_KEY]);
    assert!(line.contains("no-such-bucket"), "{line}");

    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut c = lifeboat_s3(&format!("s3:http://127.0.0.1:{port}/b/p"));
    c.arg("snapshots");
    fails(c, 1, "cannot reach the server", &[s3_server::SECRET_ACCESS_KEY]);

    let mut c = bare_s3();
    c.env("LIFEBOAT_PASSWORD", PASSWORD).args(["--repo", &url, "snapshots"]);
    fails(c, 1, "no S3 credentials", &[]);

    let mut c = bare_s3();
    c.env("LIFEBOAT_PASSWORD", PASSWORD).args(["--repo", "s3:http://AKID:SeCrEt@127.0.0.1:8333/b/p", "snapshots"]);
    fails(c, 1, "credentials in the repository URL are not supported", &["SeCrEt"]);

    // Reachable, right credentials, no repository yet: "repository missing" as for a directory.
    let mut c = lifeboat_s3(&url);
    c.arg("snapshots");
    fails(c, 10, "", &[]);
}

#[test]
fn storage_test_on_s3() {
    if !s3_server::available() {
        return;
    }
    let url = s3_server::url(&s3_server::unique_prefix("storage-test"));
    // Before init, without a password.
    let mut c = lifeboat_s3(&url);
    c.env_remove("LIFEBOAT_PASSWORD").args(["storage", "test", "--json", "--size", "5M"]);
    let r = run(&mut c).ok().json();
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["location"], url.as_str());
    let steps: Vec<&str> = r["steps"].as_array().expect("steps").iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(steps, ["write", "size", "read", "read range", "list", "delete", "gone"]);
    assert!(r["steps"][0]["mib_per_s"].as_f64().is_some_and(|m| m > 0.0), "{r:#}");
    assert!(r["object"].as_str().is_some_and(|o| o.starts_with("lifeboat/storage-test/")), "{r:#}");
    let backend = lifeboat_backend::S3Backend::new(&url, &s3_server::options()).expect("backend");
    use lifeboat_backend::Backend;
    assert!(backend.list(lifeboat_backend::FileType::Lifeboat).expect("list").is_empty(), "probe left behind");

    let table = lbs(&url, &["storage", "test"]).ok();
    assert!(table.stdout.contains("all 7 steps passed"), "{}", table.stdout);
    assert!(table.stdout.contains("read range"), "{}", table.stdout);
    assert!(table.stdout.contains("object lock: off (deleting or overwriting destroys objects)"), "{}", table.stdout);
    assert_eq!(r["object_lock"]["versioning"], "off", "{r:#}");

    let mut c = lifeboat_s3(&url);
    c.env("AWS_SECRET_ACCESS_KEY", "wrong").args(["storage", "test"]);
    let line = fails(c, 1, "storage test failed at step \"write\"", &["wrong"]);
    assert!(line.contains("access denied"), "{line}");
}

#[test]
fn storage_test_on_a_directory() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    init(&repo);
    let r = run(bare().args(["--repo", s(&repo), "storage", "test", "--json", "--size", "100K"])).ok().json();
    assert_eq!(r["ok"], true, "{r:#}");
    assert_eq!(r["size"], 100 * 1024);
    assert_eq!(r["steps"].as_array().map(Vec::len), Some(7), "{r:#}");
    assert!(!repo.join("lifeboat/storage-test").read_dir().is_ok_and(|mut d| d.next().is_some()), "probe left");
    let t = run(bare().args(["--repo", s(&repo), "storage", "test"])).ok();
    assert!(t.stdout.contains(&format!("storage test on {}", repo.display())), "{}", t.stdout);

    let missing = tmp.path().join("missing");
    let r = run(bare().args(["--repo", s(&missing), "storage", "test"])).code(1);
    assert!(r.one_error_line().contains("storage test failed at step \"write\""), "{}", r.stderr);
    let r = run(bare().args(["--repo", s(&repo), "storage", "test", "--size", "12Q"])).code(2);
    assert!(r.one_error_line().contains("unknown unit"), "{}", r.stderr);
}

/// The CONTINUUM ransomware scenario on a bucket with Object Lock: after the "infection" the
/// attacker holds the S3 credentials and the repository password, encrypts the source, backs
/// it up, forgets and prunes the clean snapshot, overwrites every object with garbage, deletes
/// them all and tries to destroy every version. The locked versions survive: `--as-of` the
/// last clean time lists the clean snapshot, checks and restores it byte for byte, and copies
/// it into a fresh repository; `storage lock extend` and `apply-retention` keep the locks moving.
#[test]
fn object_lock_survives_an_attacker_with_the_credentials() {
    use lifeboat_backend::{Backend, FileType};
    if !s3_server::available() {
        return;
    }
    let tmp = tempdir();
    let prefix = format!("{}/repo", s3_server::unique_prefix("ransomware"));
    let store = s3_server::locked_backend(&prefix);
    let url = s3_server::locked_url(&prefix);
    let (src, target, fresh) = (tmp.path().join("src"), tmp.path().join("restored"), tmp.path().join("fresh"));
    fs::create_dir_all(src.join("ledger")).expect("mkdir");
    write_random(&src.join("ledger/accounts.db"), 3 * 1024 * 1024 + 17, 7);
    write_compressible(&src.join("ledger/journal.txt"), 512 * 1024);
    let clean_copy = tmp.path().join("clean-copy");
    fs::create_dir_all(&clean_copy).expect("mkdir");
    for f in ["accounts.db", "journal.txt"] {
        fs::copy(src.join("ledger").join(f), clean_copy.join(f)).expect("copy");
    }

    // The bucket's default retention, set through the CLI (the same value the harness set, so
    // tests running at the same time in this bucket are not affected).
    let set = lbs(&url, &["storage", "lock", "set", "--days", "1", "--mode", "compliance"]).ok();
    assert!(set.stdout.contains("new objects locked for 1 day in compliance mode"), "{}", set.stdout);
    let st = lbs(&url, &["storage", "lock", "--json"]).ok().json();
    assert_eq!(st["versioning"], "enabled", "{st:#}");
    assert_eq!(st["lock_enabled"], true, "{st:#}");
    assert_eq!(st["default_retention"]["mode"], "compliance", "{st:#}");
    assert_eq!(st["default_retention"]["days"], 1, "{st:#}");

    lbs(&url, &["init", "--kdf-n", "1024"]).ok();
    let clean_id =
        lbs(&url, &["backup", "--json", s(&src)]).ok().json()["snapshot_id"].as_str().expect("id").to_owned();
    // S3 times have one-second precision: the clean state gets a second of its own.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let clean_time = chrono::Utc::now().to_rfc3339();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    // Infection: the data is encrypted and backed up, the clean snapshot forgotten and pruned.
    write_random(&src.join("ledger/accounts.db"), 3 * 1024 * 1024 + 17, 666);
    fs::write(src.join("ledger/journal.txt"), b"YOUR FILES ARE ENCRYPTED").expect("write");
    lbs(&url, &["backup", s(&src)]).ok();
    lbs(&url, &["forget", &clean_id, "--prune"]).ok();
    // Then every object is overwritten with garbage and deleted, and every version attacked.
    for ft in FileType::ALL {
        for (name, _) in store.list(ft).expect("list") {
            store.save(ft, &name, b"garbage").expect("overwrite (a new version)");
            store.remove(ft, &name).expect("delete (a delete marker)");
        }
    }
    let versions = store.versions().expect("versions");
    let data: Vec<_> = versions.iter().filter(|v| !v.deleted).collect();
    assert!(data.len() > 10, "{} versions", data.len());
    for v in &data {
        let err = store.delete_version(&v.key, &v.version).expect_err("a locked version must survive");
        assert!(err.to_string().contains("access denied"), "{}: {err}", v.key);
    }
    let gone = lbs(&url, &["snapshots"]).code(10);
    assert!(gone.stderr.contains("no repository"), "{}", gone.stderr);

    // Recovery: the repository as it was at the clean time.
    let as_of = |args: &[&str]| {
        let mut c = lifeboat_s3(&url);
        c.arg("--as-of").arg(&clean_time).args(args);
        run(&mut c)
    };
    let snaps = as_of(&["snapshots", "--json"]).ok().json();
    let ids: Vec<&str> = snaps.as_array().expect("list").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, vec![clean_id.as_str()], "{snaps:#}");
    let c = as_of(&["check", "--read-data"]).ok();
    assert!(c.stderr.trim().is_empty(), "{}", c.stderr);
    as_of(&["restore", &clean_id, "--target", s(&target), "--verify"]).ok();
    assert_same_tree(&clean_copy, &under(&target, &src.join("ledger")), Compare::CONTENT);
    let refused = as_of(&["backup", s(&src)]).code(1);
    assert!(refused.stderr.contains("read-only view of the past"), "{}", refused.stderr);
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{}", refused.stderr);
    // …and into a fresh repository, to go on from there.
    let mut copy = lifeboat_s3(&url);
    copy.env("LIFEBOAT_TO_PASSWORD", "fresh-password").arg("--as-of").arg(&clean_time);
    run(copy.args(["copy", "--to", s(&fresh), "--init"])).ok();
    let fresh_snaps = lb_pw(&fresh, "fresh-password", &["snapshots", "--json"]).ok().json();
    assert_eq!(fresh_snaps.as_array().map(Vec::len), Some(1), "{fresh_snaps:#}");
    lb_pw(&fresh, "fresh-password", &["check", "--read-data"]).ok();

    // Keeping the locks moving: only current objects (the attacker's garbage is all that is
    // current now, so use a fresh repository in the same bucket for the counts).
    let prefix2 = format!("{}/repo", s3_server::unique_prefix("lock-extend"));
    let url2 = s3_server::locked_url(&prefix2);
    lbs(&url2, &["init", "--kdf-n", "1024"]).ok();
    lbs(&url2, &["backup", s(&clean_copy)]).ok();
    let current = FileType::ALL
        .into_iter()
        .filter(|ft| *ft != FileType::Lock)
        .map(|ft| s3_server::locked_backend(&prefix2).list(ft).expect("list").len() as u64)
        .sum::<u64>();
    let r = lbs(&url2, &["storage", "lock", "extend", "--days", "2", "--json"]).ok().json();
    assert_eq!((num(&r, "objects"), num(&r, "extended")), (current, current), "{r:#}");
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = {url2:?}\n\n[[source]]\nname = \"ledger\"\nkind = \"files\"\npath = {:?}\nretention = {{ last = 1 }}\n",
            s(&clean_copy)
        ),
    )
    .expect("config");
    let mut apply = lifeboat_s3(&url2);
    let a = run(apply.arg("--config").arg(&cfg).args(["apply-retention", "--json"])).ok().json();
    // The bucket's one-day default is shorter than the two days already set: left alone.
    assert_eq!(num(&a["object_lock"], "already_later"), current, "{a:#}");
}

/// `storage create-bucket --object-lock --days N` makes a bucket that `storage lock` and
/// `storage test` report as locked (governance mode: the test writes nothing that stays
/// locked, so the bucket stays empty); asking for Object Lock on an existing unlocked bucket
/// is refused.
#[test]
fn storage_create_bucket_with_object_lock() {
    if !s3_server::available() {
        return;
    }
    let bucket = format!("lifeboat-new-{}", std::process::id());
    let url = format!("s3:{}/{bucket}/app", s3_server::ENDPOINT);
    let st = lbs(&url, &["storage", "create-bucket", "--object-lock", "--days", "7", "--mode", "governance", "--json"])
        .ok()
        .json();
    assert_eq!(st["bucket"], bucket.as_str(), "{st:#}");
    assert_eq!((&st["versioning"], &st["lock_enabled"]), (&"enabled".into(), &true.into()), "{st:#}");
    assert_eq!(st["default_retention"]["days"], 7, "{st:#}");
    assert_eq!(st["default_retention"]["mode"], "governance", "{st:#}");
    // Again: the bucket is ours already, which is fine.
    lbs(&url, &["storage", "create-bucket", "--object-lock"]).ok();
    let plain = format!("s3:{}/lifeboat-plain-{}/app", s3_server::ENDPOINT, std::process::id());
    let st = lbs(&plain, &["storage", "create-bucket", "--json"]).ok().json();
    assert_eq!((&st["versioning"], &st["lock_enabled"]), (&"off".into(), &false.into()), "{st:#}");
    let e = lbs(&plain, &["storage", "create-bucket", "--object-lock"]).code(1);
    assert!(e.stderr.contains("already exists without Object Lock"), "{}", e.stderr);
}

/// `storage lock` on a bucket without Object Lock says what is missing; on a directory it
/// points to append-only mode; extending there fails with one line.
#[test]
fn storage_lock_without_object_lock() {
    if !s3_server::available() {
        return;
    }
    let url = s3_server::url(&s3_server::unique_prefix("no-lock"));
    let st = lbs(&url, &["storage", "lock"]).ok();
    assert!(st.stdout.contains("versioning   off"), "{}", st.stdout);
    assert!(st.stdout.contains("object lock  off"), "{}", st.stdout);
    let e = lbs(&url, &["storage", "lock", "extend"]).code(1);
    assert!(e.stderr.contains("has no Object Lock"), "{}", e.stderr);
    let tmp = tempdir();
    let e = lb(tmp.path(), &["storage", "lock"]).code(1);
    assert!(e.stderr.contains("append-only"), "{}", e.stderr);
    let e = lb(tmp.path(), &["--as-of", "1h", "snapshots"]).code(1);
    assert!(e.stderr.contains("only S3 buckets with versioning"), "{}", e.stderr);
}
