//! `lifeboat report`, end to end: a repository with three sources (two file sources backed up
//! with a gap longer than one's RPO, a command that fails), a verification, a drill and a probe;
//! the counts and the RPO compliance in `--json` against what the test computes from the
//! snapshots' times; the HTML page self-contained with its SVG charts, opened in headless
//! Chromium (Selenium, `tests/dashboard/browser.py report`) for the accessibility basics and a
//! screenshot (into `docs/screenshots/report.png` only with `LIFEBOAT_UPDATE_SCREENSHOTS=1`);
//! bad input (a bad `--since`, two periods, an unwritable `--html`, an unknown source) exits 2
//! with one line.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use common::*;
use scratch::*;

fn browser_up() -> bool {
    service("chromium", Command::new("chromium").arg("--version"))
        && service("chromedriver", Command::new("chromedriver").arg("--version"))
        && service("python3 with selenium", Command::new("python3").args(["-c", "import selenium"]))
}

/// Where screenshots go: the tracked `docs/screenshots` only when asked to update them.
fn screenshot_dir(scratch: &Path) -> PathBuf {
    if std::env::var("LIFEBOAT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        scratch.join("screenshots")
    }
}

fn time(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap().with_timezone(&Utc)
}

/// The share of `[from, to]` covered by `[t, t + rpo]` for each `t`, in percent: the definition
/// in docs, computed independently of the service (by seconds sampled at 1 ms steps would be
/// slow; intervals are merged instead, from the other end).
fn expected_compliance(times: &[DateTime<Utc>], rpo_s: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let rpo = chrono::Duration::seconds(rpo_s);
    let mut iv: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        times.iter().map(|t| ((*t).max(from), (*t + rpo).min(to))).filter(|(a, b)| a < b).collect();
    iv.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for (a, b) in iv {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let covered: i64 = merged.iter().map(|(a, b)| (*b - *a).num_microseconds().unwrap()).sum();
    covered as f64 / (to - from).num_microseconds().unwrap() as f64 * 100.0
}

#[test]
fn report_counts_rpo_compliance_html_and_bad_input() {
    let dir = tempdir();
    let docs = dir.path().join("docs");
    let ledger = dir.path().join("ledger");
    fs::create_dir_all(&docs).unwrap();
    fs::create_dir_all(&ledger).unwrap();
    write_random(&docs.join("a.bin"), 300_000, 1);
    write_text(&ledger.join("ledger.txt"), 200_000, "ledger");
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nrpo = \"3s\"\nrto = \"5m\"\n\n\
         [[source]]\nname = \"ledger\"\nkind = \"files\"\npaths = [\"{}\"]\nrpo = \"1h\"\n\n\
         [[source]]\nname = \"flaky\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo broken >&2; exit 3\"]\nrpo = \"1h\"\n\n\
         [[probe]]\nname = \"cycles\"\ncommand = [\"echo\", \"Balance: 3_100_000_000_000 Cycles\"]\nregex = 'Balance: ([0-9_]+)'\nwarning_below = 5_000_000_000_000\nunit = \"cycles\"\n",
        docs.display(),
        ledger.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    let start = Utc::now();
    let since = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // A second before: the report's period starts at `since` (millisecond precision).
    let from = DateTime::parse_from_rfc3339(&since).unwrap().with_timezone(&Utc);

    lbc(&cfg, &["backup", "docs"]).ok();
    lbc(&cfg, &["backup", "ledger"]).ok();
    for _ in 0..2 {
        let r = lbc(&cfg, &["backup", "flaky"]);
        assert_ne!(r.code, 0, "the failing command's backup should fail:\n{}", r.stderr);
    }
    // Longer than docs' RPO of 3 s: a gap.
    std::thread::sleep(std::time::Duration::from_secs(5));
    write_random(&docs.join("b.bin"), 200_000, 2);
    lbc(&cfg, &["backup", "docs"]).ok();
    lbt(&cfg, &tmp, &["verify", "latest", "--source", "docs", "--restore-test"]).ok();
    lbt(&cfg, &tmp, &["drill", "--source", "docs", "--report-dir", s(&dir.path().join("drill"))]).ok();
    run(bare().env("LIFEBOAT_PASSWORD", PASSWORD).arg("--config").arg(&cfg).args(["probe"])).code(1);

    let html = dir.path().join("report.html");
    let r = lbc(&cfg, &["report", "--since", &since, "--html", s(&html), "--json"]).ok();
    let j = r.json();
    assert_eq!(time(&j["period"]["from"]), from, "{:#}", j["period"]);
    let to = time(&j["period"]["to"]);
    let src = |name: &str| j["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
    let (d, l, f) = (src("docs"), src("ledger"), src("flaky"));
    assert_eq!((d["backups_ok"].as_u64(), d["backups_failed"].as_u64()), (Some(2), Some(0)), "{d:#}");
    assert_eq!((l["backups_ok"].as_u64(), l["backups_failed"].as_u64()), (Some(1), Some(0)), "{l:#}");
    assert_eq!((f["backups_ok"].as_u64(), f["backups_failed"].as_u64()), (Some(0), Some(2)), "{f:#}");
    assert!(f["failures"][0]["error"].as_str().unwrap().contains("exit"), "{f:#}");
    let s_ = &j["summary"];
    assert_eq!((s_["backups_ok"].as_u64(), s_["backups_failed"].as_u64()), (Some(3), Some(2)), "{s_:#}");
    // The restore test and the drill's verified restore are both verification records.
    assert_eq!((s_["verifications_ok"].as_u64(), s_["verifications_failed"].as_u64()), (Some(2), Some(0)));
    assert_eq!(j["verifications"].as_array().unwrap().len(), 2);
    assert_eq!((s_["drills_ok"].as_u64(), s_["drills_failed"].as_u64()), (Some(1), Some(0)));
    assert_eq!(d["verifications_ok"], 2);
    assert_eq!(d["drills"][0]["outcome"], "ok");
    assert_eq!(d["drills"][0]["rto_target_seconds"], 300.0);
    assert_eq!(d["drills"][0]["within_rto"], true);

    // RPO compliance against the snapshots' own times.
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().json();
    let times_of = |name: &str| -> Vec<DateTime<Utc>> {
        snaps.as_array().unwrap().iter().filter(|x| x["lifeboat"]["name"] == name).map(|x| time(&x["time"])).collect()
    };
    let (dt, lt) = (times_of("docs"), times_of("ledger"));
    assert_eq!((dt.len(), lt.len()), (2, 1), "{snaps:#}");
    let want_docs = expected_compliance(&dt, 3, from, to);
    let want_ledger = expected_compliance(&lt, 3600, from, to);
    let got = |v: &serde_json::Value| v["rpo_compliance_percent"].as_f64().unwrap();
    assert!((got(&d) - want_docs).abs() < 0.05, "docs: {} vs expected {want_docs}", got(&d));
    assert!((got(&l) - want_ledger).abs() < 0.05, "ledger: {} vs expected {want_ledger}", got(&l));
    assert!(want_docs < 90.0 && want_ledger > 50.0, "the setup should give a gap: {want_docs} {want_ledger}");
    assert_eq!(got(&f), 0.0, "no backup at all is 0 %");
    assert!(!d["rpo_gaps"].as_array().unwrap().is_empty(), "{d:#}");
    let mean = (got(&d) + got(&l) + got(&f)) / 3.0;
    assert!((s_["rpo_compliance_percent"].as_f64().unwrap() - mean).abs() < 1e-6);

    // Sizes: first and last snapshot of docs, growth between them.
    assert_eq!(d["snapshots"], 2);
    let (first, last) = (d["first_bytes"].as_u64().unwrap(), d["last_bytes"].as_u64().unwrap());
    assert_eq!((first, last), (300_000, 500_000), "{d:#}");
    assert_eq!(d["growth_bytes"], 200_000);
    assert!(d["added_bytes"].as_u64().unwrap() > 400_000, "{d:#}");
    assert!(j["storage"]["pack_bytes"].as_u64().unwrap() > 0);
    assert!(j["storage"]["dedup_ratio"].as_f64().unwrap() > 0.0);
    // The probe's sample.
    assert_eq!(j["probes"][0]["name"], "cycles");
    assert_eq!(j["probes"][0]["samples"], 1);
    assert_eq!(j["probes"][0]["warnings"], 1);

    // The table for people.
    let t = lbc(&cfg, &["report", "--since", &since]).ok().stdout;
    assert!(t.contains("backups: 3 ok, 0 partial, 2 failed"), "{t}");
    let docs_line = t.lines().find(|l| l.starts_with("docs ")).unwrap();
    assert!(docs_line.contains("2/0") && docs_line.contains("drill ok"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("flaky ") && l.contains("0/2") && l.contains("0 %")), "{t}");

    // The HTML: self-contained, with its charts.
    let page = fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..100]);
    for external in ["src=\"http", "href=\"http", "src='http", "href='http", "<script", "<link", "@import", "url("] {
        assert!(!page.contains(external), "the page refers to something outside it: {external}");
    }
    assert!(page.matches("<svg").count() >= 4, "charts: {}", page.matches("<svg").count());
    assert!(page.contains("RPO compliance per source") && page.contains("data-source=\"flaky\""));
    if browser_up() {
        let shots = screenshot_dir(dir.path());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/browser.py");
        let url = format!("file://{}", html.display());
        let r = run(Command::new("python3").arg(&script).args(["report", "--url", &url, "--out"]).arg(&shots));
        println!("{}", r.stdout);
        assert_eq!(r.code, 0, "browser check failed:\n{}\n{}", r.stdout, r.stderr);
        assert!(shots.join("report.png").is_file());
    } else {
        println!("skipped the browser check: chromium, chromedriver or selenium missing");
    }

    // Without a config: the sources that have snapshots, no objectives.
    let repo = dir.path().join("repo");
    let j = lb(&repo, &["report", "--since", &since, "--json"]).ok().json();
    let names: Vec<&str> = j["sources"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["docs", "ledger"], "{j:#}");
    assert!(j["sources"][0]["rpo_compliance_percent"].is_null() && j["summary"]["rpo_compliance_percent"].is_null());
    assert_eq!(j["sources"][0]["backups_ok"], 2);

    // Bad input: one line, exit 2.
    for (args, what) in [
        (vec!["report", "--since", "xyz"], "--since"),
        (vec!["report", "--week", "--month"], "--month"),
        (vec!["report", "--since", "2999-01-01"], "not in the past"),
        (vec!["report", "--html", "/nonexistent-dir/r.html"], "does not exist"),
        (vec!["report", "--html", s(dir.path())], "is a directory"),
        (vec!["report", "--source", "nope"], "nope"),
    ] {
        let r = lbc(&cfg, &args).code(2);
        let line = r.one_error_line();
        assert!(line.contains(what), "{args:?}: {line}");
    }
    if !is_root() {
        let ro = dir.path().join("ro");
        fs::create_dir_all(&ro).unwrap();
        chmod(&ro, 0o555);
        let r = lbc(&cfg, &["report", "--html", s(&ro.join("r.html"))]).code(2);
        assert!(r.one_error_line().contains("--html"), "{}", r.stderr);
    }
}
