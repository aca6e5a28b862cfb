//! `lifeboat demo`: init a local repository, back up a directory twice, restore it, verify the
//! restore byte for byte and run a full check — the whole job on an embedded default.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use lifeboat_backend::Backend;
use lifeboat_repository::archiver::{backup, BackupOptions};
use lifeboat_repository::checker::{check, CheckOptions};
use lifeboat_repository::restorer::{restore, RestoreOptions};
use lifeboat_repository::{InitOptions, Repository};
use lifeboat_sources::files::{walk, FilesOptions};

use crate::args::{DemoArgs, Global};
use crate::{context, exit, output};

fn default_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if here.join("crates").is_dir() {
        return here.join("crates");
    }
    PathBuf::from("/usr/share/doc")
}

fn compare(a: &Path, b: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(a).with_context(|| a.display().to_string())? {
        let entry = entry?;
        let (pa, pb) = (entry.path(), b.join(entry.file_name()));
        let ft = entry.file_type()?;
        if ft.is_dir() {
            n += compare(&pa, &pb)?;
        } else if ft.is_file() {
            if std::fs::read(&pa)? != std::fs::read(&pb).with_context(|| format!("{} missing", pb.display()))? {
                bail!("{} differs after restore", pa.display());
            }
            n += 1;
        }
    }
    Ok(n)
}

pub fn run(g: &Global, a: &DemoArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let dir = a.dir.clone().unwrap_or_else(default_dir);
    let dir = std::path::absolute(&dir)?.components().collect::<PathBuf>();
    let repo_dir = a.workdir.join("repo");
    let restore_dir = a.workdir.join("restore");
    let _ = std::fs::remove_dir_all(&restore_dir);
    let backend = context::backend(&repo_dir.to_string_lossy())?;
    let password = b"lifeboat-demo-password";
    let repo = if backend.has_config()? {
        Repository::open(backend, password)?
    } else {
        Repository::init(backend, password, &InitOptions::default())?
    };
    let say = |s: String| {
        if !g.quiet {
            println!("{s}");
        }
    };
    say(format!("repository: {} (password: {})", repo.backend().location(), String::from_utf8_lossy(password)));
    let mut last = None;
    for round in 1..=2 {
        let (paths, walker) = walk(&FilesOptions { paths: vec![dir.clone()], ..Default::default() })?;
        let parent =
            lifeboat_repository::snapshots::find_parent(&repo, &lifeboat_repository::util::hostname(), &paths, None)?;
        let opts = BackupOptions {
            paths,
            parent,
            tags: vec!["demo".into()],
            interrupt: Some(interrupt.clone()),
            ..Default::default()
        };
        let mut r = Repository::open(repo.backend().clone(), password)?;
        r.set_compression(context::compression(g)?);
        let stats = backup(&r, walker, &opts)?;
        let s = &stats.summary;
        say(format!(
            "backup {round}: snapshot {} — {} files ({}), {} new, {} unmodified, {} stored, {}",
            stats.snapshot_id.short(),
            s.total_files_processed,
            output::size(s.total_bytes_processed),
            s.files_new,
            s.files_unmodified,
            output::size(s.data_added_packed),
            output::duration(stats.duration)
        ));
        last = Some(stats.snapshot);
    }
    let snap = last.context("no snapshot")?;
    let repo = Repository::open(repo.backend().clone(), password)?;
    let rs = restore(&repo, &snap.tree, &restore_dir, &RestoreOptions { verify: true, ..Default::default() })?;
    let compared = compare(&dir, &restore_dir.join(dir.strip_prefix("/").unwrap_or(&dir)))?;
    say(format!(
        "restore: {} files to {}, {} compared byte for byte with the original",
        rs.files,
        restore_dir.display(),
        compared
    ));
    let res = check(&repo, &CheckOptions { read_data: true, ..Default::default() })?;
    say(format!(
        "check --read-data: {} packs, {} read, {} errors",
        res.packs,
        output::size(res.bytes_read),
        res.errors.len()
    ));
    if !res.is_ok() {
        bail!("check found damage: {}", res.errors[0]);
    }
    say("demo passed: backups restore byte-identically and the repository checks clean".into());
    Ok(exit::OK)
}
