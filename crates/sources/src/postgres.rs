//! The `postgres` source: a logical backup with `pg_dump` (custom format) streamed straight
//! into the repository, with per-table row counts taken *inside the dump's snapshot*.
//!
//! One `psql` session opens a repeatable-read transaction and exports its snapshot; it counts
//! every table's rows there and keeps the transaction open while `pg_dump --snapshot` dumps
//! exactly the same state. Restore creates the database (or, with `overwrite`, drops and
//! recreates it) and feeds the dump to `pg_restore`; verification counts rows again.
//! Passwords go to the child processes through `PGPASSWORD`, never through argv.

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

/// What the postgres source records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Database dumped.
    pub database: String,
    /// File name of the dump in the snapshot.
    pub file: String,
    /// Dump format (`custom`).
    pub format: String,
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
                    format!("{program} is not installed (install postgresql-client or set bin_dir)"),
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
    /// The entries (one streamed dump file).
    pub entries: std::vec::IntoIter<Entry>,
    /// Counts and positions known before the dump starts.
    pub manifest: Manifest,
    /// Waits for `pg_dump`, ends the session; fails the source if the dump failed.
    pub finish: ManifestHook,
}

/// Export a snapshot, count rows in it, and start `pg_dump` on it.
pub fn start(conn: &Connection, database: &str) -> Result<Started, SourceError> {
    let mut s = Session::open(conn, database)?;
    let snap = s.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT pg_export_snapshot();")?;
    let snapshot = snap.first().cloned().ok_or_else(|| db_err(&s.target, "no snapshot id"))?;
    let info = s.query("SHOW server_version;\nSELECT pg_current_wal_lsn();")?;
    let tables = counts(&mut s)?;
    let file = format!("{database}.pgdump");
    let manifest = Manifest {
        database: database.to_string(),
        file: file.clone(),
        format: "custom".into(),
        server_version: info.first().cloned().unwrap_or_default(),
        lsn: info.get(1).cloned().unwrap_or_default(),
        tables,
    };
    let mut c = conn.command("pg_dump");
    c.args(["--format=custom", "--compress=0", "--snapshot", &snapshot, "-d", database])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut dump = conn.spawn(c, "pg_dump", database)?;
    let dump_err = collect_stderr(&mut dump);
    let stdout = dump.stdout.take().ok_or_else(|| db_err(&s.target, "pg_dump has no stdout"))?;
    let now = Utc::now();
    let node = crate::artifact::node(&file, 0o600, now);
    let entries = vec![Entry::File { node, content: Content::Reader(Box::new(stdout)) }];
    let target = s.target.clone();
    let state = Mutex::new(Some((dump, s)));
    let finish: ManifestHook = Arc::new(move || {
        let Some((mut dump, session)) = state.lock().ok().and_then(|mut g| g.take()) else {
            return Err(format!("{target}: already finished"));
        };
        let status = dump.wait().map_err(|e| format!("{target}: pg_dump: {e}"))?;
        session.close();
        if !status.success() {
            return Err(format!("{target}: pg_dump failed ({status}): {}", last_line(&dump_err)));
        }
        Ok(None)
    });
    Ok(Started { paths: vec![format!("/{file}")], entries: entries.into_iter(), manifest, finish })
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

/// Restore a dump into `database`: created when missing; an existing one is refused unless
/// `overwrite`, which drops and recreates it. A database this call created is dropped again
/// when the restore fails, so a failed restore leaves nothing half-made.
pub fn restore(
    repo: &Repository,
    node: &Node,
    conn: &Connection,
    database: &str,
    overwrite: bool,
) -> Result<(), SourceError> {
    let target = conn.target(database);
    if exists(conn, database)? {
        if !overwrite {
            return Err(db_err(&target, "database exists (use --overwrite to drop and recreate it)"));
        }
        let mut s = Session::open(conn, "postgres")?;
        s.query(&format!("DROP DATABASE {} WITH (FORCE);", ident(database)))?;
        s.close();
    }
    let mut s = Session::open(conn, "postgres")?;
    s.query(&format!("CREATE DATABASE {};", ident(database)))?;
    s.close();
    let result = (|| {
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
    })();
    if result.is_err() {
        if let Ok(mut s) = Session::open(conn, "postgres") {
            let _ = s.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE);", ident(database)));
            s.close();
        }
    }
    result
}
