//! Walking the trees of a snapshot.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use lifeboat_format::{Id, Node, NodeType};

use crate::{RepoError, Repository, Result};

/// A node with its path inside the snapshot (`/home/user/file`).
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Absolute path inside the snapshot, for display and matching (names that are not UTF-8
    /// are shown lossily).
    pub path: String,
    /// The exact path, relative to the snapshot root, to create on restore.
    pub raw: PathBuf,
    /// The node.
    pub node: Node,
}

/// Visit every node below `tree` depth-first, in name order. `visit` returns `false` to skip
/// descending into a directory.
pub fn walk(
    repo: &Repository,
    tree: &Id,
    prefix: &str,
    visit: &mut dyn FnMut(&WalkEntry) -> Result<bool>,
) -> Result<()> {
    let raw = PathBuf::from(prefix.trim_start_matches('/'));
    walk_inner(repo, tree, prefix, &raw, visit)
}

fn walk_inner(
    repo: &Repository,
    tree: &Id,
    prefix: &str,
    raw_prefix: &Path,
    visit: &mut dyn FnMut(&WalkEntry) -> Result<bool>,
) -> Result<()> {
    let t = repo.load_tree(tree)?;
    for node in t.nodes {
        let bytes = node.name_bytes();
        let path = format!("{}/{}", prefix.trim_end_matches('/'), String::from_utf8_lossy(&bytes));
        let raw = raw_prefix.join(OsStr::from_bytes(&bytes));
        let subtree = node.subtree.filter(|_| node.node_type == NodeType::Dir);
        let entry = WalkEntry { path, raw, node };
        let descend = visit(&entry)?;
        if let (true, Some(sub)) = (descend, subtree) {
            walk_inner(repo, &sub, &entry.path, &entry.raw, visit)?;
        }
    }
    Ok(())
}

/// Find the node at `path` (e.g. `/home/user`) below `root`; `None` for the root itself.
pub fn find_node(repo: &Repository, root: &Id, path: &str) -> Result<Option<Node>> {
    let mut current = *root;
    let mut found = None;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for (i, part) in parts.iter().enumerate() {
        let tree = repo.load_tree(&current)?;
        let quoted = lifeboat_format::name::quote(part.as_bytes());
        let node = tree.find(&quoted).cloned().ok_or_else(|| RepoError::PathNotFound(path.into()))?;
        if i + 1 < parts.len() {
            current = node.subtree.ok_or_else(|| RepoError::PathNotFound(path.into()))?;
        }
        found = Some(node);
    }
    Ok(found)
}
