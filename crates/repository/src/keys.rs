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

/// Change the password of the current key: add a new key, then remove the old one.
pub fn passwd(repo: &Repository, new_password: &[u8], kdf: KdfParams) -> Result<String> {
    let new = add(repo, new_password, kdf)?;
    repo.backend().remove(FileType::Key, repo.key_name())?;
    Ok(new)
}
