//! `kind = "nats"`: JetStream streams through the snapshot API (memory streams by message
//! export). Restores under the same name (the stream restore API: sequences, times and
//! consumers kept) or a new name / time range (`--from`/`--until`) by republishing;
//! `--target nats://HOST:PORT[/NEWNAME] [--stream NAME]`.

use std::path::Path;
use std::time::Instant;

use lifeboat_ops::guard::{Location, Server};
use lifeboat_ops::verify::scratch;
use lifeboat_repository::archiver::BackupStats;
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::Repository;
use lifeboat_sources::nats;
use serde::Deserialize;
use serde_json::json;

use super::{
    manifest_of, setting, Archive, Comparison, Found, Generated, PreparedRestore, RestoreRequest, Restored, Row,
    RunContext, Settings, Source, TargetCheck,
};
use crate::error::{Context as _, Result, ServiceError};
use crate::human::{count, duration};
use crate::plan::Plan;

/// The server when a source has no `url`.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Settings of a nats source.
#[derive(Debug, Default, Deserialize)]
pub struct Nats {
    /// Server URL(s), `nats://[user:password@]host:port` (use `${VAR}` for secrets).
    pub url: Option<String>,
    /// User (wins over one in the URL).
    pub user: Option<String>,
    /// Password (wins over one in the URL); use `${VAR}`.
    pub password: Option<String>,
    /// Streams to back up (default: every stream of the account).
    #[serde(default)]
    pub streams: Vec<String>,
}

impl Settings for Nats {
    const NAME: &'static str = "nats";
}

impl Nats {
    /// Connection settings, secrets substituted; `user`/`password` win over credentials in the
    /// URL.
    fn connection(&self, name: &str) -> Result<nats::Connection> {
        let url = setting(name, &self.url)?.unwrap_or_else(|| DEFAULT_URL.to_string());
        let mut c = nats::Connection::parse(&url)?;
        if let Some(u) = setting(name, &self.user)? {
            c.user = Some(u);
        }
        if let Some(p) = setting(name, &self.password)? {
            c.password = Some(p);
        }
        Ok(c)
    }

    /// `nats://HOST:PORT[/NAME]` (with this source's credentials) and the stream name, if any.
    fn target(&self, name: &str, target: &str, flag: &str) -> Result<(nats::Connection, Option<String>)> {
        let mut conn = self.connection(name)?;
        let Some(rest) = target.strip_prefix("nats://") else {
            return Err(ServiceError::msg(format!("{flag} for a nats source is nats://HOST:PORT[/NEWNAME]")));
        };
        if rest.contains('@') {
            return Err(ServiceError::msg(format!(
                "{flag} must not contain credentials (the command line is visible to other users); they come from the source's config"
            )));
        }
        let (hostport, stream) = rest.split_once('/').unwrap_or((rest, ""));
        conn.servers = nats::Connection::parse(&format!("nats://{hostport}"))?.servers;
        Ok((conn, Some(stream.to_string()).filter(|s| !s.is_empty())))
    }
}

impl Source for Nats {
    fn kind(&self) -> &'static str {
        Self::NAME
    }

    fn validate(&self, _name: &str) -> Result<(), String> {
        // Only a URL without ${VAR} can be checked now; errors never repeat it.
        if let Some(u) = self.url.as_deref().filter(|u| !u.contains("${")) {
            nats::Connection::parse(u).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn backup(&self, name: &str, archive: &mut Archive<'_>) -> Result<BackupStats> {
        let started = nats::start(&self.connection(name)?, &self.streams)?;
        let mut g = Generated::from(started);
        g.chunk_sizes = Some(lifeboat_sources::sqlite::CHUNK_SIZES);
        archive(g)
    }

    fn prepare_restore<'a>(
        &'a self,
        name: &str,
        repo: &'a Repository,
        snap: &'a SnapshotEntry,
        req: &'a RestoreRequest,
    ) -> Result<PreparedRestore<'a>> {
        let (src, manifest): (_, nats::Manifest) = manifest_of(snap)?;
        let (conn, rename) = self.target(name, &req.target_text(), "--target")?;
        let range = time_range(req)?;
        let names = select(&manifest, &req.streams)?;
        if rename.is_some() && names.len() > 1 {
            let all: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            return Err(ServiceError::msg(format!(
                "the backup holds {} streams ({}); name one with --stream to restore it under a new name",
                all.len(),
                all.join(", ")
            )));
        }
        let mut backups = Vec::new();
        for name in names {
            backups.push(nats::StreamBackup::load(repo, &snap.snapshot.tree, name, &manifest.streams[name])?);
        }
        let opts = nats::RestoreOptions { rename, overwrite: req.overwrite, range };
        let mut plan = plan(snap, req, &conn, &backups, &opts);
        plan.verify = req.verify.then(|| "message count and first/last sequence of each stream".to_string());
        let source = src.name.clone();
        let run = move |_: &RunContext| -> Result<Restored> {
            let started = Instant::now();
            let (mut restored, mut verified) = (Vec::new(), Vec::new());
            for b in &backups {
                let r = nats::restore(repo, b, &conn, &opts)?;
                if req.verify {
                    verified.push(nats::verify(&conn, &r.target, &r.expected_for(b, &opts))?);
                }
                restored.push(r);
            }
            let took = started.elapsed();
            Ok(Restored {
                json: json!({
                    "snapshot": snap.id, "source": source, "server": conn.server(), "streams": restored,
                    "verification": (!verified.is_empty()).then_some(&verified),
                    "duration_seconds": took.as_secs_f64(),
                }),
                lines: lines(snap, &conn, &restored, &verified, took),
                mismatches: verified.iter().flat_map(|v| v.mismatches.iter().cloned()).collect(),
                what: "stream",
                ..Default::default()
            })
        };
        Ok(PreparedRestore { plan, run: Box::new(run) })
    }

    /// Every stream republished into a new `LIFEBOAT_VERIFY_…` stream on the source's server
    /// (its subjects prefixed when they overlap with a live stream), then message count and
    /// sequences checked; the scratch streams are deleted afterwards.
    fn restore_test(
        &self,
        name: &str,
        repo: &Repository,
        snap: &SnapshotEntry,
        _tmp: Option<&Path>,
        _check: &TargetCheck<'_>,
    ) -> Found {
        let (_, m): (_, nats::Manifest) = manifest_of(snap).map_err(|e| e.to_string())?;
        let conn = self.connection(name).map_err(|e| e.to_string())?;
        let mut streams = scratch::Streams::new(&conn);
        let (mut problems, mut skipped, mut details) = (Vec::new(), Vec::new(), Vec::new());
        for (stream, sm) in &m.streams {
            let b = nats::StreamBackup::load(repo, &snap.snapshot.tree, stream, sm).map_err(|e| e.to_string())?;
            let opts = nats::RestoreOptions { rename: Some(streams.add()), overwrite: false, range: None };
            match nats::restore(repo, &b, &conn, &opts) {
                Err(e) if e.to_string().contains("under its original name") => skipped.push(e.to_string()),
                Err(e) => problems.push(e.to_string()),
                Ok(r) => {
                    let v = nats::verify(&conn, &r.target, &r.expected_for(&b, &opts)).map_err(|e| e.to_string())?;
                    problems.extend(v.mismatches);
                    details.push(json!({"stream": stream, "scratch": r.target, "messages": v.found.messages,
                        "first_seq": v.found.first_seq, "last_seq": v.found.last_seq}));
                }
            }
        }
        let target = format!("streams {} on {}", streams.names.join(", "), conn.server());
        Ok(lifeboat_ops::verify::RestoreTest {
            target,
            problems,
            skipped,
            details: json!({"streams": details}),
            ..Default::default()
        })
    }

    fn compare(&self, name: &str, _repo: &Repository, snap: &SnapshotEntry, target: &str) -> Result<Comparison> {
        let (_, m): (_, nats::Manifest) = manifest_of(snap)?;
        // A bare name is a stream on the source's server.
        let (conn, stream) = if target.starts_with("nats://") {
            self.target(name, target, "the target")?
        } else {
            (self.connection(name)?, Some(target.to_string()))
        };
        if stream.is_some() && m.streams.len() > 1 {
            let names: Vec<&str> = m.streams.keys().map(String::as_str).collect();
            return Err(ServiceError::msg(format!(
                "the backup holds {} streams ({}); compare with nats://HOST:PORT",
                names.len(),
                names.join(", ")
            )));
        }
        let mut out = Vec::new();
        for (name, sm) in &m.streams {
            let live = stream.clone().unwrap_or_else(|| name.clone());
            let v = nats::verify(&conn, &live, &nats::Expected::from(sm))?;
            let label = if &live == name { name.clone() } else { format!("{name} → {live}") };
            out.push(Row::new(format!("{label} messages"), Some(sm.messages), Some(v.found.messages)));
            out.push(Row::new(format!("{label} first sequence"), sm.first_seq, v.found.first_seq));
            out.push(Row::new(format!("{label} last sequence"), sm.last_seq, v.found.last_seq));
        }
        Ok(Comparison { what: "stream", rows: out })
    }

    fn compares(&self) -> bool {
        true
    }

    fn live_location(&self, name: &str) -> Result<Option<Location>> {
        let conn = self.connection(name)?;
        let servers = conn.servers.iter().map(|(h, p)| Server::new(Some(h), *p)).collect();
        let names = (!self.streams.is_empty()).then(|| self.streams.clone());
        Ok(Some(Location::Streams { servers, names }))
    }
}

/// An RFC 3339 time as ns since the epoch (a space may stand for the `T`).
fn parse_time(flag: &str, s: &str) -> Result<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(&s.trim().replacen(' ', "T", 1)).map_err(|_| {
        ServiceError::msg(format!("{flag}: invalid time {s:?} (expected RFC 3339, e.g. 2024-01-15T12:00:00Z)"))
    })?;
    t.timestamp_nanos_opt().with_context(|| format!("{flag}: time {s:?} out of range"))
}

/// `--from`/`--until` as a time range (none when neither is given).
fn time_range(req: &RestoreRequest) -> Result<Option<nats::TimeRange>> {
    let from = req.from.as_deref().map(|s| parse_time("--from", s)).transpose()?;
    let until = req.until.as_deref().map(|s| parse_time("--until", s)).transpose()?;
    if let (Some(f), Some(u)) = (from, until) {
        if f >= u {
            return Err(ServiceError::msg("--from must be before --until"));
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

fn how(b: &nats::StreamBackup, target: &str, opts: &nats::RestoreOptions) -> &'static str {
    if b.manifest.method == nats::Method::Snapshot && target == b.name && opts.range.is_none() {
        "the stream restore API (sequences, times and consumers kept)"
    } else {
        "republishing its messages (sequences kept, new store times)"
    }
}

/// What restoring `backups` on the server of `conn` does, stream by stream.
fn plan(
    snap: &SnapshotEntry,
    req: &RestoreRequest,
    conn: &nats::Connection,
    backups: &[nats::StreamBackup],
    opts: &nats::RestoreOptions,
) -> Plan {
    let mut p = Plan::new(snap, req.target_text());
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
        let messages = count(b.manifest.messages as usize, "message");
        let what = format!("{verb} on {} from {} ({messages}) through {how}{range}{note}", conn.server(), b.name);
        p.step(action, what, Some(b.data.size));
        p.bytes += b.data.size;
        streams.push(json!({"stream": b.name, "target": target, "how": how, "messages": b.manifest.messages, "bytes": b.data.size}));
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

/// The human report of a nats restore.
fn lines(
    snap: &SnapshotEntry,
    conn: &nats::Connection,
    restored: &[nats::Restored],
    verified: &[nats::Verification],
    took: std::time::Duration,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in restored {
        let renamed = if r.target != r.stream { format!(" as {}", r.target) } else { String::new() };
        out.push(format!(
            "restored stream {}{renamed} from snapshot {} on {}: {} messages ({}, {}) by {}",
            r.stream,
            snap.id.short(),
            conn.server(),
            r.messages,
            seqs(r.first_seq, r.last_seq),
            if r.sequences_preserved { "original numbers" } else { "renumbered" },
            if r.how == "snapshot" { "the stream restore API" } else { "republishing" },
        ));
        if r.subjects_rewritten {
            out.push(format!("  subjects are now {} (the originals belong to another stream)", r.subjects.join(", ")));
        }
        for n in &r.notes {
            out.push(format!("  note: {n}"));
        }
    }
    for v in verified.iter().filter(|v| v.ok) {
        out.push(format!(
            "verified {}: {} messages, {} as expected",
            v.stream,
            v.found.messages,
            seqs(v.found.first_seq, v.found.last_seq)
        ));
    }
    out.push(format!("done in {}", duration(took)));
    out
}
