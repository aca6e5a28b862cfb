//! The nats source against the real nats-server (JetStream) on 127.0.0.1:4222: snapshot backup
//! while a publisher publishes, restore under a new name and under the original name, memory
//! streams by export, time-range restore, dedup of a second backup, and the failure paths.
//! Every test uses its own stream names and subjects and deletes its streams afterwards.

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use lifeboat_sources::nats::client::{Client, Pipeline};
use lifeboat_sources::nats::Connection;
use serde_json::{json, Value};

const URL: &str = "nats://127.0.0.1:4222";

fn server() -> bool {
    service("NATS on 127.0.0.1:4222", Command::new("bash").args(["-c", "exec 3<>/dev/tcp/127.0.0.1/4222"]))
}

fn connect() -> Client {
    Client::connect(&Connection::parse(URL).unwrap()).unwrap()
}

fn js(c: &mut Client, api: &str, body: Value) -> Value {
    c.js(api, &body, None).unwrap_or_else(|e| panic!("{api}: {e}"))
}

/// Deletes the streams when dropped.
struct Streams(Vec<String>);
impl Drop for Streams {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&Connection::parse(URL).unwrap()) {
            for s in &self.0 {
                let _ = c.js_raw(&format!("STREAM.DELETE.{s}"), &Value::Null);
            }
        }
    }
}

/// Names unique to this test: (stream name prefix, subject prefix).
fn names(what: &str) -> (String, String) {
    let tag = unique_tag();
    (format!("LBT_{what}_{tag}"), format!("lbt.{}.{tag}", what.to_lowercase()))
}

fn create(c: &mut Client, name: &str, subjects: &[String], storage: &str) {
    js(c, &format!("STREAM.CREATE.{name}"), json!({"name": name, "subjects": subjects, "storage": storage}));
}

/// Publish `n` messages (`i` from `start`) with acks, pipelined; some carry a header.
fn publish(c: &mut Client, subject: &str, start: usize, n: usize) {
    let mut p: Pipeline<()> = Pipeline::default();
    for i in start..start + n {
        let body = format!("{{\"event\":{i},\"payload\":\"{}\"}}", "x".repeat(100 + i % 50));
        let hdr = format!("NATS/1.0\r\nX-Event: {i}\r\n\r\n");
        let headers = (i % 10 == 0).then_some(hdr.as_bytes());
        p.send(c, &format!("{subject}.{}", i % 7), headers, body.as_bytes(), ()).unwrap();
        while p.len() >= 256 {
            ack(c, &mut p);
        }
    }
    while !p.is_empty() {
        ack(c, &mut p);
    }
}

fn ack(c: &mut Client, p: &mut Pipeline<()>) {
    let (_, m) = p.next(c).unwrap().unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert!(v.get("error").is_none(), "publish failed: {v}");
}

fn state(c: &mut Client, stream: &str) -> Value {
    js(c, &format!("STREAM.INFO.{stream}"), Value::Null)["state"].clone()
}

fn msg(c: &mut Client, stream: &str, seq: u64) -> Value {
    js(c, &format!("STREAM.MSG.GET.{stream}"), json!({"seq": seq}))["message"].clone()
}

fn delete_msg(c: &mut Client, stream: &str, seq: u64) {
    js(c, &format!("STREAM.MSG.DELETE.{stream}"), json!({"seq": seq}));
}

/// A repository and a config with one nats source per `(name, streams)`.
fn setup(dir: &Path, sources: &[(&str, &str, Vec<String>)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut text = format!("[repository]\nurl = \"{}\"\n", dir.join("repo").display());
    for (name, url, streams) in sources {
        text.push_str(&format!(
            "\n[[source]]\nname = \"{name}\"\nkind = \"nats\"\nurl = \"{url}\"\nstreams = {streams:?}\n"
        ));
    }
    let cfg = dir.join("lifeboat.toml");
    fs::write(&cfg, text).unwrap();
    lbc(&cfg, &["init", "--kdf-n", "1024"]).ok();
    cfg
}

fn backup(cfg: &Path, source: &str) -> Value {
    lbc(cfg, &["backup", source, "--json"]).ok().json()[0].clone()
}

fn restore(cfg: &Path, source: &str, target: &str, extra: &[&str]) -> Run {
    let mut args = vec!["restore", "latest", "--source", source, "--target", target, "--json"];
    args.extend_from_slice(extra);
    lbc(cfg, &args)
}

#[test]
fn nats_file_stream_backup_under_publishing_restores_under_a_new_name_and_verifies() {
    if !server() {
        return;
    }
    let (name, subj) = names("ORDERS");
    let drill = format!("{name}_DRILL");
    let _cleanup = Streams(vec![name.clone(), drill.clone()]);
    let mut c = connect();
    create(&mut c, &name, &[format!("{subj}.>")], "file");
    publish(&mut c, &subj, 0, 10_000);
    for seq in [5, 6, 4000] {
        delete_msg(&mut c, &name, seq);
    }
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("events", URL, vec![name.clone()])]);

    // A publisher keeps publishing while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, subj) = (stop.clone(), subj.clone());
        std::thread::spawn(move || {
            let mut c = connect();
            let mut i = 10_000;
            while !stop.load(Ordering::Relaxed) {
                publish(&mut c, &subj, i, 50);
                i += 50;
            }
            i
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = backup(&cfg, "events");
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().unwrap();
    let m = &b["manifest"]["streams"][&name];
    assert_eq!(m["method"], "snapshot", "{b:#}");
    let (count, first, last) =
        (m["messages"].as_u64().unwrap(), m["first_seq"].as_u64(), m["last_seq"].as_u64().unwrap());
    assert_eq!(first, Some(1));
    assert!(last >= 10_000 && last as usize <= published, "last {last}, published {published}");
    // Exactly what the stream held up to its last sequence: everything but the 3 deleted.
    assert_eq!(count, last - 3, "{m:#}");
    assert!(m["state_at_start"]["messages"].as_u64().unwrap() <= count);

    // Restore under a new name while the original (same subjects) is live.
    let target = format!("nats://127.0.0.1:4222/{drill}");
    let r = restore(&cfg, "events", &target, &["--verify"]).ok().json();
    assert_eq!(r["verification"][0]["ok"], true, "{r:#}");
    assert_eq!(r["streams"][0]["how"], "republish");
    assert_eq!(r["streams"][0]["subjects_rewritten"], true);
    assert_eq!(r["streams"][0]["sequences_preserved"], true);
    let st = state(&mut c, &drill);
    assert_eq!((st["messages"].as_u64(), st["first_seq"].as_u64()), (Some(count), Some(1)), "{st}");
    assert_eq!(msg(&mut c, &drill, last)["seq"].as_u64(), Some(last));
    let (orig, copy) = (msg(&mut c, &name, 4321), msg(&mut c, &drill, 4321));
    assert_eq!(copy["data"], orig["data"]);
    assert_eq!(copy["hdrs"], orig["hdrs"], "headers survive");
    assert_eq!(copy["subject"].as_str().unwrap(), format!("{drill}.{}", orig["subject"].as_str().unwrap()));

    // An existing target is refused (one line naming it) and kept; --overwrite replaces it.
    let refused = restore(&cfg, "events", &target, &[]).code(1);
    assert!(refused.one_error_line().contains(&drill), "{}", refused.stderr);
    restore(&cfg, "events", &target, &["--overwrite", "--verify"]).ok();

    // Disaster: the original is gone; it comes back under its name through the restore API,
    // with its sequences and store times. Its own name on its own server is the source's live
    // location: a guarded restore, refused without --force and the name confirmed.
    js(&mut c, &format!("STREAM.DELETE.{name}"), Value::Null);
    let refused = restore(&cfg, "events", URL, &["--verify"]).code(4);
    assert!(refused.one_error_line().contains("--force --confirm events"), "{}", refused.stderr);
    let r = restore(&cfg, "events", URL, &["--verify", "--force", "--confirm", "events"]).ok().json();
    assert_eq!(
        (r["streams"][0]["how"].as_str(), r["verification"][0]["ok"].as_bool()),
        (Some("snapshot"), Some(true)),
        "{r:#}"
    );
    let st = state(&mut c, &name);
    assert_eq!(
        (st["messages"].as_u64(), st["first_seq"].as_u64(), st["last_seq"].as_u64()),
        (Some(count), Some(1), Some(last))
    );
    let first_time = chrono::DateTime::parse_from_rfc3339(msg(&mut c, &name, 1)["time"].as_str().unwrap()).unwrap();
    let manifest_time = chrono::DateTime::parse_from_rfc3339(m["first_ts"].as_str().unwrap()).unwrap();
    assert_eq!(first_time, manifest_time, "store times are kept");
}

#[test]
fn nats_memory_stream_is_exported_and_restored() {
    if !server() {
        return;
    }
    let (name, subj) = names("CACHE");
    let copy = format!("{name}_COPY");
    let _cleanup = Streams(vec![name.clone(), copy.clone()]);
    let mut c = connect();
    create(&mut c, &name, &[format!("{subj}.>")], "memory");
    publish(&mut c, &subj, 0, 2_000);
    delete_msg(&mut c, &name, 1000);
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("cache", URL, vec![name.clone()])]);
    let b = backup(&cfg, "cache");
    let m = &b["manifest"]["streams"][&name];
    assert_eq!((m["method"].as_str(), m["storage"].as_str()), (Some("export"), Some("memory")), "{b:#}");
    assert_eq!(
        (m["messages"].as_u64(), m["first_seq"].as_u64(), m["last_seq"].as_u64()),
        (Some(1999), Some(1), Some(2000))
    );
    assert_eq!(m["bytes"], state(&mut c, &name)["bytes"], "bytes as the server accounts them");

    let r = restore(&cfg, "cache", &format!("nats://127.0.0.1:4222/{copy}"), &["--verify"]).ok().json();
    assert_eq!(r["verification"][0]["ok"], true, "{r:#}");
    let st = state(&mut c, &copy);
    assert_eq!((st["messages"].as_u64(), st["first_seq"].as_u64()), (Some(1999), Some(1)));
    assert!(msg(&mut c, &copy, 2000)["seq"].as_u64() == Some(2000), "last sequence kept across the deleted one");
    assert_eq!(msg(&mut c, &copy, 10)["hdrs"], msg(&mut c, &name, 10)["hdrs"]);
    assert_eq!(js(&mut c, &format!("STREAM.INFO.{copy}"), Value::Null)["config"]["storage"], "memory");

    // Under its own name after a loss (export path, original subjects).
    js(&mut c, &format!("STREAM.DELETE.{name}"), Value::Null);
    let r = restore(&cfg, "cache", URL, &["--verify", "--force", "--confirm", "cache"]).ok().json();
    assert_eq!(
        (r["streams"][0]["subjects_rewritten"].as_bool(), r["verification"][0]["ok"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(msg(&mut c, &name, 78)["subject"].as_str().unwrap(), format!("{subj}.0"));
}

/// RFC 3339 of now, after a pause so that store times on either side differ.
fn mark() -> String {
    std::thread::sleep(std::time::Duration::from_millis(30));
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    std::thread::sleep(std::time::Duration::from_millis(30));
    t
}

#[test]
fn nats_time_range_restore_yields_exactly_the_messages_in_range() {
    if !server() {
        return;
    }
    let (name, subj) = names("EVENTS");
    let (part, mem, mem_part) = (format!("{name}_RANGE"), format!("{name}_MEM"), format!("{name}_MEMRANGE"));
    let _cleanup = Streams(vec![name.clone(), part.clone(), mem.clone(), mem_part.clone()]);
    let mut c = connect();
    create(&mut c, &name, &[format!("{subj}.f.>")], "file");
    create(&mut c, &mem, &[format!("{subj}.m.>")], "memory");
    publish(&mut c, &format!("{subj}.f"), 0, 500);
    publish(&mut c, &format!("{subj}.m"), 0, 500);
    let from = mark();
    publish(&mut c, &format!("{subj}.f"), 500, 700);
    publish(&mut c, &format!("{subj}.m"), 500, 700);
    let until = mark();
    publish(&mut c, &format!("{subj}.f"), 1200, 300);
    publish(&mut c, &format!("{subj}.m"), 1200, 300);
    let tmp = tempdir();
    let cfg = setup(tmp.path(), &[("file", URL, vec![name.clone()]), ("mem", URL, vec![mem.clone()])]);
    lbc(&cfg, &["backup", "--all"]).ok();

    // Snapshot backup: exactly messages 501..=1200, with their original sequences and times.
    let range = ["--from", from.as_str(), "--until", until.as_str(), "--verify"];
    let r = restore(&cfg, "file", &format!("nats://127.0.0.1:4222/{part}"), &range).ok().json();
    let s = &r["streams"][0];
    assert_eq!(
        (s["messages"].as_u64(), s["first_seq"].as_u64(), s["last_seq"].as_u64()),
        (Some(700), Some(501), Some(1200)),
        "{r:#}"
    );
    assert_eq!(r["verification"][0]["ok"], true, "{r:#}");
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(time(&s["first_ts"]), time(&msg(&mut c, &name, 501)["time"]));
    assert_eq!(time(&s["last_ts"]), time(&msg(&mut c, &name, 1200)["time"]));
    assert!(time(&s["first_ts"]) >= time(&json!(from)) && time(&s["last_ts"]) < time(&json!(until)));
    let st = state(&mut c, &part);
    assert_eq!(
        (st["messages"].as_u64(), st["first_seq"].as_u64(), st["last_seq"].as_u64()),
        (Some(700), Some(501), Some(1200))
    );
    assert_eq!(msg(&mut c, &part, 777)["data"], msg(&mut c, &name, 777)["data"]);

    // Export backup (memory stream): the same range.
    let r = restore(&cfg, "mem", &format!("nats://127.0.0.1:4222/{mem_part}"), &range).ok().json();
    let s = &r["streams"][0];
    assert_eq!(
        (s["messages"].as_u64(), s["first_seq"].as_u64(), s["last_seq"].as_u64()),
        (Some(700), Some(501), Some(1200)),
        "{r:#}"
    );
    assert_eq!(r["verification"][0]["ok"], true);

    // Bad ranges are one clear line each.
    for bad in [["--from", "yesterday"], ["--until", "2024-13-01T00:00:00Z"]] {
        let mut args = vec![bad[0], bad[1]];
        args.push("--dry-run");
        let e = restore(&cfg, "file", &format!("nats://127.0.0.1:4222/{part}"), &args).code(1);
        assert!(e.one_error_line().contains(bad[0]), "{}", e.stderr);
    }
}

#[test]
fn nats_second_backup_adds_little() {
    if !server() {
        return;
    }
    let (name, subj) = names("LEDGER");
    let _cleanup = Streams(vec![name.clone()]);
    let mut c = connect();
    create(&mut c, &name, &[format!("{subj}.>")], "file");
    publish(&mut c, &subj, 0, 30_000);
    let tmp = tempdir();
    // The server has no authentication and ignores these credentials; they must not reach
    // snapshot metadata.
    let cfg = setup(tmp.path(), &[("ledger", "nats://lbuser:s3cr3t-4f9e@127.0.0.1:4222", vec![name.clone()])]);
    let repo_size = || fs_size(&tmp.path().join("repo"));
    let first = backup(&cfg, "ledger");
    let after_first = repo_size();
    publish(&mut c, &subj, 30_000, 300); // 1 % more
    let second = backup(&cfg, "ledger");
    let growth = repo_size() - after_first;
    let (a1, a2) =
        (first["summary"]["data_added"].as_u64().unwrap(), second["summary"]["data_added"].as_u64().unwrap());
    assert!(a2 * 10 < a1, "second backup added {a2} bytes, first {a1}");
    assert!(growth * 5 < after_first, "repository grew {growth} bytes on {after_first}");
    assert_eq!(second["manifest"]["streams"][&name]["messages"], 30_300);
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().stdout;
    assert!(snaps.contains("127.0.0.1:4222") && !snaps.contains("s3cr3t"), "{snaps}");
}

fn fs_size(p: &Path) -> u64 {
    let mut total = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() { fs_size(&e.path()) } else { m.len() };
    }
    total
}

/// A private nats-server without JetStream and with a password, on a free port.
struct PrivateServer(Child, u16);
impl PrivateServer {
    fn start() -> Option<PrivateServer> {
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--user", "lb", "--pass", "pw-5ecret-91"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            assert!(std::env::var_os("CI").is_none(), "nats-server must be installed in CI");
            eprintln!("skipping the JetStream-disabled and bad-password cases: nats-server is not installed");
            return None;
        };
        let up = wait_for(std::time::Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        up.map(|_| PrivateServer(child, port))
    }
}
impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn nats_failures_name_the_source_and_record_nothing() {
    if !server() {
        return;
    }
    let (name, subj) = names("OK");
    let _cleanup = Streams(vec![name.clone()]);
    let mut c = connect();
    create(&mut c, &name, &[format!("{subj}.>")], "file");
    publish(&mut c, &subj, 0, 10);
    let private = PrivateServer::start();
    let mut sources = vec![
        ("down", "nats://127.0.0.1:1".to_string(), vec![]),
        ("missing", URL.to_string(), vec![format!("NOPE_{}", unique_tag())]),
        ("good", URL.to_string(), vec![name.clone()]),
    ];
    if let Some(p) = &private {
        sources.push(("nojs", format!("nats://lb:pw-5ecret-91@127.0.0.1:{}", p.1), vec![]));
        sources.push(("badauth", format!("nats://lb:wrong-pw-77@127.0.0.1:{}", p.1), vec![]));
    }
    let tmp = tempdir();
    let refs: Vec<(&str, &str, Vec<String>)> = sources.iter().map(|(n, u, s)| (*n, u.as_str(), s.clone())).collect();
    let cfg = setup(tmp.path(), &refs);
    let r = lbc(&cfg, &["backup", "--all"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), sources.len() - 1, "one line per failed source:\n{}", r.stderr);
    let line = |src: &str| lines.iter().find(|l| l.contains(&format!("source {src}:"))).copied().unwrap_or_default();
    assert!(line("down").contains("127.0.0.1:1") && line("down").contains("no snapshot recorded"), "{}", r.stderr);
    assert!(line("missing").contains("NOPE_") && line("missing").contains("stream not found"), "{}", r.stderr);
    if private.is_some() {
        assert!(line("nojs").contains("JetStream is not enabled"), "{}", r.stderr);
        assert!(line("badauth").contains("authentication failed"), "{}", r.stderr);
    }
    assert!(
        !r.stderr.contains("pw-5ecret-91") && !r.stderr.contains("wrong-pw-77"),
        "no password in errors: {}",
        r.stderr
    );
    let snaps = lbc(&cfg, &["snapshots", "--json"]).ok().json();
    let recorded: Vec<&str> = snaps.as_array().unwrap().iter().filter_map(|s| s["lifeboat"]["name"].as_str()).collect();
    assert_eq!(recorded, ["good"], "only the good source has a snapshot");

    // An interest-retention stream keeps nothing without consumers: only a whole restore
    // under its own name is possible, anything else is refused before the server changes.
    let (interest, isubj) = names("INTEREST");
    let _cleanup2 = Streams(vec![interest.clone()]);
    js(
        &mut c,
        &format!("STREAM.CREATE.{interest}"),
        json!({"name": interest, "subjects": [format!("{isubj}.>")], "retention": "interest"}),
    );
    let cfg2 = setup(&tmp.path().join("i"), &[("interest", URL, vec![interest.clone()])]);
    lbc(&cfg2, &["backup", "interest"]).ok();
    let e = restore(&cfg2, "interest", &format!("nats://127.0.0.1:4222/{interest}_X"), &[]).code(1);
    assert!(e.one_error_line().contains("interest-retention"), "{}", e.stderr);
    assert!(c.js_raw(&format!("STREAM.INFO.{interest}_X"), &Value::Null).unwrap().is_err(), "nothing created");

    // Restore refusals: credentials on the command line, a stream the backup lacks.
    let e = restore(&cfg, "good", "nats://u:p@127.0.0.1:4222/X", &[]).code(1);
    assert!(e.one_error_line().contains("credentials"), "{}", e.stderr);
    let e = lbc(&cfg, &["restore", "latest", "--source", "good", "--target", URL, "--stream", "NOPE"]).code(1);
    assert!(e.one_error_line().contains("no stream \"NOPE\""), "{}", e.stderr);
}
