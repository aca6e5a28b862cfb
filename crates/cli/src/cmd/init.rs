//! `lifeboat init`.

use anyhow::Result;
use lifeboat_crypto::KdfParams;
use lifeboat_repository::{InitOptions, Repository};

use crate::args::{Global, InitArgs};
use crate::context;

pub fn run(g: &Global, a: &InitArgs) -> Result<i32> {
    let backend = context::repo_backend(g)?;
    if !a.kdf_n.is_power_of_two() || a.kdf_n < 1024 {
        anyhow::bail!("--kdf-n must be a power of two of at least 1024");
    }
    context::compression(g)?;
    let pw = context::password(g, true)?;
    let kdf = KdfParams { n: a.kdf_n, ..KdfParams::default_restic() };
    let repo = Repository::init(backend, &pw, &InitOptions { kdf, ..InitOptions::default() })?;
    if g.json {
        crate::output::json(&serde_json::json!({
            "id": repo.config().id,
            "location": repo.backend().location(),
            "version": repo.config().version,
        }))?;
    } else if !g.quiet {
        println!("created repository {} at {}", &repo.config().id[..10], repo.backend().location());
        println!("keep the password safe: without it the backups cannot be read");
    }
    Ok(crate::exit::OK)
}
