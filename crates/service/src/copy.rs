//! `copy`: snapshots into a second repository without re-chunking, and the copy step after a
//! backup of config sources.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use lifeboat_ops::records::{RunKind, RunOutcome};
use lifeboat_repository::copy::{copy, CopyOptions, CopyStats};
use lifeboat_repository::snapshots::{self, SnapshotEntry};
use lifeboat_repository::{InitOptions, Repository};

use crate::config::{substitute, CopySection};
use crate::error::{Context as _, Result, ServiceError};
use crate::filter::{find_snapshot, FilterSpec};
use crate::progress::{Event, Observer};
use crate::session::{self, PasswordSource, Session};

/// Where to copy to: its label, URL and how to get its password.
pub struct Destination {
    /// Name for messages (the `[[copy]]` name or the URL).
    pub label: String,
    url: String,
    password: PasswordSource,
}

impl Destination {
    /// A `[[copy]]` entry of the config file.
    pub fn from_section(_session: &Session, c: &CopySection) -> Result<Destination> {
        let what = format!("[[copy]] {}", c.label());
        let password = PasswordSource {
            command: c.password_command.as_deref().map(|p| substitute(p, &what)).transpose()?,
            file: c.password_file.as_deref().map(|p| substitute(p, &what)).transpose()?.map(Into::into),
            value: None,
        };
        Ok(Destination { label: c.label().to_string(), url: substitute(&c.url, &what)?, password })
    }

    /// `--to NAME|URL`: a `[[copy]]` entry by name, else a URL whose password comes from
    /// `password_file`, `LIFEBOAT_TO_PASSWORD` or a prompt.
    pub fn named(session: &Session, to: &str, password_file: Option<PathBuf>) -> Result<Destination> {
        if let Some(cfg) = session.config()? {
            if let Some(c) = cfg.copies.iter().find(|c| c.label() == to) {
                return Destination::from_section(session, c);
            }
        }
        let value = match &password_file {
            None => std::env::var_os("LIFEBOAT_TO_PASSWORD").filter(|v| !v.is_empty()).map(|v| v.into_encoded_bytes()),
            Some(_) => None,
        };
        Ok(Destination {
            label: to.to_string(),
            url: to.to_string(),
            password: PasswordSource { command: None, file: password_file, value },
        })
    }

    fn password(&self, session: &Session) -> Result<Vec<u8>> {
        let p = &self.password;
        if p.command.is_some() || p.file.is_some() || p.value.is_some() {
            // Only the destination's own password, never the source repository's.
            let own = Session { prompt: None, ..session.with_password(p.clone()) };
            return own.password(false);
        }
        if session.prompt.is_none() {
            return Err(ServiceError::msg(format!(
                "no password for {}: set LIFEBOAT_TO_PASSWORD or --to-password-file (or password_file in its [[copy]] entry)",
                self.label
            )));
        }
        session.ask(&format!("password of {}", self.label), false)
    }

    /// Open the destination repository, creating it (with `src`'s chunker polynomial) when
    /// `init` is set and it does not exist.
    pub fn open(&self, session: &Session, src: &Repository, init: bool) -> Result<Repository> {
        let backend = session::backend(&self.url)?;
        let exists = backend.has_config()?;
        if !exists && !init {
            return Err(ServiceError::NoRepository(format!(
                "copy destination {}: no repository at {}; add --init to create it",
                self.label,
                backend.location()
            )));
        }
        let pw = self.password(session).with_context(|| format!("copy destination {}", self.label))?;
        let mut repo = if exists {
            Repository::open(backend, &pw)?
        } else {
            let opts = InitOptions {
                chunker_polynomial: Some(src.config().chunker_polynomial.clone()),
                ..InitOptions::default()
            };
            Repository::init(backend, &pw, &opts)?
        };
        repo.set_compression(src.compression());
        Ok(repo)
    }
}

/// Copy `snaps` from `src` into `dest` under shared locks on both.
pub fn copy_to(
    session: &Session,
    src: &Repository,
    dest: &Destination,
    init: bool,
    snaps: &[SnapshotEntry],
    opts: &CopyOptions,
    observer: &Observer,
) -> Result<CopyStats> {
    let dst = dest.open(session, src, init)?;
    // --as-of is about the source: the destination is written, so it is locked as always.
    let _lock = Session { as_of: None, ..session.clone() }.lock(&dst, false)?;
    let stats = copy(src, &dst, snaps, opts).with_context(|| format!("copy to {}", dest.label))?;
    if !opts.dry_run {
        // In both audit logs: what left this repository, and what arrived in the other.
        let ids: Vec<String> = snaps.iter().map(|s| s.id.to_hex()).collect();
        let copied = stats.snapshots.iter().filter(|s| !s.skipped).count();
        let out = serde_json::json!({ "to": dest.label, "snapshots": ids, "copied": copied });
        crate::audit::record(src, Some(session), lifeboat_ops::audit::Event::new("copy", out), observer);
        let into = serde_json::json!({ "from": src.config().id, "snapshots": ids, "copied": copied });
        crate::audit::record(&dst, None, lifeboat_ops::audit::Event::new("copy (received)", into), observer);
    }
    Ok(stats)
}

/// What `copy` was asked.
#[derive(Clone, Debug, Default)]
pub struct CopyRequest {
    /// `[[copy]]` name or repository URL.
    pub to: String,
    /// Password file of a destination given by URL.
    pub to_password_file: Option<PathBuf>,
    /// Snapshots (default: every one the filter passes).
    pub snapshots: Vec<String>,
    /// Which snapshots.
    pub filter: FilterSpec,
    /// Create the destination if missing.
    pub init: bool,
    /// Only report.
    pub dry_run: bool,
}

/// `copy`: returns the destination's label and what was copied.
pub fn run(
    session: &Session,
    req: &CopyRequest,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<(String, CopyStats)> {
    let src = session.open()?;
    let _lock = session.lock(&src, false)?;
    let dest = Destination::named(session, &req.to, req.to_password_file.clone())?;
    let snaps: Vec<SnapshotEntry> = if req.snapshots.is_empty() {
        let filter = req.filter.filter()?;
        let (all, bad) = snapshots::list(&src)?;
        for (name, e) in &bad {
            observer(&Event::Warning {
                message: format!("skipping unreadable snapshot {}: {e}", name.get(..8).unwrap_or(name)),
            });
        }
        all.into_iter().filter(|s| filter.matches(&s.snapshot)).collect()
    } else {
        req.snapshots.iter().map(|r| find_snapshot(&src, r, &req.filter)).collect::<Result<_>>()?
    };
    if snaps.is_empty() {
        return Err(ServiceError::msg("no snapshots match: nothing to copy"));
    }
    let opts = CopyOptions { dry_run: req.dry_run, interrupt: Some(interrupt.clone()) };
    if req.dry_run {
        return Ok((dest.label.clone(), copy_to(session, &src, &dest, req.init, &snaps, &opts, observer.as_ref())?));
    }
    let mut run = crate::runs::begin(&src, session, RunKind::Copy, None, observer.as_ref());
    run.say("info", format!("to {}", dest.label));
    let result = copy_to(session, &src, &dest, req.init, &snaps, &opts, observer.as_ref());
    match &result {
        Ok(stats) => {
            run.bytes = Some(stats.bytes_stored);
            crate::runs::end(&src, run, RunOutcome::Ok, None, observer.as_ref());
        }
        Err(e) => {
            crate::runs::end(&src, run, RunOutcome::Failed, Some(crate::session::one_line(e)), observer.as_ref());
        }
    }
    Ok((dest.label, result?))
}
