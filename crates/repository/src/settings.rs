//! Repository-wide settings that every client must honour, stored encrypted under
//! `lifeboat/settings.json` (restic ignores the `lifeboat/` prefix).
//!
//! Today the only setting is **append-only**: while it is on, Lifeboat never deletes snapshots or
//! data (forget, prune and key removal are refused). It guards against mistakes and against a
//! client that only has Lifeboat's commands; an attacker holding the storage credentials can
//! still delete objects directly — against that only server-side immutability (S3 Object Lock)
//! helps, see docs/storage.md.

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use serde::{Deserialize, Serialize};

use crate::{util, RepoError, Repository, Result};

/// Object name of the settings under `lifeboat/`.
pub const SETTINGS_NAME: &str = "settings.json";

/// The repository's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSettings {
    /// Lifeboat never deletes snapshots or data while this is set.
    #[serde(default)]
    pub append_only: bool,
    /// When the settings were last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// Host and user that changed them last (`user@host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
}

/// Load the settings (defaults when none were ever written).
pub fn load(repo: &Repository) -> Result<RepoSettings> {
    match repo.load_json::<RepoSettings>(FileType::Lifeboat, SETTINGS_NAME) {
        Ok(s) => Ok(s),
        Err(RepoError::Backend(e)) if e.is_not_found() => Ok(RepoSettings::default()),
        Err(e) => Err(e),
    }
}

/// Store new settings, stamping who changed them.
pub fn save(repo: &Repository, mut s: RepoSettings) -> Result<RepoSettings> {
    s.changed_at = Some(Utc::now());
    s.changed_by = Some(format!("{}@{}", util::username(), util::hostname()));
    let json = serde_json::to_vec(&s).map_err(|e| RepoError::Invalid(e.to_string()))?;
    let data = repo.encode_unpacked(&json);
    repo.backend().save(FileType::Lifeboat, SETTINGS_NAME, &data)?;
    Ok(s)
}
