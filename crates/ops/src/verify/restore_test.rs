//! The result of a restore test: a snapshot restored into a scratch target of its kind and
//! checked there with the kind's native verification against the backup's manifest. Each source
//! kind runs its own test (the service layer's `Source::restore_test`); what goes wrong is
//! returned as data: `problems` (the backup does not restore, or what it restores differs from
//! its manifest) make the test fail, `skipped` (the test could not be done here, e.g. no
//! `redis-server`) make it partial.

use serde::Serialize;

use crate::records::Outcome;

/// What a restore test found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreTest {
    /// Source kind (`files` for plain snapshots).
    pub kind: String,
    /// The scratch target used (already removed).
    pub target: String,
    /// Why the backup failed the test (empty when it passed).
    pub problems: Vec<String>,
    /// What could not be tested here.
    pub skipped: Vec<String>,
    /// What the native verification found (row counts, keys, messages, files).
    pub details: serde_json::Value,
    /// Wall time from the start of the restore to the end of the verification.
    pub seconds: f64,
    /// The source's `verify_command`, run against the scratch target before it was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_command: Option<crate::records::HookRun>,
}

impl RestoreTest {
    /// `failed` with problems, else `partial` when something was skipped, else `ok`.
    pub fn outcome(&self) -> Outcome {
        if !self.problems.is_empty() {
            Outcome::Failed
        } else if !self.skipped.is_empty() {
            Outcome::Partial
        } else {
            Outcome::Ok
        }
    }
}
