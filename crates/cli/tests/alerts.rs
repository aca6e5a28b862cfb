//! Alerting end to end, with real components: a real Prometheus scrapes `lifeboat daemon` and
//! evaluates the shipped alert rules (`deploy/prometheus/lifeboat-alerts.yml`); the notifiers
//! (slack, ntfy, healthchecks, command, webhook with an event filter) deliver to a local HTTP
//! receiver in their documented formats, without the ntfy token reaching the log; a dead webhook
//! is retried with backoff, then given up, while backups keep succeeding.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;

const NTFY_TOKEN: &str = "tk_ntfy-8c1d77e0a9secret";

// ---------------------------------------------------------------------------------------------
// A local HTTP receiver.

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    /// Header lines as sent (`Name: value\r\n` each).
    headers: String,
    body: String,
}

impl Request {
    /// A header's value (case-insensitive name).
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

type Received = Arc<Mutex<Vec<Request>>>;

/// A receiver on a free loopback port recording every request (method, path, headers, body) and
/// answering 200.
fn receiver() -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).unwrap_or(0) == 0 {
                continue;
            }
            let mut parts = first.split_whitespace();
            let (method, path) =
                (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
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
            g.lock().unwrap().push(Request {
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let mut s = stream;
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").ok();
        }
    });
    (port, got)
}

/// The requests to paths starting with `prefix`.
fn to(got: &Received, prefix: &str) -> Vec<Request> {
    got.lock().unwrap().iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
}

/// `GET path` on a loopback port: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    if write!(s, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").is_err() {
        return (0, String::new());
    }
    let mut out = String::new();
    s.read_to_string(&mut out).ok();
    let code = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// A port nothing listens on (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Processes that must not outlive the test.

/// A child process stopped on drop (also when an assertion fails): SIGTERM, up to 20 s, then
/// SIGKILL.
struct Guard {
    child: Child,
    what: &'static str,
}

impl Guard {
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill").args([sig, &self.child.id().to_string()]).status();
    }

    /// SIGTERM and wait; returns the exit code (None: killed after 20 s or by a signal).
    fn stop(&mut self) -> Option<i32> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return st.code();
        }
        self.signal("-TERM");
        match wait_for(Duration::from_secs(20), || self.child.try_wait().ok().flatten()) {
            Some(st) => st.code(),
            None => {
                eprintln!("{} did not stop after SIGTERM: killed", self.what);
                let _ = self.child.kill();
                let _ = self.child.wait();
                None
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start `lifeboat daemon --listen 127.0.0.1:0` on `cfg`, stderr to `log`.
fn daemon(cfg: &Path, log: &Path) -> Guard {
    let child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("TEST_NTFY_TOKEN", NTFY_TOKEN)
        .arg("--config")
        .arg(cfg)
        .args(["daemon", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Guard { child, what: "lifeboat daemon" }
}

/// The daemon's HTTP port, from its `server_listening` log line.
fn port_of(log: &Path) -> u16 {
    wait_for(Duration::from_secs(20), || {
        let text = fs::read_to_string(log).ok()?;
        let line = text.lines().find(|l| l.contains("server_listening"))?;
        line.rsplit(':').next()?.trim().parse().ok()
    })
    .unwrap_or_else(|| panic!("no server_listening line:\n{}", fs::read_to_string(log).unwrap_or_default()))
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// `lifeboat notify test` on `cfg`, with the ntfy token in the environment.
fn notify_test(cfg: &Path) -> Run {
    run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("TEST_NTFY_TOKEN", NTFY_TOKEN)
        .arg("--config")
        .arg(cfg)
        .args(["notify", "test"]))
}

/// A repository, a data directory with one file, and the config's head: a good files source
/// and a source whose command fails (exit 7), both every second.
fn setup(tmp: &Path) -> (PathBuf, String) {
    let (repo, data) = (tmp.join("repo"), tmp.join("data"));
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let head = format!(
        r#"[repository]
url = "{repo}"

[jobs]
max_concurrent = 3
grace = "20s"

[[source]]
name = "good"
kind = "files"
path = "{data}"
schedule = "every 1s"

[[source]]
name = "bad"
kind = "command"
command = ["sh", "-c", "exit 7"]
schedule = "every 1s"
"#,
        repo = s(&repo),
        data = s(&data),
    );
    (tmp.join("lifeboat.toml"), head)
}

fn init_repo(cfg: &Path) {
    lbc(cfg, &["init", "--kdf-n", "1024"]).ok();
}

fn runs(cfg: &Path) -> Vec<serde_json::Value> {
    lbc(cfg, &["runs", "--json"]).ok().json().as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// 1. Prometheus scrapes the daemon and the shipped alert fires.

#[test]
fn prometheus_scrapes_the_daemon_and_the_shipped_backup_failed_alert_fires() {
    let prometheus = Path::new("/usr/bin/prometheus");
    if !prometheus.exists() {
        assert!(std::env::var_os("CI").is_none(), "prometheus must be installed in CI (.ci/run installs it)");
        eprintln!("skipping: /usr/bin/prometheus is not installed");
        return;
    }
    let tmp = tempdir();
    let (cfg, head) = setup(tmp.path());
    fs::write(&cfg, &head).unwrap();
    init_repo(&cfg);
    let log = tmp.path().join("daemon.log");
    let mut d = daemon(&cfg, &log);
    let port = port_of(&log);

    // The shipped rules, with one change: LifeboatBackupFailed's `for: 1m` becomes `for: 0s`, so
    // that the test does not wait a minute for the pending alert to fire. Everything else
    // (expression, labels, annotations) is the file as shipped.
    let rules =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/lifeboat-alerts.yml"))
            .unwrap();
    let at = rules.find("- alert: LifeboatBackupFailed").expect("LifeboatBackupFailed in the shipped rules");
    let rel = rules[at..].find("for: 1m").expect("LifeboatBackupFailed has `for: 1m`");
    let next_rule = rules[at + 1..].find("- alert:").map(|i| i + at + 1).unwrap_or(rules.len());
    assert!(at + rel < next_rule, "the `for: 1m` found belongs to another rule");
    let rules = format!("{}for: 0s{}", &rules[..at + rel], &rules[at + rel + "for: 1m".len()..]);
    let pdir = tmp.path().join("prometheus");
    fs::create_dir_all(pdir.join("data")).unwrap();
    fs::write(pdir.join("lifeboat-alerts.yml"), rules).unwrap();
    fs::write(
        pdir.join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [\"{rules}\"]\n\
             scrape_configs:\n  - job_name: lifeboat\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n",
            rules = s(&pdir.join("lifeboat-alerts.yml")),
        ),
    )
    .unwrap();
    let check = run(Command::new("/usr/bin/promtool").arg("check").arg("config").arg(pdir.join("prometheus.yml")));
    assert_eq!(check.code, 0, "promtool check config:\n{}\n{}", check.stdout, check.stderr);

    let pport = free_port();
    let plog = tmp.path().join("prometheus.log");
    let mut prom = Guard {
        child: Command::new(prometheus)
            .arg(format!("--config.file={}", s(&pdir.join("prometheus.yml"))))
            .arg(format!("--storage.tsdb.path={}", s(&pdir.join("data"))))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&plog).unwrap())
            .spawn()
            .unwrap(),
        what: "prometheus",
    };

    // Poll the alerts API until LifeboatBackupFailed{source="bad"} fires.
    let alerts_of = |body: &str| -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["data"]["alerts"].as_array().cloned().unwrap_or_default()
    };
    let mut last = String::new();
    let firing = wait_for(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(250));
        let (code, body) = get(pport, "/api/v1/alerts");
        if code != 200 {
            return None;
        }
        last = body;
        alerts_of(&last)
            .into_iter()
            .find(|a| {
                a["labels"]["alertname"] == "LifeboatBackupFailed"
                    && a["labels"]["source"] == "bad"
                    && a["state"] == "firing"
            })
            .map(|a| (a, last.clone()))
    });
    let (alert, body) = firing.unwrap_or_else(|| {
        panic!(
            "LifeboatBackupFailed{{source=\"bad\"}} did not fire within 60 s\nlast /api/v1/alerts: {last}\n\
             targets: {}\nprometheus log:\n{}\ndaemon log:\n{}",
            get(pport, "/api/v1/targets").1,
            read(&plog),
            read(&log)
        )
    });
    assert_eq!(alert["labels"]["severity"], "critical", "{alert:#}");
    assert_eq!(alert["labels"]["job"], "lifeboat", "{alert:#}");
    assert_eq!(alert["labels"]["instance"], format!("127.0.0.1:{port}"), "{alert:#}");
    assert_eq!(alert["annotations"]["summary"], "Backup of bad failed", "{alert:#}");
    // The good source never has the alert (neither pending nor firing).
    let good: Vec<_> = alerts_of(&body)
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "LifeboatBackupFailed" && a["labels"]["source"] != "bad")
        .collect();
    assert!(good.is_empty(), "LifeboatBackupFailed for another source: {good:#?}");
    // Prometheus did scrape the good source's success, so its absence is not for lack of data.
    let value_of = |q: &serde_json::Value, src: &str| {
        q["data"]["result"]
            .as_array()?
            .iter()
            .find(|r| r["metric"]["source"] == src)
            .map(|r| r["value"][1].as_str().unwrap_or_default().to_string())
    };
    let mut q = serde_json::Value::Null;
    let scraped = wait_for(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(250));
        q = serde_json::from_str(&get(pport, "/api/v1/query?query=lifeboat_last_run_success").1).ok()?;
        (value_of(&q, "good").as_deref() == Some("1")).then_some(())
    });
    assert!(scraped.is_some(), "good's success not scraped: {q:#}\ndaemon log:\n{}", read(&log));
    assert_eq!(value_of(&q, "bad").as_deref(), Some("0"), "{q:#}");
    // No other shipped alert fires for a healthy daemon with one failing source.
    let (_, body) = get(pport, "/api/v1/alerts");
    let others: Vec<_> = alerts_of(&body)
        .into_iter()
        .filter(|a| a["labels"]["alertname"] != "LifeboatBackupFailed" && a["state"] == "firing")
        .collect();
    assert!(others.is_empty(), "unexpected alerts: {others:#?}");

    prom.stop();
    assert_eq!(d.stop(), Some(0), "daemon exit\n{}", read(&log));
}

// ---------------------------------------------------------------------------------------------
// 2. Notifier formats.

#[test]
fn notifiers_deliver_slack_ntfy_healthchecks_command_and_filtered_webhook_formats() {
    let tmp = tempdir();
    let (cfg, head) = setup(tmp.path());
    let (p, got) = receiver();
    let events = tmp.path().join("events");
    fs::create_dir_all(&events).unwrap();
    // One file per invocation: concurrent alerts must not write into one file.
    let cmd = format!("cat > {}/event-$$.json", s(&events));
    fs::write(
        &cfg,
        format!(
            r#"{head}
[[notify]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:{p}/slack"

[[notify]]
name = "phone"
kind = "ntfy"
url = "http://127.0.0.1:{p}/ntfy/topic"
token = "${{TEST_NTFY_TOKEN}}"

[[notify]]
name = "hc"
kind = "healthchecks"
url = "http://127.0.0.1:{p}/hc"

[[notify]]
name = "script"
kind = "command"
command = ["sh", "-c", "{cmd}"]

[[notify]]
name = "oks"
kind = "webhook"
url = "http://127.0.0.1:{p}/hook"
events = ["backup_ok"]
"#
        ),
    )
    .unwrap();
    init_repo(&cfg);

    // `notify test`: a `test` alert to every target, synchronously.
    let t = notify_test(&cfg).ok();
    for name in ["chat", "phone", "hc", "script", "oks"] {
        assert!(t.stdout.lines().any(|l| l.starts_with(name) && l.ends_with("delivered")), "{name}: {t:#?}");
    }
    assert!(!t.stdout.contains(NTFY_TOKEN) && !t.stderr.contains(NTFY_TOKEN), "{t:#?}");
    let message = "a test alert from `lifeboat notify test`";
    // slack: {"text": …} naming the event and carrying the message.
    let slack = to(&got, "/slack");
    assert_eq!(slack.len(), 1, "{slack:#?}");
    assert_eq!(slack[0].method, "POST");
    let v: serde_json::Value = serde_json::from_str(&slack[0].body).unwrap();
    let text = v["text"].as_str().unwrap_or_else(|| panic!("no text: {v:#}"));
    assert!(text.contains("test") && text.contains(message), "{text}");
    // ntfy: Title, bearer token, the message as the body.
    let ntfy = to(&got, "/ntfy/topic");
    assert_eq!(ntfy.len(), 1, "{ntfy:#?}");
    assert_eq!(ntfy[0].method, "POST");
    assert_eq!(ntfy[0].path, "/ntfy/topic");
    assert!(ntfy[0].header("title").is_some_and(|h| h.contains("test")), "{:#?}", ntfy[0]);
    assert_eq!(ntfy[0].header("authorization"), Some(format!("Bearer {NTFY_TOKEN}")), "{:#?}", ntfy[0]);
    assert_eq!(ntfy[0].body, message);
    // healthchecks: one ping below the base URL.
    assert_eq!(to(&got, "/hc").len(), 1, "{:#?}", to(&got, "/hc"));
    // command: the event JSON on stdin.
    let written: Vec<serde_json::Value> = fs::read_dir(&events)
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_str(&fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(written.len(), 1, "{written:#?}");
    assert_eq!(written[0]["event"], "test");
    assert_eq!(written[0]["message"], message);
    // `notify test` reaches every target, whatever its events.
    assert_eq!(to(&got, "/hook").len(), 1);
    got.lock().unwrap().clear();
    for e in fs::read_dir(&events).unwrap().flatten() {
        fs::remove_file(e.path()).unwrap();
    }

    // The daemon: `bad` fails (backup_failed, once), `good` succeeds every second (backup_ok).
    let log = tmp.path().join("daemon.log");
    let mut d = daemon(&cfg, &log);
    port_of(&log);
    let hc_fail = wait_for(Duration::from_secs(30), || {
        let r = got.lock().unwrap().clone();
        let hook_oks = r.iter().filter(|x| x.path == "/hook").count();
        let has = |p: &str| r.iter().any(|x| x.path.starts_with(p));
        let hc_fails = r.iter().filter(|x| x.path == "/hc/bad/fail").count();
        (hc_fails >= 2
            && has("/hc/good")
            && has("/slack")
            && has("/ntfy")
            && hook_oks >= 2
            && fs::read_dir(&events).unwrap().count() > 0)
            .then_some(())
    });
    // Let late deliveries arrive before looking at everything.
    std::thread::sleep(Duration::from_secs(2));
    let all = got.lock().unwrap().clone();
    assert!(hc_fail.is_some(), "not every target was reached:\n{all:#?}\nlog:\n{}", read(&log));

    // healthchecks: per source, a start ping before each run's end ping (POST); the failing
    // source's end pings are /fail every run (a ping is the check's state, not deduplicated), the
    // good source's are the bare success URL.
    let hc = to(&got, "/hc");
    let bad = hc.iter().find(|r| r.path == "/hc/bad/fail").unwrap();
    assert_eq!(bad.method, "POST");
    assert!(bad.body.contains("bad"), "{bad:#?}");
    for src in ["bad", "good"] {
        let (start, end) = (
            format!("/hc/{src}/start"),
            if src == "bad" { "/hc/bad/fail".to_string() } else { "/hc/good".to_string() },
        );
        let mut open = 0i32;
        for r in hc.iter().filter(|r| r.path.starts_with(&format!("/hc/{src}"))) {
            if r.path == start {
                open += 1;
            } else {
                assert_eq!(r.path, end, "{src}: unexpected ping {}: {hc:#?}", r.path);
                open -= 1;
                assert!(open >= 0, "{src}: an end ping before its start ping: {hc:#?}");
            }
        }
        assert!(hc.iter().any(|r| r.path == start), "{src}: no start ping: {hc:#?}");
    }
    assert!(hc.iter().filter(|r| r.path == "/hc/bad/fail").count() >= 2, "{hc:#?}");
    // slack and ntfy got backup_failed of bad.
    let slack = to(&got, "/slack");
    assert!(
        slack.iter().any(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            v["text"].as_str().is_some_and(|t| t.contains("backup_failed") && t.contains("bad"))
        }),
        "{slack:#?}"
    );
    let ntfy = to(&got, "/ntfy");
    let failed = ntfy
        .iter()
        .find(|r| r.header("title").is_some_and(|t| t.contains("backup_failed")))
        .unwrap_or_else(|| panic!("{ntfy:#?}"));
    assert_eq!(failed.header("authorization"), Some(format!("Bearer {NTFY_TOKEN}")));
    assert!(failed.body.contains("backup of bad failed"), "{failed:#?}");
    // command: parseable JSON with the event.
    let written: Vec<serde_json::Value> = fs::read_dir(&events)
        .unwrap()
        .flatten()
        .map(|e| {
            let text = fs::read_to_string(e.path()).unwrap();
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text:?}"))
        })
        .collect();
    assert!(written.iter().any(|v| v["event"] == "backup_failed" && v["source"] == "bad"), "{written:#?}");
    // The backup_ok-only webhook: backup_ok events only, about the good source.
    let hook = to(&got, "/hook");
    for r in &hook {
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["event"], "backup_ok", "{v:#}");
        assert_eq!(v["source"], "good", "{v:#}");
    }
    // Targets without `events` get no backup_ok.
    for r in to(&got, "/slack").iter().chain(&to(&got, "/ntfy")) {
        assert!(!r.body.contains("backup_ok") && !r.headers.contains("backup_ok"), "{r:#?}");
    }
    assert_eq!(d.stop(), Some(0), "daemon exit\n{}", read(&log));
    let text = read(&log);
    assert!(text.contains("notify_sent"), "{text}");
    assert!(!text.contains(NTFY_TOKEN), "the ntfy token reached the log:\n{text}");
    assert!(!text.contains(&format!("127.0.0.1:{p}")), "a notify URL reached the log:\n{text}");
}

// ---------------------------------------------------------------------------------------------
// 3. Retries, then stop; the backups still succeed.

/// The time at the start of a text log line.
fn line_time(line: &str) -> DateTime<Utc> {
    line.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or_else(|| panic!("no time in {line:?}"))
}

#[test]
fn a_dead_webhook_is_retried_with_backoff_then_given_up_while_backups_go_on() {
    let tmp = tempdir();
    let (cfg, head) = setup(tmp.path());
    let dead = free_port();
    fs::write(
        &cfg,
        format!("{head}\n[[notify]]\nname = \"dead\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/alerts\"\n"),
    )
    .unwrap();
    init_repo(&cfg);
    let log = tmp.path().join("daemon.log");
    let mut d = daemon(&cfg, &log);
    port_of(&log);
    let gave_up = wait_for(Duration::from_secs(25), || read(&log).contains("notify_gave_up").then_some(()));
    let text = read(&log);
    assert!(gave_up.is_some(), "no notify_gave_up within 25 s:\n{text}");
    let failed: Vec<&str> =
        text.lines().filter(|l| l.contains(" notify_failed ") && l.contains("target=dead")).collect();
    // One alert (backup_failed of bad, sent once; `good` raises none: backup_ok is opt-in and
    // an unchanged source is no size anomaly): attempts 1 to 4, then given up.
    let others: Vec<&&str> = failed.iter().filter(|l| !l.contains("alert=backup_failed")).collect();
    assert!(others.is_empty(), "alerts other than backup_failed: {others:#?}\n{text}");
    let attempts: Vec<&str> =
        failed.iter().filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("attempt="))).collect();
    assert_eq!(attempts, ["1", "2", "3", "4"], "{text}");
    let gave: Vec<&str> = text.lines().filter(|l| l.contains(" notify_gave_up ")).collect();
    assert_eq!(gave.len(), 1, "{text}");
    assert!(gave[0].contains("target=dead") && gave[0].contains("alert=backup_failed"), "{text}");
    // Backoff 1 s, 2 s, 4 s between the attempts (allowing for scheduling).
    let times: Vec<DateTime<Utc>> = failed.iter().map(|l| line_time(l)).collect();
    for (i, want) in [1000, 2000, 4000].into_iter().enumerate() {
        let gap = (times[i + 1] - times[i]).num_milliseconds();
        assert!((want - 100..want + 3000).contains(&gap), "gap {i}: {gap} ms, want about {want} ms\n{text}");
    }
    assert!(!text.contains(&format!("127.0.0.1:{dead}")), "the webhook URL reached the log:\n{text}");
    // The good source kept backing up while the notifier was retrying.
    let (first, last) = (times[0], line_time(gave[0]));
    let r = runs(&cfg);
    let ok_meanwhile = r
        .iter()
        .filter(|x| x["source"] == "good" && x["kind"] == "backup" && x["outcome"] == "ok")
        .filter(|x| {
            let started: DateTime<Utc> = x["started"].as_str().unwrap().parse().unwrap();
            started >= first && started <= last
        })
        .count();
    assert!(ok_meanwhile >= 2, "good backups between {first} and {last}: {ok_meanwhile}\n{r:#?}");
    // The failing source is failing, not stuck behind the notifier either.
    assert!(r.iter().filter(|x| x["source"] == "bad" && x["outcome"] == "failed").count() >= 2, "{r:#?}");
    assert_eq!(d.stop(), Some(0), "daemon exit\n{}", read(&log));

    // `notify test` to the dead target: exit 1, FAILED.
    let t = notify_test(&cfg).code(1);
    assert!(t.stdout.lines().any(|l| l.starts_with("dead") && l.contains("FAILED")), "{t:#?}");
    assert!(
        !t.stdout.contains(&format!("127.0.0.1:{dead}")) && !t.stderr.contains(&format!("127.0.0.1:{dead}")),
        "{t:#?}"
    );
}
