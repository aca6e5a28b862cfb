//! Where continuous replication of a SQLite source keeps its segments: under the source's WAL
//! prefix (`lifeboat/wal/<tag>/`, see [`crate::wal`]), one directory per generation and one
//! object per shipment, named `<generation>/<first txid>-<last txid>-<unix ms>` (16 hex digits
//! each for the ids, 13 decimal digits for the time the shipment was made), compressed and
//! encrypted like every `lifeboat/` object. Names sort in transaction order, and the newest
//! shipment's time is known from the listing alone (health, the daemon's lag).

use lifeboat_backend::FileType;
use lifeboat_repository::{RepoError, Repository};
use lifeboat_sources::sqlite::segment::Segment;

use crate::OpsError;

/// A stored segment, from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Generation.
    pub generation: String,
    /// First transaction id.
    pub first: u64,
    /// Last transaction id.
    pub last: u64,
    /// When it was shipped.
    pub shipped: chrono::DateTime<chrono::Utc>,
    /// The object name below the source's prefix.
    pub name: String,
}

/// A new generation's name: the time it starts, in microseconds, as 16 hex digits (sorts by
/// time).
pub fn new_generation(now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{:016x}", now.timestamp_micros().max(0))
}

fn valid_generation(g: &str) -> bool {
    g.len() == 16 && g.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Parse a name below the source's prefix; `None` for anything else (PostgreSQL WAL files).
pub fn parse(name: &str) -> Option<Stored> {
    let (generation, rest) = name.split_once('/')?;
    if !valid_generation(generation) {
        return None;
    }
    let mut parts = rest.split('-');
    let first = parts.next().filter(|p| p.len() == 16).and_then(|p| u64::from_str_radix(p, 16).ok())?;
    let last = parts.next().filter(|p| p.len() == 16).and_then(|p| u64::from_str_radix(p, 16).ok())?;
    let ms = parts.next().filter(|p| p.len() == 13).and_then(|p| p.parse::<i64>().ok())?;
    if parts.next().is_some() || last < first {
        return None;
    }
    let shipped = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(Stored { generation: generation.to_string(), first, last, shipped, name: name.to_string() })
}

/// Store `seg` for `source`; durable when this returns.
pub fn save(
    repo: &Repository,
    source: &str,
    seg: &Segment,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Stored, OpsError> {
    let Some((first, last)) = seg.txids() else {
        return Err(OpsError::BadValue { what: "segment", text: "empty".into(), hint: "nothing to ship".into() });
    };
    if !valid_generation(&seg.generation) {
        return Err(OpsError::BadValue {
            what: "generation",
            text: seg.generation.clone(),
            hint: "16 lower-case hex digits".into(),
        });
    }
    let name = format!("{}/{first:016x}-{last:016x}-{:013}", seg.generation, now.timestamp_millis().max(0));
    let object = format!("{}{name}", crate::wal::prefix(repo, source));
    repo.backend().save(FileType::Lifeboat, &object, &repo.encode_unpacked(&seg.encode())).map_err(RepoError::from)?;
    Ok(Stored { generation: seg.generation.clone(), first, last, shipped: now, name })
}

/// Every stored segment of `source`, in transaction order.
pub fn list(repo: &Repository, source: &str) -> Result<Vec<Stored>, OpsError> {
    let mut v: Vec<Stored> = crate::wal::list(repo, source)?.into_iter().filter_map(|(n, _)| parse(&n)).collect();
    v.sort_by(|a, b| (a.first, &a.generation).cmp(&(b.first, &b.generation)));
    Ok(v)
}

/// Load a stored segment.
pub fn load(repo: &Repository, source: &str, stored: &Stored) -> Result<Segment, OpsError> {
    let object = format!("{}{}", crate::wal::prefix(repo, source), stored.name);
    let data = repo.load_unpacked(FileType::Lifeboat, &object)?;
    Segment::decode(&data).map_err(|e| OpsError::Conflict(format!("segment {} of source {source}: {e}", stored.name)))
}

/// Remove stored segments (retention).
pub fn remove(repo: &Repository, source: &str, stored: &[Stored]) -> Result<(), OpsError> {
    let p = crate::wal::prefix(repo, source);
    let objects: Vec<String> = stored.iter().map(|s| format!("{p}{}", s.name)).collect();
    repo.backend().remove_many(FileType::Lifeboat, &objects).map_err(RepoError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_sort_by_transaction() {
        let s = parse("0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123").expect("parses");
        assert_eq!((s.first, s.last), (10, 15));
        assert_eq!(s.shipped.timestamp_millis(), 1_700_000_000_123);
        for bad in [
            "000000010000000000000003",
            "0000018c2d0f1e2a/000000000000000f-000000000000000a-1700000000123",
            "0000018c2d0f1e2A/000000000000000a-000000000000000f-1700000000123",
            "0000018c2d0f1e2a/000000000000000a-000000000000000f-170000000012",
            "0000018c2d0f1e2a/000000000000000a-000000000000000f-1700000000123-x",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let g = new_generation(chrono::Utc::now());
        assert!(valid_generation(&g), "{g}");
    }
}
