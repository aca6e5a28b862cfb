//! The `nats` kind in the CLI: backing up a source's streams, and
//! `restore SNAPSHOT --target nats://HOST:PORT[/NEWNAME] [--stream NAME] [--from T] [--until T]`.

use anyhow::{bail, Context, Result};
use lifeboat_format::SourceInfo;
use lifeboat_repository::archiver::{BackupOptions, BackupStats};
use lifeboat_repository::{snapshots, Repository};
use lifeboat_sources::nats;

use super::{backup_generated, configured, fail_on_mismatches, manifest_of, setting};
use crate::args::{Global, RestoreArgs};
use crate::cmd::restore::plan::Plan;
use crate::config::{substitute, SourceSection};
use crate::{exit, output};
use lifeboat_ops::guard::{Location, Server};

/// The server when a source has no `url`.
pub(crate) const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Connection settings of a nats source, secrets substituted; `user`/`password` win over
/// credentials in the URL.
pub(crate) fn connection(src: &SourceSection) -> Result<nats::Connection> {
    let url = match &src.url {
        Some(u) => substitute(u, &format!("source {}", src.name))?,
        None => DEFAULT_URL.to_string(),
    };
    let mut c = nats::Connection::parse(&url)?;
    if let Some(u) = setting(src, &src.user)? {
        c.user = Some(u);
    }
    if let Some(p) = setting(src, &src.password)? {
        c.password = Some(p);
    }
    Ok(c)
}

/// Back up the source's streams (all of the account's when `streams` is empty).
pub(super) fn backup(
    repo: &Repository,
    known: &[snapshots::SnapshotEntry],
    src: &SourceSection,
    info: SourceInfo,
    base: BackupOptions,
) -> Result<BackupStats> {
    let started = nats::start(&connection(src)?, &src.streams)?;
    backup_generated(repo, known, src, info, base, started.into())
}

/// `--target nats://HOST:PORT[/NEWNAME]`: the server (with the configured source's credentials)
/// and the new stream name, if any.
fn target(a: &RestoreArgs, section: Option<&SourceSection>) -> Result<(nats::Connection, Option<String>)> {
    let t = a.target.to_string_lossy();
    let Some(rest) = t.strip_prefix("nats://") else {
        bail!("--target for a nats source is nats://HOST:PORT[/NEWNAME]");
    };
    if rest.contains('@') {
        bail!("--target must not contain credentials (the command line is visible to other users); they come from the source's config");
    }
    let (hostport, name) = match rest.split_once('/') {
        Some((h, n)) if !n.is_empty() => (h, Some(n.to_string())),
        Some((h, _)) => (h, None),
        None => (rest, None),
    };
    let server = nats::Connection::parse(&format!("nats://{hostport}"))?;
    let mut conn = match section {
        Some(s) => connection(s)?,
        None => nats::Connection::default(),
    };
    conn.servers = server.servers;
    Ok((conn, name))
}

/// An RFC 3339 time as ns since the epoch (a space may stand for the `T`).
fn parse_time(flag: &str, s: &str) -> Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(&s.trim().replacen(' ', "T", 1))
        .with_context(|| format!("{flag}: invalid time {s:?} (expected RFC 3339, e.g. 2024-01-15T12:00:00Z)"))?;
    t.timestamp_nanos_opt().with_context(|| format!("{flag}: time {s:?} out of range"))
}

/// `--from`/`--until` as a time range (none when neither is given).
fn time_range(a: &RestoreArgs) -> Result<Option<nats::TimeRange>> {
    let from = a.from.as_deref().map(|s| parse_time("--from", s)).transpose()?;
    let until = a.until.as_deref().map(|s| parse_time("--until", s)).transpose()?;
    if let (Some(f), Some(u)) = (from, until) {
        if f >= u {
            bail!("--from must be before --until");
        }
    }
    Ok((from.is_some() || until.is_some()).then_some(nats::TimeRange { from, until }))
}

/// The streams of the backup to restore: those named with `--stream`, or all.
fn select<'m>(manifest: &'m nats::Manifest, wanted: &[String]) -> Result<Vec<&'m String>> {
    if wanted.is_empty() {
        return Ok(manifest.streams.keys().collect());
    }
    wanted
        .iter()
        .map(|w| {
            manifest.streams.get_key_value(w).map(|(k, _)| k).with_context(|| {
                let have: Vec<&str> = manifest.streams.keys().map(String::as_str).collect();
                format!("the backup has no stream {w:?} (it has: {})", have.join(", "))
            })
        })
        .collect()
}

/// A stream's info file and data node from the snapshot.
fn stream_backup(
    repo: &Repository,
    snap: &snapshots::SnapshotEntry,
    name: &str,
    m: &nats::StreamManifest,
) -> Result<nats::StreamBackup> {
    Ok(nats::StreamBackup::load(repo, &snap.snapshot.tree, name, m)?)
}

/// Restore a nats snapshot into a server.
pub(super) fn restore(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<i32> {
    let (src, manifest): (_, nats::Manifest) = manifest_of(snap)?;
    let section = configured(g, &src.name)?;
    let (conn, rename) = target(a, section.as_ref())?;
    let range = time_range(a)?;
    let names = select(&manifest, &a.streams)?;
    if rename.is_some() && names.len() > 1 {
        let all: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        bail!(
            "the backup holds {} streams ({}); name one with --stream to restore it under a new name",
            all.len(),
            all.join(", ")
        );
    }
    let mut backups = Vec::new();
    for name in names {
        backups.push(stream_backup(repo, snap, name, &manifest.streams[name])?);
    }
    let opts = nats::RestoreOptions { rename, overwrite: a.overwrite, range };
    let mut plan = plan(snap, a, &conn, &backups, &opts);
    plan.verify = a.verify.then(|| "message count and first/last sequence of each stream".to_string());
    if let Some(code) = crate::cmd::restore::guard::gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    let (mut restored, mut verified) = (Vec::new(), Vec::new());
    for b in &backups {
        let r = nats::restore(repo, b, &conn, &opts)?;
        if a.verify {
            verified.push(nats::verify(&conn, &r.target, &expected(b, &r, &opts))?);
        }
        restored.push(r);
    }
    report(g, snap, &src.name, &conn, &restored, &verified, started.elapsed())?;
    let mismatches: Vec<String> = verified.iter().flat_map(|v| v.mismatches.iter().cloned()).collect();
    fail_on_mismatches(&mismatches, "stream")?;
    Ok(exit::OK)
}

/// What the restored stream must hold: the manifest's counts for a whole stream (sequences only
/// where they were kept), the restore's own count for a time range.
fn expected(b: &nats::StreamBackup, r: &nats::Restored, opts: &nats::RestoreOptions) -> nats::Expected {
    r.expected_for(b, opts)
}

fn how(b: &nats::StreamBackup, target: &str, opts: &nats::RestoreOptions) -> &'static str {
    if b.manifest.method == nats::Method::Snapshot && target == b.name && opts.range.is_none() {
        "the stream restore API (sequences, times and consumers kept)"
    } else {
        "republishing its messages (sequences kept, new store times)"
    }
}

/// What restoring `backups` on the server of `conn` does, stream by stream.
fn plan(
    snap: &snapshots::SnapshotEntry,
    a: &RestoreArgs,
    conn: &nats::Connection,
    backups: &[nats::StreamBackup],
    opts: &nats::RestoreOptions,
) -> Plan {
    let mut p = Plan::new(snap, a.target.to_string_lossy());
    let (mut streams, mut names) = (Vec::new(), Vec::new());
    for b in backups {
        let target = opts.rename.clone().unwrap_or_else(|| b.name.clone());
        let how = how(b, &target, opts);
        let range = if opts.range.is_some() { ", only messages stored in the --from/--until range" } else { "" };
        let (action, verb, note) = if opts.overwrite {
            ("replace-stream", format!("delete stream {target} if it exists and recreate it"), "")
        } else {
            ("create-stream", format!("create stream {target}"), " (refused if it exists: --overwrite replaces it)")
        };
        let messages = crate::cmd::restore::plan::count(b.manifest.messages as usize, "message");
        let what = format!("{verb} on {} from {} ({messages}) through {how}{range}{note}", conn.server(), b.name);
        p.step(action, what, Some(b.data.size));
        p.bytes += b.data.size;
        streams.push(serde_json::json!({"stream": b.name, "target": target, "how": how, "messages": b.manifest.messages, "bytes": b.data.size}));
        names.push(target);
    }
    p.headline = format!("would restore {} on nats {}:", p.subject(), conn.server());
    let servers = conn.servers.iter().map(|(h, port)| Server::new(Some(h), *port)).collect();
    p.writes_to = Some(Location::Streams { servers, names: Some(names) });
    p.detail("server", conn.server()).detail("overwrite", opts.overwrite).detail("plan", streams);
    p
}

fn seqs(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!("sequences {f}–{l}"),
        _ => "empty".into(),
    }
}

fn report(
    g: &Global,
    snap: &snapshots::SnapshotEntry,
    source: &str,
    conn: &nats::Connection,
    restored: &[nats::Restored],
    verified: &[nats::Verification],
    took: std::time::Duration,
) -> Result<()> {
    if g.json {
        return output::json(&serde_json::json!({
            "snapshot": snap.id, "source": source, "server": conn.server(), "streams": restored,
            "verification": (!verified.is_empty()).then_some(verified),
            "duration_seconds": took.as_secs_f64(),
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for r in restored {
        let renamed = if r.target != r.stream { format!(" as {}", r.target) } else { String::new() };
        println!(
            "restored stream {}{renamed} from snapshot {} on {}: {} messages ({}, {}) by {}",
            r.stream,
            snap.id.short(),
            conn.server(),
            r.messages,
            seqs(r.first_seq, r.last_seq),
            if r.sequences_preserved { "original numbers" } else { "renumbered" },
            if r.how == "snapshot" { "the stream restore API" } else { "republishing" },
        );
        if r.subjects_rewritten {
            println!("  subjects are now {} (the originals belong to another stream)", r.subjects.join(", "));
        }
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
    for v in verified.iter().filter(|v| v.ok) {
        println!(
            "verified {}: {} messages, {} as expected",
            v.stream,
            v.found.messages,
            seqs(v.found.first_seq, v.found.last_seq)
        );
    }
    println!("done in {}", output::duration(took));
    Ok(())
}
