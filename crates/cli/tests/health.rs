//! `lifeboat health` end to end: per config source, the newest backup against its RPO, the
//! newest verification and drill records (written by `lifeboat verify` and `lifeboat drill`, and,
//! for outcomes a healthy test setup cannot produce — failed, old, slow — written directly with
//! the same library calls), graded ok / warning / critical with exit codes 0 / 1 / 2, and 3 when
//! the health cannot be determined.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use lifeboat_format::Id;
use lifeboat_ops::records::{self, DrillSource, DrillSummary, Outcome, Verification};
use scratch::*;

/// A config with one files source per `(name, rpo, rto)`, each over its own small directory.
fn setup(dir: &Path, sources: &[(&str, Option<&str>, Option<&str>)]) -> PathBuf {
    // The free space of the machine's disk is not graded here (runbook.rs tests the threshold):
    // with the default 10 %, `health` would warn on a nearly full CI disk.
    let mut text =
        format!("[repository]\nurl = \"{}\"\n\n[jobs]\nstorage_low_percent = 0\n", dir.join("repo").display());
    for (name, rpo, rto) in sources {
        let data = dir.join(name);
        fs::create_dir_all(&data).unwrap();
        fs::write(data.join("f.txt"), name.as_bytes()).unwrap();
        text.push_str(&format!(
            "\n[[source]]\nname = \"{name}\"\nkind = \"files\"\npaths = [\"{}\"]\n",
            data.display()
        ));
        if let Some(r) = rpo {
            text.push_str(&format!("rpo = \"{r}\"\n"));
        }
        if let Some(r) = rto {
            text.push_str(&format!("rto = \"{r}\"\n"));
        }
    }
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, text).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    cfg
}

/// Back up `source`; returns its snapshot id.
fn backup(cfg: &Path, source: &str) -> Id {
    let out = lbc(cfg, &["backup", source, "--json"]).ok().json();
    out[0]["snapshot_id"].as_str().unwrap().parse().unwrap()
}

fn verified(dir: &Path, source: &str, snapshot: Id, outcome: Outcome, days_ago: i64) {
    let v = Verification {
        time: chrono::Utc::now() - chrono::Duration::days(days_ago),
        host: "test".into(),
        snapshot,
        source: Some(source.into()),
        checks: vec!["read-data".into()],
        outcome,
        findings: if outcome == Outcome::Ok { vec![] } else { vec!["blob 1a2b3c4d: hash mismatch".into()] },
        duration_seconds: 0.5,
        verify_command: None,
    };
    records::record_verification(&open_repo(&dir.join("repo")), &v).unwrap();
}

fn drilled(dir: &Path, source: &str, snapshot: Id, outcome: Outcome, took: f64, target: f64) {
    let d = DrillSummary {
        time: chrono::Utc::now(),
        host: "test".into(),
        outcome,
        sources: vec![DrillSource {
            source: source.into(),
            snapshot,
            outcome,
            rto_seconds: took,
            rto_target_seconds: Some(target),
            findings: vec![],
        }],
        report: None,
    };
    records::record_drill(&open_repo(&dir.join("repo")), &d).unwrap();
}

fn health(cfg: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["health"];
    args.extend_from_slice(extra);
    lbc(cfg, &args)
}

fn source<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()
}

#[test]
fn health_is_critical_past_the_rpo_or_without_any_backup() {
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("ledger", Some("1s"), None), ("proofs", Some("1h"), None)]);
    let id = backup(&cfg, "ledger");
    verified(tmp.path(), "ledger", id, Outcome::Ok, 0);
    std::thread::sleep(std::time::Duration::from_secs(2));

    let r = health(&cfg, &["--json"]).code(2);
    let j = r.json();
    assert_eq!((j["status"].as_str(), j["exit_code"].as_i64()), (Some("critical"), Some(2)), "{j:#}");
    let ledger = source(&j, "ledger");
    assert_eq!(ledger["status"], "critical", "{j:#}");
    assert_eq!(ledger["backup"]["rpo_seconds"], 1);
    assert!(ledger["backup"]["age_seconds"].as_i64().unwrap() >= 2, "{j:#}");
    assert!(ledger["backup"]["message"].as_str().unwrap().contains("is older than the RPO of 1s"), "{j:#}");
    assert_eq!(ledger["verification"]["status"], "ok", "{j:#}");
    let proofs = source(&j, "proofs");
    assert_eq!(
        (proofs["status"].as_str(), proofs["backup"]["message"].as_str()),
        (Some("critical"), Some("never backed up"))
    );

    // The table: one line per source, the repository's free space, then the overall line.
    let t = health(&cfg, &[]).code(2).stdout;
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 5, "{t}");
    assert!(lines[3].starts_with("free space: ") && lines[3].contains("ok, threshold 0 %"), "{t}");
    assert!(
        lines[1].starts_with("ledger") && lines[1].contains("CRITICAL") && lines[1].contains("older than the RPO"),
        "{t}"
    );
    assert!(lines[2].starts_with("proofs") && lines[2].contains("never backed up"), "{t}");
    assert_eq!(lines[4], "overall: CRITICAL (2 critical, 0 warning, 0 ok)");

    // --source narrows the report; the exit code follows the selection.
    backup(&cfg, "proofs");
    let only = health(&cfg, &["--source", "proofs", "--json"]).code(1).json();
    assert_eq!(only["sources"].as_array().unwrap().len(), 1);
    assert_eq!(source(&only, "proofs")["verification"]["message"], "never verified");
}

#[test]
fn health_is_ok_right_after_a_verified_backup_with_a_generous_rpo() {
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("ledger", Some("1h"), Some("30m")), ("models", None, None)]);
    backup(&cfg, "ledger");
    backup(&cfg, "models");
    // Before any proof: backed up, but never verified.
    health(&cfg, &[]).code(1);
    // `lifeboat verify` and `lifeboat drill` write the records health reads.
    lbc(&cfg, &["verify", "--restore-test"]).ok();
    let reports = tmp.path().join("drill");
    lbc(&cfg, &["drill", "--source", "ledger", "--report-dir", reports.to_str().unwrap()]).ok();
    let j = health(&cfg, &["--json"]).code(0).json();
    assert_eq!((j["status"].as_str(), j["exit_code"].as_i64()), (Some("ok"), Some(0)), "{j:#}");
    let ledger = source(&j, "ledger");
    assert!(ledger["backup"]["message"].as_str().unwrap().ends_with("(RPO 1h)"), "{j:#}");
    assert_eq!(ledger["verification"]["outcome"], "ok", "{j:#}");
    assert_eq!(
        (ledger["drill"]["outcome"].as_str(), ledger["drill"]["rto_target_seconds"].as_f64()),
        (Some("ok"), Some(1800.0)),
        "{j:#}"
    );
    assert!(ledger["drill"]["message"].as_str().unwrap().ends_with("(RTO 30m)"), "{j:#}");
    assert_eq!(ledger["problems"], serde_json::json!([]));
    let models = source(&j, "models");
    assert!(models["backup"]["message"].as_str().unwrap().ends_with("(no RPO set)"), "{j:#}");
    assert_eq!(models["drill"]["message"], "never drilled", "informational only: {j:#}");
    let t = health(&cfg, &[]).code(0).stdout;
    assert!(t.ends_with("overall: OK (0 critical, 0 warning, 2 ok)\n"), "{t}");
}

#[test]
fn health_warns_about_missing_or_old_proofs_and_fails_on_failed_ones() {
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("ledger", Some("1h"), Some("30s"))]);
    let id = backup(&cfg, "ledger");
    // Never verified: warning.
    let j = health(&cfg, &["--json"]).code(1).json();
    assert_eq!(source(&j, "ledger")["problems"], serde_json::json!(["never verified"]), "{j:#}");
    // Verified 40 days ago: warning (older than 30 days), unless the limit is raised.
    verified(tmp.path(), "ledger", id, Outcome::Ok, 40);
    let j = health(&cfg, &["--json"]).code(1).json();
    assert!(source(&j, "ledger")["problems"][0].as_str().unwrap().contains("is older than 30d"), "{j:#}");
    health(&cfg, &["--max-verification-age", "60d"]).code(0);
    // A drill slower than the RTO: warning.
    drilled(tmp.path(), "ledger", id, Outcome::Ok, 95.0, 30.0);
    let j = health(&cfg, &["--json", "--max-verification-age", "60d"]).code(1).json();
    assert!(
        source(&j, "ledger")["drill"]["message"].as_str().unwrap().contains("took 1m 35s, over the RTO of 30s"),
        "{j:#}"
    );
    // The newest verification failed: critical, with the finding.
    verified(tmp.path(), "ledger", id, Outcome::Failed, 0);
    let t = health(&cfg, &["--max-verification-age", "60d"]).code(2).stdout;
    assert!(t.contains("failed: blob 1a2b3c4d: hash mismatch") && t.contains("over the RTO"), "{t}");
}

#[test]
fn health_is_unknown_when_it_cannot_be_determined() {
    let tmp = tempdir();
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"a\"\nkind = \"files\"\npaths = [\"/x\"]\n",
            tmp.path().join("missing").display()
        ),
    )
    .unwrap();
    let r = health(&cfg, &[]).code(3);
    assert!(r.one_error_line().starts_with("lifeboat: health unknown: "), "{}", r.stderr);
    let r = health(&cfg, &["--source", "nope"]).code(3);
    assert!(r.one_error_line().contains("no source named \"nope\""), "{}", r.stderr);
    let r = run(bare().current_dir(tmp.path().join("..")).env("LIFEBOAT_PASSWORD", PASSWORD).args(["health"]));
    // Without a config file (unless the parent directory happens to hold one) there is nothing to grade.
    if !tmp.path().join("../lifeboat.toml").exists() {
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stderr.contains("no config file"), "{}", r.stderr);
    }
}
