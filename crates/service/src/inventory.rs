//! What the repository and the config hold: repository creation, snapshot listings with their
//! verification status, the config's sources with their last backup.

use std::collections::HashMap;
use std::sync::Arc;

use lifeboat_crypto::KdfParams;
use lifeboat_format::Id;
use lifeboat_ops::records::{self, Outcome, RunKind, RunOutcome, Verification};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{InitOptions, Repository};

use crate::config::Config;
use crate::error::{Result, ServiceError};
use crate::filter::FilterSpec;
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// `init`: create a repository (asking for the password twice on a terminal).
pub fn init(session: &Session, kdf_n: u32) -> Result<Repository> {
    let backend = session.backend()?;
    if !kdf_n.is_power_of_two() || kdf_n < 1024 {
        return Err(ServiceError::msg("--kdf-n must be a power of two of at least 1024"));
    }
    session.compression()?;
    let pw = session.password(true)?;
    let kdf = KdfParams { n: kdf_n, ..KdfParams::default_restic() };
    Ok(Repository::init(backend, &pw, &InitOptions { kdf, ..InitOptions::default() })?)
}

/// A verification status filter of a listing.
#[derive(Clone, Debug, Default)]
pub struct StatusFilter {
    /// Only snapshots whose latest verification passed.
    pub verified_only: bool,
    /// Only this status: `ok`, `failed`, `partial`, `unverified`.
    pub status: Option<String>,
    /// Only the newest N.
    pub limit: Option<usize>,
}

/// A snapshot with its newest verification.
#[derive(Debug)]
pub struct Listed {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Its newest verification, if any.
    pub verification: Option<Verification>,
}

/// The snapshots the filters pass, oldest first, each with its newest verification; and the
/// snapshot files that cannot be read, each named (the listing goes on, the caller fails).
pub fn snapshots(
    session: &Session,
    spec: &FilterSpec,
    status: &StatusFilter,
    observer: &Observer,
) -> Result<(Vec<Listed>, Vec<String>)> {
    let repo = session.open()?;
    let (all, bad) = snapshots::list(&repo)?;
    let damaged: Vec<String> = bad.into_iter().map(|(n, e)| snapshots::damaged(n, e).to_string()).collect();
    let f = spec.filter()?;
    let mut latest = latest_verifications(&repo, observer);
    let mut list: Vec<Listed> = all
        .into_iter()
        .filter(|s| f.matches(&s.snapshot))
        .map(|s| Listed { verification: latest.remove(&s.id), entry: s })
        .filter(|l| status_matches(status, l.verification.as_ref()))
        .collect();
    if let Some(n) = status.limit {
        list.drain(..list.len().saturating_sub(n));
    }
    Ok((list, damaged))
}

/// `ok`, `failed`, `partial` (lower case, as `--status` takes them).
pub fn status_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Failed => "failed",
        Outcome::Partial => "partial",
    }
}

fn status_matches(f: &StatusFilter, v: Option<&Verification>) -> bool {
    let word = v.map(|v| status_word(v.outcome)).unwrap_or("unverified");
    (!f.verified_only || word == "ok") && f.status.as_deref().is_none_or(|s| s == word)
}

/// The newest verification record of each snapshot (a listing still works when they cannot be
/// read: then a warning, and every snapshot shows as unverified).
fn latest_verifications(repo: &Repository, observer: &Observer) -> HashMap<Id, Verification> {
    match records::verifications(repo) {
        Ok(all) => all.into_iter().map(|v| (v.snapshot, v)).collect(),
        Err(e) => {
            observer(&Event::Warning { message: format!("cannot read verification records: {}", one_line(&e)) });
            HashMap::new()
        }
    }
}

/// The config's sources, each with its newest snapshot.
pub fn sources(session: &Session) -> Result<(Arc<Config>, Vec<Option<SnapshotEntry>>)> {
    let cfg = session.require_config("no config file")?;
    let repo = session.open()?;
    let (all, _) = snapshots::list(&repo)?;
    let last = cfg
        .sources()
        .map(|src| all.iter().rev().find(|s| s.snapshot.source.as_ref().is_some_and(|x| x.name == src.name)).cloned())
        .collect();
    Ok((cfg, last))
}

/// `check`: the repository's structure, and with `read_data = Some(percent)` that share of the
/// packs read back (100: all); the number of packs is given to `total` before reading starts,
/// and `packs_done` counts those read.
pub fn check(
    session: &Session,
    read_data: Option<u8>,
    interrupt: &Arc<std::sync::atomic::AtomicBool>,
    packs_done: Arc<std::sync::atomic::AtomicU64>,
    total: &mut dyn FnMut(u64),
    observer: &Observer,
) -> Result<lifeboat_repository::checker::CheckResults> {
    let repo = session.open()?;
    let _lock = session.lock_read_only(&repo, observer)?;
    let writable = _lock.is_some();
    if read_data.is_some() {
        total(repo.backend().list(lifeboat_backend::FileType::Pack)?.len() as u64);
    }
    let opts = lifeboat_repository::checker::CheckOptions {
        read_data: read_data.is_some(),
        read_data_percent: read_data,
        interrupt: Some(interrupt.clone()),
        packs_done: Some(packs_done),
        ..Default::default()
    };
    if !writable {
        // A repository read without a lock: no run record either.
        return Ok(lifeboat_repository::checker::check(&repo, &opts)?);
    }
    let quiet = crate::progress::ignore();
    let run = crate::runs::begin(&repo, session, RunKind::Check, None, quiet.as_ref());
    let result = lifeboat_repository::checker::check(&repo, &opts);
    let (outcome, error) = match &result {
        Ok(r) if r.is_ok() => (RunOutcome::Ok, None),
        Ok(r) => (RunOutcome::Failed, Some(format!("{} errors: {}", r.errors.len(), r.errors[0]))),
        Err(e) => (RunOutcome::Failed, Some(one_line(e))),
    };
    let mut run = run;
    run.bytes = result.as_ref().ok().map(|r| r.bytes_read);
    crate::runs::end(&repo, run, outcome, error, quiet.as_ref());
    Ok(result?)
}

/// Compare every regular file below `a` with the same path below `b`, byte for byte; returns
/// how many were compared, or an error naming the first that differs or is missing.
pub fn compare_trees(a: &std::path::Path, b: &std::path::Path) -> Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(a).map_err(|e| ServiceError::io(a.display().to_string(), e))? {
        let entry = entry.map_err(|e| ServiceError::io(a.display().to_string(), e))?;
        let (pa, pb) = (entry.path(), b.join(entry.file_name()));
        let ft = entry.file_type().map_err(|e| ServiceError::io(pa.display().to_string(), e))?;
        if ft.is_dir() {
            n += compare_trees(&pa, &pb)?;
        } else if ft.is_file() {
            let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| ServiceError::io(p.display().to_string(), e));
            if read(&pa)? != read(&pb)? {
                return Err(ServiceError::msg(format!("{} differs after restore", pa.display())));
            }
            n += 1;
        }
    }
    Ok(n)
}

/// `ls`: every entry of the snapshot `reference` below `path` (all with `None`), in tree order;
/// with `hash`, each file's whole-content SHA-256 (hex) computed from the stored data.
pub fn ls(
    session: &Session,
    reference: &str,
    spec: &FilterSpec,
    path: Option<&str>,
    hash: bool,
    each: &mut dyn FnMut(&lifeboat_repository::tree::WalkEntry, Option<&str>),
) -> Result<()> {
    use lifeboat_repository::tree;
    let repo = session.open()?;
    let snap = crate::filter::find_snapshot(&repo, reference, spec)?;
    let prefix = path.map(|p| format!("/{}", p.trim_matches('/'))).filter(|p| p != "/");
    let (mut start, mut base) = (snap.snapshot.tree, String::new());
    if let Some(p) = &prefix {
        let node = tree::find_node(&repo, &snap.snapshot.tree, p)?
            .ok_or_else(|| lifeboat_repository::RepoError::PathNotFound(p.clone()))?;
        match node.subtree {
            Some(sub) => (start, base) = (sub, p.clone()),
            None => return Err(ServiceError::msg(format!("{p} is not a directory in snapshot {}", snap.id.short()))),
        }
    }
    tree::walk(&repo, &start, &base, &mut |e| {
        let sum = match (hash, e.node.node_type) {
            (true, lifeboat_format::NodeType::File) => Some(crate::diff::file_sha256(&repo, &e.node)?),
            _ => None,
        };
        each(e, sum.as_deref());
        Ok(true)
    })?;
    Ok(())
}

fn type_char(t: lifeboat_format::NodeType) -> char {
    use lifeboat_format::NodeType;
    match t {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'l',
        NodeType::Dev => 'b',
        NodeType::Chardev => 'c',
        NodeType::Fifo => 'p',
        NodeType::Socket => 's',
        NodeType::File => '-',
    }
}

/// One `ls` entry for people: the path; with `long`, mode, owner, size and time first; with a
/// hash, `sha256sum`'s layout (`HEX  PATH`; directories and other non-files get dashes).
pub fn ls_line(e: &lifeboat_repository::tree::WalkEntry, long: bool, hash: Option<Option<&str>>) -> String {
    use lifeboat_format::mode::unix_permissions_from_go;
    let n = &e.node;
    let mut out = match hash {
        Some(h) => format!("{:<64}  ", h.unwrap_or("-")),
        None => String::new(),
    };
    if long {
        out.push_str(&format!(
            "{}{:>4o} {:>8} {:>8} {:>10} {} ",
            type_char(n.node_type),
            unix_permissions_from_go(n.mode),
            if n.user.is_empty() { n.uid.to_string() } else { n.user.clone() },
            if n.group.is_empty() { n.gid.to_string() } else { n.group.clone() },
            crate::human::size(n.size),
            n.mtime
                .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
        ));
    }
    out.push_str(&e.path);
    if long && !n.linktarget.is_empty() {
        out.push_str(&format!(" -> {}", n.linktarget));
    }
    out
}

/// One `ls` entry as JSON (`sha256` with `--hash`, for files).
pub fn ls_json(e: &lifeboat_repository::tree::WalkEntry, hash: Option<&str>) -> serde_json::Value {
    let n = &e.node;
    let mut v = serde_json::json!({
        "path": e.path, "type": n.node_type, "size": n.size,
        "mode": lifeboat_format::mode::unix_permissions_from_go(n.mode), "uid": n.uid, "gid": n.gid,
        "mtime": n.mtime, "linktarget": (!n.linktarget.is_empty()).then_some(&n.linktarget),
    });
    if let (Some(h), Some(o)) = (hash, v.as_object_mut()) {
        o.insert("sha256".into(), h.into());
    }
    v
}
