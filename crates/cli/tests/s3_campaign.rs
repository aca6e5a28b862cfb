//! The fault campaign's S3 part (the local part is campaign.rs): on a real S3 server
//! (SeaweedFS, see `crates/backend/tests/support/s3_server.rs`) four writers back up while a
//! fifth process forgets and prunes in a loop, and backups are killed with SIGKILL at random
//! moments; afterwards `check --read-data` and `restic check --read-data` pass, no completed
//! snapshot is lost, and every snapshot still there restores identical to what was backed up.
//! Sizes: `LIFEBOAT_S3_CAMPAIGN_ROUNDS` (writer rounds, default 3) and
//! `LIFEBOAT_S3_CAMPAIGN_KILLS` (default 6).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "../../backend/tests/support/s3_server.rs"]
mod s3_server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn s3(url: &str) -> Command {
    let mut c = bare();
    c.env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .arg("--repo")
        .arg(url);
    c
}

fn lbs(url: &str, args: &[&str]) -> Run {
    run(s3(url).args(args))
}

fn restic_ok(url: &str, dir: &Path) -> bool {
    let pw = dir.join("restic.pw");
    fs::write(&pw, PASSWORD).unwrap();
    let out = Command::new("restic")
        .env_remove("AWS_CA_BUNDLE")
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_ACCESS_KEY)
        .env("RESTIC_PASSWORD_FILE", &pw)
        .args(["--no-cache", "-r", url, "check", "--read-data"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("restic check: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// Change a few files of `src` (new content, one new file per round).
fn mutate(src: &Path, round: usize, seed: u64) {
    fs::create_dir_all(src).unwrap();
    write_random(&src.join(format!("r{round}.bin")), 200_000 + (round * 7919) % 300_000, seed + round as u64);
    fs::write(src.join("counter"), format!("{round}")).unwrap();
}

fn snapshot_ids(url: &str) -> Vec<String> {
    let v = lbs(url, &["snapshots", "--json"]).ok().json();
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn s3_writers_prunes_and_kills_leave_a_repository_that_checks_clean_and_restores() {
    if !s3_server::available() {
        return;
    }
    let tmp = tempdir();
    let url = s3_server::url(&s3_server::unique_prefix("campaign"));
    lbs(&url, &["init", "--kdf-n", "1024"]).ok();
    let rounds = env_n("LIFEBOAT_S3_CAMPAIGN_ROUNDS", 3);
    let kills = env_n("LIFEBOAT_S3_CAMPAIGN_KILLS", 6);

    // Kills: backups killed at random moments (some finish first: their snapshots must stay).
    let victim = tmp.path().join("victim");
    let mut kept: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for k in 0..kills {
        mutate(&victim, k, 99);
        let mut child = s3(&url)
            .args(["--json", "backup", s(&victim)])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + (k as u64 * 37) % 250));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string();
            let copy = tmp.path().join(format!("victim-{id}"));
            fs::create_dir_all(&copy).unwrap();
            for e in fs::read_dir(&victim).unwrap().flatten() {
                fs::copy(e.path(), copy.join(e.file_name())).unwrap();
            }
            kept.push((id, copy, victim.clone()));
        }
    }
    lbs(&url, &["unlock"]).ok();

    // Four writers and a forget --prune loop.
    let known: Arc<Mutex<Vec<(String, PathBuf, PathBuf)>>> = Arc::new(Mutex::new(kept));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (url, known, failures) = (url.clone(), known.clone(), failures.clone());
            let base = tmp.path().join(format!("w{w}"));
            std::thread::spawn(move || {
                let src = base.join("src");
                for round in 0..rounds {
                    mutate(&src, round, w * 1000);
                    let r = lbs(&url, &["--retry-lock", "5m", "--json", "backup", s(&src)]);
                    if r.code != 0 {
                        failures.lock().unwrap().push(format!("writer {w}: exit {}: {}", r.code, r.stderr));
                        continue;
                    }
                    let id = r.json()["snapshot_id"].as_str().unwrap().to_string();
                    let copy = base.join(&id);
                    fs::create_dir_all(&copy).unwrap();
                    for e in fs::read_dir(&src).unwrap().flatten() {
                        fs::copy(e.path(), copy.join(e.file_name())).unwrap();
                    }
                    known.lock().unwrap().push((id, copy, src.clone()));
                }
            })
        })
        .collect();
    let (pruned, locked) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let pruner = {
        let (url, done, failures, pruned, locked) =
            (url.clone(), done.clone(), failures.clone(), pruned.clone(), locked.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let f = lbs(&url, &["forget", "--keep-last", "3", "--prune"]);
                match f.code {
                    0 => *pruned.lock().unwrap() += 1,
                    11 => *locked.lock().unwrap() += 1,
                    c => failures.lock().unwrap().push(format!("forget --prune exit {c}: {}", f.stderr)),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    pruner.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}");

    // Clean by both checkers; every snapshot still there restores identical.
    let c = lbs(&url, &["check", "--read-data"]);
    assert_eq!(c.code, 0, "lifeboat check: {}{}", c.stdout, c.stderr);
    assert!(restic_ok(&url, tmp.path()), "restic check --read-data failed on the S3 repository");
    let ids = snapshot_ids(&url);
    let known = known.lock().unwrap().clone();
    let mut restored = 0;
    for (id, copy, src) in known.iter().filter(|k| ids.contains(&k.0)) {
        let target = tmp.path().join(format!("r-{id}"));
        lbs(&url, &["restore", id, "--target", s(&target)]).ok();
        for e in fs::read_dir(copy).unwrap().flatten() {
            let got = fs::read(under(&target, src).join(e.file_name())).unwrap();
            assert_eq!(got, fs::read(e.path()).unwrap(), "snapshot {id}: {:?} differs", e.file_name());
        }
        restored += 1;
    }
    assert!(restored >= 4, "at least the newest snapshot of each writer survives forget --keep-last 3: {restored}");
    println!(
        "s3 campaign: {kills} kills, 4 × {rounds} backups, {} prunes, {} refused (locked), {restored} snapshots restored identical, 0 corrupt",
        pruned.lock().unwrap(),
        locked.lock().unwrap()
    );
    s3_server::wipe(&s3_server::backend(url.rsplit('/').next().unwrap_or_default()));
}
