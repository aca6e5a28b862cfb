//! Config-driven commands: `backup --all|SOURCE…`, `sources`, `config check`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use chrono::Local;
use lifeboat_format::SourceInfo;
use lifeboat_repository::archiver::{backup as run_backup, BackupOptions, BackupStats};
use lifeboat_repository::{snapshots, util, Repository};
use lifeboat_sources::client;
use lifeboat_sources::command::{self, CommandOptions};
use lifeboat_sources::files::{walk, FilesOptions};
use lifeboat_sources::{mariadb, postgres, redis, sqlite};

use super::restore::guard::gate;
use super::restore::plan;
use crate::args::{BackupArgs, Global, RestoreArgs};
use crate::config::{substitute, CommandSpec, Config, SourceSection};
use crate::{context, exit, output};

pub(crate) mod nats;
mod redis_rdb;

/// Back up one source into its own snapshot.
fn backup_one(
    repo: &Repository,
    known: &[snapshots::SnapshotEntry],
    src: &SourceSection,
    a: &BackupArgs,
    interrupt: &Arc<AtomicBool>,
) -> Result<BackupStats> {
    let what = format!("source {}", src.name);
    let host = util::hostname();
    let mut tags = src.tags.clone();
    tags.extend(a.tags.iter().cloned());
    let mut info = SourceInfo { name: src.name.clone(), kind: src.kind.clone(), manifest: None };
    let base =
        BackupOptions { tags, hostname: Some(host.clone()), interrupt: Some(interrupt.clone()), ..Default::default() };
    match src.kind.as_str() {
        "files" => {
            let mut paths: Vec<std::path::PathBuf> = Vec::new();
            for p in src.paths.iter().chain(src.path.iter()) {
                paths.push(substitute(p, &what)?.into());
            }
            let opts = FilesOptions { paths, excludes: src.exclude.clone(), one_file_system: src.one_file_system };
            let (paths, walker) = walk(&opts)?;
            info.manifest = Some(serde_json::json!({ "paths": paths, "excludes": src.exclude }));
            let parent = if a.force { None } else { snapshots::parent_in(known, &host, &paths, Some(&src.name)) };
            let opts = BackupOptions { paths, parent, excludes: src.exclude.clone(), source: Some(info), ..base };
            Ok(run_backup(repo, walker, &opts)?)
        }
        "command" => {
            let (display, shell) = match &src.command {
                Some(CommandSpec::Argv(v)) => (v.clone(), false),
                Some(CommandSpec::Script(s)) => (vec![s.clone()], true),
                None => anyhow::bail!("{what}: no command"),
            };
            let argv = display.iter().map(|x| substitute(x, &what)).collect::<Result<Vec<_>>>()?;
            let filename = src.filename.clone().unwrap_or_else(|| format!("{}.out", src.name));
            let opts =
                CommandOptions { argv, shell: shell || src.shell, filename, allow_failure: src.allow_failure, display };
            let (paths, entries, hook) = command::start(&opts)?;
            let parent = snapshots::parent_in(known, &host, &paths, Some(&src.name));
            let opts = BackupOptions { paths, parent, source: Some(info), finish: Some(hook), ..base };
            Ok(run_backup(repo, entries, &opts)?)
        }
        "sqlite" => {
            let path = substitute(src.path.as_deref().unwrap_or_default(), &what)?;
            // `prepared` owns the temporary copy: it lives until the backup is done.
            let prepared = sqlite::prepare(std::path::Path::new(&path))?;
            let manifest = Some(serde_json::to_value(&prepared.manifest)?);
            let generated =
                Generated { paths: prepared.paths.clone(), entries: prepared.entries, manifest, finish: None };
            backup_generated(repo, known, src, info, base, generated)
        }
        "postgres" => {
            let database = substitute(src.database.as_deref().unwrap_or_default(), &what)?;
            let started = postgres::start(&client_connection(src)?, &database, &dump_options(src)?)?;
            let manifest = Some(serde_json::to_value(&started.manifest)?);
            let generated =
                Generated { paths: started.paths, entries: started.entries, manifest, finish: Some(started.finish) };
            backup_generated(repo, known, src, info, base, generated)
        }
        "mariadb" => {
            let database = substitute(src.database.as_deref().unwrap_or_default(), &what)?;
            let started = mariadb::start(&client_connection(src)?, &database)?;
            backup_generated(repo, known, src, info, base, started.into())
        }
        "redis" => {
            let conn = redis_connection(src)?;
            let started = match src.mode.as_deref() {
                Some("rdb") => redis::start_rdb(&conn)?,
                _ => redis::start(&conn, &src.databases, src.pattern.as_deref())?,
            };
            backup_generated(repo, known, src, info, base, started.into())
        }
        "nats" => nats::backup(repo, known, src, info, base),
        k => anyhow::bail!("{what}: kind {k:?} is not supported by this version"),
    }
}

/// What a database-like source produced for one backup.
struct Generated {
    paths: Vec<String>,
    entries: std::vec::IntoIter<lifeboat_repository::archiver::Entry>,
    /// Known before the data is read (counts taken in the dump's snapshot).
    manifest: Option<serde_json::Value>,
    /// Produces (or completes) the manifest once the data is read.
    finish: Option<lifeboat_repository::archiver::ManifestHook>,
}

impl From<lifeboat_sources::Started> for Generated {
    /// A started backup whose manifest is produced only once the data is read.
    fn from(s: lifeboat_sources::Started) -> Generated {
        Generated { paths: s.paths, entries: s.entries, manifest: None, finish: Some(s.finish) }
    }
}

/// Back up generated files: database chunk sizes, the source's previous snapshot as parent.
fn backup_generated(
    repo: &Repository,
    known: &[snapshots::SnapshotEntry],
    src: &SourceSection,
    mut info: SourceInfo,
    base: BackupOptions,
    g: Generated,
) -> Result<BackupStats> {
    info.manifest = g.manifest;
    let host = base.hostname.clone().unwrap_or_else(util::hostname);
    let parent = snapshots::parent_in(known, &host, &g.paths, Some(&src.name));
    let opts = BackupOptions {
        paths: g.paths,
        parent,
        source: Some(info),
        finish: g.finish,
        chunk_sizes: Some(dump_chunk_sizes(&src.kind)),
        ..base
    };
    Ok(run_backup(repo, g.entries, &opts)?)
}

/// Chunk sizes (min, average, max) for a generated file. Logical dumps change row by row at
/// random places (pgbench updates random accounts), so smaller chunks pay: measured with
/// bench/pgbench-dedup.sh (docs/sources.md). SQLite copies change whole 4 KiB pages and use the
/// sizes measured with bench/sqlite-dedup.sh.
fn dump_chunk_sizes(kind: &str) -> (u32, u32, u32) {
    match kind {
        "postgres" | "mariadb" => lifeboat_sources::DUMP_CHUNK_SIZES,
        _ => sqlite::CHUNK_SIZES,
    }
}

/// The snapshot's source and its manifest, decoded as the kind's manifest type.
pub(crate) fn manifest_of<T: serde::de::DeserializeOwned>(snap: &snapshots::SnapshotEntry) -> Result<(&SourceInfo, T)> {
    let src = snap.snapshot.source.as_ref().ok_or_else(|| anyhow::anyhow!("snapshot has no source"))?;
    let manifest = serde_json::from_value(src.manifest.clone().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("snapshot {} has no usable {} manifest: {e}", snap.id.short(), src.kind))?;
    Ok((src, manifest))
}

/// The generated file of a database-like snapshot: stored at the root, under its file name.
pub(crate) fn artifact(
    repo: &Repository,
    snap: &snapshots::SnapshotEntry,
    file: &str,
) -> Result<lifeboat_format::Node> {
    lifeboat_repository::tree::find_node(repo, &snap.snapshot.tree, file)?
        .ok_or_else(|| anyhow::anyhow!("snapshot {} does not contain {file}", snap.id.short()))
}

/// The config entry of a snapshot's source (its connection settings), if the config has one.
pub(crate) fn configured(g: &Global, name: &str) -> Result<Option<SourceSection>> {
    Ok(context::config(g)?.and_then(|c| c.find(name).ok().cloned()))
}

/// A setting of a source with `${VAR}` substituted.
pub(crate) fn setting(src: &SourceSection, v: &Option<String>) -> Result<Option<String>> {
    v.as_deref().map(|x| substitute(x, &format!("source {}", src.name))).transpose()
}

/// A postgres or mariadb connection's server, for plans and the guard.
fn server_of(conn: &client::Connection, default_port: u16) -> lifeboat_ops::guard::Server {
    lifeboat_ops::guard::Server::new(conn.host.as_deref(), conn.port.unwrap_or(default_port))
}

/// Print each difference a verification found and fail; `Ok` when there are none.
fn fail_on_mismatches(mismatches: &[String], what: &str) -> Result<()> {
    if mismatches.is_empty() {
        return Ok(());
    }
    for m in mismatches {
        eprintln!("lifeboat: verify: {m}");
    }
    anyhow::bail!("restored {what} does not match the backup's manifest ({} differences)", mismatches.len())
}

/// Restore a mariadb snapshot into the database named by `--target`.
fn restore_mariadb(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<i32> {
    let (src, manifest): (_, mariadb::Manifest) = manifest_of(snap)?;
    let node = artifact(repo, snap, &manifest.file)?;
    let conn = match configured(g, &src.name)? {
        Some(s) => client_connection(&s)?,
        None => client::Connection::default(),
    };
    let database = a.target.to_string_lossy().into_owned();
    let load = format!("load {} ({} tables) with the mariadb client", manifest.file, manifest.tables.len());
    let mut plan = plan::database(snap, server_of(&conn, 3306), &database, load, node.size, a.overwrite);
    plan.detail("tables", &manifest.tables);
    plan.verify =
        a.verify.then(|| format!("row counts of {} tables against the backup's manifest", manifest.tables.len()));
    if let Some(code) = gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    mariadb::restore(repo, &node, &conn, &database, a.overwrite)?;
    let v = if a.verify { Some(mariadb::verify(&conn, &database, &manifest)?) } else { None };
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": src.name, "database": database,
            "verification": v.as_ref().map(|(ok, m)| serde_json::json!({"ok": ok, "mismatches": m})),
            "duration_seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} from snapshot {} into database {database} in {}",
            manifest.file,
            snap.id.short(),
            output::duration(started.elapsed())
        );
    }
    if let Some((_, m)) = &v {
        fail_on_mismatches(m, "database")?;
    }
    Ok(exit::OK)
}

/// Connection settings of a redis source, secrets substituted.
pub(crate) fn redis_connection(src: &SourceSection) -> Result<redis::Connection> {
    let sub = |v: &Option<String>| setting(src, v);
    let d = redis::Connection::default();
    Ok(redis::Connection {
        host: sub(&src.host)?.unwrap_or(d.host),
        port: src.port.unwrap_or(d.port),
        user: sub(&src.user)?,
        password: sub(&src.password)?,
    })
}

/// Restore a redis snapshot into a running server. `--target` is `redis://HOST:PORT[/DB]`, or a
/// database index on the source's configured server.
fn restore_redis(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<i32> {
    let (src, manifest): (_, redis::Manifest) = manifest_of(snap)?;
    if manifest.mode == "rdb" {
        return redis_rdb::restore(g, a, repo, snap, &src.name, &manifest);
    }
    let mut conn = match configured(g, &src.name)? {
        Some(s) => redis_connection(&s)?,
        None => redis::Connection::default(),
    };
    let target = a.target.to_string_lossy().into_owned();
    let target_db = if let Some(rest) = target.strip_prefix("redis://") {
        let (hostport, db) = rest.split_once('/').map(|(h, d)| (h, Some(d))).unwrap_or((rest, None));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
        conn.host = host.to_string();
        conn.port = port.parse().map_err(|_| anyhow::anyhow!("bad port in {target}"))?;
        db.filter(|d| !d.is_empty())
            .map(str::parse::<u32>)
            .transpose()
            .map_err(|_| anyhow::anyhow!("bad database index in {target}"))?
    } else {
        Some(target.parse::<u32>().map_err(|_| {
            anyhow::anyhow!("--target for a redis source is redis://HOST:PORT[/DB] or a database index")
        })?)
    };
    let mut files = Vec::new();
    for (db, file) in &manifest.files {
        files.push((*db, artifact(repo, snap, file)?));
    }
    let server = lifeboat_ops::guard::Server::new(Some(&conn.host), conn.port);
    let sizes = files.iter().map(|(db, n)| (*db, n.size)).collect();
    let mut plan = plan::redis_keys(snap, &target, server, &manifest.keys, target_db, &sizes, a.overwrite);
    plan.verify = a.verify.then(|| "keys per database against the backup's manifest".to_string());
    if let Some(code) = gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    let restored = redis::restore(repo, &files, &conn, target_db, manifest.pattern.as_deref(), a.overwrite)?;
    let verification = if a.verify { Some(redis::verify(&conn, &manifest, target_db)?) } else { None };
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": src.name, "restored": restored,
            "verification": verification.as_ref().map(|(ok, m)| serde_json::json!({"ok": ok, "mismatches": m})),
            "duration_seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        let total: u64 = restored.values().sum();
        println!(
            "restored {total} keys from snapshot {} to {}:{} in {}",
            snap.id.short(),
            conn.host,
            conn.port,
            output::duration(started.elapsed())
        );
    }
    if let Some((_, m)) = &verification {
        fail_on_mismatches(m, "keys")?;
    }
    Ok(exit::OK)
}

/// How a postgres source dumps (`format`, `jobs`, `compress`, `globals`, `tmp_dir`).
fn dump_options(src: &SourceSection) -> Result<postgres::DumpOptions> {
    let format =
        if src.format.as_deref() == Some("directory") { postgres::Format::Directory } else { postgres::Format::Custom };
    Ok(postgres::DumpOptions {
        format,
        jobs: src.jobs.unwrap_or(1),
        compress: src.compress.unwrap_or(0),
        globals: src.globals,
        tmp_dir: setting(src, &src.tmp_dir)?.map(Into::into),
    })
}

/// Connection settings of a postgres or mariadb source, secrets substituted.
pub(crate) fn client_connection(src: &SourceSection) -> Result<client::Connection> {
    let sub = |v: &Option<String>| setting(src, v);
    Ok(client::Connection {
        host: sub(&src.host)?,
        port: src.port,
        user: sub(&src.user)?,
        password: sub(&src.password)?,
        bin_dir: sub(&src.bin_dir)?,
    })
}

/// Restore a postgres snapshot into the database named by `--target`.
fn restore_postgres(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<i32> {
    let (src, manifest): (_, postgres::Manifest) = manifest_of(snap)?;
    let node = artifact(repo, snap, &manifest.file)?;
    let section = configured(g, &src.name)?;
    let conn = match &section {
        Some(s) => client_connection(s)?,
        None => client::Connection::default(),
    };
    let globals = match (&manifest.globals, a.globals) {
        (Some(gl), true) => Some(artifact(repo, snap, &gl.file)?),
        (None, true) => {
            anyhow::bail!("snapshot {} has no globals (back up with `globals = true` in the source)", snap.id.short())
        }
        (_, false) => None,
    };
    let ropts = postgres::RestoreOptions {
        overwrite: a.overwrite,
        jobs: section.as_ref().and_then(|s| s.jobs),
        tmp_dir: match &section {
            Some(s) => setting(s, &s.tmp_dir)?.map(Into::into),
            None => None,
        },
    };
    let database = a.target.to_string_lossy().into_owned();
    let load = format!(
        "load {} ({} format, {} tables) with pg_restore",
        manifest.file,
        manifest.format,
        manifest.tables.len()
    );
    let mut plan = plan::database(snap, server_of(&conn, 5432), &database, load, node.size, a.overwrite);
    if let Some(gnode) = &globals {
        let what = "apply the snapshot's roles and tablespaces (globals.sql) to the server".into();
        plan.steps.insert(0, plan::Step { action: "apply-globals", what, bytes: Some(gnode.size) });
    }
    plan.detail("format", &manifest.format).detail("globals", globals.is_some()).detail("tables", &manifest.tables);
    plan.verify =
        a.verify.then(|| format!("row counts of {} tables against the backup's manifest", manifest.tables.len()));
    if let Some(code) = gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    let applied = match &globals {
        Some(gnode) => Some(postgres::globals::restore(repo, gnode, &conn)?),
        None => None,
    };
    postgres::restore(repo, &node, &manifest, &conn, &database, &ropts)?;
    let v = if a.verify { Some(postgres::verify(&conn, &database, &manifest)?) } else { None };
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": src.name, "database": database, "verification": v,
            "globals": applied, "duration_seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} from snapshot {} into database {database} in {}{}",
            manifest.file,
            snap.id.short(),
            output::duration(started.elapsed()),
            if v.is_some() { format!("; {} tables' row counts checked", manifest.tables.len()) } else { String::new() }
        );
    }
    if let Some(v) = &v {
        fail_on_mismatches(&v.mismatches, "database")?;
    }
    Ok(exit::OK)
}

/// Restore a snapshot of a database-like source to its kind's target; `None` for file trees.
pub fn restore(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<Option<i32>> {
    match snap.snapshot.source.as_ref().map(|s| s.kind.as_str()) {
        Some("postgres") => restore_postgres(g, a, repo, snap).map(Some),
        Some("mariadb") => restore_mariadb(g, a, repo, snap).map(Some),
        Some("redis") => restore_redis(g, a, repo, snap).map(Some),
        Some("sqlite") => restore_sqlite(g, a, repo, snap).map(Some),
        Some("nats") => nats::restore(g, a, repo, snap).map(Some),
        _ => Ok(None),
    }
}

/// Restore a sqlite snapshot to the database file named by `--target`.
fn restore_sqlite(g: &Global, a: &RestoreArgs, repo: &Repository, snap: &snapshots::SnapshotEntry) -> Result<i32> {
    let (src, manifest): (_, sqlite::Manifest) = manifest_of(snap)?;
    let node = artifact(repo, snap, &manifest.file)?;
    let contents = plan::count(manifest.tables.len(), "table");
    let mut plan = plan::file(snap, &a.target, &manifest.file, node.size, &contents, a.overwrite);
    plan.detail("tables", &manifest.tables);
    plan.verify = Some(if a.verify {
        format!(
            "PRAGMA integrity_check and row counts of {} tables against the backup's manifest",
            manifest.tables.len()
        )
    } else {
        "PRAGMA integrity_check before the swap (add --verify to also compare row counts)".to_string()
    });
    if let Some(code) = gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    let v = sqlite::restore(repo, &node, &manifest, &a.target, a.overwrite)?;
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": src.name, "target": a.target, "verification": v,
            "duration_seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} from snapshot {} to {} in {} (integrity_check ok{})",
            manifest.file,
            snap.id.short(),
            a.target.display(),
            output::duration(started.elapsed()),
            if a.verify { format!(", {} tables' row counts checked", manifest.tables.len()) } else { String::new() }
        );
    }
    if a.verify {
        fail_on_mismatches(&v.mismatches, "database")?;
    }
    Ok(exit::OK)
}

/// `backup --all` / `backup SOURCE…`: each source in turn; a failing source is reported and
/// the others still run; the exit code is the worst outcome.
pub fn backup(g: &Global, a: &BackupArgs, cfg: &Config, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let selected: Vec<&SourceSection> = if a.all {
        cfg.sources().collect()
    } else {
        a.paths.iter().map(|p| cfg.find(&p.to_string_lossy())).collect::<Result<_>>()?
    };
    if selected.is_empty() {
        anyhow::bail!("{} defines no sources", cfg.path.display());
    }
    let repo = context::open(g)?;
    let _lock = context::lock(g, &repo, false)?;
    // Listed once for every source's parent lookup (each listing decrypts every snapshot).
    let (known, _) = snapshots::list(&repo)?;
    let mut code = exit::OK;
    let mut report = Vec::new();
    let mut new = Vec::new();
    for src in selected {
        let started = std::time::Instant::now();
        let result = backup_one(&repo, &known, src, a, &interrupt);
        if interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(lifeboat_repository::RepoError::Interrupted.into());
        }
        match result {
            Ok(stats) => {
                new.push(snapshots::SnapshotEntry { id: stats.snapshot_id, snapshot: stats.snapshot.clone() });
                let s = &stats.summary;
                if !stats.errors.is_empty() {
                    code = code.max(exit::PARTIAL);
                    for e in &stats.errors {
                        eprintln!("lifeboat: source {}: cannot read {}: {}", src.name, e.path, e.message);
                    }
                }
                if !g.json && !g.quiet {
                    println!(
                        "source {} ({}): snapshot {} — {} files, {} processed, {} added ({} stored) in {}",
                        src.name,
                        src.kind,
                        stats.snapshot_id.short(),
                        s.total_files_processed,
                        output::size(s.total_bytes_processed),
                        output::size(s.data_added),
                        output::size(s.data_added_packed),
                        output::duration(stats.duration)
                    );
                }
                report.push(serde_json::json!({
                    "source": src.name, "kind": src.kind, "ok": true, "snapshot_id": stats.snapshot_id,
                    "summary": stats.summary, "manifest": stats.snapshot.source.and_then(|s| s.manifest),
                    "errors": stats.errors, "duration_seconds": started.elapsed().as_secs_f64(),
                }));
            }
            Err(e) => {
                code = exit::FAILURE;
                let msg = crate::exit::message(&e);
                eprintln!("lifeboat: source {}: {msg} (no snapshot recorded)", src.name);
                report.push(serde_json::json!({ "source": src.name, "kind": src.kind, "ok": false, "error": msg }));
            }
        }
    }
    if !new.is_empty() && cfg.copy.iter().any(|c| c.get_ref().after_backup) {
        // The index cached at the start does not know the blobs just written.
        let mut repo = repo;
        repo.reset_index();
        code = code.max(copy_after_backup(g, cfg, &repo, &new, &mut report, &interrupt));
    }
    if g.json {
        output::json(&report)?;
    }
    Ok(code)
}

/// `lifeboat sources`: every source with its last snapshot.
pub fn list(g: &Global) -> Result<i32> {
    let cfg = context::config(g)?
        .ok_or_else(|| anyhow::anyhow!("no config file: create {} or pass --config FILE", context::DEFAULT_CONFIG))?;
    let repo = context::open(g)?;
    let (all, _) = snapshots::list(&repo)?;
    let mut rows = Vec::new();
    for src in cfg.sources() {
        let last = all.iter().rev().find(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == src.name));
        rows.push(serde_json::json!({
            "name": src.name, "kind": src.kind, "tags": src.tags, "rpo": src.rpo, "rto": src.rto,
            "last_snapshot": last.map(|s| s.id), "last_backup": last.map(|s| s.snapshot.time),
        }));
        if !g.json {
            let when = last
                .map(|s| {
                    format!("{} ({})", s.snapshot.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"), s.id.short())
                })
                .unwrap_or_else(|| "never".into());
            println!("{:<20} {:<8} last backup: {when}", src.name, src.kind);
        }
    }
    if g.json {
        output::json(&rows)?;
    }
    Ok(exit::OK)
}

/// `lifeboat config check`.
pub fn config_check(g: &Global) -> Result<i32> {
    let cfg = context::config(g)?
        .ok_or_else(|| anyhow::anyhow!("no config file: create {} or pass --config FILE", context::DEFAULT_CONFIG))?;
    let sources: Vec<_> = cfg
        .sources()
        .map(|s| {
            serde_json::json!({
                "name": s.name, "kind": s.kind, "tags": s.tags, "schedule": s.schedule, "rpo": s.rpo,
                "rto": s.rto, "protected": s.protected,
                "retention": s.retention.as_ref().and_then(|r| serde_json::to_value(r).ok()),
            })
        })
        .collect();
    if g.json {
        output::json(&serde_json::json!({
            "file": cfg.path, "ok": true, "sources": sources, "copy_destinations": cfg.copy.len(),
            "notify_targets": cfg.notify.len(), "server": cfg.server.is_some(),
        }))?;
    } else if !g.quiet {
        println!(
            "{}: ok — {} sources, {} copy destinations, {} notify targets{}",
            cfg.path.display(),
            cfg.source.len(),
            cfg.copy.len(),
            cfg.notify.len(),
            if cfg.server.is_some() { ", server configured" } else { "" }
        );
        for s in cfg.sources() {
            let extra = [
                s.schedule.as_ref().map(|x| format!("schedule {x}")),
                s.rpo.as_ref().map(|x| format!("rpo {x}")),
                s.rto.as_ref().map(|x| format!("rto {x}")),
                s.retention.as_ref().map(|_| "retention".to_string()),
                s.protected.then(|| "protected".to_string()),
            ];
            let extra: Vec<String> = extra.into_iter().flatten().collect();
            println!("  {:<20} {:<8} {}", s.name, s.kind, extra.join(", "));
        }
    }
    Ok(exit::OK)
}

/// Copy the snapshots just made to every `[[copy]]` destination with `after_backup = true`;
/// returns the exit code contribution (a failed copy fails the run but keeps the snapshots).
fn copy_after_backup(
    g: &Global,
    cfg: &Config,
    repo: &Repository,
    new: &[snapshots::SnapshotEntry],
    report: &mut [serde_json::Value],
    interrupt: &Arc<AtomicBool>,
) -> i32 {
    let mut code = exit::OK;
    let mut copied_to = Vec::new();
    for c in cfg.copy.iter().map(|c| c.get_ref()).filter(|c| c.after_backup) {
        let opts = lifeboat_repository::copy::CopyOptions { dry_run: false, interrupt: Some(interrupt.clone()) };
        let result = super::copy::Destination::from_section(g, c)
            .and_then(|dest| super::copy::copy_to(g, repo, &dest, false, new, &opts));
        match result {
            Ok(stats) => {
                if !g.json && !g.quiet {
                    super::copy::print(c.label(), &stats, false);
                }
                copied_to.push(c.label());
            }
            Err(e) => {
                code = exit::FAILURE;
                eprintln!(
                    "lifeboat: copy to {}: {} (the snapshots are kept here)",
                    c.label(),
                    crate::exit::message(&e)
                );
            }
        }
    }
    if !copied_to.is_empty() {
        for r in report.iter_mut().filter(|r| r["ok"] == true) {
            r["copied_to"] = serde_json::json!(copied_to);
        }
    }
    code
}
