//! `lifeboat copy`: snapshots into a second repository, and the copy step of `backup`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use lifeboat_repository::copy::{copy, CopyOptions, CopyStats};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{InitOptions, Repository};

use crate::args::{CopyArgs, Global};
use crate::config::{substitute, CopySection};
use crate::{context, exit, output};

/// Where to copy to: its label, URL and how to get its password.
pub struct Destination {
    /// Name for messages (the `[[copy]]` name or the URL).
    pub label: String,
    url: String,
    password: Global,
}

impl Destination {
    /// A `[[copy]]` entry of the config file.
    pub fn from_section(g: &Global, c: &CopySection) -> Result<Destination> {
        let what = format!("[[copy]] {}", c.label());
        let password = Global {
            password_command: c.password_command.as_deref().map(|p| substitute(p, &what)).transpose()?,
            password_file: c.password_file.as_deref().map(|p| substitute(p, &what)).transpose()?.map(Into::into),
            ..g.clone()
        };
        Ok(Destination { label: c.label().to_string(), url: substitute(&c.url, &what)?, password })
    }

    /// `--to NAME|URL`.
    fn from_args(g: &Global, a: &CopyArgs) -> Result<Destination> {
        if let Some(cfg) = context::config(g)? {
            if let Some(c) = cfg.copy.iter().map(|c| c.get_ref()).find(|c| c.label() == a.to) {
                return Destination::from_section(g, c);
            }
        }
        let password = Global { password_command: None, password_file: a.to_password_file.clone(), ..g.clone() };
        Ok(Destination { label: a.to.clone(), url: a.to.clone(), password })
    }

    fn password(&self) -> Result<Vec<u8>> {
        if self.password.password_command.is_some() || self.password.password_file.is_some() {
            return context::password(&self.password, false);
        }
        if let Some(p) = std::env::var_os("LIFEBOAT_TO_PASSWORD") {
            return Ok(p.into_encoded_bytes());
        }
        context::prompt(&format!("password of {}", self.label), false)
    }

    /// Open the destination repository, creating it (with `src`'s chunker polynomial) when
    /// `init` is set and it does not exist.
    pub fn open(&self, src: &Repository, init: bool) -> Result<Repository> {
        let backend = context::backend(&self.url)?;
        let pw = self.password().with_context(|| format!("copy destination {}", self.label))?;
        let mut repo = if backend.has_config()? {
            Repository::open(backend, &pw)?
        } else if init {
            let opts = InitOptions {
                chunker_polynomial: Some(src.config().chunker_polynomial.clone()),
                ..InitOptions::default()
            };
            Repository::init(backend, &pw, &opts)?
        } else {
            return Err(lifeboat_repository::RepoError::NotARepository { location: backend.location() })
                .context(format!("copy destination {} (use --init to create it)", self.label));
        };
        repo.set_compression(src.compression());
        Ok(repo)
    }
}

/// Copy `snaps` from `src` into `dest` under shared locks on both.
pub fn copy_to(
    g: &Global,
    src: &Repository,
    dest: &Destination,
    init: bool,
    snaps: &[SnapshotEntry],
    opts: &CopyOptions,
) -> Result<CopyStats> {
    let dst = dest.open(src, init)?;
    // --as-of is about the source: the destination is written, so it is locked as always.
    let _lock = context::lock(&Global { as_of: None, ..g.clone() }, &dst, false)?;
    copy(src, &dst, snaps, opts).with_context(|| format!("copy to {}", dest.label))
}

/// `lifeboat copy`.
pub fn run(g: &Global, a: &CopyArgs, interrupt: Arc<AtomicBool>) -> Result<i32> {
    let src = context::open(g)?;
    let _lock = context::lock(g, &src, false)?;
    let dest = Destination::from_args(g, a)?;
    let filter = crate::cmd::filter(&a.filter)?;
    let snaps: Vec<SnapshotEntry> = if a.snapshots.is_empty() {
        let (all, bad) = snapshots::list(&src)?;
        for (name, e) in &bad {
            eprintln!("lifeboat: skipping unreadable snapshot {}: {e}", name.get(..8).unwrap_or(name));
        }
        all.into_iter().filter(|s| filter.matches(&s.snapshot)).collect()
    } else {
        a.snapshots.iter().map(|r| snapshots::find(&src, r, &filter)).collect::<Result<_, _>>()?
    };
    if snaps.is_empty() {
        bail!("no snapshots match: nothing to copy");
    }
    let opts = CopyOptions { dry_run: a.dry_run, interrupt: Some(interrupt) };
    let stats = copy_to(g, &src, &dest, a.init, &snaps, &opts)?;
    if g.json {
        output::json(&stats)?;
    } else if !g.quiet {
        print(&dest.label, &stats, a.dry_run);
    }
    Ok(exit::OK)
}

/// The human summary of a copy.
pub fn print(label: &str, s: &CopyStats, dry_run: bool) {
    for c in &s.snapshots {
        let what = match (c.skipped, c.copied_id) {
            (true, _) => "already there".to_string(),
            (false, Some(id)) => {
                format!("copied as {} ({} blobs, {})", id.short(), c.blobs_copied, output::size(c.bytes_copied))
            }
            (false, None) => format!("would copy {} blobs, {}", c.blobs_copied, output::size(c.bytes_copied)),
        };
        println!("  {}  {what}", c.source_id.short());
    }
    let copied = s.snapshots.iter().filter(|c| !c.skipped).count();
    let verb = if dry_run { "would copy" } else { "copied" };
    println!(
        "{label}: {verb} {copied} of {} snapshots ({} blobs, {} new data, {} stored)",
        s.snapshots.len(),
        s.blobs_copied,
        output::size(s.bytes_copied),
        output::size(s.bytes_stored)
    );
}
