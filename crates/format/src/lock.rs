//! Lock files (`locks/<id>`), restic's advisory lock protocol.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Plaintext of a lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// When the lock was created or last refreshed.
    pub time: DateTime<Utc>,
    /// Exclusive locks (prune, key changes) exclude every other lock.
    pub exclusive: bool,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: i64,
    /// Numeric user id of the holder.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    /// Numeric group id of the holder.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
