//! Structure and read-data checks of snapshots, with damage named by snapshot and file path.
//!
//! Snapshots are walked one by one (trees are cached, so shared subtrees are read once); every
//! data blob referenced is collected. With `read_data` the union of those blobs is read once,
//! pack by pack, in parallel; only if something is damaged are the snapshots walked again to
//! find the paths that use the damaged blobs, so a healthy run holds nothing but blob ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use lifeboat_backend::FileType;
use lifeboat_format::{BlobType, Id, Node, NodeType, Tree};
use lifeboat_repository::index::{BlobLocation, IdMap, IdSet, Index};
use lifeboat_repository::snapshots::SnapshotEntry;
use lifeboat_repository::{util, RepoError, Repository};
use serde::Serialize;

use crate::OpsError;

/// How to check.
#[derive(Clone, Default)]
pub struct CheckOptions {
    /// Read back and hash-check every data blob the snapshots refer to.
    pub read_data: bool,
    /// Worker threads for reading (default: the number of cores).
    pub threads: Option<usize>,
    /// Set to stop early (the check then fails with `Interrupted`).
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What checking one snapshot found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SnapshotCheck {
    /// The snapshot.
    pub snapshot: Id,
    /// Trees (directories) walked.
    pub trees: u64,
    /// Files in the snapshot.
    pub files: u64,
    /// Distinct data blobs the snapshot refers to.
    pub blobs: u64,
    /// Bytes of those blobs as stored (what a read-data pass reads).
    pub stored_bytes: u64,
    /// What is wrong, one line each, naming the object and the paths that use it.
    pub findings: Vec<String>,
}

/// Check `snaps` (see the module documentation); one result per snapshot, in order.
pub fn check_snapshots(
    repo: &Repository,
    snaps: &[SnapshotEntry],
    opts: &CheckOptions,
) -> Result<Vec<SnapshotCheck>, OpsError> {
    let index = repo.index()?;
    let packs: IdSet = repo
        .backend()
        .list(FileType::Pack)
        .map_err(RepoError::from)?
        .into_iter()
        .filter_map(|(n, _)| n.parse().ok())
        .collect();
    let mut walker = Walker { repo, index: &index, packs: &packs, trees: HashMap::new() };
    let mut results = Vec::new();
    let mut blob_sets = Vec::new();
    for s in snaps {
        let mut blobs = IdSet::default();
        let mut check = SnapshotCheck { snapshot: s.id, ..Default::default() };
        walker.walk(s, &mut check, &mut |_, node| {
            blobs.extend(node.content.iter().flatten().copied());
        });
        check.blobs = blobs.len() as u64;
        check.stored_bytes = blobs.iter().filter_map(|b| index.get(BlobType::Data, b)).map(|l| l.length as u64).sum();
        results.push(check);
        blob_sets.push(blobs);
    }
    if !opts.read_data {
        return Ok(results);
    }
    let all: IdSet = blob_sets.iter().flatten().copied().collect();
    let damaged = read_blobs(repo, &index, &all, opts)?;
    if damaged.is_empty() {
        return Ok(results);
    }
    for ((s, check), blobs) in snaps.iter().zip(results.iter_mut()).zip(&blob_sets) {
        if blobs.iter().any(|b| damaged.contains_key(b)) {
            check.findings.extend(name_damage(&mut walker, s, &damaged));
        }
    }
    Ok(results)
}

/// Walks snapshots' trees, with a cache of the trees read so far.
struct Walker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    packs: &'a IdSet,
    trees: HashMap<Id, Result<Arc<Tree>, String>>,
}

fn reason(e: &RepoError) -> String {
    match e {
        RepoError::Corrupt { reason, .. } => reason.clone(),
        e => e.to_string(),
    }
}

impl Walker<'_> {
    fn tree(&mut self, id: &Id) -> Result<Arc<Tree>, String> {
        if let Some(t) = self.trees.get(id) {
            return t.clone();
        }
        let t = self.repo.load_tree(id).map(Arc::new).map_err(|e| reason(&e));
        self.trees.insert(*id, t.clone());
        t
    }

    /// Where a blob is, or why it cannot be read (not indexed, pack missing).
    fn locate(&self, t: BlobType, id: &Id) -> Result<BlobLocation, String> {
        let loc = self.index.get(t, id).ok_or("is missing from the index")?;
        if !self.packs.contains(&loc.pack) {
            return Err(format!("is in pack {}, which is missing", loc.pack.short()));
        }
        Ok(loc)
    }

    /// Walk one snapshot: findings for unreadable trees and unlocatable blobs go into `check`;
    /// `visit` sees every file node with its path.
    fn walk(&mut self, s: &SnapshotEntry, check: &mut SnapshotCheck, visit: &mut dyn FnMut(&str, &Node)) {
        let snap = s.id.short();
        let mut stack = vec![(s.snapshot.tree, String::from("/"))];
        while let Some((tree_id, path)) = stack.pop() {
            let tree = match self.locate(BlobType::Tree, &tree_id).and_then(|_| self.tree(&tree_id)) {
                Ok(t) => t,
                Err(why) => {
                    check.findings.push(format!("snapshot {snap}: tree {} of directory {path} {why}", tree_id.short()));
                    continue;
                }
            };
            check.trees += 1;
            for node in &tree.nodes {
                let p = format!("{}/{}", path.trim_end_matches('/'), node.name);
                match node.node_type {
                    NodeType::File => {
                        check.files += 1;
                        self.check_content(&snap, &p, node, check);
                        visit(&p, node);
                    }
                    NodeType::Dir => match node.subtree {
                        Some(sub) => stack.push((sub, p)),
                        None => check.findings.push(format!("snapshot {snap}: directory {p} has no subtree")),
                    },
                    _ => {}
                }
            }
        }
    }

    fn check_content(&self, snap: &str, path: &str, node: &Node, check: &mut SnapshotCheck) {
        let Some(content) = &node.content else {
            check.findings.push(format!("snapshot {snap}: file {path} has no content list"));
            return;
        };
        for id in content {
            if let Err(why) = self.locate(BlobType::Data, id) {
                check.findings.push(format!("snapshot {snap}: data blob {} of {path} {why}", id.short()));
            }
        }
    }
}

/// Read every blob of `blobs` that can be located; returns the damaged ones with why.
fn read_blobs(repo: &Repository, index: &Index, blobs: &IdSet, opts: &CheckOptions) -> Result<IdMap<String>, OpsError> {
    let mut by_pack: IdMap<Vec<(Id, BlobLocation)>> = IdMap::default();
    for id in blobs {
        if let Some(loc) = index.get(BlobType::Data, id) {
            by_pack.entry(loc.pack).or_default().push((*id, loc));
        }
    }
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let read = AtomicU64::new(0);
    let groups: Vec<(Id, Vec<(Id, BlobLocation)>)> = by_pack.into_iter().collect();
    let found = util::parallel_map(groups, threads, |(pack, mut blobs)| {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted);
        }
        blobs.sort_by_key(|(_, l)| l.offset);
        Ok(read_pack(repo, &pack, &blobs, &read))
    })?;
    Ok(found.into_iter().flatten().collect())
}

/// Largest range read with one request.
const MAX_RUN: u64 = 32 << 20;

/// Read the blobs of one pack (sorted by offset) in runs of adjacent blobs.
fn read_pack(repo: &Repository, pack: &Id, blobs: &[(Id, BlobLocation)], read: &AtomicU64) -> Vec<(Id, String)> {
    let mut damaged = Vec::new();
    let mut i = 0;
    while i < blobs.len() {
        let start = blobs[i].1.offset as u64;
        let mut end = start + blobs[i].1.length as u64;
        let mut j = i + 1;
        while j < blobs.len() && blobs[j].1.offset as u64 == end && end - start < MAX_RUN {
            end += blobs[j].1.length as u64;
            j += 1;
        }
        let run = &blobs[i..j];
        match repo.backend().load_range(FileType::Pack, &pack.to_hex(), start, (end - start) as u32) {
            Ok(buf) if buf.len() as u64 == end - start => {
                read.fetch_add(buf.len() as u64, Ordering::Relaxed);
                for (id, loc) in run {
                    let at = (loc.offset as u64 - start) as usize;
                    if let Err(e) = repo.decode_blob(id, loc, &buf[at..at + loc.length as usize]) {
                        damaged.push((*id, reason(&e)));
                    }
                }
            }
            Ok(buf) => {
                damaged.extend(run.iter().map(|(id, _)| (*id, format!("pack is short ({} bytes read)", buf.len()))))
            }
            Err(e) => damaged.extend(run.iter().map(|(id, _)| (*id, format!("pack cannot be read: {e}")))),
        }
        i = j;
    }
    damaged
}

/// One finding per damaged blob the snapshot uses, with every path that uses it.
fn name_damage(walker: &mut Walker<'_>, s: &SnapshotEntry, damaged: &IdMap<String>) -> Vec<String> {
    let mut users: BTreeMap<Id, Vec<String>> = BTreeMap::new();
    let mut scratch = SnapshotCheck::default();
    walker.walk(s, &mut scratch, &mut |path, node| {
        for id in node.content.iter().flatten().filter(|id| damaged.contains_key(*id)) {
            let paths = users.entry(*id).or_default();
            if paths.last().map(String::as_str) != Some(path) {
                paths.push(path.to_string());
            }
        }
    });
    users
        .into_iter()
        .map(|(id, paths)| {
            let why = damaged.get(&id).map(String::as_str).unwrap_or("damaged");
            let pack = walker.index.get(BlobType::Data, &id).map(|l| l.pack.short()).unwrap_or_default();
            format!(
                "snapshot {}: data blob {} in pack {pack} is damaged ({why}); it holds data of {}",
                s.id.short(),
                id.short(),
                paths.join(", ")
            )
        })
        .collect()
}
