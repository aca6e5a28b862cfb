//! Key management: list, add, remove and change passwords of key files.

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_crypto::KdfParams;
use lifeboat_format::KeyFile;

use crate::repo::make_key_file;
use crate::{RepoError, Repository, Result};

/// A key file as listed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    /// Key file name (id).
    pub id: String,
    /// Whether this key opened the repository.
    pub current: bool,
    /// Who added it.
    pub username: String,
    /// Where.
    pub hostname: String,
    /// When.
    pub created: DateTime<Utc>,
}

/// List key files.
pub fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for (name, _) in repo.backend().list(FileType::Key)? {
        let data = repo.backend().load(FileType::Key, &name)?;
        let f: KeyFile =
            lifeboat_format::parse_json("key file", &data).map_err(|e| RepoError::corrupt(format!("key {name}"), e))?;
        out.push(KeyInfo {
            current: name == repo.key_name(),
            id: name,
            username: f.username,
            hostname: f.hostname,
            created: f.created,
        });
    }
    out.sort_by_key(|k| k.created);
    Ok(out)
}

/// Add a key for `password`; returns its id.
pub fn add(repo: &Repository, password: &[u8], kdf: KdfParams) -> Result<String> {
    let (name, json) = make_key_file(repo.key(), password, kdf)?;
    repo.backend().save(FileType::Key, &name, &json)?;
    Ok(name)
}

/// Resolve a key id or unique prefix.
pub fn resolve(repo: &Repository, prefix: &str) -> Result<String> {
    let matches: Vec<String> =
        repo.backend().list(FileType::Key)?.into_iter().map(|(n, _)| n).filter(|n| n.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RepoError::Invalid(format!("no key matches {prefix:?}"))),
        _ => Err(RepoError::Invalid(format!("key prefix {prefix:?} is ambiguous"))),
    }
}

/// Remove a key. Refuses the key in use (so nobody locks themselves out by accident).
pub fn remove(repo: &Repository, id: &str) -> Result<String> {
    let name = resolve(repo, id)?;
    if name == repo.key_name() {
        return Err(RepoError::Invalid(
            "refusing to remove the key currently in use; open with another key first".into(),
        ));
    }
    repo.backend().remove(FileType::Key, &name)?;
    Ok(name)
}

/// Whether key file `name`, opened with `password`, yields this repository's master key.
pub fn proves(repo: &Repository, name: &str, password: &[u8]) -> Result<bool> {
    let data = repo.backend().load(FileType::Key, name)?;
    let Some(key) = crate::repo::open_key_file(&data, name, password)? else { return Ok(false) };
    let mine = repo.key();
    Ok(key.encrypt_part() == mine.encrypt_part() && key.mac_k() == mine.mac_k() && key.mac_r() == mine.mac_r())
}

/// Rotate the key in use: add a key for `new_password`, prove that it opens this repository's
/// master key (read back from storage, not from memory), then remove the old key. Returns
/// (new key id, removed key id). If the proof fails the new key is removed and the old one kept.
pub fn rotate(repo: &Repository, new_password: &[u8], kdf: KdfParams) -> Result<(String, String)> {
    let new = add(repo, new_password, kdf)?;
    if !proves(repo, &new, new_password)? {
        let _ = repo.backend().remove(FileType::Key, &new);
        return Err(RepoError::Invalid(format!(
            "the new key {} did not open the repository; the old key was kept",
            &new[..8]
        )));
    }
    let old = repo.key_name().to_string();
    repo.backend().remove(FileType::Key, &old)?;
    Ok((new, old))
}

/// Change the password of the current key (a [`rotate`]); returns the new key id.
pub fn passwd(repo: &Repository, new_password: &[u8], kdf: KdfParams) -> Result<String> {
    rotate(repo, new_password, kdf).map(|(new, _)| new)
}
