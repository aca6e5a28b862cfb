//! `lifeboat compare SNAPSHOT TARGET`: the counts a backup's manifest recorded (rows per table,
//! keys per database, messages per stream) beside the same counts in a live target — the
//! runbooks' `compare-counts`, e.g. after a restore or before trusting a replica.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_sources::{client, mariadb, nats, postgres, redis, sqlite};
use serde::Serialize;

use crate::args::{CompareArgs, Global};
use crate::cmd::sources as src;
use crate::{context, exit, output};

/// One compared count.
#[derive(Debug, Serialize)]
struct Row {
    /// Table, database or stream (and what is counted when not obvious).
    name: String,
    /// In the backup's manifest (`None`: not in the backup).
    backup: Option<u64>,
    /// In the live target (`None`: missing there).
    live: Option<u64>,
    /// Whether they are equal.
    ok: bool,
}

fn row(name: String, backup: Option<u64>, live: Option<u64>) -> Row {
    Row { name, ok: backup == live, backup, live }
}

/// Rows for counts keyed by name (tables); names on either side only are rows too.
fn rows(backup: &BTreeMap<String, u64>, live: &BTreeMap<String, u64>) -> Vec<Row> {
    let mut names: Vec<&String> = backup.keys().chain(live.keys()).collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|n| row(n.clone(), backup.get(n).copied(), live.get(n).copied())).collect()
}

/// Run `compare`.
pub fn run(g: &Global, a: &CompareArgs) -> Result<i32> {
    let repo = context::open(g)?;
    let snap = snapshots::find(&repo, &a.snapshot, &crate::cmd::filter(&a.filter)?)?;
    let Some(info) = &snap.snapshot.source else {
        bail!(
            "snapshot {} is a plain file backup: compare works on postgres, mariadb, sqlite, redis and nats snapshots",
            snap.id.short()
        );
    };
    let (what, list) = match info.kind.as_str() {
        "postgres" => ("table", postgres_rows(g, &snap, &a.target)?),
        "mariadb" => ("table", mariadb_rows(g, &snap, &a.target)?),
        "sqlite" => ("table", sqlite_rows(&snap, &a.target)?),
        "redis" => ("database", redis_rows(g, &snap, &a.target)?),
        "nats" => ("stream", nats_rows(g, &snap, &a.target)?),
        k => bail!("snapshot {} is of a {k} source, which has no counts to compare", snap.id.short()),
    };
    let differ = list.iter().filter(|r| !r.ok).count();
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": info.name, "kind": info.kind, "target": a.target,
            "ok": differ == 0, "rows": list,
        }))?;
    } else {
        print(&snap, &a.target, what, &list);
    }
    Ok(if differ == 0 { exit::OK } else { exit::FAILURE })
}

fn print(snap: &SnapshotEntry, target: &str, what: &str, list: &[Row]) {
    println!("snapshot {} ({}) against {target}", snap.id.short(), crate::cmd::verify::label(snap));
    let width = list.iter().map(|r| r.name.len()).max().unwrap_or(0).max(what.len());
    println!("{what:<width$}  {:>12}  {:>12}  {:>10}", "backup", "live", "difference");
    let show = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into());
    for r in list {
        let diff = match (r.backup, r.live) {
            (Some(b), Some(l)) => format!("{:+}", l as i128 - b as i128),
            _ => String::new(),
        };
        let flag = if r.ok { "" } else { "  DIFFERS" };
        println!("{:<width$}  {:>12}  {:>12}  {diff:>10}{flag}", r.name, show(r.backup), show(r.live));
    }
    let differ = list.iter().filter(|r| !r.ok).count();
    println!(
        "{} of {} counts equal{}",
        list.len() - differ,
        list.len(),
        if differ > 0 { format!(", {differ} differ") } else { String::new() }
    );
}

/// The client connection of the snapshot's configured source, else the local default.
fn client_conn(g: &Global, name: &str) -> Result<client::Connection> {
    match src::configured(g, name)? {
        Some(s) => src::client_connection(&s),
        None => Ok(client::Connection::default()),
    }
}

fn postgres_rows(g: &Global, snap: &SnapshotEntry, database: &str) -> Result<Vec<Row>> {
    let (info, m): (_, postgres::Manifest) = src::manifest_of(snap)?;
    let v = postgres::verify(&client_conn(g, &info.name)?, database, &m)?;
    Ok(rows(&m.tables, &v.tables))
}

fn mariadb_rows(g: &Global, snap: &SnapshotEntry, database: &str) -> Result<Vec<Row>> {
    let (info, m): (_, mariadb::Manifest) = src::manifest_of(snap)?;
    let mut live = mariadb::counts(&client_conn(g, &info.name)?, database)?;
    // Empty tables are not in a mariadb manifest (the dump has no INSERT for them).
    live.retain(|t, n| *n > 0 || m.tables.contains_key(t));
    Ok(rows(&m.tables, &live))
}

fn sqlite_rows(snap: &SnapshotEntry, file: &str) -> Result<Vec<Row>> {
    let (_, m): (_, sqlite::Manifest) = src::manifest_of(snap)?;
    if !Path::new(file).is_file() {
        bail!("{file}: no such database file");
    }
    Ok(rows(&m.tables, &sqlite::counts(Path::new(file))?))
}

/// `redis://HOST:PORT[/DB]` or a database index on the source's configured server.
fn redis_target(g: &Global, source: &str, target: &str) -> Result<(redis::Connection, Option<u32>)> {
    let mut conn = match src::configured(g, source)? {
        Some(s) => src::redis_connection(&s)?,
        None => redis::Connection::default(),
    };
    let Some(rest) = target.strip_prefix("redis://") else {
        let db = target
            .parse::<u32>()
            .map_err(|_| anyhow::anyhow!("a redis target is redis://HOST:PORT[/DB] or a database index"))?;
        return Ok((conn, Some(db)));
    };
    let (hostport, db) = rest.split_once('/').map(|(h, d)| (h, Some(d))).unwrap_or((rest, None));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    conn.host = host.to_string();
    conn.port = port.parse().with_context(|| format!("bad port in {target}"))?;
    let db = db
        .filter(|d| !d.is_empty())
        .map(str::parse::<u32>)
        .transpose()
        .with_context(|| format!("bad database index in {target}"))?;
    Ok((conn, db))
}

fn redis_rows(g: &Global, snap: &SnapshotEntry, target: &str) -> Result<Vec<Row>> {
    let (info, m): (_, redis::Manifest) = src::manifest_of(snap)?;
    let (conn, target_db) = redis_target(g, &info.name, target)?;
    if target_db.is_some() && m.keys.len() > 1 {
        bail!("the backup holds {} databases; compare with redis://HOST:PORT (no database index)", m.keys.len());
    }
    let mut c = redis::Client::connect(&conn)?;
    let mut out = Vec::new();
    for (db, want) in &m.keys {
        let to = target_db.unwrap_or(*db);
        let got = c.count(to, m.pattern.as_deref())?;
        let name = if to == *db { format!("db{db} keys") } else { format!("db{db} → db{to} keys") };
        out.push(row(name, Some(*want), Some(got)));
    }
    Ok(out)
}

/// `nats://HOST:PORT[/STREAM]` or a stream name on the source's configured server.
fn nats_target(g: &Global, source: &str, target: &str) -> Result<(nats::Connection, Option<String>)> {
    let mut conn = match src::configured(g, source)? {
        Some(s) => src::nats::connection(&s)?,
        None => nats::Connection::parse(src::nats::DEFAULT_URL)?,
    };
    let Some(rest) = target.strip_prefix("nats://") else { return Ok((conn, Some(target.to_string()))) };
    if rest.contains('@') {
        bail!("the target must not contain credentials (they come from the source's config)");
    }
    let (hostport, stream) = rest.split_once('/').unwrap_or((rest, ""));
    conn.servers = nats::Connection::parse(&format!("nats://{hostport}"))?.servers;
    Ok((conn, Some(stream.to_string()).filter(|s| !s.is_empty())))
}

fn nats_rows(g: &Global, snap: &SnapshotEntry, target: &str) -> Result<Vec<Row>> {
    let (info, m): (_, nats::Manifest) = src::manifest_of(snap)?;
    let (conn, stream) = nats_target(g, &info.name, target)?;
    if stream.is_some() && m.streams.len() > 1 {
        let names: Vec<&str> = m.streams.keys().map(String::as_str).collect();
        bail!("the backup holds {} streams ({}); compare with nats://HOST:PORT", names.len(), names.join(", "));
    }
    let mut out = Vec::new();
    for (name, sm) in &m.streams {
        let live = stream.clone().unwrap_or_else(|| name.clone());
        let v = nats::verify(&conn, &live, &nats::Expected::from(sm))?;
        let label = if &live == name { name.clone() } else { format!("{name} → {live}") };
        out.push(row(format!("{label} messages"), Some(sm.messages), Some(v.found.messages)));
        out.push(row(format!("{label} first sequence"), sm.first_seq, v.found.first_seq));
        out.push(row(format!("{label} last sequence"), sm.last_seq, v.found.last_seq));
    }
    Ok(out)
}
