//! Restoring a snapshot (or part of it) into a directory.
//!
//! Files are written beside their final name (`.name.lifeboat-tmp`) and renamed into place once
//! complete, with metadata applied; so an interrupted restore never leaves a half-written file
//! under its real name. Directory metadata is applied last, deepest first.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use filetime::FileTime;
use lifeboat_backend::FileType;
use lifeboat_crypto::sha256;
use lifeboat_format::mode::unix_permissions_from_go;
use lifeboat_format::{BlobType, Id, Node, NodeType};

use crate::index::Index;
use crate::tree::{walk, WalkEntry};
use crate::{util, RepoError, Repository, Result};

/// Options of a restore.
#[derive(Clone, Default)]
pub struct RestoreOptions {
    /// Only restore these snapshot paths (and what is below them). Empty = everything.
    pub include: Vec<String>,
    /// Replace existing files in a non-empty target.
    pub overwrite: bool,
    /// Only plan; write nothing.
    pub dry_run: bool,
    /// Read every restored file back and compare it with the snapshot.
    pub verify: bool,
    /// Worker threads (defaults to the number of cores).
    pub threads: Option<usize>,
    /// Set to stop early.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Counters updated while running.
    pub progress: Option<Arc<crate::archiver::Progress>>,
}

/// What a restore did (or would do, for a dry run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    /// Files written (or to write).
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks, FIFOs, device nodes and sockets in the snapshot.
    pub others: u64,
    /// Socket entries, which are not recreated (like restic): a socket only means something
    /// while a process listens on it.
    pub sockets_skipped: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Files verified after writing.
    pub verified: u64,
    /// Problems that did not stop the restore (e.g. ownership not settable).
    pub warnings: Vec<String>,
    /// Dry run: entries of the snapshot that exist in the target already and would be replaced
    /// (existing directories are kept and filled, so they are not counted).
    pub replaced: u64,
    /// Dry run: size of the existing files that would be replaced.
    pub replaced_bytes: u64,
    /// Dry run: entries in the target that would be deleted (what is inside a directory that
    /// stands where the snapshot has a file or a link). Nothing else in the target is deleted.
    pub deleted: u64,
    /// Dry run: the target exists and is not empty, so a real run needs `overwrite`.
    pub target_not_empty: bool,
}

fn matches_include(path: &str, include: &[String]) -> (bool, bool) {
    // (restore this entry, descend into it)
    if include.is_empty() {
        return (true, true);
    }
    let mut take = false;
    let mut descend = false;
    for inc in include {
        let inc = inc.trim_end_matches('/');
        if path == inc || path.starts_with(&format!("{inc}/")) {
            take = true;
            descend = true;
        } else if inc.starts_with(&format!("{path}/")) {
            descend = true;
        }
    }
    (take, descend)
}

/// Restore `tree` (the snapshot root) into `target`.
pub fn restore(repo: &Repository, tree: &Id, target: &Path, opts: &RestoreOptions) -> Result<RestoreStats> {
    let index = repo.index()?;
    let mut entries: Vec<WalkEntry> = Vec::new();
    walk(repo, tree, "", &mut |e| {
        let (take, descend) = matches_include(&e.path, &opts.include);
        if take || (descend && e.node.node_type == NodeType::Dir) {
            entries.push(e.clone());
        }
        Ok(descend)
    })?;
    // Every include must name something in the snapshot: a typo must not "succeed" quietly.
    for inc in &opts.include {
        let inc = inc.trim_end_matches('/');
        if !entries.iter().any(|e| e.path == inc || e.path.starts_with(&format!("{inc}/"))) {
            return Err(RepoError::PathNotFound(inc.to_string()));
        }
    }
    let mut stats = RestoreStats::default();
    for e in &entries {
        match e.node.node_type {
            NodeType::File => {
                stats.files += 1;
                stats.bytes += e.node.size;
            }
            NodeType::Dir => stats.dirs += 1,
            NodeType::Socket => {
                stats.others += 1;
                stats.sockets_skipped += 1;
            }
            _ => stats.others += 1,
        }
    }
    if opts.dry_run {
        impact(target, &entries, &mut stats);
        return Ok(stats);
    }
    check_target(target, opts.overwrite)?;
    std::fs::create_dir_all(target).map_err(|e| RepoError::io(target, e))?;
    let dest = |e: &WalkEntry| target.join(&e.raw);

    // Directories first, so files have a place to go.
    for e in entries.iter().filter(|e| e.node.node_type == NodeType::Dir) {
        let p = dest(e);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // A file or symlink where the snapshot has a directory (only with --overwrite):
                // replace it, and never follow a symlink out of the target.
                std::fs::remove_file(&p).map_err(|err| RepoError::io(&p, err))?;
                std::fs::create_dir(&p).map_err(|err| RepoError::io(&p, err))?;
            }
            Err(_) => std::fs::create_dir(&p).map_err(|err| RepoError::io(&p, err))?,
        }
        // Writable while we fill it; the final mode is applied at the end.
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700));
    }

    let warnings = Mutex::new(Vec::new());
    let interrupt = opts.interrupt.clone().unwrap_or_default();
    let progress = opts.progress.clone().unwrap_or_default();
    // Hard links: the first path of an inode is written, later ones are linked to it.
    let mut first_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut files = Vec::new();
    let mut links = Vec::new();
    for e in entries.iter().filter(|e| e.node.node_type == NodeType::File) {
        let p = dest(e);
        if e.node.links > 1 && e.node.inode != 0 {
            if let Some(first) = first_of_inode.get(&(e.node.device_id, e.node.inode)) {
                links.push((first.clone(), p));
                continue;
            }
            first_of_inode.insert((e.node.device_id, e.node.inode), p.clone());
        }
        files.push((p, &e.node));
    }
    // Big files first keeps both cores busy until the end.
    let threads = opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let verified = AtomicU64::new(0);
    let work = plan_work(&index, files)?;
    util::parallel_map(work, threads + 1, |w| {
        if interrupt.load(Ordering::Relaxed) {
            return Err(RepoError::Interrupted);
        }
        let done = match w {
            Work::File(path, node) => {
                restore_file(repo, &index, &path, node, &warnings)?;
                vec![(path, node)]
            }
            Work::Pack(pack, files) => restore_small_files(repo, &index, &pack, files, &warnings)?,
        };
        for (path, node) in done {
            if opts.verify {
                verify_file(&index, &path, node)?;
                verified.fetch_add(1, Ordering::Relaxed);
            }
            progress.files.fetch_add(1, Ordering::Relaxed);
            progress.bytes.fetch_add(node.size, Ordering::Relaxed);
        }
        Ok(())
    })?;
    stats.verified = verified.load(Ordering::Relaxed);
    for (first, p) in links {
        replace_with(&p, |tmp| std::fs::hard_link(&first, tmp))?;
    }
    for e in entries.iter().filter(|e| !matches!(e.node.node_type, NodeType::File | NodeType::Dir)) {
        restore_special(&dest(e), &e.node, &warnings)?;
    }
    // Directory metadata last, deepest first, so writing children does not change mtimes.
    for e in entries.iter().rev().filter(|e| e.node.node_type == NodeType::Dir) {
        apply_metadata(&dest(e), &e.node, &warnings)?;
    }
    stats.warnings = warnings.into_inner().unwrap_or_default();
    Ok(stats)
}

/// What a restore would do to what is in the target already (for a dry run).
fn impact(target: &Path, entries: &[WalkEntry], stats: &mut RestoreStats) {
    stats.target_not_empty = std::fs::read_dir(target).is_ok_and(|mut rd| rd.next().is_some());
    for e in entries {
        let Ok(m) = std::fs::symlink_metadata(target.join(&e.raw)) else { continue };
        match (e.node.node_type == NodeType::Dir, m.is_dir()) {
            (true, true) => {}
            (false, true) => stats.deleted += count_below(&target.join(&e.raw)),
            _ => {
                stats.replaced += 1;
                if m.is_file() {
                    stats.replaced_bytes += m.len();
                }
            }
        }
    }
}

/// Entries in a directory tree, the directory included (symbolic links are not followed).
fn count_below(dir: &Path) -> u64 {
    let below: u64 = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| if e.file_type().is_ok_and(|t| t.is_dir()) { count_below(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0);
    below + 1
}

fn check_target(target: &Path, overwrite: bool) -> Result<()> {
    match std::fs::read_dir(target) {
        Ok(mut rd) => {
            if rd.next().is_some() && !overwrite {
                return Err(RepoError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RepoError::io(target, e)),
    }
}

fn tmp_path(p: &Path) -> PathBuf {
    // Built from the raw bytes: two names that differ only in invalid UTF-8 must not share one.
    let mut name = std::ffi::OsString::from(".");
    name.push(p.file_name().unwrap_or_default());
    name.push(".lifeboat-tmp");
    p.with_file_name(name)
}

/// Create the entry at a temporary name with `make`, then rename it over `p`.
fn replace_with(p: &Path, make: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<()> {
    let tmp = tmp_path(p);
    let _ = std::fs::remove_file(&tmp);
    make(&tmp).map_err(|e| RepoError::io(&tmp, e))?;
    if p.is_dir() && !p.is_symlink() {
        std::fs::remove_dir_all(p).map_err(|e| RepoError::io(p, e))?;
    }
    std::fs::rename(&tmp, p).map_err(|e| RepoError::io(p, e))
}

/// A unit of restore work.
enum Work<'a> {
    /// A file of several blobs, restored on its own (big files first).
    File(PathBuf, &'a Node),
    /// Files of at most one blob each, all in one pack: one read serves them all.
    Pack(Id, Vec<(PathBuf, &'a Node)>),
}

/// Group one-blob files by pack (restic's trick: read each pack once, not once per file) and
/// order the work so big files start first.
fn plan_work<'a>(index: &Index, files: Vec<(PathBuf, &'a Node)>) -> Result<Vec<Work<'a>>> {
    let mut by_pack: crate::index::IdMap<Vec<(PathBuf, &'a Node)>> = Default::default();
    let mut big = Vec::new();
    let mut empty = Vec::new();
    for (path, node) in files {
        match node.content.as_deref().unwrap_or_default() {
            [] => empty.push((path, node)),
            [one] => {
                let loc = index
                    .get(BlobType::Data, one)
                    .ok_or(RepoError::BlobNotFound { id: *one, blob_type: BlobType::Data })?;
                by_pack.entry(loc.pack).or_default().push((path, node));
            }
            _ => big.push((path, node)),
        }
    }
    big.sort_by_key(|f| std::cmp::Reverse(f.1.size));
    let mut work: Vec<Work<'a>> = big.into_iter().map(|(p, n)| Work::File(p, n)).collect();
    work.extend(by_pack.into_iter().map(|(pack, files)| Work::Pack(pack, files)));
    work.extend(empty.into_iter().map(|(p, n)| Work::File(p, n)));
    Ok(work)
}

/// Restore files of one blob each from one pack, reading the span they occupy once.
fn restore_small_files<'a>(
    repo: &Repository,
    index: &Index,
    pack: &Id,
    mut files: Vec<(PathBuf, &'a Node)>,
    warnings: &Mutex<Vec<String>>,
) -> Result<Vec<(PathBuf, &'a Node)>> {
    let loc_of = |n: &Node| {
        let id = n.content.as_deref().and_then(<[Id]>::first).copied().unwrap_or_default();
        index.get(BlobType::Data, &id).map(|l| (id, l)).ok_or(RepoError::BlobNotFound { id, blob_type: BlobType::Data })
    };
    let mut located = Vec::with_capacity(files.len());
    for (path, node) in files.drain(..) {
        let (id, loc) = loc_of(node)?;
        located.push((loc.offset, id, loc, path, node));
    }
    located.sort_by_key(|l| l.0);
    let start = located.first().map(|l| l.2.offset).unwrap_or(0);
    let end = located.iter().map(|l| l.2.offset + l.2.length).max().unwrap_or(0);
    let buf = repo.backend().load_range(FileType::Pack, &pack.to_hex(), start as u64, end - start)?;
    let mut done = Vec::with_capacity(located.len());
    for (_, id, loc, path, node) in located {
        let at = (loc.offset - start) as usize;
        let data = repo.decode_blob(&id, &loc, &buf[at..at + loc.length as usize])?;
        write_file(&path, node, warnings, |w, tmp| w.write_all(&data).map_err(|e| RepoError::io(tmp, e)))?;
        done.push((path, node));
    }
    Ok(done)
}

/// Write a file beside its final name, apply its metadata, then rename it into place.
fn write_file(
    path: &Path,
    node: &Node,
    warnings: &Mutex<Vec<String>>,
    fill: impl FnOnce(&mut std::fs::File, &Path) -> Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| -> Result<()> {
        // A leftover temporary of an interrupted restore could be anything (even a FIFO, which
        // would block an open): remove it and create a fresh file, never following a link.
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| RepoError::io(&tmp, e))?;
        fill(&mut f, &tmp)?;
        drop(f);
        apply_metadata(&tmp, node, warnings)?;
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path).map_err(|e| RepoError::io(path, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| RepoError::io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn restore_file(
    repo: &Repository,
    index: &Index,
    path: &Path,
    node: &Node,
    warnings: &Mutex<Vec<String>>,
) -> Result<()> {
    write_file(path, node, warnings, |f, tmp| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        copy_content(repo, index, node, &mut w).map_err(|e| match e {
            RepoError::Io { source, .. } => RepoError::io(tmp, source),
            e => e,
        })?;
        w.flush().map_err(|e| RepoError::io(tmp, e))
    })
}

/// Stream a file node's content into `w`, checking every blob; returns the bytes written.
/// Runs of blobs stored next to each other in one pack are read with one request.
pub fn copy_content(repo: &Repository, index: &Index, node: &Node, w: &mut dyn Write) -> Result<u64> {
    let content = node.content.as_deref().unwrap_or_default();
    let missing = |id: &Id| RepoError::BlobNotFound { id: *id, blob_type: BlobType::Data };
    let mut written = 0u64;
    let mut i = 0;
    while i < content.len() {
        let first = index.get(BlobType::Data, &content[i]).ok_or_else(|| missing(&content[i]))?;
        let mut j = i + 1;
        let mut end = first.offset as u64 + first.length as u64;
        while j < content.len() && end - (first.offset as u64) < 32 << 20 {
            match index.get(BlobType::Data, &content[j]) {
                Some(l) if l.pack == first.pack && l.offset as u64 == end => {
                    end += l.length as u64;
                    j += 1;
                }
                _ => break,
            }
        }
        let len = (end - first.offset as u64) as u32;
        let buf = repo.backend().load_range(FileType::Pack, &first.pack.to_hex(), first.offset as u64, len)?;
        for id in &content[i..j] {
            let loc = index.get(BlobType::Data, id).ok_or_else(|| missing(id))?;
            let at = (loc.offset - first.offset) as usize;
            let data = repo.decode_blob(id, &loc, &buf[at..at + loc.length as usize])?;
            w.write_all(&data).map_err(|e| RepoError::io("(output)", e))?;
            written += data.len() as u64;
        }
        i = j;
    }
    Ok(written)
}

fn verify_file(index: &Index, path: &Path, node: &Node) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| RepoError::io(path, e))?;
    let mut buf = Vec::new();
    for id in node.content.as_deref().unwrap_or_default() {
        let loc =
            index.get(BlobType::Data, id).ok_or(RepoError::BlobNotFound { id: *id, blob_type: BlobType::Data })?;
        buf.resize(loc.data_length() as usize, 0);
        f.read_exact(&mut buf).map_err(|e| RepoError::io(path, e))?;
        if Id(sha256(&buf)) != *id {
            return Err(RepoError::corrupt(
                format!("restored file {}", path.display()),
                format!("content differs from blob {}", id.short()),
            ));
        }
    }
    let mut rest = [0u8; 1];
    if f.read(&mut rest).map_err(|e| RepoError::io(path, e))? != 0 {
        return Err(RepoError::corrupt(format!("restored file {}", path.display()), "longer than in the snapshot"));
    }
    Ok(())
}

/// Recreate a symlink, FIFO, device node or socket entry. Special files are created with
/// `mkfifo`/`mknod` and never opened (opening a FIFO blocks until a writer comes).
///
/// Sockets are not recreated, as restic does not: a socket file is only meaningful while a
/// process listens on it, and the process recreates it when it starts. They are counted in
/// [`RestoreStats::sockets_skipped`]. Device nodes need root (`mknod`); without it they are
/// skipped with a warning.
fn restore_special(path: &Path, node: &Node, warnings: &Mutex<Vec<String>>) -> Result<()> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let create = |kind: SFlag, dev: u64| {
        replace_with(path, |tmp| mknod(tmp, kind, Mode::from_bits_truncate(0o600), dev).map_err(std::io::Error::from))
    };
    match node.node_type {
        NodeType::Symlink => replace_with(path, |tmp| std::os::unix::fs::symlink(&node.linktarget, tmp))?,
        NodeType::Fifo => create(SFlag::S_IFIFO, 0)?,
        NodeType::Dev | NodeType::Chardev => {
            if util::current_uid() != 0 {
                warn(warnings, format!("{}: device nodes can only be restored by root; skipped", path.display()));
                return Ok(());
            }
            let kind = if node.node_type == NodeType::Dev { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
            create(kind, node.device)?
        }
        NodeType::Socket => return Ok(()),
        _ => {
            warn(warnings, format!("{}: {:?} nodes are not restored", path.display(), node.node_type));
            return Ok(());
        }
    }
    apply_metadata(path, node, warnings)
}

fn warn(w: &Mutex<Vec<String>>, msg: String) {
    if let Ok(mut w) = w.lock() {
        w.push(msg);
    }
}

fn apply_metadata(path: &Path, node: &Node, warnings: &Mutex<Vec<String>>) -> Result<()> {
    let is_link = node.node_type == NodeType::Symlink;
    if util::current_uid() == 0 {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            warn(warnings, format!("{}: cannot set owner: {e}", path.display()));
        }
    }
    if let Some(xattrs) = &node.extended_attributes {
        for x in xattrs {
            if let Err(e) = xattr::set(path, &x.name, &x.value) {
                warn(warnings, format!("{}: cannot set xattr {}: {e}", path.display(), x.name));
            }
        }
    }
    if !is_link {
        let mode = unix_permissions_from_go(node.mode);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| RepoError::io(path, e))?;
    }
    let ft = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| FileTime::from_unix_time(t.timestamp(), t.timestamp_subsec_nanos()))
    };
    if let Some(m) = ft(node.mtime) {
        let a = ft(node.atime).unwrap_or(m);
        // By path, never following a link and never opening the file: `filetime::set_file_times`
        // opens it, which blocks forever on a FIFO (and would open a device node).
        filetime::set_symlink_file_times(path, a, m).map_err(|e| RepoError::io(path, e))?;
    }
    Ok(())
}
