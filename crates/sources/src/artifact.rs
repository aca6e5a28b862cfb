//! What sources that generate their data (a dump, a command's output) share: a started backup,
//! the tree node of the generated file, the reader the archiver takes data from when a thread
//! produces it, and comparing a restored copy's counts with the manifest.

use std::collections::BTreeMap;
use std::io::{self, Read};

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

/// A started backup of one generated file at `path` whose data a thread sends through `rx`;
/// once the data is read, the finish hook waits for the thread (`thread` names it in errors,
/// `target` prefixes them) and turns what it returned into the manifest.
pub(crate) fn from_thread<T: 'static>(
    path: String,
    node: Node,
    rx: crossbeam_channel::Receiver<Result<Vec<u8>, String>>,
    handle: std::thread::JoinHandle<Result<T, String>>,
    thread: &'static str,
    target: String,
    manifest: impl Fn(T) -> Result<serde_json::Value, String> + Send + Sync + 'static,
) -> Started {
    use lifeboat_repository::archiver::{Content, Entry};
    let reader = ChannelReader::new(rx);
    let entries = vec![Entry::File { node, content: Content::Reader(Box::new(reader)) }];
    let state = std::sync::Mutex::new(Some(handle));
    let finish: lifeboat_repository::archiver::ManifestHook = std::sync::Arc::new(move || {
        let handle =
            state.lock().ok().and_then(|mut g| g.take()).ok_or_else(|| format!("{target}: already finished"))?;
        let t =
            handle.join().map_err(|_| format!("{target}: {thread} panicked"))?.map_err(|e| format!("{target}: {e}"))?;
        manifest(t).map(Some).map_err(|e| format!("{target}: {e}"))
    });
    Started { paths: vec![path], entries: entries.into_iter(), finish }
}

/// The archiver's side of a channel a producing thread sends its data through (an `Err` ends
/// the read with that error; the channel closed is the end of the data).
pub(crate) struct ChannelReader {
    rx: crossbeam_channel::Receiver<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    /// Read what arrives on `rx`.
    pub(crate) fn new(rx: crossbeam_channel::Receiver<Result<Vec<u8>, String>>) -> ChannelReader {
        ChannelReader { rx, buf: Vec::new(), pos: 0 }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => (self.buf, self.pos) = (b, 0),
                Ok(Err(e)) => return Err(io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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
