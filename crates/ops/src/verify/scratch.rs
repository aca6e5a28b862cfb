//! Scratch targets of restore tests, each removed when its guard is dropped — after a pass, a
//! failure, an error or a panic alike.

use std::path::Path;

use lifeboat_sources::{client, mariadb, nats, postgres};

/// Prefix of scratch database names (`lifeboat_verify_<12 hex digits>`).
pub const DATABASE_PREFIX: &str = "lifeboat_verify_";
/// Prefix of scratch stream names (`LIFEBOAT_VERIFY_<12 HEX DIGITS>`).
pub const STREAM_PREFIX: &str = "LIFEBOAT_VERIFY_";
/// Prefix of scratch directories in the temporary directory.
pub const DIR_PREFIX: &str = "lifeboat-verify-";

/// A random suffix for scratch names.
pub fn suffix() -> String {
    let r: [u8; 6] = lifeboat_crypto::random_bytes();
    hex::encode(r)
}

/// A temporary directory (below `base`, else the system's), removed with everything in it.
pub fn dir(base: Option<&Path>) -> Result<tempfile::TempDir, String> {
    let b = tempfile::Builder::new().prefix(DIR_PREFIX).clone();
    let made = match base {
        Some(base) => b.tempdir_in(base),
        None => b.tempdir(),
    };
    made.map_err(|e| format!("cannot create a scratch directory: {e}"))
}

/// Which server a scratch database lives on.
pub enum Server {
    /// PostgreSQL.
    Postgres,
    /// MariaDB / MySQL.
    Mariadb,
}

/// A scratch database, dropped (with its sessions) when the guard goes.
pub struct Database {
    server: Server,
    conn: client::Connection,
    /// Its name.
    pub name: String,
}

impl Database {
    /// Name a new scratch database on `conn`; it is created by the restore.
    pub fn new(server: Server, conn: &client::Connection) -> Database {
        Database { server, conn: conn.clone(), name: format!("{DATABASE_PREFIX}{}", suffix()) }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = match self.server {
            Server::Postgres => postgres::drop_database(&self.conn, &self.name),
            Server::Mariadb => mariadb::drop_database(&self.conn, &self.name),
        };
    }
}

/// Scratch streams on a NATS server, deleted when the guard goes.
pub struct Streams {
    conn: nats::Connection,
    /// Their names.
    pub names: Vec<String>,
}

impl Streams {
    /// No streams yet.
    pub fn new(conn: &nats::Connection) -> Streams {
        Streams { conn: conn.clone(), names: Vec::new() }
    }

    /// Name one more scratch stream (registered before it exists, so a half-made one goes too).
    pub fn add(&mut self) -> String {
        let name = format!("{STREAM_PREFIX}{}", suffix().to_ascii_uppercase());
        self.names.push(name.clone());
        name
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        if let Ok(mut c) = nats::client::Client::connect(&self.conn) {
            for s in &self.names {
                let _ = c.js_raw(&format!("STREAM.DELETE.{s}"), &serde_json::Value::Null);
            }
        }
    }
}
