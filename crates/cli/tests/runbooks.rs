//! The runbook pages in `docs/runbooks/` are tested documentation: each page's fenced blocks
//! run in order in a scratch directory, against the real servers, so a page cannot rot.
//!
//! The convention (written down in `docs/runbooks/README.md`):
//! - a ```` ```toml ```` (or any) block right after `<!-- file: NAME -->` is written to `NAME`
//!   (relative to the scratch directory) with the page's placeholders (`${RB}`, `${PG_DB}`, … —
//!   the table at the top of each page) filled in, as a reader fills in their own values;
//!   other `${VAR}`s stay for Lifeboat to expand at run time;
//! - a ```` ```sh ```` block runs with `bash -euo pipefail` in the scratch directory, with
//!   `lifeboat` (the binary under test) and `$RB/bin` (stand-in scripts such as `dfx`) first on
//!   `PATH`, `LIFEBOAT_PASSWORD` set and the placeholders exported as environment variables;
//! - a block right after `<!-- no-run -->` is skipped (installing systemd units, `kubectl`);
//!   the test prints how many blocks ran and how many were skipped, per page.
//!
//! Scratch resources are unique per run and removed afterwards: PostgreSQL databases, Redis
//! databases 7 and 8 (flushed), NATS streams (the test creates the CIM event stream with
//! messages first, as the live system would have it).

#![allow(clippy::unwrap_used)]

#[path = "support/common.rs"]
mod common;
#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use lifeboat_sources::nats::client::{Client, Pipeline};
use lifeboat_sources::nats::Connection;
use serde_json::{json, Value};
use servers::*;

const NATS: &str = "nats://127.0.0.1:4222";

/// Variables of the test's own environment that would change what `lifeboat` does in a block.
const SCRUB: &[&str] = &[
    "LIFEBOAT_REPOSITORY",
    "LIFEBOAT_PASSWORD_FILE",
    "LIFEBOAT_PASSWORD_COMMAND",
    "LIFEBOAT_CONFIG",
    "LIFEBOAT_COMPRESSION",
    "LIFEBOAT_FAULTS",
];

/// One fenced block of a page.
#[derive(Debug)]
struct Block {
    /// Line of the opening fence (1-based).
    line: usize,
    /// The fence's language (`sh`, `toml`, …).
    lang: String,
    /// `Some(NAME)` after `<!-- file: NAME -->`.
    file: Option<String>,
    /// After `<!-- no-run -->`.
    skip: bool,
    text: String,
}

/// The fenced blocks of a page with the marker on the line before each (blank lines between
/// are allowed).
fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    let mut lines = md.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let t = l.trim();
        if let Some(lang) = t.strip_prefix("```") {
            let indent = l.len() - l.trim_start().len();
            let mut text = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                text.push_str(l.get(indent..).unwrap_or(l.trim_start()));
                text.push('\n');
            }
            let m = marker.take();
            out.push(Block {
                line: i + 1,
                lang: lang.trim().to_string(),
                file: m.as_deref().and_then(|m| m.strip_prefix("file:")).map(|f| f.trim().to_string()),
                skip: m.as_deref() == Some("no-run"),
                text,
            });
        } else if let Some(m) = t.strip_prefix("<!--").and_then(|m| m.strip_suffix("-->")) {
            let m = m.trim();
            if m == "no-run" || m.starts_with("file:") {
                marker = Some(m.to_string());
            }
        } else if !t.is_empty() {
            marker = None;
        }
    }
    out
}

/// Replace `${NAME}` for the page's placeholders only.
fn fill(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut s = text.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("${{{k}}}"), v);
    }
    s
}

/// Run the page `docs/runbooks/NAME.md` with these placeholders; returns (ran, skipped).
fn run_page(name: &str, dir: &Path, vars: &BTreeMap<String, String>) -> (usize, usize) {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../docs/runbooks/{name}.md"));
    let md = fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    // Every placeholder the test fills in is documented at the top of the page.
    for k in vars.keys() {
        assert!(md.contains(&format!("`{k}`")), "{name}.md does not document the placeholder {k}");
    }
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let lifeboat_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}:{}", bin.display(), lifeboat_dir.display(), std::env::var("PATH").unwrap_or_default());
    let (mut ran, mut skipped) = (0, 0);
    for b in blocks(&md) {
        let at = format!("{name}.md:{}", b.line);
        if b.skip {
            skipped += 1;
            println!("[{at}] skipped (no-run)");
            continue;
        }
        if let Some(f) = &b.file {
            let target = dir.join(f);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&target, fill(&b.text, vars)).unwrap();
            ran += 1;
            println!("[{at}] wrote {f}");
            continue;
        }
        assert!(
            b.lang == "sh",
            "{at}: a ```{} block needs <!-- file: NAME --> or <!-- no-run --> (or be ```sh)",
            b.lang
        );
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail", "-c", &b.text]);
        for v in SCRUB {
            c.env_remove(v);
        }
        c.current_dir(dir).env("PATH", &path).env("LIFEBOAT_PASSWORD", PASSWORD).env("RB", dir);
        for (k, v) in vars {
            c.env(k, v);
        }
        let started = std::time::Instant::now();
        let r = run(&mut c);
        let took = started.elapsed().as_secs_f64();
        println!("[{at}] ({took:.1} s) $ {}\n{}{}", b.text.trim_end().replace('\n', "\n  "), r.stdout, r.stderr);
        assert_eq!(
            r.code, 0,
            "{at}: the block failed (exit {}):\n{}\nstdout:\n{}\nstderr:\n{}",
            r.code, b.text, r.stdout, r.stderr
        );
        ran += 1;
    }
    println!("{name}.md: {ran} blocks ran, {skipped} skipped");
    assert!(ran >= 5, "{name}.md: only {ran} blocks ran");
    assert!(skipped * 3 <= ran, "{name}.md: too many skipped blocks ({skipped} of {})", ran + skipped);
    (ran, skipped)
}

/// Stops the background processes a page started (each writes its pid to `$RB/NAME.pid`).
struct Pids(std::path::PathBuf);
impl Drop for Pids {
    fn drop(&mut self) {
        for e in fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                if let Ok(pid) = fs::read_to_string(e.path()) {
                    let _ = Command::new("kill").arg(pid.trim()).status();
                }
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn base_vars(dir: &Path) -> BTreeMap<String, String> {
    BTreeMap::from([("RB".to_string(), dir.display().to_string())])
}

/// Drops PostgreSQL databases when dropped.
struct PgDbs(Vec<String>);
impl Drop for PgDbs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = Command::new("dropdb")
                .args(["-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", d])
                .status();
        }
    }
}

/// Flushes Redis databases when dropped.
struct RedisDbs(Vec<u32>);
impl Drop for RedisDbs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = Command::new("redis-cli").args(["-h", "127.0.0.1", "-n", &d.to_string(), "FLUSHDB"]).status();
        }
    }
}

/// Deletes NATS streams when dropped.
struct Streams(Vec<String>);
impl Drop for Streams {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&Connection::parse(NATS).unwrap()) {
            for s in &self.0 {
                let _ = c.js_raw(&format!("STREAM.DELETE.{s}"), &Value::Null);
            }
        }
    }
}

fn nats_up() -> bool {
    service("NATS on 127.0.0.1:4222", Command::new("bash").args(["-c", "exec 3<>/dev/tcp/127.0.0.1/4222"]))
}

/// Create a file stream `name` on `subject.>` with `n` events.
fn event_stream(name: &str, subject: &str, n: usize) {
    let mut c = Client::connect(&Connection::parse(NATS).unwrap()).unwrap();
    c.js(
        &format!("STREAM.CREATE.{name}"),
        &json!({"name": name, "subjects": [format!("{subject}.>")], "storage": "file"}),
        None,
    )
    .unwrap();
    let mut p: Pipeline<()> = Pipeline::default();
    for i in 0..n {
        let body = format!("{{\"event\":{i},\"cid\":\"bafy{i:08}\"}}");
        p.send(&mut c, &format!("{subject}.order.{}", i % 5), None, body.as_bytes(), ()).unwrap();
        while p.len() >= 128 {
            p.next(&mut c).unwrap().unwrap();
        }
    }
    while !p.is_empty() {
        p.next(&mut c).unwrap().unwrap();
    }
}

#[test]
fn runbook_quri() {
    let dir = tempdir();
    run_page("quri", dir.path(), &base_vars(dir.path()));
}

#[test]
fn runbook_factory() {
    let dir = tempdir();
    let _pids = Pids(dir.path().to_path_buf());
    let mut vars = base_vars(dir.path());
    vars.insert("HEALTH_PORT".into(), free_port().to_string());
    run_page("factory", dir.path(), &vars);
}

#[test]
fn runbook_continuum() {
    let dir = tempdir();
    run_page("continuum", dir.path(), &base_vars(dir.path()));
}

#[test]
fn runbook_cim() {
    if !nats_up() {
        return;
    }
    let dir = tempdir();
    let tag = unique_tag();
    let (events, subject) = (format!("RB_EVENTS_{tag}"), format!("rb.{tag}"));
    let _streams = Streams(vec![events.clone(), format!("{events}_DRILL"), format!("{events}_AM")]);
    event_stream(&events, &subject, 500);
    let mut vars = base_vars(dir.path());
    vars.insert("NATS_URL".into(), NATS.into());
    vars.insert("EVENTS".into(), events);
    vars.insert("EVENTS_SUBJECT".into(), subject);
    run_page("cim", dir.path(), &vars);
}

#[test]
fn runbook_aitbc() {
    if !postgres_up() || !redis_up() {
        return;
    }
    let dir = tempdir();
    let _pids = Pids(dir.path().to_path_buf());
    let tag = unique_tag().to_lowercase();
    let (db, restored) = (format!("rb_aitbc_{tag}"), format!("rb_aitbc_{tag}_restored"));
    let _dbs = PgDbs(vec![db.clone(), restored.clone()]);
    let _redis = RedisDbs(vec![7, 8]);
    for d in [7u32, 8] {
        redis_cli(d, &["FLUSHDB"]);
    }
    let mut vars = base_vars(dir.path());
    vars.insert("PG_DB".into(), db);
    vars.insert("PG_RESTORED".into(), restored);
    vars.insert("PGHOST".into(), "127.0.0.1".into());
    vars.insert("PGUSER".into(), "postgres".into());
    vars.insert("REDIS_DB".into(), "7".into());
    vars.insert("REDIS_RESTORE_DB".into(), "8".into());
    vars.insert("API_PORT".into(), free_port().to_string());
    vars.insert("METRICS_PORT".into(), free_port().to_string());
    run_page("aitbc", dir.path(), &vars);
}

#[test]
fn blocks_are_read_with_their_markers() {
    let md = "# t\n<!-- file: a/b.toml -->\n```toml\nx = \"${RB}\"\n```\n\n<!-- no-run -->\n\n```sh\nrm -rf /\n```\n  ```sh\n  echo hi\n  ```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 3);
    assert_eq!((b[0].file.as_deref(), b[0].skip), (Some("a/b.toml"), false));
    assert_eq!(fill(&b[0].text, &BTreeMap::from([("RB".to_string(), "/x".to_string())])), "x = \"/x\"\n");
    assert!(b[1].skip && b[1].file.is_none());
    assert_eq!((b[2].lang.as_str(), b[2].text.as_str(), b[2].skip), ("sh", "echo hi\n", false));
}
