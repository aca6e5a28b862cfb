//! `lifeboat key …` and `lifeboat unlock`.

use anyhow::Result;
use chrono::Local;
use lifeboat_crypto::KdfParams;
use lifeboat_repository::checker::{self, CheckOptions};
use lifeboat_repository::copy::CopyOptions;
use lifeboat_repository::{keys, lock, snapshots, InitOptions, Repository};

use crate::args::{Global, KeyCommand, NewPassword, RotateMasterArgs, UnlockArgs};
use crate::{context, exit, output};

fn new_password(a: &NewPassword) -> Result<Vec<u8>> {
    if let Some(f) = &a.new_password_file {
        let text = std::fs::read(f).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?;
        return Ok(text.split(|b| *b == b'\n').next().unwrap_or_default().to_vec());
    }
    if let Some(p) = std::env::var_os("LIFEBOAT_NEW_PASSWORD") {
        return Ok(p.into_encoded_bytes());
    }
    context::prompt("new password", true)
}

pub fn run(g: &Global, k: KeyCommand) -> Result<i32> {
    let repo = context::open(g)?;
    match k {
        KeyCommand::List => {
            let list = keys::list(&repo)?;
            if g.json {
                output::json(&list)?;
            } else {
                println!(" {:<8}  {:<12}  {:<16}  created", "ID", "user", "host");
                for key in list {
                    println!(
                        "{}{:<8}  {:<12}  {:<16}  {}",
                        if key.current { "*" } else { " " },
                        &key.id[..8.min(key.id.len())],
                        key.username,
                        key.hostname,
                        key.created.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
        }
        KeyCommand::Add(a) => {
            let pw = new_password(&a)?;
            let _lock = context::lock(g, &repo, true)?;
            let id = keys::add(&repo, &pw, KdfParams::default_restic())?;
            audit(&repo, "key add", serde_json::json!({ "key": id, "by_key": repo.key_name() }));
            report(g, "added", &id)?;
        }
        KeyCommand::Remove { id } => {
            context::refuse_if_append_only(g, &repo, "key remove")?;
            let _lock = context::lock(g, &repo, true)?;
            let removed = keys::remove(&repo, &id)?;
            audit(&repo, "key remove", serde_json::json!({ "key": removed, "by_key": repo.key_name() }));
            report(g, "removed", &removed)?;
        }
        KeyCommand::Passwd(a) | KeyCommand::Rotate(a) => {
            context::refuse_if_append_only(g, &repo, "key rotate")?;
            let pw = new_password(&a)?;
            let _lock = context::lock(g, &repo, true)?;
            let (new, old) = keys::rotate(&repo, &pw, KdfParams::default_restic())?;
            audit(&repo, "key rotate", serde_json::json!({ "new_key": new, "removed_key": old }));
            if g.json {
                output::json(&serde_json::json!({ "action": "rotated", "id": new, "removed": old, "proved": true }))?;
            } else if !g.quiet {
                println!("new key {} opens the repository; removed key {}", &new[..8], &old[..8.min(old.len())]);
            }
        }
        KeyCommand::RotateMaster(a) => return rotate_master(g, &repo, &a),
    }
    Ok(exit::OK)
}

/// Record an audit event; a failure to record is reported but does not undo the operation.
pub fn audit(repo: &Repository, action: &str, details: serde_json::Value) {
    if let Err(e) = lifeboat_ops::audit::record(repo, &lifeboat_ops::audit::Event::new(action, details)) {
        eprintln!("lifeboat: warning: could not record {action:?} in the audit log: {e}");
    }
}

/// `key rotate-master`: copy into a fresh repository under a new master key, verify, swap.
fn rotate_master(g: &Global, repo: &Repository, a: &RotateMasterArgs) -> Result<i32> {
    let backend = context::backend(&a.to)?;
    if backend.has_config()? {
        anyhow::bail!("{} already holds a repository: rotate-master needs a new, empty location", a.to);
    }
    let local_dirs = (a.swap).then(|| swap_dirs(g, &a.to)).transpose()?;
    let pw = new_password(&a.new)?;
    let _lock = context::lock(g, repo, true)?;
    let opts =
        InitOptions { chunker_polynomial: Some(repo.config().chunker_polynomial.clone()), ..InitOptions::default() };
    let mut fresh = Repository::init(backend, &pw, &opts)?;
    fresh.set_compression(repo.compression());
    let (all, bad) = snapshots::list(repo)?;
    if !bad.is_empty() {
        anyhow::bail!("{} snapshots cannot be read; run `lifeboat check` before re-encrypting", bad.len());
    }
    let stats = lifeboat_repository::copy::copy(repo, &fresh, &all, &CopyOptions::default())?;
    let objects = lifeboat_repository::copy::copy_lifeboat_objects(repo, &fresh)?;
    // Verify the new repository from storage, with a fresh handle: every pack read back.
    let reopened = Repository::open(context::backend(&a.to)?, &pw)?;
    let res = checker::check(&reopened, &CheckOptions { read_data: true, ..CheckOptions::default() })?;
    let (copied, _) = snapshots::list(&reopened)?;
    if !res.is_ok() || copied.len() != all.len() {
        anyhow::bail!(
            "the re-encrypted repository at {} failed verification ({} errors, {} of {} snapshots); the old one is untouched",
            a.to,
            res.errors.len(),
            copied.len(),
            all.len()
        );
    }
    let details = serde_json::json!({
        "to": reopened.backend().location(), "new_key": reopened.key_name(), "snapshots": copied.len(),
        "blobs": stats.blobs_copied, "objects": objects, "old_config_id": repo.config().id, "new_config_id": reopened.config().id,
    });
    audit(&reopened, "key rotate-master", details.clone());
    audit(repo, "key rotate-master (retired)", details.clone());
    let retired = match local_dirs {
        Some((old, new)) => {
            let retired = old.with_file_name(format!(
                "{}.retired-{}",
                old.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                chrono::Utc::now().format("%Y%m%dT%H%M%S")
            ));
            std::fs::rename(&old, &retired).map_err(|e| anyhow::anyhow!("cannot move {} aside: {e}", old.display()))?;
            std::fs::rename(&new, &old).map_err(|e| {
                anyhow::anyhow!(
                    "moved the old repository to {} but cannot move {} into place: {e}",
                    retired.display(),
                    new.display()
                )
            })?;
            Some(retired)
        }
        None => None,
    };
    if g.json {
        output::json(&serde_json::json!({ "verified": true, "details": details, "retired": retired }))?;
    } else if !g.quiet {
        println!(
            "re-encrypted {} snapshots ({} blobs, {} Lifeboat objects) under a new master key at {}; check --read-data passed",
            copied.len(),
            stats.blobs_copied,
            objects,
            a.to
        );
        match retired {
            Some(r) => {
                println!("swapped: the old repository is now {} — delete it once you are satisfied", r.display())
            }
            None => {
                println!("point the repository URL at {} and delete the old repository once you are satisfied", a.to)
            }
        }
    }
    Ok(exit::OK)
}

/// For `--swap`: both repositories must be local directories on the same file system.
fn swap_dirs(g: &Global, to: &str) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let local = |u: &str| -> Option<std::path::PathBuf> {
        let p = u.strip_prefix("local:").or_else(|| u.strip_prefix("file://")).unwrap_or(u);
        (!p.contains("://") && !p.starts_with("s3:")).then(|| std::path::PathBuf::from(p))
    };
    match (local(&context::repo_url(g)?), local(to)) {
        (Some(old), Some(new)) => Ok((old, new)),
        _ => {
            anyhow::bail!("--swap works for local directories only; for S3, point [repository] url at the new location")
        }
    }
}

fn report(g: &Global, what: &str, id: &str) -> Result<()> {
    if g.json {
        output::json(&serde_json::json!({ "action": what, "id": id }))
    } else {
        if !g.quiet {
            println!("{what} key {}", &id[..8.min(id.len())]);
        }
        Ok(())
    }
}

pub fn unlock(g: &Global, a: &UnlockArgs) -> Result<i32> {
    let repo = context::open(g)?;
    let n = lock::remove_stale(&repo, a.remove_all)?;
    if g.json {
        output::json(&serde_json::json!({ "removed": n }))?;
    } else if !g.quiet {
        println!("removed {n} lock(s)");
    }
    Ok(exit::OK)
}
