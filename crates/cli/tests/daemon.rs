//! `lifeboat daemon` with one-second schedules against a real repository, a real HTTP webhook
//! receiver and the daemon's own HTTP server: runs start on time, a failing source is recorded
//! and alerted once (signed), overlapping runs are skipped and recorded, `/metrics` shows the
//! state, SIGHUP with a broken config keeps the old one, SIGTERM ends cleanly (exit 0, no lock,
//! a repository that checks clean), and a restart runs a missed slot once.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const SECRET: &str = "hook-secret-9f2";

/// Requests a local webhook receiver got: (headers, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

fn receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let (mut headers, mut len) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push_str(&line);
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).ok();
            g.lock().unwrap().push((headers, String::from_utf8_lossy(&body).into_owned()));
            let mut s = stream;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").ok();
        }
    });
    (port, got)
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn post(port: u16, path: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

fn write_config(path: &Path, repo: &Path, data: &Path, hook: u16, broken: bool) {
    let body = format!(
        r#"[repository]
url = "{repo}"

[jobs]
max_concurrent = 3
grace = "20s"

[[source]]
name = "docs"
kind = "files"
path = "{data}"
schedule = "every 1s"
rpo = "1h"

[[source]]
name = "bad"
kind = "command"
command = ["sh", "-c", "echo no; exit 7"]
schedule = "every 1s"

[[source]]
name = "slow"
kind = "command"
command = ["sh", "-c", "sleep 3; echo done"]
schedule = "every 1s"

[[notify]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{hook}/alerts"
secret = "${{TEST_HOOK_SECRET}}"
events = ["backup_failed", "config_invalid"]
{extra}"#,
        repo = s(repo),
        data = s(data),
        extra = if broken {
            "\n[[source]]\nname = \"oops\"\nkind = \"files\"\nschedule = \"every blue moon\"\npath = \"/x\"\n"
        } else {
            ""
        }
    );
    fs::write(path, body).unwrap();
}

fn daemon(cfg: &Path, log: &Path) -> Child {
    bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("TEST_HOOK_SECRET", SECRET)
        .arg("--config")
        .arg(cfg)
        .args(["daemon", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn port_of(log: &Path) -> u16 {
    wait_for(Duration::from_secs(20), || {
        let text = fs::read_to_string(log).ok()?;
        let line = text.lines().find(|l| l.contains("server_listening"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    })
    .unwrap_or_else(|| panic!("no server_listening line:\n{}", fs::read_to_string(log).unwrap_or_default()))
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

fn runs(cfg: &Path) -> Vec<serde_json::Value> {
    lbc(cfg, &["runs", "--json"]).ok().json().as_array().unwrap().clone()
}

#[test]
fn daemon_runs_schedules_records_alerts_serves_metrics_reloads_and_stops_cleanly() {
    let tmp = tempdir();
    let (repo, data) = (tmp.path().join("repo"), tmp.path().join("data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let (hook, got) = receiver();
    let cfg = tmp.path().join("lifeboat.toml");
    write_config(&cfg, &repo, &data, hook, false);
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let log = tmp.path().join("daemon.log");
    let mut child = daemon(&cfg, &log);
    let port = port_of(&log);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".into()));

    // Runs start on time: within a few seconds docs has succeeded twice and bad failed.
    let enough = wait_for(Duration::from_secs(30), || {
        let r = runs(&cfg);
        let n = |src: &str, outcome: &str| {
            r.iter().filter(|x| x["source"] == src && x["outcome"] == outcome && x["trigger"] == "daemon").count()
        };
        (n("docs", "ok") >= 2 && n("bad", "failed") >= 2 && n("slow", "skipped") >= 1).then_some(r)
    });
    let r = enough.unwrap_or_else(|| panic!("runs: {:#?}\nlog:\n{}", runs(&cfg), fs::read_to_string(&log).unwrap()));
    // Never two runs of one job at once: `slow` (3 s every 1 s) has skipped runs, recorded.
    let slow_running = r.iter().filter(|x| x["source"] == "slow" && x["outcome"] == "running").count();
    assert!(slow_running <= 1, "{r:#?}");

    // /metrics from memory: docs ok, bad failed, runs counted, next runs published.
    let (code, m) = get(port, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "lifeboat_last_run_success{source=\"docs\"} 1",
        "lifeboat_last_run_success{source=\"bad\"} 0",
        "lifeboat_rpo_breached{source=\"docs\"} 0",
        "lifeboat_up 1",
        "lifeboat_runs_total{kind=\"backup\",outcome=\"failed\"}",
        "lifeboat_job_next_run_timestamp_seconds{job=\"backup:docs\"}",
    ] {
        assert!(m.contains(want), "{want} missing from:\n{m}");
    }
    // "Back up now" through the API: a known source is queued, an unknown one is refused.
    assert_eq!(post(port, "/api/v1/sources/docs/backup"), 202);
    assert_eq!(post(port, "/api/v1/sources/nope/backup"), 404);
    let (code, api) = get(port, "/api/v1/runs?source=docs");
    assert_eq!(code, 200, "{api}");
    assert!(serde_json::from_str::<serde_json::Value>(&api).unwrap().as_array().unwrap().len() >= 2);

    // backup_failed reached the webhook once (repeats are not re-sent), signed.
    let first = wait_for(Duration::from_secs(10), || (!got.lock().unwrap().is_empty()).then_some(()));
    assert!(first.is_some(), "no webhook request");
    std::thread::sleep(Duration::from_secs(2));
    let alerts: Vec<(String, String)> = got.lock().unwrap().clone();
    let failed: Vec<&(String, String)> = alerts.iter().filter(|(_, b)| b.contains("\"backup_failed\"")).collect();
    assert_eq!(failed.len(), 1, "{alerts:#?}");
    let (headers, body) = failed[0];
    let sig = lifeboat_daemon::notify::sign(SECRET.as_bytes(), body.as_bytes());
    assert!(headers.contains(&format!("x-lifeboat-signature: sha256={sig}")), "{headers}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["source"], "bad");
    assert!(!fs::read_to_string(&log).unwrap().contains(&format!("127.0.0.1:{hook}")), "the webhook URL is a secret");

    // SIGHUP with a broken config: the daemon keeps running on the old one and alerts.
    write_config(&cfg, &repo, &data, hook, true);
    signal(&child, "-HUP");
    let refused = wait_for(Duration::from_secs(10), || {
        fs::read_to_string(&log).ok().filter(|l| l.contains("config_invalid")).map(|_| ())
    });
    assert!(refused.is_some(), "{}", fs::read_to_string(&log).unwrap());
    assert_eq!(get(port, "/healthz").0, 200);
    assert!(get(port, "/metrics").1.contains("lifeboat_config_valid 0"));
    assert!(wait_for(Duration::from_secs(10), || got
        .lock()
        .unwrap()
        .iter()
        .any(|(_, b)| b.contains("config_invalid"))
        .then_some(()))
    .is_some());
    write_config(&cfg, &repo, &data, hook, false);
    signal(&child, "-HUP");
    assert!(wait_for(Duration::from_secs(10), || get(port, "/metrics")
        .1
        .contains("lifeboat_config_valid 1")
        .then_some(()))
    .is_some());
    // A source added by a reload is known to the API at once (it answered 404 before).
    assert_eq!(post(port, "/api/v1/sources/added/backup"), 404);
    let mut text = fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[[source]]\nname = \"added\"\nkind = \"files\"\npath = \"{}\"\n", s(&data)));
    fs::write(&cfg, text).unwrap();
    signal(&child, "-HUP");
    let known = wait_for(Duration::from_secs(10), || (post(port, "/api/v1/sources/added/backup") == 202).then_some(()));
    assert!(known.is_some(), "{}", fs::read_to_string(&log).unwrap());

    // SIGTERM: running work finishes within the grace period, exit 0, no lock, clean check.
    signal(&child, "-TERM");
    let status = wait_for(Duration::from_secs(30), || child.try_wait().unwrap()).expect("daemon did not stop");
    assert_eq!(status.code(), Some(0), "{}", fs::read_to_string(&log).unwrap());
    let locks = repo.join("locks");
    assert!(fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0) == 0, "a lock was left behind");
    lbc(&cfg, &["check"]).ok();
    let still_running: Vec<_> = runs(&cfg).into_iter().filter(|x| x["outcome"] == "running").collect();
    assert!(still_running.is_empty(), "{still_running:#?}");
    let _ = child.kill();
}

#[test]
fn a_restart_runs_a_missed_slot_once_and_a_killed_daemons_run_is_recorded_failed() {
    let tmp = tempdir();
    let (repo, data) = (tmp.path().join("repo"), tmp.path().join("data"));
    fs::create_dir_all(&data).unwrap();
    let cfg = tmp.path().join("lifeboat.toml");
    // A backup that takes two seconds, so that the kill lands in the middle of it.
    fs::write(
        &cfg,
        format!("[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"docs\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 2; echo state\"]\nschedule = \"@hourly\"\n", s(&repo)),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    // Never backed up: the daemon runs it once at start, then waits for the next hour.
    let log = tmp.path().join("d1.log");
    let mut child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .arg("--config")
        .arg(&cfg)
        .arg("daemon")
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Kill -9 while its first backup runs.
    let started = wait_for(Duration::from_secs(20), || {
        let mut entries = fs::read_dir(repo.join("lifeboat/runs")).ok()?.flatten();
        entries.find(|e| e.file_name().to_string_lossy().ends_with(".start.json")).map(|_| ())
    });
    assert!(started.is_some(), "{}", fs::read_to_string(&log).unwrap());
    child.kill().unwrap();
    child.wait().unwrap();
    lbc(&cfg, &["unlock"]).ok();
    // The next start records the dead run as failed and runs the missed backup once.
    let log2 = tmp.path().join("d2.log");
    let mut child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .arg("--config")
        .arg(&cfg)
        .arg("daemon")
        .stderr(fs::File::create(&log2).unwrap())
        .spawn()
        .unwrap();
    let done = wait_for(Duration::from_secs(60), || {
        let r = runs(&cfg);
        r.iter().any(|x| x["outcome"] == "ok").then_some(r)
    });
    signal(&child, "-TERM");
    let status = wait_for(Duration::from_secs(30), || child.try_wait().unwrap()).expect("daemon did not stop");
    assert_eq!(status.code(), Some(0));
    let r = done.unwrap_or_else(|| panic!("{}", fs::read_to_string(&log2).unwrap()));
    let backups: Vec<_> = r.iter().filter(|x| x["kind"] == "backup").collect();
    assert!(
        backups.iter().any(|x| x["outcome"] == "failed" && x["error"].as_str().unwrap().contains("process ended")),
        "{r:#?}"
    );
    assert!(fs::read_to_string(&log2).unwrap().contains("run_died"));
    assert_eq!(
        backups.iter().filter(|x| x["outcome"] == "ok").count(),
        1,
        "one catch-up run, not one per missed slot: {r:#?}"
    );
    lbc(&cfg, &["check"]).ok();
}

#[test]
fn storage_low_is_alerted_once_and_free_space_is_a_metric() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let (hook, got) = receiver();
    let cfg = tmp.path().join("lifeboat.toml");
    // 100 %: every file system is "low", so the alert must come (once).
    let body = format!(
        "[repository]\nurl = \"{}\"\n\n[jobs]\nstorage_low_percent = 100\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\n\n[[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/\"\nevents = [\"storage_low\"]\n",
        s(&repo),
        s(tmp.path())
    );
    fs::write(&cfg, body).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let log = tmp.path().join("daemon.log");
    let mut child = daemon(&cfg, &log);
    let port = port_of(&log);
    let alert = wait_for(Duration::from_secs(20), || {
        got.lock().unwrap().iter().find(|(_, b)| b.contains("\"storage_low\"")).map(|(_, b)| b.clone())
    });
    let body = alert.unwrap_or_else(|| panic!("no storage_low alert:\n{}", fs::read_to_string(&log).unwrap()));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["details"]["threshold_percent"], 100, "{v:#}");
    assert!(v["details"]["free_bytes"].as_u64().unwrap() > 0);
    let (_, m) = get(port, "/metrics");
    assert!(m.contains("lifeboat_repository_free_bytes "), "{m}");
    signal(&child, "-TERM");
    let status = wait_for(Duration::from_secs(30), || child.try_wait().unwrap()).expect("daemon did not stop");
    assert_eq!(status.code(), Some(0));
    assert_eq!(got.lock().unwrap().iter().filter(|(_, b)| b.contains("\"storage_low\"")).count(), 1);
    let _ = child.kill();
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// A self-signed certificate for 127.0.0.1 made by openssl: (cert.pem, key.pem).
fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// An HTTPS client trusting only `ca`.
fn tls_client(ca: &Path) -> reqwest::blocking::Client {
    let ca = reqwest::Certificate::from_pem(&fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[test]
fn tls_serves_https_only_picks_up_a_renewed_certificate_and_refuses_a_bad_pair() {
    let tmp = tempdir();
    let (repo, data) = (tmp.path().join("repo"), tmp.path().join("data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let (first, first_key) = self_signed(tmp.path(), "first");
    let (second, second_key) = self_signed(tmp.path(), "second");
    let (cert, key) = (tmp.path().join("server.crt"), tmp.path().join("server.key"));
    fs::copy(&first, &cert).unwrap();
    fs::copy(&first_key, &key).unwrap();
    let cfg = tmp.path().join("lifeboat.toml");
    let head = format!(
        "[repository]\nurl = \"{}\"\n\n[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"{}\"\n",
        s(&repo),
        s(&data)
    );
    let server = |cert: &Path, key: Option<&Path>| {
        let key = key.map(|k| format!("tls_key = \"{}\"\n", s(k))).unwrap_or_default();
        format!("{head}\n[server]\ntls_cert = \"{}\"\n{key}", s(cert))
    };
    fs::write(&cfg, server(&cert, Some(&key))).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();

    let log = tmp.path().join("daemon.log");
    let mut d = daemon(&cfg, &log);
    let port = port_of(&log);
    assert!(read(&log).contains("server_listening scheme=https"), "{}", read(&log));
    let url = format!("https://127.0.0.1:{port}");
    // HTTPS with the served certificate: health, metrics and the API answer.
    let r = tls_client(&first).get(format!("{url}/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok\n");
    let metrics = tls_client(&first).get(format!("{url}/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("lifeboat_up 1"), "{metrics}");
    // A client that trusts only the other certificate is refused by its own TLS check.
    assert!(tls_client(&second).get(format!("{url}/healthz")).send().is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"), "plain HTTP was served: {out:?}");

    // A renewed certificate is served without a restart; a broken renewal keeps the last good one.
    fs::copy(&second, &cert).unwrap();
    fs::copy(&second_key, &key).unwrap();
    let renewed = wait_for(Duration::from_secs(10), || {
        tls_client(&second).get(format!("{url}/healthz")).send().ok().filter(|r| r.status() == 200)
    });
    assert!(renewed.is_some(), "the renewed certificate was not served\n{}", read(&log));
    fs::write(&cert, "not a certificate\n").unwrap();
    let r = tls_client(&second).get(format!("{url}/healthz")).send().unwrap();
    assert_eq!(r.status(), 200, "a broken renewal replaced the good certificate");
    signal(&d, "-TERM");
    assert_eq!(d.wait().unwrap().code(), Some(0), "{}", read(&log));

    // Bad pairs fail the start with one line naming the problem.
    fs::copy(&second, &cert).unwrap();
    for (text, want) in [
        (server(&cert, None), "tls_cert and tls_key go together"),
        (server(&cert, Some(&first_key)), "does not belong to the certificate"),
        (server(&tmp.path().join("missing.crt"), Some(&key)), "missing.crt"),
        (server(&first_key, Some(&key)), "no PEM certificate"),
    ] {
        fs::write(&cfg, text).unwrap();
        let out = lbc(&cfg, &["daemon", "--listen", "127.0.0.1:0"]);
        assert_ne!(out.code, 0, "{out:#?}");
        let err: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("lifeboat:")).collect();
        assert_eq!(err.len(), 1, "{out:#?}");
        assert!(err[0].contains(want), "want {want:?}: {out:#?}");
        assert!(!out.stderr.contains("panicked"), "{out:#?}");
    }
}

#[test]
fn the_daemon_runs_probes_on_their_interval_exports_them_and_alerts_on_changes() {
    let tmp = tempdir();
    let (repo, level) = (tmp.path().join("repo"), tmp.path().join("level"));
    fs::write(&level, "100\n").unwrap();
    let (hook, got) = receiver();
    let cfg = tmp.path().join("lifeboat.toml");
    fs::write(
        &cfg,
        format!(
            "[repository]\nurl = \"{}\"\n\n[[probe]]\nname = \"level\"\ncommand = [\"cat\", \"{}\"]\n\
             warning_below = 50\ncritical_below = 10\ninterval = \"1s\"\n\n[[notify]]\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{hook}/alerts\"\nevents = [\"probe_warning\", \"probe_critical\", \"probe_recovered\"]\n",
            s(&repo),
            s(&level)
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let log = tmp.path().join("daemon.log");
    let mut d = daemon(&cfg, &log);
    let port = port_of(&log);
    let metric = |want: &str| {
        wait_for(Duration::from_secs(15), || get(port, "/metrics").1.contains(want).then_some(())).is_some()
    };
    assert!(metric("lifeboat_probe_value{probe=\"level\"} 100.0"), "{}", read(&log));
    assert!(metric("lifeboat_probe_status{probe=\"level\"} 0"), "{}", read(&log));
    let events = || -> Vec<String> {
        got.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_str::<serde_json::Value>(b).unwrap()["event"].as_str().unwrap().to_string())
            .collect()
    };
    fs::write(&level, "5\n").unwrap();
    assert!(metric("lifeboat_probe_status{probe=\"level\"} 2"), "{}", read(&log));
    assert!(
        wait_for(Duration::from_secs(10), || events().contains(&"probe_critical".to_string()).then_some(())).is_some()
    );
    fs::write(&level, "100\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || events().contains(&"probe_recovered".to_string()).then_some(())).is_some()
    );
    // Once per change: a critical level seen for several seconds alerted once.
    assert_eq!(events(), ["probe_critical", "probe_recovered"], "{}", read(&log));
    signal(&d, "-TERM");
    assert_eq!(d.wait().unwrap().code(), Some(0));
    // The samples are in the repository: their history shows the dip.
    let h = lbc(&cfg, &["--json", "probe", "history", "level"]).ok();
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let values: Vec<f64> = h["samples"].as_array().unwrap().iter().filter_map(|x| x["value"].as_f64()).collect();
    assert!(values.len() >= 3 && values.contains(&5.0) && values.contains(&100.0), "{values:?}");
}
