//! `lifeboat demo`: init a local repository, back up a directory twice, restore it, verify the
//! restore byte for byte and run a full check — the whole job on an embedded default, through
//! the same service calls as the real commands.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use lifeboat_service::backup::{self, PathsRequest};
use lifeboat_service::kinds::RestoreRequest;
use lifeboat_service::restore::{self, Decision};
use lifeboat_service::session::{PasswordSource, Session};
use lifeboat_service::{inventory, progress, FilterSpec};

use super::Ctx;
use crate::args::DemoArgs;
use crate::{exit, output};

const PASSWORD: &str = "lifeboat-demo-password";

fn default_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if here.join("crates").is_dir() {
        return here.join("crates");
    }
    PathBuf::from("/usr/share/doc")
}

pub fn run(c: &Ctx, a: &DemoArgs) -> Result<i32> {
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    let dir = std::path::absolute(&dir)?.components().collect::<PathBuf>();
    // `--repo` (or LIFEBOAT_REPOSITORY) is honoured; else ./lifeboat-demo/repo (see --workdir).
    let repo_url = c.g.repo.clone().unwrap_or_else(|| a.workdir.join("repo").display().to_string());
    let restore_dir = a.workdir.join("restore");
    let _ = std::fs::remove_dir_all(&restore_dir);
    let session = Session {
        repo: Some(repo_url),
        password: PasswordSource { value: Some(PASSWORD.as_bytes().to_vec()), ..Default::default() },
        compression: c.g.compression.clone(),
        ..Session::default()
    };
    let say = |s: String| {
        if !c.g.quiet {
            println!("{s}");
        }
    };
    if !session.backend()?.has_config()? {
        inventory::init(&session, 32768)?;
    }
    say(format!("repository: {} (password: {PASSWORD})", session.backend()?.location()));
    let quiet = progress::ignore();
    for round in 1..=2 {
        let req = PathsRequest { paths: vec![dir.clone()], tags: vec!["demo".into()], ..Default::default() };
        let stats = backup::paths(&session, &req, &c.interrupt, &quiet)?;
        let s = &stats.summary;
        say(format!(
            "backup {round}: snapshot {} — {} ({}), {} new, {} unmodified, {} stored, {}",
            stats.snapshot_id.short(),
            output::count(s.total_files_processed as usize, "file"),
            output::size(s.total_bytes_processed),
            s.files_new,
            s.files_unmodified,
            output::size(s.data_added_packed),
            output::duration(stats.duration)
        ));
    }
    let spec = FilterSpec { tags: vec!["demo".into()], paths: vec![dir.display().to_string()], ..Default::default() };
    let req = RestoreRequest { target: restore_dir.clone(), verify: true, ..Default::default() };
    let done = restore::restore(&session, "latest", &spec, &req, &mut |_| Ok(Decision::Go), &c.interrupt, &quiet)?;
    let restored = done.context("the restore did not run")?;
    let files = restored.json["stats"]["files"].as_u64().unwrap_or(0);
    let compared = inventory::compare_trees(&dir, &restore_dir.join(dir.strip_prefix("/").unwrap_or(&dir)))?;
    say(format!(
        "restore: {} to {}, {compared} compared byte for byte with the original",
        output::count(files as usize, "file"),
        restore_dir.display()
    ));
    let res =
        inventory::check(&session, Some(100), &c.interrupt, Arc::new(AtomicU64::new(0)), &mut |_| {}, quiet.as_ref())?;
    say(format!(
        "check --read-data: {}, {} read, {}",
        output::count(res.packs, "pack"),
        output::size(res.bytes_read),
        output::count(res.errors.len(), "error")
    ));
    if !res.is_ok() {
        bail!("check found damage: {}", res.errors[0]);
    }
    say("demo passed: backups restore byte-identically and the repository checks clean".into());
    Ok(exit::OK)
}
