//! The runbooks' smaller needs, end to end: `diff SNAP1 SNAP2` (files added, removed, changed;
//! a text diff of a command source's output — a status query on the real PostgreSQL server),
//! `ls --hash` and `restore --checksum` for model files, `drill --random`, and the free-space
//! check of `health` and `storage usage` against `[jobs] storage_low_percent`.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/scratch.rs"]
mod scratch;
#[path = "support/servers.rs"]
mod servers;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use scratch::*;
use servers::*;

fn hex_of(data: &[u8]) -> String {
    lifeboat_crypto::sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn diff_lists_added_removed_and_changed_files_and_diffs_a_command_output() {
    if !postgres_up() {
        return;
    }
    let dir = tempdir();
    let docs = dir.path().join("docs");
    fs::create_dir_all(docs.join("sub")).unwrap();
    for f in ["keep.txt", "change.txt", "gone.txt", "sub/same.txt"] {
        write_text(&docs.join(f), 5_000, f);
    }
    let db = format!("lb_diff_{}", unique_tag());
    let _dbs = PgDbs(vec![db.clone()]);
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(&db, "CREATE TABLE jobs(id int PRIMARY KEY, state text); INSERT INTO jobs SELECT g, 'queued' FROM generate_series(1, 20) g;");
    let (cfg, _tmp) = setup(
        dir.path(),
        &format!(
            "[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\n\n[[source]]\nname = \"job-status\"\nkind = \"command\"\ncommand = [\"psql\", \"-X\", \"-A\", \"-t\", \"-h\", \"127.0.0.1\", \"-U\", \"postgres\", \"-d\", \"{db}\", \"-c\", \"SELECT id, state FROM jobs ORDER BY id\"]\n",
            docs.display()
        ),
    );
    lbc(&cfg, &["backup", "--all"]).ok();
    write_text(&docs.join("change.txt"), 6_000, "changed");
    fs::remove_file(docs.join("gone.txt")).unwrap();
    write_text(&docs.join("new.txt"), 1_000, "new");
    fs::set_permissions(docs.join("keep.txt"), fs::Permissions::from_mode(0o600)).unwrap();
    psql(&db, "UPDATE jobs SET state = 'done' WHERE id = 7; DELETE FROM jobs WHERE id = 15;");
    lbc(&cfg, &["backup", "--all"]).ok();

    let ids = |source: &str| -> Vec<String> {
        lbc(&cfg, &["snapshots", "--source", source, "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap()[..8].to_string())
            .collect()
    };
    let d = ids("docs");
    let out = lbc(&cfg, &["diff", &d[0], &d[1]]).ok().stdout;
    let base = docs.display().to_string();
    for want in [
        format!("+    {base}/new.txt"),
        format!("-    {base}/gone.txt"),
        format!("M    {base}/change.txt"),
        format!("U    {base}/keep.txt"),
    ] {
        assert!(out.lines().any(|l| l == want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("same.txt"), "{out}");
    assert!(out.contains("1 added, 1 removed, 1 changed, 1 changed in metadata only"), "{out}");
    let j = lbc(&cfg, &["diff", &d[0], &d[1], "--json"]).ok().json();
    assert_eq!((j["added"].as_u64(), j["removed"].as_u64(), j["changed"].as_u64()), (Some(1), Some(1), Some(1)));
    assert!(j["text_diffs"].as_array().unwrap().is_empty(), "files snapshots get no text diff");
    // The same snapshot twice: nothing.
    let same = lbc(&cfg, &["diff", &d[1], &d[1]]).ok().stdout;
    assert!(same.contains("0 added, 0 removed, 0 changed"), "{same}");

    // A command source: the output's lines that changed, as a unified diff.
    let c = ids("job-status");
    let out = lbc(&cfg, &["diff", &c[0], &c[1]]).ok().stdout;
    assert!(out.contains("-7|queued\n+7|done\n"), "{out}");
    assert!(out.contains("-15|queued\n"), "{out}");
    assert!(out.contains(" 6|queued\n") && out.contains("@@ -4,"), "context lines and a hunk header: {out}");

    // Bad input: one line, exit 1.
    let bad = lbc(&cfg, &["diff", "ffffffff", &d[0]]).code(1);
    assert!(bad.one_error_line().contains("ffffffff"), "{}", bad.stderr);
}

#[test]
fn ls_hash_and_restore_checksum_prove_a_model_file() {
    let dir = tempdir();
    let (repo, models) = (dir.path().join("repo"), dir.path().join("models"));
    init(&repo);
    fs::create_dir_all(&models).unwrap();
    let model = models.join("llama-fine-tuned.bin");
    write_random(&model, 5 << 20, 42);
    let want = hex_of(&fs::read(&model).unwrap());
    backup_json(&repo, &[s(&models)]);

    // ls --hash: sha256sum's layout, from the stored content.
    let path = model.display().to_string();
    let out = lb(&repo, &["ls", "latest", "--hash"]).ok().stdout;
    assert!(out.lines().any(|l| l == format!("{want}  {path}")), "{out}");
    assert!(out.lines().any(|l| l.starts_with(&format!("{:<64}  ", "-"))), "a directory has no hash: {out}");
    let j = lb(&repo, &["ls", "latest", "--hash", "--json"]).ok().json();
    let row = j.as_array().unwrap().iter().find(|r| r["path"] == path.as_str()).unwrap();
    assert_eq!(row["sha256"], want.as_str());
    let long = lb(&repo, &["ls", "latest", "--hash", "--long"]).ok().stdout;
    assert!(long.lines().any(|l| l.starts_with(&want) && l.ends_with(&path) && l.contains("5.00 MiB")), "{long}");

    // restore --checksum: the restored file is hashed and compared.
    let target = dir.path().join("restored");
    let good = format!("{path}=sha256:{want}");
    let r = lb(&repo, &["restore", "latest", "--target", s(&target), "--checksum", &good]).ok();
    assert!(r.stdout.contains(&format!("checksum ok: {path} sha256:{want}")), "{}", r.stdout);
    assert_eq!(fs::read(under(&target, &model)).unwrap(), fs::read(&model).unwrap());

    let wrong = format!("{path}=sha256:{}", "0".repeat(64));
    let again = dir.path().join("again");
    let r = lb(&repo, &["restore", "latest", "--target", s(&again), "--checksum", &wrong]).code(1);
    let line = r.one_error_line();
    assert!(line.contains("checksum mismatch") && line.contains(&want), "{line}");

    // Bad input: exit 2, one line, nothing restored.
    let none = dir.path().join("none");
    let r = lb(&repo, &["restore", "latest", "--target", s(&none), "--checksum", "model.bin=md5:abc"]).code(2);
    assert!(r.stderr.contains("expected PATH=sha256:HEX"), "{}", r.stderr);
    let missing = format!("{}/nope.bin=sha256:{want}", models.display());
    let r = lb(&repo, &["restore", "latest", "--target", s(&none), "--checksum", &missing]).code(2);
    assert!(r.one_error_line().contains("is not a file in snapshot"), "{}", r.stderr);
    assert!(!none.exists(), "nothing was restored");
}

#[test]
fn drill_random_restores_one_of_the_snapshots() {
    let dir = tempdir();
    let docs = dir.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    let (cfg, tmp) = setup(
        dir.path(),
        &format!(
            "[drill]\nreport_dir = \"{}\"\n\n[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\nrto = \"10m\"\n",
            dir.path().join("reports").display(),
            docs.display()
        ),
    );
    for i in 0..3 {
        write_text(&docs.join(format!("f{i}.txt")), 3_000, "drill");
        lbc(&cfg, &["backup", "--all"]).ok();
    }
    let snaps: Vec<String> = lbc(&cfg, &["snapshots", "--json"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut drilled = std::collections::BTreeSet::new();
    for _ in 0..12 {
        lbt(&cfg, &tmp, &["drill", "--random"]).ok();
    }
    for e in lbc(&cfg, &["audit", "--json"]).ok().json().as_array().unwrap() {
        if e["action"] == "drill" {
            let id = e["snapshot"].as_str().unwrap().to_string();
            assert!(snaps.contains(&id), "{id} is not a snapshot of docs");
            drilled.insert(id);
        }
    }
    // Twelve random picks among three snapshots: all the same has probability 3 × (1/3)^12, one
    // run in 177,000 (with six picks it was one in 243, and CI met it once).
    assert!(drilled.len() > 1, "--random always picked {drilled:?}");
    assert_clean(&tmp);
    let r = lbt(&cfg, &tmp, &["drill", "--random", "--snapshot", &snaps[0][..8], "--source", "docs"]).code(2);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

#[test]
fn health_and_storage_usage_check_free_space_against_the_threshold() {
    let dir = tempdir();
    let docs = dir.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    write_text(&docs.join("a.txt"), 3_000, "space");
    let source =
        format!("[[source]]\nname = \"docs\"\nkind = \"files\"\npath = \"{}\"\nrpo = \"1d\"\n", docs.display());
    let (cfg, _tmp) = setup(dir.path(), &format!("[jobs]\nstorage_low_percent = 0\n\n{source}"));
    lbc(&cfg, &["backup", "--all"]).ok();
    let ok = lbc(&cfg, &["storage", "usage"]).ok();
    assert!(ok.stdout.contains("free space") && ok.stdout.contains("ok, threshold 0 %"), "{}", ok.stdout);
    let h = lbc(&cfg, &["health", "--json"]).json();
    assert_eq!(h["free_space"]["low"], false, "{h:#}");
    assert!(h["free_space"]["total_bytes"].as_u64().unwrap() > 0);
    let healthy = h["exit_code"].as_i64().unwrap();

    // Every file system has less than 100 % free: the same repository is now low on space.
    let repo_line = fs::read_to_string(&cfg).unwrap().lines().take(2).collect::<Vec<_>>().join("\n");
    fs::write(&cfg, format!("{repo_line}\n\n[jobs]\nstorage_low_percent = 100\n\n{source}")).unwrap();
    let low = lbc(&cfg, &["storage", "usage"]).code(1);
    assert!(low.stdout.contains("LOW: below 100 %"), "{}", low.stdout);
    assert_eq!(lbc(&cfg, &["storage", "usage", "--json"]).code(1).json()["free_space"]["low"], true);
    let h = lbc(&cfg, &["health"]);
    assert!(h.code >= 1 && i64::from(h.code) >= healthy, "{}", h.stdout);
    assert!(h.stdout.contains("free space:") && h.stdout.contains("LOW"), "{}", h.stdout);
    let j = lbc(&cfg, &["health", "--json"]).json();
    assert_eq!(j["free_space"]["low"], true);
    assert_ne!(j["status"], "ok");

    // A threshold out of range is one clear line.
    fs::write(&cfg, format!("{repo_line}\n\n[jobs]\nstorage_low_percent = 150\n\n{source}")).unwrap();
    let bad = lbc(&cfg, &["storage", "usage"]);
    assert_ne!(bad.code, 0);
    assert!(bad.one_error_line().contains("storage_low_percent must be 0 to 100"), "{}", bad.stderr);
}

/// A local HTTP server answering every GET with `body` (status 200), until the test ends.
fn json_server(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

#[test]
fn probes_grade_a_falling_cycles_balance_keep_its_history_and_forecast_the_critical_threshold() {
    let dir = tempdir();
    let (repo, state) = (dir.path().join("repo"), dir.path().join("balance"));
    // A stand-in for `dfx canister status`: the balance falls by 1 T cycles per call.
    fs::write(&state, "4000000000000").unwrap();
    let dfx = dir.path().join("dfx-status");
    fs::write(
        &dfx,
        format!(
            "#!/bin/sh\nb=$(cat {st})\necho \"Canister status call result for quri.\"\necho \"Status: Running\"\n\
             printf 'Balance: %s Cycles\\n' \"$(echo $b | sed -e ':a' -e 's/\\([0-9]\\)\\([0-9]\\{{3\\}}\\)\\($\\|_\\)/\\1_\\2\\3/;ta')\"\n\
             echo $((b - 1000000000000)) > {st}\n",
            st = s(&state)
        ),
    )
    .unwrap();
    chmod(&dfx, 0o755);
    let port = json_server(r#"{"queue":{"depth":"1,250"}}"#);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = dir.path().join("lifeboat.toml");
    let head = format!("[repository]\nurl = \"{}\"\n", s(&repo));
    fs::write(
        &cfg,
        format!(
            r#"{head}
[[probe]]
name = "cycles"
command = ["{dfx}"]
regex = 'Balance: ([0-9_,]+) Cycles'
warning_below = 2_500_000_000_000
critical_below = 1_500_000_000_000
unit = "cycles"

[[probe]]
name = "queue"
url = "http://127.0.0.1:{port}/status"
json_path = "$.queue.depth"
warning_above = 1000

[[probe]]
name = "secretless"
command = ["sh", "-c", "test -n \"$LIFEBOAT_PASSWORD$PROBE_PASSED\" && echo 1 || echo 0"]

[[probe]]
name = "passed"
command = ["sh", "-c", "echo $PROBE_PASSED"]
env = ["PROBE_PASSED"]

[[probe]]
name = "words"
command = ["echo", "hello"]

[[probe]]
name = "hangs"
command = ["sleep", "30"]
timeout = "1s"

[[probe]]
name = "down"
url = "http://127.0.0.1:{closed}/"
"#,
            dfx = s(&dfx)
        ),
    )
    .unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    let probe = |args: &[&str]| {
        run(bare().env("LIFEBOAT_PASSWORD", PASSWORD).env("PROBE_PASSED", "42").arg("--config").arg(&cfg).args(args))
    };

    // The balance falls: 4 T ok, 3 T ok, 2 T warning, 1 T critical — the exit code says so.
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = probe(&["probe", "cycles"]);
        codes.push(r.code);
        assert!(r.stdout.contains("cycles"), "{r:#?}");
    }
    assert_eq!(codes, [0, 0, 1, 2]);
    let r = probe(&["--json", "probe", "cycles", "queue", "secretless", "passed"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let value = |name: &str| v["probes"].as_array().unwrap().iter().find(|p| p["probe"] == name).unwrap().clone();
    assert_eq!(value("cycles")["value"], 0.0);
    assert_eq!(value("cycles")["status"], "critical");
    assert!(value("cycles")["message"].as_str().unwrap().contains("below 1_500_000_000_000 cycles"), "{v:#}");
    assert_eq!(value("queue")["value"], 1250.0);
    assert_eq!(value("queue")["status"], "warning");
    // The repository password (and any variable not listed) never reaches a probe; one listed in
    // `env` does.
    assert_eq!(value("secretless")["value"], 0.0, "{v:#}");
    assert_eq!(value("passed")["value"], 42.0, "{v:#}");
    assert_eq!(r.code, 2, "{r:#?}");

    // Probes that yield no number are unknown (3), each with one line saying why.
    let r = probe(&["probe", "--no-record"]);
    assert_eq!(r.code, 3, "{r:#?}");
    let line = |name: &str| {
        r.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {r:#?}")).to_string()
    };
    assert!(line("words").contains("unknown") && line("words").contains("printed no number"), "{r:#?}");
    assert!(line("hangs").contains("did not finish within 1s"), "{r:#?}");
    assert!(line("down").contains("cannot connect"), "{r:#?}");
    assert!(!r.stdout.contains(&closed.to_string()), "a probe URL was shown: {r:#?}");

    // History: the kept values (the --no-record run kept none), the trend and the forecast.
    let h = probe(&["--json", "probe", "history", "cycles", "--since", "1h"]).ok();
    let h: serde_json::Value = serde_json::from_str(&h.stdout).unwrap();
    let values: Vec<f64> = h["samples"].as_array().unwrap().iter().map(|x| x["value"].as_f64().unwrap()).collect();
    assert_eq!(values, [4e12, 3e12, 2e12, 1e12, 0.0]);
    assert!(h["burn_per_day"].as_f64().unwrap() < 0.0, "{h:#}");
    assert!(h["forecast"].is_null(), "already past the critical threshold: {h:#}");
    let text = probe(&["probe", "history", "queue"]).ok().stdout;
    assert!(text.contains("1_250") || text.contains("1250"), "{text}");
    assert!(text.contains("trend: unknown (1 samples"), "{text}");

    // health shows each probe's newest kept value; a critical probe makes it critical (2).
    let r = probe(&["health"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.stdout.contains("probe cycles: critical 0 ("), "{r:#?}");
    assert!(r.stdout.contains("probe queue: warning 1250 ("), "{r:#?}");

    // Bad input: one line, exit 3 (unknown) as for health.
    let r = probe(&["probe", "nope"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.trim().starts_with("lifeboat: probe unknown: no probe named \"nope\""), "{r:#?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:#?}");
    for (bad, want) in [
        ("[[probe]]\nname = \"x\"\n", "needs `command` (argv) or `url`"),
        ("[[probe]]\nname = \"x\"\ncommand = [\"true\"]\nregex = \"no group\"\n", "one group"),
        ("[[probe]]\nname = \"x y\"\ncommand = [\"true\"]\n", "use letters, digits"),
        (
            "[[probe]]\nname = \"x\"\ncommand = [\"true\"]\nwarning_below = 1\ncritical_below = 5\n",
            "critical_below (5) is above warning_below (1)",
        ),
    ] {
        fs::write(&cfg, format!("{head}\n{bad}")).unwrap();
        let r = lbc(&cfg, &["config", "check"]);
        assert_ne!(r.code, 0, "{bad}");
        assert!(r.stderr.contains("lifeboat.toml:4: [[probe]]") && r.stderr.contains(want), "{bad}: {r:#?}");
    }
}
