//! `diff SNAP1 SNAP2`: what changed between two snapshots — files added, removed, changed
//! (content) and changed in metadata only (mode, owner, link target) — found by comparing their
//! trees (identical subtrees are skipped without being read). For snapshots of `command`
//! sources the stored outputs are also compared line by line, as a unified diff.

use std::fmt::Write as _;

use lifeboat_format::{BlobType, Id, Node, NodeType};
use lifeboat_repository::Repository;
use serde::Serialize;

use crate::error::Result;
use crate::filter::{find_snapshot, FilterSpec};
use crate::session::Session;

/// Outputs larger than this are not diffed line by line.
const TEXT_DIFF_MAX: u64 = 8 << 20;
/// Lines of context around each change of a text diff.
const CONTEXT: usize = 3;

/// How a path changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or type) differs.
    Changed,
    /// Same content; mode, owner or link target differ.
    Metadata,
}

impl ChangeKind {
    fn mark(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Changed => 'M',
            ChangeKind::Metadata => 'U',
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// Path inside the snapshots (directories end in `/`).
    pub path: String,
    /// How it changed.
    pub change: ChangeKind,
    /// Size in the first snapshot (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_before: Option<u64>,
    /// Size in the second snapshot (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_after: Option<u64>,
}

/// A line-by-line diff of a command's stored output.
#[derive(Clone, Debug, Serialize)]
pub struct TextDiff {
    /// The output file's path.
    pub path: String,
    /// Unified diff text.
    pub diff: String,
}

/// What differs between two snapshots.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotDiff {
    /// The first snapshot (full id).
    pub from: String,
    /// The second snapshot (full id).
    pub to: String,
    /// Paths added.
    pub added: usize,
    /// Paths removed.
    pub removed: usize,
    /// Paths whose content changed.
    pub changed: usize,
    /// Paths whose metadata only changed.
    pub metadata: usize,
    /// Every change, in path order.
    pub changes: Vec<Change>,
    /// For `command` sources: the outputs' text diffs.
    pub text_diffs: Vec<TextDiff>,
}

impl SnapshotDiff {
    /// The diff for people: one line per path (`+`, `-`, `M` content, `U` metadata), the counts,
    /// then any text diffs.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "comparing snapshot {} with {}", short(&self.from), short(&self.to));
        for c in &self.changes {
            let _ = writeln!(out, "{}    {}", c.change.mark(), c.path);
        }
        let _ = writeln!(
            out,
            "{} added, {} removed, {} changed, {} changed in metadata only",
            self.added, self.removed, self.changed, self.metadata
        );
        for t in &self.text_diffs {
            out.push('\n');
            out.push_str(&t.diff);
        }
        out
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Compare the snapshots `a` and `b` (ids, prefixes or `latest`, among those `spec` passes).
pub fn diff(session: &Session, a: &str, b: &str, spec: &FilterSpec) -> Result<SnapshotDiff> {
    let repo = session.open()?;
    let first = find_snapshot(&repo, a, spec)?;
    let second = find_snapshot(&repo, b, spec)?;
    let mut changes = Vec::new();
    compare(&repo, Some(&first.snapshot.tree), Some(&second.snapshot.tree), "", &mut changes)?;
    let is_command = |e: &lifeboat_repository::snapshots::SnapshotEntry| {
        e.snapshot.source.as_ref().is_some_and(|s| s.kind == "command")
    };
    let mut text_diffs = Vec::new();
    if is_command(&first) || is_command(&second) {
        for c in changes.iter().filter(|c| c.change == ChangeKind::Changed) {
            let (Some(x), Some(y)) = (c.size_before, c.size_after) else { continue };
            let header = format!(
                "--- {} ({})\n+++ {} ({})\n",
                c.path,
                short(&first.id.to_hex()),
                c.path,
                short(&second.id.to_hex())
            );
            let diff = if x.max(y) > TEXT_DIFF_MAX {
                format!("{header}(outputs of {x} and {y} bytes: too large to compare line by line)\n")
            } else {
                let old = content(&repo, &first.snapshot.tree, &c.path)?;
                let new = content(&repo, &second.snapshot.tree, &c.path)?;
                format!("{header}{}", unified(&String::from_utf8_lossy(&old), &String::from_utf8_lossy(&new)))
            };
            text_diffs.push(TextDiff { path: c.path.clone(), diff });
        }
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    Ok(SnapshotDiff {
        from: first.id.to_hex(),
        to: second.id.to_hex(),
        added: count(ChangeKind::Added),
        removed: count(ChangeKind::Removed),
        changed: count(ChangeKind::Changed),
        metadata: count(ChangeKind::Metadata),
        changes,
        text_diffs,
    })
}

/// The stored content of the file at `path`.
fn content(repo: &Repository, root: &Id, path: &str) -> Result<Vec<u8>> {
    let node = lifeboat_repository::tree::find_node(repo, root, path)?
        .ok_or_else(|| lifeboat_repository::RepoError::PathNotFound(path.to_string()))?;
    Ok(file_bytes(repo, &node)?)
}

/// A file node's content, read from its data blobs.
pub fn file_bytes(repo: &Repository, node: &Node) -> lifeboat_repository::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in node.content.iter().flatten() {
        out.extend_from_slice(&repo.load_blob(BlobType::Data, id)?);
    }
    Ok(out)
}

/// Hex SHA-256 of a file node's whole content, streamed blob by blob from the repository.
pub fn file_sha256(repo: &Repository, node: &Node) -> lifeboat_repository::Result<String> {
    use lifeboat_crypto::Digest as _;
    let mut h = lifeboat_crypto::hasher();
    for id in node.content.iter().flatten() {
        h.update(repo.load_blob(BlobType::Data, id)?);
    }
    Ok(hex::encode(h.finalize()))
}

fn path_of(prefix: &str, n: &Node) -> String {
    let slash = if n.node_type == NodeType::Dir { "/" } else { "" };
    format!("{prefix}/{}{slash}", String::from_utf8_lossy(&n.name_bytes()))
}

fn size(n: &Node) -> Option<u64> {
    (n.node_type == NodeType::File).then_some(n.size)
}

/// Compare two trees (`None`: empty), appending changes below `prefix`.
fn compare(repo: &Repository, a: Option<&Id>, b: Option<&Id>, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |t: Option<&Id>| -> Result<Vec<Node>> {
        Ok(t.map(|id| repo.load_tree(id)).transpose()?.map(|t| t.nodes).unwrap_or_default())
    };
    let (mut left, mut right) = (load(a)?, load(b)?);
    left.sort_by(|x, y| x.name.cmp(&y.name));
    right.sort_by(|x, y| x.name.cmp(&y.name));
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        let order = match (left.get(i), right.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                one_side(repo, &left[i], prefix, ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                one_side(repo, &right[j], prefix, ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                both(repo, &left[i], &right[j], prefix, out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// A node (and everything below it) only one snapshot has.
fn one_side(repo: &Repository, n: &Node, prefix: &str, kind: ChangeKind, out: &mut Vec<Change>) -> Result<()> {
    let path = path_of(prefix, n);
    let (size_before, size_after) = if kind == ChangeKind::Added { (None, size(n)) } else { (size(n), None) };
    out.push(Change { path: path.clone(), change: kind, size_before, size_after });
    if let (NodeType::Dir, Some(sub)) = (n.node_type, &n.subtree) {
        let (a, b) = if kind == ChangeKind::Added { (None, Some(sub)) } else { (Some(sub), None) };
        compare(repo, a, b, path.trim_end_matches('/'), out)?;
    }
    Ok(())
}

/// A name both snapshots have.
fn both(repo: &Repository, x: &Node, y: &Node, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    if x.node_type != y.node_type {
        one_side(repo, x, prefix, ChangeKind::Removed, out)?;
        return one_side(repo, y, prefix, ChangeKind::Added, out);
    }
    let path = path_of(prefix, y);
    let meta = x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.linktarget != y.linktarget;
    let kind = if x.node_type == NodeType::File && (x.content != y.content || x.size != y.size) {
        Some(ChangeKind::Changed)
    } else if meta {
        Some(ChangeKind::Metadata)
    } else {
        None
    };
    if let Some(change) = kind {
        out.push(Change { path: path.clone(), change, size_before: size(x), size_after: size(y) });
    }
    if x.node_type == NodeType::Dir {
        compare(repo, x.subtree.as_ref(), y.subtree.as_ref(), path.trim_end_matches('/'), out)?;
    }
    Ok(())
}

/// One step of an edit script: a line kept, deleted from the old text, or inserted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Ins,
}

/// A unified diff (3 lines of context) of two texts, without the `---`/`+++` header.
fn unified(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = script(&a, &b);
    // Positions (old line, new line) before each op.
    let mut pos = Vec::with_capacity(ops.len() + 1);
    let (mut i, mut j) = (0usize, 0usize);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Keep => (i, j) = (i + 1, j + 1),
            Op::Del => i += 1,
            Op::Ins => j += 1,
        }
    }
    pos.push((i, j));
    let mut out = String::new();
    let mut k = 0;
    while k < ops.len() {
        if ops[k] == Op::Keep {
            k += 1;
            continue;
        }
        // A hunk: from CONTEXT before this change to CONTEXT after the last change that is
        // closer than 2 × CONTEXT to the previous one.
        let start = k.saturating_sub(CONTEXT);
        let mut end = k;
        while end < ops.len() {
            let next_change = (end..ops.len()).find(|&e| ops[e] != Op::Keep);
            match next_change {
                Some(e) if e <= end + 2 * CONTEXT => end = e + 1,
                _ => break,
            }
        }
        let stop = (end + CONTEXT).min(ops.len());
        let ((a0, b0), (a1, b1)) = (pos[start], pos[stop]);
        let _ = writeln!(out, "@@ -{},{} +{},{} @@", a0 + 1, a1 - a0, b0 + 1, b1 - b0);
        for (op, &(i, j)) in ops[start..stop].iter().zip(&pos[start..stop]) {
            let _ = match op {
                Op::Keep => writeln!(out, " {}", a[i]),
                Op::Del => writeln!(out, "-{}", a[i]),
                Op::Ins => writeln!(out, "+{}", b[j]),
            };
        }
        k = stop;
    }
    out
}

/// A shortest edit script from `a` to `b`: common prefix and suffix, and a longest common
/// subsequence of what is between (all deleted then inserted when that is too large).
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..].iter().rev().zip(b[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (x, y) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops = vec![Op::Keep; pre];
    let (n, m) = (x.len(), y.len());
    if n.saturating_mul(m) > 4_000_000 {
        ops.extend(std::iter::repeat_n(Op::Del, n).chain(std::iter::repeat_n(Op::Ins, m)));
    } else {
        // lcs[i][j]: length of the LCS of x[i..] and y[j..].
        let w = m + 1;
        let mut lcs = vec![0u32; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * w + j] = if x[i] == y[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && x[i] == y[j] {
                ops.push(Op::Keep);
                (i, j) = (i + 1, j + 1);
            } else if j == m || (i < n && lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
                ops.push(Op::Del);
                i += 1;
            } else {
                ops.push(Op::Ins);
                j += 1;
            }
        }
    }
    ops.extend(std::iter::repeat_n(Op::Keep, suf));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unified_diff_shows_changes_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n";
        let d = unified(old, new);
        assert_eq!(d, "@@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k\n");
        let far = unified("1\n1\n1\n", "1\n1\n2\n");
        assert_eq!(far, "@@ -1,3 +1,3 @@\n 1\n 1\n-1\n+2\n");
        assert_eq!(unified("same\n", "same\n"), "");
    }

    #[test]
    fn distant_changes_make_separate_hunks() {
        let old: String = (1..=20).map(|i| format!("line{i}\n")).collect();
        let new = old.replace("line2\n", "two\n").replace("line19\n", "nineteen\n");
        let d = unified(&old, &new);
        assert_eq!(d.matches("@@ -").count(), 2, "{d}");
        assert!(d.contains("-line2\n+two\n") && d.contains("-line19\n+nineteen\n"), "{d}");
    }
}
