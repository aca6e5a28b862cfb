//! `lifeboat snapshots`.

use anyhow::Result;
use chrono::Local;
use lifeboat_repository::snapshots;

use crate::args::{Global, SnapshotsArgs};
use crate::{context, output};

pub fn run(g: &Global, a: &SnapshotsArgs) -> Result<i32> {
    let repo = context::open(g)?;
    let (all, bad) = snapshots::list(&repo)?;
    for (name, e) in &bad {
        eprintln!("lifeboat: skipping snapshot {}: {e}", name.get(..8).unwrap_or(name));
    }
    let f = crate::cmd::filter(&a.filter)?;
    let list: Vec<_> = all.into_iter().filter(|s| f.matches(&s.snapshot)).collect();
    if g.json {
        output::json(&list)?;
        return Ok(crate::exit::OK);
    }
    println!("{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  paths", "ID", "time", "host", "tags", "size", "added");
    let source_of =
        |sn: &lifeboat_format::Snapshot| sn.source.as_ref().map(|s| format!("[{}] ", s.name)).unwrap_or_default();
    for s in &list {
        let sn = &s.snapshot;
        let (size, added) = sn
            .summary
            .as_ref()
            .map(|x| (output::size(x.total_bytes_processed), output::size(x.data_added_packed)))
            .unwrap_or_default();
        println!(
            "{:<8}  {:<19}  {:<12}  {:<10}  {:>10}  {:>10}  {}{}",
            s.id.short(),
            sn.time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            sn.hostname,
            sn.tags.join(","),
            size,
            added,
            source_of(sn),
            sn.paths.join(", ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(crate::exit::OK)
}
