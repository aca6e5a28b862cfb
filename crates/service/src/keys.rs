//! The repository's keys (passwords): list, add, remove, rotate, re-encrypt under a new master
//! key, and stale locks. Every change goes to the audit log.

use std::path::PathBuf;

use lifeboat_crypto::KdfParams;
use lifeboat_repository::checker::{self, CheckOptions};
use lifeboat_repository::copy::CopyOptions;
use lifeboat_repository::{keys, lock, snapshots, InitOptions, Repository};

use crate::error::{Result, ServiceError};
use crate::progress::Observer;
use crate::retention::audit;
use crate::session::{self, Session};

/// Where a new password comes from.
#[derive(Clone, Debug, Default)]
pub struct NewPassword {
    /// A file holding it (first line).
    pub file: Option<PathBuf>,
}

impl NewPassword {
    /// The new password: the file, else `LIFEBOAT_NEW_PASSWORD`, else the prompt (asked twice).
    pub fn get(&self, session: &Session) -> Result<Vec<u8>> {
        if let Some(f) = &self.file {
            let text = std::fs::read(f).map_err(|e| ServiceError::io(format!("cannot read {}", f.display()), e))?;
            return Ok(text.split(|b| *b == b'\n').next().unwrap_or_default().to_vec());
        }
        if let Some(p) = std::env::var_os("LIFEBOAT_NEW_PASSWORD").filter(|p| !p.is_empty()) {
            return Ok(p.into_encoded_bytes());
        }
        if session.prompt.is_none() {
            return Err(ServiceError::msg(
                "no new password: set LIFEBOAT_NEW_PASSWORD or --new-password-file (or run on a terminal to be asked)",
            ));
        }
        session.ask("new password", true)
    }
}

/// `key list`.
pub fn list(session: &Session) -> Result<Vec<keys::KeyInfo>> {
    Ok(keys::list(&session.open()?)?)
}

/// `key add`: returns the new key's id. `kdf_n` sets scrypt's N (default 32768); below the
/// default only for a password of at least 32 characters (a random secret, which stretching
/// does not make stronger).
pub fn add(session: &Session, new: &NewPassword, kdf_n: Option<u32>, observer: &Observer) -> Result<String> {
    let mut kdf = KdfParams::default_restic();
    if let Some(n) = kdf_n {
        if !(1024..=1 << 20).contains(&n) || !n.is_power_of_two() {
            return Err(ServiceError::usage(format!("--kdf-n {n}: a power of two from 1024 to 1048576")));
        }
        kdf.n = n;
    }
    let repo = session.open()?;
    let pw = new.get(session)?;
    if kdf.n < KdfParams::default_restic().n && pw.len() < 32 {
        return Err(ServiceError::usage(format!(
            "--kdf-n {} is for a random password of 32 characters or more (this one has {}): \
             head -c 32 /dev/urandom | base64 > archiver.key",
            kdf.n,
            pw.len()
        )));
    }
    let _lock = session.lock(&repo, true)?;
    let id = keys::add(&repo, &pw, kdf)?;
    audit(&repo, "key add", serde_json::json!({ "key": id, "by_key": repo.key_name() }), observer);
    Ok(id)
}

/// `key remove ID`: returns the removed key's id.
pub fn remove(session: &Session, id: &str, observer: &Observer) -> Result<String> {
    let repo = session.open()?;
    session.refuse_if_append_only(&repo, "key remove")?;
    let _lock = session.lock(&repo, true)?;
    let removed = keys::remove(&repo, id)?;
    audit(&repo, "key remove", serde_json::json!({ "key": removed, "by_key": repo.key_name() }), observer);
    Ok(removed)
}

/// `key rotate`: a new key for a new password, proved to open the repository, then the old
/// one removed; returns (new id, removed id).
pub fn rotate(session: &Session, new: &NewPassword, observer: &Observer) -> Result<(String, String)> {
    let repo = session.open()?;
    session.refuse_if_append_only(&repo, "key rotate")?;
    let pw = new.get(session)?;
    let _lock = session.lock(&repo, true)?;
    let (new_id, old) = keys::rotate(&repo, &pw, KdfParams::default_restic())?;
    audit(&repo, "key rotate", serde_json::json!({ "new_key": new_id, "removed_key": old }), observer);
    Ok((new_id, old))
}

/// What `key rotate-master` did.
#[derive(Debug)]
pub struct Reencrypted {
    /// The details recorded in both audit logs.
    pub details: serde_json::Value,
    /// Snapshots copied.
    pub snapshots: usize,
    /// Blobs copied.
    pub blobs: u64,
    /// Lifeboat objects copied.
    pub objects: usize,
    /// Where the old repository went with `swap`.
    pub retired: Option<PathBuf>,
}

impl Reencrypted {
    /// What happened, for people (`to` is the new repository's URL).
    pub fn lines(&self, to: &str) -> Vec<String> {
        let mut out = vec![format!(
            "re-encrypted {} ({} blobs, {} Lifeboat objects) under a new master key at {to}; check --read-data passed",
            crate::human::count(self.snapshots, "snapshot"),
            self.blobs,
            self.objects
        )];
        out.push(match &self.retired {
            Some(d) => format!("swapped: the old repository is now {} — delete it once you are satisfied", d.display()),
            None => format!("point the repository URL at {to} and delete the old repository once you are satisfied"),
        });
        out
    }
}

/// `key rotate-master`: copy into a fresh repository under a new master key, verify it with
/// `check --read-data`, optionally swap the directories.
pub fn rotate_master(
    session: &Session,
    to: &str,
    swap: bool,
    new: &NewPassword,
    observer: &Observer,
) -> Result<Reencrypted> {
    let repo = session.open()?;
    let backend = session::backend(to)?;
    if backend.has_config()? {
        return Err(ServiceError::msg(format!(
            "{to} already holds a repository: rotate-master needs a new, empty location"
        )));
    }
    let local_dirs = swap.then(|| swap_dirs(session, to)).transpose()?;
    let pw = new.get(session)?;
    let _lock = session.lock(&repo, true)?;
    let opts =
        InitOptions { chunker_polynomial: Some(repo.config().chunker_polynomial.clone()), ..InitOptions::default() };
    let mut fresh = Repository::init(backend, &pw, &opts)?;
    fresh.set_compression(repo.compression());
    let (all, bad) = snapshots::list(&repo)?;
    if !bad.is_empty() {
        return Err(ServiceError::msg(format!(
            "{} snapshots cannot be read; run `lifeboat check` before re-encrypting",
            bad.len()
        )));
    }
    let stats = lifeboat_repository::copy::copy(&repo, &fresh, &all, &CopyOptions::default())?;
    let objects = lifeboat_repository::copy::copy_lifeboat_objects(&repo, &fresh)?;
    // Verify the new repository from storage, with a fresh handle: every pack read back.
    let reopened = Repository::open(session::backend(to)?, &pw)?;
    let res = checker::check(&reopened, &CheckOptions { read_data: true, ..CheckOptions::default() })?;
    let (copied, _) = snapshots::list(&reopened)?;
    if !res.is_ok() || copied.len() != all.len() {
        return Err(ServiceError::msg(format!(
            "the re-encrypted repository at {to} failed verification ({} errors, {} of {} snapshots); the old one is untouched",
            res.errors.len(),
            copied.len(),
            all.len()
        )));
    }
    let details = serde_json::json!({
        "to": reopened.backend().location(), "new_key": reopened.key_name(), "snapshots": copied.len(),
        "blobs": stats.blobs_copied, "objects": objects, "old_config_id": repo.config().id, "new_config_id": reopened.config().id,
    });
    audit(&reopened, "key rotate-master", details.clone(), observer);
    audit(&repo, "key rotate-master (retired)", details.clone(), observer);
    let retired = match local_dirs {
        Some((old, new)) => {
            let name = old.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let retired = old.with_file_name(format!("{name}.retired-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")));
            std::fs::rename(&old, &retired)
                .map_err(|e| ServiceError::io(format!("cannot move {} aside", old.display()), e))?;
            std::fs::rename(&new, &old).map_err(|e| {
                ServiceError::io(
                    format!(
                        "moved the old repository to {} but cannot move {} into place",
                        retired.display(),
                        new.display()
                    ),
                    e,
                )
            })?;
            Some(retired)
        }
        None => None,
    };
    Ok(Reencrypted { details, snapshots: copied.len(), blobs: stats.blobs_copied, objects, retired })
}

/// For `swap`: both repositories must be local directories.
fn swap_dirs(session: &Session, to: &str) -> Result<(PathBuf, PathBuf)> {
    let local = |u: &str| session::local_path(u).ok().map(PathBuf::from);
    match (local(&session.repo_url()?), local(to)) {
        (Some(old), Some(new)) => Ok((old, new)),
        _ => Err(ServiceError::msg(
            "--swap works for local directories only; for S3, point [repository] url at the new location",
        )),
    }
}

/// `unlock`: remove stale locks (all with `all`); returns how many.
pub fn unlock(session: &Session, all: bool) -> Result<usize> {
    let repo = session.open()?;
    Ok(lock::remove_stale(&repo, all)?)
}
