//! `compare`: the counts a backup's manifest recorded (rows per table, keys per database,
//! messages per stream) beside the same counts in a live target.

use lifeboat_repository::snapshots::SnapshotEntry;

use crate::error::{Result, ServiceError};
use crate::filter::{find_snapshot, FilterSpec};
use crate::kinds::{self, Row};
use crate::session::Session;

/// What `compare` found.
#[derive(Debug)]
pub struct Compared {
    /// The snapshot.
    pub snapshot: SnapshotEntry,
    /// What a row is (`table`, `database`, `stream`).
    pub what: &'static str,
    /// The rows.
    pub rows: Vec<Row>,
}

impl Compared {
    /// How many counts differ.
    pub fn differ(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok).count()
    }
}

/// Compare the snapshot `reference` with the live `target`.
pub fn compare(session: &Session, reference: &str, spec: &FilterSpec, target: &str) -> Result<Compared> {
    let repo = session.open()?;
    let snap = find_snapshot(&repo, reference, spec)?;
    if snap.snapshot.source.is_none() {
        let kinds: Vec<&str> = kinds::all().iter().filter(|k| k.defaults().compares()).map(|k| k.name()).collect();
        let (last, rest) = kinds.split_last().map(|(l, r)| (*l, r.join(", "))).unwrap_or_default();
        return Err(ServiceError::msg(format!(
            "snapshot {} is a plain file backup: compare works on {rest} and {last} snapshots",
            snap.id.short()
        )));
    }
    let cfg = session.config()?;
    let resolved = crate::config::source_for(cfg.as_deref(), &snap)?;
    let c = resolved.source().compare(&resolved.name, &repo, &snap, target)?;
    Ok(Compared { snapshot: snap, what: c.what, rows: c.rows })
}
