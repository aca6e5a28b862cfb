//! The run history: every run recorded in the repository, failed backups included (they make no
//! snapshot but leave a record with their error), a killed run shown as failed, `logs`, and
//! `health` counting a failed last run as a warning.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn config(dir: &Path, data: &Path) -> std::path::PathBuf {
    let cfg = dir.join("lifeboat.toml");
    let body = format!(
        "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\nrpo = \"1h\"\n\n[[source]]\nname = \"status\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo partial output; exit 3\"]\nrpo = \"1h\"\n",
        s(&dir.join("repo")),
        s(data)
    );
    fs::write(&cfg, body).unwrap();
    cfg
}

#[test]
fn every_run_is_recorded_and_a_failed_backup_leaves_a_record_with_its_error() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let cfg = config(tmp.path(), &data);
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // `status` fails (the command exits 3): no snapshot, but a failed run.
    lbc(&cfg, &["backup", "--all"]).code(1);
    let runs = lbc(&cfg, &["runs", "--json"]).ok().json();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let docs = runs.iter().find(|r| r["source"] == "docs").unwrap();
    assert_eq!(docs["outcome"], "ok");
    assert_eq!(docs["kind"], "backup");
    assert_eq!(docs["trigger"], "cli");
    assert!(docs["snapshot"].is_string() && docs["bytes"].as_u64().unwrap() > 0, "{docs:#}");
    let status = runs.iter().find(|r| r["source"] == "status").unwrap();
    assert_eq!(status["outcome"], "failed");
    assert!(status["error"].as_str().unwrap().contains("exit"), "{status:#}");
    assert!(status["snapshot"].is_null());
    // Filters.
    let failed = lbc(&cfg, &["runs", "--failed", "--json"]).ok().json();
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(lbc(&cfg, &["runs", "--source", "docs", "--json"]).ok().json().as_array().unwrap().len(), 1);
    assert_eq!(
        lbc(&cfg, &["runs", "--since", "2001-01-01", "--kind", "check", "--json"]).ok().json(),
        serde_json::json!([])
    );
    let human = lbc(&cfg, &["runs"]).ok().stdout;
    assert!(human.contains("2 runs, 1 failed"), "{human}");
    // Other operations are runs too.
    lbc(&cfg, &["check"]).ok();
    lbc(&cfg, &["verify", "--restore-test", "--source", "docs"]).ok();
    let kinds: Vec<String> = lbc(&cfg, &["runs", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"check".to_string()) && kinds.contains(&"restore_test".to_string()), "{kinds:?}");
    // `logs` shows the failure's message.
    let logs = lbc(&cfg, &["logs", "--level", "error"]).ok().stdout;
    assert!(logs.contains("backup status") && logs.contains("error"), "{logs}");
    assert!(!logs.contains("backup docs"), "level filter: {logs}");
    // `health`: the failed last run makes `status` a warning although nothing else is wrong…
    let h = lbc(&cfg, &["health", "--json", "--source", "status"]).json();
    let text = h.to_string();
    assert!(text.contains("last backup run failed"), "{h:#}");
    // Health reads the newest runs only (16 at first), until each source has a finished one:
    // once both sources ran again, the first two runs' records are not read (damaged, they would
    // fail the read).
    for _ in 0..16 {
        lbc(&cfg, &["backup", "docs", "-q"]).ok();
    }
    lbc(&cfg, &["backup", "status", "-q"]).code(1);
    let runs_dir = tmp.path().join("repo/lifeboat/runs");
    let mut names: Vec<String> =
        fs::read_dir(&runs_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    // A run's id is its start time and a random tag: `20261205T084546.261672Z-d4996057`.
    let ids: Vec<String> = names.iter().map(|n| n[..n.find("Z-").unwrap() + 10].to_string()).collect();
    let mut oldest = ids.clone();
    oldest.dedup();
    oldest.truncate(2);
    for n in names.iter().filter(|n| oldest.iter().any(|id| n.starts_with(id.as_str()))) {
        fs::write(runs_dir.join(n), b"damaged").unwrap();
    }
    let listed = lbc(&cfg, &["runs", "--json"]);
    assert_ne!(listed.code, 0, "the whole history is read by `runs`: {listed:?}");
    listed.one_error_line();
    let h = lbc(&cfg, &["health", "--json"]);
    assert!((1..=2).contains(&h.code), "health grades the sources: {h:?}");
    let h = h.json();
    let text = h.to_string();
    assert!(text.contains("last backup run failed"), "{h:#}");
    let rows = h["sources"].as_array().unwrap();
    let docs = rows.iter().find(|r| r["name"] == "docs").unwrap();
    assert!(!docs.to_string().contains("last backup run failed"), "{docs:#}");
}

#[test]
fn a_killed_backup_shows_as_a_failed_run() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).unwrap();
    // Enough data that the backup is still running when it is killed.
    for i in 0..40 {
        write_random(&data.join(format!("f{i}")), 4 << 20, i);
    }
    let cfg = config(tmp.path(), &data);
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let mut child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .arg("--config")
        .arg(&cfg)
        .args(["backup", "docs"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the start record, then kill -9.
    let runs_dir = tmp.path().join("repo/lifeboat/runs");
    let started = wait_for(Duration::from_secs(20), || {
        fs::read_dir(&runs_dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".start.json"))
            .map(|_| ())
    });
    assert!(started.is_some(), "no start record");
    child.kill().unwrap();
    child.wait().unwrap();
    let runs = lbc(&cfg, &["runs", "--json"]).ok().json();
    let r = &runs.as_array().unwrap()[0];
    if r["outcome"] == "ok" {
        eprintln!("the backup finished before it could be killed; nothing to check");
        return;
    }
    assert_eq!(r["outcome"], "failed", "{runs:#}");
    assert!(r["error"].as_str().unwrap().contains("process ended"), "{r:#}");
    lbc(&cfg, &["unlock"]).ok();
    lbc(&cfg, &["check"]).ok();
}
