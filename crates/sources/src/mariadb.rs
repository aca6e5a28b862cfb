//! The `mariadb` source (MySQL-compatible): `mariadb-dump --single-transaction` streamed into the
//! repository. Row counts are taken from the dump itself as it streams past (the tuples of each
//! `INSERT … VALUES`), so they describe exactly the consistent snapshot the dump was made from,
//! even while writers keep writing. Restore creates the database (or, with `overwrite`, drops
//! and recreates it) and feeds the dump to `mariadb`; verification counts rows with SQL.
//! The password reaches the client programs only as `MYSQL_PWD`, never argv.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use lifeboat_format::Node;
use lifeboat_repository::archiver::{Content, Entry, ManifestHook};
use lifeboat_repository::{restorer, Repository};
use serde::{Deserialize, Serialize};

use crate::SourceError;

pub use crate::client::Connection;

/// Writes a client program's standard input (the dump, on restore).
type Feeder<'a> = dyn FnMut(&mut std::process::ChildStdin) -> Result<(), SourceError> + 'a;

/// What the mariadb source records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Database dumped.
    pub database: String,
    /// File name of the dump in the snapshot.
    pub file: String,
    /// Server version (from the dump header).
    pub server_version: String,
    /// Rows per table, counted in the dump.
    pub tables: BTreeMap<String, u64>,
}

fn err(target: &str, m: impl std::fmt::Display) -> SourceError {
    SourceError::Database { target: target.to_string(), message: m.to_string() }
}

/// How the mariadb clients are invoked on a [`Connection`].
trait MariaClients {
    fn target(&self, db: &str) -> String;
    fn command(&self, program: &str) -> Command;
    fn run(
        &self,
        program: &str,
        db: &str,
        args: &[&str],
        input: Option<&mut Feeder<'_>>,
    ) -> Result<String, SourceError>;
    fn sql(&self, db: &str, sql: &str) -> Result<String, SourceError>;
}

impl MariaClients for Connection {
    fn target(&self, db: &str) -> String {
        self.describe("mariadb", 3306, db)
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.program(program));
        if let Some(h) = &self.host {
            c.arg("-h").arg(h).arg("--protocol=TCP");
        }
        if let Some(p) = self.port {
            c.arg("-P").arg(p.to_string());
        }
        if let Some(u) = &self.user {
            c.arg("-u").arg(u);
        }
        if let Some(pw) = &self.password {
            c.env("MYSQL_PWD", pw);
        }
        c.stdin(Stdio::null());
        c
    }

    fn run(
        &self,
        program: &str,
        db: &str,
        args: &[&str],
        input: Option<&mut Feeder<'_>>,
    ) -> Result<String, SourceError> {
        let target = self.target(db);
        let mut c = self.command(program);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().map_err(|e| not_installed(&target, program, e))?;
        let stderr = collect(child.stderr.take());
        let stdout = collect(child.stdout.take());
        let fed = match (input, child.stdin.take()) {
            (Some(feed), Some(mut stdin)) => feed(&mut stdin),
            _ => Ok(()),
        };
        let status = child.wait().map_err(|e| err(&target, e))?;
        let out = stdout.join().unwrap_or_default();
        if !status.success() {
            return Err(err(&target, format!("{program} failed: {}", one_line(&stderr.join().unwrap_or_default()))));
        }
        fed?;
        Ok(out)
    }

    fn sql(&self, db: &str, sql: &str) -> Result<String, SourceError> {
        if db.is_empty() {
            self.run("mariadb", db, &["-N", "-B", "-e", sql], None)
        } else {
            self.run("mariadb", db, &["-N", "-B", "-D", db, "-e", sql], None)
        }
    }
}

fn not_installed(target: &str, program: &str, e: std::io::Error) -> SourceError {
    if e.kind() == std::io::ErrorKind::NotFound {
        err(target, crate::client::missing_program(program, None, "install mariadb-client or set bin_dir"))
    } else {
        err(target, format!("cannot run {program}: {e}"))
    }
}

fn collect<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut r) = r {
            let _ = r.read_to_string(&mut s);
        }
        s
    })
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Counts rows per table in a `mariadb-dump` stream, line by line.
#[derive(Default, Debug)]
pub struct DumpCounter {
    carry: Vec<u8>,
    table: Option<String>,
    depth: u32,
    /// Rows per table so far.
    pub tables: BTreeMap<String, u64>,
    /// `-- Server version` from the header.
    pub server_version: String,
}

impl DumpCounter {
    /// Feed bytes of the dump.
    pub fn feed(&mut self, mut data: &[u8]) {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            self.carry.extend_from_slice(&data[..nl]);
            let line = std::mem::take(&mut self.carry);
            self.line(&line);
            data = &data[nl + 1..];
        }
        self.carry.extend_from_slice(data);
    }

    fn line(&mut self, line: &[u8]) {
        if self.table.is_none() {
            if let Some(v) = line.strip_prefix(b"-- Server version\t") {
                self.server_version = String::from_utf8_lossy(v).trim().to_string();
            }
            let Some(rest) = line.strip_prefix(b"INSERT INTO `") else { return };
            // Table name up to the closing backtick (a doubled backtick is part of the name).
            let mut name = Vec::new();
            let mut i = 0;
            while i < rest.len() {
                if rest[i] == b'`' {
                    if rest.get(i + 1) == Some(&b'`') {
                        name.push(b'`');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(rest[i]);
                i += 1;
            }
            let name = String::from_utf8_lossy(&name).into_owned();
            self.tables.entry(name.clone()).or_insert(0);
            self.table = Some(name);
            self.depth = 0;
            let after = &rest[i.min(rest.len())..];
            let values = after.windows(6).position(|w| w == b"VALUES").map(|p| &after[p + 6..]).unwrap_or(&[]);
            self.tuples(values);
        } else {
            self.tuples(line);
        }
    }

    fn tuples(&mut self, s: &[u8]) {
        let (mut in_str, mut esc) = (false, false);
        let mut n = 0u64;
        for &c in s {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'\'' {
                    in_str = false;
                }
                continue;
            }
            match c {
                b'\'' => in_str = true,
                b'(' => {
                    self.depth += 1;
                    if self.depth == 1 {
                        n += 1;
                    }
                }
                b')' => self.depth = self.depth.saturating_sub(1),
                b';' if self.depth == 0 => {
                    self.finish_statement(n);
                    return;
                }
                _ => {}
            }
        }
        if let Some(t) = &self.table {
            *self.tables.entry(t.clone()).or_insert(0) += n;
        }
    }

    fn finish_statement(&mut self, n: u64) {
        if let Some(t) = self.table.take() {
            *self.tables.entry(t).or_insert(0) += n;
        }
    }
}

/// Passes the dump through while counting.
struct Counting<R> {
    inner: R,
    counter: Arc<Mutex<DumpCounter>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut c) = self.counter.lock() {
            c.feed(&buf[..n]);
        }
        Ok(n)
    }
}

pub use crate::artifact::Started;

/// Start `mariadb-dump` of `database`.
pub fn start(conn: &Connection, database: &str) -> Result<Started, SourceError> {
    let target = conn.target(database);
    // Fail early, with the server's own words, when the database is unreachable or unknown.
    conn.sql(database, "SELECT 1")?;
    let mut c = conn.command("mariadb-dump");
    c.args(["--single-transaction", "--quick", "--hex-blob", "--routines", "--triggers", "--skip-comments"])
        .arg(database)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `--skip-comments` drops the header; ask the server for its version instead.
    let version = conn.sql(database, "SELECT VERSION()").map(|v| v.trim().to_string()).unwrap_or_default();
    let mut child = c.spawn().map_err(|e| not_installed(&target, "mariadb-dump", e))?;
    let stderr = collect(child.stderr.take());
    let stdout = child.stdout.take().ok_or_else(|| err(&target, "mariadb-dump has no stdout"))?;
    let counter = Arc::new(Mutex::new(DumpCounter::default()));
    let file = format!("{database}.sql");
    let now = Utc::now();
    let node = crate::artifact::node(&file, 0o600, now);
    let reader = Counting { inner: stdout, counter: counter.clone() };
    let entries = vec![Entry::File { node, content: Content::Reader(Box::new(reader)) }];
    let state = Mutex::new(Some((child, stderr)));
    let db = database.to_string();
    let finish: ManifestHook = Arc::new(move || {
        let Some((mut child, stderr)) = state.lock().ok().and_then(|mut g| g.take()) else {
            return Err(format!("{target}: already finished"));
        };
        let status = child.wait().map_err(|e| format!("{target}: mariadb-dump: {e}"))?;
        if !status.success() {
            return Err(format!(
                "{target}: mariadb-dump failed ({status}): {}",
                one_line(&stderr.join().unwrap_or_default())
            ));
        }
        let c = counter.lock().map_err(|_| "counter poisoned".to_string())?;
        let m = Manifest {
            database: db.clone(),
            file: file.clone(),
            server_version: version.clone(),
            tables: c.tables.clone(),
        };
        serde_json::to_value(m).map(Some).map_err(|e| e.to_string())
    });
    Ok(Started { paths: vec![format!("/{database}.sql")], entries: entries.into_iter(), finish })
}

/// Restore a dump into `database` (created; `overwrite` drops an existing one first). A
/// database this call created is dropped again if the restore fails.
pub fn restore(
    repo: &Repository,
    node: &Node,
    conn: &Connection,
    database: &str,
    overwrite: bool,
) -> Result<(), SourceError> {
    let target = conn.target(database);
    let exists = !conn
        .sql(
            "",
            &format!(
                "SHOW DATABASES LIKE '{}'",
                database.replace('\\', "\\\\").replace('\'', "''").replace('_', "\\_")
            ),
        )?
        .trim()
        .is_empty();
    if exists && !overwrite {
        return Err(err(&target, "database exists (use --overwrite to drop and recreate it)"));
    }
    if exists {
        conn.sql("", &format!("DROP DATABASE {}", ident(database)))?;
    }
    conn.sql("", &format!("CREATE DATABASE {}", ident(database)))?;
    let index = repo.index().map_err(|e| err(&target, e))?;
    let mut feed = |stdin: &mut std::process::ChildStdin| -> Result<(), SourceError> {
        restorer::copy_content(repo, &index, node, stdin).map(|_| ()).map_err(|e| err(&target, e))
    };
    let result = conn.run("mariadb", database, &[database], Some(&mut feed)).map(|_| ());
    if result.is_err() {
        let _ = conn.sql("", &format!("DROP DATABASE IF EXISTS {}", ident(database)));
    }
    result
}

/// Count rows per table in `database` and compare with the manifest.
pub fn verify(conn: &Connection, database: &str, manifest: &Manifest) -> Result<(bool, Vec<String>), SourceError> {
    let found = counts(conn, database)?;
    // Empty tables have no INSERT in the dump, so they are not in the manifest: no extras check.
    let mismatches = crate::artifact::compare_counts(&manifest.tables, &found, false);
    Ok((mismatches.is_empty(), mismatches))
}

/// Drop `database` if it exists (scratch databases of restore tests).
pub fn drop_database(conn: &Connection, database: &str) -> Result<(), SourceError> {
    conn.sql("", &format!("DROP DATABASE IF EXISTS {}", ident(database))).map(|_| ())
}

/// Rows per base table of `database`.
pub fn counts(conn: &Connection, database: &str) -> Result<BTreeMap<String, u64>, SourceError> {
    let tables = conn.sql(
        database,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )?;
    let mut found = BTreeMap::new();
    for t in tables.lines().map(str::trim).filter(|t| !t.is_empty()) {
        let n: u64 = conn.sql(database, &format!("SELECT COUNT(*) FROM {}", ident(t)))?.trim().parse().unwrap_or(0);
        found.insert(t.to_string(), n);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tuples_with_tricky_strings_across_reads() {
        let dump = b"-- Server version\t10.11.19-MariaDB\nINSERT INTO `t` VALUES\n(1,'a\\'),(b',0x78),\n(2,'it\\'s',0x00FF);\nINSERT INTO `we``ird` VALUES (1,'x;y'),(2,'(('),(3,NULL);\nINSERT INTO `t` VALUES\n(3,'z',NULL);\n";
        for step in [1usize, 3, 7, dump.len()] {
            let mut c = DumpCounter::default();
            for part in dump.chunks(step) {
                c.feed(part);
            }
            assert_eq!(c.tables.get("t"), Some(&3), "step {step}");
            assert_eq!(c.tables.get("we`ird"), Some(&3), "step {step}");
            assert_eq!(c.server_version, "10.11.19-MariaDB");
        }
    }
}
