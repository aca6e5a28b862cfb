//! `lifeboat ls SNAPSHOT [PATH]`.

use anyhow::Result;
use chrono::Local;
use lifeboat_format::mode::unix_permissions_from_go;
use lifeboat_format::NodeType;

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
    let spec = super::filter(&a.filter);
    let mut rows = Vec::new();
    lifeboat_service::inventory::ls(&c.session, &a.snapshot, &spec, a.path.as_deref(), &mut |e| {
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
    })?;
    if c.g.json {
        output::json(&rows)?;
    }
    Ok(crate::exit::OK)
}
