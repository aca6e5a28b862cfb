//! Hooks per source, end to end: `before_backup`/`after_backup` with their environment (and no
//! secret of Lifeboat's own environment), a failing before-hook that stops the backup with its
//! stderr, a hanging hook killed with its process group, `on_failure`; restore hooks that stop
//! and start a service, `healthcheck_url` (ok, wrong status, timeout); `verify_command` on the
//! restore test's scratch target, in the verification record and the drill report; config
//! errors with file and line.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use scratch::*;
use servers::*;

/// A hook script at `dir/name` (executable) with `body` after `#!/bin/sh`.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    chmod(&p, 0o755);
    p.display().to_string()
}

/// `lifeboat --config CFG ARGS…` with secrets in the environment that hooks must not see.
fn lbs(cfg: &Path, args: &[&str]) -> Run {
    run(bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-must-not-leak")
        .env("HOOK_TEST_TOKEN", "token-given-on-purpose")
        .arg("--config")
        .arg(cfg)
        .args(args))
}

/// An HTTP server on 127.0.0.1 answering every request with the status in `status` (0: accept
/// and never answer); runs until the test ends.
fn http_server(status: Arc<AtomicU16>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let code = status.load(Ordering::SeqCst);
            if code == 0 {
                held.push(c);
                continue;
            }
            let _ = write!(c, "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

fn env_file(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn backup_hooks_get_source_and_snapshot_but_no_secret_of_lifeboats_environment() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 10_000, 1);
    let before = script(dir.path(), "before.sh", &format!("env > {}/before.env", dir.path().display()));
    let after = script(dir.path(), "after.sh", &format!("env > {}/after.env", dir.path().display()));
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_backup = [\"{before}\"]\n\
         after_backup = {{ command = [\"{after}\"], timeout = \"10s\", env = {{ GIVEN = \"${{HOOK_TEST_TOKEN}}\" }} }}\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let out = lbs(&cfg, &["backup", "--all", "--json"]).ok().json();
    let id = out[0]["snapshot_id"].as_str().unwrap().to_string();
    let hooks = out[0]["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2, "{out:#}");
    assert_eq!(hooks[0]["hook"], "before_backup");
    assert_eq!(hooks[1]["hook"], "after_backup");
    assert!(hooks.iter().all(|h| h["ok"] == true), "{out:#}");

    let b = env_file(&dir.path().join("before.env"));
    let a = env_file(&dir.path().join("after.env"));
    assert_eq!(get(&b, "LIFEBOAT_SOURCE"), Some("docs"));
    assert_eq!(get(&b, "LIFEBOAT_OPERATION"), Some("backup"));
    assert_eq!(get(&b, "LIFEBOAT_SNAPSHOT"), None, "the snapshot is not known before the backup");
    assert_eq!(get(&a, "LIFEBOAT_SNAPSHOT"), Some(id.as_str()));
    assert_eq!(get(&a, "GIVEN"), Some("token-given-on-purpose"), "a configured variable reaches the hook");
    assert!(get(&a, "PATH").is_some(), "PATH is kept");
    for env in [&b, &a] {
        for (k, v) in env.iter() {
            assert!(!k.starts_with("LIFEBOAT_PASSWORD") && k != "AWS_SECRET_ACCESS_KEY", "{k} leaked into a hook");
            assert!(!v.contains(PASSWORD) && !v.contains("aws-secret-must-not-leak"), "a secret leaked in {k}");
        }
        assert_eq!(get(env, "HOOK_TEST_TOKEN"), None, "unconfigured variables are not passed");
    }
    // The run history has the hooks.
    let logs = lbc(&cfg, &["logs", "--source", "docs"]).ok();
    assert!(logs.stdout.contains("hook before_backup before.sh: ok"), "{}", logs.stdout);
    assert!(logs.stdout.contains("hook after_backup after.sh: ok"), "{}", logs.stdout);
}

#[test]
fn a_failing_before_backup_stops_the_backup_with_its_stderr_and_on_failure_runs() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 1000, 2);
    let failing =
        script(dir.path(), "lock.sh", "echo 'preparing' >&2\necho 'database is locked by pid 42' >&2\nexit 3");
    let alarm = script(
        dir.path(),
        "alarm.sh",
        &format!("echo \"$LIFEBOAT_OPERATION: $LIFEBOAT_ERROR\" > {}/alarm", dir.path().display()),
    );
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_backup = [\"{failing}\"]\non_failure = [\"{alarm}\"]\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let r = lbs(&cfg, &["backup", "--all"]).code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("before_backup failed: before_backup lock.sh: exited with code 3: database is locked by pid 42"),
        "{all}"
    );
    assert!(all.contains("the backup did not run"), "{all}");
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().unwrap().len(), 0, "no snapshot after a failing before-hook");
    let alarm = fs::read_to_string(dir.path().join("alarm")).unwrap();
    assert!(alarm.starts_with("backup: before_backup failed"), "{alarm}");
    let runs = lbc(&cfg, &["runs", "--json"]).ok().json();
    let run = &runs.as_array().unwrap()[0];
    assert_eq!(run["outcome"], "failed", "{run:#}");
    let msgs = run["messages"].to_string();
    assert!(msgs.contains("database is locked by pid 42") && msgs.contains("hook on_failure alarm.sh: ok"), "{msgs}");
}

/// The repository opens while the first source starts; a repository that cannot be opened is
/// still the error reported (exit 12 for a wrong password), whatever the source did meanwhile,
/// and a `before_backup` hook never runs for a backup that cannot be stored.
#[test]
fn a_wrong_password_is_the_error_and_runs_no_hook_even_when_the_source_fails_too() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 1000, 3);
    let marker = dir.path().join("hook-ran");
    let hook = script(dir.path(), "before.sh", &format!("touch {}", marker.display()));
    let body = format!(
        "[[source]]\nname = \"broken\"\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo nothing to see >&2; exit 7\"]\n\n\
         [[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_backup = [\"{hook}\"]\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let wrong =
        |args: &[&str]| run(bare().env("LIFEBOAT_PASSWORD", "not the password").arg("--config").arg(&cfg).args(args));
    for args in [&["backup", "--all"][..], &["backup", "broken"], &["backup", "docs"]] {
        let r = wrong(args).code(12);
        let line = r.one_error_line();
        assert!(line.contains("wrong password"), "{args:?}: {line}");
        assert!(
            !line.contains("nothing to see") && !line.contains("exit status 7"),
            "{args:?}: the source's error hid it: {line}"
        );
        assert!(!marker.exists(), "{args:?}: before_backup ran for a repository that could not be opened");
    }
    // With the right password the same config backs up the files and reports the command's failure.
    let r = lbs(&cfg, &["backup", "--all", "--json"]).code(1);
    let out = r.json();
    assert_eq!(out[0]["ok"], false, "{out:#}");
    assert!(out[0]["error"].as_str().unwrap().contains("exit status 7"), "the source's own error reads so: {out:#}");
    assert_eq!(out[1]["ok"], true, "{out:#}");
    assert!(marker.exists(), "before_backup ran once the repository was open");
    let runs = lbc(&cfg, &["runs", "--json"]).ok().json();
    let outcomes: Vec<_> =
        runs.as_array().unwrap().iter().map(|r| (r["source"].clone(), r["outcome"].clone())).collect();
    assert_eq!(outcomes.len(), 2, "one run per source, none for the refused attempts: {runs:#}");
    assert!(outcomes.contains(&(serde_json::json!("broken"), serde_json::json!("failed"))), "{runs:#}");
    assert!(outcomes.contains(&(serde_json::json!("docs"), serde_json::json!("ok"))), "{runs:#}");
}

#[test]
fn a_hook_that_hangs_is_killed_with_its_process_group_and_fails_the_run() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 1000, 3);
    let pidfile = dir.path().join("child.pid");
    let hang = script(dir.path(), "hang.sh", &format!("sleep 300 &\necho $! > {}\nsleep 300", pidfile.display()));
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_backup = {{ command = [\"{hang}\"], timeout = \"1s\" }}\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let started = Instant::now();
    let r = lbs(&cfg, &["backup", "--all"]).code(1);
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("before_backup hang.sh: did not finish within 1.0 s; killed it and its process group"),
        "{all}"
    );
    // The hook's own child (in its process group) is gone too.
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let gone = wait_for(Duration::from_secs(5), || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init.
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    });
    assert!(gone.is_some(), "the hook's background child {pid} is still running");
}

#[test]
fn a_failing_after_backup_fails_the_run_but_keeps_the_snapshot() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 1000, 4);
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nafter_backup = [\"sh\", \"-c\", \"echo cannot restart app >&2; exit 1\"]\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let r = lbs(&cfg, &["backup", "--all"]).code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("after_backup failed: after_backup sh: exited with code 1: cannot restart app"), "{all}");
    assert!(all.contains("was saved"), "{all}");
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().json();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "the snapshot is kept");
}

#[test]
fn restore_hooks_stop_and_start_a_service_and_the_healthcheck_must_pass() {
    let dir = tempdir();
    let d = dir.path().display().to_string();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("model.bin"), 100_000, 5);
    let status = Arc::new(AtomicU16::new(200));
    let port = http_server(status.clone());
    // The "service": a process with a pidfile. Stop kills it and notes whether the data was
    // there yet; start launches a new one in the background (the hook must still return).
    let stop = script(
        dir.path(),
        "stop.sh",
        &format!("kill $(cat {d}/svc.pid) || exit 1\nif [ -e \"$LIFEBOAT_TARGET{}/model.bin\" ]; then echo present; else echo absent; fi > {d}/at-stop\necho \"$LIFEBOAT_SNAPSHOT\" > {d}/stop-snapshot", data.display()),
    );
    let start = script(
        dir.path(),
        "start.sh",
        &format!(
            "test -e \"$LIFEBOAT_TARGET{}/model.bin\" || exit 9\nsleep 600 &\necho $! > {d}/svc.pid",
            data.display()
        ),
    );
    let body = format!(
        "[[source]]\nname = \"models\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_restore = [\"{stop}\"]\n\
         after_restore = {{ command = [\"{start}\"], timeout = \"20s\" }}\nhealthcheck_url = \"http://127.0.0.1:{port}/health\"\n\
         healthcheck_retries = 2\nhealthcheck_timeout = \"1s\"\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let id = lbs(&cfg, &["backup", "--all", "--json"]).ok().json()[0]["snapshot_id"].as_str().unwrap().to_string();
    let mut svc = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    fs::write(dir.path().join("svc.pid"), svc.id().to_string()).unwrap();

    let target = dir.path().join("restored");
    let started = Instant::now();
    let r = lbs(&cfg, &["restore", "latest", "--target", s(&target), "--json"]).ok();
    assert!(started.elapsed() < Duration::from_secs(30), "the background service held the restore up");
    let j = r.json();
    let hooks: Vec<&str> = j["hooks"].as_array().unwrap().iter().map(|h| h["hook"].as_str().unwrap()).collect();
    assert_eq!(hooks, ["before_restore", "after_restore", "healthcheck"], "{j:#}");
    // The old service was stopped before the data was there; a new one runs.
    assert!(svc.try_wait().unwrap().is_some(), "the service was not stopped");
    assert_eq!(fs::read_to_string(dir.path().join("at-stop")).unwrap().trim(), "absent");
    assert_eq!(fs::read_to_string(dir.path().join("stop-snapshot")).unwrap().trim(), id);
    let new_pid = fs::read_to_string(dir.path().join("svc.pid")).unwrap().trim().to_string();
    assert_ne!(new_pid, svc.id().to_string());
    assert!(Path::new(&format!("/proc/{new_pid}")).exists(), "the started service is not running");
    assert_eq!(fs::read(under(&target, &data).join("model.bin")).unwrap(), fs::read(data.join("model.bin")).unwrap());
    let _ = std::process::Command::new("kill").arg(&new_pid).status();

    // A wrong status fails the restore with one line (the data is restored).
    status.store(503, Ordering::SeqCst);
    fs::write(dir.path().join("svc.pid"), "999999999").unwrap();
    // From here on the service is gone: stop and start have nothing to do.
    script(dir.path(), "stop.sh", "true");
    script(dir.path(), "start.sh", "true");
    let t2 = dir.path().join("restored2");
    let r = lbs(&cfg, &["restore", "latest", "--target", s(&t2)]).code(1);
    let line = r.one_error_line();
    assert!(
        line.contains(&format!(
            "healthcheck http://127.0.0.1:{port}/health: answered HTTP 503, expected 200 (2 tries)"
        )),
        "{line}"
    );
    assert!(line.contains("the data was restored to"), "{line}");
    // An answer that never comes times out.
    status.store(0, Ordering::SeqCst);
    let t3 = dir.path().join("restored3");
    let started = Instant::now();
    let r = lbs(&cfg, &["restore", "latest", "--target", s(&t3)]).code(1);
    assert!(r.one_error_line().contains("did not answer within 1.0 s (2 tries)"), "{}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_failing_before_restore_restores_nothing() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_random(&data.join("a.bin"), 1000, 6);
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npaths = [\"{}\"]\nbefore_restore = [\"sh\", \"-c\", \"echo app still running >&2; exit 2\"]\n",
        data.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    lbs(&cfg, &["backup", "--all"]).ok();
    let target = dir.path().join("restored");
    let r = lbs(&cfg, &["restore", "latest", "--target", s(&target)]).code(1);
    let line = r.one_error_line();
    assert!(line.contains("before_restore failed: before_restore sh: exited with code 2: app still running"), "{line}");
    assert!(line.contains("nothing was restored"), "{line}");
    assert!(!target.exists(), "the restore ran after a failing before_restore");
}

#[test]
fn verify_command_runs_on_the_scratch_target_and_is_recorded_in_verification_and_drill() {
    let dir = tempdir();
    let data = dir.path().join("proofs");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("root.txt"), "merkle-root-abc").unwrap();
    let check = script(
        dir.path(),
        "check.sh",
        &format!(
            "echo \"$1\" > {d}/checked-target\ngrep -q merkle-root-abc \"$1{p}/root.txt\" || {{ echo \"merkle root mismatch in $1\" >&2; exit 1; }}",
            d = dir.path().display(),
            p = data.display()
        ),
    );
    let body = format!(
        "[[source]]\nname = \"proofs\"\nkind = \"files\"\npaths = [\"{}\"]\nverify_command = [\"{check}\", \"{{target}}\"]\nrto = \"10m\"\n",
        data.display()
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbs(&cfg, &["backup", "--all"]).ok();
    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    let v = &r.json()[0];
    assert_eq!(v["verification"]["verify_command"]["ok"], true, "{v:#}");
    assert_eq!(v["restore_test"]["verify_command"]["hook"], "verify_command");
    let checked = fs::read_to_string(dir.path().join("checked-target")).unwrap();
    assert!(checked.trim().starts_with(s(&tmp)), "{checked} is not the scratch target");
    assert_clean(&tmp);

    // The data changes so that the application's own check fails on the next backup.
    fs::write(data.join("root.txt"), "tampered").unwrap();
    lbs(&cfg, &["backup", "--all"]).ok();
    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).code(1);
    let v = &r.json()[0];
    assert_eq!(v["verification"]["outcome"], "failed");
    let findings = v["verification"]["findings"].to_string();
    assert!(findings.contains("verify_command check.sh: exited with code 1: merkle root mismatch"), "{findings}");
    assert!(v["verification"]["verify_command"]["stderr_tail"].as_str().unwrap().contains("merkle root mismatch"));
    // The drill report carries it too.
    let out = dir.path().join("drill-out");
    let r = lbt(&cfg, &tmp, &["drill", "--report-dir", s(&out), "--json"]).code(1);
    let src = &r.json()["report"]["sources"][0];
    assert_eq!(src["verify_command"]["ok"], false, "{src:#}");
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("verify_command") && html.contains("merkle root mismatch"), "the page does not show it");
    assert_clean(&tmp);
}

#[test]
fn verify_command_gets_the_scratch_database_of_a_postgres_restore_test() {
    if !postgres_up() {
        return;
    }
    let dir = tempdir();
    let db = format!("lb_vc_{}", unique_tag());
    let _cleanup = PgDbs(vec![db.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE blocks(height int PRIMARY KEY, hash text); INSERT INTO blocks SELECT g, md5(g::text) FROM generate_series(1, 300) g;");
    // The application's own check: the chain has no gap (as a SQL query on the scratch copy).
    let check = script(
        dir.path(),
        "chain.sh",
        &format!(
            "echo \"$LIFEBOAT_TARGET\" > {}/db-name\nn=$(psql -X -A -t -h 127.0.0.1 -U postgres -d \"$1\" -c 'SELECT count(*) FROM blocks WHERE height <> 1 AND height - 1 NOT IN (SELECT height FROM blocks)') || exit 2\n[ \"$n\" = 0 ] || {{ echo \"chain broken: $n gaps\" >&2; exit 1; }}",
            dir.path().display()
        ),
    );
    let body = format!(
        "[[source]]\nname = \"chain\"\nkind = \"postgres\"\ndatabase = \"{db}\"\nhost = \"127.0.0.1\"\nuser = \"postgres\"\nverify_command = [\"{check}\", \"{{target}}\"]\n"
    );
    let (cfg, tmp) = setup(dir.path(), &body);
    lbs(&cfg, &["backup", "--all"]).ok();
    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).ok();
    assert_eq!(r.json()[0]["verification"]["verify_command"]["ok"], true, "{}", r.stdout);
    let scratch = fs::read_to_string(dir.path().join("db-name")).unwrap().trim().to_string();
    assert!(scratch.starts_with("lifeboat_verify_"), "{scratch}");
    let left = psql("postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"));
    assert_eq!(left, "0", "the scratch database was not dropped");
    // A gap in the chain: the backup restores fine, the application's check fails it.
    psql(&db, "DELETE FROM blocks WHERE height = 150");
    lbs(&cfg, &["backup", "--all"]).ok();
    let r = lbt(&cfg, &tmp, &["verify", "--restore-test", "--json"]).code(1);
    let findings = r.json()[0]["verification"]["findings"].to_string();
    assert!(findings.contains("verify_command chain.sh: exited with code 1: chain broken: 1 gaps"), "{findings}");
}

#[test]
fn the_daemons_scheduled_backups_run_the_same_hooks() {
    let dir = tempdir();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("a"), "alpha").unwrap();
    let marks = dir.path().join("marks");
    let body = format!(
        "[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\nschedule = \"every 1s\"\n\
         after_backup = [\"sh\", \"-c\", \"echo $LIFEBOAT_OPERATION $LIFEBOAT_SNAPSHOT >> {}\"]\n",
        data.display(),
        marks.display()
    );
    let (cfg, _) = setup(dir.path(), &body);
    let log = dir.path().join("daemon.log");
    let mut child = bare()
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .arg("--config")
        .arg(&cfg)
        .args(["daemon", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let seen = wait_for(Duration::from_secs(30), || {
        let text = fs::read_to_string(&marks).ok()?;
        (text.lines().count() >= 2).then_some(text)
    });
    let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let text =
        seen.unwrap_or_else(|| panic!("no after_backup from the daemon:\n{}", fs::read_to_string(&log).unwrap()));
    let line = text.lines().next().unwrap();
    let (op, id) = line.split_once(' ').unwrap();
    assert_eq!(op, "backup");
    assert_eq!(id.len(), 64, "{line}");
    let runs = lbc(&cfg, &["runs", "--json"]).ok().json();
    let daemon_run =
        runs.as_array().unwrap().iter().find(|r| r["trigger"] == "daemon" && r["outcome"] == "ok").unwrap();
    assert!(daemon_run["messages"].to_string().contains("hook after_backup sh: ok"), "{daemon_run:#}");
}

#[test]
fn hook_and_order_config_errors_name_file_and_line() {
    let dir = tempdir();
    let cases = [
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nbefore_backup = \"stop app\"\n", ":5: source \"a\": before_backup: expected an argv array"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\n\nafter_restore = { command = [\"x\"], timeout = \"soon\" }\n", ":6: source \"a\": after_restore: timeout:"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\non_failure = { cmd = [\"x\"] }\n", "unknown key `cmd`"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nhealthcheck_status = 204\n", ":5: source \"a\": healthcheck_status: needs `healthcheck_url`"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nhealthcheck_url = \"localhost:80\"\n", "must start with http://"),
        ("[[source]]\nname = \"a\"\nkind = \"files\"\npath = \"/x\"\nverify_comand = [\"x\"]\n", "did you mean `verify_command`?"),
    ];
    for (body, want) in cases {
        let cfg = dir.path().join("lifeboat.toml");
        fs::write(&cfg, body).unwrap();
        let r = lbc(&cfg, &["config", "check"]).code(1);
        let line = r.one_error_line();
        assert!(line.contains(want), "{body}: {line}");
        assert!(line.contains("lifeboat.toml:"), "{line}");
    }
}
