//! The WAL archive of a PostgreSQL source with point-in-time recovery: each segment (and timeline
//! history, backup label or partial segment) PostgreSQL hands to `archive_command` is stored
//! under `lifeboat/wal/<tag>/<name>`, compressed and encrypted like every `lifeboat/` object.
//! The tag is a keyed hash of the source's name (the storage does not learn it).
//!
//! Pushing is idempotent: a segment already archived with the same content is accepted again
//! (PostgreSQL retries after a crash between the copy and its own bookkeeping), one with other
//! content is refused, so an archive can never be silently overwritten by a second cluster.

use lifeboat_backend::FileType;
use lifeboat_repository::{RepoError, Repository};

use crate::OpsError;

/// Where a source's WAL lives under `lifeboat/`.
pub fn prefix(repo: &Repository, source: &str) -> String {
    format!("wal/{}/", crate::records::keyed_tag(repo, "wal", source))
}

/// Whether `name` is something PostgreSQL archives: a segment (24 hex digits), optionally
/// `.partial`, a timeline history file (`8 hex digits.history`) or a backup label
/// (`<segment>.<8 hex digits>.backup`). Anything else (a path, `..`) is refused.
pub fn valid_name(name: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase());
    if let Some(tl) = name.strip_suffix(".history") {
        return hex(tl, 8);
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        return hex(seg, 24);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        return rest.split_once('.').is_some_and(|(seg, off)| hex(seg, 24) && hex(off, 8));
    }
    hex(name, 24)
}

/// What [`push`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Stored now.
    Stored,
    /// Already archived with the same content: nothing to do.
    AlreadyThere,
}

fn bad(name: &str) -> OpsError {
    OpsError::BadValue {
        what: "WAL file name",
        text: name.to_string(),
        hint: "expected a segment (24 hex digits), NNNNNNNN.history or a .backup/.partial file".into(),
    }
}

/// Archive `data` as `name` for `source`; durable when this returns.
pub fn push(repo: &Repository, source: &str, name: &str, data: &[u8]) -> Result<Pushed, OpsError> {
    if !valid_name(name) {
        return Err(bad(name));
    }
    let object = format!("{}{name}", prefix(repo, source));
    match fetch_object(repo, &object)? {
        Some(old) if old == data => return Ok(Pushed::AlreadyThere),
        Some(_) => {
            return Err(OpsError::Conflict(format!(
                "WAL file {name} of source {source} is already archived with different content: refusing to \
                 overwrite it (is a second cluster archiving into the same source?)"
            )))
        }
        None => {}
    }
    // The archiver waits for this: compressed on every core.
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    repo.backend()
        .save(FileType::Lifeboat, &object, &repo.encode_unpacked_parallel(data, parts))
        .map_err(RepoError::from)?;
    // A small marker after the data: when it was archived (the source's recovery point, for
    // health and the daemon), without opening the segment.
    let marker = serde_json::json!({ "pushed": chrono::Utc::now(), "bytes": data.len() });
    let marker = serde_json::to_vec(&marker).map_err(|e| RepoError::Invalid(e.to_string()))?;
    repo.backend()
        .save(FileType::Lifeboat, &format!("{object}{MARK}"), &repo.encode_unpacked(&marker))
        .map_err(RepoError::from)?;
    Ok(Pushed::Stored)
}

/// The suffix of a WAL file's archive marker.
const MARK: &str = ".pushed";

/// When the newest WAL file (or, for a continuously replicated SQLite source, the newest
/// segment) of each of `sources` was archived (one listing for all); sources without any are
/// left out.
pub fn last_pushes(
    repo: &Repository,
    sources: &[&str],
) -> Result<std::collections::HashMap<String, chrono::DateTime<chrono::Utc>>, OpsError> {
    let prefixes: Vec<(String, &str)> = sources.iter().map(|s| (prefix(repo, s), *s)).collect();
    let mut newest: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut out: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> = std::collections::HashMap::new();
    let mut segments = Vec::new();
    for (name, _) in repo.backend().list_prefix(FileType::Lifeboat, "wal/").map_err(RepoError::from)? {
        if !name.starts_with("wal/") {
            continue;
        }
        let Some((p, src)) = prefixes.iter().find(|(p, _)| name.starts_with(p.as_str())) else { continue };
        if name.ends_with(MARK) {
            let e = newest.entry(src).or_default();
            if name > *e {
                *e = name;
            }
        } else if let Some(seg) = crate::replica::parse(&name[p.len()..]) {
            segments.push((src, seg));
        }
    }
    // A SQLite source's replication segments: their names say when they were shipped, except
    // for one still appended to (read for it).
    for (src, seg) in segments {
        if let Some(seg) = crate::replica::resolve(repo, src, seg)? {
            let e = out.entry(src.to_string()).or_insert(seg.shipped);
            *e = (*e).max(seg.shipped);
        }
    }
    for (src, object) in newest {
        #[derive(serde::Deserialize)]
        struct Marker {
            pushed: chrono::DateTime<chrono::Utc>,
        }
        let m: Marker = repo.load_json(FileType::Lifeboat, &object)?;
        out.insert(src.to_string(), m.pushed);
    }
    Ok(out)
}

fn fetch_object(repo: &Repository, object: &str) -> Result<Option<Vec<u8>>, OpsError> {
    match repo.load_unpacked(FileType::Lifeboat, object) {
        Ok(d) => Ok(Some(d)),
        Err(RepoError::Backend(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The archived `name` of `source`, or `None` when it was never archived.
pub fn fetch(repo: &Repository, source: &str, name: &str) -> Result<Option<Vec<u8>>, OpsError> {
    if !valid_name(name) {
        return Err(bad(name));
    }
    fetch_object(repo, &format!("{}{name}", prefix(repo, source)))
}

/// The names archived for `source`, sorted (segments sort by timeline, then position).
pub fn list(repo: &Repository, source: &str) -> Result<Vec<(String, u64)>, OpsError> {
    let p = prefix(repo, source);
    let mut v: Vec<(String, u64)> = repo
        .backend()
        .list_prefix(FileType::Lifeboat, &p)
        .map_err(RepoError::from)?
        .into_iter()
        .filter_map(|(n, size)| n.strip_prefix(&p).map(|s| (s.to_string(), size)))
        .filter(|(n, _)| !n.ends_with(MARK))
        .collect();
    v.sort();
    Ok(v)
}

/// Remove archived names of `source` (retention).
pub fn remove(repo: &Repository, source: &str, names: &[String]) -> Result<(), OpsError> {
    let p = prefix(repo, source);
    let objects: Vec<String> = names.iter().flat_map(|n| [format!("{p}{n}{MARK}"), format!("{p}{n}")]).collect();
    repo.backend().remove_many(FileType::Lifeboat, &objects).map_err(RepoError::from)?;
    Ok(())
}

/// The segments (by name) of `list` that no base backup starting at `oldest_start` (a segment
/// name) or later needs: older segments of any timeline, and their `.backup`/`.partial`
/// files. History files are always kept (they are tiny and recovery reads them).
pub fn prunable(names: &[String], oldest_start: &str) -> Vec<String> {
    let pos = |n: &str| n.get(8..24).map(str::to_string);
    let Some(keep_from) = pos(oldest_start) else { return Vec::new() };
    names
        .iter()
        .filter(|n| !n.ends_with(".history"))
        .filter(|n| pos(n).is_some_and(|p| p < keep_from))
        .cloned()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_postgres_archives_and_nothing_else() {
        for ok in [
            "000000010000000000000003",
            "00000002.history",
            "000000010000000000000003.partial",
            "000000010000000000000002.00000028.backup",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "00000001000000000000000",
            "0000000100000000000000g3",
            "a/000000010000000000000003",
            "00000002.History",
            "000000010000000000000003.backup",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_segment_compressed_in_pieces_reads_back_whole_and_pushes_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let backend = std::sync::Arc::new(lifeboat_backend::LocalBackend::new(dir.path()));
        let opts = lifeboat_repository::InitOptions {
            kdf: lifeboat_crypto::KdfParams { n: 1024, r: 8, p: 1 },
            chunker_polynomial: None,
        };
        let repo = Repository::init(backend, b"pw", &opts).unwrap();
        // 16 MiB that compresses, with an odd tail so the pieces differ in size.
        let mut seg: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8 ^ ((i >> 13) as u8)).collect();
        seg.truncate(seg.len() - 12345);
        let encoded = repo.encode_unpacked_parallel(&seg, 3);
        assert!(encoded.len() < seg.len() / 2, "compressed: {}", encoded.len());
        assert_eq!(repo.decode_unpacked(&encoded).unwrap(), seg);
        let name = "000000010000000000000003";
        assert_eq!(push(&repo, "pg", name, &seg).unwrap(), Pushed::Stored);
        assert_eq!(fetch(&repo, "pg", name).unwrap().unwrap(), seg);
        assert_eq!(push(&repo, "pg", name, &seg).unwrap(), Pushed::AlreadyThere);
        let mut other = seg.clone();
        other[7] ^= 1;
        assert!(push(&repo, "pg", name, &other).is_err(), "different content under the same name is refused");
    }

    #[test]
    fn prunes_segments_before_the_oldest_base() {
        let names: Vec<String> = [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003",
            "00000002.history",
            "000000020000000000000003",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(prunable(&names, "000000010000000000000002"), ["000000010000000000000001"]);
        assert_eq!(prunable(&names, "000000020000000000000003").len(), 3);
    }
}
