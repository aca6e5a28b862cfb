//! The web dashboard of `lifeboat daemon`, in a real browser (headless Chromium driven by
//! Selenium, `tests/dashboard/browser.py`) against real data — a PostgreSQL database, a SQLite
//! file, a files directory, a slow command and a failing one — and over plain HTTP for the
//! token login, the read-only role and the CSRF and Origin checks. Screenshots of every page go
//! to `docs/screenshots/` with `LIFEBOAT_UPDATE_SCREENSHOTS=1` (else to a temp directory).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use scratch::*;
use servers::*;

const READ_TOKEN: &str = "read-token-5b1f0c2e9a";
const ADMIN_TOKEN: &str = "admin-token-c47d88e1f3";

/// Chromium, chromedriver and Selenium are installed (required in CI).
fn browser_up() -> bool {
    service("chromium", Command::new("chromium").arg("--version"))
        && service("chromedriver", Command::new("chromedriver").arg("--version"))
        && service("python3 with selenium", Command::new("python3").args(["-c", "import selenium"]))
}

/// Where screenshots go: the tracked `docs/screenshots` only with `LIFEBOAT_UPDATE_SCREENSHOTS=1`
/// (a test run must not rewrite tracked files), else a directory under the system's temp dir.
fn screenshots() -> PathBuf {
    if std::env::var("LIFEBOAT_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        std::env::temp_dir().join("lifeboat-dashboard-screenshots")
    }
}

fn browser(mode: &str, url: &str, extra: &[&str], env: &[(&str, &str)]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard/browser.py");
    let mut c = Command::new("python3");
    c.arg(&script).args([mode, "--url", url, "--out"]).arg(screenshots()).args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    let r = run(&mut c);
    println!("{}", r.stdout);
    assert_eq!(r.code, 0, "browser check failed:\n{}\n{}", r.stdout, r.stderr);
}

/// A running daemon; killed (SIGTERM, then waited for) when dropped.
struct Daemon {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Daemon {
    fn start(cfg: &Path, dir: &Path, listen: &str) -> Daemon {
        let log = dir.join(format!("daemon-{}.log", listen.replace([':', '.'], "_")));
        let child = bare()
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .current_dir(dir)
            .arg("--config")
            .arg(cfg)
            .args(["daemon", "--listen", listen])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let port = wait_for(Duration::from_secs(30), || {
            let text = fs::read_to_string(&log).ok()?;
            let line = text.lines().find(|l| l.contains("server_listening"))?;
            line.rsplit(':').next()?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no server_listening line:\n{}", fs::read_to_string(&log).unwrap_or_default()));
        let d = Daemon { child, log, port };
        // The dashboard has read the repository once.
        let loaded = wait_for(Duration::from_secs(30), || {
            let r = http(d.port, "GET", "/storage", &[("cookie", "x=1")], "");
            (r.code == 303 || (r.code == 200 && !r.body.contains("Reading the repository"))).then_some(())
        });
        assert!(loaded.is_some(), "the dashboard did not load:\n{}", d.log_text());
        d
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// An HTTP response: status, headers (lowercase names), body.
struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The session id the response sets.
    fn session(&self) -> Option<String> {
        let c = self.header("set-cookie")?;
        let v = c.strip_prefix("lifeboat_session=")?.split(';').next()?;
        (!v.is_empty()).then(|| v.to_string())
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no csrf field:\n{}", self.body));
        self.body[at + 19..].split('"').next().unwrap().to_string()
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!("content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.lines();
    let code = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp { code, headers, body: body.to_string() }
}

fn sqlite_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE ledger(id INTEGER PRIMARY KEY, entry TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO ledger(entry) SELECT 'entry ' || i FROM n;",
    )
    .unwrap();
}

fn backup_runs(cfg: &Path, source: &str) -> Vec<serde_json::Value> {
    let r = lbc(cfg, &["runs", "--json", "--source", source]).ok();
    r.json().as_array().unwrap().iter().filter(|x| x["kind"] == "backup").cloned().collect()
}

#[test]
fn dashboard_in_a_real_browser_with_postgres_sqlite_and_files() {
    if !postgres_up() || !browser_up() {
        return;
    }
    let tag = unique_tag();
    let db = format!("lb_dash_{tag}");
    let _dbs = PgDbs(vec![db.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE orders(id serial PRIMARY KEY, total int); INSERT INTO orders(total) SELECT g FROM generate_series(1, 5000) g;");
    let dir = tempdir();
    let ledger = dir.path().join("ledger.db");
    sqlite_db(&ledger);
    let files = dir.path().join("proofs");
    fs::create_dir_all(&files).unwrap();
    for i in 0..20 {
        write_text(&files.join(format!("proof-{i}.txt")), 20_000 + i * 1000, &format!("proof {i}"));
    }
    let key = dir.path().join("drill.key");
    run(bare().args(["drill", "keygen", "--out"]).arg(&key)).ok();
    let body = format!(
        "[drill]\nsigning_key = \"{key}\"\n\n\
         [[source]]\nname = \"orders-db\"\nkind = \"postgres\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\nschedule = \"@daily\"\nrpo = \"1d\"\nrto = \"30m\"\n\n\
         [[source]]\nname = \"ledger\"\nkind = \"sqlite\"\npath = \"{ledger}\"\nschedule = \"@daily\"\nrpo = \"2d\"\nrto = \"5m\"\n\n\
         [[source]]\nname = \"proofs\"\nkind = \"files\"\npaths = [\"{files}\"]\nschedule = \"@daily\"\nrpo = \"1d\"\n\n\
         [[source]]\nname = \"nightly-export\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"sleep 4; seq 1 200000\"]\nrpo = \"1d\"\n\n\
         [[source]]\nname = \"broken-export\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo cannot reach the API >&2; exit 3\"]\n\n\
         [[probe]]\nname = \"cycles\"\ncommand = [\"echo\", \"Balance: 3_100_000_000_000 Cycles\"]\nregex = 'Balance: ([0-9_]+)'\nwarning_below = 5_000_000_000_000\nunit = \"cycles\"\n",
        key = s(&key),
        ledger = s(&ledger),
        files = s(&files),
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    // Two backups each (trends), a verification and a signed drill of some, a failure, an
    // audit event.
    for name in ["orders-db", "ledger", "proofs"] {
        lbc(&cfg, &["backup", name]).ok();
    }
    write_text(&files.join("proof-new.txt"), 50_000, "new proof");
    for name in ["orders-db", "ledger", "proofs"] {
        lbc(&cfg, &["backup", name]).ok();
    }
    lbc(&cfg, &["backup", "broken-export"]).code(1);
    lbt(&cfg, &tmp, &["verify", "--restore-test", "--source", "ledger"]).ok();
    lbt(&cfg, &tmp, &["drill", "--source", "ledger", "--report-dir", s(&dir.path().join("drill1"))]).ok();
    lbt(&cfg, &tmp, &["drill", "--source", "proofs", "--report-dir", s(&dir.path().join("drill2"))]).ok();
    lbc(&cfg, &["append-only", "on"]).ok();
    lbc(&cfg, &["append-only", "off"]).ok();
    // What the overview must show: the CLI's own grading.
    let health = lbc(&cfg, &["health", "--json"]);
    let health: serde_json::Value = serde_json::from_str(&health.stdout).unwrap();
    let mut expect = serde_json::Map::new();
    for s in health["sources"].as_array().unwrap() {
        expect.insert(s["name"].as_str().unwrap().to_string(), s["status"].clone());
    }
    assert_eq!(expect["broken-export"], "critical", "{health:#}");
    assert_eq!(expect["nightly-export"], "critical", "{health:#}");
    assert_eq!(expect["ledger"], "ok", "{health:#}");
    let before = backup_runs(&cfg, "nightly-export").len();

    let d = Daemon::start(&cfg, dir.path(), "127.0.0.1:0");
    let url = format!("http://127.0.0.1:{}", d.port);
    let expect = serde_json::Value::Object(expect).to_string();
    browser("main", &url, &["--expect", &expect, "--slow", "nightly-export"], &[]);
    // The browser's "Back up now" made a real run, by the daemon.
    let after = backup_runs(&cfg, "nightly-export");
    assert_eq!(after.len(), before + 1, "{after:#?}");
    assert_eq!((after[before]["outcome"].as_str(), after[before]["trigger"].as_str()), (Some("ok"), Some("daemon")));
    let log = d.log_text();
    assert!(log.contains("dashboard_action") && log.contains("backup:nightly-export"), "{log}");
}

fn token_config(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    fs::create_dir_all(&data).unwrap();
    write_text(&data.join("a.txt"), 10_000, "a");
    let (read, admin) = (dir.join("read-token"), dir.join("admin-token"));
    fs::write(&read, format!("{READ_TOKEN}\n")).unwrap();
    fs::write(&admin, format!("{ADMIN_TOKEN}\n")).unwrap();
    let body = format!(
        "[server]\ntoken_file = \"{}\"\nadmin_token_file = \"{}\"\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nrpo = \"1d\"\n",
        s(&read),
        s(&admin),
        s(&data)
    );
    let (cfg, _) = setup(dir, &body);
    lbc(&cfg, &["backup", "docs"]).ok();
    cfg
}

fn login(port: u16, token: &str) -> Resp {
    let origin = format!("http://127.0.0.1:{port}");
    http(port, "POST", "/login", &[("origin", &origin)], &format!("token={token}"))
}

#[test]
fn off_loopback_the_dashboard_needs_a_token_and_actions_need_the_admin_token_and_csrf() {
    let dir = tempdir();
    let cfg = token_config(dir.path());
    let d = Daemon::start(&cfg, dir.path(), "0.0.0.0:0");
    let port = d.port;
    let origin = format!("http://127.0.0.1:{port}");

    // No session: every page sends to the login; the live stream is refused.
    for path in ["/", "/sources/docs", "/storage", "/audit", "/drills", "/probes"] {
        let r = http(port, "GET", path, &[], "");
        assert_eq!((r.code, r.header("location")), (303, Some("/login")), "{path}");
    }
    assert_eq!(http(port, "GET", "/events", &[], "").code, 401);
    let page = http(port, "GET", "/login", &[], "");
    assert_eq!(page.code, 200);
    assert!(page.body.contains("<label for=\"token\">"), "{}", page.body);

    // A wrong token is refused, with no session; a login from another origin is refused.
    let wrong = login(port, "admin-token-c47d88e1f4");
    assert_eq!(wrong.code, 401);
    assert!(wrong.body.contains("not accepted") && wrong.session().is_none(), "{}", wrong.body);
    let r = http(port, "POST", "/login", &[("origin", "http://evil.example")], &format!("token={ADMIN_TOKEN}"));
    assert_eq!((r.code, r.session()), (403, None));

    // The read-only token: pages, no actions.
    let read = login(port, READ_TOKEN);
    assert_eq!((read.code, read.header("location")), (303, Some("/")));
    let cookie = read.header("set-cookie").unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(READ_TOKEN), "{cookie}");
    let rs = format!("lifeboat_session={}", read.session().unwrap());
    let home = http(port, "GET", "/", &[("cookie", &rs)], "");
    assert_eq!(home.code, 200);
    assert!(home.body.contains("Read-only") && home.body.contains("data-source=\"docs\""), "{}", home.body);
    assert!(!home.body.contains("data-action="), "read-only shows no action buttons");
    assert!(!home.body.contains(READ_TOKEN) && !home.body.contains(ADMIN_TOKEN));
    let read_csrf = home.csrf();
    let r = http(
        port,
        "POST",
        "/sources/docs/backup",
        &[("cookie", &rs), ("origin", &origin)],
        &format!("csrf={read_csrf}"),
    );
    assert_eq!(r.code, 403, "a read-only session cannot start a backup");
    assert!(r.body.contains("admin token"), "{}", r.body);

    // The admin token: actions, but only with this session's CSRF token and from this origin.
    let admin = login(port, ADMIN_TOKEN);
    let as_ = format!("lifeboat_session={}", admin.session().unwrap());
    let home = http(port, "GET", "/", &[("cookie", &as_)], "");
    assert!(home.body.contains("data-action=\"backup\""), "{}", home.body);
    let csrf = home.csrf();
    assert_ne!(csrf, read_csrf);
    let before = backup_runs(&cfg, "docs").len();
    let post = |headers: &[(&str, &str)], body: &str| http(port, "POST", "/sources/docs/backup", headers, body);
    let refused = [
        ("no CSRF token", post(&[("cookie", &as_), ("origin", &origin)], "")),
        ("another session's CSRF token", post(&[("cookie", &as_), ("origin", &origin)], &format!("csrf={read_csrf}"))),
        ("another origin", post(&[("cookie", &as_), ("origin", "http://evil.example")], &format!("csrf={csrf}"))),
        ("another referer", post(&[("cookie", &as_), ("referer", "http://evil.example/")], &format!("csrf={csrf}"))),
        ("no session", post(&[("origin", &origin)], &format!("csrf={csrf}"))),
    ];
    for (what, r) in refused {
        assert_eq!(r.code, 403, "{what}: {}", r.body);
    }
    let ok = post(&[("cookie", &as_), ("origin", &origin)], &format!("csrf={csrf}"));
    assert_eq!((ok.code, ok.header("location")), (303, Some("/sources/docs?queued=backup:docs")), "{}", ok.body);
    let ran = wait_for(Duration::from_secs(30), || {
        let runs = backup_runs(&cfg, "docs");
        (runs.len() == before + 1 && runs[before]["outcome"] == "ok").then_some(runs)
    });
    assert!(ran.is_some(), "the admin's backup did not run:\n{}", d.log_text());
    // Refused attempts started nothing.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(backup_runs(&cfg, "docs").len(), before + 1);

    // "Verify now" and "Start a drill" run for this source only, as daemon jobs.
    for (what, kind) in [("verify", "restore_test"), ("drill", "drill")] {
        let path = format!("/sources/docs/{what}");
        let r = http(port, "POST", &path, &[("cookie", &as_), ("origin", &origin)], &format!("csrf={csrf}"));
        assert_eq!(r.code, 303, "{what}: {}", r.body);
        let done = wait_for(Duration::from_secs(60), || {
            let runs = lbc(&cfg, &["runs", "--json", "--source", "docs"]).ok().json();
            let runs = runs.as_array().unwrap().clone();
            runs.into_iter().find(|x| x["kind"] == kind && x["outcome"] != "running")
        });
        let run = done.unwrap_or_else(|| panic!("no {kind} run of docs:\n{}", d.log_text()));
        assert_eq!((run["outcome"].as_str(), run["trigger"].as_str()), (Some("ok"), Some("daemon")), "{run:#}");
    }
    let r =
        http(port, "POST", "/sources/docs/prune", &[("cookie", &as_), ("origin", &origin)], &format!("csrf={csrf}"));
    assert_eq!(r.code, 404, "only backup, verify and drill are actions");
    let r =
        http(port, "POST", "/sources/nope/backup", &[("cookie", &as_), ("origin", &origin)], &format!("csrf={csrf}"));
    assert_eq!(r.code, 404, "an unknown source");

    // Logout ends the session.
    let r = http(port, "POST", "/logout", &[("cookie", &as_), ("origin", &origin)], &format!("csrf={csrf}"));
    assert_eq!(r.code, 303);
    assert_eq!(http(port, "GET", "/", &[("cookie", &as_)], "").code, 303);

    // Secrets never in the log.
    let log = d.log_text();
    assert!(log.contains("dashboard_login_refused"), "{log}");
    assert!(!log.contains(READ_TOKEN) && !log.contains(ADMIN_TOKEN) && !log.contains("c47d88e1f4"), "{log}");

    // And in the browser: the login form, a wrong token refused, the read-only view.
    if browser_up() {
        browser(
            "login",
            &format!("http://127.0.0.1:{port}"),
            &[],
            &[("LB_BAD_TOKEN", "not-the-token"), ("LB_READ_TOKEN", READ_TOKEN)],
        );
    }
}
