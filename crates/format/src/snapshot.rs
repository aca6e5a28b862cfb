//! Snapshot files (`snapshots/<id>`): the root of one backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// Plaintext of a snapshot file. Unknown fields written by newer restic versions are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup started.
    pub time: DateTime<Utc>,
    /// The snapshot used as parent (for change detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Root tree.
    pub tree: Id,
    /// Backed-up paths, absolute.
    pub paths: Vec<String>,
    /// Host the backup ran on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// User it ran as.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Numeric uid.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Numeric gid.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    /// Exclude patterns used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Id of the snapshot this one was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Program that wrote it, e.g. `lifeboat 0.1.0`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub program_version: String,
    /// Backup statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
    /// Lifeboat's source description (ignored by restic).
    #[serde(default, rename = "lifeboat", skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceInfo>,
}

/// Statistics of the backup that produced a snapshot (restic ≥ 0.17 field names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Start of the backup.
    pub backup_start: Option<DateTime<Utc>>,
    /// End of the backup.
    pub backup_end: Option<DateTime<Utc>>,
    /// Files not in the parent.
    #[serde(default)]
    pub files_new: u64,
    /// Files changed since the parent.
    #[serde(default)]
    pub files_changed: u64,
    /// Files unchanged since the parent.
    #[serde(default)]
    pub files_unmodified: u64,
    /// Directories not in the parent.
    #[serde(default)]
    pub dirs_new: u64,
    /// Directories changed.
    #[serde(default)]
    pub dirs_changed: u64,
    /// Directories unchanged.
    #[serde(default)]
    pub dirs_unmodified: u64,
    /// New data blobs stored.
    #[serde(default)]
    pub data_blobs: u64,
    /// New tree blobs stored.
    #[serde(default)]
    pub tree_blobs: u64,
    /// Plaintext bytes of new blobs.
    #[serde(default)]
    pub data_added: u64,
    /// Bytes of new blobs as stored (compressed + encrypted).
    #[serde(default)]
    pub data_added_packed: u64,
    /// Files processed.
    #[serde(default)]
    pub total_files_processed: u64,
    /// Bytes processed.
    #[serde(default)]
    pub total_bytes_processed: u64,
}

/// Which Lifeboat source produced a snapshot, and its manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Source name from the config (e.g. `memory-db`).
    pub name: String,
    /// Source kind (`files`, `sqlite`, `postgres`, …).
    pub kind: String,
    /// What the source recorded: counts, versions, positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restic_snapshot() {
        let text = r#"{"time":"2024-05-01T10:00:00.5+02:00","tree":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","paths":["/srv"],"hostname":"h","username":"root","tags":["daily"],"program_version":"restic 0.16.4","unknown":1}"#;
        let s: Snapshot = serde_json::from_str(text).expect("parse");
        assert_eq!(s.tags, vec!["daily"]);
        assert!(s.source.is_none());
        let back: Snapshot = serde_json::from_slice(&serde_json::to_vec(&s).expect("json")).expect("reparse");
        assert_eq!(back, s);
    }
}
