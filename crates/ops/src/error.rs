//! The error type of the operations layer.

/// Errors of the operations layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpsError {
    /// A duration or time could not be parsed.
    #[error("invalid {what} {text:?}: {hint}")]
    BadValue {
        /// What was being parsed (e.g. `duration`).
        what: &'static str,
        /// The text given.
        text: String,
        /// How to write it instead.
        hint: String,
    },
    /// A retention policy keeps nothing (it would remove every snapshot).
    #[error("the retention policy is empty: give at least one keep rule (e.g. --keep-daily 7)")]
    EmptyPolicy,
    /// The operation would replace something it must not (e.g. an archived WAL segment with
    /// other content).
    #[error("{0}")]
    Conflict(String),
    /// The repository engine failed.
    #[error(transparent)]
    Repo(#[from] lifeboat_repository::RepoError),
}

impl OpsError {
    /// Whether retrying could help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, OpsError::Repo(e) if e.is_retryable())
    }
}
