//! Restoring a redis snapshot taken in RDB mode: the dump becomes a file for a *stopped* server
//! (`--target /var/lib/redis/dump.rdb`), replaced atomically, optionally verified first by a
//! throwaway `redis-server` that loads it.

use anyhow::Result;
use lifeboat_repository::{snapshots, Repository};
use lifeboat_sources::redis;

use crate::args::{Global, RestoreArgs};
use crate::{exit, output};

/// Restore `snap` (an RDB-mode snapshot of source `source`) to the file `--target`.
pub fn restore(
    g: &Global,
    a: &RestoreArgs,
    repo: &Repository,
    snap: &snapshots::SnapshotEntry,
    source: &str,
    manifest: &redis::Manifest,
) -> Result<i32> {
    let rdb = manifest
        .rdb
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("snapshot {} has no RDB description in its manifest", snap.id.short()))?;
    let target = a.target.to_string_lossy();
    if target.starts_with("redis://") || target.parse::<u32>().is_ok() {
        anyhow::bail!(
            "snapshot {} is an RDB dump: restore it to the file of a stopped server (--target \
             /var/lib/redis/dump.rdb) and start the server on it; restores into a running server \
             need mode = \"logical\"",
            snap.id.short()
        );
    }
    let node = super::artifact(repo, snap, &rdb.file)?;
    let keys: u64 = manifest.keys.values().sum();
    let contents = format!("{keys} keys in {} databases", manifest.keys.len());
    let mut plan = crate::cmd::restore::plan::file(snap, &a.target, &rdb.file, node.size, &contents, a.overwrite);
    plan.detail("mode", "rdb").detail("keys", &manifest.keys);
    plan.verify =
        a.verify.then(|| "a throwaway redis-server loads the file and counts its keys per database".to_string());
    if let Some(code) = crate::cmd::restore::guard::gate(g, a, repo, plan)? {
        return Ok(code);
    }
    let started = std::time::Instant::now();
    let r = redis::restore_rdb(repo, &node, manifest, &a.target, a.overwrite, a.verify)?;
    if g.json {
        output::json(&serde_json::json!({
            "snapshot": snap.id, "source": source, "target": a.target, "bytes": r.bytes, "checksum": r.checksum,
            "keys": r.keys, "verification": r.verification, "duration_seconds": started.elapsed().as_secs_f64(),
        }))?;
    } else if !g.quiet {
        let keys: u64 = r.keys.values().sum();
        println!(
            "restored {} ({}, {keys} keys) from snapshot {} to {} in {}{}; start redis-server on it",
            rdb.file,
            output::size(r.bytes),
            snap.id.short(),
            a.target.display(),
            output::duration(started.elapsed()),
            if r.verification.is_some() { " (loaded and counted by a throwaway redis-server)" } else { "" }
        );
    }
    Ok(exit::OK)
}
