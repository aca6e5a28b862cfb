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

/// Why a program could not be started because it does not exist: where it was looked for
/// (`bin_dir`, or each directory of `PATH`) and what to install.
pub fn missing_program(program: &str, bin_dir: Option<&str>, install: &str) -> String {
    let name = std::path::Path::new(program).file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_else(|| program.to_string());
    match bin_dir {
        Some(d) => format!("{name} is not installed in bin_dir {d} ({install}, or fix bin_dir)"),
        None if program.contains('/') => format!("{program} does not exist ({install})"),
        None => {
            let path = std::env::var("PATH").unwrap_or_default();
            format!("{name} is not installed: not found in PATH ({path}) ({install})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_itself_and_where_it_was_looked_for() {
        let m = missing_program("pg_dump", None, "install postgresql-client or set bin_dir");
        assert!(m.starts_with("pg_dump is not installed: not found in PATH ("), "{m}");
        assert!(m.contains(&std::env::var("PATH").unwrap_or_default()), "{m}");
        let m = missing_program("/opt/pg/bin/pg_dump", Some("/opt/pg/bin"), "install postgresql-client");
        assert_eq!(m, "pg_dump is not installed in bin_dir /opt/pg/bin (install postgresql-client, or fix bin_dir)");
    }
}
