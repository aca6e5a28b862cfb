//! What sources that generate their data (a dump, a command's output) share: a started backup,
//! the tree node of the generated file, and comparing a restored copy's counts with the manifest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lifeboat_format::mode::go_mode_from_unix;
use lifeboat_format::{Node, NodeType};
use lifeboat_repository::util;

/// A started backup of generated files (a dump, an RDB, stream snapshots): what the engine
/// archives, and the hook that produces the manifest once the data has been read.
pub struct Started {
    /// Snapshot paths.
    pub paths: Vec<String>,
    /// The entries; generated data streams when the engine reads it.
    pub entries: std::vec::IntoIter<lifeboat_repository::archiver::Entry>,
    /// Produces the manifest once the data is read; fails the source (no snapshot) when the
    /// data could not be produced completely.
    pub finish: lifeboat_repository::archiver::ManifestHook,
}

/// A regular-file node for a generated artifact, owned by this process's user, stamped `time`.
pub fn node(name: &str, unix_mode: u32, time: DateTime<Utc>) -> Node {
    let mut node = Node::from_raw_name(name.as_bytes(), NodeType::File);
    node.mode = go_mode_from_unix(0o100000 | unix_mode);
    (node.mtime, node.atime, node.ctime) = (Some(time), Some(time), Some(time));
    (node.uid, node.gid) = (util::current_uid(), util::current_gid());
    node
}

/// A directory node for a generated tree (e.g. a directory-format dump), stamped `time`.
pub fn dir_node(name: &str, time: DateTime<Utc>) -> Node {
    let mut node = self::node(name, 0o700, time);
    node.node_type = NodeType::Dir;
    node.mode = go_mode_from_unix(0o040700);
    node
}

/// Differences between counts in the manifest and counts found (`table: expected N rows, found
/// M`, `table: table missing`); with `report_extra`, tables found but not in the manifest too.
pub fn compare_counts(
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
    report_extra: bool,
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for (t, want) in expected {
        match found.get(t) {
            Some(got) if got == want => {}
            Some(got) => mismatches.push(format!("{t}: expected {want} rows, found {got}")),
            None => mismatches.push(format!("{t}: table missing")),
        }
    }
    if report_extra {
        for t in found.keys().filter(|t| !expected.contains_key(*t)) {
            mismatches.push(format!("{t}: table not in the backup"));
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_compared_both_ways() {
        let want: BTreeMap<String, u64> = [("a".into(), 1), ("b".into(), 2)].into();
        let got: BTreeMap<String, u64> = [("a".into(), 1), ("b".into(), 3), ("c".into(), 0)].into();
        assert_eq!(compare_counts(&want, &got, false), ["b: expected 2 rows, found 3"]);
        assert_eq!(compare_counts(&want, &got, true), ["b: expected 2 rows, found 3", "c: table not in the backup"]);
        assert_eq!(compare_counts(&want, &BTreeMap::new(), false), ["a: table missing", "b: table missing"]);
    }
}
