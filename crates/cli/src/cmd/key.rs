//! `lifeboat key …` and `lifeboat unlock`.

use anyhow::Result;
use chrono::Local;
use lifeboat_crypto::KdfParams;
use lifeboat_repository::{keys, lock};

use crate::args::{Global, KeyCommand, NewPassword, UnlockArgs};
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
            report(g, "added", &id)?;
        }
        KeyCommand::Remove { id } => {
            context::refuse_if_append_only(g, &repo, "key remove")?;
            let _lock = context::lock(g, &repo, true)?;
            let removed = keys::remove(&repo, &id)?;
            report(g, "removed", &removed)?;
        }
        KeyCommand::Passwd(a) => {
            context::refuse_if_append_only(g, &repo, "key passwd")?;
            let pw = new_password(&a)?;
            let _lock = context::lock(g, &repo, true)?;
            let id = keys::passwd(&repo, &pw, KdfParams::default_restic())?;
            report(g, "changed password; new key", &id)?;
        }
    }
    Ok(exit::OK)
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
