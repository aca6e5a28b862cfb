//! The audit log: who did what to the repository, when, from where — stored in the repository
//! itself under `lifeboat/audit/`, one small encrypted object per event (append-only by
//! construction: events are never rewritten, so concurrent writers never conflict).
//!
//! Events carry ids and counts, never secrets: a key event names the key id, not the password.

use chrono::{DateTime, Utc};
use lifeboat_backend::FileType;
use lifeboat_repository::{util, Repository};
use serde::{Deserialize, Serialize};

use crate::OpsError;

/// Prefix of audit objects under `lifeboat/`.
const PREFIX: &str = "audit/";

/// One audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Host it ran on.
    pub host: String,
    /// User it ran as.
    pub user: String,
    /// What was done (`key add`, `forget`, `prune`, `append-only on`, …).
    pub action: String,
    /// Details: ids, counts, targets — never secrets.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Event {
    /// An event stamped now, on this host, as this user.
    pub fn new(action: impl Into<String>, details: serde_json::Value) -> Event {
        Event { time: Utc::now(), host: util::hostname(), user: util::username(), action: action.into(), details }
    }
}

/// Append an event to the repository's audit log.
pub fn record(repo: &Repository, event: &Event) -> Result<(), OpsError> {
    let json = serde_json::to_vec(event).map_err(|e| lifeboat_repository::RepoError::Invalid(e.to_string()))?;
    let suffix: [u8; 4] = lifeboat_crypto::random_bytes();
    let name = format!("{PREFIX}{}-{}.json", event.time.format("%Y%m%dT%H%M%S%.6fZ"), hex::encode(suffix));
    let data = repo.encode_unpacked(&json);
    repo.backend().save(FileType::Lifeboat, &name, &data).map_err(lifeboat_repository::RepoError::from)?;
    Ok(())
}

/// Audit objects that could not be read: (object name, why).
pub type Unreadable = Vec<(String, String)>;

/// Every event at or after `since` (all when `None`), oldest first. Unreadable events are
/// returned as `(name, reason)` so a listing can flag tampering instead of hiding it.
pub fn list(repo: &Repository, since: Option<DateTime<Utc>>) -> Result<(Vec<Event>, Unreadable), OpsError> {
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for (name, _) in repo.backend().list(FileType::Lifeboat).map_err(lifeboat_repository::RepoError::from)? {
        if !name.starts_with(PREFIX) {
            continue;
        }
        match repo.load_json::<Event>(FileType::Lifeboat, &name) {
            Ok(e) if since.is_none_or(|s| e.time >= s) => events.push(e),
            Ok(_) => {}
            Err(e) => bad.push((name, e.to_string())),
        }
    }
    events.sort_by_key(|e| e.time);
    Ok((events, bad))
}
