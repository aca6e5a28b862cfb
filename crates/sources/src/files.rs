//! The `files` source: walks paths on the local file system in sorted, depth-first order and
//! produces entries with full metadata (mode, owner, times, inode, xattrs, symlink targets).
//!
//! Like restic, a snapshot of `/srv/app/data` contains the directories `srv` and `srv/app` with
//! their real metadata, so restoring reproduces absolute paths below the target.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use globset::{Glob, GlobSet, GlobSetBuilder};
use lifeboat_format::mode::go_mode_from_unix;
use lifeboat_format::{ExtendedAttribute, Node, NodeType};
use lifeboat_repository::archiver::{Content, Entry};
use lifeboat_repository::util::{group_name, user_name};

use crate::SourceError;

/// What to back up.
#[derive(Clone, Debug, Default)]
pub struct FilesOptions {
    /// Paths (files or directories).
    pub paths: Vec<PathBuf>,
    /// Glob patterns: without `/` they match a file name anywhere, with `/` the absolute path.
    pub excludes: Vec<String>,
    /// Do not cross into other file systems (mount points are kept as empty directories).
    pub one_file_system: bool,
}

/// Excludes compiled from glob patterns.
#[derive(Clone, Debug)]
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    /// Compile patterns.
    pub fn new(patterns: &[String]) -> Result<Self, SourceError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let bad = |e: globset::Error| SourceError::Pattern { pattern: p.clone(), reason: e.kind().to_string() };
            if p.contains('/') {
                let g =
                    globset::GlobBuilder::new(p.trim_end_matches('/')).literal_separator(true).build().map_err(bad)?;
                paths.add(g);
            } else {
                names.add(Glob::new(p).map_err(bad)?);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| SourceError::Pattern { pattern: patterns.join(","), reason: e.to_string() })
        };
        Ok(Excludes { names: build(names)?, paths: build(paths)? })
    }

    /// Whether a path is excluded.
    pub fn is_excluded(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.names.is_match(n)) || self.paths.is_match(path)
    }
}

/// Absolute, normalised paths (no symlink resolution), with paths inside other paths dropped.
pub fn normalize_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| SourceError::Path { path: p.clone(), source: e })?;
        let clean = clean_path(&abs);
        std::fs::symlink_metadata(&clean).map_err(|e| SourceError::Path { path: p.clone(), source: e })?;
        out.push(clean);
    }
    out.sort();
    out.dedup();
    let keep: Vec<PathBuf> = out.iter().filter(|p| !out.iter().any(|q| q != *p && p.starts_with(q))).cloned().collect();
    Ok(keep)
}

/// Resolve `.` and `..` lexically, like Go's `filepath.Clean` (restic records cleaned paths).
pub fn clean_path(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

#[derive(Default)]
struct Trie {
    children: BTreeMap<std::ffi::OsString, Trie>,
    target: bool,
}

enum Item {
    /// An intermediate directory on the way to a backup path.
    Prefix(PathBuf, Trie),
    /// A path whose whole subtree is backed up.
    Path(PathBuf),
    /// A directory entry whose metadata was already read by the stat pool.
    Ready(PathBuf, Box<std::io::Result<(Node, u64)>>),
}

/// Metadata of a directory's entries, read on a pool thread: a slice of paths, and the results
/// for it with the slice's first position.
type StatJob = (usize, Vec<PathBuf>);
type StatDone = (usize, Vec<std::io::Result<(Node, u64)>>);

/// Reads metadata (stat, xattrs, link targets) of a directory's entries on a few threads, so a
/// walk over a cold page cache is not one synchronous disk read per file. Entries go out in
/// slices, not one by one: a hand-over per file cost more CPU than the stat it saved waiting.
struct StatPool {
    jobs: Option<crossbeam_channel::Sender<StatJob>>,
    results: crossbeam_channel::Receiver<StatDone>,
    threads: Vec<std::thread::JoinHandle<()>>,
    light: bool,
}

/// Directories with fewer entries are read inline: handing them out costs more than it saves.
const POOL_MIN_ENTRIES: usize = 8;
/// Entries per slice handed to a pool thread (fewer when that leaves threads idle).
const POOL_SLICE: usize = 64;

/// Metadata of `p` as a node; `light` reads only what a size count needs (no extended
/// attributes, user names or link targets).
fn stat_node(p: &Path, light: bool) -> std::io::Result<(Node, u64)> {
    let m = std::fs::symlink_metadata(p)?;
    if light {
        // Only directories are walked into and only files counted: anything else is "other".
        let t = if m.is_dir() {
            NodeType::Dir
        } else if m.is_file() {
            NodeType::File
        } else {
            NodeType::Fifo
        };
        let mut n = Node::from_raw_name(name_of(p), t);
        n.size = if m.is_file() { m.len() } else { 0 };
        return Ok((n, m.dev()));
    }
    Ok((node_from_metadata(name_of(p), p, &m), m.dev()))
}

fn stat_inline(paths: Vec<PathBuf>, light: bool) -> Vec<Item> {
    paths
        .into_iter()
        .map(|p| {
            let r = stat_node(&p, light);
            Item::Ready(p, Box::new(r))
        })
        .collect()
}

impl StatPool {
    fn new(threads: usize, light: bool) -> Self {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<StatJob>();
        let (res_tx, results) = crossbeam_channel::unbounded::<StatDone>();
        let threads = (0..threads)
            .map(|_| {
                let (job_rx, res_tx) = (job_rx.clone(), res_tx.clone());
                std::thread::spawn(move || {
                    for (first, paths) in job_rx {
                        let done = paths.iter().map(|p| stat_node(p, light)).collect();
                        if res_tx.send((first, done)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        StatPool { jobs: Some(jobs), results, threads, light }
    }

    /// Metadata of every path, in input order.
    fn stat_all(&self, paths: Vec<PathBuf>) -> Vec<Item> {
        let n = paths.len();
        let Some(jobs) = self.jobs.as_ref().filter(|_| n >= POOL_MIN_ENTRIES) else {
            return stat_inline(paths, self.light);
        };
        let slice = n.div_ceil(self.threads.len().max(1)).clamp(1, POOL_SLICE);
        let mut sent = 0;
        for (k, part) in paths.chunks(slice).enumerate() {
            if jobs.send((k * slice, part.to_vec())).is_err() {
                break;
            }
            sent += 1;
        }
        let mut got: Vec<Option<std::io::Result<(Node, u64)>>> = (0..n).map(|_| None).collect();
        for _ in 0..sent {
            match self.results.recv() {
                Ok((first, done)) => {
                    for (i, r) in done.into_iter().enumerate() {
                        if let Some(slot) = got.get_mut(first + i) {
                            *slot = Some(r);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        paths
            .into_iter()
            .zip(got)
            .map(|(p, r)| {
                let r = r.unwrap_or_else(|| stat_node(&p, self.light));
                Item::Ready(p, Box::new(r))
            })
            .collect()
    }
}

impl Drop for StatPool {
    fn drop(&mut self) {
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The walker: an iterator of entries.
pub struct Walker {
    stack: Vec<std::vec::IntoIter<Item>>,
    pool: StatPool,
    excludes: Excludes,
    devices: HashSet<u64>,
    one_file_system: bool,
    pending: Option<Entry>,
}

/// Start walking; returns the normalised paths (for the snapshot) and the entry iterator.
pub fn walk(opts: &FilesOptions) -> Result<(Vec<String>, Walker), SourceError> {
    walk_with(opts, false)
}

/// A walk for counting files and bytes only (a backup's totals, for its progress): its nodes
/// have a name, a type (directory, file, or other) and a file's size, and nothing else is read.
pub fn walk_sizes(opts: &FilesOptions) -> Result<Walker, SourceError> {
    walk_with(opts, true).map(|(_, w)| w)
}

fn walk_with(opts: &FilesOptions, light: bool) -> Result<(Vec<String>, Walker), SourceError> {
    let paths = normalize_paths(&opts.paths)?;
    let excludes = Excludes::new(&opts.excludes)?;
    let mut root = Trie::default();
    let mut devices = HashSet::new();
    for p in &paths {
        if let Ok(m) = std::fs::metadata(p) {
            devices.insert(m.dev());
        }
        let mut t = &mut root;
        for c in p.components().skip(1) {
            t = t.children.entry(c.as_os_str().to_os_string()).or_default();
        }
        t.target = true;
    }
    let items = trie_items(Path::new("/"), root);
    let walker = Walker {
        stack: vec![items.into_iter()],
        pool: StatPool::new(8, light),
        excludes,
        devices,
        one_file_system: opts.one_file_system,
        pending: None,
    };
    Ok((paths.iter().map(|p| p.to_string_lossy().into_owned()).collect(), walker))
}

fn trie_items(base: &Path, t: Trie) -> Vec<Item> {
    t.children
        .into_iter()
        .map(|(name, child)| {
            let p = base.join(&name);
            if child.target {
                Item::Path(p)
            } else {
                Item::Prefix(p, child)
            }
        })
        .collect()
}

fn time(secs: i64, nanos: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
}

/// Build a tree node from file metadata.
pub fn node_from_metadata(name: &[u8], path: &Path, m: &Metadata) -> Node {
    let ft = m.file_type();
    let node_type = if ft.is_dir() {
        NodeType::Dir
    } else if ft.is_symlink() {
        NodeType::Symlink
    } else if ft.is_file() {
        NodeType::File
    } else {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_block_device() {
            NodeType::Dev
        } else if ft.is_char_device() {
            NodeType::Chardev
        } else if ft.is_fifo() {
            NodeType::Fifo
        } else {
            NodeType::Socket
        }
    };
    let mut n = Node::from_raw_name(name, node_type);
    n.mode = go_mode_from_unix(m.mode());
    n.mtime = time(m.mtime(), m.mtime_nsec());
    n.atime = time(m.atime(), m.atime_nsec());
    n.ctime = time(m.ctime(), m.ctime_nsec());
    n.uid = m.uid();
    n.gid = m.gid();
    n.user = user_name(m.uid()).unwrap_or_default();
    n.group = group_name(m.gid()).unwrap_or_default();
    n.inode = m.ino();
    n.device_id = m.dev();
    n.links = m.nlink();
    match node_type {
        NodeType::File => n.size = m.len(),
        NodeType::Symlink => {
            n.linktarget = std::fs::read_link(path).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default()
        }
        NodeType::Dev | NodeType::Chardev => n.device = m.rdev(),
        _ => {}
    }
    n.extended_attributes = read_xattrs(path);
    n
}

fn read_xattrs(path: &Path) -> Option<Vec<ExtendedAttribute>> {
    let names = xattr::list(path).ok()?;
    let mut out: Vec<ExtendedAttribute> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok()??;
            Some(ExtendedAttribute { name: name.to_string_lossy().into_owned(), value })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    (!out.is_empty()).then_some(out)
}

fn name_of(p: &Path) -> &[u8] {
    p.file_name().unwrap_or(OsStr::new("/")).as_bytes()
}

fn error(p: &Path, e: std::io::Error) -> Entry {
    Entry::Error { path: p.to_string_lossy().into_owned(), message: e.to_string() }
}

impl Walker {
    fn visit(&mut self, item: Item) -> Option<Entry> {
        match item {
            Item::Prefix(p, trie) => {
                // Intermediate directories are followed if they are symlinks, so the tree always
                // reaches the backed-up path.
                let m = match std::fs::metadata(&p) {
                    Ok(m) => m,
                    Err(e) => return Some(error(&p, e)),
                };
                let node = node_from_metadata(name_of(&p), &p, &m);
                let items = trie_items(&p, trie);
                self.stack.push(items.into_iter());
                Some(Entry::DirStart(node))
            }
            Item::Path(p) => {
                if self.excludes.is_excluded(&p) {
                    return None;
                }
                let r = stat_node(&p, self.pool.light);
                self.visit_path(p, r)
            }
            Item::Ready(p, r) => self.visit_path(p, *r),
        }
    }

    fn visit_path(&mut self, p: PathBuf, r: std::io::Result<(Node, u64)>) -> Option<Entry> {
        let (node, dev) = match r {
            Ok(v) => v,
            Err(e) => return Some(error(&p, e)),
        };
        match node.node_type {
            NodeType::File => Some(Entry::File { node, content: Content::Path(p) }),
            NodeType::Dir => {
                let cross = self.one_file_system && !self.devices.contains(&dev);
                let mut children = Vec::new();
                if !cross {
                    match read_dir_noatime(&p) {
                        Ok(mut named) => {
                            // Same parent: sorting by name is enough (and much cheaper than paths).
                            named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                            let mut names: Vec<PathBuf> = named.into_iter().map(|(_, p)| p).collect();
                            names.retain(|c| !self.excludes.is_excluded(c));
                            children = self.pool.stat_all(names);
                        }
                        Err(e) => {
                            // Keep the directory (empty) and report why its content is missing.
                            self.pending = Some(error(&p, e));
                        }
                    }
                }
                self.stack.push(children.into_iter());
                Some(Entry::DirStart(node))
            }
            _ => Some(Entry::Special(node)),
        }
    }
}

/// The entries of directory `p` as (name, path), read without updating the directory's access
/// time (`O_NOATIME`, as for files): a read must not change the directory's node, or the next
/// backup would store its parent's tree again (see `util::open_noatime`). Entries that cannot
/// be read are left out, as `std::fs::read_dir` callers here always did.
fn read_dir_noatime(p: &Path) -> std::io::Result<Vec<(std::ffi::OsString, PathBuf)>> {
    use nix::fcntl::OFlag;
    use std::os::unix::ffi::OsStrExt;
    let file = lifeboat_repository::util::open_noatime(p, OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW)?;
    let mut dir = nix::dir::Dir::from_fd(std::os::fd::OwnedFd::from(file)).map_err(std::io::Error::from)?;
    let mut out = Vec::new();
    for e in dir.iter() {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = std::ffi::OsStr::from_bytes(name).to_os_string();
        out.push((name.clone(), p.join(name)));
    }
    Ok(out)
}

/// Entries per batch handed from a read-ahead thread to the consumer.
const READ_AHEAD_BATCH: usize = 256;
/// Batches a read-ahead thread may be ahead by (8,192 entries, a few MiB).
const READ_AHEAD_BATCHES: usize = 32;

/// A walk running ahead of its consumer on a thread of its own (see [`Walker::read_ahead`]).
pub struct ReadAhead {
    batches: crossbeam_channel::Receiver<Vec<Entry>>,
    current: std::vec::IntoIter<Entry>,
}

impl Walker {
    /// Walk on a thread of its own, up to [`READ_AHEAD_BATCHES`] × [`READ_AHEAD_BATCH`] entries
    /// ahead: a backup starts reading metadata while it opens the repository and loads the
    /// parent's trees, and the directories it waits for over a cold cache overlap with its
    /// own work. Dropping the iterator stops the thread.
    pub fn read_ahead(self) -> ReadAhead {
        let (tx, batches) = crossbeam_channel::bounded(READ_AHEAD_BATCHES);
        std::thread::spawn(move || {
            let mut batch = Vec::with_capacity(READ_AHEAD_BATCH);
            for e in self {
                batch.push(e);
                if batch.len() == READ_AHEAD_BATCH
                    && tx.send(std::mem::replace(&mut batch, Vec::with_capacity(READ_AHEAD_BATCH))).is_err()
                {
                    return;
                }
            }
            let _ = tx.send(batch);
        });
        ReadAhead { batches, current: Vec::new().into_iter() }
    }
}

impl Iterator for ReadAhead {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(e);
            }
            self.current = self.batches.recv().ok()?.into_iter();
        }
    }
}

impl Iterator for Walker {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if let Some(e) = self.pending.take() {
            return Some(e);
        }
        loop {
            let depth = self.stack.len();
            let top = self.stack.last_mut()?;
            match top.next() {
                Some(item) => {
                    if let Some(e) = self.visit(item) {
                        return Some(e);
                    }
                }
                None => {
                    self.stack.pop();
                    // The root frame has no directory of its own to close.
                    if depth > 1 {
                        return Some(Entry::DirEnd);
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(w: Walker) -> Vec<String> {
        w.map(|e| match e {
            Entry::DirStart(n) => format!("+{}", n.name),
            Entry::DirEnd => "-".into(),
            Entry::File { node, .. } => node.name,
            Entry::Special(n) => format!("@{}", n.name),
            Entry::Error { path, .. } => format!("!{path}"),
        })
        .collect()
    }

    #[test]
    fn walks_sorted_with_prefix_dirs_and_excludes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("b.txt"), b"b").expect("write");
        std::fs::write(root.join("a.log"), b"a").expect("write");
        std::fs::write(root.join("sub/c.txt"), b"c").expect("write");
        std::os::unix::fs::symlink("b.txt", root.join("link")).expect("symlink");
        let opts = FilesOptions { paths: vec![root.clone()], excludes: vec!["*.log".into()], one_file_system: false };
        let (paths, w) = walk(&opts).expect("walk");
        assert_eq!(paths, vec![root.to_string_lossy().into_owned()]);
        let got = kinds(w);
        let prefix = root.components().count() - 2; // directories between `/` and `data`
        assert_eq!(got.iter().filter(|s| s.starts_with('+')).count(), prefix + 2);
        let tail: Vec<&str> = got.iter().skip(prefix).map(String::as_str).collect();
        assert_eq!(&tail[..7], &["+data", "b.txt", "@link", "+sub", "c.txt", "-", "-"]);
        assert_eq!(got.iter().filter(|s| *s == "-").count(), prefix + 2);
    }

    #[test]
    fn nested_paths_are_merged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::create_dir_all(a.join("b")).expect("mkdir");
        let p = normalize_paths(&[a.join("b"), a.clone(), a.join("./b/../b")]).expect("normalize");
        assert_eq!(p, vec![a.clone()]);
        let p = normalize_paths(&[a.join("b/../b/./")]).expect("normalize");
        assert_eq!(p, vec![a.join("b")]);
        assert_eq!(clean_path(Path::new("/x/../../y/./z")), PathBuf::from("/y/z"));
        assert!(normalize_paths(&[dir.path().join("missing")]).is_err());
    }

    #[test]
    fn exclude_patterns() {
        let ex = Excludes::new(&["*.tmp".into(), "/srv/cache/*".into()]).expect("patterns");
        assert!(ex.is_excluded(Path::new("/x/y/z.tmp")));
        assert!(ex.is_excluded(Path::new("/srv/cache/a")));
        assert!(!ex.is_excluded(Path::new("/srv/cache/a/b")));
        assert!(!ex.is_excluded(Path::new("/srv/data")));
        assert!(Excludes::new(&["[".into()]).is_err());
    }
}
