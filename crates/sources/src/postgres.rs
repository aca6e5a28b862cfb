//! The `postgres` source: a logical backup with `pg_dump`, with per-table row counts taken
//! *inside the dump's snapshot*.
//!
//! One `psql` session opens a repeatable-read transaction and exports its snapshot; it counts
//! every table's rows there and keeps the transaction open while `pg_dump --snapshot` dumps
//! exactly the same state — in the custom format, streamed straight into the repository, or in
//! the directory format with parallel jobs ([`directory`]), which needs a temporary directory.
//! Optionally the cluster's roles and tablespaces are dumped too ([`globals`]). Restore creates
//! the database (or, with `overwrite`, drops and recreates it) and runs `pg_restore`;
//! verification counts rows again. Passwords go to the child processes through `PGPASSWORD`,
//! never through argv.

pub mod directory;
pub mod globals;
pub mod pitr;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use lifeboat_format::Node;
use lifeboat_repository::archiver::{Content, Entry, ManifestHook};
use lifeboat_repository::{restorer, Repository};
use serde::{Deserialize, Serialize};

use crate::SourceError;

pub use crate::client::Connection;

/// How the postgres clients are invoked on a [`Connection`].
trait PgClients {
    fn target(&self, db: &str) -> String;
    fn command(&self, program: &str) -> Command;
    fn spawn(&self, c: Command, program: &str, db: &str) -> Result<Child, SourceError>;
}

/// Dump format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `pg_dump --format=custom`: one file, streamed into the repository.
    #[default]
    Custom,
    /// `pg_dump --format=directory --jobs=N`: one file per table, written to a temporary
    /// directory first.
    Directory,
}

impl Format {
    /// `custom` or `directory`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Custom => "custom",
            Format::Directory => "directory",
        }
    }
}

/// How to dump.
#[derive(Clone, Debug, Default)]
pub struct DumpOptions {
    /// Dump format.
    pub format: Format,
    /// Parallel jobs (directory format); 0 and 1 both mean one.
    pub jobs: u32,
    /// `pg_dump --compress` level; 0 (the default) leaves compression to the repository, which
    /// deduplicates uncompressed dumps far better.
    pub compress: u32,
    /// Also dump roles and tablespaces (`pg_dumpall --globals-only`) as `globals.sql`.
    pub globals: bool,
    /// Where the directory format is written (default: the system temp directory).
    pub tmp_dir: Option<std::path::PathBuf>,
}

fn one() -> u32 {
    1
}

/// What the postgres source records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Database dumped.
    pub database: String,
    /// Name of the dump in the snapshot (a file; a directory for the directory format).
    pub file: String,
    /// Dump format (`custom` or `directory`).
    pub format: String,
    /// Parallel jobs the dump ran with.
    #[serde(default = "one")]
    pub jobs: u32,
    /// `pg_dump --compress` level.
    #[serde(default)]
    pub compress: u32,
    /// Roles and tablespaces, when backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<globals::Globals>,
    /// Server version.
    pub server_version: String,
    /// WAL position when the snapshot was taken.
    pub lsn: String,
    /// Rows per table (`schema.table`) in the dump's snapshot.
    pub tables: BTreeMap<String, u64>,
}

const END: &str = "__lifeboat_end__";

fn db_err(target: &str, message: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: target.to_string(), message: message.to_string() }
}

impl PgClients for Connection {
    fn target(&self, db: &str) -> String {
        self.describe("postgres", 5432, db)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.program(program));
        if let Some(h) = &self.host {
            c.arg("-h").arg(h);
        }
        if let Some(p) = self.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &self.user {
            c.arg("-U").arg(u);
        }
        if let Some(pw) = &self.password {
            c.env("PGPASSWORD", pw);
        }
        c.arg("-w"); // never prompt: fail with a clear message instead
        c.stdin(Stdio::null());
        c
    }

    fn spawn(&self, mut c: Command, program: &str, db: &str) -> Result<Child, SourceError> {
        c.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                db_err(
                    &self.target(db),
                    crate::client::missing_program(
                        program,
                        self.bin_dir.as_deref(),
                        "install postgresql-client or set bin_dir",
                    ),
                )
            } else {
                db_err(&self.target(db), format!("cannot run {program}: {e}"))
            }
        })
    }
}

/// A `psql` session driven over pipes: statements in, unaligned rows out.
struct Session {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
    stderr: Arc<Mutex<String>>,
    target: String,
}

fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    if let Some(mut err) = child.stderr.take() {
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            if let Ok(mut g) = b.lock() {
                g.push_str(&s);
            }
        });
    }
    buf
}

/// What a failed client printed on stderr, as one line (clients often explain over two lines:
/// "connection … failed: Connection refused" / "Is the server running …?").
fn last_line(s: &Arc<Mutex<String>>) -> String {
    // Give the stderr reader a moment to collect what a dying process printed.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let text = s.lock().map(|g| g.clone()).unwrap_or_default();
    let joined: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut one = joined.join(" ");
    if one.len() > 400 {
        let cut = (0..=400).rev().find(|i| one.is_char_boundary(*i)).unwrap_or(0);
        one.truncate(cut);
        one.push('…');
    }
    one
}

impl Session {
    fn open(conn: &Connection, db: &str) -> Result<Session, SourceError> {
        let mut c = conn.command("psql");
        c.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = conn.spawn(c, "psql", db)?;
        let stderr = collect_stderr(&mut child);
        let target = conn.target(db);
        let stdin = child.stdin.take().ok_or_else(|| db_err(&target, "psql has no stdin"))?;
        let out = BufReader::new(child.stdout.take().ok_or_else(|| db_err(&target, "psql has no stdout"))?);
        Ok(Session { child, stdin, out, stderr, target })
    }

    /// Run statements; return the output lines up to the end marker.
    fn query(&mut self, sql: &str) -> Result<Vec<String>, SourceError> {
        let fail = |s: &Session| {
            let why = last_line(&s.stderr);
            db_err(&s.target, if why.is_empty() { "psql ended unexpectedly".to_string() } else { why })
        };
        if writeln!(self.stdin, "{sql}\nSELECT '{END}';").and_then(|_| self.stdin.flush()).is_err() {
            return Err(fail(self));
        }
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.out.read_line(&mut line) {
                Ok(0) | Err(_) => return Err(fail(self)),
                Ok(_) => {
                    let l = line.trim_end_matches(['\n', '\r']);
                    if l == END {
                        return Ok(lines);
                    }
                    if !l.is_empty() {
                        lines.push(l.to_string());
                    }
                }
            }
        }
    }

    fn close(mut self) {
        let _ = writeln!(self.stdin, "COMMIT;\n\\q");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

const COUNT_SQL: &str =
    "SELECT format('SELECT %L, count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
 ORDER BY 1 \\gexec";

fn counts(s: &mut Session) -> Result<BTreeMap<String, u64>, SourceError> {
    let mut tables = BTreeMap::new();
    for line in s.query(COUNT_SQL)? {
        let (name, n) =
            line.rsplit_once('|').ok_or_else(|| db_err(&s.target, format!("unexpected count line {line:?}")))?;
        let n = n.parse().map_err(|_| db_err(&s.target, format!("unexpected count line {line:?}")))?;
        tables.insert(name.to_string(), n);
    }
    Ok(tables)
}

/// A started backup.
pub struct Started {
    /// Snapshot paths.
    pub paths: Vec<String>,
    /// The entries (the dump; `globals.sql` when asked for).
    pub entries: std::vec::IntoIter<Entry>,
    /// Counts and positions known before the dump starts.
    pub manifest: Manifest,
    /// Waits for `pg_dump`, ends the session; fails the source if the dump failed.
    pub finish: ManifestHook,
    /// The directory format's temporary directory: lives until the backup is done.
    _work: Option<tempfile::TempDir>,
}

/// The open transaction a dump runs in.
struct Snapshot {
    session: Session,
    id: String,
    manifest: Manifest,
}

/// Export a snapshot in a new session. Its row counts are taken here only when `count` (the
/// custom format counts them while `pg_dump` runs).
fn export(conn: &Connection, database: &str, opts: &DumpOptions, count: bool) -> Result<Snapshot, SourceError> {
    let mut s = Session::open(conn, database)?;
    let snap = s.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();")?;
    let id = snap.first().cloned().ok_or_else(|| db_err(&s.target, "no snapshot id"))?;
    let info = s.query("SHOW server_version;\nSELECT pg_current_wal_lsn();")?;
    let tables = if count { counts(&mut s)? } else { BTreeMap::new() };
    let file = match opts.format {
        Format::Custom => format!("{database}.pgdump"),
        Format::Directory => format!("{database}.dir"),
    };
    let manifest = Manifest {
        database: database.to_string(),
        file,
        format: opts.format.name().into(),
        jobs: if opts.format == Format::Directory { opts.jobs.max(1) } else { 1 },
        compress: opts.compress,
        globals: None,
        server_version: info.first().cloned().unwrap_or_default(),
        lsn: info.get(1).cloned().unwrap_or_default(),
        tables,
    };
    Ok(Snapshot { session: s, id, manifest })
}

/// Export a snapshot and start `pg_dump` on it (the directory format counts rows first and runs
/// to completion here; the custom format streams while the backup reads it and counts rows
/// meanwhile).
pub fn start(conn: &Connection, database: &str, opts: &DumpOptions) -> Result<Started, SourceError> {
    let mut snap = export(conn, database, opts, opts.format == Format::Directory)?;
    let now = Utc::now();
    let mut entries = Vec::new();
    if opts.globals {
        let (g, sql) = globals::dump(conn, database, &mut snap.session)?;
        let node = crate::artifact::node(&g.file, 0o600, now);
        entries.push(Entry::File { node, content: Content::Reader(Box::new(std::io::Cursor::new(sql))) });
        snap.manifest.globals = Some(g);
    }
    let mut paths = vec![format!("/{}", snap.manifest.file)];
    if opts.globals {
        paths.push(format!("/{}", globals::FILE));
    }
    if opts.format == Format::Directory {
        let (work, dump) = directory::dump(conn, &snap.id, &snap.manifest, opts)?;
        snap.session.close();
        entries.extend(dump);
        let finish: ManifestHook = Arc::new(|| Ok(None));
        let manifest = snap.manifest;
        return Ok(Started { paths, entries: entries.into_iter(), manifest, finish, _work: Some(work) });
    }
    let (dump, finish) = stream_custom(conn, snap.session, &snap.id, &snap.manifest)?;
    entries.push(dump);
    Ok(Started { paths, entries: entries.into_iter(), manifest: snap.manifest, finish, _work: None })
}

/// Start `pg_dump --format=custom` on the snapshot; its stdout is the entry's content.
///
/// The snapshot's session counts each table's rows meanwhile (in the same snapshot, so the
/// counts are those of the dump), instead of before `pg_dump` starts: a `count(*)` of 5 million
/// rows is a quarter of a second the dump no longer waits for. The finish hook returns the
/// manifest with the counts.
fn stream_custom(
    conn: &Connection,
    mut session: Session,
    snapshot: &str,
    manifest: &Manifest,
) -> Result<(Entry, ManifestHook), SourceError> {
    let mut c = conn.command("pg_dump");
    c.args(["--format=custom", &format!("--compress={}", manifest.compress), "--snapshot", snapshot])
        .args(["-d", &manifest.database])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = conn.spawn(c, "pg_dump", &manifest.database)?;
    let dump_err = collect_stderr(&mut dump);
    let stdout = dump.stdout.take().ok_or_else(|| db_err(&session.target, "pg_dump has no stdout"))?;
    let node = crate::artifact::node(&manifest.file, 0o600, Utc::now());
    let entry = Entry::File { node, content: Content::Reader(Box::new(stdout)) };
    let target = session.target.clone();
    let counting = std::thread::spawn(move || {
        let tables = counts(&mut session);
        (session, tables)
    });
    let state = Mutex::new(Some((dump, counting)));
    let manifest = manifest.clone();
    let finish: ManifestHook = Arc::new(move || {
        let Some((mut dump, counting)) = state.lock().ok().and_then(|mut g| g.take()) else {
            return Err(format!("{target}: already finished"));
        };
        let status = dump.wait().map_err(|e| format!("{target}: pg_dump: {e}"))?;
        let (session, tables) = counting.join().map_err(|_| format!("{target}: counting rows failed unexpectedly"))?;
        session.close();
        if !status.success() {
            return Err(format!("{target}: pg_dump failed ({status}): {}", last_line(&dump_err)));
        }
        let tables = tables.map_err(|e| format!("counting rows: {e}"))?;
        let manifest = Manifest { tables, ..manifest.clone() };
        serde_json::to_value(&manifest).map(Some).map_err(|e| format!("{target}: manifest: {e}"))
    });
    Ok((entry, finish))
}

/// Whether a database exists.
fn exists(conn: &Connection, db: &str) -> Result<bool, SourceError> {
    let mut s = Session::open(conn, "postgres")?;
    let rows = s.query(&format!("SELECT 1 FROM pg_database WHERE datname = {};", literal(db)))?;
    s.close();
    Ok(!rows.is_empty())
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Result of a native verification.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Whether every count matched.
    pub ok: bool,
    /// Differences (`schema.table: expected N rows, found M`).
    pub mismatches: Vec<String>,
    /// Rows per table found.
    pub tables: BTreeMap<String, u64>,
}

/// Count rows in `database` and compare with the manifest.
pub fn verify(conn: &Connection, database: &str, manifest: &Manifest) -> Result<Verification, SourceError> {
    let mut s = Session::open(conn, database)?;
    let tables = counts(&mut s)?;
    s.close();
    let mismatches = crate::artifact::compare_counts(&manifest.tables, &tables, true);
    Ok(Verification { ok: mismatches.is_empty(), mismatches, tables })
}

/// Drop `database` if it exists, disconnecting its sessions (scratch databases of restore tests).
pub fn drop_database(conn: &Connection, database: &str) -> Result<(), SourceError> {
    let mut s = Session::open(conn, "postgres")?;
    s.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE);", ident(database)))?;
    s.close();
    Ok(())
}

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Drop and recreate an existing database.
    pub overwrite: bool,
    /// Parallel `pg_restore` jobs (directory format; default: the jobs of the dump).
    pub jobs: Option<u32>,
    /// Where a directory-format dump is written back before `pg_restore` reads it.
    pub tmp_dir: Option<std::path::PathBuf>,
}

/// Restore a dump (`node`: the dump file, or the directory of a directory-format dump) into
/// `database`: created when missing; an existing one is refused unless `overwrite`, which drops
/// and recreates it. A database this call created is dropped again when the restore fails, so a
/// failed restore leaves nothing half-made.
pub fn restore(
    repo: &Repository,
    node: &Node,
    manifest: &Manifest,
    conn: &Connection,
    database: &str,
    opts: &RestoreOptions,
) -> Result<(), SourceError> {
    let target = conn.target(database);
    if exists(conn, database)? {
        if !opts.overwrite {
            return Err(db_err(&target, "database exists (use --overwrite to drop and recreate it)"));
        }
        let mut s = Session::open(conn, "postgres")?;
        s.query(&format!("DROP DATABASE {} WITH (FORCE);", ident(database)))?;
        s.close();
    }
    let mut s = Session::open(conn, "postgres")?;
    s.query(&format!("CREATE DATABASE {};", ident(database)))?;
    s.close();
    let result = if manifest.format == Format::Directory.name() {
        let jobs = opts.jobs.unwrap_or(manifest.jobs).max(1);
        directory::restore(repo, node, conn, database, jobs, opts.tmp_dir.as_deref())
    } else {
        restore_custom(repo, node, conn, database)
    };
    if result.is_err() {
        if let Ok(mut s) = Session::open(conn, "postgres") {
            let _ = s.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE);", ident(database)));
            s.close();
        }
    }
    result
}

/// Stream a custom-format dump into `pg_restore`.
fn restore_custom(repo: &Repository, node: &Node, conn: &Connection, database: &str) -> Result<(), SourceError> {
    let target = conn.target(database);
    let mut c = conn.command("pg_restore");
    c.args(["--exit-on-error", "--no-owner", "-d", database])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = conn.spawn(c, "pg_restore", database)?;
    let err = collect_stderr(&mut child);
    let mut stdin = child.stdin.take().ok_or_else(|| db_err(&target, "pg_restore has no stdin"))?;
    let index = repo.index().map_err(|e| db_err(&target, e))?;
    let copied = restorer::copy_content(repo, &index, node, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| db_err(&target, e))?;
    if !status.success() {
        return Err(db_err(&target, format!("pg_restore failed ({status}): {}", last_line(&err))));
    }
    copied.map_err(|e| db_err(&target, e))?;
    Ok(())
}
