//! Guarded restores: deciding whether a restore may touch something that must not be
//! overwritten by accident, and whether the operator has confirmed it.
//!
//! A restore is *guarded* when its source is marked `protected`, or when it writes to the
//! source's own live location (the directory, file, database, redis server or stream that the
//! source backs up). A guarded restore needs `--force` and the source's name typed back (at a
//! prompt, or with `--confirm NAME`). This module is pure: the caller resolves paths and
//! connection settings into [`Location`]s; nothing here touches the file system or a server.

use std::path::{Component, Path, PathBuf};

/// A server as `host:port`, with the loopback spellings (`localhost`, `127.0.0.1`, `::1`, an
/// empty host and a Unix socket directory) treated as one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Host name, lower case.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Server {
    /// A server; `host` `None` means the client's local default.
    pub fn new(host: Option<&str>, port: u16) -> Server {
        Server { host: host.unwrap_or_default().trim_matches(['[', ']']).to_ascii_lowercase(), port }
    }

    fn canonical_host(&self) -> &str {
        match self.host.as_str() {
            "" | "localhost" | "127.0.0.1" | "::1" => "localhost",
            h if h.starts_with('/') => "localhost",
            h => h,
        }
    }

    /// Whether two servers are the same one.
    pub fn same(&self, other: &Server) -> bool {
        self.port == other.port && self.canonical_host() == other.canonical_host()
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.is_empty() { "localhost" } else { self.host.as_str() };
        if host.contains(':') {
            write!(f, "[{host}]:{}", self.port)
        } else {
            write!(f, "{host}:{}", self.port)
        }
    }
}

/// Where a restore writes, or where a source's live data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Files and directories on this machine: absolute, normalised paths.
    Paths(Vec<PathBuf>),
    /// A database on a server (postgres, mariadb).
    Database {
        /// The server.
        server: Server,
        /// Database name.
        name: String,
    },
    /// Redis databases on a server; `None` = every database.
    Redis {
        /// The server.
        server: Server,
        /// Database indexes.
        dbs: Option<Vec<u32>>,
    },
    /// JetStream streams; `None` = every stream of the account.
    Streams {
        /// The servers (a cluster's seed list; any one in common means the same cluster).
        servers: Vec<Server>,
        /// Stream names.
        names: Option<Vec<String>>,
    },
}

/// Whether two path sets overlap: one path is equal to, or inside, the other.
fn paths_overlap(a: &[PathBuf], b: &[PathBuf]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.starts_with(y) || y.starts_with(x)))
}

/// Whether two optional sets (`None` = everything) share a member.
fn sets_overlap<T: PartialEq>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|x| b.contains(x)),
        (Some(a), None) | (None, Some(a)) => !a.is_empty(),
        (None, None) => true,
    }
}

impl Location {
    /// Whether a restore to `self` writes into `live` (or over it).
    pub fn overlaps(&self, live: &Location) -> bool {
        match (self, live) {
            (Location::Paths(a), Location::Paths(b)) => paths_overlap(a, b),
            (Location::Database { server: s1, name: n1 }, Location::Database { server: s2, name: n2 }) => {
                s1.same(s2) && n1 == n2
            }
            (Location::Redis { server: s1, dbs: d1 }, Location::Redis { server: s2, dbs: d2 }) => {
                s1.same(s2) && sets_overlap(d1, d2)
            }
            (Location::Streams { servers: s1, names: n1 }, Location::Streams { servers: s2, names: n2 }) => {
                s1.iter().any(|a| s2.iter().any(|b| a.same(b))) && sets_overlap(n1, n2)
            }
            _ => false,
        }
    }

    /// The location in words, e.g. `database app on localhost:5432`.
    pub fn describe(&self) -> String {
        let list = |v: &[String]| v.join(", ");
        match self {
            Location::Paths(p) => {
                let shown: Vec<String> = p.iter().map(|p| p.display().to_string()).collect();
                list(&shown)
            }
            Location::Database { server, name } => format!("database {name} on {server}"),
            Location::Redis { server, dbs: None } => format!("every database of redis {server}"),
            Location::Redis { server, dbs: Some(d) } => {
                let d: Vec<String> = d.iter().map(|d| format!("db{d}")).collect();
                format!("{} of redis {server}", list(&d))
            }
            Location::Streams { servers, names } => {
                let at = servers.first().map(ToString::to_string).unwrap_or_default();
                match names {
                    None => format!("every stream on {at}"),
                    Some(n) => format!("stream {} on {at}", list(n)),
                }
            }
        }
    }
}

/// Why a restore is guarded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// The source is marked `protected = true`.
    Protected,
    /// The restore writes to the source's live location.
    LiveLocation {
        /// The live location, in words.
        live: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Protected => f.write_str("the source is protected"),
            Reason::LiveLocation { live } => write!(f, "it writes to the source's live data ({live})"),
        }
    }
}

/// Why a restore is guarded; empty = not guarded.
pub fn reasons(protected: bool, live: Option<&Location>, target: &Location) -> Vec<Reason> {
    let mut r = Vec::new();
    if protected {
        r.push(Reason::Protected);
    }
    if let Some(live) = live.filter(|l| target.overlaps(l)) {
        r.push(Reason::LiveLocation { live: live.describe() });
    }
    r
}

/// Why a guarded restore was not confirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `--force` was not given.
    NoForce,
    /// `--force` was given but no confirmation (not interactive and no `--confirm`).
    NoConfirmation,
    /// The confirmation does not match the source name.
    Mismatch {
        /// What was given.
        given: String,
    },
}

/// Check the operator's confirmation of a guarded restore of `source`: `force` and the name
/// (from `--confirm` or typed at a prompt) must both be there, and the name must match exactly
/// (surrounding white space ignored).
pub fn confirm(source: &str, force: bool, confirmation: Option<&str>) -> Result<(), Refusal> {
    if !force {
        return Err(Refusal::NoForce);
    }
    match confirmation.map(str::trim) {
        None => Err(Refusal::NoConfirmation),
        Some(c) if c == source => Ok(()),
        Some(c) => Err(Refusal::Mismatch { given: c.to_string() }),
    }
}

/// `path` made absolute against `cwd` with `.` and `..` removed lexically (no file system
/// access; resolve symbolic links before calling if they matter).
pub fn normalize(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Where a file restore writes: each restored snapshot path (absolute inside the snapshot)
/// below the target directory, as restore lays it out (`TARGET/<absolute path>`).
pub fn file_restore_roots(target: &Path, snapshot_paths: &[String]) -> Vec<PathBuf> {
    snapshot_paths.iter().map(|p| normalize(Path::new(p.trim_start_matches('/')), target)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Location {
        Location::Paths(p.iter().map(PathBuf::from).collect())
    }

    #[test]
    fn file_restores_into_or_over_live_paths_are_guarded() {
        let live = paths(&["/srv/app/data"]);
        let snap = vec!["/srv/app/data".to_string()];
        // Restoring to / recreates the live path itself.
        assert!(Location::Paths(file_restore_roots(Path::new("/"), &snap)).overlaps(&live));
        // Into the live directory (or below it).
        assert!(Location::Paths(file_restore_roots(Path::new("/srv/app/data"), &snap)).overlaps(&live));
        assert!(Location::Paths(file_restore_roots(Path::new("/srv/app/data/old"), &snap)).overlaps(&live));
        // A scratch directory, or a parent that only gets a nested copy, is not.
        assert!(!Location::Paths(file_restore_roots(Path::new("/tmp/restore"), &snap)).overlaps(&live));
        assert!(!Location::Paths(file_restore_roots(Path::new("/srv"), &snap)).overlaps(&live));
        // Only an included sub-path is restored: still inside the live directory.
        let inc = vec!["/srv/app/data/x.txt".to_string()];
        assert!(Location::Paths(file_restore_roots(Path::new("/"), &inc)).overlaps(&live));
        // A live path inside what is restored.
        let parent = vec!["/srv".to_string()];
        assert!(Location::Paths(file_restore_roots(Path::new("/"), &parent)).overlaps(&live));
    }

    #[test]
    fn normalize_is_lexical() {
        let cwd = Path::new("/home/op");
        assert_eq!(normalize(Path::new("r/../x/./y"), cwd), PathBuf::from("/home/op/x/y"));
        assert_eq!(normalize(Path::new("/a/b/../../.."), cwd), PathBuf::from("/"));
        assert_eq!(file_restore_roots(Path::new("/t"), &["/".to_string()]), vec![PathBuf::from("/t")]);
    }

    #[test]
    fn sqlite_file_is_guarded_only_at_its_own_path() {
        let live = paths(&["/var/lib/app/memory.db"]);
        assert!(paths(&["/var/lib/app/memory.db"]).overlaps(&live));
        assert!(!paths(&["/var/lib/app/memory.db.restored"]).overlaps(&live));
        assert!(!paths(&["/tmp/memory.db"]).overlaps(&live));
    }

    #[test]
    fn databases_match_on_server_and_name() {
        let live = Location::Database { server: Server::new(Some("127.0.0.1"), 5432), name: "app".into() };
        let same = Location::Database { server: Server::new(Some("localhost"), 5432), name: "app".into() };
        let socket = Location::Database { server: Server::new(Some("/var/run/postgresql"), 5432), name: "app".into() };
        let other_db = Location::Database { server: Server::new(Some("127.0.0.1"), 5432), name: "app_copy".into() };
        let other_port = Location::Database { server: Server::new(Some("127.0.0.1"), 5433), name: "app".into() };
        let other_host = Location::Database { server: Server::new(Some("db2.internal"), 5432), name: "app".into() };
        assert!(same.overlaps(&live) && socket.overlaps(&live));
        assert!(!other_db.overlaps(&live) && !other_port.overlaps(&live) && !other_host.overlaps(&live));
        assert_eq!(live.describe(), "database app on 127.0.0.1:5432");
    }

    #[test]
    fn redis_matches_on_server_and_database_index() {
        let server = Server::new(Some("127.0.0.1"), 6379);
        let live_13 = Location::Redis { server: server.clone(), dbs: Some(vec![13]) };
        let live_all = Location::Redis { server: server.clone(), dbs: None };
        let to = |dbs: Option<Vec<u32>>| Location::Redis { server: server.clone(), dbs };
        assert!(to(Some(vec![13])).overlaps(&live_13));
        assert!(!to(Some(vec![14])).overlaps(&live_13));
        assert!(to(None).overlaps(&live_13), "every database back to its own index includes db13");
        assert!(to(Some(vec![14])).overlaps(&live_all));
        let elsewhere = Location::Redis { server: Server::new(Some("127.0.0.1"), 6380), dbs: Some(vec![13]) };
        assert!(!elsewhere.overlaps(&live_13));
        assert_eq!(live_13.describe(), "db13 of redis 127.0.0.1:6379");
    }

    #[test]
    fn nats_matches_on_any_common_server_and_stream_name() {
        let a = Server::new(Some("127.0.0.1"), 4222);
        let b = Server::new(Some("10.0.0.2"), 4222);
        let live = Location::Streams { servers: vec![b.clone(), a.clone()], names: Some(vec!["ORDERS".into()]) };
        let to = |s: &Server, n: &str| Location::Streams { servers: vec![s.clone()], names: Some(vec![n.into()]) };
        assert!(to(&a, "ORDERS").overlaps(&live));
        assert!(!to(&a, "ORDERS_DRILL").overlaps(&live));
        assert!(!to(&Server::new(Some("10.9.9.9"), 4222), "ORDERS").overlaps(&live));
        let every = Location::Streams { servers: vec![a.clone()], names: None };
        assert!(to(&a, "ANY").overlaps(&every));
    }

    #[test]
    fn kinds_never_overlap_each_other() {
        let db = Location::Database { server: Server::new(None, 5432), name: "x".into() };
        assert!(!paths(&["/"]).overlaps(&db));
    }

    #[test]
    fn reasons_and_confirmation() {
        let live = paths(&["/srv/data"]);
        assert!(reasons(false, Some(&live), &paths(&["/tmp/x"])).is_empty());
        assert_eq!(reasons(true, None, &paths(&["/tmp/x"])), vec![Reason::Protected]);
        let r = reasons(true, Some(&live), &paths(&["/srv/data"]));
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].to_string(), "it writes to the source's live data (/srv/data)");

        assert_eq!(confirm("memory-db", false, Some("memory-db")), Err(Refusal::NoForce));
        assert_eq!(confirm("memory-db", true, None), Err(Refusal::NoConfirmation));
        assert_eq!(confirm("memory-db", true, Some("memory")), Err(Refusal::Mismatch { given: "memory".into() }));
        assert_eq!(confirm("memory-db", true, Some("Memory-DB")), Err(Refusal::Mismatch { given: "Memory-DB".into() }));
        assert_eq!(confirm("memory-db", true, Some(" memory-db\n")), Ok(()));
    }
}
