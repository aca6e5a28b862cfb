//! `lifeboat key …` and `lifeboat unlock`.

use anyhow::Result;
use chrono::Local;
use lifeboat_service::keys::{self, NewPassword};

use super::Ctx;
use crate::args::{KeyCommand, UnlockArgs};
use crate::exit;
use crate::output::{self, Progress};

fn new_password(a: &crate::args::NewPassword) -> NewPassword {
    NewPassword { file: a.new_password_file.clone() }
}

pub fn run(c: &Ctx, k: KeyCommand) -> Result<i32> {
    let progress = Progress::new(c.g);
    let o = progress.observer().as_ref();
    match k {
        KeyCommand::List => {
            let list = keys::list(&c.session)?;
            if c.g.json {
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
        KeyCommand::Add(a) => report(c, "added", &keys::add(&c.session, &new_password(&a.new), a.kdf_n, o)?)?,
        KeyCommand::Remove { id } => report(c, "removed", &keys::remove(&c.session, &id, o)?)?,
        KeyCommand::Passwd(a) | KeyCommand::Rotate(a) => {
            let (new, old) = keys::rotate(&c.session, &new_password(&a), o)?;
            if c.g.json {
                output::json(&serde_json::json!({ "action": "rotated", "id": new, "removed": old, "proved": true }))?;
            } else if !c.g.quiet {
                println!("new key {} opens the repository; removed key {}", &new[..8], &old[..8.min(old.len())]);
                println!("from now on the repository opens only with the new password: update the password file, password command or LIFEBOAT_PASSWORD that scheduled jobs use");
            }
        }
        KeyCommand::RotateMaster(a) => {
            let r = keys::rotate_master(&c.session, &a.to, a.swap, &new_password(&a.new), o)?;
            if c.g.json {
                output::json(&serde_json::json!({ "verified": true, "details": r.details, "retired": r.retired }))?;
            } else if !c.g.quiet {
                for l in r.lines(&a.to) {
                    println!("{l}");
                }
            }
        }
    }
    Ok(exit::OK)
}

fn report(c: &Ctx, what: &str, id: &str) -> Result<()> {
    if c.g.json {
        return output::json(&serde_json::json!({ "action": what, "id": id }));
    }
    if !c.g.quiet {
        println!("{what} key {}", &id[..8.min(id.len())]);
    }
    Ok(())
}

pub fn unlock(c: &Ctx, a: &UnlockArgs) -> Result<i32> {
    let n = keys::unlock(&c.session, a.remove_all)?;
    if c.g.json {
        output::json(&serde_json::json!({ "removed": n }))?;
    } else if !c.g.quiet {
        println!("removed {}", output::count(n, "lock"));
    }
    Ok(exit::OK)
}
