//! `lifeboat init`.

use anyhow::Result;
use lifeboat_service::inventory;

use super::Ctx;
use crate::args::InitArgs;

pub fn run(c: &Ctx, a: &InitArgs) -> Result<i32> {
    let repo = inventory::init(&c.session, a.kdf_n)?;
    if c.g.json {
        crate::output::json(&serde_json::json!({
            "id": repo.config().id,
            "location": repo.backend().location(),
            "version": repo.config().version,
        }))?;
    } else if !c.g.quiet {
        println!("created repository {} at {}", &repo.config().id[..10], repo.backend().location());
        println!("keep the password safe: without it the backups cannot be read");
    }
    Ok(crate::exit::OK)
}
