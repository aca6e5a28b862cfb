//! `lifeboat ls SNAPSHOT [PATH]`.

use anyhow::Result;
use chrono::Local;
use lifeboat_format::mode::unix_permissions_from_go;
use lifeboat_format::NodeType;
use lifeboat_repository::{snapshots, tree};

use crate::args::LsArgs;
use crate::output;

fn type_char(t: NodeType) -> char {
    match t {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'l',
        NodeType::Dev => 'b',
        NodeType::Chardev => 'c',
        NodeType::Fifo => 'p',
        NodeType::Socket => 's',
        NodeType::File => '-',
    }
}

pub fn run(c: &super::Ctx, a: &LsArgs) -> Result<i32> {
    let repo = c.session.open()?;
    let snap = snapshots::find(&repo, &a.snapshot, &super::filter(&a.filter).filter()?)?;
    let prefix = a.path.as_deref().map(|p| format!("/{}", p.trim_matches('/'))).filter(|p| p != "/");
    let mut start = snap.snapshot.tree;
    let mut base = String::new();
    if let Some(p) = &prefix {
        let node = tree::find_node(&repo, &snap.snapshot.tree, p)?
            .ok_or_else(|| lifeboat_repository::RepoError::PathNotFound(p.clone()))?;
        match node.subtree {
            Some(sub) => {
                start = sub;
                base = p.clone();
            }
            None => anyhow::bail!("{p} is not a directory in snapshot {}", snap.id.short()),
        }
    }
    let mut rows = Vec::new();
    tree::walk(&repo, &start, &base, &mut |e| {
        if c.g.json {
            rows.push(serde_json::json!({
                "path": e.path, "type": e.node.node_type, "size": e.node.size,
                "mode": unix_permissions_from_go(e.node.mode), "uid": e.node.uid, "gid": e.node.gid,
                "mtime": e.node.mtime, "linktarget": (!e.node.linktarget.is_empty()).then_some(&e.node.linktarget),
            }));
        } else if a.long {
            println!(
                "{}{:>4o} {:>8} {:>8} {:>10} {} {}{}",
                type_char(e.node.node_type),
                unix_permissions_from_go(e.node.mode),
                if e.node.user.is_empty() { e.node.uid.to_string() } else { e.node.user.clone() },
                if e.node.group.is_empty() { e.node.gid.to_string() } else { e.node.group.clone() },
                output::size(e.node.size),
                e.node
                    .mtime
                    .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                e.path,
                if e.node.linktarget.is_empty() { String::new() } else { format!(" -> {}", e.node.linktarget) }
            );
        } else {
            println!("{}", e.path);
        }
        Ok(true)
    })?;
    if c.g.json {
        output::json(&rows)?;
    }
    Ok(crate::exit::OK)
}
