//! `lifeboat schedule`: next runs per job, and the same jobs as systemd units (checked by
//! `systemd-analyze verify`), one cron file (every line's schedule parses), and Kubernetes
//! CronJobs or a daemon Deployment (validated offline by `kubernetes-validate --strict`).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn config(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("lifeboat.toml");
    let body = format!(
        "[repository]\nurl = \"{}\"\npassword_file = \"/etc/lifeboat/password\"\n\n[jobs]\napply_retention = \"@daily\"\nverify = {{ schedule = \"30 4 * * 1-5\", restore_test = true }}\n\n[[source]]\nname = \"orders-db\"\nkind = \"files\"\npath = \"/srv/orders\"\nschedule = \"*/15 * * * *\"\n\n[[source]]\nname = \"ledger\"\nkind = \"files\"\npath = \"/srv/ledger\"\nschedule = \"every 7m\"\n",
        s(&dir.join("repo"))
    );
    fs::write(&cfg, body).unwrap();
    cfg
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name).arg("--help").output().is_ok_and(|o| o.status.success() || !o.stdout.is_empty());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{name} must be installed in CI");
        eprintln!("skipping: {name} is not installed");
    }
    ok
}

#[test]
fn schedule_show_lists_every_job_with_its_next_run() {
    let tmp = tempdir();
    let cfg = config(tmp.path());
    let rows = run(bare().arg("--config").arg(&cfg).args(["schedule", "show", "--json"])).ok().json();
    let jobs: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["job"].as_str().unwrap()).collect();
    assert_eq!(jobs, ["backup:orders-db", "backup:ledger", "apply_retention", "verify"]);
    for r in rows.as_array().unwrap() {
        let next: chrono::DateTime<chrono::Utc> = r["next"].as_str().unwrap().parse().unwrap();
        assert!(next > chrono::Utc::now(), "{r:#}");
    }
    assert_eq!(rows[0]["command"][3], "backup");
    let human = run(bare().arg("--config").arg(&cfg).args(["schedule"])).ok().stdout;
    assert!(human.contains("backup:orders-db") && human.contains("next "), "{human}");
}

#[test]
fn systemd_units_pass_systemd_analyze_and_install_uninstall_round_trip() {
    if !tool("systemd-analyze") {
        return;
    }
    let tmp = tempdir();
    let cfg = config(tmp.path());
    let dir = tmp.path().join("units");
    let bin = env!("CARGO_BIN_EXE_lifeboat");
    let args = ["schedule", "install", "--format", "systemd", "--dir", s(&dir), "--binary", bin];
    run(bare().arg("--config").arg(&cfg).args(args)).ok();
    let mut units: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    units.sort();
    assert_eq!(units.len(), 8, "{units:?}");
    assert!(units.contains(&"lifeboat-backup-orders-db.timer".to_string()), "{units:?}");
    let timer = fs::read_to_string(dir.join("lifeboat-verify.timer")).unwrap();
    assert!(timer.contains("OnCalendar=Mon..Fri *-*-* 4:30:00"), "{timer}");
    let every = fs::read_to_string(dir.join("lifeboat-backup-ledger.timer")).unwrap();
    assert!(every.contains("OnUnitActiveSec=420s"), "{every}");
    let paths: Vec<String> = units.iter().map(|u| s(&dir.join(u)).to_string()).collect();
    let out = Command::new("systemd-analyze").arg("verify").arg("--man=no").args(&paths).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && !text.contains("lifeboat-"), "systemd-analyze verify:\n{text}");
    let r = run(bare().arg("--config").arg(&cfg).args(["schedule", "uninstall", "--dir", s(&dir)])).ok();
    assert_eq!(r.stdout.lines().count(), 8);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn cron_file_lines_parse_and_intervals_cron_cannot_say_are_explained() {
    let tmp = tempdir();
    let cfg = config(tmp.path());
    let text = run(bare().arg("--config").arg(&cfg).args(["schedule", "print", "--format", "cron"])).ok().stdout;
    // The spelling is the same command.
    assert_eq!(run(bare().arg("--config").arg(&cfg).args(["schedule", "print", "--cron"])).ok().stdout, text);
    let k = run(bare().arg("--config").arg(&cfg).args(["schedule", "print", "--kubernetes"])).ok().stdout;
    assert_eq!(k.matches("kind: CronJob").count(), 3, "{k}");
    let mut jobs = 0;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.contains('=') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let expr = f[..5].join(" ");
        expr.parse::<lifeboat_service::config::Schedule>().unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(f[5], "root", "{line}");
        assert_eq!(f[6], "flock", "{line}");
        jobs += 1;
    }
    assert_eq!(jobs, 3, "{text}");
    assert!(text.contains("# backup:ledger: schedule \"every 7m\" has no cron form"), "{text}");
}

#[test]
fn kubernetes_cronjobs_and_the_daemon_deployment_validate_offline() {
    if !tool("kubernetes-validate") {
        return;
    }
    let tmp = tempdir();
    let cfg = config(tmp.path());
    for format in ["kubernetes", "kubernetes-daemon"] {
        let dir = tmp.path().join(format);
        let args = ["schedule", "install", "--format", format, "--dir", s(&dir)];
        run(bare().arg("--config").arg(&cfg).args(args)).ok();
        let yaml = dir.join("lifeboat.yaml");
        let text = fs::read_to_string(&yaml).unwrap();
        // The password reaches the pods only as a Secret reference, never as a literal value.
        assert!(text.contains("secretKeyRef") && !text.contains("value: "), "{text}");
        if format == "kubernetes" {
            assert_eq!(text.matches("kind: CronJob").count(), 3, "{text}");
            assert!(text.contains("concurrencyPolicy: Forbid") && text.contains("secretKeyRef"), "{text}");
        } else {
            assert!(text.contains("kind: Deployment") && text.contains("\"daemon\""), "{text}");
        }
        let out = Command::new("kubernetes-validate").args(["--strict", "--quiet"]).arg(&yaml).output().unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{format}: kubernetes-validate failed:\n{report}\n{text}");
    }
}
