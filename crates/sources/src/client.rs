//! Connection settings of the database sources that drive the database's own command-line
//! clients (`postgres`: psql/pg_dump/pg_restore, `mariadb`: mariadb/mariadb-dump).

use std::path::PathBuf;

/// How to reach a database server through its command-line clients.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Host (or socket directory); default: the client's local default.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// User or role.
    pub user: Option<String>,
    /// Password, already substituted. Handed to the clients through their environment variable
    /// (`PGPASSWORD`, `MYSQL_PWD`), never through argv.
    pub password: Option<String>,
    /// Directory holding the client programs (default: `PATH`).
    pub bin_dir: Option<String>,
}

impl Connection {
    /// Path of a client program.
    pub(crate) fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => std::path::Path::new(d).join(name),
            None => name.into(),
        }
    }

    /// `kind user@host:port/db` for messages (never the password).
    pub(crate) fn describe(&self, kind: &str, default_port: u16, db: &str) -> String {
        format!(
            "{kind} {}@{}:{}/{db}",
            self.user.as_deref().unwrap_or("(default user)"),
            self.host.as_deref().unwrap_or("localhost"),
            self.port.unwrap_or(default_port)
        )
    }
}
