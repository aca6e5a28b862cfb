//! Roles and tablespaces — what a database dump does not contain — with
//! `pg_dumpall --globals-only`, stored as `globals.sql` beside the dump.
//!
//! Role passwords (their SCRAM/MD5 hashes) are read from `pg_authid`, which only a superuser
//! may read: as a superuser the dump includes them; otherwise `--no-role-passwords` is added and
//! the manifest says so (`role_passwords: false`). Restoring the globals is a separate, explicit
//! step ([`restore`]): statements are applied one by one, `… already exists` errors are counted
//! and skipped (existing roles still get the backed-up attributes and passwords from the
//! `ALTER ROLE` that follows), any other error fails the restore.

use std::io::{Read, Write};
use std::process::Stdio;

use lifeboat_format::Node;
use lifeboat_repository::{restorer, Repository};
use serde::{Deserialize, Serialize};

use super::{collect_stderr, db_err, last_line, Connection, PgClients, Session};
use crate::SourceError;

/// File name of the globals in the snapshot.
pub const FILE: &str = "globals.sql";

/// What the manifest records about the globals.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Globals {
    /// File name in the snapshot.
    pub file: String,
    /// Whether role passwords are included (only a superuser can dump them).
    pub role_passwords: bool,
    /// Roles created by the file.
    pub roles: Vec<String>,
    /// Tablespaces created by the file.
    pub tablespaces: Vec<String>,
}

/// The first identifier of `s` (double-quoted or plain), unquoted.
fn ident(s: &str) -> String {
    let Some(rest) = s.strip_prefix('"') else {
        return s.split([' ', ';']).next().unwrap_or_default().to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() != Some(&'"') {
                break;
            }
            chars.next();
        }
        out.push(c);
    }
    out
}

/// Roles and tablespaces the SQL creates.
fn created(sql: &str) -> (Vec<String>, Vec<String>) {
    let (mut roles, mut spaces) = (Vec::new(), Vec::new());
    for line in sql.lines() {
        if let Some(r) = line.strip_prefix("CREATE ROLE ") {
            roles.push(ident(r));
        } else if let Some(t) = line.strip_prefix("CREATE TABLESPACE ") {
            spaces.push(ident(t));
        }
    }
    (roles, spaces)
}

/// Run `pg_dumpall --globals-only` (connecting to `database`); `session` tells whether the
/// user is a superuser.
pub(super) fn dump(
    conn: &Connection,
    database: &str,
    session: &mut Session,
) -> Result<(Globals, Vec<u8>), SourceError> {
    let superuser = session.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user;")? == ["t"];
    let mut c = conn.command("pg_dumpall");
    c.args(["--globals-only", "-l", database]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if !superuser {
        c.arg("--no-role-passwords");
    }
    let mut child = conn.spawn(c, "pg_dumpall", database)?;
    let err = collect_stderr(&mut child);
    let mut sql = Vec::new();
    let target = conn.target(database);
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut sql).map_err(|e| db_err(&target, format!("pg_dumpall: {e}")))?;
    }
    let status = child.wait().map_err(|e| db_err(&target, e))?;
    if !status.success() {
        return Err(db_err(&target, format!("pg_dumpall --globals-only failed ({status}): {}", last_line(&err))));
    }
    let (roles, tablespaces) = created(&String::from_utf8_lossy(&sql));
    Ok((Globals { file: FILE.into(), role_passwords: superuser, roles, tablespaces }, sql))
}

/// What applying the globals did.
#[derive(Clone, Debug, Serialize)]
pub struct GlobalsRestore {
    /// Statements skipped because the role or tablespace already exists.
    pub already_existed: usize,
}

/// Apply a snapshot's `globals.sql` to the server (through its `postgres` database).
pub fn restore(repo: &Repository, node: &Node, conn: &Connection) -> Result<GlobalsRestore, SourceError> {
    let target = conn.target("postgres");
    let index = repo.index().map_err(|e| db_err(&target, e))?;
    let mut sql = Vec::new();
    restorer::copy_content(repo, &index, node, &mut sql).map_err(|e| db_err(&target, e))?;
    let mut c = conn.command("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=0", "-d", "postgres", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = conn.spawn(c, "psql", "postgres")?;
    // Every error line is needed (not just the last), so stderr is read to the end here.
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let written = child.stdin.take().map(|mut stdin| stdin.write_all(&sql));
    let status = child.wait().map_err(|e| db_err(&target, e))?;
    let text = reader.join().unwrap_or_default();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR:")).map(str::trim).collect();
    let (existed, other): (Vec<&str>, Vec<&str>) = errors.into_iter().partition(|l| l.contains("already exists"));
    if let Some(first) = other.first() {
        return Err(db_err(&target, format!("applying globals: {} statements failed, first: {first}", other.len())));
    }
    if !status.success() {
        let why = text.lines().last().unwrap_or_default();
        return Err(db_err(&target, format!("applying globals failed ({status}): {why}")));
    }
    if let Some(Err(e)) = written {
        return Err(db_err(&target, format!("psql: {e}")));
    }
    Ok(GlobalsRestore { already_existed: existed.len() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_roles_and_tablespaces_are_listed() {
        let sql = "CREATE ROLE app;\nALTER ROLE app WITH LOGIN;\nCREATE ROLE \"Odd \"\"Name\";\n\
                   CREATE TABLESPACE fast OWNER app LOCATION '/ssd';\n";
        let (roles, spaces) = created(sql);
        assert_eq!(roles, ["app", "Odd \"Name"]);
        assert_eq!(spaces, ["fast"]);
    }
}
