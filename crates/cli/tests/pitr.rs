//! Point-in-time recovery of PostgreSQL: a throwaway cluster archives its WAL into the
//! repository with `lifeboat wal-push`, a base backup is taken while rows are written, and
//! `restore --at` rebuilds the cluster as of moments between known transactions (exact row
//! counts, checked by `--verify` on a scratch port and again by the test); a first PITR restore
//! is promoted onto timeline 2 and archives there, and a second PITR restore follows it.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/pgcluster.rs"]
mod pgcluster;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use pgcluster::*;

/// Everything runs as the `postgres` user (the server's archiver runs `wal-push` as that user,
/// and a restored cluster can only be started by the owner of its files).
struct Setup {
    dir: PathBuf,
    repo: PathBuf,
    pw: PathBuf,
    cfg: PathBuf,
}

impl Setup {
    fn lb(&self, args: &[&str]) -> Run {
        let mut full = vec!["--config", s(&self.cfg)];
        full.extend_from_slice(args);
        as_postgres_env(Path::new(env!("CARGO_BIN_EXE_lifeboat")), &full, &[("LIFEBOAT_PASSWORD_FILE", s(&self.pw))])
    }

    fn archive_opts(&self) -> String {
        format!(
            "-c wal_level=replica -c archive_mode=on -c archive_timeout=0 -c archive_command='{} --repo {} wal-push --source pg %p'",
            env!("CARGO_BIN_EXE_lifeboat"),
            s(&self.repo)
        )
    }
}

/// Force the current WAL segment out and wait until the archiver has stored it.
fn archive_now(c: &Cluster) {
    let seg = c.psql("SELECT pg_walfile_name(pg_switch_wal())");
    let t = Instant::now();
    loop {
        let last = c.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        let failed = c.psql("SELECT failed_count FROM pg_stat_archiver");
        if last.as_str() >= seg.as_str() && last.len() == 24 {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "segment {seg} not archived (last {last}, failures {failed})");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Insert `n` rows in one transaction, then the server's clock after the commit.
fn batch(c: &Cluster, n: u32) -> String {
    c.psql(&format!("INSERT INTO t (v) SELECT g FROM generate_series(1, {n}) g"));
    std::thread::sleep(Duration::from_millis(30));
    let t = c.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    std::thread::sleep(Duration::from_millis(30));
    t
}

fn count_in(r: &Run) -> u64 {
    let j = r.json();
    j["replay"]["tables"]["public.t"].as_u64().unwrap_or_else(|| panic!("no count of public.t in {j}"))
}

#[test]
fn postgres_pitr_restores_to_moments_between_transactions_and_across_a_timeline_switch() {
    let Some(bin) = server_bin() else { return };
    if !is_root() {
        assert!(std::env::var_os("CI").is_none(), "the PITR test needs root (to act as the postgres user) in CI");
        eprintln!("skipping: needs root to run clusters and lifeboat as the postgres user");
        return;
    }
    let tmp = tempdir();
    let dir = tmp.path().to_path_buf();
    let repo = dir.join("repo");
    let pw = dir.join("password");
    fs::write(&pw, "pitr-test-password\n").unwrap();
    let mut primary_dir = dir.join("primary");
    fs::create_dir(&primary_dir).unwrap();
    run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir)).ok();
    run(Command::new("chmod").args(["0600"]).arg(&pw)).ok();
    let data = primary_dir.join("data");
    as_postgres(&bin.join("initdb"), &["-D", s(&data), "-A", "trust", "-U", "postgres", "--no-sync"]).ok();
    let cfg = dir.join("lifeboat.toml");
    let st = Setup { dir: dir.clone(), repo: repo.clone(), pw: pw.clone(), cfg: cfg.clone() };
    let primary =
        Cluster::existing(&bin, &data, &primary_dir, &st.archive_opts(), &[("LIFEBOAT_PASSWORD_FILE", s(&pw))]);
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"pg\"\nkind = \"postgres\"\npitr = true\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\nbin_dir = \"{}\"\n",
            s(&repo),
            primary.port,
            s(&bin)
        ),
    )
    .unwrap();
    st.lb(&["init", "--kdf-n", "1024"]).ok();
    // A pitr source without archiving is refused at backup time (checked on a second cluster).
    {
        let plain = Cluster::start(&bin);
        let bad_cfg = dir.join("plain.toml");
        fs::write(
            &bad_cfg,
            fs::read_to_string(&cfg)
                .unwrap()
                .replace(&format!("port = {}", primary.port), &format!("port = {}", plain.port)),
        )
        .unwrap();
        run(Command::new("chown").args(["postgres:postgres"]).arg(&bad_cfg)).ok();
        let r = as_postgres_env(
            Path::new(env!("CARGO_BIN_EXE_lifeboat")),
            &["--config", s(&bad_cfg), "backup", "pg"],
            &[("LIFEBOAT_PASSWORD_FILE", s(&pw))],
        );
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("WAL archiving is off"), "{}", r.stderr);
    }

    primary.psql("CREATE TABLE t (id bigserial PRIMARY KEY, v int, at timestamptz DEFAULT clock_timestamp())");
    batch(&primary, 100);
    // The base backup, while a writer inserts rows.
    let writer = {
        let port = primary.port;
        std::thread::spawn(move || {
            for _ in 0..20 {
                let _ = Command::new("psql")
                    .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "postgres"])
                    .args(["-c", "INSERT INTO t (v) SELECT g FROM generate_series(1, 10) g"])
                    .output();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let b = st.lb(&["--json", "backup", "pg"]).ok();
    writer.join().unwrap();
    assert!(b.stdout.contains("\"ok\": true") && b.stdout.contains("pitr-base"), "{}", b.stdout);
    let before = primary.psql("SELECT count(*) FROM t").parse::<u64>().unwrap();
    let t1 = batch(&primary, 50);
    let t2 = batch(&primary, 70);
    let t_end = batch(&primary, 30);
    archive_now(&primary);
    let archived = st.lb(&["--json", "wal-fetch", "--source", "pg", "00000001.history", s(&dir.join("x"))]);
    assert_eq!(archived.code, 1, "no timeline history on timeline 1: {}", archived.stderr);

    // Two moments between known transactions, and the end of the archive.
    for (at, want) in [(&t1, before + 50), (&t2, before + 120), (&"latest".to_string(), before + 150)] {
        let target = dir.join(format!("restore-{}", want));
        let r =
            st.lb(&["--json", "restore", "latest", "--source", "pg", "--at", at, "--target", s(&target), "--verify"]);
        assert_eq!(r.code, 0, "restore --at {at}: {}\n{}", r.stderr, r.stdout);
        assert_eq!(count_in(&r), want, "rows as of {at}");
    }
    let _ = t_end;

    // A first PITR restore becomes the new primary: promoted onto timeline 2, archiving into the
    // same source; a second PITR restore follows the new timeline.
    let first = dir.join("restore-tl2");
    st.lb(&["restore", "latest", "--source", "pg", "--at", &t1, "--target", s(&first)]).ok();
    primary.stop();
    drop(primary);
    primary_dir = dir.join("tl2");
    fs::create_dir(&primary_dir).unwrap();
    run(Command::new("chown").args(["postgres:postgres"]).arg(&primary_dir)).ok();
    let new_primary =
        Cluster::existing(&bin, &first, &primary_dir, &st.archive_opts(), &[("LIFEBOAT_PASSWORD_FILE", s(&pw))]);
    let t = Instant::now();
    while new_primary.psql("SELECT pg_is_in_recovery()") != "f" {
        assert!(t.elapsed() < Duration::from_secs(60), "the first restore did not finish recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(new_primary.psql("SELECT count(*) FROM t").parse::<u64>().unwrap(), before + 50);
    assert_eq!(new_primary.psql("SELECT timeline_id FROM pg_control_checkpoint()"), "2");
    let t3 = batch(&new_primary, 40);
    batch(&new_primary, 5);
    archive_now(&new_primary);
    let second = dir.join("restore-second");
    let r = st.lb(&["--json", "restore", "latest", "--source", "pg", "--at", &t3, "--target", s(&second), "--verify"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    assert_eq!(count_in(&r), before + 90, "timeline 2 as of {t3}");

    // The archive refuses a different segment under an archived name, accepts the same again.
    let names = st.lb(&["--json", "snapshots"]).ok();
    assert!(names.stdout.contains("pitr-base"), "{}", names.stdout);
    let seg_dir = first.join("pg_wal");
    let seg = fs::read_dir(&seg_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && n.starts_with("00000002"))
        .min()
        .expect("a timeline-2 segment");
    let copy = dir.join(&seg);
    fs::copy(seg_dir.join(&seg), &copy).unwrap();
    run(Command::new("chown").args(["postgres:postgres"]).arg(&copy)).ok();
    let again = st.lb(&["--json", "wal-push", "--source", "pg", s(&copy)]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["stored"], false, "{}", again.stdout);
    let mut bytes = fs::read(&copy).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&copy, bytes).unwrap();
    let refused = st.lb(&["wal-push", "--source", "pg", s(&copy)]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.one_error_line().contains("already archived with different content"), "{}", refused.stderr);

    // Bad input: one line, documented exit codes.
    let bad_time =
        st.lb(&["restore", "latest", "--source", "pg", "--at", "yesterday-ish", "--target", s(&dir.join("nope"))]);
    assert_eq!(bad_time.code, 2, "{}", bad_time.stderr);
    let too_early = st.lb(&[
        "restore",
        "latest",
        "--source",
        "pg",
        "--at",
        "2001-01-01T00:00:00Z",
        "--target",
        s(&dir.join("nope")),
    ]);
    assert_eq!(too_early.code, 1, "{}", too_early.stderr);
    assert!(too_early.one_error_line().contains("no point-in-time base backup ended before"), "{}", too_early.stderr);
    let not_empty = st.lb(&["restore", "latest", "--source", "pg", "--at", "latest", "--target", s(&first)]);
    assert_ne!(not_empty.code, 0);
    assert!(not_empty.stderr.contains("not empty"), "{}", not_empty.stderr);
    let bad_name = st.lb(&["wal-push", "--source", "pg", s(&pw)]);
    assert_eq!(bad_name.code, 2, "{}", bad_name.stderr);

    // Retention: a second base on timeline 2, the first one forgotten; apply-retention removes
    // the WAL only the forgotten base needed, and the kept base still recovers to the end.
    let old_base = st.lb(&["--json", "snapshots", "--source", "pg"]).ok().json()[0]["id"].as_str().unwrap().to_string();
    let text = fs::read_to_string(&cfg).unwrap();
    let old_port = text.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    fs::write(&cfg, text.replace(&old_port, &format!("port = {}", new_primary.port))).unwrap();
    st.lb(&["backup", "pg"]).ok();
    batch(&new_primary, 7);
    let t4 = batch(&new_primary, 1);
    batch(&new_primary, 1);
    archive_now(&new_primary);
    st.lb(&["forget", &old_base]).ok();
    let applied = st.lb(&["--json", "apply-retention"]).ok().json();
    let removed = applied["sources"][0]["wal_removed"].as_u64().unwrap();
    assert!(removed >= 1, "WAL older than the kept base removed: {applied}");
    let gone = st.lb(&["wal-fetch", "--source", "pg", "000000010000000000000002", s(&dir.join("x"))]);
    assert_eq!(gone.code, 1, "{}", gone.stderr);
    let r = st.lb(&[
        "--json",
        "restore",
        "latest",
        "--source",
        "pg",
        "--at",
        &t4,
        "--target",
        s(&dir.join("after-retention")),
        "--verify",
    ]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    assert_eq!(count_in(&r), before + 103, "timeline 2 as of {t4}, from the second base");

    // The recovery point of a pitr source moves with its archive: health reads the newest
    // archived WAL file (pushed after the newest base).
    let h = st.lb(&["--json", "health", "--source", "pg"]);
    assert!(h.stdout.contains("\"message\": \"last archived WAL "), "{}", h.stdout);

    // The restore test of a base backup replays it (as postgres, in a scratch directory).
    let v = st.lb(&["--json", "verify", "--restore-test", "--source", "pg"]);
    assert_eq!(v.code, 0, "{}\n{}", v.stderr, v.stdout);
    // restic still reads the repository, WAL archive and all.
    let mut rc = Command::new("runuser");
    rc.args([
        "-u",
        "postgres",
        "--",
        "env",
        &format!("RESTIC_PASSWORD_FILE={}", s(&pw)),
        "restic",
        "-r",
        s(&repo),
        "check",
        "--read-data",
    ]);
    let r = run(&mut rc);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    drop(new_primary);
    let _ = st.dir;
}
