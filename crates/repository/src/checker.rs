//! Checking a repository: index files, packs, snapshots and trees, and with `read_data` every
//! byte of every pack. Each finding names the damaged object.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lifeboat_backend::FileType;
use lifeboat_crypto::sha256;
use lifeboat_format::pack::{decode_header, ENTRY_SIZE_COMPRESSED, ENTRY_SIZE_PLAIN};
use lifeboat_format::{BlobType, Id, IndexBlob, IndexFile, NodeType};

use crate::index::{IdMap, IdSet, Index};
use crate::{util, RepoError, Repository, Result};

/// Options of a check.
#[derive(Clone, Default)]
pub struct CheckOptions {
    /// Read and verify every pack's content.
    pub read_data: bool,
    /// With `read_data`: read only this share of the packs (1–100 %), a different random part
    /// each run, so that repeated checks cover the whole repository over time.
    pub read_data_percent: Option<u8>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Set to stop early.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Packs read so far (for progress).
    pub packs_done: Option<Arc<AtomicU64>>,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Kind of object: `index`, `pack`, `blob`, `snapshot`, `tree`.
    pub kind: &'static str,
    /// Its id.
    pub id: String,
    /// What is wrong, with context (which snapshot/path refers to it).
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.id, self.message)
    }
}

/// What a check found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckResults {
    /// Damage: the repository is not healthy.
    pub errors: Vec<Finding>,
    /// Not damage (e.g. packs no index references, left by an interrupted backup).
    pub notices: Vec<Finding>,
    /// Not damage, but a risk to act on (e.g. key files other users can read).
    pub warnings: Vec<Finding>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the repository.
    pub packs: usize,
    /// Trees checked.
    pub trees: usize,
    /// Packs whose data was read.
    pub packs_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Temporary files left by interrupted writes (`.tmp-…` of the local backend).
    pub temporary_files: usize,
    /// Their total size.
    pub temporary_bytes: u64,
}

impl CheckResults {
    /// Whether no damage was found.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

fn finding(kind: &'static str, id: impl std::fmt::Display, message: impl Into<String>) -> Finding {
    Finding { kind, id: id.to_string(), message: message.into() }
}

/// Check `repo`.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckResults> {
    // Damage must be found in the repository itself, never hidden by a cached copy.
    repo.set_cache(None);
    let mut res = CheckResults::default();
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));

    // 1. Index files: a damaged one is reported, the rest still checked.
    let mut index = Index::new();
    // Each pack's content as its index files list it (duplicates included): the merged index
    // keeps one location per blob, so a blob stored twice (two backups racing, or a prune
    // interrupted between writing its index and deleting the old one) would make a pack look
    // shorter than it is.
    let mut by_pack: IdMap<Vec<IndexBlob>> = IdMap::default();
    // Without --read-data only each pack's blob count and implied size are needed: a few bytes
    // a pack instead of a copy of every blob's entry.
    let mut packs: IdMap<(usize, u64)> = IdMap::default();
    let listed = repo.backend().list(FileType::Index)?;
    // A group of files at a time (as the repository loads its index): all of a big repository's
    // index files at once would hold every blob's entry twice (parsed, and in the index).
    for group in crate::repo::groups(&listed, 16, 8 << 20) {
        let loaded =
            util::parallel_map(group, threads * 2, |n| Ok((repo.load_json::<IndexFile>(FileType::Index, &n), n)))?;
        check_index_files(loaded, &mut index, &mut packs, &mut by_pack, opts.read_data, &mut res);
    }
    index.sort();
    let index = repo.set_index(index);

    // 2. Packs: every indexed pack must exist with the size its index implies.
    let stored: IdMap<u64> =
        repo.backend().list(FileType::Pack)?.into_iter().filter_map(|(n, s)| Some((n.parse().ok()?, s))).collect();
    res.packs = stored.len();
    for (pack, &(blobs, expected)) in &packs {
        match stored.get(pack) {
            None => res.errors.push(finding(
                "pack",
                pack.short(),
                format!(
                    "missing (the index lists {} blobs in it); `lifeboat repair index` drops it from the index, then \
                     `lifeboat repair snapshots` writes copies of the snapshots without what it held",
                    blobs
                ),
            )),
            Some(&size) => {
                if size != expected {
                    res.errors.push(finding(
                        "pack",
                        pack.short(),
                        format!("size {size} does not match the index ({expected} bytes expected)"),
                    ));
                }
            }
        }
    }
    for pack in stored.keys().filter(|p| !packs.contains_key(*p)) {
        res.notices.push(finding(
            "pack",
            pack.short(),
            "not referenced by any index (left by an interrupted backup; prune removes it)",
        ));
    }

    // Key files other local users can read: a copy allows an offline attack on the password.
    for (name, mode) in repo.backend().readable_by_others(FileType::Key)? {
        res.warnings.push(finding(
            "key",
            short(&name),
            format!(
                "readable by other users (mode {mode:04o}): anyone on this machine can copy it and try passwords \
                 offline; make it private with `chmod 0400` (and the repository's directories `chmod 0700`)"
            ),
        ));
    }

    // Temporary files of killed writes: not damage, but space only prune gives back.
    let temps = repo.backend().list_temporary()?;
    res.temporary_files = temps.len();
    res.temporary_bytes = temps.iter().map(|t| t.size).sum();
    if !temps.is_empty() {
        res.notices.push(finding(
            "temporary",
            format!("{} files", temps.len()),
            format!(
                "{} bytes in temporary files left by interrupted writes (e.g. {}); `lifeboat prune` removes them",
                res.temporary_bytes, temps[0].name
            ),
        ));
    }

    // 3 and 4 run side by side: the tree walk is one thread of small reads, the pack reads keep
    // the other cores (and the disk) busy.
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let done = opts.packs_done.clone().unwrap_or_default();
    let bytes = AtomicU64::new(0);
    let offset = u32::from_le_bytes(lifeboat_crypto::random_bytes::<4>()) % 100;
    let chosen = |p: &Id| match opts.read_data_percent {
        Some(pct) if pct < 100 => {
            let b = p.as_bytes();
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) % 100 + offset) % 100 < u32::from(pct)
        }
        _ => true,
    };
    let work: Vec<(Id, Vec<IndexBlob>)> = if opts.read_data {
        by_pack.into_iter().filter(|(p, _)| stored.contains_key(p) && chosen(p)).collect()
    } else {
        Vec::new()
    };
    let (trees, data) = std::thread::scope(|s| {
        let data = s.spawn(|| -> Result<Vec<Finding>> {
            let found = Mutex::new(Vec::new());
            util::parallel_map(work, threads, |(pack, blobs)| {
                if interrupt.load(Ordering::Relaxed) {
                    return Err(RepoError::Interrupted);
                }
                let f = read_pack(repo, &pack, &blobs, &bytes);
                if let Ok(mut all) = found.lock() {
                    all.extend(f);
                }
                done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })?;
            Ok(found.into_inner().unwrap_or_default())
        });
        let trees = check_snapshots(repo, &index, threads, &interrupt);
        (trees, data.join())
    });
    let mut trees = trees?;
    // Snapshots use blobs no index lists while packs no index lists exist: the index lost them
    // (an index file deleted or damaged), not an interrupted backup. Say so, and name the repair.
    let lost = trees.errors.iter().any(|f| f.message.starts_with("missing"));
    if lost {
        for n in res.notices.iter_mut().filter(|n| n.kind == "pack") {
            n.message = "not referenced by any index, while snapshots use blobs no index lists: the index is \
                         damaged or incomplete — run `lifeboat repair index` (a prune now would delete this pack)"
                .into();
        }
        let hint = if res.notices.iter().any(|n| n.kind == "pack") {
            "; `lifeboat repair index` can find it in the packs no index lists"
        } else {
            "; no pack holds it any more: `lifeboat repair snapshots` writes copies of the snapshots without what is lost"
        };
        for e in trees.errors.iter_mut().filter(|f| f.message.starts_with("missing")) {
            e.message.push_str(hint);
        }
    }
    res.errors.append(&mut trees.errors);
    res.snapshots = trees.snapshots;
    res.trees = trees.trees;
    let mut data = data.map_err(|_| RepoError::Invalid("pack reader panicked".into()))??;
    for f in data.iter_mut().filter(|f| f.kind == "blob") {
        f.message.push_str(
            "; `lifeboat restore` still restores every other file, `lifeboat repair snapshots --read-data` writes \
             copies of the snapshots without the files that use it, `lifeboat repair packs` salvages the rest of \
             the pack",
        );
    }
    res.errors.extend(data);
    if opts.read_data {
        res.packs_read = done.load(Ordering::Relaxed);
        res.bytes_read = bytes.load(Ordering::Relaxed);
    }
    Ok(res)
}

/// Add loaded index files to the index and the per-pack tables; name those that cannot be read.
fn check_index_files(
    loaded: Vec<(Result<IndexFile>, String)>,
    index: &mut Index,
    packs: &mut IdMap<(usize, u64)>,
    by_pack: &mut IdMap<Vec<IndexBlob>>,
    read_data: bool,
    res: &mut CheckResults,
) {
    for (r, name) in loaded {
        match r {
            Ok(f) => {
                for p in &f.packs {
                    packs.entry(p.id).or_insert_with(|| (p.blobs.len(), expected_size(&p.blobs)));
                    if read_data {
                        by_pack.entry(p.id).or_insert_with(|| {
                            let mut b = p.blobs.clone();
                            b.sort_by_key(|x| x.offset);
                            b
                        });
                    }
                }
                index.add_files_compact(std::slice::from_ref(&f));
                if let Ok(id) = name.parse() {
                    index.files.push(id);
                }
            }
            Err(e) => res.errors.push(finding(
                "index",
                short(&name),
                format!("cannot be read: {}; `lifeboat repair index` rebuilds the index from the packs", reason(&e)),
            )),
        }
    }
}

/// Trees loaded and checked at once by the walk (each thread takes the next one).
const TREES_AT_ONCE: usize = 256;

/// A tree the walk will check: its id, its path, and the snapshot that reached it first.
type TreeToCheck = (Id, String, Id);

/// Step 3 of a check, the snapshots and every tree they reach. Each tree is checked once, level
/// by level: a level's trees are loaded and checked on `threads` threads, a few hundred at a
/// time, and the findings are taken in the level's order, so a check reports the same findings
/// in the same order every run.
fn check_snapshots(repo: &Repository, index: &Index, threads: usize, interrupt: &AtomicBool) -> Result<CheckResults> {
    let mut res = CheckResults::default();
    let (snaps, bad) = crate::snapshots::list(repo)?;
    for (name, e) in bad {
        res.errors.push(finding("snapshot", short(&name), format!("cannot be read: {}", reason(&e))));
    }
    res.snapshots = snaps.len();
    let mut seen = IdSet::default();
    // The trees of the next level.
    let mut frontier: Vec<TreeToCheck> = Vec::new();
    for s in &snaps {
        if seen.insert(s.snapshot.tree) {
            frontier.push((s.snapshot.tree, String::from("/"), s.id));
        }
    }
    while !frontier.is_empty() {
        let level = std::mem::take(&mut frontier);
        let mut level = level.into_iter();
        loop {
            let part: Vec<TreeToCheck> = level.by_ref().take(TREES_AT_ONCE).collect();
            if part.is_empty() {
                break;
            }
            if interrupt.load(Ordering::Relaxed) {
                return Err(RepoError::Interrupted);
            }
            let checked = util::parallel_map(part, threads, |(tree_id, path, snap_id)| {
                Ok(check_tree(repo, index, tree_id, &path, snap_id))
            })?;
            for (mut findings, subtrees) in checked {
                res.errors.append(&mut findings);
                for (sub, path, snap_id) in subtrees {
                    if seen.insert(sub) {
                        frontier.push((sub, path, snap_id));
                    }
                }
            }
        }
    }
    res.trees = seen.len();
    Ok(res)
}

fn short(name: &str) -> &str {
    name.get(..8).unwrap_or(name)
}

fn reason(e: &RepoError) -> String {
    match e {
        RepoError::Corrupt { reason, .. } => reason.clone(),
        e => e.to_string(),
    }
}

/// Size of a pack implied by its index entries.
fn expected_size(blobs: &[IndexBlob]) -> u64 {
    let data: u64 = blobs.iter().map(|b| b.length as u64).sum();
    let header: u64 = blobs
        .iter()
        .map(|b| if b.uncompressed_length.is_some() { ENTRY_SIZE_COMPRESSED } else { ENTRY_SIZE_PLAIN } as u64)
        .sum();
    data + header + 32 + 4
}

/// Check one tree: that the index has it, that it reads, and that every file's blobs are
/// indexed. Returns the findings and the directories below it.
fn check_tree(
    repo: &Repository,
    index: &Index,
    tree_id: Id,
    path: &str,
    snap_id: Id,
) -> (Vec<Finding>, Vec<TreeToCheck>) {
    let mut errors = Vec::new();
    let mut subtrees = Vec::new();
    if !index.contains(BlobType::Tree, &tree_id) {
        errors.push(finding(
            "tree",
            tree_id.short(),
            format!("missing from the index (snapshot {}, path {path})", snap_id.short()),
        ));
        return (errors, subtrees);
    }
    let tree = match repo.load_tree(&tree_id) {
        Ok(t) => t,
        Err(e) => {
            errors.push(finding(
                "tree",
                tree_id.short(),
                format!("cannot be read (snapshot {}, path {path}): {}", snap_id.short(), reason(&e)),
            ));
            return (errors, subtrees);
        }
    };
    // The path of a node, made only when it is reported or walked into.
    let node_path = |name: &str| format!("{}/{}", path.trim_end_matches('/'), name);
    for node in &tree.nodes {
        match node.node_type {
            NodeType::File => match &node.content {
                None => errors.push(finding(
                    "tree",
                    tree_id.short(),
                    format!("file {} has no content list", node_path(&node.name)),
                )),
                Some(content) => {
                    for id in content {
                        if !index.contains(BlobType::Data, id) {
                            errors.push(finding(
                                "blob",
                                id.short(),
                                format!("missing: data of {} in snapshot {}", node_path(&node.name), snap_id.short()),
                            ));
                        }
                    }
                }
            },
            NodeType::Dir => match node.subtree {
                Some(sub) => subtrees.push((sub, node_path(&node.name), snap_id)),
                None => errors.push(finding(
                    "tree",
                    tree_id.short(),
                    format!("directory {} has no subtree", node_path(&node.name)),
                )),
            },
            _ => {}
        }
    }
    (errors, subtrees)
}

fn read_pack(repo: &Repository, pack: &Id, blobs: &[IndexBlob], bytes: &AtomicU64) -> Vec<Finding> {
    let mut out = Vec::new();
    let data = match repo.backend().load(FileType::Pack, &pack.to_hex()) {
        Ok(d) => d,
        Err(e) => return vec![finding("pack", pack.short(), format!("cannot be read: {e}"))],
    };
    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    if Id(sha256(&data)) != *pack {
        out.push(finding(
            "pack",
            pack.short(),
            format!(
                "content does not match its id (the file is damaged); `lifeboat repair packs {}` stores its readable \
                 blobs again and deletes it",
                pack.to_hex()
            ),
        ));
    }
    match parse_header(repo, &data) {
        Ok(entries) => {
            let listed: Vec<(Id, BlobType)> = entries.iter().map(|e| (e.id, e.blob_type)).collect();
            let indexed: Vec<(Id, BlobType)> = blobs.iter().map(|b| (b.id, b.blob_type)).collect();
            if listed != indexed {
                out.push(finding("pack", pack.short(), "header does not match the index"));
            }
        }
        Err(e) => out.push(finding("pack", pack.short(), format!("header cannot be read: {e}"))),
    }
    for b in blobs {
        let loc = crate::index::BlobLocation {
            pack: *pack,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length,
        };
        let (start, end) = (b.offset as usize, b.offset as usize + b.length as usize);
        let Some(stored) = data.get(start..end) else {
            out.push(finding("blob", b.id.short(), format!("in pack {}: beyond the end of the pack", pack.short())));
            continue;
        };
        if let Err(e) = repo.decode_blob(&b.id, &loc, stored) {
            out.push(finding("blob", b.id.short(), format!("in pack {}: {}", pack.short(), reason(&e))));
        }
    }
    out
}

/// Decrypt and decode the header at the end of a pack.
pub fn parse_header(
    repo: &Repository,
    data: &[u8],
) -> std::result::Result<Vec<lifeboat_format::PackHeaderEntry>, String> {
    if data.len() < 4 {
        return Err("pack shorter than 4 bytes".into());
    }
    let n = data.len();
    let hlen = u32::from_le_bytes([data[n - 4], data[n - 3], data[n - 2], data[n - 1]]) as usize;
    if hlen + 4 > n {
        return Err(format!("header length {hlen} exceeds the pack size {n}"));
    }
    let plain = repo.key().decrypt(&data[n - 4 - hlen..n - 4]).map_err(|e| e.to_string())?;
    decode_header(&plain).map_err(|e| e.to_string())
}
